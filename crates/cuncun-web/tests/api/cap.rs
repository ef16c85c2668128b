//! CAP 1.2 in the platform: import through POST /api/v1/cap, the upload page and the feed poller;
//! department certificates and unsigned policy; region scope; export as CAP and the Atom feed.
//! Uses cuncun-cap's fixtures, moved ten years ahead so that they have not expired.
use crate::harness::*;
use cuncun_domain::RegionCode;
use cuncun_domain::eb::ResourceKind;
use cuncun_domain::model::Region;
use cuncun_store::eb::NewResource;
use cuncun_store::{Actor, Store};
use serde_json::{Value, json};

fn fixture_raw(name: &str) -> String {
    let p = format!("{}/../cuncun-cap/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap()
}

/// The fixture with its dates (sent, effective, expires, references) ten years later.
fn fixture(name: &str) -> String {
    fixture_raw(name).replace("2026-", "2036-")
}

fn signed(xml: &str) -> String {
    let signer = cuncun_cap::RsaSigner::from_pem(&fixture_raw("rsa_key.pem"), None).unwrap();
    signer.sign(xml).unwrap()
}

/// 草堂镇 and 白帝镇's neighbour, as in the fixtures, and terminals inside and outside the polygon
/// of cn_rainstorm_orange.xml (lat 30.95-31.10, lon 109.40-109.60).
async fn setup(store: &dyn Store) -> (String, String) {
    let region = |code: &str, name: &str| {
        let c = RegionCode::parse(code).unwrap();
        Region { level: c.level(), parent: c.parent(), code: c, name: name.into() }
    };
    store
        .import_regions(&[region("500236117", "草堂镇"), region("500236118", "汾河镇")], "test", &Actor::system())
        .await
        .unwrap();
    let term = |code: &str, name: &str, lon: f64, lat: f64| NewResource {
        kind: ResourceKind::OutdoorLoudspeaker,
        region_code: RegionCode::parse(code).unwrap(),
        name: name.into(),
        vendor: "v".into(),
        model: "m".into(),
        lon: Some(lon),
        lat: Some(lat),
        install_date: "2025-01-01".into(),
        ebrid: None,
        secret_hash: String::new(),
    };
    let inside = store.add_resource(&term("500236100201", "白帝村大喇叭", 109.5, 31.0), &Actor::system()).await.unwrap();
    let outside = store.add_resource(&term("500236001001", "桂井社区大喇叭", 109.3, 31.3), &Actor::system()).await.unwrap();
    (inside.ebrid, outside.ebrid)
}

async fn accept_unsigned(store: &dyn Store, username: &str) {
    let (u, _) = store.user_credentials(username).await.unwrap().unwrap();
    store.set_cap_department(u.id, None, true, &Actor::system()).await.unwrap();
}

async fn post_cap(app: &App, token: &str, xml: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/api/v1/cap", app.url))
        .bearer_auth(token)
        .header("content-type", "application/cap+xml")
        .body(xml.to_string())
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn issue_paths(body: &Value) -> Vec<String> {
    body["issues"].as_array().unwrap().iter().map(|i| format!("{} {}", i["path"].as_str().unwrap(), i["message"].as_str().unwrap())).collect()
}

#[tokio::test]
async fn polygons_geocodes_languages_update_and_cancel_import() {
    for app in apps().await {
        let (inside, outside) = setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        let s = app.token("sender").await;

        let (st, body) = post_cap(&app, &s, &fixture("cn_rainstorm_orange.xml")).await;
        assert_eq!(st, 201, "{body}");
        let m = &body["message"];
        assert_eq!(m["status"], "submitted");
        assert_eq!((m["severity"].as_i64(), m["event_type"].as_str()), (Some(2), Some("11B03")));
        assert_eq!(m["title"], "奉节县气象台发布暴雨橙色预警");
        assert_eq!(m["areas"], json!(["500236117000", "500236118000"]));
        assert_eq!(m["source"], "cap");
        let first_id = m["id"].as_i64().unwrap();
        let first_ebmid = m["ebmid"].as_str().unwrap().to_string();
        let terminals = app.store.message_terminals(first_id).await.unwrap();
        assert_eq!(terminals, vec![inside.clone()], "the terminal inside the polygon, not {outside}");
        assert_eq!(body["alert"]["signature"], "unsigned");

        // The same identifier again: nothing new.
        let (st, again) = post_cap(&app, &s, &fixture("cn_rainstorm_orange.xml")).await;
        assert_eq!((st, again["created"].as_bool()), (200, Some(false)), "{again}");
        assert_eq!(again["message"]["id"].as_i64(), Some(first_id));

        // Two languages: both kept, the Chinese block is broadcast.
        let (st, body) = post_cap(&app, &s, &fixture("multilang_typhoon.xml")).await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["message"]["title"], "重庆市气象台发布台风红色预警");
        assert_eq!(body["message"]["severity"], 1);
        let infos = app.store.cap_infos(body["alert"]["id"].as_i64().unwrap()).await.unwrap();
        let langs: Vec<&str> = infos.iter().map(|i| i.language.as_str()).collect();
        assert_eq!(langs, ["zh-CN", "en-US"]);
        assert_eq!(infos[1].headline, "Typhoon red warning");

        // Update: a new message related to the first, which (not yet approved) is cancelled.
        let (st, body) = post_cap(&app, &s, &fixture("update_rainstorm.xml")).await;
        assert_eq!(st, 201, "{body}");
        assert_eq!(body["message"]["related_ebmid"].as_str(), Some(first_ebmid.as_str()));
        assert_eq!(body["message"]["severity"], 1, "upgraded to red");
        assert_eq!(body["cancelled"], json!([first_ebmid]));
        assert_eq!(app.store.message(first_id).await.unwrap().unwrap().status.key(), "cancelled");
        let update_id = body["message"]["id"].as_i64().unwrap();

        // The import is only submitted: the sender cannot approve it, a reviewer can.
        let (st, _) = app.send(&s, "POST", &format!("/api/v1/eb/messages/{update_id}/approve"), json!({})).await;
        assert_eq!(st, 403);
        let r = app.token("reviewer").await;
        let (st, body) = app.send(&r, "POST", &format!("/api/v1/eb/messages/{update_id}/approve"), json!({})).await;
        assert_eq!((st, body["message"]["status"].as_str()), (200, Some("approved")), "{body}");

        // Cancel: the referenced update (on air) is cancelled; no new message.
        let before = app.store.messages_recent(100).await.unwrap().len();
        let (st, body) = post_cap(&app, &s, &fixture("cancel_rainstorm.xml")).await;
        assert_eq!(st, 201, "{body}");
        assert!(body["message"].is_null());
        assert_eq!(body["cancelled"].as_array().unwrap().len(), 1, "{body}");
        assert_eq!(app.store.message(update_id).await.unwrap().unwrap().status.key(), "cancelled");
        assert_eq!(app.store.messages_recent(100).await.unwrap().len(), before);

        let log = app.store.audit_recent(200).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "cap.import" && e.actor.ends_with(":sender")).count(), 4);
    }
}

#[tokio::test]
async fn invalid_alerts_are_refused_with_located_errors_and_nothing_written() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        let s = app.token("sender").await;
        for (file, path, what) in [
            ("invalid_open_polygon.xml", "/alert/info[1]/area[1]/polygon[1]", "not closed"),
            ("invalid_missing_required.xml", "/alert/sender", "required element <sender>"),
            ("invalid_bad_enum.xml", "/alert/status", "did you mean Actual"),
            ("invalid_not_xml.xml", "line 5", "alrt"),
        ] {
            let (st, body) = post_cap(&app, &s, &fixture(file)).await;
            assert_eq!(st, 422, "{file}: {body}");
            assert_eq!(body["error"]["code"], "invalid");
            let issues = issue_paths(&body);
            assert!(issues.iter().any(|i| i.starts_with(path) && i.contains(what)), "{file}: {issues:?}");
        }
        // Not moved ahead: expired.
        let (st, body) = post_cap(&app, &s, &fixture_raw("cn_rainstorm_orange.xml")).await;
        assert_eq!(st, 422);
        assert!(issue_paths(&body).iter().any(|i| i.contains("/expires") && i.contains("expired")), "{body}");
        // A Cancel of something never received.
        let (st, body) = post_cap(&app, &s, &fixture("cancel_rainstorm.xml")).await;
        assert_eq!(st, 422, "{body}");
        assert!(issue_paths(&body).iter().any(|i| i.starts_with("/alert/references")));
        assert!(app.store.messages_recent(10).await.unwrap().is_empty());
        assert!(app.store.cap_alerts_recent(&RegionCode::parse("50").unwrap(), 10).await.unwrap().is_empty());
        // Not a department sender.
        let a = app.token("admin").await;
        assert_eq!(post_cap(&app, &a, &fixture("cn_rainstorm_orange.xml")).await.0, 403);
    }
}

#[tokio::test]
async fn signatures_follow_the_department_setting() {
    for app in apps().await {
        setup(&*app.store).await;
        let s = app.token("sender").await;
        let xml = fixture("cn_rainstorm_orange.xml");
        // Default: unsigned refused.
        let (st, body) = post_cap(&app, &s, &xml).await;
        assert_eq!(st, 422);
        assert!(issue_paths(&body).iter().any(|i| i.contains("unsigned")), "{body}");
        // Signed, but the department has no certificate yet: refused.
        let (st, body) = post_cap(&app, &s, &signed(&xml)).await;
        assert_eq!(st, 422);
        assert!(issue_paths(&body).iter().any(|i| i.contains("no trusted certificate")), "{body}");

        // An administrator uploads the certificate on the departments page.
        let (admin, csrf) = app.browser("admin").await;
        let page = admin.get(format!("{}/eb/cap/departments", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("dept-sender") && page.contains("dept-t1sender"), "lists department senders");
        let (sender_user, _) = app.store.user_credentials("sender").await.unwrap().unwrap();
        let upload = |cert: &str, unsigned: bool| {
            let mut f = reqwest::multipart::Form::new()
                .text("csrf", csrf.clone())
                .part("cert", reqwest::multipart::Part::bytes(cert.as_bytes().to_vec()).file_name("dept.pem"));
            if unsigned {
                f = f.text("accept_unsigned", "1");
            }
            admin.post(format!("{}/eb/cap/departments/{}", app.url, sender_user.id)).multipart(f).send()
        };
        let r = upload("not a certificate", false).await.unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("PEM certificate"));
        assert_eq!(upload(&fixture_raw("rsa_cert.pem"), false).await.unwrap().status(), 303);
        let (viewer, vcsrf) = app.browser("t1view").await;
        let f = reqwest::multipart::Form::new().text("csrf", vcsrf).text("accept_unsigned", "1");
        let r = viewer.post(format!("{}/eb/cap/departments/{}", app.url, sender_user.id)).multipart(f).send().await.unwrap();
        assert_eq!(r.status(), 403, "only administrators");

        // A good signature is accepted; a tampered one refused with nothing written.
        let good = signed(&xml);
        let tampered = signed(&fixture("multilang_typhoon.xml")).replace("台风红色预警", "台风蓝色预警");
        let (st, body) = post_cap(&app, &s, &tampered).await;
        assert_eq!(st, 422, "{body}");
        assert!(issue_paths(&body).iter().any(|i| i.starts_with("/alert/Signature") && i.contains("signature refused")), "{body}");
        assert_eq!(body["signature"]["status"], "invalid");
        assert!(app.store.messages_recent(10).await.unwrap().is_empty());
        let (st, body) = post_cap(&app, &s, &good).await;
        assert_eq!(st, 201, "{body}");
        assert!(body["alert"]["signature"].as_str().unwrap().starts_with("valid"), "{body}");

        // Unsigned accepted once the department allows it (certificate kept).
        assert_eq!(upload("", true).await.unwrap().status(), 303);
        let d = app.store.cap_department(sender_user.id).await.unwrap().unwrap();
        assert!(d.accept_unsigned && d.cert_pem.is_some());
        let (st, body) = post_cap(&app, &s, &fixture("multilang_typhoon.xml")).await;
        assert_eq!(st, 201, "{body}");
        let log = app.store.audit_recent(100).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "cap.department" && e.actor.ends_with(":admin")).count(), 2);
    }
}

#[tokio::test]
async fn a_department_cannot_warn_outside_its_region() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "t1sender").await;
        let t = app.token("t1sender").await;
        let (st, body) = post_cap(&app, &t, &fixture("cn_rainstorm_orange.xml")).await;
        assert_eq!(st, 403, "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("500236117") && msg.contains("outside the department's region 500236001"), "{msg}");
        assert!(app.store.messages_recent(10).await.unwrap().is_empty());
        // The upload page says the same.
        let (b, csrf) = app.browser("t1sender").await;
        let f = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .part("file", reqwest::multipart::Part::bytes(fixture("cn_rainstorm_orange.xml").into_bytes()).file_name("a.xml"));
        let r = b.post(format!("{}/eb/cap", app.url)).multipart(f).send().await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.text().await.unwrap().contains("outside the department"));
    }
}

#[tokio::test]
async fn upload_page_imports_and_shows_the_message() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        let (b, csrf) = app.browser("sender").await;
        let f = reqwest::multipart::Form::new()
            .text("csrf", csrf.clone())
            .part("file", reqwest::multipart::Part::bytes(fixture("multilang_typhoon.xml").into_bytes()).file_name("t.xml"));
        let r = b.post(format!("{}/eb/cap", app.url)).multipart(f).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page = r.text().await.unwrap();
        assert!(page.contains("id=\"cap-accepted\"") && page.contains("重庆市气象台发布台风红色预警"));
        let csrf_api = csrf.clone();
        let f = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .part("file", reqwest::multipart::Part::bytes(fixture("invalid_open_polygon.xml").into_bytes()).file_name("bad.xml"));
        let r = b.post(format!("{}/eb/cap", app.url)).multipart(f).send().await.unwrap();
        assert_eq!(r.status(), 422);
        let page = r.text().await.unwrap();
        assert!(page.contains("/alert/info[1]/area[1]/polygon[1]") && page.contains("cap-refused"));
        // The API with the browser's session cookie needs the CSRF header, as every API write.
        let post = |with_csrf: bool| {
            let mut r = b.post(format!("{}/api/v1/cap", app.url)).body(fixture("update_rainstorm.xml"));
            if with_csrf {
                r = r.header("x-csrf-token", csrf_api.clone());
            }
            r.send()
        };
        assert_eq!(post(false).await.unwrap().status(), 403);
        assert_eq!(post(true).await.unwrap().status(), 201);
    }
}

#[tokio::test]
async fn export_round_trips_and_the_feed_lists_only_active_messages() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        let s = app.token("sender").await;
        let (_, body) = post_cap(&app, &s, &fixture("multilang_typhoon.xml")).await;
        let imported = body["message"].clone();
        let id = imported["id"].as_i64().unwrap();

        let r = client().get(format!("{}/api/v1/eb/messages/{id}/cap", app.url)).bearer_auth(&s).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/cap+xml"));
        let xml = r.text().await.unwrap();
        let opts = cuncun_cap::CheckOptions { trusted: None, require_signature: false, known_region: &|_| true };
        let rep = cuncun_cap::check(xml.as_bytes(), &opts);
        assert!(rep.valid, "{}", rep.render("export"));
        let p = rep.mapped.unwrap();
        assert_eq!(p.identifier, imported["ebmid"].as_str().unwrap());
        assert_eq!((p.severity, p.event_type.as_str()), (1, imported["event_type"].as_str().unwrap()));
        assert_eq!(p.regions.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>(), ["500236000000"]);
        assert_eq!(p.languages.len(), 2);
        assert_eq!(p.languages[1].headline, "Typhoon red warning");
        assert_eq!(p.title, "重庆市气象台发布台风红色预警");
        assert_eq!(p.expires_ms, imported["end_ms"].as_i64());
        assert_eq!(p.geometries.len(), 1, "the circle survives");

        // A message composed here exports too; a viewer of another township may not read it.
        let (_, c) = app
            .send(&s, "POST", "/api/v1/eb/messages", json!({"event_type": "11B03", "severity": 3, "title": "暴雨黄色预警", "text": "注意防范", "areas": ["500236100"]}))
            .await;
        let cid = c["message"]["id"].as_i64().unwrap();
        let r = client().get(format!("{}/api/v1/eb/messages/{cid}/cap", app.url)).bearer_auth(&s).send().await.unwrap();
        let rep = cuncun_cap::check(r.text().await.unwrap().as_bytes(), &opts);
        let p = rep.mapped.unwrap();
        assert_eq!((p.severity, p.title.as_str(), p.text.as_str()), (3, "暴雨黄色预警", "注意防范"));
        assert_eq!(p.regions.iter().map(|r| r.as_str().to_string()).collect::<Vec<_>>(), ["500236100000"]);
        let v = app.token("t1view").await;
        assert_eq!(app.get(&v, &format!("/api/v1/eb/messages/{cid}/cap")).await.0, 403);

        // Feed: only approved messages, public, each linking to its CAP document.
        let feed = || async { client().get(format!("{}/cap/feed.atom", app.url)).send().await.unwrap().text().await.unwrap() };
        let ebmid = imported["ebmid"].as_str().unwrap();
        assert!(!feed().await.contains(ebmid), "submitted, not yet approved");
        assert_eq!(client().get(format!("{}/cap/alerts/{id}", app.url)).send().await.unwrap().status(), 404);
        let r = app.token("reviewer").await;
        assert_eq!(app.send(&r, "POST", &format!("/api/v1/eb/messages/{id}/approve"), json!({})).await.0, 200);
        let text = feed().await;
        assert!(text.contains(&format!("#{ebmid}</id>")), "{text}");
        assert!(text.contains(&format!("/cap/alerts/{id}\"")), "{text}");
        assert!(!text.contains(c["message"]["ebmid"].as_str().unwrap()), "a draft is not in the feed");
        let one = client().get(format!("{}/cap/alerts/{id}", app.url)).send().await.unwrap();
        assert_eq!(one.status(), 200);
        assert!(cuncun_cap::check(one.text().await.unwrap().as_bytes(), &opts).valid);
        assert_eq!(client().get(format!("{}/cap/alerts/{cid}", app.url)).send().await.unwrap().status(), 404);
    }
}

#[tokio::test]
async fn the_feed_poller_imports_each_entry_once() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        // A department's feed: one entry linking to its CAP document, one with the alert inline.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let port = listener.local_addr().unwrap().port();
        let inline = fixture("cn_rainstorm_orange.xml");
        let inline = inline[inline.find("<cap:alert").unwrap()..].to_string();
        let atom = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><id>f</id><title>t</title>\
             <entry><id>typhoon-3</id><link rel=\"alternate\" type=\"application/cap+xml\" href=\"{base}/typhoon.xml\"/></entry>\
             <entry><id>rain-1</id><content type=\"application/cap+xml\">{inline}</content></entry></feed>"
        );
        let typhoon = fixture("multilang_typhoon.xml");
        let server = axum::Router::new()
            .route("/feed.atom", axum::routing::get(move || async move { atom }))
            .route("/typhoon.xml", axum::routing::get(move || async move { typhoon }))
            // Same server, another host name: a feed may not send the poller elsewhere.
            .route("/moved.atom", axum::routing::get(move || async move { axum::response::Redirect::temporary(&format!("http://localhost:{port}/feed.atom")) }))
            // A body without end: reading stops at the limit.
            .route(
                "/endless.atom",
                axum::routing::get(|| async {
                    let chunk = axum::body::Bytes::from(vec![b' '; 1 << 20]);
                    axum::body::Body::from_stream(futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone())))
                }),
            );
        tokio::spawn(async move { axum::serve(listener, server).await });

        let state = cuncun_web::AppState::new(cuncun_app::App::new(app.store.clone(), Default::default()), cuncun_web::WebOptions::default());
        let source = cuncun_web::cap_pages::FeedSource { url: format!("{base}/feed.atom"), department: "sender".into() };
        let http = cuncun_web::cap_feed::client();
        let mut seen = Default::default();
        let n = cuncun_web::cap_pages::poll_feed(&state, &http, &source, &mut seen).await.unwrap();
        assert_eq!(n, 2);
        assert_eq!(cuncun_web::cap_pages::poll_feed(&state, &http, &source, &mut seen).await.unwrap(), 0);
        // A restarted poller (nothing seen) finds the alerts already imported.
        let mut fresh = Default::default();
        assert_eq!(cuncun_web::cap_pages::poll_feed(&state, &http, &source, &mut fresh).await.unwrap(), 0);
        let alerts = app.store.cap_alerts_recent(&RegionCode::parse("500236").unwrap(), 10).await.unwrap();
        assert_eq!(alerts.len(), 2);
        assert!(alerts.iter().all(|a| a.source.starts_with("feed:")));
        assert_eq!(app.store.messages_recent(10).await.unwrap().len(), 2);
        let bad = cuncun_web::cap_pages::FeedSource { url: format!("{base}/feed.atom"), department: "nobody".into() };
        let e = cuncun_web::cap_pages::poll_feed(&state, &http, &bad, &mut fresh).await.unwrap_err();
        assert!(e.contains("nobody"), "{e}");
        let moved = cuncun_web::cap_pages::FeedSource { url: format!("{base}/moved.atom"), department: "sender".into() };
        let e = cuncun_web::cap_pages::poll_feed(&state, &http, &moved, &mut fresh).await.unwrap_err();
        assert!(e.contains("redirect") || e.contains("another host"), "{e}");
        let endless = cuncun_web::cap_pages::FeedSource { url: format!("{base}/endless.atom"), department: "sender".into() };
        let e = cuncun_web::cap_pages::poll_feed(&state, &http, &endless, &mut fresh).await.unwrap_err();
        assert!(e.contains("larger than"), "{e}");
    }
}

#[tokio::test]
async fn exports_are_signed_when_a_key_is_configured_and_identifiers_belong_to_one_department() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        accept_unsigned(&*app.store, "t1sender").await;
        let s = app.token("sender").await;
        let (_, body) = post_cap(&app, &s, &fixture("multilang_typhoon.xml")).await;
        let id = body["message"]["id"].as_i64().unwrap();
        let mut state = cuncun_web::AppState::new(cuncun_app::App::new(app.store.clone(), Default::default()), cuncun_web::WebOptions::default());
        let key = format!("{}/../cuncun-cap/tests/fixtures/rsa_key.pem", env!("CARGO_MANIFEST_DIR"));
        state.cap_signer = Some(cuncun_web::cap_pages::load_signer(&key, None).unwrap());
        let m = app.store.message(id).await.unwrap().unwrap();
        let xml = cuncun_web::cap_pages::message_cap_xml(&state, &m).await.unwrap();
        let trusted = cuncun_cap::TrustedKey::from_bytes(fixture_raw("rsa_cert.pem").as_bytes()).unwrap();
        let opts = cuncun_cap::CheckOptions { trusted: Some(&trusted), require_signature: true, known_region: &|_| true };
        let rep = cuncun_cap::check(xml.as_bytes(), &opts);
        assert!(rep.valid && matches!(rep.signature, cuncun_cap::SignatureStatus::Valid { .. }), "{}", rep.render("signed export"));
        assert_eq!(rep.mapped.unwrap().languages.len(), 2);
        // Another department re-using the sender and identifier gets a conflict, not the first one's alert.
        let t = app.token("t1sender").await;
        let typhoon = fixture("multilang_typhoon.xml").replace("<value>500236</value>", "<value>500236001</value>");
        let (st, body) = post_cap(&app, &t, &typhoon).await;
        assert_eq!(st, 409, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("another department"));
    }
}

#[tokio::test]
async fn an_update_of_a_warning_on_air_replaces_it_when_approved() {
    for app in apps().await {
        setup(&*app.store).await;
        accept_unsigned(&*app.store, "sender").await;
        let (s, r) = (app.token("sender").await, app.token("reviewer").await);
        let (_, first) = post_cap(&app, &s, &fixture("cn_rainstorm_orange.xml")).await;
        let first_id = first["message"]["id"].as_i64().unwrap();
        assert_eq!(app.send(&r, "POST", &format!("/api/v1/eb/messages/{first_id}/approve"), json!({})).await.0, 200);
        let (st, upd) = post_cap(&app, &s, &fixture("update_rainstorm.xml")).await;
        assert_eq!(st, 201, "{upd}");
        assert_eq!(upd["cancelled"], json!([]), "the warning on air stays until its update is approved");
        assert_eq!(app.store.message(first_id).await.unwrap().unwrap().status.key(), "approved");
        let upd_id = upd["message"]["id"].as_i64().unwrap();
        assert_eq!(app.send(&r, "POST", &format!("/api/v1/eb/messages/{upd_id}/approve"), json!({})).await.0, 200);
        assert_eq!(app.store.message(first_id).await.unwrap().unwrap().status.key(), "cancelled");
        // The exported update references the message it replaces.
        let xml = client().get(format!("{}/api/v1/eb/messages/{upd_id}/cap", app.url)).bearer_auth(&s).send().await.unwrap().text().await.unwrap();
        let opts = cuncun_cap::CheckOptions { trusted: None, require_signature: false, known_region: &|_| true };
        let p = cuncun_cap::check(xml.as_bytes(), &opts).mapped.unwrap();
        assert_eq!(p.msg_type, "Update");
        assert_eq!(p.references[0].identifier, first["message"]["ebmid"].as_str().unwrap());
    }
}
