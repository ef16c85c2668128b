//! An update replaces its original in one transaction. The binary is stopped (abort, as a power
//! cut) at named failpoints while an update is approved; after a restart exactly one of the
//! original and the update is on air, and the dispatcher takes it up.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the demo server (with `failpoint` armed); returns it and the password it printed.
fn start(dir: &std::path::Path, ports: (u16, u16, u16), failpoint: Option<&str>) -> (Server, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cuncun"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CUNCUN_") && k != "CUNCUN_CI" {
            c.env_remove(k);
        }
    }
    if let Some(f) = failpoint {
        c.env("CUNCUN_FAILPOINTS", f);
    }
    let mut child = c
        .args(["demo", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{}", ports.0), "--ops-listen", &format!("127.0.0.1:{}", ports.1)])
        .args(["--bus-listen", &format!("127.0.0.1:{}", ports.2), "--sim", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("demo printed its password");
        if let Some(p) = line.strip_prefix("log in as: admin / ") {
            return (server, p.trim().to_string());
        }
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn login(&self, user: &str, pw: &str) -> String {
        let r: Value = self.http.post(format!("{}/api/v1/login", self.base)).json(&json!({"username": user, "password": pw})).send().await.unwrap().json().await.unwrap();
        r["token"].as_str().unwrap_or_else(|| panic!("login {user}: {r}")).to_string()
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
        let t = Instant::now();
        while server.0.try_wait().unwrap().is_none() {
            assert!(t.elapsed() < Duration::from_secs(10), "{failpoint}: the process did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
