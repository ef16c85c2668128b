//! `cuncun bench fanout`: one alert fanned out to N simulated terminals, by the embedded gateway
//! and, in the same run, by an external broker.
//!
//! The simulated terminals run as child processes of the `cuncun` binary (`cuncun sim ...`), so
//! server and clients never share a process or a runtime. Children report progress on stdout
//! (`SIMSTAT {json}` lines), take commands on stdin (`drop`; end of input stops them) and write
//! their receive times to a JSON report; latency is the child's CLOCK_REALTIME at its read minus
//! the parent's just before `publish()`, on one machine.

use crate::{SimProgress, SimReport};
use anyhow::{Context, bail};
use bytes::Bytes;
use cuncun_domain::protocol::{self, Command, Play, Priority};
use cuncun_gateway::{Bus, BusEvent, DeviceAuth, GatewayConfig};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Proc};

pub const PROGRESS_PREFIX: &str = "SIMSTAT ";

pub fn progress_line(p: &SimProgress) -> String {
    format!("{PROGRESS_PREFIX}{}", serde_json::to_string(p).unwrap_or_default())
}

pub fn parse_progress_line(line: &str) -> Option<SimProgress> {
    serde_json::from_str(line.strip_prefix(PROGRESS_PREFIX)?).ok()
}

/// The county of the benchmark: 奉节县's code; villages are made up.
pub const COUNTY: &str = "500236";

/// N terminals spread over 30 townships x 10 villages, with random secrets.
pub fn make_credentials(n: usize) -> Vec<(String, String)> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|i| {
            let v = i % 300;
            let region = format!("{COUNTY}{:03}{:03}", 101 + v / 10, 201 + v % 10);
            let id = format!("4{region}0314{:06}", i);
            let secret: String = (0..16).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect();
            (id, secret)
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub terminals: usize,
    /// Also run against this external broker (`mqtt://host:port`), after the embedded gateway.
    pub broker: Option<String>,
    /// Simulator processes; 0: one per 10,000 terminals, at least 2.
    pub sim_processes: usize,
    pub publishes: usize,
    pub interval: Duration,
    pub payload_bytes: usize,
    pub reconnect_storm: bool,
    pub fanout_threads: usize,
    /// Terminals send receipts (as in production); false: silent receivers (as the anchors measured).
    pub receipts: bool,
    /// Connects at once per simulator process.
    pub connect_concurrency: usize,
    /// The `cuncun` binary, run as `EXE sim ...` for the children.
    pub exe: PathBuf,
    pub json: Option<PathBuf>,
    pub ready_timeout: Duration,
    /// Skip the embedded gateway (measure only the broker).
    pub broker_only: bool,
    /// `GatewayConfig::reads_yield_to_fanout`.
    pub reads_yield: bool,
    /// Run the simulator processes at this niceness (0: same priority as the server).
    pub sim_nice: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    pub id: String,
    pub subscribers_written: Option<usize>,
    pub received: usize,
    pub publish_call_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StormResult {
    pub p99_s: Option<f64>,
    pub all_s: Option<f64>,
    pub connects_per_s: Option<f64>,
    pub received_after: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub server: String,
    pub terminals: usize,
    pub sim_processes: usize,
    pub sim_nice: u8,
    pub receipts: bool,
    pub connect_s: f64,
    pub connects_per_s: f64,
    pub server_rss_before_mb: Option<f64>,
    pub server_rss_after_mb: Option<f64>,
    pub server_rss_delta_mb: Option<f64>,
    pub rss_per_connection_kb: Option<f64>,
    pub publishes: Vec<PublishResult>,
    pub median_p50_ms: f64,
    pub median_p99_ms: f64,
    pub median_max_ms: f64,
    pub storm: Option<StormResult>,
    /// CPU used by processes other than this benchmark's (and the broker's) while publishing, in %
    /// of one core: others working on this 2-core machine make the figures worse.
    pub foreign_cpu_pct: Option<f64>,
    pub up_events: BTreeMap<String, u64>,
    pub gateway: Option<cuncun_gateway::GatewayStats>,
}

pub async fn run(opts: FanoutOptions) -> anyhow::Result<Vec<RunResult>> {
    let n = opts.terminals;
    if n == 0 {
        bail!("--terminals must be at least 1");
    }
    let dir = std::env::temp_dir().join(format!("cuncun-bench-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let creds = make_credentials(n);
    let creds_file = dir.join("credentials.csv");
    let mut csv = String::from("id,secret\n");
    for (id, s) in &creds {
        csv.push_str(&format!("{id},{s}\n"));
    }
    std::fs::write(&creds_file, csv).with_context(|| format!("writing {}", creds_file.display()))?;

    let mut results = Vec::new();
    if !opts.broker_only {
        if n > 19_000 {
            bail!(
                "one gateway process holds at most 19,000 terminals under this machine's 20,000 open-files cap; \
                 measure at 19,000 and project (per-connection costs scale linearly)"
            );
        }
        results.push(run_embedded(&opts, &creds, &creds_file, &dir).await?);
        print_result(&results[results.len() - 1]);
    }
    if let Some(url) = &opts.broker {
        results.push(run_broker(&opts, url, &creds_file, &dir).await?);
        print_result(&results[results.len() - 1]);
    }
    if let [g, b] = &results[..] {
        println!(
            "ratio gateway/broker: p50 {:.2}  p99 {:.2}  max {:.2}  connect time {:.2}",
            g.median_p50_ms / b.median_p50_ms,
            g.median_p99_ms / b.median_p99_ms,
            g.median_max_ms / b.median_max_ms,
            g.connect_s / b.connect_s
        );
    }
    if let Some(p) = &opts.json {
        std::fs::write(p, serde_json::to_vec_pretty(&results)?).with_context(|| format!("writing {}", p.display()))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}

fn vm_rss_kb(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Busy time of the whole machine, in clock ticks.
fn machine_busy_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    Some(total - v.get(3)? - v.get(4)?)
}

/// CPU time (user + system) of one process, in clock ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The pid of a running `mosquitto`, to read its memory.
fn find_process(name: &str) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().to_string();
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        (pid.bytes().all(|b| b.is_ascii_digit()) && comm.trim() == name).then_some(pid)
    })
}

async fn run_embedded(opts: &FanoutOptions, creds: &[(String, String)], creds_file: &Path, dir: &Path) -> anyhow::Result<RunResult> {
    let auth = Arc::new(DeviceAuth::default());
    for (id, s) in creds {
        auth.insert(id, s, crate::region_of(id).unwrap_or_default());
    }
    // A deep backlog: thousands connect at once after a storm.
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind("127.0.0.1:0".parse()?)?;
    let listener = sock.listen(8192)?;
    let addr = listener.local_addr()?;
    let cfg = GatewayConfig {
        fanout_threads: opts.fanout_threads.max(1),
        reads_yield_to_fanout: opts.reads_yield,
        ..GatewayConfig::default()
    };
    let rss0 = vm_rss_kb("self");
    let (gw, events) = cuncun_gateway::start_embedded_gateway(vec![listener], cfg, auth).await?;
    let bus: Arc<dyn Bus> = gw.clone();
    let label = format!(
        "embedded gateway (127.0.0.1:{}, {} fan-out thread(s), reads {})",
        addr.port(),
        opts.fanout_threads.max(1),
        if opts.reads_yield { "yield to fan-out" } else { "concurrent with fan-out" }
    );
    let mut r =
        measure(opts, &label, bus, events, &addr.to_string(), creds_file, dir, &|| vm_rss_kb("self"), rss0, None).await?;
    r.gateway = Some(gw.stats());
    Ok(r)
}

async fn run_broker(opts: &FanoutOptions, url: &str, creds_file: &Path, dir: &Path) -> anyhow::Result<RunResult> {
    let (host, port) = cuncun_gateway::parse_mqtt_url(url)?;
    let target = tokio::net::lookup_host((host.as_str(), port))
        .await?
        .find(|a| a.is_ipv4())
        .with_context(|| format!("cannot resolve {host}"))?;
    let (bus, events) = cuncun_gateway::connect_external(url, &format!("cuncun-bench-{}", std::process::id()), None, None).await?;
    let pid = find_process("mosquitto");
    let broker_pid = pid.clone();
    let rss = move || pid.as_deref().and_then(vm_rss_kb);
    let rss0 = rss();
    let label = format!("external broker {url}{}", if rss0.is_some() { " (mosquitto)" } else { "" });
    measure(opts, &label, bus, events, &target.to_string(), creds_file, dir, &rss, rss0, broker_pid).await
}

struct Children {
    procs: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    progress: Arc<Mutex<Vec<SimProgress>>>,
    reports: Vec<PathBuf>,
}

impl Children {
    fn total(&self) -> SimProgress {
        let p = self.progress.lock();
        p.iter().fold(SimProgress::default(), |mut a, b| {
            a.terminals += b.terminals;
            a.subscribed += b.subscribed;
            a.connects_total += b.connects_total;
            a.refused += b.refused;
            a.connect_errors += b.connect_errors;
            a.plays_received += b.plays_received;
            a.receipts_sent += b.receipts_sent;
            a
        })
    }

    fn exited(&mut self) -> Option<String> {
        for (i, c) in self.procs.iter_mut().enumerate() {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(format!("simulator process {i} exited early ({st})"));
            }
        }
        None
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        for s in self.stdins.iter_mut().flatten() {
            s.write_all(line.as_bytes()).await?;
            s.flush().await?;
        }
        Ok(())
    }

    /// Ends input (children stop and write reports), waits, merges the reports.
    async fn finish(mut self) -> anyhow::Result<SimReport> {
        self.stdins.clear();
        for (i, c) in self.procs.iter_mut().enumerate() {
            match tokio::time::timeout(Duration::from_secs(60), c.wait()).await {
                Ok(Ok(st)) if st.success() => {}
                Ok(Ok(st)) => bail!("simulator process {i} failed ({st})"),
                Ok(Err(e)) => bail!("simulator process {i}: {e}"),
                Err(_) => {
                    let _ = c.kill().await;
                    bail!("simulator process {i} did not stop within 60 s");
                }
            }
        }
        let mut all = SimReport::default();
        for p in &self.reports {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            all.merge(serde_json::from_slice(&text).with_context(|| format!("parsing {}", p.display()))?);
        }
        Ok(all)
    }
}

fn spawn_children(opts: &FanoutOptions, target: &str, creds_file: &Path, dir: &Path, tag: &str) -> anyhow::Result<Children> {
    let n = opts.terminals;
    let p = if opts.sim_processes == 0 { n.div_ceil(10_000).max(2) } else { opts.sim_processes }.min(n);
    let share = n.div_ceil(p);
    let progress = Arc::new(Mutex::new(vec![SimProgress::default(); p]));
    let mut ch = Children { procs: Vec::new(), stdins: Vec::new(), progress: progress.clone(), reports: Vec::new() };
    for i in 0..p {
        let skip = i * share;
        let count = share.min(n.saturating_sub(skip));
        let report = dir.join(format!("report-{tag}-{i}.json"));
        let mut cmd = if opts.sim_nice > 0 {
            let mut c = Proc::new("nice");
            c.args(["-n", &opts.sim_nice.to_string()]).arg(&opts.exe);
            c
        } else {
            Proc::new(&opts.exe)
        };
        cmd.arg("sim")
            .args(["--target", target])
            .arg("--credentials")
            .arg(creds_file)
            .args(["--skip", &skip.to_string(), "--count", &count.to_string()])
            .args(["--hb-interval", "30s", "--offline-rate", "0", "--play-seconds", "1", "--start-delay", "200ms-800ms"])
            .args(["--connect-concurrency", &opts.connect_concurrency.to_string()])
            .args(["--control-stdin", "--progress-ms", "20"])
            .arg("--report-json")
            .arg(&report)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if !opts.receipts {
            cmd.arg("--no-receipts");
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {} sim", opts.exe.display()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let prog = progress.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(s) = parse_progress_line(&l)
                    && let Some(slot) = prog.lock().get_mut(i)
                {
                    *slot = s;
                }
            }
        });
        ch.stdins.push(child.stdin.take());
        ch.procs.push(child);
        ch.reports.push(report);
    }
    Ok(ch)
}

/// A Play whose JSON is about `size` bytes.
fn bench_play(id: &str, size: usize) -> Bytes {
    let now = crate::terminal::now_ms();
    let mut play = Play {
        v: protocol::VERSION,
        id: id.to_string(),
        priority: Priority::Emergency,
        severity: 2,
        event: "11B01".into(),
        title: "暴雨橙色预警".into(),
        text: String::new(),
        audio: None,
        start: now,
        end: now + 600_000,
        repeat: 1,
        volume: Some(90),
        drill: false,
        equal_severity: None,
    };
    let base = serde_json::to_vec(&Command::Play(play.clone())).map(|v| v.len()).unwrap_or(0);
    play.text = "x".repeat(size.saturating_sub(base));
    Bytes::from(serde_json::to_vec(&Command::Play(play)).unwrap_or_default())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    opts: &FanoutOptions,
    label: &str,
    bus: Arc<dyn Bus>,
    mut events: tokio::sync::mpsc::Receiver<BusEvent>,
    target: &str,
    creds_file: &Path,
    dir: &Path,
    rss: &dyn Fn() -> Option<f64>,
    rss0: Option<f64>,
    broker_pid: Option<String>,
) -> anyhow::Result<RunResult> {
    let n = opts.terminals;
    // The platform side of the events: counted, never left to fill the queue.
    let ups: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let ups2 = ups.clone();
    let drain = tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            let k = match e {
                BusEvent::Online { .. } => "online".to_string(),
                BusEvent::Offline { .. } => "offline".to_string(),
                BusEvent::Ready { .. } => "ready".to_string(),
                BusEvent::Up { kind, .. } => kind,
            };
            *ups2.lock().entry(k).or_default() += 1;
        }
    });
    eprintln!("[{label}] starting {n} terminals");
    let tag = if label.starts_with("embedded") { "gw" } else { "broker" };
    let t0 = Instant::now();
    let mut ch = spawn_children(opts, target, creds_file, dir, tag)?;
    let procs = ch.procs.len();
    let mut last_print = Instant::now();
    loop {
        let p = ch.total();
        if p.subscribed as usize >= n {
            break;
        }
        if let Some(e) = ch.exited() {
            bail!("{e}");
        }
        if t0.elapsed() > opts.ready_timeout {
            bail!(
                "only {} of {n} terminals connected after {:?} ({} refused, {} connect errors)",
                p.subscribed,
                opts.ready_timeout,
                p.refused,
                p.connect_errors
            );
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!("[{label}] {} / {n} connected ({} connect errors)", p.subscribed, p.connect_errors);
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let rss1 = rss();
    eprintln!("[{label}] all {n} connected in {connect_s:.2} s");
    // Let the wave of status messages settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut ours: Vec<String> = ch.procs.iter().filter_map(|c| c.id()).map(|p| p.to_string()).collect();
    ours.push("self".into());
    ours.extend(broker_pid);
    let ticks = |pids: &[String]| -> Option<(u64, u64)> {
        let mine = pids.iter().map(|p| process_ticks(p)).sum::<Option<u64>>()?;
        Some((machine_busy_ticks()?, mine))
    };
    let before = ticks(&ours);
    let t_pub = Instant::now();
    let topic = protocol::region_cmd_topic(COUNTY);
    let run_id = format!("{}-{}", tag, crate::terminal::now_ms());
    let mut sent = Vec::new();
    for k in 0..opts.publishes {
        let id = format!("bench-{run_id}-{k}");
        let payload = bench_play(&id, opts.payload_bytes);
        let t_us = crate::terminal::now_us();
        let t = Instant::now();
        let written = bus.publish(&topic, payload).await?;
        let call_ms = t.elapsed().as_secs_f64() * 1000.0;
        sent.push((id, t_us, written, call_ms));
        tokio::time::sleep(opts.interval).await;
    }

    // Clock ticks are 1/100 s on Linux.
    let foreign = match (before, ticks(&ours)) {
        (Some((m0, o0)), Some((m1, o1))) => {
            let other = (m1 - m0).saturating_sub(o1 - o0) as f64 / 100.0;
            Some(100.0 * other / t_pub.elapsed().as_secs_f64())
        }
        _ => None,
    };
    let storm = if opts.reconnect_storm {
        let base = ch.total().connects_total;
        eprintln!("[{label}] reconnect storm: every terminal drops its connection now");
        let t = Instant::now();
        ch.send("drop\n").await?;
        let (mut p99, mut all) = (None, None);
        while t.elapsed() < Duration::from_secs(120) {
            let p = ch.total();
            let back = p.connects_total.saturating_sub(base) as usize;
            if p99.is_none() && back * 100 >= n * 99 {
                p99 = Some(t.elapsed().as_secs_f64());
            }
            if back >= n && p.subscribed as usize >= n {
                all = Some(t.elapsed().as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let id = format!("bench-{run_id}-after-storm");
        bus.publish(&topic, bench_play(&id, opts.payload_bytes)).await?;
        tokio::time::sleep(opts.interval).await;
        Some((StormResult { p99_s: p99, all_s: all, connects_per_s: all.map(|s| n as f64 / s), received_after: 0 }, id))
    } else {
        None
    };

    let report = ch.finish().await?;
    drain.abort();
    let mut publishes = Vec::new();
    for (id, t_us, written, call_ms) in sent {
        let mut lat: Vec<f64> = report
            .receive_times_us
            .get(&id)
            .map(|v| v.iter().map(|r| (r - t_us) as f64 / 1000.0).collect())
            .unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        publishes.push(PublishResult {
            id,
            subscribers_written: written,
            received: lat.len(),
            publish_call_ms: call_ms,
            p50_ms: percentile(&lat, 0.5),
            p99_ms: percentile(&lat, 0.99),
            max_ms: lat.last().copied().unwrap_or(f64::NAN),
        });
    }
    let storm = storm.map(|(mut s, id)| {
        s.received_after = report.receive_times_us.get(&id).map_or(0, Vec::len);
        s
    });
    let delta = match (rss0, rss1) {
        (Some(a), Some(b)) => Some((b - a) / 1024.0),
        _ => None,
    };
    let up_events = ups.lock().clone();
    Ok(RunResult {
        server: label.to_string(),
        terminals: n,
        sim_processes: procs,
        sim_nice: opts.sim_nice,
        receipts: opts.receipts,
        connect_s,
        connects_per_s: n as f64 / connect_s,
        server_rss_before_mb: rss0.map(|k| k / 1024.0),
        server_rss_after_mb: rss1.map(|k| k / 1024.0),
        server_rss_delta_mb: delta,
        rss_per_connection_kb: delta.map(|d| d * 1024.0 / n as f64),
        median_p50_ms: median(publishes.iter().map(|p| p.p50_ms).collect()),
        median_p99_ms: median(publishes.iter().map(|p| p.p99_ms).collect()),
        median_max_ms: median(publishes.iter().map(|p| p.max_ms).collect()),
        publishes,
        storm,
        foreign_cpu_pct: foreign,
        up_events,
        gateway: None,
    })
}

fn print_result(r: &RunResult) {
    println!(
        "\n== fan-out: {} — {} terminals in {} simulator processes{}",
        r.server,
        r.terminals,
        r.sim_processes,
        if r.sim_nice > 0 { format!(" (nice {})", r.sim_nice) } else { String::new() }
    );
    let rss = match (r.server_rss_before_mb, r.server_rss_after_mb, r.rss_per_connection_kb) {
        (Some(a), Some(b), Some(k)) => {
            format!("server RSS {a:.1} MB before, {b:.1} MB connected: {k:.2} KB per connection")
        }
        _ => "server RSS unknown".to_string(),
    };
    println!("connect: {:.2} s ({:.0}/s); {rss}", r.connect_s, r.connects_per_s);
    for (i, p) in r.publishes.iter().enumerate() {
        println!(
            "publish {}: received {}/{} (written {}), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; publish() returned after {:.1} ms",
            i + 1,
            p.received,
            r.terminals,
            p.subscribers_written.map_or("n/a".to_string(), |w| w.to_string()),
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.publish_call_ms
        );
    }
    println!(
        "median of {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.publishes.len(),
        r.median_p50_ms,
        r.median_p99_ms,
        r.median_max_ms
    );
    if let Some(s) = &r.storm {
        let f = |v: Option<f64>| v.map_or("not reached in 120 s".to_string(), |v| format!("{v:.2} s"));
        println!(
            "reconnect storm: 99% back in {}, 100% in {} ({}); a publish after it reached {}/{}",
            f(s.p99_s),
            f(s.all_s),
            s.connects_per_s.map_or("n/a".to_string(), |c| format!("{c:.0} connects/s")),
            s.received_after,
            r.terminals
        );
    }
    if let Some(f) = r.foreign_cpu_pct {
        println!("other processes used {f:.0}% of a core while publishing (noise on this 2-core machine)");
    }
    if let Some(g) = &r.gateway {
        println!(
            "gateway: connects {}, refused capacity {}, accept errors {}, slow drops {}, malformed {}, up messages {}",
            g.connects_total, g.refused_capacity, g.accept_errors, g.dropped_slow, g.malformed, g.up_messages
        );
    }
    println!("events at the platform: {:?}", r.up_events);
}

/// The child's side: reads commands from stdin (`drop`), and completes when stdin ends.
pub async fn control_stdin(ctl: Arc<crate::SimControl>) {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        if l.trim() == "drop" {
            ctl.drop_all();
        }
    }
}

/// The child's side: prints progress lines every `every` until the task is dropped.
pub async fn print_progress(ctl: Arc<crate::SimControl>, every: Duration) {
    use std::io::Write;
    let mut last = None;
    loop {
        let p = ctl.progress();
        if last != Some(p) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", progress_line(&p));
            let _ = out.flush();
            last = Some(p);
        }
        tokio::time::sleep(every).await;
    }
}
