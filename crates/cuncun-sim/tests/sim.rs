//! Simulated terminals against the embedded gateway: the protocol as the platform sees it.

use bytes::Bytes;
use cuncun_domain::protocol::{self, Command, LogEntry, Play, Priority, Receipt, Stage};
use cuncun_gateway::{Bus, BusEvent, DeviceAuth, EmbeddedGateway, GatewayConfig, start_embedded_gateway};
use cuncun_sim::{EqualSeverity, PlayerConfig, SimConfig, SimControl, SimReport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const A1: &str = "45002361002010314000001";
const A2: &str = "45002361002010314000002";
const B1: &str = "45002361002020314000003";
const T: Duration = Duration::from_secs(10);

fn creds(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter().map(|id| (id.to_string(), format!("secret-{id}"))).collect()
}

async fn gateway(ids: &[&str]) -> (Arc<EmbeddedGateway>, mpsc::Receiver<BusEvent>, SocketAddr) {
    let auth = Arc::new(DeviceAuth::default());
    for (id, s) in creds(ids) {
        auth.insert(&id, &s, cuncun_sim::region_of(&id).expect("id"));
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (gw, ev) = start_embedded_gateway(vec![l], GatewayConfig::default(), auth).await.expect("gateway");
    let addr = gw.local_addrs()[0];
    (gw, ev, addr)
}

fn quick(play_seconds: f64) -> SimConfig {
    SimConfig {
        start_delay: (Duration::ZERO, Duration::ZERO),
        player: PlayerConfig { play_seconds: Some(play_seconds), equal_severity: EqualSeverity::NewerWins, volume: 60 },
        ..SimConfig::default()
    }
}

struct Sim {
    ctl: Arc<SimControl>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<SimReport>,
}

fn start_sim(cfg: SimConfig, creds: Vec<(String, String)>, target: SocketAddr) -> Sim {
    let ctl = SimControl::new();
    let (stop, rx) = oneshot::channel::<()>();
    let c = ctl.clone();
    let done = tokio::spawn(async move {
        cuncun_sim::run_with_control(
            cfg,
            creds,
            target,
            async move {
                let _ = rx.await;
            },
            c,
        )
        .await
    });
    Sim { ctl, stop, done }
}

impl Sim {
    async fn subscribed(&self, n: u64) {
        let deadline = tokio::time::Instant::now() + T;
        while self.ctl.progress().subscribed != n {
            assert!(tokio::time::Instant::now() < deadline, "not {n} subscribed: {:?}", self.ctl.progress());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> SimReport {
        let _ = self.stop.send(());
        tokio::time::timeout(T, self.done).await.expect("sim stops").expect("sim task")
    }
}

fn play(id: &str, severity: u8, end_in_ms: i64) -> Play {
    let now = chrono_now();
    Play {
        v: 1,
        id: id.into(),
        priority: Priority::Emergency,
        severity,
        event: "11B01".into(),
        title: "暴雨预警".into(),
        text: "请注意防范".into(),
        audio: None,
        start: now,
        end: now + end_in_ms,
        repeat: 1,
        volume: None,
        drill: false,
        equal_severity: None,
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn cmd(c: Command) -> Bytes {
    Bytes::from(serde_json::to_vec(&c).expect("json"))
}

/// Next upward message of `kind`, decoded, from terminal `id`.
async fn next_up<T: serde::de::DeserializeOwned>(rx: &mut mpsc::Receiver<BusEvent>, id: &str, kind: &str) -> T {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(BusEvent::Up { id: i, kind: k, payload })) if i == id && k == kind => {
                return serde_json::from_slice(&payload).expect("valid JSON upward");
            }
            Ok(Some(_)) => {}
            _ => panic!("no {kind} from {id}"),
        }
    }
}

async fn next_receipt(rx: &mut mpsc::Receiver<BusEvent>, id: &str) -> Receipt {
    next_up(rx, id, "rcpt").await
}

#[tokio::test]
async fn terminals_receive_receipt_and_dedupe() {
    let (gw, mut ev, addr) = gateway(&[A1, A2, B1]).await;
    let sim = start_sim(quick(0.2), creds(&[A1, A2, B1]), addr);
    sim.subscribed(3).await;
    assert_eq!(gw.stats().connected, 3);
    for id in [A1, A2, B1] {
        assert_eq!(gw.is_online(id), Some(true));
    }

    let village = protocol::region_cmd_topic("500236100201");
    let p = play("m1", 2, 60_000);
    assert_eq!(gw.publish(&village, cmd(Command::Play(p.clone()))).await.ok(), Some(Some(2)));
    // The same message again on a terminal's own topic (a re-send) is a duplicate.
    assert_eq!(gw.publish(&protocol::terminal_cmd_topic(A1), cmd(Command::Play(p))).await.ok(), Some(Some(1)));

    let mut stages = std::collections::BTreeMap::<&str, Vec<Stage>>::new();
    let deadline = tokio::time::Instant::now() + T;
    let mut logs = 0;
    while stages.values().map(Vec::len).sum::<usize>() < 6 || logs < 2 {
        let e = tokio::time::timeout_at(deadline, ev.recv()).await.expect("events in time").expect("open");
        if let BusEvent::Up { id, kind, payload } = e {
            // Heartbeats come from every terminal; only receipts and logs tell who was addressed.
            if kind != "rcpt" && kind != "log" {
                continue;
            }
            let who = if id == A1 { A1 } else if id == A2 { A2 } else { panic!("{id} was not addressed ({kind})") };
            match kind.as_str() {
                "rcpt" => {
                    let r: Receipt = serde_json::from_slice(&payload).expect("receipt");
                    assert_eq!(r.id, "m1");
                    stages.entry(who).or_default().push(r.stage);
                }
                "log" => {
                    let l: LogEntry = serde_json::from_slice(&payload).expect("log");
                    assert_eq!((l.id.as_str(), l.source.as_str(), l.result.as_deref(), l.volume), ("m1", "emergency", Some("finished"), 60));
                    logs += 1;
                }
                _ => {}
            }
        }
    }
    for who in [A1, A2] {
        assert_eq!(stages[who], [Stage::Received, Stage::Started, Stage::Finished], "{who}");
    }

    let report = sim.finish().await;
    assert_eq!((report.terminals, report.connected, report.plays_received, report.duplicates), (3, 3, 2, 1));
    assert_eq!((report.receipts_sent, report.logs_sent, report.refused), (6, 2, 0));
    assert_eq!(report.receive_times_us["m1"].len(), 2);
    assert!(report.latency_ms["m1"].iter().all(|l| *l >= 0.0 && *l < 5_000.0));
    // Stopping says goodbye: every terminal goes offline.
    let deadline = tokio::time::Instant::now() + T;
    while gw.stats().connected > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still connected after stop");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn preemption_cancel_and_expiry() {
    let (gw, mut ev, addr) = gateway(&[A1]).await;
    let sim = start_sim(quick(30.0), creds(&[A1]), addr);
    sim.subscribed(1).await;
    let own = protocol::terminal_cmd_topic(A1);

    gw.publish(&own, cmd(Command::Play(play("blue", 4, 60_000)))).await.expect("pub");
    assert_eq!(next_receipt(&mut ev, A1).await.stage, Stage::Received);
    assert_eq!(next_receipt(&mut ev, A1).await.stage, Stage::Started);

    gw.publish(&own, cmd(Command::Play(play("red", 1, 60_000)))).await.expect("pub");
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage), ("red", Stage::Received));
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage, r.reason.as_deref()), ("blue", Stage::Finished, Some("preempted")));
    let log: LogEntry = next_up(&mut ev, A1, "log").await;
    assert_eq!((log.id.as_str(), log.result.as_deref()), ("blue", Some("preempted")));
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage, r.preempted.as_deref()), ("red", Stage::Started, Some("blue")));

    // Less urgent: received, but red keeps playing.
    gw.publish(&own, cmd(Command::Play(play("yellow", 3, 60_000)))).await.expect("pub");
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage), ("yellow", Stage::Received));

    gw.publish(&own, cmd(Command::Cancel { v: 1, id: "red".into() })).await.expect("pub");
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage, r.reason.as_deref()), ("red", Stage::Finished, Some("cancelled")));
    let log: LogEntry = next_up(&mut ev, A1, "log").await;
    assert_eq!((log.id.as_str(), log.result.as_deref()), ("red", Some("cancelled")));
    // The queued one plays next.
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage), ("yellow", Stage::Started));

    // Already over: ignored, no receipt.
    gw.publish(&own, cmd(Command::Play(play("old", 1, -1_000)))).await.expect("pub");
    gw.publish(&own, cmd(Command::Stop { v: 1 })).await.expect("pub");
    let r = next_receipt(&mut ev, A1).await;
    assert_eq!((r.id.as_str(), r.stage, r.reason.as_deref()), ("yellow", Stage::Finished, Some("stopped")));
    gw.publish(&own, Bytes::from_static(b"not json")).await.expect("pub");

    let report = sim.finish().await;
    assert_eq!((report.plays_received, report.expired, report.bad_commands), (4, 1, 1));
}

#[tokio::test]
async fn refused_terminals_are_counted() {
    let (gw, _ev, addr) = gateway(&[A1]).await;
    let mut c = creds(&[A1, A2]);
    c[0].1 = "wrong".into();
    let sim = start_sim(quick(1.0), c, addr);
    let deadline = tokio::time::Instant::now() + T;
    while sim.ctl.progress().refused < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", sim.ctl.progress());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let report = sim.finish().await;
    assert_eq!((report.refused, report.connected, report.connects_total), (2, 0, 0));
    assert_eq!(gw.stats().refused_auth, 2);
}

#[tokio::test]
async fn heartbeats_reconnects_and_offline_episodes() {
    let (gw, mut ev, addr) = gateway(&[A1, A2]).await;
    let cfg = SimConfig { hb_interval: Duration::from_millis(200), ..quick(1.0) };
    let sim = start_sim(cfg, creds(&[A1, A2]), addr);
    sim.subscribed(2).await;
    let hb: protocol::Heartbeat = next_up(&mut ev, A1, "hb").await;
    assert_eq!((hb.v, hb.state, hb.volume), (1, protocol::TerminalState::Idle, 60));

    // Everyone drops at once and comes straight back.
    sim.ctl.drop_all();
    let deadline = tokio::time::Instant::now() + T;
    while sim.ctl.progress().connects_total < 4 || sim.ctl.progress().subscribed < 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", sim.ctl.progress());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gw.publish(&protocol::region_cmd_topic("50"), cmd(Command::Volume { v: 1, volume: 33 })).await.ok(), Some(Some(2)));
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let hb: protocol::Heartbeat = next_up(&mut ev, A2, "hb").await;
        if hb.volume == 33 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "volume never applied");
    }
    let report = sim.finish().await;
    assert_eq!(report.connects_total, 4);
    assert!(report.heartbeats_sent >= 2);

    // Offline episodes: about one every 0.5 s per terminal, 50-100 ms long.
    let (gw, _ev, addr) = gateway(&[A1]).await;
    let cfg = SimConfig {
        offline_rate: 7_200.0,
        offline_duration: (Duration::from_millis(50), Duration::from_millis(100)),
        ..quick(1.0)
    };
    let sim = start_sim(cfg, creds(&[A1]), addr);
    let deadline = tokio::time::Instant::now() + T;
    while gw.stats().connects_total < 4 {
        assert!(tokio::time::Instant::now() < deadline, "no episodes: {:?}", gw.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = sim.finish().await;
    assert!(report.disconnects >= 3, "{report:?}");
}
