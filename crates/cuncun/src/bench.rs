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
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

async fn empty_store(url: Option<String>) -> anyhow::Result<(std::sync::Arc<dyn Store>, String)> {
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
    let password = crate::generate_password();
    store
        .create_user(
            &NewUser {
                username: "bench".into(),
                display_name: "bench".into(),
                role: Role::Viewer,
                region_code: county.clone(),
                phone: String::new(),
                password_hash: cuncun_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?,
            },
            &Actor::cli("bench"),
        )
        .await?;
    let counts: RegionCounts = store.region_counts(&county).await?;
    if counts.households != households as i64 {
        bail!("expected {households} households, found {}", counts.households);
    }
    let listener = cuncun_web::bind("bench", "127.0.0.1:0").await?;
    let ops = cuncun_web::bind("bench ops", "127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = cuncun_web::AppState::new(store.clone(), cuncun_web::WebOptions::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cuncun_web::serve(state, listener, ops, async {
        let _ = stop_rx.await;
    }));
    let mut client = Http::connect(addr).await?;
    let body = format!("{{\"username\":\"bench\",\"password\":\"{password}\"}}");
    let (status, resp) = client.request("POST", "/api/v1/login", &[("content-type", "application/json")], &body).await?;
    if status != 201 {
        bail!("bench login failed: {status} {resp}");
    }
    let token = serde_json::from_str::<serde_json::Value>(&resp)?["token"].as_str().unwrap_or_default().to_string();
    let cookie = format!("cuncun_session={token}");
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
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

/// A minimal keep-alive HTTP/1.1 client: enough to time our own pages without another dependency.
struct Http {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Http {
    async fn connect(addr: std::net::SocketAddr) -> anyhow::Result<Http> {
        Ok(Http { s: tokio::net::TcpStream::connect(addr).await?, buf: Vec::new() })
    }

    async fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> anyhow::Result<(u16, String)> {
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
