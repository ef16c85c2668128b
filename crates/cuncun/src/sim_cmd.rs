//! `cuncun sim`: simulated terminals; `cuncun bench fanout`: the delivery benchmark that uses them.

use anyhow::{Context, bail};
use cuncun_sim::{EqualSeverity, PlayerConfig, SimConfig, SimControl, SimProgress, SimReport};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// `30`, `30s`, `500ms`, `2m`, `1h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s:?} (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("unknown unit in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("not a duration: {s:?}"))
}

/// `200ms-800ms` or one value.
fn parse_range(s: &str) -> Result<(Duration, Duration), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_duration(a)?, parse_duration(b)?);
            if b < a {
                return Err(format!("{s:?}: the maximum is below the minimum"));
            }
            Ok((a, b))
        }
        None => parse_duration(s).map(|d| (d, d)),
    }
}

fn parse_equal(s: &str) -> Result<EqualSeverity, String> {
    match s {
        "newer-wins" => Ok(EqualSeverity::NewerWins),
        "keep-current" => Ok(EqualSeverity::KeepCurrent),
        _ => Err(format!("{s:?}: expected newer-wins or keep-current")),
    }
}

#[derive(clap::Args, Clone)]
pub struct SimArgs {
    /// The MQTT server the terminals connect to (the platform's gateway or a broker), host:port.
    /// Several, separated by commas (gateway nodes): process i uses the i-th, round robin.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub target: String,
    /// CSV file of `id,secret` lines; the 23-digit id carries the terminal's region (digits 2-13).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Simulate only the first N terminals of the file.
    #[arg(long)]
    pub count: Option<usize>,
    /// Skip this many terminals first (gives child processes disjoint shares).
    #[arg(long, default_value_t = 0, hide = true)]
    pub skip: usize,
    /// Run in P child processes with disjoint shares (one process holds at most ~19,000 terminals
    /// under this machine's 20,000 open-files cap).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Heartbeat period (jittered ±10%).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub hb_interval: Duration,
    /// Offline episodes per terminal per hour (each 5-60 s, half clean, half abrupt); 0 for none.
    #[arg(long, default_value_t = 0.0)]
    pub offline_rate: f64,
    /// Seconds one repeat of a message plays; default: estimated from the text (4 characters a second).
    #[arg(long)]
    pub play_seconds: Option<f64>,
    /// From `received` to `started`: MIN-MAX (e.g. 200ms-800ms) or one value (0 allowed).
    #[arg(long, default_value = "200ms-800ms", value_parser = parse_range)]
    pub start_delay: (Duration, Duration),
    /// A play as urgent as the current one: newer-wins or keep-current.
    #[arg(long, default_value = "newer-wins", value_parser = parse_equal)]
    pub equal_severity: EqualSeverity,
    /// Stop after this long (e.g. 10m); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Write the report (counts and every message's receive times) to this JSON file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// Terminals connecting at once, per process.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Send no receipts or logs (bare receivers, for fan-out measurements).
    #[arg(long)]
    pub no_receipts: bool,
    /// Take commands on stdin (`drop`: every terminal reconnects); end of input stops.
    #[arg(long, hide = true)]
    pub control_stdin: bool,
    /// Print machine-readable progress on stdout this often (for a parent process).
    #[arg(long, hide = true)]
    pub progress_ms: Option<u64>,
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let targets = args.target.split(',').filter(|t| !t.trim().is_empty()).count();
    if targets == 0 {
        bail!("--target is empty: give host:port");
    }
    if targets > 1 && args.processes < targets {
        bail!("--target names {targets} servers: run at least as many --processes (one target each)");
    }
    if args.processes > 1 {
        return supervise(args).await;
    }
    let all = cuncun_sim::load_credentials(&args.credentials)?;
    let creds: Vec<(String, String)> =
        all.into_iter().skip(args.skip).take(args.count.unwrap_or(usize::MAX)).collect();
    if creds.is_empty() {
        bail!("no terminals to simulate in {} (skip {}, count {:?})", args.credentials.display(), args.skip, args.count);
    }
    if creds.len() > 19_500 {
        eprintln!(
            "warning: {} terminals in one process need more sockets than the 20,000 open-files cap allows here; use --processes",
            creds.len()
        );
    }
    let target = tokio::net::lookup_host(&args.target)
        .await
        .with_context(|| format!("resolving --target {}", args.target))?
        .next()
        .with_context(|| format!("--target {} resolves to no address", args.target))?;
    let cfg = SimConfig {
        hb_interval: args.hb_interval,
        offline_rate: args.offline_rate.max(0.0),
        start_delay: args.start_delay,
        player: PlayerConfig {
            play_seconds: args.play_seconds,
            equal_severity: args.equal_severity,
            ..PlayerConfig::default()
        },
        connect_concurrency: args.connect_concurrency.max(1),
        receipts: !args.no_receipts,
        ..SimConfig::default()
    };
    let ctl = SimControl::new();
    let n = creds.len();
    let progress = match args.progress_ms {
        Some(ms) => tokio::spawn(cuncun_sim::fanout::print_progress(ctl.clone(), Duration::from_millis(ms.max(1)))),
        None => tokio::spawn(human_progress(ctl.clone())),
    };
    if !args.control_stdin {
        eprintln!("simulating {n} terminals against {target}; Ctrl-C stops");
    }
    let control = args.control_stdin;
    let duration = args.duration;
    let ctl_stdin = ctl.clone();
    let stop = async move {
        let stdin_done = async {
            if control {
                cuncun_sim::fanout::control_stdin(ctl_stdin).await
            } else {
                std::future::pending().await
            }
        };
        let timer = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_done => {}
            _ = timer => {}
        }
    };
    let report = cuncun_sim::run_with_control(cfg, creds, target, stop, ctl).await;
    progress.abort();
    if let Some(p) = &args.report_json {
        std::fs::write(p, serde_json::to_vec(&report)?).with_context(|| format!("writing {}", p.display()))?;
    }
    if args.progress_ms.is_none() {
        print_summary(&report);
    }
    Ok(())
}

fn print_summary(r: &SimReport) {
    println!(
        "sim: {} terminals, {} connected at the end; {} connects, {} refused, {} connect errors, {} disconnects; \
         {} plays received ({} duplicates, {} expired), {} receipts, {} logs, {} heartbeats sent",
        r.terminals,
        r.connected,
        r.connects_total,
        r.refused,
        r.connect_errors,
        r.disconnects,
        r.plays_received,
        r.duplicates,
        r.expired,
        r.receipts_sent,
        r.logs_sent,
        r.heartbeats_sent
    );
    for (id, lat) in &r.latency_ms {
        let mut v = lat.clone();
        v.sort_by(f64::total_cmp);
        let pick = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        println!(
            "  {id}: {} received, latency from its start time p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            v.len(),
            pick(0.5),
            pick(0.99),
            pick(1.0)
        );
    }
}

async fn human_progress(ctl: Arc<SimControl>) {
    let mut last = SimProgress::default();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let p = ctl.progress();
        if p != last {
            eprintln!(
                "sim: {}/{} connected, {} connects, {} refused, {} errors, {} plays, {} receipts",
                p.subscribed, p.terminals, p.connects_total, p.refused, p.connect_errors, p.plays_received, p.receipts_sent
            );
            last = p;
        }
    }
}

/// `--processes P`: this process runs P copies of itself with disjoint shares and sums up.
async fn supervise(args: SimArgs) -> anyhow::Result<()> {
    let total = cuncun_sim::load_credentials(&args.credentials)?
        .len()
        .saturating_sub(args.skip)
        .min(args.count.unwrap_or(usize::MAX));
    if total == 0 {
        bail!("no terminals to simulate in {}", args.credentials.display());
    }
    let p = args.processes.min(total);
    let share = total.div_ceil(p);
    let exe = std::env::current_exe().context("finding the cuncun executable")?;
    let dir = std::env::temp_dir().join(format!("cuncun-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let targets: Vec<&str> = args.target.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    let progress = Arc::new(slots::Slots::new(p));
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    let mut reports = Vec::new();
    for i in 0..p {
        let skip = args.skip + i * share;
        let count = share.min(total.saturating_sub(i * share));
        let report = dir.join(format!("part-{i}.json"));
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("sim")
            .args(["--target", targets[i % targets.len().max(1)]])
            .arg("--credentials")
            .arg(&args.credentials)
            .args(["--skip", &skip.to_string(), "--count", &count.to_string()])
            .args(["--hb-interval", &format!("{}ms", args.hb_interval.as_millis())])
            .args(["--offline-rate", &args.offline_rate.to_string()])
            .args([
                "--start-delay",
                &format!("{}ms-{}ms", args.start_delay.0.as_millis(), args.start_delay.1.as_millis()),
            ])
            .args([
                "--equal-severity",
                if args.equal_severity == EqualSeverity::KeepCurrent { "keep-current" } else { "newer-wins" },
            ])
            .args(["--connect-concurrency", &args.connect_concurrency.to_string()])
            .args(["--control-stdin", "--progress-ms", "1000"])
            .arg("--report-json")
            .arg(&report)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(s) = args.play_seconds {
            cmd.args(["--play-seconds", &s.to_string()]);
        }
        if args.no_receipts {
            cmd.arg("--no-receipts");
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
        if let Some(out) = child.stdout.take() {
            let slots = progress.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if let Some(s) = cuncun_sim::fanout::parse_progress_line(&l) {
                        slots.set(i, s);
                    }
                }
            });
        }
        stdins.push(child.stdin.take());
        children.push(child);
        reports.push(report);
    }
    eprintln!("simulating {total} terminals in {p} processes against {}; Ctrl-C stops", args.target);
    let timer = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let t = progress.total();
            eprintln!(
                "sim: {}/{} connected, {} connects, {} refused, {} errors, {} plays, {} receipts",
                t.subscribed, total, t.connects_total, t.refused, t.connect_errors, t.plays_received, t.receipts_sent
            );
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = timer => {}
        _ = watch => {}
    }
    // End of input stops each child, which then writes its report.
    drop(stdins);
    let mut all = SimReport::default();
    for (i, mut c) in children.into_iter().enumerate() {
        let st = tokio::time::timeout(Duration::from_secs(60), c.wait()).await;
        if !matches!(st, Ok(Ok(s)) if s.success()) {
            let _ = c.kill().await;
            bail!("simulator process {i} did not finish cleanly");
        }
        let text = std::fs::read(&reports[i]).with_context(|| format!("reading {}", reports[i].display()))?;
        all.merge(serde_json::from_slice(&text)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(p) = &args.report_json {
        std::fs::write(p, serde_json::to_vec(&all)?).with_context(|| format!("writing {}", p.display()))?;
    }
    print_summary(&all);
    Ok(())
}

/// Progress slots shared with the readers of the children's output.
mod slots {
    use cuncun_sim::SimProgress;
    use std::sync::Mutex;

    pub struct Slots(Mutex<Vec<SimProgress>>);

    impl Slots {
        pub fn new(n: usize) -> Self {
            Self(Mutex::new(vec![SimProgress::default(); n]))
        }

        pub fn set(&self, i: usize, p: SimProgress) {
            let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(s) = v.get_mut(i) {
                *s = p;
            }
        }

        pub fn total(&self) -> SimProgress {
            let v = self.0.lock().unwrap_or_else(|e| e.into_inner());
            v.iter().fold(SimProgress::default(), |mut a, b| {
                a.subscribed += b.subscribed;
                a.connects_total += b.connects_total;
                a.refused += b.refused;
                a.connect_errors += b.connect_errors;
                a.plays_received += b.plays_received;
                a.receipts_sent += b.receipts_sent;
                a
            })
        }
    }
}

/// Benchmarks: the existing ones, plus the delivery fan-out.
#[derive(clap::Subcommand)]
pub enum BenchCmd {
    #[command(flatten)]
    Other(crate::bench::BenchCmd),
    /// One alert fanned out to N simulated terminals (separate processes): the embedded gateway,
    /// and with --broker an external broker too, measured in the same run.
    Fanout(FanoutArgs),
    /// EBD parse + signature verify throughput per core (interchange packages).
    Ebd(crate::bench_ebd::EbdBenchArgs),
    /// CAP 1.2 parse + validate + map (and signature verify) throughput per core.
    Cap(crate::bench_cap::CapBenchArgs),
    /// The service desk at scale: N households and M tickets; .xlsx import of 100,000
    /// households (time, peak memory), ticket list with filters and indicators page p50/p99.
    Tickets(crate::bench_service::TicketsArgs),
    /// The monthly report of a province-sized data set (10,000,000 households, 100,000 terminals
    /// with a month of connection history): time and peak memory, SQLite or PostgreSQL.
    Report(crate::bench_report::ReportBenchArgs),
}

#[derive(clap::Args)]
pub struct FanoutArgs {
    /// Terminals (one gateway process holds at most 19,000 here).
    #[arg(long, default_value_t = 10_000)]
    pub terminals: usize,
    /// Also measure this broker, e.g. mqtt://127.0.0.1:1883 (Mosquitto), with the publisher as its client.
    #[arg(long)]
    pub broker: Option<String>,
    /// Measure only the broker.
    #[arg(long, requires = "broker")]
    pub broker_only: bool,
    /// Simulator processes; default one per 10,000 terminals, at least 2.
    #[arg(long, default_value_t = 0)]
    pub sim_processes: usize,
    #[arg(long, default_value_t = 5)]
    pub publishes: usize,
    /// Time between publishes.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Size of the Play message (JSON bytes).
    #[arg(long, default_value_t = 500)]
    pub payload_bytes: usize,
    /// Afterwards, drop every connection at once and time the reconnection.
    #[arg(long)]
    pub reconnect_storm: bool,
    /// Threads the gateway splits one fan-out over.
    #[arg(long, default_value_t = 1)]
    pub fanout_threads: usize,
    /// Terminals send no receipts (bare receivers, as the anchor figures were measured).
    #[arg(long)]
    pub silent_terminals: bool,
    /// Let the gateway read terminals' messages during a fan-out instead of after it.
    #[arg(long)]
    pub no_read_yield: bool,
    /// Run the simulator processes at this niceness (they stand in for remote devices).
    #[arg(long, default_value_t = 0)]
    pub sim_nice: u8,
    /// Connects at once per simulator process.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Give up if not all terminals are connected within this time.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
}

pub async fn bench_fanout(a: FanoutArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding the cuncun executable")?;
    cuncun_sim::fanout::run(cuncun_sim::fanout::FanoutOptions {
        terminals: a.terminals,
        broker: a.broker,
        sim_processes: a.sim_processes,
        publishes: a.publishes.max(1),
        interval: a.interval,
        payload_bytes: a.payload_bytes,
        reconnect_storm: a.reconnect_storm,
        fanout_threads: a.fanout_threads,
        receipts: !a.silent_terminals,
        connect_concurrency: a.connect_concurrency.max(1),
        exe,
        json: a.json,
        ready_timeout: a.ready_timeout,
        broker_only: a.broker_only,
        reads_yield: !a.no_read_yield,
        sim_nice: a.sim_nice,
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_range("200ms-800ms"), Ok((Duration::from_millis(200), Duration::from_millis(800))));
        assert_eq!(parse_range("0"), Ok((Duration::ZERO, Duration::ZERO)));
        assert!(parse_range("2s-1s").is_err());
    }
}
