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
use cuncun_app::cap::{CapRefusal, CapSource, CertChange, may_import_cap};
use cuncun_app::records::cap::{CapAlertRow, CapDepartment, CapImported};
use cuncun_app::records::eb::Message;
use cuncun_app::Principal;
use cuncun_cap::{Issue, Level, PlatformAlert};
use serde_json::{Value, json};
use std::sync::Arc;

pub use cuncun_app::cap::MAX_CAP_BYTES;
// The feed poller is a job, not a page; kept beside the pages' names for existing callers.
pub use crate::cap_feed::{FeedItem, FeedSource, feed_items, poll_feed, run_feed_poller};

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
// The decisions (which department, what it may warn, what the alert becomes) are the
// application layer's (`App::import_cap`); here a refusal becomes a response.

pub fn refusal_status(r: &CapRefusal) -> StatusCode {
    match r {
        CapRefusal::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CapRefusal::Forbidden(_) => StatusCode::FORBIDDEN,
        CapRefusal::Other(e) => AppError::from(e.clone()).status(),
    }
}

fn refusal_json(r: &CapRefusal) -> Response {
    let (code, message, signature) = match r {
        CapRefusal::Invalid { issues, signature } => (
            "invalid",
            format!("the alert is refused: {} error(s)", issues.iter().filter(|i| i.level == Level::Error).count()),
            Some(signature),
        ),
        CapRefusal::Forbidden(m) => ("forbidden", m.clone(), None),
        CapRefusal::Other(e) => return AppError::from(e.clone()).into_response(),
    };
    let body = json!({
        "error": { "code": code, "message": message },
        "issues": r.issues(),
        "signature": signature,
    });
    (refusal_status(r), Json(body)).into_response()
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
    let p = match c.principal(&state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match state.app().import_cap(&p, &body, CapSource::Api).await {
        Ok(r) => {
            let status = if r.created { StatusCode::CREATED } else { StatusCode::OK };
            (status, Json(imported_json(&r))).into_response()
        }
        Err(e) => refusal_json(&e),
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

async fn cap_view(
    state: &AppState,
    c: &Caller,
    p: &Principal,
    result: Option<CapImported>,
    refused: Vec<Issue>,
    signature: String,
) -> Result<Response, AppError> {
    let alerts = state.app().cap_alerts(p, 100).await?;
    render(&CapPage {
        c: Chrome::of(c, "/eb/cap"),
        x: Tx(c.lang),
        can_import: may_import_cap(p),
        alerts,
        result,
        refused,
        signature,
    })
}

/// A multipart form's fields by name (the last of a repeated name wins).
async fn form_fields(mp: &mut axum::extract::Multipart) -> Result<std::collections::HashMap<String, Vec<u8>>, AppError> {
    let mut out = std::collections::HashMap::new();
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
        let name = field.name().unwrap_or("").to_string();
        let bytes = field.bytes().await.map_err(AppError::upload)?;
        out.insert(name, bytes.to_vec());
    }
    Ok(out)
}

async fn cap_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    cap_view(&state, &c, &p, None, Vec::new(), String::new()).await
}

async fn upload(State(state): State<AppState>, c: Caller, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let mut fields = form_fields(&mut mp).await?;
    c.check_csrf(&String::from_utf8_lossy(&fields.remove("csrf").unwrap_or_default()))?;
    let file = fields.remove("file").unwrap_or_default();
    if file.is_empty() {
        return Err(AppError::BadRequest("file: choose a CAP XML file".into()));
    }
    let p = c.principal(&state).await?;
    match state.app().import_cap(&p, &file, CapSource::Upload).await {
        Ok(r) => cap_view(&state, &c, &p, Some(r), Vec::new(), String::new()).await,
        Err(CapRefusal::Other(e)) => Err(e.into()),
        Err(e) => {
            let sig = match &e {
                CapRefusal::Invalid { signature, .. } => signature.describe(),
                _ => String::new(),
            };
            let mut res = cap_view(&state, &c, &p, None, e.issues(), sig).await?;
            *res.status_mut() = refusal_status(&e);
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
    let rows = state.app().cap_departments(&c.principal(state).await?).await?;
    render(&DepartmentsPage { c: Chrome::of(c, "/eb/cap/departments"), x: Tx(c.lang), rows, error })
}

async fn departments_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    departments_view(&state, &c, String::new()).await
}

async fn set_department(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let mut fields = form_fields(&mut mp).await?;
    c.check_csrf(&String::from_utf8_lossy(&fields.remove("csrf").unwrap_or_default()))?;
    let cert = fields.remove("cert").unwrap_or_default();
    let change = match (cert.is_empty(), fields.contains_key("remove_cert")) {
        (false, _) => CertChange::Set(&cert),
        (true, true) => CertChange::Remove,
        (true, false) => CertChange::Keep,
    };
    let p = c.principal(&state).await?;
    match state.app().set_cap_department(&p, id, change, fields.contains_key("accept_unsigned")).await.map_err(AppError::from) {
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

/// A platform alert as CAP 1.2 XML, signed when a signing key is configured.
fn signed_xml(state: &AppState, p: &PlatformAlert) -> Result<String, AppError> {
    let xml = cuncun_cap::write_alert(&cuncun_cap::alert_from_platform(p));
    match &state.cap_signer {
        Some(s) => s.sign(&xml).map_err(|e| AppError::Internal(format!("signing CAP: {e}"))),
        None => Ok(xml),
    }
}

/// The message as CAP 1.2 XML, signed when a signing key is configured.
pub async fn message_cap_xml(state: &AppState, m: &Message) -> Result<String, AppError> {
    signed_xml(state, &state.app().cap_alert_of(m).await?)
}

fn cap_response(xml: String) -> Response {
    ([(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")], xml).into_response()
}

async fn api_export(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Response, AppError> {
    let id = id.parse::<i64>().map_err(|_| AppError::BadRequest(format!("path parameter id: {id:?} is not an integer")))?;
    let alert = state.app().export_cap(&c.principal(&state).await?, id).await?;
    Ok(cap_response(signed_xml(&state, &alert)?))
}

async fn public_alert(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, AppError> {
    let id = id.trim_end_matches(".xml").parse::<i64>().map_err(|_| AppError::NotFound("no active warning with this id".into()))?;
    Ok(cap_response(signed_xml(&state, &state.app().public_warning(id).await?)?))
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
    let now = cuncun_domain::time::now_ms();
    let base = base_url(&headers);
    let feed_url = format!("{base}/cap/feed.atom");
    let mut alerts = Vec::new();
    let mut ids = Vec::new();
    for (m, a) in state.app().public_warnings().await? {
        alerts.push(cuncun_cap::alert_from_platform(&a));
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

/// Shared so the signing key is read once at startup.
pub fn load_signer(key_path: &str, cert_path: Option<&str>) -> anyhow::Result<Arc<cuncun_cap::RsaSigner>> {
    let key = std::fs::read_to_string(key_path).map_err(|e| anyhow::anyhow!("cap.signing_key {key_path:?}: {e}"))?;
    let cert = match cert_path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cap.signing_cert {p:?}: {e}"))?),
        None => None,
    };
    Ok(Arc::new(cuncun_cap::RsaSigner::from_pem(&key, cert.as_deref()).map_err(|e| anyhow::anyhow!("cap.signing_key {key_path:?}: {e}"))?))
}
