//! CAP 1.2 import and export: department settings, alerts received, and the messages they became.
//! An alert comes from a department-sender account (the caller, or the account a feed is polled
//! for); it is checked exactly as `cuncun cap check` does with that department's certificate and
//! unsigned policy, and may only warn the department's own region. See docs/CAP.md.

use crate::access;
use crate::{App, Error, Result, Via};
use cuncun_cap::map::LangText;
use cuncun_cap::{CheckOptions, Geometry, Issue, Level, PlatformAlert, Reference, SignatureStatus, TrustedKey};
use cuncun_domain::authz::Principal;
use cuncun_domain::eb::{EVENT_TYPES, Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::records::Actor;
use cuncun_domain::records::cap::{CapAlertRow, CapDepartment, CapImport, CapImported, CapInfoRow};
use cuncun_domain::records::eb::{Message, NewMessage};
use cuncun_domain::RegionCode;

/// Largest CAP document accepted (a CAP alert is a few kB; resources are referenced, not embedded).
pub const MAX_CAP_BYTES: usize = 1 << 20;

/// Why an alert was refused.
#[derive(Debug)]
pub enum CapRefusal {
    /// The check failed: every located issue (422).
    Invalid { issues: Vec<Issue>, signature: SignatureStatus },
    /// Outside the department's region or not a department (403).
    Forbidden(String),
    Other(Error),
}

impl From<Error> for CapRefusal {
    fn from(e: Error) -> Self {
        CapRefusal::Other(e)
    }
}

fn error_issue(path: &str, message: String) -> Issue {
    Issue { level: Level::Error, path: path.into(), message }
}

impl CapRefusal {
    fn invalid(path: &str, message: String) -> CapRefusal {
        CapRefusal::Invalid { issues: vec![error_issue(path, message)], signature: SignatureStatus::Unsigned }
    }
    /// The issues to show (a forbidden area is one issue too).
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            CapRefusal::Invalid { issues, .. } => issues.clone(),
            CapRefusal::Forbidden(m) => vec![error_issue("/alert/info/area", m.clone())],
            CapRefusal::Other(Error::Internal(_) | Error::Unavailable(_)) => {
                vec![error_issue("/alert", "the alert could not be stored; the cause is in the server log".into())]
            }
            CapRefusal::Other(e) => vec![error_issue("/alert", e.to_string())],
        }
    }
}

/// Where an alert came in; it names the import's source and, for a feed, its audit actor.
#[derive(Debug, Clone, Copy)]
pub enum CapSource<'a> {
    Api,
    Upload,
    Feed { url: &'a str },
}

/// What a certificate change asks for.
#[derive(Debug, Clone, Copy)]
pub enum CertChange<'a> {
    Keep,
    Remove,
    /// A PEM certificate file as uploaded.
    Set(&'a [u8]),
}

/// The ISO 639-2 code the message model keeps, from a CAP language tag.
fn lang_code(tag: &str) -> String {
    let t = tag.to_ascii_lowercase();
    if t.starts_with("zh") {
        "zho".into()
    } else if t.starts_with("en") {
        "eng".into()
    } else {
        t.chars().take(8).collect()
    }
}

fn chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// In force for the public: approved or dispatching, not a drill, not expired.
fn publicly_active(m: &Message, now: i64) -> bool {
    matches!(m.status, MessageStatus::Approved | MessageStatus::Dispatching) && !m.drill && m.end_ms > now
}

/// Whether the principal imports CAP alerts at all (only department senders do).
pub fn may_import_cap(p: &Principal) -> bool {
    matches!(p, Principal::Department { .. })
}

impl App {
    /// The department a feed is polled for, by its account's username (a running job's setting).
    pub async fn cap_feed_department(&self, username: &str) -> Result<Principal> {
        match self.store.user_credentials(username).await? {
            Some((u, _)) if !u.disabled => self.principal_of(&u, Via::Api).await,
            _ => Err(Error::NotFound(format!("cap.feeds: department account {username:?} does not exist or is disabled"))),
        }
    }

    /// Checks a CAP document for the department `p` with its certificate and unsigned policy,
    /// maps it to a message inside the department's region and stores it (submitted for
    /// approval), following Update and Cancel references.
    pub async fn import_cap(&self, p: &Principal, bytes: &[u8], source: CapSource<'_>) -> std::result::Result<CapImported, CapRefusal> {
        let Principal::Department { id, name, region, .. } = p else {
            return Err(CapRefusal::Forbidden("only a department sender account may import CAP alerts".into()));
        };
        if bytes.len() > MAX_CAP_BYTES {
            return Err(CapRefusal::invalid("/alert", format!("the document is larger than {} KiB", MAX_CAP_BYTES >> 10)));
        }
        let settings = self
            .store
            .cap_department(*id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| CapRefusal::Forbidden("only a department sender account may import CAP alerts".into()))?;
        let trusted = match &settings.cert_pem {
            Some(pem) => Some(TrustedKey::from_bytes(pem.as_bytes()).map_err(|e| {
                CapRefusal::Other(Error::Internal(format!("department {name}: stored certificate unreadable: {e}")))
            })?),
            None => None,
        };
        let report = cuncun_cap::check(
            bytes,
            &CheckOptions { trusted: trusted.as_ref(), require_signature: !settings.accept_unsigned, known_region: &|_| true },
        );
        let mut issues = report.issues.clone();
        if let SignatureStatus::NotChecked { .. } = report.signature {
            issues.push(error_issue(
                "/alert/Signature",
                "the alert is signed but no trusted certificate is set for this department; an administrator must upload it".into(),
            ));
        }
        let (Some(alert), Some(mapped)) = (&report.alert, &report.mapped) else {
            return Err(CapRefusal::Invalid { issues, signature: report.signature });
        };
        let now = cuncun_domain::time::now_ms();
        match mapped.msg_type.as_str() {
            "Alert" | "Update" | "Cancel" => {}
            other => issues.push(error_issue("/alert/msgType", format!("{other} carries no warning to broadcast; only Alert, Update and Cancel are imported"))),
        }
        if matches!(mapped.status.as_str(), "System" | "Draft") {
            issues.push(error_issue("/alert/status", format!("status {} is not broadcast; only Actual, Exercise and Test are imported", mapped.status)));
        }
        if !mapped.is_cancel() {
            if let Some(exp) = mapped.expires_ms.filter(|e| *e <= now) {
                issues.push(error_issue("/alert/info[1]/expires", format!("the alert expired at {}", cuncun_cap::write::cap_time(exp))));
            }
        }
        // Region codes must be loaded here and inside the department's region.
        let mut outside = Vec::new();
        for r in &mapped.regions {
            if !region.contains(r) {
                outside.push(r.short().to_string());
            } else if self.store.region(r).await.map_err(Error::from)?.is_none() {
                issues.push(error_issue("/alert/info/area/geocode", format!("region code {} is not known to this platform", r.short())));
            }
        }
        if issues.iter().any(|i| i.level == Level::Error) {
            return Err(CapRefusal::Invalid { issues, signature: report.signature });
        }
        if !outside.is_empty() {
            return Err(CapRefusal::Forbidden(format!(
                "area {} is outside the department's region {}; a department may only warn its own region",
                outside.join(", "),
                region.short()
            )));
        }
        let message = if mapped.is_cancel() { None } else { Some(self.cap_message(*id, region, mapped, now).await?) };
        if let Some(m) = &message {
            if m.areas.is_empty() && m.terminals.is_empty() {
                return Err(CapRefusal::invalid(
                    "/alert/info[1]/area",
                    format!("the alert's areas contain no region or terminal of the department's region {}", region.short()),
                ));
            }
        }
        let (source, actor) = match source {
            CapSource::Api => ("api".to_string(), access::actor(p)),
            CapSource::Upload => ("upload".to_string(), access::actor(p)),
            CapSource::Feed { url } => (format!("feed:{url}"), Actor(format!("feed:{name}:{url}"))),
        };
        let imp = CapImport {
            sender: alert.sender.clone(),
            identifier: alert.identifier.clone(),
            sent: alert.sent.clone(),
            msg_type: mapped.msg_type.clone(),
            status: mapped.status.clone(),
            refs: alert.references.clone().unwrap_or_default(),
            references: mapped.references.iter().map(|r| (r.sender.clone(), r.identifier.clone())).collect(),
            department_id: *id,
            signature: report.signature.describe(),
            source,
            xml: String::from_utf8_lossy(bytes).into_owned(),
            infos: mapped
                .languages
                .iter()
                .map(|l| CapInfoRow {
                    language: l.language.clone(),
                    event: l.event.clone(),
                    headline: l.headline.clone(),
                    description: l.description.clone(),
                    instruction: l.instruction.clone(),
                    sender_name: l.sender_name.clone(),
                })
                .collect(),
            message,
            principal: p.clone(),
            settings: self.settings.clone(),
        };
        let out = self.store.import_cap(&imp, &actor).await.map_err(|e| match Error::from(e) {
            Error::BadRequest(m) => CapRefusal::invalid("/alert/references", m),
            Error::Forbidden(m) => CapRefusal::Forbidden(m),
            other => other.into(),
        })?;
        self.wake();
        Ok(out)
    }

    /// This platform's resource code, the sender of what it writes.
    fn platform_ebrid(&self, fallback: &RegionCode) -> Result<Ebrid> {
        let region = self.platform_region.clone().unwrap_or_else(|| fallback.clone());
        Ebrid::generate(&region, ResourceKind::Platform, 1).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The message a department's alert becomes.
    async fn cap_message(&self, dept: i64, region: &RegionCode, p: &PlatformAlert, now: i64) -> Result<NewMessage> {
        // Terminals with a position inside the polygons and circles, within the department's region.
        let mut terminals = Vec::new();
        if !p.geometries.is_empty() {
            let rows = self.store.resources_in(region, &[], false, 1_000_000, 0).await?;
            let points: Vec<(String, f64, f64)> = rows
                .iter()
                .filter(|r| r.resource.kind.is_terminal())
                .filter_map(|r| Some((r.resource.ebrid.clone(), r.resource.lon?, r.resource.lat?)))
                .collect();
            for code in p.select_inside(&points) {
                terminals.push(Ebrid::parse(&code).map_err(|e| Error::Internal(e.to_string()))?);
            }
        }
        let start_ms = p.effective_ms.unwrap_or(now).max(now);
        let end_ms = p.expires_ms.unwrap_or(start_ms + 24 * 3_600_000);
        let lang = p.languages.iter().find(|l| l.language.to_ascii_lowercase().starts_with("zh")).or(p.languages.first());
        Ok(NewMessage {
            platform: self.platform_ebrid(region)?,
            msg_type: "broadcast".into(),
            related_ebmid: None,
            priority: "emergency".into(),
            drill: p.is_drill,
            event_type: p.event_type.clone(),
            severity: p.severity,
            title: chars(if p.title.is_empty() { &p.identifier } else { &p.title }, 200),
            body: chars(if p.text.is_empty() { &p.title } else { &p.text }, 5000),
            lang: lang.map(|l| lang_code(&l.language)).unwrap_or_else(|| "zho".into()),
            audio_sha256: None,
            audio_size: None,
            areas: p.regions.clone(),
            terminals,
            start_on_approval: false,
            from_peer: None,
            start_ms,
            end_ms: end_ms.max(start_ms + 60_000),
            repeat_count: 3,
            volume: None,
            source: "cap".into(),
            owner_region: region.clone(),
            author_id: Some(dept),
        })
    }

    /// CAP alerts received recently from departments of the principal's region.
    pub async fn cap_alerts(&self, p: &Principal, limit: i64) -> Result<Vec<CapAlertRow>> {
        Ok(self.store.cap_alerts_recent(access::region(p)?, limit).await?)
    }

    /// The department-sender accounts of an administrator's region with their CAP settings.
    pub async fn cap_departments(&self, p: &Principal) -> Result<Vec<CapDepartment>> {
        Ok(self.store.cap_departments(access::admin(p)?).await?)
    }

    /// Sets a department's trusted certificate and unsigned policy (administrators of its region).
    pub async fn set_cap_department(&self, p: &Principal, user_id: i64, cert: CertChange<'_>, accept_unsigned: bool) -> Result<CapDepartment> {
        access::admin(p)?;
        let d = self.store.cap_department(user_id).await?.ok_or_else(|| Error::NotFound(format!("department sender {user_id}")))?;
        access::in_scope(p, &d.region_code)?;
        let pem = match cert {
            CertChange::Set(bytes) if !bytes.is_empty() => {
                let text = std::str::from_utf8(bytes).map_err(|_| Error::BadRequest("certificate: expected a PEM text file".into()))?;
                if !text.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(Error::BadRequest("certificate: expected a PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
                }
                TrustedKey::from_bytes(bytes).map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
                Some(text.to_string())
            }
            CertChange::Remove => None,
            _ => d.cert_pem.clone(),
        };
        Ok(self.store.set_cap_department(user_id, pem.as_deref(), accept_unsigned, &access::actor(p)).await?)
    }

    /// A message as the platform alert cuncun-cap writes: CAP-imported messages keep every info
    /// block's texts and their polygons and circles. For a message its caller may already read.
    pub async fn cap_alert_of(&self, m: &Message) -> Result<PlatformAlert> {
        let sender = self.platform_ebrid(&m.owner_region)?.as_str().to_string();
        let (mut languages, mut geometries, mut area_desc) = (Vec::new(), Vec::<Geometry>::new(), Vec::new());
        if let Some((row, xml)) = self.store.cap_alert_for_message(m.id).await? {
            languages = self
                .store
                .cap_infos(row.id)
                .await?
                .into_iter()
                .map(|i| LangText {
                    language: i.language,
                    event: i.event,
                    headline: i.headline,
                    description: i.description,
                    instruction: i.instruction,
                    sender_name: i.sender_name,
                })
                .collect();
            if let Ok(a) = cuncun_cap::parse_alert(&xml) {
                let mapped = cuncun_cap::map_alert(&a.0, &|_| true);
                geometries = mapped.geometries;
                area_desc = mapped.area_desc;
            }
        }
        if languages.is_empty() {
            let event = EVENT_TYPES.iter().find(|e| e.0 == m.event_type).map(|e| e.1.to_string()).unwrap_or_else(|| m.event_type.clone());
            languages.push(LangText {
                language: if m.lang == "eng" { "en-US".into() } else { "zh-CN".into() },
                event,
                headline: m.title.clone(),
                description: m.body.clone(),
                instruction: String::new(),
                sender_name: String::new(),
            });
        }
        let mut references = Vec::new();
        if let Some(rel) = &m.related_ebmid {
            if let Some(orig) = self.store.message_by_ebmid(rel).await? {
                references.push(Reference { sender: sender.clone(), identifier: orig.ebmid, sent: cuncun_cap::write::cap_time(orig.created_at_ms) });
            }
        }
        Ok(PlatformAlert {
            identifier: m.ebmid.clone(),
            sender,
            sent_ms: Some(m.created_at_ms),
            msg_type: if references.is_empty() { "Alert".into() } else { "Update".into() },
            status: if m.drill { "Exercise".into() } else { "Actual".into() },
            is_drill: m.drill,
            severity: if (1..=4).contains(&m.severity) { m.severity } else { 4 },
            severity_rule: String::new(),
            event_type: m.event_type.clone(),
            event_rule: String::new(),
            title: m.title.clone(),
            text: m.body.clone(),
            languages,
            regions: m.areas.clone(),
            unknown_geocodes: Vec::new(),
            foreign_geocodes: Vec::new(),
            geometries,
            area_desc,
            references,
            effective_ms: Some(m.start_ms),
            onset_ms: None,
            expires_ms: Some(m.end_ms),
            resources: Vec::new(),
            warnings: Vec::new(),
        })
    }

    /// A message as CAP, for a reader who may export it (its owning level).
    pub async fn export_cap(&self, p: &Principal, id: i64) -> Result<PlatformAlert> {
        let m = self.exportable_message(p, id).await?;
        self.cap_alert_of(&m).await
    }

    /// A warning in force, as CAP, for anyone (the public alert documents).
    pub async fn public_warning(&self, id: i64) -> Result<PlatformAlert> {
        let not_found = || Error::NotFound("no active warning with this id".into());
        let m = self.store.message(id).await?.ok_or_else(not_found)?;
        if !publicly_active(&m, cuncun_domain::time::now_ms()) {
            return Err(not_found());
        }
        self.cap_alert_of(&m).await
    }

    /// Every warning in force with its CAP form, for anyone (the public Atom feed).
    pub async fn public_warnings(&self) -> Result<Vec<(Message, PlatformAlert)>> {
        let now = cuncun_domain::time::now_ms();
        let mut out = Vec::new();
        for m in self.store.active_messages().await?.into_iter().filter(|m| publicly_active(m, now)) {
            let a = self.cap_alert_of(&m).await?;
            out.push((m, a));
        }
        Ok(out)
    }
}
