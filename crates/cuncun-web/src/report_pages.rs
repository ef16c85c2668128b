//! Coverage, indicators and the monthly report: the monthly report page (printable, with SVG
//! charts drawn here) and its .xlsx workbook, the region dashboard with trends and problem
//! villages, drill-downs from every figure to the records behind it, per-region targets and the
//! county "nine haves" checklist with evidence. The repair loop (terminal down → ticket) runs as
//! a background task started by `serve`.
//!
//! Access: reading needs `can_read_service` and the region in the caller's scope; targets and the
//! checklist are changed by administrators.

use crate::pages::{Chrome, render};
use crate::session::Caller;
use crate::{AppError, AppState};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use cuncun_app::records::report::*;
use cuncun_app::reports::{CheckInput, DrillRecords, ProblemVillage, ReportQuery, SiteInput};
use cuncun_domain::indicators::{self, CheckStatus, Evaluation, NineHaves};
use cuncun_domain::service::{VISITS_PER_YEAR, percent, show_percent};
use cuncun_domain::time::{self, day_start};
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
        .route("/report/checklist", get(checklist_page).post(checklist_post))
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
    /// (priority, drill mark, delivered, received, played).
    deliveries: Vec<(String, &'static str, i64, i64, i64)>,
}

const KID_COLUMNS: [&str; 6] = ["online_rate", "closure_24h", "hamlet_coverage", "cable_village", "fibre", "hd"];

async fn monthly_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let r = state.app().monthly_report(&p, &q).await?;
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
        region: r.region.code.short().to_string(),
        month: r.month.label(),
        c: chrome,
        kids,
        kid_heads,
        modes,
        msgs: r.broadcasts.messages.iter().map(|(p, d, n)| (p.clone(), if *d { "✓" } else { "" }, *n)).collect(),
        deliveries: r.broadcasts.deliveries.iter().map(|(p, d, t, rcv, pl)| (p.clone(), if *d { "✓" } else { "" }, *t, *rcv, *pl)).collect(),
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
        for (p, drill, targeted, received, played) in &r.broadcasts.deliveries {
            ws.write_string(row, 0, p).map_err(xerr)?;
            ws.write_string(row, 1, if *drill { "是" } else { "否" }).map_err(xerr)?;
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
    let p = c.principal(&state).await?;
    let r = state.app().monthly_report(&p, &q).await?;
    let bytes = report_workbook(&r)?;
    let name = format!("cuncun-report-{}-{}.xlsx", r.region.code.short(), r.month.label());
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

async fn dashboard_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let d = state.app().dashboard(&p, &q).await?;
    render(&DashboardPage {
        c: Chrome::of(&c, "/report/dashboard"),
        region: d.region.code.short().to_string(),
        name: d.region.name,
        online_svg: line_svg("chart-online", &online_points(&d.daily_online), Some(d.online_target)),
        tickets_svg: bars_svg("chart-tickets", &week_bars(&d.tickets_per_week)),
        online_target: d.online_target,
        problems: d.problems,
        evaluations: d.evaluations,
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
    let p = c.principal(&state).await?;
    let d = state.app().drill(&p, &id, &q).await?;
    let def = d.evaluation.def;
    let kids = d
        .children
        .iter()
        .map(|k| {
            let (n, d) = k.basis.fraction(def.id).unwrap_or((0, 0));
            (k.code.short().to_string(), k.name.clone(), n, d, show_percent(percent(n, d)))
        })
        .collect();
    let chrome = Chrome::of(&c, "/report/drill");
    let s = |v: &str| v.to_string();
    let yes = |b: bool| if b { s("是") } else { s("否") };
    let (heads, rows): (Vec<String>, Vec<Vec<String>>) = match d.records {
        DrillRecords::Online(ts) => (
            vec![s("终端 terminal"), s("编码 code"), s("行政村 village"), s("在线(时) online h"), s("应在线(时) expected h"), s("在线率 rate")],
            ts.into_iter()
                .map(|t| vec![t.name, t.ebrid, t.region_code, format!("{:.1}", t.online_ms as f64 / 3.6e6), format!("{:.1}", t.expected_ms as f64 / 3.6e6), show_percent(percent(t.online_ms, t.expected_ms))])
                .collect(),
        ),
        DrillRecords::Hamlets(hs) => (
            vec![s("自然村 hamlet"), s("行政村 village"), s("户数 households"), s("终端 terminals"), s("覆盖 covered")],
            hs.into_iter().map(|h| vec![h.name, h.village_code.short().to_string(), h.households.to_string(), h.terminals.to_string(), yes(h.terminals > 0)]).collect(),
        ),
        DrillRecords::Tickets(ts) => (
            vec![s("工单 ticket"), s("类型 kind"), s("行政村 village"), s("状态 status"), s("受理 requested"), s("办结 resolved"), s("24小时内 within 24 h"), s("评分 rating")],
            ts.into_iter()
                .map(|t| {
                    let within = t.resolved_at_ms.is_some_and(|r| r - t.created_at_ms <= cuncun_domain::service::SLA_MS);
                    vec![
                        format!("#{}", t.id),
                        t.kind.key().to_string(),
                        t.village_code.short().to_string(),
                        t.status.key().to_string(),
                        chrome.time(&t.created_at_ms),
                        t.resolved_at_ms.map(|r| chrome.time(&r)).unwrap_or_default(),
                        yes(within),
                        t.rating.map(|r| r.to_string()).unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        DrillRecords::Visits(plan) => (
            vec![s("户主 head"), s("电话 phone"), s("行政村 village"), s("自然村 hamlet"), s("地址 address"), s("类别 care"), s("本年走访 visits this year"), s("达到2次 2 done")],
            plan.into_iter()
                .map(|p| {
                    let h = p.household.rec;
                    let care: Vec<&str> = [(h.care_elderly, "留守老人"), (h.care_children, "留守儿童"), (h.care_disabled, "残疾人")].iter().filter(|x| x.0).map(|x| x.1).collect();
                    vec![h.head_name, h.phone, h.village_code.short().to_string(), h.hamlet.unwrap_or_default(), h.address, care.join("、"), p.done.to_string(), yes(p.done >= VISITS_PER_YEAR)]
                })
                .collect(),
        ),
        DrillRecords::Incomplete(rows) => (
            vec![s("户主 head"), s("电话 phone"), s("行政村 village"), s("自然村 hamlet"), s("地址 address"), s("缺少 missing")],
            rows.into_iter()
                .map(|h| vec![h.head_name, h.phone, h.village_code.short().to_string(), h.hamlet, h.address, h.missing.iter().map(|f| field_name(f)).collect::<Vec<_>>().join("、")])
                .collect(),
        ),
        DrillRecords::Villages(vs) => (
            // Coverage indicators: per village, the numerator and denominator.
            vec![s("行政村 village"), s("代码 code"), s("分子 numerator"), s("分母 denominator"), s("比例 rate")],
            vs.into_iter()
                .map(|v| {
                    let b = indicators::Basis { coverage: v.counts, ..Default::default() };
                    let (n, d) = b.fraction(def.id).unwrap_or((0, 0));
                    vec![v.name, v.code.short().to_string(), n.to_string(), d.to_string(), show_percent(percent(n, d))]
                })
                .collect(),
        ),
    };
    render(&DrillPage { c: chrome, region: d.region.short().to_string(), month: d.month.label(), e: d.evaluation, kids, heads, rows, truncated: d.truncated, masked: d.masked })
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
    let p = c.principal(&state).await?;
    let t = state.app().targets(&p, &q).await?;
    render(&TargetsPage { can_edit: t.can_edit, c: Chrome::of(&c, "/report/targets"), region: t.region.short().to_string(), evaluations: t.evaluations, own: t.own })
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

async fn targets_post(State(state): State<AppState>, c: Caller, Form(f): Form<TargetForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let scope = state.app().set_target(&p, &f.region, &f.indicator, &f.target).await?;
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
    let p = c.principal(&state).await?;
    let l = state.app().checklist(&p, &q).await?;
    render(&ChecklistPage {
        can_edit: l.can_edit,
        c: Chrome::of(&c, "/report/checklist"),
        region: l.region.short().to_string(),
        name: l.name,
        items: l.items,
        statuses: CheckStatus::ALL.to_vec(),
    })
}

async fn checklist_post(State(state): State<AppState>, c: Caller, mut mp: axum::extract::Multipart) -> Result<Response, AppError> {
    let (mut csrf, mut input) = (String::new(), CheckInput::default());
    let mut file: Option<EvidenceFile> = None;
    while let Some(field) = mp.next_field().await.map_err(AppError::upload)? {
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
                    "region" => input.region = v,
                    "item" => input.item = v,
                    "status" => input.status = v,
                    "evidence" => input.evidence = v,
                    _ => {}
                }
            }
        }
    }
    c.check_csrf(&csrf)?;
    let p = c.principal(&state).await?;
    let scope = state.app().set_county_check(&p, &input, file).await?;
    Ok(Redirect::to(&format!("/report/checklist?region={}", scope.short())).into_response())
}

async fn checklist_file(State(state): State<AppState>, c: Caller, Path(item): Path<String>, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let f = state.app().county_check_file(&p, &q, &item).await?;
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

#[derive(Template)]
#[template(path = "report/sites.html")]
struct SitesPage {
    c: Chrome,
    region: String,
    sites: Vec<TransmitterSite>,
    counts: SiteCounts,
    /// Coverage per village with its sites (at most `cuncun_app::reports::DRILL_LIMIT` villages).
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

async fn sites_page(State(state): State<AppState>, c: Caller, Query(q): Query<ReportQuery>) -> Result<Response, AppError> {
    let p = c.principal(&state).await?;
    let s = state.app().transmitter_sites(&p, &q).await?;
    let (villages, villages_truncated) = state.app().village_coverage(&p, &q).await?;
    render(&SitesPage {
        villages,
        villages_truncated,
        can_edit: s.can_edit,
        c: Chrome::of(&c, "/report/sites"),
        region: s.region.short().to_string(),
        sites: s.items,
        counts: s.counts,
        kinds: TransmitterKind::ALL.to_vec(),
    })
}

#[derive(Deserialize, Default)]
pub struct SiteForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(flatten)]
    pub site: SiteInput,
}

async fn sites_add(State(state): State<AppState>, c: Caller, Form(f): Form<SiteForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let saved = state.app().add_transmitter_site(&p, &f.site).await?;
    Ok(Redirect::to(&format!("/report/sites?region={}", saved.site.village_code.short())).into_response())
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
    let p = c.principal(&state).await?;
    let d = state.app().transmitter_site_detail(&p, id).await?;
    render(&SiteEditPage {
        can_edit: d.can_edit,
        c: Chrome::of(&c, "/report/sites"),
        region: d.site.site.village_code.short().to_string(),
        s: d.site,
        hamlets: d.hamlets,
        kinds: TransmitterKind::ALL.to_vec(),
    })
}

async fn site_update(State(state): State<AppState>, c: Caller, Path(id): Path<i64>, Form(f): Form<SiteForm>) -> Result<Response, AppError> {
    c.check_csrf(&f.csrf)?;
    let p = c.principal(&state).await?;
    let saved = state.app().update_transmitter_site(&p, id, &f.site).await?;
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
    let p = c.principal(&state).await?;
    let h = state.app().hamlet_coverage(&p, &q).await?;
    let chrome = Chrome::of(&c, "/report/hamlets");
    let terminals = h
        .terminals
        .into_iter()
        .map(|t| {
            let kind = cuncun_domain::eb::ResourceKind::parse(&t.kind).map(|k| if chrome.lang == crate::i18n::Lang::Zh { k.name_zh() } else { k.name_en() }).unwrap_or("");
            (t, kind)
        })
        .collect();
    render(&HamletsPage {
        can_edit: h.can_edit,
        c: chrome,
        region: h.region.short().to_string(),
        is_village: h.is_village,
        hamlets: h.hamlets,
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
    let p = c.principal(&state).await?;
    let region = state.app().assign_terminal_hamlet(&p, f.resource_id, &f.hamlet_id).await?;
    Ok(Redirect::to(&format!("/report/hamlets?region={}", region.short())).into_response())
}
