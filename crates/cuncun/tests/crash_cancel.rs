//! A cancel survives a crash: the binary is stopped (abort, as a power cut) right after the
//! cancellation is committed and before anything of it is sent; after a restart every terminal
//! that played the warning gets the cancel. The terminals are plain MQTT clients (rumqttc)
//! following docs/TERMINAL_PROTOCOL.md, which reconnect by themselves.
#![allow(clippy::unwrap_used)]

use cuncun_domain::protocol::{self, Command, Receipt, Stage};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod crashing;
use crashing::{free_port, login, start, wait_exit};

#[derive(Default)]
struct Heard {
    plays: HashSet<String>,
    cancels: HashSet<String>,
}

/// A terminal: subscribes, then publishes `online`; receipts plays and cancels; reconnects every
/// 200 ms while the platform is away.
fn terminal(port: u16, id: &str, secret: &str) -> (Arc<Mutex<Heard>>, tokio::task::JoinHandle<()>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(id, secret);
    o.set_keep_alive(Duration::from_secs(10));
    let (c, mut el) = AsyncClient::new(o, 64);
    let heard = Arc::new(Mutex::new(Heard::default()));
    let (h, me) = (heard.clone(), id.to_string());
    let mut topics = vec![protocol::terminal_cmd_topic(&me)];
    topics.extend(protocol::region_chain_topics(&me[1..13]));
    let task = tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    acked = 0;
                    for t in &topics {
                        let _ = c.subscribe(t.clone(), QoS::AtMostOnce).await;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    acked += 1;
                    if acked == topics.len() {
                        let _ = c.publish(protocol::up_topic(&me, "status"), QoS::AtMostOnce, false, r#"{"v":1,"online":true}"#).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let (id, stage) = match serde_json::from_slice::<Command>(&p.payload) {
                        Ok(Command::Play(p)) => {
                            h.lock().unwrap().plays.insert(p.id.clone());
                            (p.id, Stage::Received)
                        }
                        Ok(Command::Cancel { id, .. }) => {
                            h.lock().unwrap().cancels.insert(id.clone());
                            (id, Stage::Cancelled)
                        }
                        _ => continue,
                    };
                    let r = Receipt { v: 1, id, stage, ts: cuncun_domain::time::now_ms(), reason: None, preempted: None };
                    let _ = c.publish(protocol::up_topic(&me, "rcpt"), QoS::AtMostOnce, false, serde_json::to_vec(&r).unwrap()).await;
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    (heard, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_committed_just_before_a_crash_reaches_every_terminal_after_restart() {
    let tmp = std::env::temp_dir().join(format!("cuncun-crash-cancel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let ports = (free_port(), free_port(), free_port());
    let base = format!("http://127.0.0.1:{}", ports.0);
    let (mut server, pw) = start(&tmp, ports, Some("message.cancel.after_commit"));

    // The loudspeakers and receivers of township 500236001 (front-ends, type 0301, are no
    // delivery targets).
    let creds: Vec<(String, String)> = std::fs::read_to_string(tmp.join("sim-credentials.csv"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(','))
        .map(|(i, s)| (i.trim().to_string(), s.trim().to_string()))
        .filter(|(id, _)| id.len() == 23 && &id[1..10] == "500236001" && &id[13..17] != "0301")
        .collect();
    assert!(!creds.is_empty(), "the demo has terminals in 500236001");
    let terms: Vec<_> = creds.iter().map(|(id, s)| (id.clone(), terminal(ports.2, id, s))).collect();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let caster = login(&http, &base, "boke", &pw).await;
    let reviewer = login(&http, &base, "shenhe", &pw).await;
    let body = json!({"event_type": "11B03", "severity": 2, "title": "暴雨橙色预警", "text": "误报测试", "areas": ["500236001"]});
    let m: Value = http.post(format!("{base}/api/v1/eb/messages")).bearer_auth(&caster).json(&body).send().await.unwrap().json().await.unwrap();
    let id = m["message"]["id"].as_i64().unwrap_or_else(|| panic!("compose: {m}"));
    let ebmid = m["message"]["ebmid"].as_str().unwrap().to_string();
    http.post(format!("{base}/api/v1/eb/messages/{id}/submit")).bearer_auth(&caster).send().await.unwrap();
    let r = http.post(format!("{base}/api/v1/eb/messages/{id}/approve")).bearer_auth(&reviewer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let t = Instant::now();
    while !terms.iter().all(|(_, (h, _))| h.lock().unwrap().plays.contains(&ebmid)) {
        assert!(t.elapsed() < Duration::from_secs(60), "not every terminal played the warning");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The process stops inside this request, right after the cancellation is committed.
    let r = http.post(format!("{base}/api/v1/eb/messages/{id}/cancel")).bearer_auth(&reviewer).json(&json!({"reason": "误报"})).send().await;
    assert!(r.is_err() || r.as_ref().is_ok_and(|r| r.status().as_u16() >= 500), "the process should have stopped: {r:?}");
    wait_exit(&mut server, "cancel").await;
    drop(server);
    let before = terms.iter().filter(|(_, (h, _))| h.lock().unwrap().cancels.contains(&ebmid)).count();
    assert_eq!(before, 0, "nothing of the cancel was sent before the crash");

    let (_server, pw) = start(&tmp, ports, None);
    let restarted = Instant::now();
    let admin = login(&http, &base, "admin", &pw).await;
    let v: Value = http.get(format!("{base}/api/v1/eb/messages/{id}")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["message"]["status"], "cancelled", "the cancellation was committed");
    loop {
        let missing: Vec<&String> = terms.iter().filter(|(_, (h, _))| !h.lock().unwrap().cancels.contains(&ebmid)).map(|(i, _)| i).collect();
        if missing.is_empty() {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(60), "no cancel after the restart for {missing:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("every one of {} terminals had the cancel {:?} after the restart", terms.len(), restarted.elapsed());
    for (_, (_, t)) in terms {
        t.abort();
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
