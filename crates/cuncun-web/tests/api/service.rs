//! Service network over HTTP, on every backend: ticket lifecycle by desk and steward, a steward
//! sees only their villages, masking of personal data, the public repair page (honeypot, rate
//! limit, confirmation link with rating), the 24-hour clock on pages, indicators.

use crate::harness::*;
use cuncun_domain::model::NewUser;
use cuncun_domain::service::*;
use cuncun_domain::{RegionCode, Role};
use cuncun_store::service::*;
use cuncun_store::{Actor, Store};
use serde_json::{Value, json};

const V1: &str = "500236100201";
const V3: &str = "500236001001";

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

/// Stewards st1 (白帝镇: villages 201, 202) and st2 (永安街道: 001001), each with a steward account.
async fn stewards(app: &App) -> (Steward, Steward) {
    let hash = cuncun_web::auth::hash_password(PASSWORD).unwrap();
    let mut out = Vec::new();
    for (user, name, township, villages) in [
        ("st1", "李文华", "500236100", vec![rc(V1), rc("500236100202")]),
        ("st2", "张强", "500236001", vec![rc(V3)]),
    ] {
        let u = app
            .store
            .create_user(
                &NewUser { username: user.into(), display_name: name.into(), role: Role::Steward, region_code: rc(township), phone: String::new(), password_hash: hash.clone() },
                &Actor::system(),
            )
            .await
            .unwrap();
        let s = app
            .store
            .add_steward(&StewardRecord { name: name.into(), phone: "13800001111".into(), region_code: rc(township), user_id: Some(u.id), villages }, &Actor::system())
            .await
            .unwrap();
        out.push(s);
    }
    let b = out.pop().unwrap();
    (out.pop().unwrap(), b)
}

fn intake(village: &str) -> Value {
    json!({ "village_code": village, "category": "satellite", "reporter_name": "王大爷", "reporter_phone": "139 1111 2222", "address": "上院子 3 号", "description": "卫星电视没有信号" })
}

#[tokio::test]
async fn lifecycle_scope_and_audit_over_the_api() {
    for app in apps().await {
        let (st1, _) = stewards(&app).await;
        let desk = app.token("t2cast").await;
        let (s, body) = app.send(&desk, "POST", "/api/v1/service/tickets", intake(V1)).await;
        assert_eq!(s, 201, "{body}");
        let id = body["ticket"]["id"].as_i64().unwrap();
        assert_eq!(body["ticket"]["steward_id"].as_i64(), Some(st1.id), "the village's steward");
        assert_eq!(body["ticket"]["status"], "assigned");
        // The desk cannot register outside its township, nor with a bad phone.
        let (s, _) = app.send(&desk, "POST", "/api/v1/service/tickets", intake(V3)).await;
        assert_eq!(s, 403);
        let mut bad = intake(V1);
        bad["reporter_phone"] = json!("12345");
        let (s, e) = app.send(&desk, "POST", "/api/v1/service/tickets", bad).await;
        assert_eq!(s, 400);
        assert!(e["error"]["message"].as_str().unwrap().contains("reporter_phone"), "{e}");

        let st1t = app.token("st1").await;
        let st2t = app.token("st2").await;
        let (_, mine) = app.get(&st1t, "/api/v1/service/tickets").await;
        assert_eq!(mine["items"].as_array().unwrap().len(), 1);
        let (_, other) = app.get(&st2t, "/api/v1/service/tickets").await;
        assert!(other["items"].as_array().unwrap().is_empty(), "st2 sees only their villages");
        let (s, _) = app.get(&st2t, &format!("/api/v1/service/tickets/{id}")).await;
        assert_eq!(s, 403);
        let (s, _) = app.send(&st2t, "POST", &format!("/api/v1/service/tickets/{id}/accept"), json!({})).await;
        assert_eq!(s, 403);

        for a in ["accept", "on_site"] {
            let (s, b) = app.send(&st1t, "POST", &format!("/api/v1/service/tickets/{id}/{a}"), json!({})).await;
            assert_eq!(s, 200, "{a}: {b}");
        }
        let (s, b) = app.send(&st1t, "POST", &format!("/api/v1/service/tickets/{id}/resolve"), json!({ "note": " " })).await;
        assert_eq!(s, 409, "a resolution needs a note: {b}");
        let (s, _) = app.send(&st1t, "POST", &format!("/api/v1/service/tickets/{id}/resolve"), json!({ "note": "重新对星" })).await;
        assert_eq!(s, 200);
        // The resident's confirmation is the desk's call-back, not the steward's.
        let (s, _) = app.send(&st1t, "POST", &format!("/api/v1/service/tickets/{id}/confirm"), json!({ "rating": 5 })).await;
        assert_eq!(s, 403);
        let (s, b) = app.send(&desk, "POST", &format!("/api/v1/service/tickets/{id}/confirm"), json!({ "rating": 5 })).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["ticket"]["status"], "confirmed");
        let (_, t) = app.get(&desk, &format!("/api/v1/service/tickets/{id}")).await;
        let actions: Vec<&str> = t["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["create", "accept", "on_site", "resolve", "confirm"]);
        assert!(t["events"][1]["actor"].as_str().unwrap().ends_with(":st1"));
        assert_eq!(t["ticket"]["sla"]["state"], "met");
        let audit = app.store.audit_recent(30).await.unwrap();
        assert!(audit.iter().any(|e| e.action == "ticket.resolve" && e.actor.ends_with(":st1") && e.entity_id == id.to_string()));
        // Filters: status and category.
        let (_, l) = app.get(&desk, "/api/v1/service/tickets?status=confirmed&category=satellite").await;
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        let (_, l) = app.get(&desk, "/api/v1/service/tickets?status=open").await;
        assert!(l["items"].as_array().unwrap().is_empty());
        let (s, _) = app.get(&desk, "/api/v1/service/tickets?status=bogus").await;
        assert_eq!(s, 400);
    }
}

#[tokio::test]
async fn personal_data_is_masked_for_roles_that_do_not_need_it() {
    for app in apps().await {
        stewards(&app).await;
        let desk = app.token("t2cast").await;
        app.send(&desk, "POST", "/api/v1/service/tickets", intake(V1)).await;
        let (_, full) = app.get(&desk, "/api/v1/service/tickets").await;
        assert_eq!(full["items"][0]["reporter_phone"], "13911112222");
        let viewer = app.token("t2view").await;
        let (s, masked) = app.get(&viewer, "/api/v1/service/tickets").await;
        assert_eq!(s, 200);
        assert_eq!(masked["items"][0]["reporter_phone"], "139****2222");
        assert_eq!(masked["items"][0]["reporter_name"], "王**");
        let reviewer = app.token("reviewer").await;
        let (_, r) = app.get(&reviewer, "/api/v1/service/tickets").await;
        assert_eq!(r["items"][0]["reporter_phone"], "139****2222");
        let sender = app.token("sender").await;
        let (s, _) = app.get(&sender, "/api/v1/service/tickets").await;
        assert_eq!(s, 403, "department senders have no access to households' data");
        // Pages mask too.
        let (c, _) = app.browser("t2view").await;
        let page = c.get(format!("{}/service/tickets", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("139****2222") && !page.contains("13911112222"));
        // Households.
        let h = HouseholdRecord {
            village_code: rc(V1),
            hamlet: Some("上院子".into()),
            head_name: "刘德明".into(),
            phone: "13712345678".into(),
            address: "1号".into(),
            members: 2,
            reception: Some(vec![]),
            hd: false,
            fibre: false,
            care_elderly: true,
            care_children: false,
            care_disabled: false,
            fee_waiver: FeeWaiver::None,
            fee_waiver_evidence: String::new(),
            fee_waiver_until: String::new(),
        };
        app.store.add_household(&h, &Actor::system()).await.unwrap();
        let (_, hv) = app.get(&viewer, "/api/v1/service/households").await;
        assert_eq!(hv["items"][0]["head_name"], "刘**");
        assert_eq!(hv["items"][0]["phone"], "137****5678");
        let page = c.get(format!("{}/service/households", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("刘**") && !page.contains("13712345678"));
        let page = c.get(format!("{}/service/stewards", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("李文华"), "stewards' published names");
        let st = app.token("st1").await;
        let (_, hs) = app.get(&st, "/api/v1/service/households").await;
        assert_eq!(hs["items"][0]["phone"], "13712345678", "the household's steward sees it");
        let st2 = app.token("st2").await;
        let (s, h2) = app.get(&st2, "/api/v1/service/households").await;
        assert_eq!(s, 200);
        assert!(h2["items"].as_array().unwrap().is_empty(), "not st2's village");
    }
}

/// The confirmation link on the "received" page.
fn confirm_link(page: &str) -> String {
    let i = page.find("id=\"confirm-link\">").expect("confirmation link") + 18;
    let j = page[i..].find('<').unwrap();
    page[i..i + j].to_string()
}

#[tokio::test]
async fn public_repair_page_honeypot_rate_limit_and_confirmation() {
    for app in apps().await {
        let (st1, _) = stewards(&app).await;
        let c = client();
        let page = c.get(format!("{}/r/{V1}", app.url)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert!(page.contains("李文华") && page.contains("白帝村"), "published steward and village");
        let qr = c.get(format!("{}/r/{V1}/qr.svg", app.url)).send().await.unwrap();
        assert_eq!(qr.headers()["content-type"], "image/svg+xml");
        assert!(qr.text().await.unwrap().contains("<svg"));
        assert_eq!(c.get(format!("{}/r/500236100299", app.url)).send().await.unwrap().status(), 404);
        assert_eq!(c.get(format!("{}/r/500236100", app.url)).send().await.unwrap().status(), 404, "villages only");

        let form = |website: &str, phone: &str| {
            vec![
                ("category", "satellite".to_string()),
                ("description", "没有信号".to_string()),
                ("name", "王小红".to_string()),
                ("phone", phone.to_string()),
                ("address", "上院子".to_string()),
                ("website", website.to_string()),
            ]
        };
        let count = |s: std::sync::Arc<dyn Store>| async move { s.tickets(&TicketFilter::scope(&rc("500236")), 100, 0).await.unwrap().len() };
        // A robot fills the hidden field: thanked, nothing kept.
        let r = c.post(format!("{}/r/{V1}", app.url)).form(&form("http://spam", "13911112222")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(count(app.store.clone()).await, 0);
        // A bad phone: the page says what is wrong.
        let r = c.post(format!("{}/r/{V1}", app.url)).form(&form("", "123")).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("reporter_phone"));
        let r = c.post(format!("{}/r/{V1}", app.url)).form(&form("", "13911112222")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let done = r.text().await.unwrap();
        let link = confirm_link(&done);
        let tickets = app.store.tickets(&TicketFilter::scope(&rc("500236")), 100, 0).await.unwrap();
        assert_eq!(tickets.len(), 1);
        let t = &tickets[0].clone();
        assert_eq!((t.source, t.steward_id), (TicketSource::Public, Some(st1.id)));
        // Rate limit: 5 submissions per client per hour (the honeypot and bad one counted too).
        for _ in 0..2 {
            let r = c.post(format!("{}/r/{V1}", app.url)).form(&form("", "13911112222")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = c.post(format!("{}/r/{V1}", app.url)).form(&form("", "13911112222")).send().await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(count(app.store.clone()).await, 3);
        // The resident follows the link; nothing to rate until it is resolved.
        let p = c.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(!p.contains("rate-form"));
        app.store.transition_ticket(t.id, &TicketAction::Resolve { note: "重新对星".into() }, &Actor::system(), cuncun_store::now_ms()).await.unwrap();
        let p = c.get(&link).send().await.unwrap().text().await.unwrap();
        assert!(p.contains("rate-form") && p.contains("重新对星"));
        let r = c.post(&link).form(&[("action", "confirm"), ("rating", "9")]).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("rating must be 1 to 5"));
        let r = c.post(&link).form(&[("action", "confirm"), ("rating", "5")]).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("thanks-rating"));
        let after = app.store.ticket(t.id).await.unwrap().unwrap();
        assert_eq!((after.status, after.rating), (TicketStatus::Confirmed, Some(5)));
        assert!(app.store.ticket_events(t.id).await.unwrap().iter().any(|e| e.actor == format!("resident:ticket:{}", t.id)));
        assert_eq!(c.get(format!("{}/r/c/nosuchtoken", app.url)).send().await.unwrap().status(), 404);
    }
}

#[tokio::test]
async fn clock_is_highlighted_near_deadline_and_overdue_listed() {
    for app in apps().await {
        stewards(&app).await;
        let now = cuncun_store::now_ms();
        let mk = |at: i64| NewTicket {
            kind: TicketKind::Repair,
            source: TicketSource::Phone,
            category: TicketCategory::Cable,
            village_code: rc(V1),
            household_id: None,
            reporter_name: "甲".into(),
            reporter_phone: "13900000000".into(),
            address: String::new(),
            description: "无信号".into(),
            terminal_ebrid: None,
            dedupe_key: None,
            confirm_token_hash: None,
            requested_at_ms: Some(at),
        };
        let near = app.store.create_ticket(&mk(now - 21 * HOUR_MS), &Actor::system()).await.unwrap().ticket;
        let late = app.store.create_ticket(&mk(now - 26 * HOUR_MS), &Actor::system()).await.unwrap().ticket;
        let (c, _) = app.browser("t2cast").await;
        let p = c.get(format!("{}/service/tickets/{}", app.url, near.id)).send().await.unwrap().text().await.unwrap();
        assert!(p.contains("id=\"clock\" class=\"clock near\""), "near deadline is highlighted");
        let p = c.get(format!("{}/service/tickets?overdue=1", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(p.contains(&format!("data-id=\"{}\"", late.id)) && !p.contains(&format!("data-id=\"{}\"", near.id)));
        assert!(p.contains("clock overdue"));
        // The steward's phone view lists both, most urgent first.
        let (s, _) = app.browser("st1").await;
        let my = s.get(format!("{}/service/my", app.url)).send().await.unwrap().text().await.unwrap();
        let (a, b) = (my.find(&format!("my-ticket-{}", late.id)).unwrap(), my.find(&format!("my-ticket-{}", near.id)).unwrap());
        assert!(a < b);
        // Page actions carry CSRF; the steward accepts from the phone view.
        let csrf = hidden_csrf(&my);
        let r = s.post(format!("{}/service/tickets/{}/accept", app.url, near.id)).form(&[("csrf", csrf.as_str()), ("back", "my")]).send().await.unwrap();
        assert_eq!(r.status(), 303);
        let r = s.post(format!("{}/service/tickets/{}/accept", app.url, near.id)).form(&[("csrf", "x"), ("back", "my")]).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(app.store.ticket(near.id).await.unwrap().unwrap().accepted_at_ms.is_some());
    }
}

#[tokio::test]
async fn indicators_by_region_and_period() {
    for app in apps().await {
        stewards(&app).await;
        let admin = app.token("admin").await;
        let base = cuncun_domain::time::year_start(2026) + 151 * 24 * HOUR_MS; // 2026-06-01
        for i in 0..4 {
            let t = NewTicket {
                kind: if i == 0 { TicketKind::Complaint } else { TicketKind::Repair },
                source: TicketSource::Phone,
                category: TicketCategory::Loudspeaker,
                village_code: rc(if i < 3 { V1 } else { V3 }),
                household_id: None,
                reporter_name: "甲".into(),
                reporter_phone: "13900000000".into(),
                address: String::new(),
                description: "喇叭不响".into(),
                terminal_ebrid: None,
                dedupe_key: None,
                confirm_token_hash: None,
                requested_at_ms: Some(base + i * HOUR_MS),
            };
            let id = app.store.create_ticket(&t, &Actor::system()).await.unwrap().ticket.id;
            let took = if i == 2 { 30 * HOUR_MS } else { HOUR_MS };
            app.store.transition_ticket(id, &TicketAction::Resolve { note: "修好".into() }, &Actor::system(), base + i * HOUR_MS + took).await.unwrap();
        }
        let (s, b) = app.get(&admin, "/api/v1/service/indicators?region=500236&from=2026-06-01&to=2026-07-01").await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["indicators"]["counts"]["tickets"], 4);
        assert_eq!(b["indicators"]["closure_24h_rate"], 75.0);
        let kids = b["children"].as_array().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1]["region_code"], "500236100");
        assert_eq!(kids[1]["indicators"]["counts"]["tickets"], 3);
        let (_, may) = app.get(&admin, "/api/v1/service/indicators?region=500236&from=2026-05-01&to=2026-06-01").await;
        assert_eq!(may["indicators"]["counts"]["tickets"], 0);
        let t1 = app.token("t1admin").await;
        let (s, _) = app.get(&t1, "/api/v1/service/indicators?region=500236100").await;
        assert_eq!(s, 403, "outside the caller's region");
        let (c, _) = app.browser("admin").await;
        let page = c.get(format!("{}/service?region=500236&from=2026-06-01&to=2026-07-01", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("75.00%"));
        let csv = c.get(format!("{}/service/indicators.csv?region=500236&from=2026-06-01&to=2026-07-01", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(csv.lines().nth(1).unwrap().starts_with("500236,奉节县,4,4,3,100.00,75.00"), "{csv}");
    }
}

fn hh(village: &str, head: &str, phone: &str) -> HouseholdRecord {
    HouseholdRecord {
        village_code: rc(village),
        hamlet: Some("上院子".into()),
        head_name: head.into(),
        phone: phone.into(),
        address: format!("{head}家"),
        members: 3,
        reception: Some(vec![cuncun_domain::model::CoverageMode::Satellite]),
        hd: true,
        fibre: false,
        care_elderly: false,
        care_children: false,
        care_disabled: false,
        fee_waiver: FeeWaiver::None,
        fee_waiver_evidence: String::new(),
        fee_waiver_until: String::new(),
    }
}

async fn import(app: &App, token: &str, what: &str, mode: &str, bytes: Vec<u8>) -> (u16, Value) {
    let r = client()
        .post(format!("{}/api/v1/service/{what}/import?mode={mode}", app.url))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

#[tokio::test]
async fn household_import_with_bad_rows_imports_nothing_unless_asked() {
    for app in apps().await {
        stewards(&app).await;
        let desk = app.token("t2cast").await;
        app.store.add_household(&hh(V1, "已有", "13900000001"), &Actor::system()).await.unwrap();
        let rows = [
            hh(V1, "甲", "13900000002"),
            hh(V1, "乙", "12345"),                   // row 3: phone
            hh(V3, "丙", "13900000003"),             // row 4: outside t2cast's township
            hh("500236100209", "丁", "13900000004"), // row 5: village not loaded
            hh(V1, "已有", "13900000001"),            // row 6: already registered
            hh(V1, "甲", "13900000002"),              // row 7: duplicate of row 2
        ];
        let bytes = cuncun_xlsx::households::export_households(rows.iter()).unwrap();
        let (s, b) = import(&app, &desk, "households", "all", bytes.clone()).await;
        assert_eq!(s, 422, "{b}");
        let errs: Vec<(i64, String)> = b["errors"].as_array().unwrap().iter().map(|e| (e["row"].as_i64().unwrap(), e["column"].as_str().unwrap().to_string())).collect();
        let rows_with_errors: Vec<i64> = errs.iter().map(|e| e.0).collect();
        assert_eq!(rows_with_errors, [3, 4, 5, 6, 7], "{errs:?}");
        assert!(errs[0].1.contains("联系电话"), "{errs:?}");
        assert!(b["errors"][1]["message"].as_str().unwrap().contains("outside your region"));
        let all = |s: std::sync::Arc<dyn Store>| async move { s.households_in(&rc("500236"), &HouseholdQuery::default(), 100, 0).await.unwrap().len() };
        assert_eq!(all(app.store.clone()).await, 1, "nothing half-imported");
        let (s, b) = import(&app, &desk, "households", "valid_rows", bytes).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(b["imported"], 1);
        assert_eq!(all(app.store.clone()).await, 2);
        // A viewer may not import.
        let viewer = app.token("t2view").await;
        let (s, _) = import(&app, &viewer, "households", "all", cuncun_xlsx::households::households_template().unwrap()).await;
        assert_eq!(s, 403);
        // Exports are audited, masked for the viewer.
        let (c, _) = app.browser("t2view").await;
        let x = c.get(format!("{}/service/households/export.xlsx", app.url)).send().await.unwrap();
        assert_eq!(x.status(), 200);
        let back = cuncun_xlsx::households::parse_households(&x.bytes().await.unwrap());
        assert!(back.valid.iter().all(|(_, h)| h.head_name.contains('*')), "masked export");
        let audit = app.store.audit_recent(5).await.unwrap();
        let e = audit.iter().find(|e| e.action == "household.export").expect("export audited");
        assert!(e.actor.ends_with(":t2view") && e.after.contains("\"rows\":2") && e.after.contains("\"masked\":true"), "{e:?}");
        // Both households have every required field.
        let (_, ind) = app.get(&desk, "/api/v1/service/indicators").await;
        assert_eq!(ind["indicators"]["data_completeness"], 100.0);
    }
}

#[tokio::test]
async fn steward_import_links_accounts_and_checks_villages() {
    for app in apps().await {
        let admin = app.token("admin").await;
        let hash = cuncun_web::auth::hash_password(PASSWORD).unwrap();
        app.store
            .create_user(&NewUser { username: "st9".into(), display_name: "新".into(), role: Role::Steward, region_code: rc("500236100"), phone: String::new(), password_hash: hash }, &Actor::system())
            .await
            .unwrap();
        let row = |name: &str, villages: Vec<&str>, user: &str| cuncun_xlsx::households::StewardRow {
            name: name.into(),
            phone: "13800000009".into(),
            township: rc("500236100"),
            villages: villages.into_iter().map(rc).collect(),
            username: user.into(),
        };
        let bad = [row("甲", vec![V1], "st9"), row("乙", vec![V1], "t2view")];
        let (s, b) = import(&app, &admin, "stewards", "all", cuncun_xlsx::households::export_stewards(bad.iter()).unwrap()).await;
        assert_eq!(s, 422, "{b}");
        assert_eq!(b["errors"][0]["row"], 3);
        assert!(app.store.stewards_in(&rc("500236")).await.unwrap().is_empty(), "nothing half-imported");
        let good = [row("甲", vec![V1, "500236100202"], "st9")];
        let (s, b) = import(&app, &admin, "stewards", "all", cuncun_xlsx::households::export_stewards(good.iter()).unwrap()).await;
        assert_eq!(s, 200, "{b}");
        let st9 = app.token("st9").await;
        let (s, _) = app.get(&st9, "/api/v1/service/tickets").await;
        assert_eq!(s, 200, "the imported steward's account is linked");
    }
}
