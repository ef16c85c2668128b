//! An update replaces its original in one transaction. The binary is stopped (abort, as a power
//! cut) at named failpoints while an update is approved; after a restart exactly one of the
//! original and the update is on air, and the dispatcher takes it up.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod crashing;
use crashing::{free_port, start, wait_exit};

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, user: &str, pw: &str) -> String {
        crashing::login(&self.http, &self.base, user, pw).await
    }
    async fn post(&self, token: &str, path: &str, body: Value) -> reqwest::Result<(u16, Value)> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(&body).send().await?;
        let st = r.status().as_u16();
        Ok((st, r.json().await.unwrap_or(Value::Null)))
    }
    async fn status(&self, token: &str, id: i64) -> String {
        let v: Value = self.http.get(format!("{}/api/v1/eb/messages/{id}", self.base)).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        v["message"]["status"].as_str().unwrap_or_else(|| panic!("message {id}: {v}")).to_string()
    }
}

/// Composes (as the broadcaster), submits and returns the id of a message.
async fn draft(api: &Api, caster: &str, body: Value) -> i64 {
    let (st, m) = api.post(caster, "/api/v1/eb/messages", body).await.unwrap();
    assert_eq!(st, 201, "{m}");
    let id = m["message"]["id"].as_i64().unwrap();
    assert_eq!(api.post(caster, &format!("/api/v1/eb/messages/{id}/submit"), json!({})).await.unwrap().0, 200);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_approved_through_a_crash_leaves_exactly_one_on_air() {
    for failpoint in ["message.update.between", "message.update.before_commit", "message.update.after_commit"] {
        let tmp = std::env::temp_dir().join(format!("cuncun-crash-update-{}-{failpoint}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let ports = (free_port(), free_port(), free_port());
        let api = Api { http: reqwest::Client::builder().no_proxy().build().unwrap(), base: format!("http://127.0.0.1:{}", ports.0) };
        let (mut server, pw) = start(&tmp, ports, Some(failpoint));
        let caster = api.login("boke", &pw).await;
        let reviewer = api.login("shenhe", &pw).await;
        let warning = json!({"event_type": "11B03", "severity": 2, "title": "暴雨橙色预警", "text": "原预警", "areas": ["500236001"]});
        let orig = draft(&api, &caster, warning).await;
        let (st, m) = api.post(&reviewer, &format!("/api/v1/eb/messages/{orig}/approve"), json!({})).await.unwrap();
        assert_eq!(st, 200, "a plain approval passes no update failpoint: {m}");
        let ebmid = m["message"]["ebmid"].as_str().unwrap().to_string();
        let update = json!({"event_type": "11B03", "severity": 1, "title": "暴雨红色预警", "text": "升级", "areas": ["500236001"], "updates": ebmid});
        let upd = draft(&api, &caster, update).await;
        // The process stops inside this request.
        let r = api.post(&reviewer, &format!("/api/v1/eb/messages/{upd}/approve"), json!({})).await;
        assert!(r.is_err() || r.as_ref().is_ok_and(|(st, _)| *st >= 500), "{failpoint}: the process should have stopped: {r:?}");
        wait_exit(&mut server, failpoint).await;
        drop(server);

        let (_server, pw) = start(&tmp, ports, None);
        let admin = api.login("admin", &pw).await;
        let on_air = |s: &str| s == "approved" || s == "dispatching";
        let t = Instant::now();
        loop {
            let (o, u) = (api.status(&admin, orig).await, api.status(&admin, upd).await);
            assert!(on_air(&o) != on_air(&u), "{failpoint}: exactly one of original ({o}) and update ({u}) on air");
            if failpoint == "message.update.after_commit" {
                assert_eq!((o.as_str(), on_air(&u)), ("cancelled", true), "{failpoint}: committed, so the update replaced the original");
            } else {
                assert_eq!((on_air(&o), u.as_str()), (true, "submitted"), "{failpoint}: rolled back, so the original plays on");
            }
            // The dispatcher takes the one on air up after the restart.
            if o == "dispatching" || u == "dispatching" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "{failpoint}: nothing dispatched after the restart ({o}, {u})");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
