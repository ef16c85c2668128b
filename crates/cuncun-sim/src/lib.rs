//! Simulated terminals: many light MQTT 3.1.1 clients in one process speaking terminal protocol
//! v1 (see `cuncun_domain::protocol`), for `cuncun sim`, tests and benchmarks.
//!
//! One small task per terminal, each with its own socket; connects are bounded in number at a time
//! so thousands of terminals start (or come back after a storm) without overflowing the server's
//! accept backlog. Source addresses rotate over 127.0.0.2..=127.0.0.9 on loopback, so 100,000
//! terminals across processes do not run out of ephemeral ports.

pub mod fanout;
pub mod player;
mod terminal;

pub use player::{EqualSeverity, Out, Player, PlayerConfig};

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Heartbeat period (each terminal jitters it by ±10%).
    pub hb_interval: Duration,
    /// Offline episodes per terminal per hour (0: none, as benchmarks want).
    pub offline_rate: f64,
    /// Length of an offline episode, drawn uniformly from this range.
    pub offline_duration: (Duration, Duration),
    /// From `received` to `started`, drawn uniformly from this range (0 allowed).
    pub start_delay: (Duration, Duration),
    pub player: PlayerConfig,
    /// MQTT keepalive announced to the server, seconds.
    pub keep_alive: u16,
    /// Source addresses to bind, in turn; None: 127.0.0.2..=9 for a loopback target, else the default.
    pub source_addrs: Option<Vec<IpAddr>>,
    /// Terminals connecting (TCP + CONNECT + SUBSCRIBE) at once in this process.
    pub connect_concurrency: usize,
    pub connect_timeout: Duration,
    /// Wait after a failed connect: doubles from the first to the second value, jittered.
    pub retry_backoff: (Duration, Duration),
    /// Keep each message's receive times (for latency measurements).
    pub record_receive_times: bool,
    /// Send receipts and logs (false: silent receivers, to measure bare fan-out).
    pub receipts: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            hb_interval: Duration::from_secs(30),
            offline_rate: 0.0,
            offline_duration: (Duration::from_secs(5), Duration::from_secs(60)),
            start_delay: (Duration::from_millis(200), Duration::from_millis(800)),
            player: PlayerConfig::default(),
            keep_alive: 60,
            source_addrs: None,
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(10),
            retry_backoff: (Duration::from_millis(200), Duration::from_secs(10)),
            record_receive_times: true,
            receipts: true,
        }
    }
}

/// Counts of a finished run. Times are CLOCK_REALTIME microseconds (same machine as the sender).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SimReport {
    pub terminals: usize,
    /// Connected and subscribed when the run was stopped.
    pub connected: u64,
    /// CONNACKs accepted (reconnections included).
    pub connects_total: u64,
    /// CONNACKs refusing (bad credentials, server full...).
    pub refused: u64,
    /// TCP or handshake failures.
    pub connect_errors: u64,
    /// Sessions that ended other than by the stop at the end.
    pub disconnects: u64,
    /// Distinct plays received (after de-duplication by id, per terminal).
    pub plays_received: u64,
    pub duplicates: u64,
    /// Plays ignored because their end had passed.
    pub expired: u64,
    pub receipts_sent: u64,
    pub logs_sent: u64,
    pub heartbeats_sent: u64,
    pub bad_commands: u64,
    /// Per message id: each terminal's first receive time (µs since the epoch).
    pub receive_times_us: BTreeMap<String, Vec<i64>>,
    /// Per message id: receive time minus the play's `start` (ms), when `start` was not later.
    pub latency_ms: BTreeMap<String, Vec<f64>>,
}

impl SimReport {
    /// Adds another process's report to this one.
    pub fn merge(&mut self, o: SimReport) {
        self.terminals += o.terminals;
        self.connected += o.connected;
        self.connects_total += o.connects_total;
        self.refused += o.refused;
        self.connect_errors += o.connect_errors;
        self.disconnects += o.disconnects;
        self.plays_received += o.plays_received;
        self.duplicates += o.duplicates;
        self.expired += o.expired;
        self.receipts_sent += o.receipts_sent;
        self.logs_sent += o.logs_sent;
        self.heartbeats_sent += o.heartbeats_sent;
        self.bad_commands += o.bad_commands;
        for (k, v) in o.receive_times_us {
            self.receive_times_us.entry(k).or_default().extend(v);
        }
        for (k, v) in o.latency_ms {
            self.latency_ms.entry(k).or_default().extend(v);
        }
    }
}

/// Live counters of a run.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SimProgress {
    pub terminals: u64,
    /// Connected and subscribed now.
    pub subscribed: u64,
    pub connects_total: u64,
    pub refused: u64,
    pub connect_errors: u64,
    pub plays_received: u64,
    pub receipts_sent: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub terminals: AtomicU64,
    pub subscribed: AtomicU64,
    pub connects_total: AtomicU64,
    pub refused: AtomicU64,
    pub connect_errors: AtomicU64,
    pub disconnects: AtomicU64,
    pub plays_received: AtomicU64,
    pub duplicates: AtomicU64,
    pub expired: AtomicU64,
    pub receipts_sent: AtomicU64,
    pub logs_sent: AtomicU64,
    pub heartbeats_sent: AtomicU64,
    pub bad_commands: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

/// Watches and steers a run from outside: progress, and dropping every connection at once.
pub struct SimControl {
    pub(crate) c: Counters,
    pub(crate) drops: watch::Sender<u64>,
}

impl SimControl {
    pub fn new() -> Arc<Self> {
        Arc::new(Self { c: Counters::default(), drops: watch::channel(0).0 })
    }

    pub fn progress(&self) -> SimProgress {
        let g = |a: &AtomicU64| a.load(Relaxed);
        SimProgress {
            terminals: g(&self.c.terminals),
            subscribed: g(&self.c.subscribed),
            connects_total: g(&self.c.connects_total),
            refused: g(&self.c.refused),
            connect_errors: g(&self.c.connect_errors),
            plays_received: g(&self.c.plays_received),
            receipts_sent: g(&self.c.receipts_sent),
        }
    }

    /// Every terminal closes its socket at once (no DISCONNECT, so wills fire) and reconnects
    /// immediately: a reconnect storm.
    pub fn drop_all(&self) {
        self.drops.send_modify(|g| *g += 1);
    }
}

pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub target: SocketAddr,
    pub ctl: Arc<SimControl>,
    pub connect_slots: Semaphore,
    pub stop: watch::Receiver<bool>,
    pub sources: Vec<IpAddr>,
    /// message id -> receive times (µs), and the play's start (ms).
    pub received: Mutex<HashMap<String, (i64, Vec<i64>)>>,
}

/// Default source addresses: 127.0.0.2..=127.0.0.9 (each has its own ~28k ephemeral ports).
pub fn loopback_sources() -> Vec<IpAddr> {
    (2..=9).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect()
}

/// Runs `creds` as terminals against `target` until `stop` completes, then disconnects them
/// cleanly and reports.
pub async fn run(cfg: SimConfig, creds: Vec<(String, String)>, target: SocketAddr, stop: impl Future<Output = ()>) -> SimReport {
    run_with_control(cfg, creds, target, stop, SimControl::new()).await
}

/// [`run`], observed and steered through `ctl`.
pub async fn run_with_control(
    cfg: SimConfig,
    creds: Vec<(String, String)>,
    target: SocketAddr,
    stop: impl Future<Output = ()>,
    ctl: Arc<SimControl>,
) -> SimReport {
    let sources = match &cfg.source_addrs {
        Some(s) => s.clone(),
        None if target.ip().is_loopback() && target.is_ipv4() => loopback_sources(),
        None => Vec::new(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let sh = Arc::new(Shared {
        connect_slots: Semaphore::new(cfg.connect_concurrency.max(1)),
        cfg,
        target,
        ctl: ctl.clone(),
        stop: stop_rx,
        sources,
        received: Mutex::new(HashMap::new()),
    });
    let n = creds.len();
    ctl.c.terminals.store(n as u64, Relaxed);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (id, secret)) in creds.into_iter().enumerate() {
        tasks.spawn(terminal::run(sh.clone(), i, id, secret));
    }
    stop.await;
    let connected = ctl.c.subscribed.load(Relaxed);
    let _ = stop_tx.send(true);
    // Terminals say goodbye (status offline + DISCONNECT); don't wait forever for a stuck socket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}

    let g = |a: &AtomicU64| a.load(Relaxed);
    let c = &ctl.c;
    let mut report = SimReport {
        terminals: n,
        connected,
        connects_total: g(&c.connects_total),
        refused: g(&c.refused),
        connect_errors: g(&c.connect_errors),
        disconnects: g(&c.disconnects),
        plays_received: g(&c.plays_received),
        duplicates: g(&c.duplicates),
        expired: g(&c.expired),
        receipts_sent: g(&c.receipts_sent),
        logs_sent: g(&c.logs_sent),
        heartbeats_sent: g(&c.heartbeats_sent),
        bad_commands: g(&c.bad_commands),
        ..SimReport::default()
    };
    for (id, (start_ms, times)) in std::mem::take(&mut *sh.received.lock()) {
        let lat: Vec<f64> = times
            .iter()
            .map(|t| *t as f64 / 1000.0 - start_ms as f64)
            .filter(|l| *l >= 0.0)
            .collect();
        if !lat.is_empty() {
            report.latency_ms.insert(id.clone(), lat);
        }
        report.receive_times_us.insert(id, times);
    }
    report
}

/// The 12-digit region code of a 23-digit terminal id (its digits 2..14).
pub fn region_of(id: &str) -> Option<&str> {
    if id.len() != 23 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.get(1..13)
}

/// Reads `id,secret` lines (a header line, blank lines and `#` comments are skipped). Errors say
/// `file:line`.
pub fn load_credentials(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_credentials(&text, &path.display().to_string())
}

fn parse_credentials(text: &str, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if out.is_empty() && seen.is_empty() && line.to_ascii_lowercase().starts_with("id,") {
            continue;
        }
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        let Some((id, secret)) = line.split_once(',') else {
            anyhow::bail!("{name}:{ln}: expected `id,secret`, found {line:?}");
        };
        let (id, secret) = (unquote(id), unquote(secret));
        if region_of(&id).is_none() {
            anyhow::bail!("{name}:{ln}: terminal id {id:?} is not a 23-digit resource code");
        }
        if secret.is_empty() {
            anyhow::bail!("{name}:{ln}: empty secret for {id}");
        }
        if let Some(prev) = seen.insert(id.clone(), ln) {
            anyhow::bail!("{name}:{ln}: terminal {id} already listed on line {prev}");
        }
        out.push((id, secret));
    }
    if out.is_empty() {
        anyhow::bail!("{name}: no credentials");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_with_located_errors() {
        let ok = "id,secret\n# comment\n\n45002361002010314000001,abc\n\"45002361002010314000002\", d e f \n";
        let v = parse_credentials(ok, "c.csv").expect("parses");
        assert_eq!(v, [("45002361002010314000001".into(), "abc".into()), ("45002361002010314000002".into(), "d e f".into())]);
        let e = parse_credentials("45002361002010314000001,a\nbad line\n", "c.csv").expect_err("fails");
        assert_eq!(e.to_string(), "c.csv:2: expected `id,secret`, found \"bad line\"");
        let e = parse_credentials("4500236,a\n", "c.csv").expect_err("fails");
        assert!(e.to_string().starts_with("c.csv:1: terminal id"), "{e}");
        let e = parse_credentials("45002361002010314000001,a\n45002361002010314000001,b\n", "c.csv").expect_err("dup");
        assert_eq!(e.to_string(), "c.csv:2: terminal 45002361002010314000001 already listed on line 1");
        let e = parse_credentials("45002361002010314000001,\n", "c.csv").expect_err("empty");
        assert!(e.to_string().starts_with("c.csv:1: empty secret"), "{e}");
        assert!(parse_credentials("id,secret\n", "c.csv").is_err());
        assert_eq!(region_of("45002361002010314000001"), Some("500236100201"));
    }

    #[test]
    fn load_credentials_names_the_file() {
        let dir = std::env::temp_dir().join(format!("cuncun-sim-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let p = dir.join("creds.csv");
        std::fs::write(&p, "45002361002010314000001,x\nnope\n").expect("write");
        let e = load_credentials(&p).expect_err("fails");
        assert!(e.to_string().starts_with(&format!("{}:2:", p.display())), "{e}");
        let e = load_credentials(&dir.join("missing.csv")).expect_err("fails");
        assert!(format!("{e:#}").contains("missing.csv"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
