//! Coverage, indicators and the monthly report: the monthly report page (printable, with SVG
//! charts drawn here) and its .xlsx workbook, the region dashboard with trends and problem
//! villages, drill-downs from every figure to the records behind it, per-region targets and the
//! county "nine haves" checklist with evidence. The repair loop (terminal down → ticket) runs as
//! a background task started by `serve`.
//!
//! Access: reading needs `can_read_service` and the region in the caller's scope; targets and the
//! checklist are changed by administrators.

use crate::pages::{Chrome, render};
use crate::service_pages::access;
use crate::session::Caller;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use cuncun_domain::RegionCode;
use cuncun_domain::indicators::{self, CheckStatus, Evaluation, Month, NineHaves};
use cuncun_domain::service::{VISITS_PER_YEAR, percent, show_percent};
use cuncun_domain::time::{self, day_of, day_start, week_of};
use cuncun_store::report::*;
use cuncun_store::service::TicketFilter;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Largest evidence file accepted for the checklist.
pub const MAX_EVIDENCE: usize = 10 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/report", get(monthly_page))
        .route("/report/monthly.xlsx", get(monthly_xlsx))
        .route("/report/dashboard", get(dashboard_page))
        .route("/report/drill/{id}", get(drill_page))
        .route("/report/targets", get(targets_page).post(targets_post))
        .route(
            "/report/checklist",
            get(checklist_page).post(checklist_post).layer(DefaultBodyLimit::max(MAX_EVIDENCE + 64 * 1024)),
        )
        .route("/report/checklist/{item}/file", get(checklist_file))
        .route("/report/sites", get(sites_page).post(sites_add))
        .route("/report/sites/{id}", get(site_page).post(site_update))
        .route("/report/hamlets", get(hamlets_page).post(hamlet_assign))
}

// ---- text ----

const TEXT: &[(&str, &str, &str)] = &[
    ("rp.monthly", "月度报表", "Monthly report"),
    ("rp.dashboard", "运行看板", "Dashboard"),
    ("rp.targets", "指标目标", "Indicator targets"),
    ("rp.checklist", "县级“9个有”", "County \"nine haves\""),
    ("rp.region", "区域", "Region"),
    ("rp.month", "月份", "Month"),
    ("rp.show", "查看", "Show"),
    ("rp.print", "打印", "Print"),
    ("rp.xlsx", "下载 Excel", "Download .xlsx"),
    ("rp.indicator", "指标", "Indicator"),
    ("rp.value", "数值", "Value"),
    ("rp.target", "目标", "Target"),
    ("rp.status", "状态", "Status"),
    ("rp.met", "达标", "met"),
    ("rp.missed", "未达标", "missed"),
    ("rp.na", "无数据", "no data"),
    ("rp.fraction", "分子/分母", "Numerator/denominator"),
    ("rp.source", "依据", "Source"),
    ("rp.formula", "计算方法", "Formula"),
    ("rp.inherited", "继承自", "from"),
    ("rp.default", "默认", "default"),
    ("rp.daily_online", "每日在线率", "Daily online rate"),
    ("rp.tickets_week", "每周报修工单", "Tickets per week"),
    ("rp.coverage", "覆盖情况", "Coverage"),
    ("rp.villages", "行政村", "Villages"),
    ("rp.households", "户数", "Households"),
    ("rp.population", "人口", "Population"),
    ("rp.terminals", "应急广播终端", "Emergency terminals"),
    ("rp.online_now", "当前在线", "Online now"),
    ("rp.faulty_now", "报告故障", "Reporting faults"),
    ("rp.tickets", "报修工单", "Tickets"),
    ("rp.visits", "特殊群体走访", "Special-care visits"),
    ("rp.broadcasts", "应急广播播发", "Broadcasts"),
    ("rp.priority", "类别", "Kind"),
    ("rp.drill", "演练", "drill"),
    ("rp.messages", "消息数", "Messages"),
    ("rp.deliveries", "终端下发/接收/播放", "Terminal deliveries / received / played"),
    ("rp.by_region", "下级区域", "By region"),
    ("rp.problems", "问题行政村", "Problem villages"),
    ("rp.low_online", "近7日在线率", "Online rate, last 7 days"),
    ("rp.overdue", "超时工单", "Overdue tickets"),
    ("rp.uncovered", "未覆盖的20户以上自然村", "Uncovered hamlets of 20+ households"),
    ("rp.no_problems", "没有问题行政村。", "No problem villages."),
    ("rp.records", "明细", "Records"),
    ("rp.more", "仅显示前 1000 条", "Only the first 1,000 are shown"),
    ("rp.save", "保存", "Save"),
    ("rp.clear_hint", "留空则使用上级或默认目标", "Leave empty to use the parent's or the default target"),
    ("rp.evidence", "佐证材料", "Evidence"),
    ("rp.file", "附件", "File"),
    ("rp.nine_ones_link", "乡镇网点“九个一”清单", "Township outlets' \"nine ones\""),
    ("rp.updated", "更新", "Updated"),
    ("rp.sites", "发射台站与前端", "Transmitter and front-end sites"),
    ("rp.transmitters", "发射台站(在用/登记)", "Transmitter sites (in service / registered)"),
    ("rp.front_ends", "前端/广播室", "Front-ends / broadcast rooms"),
    ("rp.adapters", "适配器", "Adapters"),
    ("rp.site_name", "名称", "Name"),
    ("rp.site_kind", "类型", "Kind"),
    ("rp.village_code", "行政村代码", "Village code"),
    ("rp.hamlet", "自然村", "Hamlet"),
    ("rp.none", "(无)", "(none)"),
    ("rp.lon", "经度", "Longitude"),
    ("rp.lat", "纬度", "Latitude"),
    ("rp.frequencies", "频率/频道", "Frequencies / channels"),
    ("rp.power_w", "功率(瓦)", "Power (W)"),
    ("rp.in_service", "在用", "In service"),
    ("rp.add_site", "登记发射台站", "Register a transmitter site"),
    ("rp.edit_site", "修改发射台站", "Edit transmitter site"),
    ("rp.no_sites", "尚未登记发射台站。", "No transmitter sites registered."),
    ("rp.hamlets", "自然村覆盖与终端归属", "Hamlet coverage and terminal assignment"),
    ("rp.assign", "指定自然村", "Assign to hamlet"),
    ("rp.assigned", "所属自然村", "Hamlet served"),
    ("rp.by_name", "未指定(按名称匹配)", "unassigned (matched by name)"),
    ("rp.pick_village", "选择行政村以指定终端所属自然村:", "Open a village to assign its terminals to hamlets:"),
    ("rp.msg_note", "消息数按播发目标区域统计:目标区域包含本区域或位于本区域内即计一次,同一条消息在市和其下每个相关区县各计一次,不可逐级相加;终端下发、接收、播放数按终端所在区域统计,可逐级相加。", "Messages are counted where they were aimed: once in every region their target area lies in or covers, so a message for two counties counts once in each and once in the city (not additive). Terminal deliveries, receipts and plays count by the terminal's region and add up from counties to city."),
    ("rp.played", "播放", "played"),
    ("rp.masked", "姓名与电话已按权限隐藏", "Names and phones are masked for your role"),
    ("rp.per_village", "各行政村覆盖与台站", "Coverage and sites per village"),
    ("rp.method", "计算口径见 docs/INDICATORS.md;城市数据为下辖区县记录的合并计算,不是逐级填报。", "Methods in docs/INDICATORS.md; a city's figures are computed on the union of its counties' records, never retyped."),
];

impl Chrome {
    pub fn r(&self, key: &str) -> &'static str {
        match TEXT.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => {
                if self.lang == crate::i18n::Lang::Zh { zh } else { en }
            }
            None => self.lang.s(key),
        }
    }
    pub fn ind_name(&self, e: &Evaluation) -> &'static str {
        if self.lang == crate::i18n::Lang::Zh { e.def.name_zh } else { e.def.name_en }
    }
    pub fn ind_formula(&self, e: &Evaluation) -> &'static str {
        if self.lang == crate::i18n::Lang::Zh { e.def.formula_zh } else { e.def.formula_en }
    }
    pub fn met(&self, e: &Evaluation) -> &'static str {
        match e.met {
            Some(true) => self.r("rp.met"),
            Some(false) => self.r("rp.missed"),
            None => self.r("rp.na"),
        }
    }
    pub fn pc(&self, v: &Option<f64>) -> String {
        show_percent(*v)
    }
    pub fn nine_have(&self, i: &NineHaves) -> &'static str {
        if self.lang == crate::i18n::Lang::Zh { i.name_zh() } else { i.name_en() }
    }
    pub fn day(&self, ms: &i64) -> String {
        time::format_date(*ms)
    }
}

// ---- scope ----

#[derive(Deserialize, Default)]
pub struct ReportQuery {
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub month: String,
}

/// The region (default: the caller's) and month (default: this Beijing month) of a request,
/// after the role and scope checks.
pub async fn scope_checked(state: &AppState, c: &Caller, q: &ReportQuery) -> Result<(RegionCode, Month), AppError> {
    access(state, c).await?;
    let scope = if q.region.trim().is_empty() {
        c.user.region_code.clone()
    } else {
        RegionCode::parse(&q.region).map_err(|e| AppError::BadRequest(format!("region: {e}")))?
    };
    c.ensure_scope(&scope)?;
    let month = if q.month.trim().is_empty() { Month::of_ms(cuncun_store::now_ms()) } else { Month::parse(&q.month).map_err(|e| AppError::BadRequest(format!("month: {e}")))? };
    Ok((scope, month))
}

// ---- SVG charts ----

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart of percentages (0-100) with an optional target line; None values are gaps.
pub fn line_svg(id: &str, points: &[(String, Option<f64>)], target: Option<f64>) -> String {
    let (w, h, left, bottom, top) = (640.0, 220.0, 40.0, 24.0, 10.0);
    let n = points.len().max(1) as f64;
    let x = |i: usize| left + (w - left - 10.0) * (i as f64 + 0.5) / n;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v.clamp(0.0, 100.0) / 100.0);
    let mut s = format!(r#"<svg id="{}" class="chart" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#, esc(id));
    for v in [0.0, 50.0, 100.0] {
        s += &format!(r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="4" y="{}" font-size="10">{v}%</text>"##, w - 10.0, y(v) + 3.0, y = y(v));
    }
    if let Some(t) = target {
        s += &format!(r##"<line class="target" x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#c00" stroke-dasharray="4 3"/>"##, w - 10.0, y = y(t));
    }
    let mut path = String::new();
    let mut pen_up = true;
    for (i, (_, v)) in points.iter().enumerate() {
        match v {
            Some(v) => {
                path += &format!("{}{:.1},{:.1} ", if pen_up { "M" } else { "L" }, x(i), y(*v));
                pen_up = false;
            }
            None => pen_up = true,
        }
    }
    if !path.is_empty() {
        s += &format!(r##"<path d="{}" fill="none" stroke="#1565c0" stroke-width="2"/>"##, path.trim());
    }
    for (i, (label, v)) in points.iter().enumerate() {
        if let Some(v) = v {
            s += &format!(r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#1565c0"><title>{} {v:.2}%</title></circle>"##, x(i), y(*v), esc(label));
        }
        let every = (points.len() / 8).max(1);
        if i % every == 0 {
            s += &format!(r#"<text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"#, x(i), h - 6.0, esc(label));
        }
    }
    s + "</svg>"
}

/// A bar chart of counts.
pub fn bars_svg(id: &str, bars: &[(String, i64)]) -> String {
    let (w, h, left, bottom, top) = (640.0, 200.0, 40.0, 24.0, 14.0);
    let n = bars.len().max(1) as f64;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let bw = (w - left - 10.0) / n;
    let mut s = format!(r#"<svg id="{}" class="chart" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#, esc(id));
    s += &format!(r##"<line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#999"/>"##, w - 10.0, h - bottom, h - bottom);
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = (h - top - bottom) * (*v as f64) / max;
        let x0 = left + bw * i as f64 + bw * 0.15;
        s += &format!(
            r##"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#2e7d32"><title>{} {v}</title></rect><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle">{v}</text><text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"##,
            h - bottom - bh,
            bw * 0.7,
            esc(label),
            x0 + bw * 0.35,
            h - bottom - bh - 2.0,
            x0 + bw * 0.35,
            h - 6.0,
            esc(label)
        );
    }
    s + "</svg>"
}

fn day_label(day_start_ms: i64) -> String {
    time::format_month_day(day_start_ms)
}

fn online_points(days: &[(i64, i64, i64)]) -> Vec<(String, Option<f64>)> {
    days.iter().map(|(d, on, exp)| (day_label(*d), cuncun_domain::online::rate(*on, *exp))).collect()
}

fn week_bars(weeks: &[(i64, i64)]) -> Vec<(String, i64)> {
    weeks.iter().map(|(monday, n)| (day_label(day_start(*monday)), *n)).collect()
}

// ---- monthly report ----

#[derive(Template)]
#[template(path = "report/monthly.html")]
struct MonthlyPage {
    c: Chrome,
    r: MonthlyReport,
    region: String,
    month: String,
    online_svg: String,
    tickets_svg: String,
    /// (child code, name, [values of the key indicators]).
    kids: Vec<(String, String, Vec<String>)>,
    kid_heads: Vec<&'static str>,
    modes: Vec<(&'static str, i64)>,
    /// (priority, "✓" for drills, messages).
    msgs: Vec<(String, &'static str, i64)>,
}

const KID_COLUMNS: [&str; 6] = ["online_rate", "closure_24h", "hamlet_coverage", "cable_village", "fibre", "hd"];

async fn monthly_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, month) = scope_checked(&state, &c, &q).await?;
    let r = monthly_report(state.store.as_ref(), &scope, month, cuncun_store::now_ms()).await?;
    let target = r.evaluation("online_rate").map(|e| e.target);
    let chrome = Chrome::of(&c, "/report");
    let mut kid_heads: Vec<&'static str> = KID_COLUMNS.iter().map(|id| indicators::find(id).map(|d| if chrome.lang == crate::i18n::Lang::Zh { d.name_zh } else { d.name_en }).unwrap_or("")).collect();
    kid_heads.extend([chrome.r("rp.transmitters"), chrome.r("rp.front_ends")]);
    let kids = r
        .children
        .iter()
        .map(|k| {
            let mut vals: Vec<String> = KID_COLUMNS.iter().map(|id| show_percent(k.basis.value(id))).collect();
            vals.push(format!("{} / {}", k.sites.transmitters_in_service, k.sites.transmitters));
            vals.push(k.sites.front_ends.to_string());
            (k.code.short().to_string(), k.name.clone(), vals)
        })
        .collect();
    let modes = cuncun_domain::model::CoverageMode::ALL.iter().zip(r.basis.coverage.by_mode).map(|(m, n)| (mode_name(*m), n)).collect();
    render(&MonthlyPage {
        online_svg: line_svg("chart-online", &online_points(&r.daily_online), target),
        tickets_svg: bars_svg("chart-tickets", &week_bars(&r.tickets_per_week)),
        region: scope.short().to_string(),
        month: month.label(),
        c: chrome,
        kids,
        kid_heads,
        modes,
        msgs: r.broadcasts.messages.iter().map(|(p, d, n)| (p.clone(), if *d { "✓" } else { "" }, *n)).collect(),
        r,
    })
}

fn mode_name(m: cuncun_domain::model::CoverageMode) -> &'static str {
    use cuncun_domain::model::CoverageMode::*;
    match m {
        Cable => "有线 cable",
        Terrestrial => "地面数字 DTMB",
        Satellite => "卫星 satellite",
        Iptv => "IPTV",
        FiveG => "5G",
    }
}

// ---- workbook ----

fn xerr(e: rust_xlsxwriter::XlsxError) -> AppError {
    AppError::Internal(format!("workbook: {e}"))
}

/// The monthly report as an .xlsx workbook (sheets: 指标, 覆盖, 下级区域, 每日在线率, 每周工单, 播发).
pub fn report_workbook(r: &MonthlyReport) -> Result<Vec<u8>, AppError> {
    use rust_xlsxwriter::{Format, Workbook};
    let mut wb = Workbook::new();
    let bold = Format::new().set_bold();
    let pct = Format::new().set_num_format("0.00");
    let head = |ws: &mut rust_xlsxwriter::Worksheet, cols: &[&str]| -> Result<(), AppError> {
        for (j, h) in cols.iter().enumerate() {
            ws.write_string_with_format(0, j as u16, *h, &bold).map_err(xerr)?;
            ws.set_column_width(j as u16, 16).map_err(xerr)?;
        }
        Ok(())
    };
    {
        let ws = wb.add_worksheet().set_name("指标").map_err(xerr)?;
        head(ws, &["id", "指标 indicator", "数值 value %", "分子 numerator", "分母 denominator", "目标 target %", "达标 met", "计算方法 formula", "依据 source", "区域 region", "月份 month"])?;
        for (i, e) in r.evaluations.iter().enumerate() {
            let row = i as u32 + 1;
            ws.write_string(row, 0, e.def.id).map_err(xerr)?;
            ws.write_string(row, 1, e.def.name_zh).map_err(xerr)?;
            if let Some(v) = e.value {
                ws.write_number_with_format(row, 2, v, &pct).map_err(xerr)?;
            }
            ws.write_number(row, 3, e.numerator as f64).map_err(xerr)?;
            ws.write_number(row, 4, e.denominator as f64).map_err(xerr)?;
            ws.write_number(row, 5, e.target).map_err(xerr)?;
            ws.write_string(row, 6, match e.met { Some(true) => "是", Some(false) => "否", None => "" }).map_err(xerr)?;
            ws.write_string(row, 7, e.def.formula_zh).map_err(xerr)?;
            ws.write_string(row, 8, e.def.source).map_err(xerr)?;
            ws.write_string(row, 9, format!("{} {}", r.region.name, r.region.code.short())).map_err(xerr)?;
            ws.write_string(row, 10, r.month.label()).map_err(xerr)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name("覆盖").map_err(xerr)?;
        head(ws, &["项目 item", "数量 count"])?;
        let c = &r.basis.coverage;
        let mut rows: Vec<(String, i64)> = vec![
            ("行政村 villages".into(), c.villages),
            ("登记户 households".into(), c.households),
            ("人口 population".into(), c.population),
        ];
        for (m, n) in cuncun_domain::model::CoverageMode::ALL.iter().zip(c.by_mode) {
            rows.push((format!("收视方式 {}", mode_name(*m)), n));
        }
        rows.extend([
            ("有收视方式的户 receiving".into(), c.receiving),
            ("光纤入户 fibre".into(), c.fibre),
            ("高清 HD".into(), c.hd),
            ("有有线的行政村 cable villages".into(), c.cable_villages),
            ("终端≥2的行政村 villages with 2+ terminals".into(), c.villages_two_terminals),
            ("20户以上自然村 hamlets 20+".into(), c.big_hamlets),
            ("其中有终端 covered".into(), c.big_hamlets_covered),
            ("应急广播终端 terminals".into(), c.terminals),
            ("当前在线 online now".into(), r.terminals.online),
            ("发射台站 transmitter sites".into(), r.sites.transmitters),
            ("其中在用 in service".into(), r.sites.transmitters_in_service),
            ("前端/广播室 front-ends".into(), r.sites.front_ends),
            ("适配器 adapters".into(), r.sites.adapters),
            ("报告故障 faulty now".into(), r.terminals.faulty),
            ("报修工单 tickets".into(), r.basis.service.tickets),
            ("24小时内办结 closed in 24 h".into(), r.basis.service.closed_24h),
            ("本月走访 visits this month".into(), r.visits),
        ]);
        for (i, (k, v)) in rows.iter().enumerate() {
            ws.write_string(i as u32 + 1, 0, k).map_err(xerr)?;
            ws.write_number(i as u32 + 1, 1, *v as f64).map_err(xerr)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name("下级区域").map_err(xerr)?;
        let mut cols = vec!["代码 code", "名称 name", "户数 households", "工单 tickets", "终端 terminals"];
        cols.extend(indicators::CATALOGUE.iter().map(|d| d.id));
        cols.extend(["发射台站 transmitter sites", "在用 in service", "前端 front-ends"]);
        let site_col = 5 + indicators::CATALOGUE.len() as u16;
        head(ws, &cols)?;
        for (i, k) in r.children.iter().enumerate() {
            let row = i as u32 + 1;
            ws.write_string(row, 0, k.code.short()).map_err(xerr)?;
            ws.write_string(row, 1, &k.name).map_err(xerr)?;
            ws.write_number(row, 2, k.basis.coverage.households as f64).map_err(xerr)?;
            ws.write_number(row, 3, k.basis.service.tickets as f64).map_err(xerr)?;
            ws.write_number(row, 4, k.basis.coverage.terminals as f64).map_err(xerr)?;
            for (j, d) in indicators::CATALOGUE.iter().enumerate() {
                if let Some(v) = k.basis.value(d.id) {
                    ws.write_number_with_format(row, 5 + j as u16, v, &pct).map_err(xerr)?;
                }
            }
            ws.write_number(row, site_col, k.sites.transmitters as f64).map_err(xerr)?;
            ws.write_number(row, site_col + 1, k.sites.transmitters_in_service as f64).map_err(xerr)?;
            ws.write_number(row, site_col + 2, k.sites.front_ends as f64).map_err(xerr)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name("每日在线率").map_err(xerr)?;
        head(ws, &["日期 date", "在线率 rate %", "在线终端时 online h", "应在线终端时 expected h"])?;
        for (i, (d, on, exp)) in r.daily_online.iter().enumerate() {
            let row = i as u32 + 1;
            let date = time::format_date(*d);
            ws.write_string(row, 0, &date).map_err(xerr)?;
            if let Some(v) = cuncun_domain::online::rate(*on, *exp) {
                ws.write_number_with_format(row, 1, v, &pct).map_err(xerr)?;
            }
            ws.write_number(row, 2, *on as f64 / 3_600_000.0).map_err(xerr)?;
            ws.write_number(row, 3, *exp as f64 / 3_600_000.0).map_err(xerr)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name("每周工单").map_err(xerr)?;
        head(ws, &["周一 week of", "工单 tickets"])?;
        for (i, (monday, n)) in r.tickets_per_week.iter().enumerate() {
            let date = time::format_date(day_start(*monday));
            ws.write_string(i as u32 + 1, 0, &date).map_err(xerr)?;
            ws.write_number(i as u32 + 1, 1, *n as f64).map_err(xerr)?;
        }
    }
    {
        let ws = wb.add_worksheet().set_name("播发").map_err(xerr)?;
        head(ws, &["类别 priority", "演练 drill", "消息(不可逐级相加) messages (not additive)", "终端下发 terminal deliveries", "终端接收 received", "终端播放 played"])?;
        let mut row = 1;
        for (p, drill, n) in &r.broadcasts.messages {
            ws.write_string(row, 0, p).map_err(xerr)?;
            ws.write_string(row, 1, if *drill { "是" } else { "否" }).map_err(xerr)?;
            ws.write_number(row, 2, *n as f64).map_err(xerr)?;
            row += 1;
        }
        for (p, targeted, received, played) in &r.broadcasts.deliveries {
            ws.write_string(row, 0, p).map_err(xerr)?;
            ws.write_number(row, 3, *targeted as f64).map_err(xerr)?;
            ws.write_number(row, 4, *received as f64).map_err(xerr)?;
            ws.write_number(row, 5, *played as f64).map_err(xerr)?;
            row += 1;
        }
        ws.write_string(row + 1, 0, "消息数按目标区域统计:目标区域包含本区域或位于本区域内即计一次,不可逐级相加;终端下发/接收/播放按终端所在区域统计,可逐级相加。Messages count once in every region they were aimed at (not additive); terminal figures add up.").map_err(xerr)?;
    }
    wb.save_to_buffer().map_err(xerr)
}

async fn monthly_xlsx(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, month) = scope_checked(&state, &c, &q).await?;
    let r = monthly_report(state.store.as_ref(), &scope, month, cuncun_store::now_ms()).await?;
    let bytes = report_workbook(&r)?;
    let name = format!("cuncun-report-{}-{}.xlsx", scope.short(), month.label());
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        bytes,
    )
        .into_response())
}

// ---- dashboard ----

/// A village with something to act on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProblemVillage {
    pub code: String,
    pub name: String,
    pub online_rate: Option<f64>,
    pub overdue: i64,
    pub uncovered_hamlets: i64,
}

#[derive(Template)]
#[template(path = "report/dashboard.html")]
struct DashboardPage {
    c: Chrome,
    region: String,
    name: String,
    online_svg: String,
    tickets_svg: String,
    online_target: f64,
    problems: Vec<ProblemVillage>,
    evaluations: Vec<Evaluation>,
}

/// Villages under the online target over the last 7 days, with overdue tickets, or with an
/// uncovered hamlet of 20+ households; worst first.
pub async fn problem_villages(state: &AppState, scope: &RegionCode, online_target: f64, now: i64) -> Result<Vec<ProblemVillage>, AppError> {
    let today = day_of(now);
    let online = state.store.online_summary(scope, day_start(today - 6), day_start(today + 1), now, 12, false).await?;
    let mut by: BTreeMap<String, ProblemVillage> = BTreeMap::new();
    fn slot<'a>(by: &'a mut BTreeMap<String, ProblemVillage>, code: &str) -> &'a mut ProblemVillage {
        by.entry(code.to_string()).or_insert_with(|| ProblemVillage { code: code.to_string(), name: String::new(), online_rate: None, overdue: 0, uncovered_hamlets: 0 })
    }
    for (code, (on, exp)) in &online.by_group {
        if let Some(rate) = percent(*on, *exp)
            && rate < online_target
        {
            slot(&mut by, code).online_rate = Some(rate);
        }
    }
    let mut f = TicketFilter::scope(scope);
    f.overdue = true;
    f.now_ms = now;
    for t in state.store.tickets(&f, 5000, 0).await? {
        slot(&mut by, t.village_code.as_str()).overdue += 1;
    }
    for h in state.store.hamlet_coverage(scope).await? {
        if h.households >= indicators::HAMLET_MIN_HOUSEHOLDS && h.terminals == 0 {
            slot(&mut by, h.village_code.as_str()).uncovered_hamlets += 1;
        }
    }
    let mut v: Vec<ProblemVillage> = by.into_values().collect();
    v.sort_by(|a, b| {
        (b.overdue, b.uncovered_hamlets, -(a.online_rate.unwrap_or(100.0) * 100.0) as i64)
            .cmp(&(a.overdue, a.uncovered_hamlets, -(b.online_rate.unwrap_or(100.0) * 100.0) as i64))
            .then_with(|| a.code.cmp(&b.code))
    });
    v.truncate(200);
    for p in &mut v {
        if let Ok(code) = RegionCode::parse(&p.code) {
            p.name = state.store.region(&code).await?.map(|r| r.name).unwrap_or_default();
        }
    }
    Ok(v)
}

async fn dashboard_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let now = cuncun_store::now_ms();
    let region = state.store.region(&scope).await?.ok_or_else(|| AppError::NotFound(format!("region {scope}")))?;
    let today = day_of(now);
    let online = state.store.online_summary(&scope, day_start(today - 29), day_start(today + 1), now, 12, false).await?;
    let first_week = week_of(today) - 11 * 7;
    let per_day = state.store.tickets_per_day(&scope, day_start(first_week), day_start(today + 1)).await?;
    let mut weeks: BTreeMap<i64, i64> = (0..12).map(|i| (first_week + 7 * i, 0)).collect();
    for (d, n) in per_day {
        *weeks.entry(week_of(d)).or_insert(0) += n;
    }
    let month = Month::of_ms(now);
    let (basis, _, _) = bases(state.store.as_ref(), &scope, month, now).await?;
    let evaluations = evaluate_all(state.store.as_ref(), &scope, &basis).await?;
    let online_target = evaluations.iter().find(|e| e.def.id == "online_rate").map(|e| e.target).unwrap_or(90.0);
    let problems = problem_villages(&state, &scope, online_target, now).await?;
    render(&DashboardPage {
        c: Chrome::of(&c, "/report/dashboard"),
        region: scope.short().to_string(),
        name: region.name,
        online_svg: line_svg("chart-online", &online_points(&online.days), Some(online_target)),
        tickets_svg: bars_svg("chart-tickets", &week_bars(&weeks.into_iter().collect::<Vec<_>>())),
        online_target,
        problems,
        evaluations,
    })
}

// ---- drill-down ----

#[derive(Template)]
#[template(path = "report/drill.html")]
struct DrillPage {
    c: Chrome,
    region: String,
    month: String,
    e: Evaluation,
    /// Per child region: code, name, numerator, denominator, value.
    kids: Vec<(String, String, i64, i64, String)>,
    heads: Vec<String>,
    rows: Vec<Vec<String>>,
    truncated: bool,
    /// Names and phones are masked for the caller's role.
    masked: bool,
}

const DRILL_LIMIT: usize = 1000;
/// Special-care households read for the visit drill-down (sorted here, shortest of the plan first).
const CARE_LIMIT: i64 = 20_000;

/// A required household field's name (docs/INDICATORS.md, data completeness).
fn field_name(key: &str) -> &'static str {
    match key {
        "head_name" => "户主 head",
        "phone" => "电话 phone",
        "address" => "地址 address",
        "hamlet" => "自然村 hamlet",
        "reception" => "收视方式 reception",
        _ => "?",
    }
}

async fn drill_page(State(state): State<AppState>, c: Caller, Path(id): Path<String>, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, month) = scope_checked(&state, &c, &q).await?;
    let def = indicators::find(&id).ok_or_else(|| AppError::NotFound(format!("indicator {id:?}")))?;
    let now = cuncun_store::now_ms();
    let (basis, children, _) = bases(state.store.as_ref(), &scope, month, now).await?;
    let e = evaluate_all(state.store.as_ref(), &scope, &basis).await?.into_iter().find(|e| e.def.id == def.id).ok_or_else(|| AppError::NotFound(id.clone()))?;
    let kids = children
        .iter()
        .map(|k| {
            let (n, d) = k.basis.fraction(def.id).unwrap_or((0, 0));
            (k.code.short().to_string(), k.name.clone(), n, d, show_percent(percent(n, d)))
        })
        .collect();
    let s = |v: &str| v.to_string();
    let a = access(&state, &c).await?;
    let (mut masked, mut truncated_source) = (false, false);
    let (heads, mut rows): (Vec<String>, Vec<Vec<String>>) = match def.id {
        "online_rate" => {
            let o = state.store.online_summary(&scope, month.start_ms(), month.end_ms(), now, 12, true).await?;
            let mut t = o.terminals;
            t.sort_by_key(|t| if t.expected_ms > 0 { t.online_ms * 10_000 / t.expected_ms } else { i64::MAX });
            (
                vec![s("终端 terminal"), s("编码 code"), s("行政村 village"), s("在线(时) online h"), s("应在线(时) expected h"), s("在线率 rate")],
                t.into_iter()
                    .map(|t| vec![t.name, t.ebrid, t.region_code, format!("{:.1}", t.online_ms as f64 / 3.6e6), format!("{:.1}", t.expected_ms as f64 / 3.6e6), show_percent(percent(t.online_ms, t.expected_ms))])
                    .collect(),
            )
        }
        "hamlet_coverage" => (
            vec![s("自然村 hamlet"), s("行政村 village"), s("户数 households"), s("终端 terminals"), s("覆盖 covered")],
            state
                .store
                .hamlet_coverage(&scope)
                .await?
                .into_iter()
                .filter(|h| h.households >= indicators::HAMLET_MIN_HOUSEHOLDS)
                .map(|h| vec![h.name, h.village_code.short().to_string(), h.households.to_string(), h.terminals.to_string(), if h.terminals > 0 { s("是") } else { s("否") }])
                .collect(),
        ),
        "closure" | "closure_24h" | "complaint" | "satisfaction" => {
            let mut f = TicketFilter::scope(&scope);
            f.from_ms = Some(month.start_ms());
            f.to_ms = Some(month.end_ms());
            f.now_ms = now;
            let ts = state.store.tickets(&f, DRILL_LIMIT as i64 + 1, 0).await?;
            let chrome = Chrome::of(&c, "");
            (
                vec![s("工单 ticket"), s("类型 kind"), s("行政村 village"), s("状态 status"), s("受理 requested"), s("办结 resolved"), s("24小时内 within 24 h"), s("评分 rating")],
                ts.into_iter()
                    .filter(|t| t.status != cuncun_domain::service::TicketStatus::Cancelled)
                    .map(|t| {
                        let within = t.resolved_at_ms.is_some_and(|r| r - t.created_at_ms <= cuncun_domain::service::SLA_MS);
                        vec![
                            format!("#{}", t.id),
                            t.kind.key().to_string(),
                            t.village_code.short().to_string(),
                            t.status.key().to_string(),
                            chrome.time(&t.created_at_ms),
                            t.resolved_at_ms.map(|r| chrome.time(&r)).unwrap_or_default(),
                            if within { s("是") } else { s("否") },
                            t.rating.map(|r| r.to_string()).unwrap_or_default(),
                        ]
                    })
                    .collect(),
            )
        }
        "care_visits" => {
            // Special-care households with this year's visits, those short of the plan first;
            // personal data masked as on the service pages, a steward sees their villages only.
            masked = !a.unmasked;
            let mut plan: Vec<_> = state.store.visit_plan(&scope, month.year, CARE_LIMIT, 0).await?.into_iter().filter(|p| a.sees_village(&p.household.rec.village_code)).collect();
            truncated_source = plan.len() as i64 >= CARE_LIMIT;
            plan.sort_by_key(|p| (p.done.min(VISITS_PER_YEAR), p.household.rec.village_code.clone(), p.household.id));
            (
                vec![s("户主 head"), s("电话 phone"), s("行政村 village"), s("自然村 hamlet"), s("地址 address"), s("类别 care"), s("本年走访 visits this year"), s("达到2次 2 done")],
                plan.into_iter()
                    .map(|p| {
                        let h = &p.household.rec;
                        let care: Vec<&str> = [(h.care_elderly, "留守老人"), (h.care_children, "留守儿童"), (h.care_disabled, "残疾人")].iter().filter(|x| x.0).map(|x| x.1).collect();
                        vec![
                            a.name(&h.head_name),
                            a.phone(&h.phone),
                            h.village_code.short().to_string(),
                            h.hamlet.clone().unwrap_or_default(),
                            h.address.clone(),
                            care.join("、"),
                            p.done.to_string(),
                            if p.done >= VISITS_PER_YEAR { s("是") } else { s("否") },
                        ]
                    })
                    .collect(),
            )
        }
        "data_completeness" => {
            masked = !a.unmasked;
            let rows = state.store.incomplete_households(&scope, CARE_LIMIT).await?;
            truncated_source = rows.len() as i64 >= CARE_LIMIT;
            (
                vec![s("户主 head"), s("电话 phone"), s("行政村 village"), s("自然村 hamlet"), s("地址 address"), s("缺少 missing")],
                rows.into_iter()
                    .filter(|h| a.sees_village(&h.village_code))
                    .map(|h| vec![a.name(&h.head_name), a.phone(&h.phone), h.village_code.short().to_string(), h.hamlet, h.address, h.missing.iter().map(|f| field_name(f)).collect::<Vec<_>>().join("、")])
                    .collect(),
            )
        }
        _ => {
            // Coverage indicators: per village, the numerator and denominator.
            let vs = state.store.village_coverage(&scope).await?;
            (
                vec![s("行政村 village"), s("代码 code"), s("分子 numerator"), s("分母 denominator"), s("比例 rate")],
                vs.into_iter()
                    .map(|v| {
                        let b = indicators::Basis { coverage: v.counts, ..Default::default() };
                        let (n, d) = b.fraction(def.id).unwrap_or((0, 0));
                        vec![v.name, v.code.short().to_string(), n.to_string(), d.to_string(), show_percent(percent(n, d))]
                    })
                    .collect(),
            )
        }
    };
    let truncated = truncated_source || rows.len() > DRILL_LIMIT;
    rows.truncate(DRILL_LIMIT);
    render(&DrillPage { c: Chrome::of(&c, "/report/drill"), region: scope.short().to_string(), month: month.label(), e, kids, heads, rows, truncated, masked })
}

// ---- targets ----

#[derive(Template)]
#[template(path = "report/targets.html")]
struct TargetsPage {
    c: Chrome,
    region: String,
    evaluations: Vec<Evaluation>,
    own: BTreeMap<String, f64>,
    can_edit: bool,
}

impl TargetsPage {
    /// The region's own target of an indicator, "" when it inherits.
    fn own_of(&self, id: &str) -> String {
        self.own.get(id).map(|v| v.to_string()).unwrap_or_default()
    }
}

async fn targets_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let evaluations = evaluate_all(state.store.as_ref(), &scope, &indicators::Basis::default()).await?;
    let own = state.store.targets_for(&scope).await?.into_iter().filter(|t| t.region_code == scope).map(|t| (t.indicator, t.target)).collect();
    render(&TargetsPage { can_edit: c.user.role.can_manage_users(), c: Chrome::of(&c, "/report/targets"), region: scope.short().to_string(), evaluations, own })
}

#[derive(Deserialize)]
pub struct TargetForm {
    #[serde(default)]
    pub csrf: String,
    pub region: String,
    pub indicator: String,
    #[serde(default)]
    pub target: String,
}

/// Sets or clears a region's target (administrators, within their region).
pub async fn set_target_checked(state: &AppState, c: &Caller, region: &str, indicator: &str, target: &str) -> Result<RegionCode, AppError> {
    c.ensure_admin()?;
    let scope = RegionCode::parse(region).map_err(|e| AppError::BadRequest(format!("region: {e}")))?;
    c.ensure_scope(&scope)?;
    let value = match target.trim() {
        "" => None,
        t => Some(t.trim_end_matches('%').parse::<f64>().map_err(|_| AppError::BadRequest(format!("target: {t:?} is not a number")))?),
    };
    state.store.set_target(&scope, indicator, value, &c.actor()).await?;
    Ok(scope)
}

async fn targets_post(State(state): State<AppState>, c: Caller, Form(f): Form<TargetForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let scope = set_target_checked(&state, &c, &f.region, &f.indicator, &f.target).await?;
    Ok(Redirect::to(&format!("/report/targets?region={}", scope.short())).into_response())
}

// ---- the county checklist ----

#[derive(Template)]
#[template(path = "report/checklist.html")]
struct ChecklistPage {
    c: Chrome,
    region: String,
    name: String,
    items: Vec<CountyCheck>,
    statuses: Vec<CheckStatus>,
    can_edit: bool,
}

async fn checklist_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let name = state.store.region(&scope).await?.map(|r| r.name).unwrap_or_default();
    let items = state.store.county_checklist(&scope).await?;
    render(&ChecklistPage {
        can_edit: c.user.role.can_manage_users(),
        c: Chrome::of(&c, "/report/checklist"),
        region: scope.short().to_string(),
        name,
        items,
        statuses: CheckStatus::ALL.to_vec(),
    })
}

async fn checklist_post(State(state): State<AppState>, c: Caller, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut region, mut item, mut status, mut evidence) = (String::new(), String::new(), String::new(), String::new(), String::new());
    let mut file: Option<EvidenceFile> = None;
    while let Some(field) = mp.next_field().await.map_err(|e| AppError::BadRequest(format!("upload: {e}")))? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let fname = field.file_name().unwrap_or("").to_string();
                let ctype = field.content_type().unwrap_or("application/octet-stream").to_string();
                let bytes = field.bytes().await.map_err(|e| AppError::BadRequest(format!("file: {e}")))?.to_vec();
                if !bytes.is_empty() {
                    if bytes.len() > MAX_EVIDENCE {
                        return Err(AppError::BadRequest(format!("file: larger than {} MB", MAX_EVIDENCE / 1024 / 1024)));
                    }
                    file = Some(EvidenceFile { name: if fname.is_empty() { "evidence".into() } else { fname }, content_type: ctype, bytes });
                }
            }
            _ => {
                let v = field.text().await.map_err(|e| AppError::BadRequest(format!("{name}: {e}")))?;
                match name.as_str() {
                    "csrf" => csrf = v,
                    "region" => region = v,
                    "item" => item = v,
                    "status" => status = v,
                    "evidence" => evidence = v,
                    _ => {}
                }
            }
        }
    }
    c.check_csrf(&csrf)?;
    c.ensure_admin()?;
    let scope = RegionCode::parse(&region).map_err(|e| AppError::BadRequest(format!("region: {e}")))?;
    c.ensure_scope(&scope)?;
    let item = NineHaves::parse(&item).ok_or_else(|| AppError::BadRequest(format!("item: {item:?} is not one of the nine haves")))?;
    let status = CheckStatus::parse(&status).ok_or_else(|| AppError::BadRequest(format!("status: {status:?} must be missing, partial or done")))?;
    state.store.set_county_check(&scope, item, status, &evidence, file.as_ref(), &c.actor()).await?;
    Ok(Redirect::to(&format!("/report/checklist?region={}", scope.short())).into_response())
}

async fn checklist_file(State(state): State<AppState>, c: Caller, Path(item): Path<String>, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let item = NineHaves::parse(&item).ok_or_else(|| AppError::NotFound(format!("checklist item {item:?}")))?;
    let f = state.store.county_check_file(&scope, item).await?.ok_or_else(|| AppError::NotFound(format!("no file for {} of {scope}", item.key())))?;
    let safe: String = f.name.chars().filter(|ch| !ch.is_control() && *ch != '"' && *ch != '\\').collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}\"", safe.replace(|ch: char| !ch.is_ascii(), "_"))),
        ],
        f.bytes,
    )
        .into_response())
}

// ---- transmitter sites ----

/// Who may register and edit transmitter sites and assign terminals to hamlets: those who keep
/// the registry (administrators and broadcasters), within their region.
fn ensure_registry_editor(c: &Caller) -> Result<(), AppError> {
    if c.user.role.can_edit_regions() {
        Ok(())
    } else {
        Err(AppError::Forbidden("only administrators and broadcasters keep the site registry".into()))
    }
}

#[derive(Template)]
#[template(path = "report/sites.html")]
struct SitesPage {
    c: Chrome,
    region: String,
    sites: Vec<TransmitterSite>,
    counts: SiteCounts,
    /// Coverage per village with its sites (at most [`DRILL_LIMIT`] villages).
    villages: Vec<VillageCoverage>,
    villages_truncated: bool,
    kinds: Vec<TransmitterKind>,
    can_edit: bool,
}

impl Chrome {
    /// An optional id equals an id (selected options).
    pub fn same(&self, a: &Option<i64>, b: &i64) -> bool {
        *a == Some(*b)
    }
    pub fn site_kind(&self, k: &TransmitterKind) -> &'static str {
        if self.lang == crate::i18n::Lang::Zh { k.name_zh() } else { k.name_en() }
    }
}

fn opt(v: &Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl SitesPage {
    fn opt(&self, v: &Option<f64>) -> String {
        opt(v)
    }
}

/// The site and front-end counts of a whole region.
pub async fn site_totals(state: &AppState, scope: &RegionCode) -> Result<SiteCounts, AppError> {
    Ok(state.store.sites_grouped(scope, scope.level().digits()).await?.into_values().fold(SiteCounts::default(), |mut a, x| {
        a.add(&x);
        a
    }))
}

async fn sites_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let sites = state.store.transmitter_sites(&scope).await?;
    let counts = site_totals(&state, &scope).await?;
    // Per village only up to a county (a city has thousands of villages: open a county).
    let mut villages = if scope.level() >= cuncun_domain::RegionLevel::County { state.store.village_coverage(&scope).await? } else { Vec::new() };
    let villages_truncated = villages.len() > DRILL_LIMIT;
    villages.truncate(DRILL_LIMIT);
    render(&SitesPage {
        villages,
        villages_truncated,
        can_edit: c.user.role.can_edit_regions(),
        c: Chrome::of(&c, "/report/sites"),
        region: scope.short().to_string(),
        sites,
        counts,
        kinds: TransmitterKind::ALL.to_vec(),
    })
}

#[derive(Deserialize, Default)]
pub struct SiteForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub village_code: String,
    #[serde(default)]
    pub hamlet: String,
    #[serde(default)]
    pub lon: String,
    #[serde(default)]
    pub lat: String,
    #[serde(default)]
    pub frequencies: String,
    #[serde(default)]
    pub power_w: String,
    /// Present ("1") when the box is ticked.
    #[serde(default)]
    pub in_service: String,
}

fn number(field: &str, v: &str) -> Result<Option<f64>, AppError> {
    match v.trim() {
        "" => Ok(None),
        t => t.parse::<f64>().map(Some).map_err(|_| AppError::BadRequest(format!("{field}: {t:?} is not a number"))),
    }
}

/// The form as a site, after the role and scope checks; the hamlet is given by name (or id)
/// among the village's hamlets.
async fn site_of_form(state: &AppState, c: &Caller, f: &SiteForm) -> Result<NewTransmitterSite, AppError> {
    c.check_csrf(&f.csrf)?;
    access(state, c).await?;
    ensure_registry_editor(c)?;
    let village_code = RegionCode::parse(f.village_code.trim()).map_err(|e| AppError::BadRequest(format!("village_code: {e}")))?;
    c.ensure_scope(&village_code)?;
    if village_code.level() != cuncun_domain::RegionLevel::Village {
        return Err(AppError::BadRequest(format!("village_code: {} is not an administrative village (12 digits, level 5)", village_code.short())));
    }
    let kind = TransmitterKind::parse(&f.kind).ok_or_else(|| AppError::BadRequest(format!("kind: {:?} must be one of tv, fm, dtmb, mw, relay", f.kind)))?;
    let hamlet_id = match f.hamlet.trim() {
        "" => None,
        h => {
            let hs = state.store.hamlets(&village_code).await?;
            Some(
                hs.iter()
                    .find(|x| x.name == h || x.id.to_string() == h)
                    .map(|x| x.id)
                    .ok_or_else(|| AppError::BadRequest(format!("hamlet: village {} has no hamlet {h:?}", village_code.short())))?,
            )
        }
    };
    Ok(NewTransmitterSite {
        name: f.name.trim().to_string(),
        kind,
        village_code,
        hamlet_id,
        lon: number("lon", &f.lon)?,
        lat: number("lat", &f.lat)?,
        frequencies: f.frequencies.trim().to_string(),
        power_w: number("power_w", &f.power_w)?,
        in_service: !f.in_service.is_empty(),
    })
}

async fn sites_add(State(state): State<AppState>, c: Caller, Form(f): Form<SiteForm>) -> Result<Response, AppError> {
    let site = site_of_form(&state, &c, &f).await?;
    let saved = state.store.add_transmitter_site(&site, &c.actor()).await?;
    Ok(Redirect::to(&format!("/report/sites?region={}", saved.site.village_code.short())).into_response())
}

/// A site the caller may see (its village in the caller's region).
pub async fn site_checked(state: &AppState, c: &Caller, id: i64) -> Result<TransmitterSite, AppError> {
    access(state, c).await?;
    let site = state.store.transmitter_site(id).await?.ok_or_else(|| AppError::NotFound(format!("transmitter site {id}")))?;
    c.ensure_scope(&site.site.village_code)?;
    Ok(site)
}

#[derive(Template)]
#[template(path = "report/site_edit.html")]
struct SiteEditPage {
    c: Chrome,
    region: String,
    s: TransmitterSite,
    hamlets: Vec<cuncun_domain::model::Hamlet>,
    kinds: Vec<TransmitterKind>,
    can_edit: bool,
}

impl SiteEditPage {
    fn opt(&self, v: &Option<f64>) -> String {
        opt(v)
    }
}

async fn site_page(State(state): State<AppState>, c: Caller, Path(id): Path<i64>) -> Result<Response, AppError> {
    let s = site_checked(&state, &c, id).await?;
    let hamlets = state.store.hamlets(&s.site.village_code).await?;
    render(&SiteEditPage {
        can_edit: c.user.role.can_edit_regions(),
        c: Chrome::of(&c, "/report/sites"),
        region: s.site.village_code.short().to_string(),
        s,
        hamlets,
        kinds: TransmitterKind::ALL.to_vec(),
    })
}

async fn site_update(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<SiteForm>) -> Result<Response, AppError> {
    site_checked(&state, &c, id).await?;
    let site = site_of_form(&state, &c, &f).await?;
    let saved = state.store.update_transmitter_site(id, &site, &c.actor()).await?;
    Ok(Redirect::to(&format!("/report/sites?region={}", saved.site.village_code.short())).into_response())
}

// ---- hamlet coverage and terminal assignment ----

#[derive(Template)]
#[template(path = "report/hamlets.html")]
struct HamletsPage {
    c: Chrome,
    region: String,
    is_village: bool,
    hamlets: Vec<HamletCoverage>,
    /// (terminal, its kind's name, the hamlet it is assigned to).
    terminals: Vec<(TerminalHamlet, &'static str)>,
    can_edit: bool,
    min_households: i64,
}

async fn hamlets_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let (scope, _) = scope_checked(&state, &c, &q).await?;
    let is_village = scope.level() == cuncun_domain::RegionLevel::Village;
    let mut hamlets = state.store.hamlet_coverage(&scope).await?;
    hamlets.truncate(DRILL_LIMIT);
    let chrome = Chrome::of(&c, "/report/hamlets");
    let terminals = if is_village {
        state
            .store
            .terminal_hamlets(&scope, DRILL_LIMIT as i64)
            .await?
            .into_iter()
            .map(|t| {
                let kind = cuncun_domain::eb::ResourceKind::parse(&t.kind).map(|k| if chrome.lang == crate::i18n::Lang::Zh { k.name_zh() } else { k.name_en() }).unwrap_or("");
                (t, kind)
            })
            .collect()
    } else {
        Vec::new()
    };
    render(&HamletsPage {
        can_edit: c.user.role.can_edit_regions(),
        c: chrome,
        region: scope.short().to_string(),
        is_village,
        hamlets,
        terminals,
        min_households: indicators::HAMLET_MIN_HOUSEHOLDS,
    })
}

#[derive(Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    pub csrf: String,
    pub resource_id: i64,
    /// Hamlet id; empty clears the assignment.
    #[serde(default)]
    pub hamlet_id: String,
}

async fn hamlet_assign(State(state): State<AppState>, c: Caller, Form(f): Form<AssignForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    access(&state, &c).await?;
    ensure_registry_editor(&c)?;
    let r = state.store.resource(f.resource_id).await?.ok_or_else(|| AppError::NotFound(format!("terminal {}", f.resource_id)))?;
    c.ensure_scope(&r.region_code)?;
    let hamlet = match f.hamlet_id.trim() {
        "" => None,
        h => Some(h.parse::<i64>().map_err(|_| AppError::BadRequest(format!("hamlet_id: {h:?} is not a hamlet id")))?),
    };
    state.store.set_terminal_hamlet(r.id, hamlet, &c.actor()).await?;
    Ok(Redirect::to(&format!("/report/hamlets?region={}", r.region_code.short())).into_response())
}
