//! Users, sessions and sign-in, the region tree and hamlets, and the audit log.
//!
//! Passwords are hashed here (argon2id) and session tokens are random, stored only as SHA-256:
//! the console, the API and the CLI all create users and sessions through these commands.

use crate::access::{self, actor};
use crate::{App, Error, Result};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use cuncun_domain::audit::AuditEntry;
use cuncun_domain::authz::Principal;
use cuncun_domain::model::{Hamlet, NewHamlet, NewUser, Region, RegionCounts, User};
use cuncun_domain::records::{Actor, NewSession, RegionRow, SessionRow, UserPatch};
use cuncun_domain::time::now_ms;
use cuncun_domain::{RegionCode, RegionLevel, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What an account and a hamlet may hold: checked here for the console, the API and every other
/// caller; the OpenAPI states the same bounds (minLength, maxLength, pattern, minimum, maximum).
pub const USERNAME_MAX: usize = 64;
pub const DISPLAY_NAME_MAX: usize = 64;
/// Long enough for any passphrase, short enough that hashing it costs nothing extra.
pub const PASSWORD_MAX: usize = 256;
pub const HAMLET_NAME_MAX: usize = 64;
/// A hamlet (natural village) has tens to hundreds of households; these bounds only keep
/// nonsense (2^63 households) out of every sum above it.
pub const HOUSEHOLDS_MAX: i64 = 100_000;
pub const POPULATION_MAX: i64 = 1_000_000;

/// A name a person typed: 1 to `max` characters, not blank, no control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(Error::BadRequest(format!("{field}: 1-{max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!("{field}: control characters are not allowed")));
    }
    Ok(())
}

/// A username: no spaces and no `:` (it appears in audit entries as `kind:id:name`).
fn check_username(value: &str) -> Result<()> {
    check_text("username", value, USERNAME_MAX)?;
    if value.chars().any(|c| c.is_whitespace() || c == ':') {
        return Err(Error::BadRequest(format!("username {value:?}: no spaces or colons")));
    }
    Ok(())
}

/// A user's phone: empty, or a mobile or landline number of at most 32 characters (digits,
/// spaces, dashes), stored as digits only.
fn checked_phone(value: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Ok(String::new());
    }
    if value.chars().count() > 32 {
        return Err(Error::BadRequest("phone: at most 32 characters".into()));
    }
    cuncun_domain::service::normalise_phone(value).ok_or_else(|| {
        let shown: String = value.chars().take(24).collect();
        Error::BadRequest(format!("phone {shown:?}: not a mobile (11 digits) or landline number with area code"))
    })
}

/// Hashes a password (argon2id); refuses one shorter than 8 or longer than 256 characters.
pub fn hash_password(password: &str) -> std::result::Result<String, String> {
    let n = password.chars().count();
    if n < 8 {
        return Err("password must have at least 8 characters".into());
    }
    if n > PASSWORD_MAX {
        return Err(format!("password: at most {PASSWORD_MAX} characters"));
    }
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the user does not exist, so that timing does not reveal it.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// 32 random bytes, hex: session tokens, CSRF tokens, download tokens.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What is stored of a token: its SHA-256, so that a database leak yields no usable session.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new session: the raw token (shown once to the client) and its CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: String,
    pub csrf: String,
    pub user: User,
}

/// Why a sign-in failed (the caller counts these apart; the person sees one neutral text for
/// a wrong name or password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    WrongCredentials,
    Disabled,
}

/// A region's page: the region, the path down to it from the principal's own region, its
/// counts, children, hamlets (villages) and the regions found by a name search below it.
#[derive(Debug, Clone)]
pub struct RegionView {
    pub region: Region,
    pub trail: Vec<Region>,
    pub counts: RegionCounts,
    pub children: Vec<RegionRow>,
    pub hamlets: Vec<Hamlet>,
    pub found: Vec<Region>,
    /// Whether the principal may add hamlets here.
    pub can_edit: bool,
}

/// A user account as an administrator enters it.
#[derive(Debug, Clone, Default)]
pub struct NewUserInput {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: String,
    pub region_code: String,
    pub phone: String,
}

fn may_edit_regions(p: &Principal) -> bool {
    p.role().is_some_and(Role::can_edit_regions)
}

impl App {
    /// Checks a name and password and opens a session of `kind` ("web", "api") for `client`.
    /// Failures are audited; the session expires after `ttl_ms`.
    pub async fn login(&self, username: &str, password: &str, client: &str, kind: &str, ttl_ms: i64) -> Result<std::result::Result<SignedIn, LoginFailure>> {
        let found = self.store.user_credentials(username).await?;
        let ok = match &found {
            Some((_, hash)) => verify_password(password, hash),
            None => {
                verify_password(password, dummy_hash());
                false
            }
        };
        let user = match (ok, found) {
            (true, Some((u, _))) if !u.disabled => u,
            (true, Some(_)) => return Ok(Err(LoginFailure::Disabled)),
            _ => {
                let after = serde_json::json!({ "username": username, "client": client }).to_string();
                self.store.audit(&Actor::system(), "login.failed", "user", username, "", &after).await?;
                return Ok(Err(LoginFailure::WrongCredentials));
            }
        };
        let (token, csrf) = (random_token(), random_token());
        self.store
            .create_session(&NewSession {
                token_hash: token_hash(&token),
                user_id: user.id,
                kind: kind.into(),
                csrf_token: csrf.clone(),
                expires_at_ms: now_ms() + ttl_ms,
                client: client.into(),
            })
            .await?;
        let after = serde_json::json!({ "kind": kind, "client": client }).to_string();
        self.store.audit(&Actor::user(&user), "login", "user", &user.id.to_string(), "", &after).await?;
        Ok(Ok(SignedIn { token, csrf, user }))
    }

    /// The user and live session behind a raw token; None when it is unknown, revoked, expired
    /// or the account is disabled.
    pub async fn session(&self, token: &str) -> Result<Option<(User, SessionRow)>> {
        let Some(session) = self.store.live_session(&token_hash(token), now_ms()).await? else { return Ok(None) };
        match self.store.user(session.user_id).await? {
            Some(u) if !u.disabled => Ok(Some((u, session))),
            _ => Ok(None),
        }
    }

    /// Ends the principal's own session.
    pub async fn logout(&self, p: &Principal, session: &SessionRow) -> Result<()> {
        if p.user_id() != Some(session.user_id) {
            return Err(Error::Forbidden("not your session".into()));
        }
        self.store.revoke_session(&session.token_hash, &actor(p)).await?;
        Ok(())
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    // ---- regions ----

    async fn region_in_scope(&self, p: &Principal, code: &RegionCode) -> Result<Region> {
        access::in_scope(p, code)?;
        self.store.region(code).await?.ok_or_else(|| Error::NotFound(format!("region {code}")))
    }

    /// A region inside the principal's region, with its counts.
    pub async fn region(&self, p: &Principal, code: &RegionCode) -> Result<(Region, RegionCounts)> {
        let r = self.region_in_scope(p, code).await?;
        Ok((r, self.store.region_counts(code).await?))
    }

    /// The direct children of a region inside the principal's region.
    pub async fn children(&self, p: &Principal, code: &RegionCode) -> Result<Vec<RegionRow>> {
        self.region_in_scope(p, code).await?;
        Ok(self.store.children(code).await?)
    }

    /// Regions whose name contains `q`, below `scope` (the principal's region when None).
    pub async fn search_regions(&self, p: &Principal, scope: Option<&RegionCode>, q: &str, limit: i64) -> Result<Vec<Region>> {
        let scope = match scope {
            Some(s) => s,
            None => access::region(p)?,
        };
        access::in_scope(p, scope)?;
        Ok(self.store.search_regions(scope, q, limit.clamp(1, 500)).await?)
    }

    /// Everything a region's page shows. The trail starts at the principal's own region:
    /// nothing above it is theirs to open.
    pub async fn region_view(&self, p: &Principal, code: &RegionCode, query: &str) -> Result<RegionView> {
        let region = self.region_in_scope(p, code).await?;
        let mut trail = Vec::new();
        for a in code.ancestors() {
            if access::sees(p, &a) {
                if let Some(r) = self.store.region(&a).await? {
                    trail.push(r);
                }
            }
        }
        let hamlets = if code.level() == RegionLevel::Village { self.store.hamlets(code).await? } else { Vec::new() };
        let found = if query.trim().is_empty() { Vec::new() } else { self.store.search_regions(code, query, 50).await? };
        Ok(RegionView {
            region,
            trail,
            counts: self.store.region_counts(code).await?,
            children: self.store.children(code).await?,
            hamlets,
            found,
            can_edit: may_edit_regions(p),
        })
    }

    pub async fn hamlets(&self, p: &Principal, village: &RegionCode) -> Result<Vec<Hamlet>> {
        access::in_scope(p, village)?;
        Ok(self.store.hamlets(village).await?)
    }

    /// Adds a hamlet under a village the principal may edit. Audited.
    pub async fn add_hamlet(&self, p: &Principal, h: NewHamlet) -> Result<Hamlet> {
        access::in_scope(p, &h.village_code)?;
        if !may_edit_regions(p) {
            return Err(Error::Forbidden("your role may not edit the region tree".into()));
        }
        check_text("name", &h.name, HAMLET_NAME_MAX)?;
        if !(0..=HOUSEHOLDS_MAX).contains(&h.households) {
            return Err(Error::BadRequest(format!("households: {} is not within 0-{HOUSEHOLDS_MAX}", h.households)));
        }
        if !(0..=POPULATION_MAX).contains(&h.population) {
            return Err(Error::BadRequest(format!("population: {} is not within 0-{POPULATION_MAX}", h.population)));
        }
        self.store.region(&h.village_code).await?.ok_or_else(|| Error::NotFound(format!("region {}", h.village_code)))?;
        Ok(self.store.add_hamlet(&h, &actor(p)).await?)
    }

    // ---- users (administrators, inside their region) ----

    /// The users of the administrator's region.
    pub async fn users(&self, p: &Principal) -> Result<Vec<User>> {
        let region = access::admin(p)?;
        Ok(self.store.users_in(region).await?)
    }

    /// Creates a user inside the administrator's region. Audited.
    pub async fn create_user(&self, p: &Principal, u: &NewUserInput) -> Result<User> {
        access::admin(p)?;
        let role = Role::parse(&u.role).map_err(|e| Error::BadRequest(e.to_string()))?;
        let region = RegionCode::parse(&u.region_code).map_err(|e| Error::BadRequest(format!("region_code: {e}")))?;
        access::in_scope(p, &region)?;
        check_username(&u.username)?;
        check_text("display_name", &u.display_name, DISPLAY_NAME_MAX)?;
        let phone = checked_phone(&u.phone)?;
        let password_hash = hash_password(&u.password).map_err(Error::BadRequest)?;
        let new = NewUser {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role,
            region_code: region,
            phone,
            password_hash,
        };
        Ok(self.store.create_user(&new, &actor(p)).await?)
    }

    /// A user the principal administers: inside their region.
    pub async fn managed_user(&self, p: &Principal, id: i64) -> Result<User> {
        access::admin(p)?;
        let u = self.store.user(id).await?.ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        access::in_scope(p, &u.region_code)?;
        Ok(u)
    }

    /// Changes a user; an administrator cannot disable themself or change their own role or
    /// region (moving down would lock them out of moving back). Audited.
    pub async fn update_user(&self, p: &Principal, id: i64, patch: &UserPatch) -> Result<User> {
        let current = self.managed_user(p, id).await?;
        if let Some(r) = &patch.region_code {
            access::in_scope(p, r)?;
        }
        if p.user_id() == Some(id) {
            if patch.disabled == Some(true) || patch.role.is_some_and(|r| Some(r) != p.role()) {
                return Err(Error::BadRequest("you cannot disable yourself or change your own role".into()));
            }
            if patch.region_code.as_ref().is_some_and(|r| *r != current.region_code) {
                return Err(Error::BadRequest("you cannot change your own region; ask an administrator above you".into()));
            }
        }
        let mut patch = patch.clone();
        if let Some(name) = &patch.display_name {
            check_text("display_name", name, DISPLAY_NAME_MAX)?;
        }
        if let Some(phone) = &patch.phone {
            patch.phone = Some(checked_phone(phone)?);
        }
        Ok(self.store.update_user(id, &patch, &actor(p)).await?)
    }

    /// Sets a user's password; a new password ends every session of another user. Audited.
    pub async fn set_password(&self, p: &Principal, id: i64, password: &str) -> Result<()> {
        self.managed_user(p, id).await?;
        let hash = hash_password(password).map_err(Error::BadRequest)?;
        self.store.set_password(id, &hash, &actor(p)).await?;
        if p.user_id() != Some(id) {
            self.store.revoke_user_sessions(id, &actor(p)).await?;
        }
        Ok(())
    }

    pub async fn sessions_of(&self, p: &Principal, id: i64) -> Result<Vec<SessionRow>> {
        self.managed_user(p, id).await?;
        Ok(self.store.sessions_of(id).await?)
    }

    /// Ends every session of a user; returns how many. Audited.
    pub async fn revoke_user_sessions(&self, p: &Principal, id: i64) -> Result<u64> {
        self.managed_user(p, id).await?;
        Ok(self.store.revoke_user_sessions(id, &actor(p)).await?)
    }

    // ---- audit ----

    /// The latest audit entries an administrator may read (see [`visible_audit`]).
    pub async fn audit_recent(&self, p: &Principal, limit: i64) -> Result<Vec<AuditEntry>> {
        let region = access::admin(p)?.clone();
        Ok(visible_audit(&region, self.store.audit_recent(limit).await?))
    }

    /// Audit entries after `after_seq`, in order (for export and verification by a client).
    pub async fn audit_entries(&self, p: &Principal, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let region = access::admin(p)?.clone();
        Ok(visible_audit(&region, self.store.audit_entries(after_seq, limit.clamp(1, 1000)).await?))
    }

    /// Records something a principal did that changed nothing stored (a download, a refusal).
    pub async fn audit(&self, p: &Principal, action: &str, entity: &str, entity_id: &str, after: &str) -> Result<()> {
        Ok(self.store.audit(&actor(p), action, entity, entity_id, "", after).await?)
    }
}

/// The audit log is global; an administrator below province level sees the entries that touch
/// their region (its code appears in the entry), a province administrator sees everything.
pub fn visible_audit(scope: &RegionCode, entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
    if scope.level() == RegionLevel::Province {
        return entries;
    }
    let s = scope.short();
    entries.into_iter().filter(|e| e.entity_id.starts_with(s) || e.before.contains(s) || e.after.contains(s)).collect()
}
