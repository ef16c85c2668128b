//! Service network pages: the ticket desk (list, ticket with its 24-hour clock, phone and walk-in
//! intake), the steward's phone view, the public repair page per village (/r/<code>, QR code,
//! rate-limited, honeypot) with the resident's confirmation link, households, stewards, outlets
//! with the "nine ones", special-care visits and the indicators.
//!
//! Handlers parse, run a command of `cuncun_app::service` (which checks role, scope and masking)
//! and render; rate limits, the honeypot and the confirmation token stay here.

use crate::i18n::Lang;
use crate::pages::{Chrome, render};
use crate::session::{Caller, client_of, lang_of};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuncun_app::records::service::*;
use cuncun_app::service::*;
use cuncun_domain::RegionCode;
use cuncun_domain::service::*;
use cuncun_domain::time;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/service", get(dashboard))
        .route("/service/indicators.csv", get(indicators_csv))
        .route("/service/tickets", get(tickets_page).post(intake))
        .route("/service/tickets/new", get(intake_page))
        .route("/service/tickets/{id}", get(ticket_page))
        .route("/service/tickets/{id}/photo", post(upload_photo))
        .route("/service/tickets/{id}/{action}", post(act))
        .route("/service/photos/{id}", get(photo))
        .route("/service/my", get(my_page))
        .route("/service/visits", get(visits_page).post(record_visit))
        .route("/service/outlets", get(outlets_page))
        .route("/service/outlets/{id}", post(update_outlet))
        .route("/service/outlets/{id}/check", post(set_check))
        .route("/static/service.css", get(css))
        .route("/r/{code}", get(public_page).post(public_submit))
        .route("/r/{code}/qr.svg", get(public_qr))
        .route("/r/c/{token}", get(confirm_page).post(confirm_submit))
        .merge(registry_routes())
}

/// Rows per page of the ticket list.
const PAGE_ROWS: i64 = 50;

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../static/service.css"))
}

// ---- text ----

const TEXT: &[(&str, &str, &str)] = &[
    ("svc.title", "服务网络", "Service network"),
    ("svc.tickets", "报修工单", "Repair tickets"),
    ("svc.ticket", "工单", "Ticket"),
    ("svc.new_ticket", "登记报修", "New ticket"),
    ("svc.my", "我的工单", "My tickets"),
    ("svc.visits", "特殊群体走访", "Special-care visits"),
    ("svc.outlets", "服务网点", "Service outlets"),
    ("svc.households", "用户台账", "Households"),
    ("svc.stewards", "广电管家", "Stewards"),
    ("svc.indicators", "服务指标", "Service indicators"),
    ("svc.status", "状态", "Status"),
    ("svc.category", "类别", "Category"),
    ("svc.kind", "类型", "Type"),
    ("svc.source", "来源", "Source"),
    ("svc.region", "区划", "Region"),
    ("svc.village", "行政村", "Village"),
    ("svc.from", "起始日期", "From"),
    ("svc.to", "截止日期(不含)", "To (exclusive)"),
    ("svc.overdue", "已超时", "Overdue"),
    ("svc.near", "临近时限", "Near deadline"),
    ("svc.all", "全部", "All"),
    ("svc.filter", "筛选", "Filter"),
    ("svc.requested", "报修时间", "Requested"),
    ("svc.deadline", "时限", "Deadline"),
    ("svc.clock", "24小时时钟", "24-hour clock"),
    ("svc.remaining", "剩余", "remaining"),
    ("svc.over_by", "已超时", "overdue by"),
    ("svc.took", "用时", "took"),
    ("svc.stopped", "已撤销,不计时", "cancelled, not timed"),
    ("svc.reporter", "报修人", "Reporter"),
    ("svc.phone", "电话", "Phone"),
    ("svc.address", "地址", "Address"),
    ("svc.description", "问题描述", "What is wrong"),
    ("svc.steward", "管家", "Steward"),
    ("svc.none", "无", "none"),
    ("svc.escalated", "已升级至网点负责人", "Escalated to the outlet head"),
    ("svc.rating", "评分", "Rating"),
    ("svc.note", "处理记录", "What was done"),
    ("svc.history", "处理过程", "History"),
    ("svc.photos", "照片", "Photos"),
    ("svc.photo_upload", "上传照片", "Upload photo"),
    ("svc.assign", "派单", "Assign"),
    ("svc.accept", "接单", "Accept"),
    ("svc.on_site", "已到现场", "On site"),
    ("svc.resolve", "处理完成", "Resolve"),
    ("svc.confirm", "回访确认", "Confirm (call-back)"),
    ("svc.reopen", "重新打开", "Reopen"),
    ("svc.cancel", "撤销", "Cancel"),
    ("svc.reason", "原因", "Reason"),
    ("svc.next", "下一页", "Next"),
    ("svc.prev", "上一页", "Previous"),
    ("svc.none_found", "没有符合条件的工单", "No tickets match"),
    ("svc.submit", "提交", "Submit"),
    ("svc.closure", "办结率", "Closure rate"),
    ("svc.closure24", "24小时办结率", "Closed within 24 h"),
    ("svc.avg_close", "平均办结时长", "Average time to close"),
    ("svc.complaint_rate", "投诉率", "Complaint rate"),
    ("svc.satisfaction", "满意率", "Satisfaction rate"),
    ("svc.visit_completion", "走访完成率", "Visit completion"),
    ("svc.completeness", "数据完整率", "Data completeness"),
    ("svc.count_tickets", "工单数", "Tickets"),
    ("svc.count_households", "户数", "Households"),
    ("svc.method", "计算口径见 docs/INDICATORS.md:工单按报修时间计入统计期;办结指已处理且未被重新打开;24小时办结率 = 24小时内办结数 ÷ 统计期工单总数;投诉率 = 投诉数 ÷ 登记户数;满意率 = 评4-5分数 ÷ 评分数;走访完成率 = 已走访次数(每户至多2次) ÷ (特殊群体户数×2);数据完整率 = 必填项齐全户数 ÷ 登记户数。",
        "Method (docs/INDICATORS.md): tickets count in the period they were requested; closed = resolved and not reopened; 24-hour closure = closed within 24 h ÷ all tickets of the period; complaint rate = complaints ÷ registered households; satisfaction = ratings of 4-5 ÷ ratings; visit completion = visits (at most 2 per household) ÷ (special-care households × 2); completeness = households with every required field ÷ households."),
    ("svc.export_csv", "导出 CSV", "Export CSV"),
    ("svc.year", "年度", "Year"),
    ("svc.visits_done", "已走访", "Visits done"),
    ("svc.visits_left", "尚余", "Left"),
    ("svc.record_visit", "记录走访", "Record a visit"),
    ("svc.head", "户主", "Head of household"),
    ("svc.care", "特殊群体", "Special care"),
    ("svc.care_elderly", "留守老人", "elderly left behind"),
    ("svc.care_children", "留守儿童", "children left behind"),
    ("svc.care_disabled", "残疾人", "disabled"),
    ("svc.outlet", "网点", "Outlet"),
    ("svc.hotline", "服务热线", "Repair hotline"),
    ("svc.scope", "服务范围", "Service scope"),
    ("svc.process", "服务流程", "Process"),
    ("svc.outlet_head", "网点负责人(用户ID)", "Outlet head (user id)"),
    ("svc.nine_ones", "乡镇网点“九个一”", "Township outlet \"nine ones\""),
    ("svc.evidence", "佐证材料", "Evidence"),
    ("svc.done", "已具备", "In place"),
    ("svc.save", "保存", "Save"),
    ("svc.public_title", "广电服务 · 报修", "Broadcasting service · report a fault"),
    ("svc.public_intro", "电视、广播、大喇叭有问题?填写下面的表,管家会联系您。承诺24小时内处理。", "TV, radio or loudspeakers not working? Fill in the form and your steward will contact you. We promise a fix within 24 hours."),
    ("svc.your_name", "您的称呼", "Your name"),
    ("svc.your_phone", "联系电话", "Your phone"),
    ("svc.thanks", "已收到您的报修", "Your request was received"),
    ("svc.ticket_no", "工单号", "Ticket number"),
    ("svc.keep_link", "请保存此链接,可查看进度并在修好后确认评分:", "Keep this link to follow progress and to confirm and rate the repair:"),
    ("svc.confirm_title", "报修进度", "Repair progress"),
    ("svc.fixed_q", "问题解决了吗?请评分(1-5):", "Is it fixed? Please rate (1-5):"),
    ("svc.not_fixed", "没有修好", "Not fixed"),
    ("svc.thanks_rating", "感谢您的评价。", "Thank you for your rating."),
    ("svc.qr", "本村报修二维码", "This village's repair QR code"),
    ("svc.phone_view", "管家手机视图", "Steward phone view"),
    ("svc.no_open", "目前没有待处理的工单。", "No open tickets."),
    ("svc.masked", "姓名与电话已按权限隐藏", "Names and phones are masked for your role"),
    ("svc.escalated_to_me", "升级给我的工单", "Escalated to me"),
    ("svc.open", "未办结", "Open"),
    ("svc.reception", "收视方式", "Reception"),
    ("svc.waiver", "减免", "Fee waiver"),
    ("svc.account", "登录账号", "Account"),
];

pub fn svc_text(lang: Lang, key: &str) -> &'static str {
    match TEXT.iter().find(|(k, _, _)| *k == key) {
        Some((_, zh, en)) => {
            if lang == Lang::Zh {
                zh
            } else {
                en
            }
        }
        None => lang.s(key),
    }
}

macro_rules! enum_names {
    ($($f:ident: $t:ty),+) => {
        impl Chrome {
            $(pub fn $f(&self, v: &$t) -> &'static str {
                if self.lang == Lang::Zh { v.name_zh() } else { v.name_en() }
            })+
        }
    };
}
enum_names!(cat: TicketCategory, tkind: TicketKind, tstatus: TicketStatus, tsource: TicketSource, nine: NineOnes, waiver: FeeWaiver);

impl Chrome {
    pub fn s(&self, key: &str) -> &'static str {
        svc_text(self.lang, key)
    }
    pub fn pct(&self, p: &Option<f64>) -> String {
        show_percent(*p)
    }
    pub fn reception(&self, r: &Option<Vec<cuncun_domain::model::CoverageMode>>) -> String {
        cuncun_xlsx::households::reception_text(r)
    }
    pub fn dur(&self, ms: &Option<i64>) -> String {
        ms.map(|m| format_duration(m, self.lang == Lang::Zh)).unwrap_or_else(|| "—".into())
    }
}

fn public_chrome(headers: &HeaderMap, query: Option<&str>, path: &str) -> Chrome {
    Chrome { lang: lang_of(headers, query), user: None, csrf: String::new(), path: path.into() }
}

// ---- access ----

/// What the caller may see and do in the service network (the reports pages ask it too).
pub type Access = ServiceAccess;

pub async fn access(state: &AppState, c: &Caller) -> Result<Access, AppError> {
    Ok(state.app().service_access(&c.principal(state).await?).await?)
}

// ---- ticket views ----

/// A ticket as shown: personal data masked as the role requires, the clock worked out.
pub struct TicketView {
    pub t: Ticket,
    pub reporter_name: String,
    pub reporter_phone: String,
    /// ok | near | overdue | met | missed | stopped: a CSS class.
    pub clock_class: &'static str,
    pub clock: String,
    pub steward: String,
}

fn clock_of(t: &Ticket, now: i64, escalate_after: i64, lang: Lang) -> (&'static str, String) {
    let zh = lang == Lang::Zh;
    let s = |k| svc_text(lang, k);
    match t.sla(now, escalate_after) {
        Sla::Running { remaining_ms } => ("ok", format!("{} {}", s("svc.remaining"), format_duration(remaining_ms, zh))),
        Sla::Near { remaining_ms } => ("near", format!("{} {}", s("svc.remaining"), format_duration(remaining_ms, zh))),
        Sla::Overdue { over_ms } => ("overdue", format!("{} {}", s("svc.over_by"), format_duration(over_ms, zh))),
        Sla::Met { took_ms } => ("met", format!("{} {}", s("svc.took"), format_duration(took_ms, zh))),
        Sla::Missed { took_ms } => ("missed", format!("{} {}", s("svc.took"), format_duration(took_ms, zh))),
        Sla::Stopped => ("stopped", s("svc.stopped").to_string()),
    }
}

/// The ticket clock's escalation time (an option of the server).
pub(crate) fn escalate_after(state: &AppState) -> i64 {
    state.opts.escalate_after.as_millis() as i64
}

fn views(state: &AppState, lang: Lang, rows: Vec<TicketRow>) -> Vec<TicketView> {
    let (now, esc) = (time::now_ms(), escalate_after(state));
    rows.into_iter()
        .map(|r| {
            let (clock_class, clock) = clock_of(&r.ticket, now, esc, lang);
            TicketView { reporter_name: r.ticket.reporter_name.clone(), reporter_phone: r.ticket.reporter_phone.clone(), clock_class, clock, steward: r.steward, t: r.ticket }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "service/tickets.html")]
struct TicketsPage {
    c: Chrome,
    rows: Vec<TicketView>,
    q: TicketQuery,
    page: i64,
    has_next: bool,
    /// The query without the page, for the pager links.
    keep: String,
    statuses: &'static [TicketStatus],
    categories: &'static [TicketCategory],
    operator: bool,
    masked: bool,
}

fn query_string(q: &TicketQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [("status", &q.status), ("category", &q.category), ("kind", &q.kind), ("overdue", &q.overdue), ("region", &q.region), ("from", &q.from), ("to", &q.to)] {
        if !v.trim().is_empty() {
            parts.push(format!("{k}={}", urlencode(v.trim())));
        }
    }
    parts.join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn tickets_page(State(state): State<AppState>, c: Caller, Query(q): Query<TicketQuery>) -> Result<Response, AppError> {
    let page = q.page.unwrap_or(1).max(1);
    let mut list = state.app().tickets(&c.principal(&state).await?, &q, PAGE_ROWS + 1, (page - 1) * PAGE_ROWS).await?;
    let has_next = list.rows.len() as i64 > PAGE_ROWS;
    list.rows.truncate(PAGE_ROWS as usize);
    render(&TicketsPage {
        c: Chrome::of(&c, "/service/tickets"),
        rows: views(&state, c.lang, list.rows),
        keep: query_string(&q),
        q,
        page,
        has_next,
        statuses: TicketStatus::ALL,
        categories: TicketCategory::ALL,
        operator: list.operator,
        masked: list.masked,
    })
}

#[derive(Template)]
#[template(path = "service/ticket.html")]
struct TicketPage {
    c: Chrome,
    v: TicketView,
    village: String,
    events: Vec<TicketEvent>,
    photos: Vec<i64>,
    stewards: Vec<Steward>,
    operator: bool,
    mine: bool,
    error: String,
}

async fn ticket_view(state: &AppState, c: &Caller, id: i64, error: String) -> Result<Response, AppError> {
    let d = state.app().ticket(&c.principal(state).await?, id).await?;
    let v = views(state, c.lang, vec![d.row]).remove(0);
    render(&TicketPage {
        c: Chrome::of(c, &format!("/service/tickets/{id}")),
        v,
        village: d.village,
        events: d.events,
        photos: d.photos,
        stewards: d.stewards,
        operator: d.operator,
        mine: d.mine,
        error,
    })
}

async fn ticket_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    ticket_view(&state, &c, id, String::new()).await
}

#[derive(Deserialize)]
struct ActForm {
    csrf: String,
    #[serde(default)]
    steward_id: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    rating: String,
    #[serde(default)]
    back: String,
}

async fn act(State(state): State<AppState>, c: Caller, Path((id, action)): Path<(i64, String)>, Form(f): Form<ActForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let res = match ticket_action(&action, &f.steward_id, &f.note, &f.rating) {
        Ok(a) => state.app().act_on_ticket(&p, id, &a).await,
        Err(e) => Err(e),
    };
    match res.map_err(AppError::from) {
        Ok(_) => {
            let back = if f.back == "my" { "/service/my".to_string() } else { format!("/service/tickets/{id}") };
            Ok(Redirect::to(&back).into_response())
        }
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => ticket_view(&state, &c, id, m).await,
        Err(e) => Err(e),
    }
}

async fn upload_photo(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut file, mut back) = (String::new(), Vec::new(), String::new());
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "back" => back = field.text().await.unwrap_or_default(),
            "photo" => file = field.bytes().await.map_err(AppError::upload)?.to_vec(),
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    let p = c.principal(&state).await?;
    match state.app().add_ticket_photo(&p, id, &file).await.map_err(AppError::from) {
        Ok(_) if back == "my" => Ok(Redirect::to("/service/my").into_response()),
        Ok(_) => Ok(Redirect::to(&format!("/service/tickets/{id}")).into_response()),
        Err(AppError::BadRequest(m)) => ticket_view(&state, &c, id, m).await,
        Err(e) => Err(e),
    }
}

async fn photo(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let (ct, bytes) = state.app().ticket_photo(&c.principal(&state).await?, id).await?;
    Ok(([(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "private, max-age=86400".into())], bytes).into_response())
}

// ---- intake ----

#[derive(Template)]
#[template(path = "service/intake.html")]
struct IntakePage {
    c: Chrome,
    categories: &'static [TicketCategory],
    error: String,
}

async fn intake_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    state.app().ticket_intake(&c.principal(&state).await?).await?;
    render(&IntakePage { c: Chrome::of(&c, "/service/tickets/new"), categories: TicketCategory::ALL, error: String::new() })
}

#[derive(Deserialize)]
struct IntakeForm {
    csrf: String,
    #[serde(flatten)]
    f: IntakeInput,
}

async fn intake(State(state): State<AppState>, c: Caller, Form(f): Form<IntakeForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    match state.app().register_ticket(&p, &f.f, None).await.map_err(AppError::from) {
        Ok(t) => Ok(Redirect::to(&format!("/service/tickets/{}", t.ticket.id)).into_response()),
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => {
            render(&IntakePage { c: Chrome::of(&c, "/service/tickets/new"), categories: TicketCategory::ALL, error: m })
        }
        Err(e) => Err(e),
    }
}

// ---- the steward's phone view ----

#[derive(Template)]
#[template(path = "service/my.html")]
struct MyPage {
    c: Chrome,
    rows: Vec<TicketView>,
    escalated: Vec<TicketView>,
    steward: Option<Steward>,
}

async fn my_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let m = state.app().my_tickets(&c.principal(&state).await?).await?;
    render(&MyPage { c: Chrome::of(&c, "/service/my"), rows: views(&state, c.lang, m.rows), escalated: views(&state, c.lang, m.escalated), steward: m.steward })
}

// ---- visits ----

#[derive(Template)]
#[template(path = "service/visits.html")]
struct VisitsPage {
    c: Chrome,
    year: i64,
    rows: Vec<VisitRow>,
    error: String,
}

struct VisitRow {
    h: Household,
    done: i64,
    left: i64,
    name: String,
    phone: String,
}

#[derive(Deserialize, Default)]
struct YearQuery {
    year: Option<i64>,
}

async fn visits_view(state: &AppState, c: &Caller, year: Option<i64>, error: String) -> Result<Response, AppError> {
    let plan = state.app().visit_plan(&c.principal(state).await?, year).await?;
    let rows = plan
        .rows
        .into_iter()
        .map(|r| VisitRow { name: r.household.rec.head_name.clone(), phone: r.household.rec.phone.clone(), h: r.household, done: r.done, left: r.left })
        .collect();
    render(&VisitsPage { c: Chrome::of(c, "/service/visits"), year: plan.year, rows, error })
}

async fn visits_page(State(state): State<AppState>, c: Caller, Query(q): Query<YearQuery>) -> Result<Response, AppError> {
    visits_view(&state, &c, q.year, String::new()).await
}

#[derive(Deserialize)]
struct VisitForm {
    csrf: String,
    household_id: i64,
    #[serde(default)]
    note: String,
}

async fn record_visit(State(state): State<AppState>, c: Caller, Form(f): Form<VisitForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    match state.app().record_visit(&p, f.household_id, &f.note).await.map_err(AppError::from) {
        Ok(_) => Ok(Redirect::to("/service/visits").into_response()),
        Err(AppError::BadRequest(m)) => visits_view(&state, &c, None, m).await,
        Err(e) => Err(e),
    }
}

// ---- outlets ----

#[derive(Template)]
#[template(path = "service/outlets.html")]
struct OutletsPage {
    c: Chrome,
    rows: Vec<(Outlet, Vec<OutletCheck>)>,
    operator: bool,
}

async fn outlets_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let list = state.app().outlets(&c.principal(&state).await?).await?;
    render(&OutletsPage { c: Chrome::of(&c, "/service/outlets"), rows: list.rows, operator: list.operator })
}

#[derive(Deserialize)]
struct OutletForm {
    csrf: String,
    #[serde(flatten)]
    f: OutletInput,
}

async fn update_outlet(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<OutletForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().update_outlet(&c.principal(&state).await?, id, &f.f).await?;
    Ok(Redirect::to("/service/outlets").into_response())
}

#[derive(Deserialize)]
struct CheckForm {
    csrf: String,
    item: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    evidence: String,
}

async fn set_check(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<CheckForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().set_outlet_check(&c.principal(&state).await?, id, &f.item, !f.done.is_empty(), &f.evidence).await?;
    Ok(Redirect::to("/service/outlets").into_response())
}

// ---- indicators ----

/// The period of an indicator request and its indicators (dashboard, CSV and API).
pub async fn indicators_of(state: &AppState, c: &Caller, q: &PeriodQuery) -> Result<(Period, ServiceIndicators), AppError> {
    let p = c.principal(state).await?;
    let period = state.app().service_period(&p, q)?;
    let i = state.app().service_indicators(&p, &period).await?;
    Ok((period, i))
}

#[derive(Template)]
#[template(path = "service/dashboard.html")]
struct Dashboard {
    c: Chrome,
    region: String,
    from: String,
    to: String,
    total: Indicators,
    kids: Vec<(RegionCode, String, Indicators)>,
}

async fn dashboard(State(state): State<AppState>, c: Caller, Query(q): Query<PeriodQuery>) -> Result<Response, AppError> {
    let (p, i) = indicators_of(&state, &c, &q).await?;
    render(&Dashboard {
        c: Chrome::of(&c, "/service"),
        region: p.scope.short().to_string(),
        from: p.from,
        to: p.to,
        total: i.total,
        kids: i.children,
    })
}

async fn indicators_csv(State(state): State<AppState>, c: Caller, Query(q): Query<PeriodQuery>) -> Result<Response, AppError> {
    let (p, ind) = indicators_of(&state, &c, &q).await?;
    let mut out = String::from("\u{feff}region_code,region,tickets,closed,closed_24h,closure_rate,closure_24h_rate,avg_close_hours,complaints,complaint_rate,rated,satisfaction_rate,care_households,visits_done,visit_completion,households,complete_households,data_completeness\n");
    let line = |code: &str, name: &str, i: &Indicators| {
        let k = &i.counts;
        let p = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
        format!(
            "{code},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            name.replace(',', " "),
            k.tickets, k.closed, k.closed_24h, p(i.closure_rate), p(i.closure_24h_rate),
            i.avg_close_ms.map(|m| format!("{:.2}", m as f64 / 3_600_000.0)).unwrap_or_default(),
            k.complaints, p(i.complaint_rate), k.rated, p(i.satisfaction_rate), k.care_households, k.visits_done,
            p(i.visit_completion), k.households, k.complete_households, p(i.data_completeness)
        )
    };
    out.push_str(&line(p.scope.short(), &ind.scope_name, &ind.total));
    for (code, name, i) in &ind.children {
        out.push_str(&line(code.short(), name, i));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"service-{}-{}.csv\"", p.scope.short(), p.from)),
        ],
        out,
    )
        .into_response())
}

// ---- public repair page ----

/// Sliding-window limits for the public pages: per client address and per village.
pub struct PublicLimiter {
    hits: Mutex<HashMap<String, VecDeque<Instant>>>,
    pub window: Duration,
    pub per_client: usize,
    pub per_village: usize,
}

impl Default for PublicLimiter {
    fn default() -> Self {
        PublicLimiter { hits: Mutex::new(HashMap::new()), window: Duration::from_secs(3600), per_client: 5, per_village: 60 }
    }
}

impl PublicLimiter {
    /// Counts a submission when both keys are under their limits; false when either is full.
    pub fn admit(&self, client: &str, village: &str) -> bool {
        let Ok(mut m) = self.hits.lock() else { return false };
        let now = Instant::now();
        if m.len() > 10_000 {
            m.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        let keys = [(format!("c:{client}"), self.per_client), (format!("v:{village}"), self.per_village)];
        for (k, limit) in &keys {
            let q = m.entry(k.clone()).or_default();
            while q.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                q.pop_front();
            }
            if q.len() >= *limit {
                return false;
            }
        }
        for (k, _) in keys {
            m.entry(k).or_default().push_back(now);
        }
        true
    }
}

#[derive(Template)]
#[template(path = "service/public.html")]
struct PublicPage {
    c: Chrome,
    code: String,
    village: String,
    township: String,
    stewards: Vec<(String, String)>,
    outlet: Option<Outlet>,
    categories: &'static [TicketCategory],
    error: String,
}

async fn public_view(state: &AppState, chrome: Chrome, code: &str, error: String) -> Result<Response, AppError> {
    let v = state.app().public_village(code).await?;
    render(&PublicPage {
        c: chrome,
        code: v.village.code.short().into(),
        village: v.village.name,
        township: v.township,
        stewards: v.stewards,
        outlet: v.outlet,
        categories: TicketCategory::ALL,
        error,
    })
}

async fn public_page(State(state): State<AppState>, headers: HeaderMap, uri: axum::http::Uri, Path(code): Path<String>) -> Result<Response, AppError> {
    public_view(&state, public_chrome(&headers, uri.query(), &format!("/r/{code}")), &code, String::new()).await
}

#[derive(Deserialize)]
struct PublicForm {
    #[serde(flatten)]
    f: FaultReport,
    /// Honeypot: hidden from people, filled in by form-spamming robots.
    #[serde(default)]
    website: String,
}

#[derive(Template)]
#[template(path = "service/public_done.html")]
struct PublicDone {
    c: Chrome,
    id: i64,
    link: String,
}

fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']')).collect();
    format!("{}://{host}", if state.opts.secure_cookies { "https" } else { "http" })
}

async fn public_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    Form(f): Form<PublicForm>,
) -> Result<Response, AppError> {
    let chrome = || public_chrome(&headers, uri.query(), &format!("/r/{code}"));
    let v = state.app().repair_village(&code).await?;
    let client = client_of(Some(addr));
    if !state.public_limiter.admit(&client, v.code.as_str()) {
        return Err(AppError::TooManyRequests("too many repair requests from here; please call the hotline".into()));
    }
    if !f.website.is_empty() {
        // A robot: answer as if accepted, keep nothing.
        tracing::info!(%client, village = %v.code, "public repair form: honeypot filled, dropped");
        return render(&PublicDone { c: chrome(), id: 0, link: String::new() });
    }
    let token = crate::auth::random_token();
    let res = state.app().report_fault(&code, &client, &f.f, crate::auth::token_hash(&token)).await.map_err(AppError::from);
    match res {
        Ok(t) => {
            let link = format!("{}/r/c/{token}", base_url(&state, &headers));
            render(&PublicDone { c: chrome(), id: t.ticket.id, link })
        }
        Err(AppError::BadRequest(m)) => public_view(&state, chrome(), &code, m).await,
        Err(e) => Err(e),
    }
}

/// An SVG QR code of the village's public repair page, for the notice board.
async fn public_qr(State(state): State<AppState>, headers: HeaderMap, Path(code): Path<String>) -> Result<Response, AppError> {
    let v = state.app().repair_village(&code).await?;
    let url = format!("{}/r/{}", base_url(&state, &headers), v.code.short());
    let qr = qrcode::QrCode::new(url.as_bytes()).map_err(|e| AppError::Internal(format!("qr code: {e}")))?;
    let svg = qr.render::<qrcode::render::svg::Color<'_>>().min_dimensions(240, 240).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "public, max-age=3600")], svg).into_response())
}

#[derive(Template)]
#[template(path = "service/confirm.html")]
struct ConfirmPage {
    c: Chrome,
    t: Ticket,
    steward: String,
    clock: String,
    clock_class: &'static str,
    token: String,
    done: bool,
    error: String,
}

async fn confirm_view(state: &AppState, chrome: Chrome, token: &str, done: bool, error: String) -> Result<Response, AppError> {
    let r = state.app().resident_ticket(&crate::auth::token_hash(token)).await?;
    let (clock_class, clock) = clock_of(&r.ticket, time::now_ms(), escalate_after(state), chrome.lang);
    render(&ConfirmPage { c: chrome, t: r.ticket, steward: r.steward, clock, clock_class, token: token.into(), done, error })
}

async fn confirm_page(State(state): State<AppState>, headers: HeaderMap, uri: axum::http::Uri, Path(token): Path<String>) -> Result<Response, AppError> {
    confirm_view(&state, public_chrome(&headers, uri.query(), "/r/c"), &token, false, String::new()).await
}

#[derive(Deserialize)]
struct ConfirmForm {
    action: String,
    #[serde(default)]
    rating: String,
    #[serde(default)]
    reason: String,
}

async fn confirm_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, AppError> {
    let chrome = || public_chrome(&headers, uri.query(), "/r/c");
    let client = client_of(Some(addr));
    let key = format!("confirm:{client}");
    if !state.public_limiter.admit(&key, &key) {
        return Err(AppError::TooManyRequests("too many requests from here; please call the hotline".into()));
    }
    let res = state.app().resident_answer(&crate::auth::token_hash(&token), &f.action, &f.rating, &f.reason).await.map_err(AppError::from);
    match res {
        Ok(_) => confirm_view(&state, chrome(), &token, true, String::new()).await,
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => confirm_view(&state, chrome(), &token, false, m).await,
        Err(e) => Err(e),
    }
}

// ---- households and stewards: lists, Excel template, export, import ----

use crate::eb_pages::{XLSX, sheet_err, xlsx_response};
/// The household and steward sheets, for callers without their own dependency (the benchmark).
pub use cuncun_xlsx::households as sheets;

pub fn registry_routes() -> Router<AppState> {
    Router::new()
        .route("/service/households", get(households_page))
        .route("/service/households/template.xlsx", get(households_template))
        .route("/service/households/export.xlsx", get(households_export))
        .route("/service/households/import", post(households_import))
        .route("/service/stewards", get(stewards_page))
        .route("/service/stewards/template.xlsx", get(stewards_template))
        .route("/service/stewards/export.xlsx", get(stewards_export))
        .route("/service/stewards/import", post(stewards_import))
        .route("/service/stewards/{id}/user", post(link_user))
}

#[derive(Template)]
#[template(path = "service/households.html")]
struct HouseholdsPage {
    c: Chrome,
    rows: Vec<Household>,
    care: bool,
    q: String,
    page: i64,
    has_next: bool,
    operator: bool,
    masked: bool,
}

#[derive(Deserialize, Default)]
struct HouseholdListQuery {
    #[serde(default)]
    care: String,
    #[serde(default)]
    q: String,
    page: Option<i64>,
}

async fn households_page(State(state): State<AppState>, c: Caller, Query(q): Query<HouseholdListQuery>) -> Result<Response, AppError> {
    let page = q.page.unwrap_or(1).max(1);
    let hq = HouseholdQuery { care_only: !q.care.is_empty(), text: q.q.clone() };
    let mut list = state.app().households(&c.principal(&state).await?, None, &hq, PAGE_ROWS + 1, (page - 1) * PAGE_ROWS).await?;
    let has_next = list.rows.len() as i64 > PAGE_ROWS;
    list.rows.truncate(PAGE_ROWS as usize);
    render(&HouseholdsPage {
        c: Chrome::of(&c, "/service/households"),
        rows: list.rows,
        care: hq.care_only,
        q: q.q,
        page,
        has_next,
        operator: list.operator,
        masked: list.masked,
    })
}

async fn households_template(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    access(&state, &c).await?;
    Ok(xlsx_response("households-template.xlsx", cuncun_xlsx::households::households_template().map_err(sheet_err)?))
}

/// A workbook writer's failure, as the application reports it.
fn written(r: Result<Vec<u8>, cuncun_xlsx::SheetError>) -> cuncun_app::Result<Vec<u8>> {
    r.map_err(|e| cuncun_app::Error::Internal(format!("writing a workbook: {e}")))
}

/// Every household in the caller's reach as .xlsx (masked for roles that do not see personal
/// data); the export is audited.
async fn households_export(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let write = |rows: &[Household]| written(cuncun_xlsx::households::export_households(rows.iter().map(|h| &h.rec)));
    let bytes = state.app().export_households(&c.principal(&state).await?, write).await?;
    Ok(xlsx_response(&format!("households-{}.xlsx", c.user.region_code.short()), bytes))
}

/// What an import did, for the page and the API.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryImport {
    pub imported: usize,
    /// (row, column label, message zh / en).
    pub errors: Vec<(u32, String, String)>,
    /// Download token of the error report, when there were errors.
    pub report: Option<String>,
}

/// The parse errors and the application's row problems together, with a downloadable report
/// when there are any.
fn finish<T>(state: &AppState, c: &Caller, mut out: cuncun_xlsx::ParseOutcome<T>, checked: cuncun_app::service::ImportChecked, bytes: &[u8]) -> Result<RegistryImport, AppError> {
    for pr in checked.problems {
        out.add_error(pr.row, pr.column, (pr.zh, pr.en));
    }
    let mut r = RegistryImport {
        imported: checked.imported,
        errors: out.errors.iter().map(|e| (e.row, e.label.clone(), format!("{} / {}", e.message.zh, e.message.en))).collect(),
        report: None,
    };
    if !out.errors.is_empty() {
        let report = out.error_report(Some(bytes)).map_err(sheet_err)?;
        r.report = Some(state.downloads.put(c.user.id, "import-errors.xlsx".into(), XLSX, report));
    }
    Ok(r)
}

/// Parses a households sheet; the application checks the rows against the registry and the
/// caller's scope and imports them (all or nothing unless `valid_rows_only`).
pub async fn import_households_checked(state: &AppState, c: &Caller, bytes: &[u8], valid_rows_only: bool) -> Result<RegistryImport, AppError> {
    let p = c.principal(state).await?;
    let mut out = cuncun_xlsx::households::parse_households(bytes);
    let rows = std::mem::take(&mut out.valid);
    let checked = state.app().import_households(&p, rows, out.errors.is_empty(), valid_rows_only).await?;
    finish(state, c, out, checked, bytes)
}

async fn read_upload(mut mp: axum::extract::Multipart) -> Result<(String, Vec<u8>, bool), AppError> {
    let (mut csrf, mut file, mut valid_rows_only) = (String::new(), Vec::new(), false);
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "mode" => valid_rows_only = field.text().await.unwrap_or_default() == "valid_rows",
            "file" => file = field.bytes().await.map_err(AppError::upload)?.to_vec(),
            _ => {}
        }
    }
    if file.is_empty() {
        return Err(AppError::BadRequest("file: choose an .xlsx file".into()));
    }
    Ok((csrf, file, valid_rows_only))
}

#[derive(Template)]
#[template(path = "service/import.html")]
struct ImportPage {
    c: Chrome,
    r: RegistryImport,
    valid_rows_only: bool,
    back: &'static str,
}

async fn households_import(State(state): State<AppState>, c: Caller, mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (csrf, file, valid_rows_only) = read_upload(mp).await?;
    c.check_csrf(&csrf)?;
    let r = import_households_checked(&state, &c, &file, valid_rows_only).await?;
    render(&ImportPage { c: Chrome::of(&c, "/service/households"), r, valid_rows_only, back: "/service/households" })
}

#[derive(Template)]
#[template(path = "service/stewards.html")]
struct StewardsPage {
    c: Chrome,
    rows: Vec<(Steward, String)>,
    operator: bool,
}

async fn stewards_page(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let list = state.app().stewards(&c.principal(&state).await?).await?;
    render(&StewardsPage { c: Chrome::of(&c, "/service/stewards"), rows: list.rows, operator: list.operator })
}

async fn stewards_template(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    access(&state, &c).await?;
    Ok(xlsx_response("stewards-template.xlsx", cuncun_xlsx::households::stewards_template().map_err(sheet_err)?))
}

async fn stewards_export(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let write = |rows: Vec<(Steward, String)>| {
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(s, username)| cuncun_xlsx::households::StewardRow { name: s.name, phone: s.phone, township: s.region_code, villages: s.villages, username })
            .collect();
        written(cuncun_xlsx::households::export_stewards(rows.iter()))
    };
    let bytes = state.app().export_stewards(&c.principal(&state).await?, write).await?;
    Ok(xlsx_response(&format!("stewards-{}.xlsx", c.user.region_code.short()), bytes))
}

/// Parses a stewards sheet; the application checks and imports it as for households.
pub async fn import_stewards_checked(state: &AppState, c: &Caller, bytes: &[u8], valid_rows_only: bool) -> Result<RegistryImport, AppError> {
    let p = c.principal(state).await?;
    let mut out = cuncun_xlsx::households::parse_stewards(bytes);
    let rows = std::mem::take(&mut out.valid)
        .into_iter()
        .map(|(row, s)| (row, StewardImport { name: s.name, phone: s.phone, township: s.township, villages: s.villages, username: s.username }))
        .collect();
    let checked = state.app().import_stewards(&p, rows, out.errors.is_empty(), valid_rows_only).await?;
    finish(state, c, out, checked, bytes)
}

async fn stewards_import(State(state): State<AppState>, c: Caller, mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (csrf, file, valid_rows_only) = read_upload(mp).await?;
    c.check_csrf(&csrf)?;
    let r = import_stewards_checked(&state, &c, &file, valid_rows_only).await?;
    render(&ImportPage { c: Chrome::of(&c, "/service/stewards"), r, valid_rows_only, back: "/service/stewards" })
}

#[derive(Deserialize)]
struct LinkForm {
    csrf: String,
    #[serde(default)]
    username: String,
}

async fn link_user(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<LinkForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    state.app().link_steward_user(&c.principal(&state).await?, id, &f.username).await?;
    Ok(Redirect::to("/service/stewards").into_response())
}
