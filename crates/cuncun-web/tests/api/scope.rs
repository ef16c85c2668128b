//! A township user cannot read or change another township's data, through the API or the pages.
use crate::harness::*;

#[tokio::test]
async fn township_user_sees_only_its_township_through_the_api() {
    for app in apps().await {
        let t = app.token("t1view").await;
        assert_eq!(app.get(&t, "/api/v1/regions/500236001").await.0, 200);
        assert_eq!(app.get(&t, "/api/v1/regions/500236001001").await.0, 200);
        for path in [
            "/api/v1/regions/500236100",
            "/api/v1/regions/500236100201",
            "/api/v1/regions/500236",
            "/api/v1/regions/500236100/children",
            "/api/v1/regions/500236100201/hamlets",
            "/api/v1/regions?q=%E6%9D%91&scope=500236100",
        ] {
            let (s, body) = app.get(&t, path).await;
            assert_eq!(s, 403, "{path} must be refused: {body}");
            assert_eq!(body["error"]["code"], "forbidden");
        }
        // A search without a scope stays inside the user's township.
        let (s, body) = app.get(&t, "/api/v1/regions?q=%E6%9D%91").await;
        assert_eq!(s, 200);
        let names: Vec<&str> = body["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert!(names.is_empty(), "no 村 in 永安街道, got {names:?}");
        let (_, own) = app.get(&t, "/api/v1/regions?q=%E7%A4%BE%E5%8C%BA").await;
        assert_eq!(own["items"].as_array().unwrap().len(), 2);
        // Counts of the county are not visible, the township's are.
        let (_, r) = app.get(&t, "/api/v1/regions/500236001").await;
        assert_eq!(r["counts"]["villages"], 2);
    }
}

#[tokio::test]
async fn township_admin_cannot_manage_users_elsewhere() {
    for app in apps().await {
        let t = app.token("t1admin").await;
        let (s, list) = app.get(&t, "/api/v1/users").await;
        assert_eq!(s, 200);
        let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
        assert_eq!(names, ["t1admin", "t1review", "t1sender", "t1view", "v1cast"], "only users of township 001 and its villages");
        let t2 = app.store.user_credentials("t2view").await.unwrap().unwrap().0;
        assert_eq!(app.get(&t, &format!("/api/v1/users/{}", t2.id)).await.0, 403);
        let (s, _) = app.send(&t, "PATCH", &format!("/api/v1/users/{}", t2.id), serde_json::json!({"disabled": true})).await;
        assert_eq!(s, 403);
        let (s, _) = app.send(&t, "DELETE", &format!("/api/v1/users/{}/sessions", t2.id), serde_json::json!({})).await;
        assert_eq!(s, 403);
        let new_user = |region: &str| {
            serde_json::json!({"username": format!("n{region}"), "display_name": "新用户", "password": "long-enough-pw",
                               "role": "viewer", "region_code": region})
        };
        assert_eq!(app.send(&t, "POST", "/api/v1/users", new_user("500236100")).await.0, 403);
        assert_eq!(app.send(&t, "POST", "/api/v1/users", new_user("500236")).await.0, 403);
        let (s, made) = app.send(&t, "POST", "/api/v1/users", new_user("500236001002")).await;
        assert_eq!(s, 201, "{made}");
        // Moving an own user out of the township is refused too.
        let id = made["user"]["id"].as_i64().unwrap();
        let (s, _) = app.send(&t, "PATCH", &format!("/api/v1/users/{id}"), serde_json::json!({"region_code": "500236100"})).await;
        assert_eq!(s, 403);
        // A viewer is no administrator.
        let v = app.token("t1view").await;
        assert_eq!(app.get(&v, "/api/v1/users").await.0, 403);
    }
}

#[tokio::test]
async fn township_user_cannot_open_another_township_page() {
    for app in apps().await {
        let (c, _) = app.browser("t1view").await;
        let own = c.get(format!("{}/regions/500236001", app.url)).send().await.unwrap();
        assert_eq!(own.status(), 200);
        let body = own.text().await.unwrap();
        assert!(body.contains("桂井社区") && body.contains("诗城社区"));
        for path in ["/regions/500236100", "/regions/500236100201", "/regions/500236"] {
            let r = c.get(format!("{}{path}", app.url)).send().await.unwrap();
            assert_eq!(r.status(), 403, "{path}");
            let page = r.text().await.unwrap();
            assert!(page.contains("error-message") && !page.contains("白帝村"), "{path}: {page}");
        }
        // The dashboard of a township user counts only its township.
        let home = c.get(format!("{}/", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(home.contains("永安街道") && !home.contains("白帝镇"));
        // And the user pages are for administrators only.
        assert_eq!(c.get(format!("{}/users", app.url)).send().await.unwrap().status(), 403);
    }
}

#[tokio::test]
async fn hamlets_need_role_scope_and_csrf() {
    for app in apps().await {
        let (c, csrf) = app.browser("t2cast").await;
        let url = format!("{}/regions/500236100201/hamlets", app.url);
        let form = |csrf: &str| {
            vec![("csrf", csrf.to_string()), ("name", "王家湾".to_string()), ("households", "35".into()), ("population", "96".into())]
        };
        let no_csrf = c.post(&url).form(&form("0".repeat(64).as_str())).send().await.unwrap();
        assert_eq!(no_csrf.status(), 403, "a forged form is refused");
        let ok = c.post(&url).form(&form(&csrf)).send().await.unwrap();
        assert_eq!(ok.status(), 303);
        let page = c.get(format!("{}/regions/500236100201", app.url)).send().await.unwrap().text().await.unwrap();
        assert!(page.contains("王家湾"));
        let other = c.post(format!("{}/regions/500236001001/hamlets", app.url)).form(&form(&csrf)).send().await.unwrap();
        assert_eq!(other.status(), 403, "outside the broadcaster's township");
        // A viewer may not edit even inside its region.
        let t = app.token("t2view").await;
        let (s, _) = app
            .send(&t, "POST", "/api/v1/regions/500236100202/hamlets", serde_json::json!({"name": "李家坝", "households": 20, "population": 50}))
            .await;
        assert_eq!(s, 403);
        // The change is in the audit log with the person's name.
        let e = &app.store.audit_recent(5).await.unwrap();
        assert!(e.iter().any(|e| e.action == "hamlet.create" && e.actor.ends_with(":t2cast") && e.after.contains("王家湾")));
    }
}
