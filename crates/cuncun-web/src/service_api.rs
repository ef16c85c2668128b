//! The service network's JSON API (nested under /api/v1): tickets with filters, intake, actions,
//! indicators, households. The same commands as the pages (`cuncun_app::service`), which check
//! role and scope and mask personal data for roles that do not need it.

use crate::api::ApiJson;
use crate::service_pages as sp;
use crate::session::Caller;
use crate::{AppError, AppState};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use cuncun_app::records::service::*;
use cuncun_app::service::{IntakeInput, PeriodQuery, TicketQuery, TicketRow, ticket_action};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/service/tickets", get(tickets).post(create))
        .route("/service/tickets/{id}", get(ticket))
        .route("/service/tickets/{id}/{action}", post(act))
        .route("/service/indicators", get(indicators))
        .route("/service/households", get(households))
        .route("/service/households/import", post(import_households))
        .route("/service/stewards/import", post(import_stewards))
}

fn id_param(s: &str) -> Result<i64, AppError> {
    s.parse::<i64>().map_err(|_| AppError::BadRequest(format!("path parameter id: {s:?} is not an integer")))
}

/// A ticket (already masked by the command) with its clock.
fn ticket_json(state: &AppState, r: &TicketRow) -> Value {
    let mut v = serde_json::to_value(&r.ticket).unwrap_or(Value::Null);
    v["sla"] = serde_json::to_value(r.ticket.sla(cuncun_domain::time::now_ms(), sp::escalate_after(state))).unwrap_or(Value::Null);
    v
}

#[derive(Deserialize, Default)]
struct TicketsQ {
    #[serde(flatten)]
    q: TicketQuery,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn tickets(State(state): State<AppState>, c: Caller, Query(q): Query<TicketsQ>) -> Result<Json<Value>, AppError> {
    let p = c.principal(&state).await?;
    let (limit, offset) = crate::api::paging(q.limit, q.offset, 50, 1000)?;
    let list = state.app().tickets(&p, &q.q, limit, offset).await?;
    Ok(Json(json!({ "items": list.rows.iter().map(|r| ticket_json(&state, r)).collect::<Vec<_>>() })))
}

async fn ticket(State(state): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    let d = state.app().ticket(&c.principal(&state).await?, id_param(&id)?).await?;
    Ok(Json(json!({ "ticket": ticket_json(&state, &d.row), "events": d.events, "photos": d.photos })))
}

#[derive(Deserialize)]
struct CreateBody {
    #[serde(flatten)]
    f: IntakeInput,
    household_id: Option<i64>,
}

async fn create(State(state): State<AppState>, c: Caller, ApiJson(b): ApiJson<CreateBody>) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let r = state.app().register_ticket(&c.principal(&state).await?, &b.f, b.household_id).await?;
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "ticket": r.ticket }))))
}

#[derive(Deserialize, Default)]
struct ActBody {
    steward_id: Option<i64>,
    #[serde(default)]
    note: String,
    rating: Option<u8>,
}

async fn act(State(state): State<AppState>, c: Caller, Path((id, action)): Path<(String, String)>, body: axum::body::Bytes) -> Result<Json<Value>, AppError> {
    // The body is optional: accept, on_site need none.
    let b: ActBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("body: {e}")))?
    };
    let steward = b.steward_id.map(|s| s.to_string()).unwrap_or_default();
    let rating = b.rating.map(|r| r.to_string()).unwrap_or_default();
    let a = ticket_action(&action, &steward, &b.note, &rating)?;
    let t = state.app().act_on_ticket(&c.principal(&state).await?, id_param(&id)?, &a).await?;
    Ok(Json(json!({ "ticket": t })))
}

async fn indicators(State(state): State<AppState>, c: Caller, Query(q): Query<PeriodQuery>) -> Result<Json<Value>, AppError> {
    let (p, i) = sp::indicators_of(&state, &c, &q).await?;
    let children: Vec<Value> = i.children.iter().map(|(code, name, i)| json!({ "region_code": code.short(), "name": name, "indicators": i })).collect();
    Ok(Json(json!({ "region_code": p.scope.short(), "from": p.from, "to": p.to, "year": p.year, "indicators": i.total, "children": children })))
}

#[derive(Deserialize, Default)]
struct HouseholdsQ {
    region: Option<String>,
    care: Option<bool>,
    #[serde(default)]
    q: String,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Deserialize, Default)]
struct ImportQ {
    mode: Option<String>,
}

fn import_mode(q: &ImportQ) -> Result<bool, AppError> {
    match q.mode.as_deref() {
        None | Some("all") => Ok(false),
        Some("valid_rows") => Ok(true),
        Some(other) => Err(AppError::BadRequest(format!("mode {other:?}: expected all or valid_rows"))),
    }
}

fn import_answer(r: sp::RegistryImport) -> (axum::http::StatusCode, Json<Value>) {
    let status = if r.imported == 0 && !r.errors.is_empty() { axum::http::StatusCode::UNPROCESSABLE_ENTITY } else { axum::http::StatusCode::OK };
    let errors: Vec<Value> = r.errors.iter().map(|(row, col, msg)| json!({ "row": row, "column": col, "message": msg })).collect();
    (status, Json(json!({ "imported": r.imported, "errors": errors })))
}

/// The body is the .xlsx file itself.
async fn import_households(State(state): State<AppState>, c: Caller, Query(q): Query<ImportQ>, body: axum::body::Bytes) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let r = sp::import_households_checked(&state, &c, &body, import_mode(&q)?).await?;
    Ok(import_answer(r))
}

async fn import_stewards(State(state): State<AppState>, c: Caller, Query(q): Query<ImportQ>, body: axum::body::Bytes) -> Result<(axum::http::StatusCode, Json<Value>), AppError> {
    let r = sp::import_stewards_checked(&state, &c, &body, import_mode(&q)?).await?;
    Ok(import_answer(r))
}

async fn households(State(state): State<AppState>, c: Caller, Query(q): Query<HouseholdsQ>) -> Result<Json<Value>, AppError> {
    let scope = match &q.region {
        Some(r) => Some(cuncun_domain::RegionCode::parse(r).map_err(|e| AppError::BadRequest(format!("region: {e}")))?),
        None => None,
    };
    let (limit, offset) = crate::api::paging(q.limit, q.offset, 100, 1000)?;
    crate::api::bounded_text("q", &q.q, 100)?;
    let hq = HouseholdQuery { care_only: q.care.unwrap_or(false), text: q.q };
    let list = state.app().households(&c.principal(&state).await?, scope.as_ref(), &hq, limit, offset).await?;
    Ok(Json(json!({ "items": list.rows })))
}
