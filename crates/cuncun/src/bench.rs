//! Benchmarks. Each prints its figures; docs/PERFORMANCE.md records them with the command.

use crate::config::Config;
use anyhow::{Context, bail};
use cuncun_domain::model::{CoverageMode, NewHousehold, NewUser, RegionCounts};
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_store::{Actor, RegistryBatch, Store};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Time and peak memory of `regions import` for a code (or "all") into an empty database.
    Regions {
        #[arg(long)]
        code: String,
        /// An empty database; default: a new SQLite file in the temp directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// p50/p99 latency of the home dashboard for a county holding N households.
    Dashboard {
        #[arg(long, default_value_t = 100_000)]
        households: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// An empty database; default: a new SQLite file in the temp directory.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Approval to receipts: N simulated terminals (separate processes) on the embedded gateway,
    /// or on an external broker with --broker; time from approval to every terminal's
    /// `received` and `started` receipt.
    Dispatch {
        #[arg(long, default_value_t = 10_000)]
        terminals: usize,
        /// Messages approved one after another (each measured).
        #[arg(long, default_value_t = 3)]
        messages: usize,
        /// mqtt://host:port of an external broker instead of the embedded gateway.
        #[arg(long)]
        broker: Option<String>,
        /// Simulator processes (default: one per 10,000 terminals; with --gateways, a multiple of
        /// the gateway count with at most 17,000 terminals each).
        #[arg(long)]
        sim_processes: Option<usize>,
        /// Scale-out path: run this many `cuncun gateway` node processes linked to the platform's
        /// backbone, terminals spread evenly over them (needed above 19,000 terminals).
        #[arg(long, conflicts_with = "broker")]
        gateways: Option<usize>,
        #[arg(long)]
        database_url: Option<String>,
        /// Instead of messages: measure the platform's CPU while every terminal heartbeats at the
        /// rate that `--heartbeat-equivalent` terminals every 30 s would produce.
        #[arg(long)]
        heartbeat_equivalent: Option<usize>,
        /// Seconds of heartbeat load to measure.
        #[arg(long, default_value_t = 60)]
        heartbeat_seconds: u64,
    },
}


/// A memory figure (`VmRSS`, `VmHWM`...) of a process from /proc, in MiB.
fn proc_mib(pid: &str, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(key).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Peak resident memory of this process, MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    proc_mib("self", "VmHWM")
}

fn rss_mib() -> f64 {
    proc_mib("self", "VmRSS")
}

/// Resident memory of another process, MiB.
fn rss_of_mib(pid: u32) -> f64 {
    proc_mib(&pid.to_string(), "VmRSS")
}

pub(crate) async fn empty_store(url: Option<String>) -> anyhow::Result<(std::sync::Arc<dyn Store>, String)> {
    let url = url.unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("cuncun-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        format!("sqlite://{}/bench.db", dir.display())
    });
    let mut cfg = Config::load(None)?;
    cfg.database.url = url.clone();
    let store = crate::open_store(&cfg).await?;
    if store.count_users().await? > 0 || store.region(&RegionCode::parse("11")?).await?.is_some() {
        bail!("the benchmark database {} is not empty; give an empty one", cuncun_store::redact_url(&url));
    }
    Ok((store, url))
}

pub async fn run(_cfg: &Config, cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Regions { code, database_url } => {
            let (store, url) = empty_store(database_url).await?;
            let t0 = Instant::now();
            let regions = if code == "all" { cuncun_regions::extract_all()? } else { cuncun_regions::extract(&code)? };
            let t_extract = t0.elapsed();
            let n = regions.len();
            let t1 = Instant::now();
            store.import_regions(&regions, &code, &Actor::cli("bench")).await?;
            let t_store = t1.elapsed();
            println!(
                "bench regions code={code} backend={:?} rows={n} extract={:.2}s store={:.2}s total={:.2}s rows/s={:.0} peak_rss={:.0}MiB db={}",
                store.backend(),
                t_extract.as_secs_f64(),
                t_store.as_secs_f64(),
                t0.elapsed().as_secs_f64(),
                n as f64 / t0.elapsed().as_secs_f64(),
                peak_rss_mib(),
                cuncun_store::redact_url(&url)
            );
        }
        BenchCmd::Dashboard { households, requests, database_url } => {
            dashboard(households, requests, database_url).await?;
        }
        BenchCmd::Dispatch {
            terminals,
            messages,
            broker,
            sim_processes,
            gateways,
            database_url,
            heartbeat_equivalent,
            heartbeat_seconds,
        } => {
            let hb = heartbeat_equivalent.map(|e| (e, heartbeat_seconds));
            let path = match (broker, gateways.filter(|g| *g > 0)) {
                (Some(b), _) => DispatchPath::Broker(b),
                (None, Some(g)) => DispatchPath::Nodes(g),
                (None, None) => DispatchPath::Embedded,
            };
            dispatch(terminals, messages, path, sim_processes, database_url, hb).await?;
        }
    }
    Ok(())
}

async fn dashboard(households: usize, requests: usize, url: Option<String>) -> anyhow::Result<()> {
    let (store, _url) = empty_store(url).await?;
    let county = RegionCode::parse("500236")?;
    let regions = cuncun_regions::extract(county.short())?;
    store.import_regions(&regions, county.short(), &Actor::cli("bench")).await?;
    let villages: Vec<RegionCode> =
        regions.iter().filter(|r| r.level == RegionLevel::Village).map(|r| r.code.clone()).collect();
    let t_load = Instant::now();
    let hh: Vec<NewHousehold> = (0..households)
        .map(|i| NewHousehold {
            village_code: villages[i % villages.len()].clone(),
            hamlet: None,
            head_name: format!("户主{i}"),
            phone: format!("139{:08}", i),
            address: format!("{i}号"),
            members: 1 + (i % 5) as i64,
            coverage_modes: vec![CoverageMode::ALL[i % 5]],
            hd: i % 2 == 0,
            fibre: i % 3 == 0,
            care_elderly: i % 13 == 0,
            care_children: false,
            care_disabled: false,
        })
        .collect();
    store.insert_registry(&RegistryBatch { households: hh, ..Default::default() }, &Actor::cli("bench")).await?;
    let load_s = t_load.elapsed().as_secs_f64();
    let counts: RegionCounts = store.region_counts(&county).await?;
    if counts.households != households as i64 {
        bail!("expected {households} households, found {}", counts.households);
    }
    let (mut client, cookie, server) = serve_logged_in(store.clone(), Role::Viewer, &county).await?;
    let mut lat = Vec::with_capacity(requests);
    for i in 0..requests + 50 {
        let t = Instant::now();
        let (status, page) = client.request("GET", "/", &[("cookie", &cookie)], "").await?;
        let d = t.elapsed();
        if status != 200 || !page.contains(&counts.households.to_string()) {
            bail!("dashboard answered {status} without the household count");
        }
        if i >= 50 {
            lat.push(d);
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "bench dashboard backend={:?} households={households} load={load_s:.1}s requests={requests} p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms goal_p99<50ms={}",
        store.backend(),
        ms(pct(0.50)),
        ms(pct(0.95)),
        ms(pct(0.99)),
        ms(*lat.last().unwrap_or(&Duration::ZERO)),
        if ms(pct(0.99)) < 50.0 { "met" } else { "MISSED" }
    );
    server.stop().await;
    Ok(())
}

/// The app served on a loopback port for a benchmark, stopped by [`Served::stop`].
pub(crate) struct Served {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Served {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Serves the app on a loopback port and logs in a new user "bench" with `role` at `region`;
/// returns a keep-alive client, its session cookie and the server.
pub(crate) async fn serve_logged_in(
    store: std::sync::Arc<dyn Store>,
    role: Role,
    region: &RegionCode,
) -> anyhow::Result<(Http, String, Served)> {
    let password = crate::generate_password();
    store
        .create_user(
            &NewUser {
                username: "bench".into(),
                display_name: "bench".into(),
                role,
                region_code: region.clone(),
                phone: String::new(),
                password_hash: cuncun_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?,
            },
            &Actor::cli("bench"),
        )
        .await?;
    let listener = cuncun_web::bind("bench", "127.0.0.1:0").await?;
    let ops = cuncun_web::bind("bench ops", "127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = cuncun_web::AppState::new(cuncun_app::App::new(store, Default::default()), cuncun_web::WebOptions::default());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(cuncun_web::serve(state, listener, ops, async {
        let _ = stop_rx.await;
    }));
    let mut client = Http::connect(addr).await?;
    let body = format!("{{\"username\":\"bench\",\"password\":\"{password}\"}}");
    let (status, resp) = client.request("POST", "/api/v1/login", &[("content-type", "application/json")], &body).await?;
    if status != 201 {
        bail!("bench login failed: {status} {resp}");
    }
    let token = serde_json::from_str::<serde_json::Value>(&resp)?["token"].as_str().unwrap_or_default().to_string();
    Ok((client, format!("cuncun_session={token}"), Served { stop, task }))
}

/// A minimal keep-alive HTTP/1.1 client: enough to time our own pages without another dependency.
pub(crate) struct Http {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Http {
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Http> {
        Ok(Http { s: tokio::net::TcpStream::connect(addr).await?, buf: Vec::new() })
    }

    pub(crate) async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> anyhow::Result<(u16, String)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.s.write_all(req.as_bytes()).await?;
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("bad status line")?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok()).flatten()
            })
            .context("response without content-length")?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).to_string();
        self.buf.drain(..head_end + len);
        Ok((status, body))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut tmp = [0u8; 65536];
        let n = self.s.read(&mut tmp).await?;
        if n == 0 {
            bail!("connection closed");
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }
}


fn percentiles(mut v: Vec<i64>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1).min(v.len() - 1)];
    format!("p50={}ms p99={}ms max={}ms", p(0.5), p(0.99), v[v.len() - 1])
}

enum DispatchPath {
    Embedded,
    Broker(String),
    /// Gateway node processes linked to the platform's hub.
    Nodes(usize),
}


/// Starts `g` gateway nodes linked to `backbone`; returns them and their MQTT addresses.
async fn start_nodes(
    g: usize,
    per_node: usize,
    backbone: std::net::SocketAddr,
    secret: &str,
) -> anyhow::Result<(Vec<tokio::process::Child>, Vec<String>)> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..g {
        let mut c = tokio::process::Command::new(&exe)
            .args(["gateway", "--backbone", &backbone.to_string(), "--listen", "127.0.0.1:0"])
            .args(["--name", &format!("bench-node-{i}"), "--max-connections", &(per_node + 100).to_string()])
            .env("CUNCUN_BUS_BACKBONE_SECRET", secret)
            .env("CUNCUN_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting a gateway node")?;
        let out = c.stdout.take().context("node stdout")?;
        let line = tokio::time::timeout(Duration::from_secs(30), tokio::io::BufReader::new(out).lines().next_line())
            .await
            .context("a gateway node did not start within 30 s")??
            .context("a gateway node exited at start")?;
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mqtt://"))
            .with_context(|| format!("unexpected line from a gateway node: {line:?}"))?;
        addrs.push(addr.to_string());
        children.push(c);
    }
    Ok((children, addrs))
}

async fn dispatch(
    n: usize,
    messages: usize,
    path: DispatchPath,
    sim_processes: Option<usize>,
    url: Option<String>,
    heartbeats: Option<(usize, u64)>,
) -> anyhow::Result<()> {
    use cuncun_domain::eb::{Ebrid, ResourceKind};
    use cuncun_store::eb::{NewMessage, NewResource};
    if matches!(path, DispatchPath::Embedded) && n > 19_000 {
        bail!(
            "{n} terminals: one gateway process holds at most 19,000 here (20,000 open files per process); \
             use --gateways G to spread them over G node processes"
        );
    }
    let (store, _url) = empty_store(url).await?;
    let county = RegionCode::parse("500236")?;
    let regions = cuncun_regions::extract(county.short())?;
    store.import_regions(&regions, county.short(), &Actor::cli("bench")).await?;
    let villages: Vec<RegionCode> =
        regions.iter().filter(|r| r.level == RegionLevel::Village).map(|r| r.code.clone()).collect();
    let mut csv = String::from("id,secret\n");
    let mut rs = Vec::with_capacity(n);
    for i in 0..n {
        let v = &villages[i % villages.len()];
        let seq = (i / villages.len()) as u32 + 1;
        let ebrid = Ebrid::generate(v, ResourceKind::OutdoorLoudspeaker, seq)?;
        let secret = cuncun_eb::new_secret();
        csv.push_str(&format!("{},{}\n", ebrid, secret));
        rs.push(NewResource {
            kind: ResourceKind::OutdoorLoudspeaker,
            region_code: v.clone(),
            name: format!("bench {i}"),
            vendor: String::new(),
            model: String::new(),
            lon: None,
            lat: None,
            install_date: String::new(),
            ebrid: Some(ebrid),
            secret_hash: cuncun_eb::hash_secret(&secret),
        });
    }
    store.insert_resources(&rs, &Actor::cli("bench")).await?;
    drop(rs);
    let dir = std::env::temp_dir().join(format!("cuncun-bench-dispatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let creds = dir.join("credentials.csv");
    std::fs::write(&creds, csv)?;
    let auth = std::sync::Arc::new(cuncun_eb::DeviceAuth::new(store.device_credentials().await?));
    let rss_before = rss_mib();
    let mut nodes = Vec::new();
    let (bus, events, target) = match &path {
        DispatchPath::Embedded => {
            let l = cuncun_web::bind("bench gateway", "127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            let cfg = cuncun_gateway::GatewayConfig { max_connections: n + 10, ..Default::default() };
            let (bus, ev) = cuncun_gateway::start_embedded(vec![l], cfg, auth.clone()).await?;
            (bus, ev, addr.to_string())
        }
        DispatchPath::Broker(b) => {
            let (bus, ev) = cuncun_gateway::connect_external(b, "cuncun-bench-platform", None, None).await?;
            (bus, ev, b.trim_start_matches("mqtt://").to_string())
        }
        DispatchPath::Nodes(g) => {
            let backbone = cuncun_web::bind("bench backbone", "127.0.0.1:0").await?;
            let addr = backbone.local_addr()?;
            let secret = cuncun_eb::new_secret();
            let hub_cfg = cuncun_gateway::HubConfig { secret: secret.clone(), ..Default::default() };
            let (hub, ev) = cuncun_gateway::start_hub(backbone, hub_cfg, auth.clone(), None).await?;
            let (children, addrs) = start_nodes(*g, n.div_ceil(*g), addr, &secret).await?;
            nodes = children;
            (hub as std::sync::Arc<dyn cuncun_gateway::Bus>, ev, addrs.join(","))
        }
    };
    let eb = cuncun_eb::start(store.clone(), bus.clone(), events, auth, cuncun_eb::EbConfig::default()).await?;
    let procs = match (&path, sim_processes) {
        (_, Some(p)) => p,
        // Equal shares per node, at most 17,000 simulated terminals per process.
        (DispatchPath::Nodes(g), None) => n.div_ceil(17_000).div_ceil(*g) * g,
        _ => n.div_ceil(10_000),
    }
    .max(1);
    let exe = std::env::current_exe()?;
    // Heartbeat period giving the same heartbeats per second as `equivalent` terminals every 30 s.
    let hb_ms = match heartbeats {
        Some((equivalent, _)) => (30_000 * n / equivalent.max(1)).max(100),
        None => 30_000,
    };
    let mut sim = tokio::process::Command::new(exe)
        .args(["sim", "--target", &target, "--credentials"])
        .arg(&creds)
        .args(["--processes", &procs.to_string(), "--start-delay", "0", "--hb-interval", &format!("{hb_ms}ms"), "--duration", "30m"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the simulator")?;
    let t_conn = Instant::now();
    loop {
        let k = store.region_counts(&county).await?.terminals_online as usize;
        if k >= n {
            break;
        }
        if t_conn.elapsed() > Duration::from_secs(600) {
            bail!("only {k} of {n} terminals came online within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let connect_s = t_conn.elapsed().as_secs_f64();
    let rss_after = rss_mib();
    let path_name = match &path {
        DispatchPath::Embedded => "embedded".to_string(),
        DispatchPath::Broker(_) => "external-broker".to_string(),
        DispatchPath::Nodes(g) => format!("scale-out({g} gateway nodes)"),
    };
    println!(
        "bench dispatch path={path_name} terminals={n} sim_processes={procs} all_online={connect_s:.1}s ({:.0}/s incl. status writes) platform_rss={rss_after:.0}MiB per_terminal={:.1}KB",
        n as f64 / connect_s,
        (rss_after - rss_before) * 1024.0 / n as f64
    );
    if !nodes.is_empty() {
        let rss: Vec<f64> = nodes.iter().filter_map(|c| c.id()).map(rss_of_mib).collect();
        let total: f64 = rss.iter().sum();
        println!(
            "bench dispatch gateway_nodes={} node_rss=[{}]MiB per_terminal_on_nodes={:.1}KB",
            rss.len(),
            rss.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(","),
            total * 1024.0 / n as f64
        );
    }
    if let Some((equivalent, secs)) = heartbeats {
        // Let the first heartbeats of every terminal pass, then measure a steady window.
        tokio::time::sleep(Duration::from_millis(hb_ms as u64 * 2)).await;
        let hb0 = eb.stats.heartbeats.load(std::sync::atomic::Ordering::Relaxed);
        let fl0 = eb.stats.flushes.load(std::sync::atomic::Ordering::Relaxed);
        let cpu0 = process_cpu_s();
        let t = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let wall = t.elapsed().as_secs_f64();
        let cpu = process_cpu_s() - cpu0;
        let hb = eb.stats.heartbeats.load(std::sync::atomic::Ordering::Relaxed) - hb0;
        let fl = eb.stats.flushes.load(std::sync::atomic::Ordering::Relaxed) - fl0;
        println!(
            "bench heartbeats terminals={n} period={hb_ms}ms (= {equivalent} terminals every 30 s) received={:.0}/s batched_writes={:.1}/s platform_cpu={:.1}% of one core ({:.1}% of the machine's 2) over {wall:.0}s",
            hb as f64 / wall,
            fl as f64 / wall,
            cpu / wall * 100.0,
            cpu / wall * 50.0
        );
        let _ = sim.kill().await;
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let platform = Ebrid::generate(&county, ResourceKind::Platform, 1)?;
    for i in 0..messages {
        let now = cuncun_store::now_ms();
        let m = store
            .create_message(
                &NewMessage {
                    platform: platform.clone(),
                    msg_type: "broadcast".into(),
                    related_ebmid: None,
                    priority: "emergency".into(),
                    drill: true,
                    event_type: "11B03".into(),
                    severity: 2,
                    title: format!("基准测试 {i}"),
                    body: "暴雨橙色预警：预计未来6小时内全县有暴雨，请注意防范。".repeat(6),
                    lang: "zho".into(),
                    audio_sha256: None,
                    audio_size: None,
                    areas: vec![county.clone()],
                    terminals: vec![],
                    start_ms: now,
                    end_ms: now + 600_000,
                    repeat_count: 1,
                    volume: None,
                    source: "local".into(),
                    owner_region: county.clone(),
                    author_id: Some(1),
                    start_on_approval: false,
                    from_peer: None,
                },
                &Actor::cli("bench"),
            )
            .await?;
        cuncun_store::testing::submit_and_approve(&*store, &m, &Actor::cli("bench")).await?;
        let t0 = cuncun_store::now_ms();
        eb.kick();
        let waited = Instant::now();
        loop {
            let s = store.delivery_summary(m.id).await?;
            if (s.received as usize >= n && s.started as usize >= n) || waited.elapsed() > Duration::from_secs(120) {
                break;
            }
            // Counting 100,000 rows is not free: poll no more than once a second.
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        let rows = store.deliveries(m.id, false, 10_000_000).await?;
        let rec: Vec<i64> = rows.iter().filter_map(|d| d.received_ms.map(|t| t - t0)).collect();
        let st: Vec<i64> = rows.iter().filter_map(|d| d.started_ms.map(|t| t - t0)).collect();
        println!(
            "bench dispatch message={i} received={}/{n} [{}] started={}/{n} [{}] all_recorded_in_db_after={:.1}s",
            rec.len(),
            percentiles(rec.clone()),
            st.len(),
            percentiles(st),
            waited.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let _ = sim.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// CPU seconds (user + system) this process has used.
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
