//! Killing the platform (SIGKILL) right after a warning is approved, then starting it again:
//! every targeted terminal plays the warning exactly once.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::time::{Duration, Instant};

mod crashing;
use crashing::{free_port, login, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_platform_delivers_every_approved_warning_once() {
    let tmp = std::env::temp_dir().join(format!("cuncun-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let ports = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{}", ports.0);
    let (server, pw) = start(&tmp, ports, None);

    // Simulated terminals of township 500236001. Front-ends (type 0301) also hear region
    // broadcasts but are not counted as delivery targets, so they are left out here.
    let creds: Vec<(String, String)> = cuncun_sim::load_credentials(&tmp.join("sim-credentials.csv"))
        .unwrap()
        .into_iter()
        .filter(|(id, _)| &id[1..10] == "500236001" && &id[13..17] != "0301")
        .collect();
    let cfg = cuncun_sim::SimConfig {
        start_delay: (Duration::ZERO, Duration::ZERO),
        record_receive_times: true,
        retry_backoff: (Duration::from_millis(100), Duration::from_millis(500)),
        ..Default::default()
    };
    let ctl = cuncun_sim::SimControl::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let target: std::net::SocketAddr = format!("127.0.0.1:{}", ports.2).parse().unwrap();
    let n = creds.len() as u64;
    let sim = tokio::spawn(cuncun_sim::run_with_control(cfg, creds, target, async { let _ = stop_rx.await; }, ctl.clone()));
    let t = Instant::now();
    while ctl.progress().subscribed < n {
        assert!(t.elapsed() < Duration::from_secs(60), "terminals did not connect: {:?}", ctl.progress());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let sender = login(&http, &base, "qixiang", &pw).await;
    let m: Value = http
        .post(format!("{base}/api/v1/eb/messages"))
        .bearer_auth(&sender)
        .json(&json!({"event_type": "11B03", "severity": 2, "title": "暴雨橙色预警", "text": "崩溃恢复测试", "areas": ["500236001"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = m["message"]["id"].as_i64().unwrap();
    let ebmid = m["message"]["ebmid"].as_str().unwrap().to_string();
    http.post(format!("{base}/api/v1/eb/messages/{id}/submit")).bearer_auth(&sender).send().await.unwrap();
    let reviewer = login(&http, &base, "shenhe", &pw).await;
    let r = http.post(format!("{base}/api/v1/eb/messages/{id}/approve")).bearer_auth(&reviewer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // SIGKILL at once: the dispatch may or may not have gone out.
    drop(server);

    let (_server, pw) = start(&tmp, ports, None);
    let reviewer = login(&http, &base, "shenhe", &pw).await;
    let t = Instant::now();
    let delivery = loop {
        let v: Value = http.get(format!("{base}/api/v1/eb/messages/{id}")).bearer_auth(&reviewer).send().await.unwrap().json().await.unwrap();
        let d = v["delivery"].clone();
        if d["targets"].as_i64().unwrap_or(0) > 0 && d["started"] == d["targets"] {
            break d;
        }
        assert!(t.elapsed() < Duration::from_secs(90), "delivery did not complete after the restart: {v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = stop_tx.send(());
    let report = sim.await.unwrap();
    let targets = delivery["targets"].as_i64().unwrap() as usize;
    let played = report.receive_times_us.get(&ebmid).map(Vec::len).unwrap_or(0);
    assert_eq!(played, targets, "every targeted terminal got it once (duplicates seen: {})", report.duplicates);
    assert_eq!(report.plays_received as usize, targets, "and no terminal played it twice");
    let _ = std::fs::remove_dir_all(&tmp);
}
