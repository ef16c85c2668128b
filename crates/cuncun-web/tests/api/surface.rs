//! The OpenAPI document matches the router; bad input gets JSON errors; ops endpoints work;
//! the UI speaks Chinese first and English on request.
use crate::harness::*;
use serde_json::{Value, json};

#[tokio::test]
async fn openapi_paths_are_all_routed() {
    for app in apps().await {
        let doc: Value = client().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["openapi"], "3.0.3");
        let t = app.token("admin").await;
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 10);
        for (path, ops) in paths {
            let concrete = path.replace("{code}", "500236100201").replace("{id}", "1");
            for method in ops.as_object().unwrap().keys() {
                if ["post", "delete", "patch", "put"].contains(&method.as_str()) {
                    continue;
                }
                let (s, body) = app.get(&t, &format!("/api/v1{concrete}?q=x")).await;
                let unrouted = s == 405 || (s == 404 && body.to_string().contains("no such API endpoint"));
                assert!(!unrouted && s < 500, "GET {path}: {s} {body}");
            }
        }
        let (s, body) = app.get(&t, "/api/v1/no/such/thing").await;
        assert_eq!((s, body["error"]["code"].as_str()), (404, Some("not_found")));
    }
}

/// The other direction: every path the API routers serve (read from their source) is in the
/// OpenAPI document, so an API client or fuzzer driven by the document sees the whole API.
#[test]
fn every_routed_api_path_is_documented() {
    let doc: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    let documented = doc["paths"].as_object().unwrap();
    let sources = [
        ("api.rs", include_str!("../../src/api.rs"), "pub fn routes()"),
        ("service_api.rs", include_str!("../../src/service_api.rs"), "pub fn routes()"),
        ("cap_pages.rs", include_str!("../../src/cap_pages.rs"), "pub fn api_routes()"),
    ];
    let mut seen = 0;
    for (file, src, router) in sources {
        let body = &src[src.find(router).unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        for part in body.split(".route(\"").skip(1) {
            let path = &part[..part.find('"').unwrap()];
            assert!(documented.contains_key(path), "{file} routes {path} but openapi.json does not document it");
            seen += 1;
        }
    }
    assert!(seen >= 25, "{seen} routes read");
}

#[tokio::test]
async fn bad_input_gets_located_json_errors() {
    for app in apps().await {
        let t = app.token("admin").await;
        let (s, b) = app.get(&t, "/api/v1/regions/5002x6").await;
        assert_eq!(s, 400);
        assert!(b["error"]["message"].as_str().unwrap().contains("5002x6"));
        let (s, b) = app.get(&t, "/api/v1/users/abc").await;
        assert_eq!(s, 400);
        assert!(b["error"]["message"].as_str().unwrap().contains("id"));
        let (s, b) = app.send(&t, "POST", "/api/v1/users", json!({"username": "x"})).await;
        assert_eq!(s, 400);
        assert!(b["error"]["message"].as_str().unwrap().contains("display_name"), "{b}");
        let (s, b) = app
            .send(&t, "POST", "/api/v1/users", json!({"username": "x", "display_name": "x", "password": "short", "role": "viewer", "region_code": "500236"}))
            .await;
        assert_eq!(s, 400);
        assert!(b["error"]["message"].as_str().unwrap().contains("8 characters"));
        let (s, _) = app
            .send(&t, "POST", "/api/v1/users", json!({"username": "admin", "display_name": "x", "password": "long-enough", "role": "viewer", "region_code": "500236"}))
            .await;
        assert_eq!(s, 409);
        let (s, b) = app
            .send(&t, "POST", "/api/v1/users", json!({"username": "y", "display_name": "x", "password": "long-enough", "role": "root", "region_code": "500236"}))
            .await;
        assert_eq!(s, 400);
        assert!(b["error"]["message"].as_str().unwrap().contains("root"));
        let (s, _) = app.send(&t, "PATCH", "/api/v1/users/1", json!({"colour": "red"})).await;
        assert_eq!(s, 400, "unknown fields are refused");
        let (s, b) = app
            .send(&t, "POST", "/api/v1/regions/500236100/hamlets", json!({"name": "x", "households": 1, "population": 1}))
            .await;
        assert_eq!(s, 400, "{b}");
        let r = client().get(format!("{}/api/v1/me", app.url)).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

#[tokio::test]
async fn api_changes_are_audited_with_the_caller() {
    for app in apps().await {
        let t = app.token("admin").await;
        let (s, made) = app
            .send(&t, "POST", "/api/v1/users", json!({"username": "newbie", "display_name": "新人", "password": "long-enough", "role": "steward", "region_code": "500236100"}))
            .await;
        assert_eq!(s, 201);
        let id = made["user"]["id"].as_i64().unwrap();
        app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), json!({"role": "reviewer"})).await;
        let (_, log) = app.get(&t, "/api/v1/audit?limit=1000").await;
        let items = log["items"].as_array().unwrap();
        let upd = items.iter().find(|e| e["action"] == "user.update").expect("update audited");
        assert!(upd["actor"].as_str().unwrap().starts_with("api:") && upd["actor"].as_str().unwrap().ends_with(":admin"));
        assert!(upd["before"].as_str().unwrap().contains("steward") && upd["after"].as_str().unwrap().contains("reviewer"));
        assert!(items.iter().all(|e| !e["after"].as_str().unwrap().contains("argon2")), "no password hash in the log");
    }
}

#[tokio::test]
async fn ops_endpoints_and_languages() {
    for app in apps().await {
        let c = client();
        assert_eq!(c.get(format!("{}/healthz", app.ops)).send().await.unwrap().text().await.unwrap(), "ok");
        assert_eq!(c.get(format!("{}/readyz", app.ops)).send().await.unwrap().status(), 200);
        let _ = app.token("admin").await;
        let m = c.get(format!("{}/metrics", app.ops)).send().await.unwrap().text().await.unwrap();
        assert!(m.contains("cuncun_http_requests_total") && m.contains("outcome=\"ok\""), "{m}");
        assert_eq!(c.get(format!("{}/metrics", app.url)).send().await.unwrap().status(), 404, "metrics stay off the app port");
        let zh = c.get(format!("{}/login", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(zh.contains("lang=\"zh-CN\"") && zh.contains("用户名"));
        let en = c.get(format!("{}/login?lang=en", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(en.contains("lang=\"en\"") && en.contains("Username"));
        let r = c.get(format!("{}/lang/en?back=//evil.example", app.url)).send().await.unwrap();
        assert_eq!(r.headers()["location"], "/", "no open redirect");
        let after = c.get(format!("{}/login", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(after.contains("Username"), "the language choice sticks");
    }
}

/// Garbage at every documented endpoint: wrong types, bad JSON, odd path values. Whatever the
/// answer, it is a 4xx with a JSON error, never a 5xx (a poor man's API fuzzer).
#[tokio::test]
async fn garbage_never_gets_a_server_error() {
    let apps = apps().await;
    let app = &apps[0];
    let doc: Value = client().get(format!("{}/openapi.json", app.url)).send().await.unwrap().json().await.unwrap();
    let t = app.token("admin").await;
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"{".to_vec(),
        b"null".to_vec(),
        b"[1,2,3]".to_vec(),
        br#"{"username": 5, "name": [], "households": "many", "severity": "red", "areas": "50", "role": {}}"#.to_vec(),
        format!(r#"{{"title": "{}", "text": "x", "event_type": "11B03", "areas": ["500236"]}}"#, "长".repeat(5000)).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x01],
    ];
    let params = ["0", "-1", "abc", "99999999999999999999", "%00", "500236", "..%2F..%2Fetc"];
    let mut calls = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if path == "/login" || path == "/logout" {
                continue; // would end the session used here or trip the login limiter
            }
            for p in params {
                let concrete = path.replace("{code}", p).replace("{id}", p).replace("{action}", p);
                for body in &bodies {
                    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    let r = client()
                        .request(m, format!("{}/api/v1{concrete}", app.url))
                        .bearer_auth(&t)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    calls += 1;
                    assert!(status < 500, "{method} {concrete} with {:?}: {status} {}", String::from_utf8_lossy(&body[..body.len().min(40)]), r.text().await.unwrap_or_default());
                }
            }
        }
    }
    assert!(calls > 500, "{calls} calls");
    assert_eq!(client().get(format!("{}/healthz", app.ops)).send().await.unwrap().status(), 200, "still alive");
}
