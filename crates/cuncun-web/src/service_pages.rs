//! Service network pages: the ticket desk (list, ticket with its 24-hour clock, phone and walk-in
//! intake), the steward's phone view, the public repair page per village (/r/<code>, QR code,
//! rate-limited, honeypot) with the resident's confirmation link, households, stewards, outlets
//! with the "nine ones", special-care visits and the indicators.
//!
//! Access: `can_read_service` to read, `can_operate_service` for the desk, stewards only for
//! their villages; names and phones are masked unless `sees_personal_data` (domain::service).

use crate::i18n::Lang;
use crate::pages::{Chrome, render};
use crate::session::{Caller, client_of, lang_of};
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cuncun_domain::RegionCode;
use cuncun_domain::service::*;
use cuncun_domain::time;
use cuncun_store::Actor;
use cuncun_store::service::*;
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
        .route("/service/tickets/{id}/photo", post(upload_photo).layer(DefaultBodyLimit::max(MAX_PHOTO + 64 * 1024)))
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

/// Largest photo accepted from a steward's phone.
pub const MAX_PHOTO: usize = 6 * 1024 * 1024;
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

/// What the caller may see and do on the service pages.
pub struct Access {
    /// The caller's steward record (steward role only).
    pub steward: Option<Steward>,
    pub operator: bool,
    pub unmasked: bool,
}

pub async fn access(state: &AppState, c: &Caller) -> Result<Access, AppError> {
    let role = c.user.role;
    if !can_read_service(role) {
        return Err(AppError::Forbidden("your role has no access to the service network".into()));
    }
    let steward = if role == cuncun_domain::Role::Steward {
        Some(state.store.steward_of_user(c.user.id).await?.ok_or_else(|| {
            AppError::Forbidden("your account is not linked to a steward record; ask an administrator".into())
        })?)
    } else {
        None
    };
    Ok(Access { steward, operator: can_operate_service(role), unmasked: sees_personal_data(role) })
}

impl Access {
    /// A steward sees tickets of their villages and those assigned to them.
    pub fn sees_ticket(&self, t: &Ticket) -> bool {
        match &self.steward {
            Some(s) => s.villages.contains(&t.village_code) || t.steward_id == Some(s.id),
            None => true,
        }
    }
    pub fn sees_village(&self, v: &RegionCode) -> bool {
        self.steward.as_ref().is_none_or(|s| s.villages.contains(v))
    }
    pub fn name(&self, s: &str) -> String {
        if self.unmasked { s.to_string() } else { mask_name(s) }
    }
    pub fn phone(&self, s: &str) -> String {
        if self.unmasked { s.to_string() } else { mask_phone(s) }
    }
    /// Who may apply `action`: the desk for everything; the assigned steward for the field work.
    pub fn may(&self, t: &Ticket, action: &TicketAction) -> bool {
        if self.operator {
            return true;
        }
        let mine = self.steward.as_ref().is_some_and(|s| t.steward_id == Some(s.id));
        mine && matches!(action, TicketAction::Accept | TicketAction::OnSite | TicketAction::Resolve { .. })
    }
}

/// A ticket the caller may see: in their region and, for a steward, in their villages.
pub async fn ticket_checked(state: &AppState, c: &Caller, a: &Access, id: i64) -> Result<Ticket, AppError> {
    let t = state.store.ticket(id).await?.ok_or_else(|| AppError::NotFound(format!("ticket {id}")))?;
    c.ensure_scope(&t.village_code)?;
    if !a.sees_ticket(&t) {
        return Err(AppError::Forbidden(format!("ticket {id} is not in your villages")));
    }
    Ok(t)
}

/// Applies an action for a caller allowed to; returns the ticket afterwards.
pub async fn act_checked(state: &AppState, c: &Caller, id: i64, action: &TicketAction) -> Result<Ticket, AppError> {
    let a = access(state, c).await?;
    let t = ticket_checked(state, c, &a, id).await?;
    if !a.may(&t, action) {
        return Err(AppError::Forbidden(format!("your role may not {} this ticket", action.key())));
    }
    if let TicketAction::Assign { steward_id } = action {
        let s = state.store.steward(*steward_id).await?.ok_or_else(|| AppError::BadRequest(format!("steward {steward_id} does not exist")))?;
        c.ensure_scope(&s.region_code)?;
    }
    Ok(state.store.transition_ticket(id, action, &c.actor(), cuncun_store::now_ms()).await?)
}

/// Creates a ticket for a desk operator (phone or walk-in), inside their region.
pub async fn intake_checked(state: &AppState, c: &Caller, t: NewTicket) -> Result<TicketCreated, AppError> {
    if !can_operate_service(c.user.role) {
        return Err(AppError::Forbidden("only the service desk may register tickets".into()));
    }
    c.ensure_scope(&t.village_code)?;
    validate_new_ticket(state, &t).await?;
    Ok(state.store.create_ticket(&t, &c.actor()).await?)
}

async fn validate_new_ticket(state: &AppState, t: &NewTicket) -> Result<(), AppError> {
    if t.village_code.level() != cuncun_domain::RegionLevel::Village {
        return Err(AppError::BadRequest("village_code: give the 12-digit code of a village".into()));
    }
    state.store.region(&t.village_code).await?.ok_or_else(|| AppError::BadRequest(format!("village_code: region {} is not loaded", t.village_code)))?;
    if t.description.trim().is_empty() || t.description.chars().count() > 1000 {
        return Err(AppError::BadRequest("description: say what is wrong (1-1000 characters)".into()));
    }
    if t.source != TicketSource::Terminal && normalise_phone(&t.reporter_phone).is_none() {
        return Err(AppError::BadRequest(format!("reporter_phone: {:?} is not a mobile (11 digits) or landline number with area code", t.reporter_phone)));
    }
    if t.reporter_name.chars().count() > 50 || t.address.chars().count() > 200 {
        return Err(AppError::BadRequest("reporter_name or address is too long".into()));
    }
    Ok(())
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

async fn views(state: &AppState, a: &Access, lang: Lang, tickets: Vec<Ticket>) -> Result<Vec<TicketView>, AppError> {
    let now = cuncun_store::now_ms();
    let esc = state.opts.escalate_after.as_millis() as i64;
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut out = Vec::with_capacity(tickets.len());
    for t in tickets {
        let steward = match t.steward_id {
            Some(id) => match names.get(&id) {
                Some(n) => n.clone(),
                None => {
                    let n = state.store.steward(id).await?.map(|s| s.name).unwrap_or_default();
                    names.insert(id, n.clone());
                    n
                }
            },
            None => String::new(),
        };
        let (clock_class, clock) = clock_of(&t, now, esc, lang);
        out.push(TicketView {
            reporter_name: a.name(&t.reporter_name),
            reporter_phone: a.phone(&t.reporter_phone),
            clock_class,
            clock,
            steward,
            t,
        });
    }
    Ok(out)
}

#[derive(Deserialize, Default, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub overdue: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub page: Option<i64>,
}

/// Beijing date YYYY-MM-DD -> UTC ms of its start.
pub fn day_start(s: &str, field: &str) -> Result<Option<i64>, AppError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (start, _) = time::day_bounds(s).map_err(|e| AppError::BadRequest(format!("{field}: {e}")))?;
    Ok(Some(start))
}

/// The filter of a list request, checked against the caller's scope.
pub async fn filter_checked(state: &AppState, c: &Caller, a: &Access, q: &ListQuery) -> Result<TicketFilter, AppError> {
    let _ = state;
    let scope = if q.region.trim().is_empty() {
        c.user.region_code.clone()
    } else {
        RegionCode::parse(&q.region).map_err(|e| AppError::BadRequest(format!("region: {e}")))?
    };
    c.ensure_scope(&scope)?;
    let mut f = TicketFilter::scope(&scope);
    for s in q.status.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if s == "open" {
            f.statuses.extend([TicketStatus::New, TicketStatus::Assigned, TicketStatus::OnSite, TicketStatus::Reopened]);
        } else {
            f.statuses.push(TicketStatus::parse(s).ok_or_else(|| AppError::BadRequest(format!("status: {s:?} is not a ticket status")))?);
        }
    }
    if !q.category.trim().is_empty() {
        f.category = Some(TicketCategory::parse(&q.category).ok_or_else(|| AppError::BadRequest(format!("category: {:?} is not a category", q.category)))?);
    }
    if !q.kind.trim().is_empty() {
        f.kind = Some(TicketKind::parse(&q.kind).ok_or_else(|| AppError::BadRequest(format!("kind: {:?} is not repair or complaint", q.kind)))?);
    }
    f.overdue = matches!(q.overdue.as_str(), "1" | "true" | "on");
    f.from_ms = day_start(&q.from, "from")?;
    f.to_ms = day_start(&q.to, "to")?;
    if let Some(s) = &a.steward {
        f.villages = Some(s.villages.iter().filter(|v| scope.contains(v)).cloned().collect());
    }
    Ok(f)
}

#[derive(Template)]
#[template(path = "service/tickets.html")]
struct TicketsPage {
    c: Chrome,
    rows: Vec<TicketView>,
    q: ListQuery,
    page: i64,
    has_next: bool,
    /// The query without the page, for the pager links.
    keep: String,
    statuses: &'static [TicketStatus],
    categories: &'static [TicketCategory],
    operator: bool,
    masked: bool,
}

fn query_string(q: &ListQuery) -> String {
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

async fn tickets_page(State(state): State<AppState>, c: Caller, Query(q): Query<ListQuery>) -> Result<Response, AppError> {
    let a = access(&state, &c).await?;
    let f = filter_checked(&state, &c, &a, &q).await?;
    let page = q.page.unwrap_or(1).max(1);
    let mut rows = state.store.tickets(&f, PAGE_ROWS + 1, (page - 1) * PAGE_ROWS).await?;
    let has_next = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let rows = views(&state, &a, c.lang, rows).await?;
    render(&TicketsPage {
        c: Chrome::of(&c, "/service/tickets"),
        rows,
        keep: query_string(&q),
        q,
        page,
        has_next,
        statuses: TicketStatus::ALL,
        categories: TicketCategory::ALL,
        operator: a.operator,
        masked: !a.unmasked,
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
    let a = access(state, c).await?;
    let t = ticket_checked(state, c, &a, id).await?;
    let village = state.store.region(&t.village_code).await?.map(|r| r.name).unwrap_or_default();
    let events = state.store.ticket_events(id).await?;
    let photos = state.store.ticket_photo_ids(id).await?;
    let stewards = if a.operator {
        let township = t.village_code.parent().unwrap_or_else(|| t.village_code.clone());
        let mut s = state.store.stewards_in(&township).await?;
        s.retain(|s| c.in_scope(&s.region_code));
        s
    } else {
        Vec::new()
    };
    let mine = a.steward.as_ref().is_some_and(|s| t.steward_id == Some(s.id));
    let operator = a.operator;
    let v = views(state, &a, c.lang, vec![t]).await?.remove(0);
    render(&TicketPage { c: Chrome::of(c, &format!("/service/tickets/{id}")), v, village, events, photos, stewards, operator, mine, error })
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

/// The action named in a path or API body, with its text fields.
pub fn parse_action(action: &str, steward_id: &str, note: &str, rating: &str) -> Result<TicketAction, AppError> {
    Ok(match action {
        "assign" => TicketAction::Assign {
            steward_id: steward_id.trim().parse().map_err(|_| AppError::BadRequest(format!("steward_id: {steward_id:?} is not a steward id")))?,
        },
        "accept" => TicketAction::Accept,
        "on_site" => TicketAction::OnSite,
        "resolve" => TicketAction::Resolve { note: note.into() },
        "confirm" => TicketAction::Confirm {
            rating: rating.trim().parse().map_err(|_| AppError::BadRequest(format!("rating: {rating:?} is not 1-5")))?,
        },
        "reopen" => TicketAction::Reopen { reason: note.into() },
        "cancel" => TicketAction::Cancel { reason: note.into() },
        other => return Err(AppError::NotFound(format!("no ticket action {other:?}"))),
    })
}

async fn act(State(state): State<AppState>, c: Caller, Path((id, action)): Path<(i64, String)>, Form(f): Form<ActForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let res = match parse_action(&action, &f.steward_id, &f.note, &f.rating) {
        Ok(a) => act_checked(&state, &c, id, &a).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(_) => {
            let back = if f.back == "my" { "/service/my".to_string() } else { format!("/service/tickets/{id}") };
            Ok(Redirect::to(&back).into_response())
        }
        Err(AppError::BadRequest(m) | AppError::Conflict(m)) => ticket_view(&state, &c, id, m).await,
        Err(e) => Err(e),
    }
}

/// JPEG, PNG or WebP by their first bytes.
pub fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if b.len() > 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Stores a photo for the assigned steward or the desk.
pub async fn photo_checked(state: &AppState, c: &Caller, id: i64, bytes: &[u8]) -> Result<i64, AppError> {
    let a = access(state, c).await?;
    let t = ticket_checked(state, c, &a, id).await?;
    if !a.may(&t, &TicketAction::OnSite) && !a.operator {
        return Err(AppError::Forbidden("only the assigned steward or the desk may add photos".into()));
    }
    if bytes.is_empty() || bytes.len() > MAX_PHOTO {
        return Err(AppError::BadRequest(format!("photo: must be 1 byte to {} MB", MAX_PHOTO / 1024 / 1024)));
    }
    let ct = sniff_image(bytes).ok_or_else(|| AppError::BadRequest("photo: not a JPEG, PNG or WebP image".into()))?;
    Ok(state.store.add_ticket_photo(id, ct, bytes, &c.actor()).await?)
}

async fn upload_photo(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut file, mut back) = (String::new(), Vec::new(), String::new());
    while let Some(field) = mp.next_field().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "back" => back = field.text().await.unwrap_or_default(),
            "photo" => file = field.bytes().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))?.to_vec(),
            _ => {}
        }
    }
    c.check_csrf(&csrf)?;
    match photo_checked(&state, &c, id, &file).await {
        Ok(_) if back == "my" => Ok(Redirect::to("/service/my").into_response()),
        Ok(_) => Ok(Redirect::to(&format!("/service/tickets/{id}")).into_response()),
        Err(AppError::BadRequest(m)) => ticket_view(&state, &c, id, m).await,
        Err(e) => Err(e),
    }
}

async fn photo(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let (ticket_id, ct, bytes) = state.store.ticket_photo(id).await?.ok_or_else(|| AppError::NotFound(format!("photo {id}")))?;
    let a = access(&state, &c).await?;
    ticket_checked(&state, &c, &a, ticket_id).await?;
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
    if !access(&state, &c).await?.operator {
        return Err(AppError::Forbidden("only the service desk may register tickets".into()));
    }
    render(&IntakePage { c: Chrome::of(&c, "/service/tickets/new"), categories: TicketCategory::ALL, error: String::new() })
}

#[derive(Deserialize)]
struct IntakeForm {
    csrf: String,
    #[serde(flatten)]
    f: IntakeFields,
}

/// What the desk records for a phone call or a walk-in (form and API).
#[derive(Deserialize)]
pub struct IntakeFields {
    village_code: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    source: String,
    category: String,
    #[serde(default)]
    reporter_name: String,
    #[serde(default)]
    reporter_phone: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    description: String,
}

impl IntakeFields {
    pub fn to_new_ticket(&self) -> Result<NewTicket, AppError> {
        let source = match self.source.as_str() {
            "walk_in" => TicketSource::WalkIn,
            "phone" | "" => TicketSource::Phone,
            other => return Err(AppError::BadRequest(format!("source: {other:?} must be phone or walk_in"))),
        };
        new_ticket_from(&self.village_code, &self.kind, source, &self.category, &self.reporter_name, &self.reporter_phone, &self.address, &self.description)
    }
}

fn new_ticket_from(village: &str, kind: &str, source: TicketSource, category: &str, name: &str, phone: &str, address: &str, description: &str) -> Result<NewTicket, AppError> {
    Ok(NewTicket {
        kind: if kind.trim().is_empty() { TicketKind::Repair } else { TicketKind::parse(kind).ok_or_else(|| AppError::BadRequest(format!("kind: {kind:?} is not repair or complaint")))? },
        source,
        category: TicketCategory::parse(category).ok_or_else(|| AppError::BadRequest(format!("category: {category:?} is not a category")))?,
        village_code: RegionCode::parse(village).map_err(|e| AppError::BadRequest(format!("village_code: {e}")))?,
        household_id: None,
        reporter_name: name.trim().into(),
        reporter_phone: normalise_phone(phone).unwrap_or_else(|| phone.trim().to_string()),
        address: address.trim().into(),
        description: description.trim().into(),
        terminal_ebrid: None,
        dedupe_key: None,
        confirm_token_hash: None,
        requested_at_ms: None,
    })
}

async fn intake(State(state): State<AppState>, c: Caller, Form(f): Form<IntakeForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let res = async { intake_checked(&state, &c, f.f.to_new_ticket()?).await }.await;
    match res {
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
    let a = access(&state, &c).await?;
    let mut f = TicketFilter::scope(&c.user.region_code);
    f.statuses = vec![TicketStatus::New, TicketStatus::Assigned, TicketStatus::OnSite, TicketStatus::Reopened];
    let rows = match &a.steward {
        Some(s) => {
            f.steward_id = Some(s.id);
            state.store.tickets(&f, 200, 0).await?
        }
        None => Vec::new(),
    };
    // For desk users: open tickets escalated to them (they head an outlet).
    let escalated = if a.operator {
        let mut all = state.store.tickets(&f, 500, 0).await?;
        all.retain(|t| t.escalated_to == Some(c.user.id));
        all
    } else {
        Vec::new()
    };
    let mut rows = views(&state, &a, c.lang, rows).await?;
    // Most urgent first.
    rows.sort_by_key(|v| v.t.deadline_ms);
    let escalated = views(&state, &a, c.lang, escalated).await?;
    render(&MyPage { c: Chrome::of(&c, "/service/my"), rows, escalated, steward: a.steward })
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
    let a = access(state, c).await?;
    let year = year.unwrap_or_else(|| time::year_of(cuncun_store::now_ms()));
    let scopes: Vec<RegionCode> = match &a.steward {
        Some(s) => s.villages.clone(),
        None => vec![c.user.region_code.clone()],
    };
    let mut rows = Vec::new();
    for scope in scopes {
        for p in state.store.visit_plan(&scope, year, 500, 0).await? {
            let (name, phone) = (a.name(&p.household.rec.head_name), a.phone(&p.household.rec.phone));
            rows.push(VisitRow { left: (VISITS_PER_YEAR - p.done).max(0), h: p.household, done: p.done, name, phone });
        }
    }
    render(&VisitsPage { c: Chrome::of(c, "/service/visits"), year, rows, error })
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

/// Records a visit by the household's steward or the desk.
pub async fn visit_checked(state: &AppState, c: &Caller, household_id: i64, note: &str) -> Result<CareVisit, AppError> {
    let a = access(state, c).await?;
    let h = state.store.household(household_id).await?.ok_or_else(|| AppError::NotFound(format!("household {household_id}")))?;
    c.ensure_scope(&h.rec.village_code)?;
    if !(a.operator || a.steward.as_ref().is_some_and(|s| s.villages.contains(&h.rec.village_code))) {
        return Err(AppError::Forbidden("only the household's steward or the desk may record visits".into()));
    }
    if note.trim().is_empty() {
        return Err(AppError::BadRequest("note: say what was done on the visit".into()));
    }
    let sid = a.steward.as_ref().map(|s| s.id);
    Ok(state.store.record_visit(household_id, sid, cuncun_store::now_ms(), note, &c.actor()).await?)
}

async fn record_visit(State(state): State<AppState>, c: Caller, Form(f): Form<VisitForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    match visit_checked(&state, &c, f.household_id, &f.note).await {
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
    let a = access(&state, &c).await?;
    let mut rows = Vec::new();
    for o in state.store.outlets_in(&c.user.region_code).await? {
        let checks = if o.kind == cuncun_domain::model::OutletKind::Township { state.store.outlet_checklist(o.id).await? } else { Vec::new() };
        rows.push((o, checks));
    }
    render(&OutletsPage { c: Chrome::of(&c, "/service/outlets"), rows, operator: a.operator })
}

async fn editable_outlet(state: &AppState, c: &Caller, id: i64) -> Result<Outlet, AppError> {
    if !can_operate_service(c.user.role) {
        return Err(AppError::Forbidden("only the service desk may edit outlets".into()));
    }
    let o = state.store.outlet(id).await?.ok_or_else(|| AppError::NotFound(format!("outlet {id}")))?;
    c.ensure_scope(&o.region_code)?;
    Ok(o)
}

#[derive(Deserialize)]
struct OutletForm {
    csrf: String,
    #[serde(default)]
    hotline: String,
    #[serde(default)]
    service_scope: String,
    #[serde(default)]
    process: String,
    #[serde(default)]
    head_user_id: String,
}

async fn update_outlet(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<OutletForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    editable_outlet(&state, &c, id).await?;
    let head = match f.head_user_id.trim() {
        "" => None,
        s => {
            let uid: i64 = s.parse().map_err(|_| AppError::BadRequest(format!("head_user_id: {s:?} is not a user id")))?;
            let u = state.store.user(uid).await?.ok_or_else(|| AppError::BadRequest(format!("head_user_id: user {uid} does not exist")))?;
            c.ensure_scope(&u.region_code)?;
            Some(uid)
        }
    };
    let patch = OutletPatch {
        hotline: Some(f.hotline),
        service_scope: Some(f.service_scope),
        process: Some(f.process),
        head_user_id: Some(head),
        ..Default::default()
    };
    state.store.update_outlet(id, &patch, &c.actor()).await?;
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
    editable_outlet(&state, &c, id).await?;
    let item = NineOnes::parse(&f.item).ok_or_else(|| AppError::BadRequest(format!("item: {:?} is not a checklist item", f.item)))?;
    state.store.set_outlet_check(id, item, !f.done.is_empty(), &f.evidence, &c.actor()).await?;
    Ok(Redirect::to("/service/outlets").into_response())
}

// ---- indicators ----

#[derive(Deserialize, Default)]
pub struct PeriodQuery {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// The scope, period and year of an indicator request; default: this month of the caller's region.
pub struct Period {
    pub scope: RegionCode,
    pub from_ms: i64,
    pub to_ms: i64,
    pub year: i64,
    pub from: String,
    pub to: String,
}

pub fn period_checked(c: &Caller, q: &PeriodQuery) -> Result<Period, AppError> {
    let scope = if q.region.trim().is_empty() { c.user.region_code.clone() } else { RegionCode::parse(&q.region).map_err(|e| AppError::BadRequest(format!("region: {e}")))? };
    c.ensure_scope(&scope)?;
    let (first, next) = time::month_bounds(cuncun_store::now_ms());
    let from = if q.from.trim().is_empty() { time::format_date(first) } else { q.from.trim().to_string() };
    let to = if q.to.trim().is_empty() { time::format_date(next) } else { q.to.trim().to_string() };
    let from_ms = day_start(&from, "from")?.unwrap_or(0);
    let to_ms = day_start(&to, "to")?.unwrap_or(0);
    if to_ms <= from_ms {
        return Err(AppError::BadRequest("to: must be after from".into()));
    }
    Ok(Period { scope, from_ms, to_ms, year: time::year_of(from_ms), from, to })
}

/// Indicators of the scope and of each child region.
pub async fn indicators_checked(state: &AppState, c: &Caller, p: &Period) -> Result<(Indicators, Vec<(RegionCode, String, Indicators)>), AppError> {
    access(state, c).await?;
    if p.scope.level() == cuncun_domain::RegionLevel::Village {
        let whole = state.store.service_counts(&p.scope, p.from_ms, p.to_ms, p.year, false).await?;
        return Ok((Indicators::from_counts(whole.into_iter().next().map(|r| r.counts).unwrap_or_default()), Vec::new()));
    }
    // A region's counts are the sums of its children's (every count is additive), so one read serves both.
    let mut sum = cuncun_domain::service::IndicatorCounts::default();
    let mut kids = Vec::new();
    for r in state.store.service_counts(&p.scope, p.from_ms, p.to_ms, p.year, true).await? {
        sum.add(&r.counts);
        let name = state.store.region(&r.region_code).await?.map(|x| x.name).unwrap_or_default();
        kids.push((r.region_code, name, Indicators::from_counts(r.counts)));
    }
    Ok((Indicators::from_counts(sum), kids))
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
    let p = period_checked(&c, &q)?;
    let (total, kids) = indicators_checked(&state, &c, &p).await?;
    render(&Dashboard {
        c: Chrome::of(&c, "/service"),
        region: p.scope.short().to_string(),
        from: p.from,
        to: p.to,
        total,
        kids,
    })
}

async fn indicators_csv(State(state): State<AppState>, c: Caller, Query(q): Query<PeriodQuery>) -> Result<Response, AppError> {
    let p = period_checked(&c, &q)?;
    let (total, kids) = indicators_checked(&state, &c, &p).await?;
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
    let scope_name = state.store.region(&p.scope).await?.map(|r| r.name).unwrap_or_default();
    out.push_str(&line(p.scope.short(), &scope_name, &total));
    for (code, name, i) in &kids {
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

async fn village_of(state: &AppState, code: &str) -> Result<cuncun_domain::model::Region, AppError> {
    let rc = RegionCode::parse(code).map_err(|_| AppError::NotFound(format!("village {code}")))?;
    if rc.level() != cuncun_domain::RegionLevel::Village {
        return Err(AppError::NotFound(format!("village {code}")));
    }
    state.store.region(&rc).await?.ok_or_else(|| AppError::NotFound(format!("village {code}")))
}

async fn public_view(state: &AppState, chrome: Chrome, code: &str, error: String) -> Result<Response, AppError> {
    let v = village_of(state, code).await?;
    let township_code = v.code.parent().unwrap_or_else(|| v.code.clone());
    let township = state.store.region(&township_code).await?.map(|r| r.name).unwrap_or_default();
    // Published information: the village's stewards (name and phone) and the township outlet.
    let mut stewards = Vec::new();
    for s in state.store.stewards_in(&township_code).await? {
        if s.villages.contains(&v.code) {
            stewards.push((s.name, s.phone));
        }
    }
    let outlets = state.store.outlets_in(&township_code).await?;
    let outlet = outlets.iter().find(|o| o.region_code == township_code).or(outlets.first()).cloned();
    let outlet = match outlet {
        Some(o) => Some(o),
        None => state.store.outlets_in(&township_code.parent().unwrap_or(township_code.clone())).await?.into_iter().find(|o| o.kind == cuncun_domain::model::OutletKind::County),
    };
    render(&PublicPage { c: chrome, code: v.code.short().into(), village: v.name, township, stewards, outlet, categories: TicketCategory::ALL, error })
}

async fn public_page(State(state): State<AppState>, headers: HeaderMap, uri: axum::http::Uri, Path(code): Path<String>) -> Result<Response, AppError> {
    public_view(&state, public_chrome(&headers, uri.query(), &format!("/r/{code}")), &code, String::new()).await
}

#[derive(Deserialize)]
struct PublicForm {
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
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
    let v = village_of(&state, &code).await?;
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
    let res = async {
        let mut t = new_ticket_from(&code, "repair", TicketSource::Public, &f.category, &f.name, &f.phone, &f.address, &f.description)?;
        t.confirm_token_hash = Some(crate::auth::token_hash(&token));
        validate_new_ticket(&state, &t).await?;
        Ok::<_, AppError>(state.store.create_ticket(&t, &Actor(format!("public:{client}"))).await?)
    }
    .await;
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
    let v = village_of(&state, &code).await?;
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
    let t = state
        .store
        .ticket_by_confirm_token(&crate::auth::token_hash(token))
        .await?
        .ok_or_else(|| AppError::NotFound("this confirmation link is not valid".into()))?;
    let steward = match t.steward_id {
        Some(id) => state.store.steward(id).await?.map(|s| s.name).unwrap_or_default(),
        None => String::new(),
    };
    let (clock_class, clock) = clock_of(&t, cuncun_store::now_ms(), state.opts.escalate_after.as_millis() as i64, chrome.lang);
    render(&ConfirmPage { c: chrome, t, steward, clock, clock_class, token: token.into(), done, error })
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
    let t = state
        .store
        .ticket_by_confirm_token(&crate::auth::token_hash(&token))
        .await?
        .ok_or_else(|| AppError::NotFound("this confirmation link is not valid".into()))?;
    let action = match f.action.as_str() {
        "confirm" => parse_action("confirm", "", "", &f.rating),
        "reopen" => Ok(TicketAction::Reopen { reason: if f.reason.trim().is_empty() { "居民反馈未修好 / resident says not fixed".into() } else { f.reason.clone() } }),
        other => Err(AppError::BadRequest(format!("action: {other:?} must be confirm or reopen"))),
    };
    let res = match action {
        Ok(a) => state.store.transition_ticket(t.id, &a, &Actor(format!("resident:ticket:{}", t.id)), cuncun_store::now_ms()).await.map_err(AppError::from),
        Err(e) => Err(e),
    };
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

/// Largest workbook accepted for an import (the reader's own limit).
const MAX_UPLOAD: usize = cuncun_xlsx::MAX_INPUT_BYTES;

pub fn registry_routes() -> Router<AppState> {
    Router::new()
        .route("/service/households", get(households_page))
        .route("/service/households/template.xlsx", get(households_template))
        .route("/service/households/export.xlsx", get(households_export))
        .route("/service/households/import", post(households_import).layer(DefaultBodyLimit::max(MAX_UPLOAD + 64 * 1024)))
        .route("/service/stewards", get(stewards_page))
        .route("/service/stewards/template.xlsx", get(stewards_template))
        .route("/service/stewards/export.xlsx", get(stewards_export))
        .route("/service/stewards/import", post(stewards_import).layer(DefaultBodyLimit::max(MAX_UPLOAD + 64 * 1024)))
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

/// Households the caller may see (a steward: their villages), masked as the role requires.
pub async fn households_checked(state: &AppState, c: &Caller, scope: &RegionCode, q: &HouseholdQuery, limit: i64, offset: i64) -> Result<Vec<Household>, AppError> {
    let a = access(state, c).await?;
    c.ensure_scope(scope)?;
    let mut rows = match &a.steward {
        Some(s) => {
            let mut all = Vec::new();
            for v in s.villages.iter().filter(|v| c.in_scope(v) && scope.contains(v)) {
                all.extend(state.store.households_in(v, q, limit + offset, 0).await?);
            }
            all.into_iter().skip(offset as usize).take(limit as usize).collect()
        }
        None => state.store.households_in(scope, q, limit, offset).await?,
    };
    for h in &mut rows {
        h.rec.head_name = a.name(&h.rec.head_name);
        h.rec.phone = a.phone(&h.rec.phone);
    }
    Ok(rows)
}

async fn households_page(State(state): State<AppState>, c: Caller, Query(q): Query<HouseholdListQuery>) -> Result<Response, AppError> {
    let a = access(&state, &c).await?;
    let page = q.page.unwrap_or(1).max(1);
    let hq = HouseholdQuery { care_only: !q.care.is_empty(), text: q.q.clone() };
    let mut rows = households_checked(&state, &c, &c.user.region_code, &hq, PAGE_ROWS + 1, (page - 1) * PAGE_ROWS).await?;
    let has_next = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    render(&HouseholdsPage { c: Chrome::of(&c, "/service/households"), rows, care: hq.care_only, q: q.q, page, has_next, operator: a.operator, masked: !a.unmasked })
}

async fn households_template(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    access(&state, &c).await?;
    Ok(xlsx_response("households-template.xlsx", cuncun_xlsx::households::households_template().map_err(sheet_err)?))
}

/// Every household in the caller's reach as .xlsx (masked for roles that do not see personal
/// data); each export is audited with its scope and row count.
pub async fn households_export_checked(state: &AppState, c: &Caller) -> Result<Vec<u8>, AppError> {
    let a = access(state, c).await?;
    let rows = households_checked(state, c, &c.user.region_code, &HouseholdQuery::default(), 1_000_000, 0).await?;
    let bytes = cuncun_xlsx::households::export_households(rows.iter().map(|h| &h.rec)).map_err(sheet_err)?;
    let after = serde_json::json!({ "rows": rows.len(), "masked": !a.unmasked }).to_string();
    state.store.audit(&c.actor(), "household.export", "household", c.user.region_code.short(), "", &after).await?;
    Ok(bytes)
}

async fn households_export(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    let bytes = households_export_checked(&state, &c).await?;
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

/// Region checks shared by both imports: loaded and inside the caller's scope.
async fn region_problem(state: &AppState, c: &Caller, code: &RegionCode, known: &mut HashMap<String, bool>) -> Result<Option<(String, String)>, AppError> {
    if !c.in_scope(code) {
        return Ok(Some((format!("区划 {code} 不在您的管辖范围内"), format!("region {code} is outside your region"))));
    }
    let exists = match known.get(code.as_str()) {
        Some(e) => *e,
        None => {
            let e = state.store.region(code).await?.is_some();
            known.insert(code.as_str().to_string(), e);
            e
        }
    };
    Ok((!exists).then(|| (format!("区划 {code} 尚未导入"), format!("region {code} is not loaded"))))
}

fn finish<T>(state: &AppState, c: &Caller, out: &cuncun_xlsx::ParseOutcome<T>, bytes: &[u8]) -> Result<RegistryImport, AppError> {
    let mut r = RegistryImport {
        imported: 0,
        errors: out.errors.iter().map(|e| (e.row, e.label.clone(), format!("{} / {}", e.message.zh, e.message.en))).collect(),
        report: None,
    };
    if !out.errors.is_empty() {
        let report = out.error_report(Some(bytes)).map_err(sheet_err)?;
        r.report = Some(state.downloads.put(c.user.id, "import-errors.xlsx".into(), XLSX, report));
    }
    Ok(r)
}

fn ensure_operator(c: &Caller) -> Result<(), AppError> {
    if can_operate_service(c.user.role) { Ok(()) } else { Err(AppError::Forbidden("only the service desk may import the registry".into())) }
}

/// Validates every row (file, regions, scope, duplicates against the registry), then imports all
/// rows in one transaction, or nothing when any row is bad unless `valid_rows_only`.
pub async fn import_households_checked(state: &AppState, c: &Caller, bytes: &[u8], valid_rows_only: bool) -> Result<RegistryImport, AppError> {
    ensure_operator(c)?;
    let mut out = cuncun_xlsx::households::parse_households(bytes);
    let existing: std::collections::HashSet<(String, String, String)> = state.store.household_keys(&c.user.region_code).await?.into_iter().collect();
    let mut known = HashMap::new();
    let mut found = Vec::new();
    for (row, h) in &out.valid {
        if let Some(m) = region_problem(state, c, &h.village_code, &mut known).await? {
            found.push((*row, "village_code", m));
        } else if existing.contains(&(h.village_code.as_str().to_string(), h.head_name.trim().to_string(), h.address.trim().to_string())) {
            found.push((*row, "head_name", ("已登记(同村、同户主、同住址)".to_string(), "already registered (same village, head and address)".to_string())));
        }
    }
    for (row, col, m) in found {
        out.add_error(row, col, m);
    }
    let mut r = finish(state, c, &out, bytes)?;
    if out.errors.is_empty() || valid_rows_only {
        let rows: Vec<HouseholdRecord> = out.valid.into_iter().map(|(_, h)| h).collect();
        if !rows.is_empty() {
            r.imported = state.store.import_households(&rows, "xlsx", &c.actor()).await? as usize;
        }
    }
    Ok(r)
}

async fn read_upload(mut mp: axum::extract::Multipart) -> Result<(String, Vec<u8>, bool), AppError> {
    let (mut csrf, mut file, mut valid_rows_only) = (String::new(), Vec::new(), false);
    while let Some(field) = mp.next_field().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.unwrap_or_default(),
            "mode" => valid_rows_only = field.text().await.unwrap_or_default() == "valid_rows",
            "file" => file = field.bytes().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))?.to_vec(),
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
    let a = access(&state, &c).await?;
    let mut rows = Vec::new();
    for s in state.store.stewards_in(&c.user.region_code).await? {
        let user = match s.user_id {
            Some(u) => state.store.user(u).await?.map(|u| u.username).unwrap_or_default(),
            None => String::new(),
        };
        rows.push((s, user));
    }
    render(&StewardsPage { c: Chrome::of(&c, "/service/stewards"), rows, operator: a.operator })
}

async fn stewards_template(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    access(&state, &c).await?;
    Ok(xlsx_response("stewards-template.xlsx", cuncun_xlsx::households::stewards_template().map_err(sheet_err)?))
}

async fn stewards_export(State(state): State<AppState>, c: Caller) -> Result<Response, AppError> {
    access(&state, &c).await?;
    let mut rows = Vec::new();
    for s in state.store.stewards_in(&c.user.region_code).await? {
        let username = match s.user_id {
            Some(u) => state.store.user(u).await?.map(|u| u.username).unwrap_or_default(),
            None => String::new(),
        };
        // A steward's name and phone are published to the villages: not masked.
        rows.push(cuncun_xlsx::households::StewardRow { name: s.name, phone: s.phone, township: s.region_code, villages: s.villages, username });
    }
    let bytes = cuncun_xlsx::households::export_stewards(rows.iter()).map_err(sheet_err)?;
    let after = serde_json::json!({ "rows": rows.len() }).to_string();
    state.store.audit(&c.actor(), "steward.export", "steward", c.user.region_code.short(), "", &after).await?;
    Ok(xlsx_response(&format!("stewards-{}.xlsx", c.user.region_code.short()), bytes))
}

/// Validates and imports a stewards sheet, all-or-nothing unless `valid_rows_only`.
pub async fn import_stewards_checked(state: &AppState, c: &Caller, bytes: &[u8], valid_rows_only: bool) -> Result<RegistryImport, AppError> {
    ensure_operator(c)?;
    let mut out = cuncun_xlsx::households::parse_stewards(bytes);
    let existing: std::collections::HashSet<(String, String)> =
        state.store.stewards_in(&c.user.region_code).await?.into_iter().map(|s| (s.name, s.phone)).collect();
    let mut known = HashMap::new();
    let mut found = Vec::new();
    let mut users: HashMap<u32, i64> = HashMap::new();
    for (row, s) in &out.valid {
        if let Some(m) = region_problem(state, c, &s.township, &mut known).await? {
            found.push((*row, "township_code", m));
        }
        for v in &s.villages {
            if let Some(m) = region_problem(state, c, v, &mut known).await? {
                found.push((*row, "villages", m));
            }
        }
        if existing.contains(&(s.name.clone(), s.phone.clone())) {
            found.push((*row, "name", ("已登记(同姓名同手机)".to_string(), "already registered (same name and phone)".to_string())));
        }
        if !s.username.is_empty() {
            match state.store.user_credentials(&s.username).await? {
                Some((u, _)) if u.role == cuncun_domain::Role::Steward && c.in_scope(&u.region_code) => {
                    users.insert(*row, u.id);
                }
                Some(_) => found.push((*row, "username", (format!("账号 {} 不是本辖区的管家账号", s.username), format!("account {} is not a steward account in your region", s.username)))),
                None => found.push((*row, "username", (format!("账号 {} 不存在", s.username), format!("account {} does not exist", s.username)))),
            }
        }
    }
    for (row, col, m) in found {
        out.add_error(row, col, m);
    }
    let mut r = finish(state, c, &out, bytes)?;
    if out.errors.is_empty() || valid_rows_only {
        let rows: Vec<StewardRecord> = out
            .valid
            .into_iter()
            .map(|(row, s)| StewardRecord { name: s.name, phone: s.phone, region_code: s.township, user_id: users.get(&row).copied(), villages: s.villages })
            .collect();
        if !rows.is_empty() {
            r.imported = state.store.import_stewards(&rows, "xlsx", &c.actor()).await? as usize;
        }
    }
    Ok(r)
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
    ensure_operator(&c)?;
    let s = state.store.steward(id).await?.ok_or_else(|| AppError::NotFound(format!("steward {id}")))?;
    c.ensure_scope(&s.region_code)?;
    let user = match f.username.trim() {
        "" => None,
        name => {
            let (u, _) = state.store.user_credentials(name).await?.ok_or_else(|| AppError::BadRequest(format!("username: {name:?} does not exist")))?;
            c.ensure_scope(&u.region_code)?;
            Some(u.id)
        }
    };
    state.store.set_steward_user(id, user, &c.actor()).await?;
    Ok(Redirect::to("/service/stewards").into_response())
}
