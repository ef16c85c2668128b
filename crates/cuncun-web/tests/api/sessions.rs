//! Sessions end when revoked, logins are rate limited, disabled users cannot log in.
use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn logout_and_revocation_end_sessions() {
    for app in apps().await {
        let t = app.token("t1view").await;
        assert_eq!(app.get(&t, "/api/v1/me").await.0, 200);
        assert_eq!(app.send(&t, "POST", "/api/v1/logout", json!({})).await.0, 204);
        assert_eq!(app.get(&t, "/api/v1/me").await.0, 401, "logged out token is dead");

        let victim = app.token("t1view").await;
        let (browser, _) = app.browser("t1view").await;
        let admin = app.token("admin").await;
        let id = app.store.user_credentials("t1view").await.unwrap().unwrap().0.id;
        let (s, r) = app.send(&admin, "DELETE", &format!("/api/v1/users/{id}/sessions"), json!({})).await;
        assert_eq!(s, 200);
        assert!(r["revoked"].as_u64().unwrap() >= 2);
        assert_eq!(app.get(&victim, "/api/v1/me").await.0, 401);
        let page = browser.get(format!("{}/", app.url)).send().await.unwrap();
        assert_eq!(page.status(), 303, "the browser is sent back to the login page");
        assert_eq!(page.headers()["location"], "/login");
    }
}

#[tokio::test]
async fn disabled_users_cannot_log_in() {
    for app in apps().await {
        let admin = app.token("admin").await;
        let id = app.store.user_credentials("t2view").await.unwrap().unwrap().0.id;
        let live = app.token("t2view").await;
        let (s, _) = app.send(&admin, "PATCH", &format!("/api/v1/users/{id}"), json!({"disabled": true})).await;
        assert_eq!(s, 200);
        assert_eq!(app.get(&live, "/api/v1/me").await.0, 401, "disabling ends live sessions");
        let r = client()
            .post(format!("{}/api/v1/login", app.url))
            .json(&json!({"username": "t2view", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        // An admin cannot disable themselves.
        let me = app.store.user_credentials("admin").await.unwrap().unwrap().0.id;
        assert_eq!(app.send(&admin, "PATCH", &format!("/api/v1/users/{me}"), json!({"disabled": true})).await.0, 400);
    }
}

#[tokio::test]
async fn failed_logins_are_limited_and_audited() {
    for app in apps().await {
        let attempt = |pw: &'static str| {
            let url = format!("{}/api/v1/login", app.url);
            async move {
                client().post(url).json(&json!({"username": "t1admin", "password": pw})).send().await.unwrap().status().as_u16()
            }
        };
        for _ in 0..5 {
            assert_eq!(attempt("wrong-password").await, 403);
        }
        assert_eq!(attempt("wrong-password").await, 429);
        assert_eq!(attempt(PASSWORD).await, 429, "even the right password waits out the window");
        let failed = app.store.audit_recent(20).await.unwrap().iter().filter(|e| e.action == "login.failed").count();
        assert_eq!(failed, 5);
        let (n, faults) = cuncun_store::verify_audit(&*app.store).await.unwrap();
        assert!(n > 5 && faults.is_empty());
    }
}

#[tokio::test]
async fn cookie_sessions_need_csrf_for_api_writes() {
    for app in apps().await {
        let (c, csrf) = app.browser("admin").await;
        let url = format!("{}/api/v1/regions/500236100201/hamlets", app.url);
        let body = json!({"name": "石板沟", "households": 22, "population": 61});
        let r = c.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "cookie without X-CSRF-Token");
        let r = c.post(&url).header("x-csrf-token", &csrf).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        // The login form itself refuses a post without its CSRF cookie.
        let r = client()
            .post(format!("{}/login", app.url))
            .form(&[("username", "admin"), ("password", PASSWORD), ("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
}
