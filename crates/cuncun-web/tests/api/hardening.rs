//! Issue 14, input bounds and error shape, tried as an attacker would: every body bounded before
//! it is read (one declared limit per route, in the OpenAPI and docs/SECURITY.md), every error in
//! the documented shape (axum's own rejections included), query and field bounds enforced as the
//! OpenAPI states them, no open redirect, no self-demotion by region. Each test is an exploit
//! that once worked: exploit in, refusal out, process alive.
use crate::harness::*;
use cuncun_web::limits::{DEFAULT_BODY_BYTES, UPLOADS, body_limit, show_bytes};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request written by hand (a declared length the body never reaches, a chunked body): the
/// status, the content type and the body of the answer.
async fn raw(app: &App, head: &str, body: &[u8]) -> (u16, String, String) {
    let addr = app.url.trim_start_matches("http://");
    let (mut r, mut w) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let reader = tokio::spawn(async move {
        let (mut answer, mut buf) = (Vec::new(), [0u8; 8192]);
        while let Ok(n @ 1..) = r.read(&mut buf).await {
            answer.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    });
    let _ = w.write_all(format!("{head}Host: x\r\nConnection: close\r\n\r\n").as_bytes()).await;
    let _ = w.write_all(body).await;
    let _ = w.shutdown().await;
    let answer = reader.await.unwrap();
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let ctype = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .map(|l| l[13..].trim().to_string())
        .unwrap_or_default();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, ctype, body)
}

async fn alive(app: &App) {
    assert_eq!(client().get(format!("{}/healthz", app.ops)).send().await.unwrap().status(), 200, "still alive");
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "1")
}

#[tokio::test]
async fn every_route_refuses_a_body_over_its_declared_limit_before_reading_it() {
    let apps = apps().await;
    let app = &apps[0];
    // A 50 MB login: 413 in the JSON shape at once (it was 400 "length limit exceeded" after reading).
    let (s, ct, body) = raw(app, "POST /api/v1/login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n", b"{").await;
    assert_eq!((s, ct.as_str()), (413, "application/json"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
    assert!(v["error"]["message"].as_str().unwrap().contains("64 KiB"), "{v}");
    // The login page: the same limit, as an HTML page.
    let (s, ct, _) = raw(app, "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 50000000\r\n", b"a=").await;
    assert_eq!((s, ct.starts_with("text/html")), (413, true), "{ct}");
    // A chunked body that never says its length is cut off at the limit: 413, not 400.
    let chunk = vec![b' '; 100 * 1024];
    let mut chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
    chunked.extend_from_slice(&chunk);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (s, ct, body) = raw(app, "POST /api/v1/login HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n", &chunked).await;
    assert_eq!((s, ct.as_str()), (413, "application/json"), "{body}");
    // Each upload route: one byte over its own limit is refused, whatever the route is.
    for u in UPLOADS {
        let head = format!("{} {} HTTP/1.1\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n", u.method, concrete(u.path), u.bytes + 1);
        let (s, ct, body) = raw(app, &head, b"").await;
        assert_eq!(s, 413, "{} {}: {body}", u.method, u.path);
        if u.path.starts_with("/api/") {
            assert!(ct.starts_with("application/json") && body.contains(&show_bytes(u.bytes)), "{} {}: {ct} {body}", u.method, u.path);
        } else {
            assert!(ct.starts_with("text/html"), "{} {}: {ct}", u.method, u.path);
        }
    }
    alive(app).await;
}

#[tokio::test]
async fn every_upload_route_takes_more_than_the_default() {
    let apps = apps().await;
    let app = &apps[0];
    let t = app.token("admin").await;
    // A body over the default but under the route's limit passes the bound (and fails later, for
    // other reasons: not a session, not a file): a declared limit that names no route would not.
    let body = vec![b'x'; DEFAULT_BODY_BYTES + 1024];
    for u in UPLOADS {
        let m = reqwest::Method::from_bytes(u.method.as_bytes()).unwrap();
        let r = client().request(m, format!("{}{}", app.url, concrete(u.path))).bearer_auth(&t).body(body.clone()).send().await.unwrap();
        assert_ne!(r.status().as_u16(), 413, "{} {} refuses {} bytes", u.method, u.path, body.len());
        assert!(r.status().as_u16() < 500, "{} {}: {}", u.method, u.path, r.status());
    }
    // A route that declares nothing keeps the default.
    let r = client().post(format!("{}/api/v1/eb/messages", app.url)).bearer_auth(&t).body(body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    alive(app).await;
}

/// The EB upload routes once fell under axum's 2 MiB default: a 3 MiB recording got a
/// text/plain 413.
#[tokio::test]
async fn a_three_mib_recording_is_accepted() {
    for app in apps().await {
        let s = app.token("sender").await;
        let warning = json!({"event_type": "11B03", "severity": 2, "title": "暴雨橙色预警", "text": "预计未来6小时有暴雨", "areas": ["500236100"]});
        let (_, b) = app.send(&s, "POST", "/api/v1/eb/messages", warning).await;
        let id = b["message"]["id"].as_i64().unwrap();
        let data = vec![0x80u8; 3 << 20];
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        for v in [16u32, 0x0001_0001, 8000, 8000, 0x0008_0001] {
            wav.extend_from_slice(&v.to_le_bytes());
        }
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
        wav.extend_from_slice(&data);
        let r = client().put(format!("{}/api/v1/eb/messages/{id}/audio", app.url)).bearer_auth(&s).body(wav).send().await.unwrap();
        let st = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(st, 200, "{body}");
        assert!(body["message"]["audio_sha256"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn axum_rejections_come_in_the_documented_shape() {
    let apps = apps().await;
    let app = &apps[0];
    let t = app.token("admin").await;
    let json_error = |r: reqwest::Response| async move {
        let st = r.status().as_u16();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(ct.starts_with("application/json") && v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{st} {ct} {v}");
        (st, v["error"]["code"].as_str().unwrap().to_string(), v["error"]["message"].as_str().unwrap().to_string())
    };
    // A query string of the wrong type.
    let r = client().get(format!("{}/api/v1/audit?limit=abc", app.url)).bearer_auth(&t).send().await.unwrap();
    let (st, code, msg) = json_error(r).await;
    assert_eq!((st, code.as_str()), (400, "bad_request"));
    assert!(msg.contains("limit"), "{msg}");
    // Bad JSON, and JSON without its content type.
    let r = client().post(format!("{}/api/v1/users", app.url)).bearer_auth(&t).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(json_error(r).await.0, 400);
    let r = client().post(format!("{}/api/v1/users", app.url)).bearer_auth(&t).body("{}").send().await.unwrap();
    assert_eq!(json_error(r).await.0, 400);
    // A method the path does not serve: 405 with Allow.
    let r = client().delete(format!("{}/api/v1/me", app.url)).bearer_auth(&t).send().await.unwrap();
    assert!(r.headers().get("allow").is_some_and(|a| a.to_str().unwrap().contains("GET")));
    assert_eq!(json_error(r).await.1, "method_not_allowed");
    // A path parameter of the wrong type on a page gets the HTML error page, not plain text.
    let (c, _) = app.browser("admin").await;
    let r = c.get(format!("{}/users/abc", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let r = c.get(format!("{}/no/such/page", app.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    alive(app).await;
}

#[tokio::test]
async fn limits_and_offsets_are_held_to_what_the_openapi_states() {
    let apps = apps().await;
    let app = &apps[0];
    let t = app.token("admin").await;
    for (path, param) in [
        ("/api/v1/audit?limit=1001", "limit"),
        ("/api/v1/audit?limit=-5", "limit"),
        ("/api/v1/audit?after=-1", "after"),
        ("/api/v1/eb/terminals?offset=-1", "offset"),
        ("/api/v1/eb/terminals?limit=10001", "limit"),
        ("/api/v1/service/tickets?limit=-5", "limit"),
        ("/api/v1/service/tickets?limit=1001", "limit"),
        ("/api/v1/service/households?offset=-1", "offset"),
        ("/api/v1/regions?q=x&limit=0", "limit"),
        ("/api/v1/regions?q=x&limit=501", "limit"),
    ] {
        let (s, b) = app.get(&t, path).await;
        assert_eq!(s, 400, "{path}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(param), "{path}: {b}");
    }
    let long = "长".repeat(101);
    let (s, b) = app.get(&t, &format!("/api/v1/regions?q={long}")).await;
    assert_eq!(s, 400, "{b}");
    for path in ["/api/v1/audit?limit=1000", "/api/v1/eb/terminals?limit=10000&offset=0", "/api/v1/service/tickets?limit=1000", "/api/v1/regions?q=x&limit=500"] {
        assert_eq!(app.get(&t, path).await.0, 200, "{path}");
    }
    alive(app).await;
}

#[tokio::test]
async fn account_and_hamlet_fields_are_bounded_for_page_and_api() {
    for app in apps().await {
        let t = app.token("admin").await;
        let user = |username: &str, display_name: &str, phone: &str| {
            json!({"username": username, "display_name": display_name, "password": "long-enough", "role": "viewer", "region_code": "500236", "phone": phone})
        };
        for (body, field) in [
            (user("nul\u{0}name", "x", ""), "username"),
            (user("tab\tname", "x", ""), "username"),
            (user(&"u".repeat(65), "x", ""), "username"),
            (user("ok1", &"名".repeat(65), ""), "display_name"),
            (user("ok2", "a\u{7}b", ""), "display_name"),
            (user("ok3", "  ", ""), "display_name"),
            (user("ok4", "x", &"1".repeat(5000)), "phone"),
            (user("ok5", "x", "call me"), "phone"),
        ] {
            let (s, b) = app.send(&t, "POST", "/api/v1/users", body).await;
            assert_eq!(s, 400, "{field}: {b}");
            assert!(b["error"]["message"].as_str().unwrap().contains(field), "{field}: {b}");
        }
        let (s, b) = app.send(&t, "POST", "/api/v1/users", user("ok6", "王五", "138-0000-1234")).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(b["user"]["phone"], "13800001234", "stored as digits");
        let id = b["user"]["id"].as_i64().unwrap();
        let (s, b) = app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), json!({"display_name": "x".repeat(65)})).await;
        assert_eq!(s, 400, "{b}");
        let (s, b) = app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), json!({"phone": "+++"})).await;
        assert_eq!(s, 400, "{b}");
        // The page runs the same rule.
        let (c, csrf) = app.browser("admin").await;
        let r = c
            .post(format!("{}/users", app.url))
            .form(&[("csrf", csrf.as_str()), ("username", "bad\u{1}"), ("display_name", "x"), ("password", "long-enough"), ("role", "viewer"), ("region_code", "500236")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(app.store.user_credentials("bad\u{1}").await.unwrap().is_none(), "nothing stored");
        // Hamlets: a village of 2^63-1 households, negative people, a 1 KB name.
        for (body, field) in [
            (json!({"name": "大坪", "households": i64::MAX, "population": 10}), "households"),
            (json!({"name": "大坪", "households": 10, "population": -1}), "population"),
            (json!({"name": "坪".repeat(1000), "households": 10, "population": 30}), "name"),
        ] {
            let (s, b) = app.send(&t, "POST", "/api/v1/regions/500236100201/hamlets", body).await;
            assert_eq!(s, 400, "{field}: {b}");
            assert!(b["error"]["message"].as_str().unwrap().contains(field), "{field}: {b}");
        }
        let (s, b) = app.send(&t, "POST", "/api/v1/regions/500236100201/hamlets", json!({"name": "大坪", "households": 30, "population": 90})).await;
        assert_eq!(s, 201, "{b}");
        alive(&app).await;
    }
}

#[tokio::test]
async fn the_language_switch_redirects_only_within_the_site() {
    let apps = apps().await;
    let app = &apps[0];
    for back in ["/%5Cevil.example", "/%5C%5Cevil.example", "/%09/evil.example", "//evil.example", "https://evil.example", "/%0d%0aSet-Cookie:x=1"] {
        let r = client().get(format!("{}/lang/en?back={back}", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{back}");
        assert_eq!(r.headers()["location"], "/", "back={back}");
    }
    let r = client().get(format!("{}/lang/en?back=/eb/messages%3Fstatus%3Ddraft", app.url)).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/eb/messages?status=draft", "a local path is kept");
    alive(app).await;
}

#[tokio::test]
async fn an_administrator_cannot_move_their_own_account_to_another_region() {
    for app in apps().await {
        let t = app.token("t1admin").await;
        let (_, me) = app.get(&t, "/api/v1/me").await;
        let id = me["user"]["id"].as_i64().unwrap();
        let (s, b) = app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), json!({"region_code": "500236001001"})).await;
        assert_eq!(s, 400, "{b}");
        assert!(b["error"]["message"].as_str().unwrap().contains("own region"), "{b}");
        assert_eq!(app.store.user(id).await.unwrap().unwrap().region_code.short(), "500236001", "still in the township");
        // Its own name, with its region as it is (what the page's form sends), still changes.
        let (s, b) = app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), json!({"display_name": "镇管理员", "region_code": "500236001"})).await;
        assert_eq!(s, 200, "{b}");
        // The county's administrator may still move the township's.
        let a = app.token("admin").await;
        let (s, b) = app.send(&a, "PATCH", &format!("/api/v1/users/{id}"), json!({"region_code": "500236100"})).await;
        assert_eq!(s, 200, "{b}");
    }
}

/// The OpenAPI states each API route's body limit (`x-max-body-bytes`, the default in `info`) and
/// docs/SECURITY.md lists every upload route with its figure: both as the server enforces them.
#[test]
fn the_openapi_and_the_security_doc_state_the_enforced_body_limits() {
    let doc: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(doc["info"]["x-max-body-bytes"], DEFAULT_BODY_BYTES, "the default in the OpenAPI");
    let mut uploads = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let m = axum::http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let enforced = body_limit(&m, Some(&format!("/api/v1{path}")));
            let stated = op.get("x-max-body-bytes").and_then(Value::as_u64).map_or(DEFAULT_BODY_BYTES, |v| v as usize);
            assert_eq!(stated, enforced, "{method} {path}: the OpenAPI states {stated}, the server enforces {enforced}");
            uploads += usize::from(enforced != DEFAULT_BODY_BYTES);
        }
    }
    assert_eq!(uploads, UPLOADS.iter().filter(|u| u.path.starts_with("/api/")).count(), "every API upload route is in the OpenAPI");
    let security = include_str!("../../../../docs/SECURITY.md");
    for u in UPLOADS {
        let row = format!("| {} `{}` | {} |", u.method, u.path, show_bytes(u.bytes));
        assert!(security.contains(&row), "docs/SECURITY.md lacks the row {row}");
    }
    assert!(security.contains(&format!("| every other route | {} |", show_bytes(DEFAULT_BODY_BYTES))));
}
