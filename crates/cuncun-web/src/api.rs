//! The JSON API under /api/v1, described by /openapi.json. Authentication: `Authorization: Bearer
//! <token>` from POST /api/v1/login (or the browser's session cookie plus an X-CSRF-Token header
//! for writes). Every call checks role and region scope exactly as the pages do.

use crate::pages::{create_user_checked, managed_user, update_user_checked};
use crate::session::{Caller, client_of};
use crate::{AppError, AppState};
use axum::extract::{ConnectInfo, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cuncun_domain::model::*;
use cuncun_domain::{RegionCode, Role};
use cuncun_app::records::UserPatch;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", axum::routing::post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/me", get(me))
        .route("/regions", get(search_regions))
        .route("/regions/{code}", get(region))
        .route("/regions/{code}/children", get(children))
        .route("/regions/{code}/hamlets", get(hamlets).post(add_hamlet))
        .route("/users", get(users).post(create_user))
        .route("/users/{id}", get(user).patch(patch_user))
        .route("/users/{id}/sessions", get(user_sessions).delete(revoke_user_sessions))
        .route("/users/{id}/grant", get(user_grant).put(set_user_grant))
        .route("/audit", get(audit))
        .route("/eb/terminals", get(eb_terminals).post(eb_register))
        .route("/eb/terminals/import", axum::routing::post(eb_import))
        .route("/eb/messages", get(eb_messages).post(eb_compose))
        .route("/eb/messages/{id}", get(eb_message).put(eb_edit))
        .route("/eb/messages/{id}/undelivered", get(eb_undelivered))
        .route("/eb/messages/{id}/audio", axum::routing::put(eb_audio))
        .route("/eb/messages/{id}/{action}", axum::routing::post(eb_act))
        .route("/report/sites", get(report_sites))
        .route("/report/sites/{id}", get(report_site))
        .fallback(|| async { AppError::NotFound("no such API endpoint; see /openapi.json".into()) })
}

pub async fn openapi() -> impl IntoResponse {
    ([("content-type", "application/json")], include_str!("../openapi.json"))
}

/// JSON body whose rejection is our JSON error, not plain text.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(AppError::rejected(e.status(), &e.body_text())),
        }
    }
}

/// An optional integer query parameter within the bounds the OpenAPI states for it.
pub fn bounded(name: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> Result<i64, AppError> {
    match value {
        None => Ok(default),
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(AppError::BadRequest(format!("query parameter {name}: {v} is out of range {min}-{max}"))),
    }
}

/// `limit` and `offset` of a list, checked: limit in 1..=`max`, offset from 0.
pub fn paging(limit: Option<i64>, offset: Option<i64>, default: i64, max: i64) -> Result<(i64, i64), AppError> {
    Ok((bounded("limit", limit, default, 1, max)?, bounded("offset", offset, 0, 0, i64::MAX)?))
}

/// A free-text query parameter (a name search) of at most `max` characters.
pub fn bounded_text<'a>(name: &str, value: &'a str, max: usize) -> Result<&'a str, AppError> {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!("query parameter {name}: at most {max} characters, no control characters")));
    }
    Ok(value)
}

fn code_param(s: &str) -> Result<RegionCode, AppError> {
    RegionCode::parse(s).map_err(|e| AppError::BadRequest(format!("path parameter code: {e}")))
}

fn id_param(s: &str) -> Result<i64, AppError> {
    s.parse::<i64>().map_err(|_| AppError::BadRequest(format!("path parameter id: {s:?} is not an integer")))
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct UserOut {
    id: i64,
    username: String,
    display_name: String,
    role: Role,
    region_code: String,
    phone: String,
    disabled: bool,
    created_at_ms: i64,
}

fn user_out(u: &User) -> UserOut {
    UserOut {
        id: u.id,
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role,
        region_code: u.region_code.short().to_string(),
        phone: u.phone.clone(),
        disabled: u.disabled,
        created_at_ms: u.created_at_ms,
    }
}

fn region_out(r: &Region) -> Value {
    json!({
        "code": r.code.short(),
        "code12": r.code.as_str(),
        "name": r.name,
        "level": r.level,
        "parent_code": r.parent.as_ref().map(|p| p.short()),
    })
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<Response, AppError> {
    let (token, csrf, user) = crate::session::login(&state, &b.username, &b.password, &client_of(Some(addr)), "api")
        .await
        .map_err(|e| match e {
            AppError::BadRequest(m) => AppError::Forbidden(m),
            other => other,
        })?;
    let body = json!({
        "token": token,
        "csrf_token": csrf,
        "expires_in_s": state.opts.session_ttl.as_secs(),
        "user": user_out(&user),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn logout(State(state): State<AppState>, c: Caller) -> Result<StatusCode, AppError> {
    state.app().logout(&c.principal(&state).await?, &c.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(c: Caller) -> Json<Value> {
    Json(json!({ "user": user_out(&c.user) }))
}

async fn region(State(state): State<AppState>, c: Caller, Path(code): Path<String>) -> Result<Json<Value>, AppError> {
    let code = code_param(&code)?;
    let (r, counts) = state.app().region(&c.principal(&state).await?, &code).await?;
    Ok(Json(json!({ "region": region_out(&r), "counts": counts })))
}

async fn children(State(state): State<AppState>, c: Caller, Path(code): Path<String>) -> Result<Json<Value>, AppError> {
    let code = code_param(&code)?;
    let kids = state.app().children(&c.principal(&state).await?, &code).await?;
    let items: Vec<Value> = kids
        .iter()
        .map(|k| {
            let mut v = region_out(&k.region);
            v["children"] = json!(k.children);
            v
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
struct SearchQ {
    q: String,
    scope: Option<String>,
    limit: Option<i64>,
}

async fn search_regions(State(state): State<AppState>, c: Caller, Query(q): Query<SearchQ>) -> Result<Json<Value>, AppError> {
    let scope = q.scope.as_deref().map(code_param).transpose()?;
    let limit = bounded("limit", q.limit, 50, 1, 500)?;
    let text = bounded_text("q", &q.q, 100)?;
    let found = state.app().search_regions(&c.principal(&state).await?, scope.as_ref(), text, limit).await?;
    Ok(Json(json!({ "items": found.iter().map(region_out).collect::<Vec<_>>() })))
}

async fn hamlets(State(state): State<AppState>, c: Caller, Path(code): Path<String>) -> Result<Json<Value>, AppError> {
    let code = code_param(&code)?;
    let items = state.app().hamlets(&c.principal(&state).await?, &code).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Deserialize)]
struct HamletBody {
    name: String,
    households: i64,
    population: i64,
}

async fn add_hamlet(
    State(state): State<AppState>,
    c: Caller,
    Path(code): Path<String>,
    ApiJson(b): ApiJson<HamletBody>,
) -> Result<Response, AppError> {
    let h = crate::pages::add_hamlet_checked(&state, &c, &code, b.name, b.households, b.population).await?;
    Ok((StatusCode::CREATED, Json(json!(h))).into_response())
}

async fn users(State(state): State<AppState>, c: Caller) -> Result<Json<Value>, AppError> {
    let list = state.app().users(&c.principal(&state).await?).await?;
    Ok(Json(json!({ "items": list.iter().map(user_out).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
struct NewUserBody {
    username: String,
    display_name: String,
    password: String,
    role: String,
    region_code: String,
    #[serde(default)]
    phone: String,
}

async fn create_user(State(state): State<AppState>, c: Caller, ApiJson(b): ApiJson<NewUserBody>) -> Result<Response, AppError> {
    let u = create_user_checked(&state, &c, &b.username, &b.display_name, &b.password, &b.role, &b.region_code, &b.phone)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user_out(&u) }))).into_response())
}

async fn user(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let u = managed_user(&state, &c, id_param(&id)?).await?;
    Ok(Json(json!({ "user": user_out(&u) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    display_name: Option<String>,
    role: Option<String>,
    region_code: Option<String>,
    phone: Option<String>,
    disabled: Option<bool>,
}

async fn patch_user(
    State(state): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<PatchBody>,
) -> Result<Json<Value>, AppError> {
    let id = id_param(&id)?;
    let patch = UserPatch {
        display_name: b.display_name,
        role: b.role.map(|r| Role::parse(&r)).transpose().map_err(|e| AppError::BadRequest(e.to_string()))?,
        region_code: b
            .region_code
            .map(|r| RegionCode::parse(&r))
            .transpose()
            .map_err(|e| AppError::BadRequest(format!("region_code: {e}")))?,
        phone: b.phone,
        disabled: b.disabled,
    };
    let u = update_user_checked(&state, &c, id, patch).await?;
    Ok(Json(json!({ "user": user_out(&u) })))
}

async fn user_sessions(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let id = id_param(&id)?;
    let sessions = state.app().sessions_of(&c.principal(&state).await?, id).await?;
    let items: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": &s.token_hash[..12.min(s.token_hash.len())],
                "kind": s.kind, "client": s.client, "created_at_ms": s.created_at_ms,
                "expires_at_ms": s.expires_at_ms, "revoked_at_ms": s.revoked_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

async fn revoke_user_sessions(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let id = id_param(&id)?;
    let n = state.app().revoke_user_sessions(&c.principal(&state).await?, id).await?;
    Ok(Json(json!({ "revoked": n })))
}

#[derive(Deserialize)]
struct AuditQ {
    after: Option<i64>,
    limit: Option<i64>,
}

async fn audit(State(state): State<AppState>, c: Caller, Query(q): Query<AuditQ>) -> Result<Json<Value>, AppError> {
    let (after, limit) = (bounded("after", q.after, 0, 0, i64::MAX)?, bounded("limit", q.limit, 100, 1, 1000)?);
    let entries = state.app().audit_entries(&c.principal(&state).await?, after, limit).await?;
    Ok(Json(json!({ "items": entries })))
}

// ---- emergency broadcast ----

#[derive(Deserialize)]
struct PageQ {
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn eb_terminals(State(state): State<AppState>, c: Caller, Query(q): Query<PageQ>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let (limit, offset) = paging(q.limit, q.offset, 500, 10_000)?;
    let rows = state.app().terminals(&p, limit, offset).await?;
    Ok(Json(json!({ "items": rows })))
}

async fn eb_register(State(state): State<AppState>, c: Caller, ApiJson(b): ApiJson<cuncun_app::terminals::DeviceInput>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let k = state.app().register_device(&p, &b, &crate::eb_pages::keys(&state)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "resource": k.resource, "secret": k.secret }))).into_response())
}

#[derive(Deserialize)]
struct GrantBody {
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
}

fn grant_out(g: &cuncun_app::Grant) -> Value {
    json!({ "event_types": g.event_types, "regions": g.regions.iter().map(|r| r.short()).collect::<Vec<_>>() })
}

/// What a department sender may send (event codes or prefixes, regions). Administrators only.
async fn user_grant(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    Ok(Json(grant_out(&state.app().grant(&p, id_param(&id)?).await?)))
}

async fn set_user_grant(State(state): State<AppState>, c: Caller, Path(id): Path<String>, ApiJson(b): ApiJson<GrantBody>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    Ok(Json(grant_out(&state.app().set_grant(&p, id_param(&id)?, &b.event_types, &b.regions).await?)))
}

async fn eb_messages(State(state): State<AppState>, c: Caller) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    Ok(Json(json!({ "items": state.app().messages(&p, 500).await? })))
}

#[derive(Deserialize)]
struct ComposeBody {
    #[serde(default)]
    priority: Option<String>,
    event_type: String,
    #[serde(default)]
    severity: Option<i64>,
    title: String,
    text: String,
    #[serde(default)]
    areas: Vec<String>,
    #[serde(default)]
    terminals: Vec<String>,
    /// Beijing time "YYYY-MM-DDTHH:MM"; absent: validity starts on approval.
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    valid_minutes: Option<i64>,
    #[serde(default)]
    repeat: Option<i64>,
    #[serde(default)]
    drill: bool,
    /// EBMID of the message this one updates.
    #[serde(default)]
    updates: Option<String>,
}

impl ComposeBody {
    fn input(self) -> cuncun_app::messages::ComposeInput {
        cuncun_app::messages::ComposeInput {
            priority: self.priority.unwrap_or_else(|| "emergency".into()),
            event_type: self.event_type,
            severity: self.severity.map(|s| s.to_string()).unwrap_or_default(),
            title: self.title,
            text: self.text,
            areas: self.areas.join(","),
            terminals: self.terminals.join(","),
            start: self.start.unwrap_or_default(),
            valid_minutes: self.valid_minutes.unwrap_or(120).to_string(),
            repeat: self.repeat.unwrap_or(3).to_string(),
            drill: self.drill,
            updates: self.updates.unwrap_or_default(),
        }
    }
}

async fn eb_compose(State(state): State<AppState>, c: Caller, ApiJson(b): ApiJson<ComposeBody>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let m = state.app().compose(&p, &b.input()).await?;
    Ok((StatusCode::CREATED, Json(json!({ "message": m }))).into_response())
}

async fn eb_edit(State(state): State<AppState>, c: Caller, Path(id): Path<String>, ApiJson(b): ApiJson<ComposeBody>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let m = state.app().edit(&p, id_param(&id)?, &b.input()).await?;
    Ok(Json(json!({ "message": m })))
}

async fn eb_message(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let v = state.app().message_view(&p, id_param(&id)?, 0).await?;
    Ok(Json(json!({
        "message": v.message, "reach": v.reach, "delivery": v.delivery, "steps": v.steps,
        "actions": v.actions, "owner_view": v.owner_view,
    })))
}

async fn eb_undelivered(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let (_, rows) = state.app().undelivered(&p, id_param(&id)?, 100_000).await?;
    Ok(Json(json!({ "items": rows })))
}

#[derive(Deserialize, Default)]
struct ActBody {
    #[serde(default)]
    reason: String,
}

/// The body is optional: `{"reason": "..."}` (required to send back or cancel).
async fn eb_act(
    State(state): State<AppState>,
    c: Caller,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AppError> {
    let b: ActBody = if body.iter().all(|b| b.is_ascii_whitespace()) {
        ActBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("body: {e}")))?
    };
    let p = c.principal(&state).await?;
    let m = state.app().act(&p, id_param(&id)?, cuncun_app::messages::Action::parse(&action, &b.reason)?).await?;
    Ok(Json(json!({ "message": m })))
}

#[derive(Deserialize)]
struct ImportQ {
    mode: Option<String>,
}

/// The body is the .xlsx file itself.
async fn eb_import(
    State(state): State<AppState>,
    c: Caller,
    Query(q): Query<ImportQ>,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let valid_rows_only = match q.mode.as_deref() {
        None | Some("all") => false,
        Some("valid_rows") => true,
        Some(other) => return Err(AppError::BadRequest(format!("mode {other:?}: expected all or valid_rows"))),
    };
    let r = crate::eb_pages::import_checked(&state, &c, &body, valid_rows_only).await?;
    let status = if r.imported == 0 && !r.errors.is_empty() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let errors: Vec<Value> = r.errors.iter().map(|(row, col, msg)| json!({"row": row, "column": col, "message": msg})).collect();
    let devices: Vec<Value> = r.created.iter().map(|(code, secret)| json!({"resource_code": code, "secret": secret})).collect();
    Ok((status, Json(json!({ "imported": r.imported, "errors": errors, "devices": devices }))).into_response())
}

/// The body is the audio file (WAV, MP3 or Ogg).
async fn eb_audio(State(state): State<AppState>, c: Caller, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let m = state.app().set_audio(&p, id_param(&id)?, body.to_vec()).await?;
    Ok(Json(json!({ "message": m })))
}

/// Transmitter sites of a region (default: the caller's), with the region's site and front-end
/// counts. Same checks as /report/sites.
async fn report_sites(State(state): State<AppState>, c: Caller, Query(q): Query<cuncun_app::reports::ReportQuery>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let s = state.app().transmitter_sites(&p, &q).await?;
    Ok(Json(json!({ "region_code": s.region.short(), "counts": s.counts, "items": s.items })))
}

async fn report_site(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let id = id.parse::<i64>().map_err(|_| AppError::BadRequest(format!("path parameter id: {id:?} is not an integer")))?;
    let p = c.principal(&state).await?;
    Ok(Json(json!({ "site": state.app().transmitter_site(&p, id).await? })))
}
