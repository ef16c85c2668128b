//! Emergency broadcast pages: terminals with their status, registration, composing, the review
//! workflow, and each message's live delivery view. Handlers parse, run the application layer's
//! command (which checks role and region) and render.

use crate::i18n::Lang;
use crate::pages::{Chrome, render};
use crate::session::Caller;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuncun_app::messages::{ComposeInput, may_compose};
use cuncun_app::records::eb::{BroadcastLogRow, Message, NewResource, ResourceWithStatus};
use cuncun_app::terminals::{DeviceInput, DeviceKeys, RegionRate, may_edit_terminals};
use cuncun_app::Principal;
use cuncun_domain::eb::{self, EVENT_TYPES, Ebrid, MessageStatus, RESOURCE_TYPES, ResourceKind};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/eb/terminals", get(terminals_page).post(register))
        .route("/eb/terminals/template.xlsx", get(template_xlsx))
        .route("/eb/terminals/export.xlsx", get(export_xlsx))
        .route("/eb/terminals/import", post(import_xlsx))
        .route("/downloads/{token}", get(download))
        .route("/eb/terminals/{id}", get(terminal_page))
        .route("/eb/terminals/{id}/retire", post(retire))
        .route("/eb/terminals/{id}/secret", post(reset_secret))
        .route("/eb/messages", get(messages_page).post(compose))
        .route("/eb/messages/new", get(compose_page))
        .route("/eb/messages/{id}", get(message_page))
        .route("/eb/messages/{id}/edit", get(edit_page).post(edit))
        .route("/eb/messages/{id}/live", get(live))
        .route("/eb/messages/{id}/audio", post(upload_audio))
        .route("/eb/messages/{id}/undelivered.csv", get(undelivered_csv))
        .route("/eb/messages/{id}/{action}", post(act))
        .route("/static/live.js", get(live_js))
        .route("/eb/online", get(online_page))
}


impl Chrome {
    pub fn kind(&self, k: &ResourceKind) -> &'static str {
        if self.lang == Lang::Zh { k.name_zh() } else { k.name_en() }
    }
    pub fn status(&self, s: &MessageStatus) -> &'static str {
        self.lang.s(&format!("status.{}", s.key()))
    }
    pub fn severity(&self, s: &u8) -> String {
        let (zh, en) = eb::severity_colour(*s);
        if self.lang == Lang::Zh { format!("{s} {zh}") } else { format!("{s} {en}") }
    }
    pub fn event(&self, code: &str) -> String {
        match EVENT_TYPES.iter().find(|e| e.0 == code) {
            Some(e) => format!("{} {}", e.0, if self.lang == Lang::Zh { e.1 } else { e.2 }),
            None => code.to_string(),
        }
    }
    pub fn opt_time(&self, ms: &Option<i64>) -> String {
        ms.map(|m| self.time(&m)).unwrap_or_default()
    }
}

// ---- terminals ----
// Handlers parse, run the application layer's command for the caller's principal, and render.

/// Device secrets made by the terminal service's crate; every change reaches its credential
/// cache (when the service runs).
pub(crate) struct EbKeys(Option<std::sync::Arc<cuncun_eb::EbHandle>>);

impl DeviceKeys for EbKeys {
    fn new_secret(&self) -> (String, String) {
        let secret = cuncun_eb::new_secret();
        let hash = cuncun_eb::hash_secret(&secret);
        (secret, hash)
    }
    fn changed(&self, ebrid: &str, cred: Option<(&str, &str)>) {
        if let Some(eb) = &self.0 {
            eb.auth.device_changed(ebrid, cred);
        }
    }
}

pub(crate) fn keys(state: &AppState) -> EbKeys {
    EbKeys(state.eb.clone())
}

#[derive(Template)]
#[template(path = "eb_terminals.html")]
struct TerminalsPage {
    c: Chrome,
    rows: Vec<ResourceWithStatus>,
    kinds: Vec<(ResourceKind, &'static str)>,
    problems_only: bool,
    online: usize,
    offline: usize,
    never: usize,
    can_edit: bool,
    created: Option<(String, String)>,
    error: String,
    page: usize,
    pages: usize,
    total: usize,
    /// Query string that keeps the filter across pages.
    filter: String,
}

/// Rows per page of the device list.
const PAGE_ROWS: usize = 200;

#[derive(Deserialize, Default)]
struct TerminalQuery {
    problems: Option<String>,
    page: Option<usize>,
}

async fn terminals_view(
    state: &AppState,
    c: &Caller,
    p: &Principal,
    problems_only: bool,
    page: usize,
    created: Option<(String, String)>,
    error: String,
) -> Result<Response, AppError> {
    let list = state.app().terminal_list(p, problems_only).await?;
    let total = list.rows.len();
    let pages = total.div_ceil(PAGE_ROWS).max(1);
    let page = page.clamp(1, pages);
    let rows: Vec<ResourceWithStatus> = list.rows.into_iter().skip((page - 1) * PAGE_ROWS).take(PAGE_ROWS).collect();
    render(&TerminalsPage {
        c: Chrome::of(c, "/eb/terminals"),
        rows,
        page,
        pages,
        total,
        filter: if problems_only { "problems=1&".into() } else { String::new() },
        kinds: RESOURCE_TYPES.iter().map(|r| (r.0, r.1)).collect(),
        problems_only,
        online: list.online,
        offline: list.offline,
        never: list.never,
        can_edit: may_edit_terminals(p),
        created,
        error,
    })
}

async fn terminals_page(State(state): State<AppState>, c: Caller, Query(q): Query<TerminalQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    terminals_view(&state, &c, &p, q.problems.is_some(), q.page.unwrap_or(1), None, String::new()).await
}

#[derive(Deserialize)]
struct RegisterForm {
    csrf: String,
    kind: String,
    region_code: String,
    name: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    install_date: String,
    #[serde(default)]
    lon: String,
    #[serde(default)]
    lat: String,
}

fn opt_f64(s: &str, field: &str) -> Result<Option<f64>, AppError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim().parse::<f64>().map(Some).map_err(|_| AppError::BadRequest(format!("{field}: {s:?} is not a number")))
}

async fn register(State(state): State<AppState>, c: Caller, Form(f): Form<RegisterForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let res = async {
        let d = DeviceInput {
            kind: f.kind,
            region_code: f.region_code,
            name: f.name,
            vendor: f.vendor,
            model: f.model,
            install_date: f.install_date,
            lon: opt_f64(&f.lon, "lon")?,
            lat: opt_f64(&f.lat, "lat")?,
        };
        Ok::<_, AppError>(state.app().register_device(&p, &d, &keys(&state)).await?)
    }
    .await;
    match res {
        Ok(k) => terminals_view(&state, &c, &p, false, 1, Some((k.resource.ebrid, k.secret)), String::new()).await,
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => terminals_view(&state, &c, &p, false, 1, None, m).await,
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn retire(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    state.app().retire_device(&p, id, &keys(&state)).await?;
    Ok(Redirect::to("/eb/terminals").into_response())
}

async fn reset_secret(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<CsrfForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let k = state.app().reset_device_secret(&p, id, &keys(&state)).await?;
    terminals_view(&state, &c, &p, false, 1, Some((k.resource.ebrid, k.secret)), String::new()).await
}

#[derive(Template)]
#[template(path = "eb_terminal.html")]
struct TerminalPage {
    c: Chrome,
    r: ResourceWithStatus,
    connections: Vec<(i64, Option<i64>)>,
    logs: Vec<BroadcastLogRow>,
    /// The village the device stands in, where its hamlet is assigned (/report/hamlets).
    village: Option<String>,
}

async fn terminal_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let v = state.app().terminal(&p, id).await?;
    let code = &v.status.resource.region_code;
    let village = (code.level() == cuncun_domain::RegionLevel::Village).then(|| code.short().to_string());
    render(&TerminalPage { c: Chrome::of(&c, &format!("/eb/terminals/{id}")), r: v.status, connections: v.connections, logs: v.logs, village })
}

// ---- Excel import and export ----

pub(crate) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

pub(crate) fn xlsx_response(name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, XLSX.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bytes,
    )
        .into_response()
}

pub(crate) fn sheet_err(e: cuncun_xlsx::SheetError) -> AppError {
    AppError::Internal(format!("writing a workbook: {e}"))
}

async fn template_xlsx(_c: Caller) -> Result<Response, AppError> {
    Ok(xlsx_response("terminals-template.xlsx", cuncun_xlsx::resources::resources_template().map_err(sheet_err)?))
}

async fn export_xlsx(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let rows = state.app().export_terminals(&c.principal(&state).await?).await?;
    let conv: Vec<(cuncun_xlsx::resources::ResourceRow, String)> = rows
        .iter()
        .map(|r| {
            let status = match r.online {
                Some(true) => c.lang.s("eb.online"),
                Some(false) => c.lang.s("eb.offline"),
                None => c.lang.s("eb.never"),
            };
            (
                cuncun_xlsx::resources::ResourceRow {
                    kind: r.resource.kind,
                    region_code: r.resource.region_code.clone(),
                    name: r.resource.name.clone(),
                    vendor: r.resource.vendor.clone(),
                    model: r.resource.model.clone(),
                    install_date: r.resource.install_date.clone(),
                    lon: r.resource.lon,
                    lat: r.resource.lat,
                    ebrid: Ebrid::parse(&r.resource.ebrid).ok(),
                },
                status.to_string(),
            )
        })
        .collect();
    let bytes = cuncun_xlsx::resources::export_resources(conv.iter().map(|(r, s)| (r, s.as_str()))).map_err(sheet_err)?;
    Ok(xlsx_response(&format!("terminals-{}.xlsx", c.user.region_code.short()), bytes))
}

/// What an import did, for the page and the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportResult {
    pub imported: usize,
    pub errors: Vec<(u32, String, String)>,
    /// Download token of the error report (.xlsx), if there were errors.
    pub report: Option<String>,
    /// Download token of the new devices' codes and secrets (CSV), if any were imported.
    pub secrets: Option<String>,
    /// (code, secret) of each imported device, for API clients.
    pub created: Vec<(String, String)>,
}

/// Reads the sheet and runs the import for the caller (see `App::import_devices`); the error
/// report and the new devices' secrets become one-time downloads.
pub async fn import_checked(state: &AppState, c: &Caller, bytes: &[u8], valid_rows_only: bool) -> Result<ImportResult, AppError> {
    let p = c.principal(state).await?;
    let mut out = cuncun_xlsx::resources::parse_resources(bytes);
    let rows: Vec<(u32, NewResource)> = out
        .valid
        .iter()
        .map(|(row, r)| {
            let nr = NewResource {
                kind: r.kind,
                region_code: r.region_code.clone(),
                name: r.name.clone(),
                vendor: r.vendor.clone(),
                model: r.model.clone(),
                lon: r.lon,
                lat: r.lat,
                install_date: r.install_date.clone(),
                ebrid: r.ebrid.clone(),
                secret_hash: String::new(),
            };
            (*row, nr)
        })
        .collect();
    let done = state.app().import_devices(&p, &rows, !out.errors.is_empty(), valid_rows_only, &keys(state)).await?;
    for x in done.problems {
        out.add_error(x.row, x.column, (x.zh, x.en));
    }
    let mut result = ImportResult {
        imported: done.created.len(),
        errors: out.errors.iter().map(|e| (e.row, e.label.clone(), format!("{} / {}", e.message.zh, e.message.en))).collect(),
        report: None,
        secrets: None,
        created: done.created.iter().map(|d| (d.ebrid.clone(), d.secret.clone())).collect(),
    };
    if !out.errors.is_empty() {
        let report = out.error_report(Some(bytes)).map_err(sheet_err)?;
        result.report = Some(state.downloads.put(c.user.id, "import-errors.xlsx".into(), XLSX, report));
    }
    if !done.created.is_empty() {
        let mut csv = String::from("\u{feff}resource_code,name,region_code,secret\n");
        for d in &done.created {
            csv.push_str(&format!("{},\"{}\",{},{}\n", d.ebrid, d.name.replace('"', "\"\""), d.region_code, d.secret));
        }
        result.secrets = Some(state.downloads.put(c.user.id, "device-secrets.csv".into(), "text/csv; charset=utf-8", csv.into_bytes()));
    }
    Ok(result)
}

#[derive(Template)]
#[template(path = "eb_import.html")]
struct ImportPage {
    c: Chrome,
    r: ImportResult,
    valid_rows_only: bool,
}

async fn import_xlsx(State(state): State<AppState>, c: Caller, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut file, mut valid_rows_only) = (String::new(), Vec::new(), false);
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "mode" => valid_rows_only = field.text().await.unwrap_or_default() == "valid_rows",
            "file" => file = field.bytes().await.map_err(AppError::upload)?.to_vec(),
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    if file.is_empty() {
        return Err(AppError::BadRequest("file: choose an .xlsx file".into()));
    }
    let r = import_checked(&state, &c, &file, valid_rows_only).await?;
    render(&ImportPage { c: Chrome::of(&c, "/eb/terminals"), r, valid_rows_only })
}

async fn download(State(state): State<AppState>, c: Caller, Path(token): Path<String>) -> Result<Response, AppError> {
    let d = state
        .downloads
        .take(c.user.id, &token)
        .ok_or_else(|| AppError::NotFound("this download has expired or was already taken".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, d.content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", d.file_name)),
        ],
        d.bytes,
    )
        .into_response())
}

// ---- messages ----
// Handlers parse, run the application layer's command for the caller's principal, and render.

#[derive(Template)]
#[template(path = "eb_messages.html")]
struct MessagesPage {
    c: Chrome,
    messages: Vec<Message>,
    can_compose: bool,
}

async fn messages_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let messages = state.app().messages(&p, 500).await?;
    render(&MessagesPage { c: Chrome::of(&c, "/eb/messages"), messages, can_compose: may_compose(&p) })
}

#[derive(Template)]
#[template(path = "eb_compose.html")]
struct ComposePage {
    c: Chrome,
    events: Vec<(&'static str, &'static str, &'static str)>,
    error: String,
    f: ComposeInput,
    /// Editing this draft (its id) rather than composing a new message.
    editing: Option<i64>,
}

/// The compose form: the application layer's input plus the CSRF token.
#[derive(Deserialize, Default, Clone)]
pub struct ComposeForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(flatten)]
    pub input: ComposeInput,
}

#[derive(Deserialize, Default)]
struct ComposeQuery {
    /// Pre-fill an update of this message (the "发布更新" button).
    update: Option<i64>,
}

async fn compose_page(State(state): State<AppState>, c: Caller, Query(q): Query<ComposeQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    if !may_compose(&p) {
        return Err(AppError::Forbidden("your role may not compose messages".into()));
    }
    let f = match q.update {
        Some(id) => {
            ComposeInput::of(&state.app().visible_message(&p, id).await?, true)
        }
        None => ComposeInput::new_for(&c.user.region_code),
    };
    render(&ComposePage { c: Chrome::of(&c, "/eb/messages/new"), events: EVENT_TYPES.to_vec(), error: String::new(), f, editing: None })
}

fn form_error(c: &Caller, f: ComposeInput, editing: Option<i64>, error: String, status: axum::http::StatusCode) -> Result<Response, AppError> {
    let mut res = render(&ComposePage { c: Chrome::of(c, "/eb/messages/new"), events: EVENT_TYPES.to_vec(), error, f, editing })?;
    *res.status_mut() = status;
    Ok(res)
}

async fn compose(State(state): State<AppState>, c: Caller, Form(f): Form<ComposeForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    match state.app().compose(&p, &f.input).await.map_err(AppError::from) {
        Ok(m) => Ok(Redirect::to(&format!("/eb/messages/{}", m.id)).into_response()),
        Err(e @ (AppError::BadRequest(_) | AppError::Forbidden(_) | AppError::Conflict(_))) => {
            form_error(&c, f.input, None, e.message(), e.status())
        }
        Err(e) => Err(e),
    }
}

async fn edit_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let m = state.app().visible_message(&p, id).await?;
    render(&ComposePage { c: Chrome::of(&c, "/eb/messages/new"), events: EVENT_TYPES.to_vec(), error: String::new(), f: ComposeInput::of(&m, false), editing: Some(id) })
}

async fn edit(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<ComposeForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    match state.app().edit(&p, id, &f.input).await.map_err(AppError::from) {
        Ok(m) => Ok(Redirect::to(&format!("/eb/messages/{}", m.id)).into_response()),
        Err(e @ (AppError::BadRequest(_) | AppError::Forbidden(_) | AppError::Conflict(_))) => {
            form_error(&c, f.input, Some(id), e.message(), e.status())
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "eb_message.html")]
struct MessagePage {
    c: Chrome,
    v: cuncun_app::messages::MessageView,
    error: String,
}

impl MessagePage {
    fn is<S: AsRef<str> + ?Sized>(&self, a: &S, k: &str) -> bool {
        a.as_ref() == k
    }
    fn step_name(&self, step: &str) -> String {
        self.c.lang.s(&format!("eb.step.{step}")).to_string()
    }
}

async fn message_view(state: &AppState, c: &Caller, id: i64, error: String) -> Result<Response, AppError> {
    let p = c.principal(state).await?;
    let v = state.app().message_view(&p, id, 200).await?;
    render(&MessagePage { c: Chrome::of(c, &format!("/eb/messages/{id}")), v, error })
}

async fn message_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    message_view(&state, &c, id, String::new()).await
}

#[derive(Deserialize)]
struct ActForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn act(
    State(state): State<AppState>,
    c: Caller,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<ActForm>,
) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    if action == "edit" {
        return Ok(Redirect::to(&format!("/eb/messages/{id}/edit")).into_response());
    }
    let p = c.principal(&state).await?;
    let res = async { state.app().act(&p, id, cuncun_app::messages::Action::parse(&action, &f.reason)?).await }.await;
    match res.map_err(AppError::from) {
        Ok(_) => Ok(Redirect::to(&format!("/eb/messages/{id}")).into_response()),
        Err(e @ (AppError::Forbidden(_) | AppError::Conflict(_) | AppError::BadRequest(_))) => {
            let mut res = message_view(&state, &c, id, e.message()).await?;
            *res.status_mut() = e.status();
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

async fn upload_audio(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut file) = (String::new(), Vec::new());
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "file" => file = field.bytes().await.map_err(AppError::upload)?.to_vec(),
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    let p = c.principal(&state).await?;
    match state.app().set_audio(&p, id, file).await.map_err(AppError::from) {
        Ok(_) => Ok(Redirect::to(&format!("/eb/messages/{id}")).into_response()),
        Err(AppError::BadRequest(e) | AppError::Conflict(e)) => {
            let mut res = message_view(&state, &c, id, e).await?;
            *res.status_mut() = axum::http::StatusCode::BAD_REQUEST;
            Ok(res)
        }
        Err(e) => Err(e),
    }
}

/// Server-sent events: the delivery summary every second while the page is open (the whole
/// delivery for the owning level, the reader's area otherwise).
async fn live(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let app = state.app();
    app.visible_message(&p, id).await?;
    let stream = futures_stream(move || {
        let (app, p) = (app.clone(), p.clone());
        async move {
            let m = app.visible_message(&p, id).await.ok()?;
            let s = app.delivery(&p, &m).await.ok()?;
            let mut v = serde_json::to_value(&s).ok()?;
            v["status"] = serde_json::json!(m.status.key());
            Some(Event::default().event("summary").data(v.to_string()))
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// A stream that calls `f` every second until it returns None.
fn futures_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Event, std::convert::Infallible>>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<Event>> + Send,
{
    futures::stream::unfold((f, true), |(f, first)| async move {
        if !first {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let ev = f().await?;
        Some((Ok(ev), (f, false)))
    })
}

async fn undelivered_csv(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let (m, rows) = state.app().undelivered(&p, id, 1_000_000).await?;
    // UTF-8 BOM so that Excel opens the Chinese names correctly.
    let mut out = String::from("\u{feff}resource_code,name,region_code,online,sends\n");
    for r in rows {
        let name = r.name.replace('"', "\"\"");
        out.push_str(&format!("{},\"{}\",{},{},{}\n", r.ebrid, name, r.region_code, r.online, r.sends));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"undelivered-{}.csv\"", m.ebmid)),
        ],
        out,
    )
        .into_response())
}

async fn live_js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../static/live.js"))
}

// ---- online rate ----

pub struct RateRow {
    pub code: String,
    pub name: String,
    pub terminals: usize,
    pub rate: String,
}

#[derive(Template)]
#[template(path = "eb_online.html")]
struct OnlinePage {
    c: Chrome,
    day: String,
    overall: String,
    terminals: usize,
    rows: Vec<RateRow>,
    worst: Vec<RateRow>,
}

#[derive(Deserialize)]
struct DayQuery {
    day: Option<String>,
}

fn pct(v: Option<f64>) -> String {
    v.map(|r| format!("{r:.2}%")).unwrap_or_else(|| "—".into())
}

fn rate_rows(rates: Vec<RegionRate>) -> Vec<RateRow> {
    rates.into_iter().map(|r| RateRow { code: r.code, name: r.name, terminals: r.terminals, rate: pct(r.rate) }).collect()
}

async fn online_page(State(state): State<AppState>, c: Caller, Query(q): Query<DayQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let d = state.app().online_day(&p, q.day.as_deref()).await?;
    render(&OnlinePage {
        c: Chrome::of(&c, "/eb/online"),
        day: d.day,
        overall: pct(d.overall),
        terminals: d.terminals,
        rows: rate_rows(d.children),
        worst: rate_rows(d.worst),
    })
}
