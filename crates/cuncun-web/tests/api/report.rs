//! Coverage, indicators and the monthly report over HTTP, on every backend: the report page with
//! its charts, the workbook read back, drill-downs, scoping (a township user sees only their
//! township), targets and the nine-haves checklist (administrators, CSRF, audited), the dashboard's
//! problem villages.

use crate::harness::*;
use calamine::{Data, Reader, Xlsx};
use cuncun_domain::indicators::Month;
use cuncun_domain::model::{CoverageMode, NewHamlet};
use cuncun_domain::service::*;
use cuncun_domain::RegionCode;
use cuncun_store::service::*;
use cuncun_store::{Actor, Store};
use std::io::Cursor;

const H: i64 = 3_600_000;
const T1V: &str = "500236001001"; // 永安街道 桂井社区
const T2V: &str = "500236100201"; // 白帝镇 白帝村

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn june() -> Month {
    Month::parse("2025-06").unwrap()
}

fn hh(village: &str, modes: &[CoverageMode]) -> HouseholdRecord {
    HouseholdRecord {
        village_code: rc(village),
        hamlet: Some("上院子".into()),
        head_name: "户主".into(),
        phone: "13912345678".into(),
        address: "上院子1号".into(),
        members: 3,
        reception: Some(modes.to_vec()),
        hd: false,
        fibre: false,
        care_elderly: false,
        care_children: false,
        care_disabled: false,
        fee_waiver: FeeWaiver::None,
        fee_waiver_evidence: String::new(),
        fee_waiver_until: String::new(),
    }
}

fn ticket(village: &str, at: i64) -> NewTicket {
    NewTicket {
        kind: TicketKind::Repair,
        source: TicketSource::Phone,
        category: TicketCategory::Satellite,
        village_code: rc(village),
        household_id: None,
        reporter_name: "王大爷".into(),
        reporter_phone: "13912345678".into(),
        address: "上院子1号".into(),
        description: "没有信号".into(),
        terminal_ebrid: None,
        dedupe_key: None,
        confirm_token_hash: None,
        requested_at_ms: Some(at),
    }
}

/// Township 001: 2 households, 4 tickets in June (3 closed within 24 h, one after 30 h). Township 100: 3
/// households, 1 ticket (closed after 30 h), a hamlet of 30 households without a terminal and an
/// open ticket now past its deadline.
async fn fixture(store: &dyn Store) {
    let op = Actor::system();
    for (name, township, village) in [("管家甲", "500236001", T1V), ("管家乙", "500236100", T2V)] {
        store
            .add_steward(&StewardRecord { name: name.into(), phone: "13800001111".into(), region_code: rc(township), user_id: None, villages: vec![rc(village)] }, &op)
            .await
            .unwrap();
    }
    let rows = vec![hh(T1V, &[CoverageMode::Cable]), hh(T1V, &[]), hh(T2V, &[CoverageMode::Satellite]), hh(T2V, &[CoverageMode::Satellite]), hh(T2V, &[CoverageMode::Cable])];
    store.import_households(&rows, "fixture", &op).await.unwrap();
    store.add_hamlet(&NewHamlet { village_code: rc(T2V), name: "大坪".into(), households: 30, population: 90 }, &op).await.unwrap();
    let t0 = june().start_ms() + 3 * 24 * H;
    for (i, (village, took)) in [(T1V, 2 * H), (T1V, 5 * H), (T1V, 23 * H), (T1V, 30 * H), (T2V, 30 * H)].iter().enumerate() {
        let at = t0 + i as i64 * 24 * H;
        let t = store.create_ticket(&ticket(village, at), &op).await.unwrap().ticket;
        store.transition_ticket(t.id, &TicketAction::Resolve { note: "已修复".into() }, &op, at + took).await.unwrap();
    }
    store.create_ticket(&ticket(T2V, cuncun_store::now_ms() - 30 * H), &op).await.unwrap();
}

fn cell(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => format!("{i}"),
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn monthly_report_page_workbook_and_drill_down() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let admin = app.token("admin").await;
        let c = client();
        let page = c.get(format!("{}/report?region=500236&month=2025-06", app.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        // 3 of 5 June tickets closed within 24 h (2 h, 5 h, 23 h; two took 30 h) = 60.00%; 5 households.
        let row = &html[html.find("id=\"ind-closure_24h\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains("60.00%") && row.contains("3 / 5"), "{row}");
        assert!(html.contains("<svg id=\"chart-online\"") && html.contains("<svg id=\"chart-tickets\""));
        assert!(html.contains("id=\"cov-households\">5<"));
        assert!(html.contains("永安街道") && html.contains("白帝镇"), "townships listed");

        // The workbook says the same.
        let x = c.get(format!("{}/report/monthly.xlsx?region=500236&month=2025-06", app.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(x.status(), 200);
        assert!(x.headers()["content-disposition"].to_str().unwrap().contains("cuncun-report-500236-2025-06.xlsx"));
        let bytes = x.bytes().await.unwrap().to_vec();
        let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).expect("the workbook opens with calamine");
        let ind = wb.worksheet_range("指标").expect("indicator sheet");
        let rows: Vec<Vec<String>> = ind.rows().map(|r| r.iter().map(cell).collect()).collect();
        let c24 = rows.iter().find(|r| r[0] == "closure_24h").expect("closure_24h row");
        assert_eq!((c24[2].as_str(), c24[3].as_str(), c24[4].as_str()), ("60", "3", "5"));
        let closure = rows.iter().find(|r| r[0] == "closure").unwrap();
        assert_eq!(closure[2], "100");
        let kids = wb.worksheet_range("下级区域").expect("by-region sheet");
        let kid_rows: Vec<Vec<String>> = kids.rows().map(|r| r.iter().map(cell).collect()).collect();
        assert_eq!(kid_rows.len(), 3, "header and two townships");
        assert_eq!((kid_rows[1][0].as_str(), kid_rows[1][2].as_str(), kid_rows[1][3].as_str()), ("500236001", "2", "4"));
        assert!(wb.worksheet_range("每日在线率").unwrap().rows().count() == 31, "a row per June day and a header");

        // Drill-down: the tickets behind the figure, and the hamlets behind hamlet coverage.
        let d = c.get(format!("{}/report/drill/closure_24h?region=500236&month=2025-06", app.url)).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert_eq!(d.matches("<td>#").count(), 5, "the five June tickets");
        let d = c.get(format!("{}/report/drill/hamlet_coverage?region=500236", app.url)).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert!(d.contains("大坪") && d.contains("0 / 1"), "{d}");
        let r = c.get(format!("{}/report/drill/nonsense?region=500236", app.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r = c.get(format!("{}/report?region=500236&month=2025-13", app.url)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 400);
    }
}

#[tokio::test]
async fn a_township_user_sees_only_their_township() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let t1 = app.token("t1view").await;
        let c = client();
        for path in ["/report?region=500236", "/report/monthly.xlsx?region=500236100", "/report/dashboard?region=500236", "/report/drill/closure?region=500236100201", "/report/checklist?region=500236"] {
            let r = c.get(format!("{}{path}", app.url)).bearer_auth(&t1).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
        let html = c.get(format!("{}/report?month=2025-06", app.url)).bearer_auth(&t1).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("id=\"cov-households\">2<"), "only township 001's households");
        let row = &html[html.find("id=\"ind-closure_24h\"").unwrap()..];
        assert!(row[..row.find("</tr>").unwrap()].contains("3 / 4"));
    }
}

#[tokio::test]
async fn targets_and_checklist_are_set_by_administrators() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let (viewer, vcsrf) = app.browser("t1view").await;
        let r = viewer
            .post(format!("{}/report/targets", app.url))
            .form(&[("csrf", vcsrf.as_str()), ("region", "500236001"), ("indicator", "hd"), ("target", "70")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "viewers cannot set targets");
        let (b, csrf) = app.browser("t1admin").await;
        let r = b.post(format!("{}/report/targets", app.url)).form(&[("csrf", csrf.as_str()), ("region", "500236"), ("indicator", "hd"), ("target", "70")]).send().await.unwrap();
        assert_eq!(r.status(), 403, "not above one's own region");
        let r = b.post(format!("{}/report/targets", app.url)).form(&[("csrf", "wrong"), ("region", "500236001"), ("indicator", "hd"), ("target", "70")]).send().await.unwrap();
        assert_eq!(r.status(), 403, "CSRF");
        let r = b.post(format!("{}/report/targets", app.url)).form(&[("csrf", csrf.as_str()), ("region", "500236001"), ("indicator", "hd"), ("target", "abc")]).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = b.post(format!("{}/report/targets", app.url)).form(&[("csrf", csrf.as_str()), ("region", "500236001"), ("indicator", "hd"), ("target", "70")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        // The village below inherits 70 from the township; the county keeps the default 50.
        let html = b.get(format!("{}/report/targets?region=500236001001", app.url)).send().await.unwrap().text().await.unwrap();
        let row = &html[html.find("id=\"target-hd\"").unwrap()..];
        assert!(row[..row.find("</tr>").unwrap()].contains("70%"), "inherited");
        let (county, ccsrf) = app.browser("admin").await;
        let html = county.get(format!("{}/report/targets?region=500236", app.url)).send().await.unwrap().text().await.unwrap();
        let row = &html[html.find("id=\"target-hd\"").unwrap()..];
        assert!(row[..row.find("</tr>").unwrap()].contains("50%"));

        // The county checklist: done needs evidence; a file is kept and served back.
        let form = |status: &str, evidence: &str, file: Option<&[u8]>| {
            let mut f = reqwest::multipart::Form::new()
                .text("csrf", ccsrf.clone())
                .text("region", "500236")
                .text("item", "platform")
                .text("status", status.to_string())
                .text("evidence", evidence.to_string());
            if let Some(bytes) = file {
                f = f.part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("platform.pdf").mime_str("application/pdf").unwrap());
            }
            f
        };
        let r = county.post(format!("{}/report/checklist", app.url)).multipart(form("done", "", None)).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = county.post(format!("{}/report/checklist", app.url)).multipart(form("done", "省平台账号已开通", Some(b"%PDF-1.4 demo"))).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let html = county.get(format!("{}/report/checklist?region=500236", app.url)).send().await.unwrap().text().await.unwrap();
        let row = &html[html.find("id=\"check-platform\"").unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains("已达成") && row.contains("platform.pdf"), "{row}");
        assert!(html.contains("id=\"nine-ones-link\""));
        let f = county.get(format!("{}/report/checklist/platform/file?region=500236", app.url)).send().await.unwrap();
        assert_eq!(f.bytes().await.unwrap().as_ref(), b"%PDF-1.4 demo");
        let audit = app.store.audit_recent(20).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "target.set" && e.actor.contains("t1admin")));
        assert!(audit.iter().any(|e| e.action == "county_check.set" && e.after.contains("platform.pdf")));
    }
}

#[tokio::test]
async fn dashboard_lists_problem_villages() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let admin = app.token("admin").await;
        let html = client().get(format!("{}/report/dashboard?region=500236", app.url)).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("<svg id=\"chart-online\"") && html.contains("<svg id=\"chart-tickets\""));
        let table = &html[html.find("id=\"problems\"").expect("problem table")..];
        let table = &table[..table.find("</table>").unwrap()];
        // 白帝村: one overdue ticket and the uncovered 30-household hamlet.
        let row = &table[table.find("500236100201").expect("白帝村 listed")..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(row.contains("overdue=1\">1</a>") && row.contains("<td>1</td>"), "{row}");
        assert!(!table.contains("500236001001"), "桂井社区 has no problem");
        let home = client().get(format!("{}/", app.url)).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("id=\"home-dashboard\""));
    }
}

/// The repair loop as the platform runs it: a terminal down longer than `repair_after` gets one
/// ticket for its village's steward, within the loop's first round.
#[tokio::test]
async fn the_repair_loop_task_opens_one_ticket() {
    use cuncun_store::eb::StatusChange;
    for db in cuncun_store::testing::all_backends().await {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
        let op = Actor::system();
        let regions: Vec<cuncun_domain::model::Region> = [("50", "重庆市"), ("5002", "县"), ("500236", "奉节县"), ("500236100", "白帝镇"), (T2V, "白帝村")]
            .iter()
            .map(|(c, n)| {
                let code = rc(c);
                cuncun_domain::model::Region { level: code.level(), parent: code.parent(), code, name: (*n).into() }
            })
            .collect();
        store.import_regions(&regions, "fixture", &op).await.unwrap();
        let steward = store
            .add_steward(&StewardRecord { name: "管家乙".into(), phone: "13800001111".into(), region_code: rc("500236100"), user_id: None, villages: vec![rc(T2V)] }, &op)
            .await
            .unwrap();
        let t = store.add_resource(&loudspeaker(T2V, "白帝村1号大喇叭"), &op).await.unwrap();
        let now = cuncun_store::now_ms();
        store
            .apply_status(&[StatusChange::Online { ebrid: t.ebrid.clone(), at_ms: now - 3 * H }, StatusChange::Offline { ebrid: t.ebrid.clone(), at_ms: now - 2 * H }])
            .await
            .unwrap();
        let jobs = cuncun_app::jobs::Supervisor::default();
        let (s, after, minute) = (store.clone(), std::time::Duration::from_secs(3600), std::time::Duration::from_secs(60));
        jobs.spawn(cuncun_app::jobs::JobName::RepairLoop, move |ctx| cuncun_app::jobs::repair_loop(ctx, s.clone(), after, minute)).unwrap();
        let mut filter = TicketFilter::scope(&rc("500236"));
        filter.now_ms = now;
        let mut found = Vec::new();
        for _ in 0..100 {
            found = store.tickets(&filter, 10, 0).await.unwrap();
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(jobs.shutdown(std::time::Duration::from_secs(5)).await.is_empty());
        assert_eq!(found.len(), 1, "{:?}", store.backend());
        assert_eq!((found[0].source, found[0].steward_id), (TicketSource::Terminal, Some(steward.id)));
        assert_eq!(found[0].terminal_ebrid.as_deref(), Some(t.ebrid.as_str()));
        // Another round while it is still down opens nothing more.
        assert!(store.open_outage_tickets(cuncun_store::now_ms(), 3_600_000).await.unwrap().is_empty());
        drop(db);
    }
}

fn loudspeaker(village: &str, name: &str) -> cuncun_store::eb::NewResource {
    cuncun_store::eb::NewResource {
        kind: cuncun_domain::eb::ResourceKind::OutdoorLoudspeaker,
        region_code: rc(village),
        name: name.into(),
        vendor: String::new(),
        model: String::new(),
        lon: None,
        lat: None,
        install_date: String::new(),
        ebrid: None,
        secret_hash: String::new(),
    }
}

#[tokio::test]
async fn transmitter_sites_are_kept_in_scope_audited_and_reported() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let site = |csrf: &str, village: &str, kind: &str, power: &str| {
            vec![
                ("csrf", csrf.to_string()),
                ("name", "白帝山调频转播台".to_string()),
                ("kind", kind.to_string()),
                ("village_code", village.to_string()),
                ("hamlet", "大坪".to_string()),
                ("lon", "109.57".to_string()),
                ("lat", "31.04".to_string()),
                ("frequencies", "FM 97.5 MHz; FM 101.2 MHz".to_string()),
                ("power_w", power.to_string()),
                ("in_service", "1".to_string()),
            ]
        };
        // A viewer may not register; a township's administrator not outside the township.
        let (viewer, vcsrf) = app.browser("t2view").await;
        let r = viewer.post(format!("{}/report/sites", app.url)).form(&site(&vcsrf, T2V, "fm", "300")).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let (t1, t1csrf) = app.browser("t1admin").await;
        let r = t1.post(format!("{}/report/sites", app.url)).form(&site(&t1csrf, T2V, "fm", "300")).send().await.unwrap();
        assert_eq!(r.status(), 403, "白帝村 is not in township 001");
        let (b, csrf) = app.browser("t2cast").await;
        for (form, what) in [(site(&csrf, T2V, "laser", "300"), "kind"), (site(&csrf, T2V, "fm", "lots"), "power_w"), (site(&csrf, "500236100", "fm", "300"), "village_code")] {
            let r = b.post(format!("{}/report/sites", app.url)).form(&form).send().await.unwrap();
            assert_eq!(r.status(), 400, "{what}");
            assert!(r.text().await.unwrap().contains(what), "{what} named");
        }
        let r = b.post(format!("{}/report/sites", app.url)).form(&site(&csrf, T2V, "fm", "300")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let list = b.get(format!("{}/report/sites?region=500236100", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(list.contains("白帝山调频转播台") && list.contains("调频广播发射台") && list.contains("大坪") && list.contains("FM 101.2 MHz"), "{list}");
        assert!(list.contains("id=\"count-transmitters\">1 / 1<"));
        // Per village: the site stands in 白帝村.
        let row = &list[list.find(&format!("id=\"village-{T2V}\"")).expect("village row")..];
        assert!(row[..row.find("</tr>").unwrap()].contains("<td class=\"transmitters\">1 / 1</td>"), "{row}");
        let id = app.store.transmitter_sites(&rc(T2V)).await.unwrap()[0].id;
        // The same over the JSON API, with the same scope: another township's viewer gets 403.
        let t = app.token("t2cast").await;
        let (s, body) = app.get(&t, "/api/v1/report/sites?region=500236100").await;
        assert_eq!(s, 200, "{body}");
        assert_eq!((body["counts"]["transmitters"].as_i64(), body["items"][0]["name"].as_str(), body["items"][0]["kind"].as_str()), (Some(1), Some("白帝山调频转播台"), Some("fm")));
        let (s, body) = app.get(&t, &format!("/api/v1/report/sites/{id}")).await;
        assert_eq!((s, body["site"]["id"].as_i64(), body["site"]["hamlet"].as_str()), (200, Some(id), Some("大坪")));
        let t1 = app.token("t1view").await;
        assert_eq!(app.get(&t1, &format!("/api/v1/report/sites/{id}")).await.0, 403);
        assert_eq!(app.get(&t1, "/api/v1/report/sites?region=500236100").await.0, 403);
        // The township 001 viewer cannot open it; the county sees it in the monthly report and workbook.
        let r = app.browser("t1view").await.0.get(format!("{}/report/sites/{id}", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 403);
        let admin = app.token("admin").await;
        let month = Month::of_ms(cuncun_store::now_ms()).label();
        let html = client().get(format!("{}/report?region=500236&month={month}", app.url)).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("id=\"sites-transmitters\">1 / 1<"), "coverage lists the site");
        assert!(html.contains("id=\"broadcast-method\""), "the message counting method is stated");
        // Taken out of service on its edit page.
        let mut off = site(&csrf, T2V, "fm", "300");
        off.retain(|(k, _)| *k != "in_service");
        let r = b.post(format!("{}/report/sites/{id}", app.url)).form(&off).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let x = client().get(format!("{}/report/monthly.xlsx?region=500236&month={month}", app.url)).bearer_auth(&admin).send().await.unwrap().bytes().await.unwrap().to_vec();
        let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(x)).unwrap();
        let cov: Vec<Vec<String>> = wb.worksheet_range("覆盖").unwrap().rows().map(|r| r.iter().map(cell).collect()).collect();
        let row = |k: &str| cov.iter().find(|r| r[0].starts_with(k)).map(|r| r[1].clone()).unwrap_or_default();
        assert_eq!((row("发射台站"), row("其中在用")), ("1".to_string(), "0".to_string()));
        let kids: Vec<Vec<String>> = wb.worksheet_range("下级区域").unwrap().rows().map(|r| r.iter().map(cell).collect()).collect();
        let col = kids[0].iter().position(|h| h.starts_with("发射台站")).expect("site column");
        assert_eq!((kids[1][col].as_str(), kids[2][col].as_str()), ("0", "1"), "white emperor township has the site");
        let audit = app.store.audit_recent(20).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "transmitter.add" && e.actor.contains("t2cast")));
        assert!(audit.iter().any(|e| e.action == "transmitter.update" && e.after.contains(r#""in_service":false"#)));
    }
}

#[tokio::test]
async fn a_terminal_is_assigned_to_a_hamlet_from_the_hamlet_page() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let t = app.store.add_resource(&loudspeaker(T2V, "白帝村1号大喇叭"), &Actor::system()).await.unwrap();
        let admin = app.token("admin").await;
        let drill = |app_url: String, token: String| async move {
            client().get(format!("{app_url}/report/drill/hamlet_coverage?region=500236")).bearer_auth(&token).send().await.unwrap().text().await.unwrap()
        };
        assert!(drill(app.url.clone(), admin.clone()).await.contains("0 / 1"), "大坪 not covered yet");
        let (b, csrf) = app.browser("t2cast").await;
        // The terminal's own page leads to its village's hamlet page.
        let own = b.get(format!("{}/eb/terminals/{}", app.url, t.id)).send().await.unwrap().text().await.unwrap();
        assert!(own.contains(&format!("id=\"hamlet-link\" href=\"/report/hamlets?region={T2V}\"")), "{own}");
        let page = b.get(format!("{}/report/hamlets?region={T2V}", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(&format!("id=\"terminal-{}\"", t.id)) && page.contains("大坪"), "{page}");
        let hamlet = app.store.hamlets(&rc(T2V)).await.unwrap()[0].id;
        let (other, ocsrf) = app.browser("t1admin").await;
        let r = other.post(format!("{}/report/hamlets", app.url)).form(&[("csrf", ocsrf.as_str()), ("resource_id", &t.id.to_string()), ("hamlet_id", &hamlet.to_string())]).send().await.unwrap();
        assert_eq!(r.status(), 403, "outside the township");
        let r = b.post(format!("{}/report/hamlets", app.url)).form(&[("csrf", csrf.as_str()), ("resource_id", &t.id.to_string()), ("hamlet_id", &hamlet.to_string())]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(drill(app.url.clone(), admin.clone()).await.contains("1 / 1"), "大坪 covered by the assigned loudspeaker");
        let audit = app.store.audit_recent(10).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "terminal.hamlet" && e.actor.contains("t2cast") && e.after == hamlet.to_string()));
    }
}

#[tokio::test]
async fn visits_and_completeness_drill_down_to_households_masked_by_role() {
    for app in apps().await {
        fixture(app.store.as_ref()).await;
        let op = Actor::system();
        let care = |name: &str, phone: &str| HouseholdRecord { head_name: name.into(), phone: phone.into(), care_elderly: true, ..hh(T1V, &[CoverageMode::Cable]) };
        let mut no_hamlet = care("李文华", "13812345678");
        no_hamlet.hamlet = None;
        app.store.import_households(&[care("王德明", "13900001111"), no_hamlet, care("张秀英", "13700002222")], "t", &op).await.unwrap();
        let hs = app.store.households_in(&rc(T1V), &HouseholdQuery { care_only: true, text: String::new() }, 10, 0).await.unwrap();
        let id = |n: &str| hs.iter().find(|h| h.rec.head_name == n).unwrap().id;
        let now = cuncun_store::now_ms();
        for _ in 0..2 {
            app.store.record_visit(id("王德明"), None, now - H, "上门走访", &op).await.unwrap();
        }
        app.store.record_visit(id("张秀英"), None, now - H, "上门走访", &op).await.unwrap();
        let month = Month::of_ms(now).label();
        let admin = app.token("admin").await;
        let get = |token: String, path: String| async move { client().get(path).bearer_auth(&token).send().await.unwrap().text().await.unwrap() };
        let html = get(admin.clone(), format!("{}/report/drill/care_visits?region=500236&month={month}", app.url)).await;
        let records = &html[html.find("id=\"drill-records\"").expect("records")..];
        // Below two visits first: 李文华 (0), 张秀英 (1), then 王德明 (2).
        let (li, zhang, wang) = (records.find("李文华").unwrap(), records.find("张秀英").unwrap(), records.find("王德明").unwrap());
        assert!(li < zhang && zhang < wang, "{records}");
        assert!(records.contains("13812345678"), "the administrator sees phones");
        // A viewer sees the same households, masked; a viewer of the other township none of them.
        let viewer = app.token("t1view").await;
        let html = get(viewer.clone(), format!("{}/report/drill/care_visits?region=500236001&month={month}", app.url)).await;
        assert!(html.contains("李**") && html.contains("138****5678") && !html.contains("李文华") && html.contains("id=\"masked-note\""), "{html}");
        let t2 = app.token("t2view").await;
        let r = client().get(format!("{}/report/drill/care_visits?region=500236001", app.url)).bearer_auth(&t2).send().await.unwrap();
        assert_eq!(r.status(), 403);
        // Data completeness: the household without a hamlet is listed with what it lacks.
        let html = get(admin, format!("{}/report/drill/data_completeness?region=500236&month={month}", app.url)).await;
        let records = &html[html.find("id=\"drill-records\"").expect("records")..];
        let li_row = &records[records.find("李文华").unwrap()..];
        assert!(li_row[..li_row.find("</tr>").unwrap()].contains("自然村 hamlet"), "{li_row}");
        let value = &html[html.find("id=\"drill-value\"").unwrap()..];
        let body = &records[records.find("<tbody>").unwrap()..records.find("</tbody>").unwrap()];
        let incomplete = body.matches("<tr>").count();
        assert_eq!(incomplete, 1);
        assert!(value.contains(&format!("= {} / 8", 8 - incomplete)), "the list is the figure's complement: {incomplete} rows, {value}");
        let html = get(viewer, format!("{}/report/drill/data_completeness?region=500236001&month={month}", app.url)).await;
        assert!(html.contains("李**") && !html.contains("李文华"));
    }
}
