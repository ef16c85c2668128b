//! CAP 1.2 in the platform: import (POST /api/v1/cap, the upload page /eb/cap and a feed poller)
//! through the same check as `cuncun cap check`, the sending departments' trusted certificates
//! and unsigned policy (/eb/cap/departments, administrators), and export (a message as CAP XML,
//! an Atom feed of active messages at /cap/feed.atom). See docs/CAP.md, "In the platform".

use crate::i18n::Lang;
use crate::pages::{Chrome, render};
use crate::session::Caller;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cuncun_cap::map::LangText;
use cuncun_cap::{CheckOptions, Geometry, Issue, Level, PlatformAlert, Reference, SignatureStatus, TrustedKey};
use cuncun_domain::eb::{EVENT_TYPES, Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::model::User;
use cuncun_domain::{RegionCode, Role};
use cuncun_store::cap::{CapAlertRow, CapDepartment, CapImport, CapImported, CapInfoRow};
use cuncun_store::eb::{Message, NewMessage};
use cuncun_store::{Actor, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Largest CAP document accepted (a CAP alert is a few kB; resources are referenced, not embedded).
pub const MAX_CAP_BYTES: usize = 1 << 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/eb/cap", get(cap_page).post(upload))
        .route("/eb/cap/departments", get(departments_page))
        .route("/eb/cap/departments/{id}", post(set_department))
        .route("/cap/feed.atom", get(feed))
        .route("/cap/alerts/{id}", get(public_alert))
}

/// Under /api/v1.
pub fn api_routes() -> Router<AppState> {
    Router::new().route("/cap", post(api_import)).route("/eb/messages/{id}/cap", get(api_export))
}

// ---- interface text (zh first) ----

const TEXT: &[(&str, &str, &str)] = &[
    ("title", "CAP 预警导入", "CAP alert import"),
    ("upload", "上传 CAP 文件", "Upload a CAP file"),
    ("file", "CAP 1.2 XML 文件", "CAP 1.2 XML file"),
    ("submit", "导入并提交审核", "Import and submit for review"),
    ("only_senders", "只有部门发布账号可以导入 CAP 预警。", "Only department sender accounts may import CAP alerts."),
    ("recent", "最近收到的 CAP 预警", "CAP alerts received recently"),
    ("identifier", "标识", "Identifier"),
    ("sender", "发送方", "Sender"),
    ("sent", "发送时间", "Sent"),
    ("type", "类型", "Type"),
    ("signature", "签名", "Signature"),
    ("source", "来源", "Source"),
    ("message", "消息", "Message"),
    ("outcome", "处理结果", "Outcome"),
    ("refused", "预警被拒收，未写入任何内容", "The alert was refused; nothing was written"),
    ("accepted", "预警已导入并提交审核", "The alert was imported and submitted for review"),
    ("duplicate", "该预警此前已导入（同一发送方和标识），未重复写入", "This alert was imported before (same sender and identifier); nothing new was written"),
    ("path", "位置", "Where"),
    ("problem", "问题", "Problem"),
    ("departments", "发布部门（CAP）", "Sending departments (CAP)"),
    ("account", "账号", "Account"),
    ("region", "区域", "Region"),
    ("cert", "受信任的签名证书", "Trusted signing certificate"),
    ("none", "无", "none"),
    ("unsigned", "接受未签名预警", "Accept unsigned alerts"),
    ("remove_cert", "删除证书", "Remove certificate"),
    ("save", "保存", "Save"),
    ("feed", "Atom 订阅（当前有效预警）", "Atom feed (active warnings)"),
    ("cancelled", "已取消", "Cancelled"),
    ("languages", "语言", "Languages"),
];

pub struct Tx(pub Lang);

impl Tx {
    pub fn s(&self, key: &str) -> &'static str {
        TEXT.iter().find(|t| t.0 == key).map(|t| if self.0 == Lang::Zh { t.1 } else { t.2 }).unwrap_or("?")
    }
}

// ---- import ----

/// Why an alert was refused.
#[derive(Debug)]
pub enum Refusal {
    /// The check failed: every located issue (422).
    Invalid { issues: Vec<Issue>, signature: SignatureStatus },
    /// Outside the department's region or not a department (403).
    Forbidden(String),
    Other(AppError),
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Refusal::Other(e)
    }
}

impl From<cuncun_store::StoreError> for Refusal {
    fn from(e: cuncun_store::StoreError) -> Self {
        Refusal::Other(e.into())
    }
}

fn error_issue(path: &str, message: String) -> Issue {
    Issue { level: Level::Error, path: path.into(), message }
}

impl Refusal {
    fn invalid(path: &str, message: String) -> Refusal {
        Refusal::Invalid { issues: vec![error_issue(path, message)], signature: SignatureStatus::Unsigned }
    }
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Other(e) => e.status(),
        }
    }
    /// The issues to show (a forbidden area is one issue too).
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            Refusal::Invalid { issues, .. } => issues.clone(),
            Refusal::Forbidden(m) => vec![error_issue("/alert/info/area", m.clone())],
            Refusal::Other(e) => vec![error_issue("/alert", e.message())],
        }
    }
    fn json(&self) -> Response {
        let (code, message, signature) = match self {
            Refusal::Invalid { issues, signature } => (
                "invalid",
                format!("the alert is refused: {} error(s)", issues.iter().filter(|i| i.level == Level::Error).count()),
                Some(signature),
            ),
            Refusal::Forbidden(m) => ("forbidden", m.clone(), None),
            Refusal::Other(e) => return e.clone().into_response(),
        };
        let body = json!({
            "error": { "code": code, "message": message },
            "issues": self.issues(),
            "signature": signature,
        });
        (self.status(), Json(body)).into_response()
    }
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

/// Checks a CAP document for `dept` (a department-sender account) exactly as `cuncun cap check`
/// does with the department's certificate and unsigned policy, maps it to a message inside the
/// department's region and stores it (submitted for approval), following Update and Cancel
/// references. Shared by the API, the upload page and the feed poller.
pub async fn import_checked(state: &AppState, dept: &User, actor: &Actor, bytes: &[u8], source: &str) -> Result<CapImported, Refusal> {
    if dept.role != Role::DepartmentSender {
        return Err(Refusal::Forbidden("only a department sender account may import CAP alerts".into()));
    }
    if bytes.len() > MAX_CAP_BYTES {
        return Err(Refusal::invalid("/alert", format!("the document is larger than {} KiB", MAX_CAP_BYTES >> 10)));
    }
    let settings = state
        .store
        .cap_department(dept.id)
        .await?
        .ok_or_else(|| Refusal::Forbidden("only a department sender account may import CAP alerts".into()))?;
    let trusted = match &settings.cert_pem {
        Some(pem) => Some(TrustedKey::from_bytes(pem.as_bytes()).map_err(|e| {
            Refusal::Other(AppError::Internal(format!("department {}: stored certificate unreadable: {e}", dept.username)))
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
        return Err(Refusal::Invalid { issues, signature: report.signature });
    };
    let now = now_ms();
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
        if !dept.region_code.contains(r) {
            outside.push(r.short().to_string());
        } else if state.store.region(r).await?.is_none() {
            issues.push(error_issue("/alert/info/area/geocode", format!("region code {} is not known to this platform", r.short())));
        }
    }
    if issues.iter().any(|i| i.level == Level::Error) {
        return Err(Refusal::Invalid { issues, signature: report.signature });
    }
    if !outside.is_empty() {
        return Err(Refusal::Forbidden(format!(
            "area {} is outside the department's region {}; a department may only warn its own region",
            outside.join(", "),
            dept.region_code.short()
        )));
    }
    let message = if mapped.is_cancel() { None } else { Some(new_message(state, dept, mapped, now).await?) };
    if let Some(m) = &message {
        if m.areas.is_empty() && m.terminals.is_empty() {
            return Err(Refusal::invalid(
                "/alert/info[1]/area",
                format!("the alert's areas contain no region or terminal of the department's region {}", dept.region_code.short()),
            ));
        }
    }
    let imp = CapImport {
        sender: alert.sender.clone(),
        identifier: alert.identifier.clone(),
        sent: alert.sent.clone(),
        msg_type: mapped.msg_type.clone(),
        status: mapped.status.clone(),
        refs: alert.references.clone().unwrap_or_default(),
        references: mapped.references.iter().map(|r| (r.sender.clone(), r.identifier.clone())).collect(),
        department_id: dept.id,
        signature: report.signature.describe(),
        source: source.into(),
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
        principal: state.app().principal_of(dept, cuncun_app::Via::Api).await.map_err(AppError::from)?,
        settings: state.workflow.clone(),
    };
    let out = state.store.import_cap(&imp, actor).await.map_err(|e| match e {
        cuncun_store::StoreError::Invalid(m) => Refusal::invalid("/alert/references", m),
        cuncun_store::StoreError::Denied(cuncun_domain::authz::Denied::Forbidden(m)) => Refusal::Forbidden(m),
        other => other.into(),
    })?;
    if let Some(eb) = &state.eb {
        eb.kick();
    }
    Ok(out)
}

/// This platform's resource code, the sender of what it writes.
fn platform_ebrid(state: &AppState, fallback: &RegionCode) -> Result<Ebrid, AppError> {
    let region = state.platform_region.clone().unwrap_or_else(|| fallback.clone());
    Ebrid::generate(&region, ResourceKind::Platform, 1).map_err(|e| AppError::Internal(e.to_string()))
}

async fn new_message(state: &AppState, dept: &User, p: &PlatformAlert, now: i64) -> Result<NewMessage, Refusal> {
    // Terminals with a position inside the polygons and circles, within the department's region.
    let mut terminals = Vec::new();
    if !p.geometries.is_empty() {
        let rows = state.store.resources_in(&dept.region_code, &[], false, 1_000_000, 0).await?;
        let points: Vec<(String, f64, f64)> = rows
            .iter()
            .filter(|r| r.resource.kind.is_terminal())
            .filter_map(|r| Some((r.resource.ebrid.clone(), r.resource.lon?, r.resource.lat?)))
            .collect();
        for code in p.select_inside(&points) {
            terminals.push(Ebrid::parse(&code).map_err(|e| AppError::Internal(e.to_string()))?);
        }
    }
    let start_ms = p.effective_ms.unwrap_or(now).max(now);
    let end_ms = p.expires_ms.unwrap_or(start_ms + 24 * 3_600_000);
    let lang = p.languages.iter().find(|l| l.language.to_ascii_lowercase().starts_with("zh")).or(p.languages.first());
    Ok(NewMessage {
        platform: platform_ebrid(state, &dept.region_code)?,
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
        owner_region: dept.region_code.clone(),
        author_id: Some(dept.id),
    })
}

fn imported_json(r: &CapImported) -> Value {
    json!({
        "created": r.created,
        "alert": r.alert,
        "message": r.message,
        "cancelled": r.cancelled.iter().map(|m| m.ebmid.clone()).collect::<Vec<_>>(),
    })
}

/// The body is the CAP XML document.
async fn api_import(State(state): State<AppState>, c: Caller, body: axum::body::Bytes) -> Response {
    match import_checked(&state, &c.user, &c.actor(), &body, "api").await {
        Ok(r) => {
            let status = if r.created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(imported_json(&r))).into_response()
        }
        Err(e) => e.json(),
    }
}

// ---- pages ----

#[derive(Template)]
#[template(path = "cap/import.html")]
struct CapPage {
    c: Chrome,
    x: Tx,
    can_import: bool,
    alerts: Vec<CapAlertRow>,
    result: Option<CapImported>,
    refused: Vec<Issue>,
    signature: String,
}

async fn cap_view(state: &AppState, c: &Caller, result: Option<CapImported>, refused: Vec<Issue>, signature: String) -> Result<Response, AppError> {
    let alerts = state.store.cap_alerts_recent(&c.user.region_code, 100).await?;
    render(&CapPage {
        c: Chrome::of(c, "/eb/cap"),
        x: Tx(c.lang),
        can_import: c.user.role == Role::DepartmentSender,
        alerts,
        result,
        refused,
        signature,
    })
}

/// A multipart form's fields by name (the last of a repeated name wins).
async fn form_fields(mp: &mut axum::extract::Multipart) -> Result<std::collections::HashMap<String, Vec<u8>>, AppError> {
    let mut out = std::collections::HashMap::new();
    while let Some(field) = mp.next_field().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))? {
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))?;
        out.insert(name, bytes.to_vec());
    }
    Ok(out)
}

async fn cap_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    cap_view(&state, &c, None, Vec::new(), String::new()).await
}

async fn upload(State(state): State<AppState>, c: Caller, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let mut fields = form_fields(&mut mp).await?;
    c.check_csrf(&String::from_utf8_lossy(&fields.remove("csrf").unwrap_or_default()))?;
    let file = fields.remove("file").unwrap_or_default();
    if file.is_empty() {
        return Err(AppError::BadRequest("file: choose a CAP XML file".into()));
    }
    match import_checked(&state, &c.user, &c.actor(), &file, "upload").await {
        Ok(r) => cap_view(&state, &c, Some(r), Vec::new(), String::new()).await,
        Err(Refusal::Other(e)) => Err(e),
        Err(e) => {
            let sig = match &e {
                Refusal::Invalid { signature, .. } => signature.describe(),
                _ => String::new(),
            };
            let mut res = cap_view(&state, &c, None, e.issues(), sig).await?;
            *res.status_mut() = e.status();
            Ok(res)
        }
    }
}

#[derive(Template)]
#[template(path = "cap/departments.html")]
struct DepartmentsPage {
    c: Chrome,
    x: Tx,
    rows: Vec<CapDepartment>,
    error: String,
}

async fn departments_view(state: &AppState, c: &Caller, error: String) -> Result<Response, AppError> {
    c.ensure_admin()?;
    let rows = state.store.cap_departments(&c.user.region_code).await?;
    render(&DepartmentsPage { c: Chrome::of(c, "/eb/cap/departments"), x: Tx(c.lang), rows, error })
}

async fn departments_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    departments_view(&state, &c, String::new()).await
}

/// Sets a department's certificate and unsigned policy (administrators of its region).
pub async fn set_department_checked(
    state: &AppState,
    c: &Caller,
    user_id: i64,
    cert: Option<&[u8]>,
    remove_cert: bool,
    accept_unsigned: bool,
) -> Result<CapDepartment, AppError> {
    c.ensure_admin()?;
    let d = state.store.cap_department(user_id).await?.ok_or_else(|| AppError::NotFound(format!("department sender {user_id}")))?;
    c.ensure_scope(&d.region_code)?;
    let pem = match cert {
        Some(bytes) if !bytes.is_empty() => {
            let text = std::str::from_utf8(bytes).map_err(|_| AppError::BadRequest("certificate: expected a PEM text file".into()))?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(AppError::BadRequest("certificate: expected a PEM certificate (-----BEGIN CERTIFICATE-----)".into()));
            }
            TrustedKey::from_bytes(bytes).map_err(|e| AppError::BadRequest(format!("certificate: {e}")))?;
            Some(text.to_string())
        }
        _ if remove_cert => None,
        _ => d.cert_pem.clone(),
    };
    Ok(state.store.set_cap_department(user_id, pem.as_deref(), accept_unsigned, &c.actor()).await?)
}

async fn set_department(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let mut fields = form_fields(&mut mp).await?;
    c.check_csrf(&String::from_utf8_lossy(&fields.remove("csrf").unwrap_or_default()))?;
    let cert = fields.remove("cert").unwrap_or_default();
    let (remove, unsigned) = (fields.contains_key("remove_cert"), fields.contains_key("accept_unsigned"));
    match set_department_checked(&state, &c, id, Some(&cert), remove, unsigned).await {
        Ok(_) => Ok(axum::response::Redirect::to("/eb/cap/departments").into_response()),
        Err(AppError::BadRequest(e)) => {
            let mut res = departments_view(&state, &c, e).await?;
            *res.status_mut() = StatusCode::BAD_REQUEST;
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

// ---- export ----

/// A message as the platform alert cuncun-cap writes: CAP-imported messages keep every info
/// block's texts and their polygons and circles.
pub async fn platform_alert_of(state: &AppState, m: &Message) -> Result<PlatformAlert, AppError> {
    let sender = platform_ebrid(state, &m.owner_region)?.as_str().to_string();
    let (mut languages, mut geometries, mut area_desc) = (Vec::new(), Vec::<Geometry>::new(), Vec::new());
    if let Some((row, xml)) = state.store.cap_alert_for_message(m.id).await? {
        languages = state
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
        if let Some(orig) = state.store.message_by_ebmid(rel).await? {
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

/// The message as CAP 1.2 XML, signed when a signing key is configured.
pub async fn message_cap_xml(state: &AppState, m: &Message) -> Result<String, AppError> {
    let p = platform_alert_of(state, m).await?;
    let xml = cuncun_cap::write_alert(&cuncun_cap::alert_from_platform(&p));
    match &state.cap_signer {
        Some(s) => s.sign(&xml).map_err(|e| AppError::Internal(format!("signing CAP: {e}"))),
        None => Ok(xml),
    }
}

fn cap_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")], xml).into_response()
}

async fn api_export(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Response, AppError> {
    let id = id.parse::<i64>().map_err(|_| AppError::BadRequest(format!("path parameter id: {id:?} is not an integer")))?;
    let m = state.app().exportable_message(&c.principal(&state).await?, id).await?;
    Ok(cap_response(message_cap_xml(&state, &m).await?))
}

/// In force for the public: approved or dispatching, not a drill, not expired.
fn publicly_active(m: &Message, now: i64) -> bool {
    matches!(m.status, MessageStatus::Approved | MessageStatus::Dispatching) && !m.drill && m.end_ms > now
}

async fn public_alert(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, AppError> {
    let not_found = || AppError::NotFound("no active warning with this id".into());
    let id = id.trim_end_matches(".xml").parse::<i64>().map_err(|_| not_found())?;
    let m = state.store.message(id).await?.ok_or_else(not_found)?;
    if !publicly_active(&m, now_ms()) {
        return Err(not_found());
    }
    Ok(cap_response(message_cap_xml(&state, &m).await?))
}

fn base_url(headers: &HeaderMap) -> String {
    // Only a plain host[:port] goes into the feed's links.
    let plain = |h: &&str| !h.is_empty() && h.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | ':' | '[' | ']'));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(plain).unwrap_or("localhost");
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).filter(|p| *p == "https").unwrap_or("http");
    format!("{proto}://{host}")
}

/// The Atom feed of active warnings; each entry carries the alert inline and links to its CAP XML.
async fn feed(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let now = now_ms();
    let base = base_url(&headers);
    let feed_url = format!("{base}/cap/feed.atom");
    let mut alerts = Vec::new();
    let mut ids = Vec::new();
    for m in state.store.active_messages().await?.into_iter().filter(|m| publicly_active(m, now)) {
        alerts.push(cuncun_cap::alert_from_platform(&platform_alert_of(&state, &m).await?));
        ids.push((m.ebmid.clone(), m.id));
    }
    let refs: Vec<&cuncun_cap::Alert> = alerts.iter().collect();
    let mut xml = cuncun_cap::atom_feed(&feed_url, "应急广播预警 Emergency warnings", now, &refs);
    // cuncun-cap's feed carries the alert inline; add each entry's link to its own document.
    for (ebmid, id) in ids {
        let entry_id = format!("<id>{feed_url}#{ebmid}</id>\n");
        let link = format!("{entry_id}    <link rel=\"alternate\" type=\"application/cap+xml\" href=\"{base}/cap/alerts/{id}\"/>\n");
        xml = xml.replacen(&entry_id, &link, 1);
    }
    Ok(([(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")], xml).into_response())
}

// ---- feed poller ----

/// A CAP Atom/RSS feed polled for one department (its account's username).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    pub url: String,
    pub department: String,
}

/// What a feed entry offers: the CAP document inline, or a link to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedItem {
    Inline { id: String, xml: String },
    Link { id: String, url: String },
}

impl FeedItem {
    pub fn id(&self) -> &str {
        match self {
            FeedItem::Inline { id, .. } | FeedItem::Link { id, .. } => id,
        }
    }
}

/// The entries of an Atom feed or RSS 2.0 channel. An inline alert without a link is rewritten
/// from its parsed form (so an inline signature does not survive; link to signed alerts).
pub fn feed_items(text: &str) -> Result<Vec<FeedItem>, String> {
    use cuncun_cap::xml::{Element, Node};
    let doc = cuncun_cap::xml::parse(text).map_err(|e| format!("line {}: {}", e.line, e.message))?;
    let child = |e: &Element, name: &str| e.elements().find(|c| c.local == name).map(|c| c.text().trim().to_string());
    let mut out = Vec::new();
    let entries: Vec<&Element> = match doc.root.local.as_str() {
        "feed" => doc.root.elements().filter(|e| e.local == "entry").collect(),
        "rss" => doc.root.elements().filter(|e| e.local == "channel").flat_map(|c| c.elements().filter(|e| e.local == "item")).collect(),
        other => return Err(format!("expected an Atom <feed> or RSS <rss> document, found <{other}>")),
    };
    for e in entries {
        let cap_link = e
            .elements()
            .filter(|l| l.local == "link")
            .find(|l| l.attr("type").is_some_and(|t| t.contains("cap")))
            .or_else(|| e.elements().find(|l| l.local == "link" && l.attr("rel").is_none_or(|r| r == "alternate")))
            .and_then(|l| l.attr("href").map(str::to_string).or_else(|| Some(l.text().trim().to_string())))
            .filter(|u| !u.is_empty());
        let inline = e
            .elements()
            .find(|c| c.local == "content")
            .and_then(|c| c.children.iter().find_map(|n| match n { Node::Element(a) if a.local == "alert" => Some(a.clone()), _ => None }));
        let id = child(e, "id").or_else(|| child(e, "guid")).or_else(|| cap_link.clone()).unwrap_or_default();
        if let Some(url) = cap_link.filter(|_| inline.is_none()) {
            out.push(FeedItem::Link { id, url });
        } else if let Some(a) = inline {
            let d = cuncun_cap::xml::Document { before: Vec::new(), root: a, after: Vec::new() };
            let (alert, _) = cuncun_cap::parse::alert_from_document(&d);
            let id = if id.is_empty() { alert.identifier.clone() } else { id };
            out.push(FeedItem::Inline { id, xml: cuncun_cap::write_alert(&alert) });
        }
    }
    Ok(out)
}

/// The `cap_feed_poller` job (registered by `cuncun serve` when `cap.feeds` is set): every `every`
/// (at least 5 s) each feed is polled; each entry is fetched and imported once per run of the job
/// (by entry id; the import itself is idempotent per CAP identifier). Refusals are logged and not
/// retried; a feed that cannot be read is the job's last error until a round succeeds.
pub async fn run_feed_poller(ctx: cuncun_app::jobs::JobCtx, state: AppState, feeds: Vec<FeedSource>, every: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
    let seen = tokio::sync::Mutex::new(std::collections::HashSet::new());
    let (state, client, feeds, seen) = (&state, &client, &feeds, &seen);
    cuncun_app::jobs::every(&ctx, every.max(Duration::from_secs(5)), move || async move {
        let mut seen = seen.lock().await;
        let mut failed = Vec::new();
        for f in feeds {
            if let Err(e) = poll_feed(state, client, f, &mut seen).await {
                tracing::warn!(feed = %f.url, error = %e, "CAP feed poll failed");
                failed.push(format!("{}: {e}", f.url));
            }
        }
        anyhow::ensure!(failed.is_empty(), "CAP feeds not read: {}", failed.join("; "));
        Ok(())
    })
    .await
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let r = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let b = r.bytes().await.map_err(|e| e.to_string())?;
    if b.len() > 16 * MAX_CAP_BYTES {
        return Err("response too large".into());
    }
    Ok(b.to_vec())
}

/// One poll of one feed; returns how many alerts were newly imported.
pub async fn poll_feed(
    state: &AppState,
    client: &reqwest::Client,
    f: &FeedSource,
    seen: &mut std::collections::HashSet<(String, String)>,
) -> Result<usize, String> {
    let dept = match state.store.user_credentials(&f.department).await.map_err(|e| e.to_string())? {
        Some((u, _)) if !u.disabled => u,
        _ => return Err(format!("cap.feeds: department account {:?} does not exist or is disabled", f.department)),
    };
    let body = fetch(client, &f.url).await?;
    let text = String::from_utf8(body).map_err(|_| "the feed is not UTF-8".to_string())?;
    let mut imported = 0;
    for item in feed_items(&text)? {
        let key = (f.url.clone(), item.id().to_string());
        if seen.contains(&key) {
            continue;
        }
        let bytes = match &item {
            FeedItem::Inline { xml, .. } => xml.clone().into_bytes(),
            FeedItem::Link { url, .. } => match fetch(client, url).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(feed = %f.url, entry = %url, error = %e, "CAP feed entry not fetched; retried next poll");
                    continue;
                }
            },
        };
        let actor = Actor(format!("feed:{}:{}", dept.username, f.url));
        match import_checked(state, &dept, &actor, &bytes, &format!("feed:{}", f.url)).await {
            Ok(r) => imported += usize::from(r.created),
            Err(Refusal::Other(e)) => return Err(e.message()),
            Err(e) => {
                let why: Vec<String> = e.issues().iter().map(|i| i.to_string()).collect();
                tracing::warn!(feed = %f.url, entry = %item.id(), issues = %why.join("; "), "CAP feed entry refused");
            }
        }
        seen.insert(key);
    }
    Ok(imported)
}

/// Shared so the signing key is read once at startup.
pub fn load_signer(key_path: &str, cert_path: Option<&str>) -> anyhow::Result<Arc<cuncun_cap::RsaSigner>> {
    let key = std::fs::read_to_string(key_path).map_err(|e| anyhow::anyhow!("cap.signing_key {key_path:?}: {e}"))?;
    let cert = match cert_path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cap.signing_cert {p:?}: {e}"))?),
        None => None,
    };
    Ok(Arc::new(cuncun_cap::RsaSigner::from_pem(&key, cert.as_deref()).map_err(|e| anyhow::anyhow!("cap.signing_key {key_path:?}: {e}"))?))
}
