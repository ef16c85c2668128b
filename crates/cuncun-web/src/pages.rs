//! Server-rendered pages. Every page checks the session (via [`Caller`]), the role and the region
//! scope; every form carries the session's CSRF token.

use crate::auth::{self, LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::i18n::Lang;
use crate::session::{Caller, client_of, lang_of};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuncun_domain::audit::AuditEntry;
use cuncun_domain::model::*;
use cuncun_domain::role::ALL_ROLES;
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_app::records::{RegionRow, SessionRow, UserPatch};
use serde::Deserialize;
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/lang/{lang}", get(set_lang))
        .route("/regions/{code}", get(region_page))
        .route("/regions/{code}/hamlets", post(add_hamlet))
        .route("/users", get(users_page).post(create_user))
        .route("/users/{id}", get(user_page).post(update_user))
        .route("/users/{id}/password", post(reset_password))
        .route("/users/{id}/grant", post(set_grant))
        .route("/users/{id}/revoke", post(revoke_sessions))
        .route("/audit", get(audit_page))
        .route("/static/app.css", get(css))
}

/// What every page's frame needs: language, the signed-in user, the CSRF token.
pub struct Chrome {
    pub lang: Lang,
    pub user: Option<User>,
    pub csrf: String,
    pub path: String,
}

impl Chrome {
    pub fn of(c: &Caller, path: &str) -> Chrome {
        Chrome { lang: c.lang, user: Some(c.user.clone()), csrf: c.session.csrf_token.clone(), path: path.into() }
    }
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.s(key)
    }
    pub fn role(&self, r: &Role) -> &'static str {
        self.lang.s(&format!("role.{}", r.key()))
    }
    pub fn level(&self, l: &RegionLevel) -> &'static str {
        self.lang.s(&format!("level.{}", l.key()))
    }
    /// Beijing time (UTC+8), as the UI shows all times.
    pub fn time(&self, ms: &i64) -> String {
        cuncun_domain::time::format_datetime(*ms)
    }
    pub fn other_lang(&self) -> &'static str {
        self.lang.other().short()
    }
    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.role.can_manage_users())
    }
    pub fn home_code(&self) -> String {
        self.user.as_ref().map(|u| u.region_code.short().to_string()).unwrap_or_default()
    }
}

pub fn render(t: &impl Template) -> Result<Response, AppError> {
    t.render()
        .map(|s| Html(s).into_response())
        .map_err(|e| AppError::Internal(format!("template: {e}")))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    c: Chrome,
    status: u16,
    message: String,
}

pub fn error_page(lang: Lang, err: &AppError, who: Option<(User, SessionRow)>, path: &str) -> Response {
    // The detail strings are English; in Chinese the localized headline stands alone.
    let detail = |m: &str| if lang == Lang::En { format!(" ({m})") } else { String::new() };
    let message = match err {
        AppError::Forbidden(m) => format!("{}{}", lang.s("error.forbidden"), detail(m)),
        AppError::Csrf => lang.s("error.csrf").to_string(),
        AppError::NotFound(m) => format!("{}{}", lang.s("error.not_found"), detail(m)),
        other => other.message(),
    };
    let (user, csrf) = match who {
        Some((u, s)) => (Some(u), s.csrf_token),
        None => (None, String::new()),
    };
    let page = ErrorPage { c: Chrome { lang, user, csrf, path: path.to_string() }, status: err.status().as_u16(), message };
    match page.render() {
        Ok(s) => (err.status(), Html(s)).into_response(),
        Err(_) => (err.status(), err.message()).into_response(),
    }
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/app.css"))
}

fn cookie_header(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if state.opts.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

// ---- login / logout / language ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    error: String,
    username: String,
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap, q: Query<LangQuery>) -> Response {
    let lang = q.lang.as_deref().and_then(Lang::from_tag).unwrap_or_else(|| lang_of(&headers, None));
    login_page(&state, lang, "", "", StatusCode::OK)
}

fn login_page(state: &AppState, lang: Lang, error: &str, username: &str, status: StatusCode) -> Response {
    let csrf = auth::random_token();
    let page = LoginPage {
        c: Chrome { lang, user: None, csrf: csrf.clone(), path: "/login".into() },
        error: error.into(),
        username: username.into(),
    };
    match page.render() {
        Ok(s) => (
            status,
            [(header::SET_COOKIE, cookie_header(state, LOGIN_CSRF_COOKIE, &csrf, Some(3600)))],
            Html(s),
        )
            .into_response(),
        Err(e) => AppError::Internal(e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login_submit(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = lang_of(&headers, None);
    let expected = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !auth::same(expected, &f.csrf) {
        return login_page(&state, lang, lang.s("error.csrf"), &f.username, StatusCode::FORBIDDEN);
    }
    match crate::session::login(&state, &f.username, &f.password, &client_of(Some(addr)), "web").await {
        Ok((token, _csrf, _user)) => {
            let ttl = state.opts.session_ttl.as_secs() as i64;
            (
                // AppendHeaders: a plain array would let the second Set-Cookie replace the first.
                axum::response::AppendHeaders([
                    (header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, &token, Some(ttl))),
                    (header::SET_COOKIE, cookie_header(&state, LOGIN_CSRF_COOKIE, "", Some(0))),
                ]),
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(AppError::TooManyRequests(_)) => {
            login_page(&state, lang, lang.s("login.limited"), &f.username, StatusCode::TOO_MANY_REQUESTS)
        }
        Err(AppError::Forbidden(_)) => {
            login_page(&state, lang, lang.s("login.disabled"), &f.username, StatusCode::FORBIDDEN)
        }
        Err(AppError::BadRequest(_)) => {
            login_page(&state, lang, lang.s("login.failed"), &f.username, StatusCode::UNAUTHORIZED)
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AppState>, c: Caller, Form(f): Form<CsrfForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().logout(&c.principal(&state).await?, &c.session).await?;
    Ok(([(header::SET_COOKIE, cookie_header(&state, SESSION_COOKIE, "", Some(0)))], Redirect::to("/login"))
        .into_response())
}

#[derive(Deserialize)]
struct LangQuery {
    lang: Option<String>,
    back: Option<String>,
}

async fn set_lang(State(state): State<AppState>, Path(lang): Path<String>, q: Query<LangQuery>) -> Response {
    let l = Lang::from_tag(&lang).unwrap_or(Lang::Zh);
    let back = q.back.as_deref().filter(|b| same_site_path(b)).unwrap_or("/");
    let mut c = format!("{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000", l.short());
    if state.opts.secure_cookies {
        c.push_str("; Secure");
    }
    ([(header::SET_COOKIE, c)], Redirect::to(back)).into_response()
}

/// Whether `back` is a path on this site and nothing a browser could read as another host: one
/// leading slash, no backslash (browsers read `/\host` as `//host`), no control characters
/// (browsers strip them, so `/<TAB>/host` is `//host`).
pub fn same_site_path(back: &str) -> bool {
    back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') && !back.chars().any(char::is_control)
}

// ---- home and regions ----

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    c: Chrome,
    region: Region,
    counts: RegionCounts,
    children: Vec<RegionRow>,
}

async fn home(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let code = c.user.region_code.clone();
    let v = state.app().region_view(&c.principal(&state).await?, &code, "").await.map_err(|e| match e {
        cuncun_app::Error::NotFound(_) => AppError::NotFound(format!("region {code} (your region) is not loaded")),
        e => e.into(),
    })?;
    render(&HomePage { c: Chrome::of(&c, "/"), region: v.region, counts: v.counts, children: v.children })
}

fn parse_code(s: &str) -> Result<RegionCode, AppError> {
    RegionCode::parse(s).map_err(|e| AppError::BadRequest(e.to_string()))
}

#[derive(Template)]
#[template(path = "region.html")]
struct RegionPage {
    c: Chrome,
    region: Region,
    trail: Vec<Region>,
    counts: RegionCounts,
    children: Vec<RegionRow>,
    hamlets: Vec<Hamlet>,
    can_edit: bool,
    query: String,
    found: Vec<Region>,
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

async fn region_page(
    State(state): State<AppState>,
    c: Caller,
    Path(code): Path<String>,
    Query(sq): Query<SearchQuery>,
) -> Result<Response, AppError> {
    let code = parse_code(&code)?;
    let query = sq.q.unwrap_or_default();
    let v = state.app().region_view(&c.principal(&state).await?, &code, &query).await?;
    render(&RegionPage {
        can_edit: v.can_edit,
        c: Chrome::of(&c, &format!("/regions/{}", code.short())),
        region: v.region,
        trail: v.trail,
        counts: v.counts,
        children: v.children,
        hamlets: v.hamlets,
        query,
        found: v.found,
    })
}

#[derive(Deserialize)]
struct HamletForm {
    csrf: String,
    name: String,
    households: i64,
    population: i64,
}

async fn add_hamlet(
    State(state): State<AppState>,
    c: Caller,
    Path(code): Path<String>,
    Form(f): Form<HamletForm>,
) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let h = add_hamlet_checked(&state, &c, &code, f.name, f.households, f.population).await?;
    Ok(Redirect::to(&format!("/regions/{}", h.village_code.short())).into_response())
}

/// Adds a hamlet (page and API): parses the village code, runs the command.
pub async fn add_hamlet_checked(
    state: &AppState,
    c: &Caller,
    code: &str,
    name: String,
    households: i64,
    population: i64,
) -> Result<Hamlet, AppError> {
    let h = NewHamlet { village_code: parse_code(code)?, name, households, population };
    Ok(state.app().add_hamlet(&c.principal(state).await?, h).await?)
}

// ---- users ----

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    users: Vec<User>,
    roles: Vec<Role>,
    error: String,
}

async fn users_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let users = state.app().users(&c.principal(&state).await?).await?;
    render(&UsersPage { c: Chrome::of(&c, "/users"), users, roles: ALL_ROLES.to_vec(), error: String::new() })
}

#[derive(Deserialize)]
struct NewUserForm {
    csrf: String,
    username: String,
    display_name: String,
    password: String,
    role: String,
    region_code: String,
    #[serde(default)]
    phone: String,
}

/// Creates a user (page and API).
pub async fn create_user_checked(
    state: &AppState,
    c: &Caller,
    username: &str,
    display_name: &str,
    password: &str,
    role: &str,
    region_code: &str,
    phone: &str,
) -> Result<User, AppError> {
    let input = cuncun_app::accounts::NewUserInput {
        username: username.into(),
        display_name: display_name.into(),
        password: password.into(),
        role: role.into(),
        region_code: region_code.into(),
        phone: phone.into(),
    };
    Ok(state.app().create_user(&c.principal(state).await?, &input).await?)
}

async fn create_user(State(state): State<AppState>, c: Caller, Form(f): Form<NewUserForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    match create_user_checked(&state, &c, &f.username, &f.display_name, &f.password, &f.role, &f.region_code, &f.phone)
        .await
    {
        Ok(u) => Ok(Redirect::to(&format!("/users/{}", u.id)).into_response()),
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => {
            let users = state.app().users(&c.principal(&state).await?).await?;
            let mut res =
                render(&UsersPage { c: Chrome::of(&c, "/users"), users, roles: ALL_ROLES.to_vec(), error: m })?;
            *res.status_mut() = StatusCode::BAD_REQUEST;
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    c: Chrome,
    u: User,
    roles: Vec<Role>,
    sessions: Vec<SessionRow>,
    now: i64,
    /// What a department sender may send: (event codes or prefixes, region codes), comma-separated.
    grant: Option<(String, String)>,
}

/// Loads a user the caller (an administrator) may manage: inside their region.
pub async fn managed_user(state: &AppState, c: &Caller, id: i64) -> Result<User, AppError> {
    Ok(state.app().managed_user(&c.principal(state).await?, id).await?)
}

async fn user_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let (app, p) = (state.app(), c.principal(&state).await?);
    let u = app.managed_user(&p, id).await?;
    let sessions = app.sessions_of(&p, id).await?;
    let grant = if u.role == Role::DepartmentSender {
        let g = app.grant(&p, id).await?;
        Some((g.event_types.join(","), g.regions.iter().map(|r| r.short()).collect::<Vec<_>>().join(",")))
    } else {
        None
    };
    render(&UserPage {
        c: Chrome::of(&c, &format!("/users/{id}")),
        u,
        roles: ALL_ROLES.to_vec(),
        sessions,
        now: cuncun_domain::time::now_ms(),
        grant,
    })
}

#[derive(Deserialize)]
struct GrantForm {
    csrf: String,
    #[serde(default)]
    event_types: String,
    #[serde(default)]
    regions: String,
}

/// What a department sender may send (the application layer checks who may set it).
async fn set_grant(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<GrantForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let split = |s: &str| s.split([',', ' ', '，', '\n']).map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect::<Vec<_>>();
    state.app().set_grant(&c.principal(&state).await?, id, &split(&f.event_types), &split(&f.regions)).await?;
    Ok(Redirect::to(&format!("/users/{id}")).into_response())
}

#[derive(Deserialize)]
struct EditUserForm {
    csrf: String,
    display_name: String,
    role: String,
    region_code: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    disabled: Option<String>,
}

/// Applies a patch on behalf of an administrator (shared by page and API).
pub async fn update_user_checked(state: &AppState, c: &Caller, id: i64, patch: UserPatch) -> Result<User, AppError> {
    Ok(state.app().update_user(&c.principal(state).await?, id, &patch).await?)
}

async fn update_user(
    State(state): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Form(f): Form<EditUserForm>,
) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let patch = UserPatch {
        display_name: Some(f.display_name),
        role: Some(Role::parse(&f.role).map_err(|e| AppError::BadRequest(e.to_string()))?),
        region_code: Some(parse_code(&f.region_code)?),
        phone: Some(f.phone),
        disabled: Some(f.disabled.is_some()),
    };
    update_user_checked(&state, &c, id, patch).await?;
    Ok(Redirect::to(&format!("/users/{id}")).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().set_password(&c.principal(&state).await?, id, &f.password).await?;
    Ok(Redirect::to(&format!("/users/{id}")).into_response())
}

async fn revoke_sessions(
    State(state): State<AppState>,
    c: Caller,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().revoke_user_sessions(&c.principal(&state).await?, id).await?;
    Ok(Redirect::to(&format!("/users/{id}")).into_response())
}

// ---- audit ----

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    entries: Vec<AuditEntry>,
}

async fn audit_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let entries = state.app().audit_recent(&c.principal(&state).await?, 500).await?;
    render(&AuditPage { c: Chrome::of(&c, "/audit"), entries })
}
