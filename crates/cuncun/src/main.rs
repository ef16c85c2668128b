//! The cuncun binary. Every failure ends as one clear message on stderr and a non-zero exit code;
//! nothing panics at the user.

mod bench;
mod config;
mod demo;
mod demo_sites;
mod sim_cmd;
mod ebd_cmd;
mod bench_ebd;
mod gateway_cmd;
mod cap_cmd;
mod bench_cap;
mod bench_service;
mod bench_report;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use config::Config;
use cuncun_app::jobs::{JobName, Supervisor};
use cuncun_domain::{RegionCode, Role};
use cuncun_store::{Actor, Store};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "cuncun", version, about = "村村 cuncun: a county's public radio, TV and emergency broadcast platform")]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults and CUNCUN_* variables apply.
    #[arg(long, short, global = true, env = "CUNCUN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the platform (migrations run first).
    Serve,
    /// Load the demo county (奉节县 by default) into a local SQLite database and serve it.
    Demo(demo::DemoArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Region tree operations.
    #[command(subcommand)]
    Regions(RegionsCmd),
    /// User accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Benchmarks (figures go to docs/PERFORMANCE.md).
    #[command(subcommand)]
    Bench(sim_cmd::BenchCmd),
    /// Simulated terminals (terminal protocol v1) against the gateway or a broker.
    Sim(sim_cmd::SimArgs),
    /// SM2 signing keys, certificates and the trust list for EBD interchange.
    #[command(subcommand)]
    Keys(ebd_cmd::KeysCmd),
    /// National emergency-broadcast interchange (EBD) files: check, example.
    #[command(subcommand)]
    Ebd(ebd_cmd::EbdCmd),
    /// A gateway node for scale-out: holds terminals' connections for a platform's backbone.
    Gateway(gateway_cmd::GatewayArgs),
    /// CAP 1.2 warnings: check files, sign outgoing alerts.
    #[command(subcommand)]
    Cap(cap_cmd::CapCmd),
}

#[derive(Subcommand)]
enum RegionsCmd {
    /// Import a province, city, county, township or village (with its ancestors and whole subtree)
    /// from the bundled 2023 national division data; `--code all` imports all of China.
    Import {
        #[arg(long)]
        code: String,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user. The password is read from stdin with --password-stdin, else generated and printed once.
    Add {
        #[arg(long)]
        username: String,
        /// admin, broadcaster, reviewer, department_sender, steward, viewer
        #[arg(long)]
        role: String,
        /// The region the user is bound to (they see only its subtree).
        #[arg(long)]
        region: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, default_value = "")]
        phone: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (from stdin with --password-stdin, else generated and printed) and end the user's sessions.
    Passwd {
        #[arg(long)]
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// End every session of a user.
    Revoke {
        #[arg(long)]
        username: String,
    },
    /// List users.
    List,
    /// Set what a department sender may send: event codes or prefixes (e.g. 11B: every
    /// meteorological event) and regions inside its own. Prints the grant; without --events and
    /// --regions it only prints it.
    Grant {
        #[arg(long)]
        username: String,
        /// Comma-separated event codes or prefixes.
        #[arg(long)]
        events: Option<String>,
        /// Comma-separated region codes.
        #[arg(long)]
        regions: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the hash chain of the whole audit log; exits 1 if any entry was edited, removed or inserted.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Crash tests: CUNCUN_FAILPOINTS=name[,name...] aborts the process at each named failpoint
    // (see `message.update.*` in cuncun-store), as a power cut would.
    if let Ok(spec) = std::env::var("CUNCUN_FAILPOINTS") {
        for name in spec.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let n = name.to_string();
            if let Err(e) = fail::cfg_callback(name, move || {
                eprintln!("failpoint {n}: aborting");
                std::process::abort()
            }) {
                eprintln!("error: CUNCUN_FAILPOINTS: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store = cuncun_store::connect(&cfg.database.url).await?;
    let applied = store.migrate().await.context("applying database migrations")?;
    for m in applied {
        tracing::info!(migration = %m, "applied");
    }
    Ok(store)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    init_logging(&cfg.log.level);
    match cli.cmd {
        Cmd::Serve => {
            let store = open_store(&cfg).await?;
            serve(&cfg, store, None, None).await?;
        }
        Cmd::Demo(args) => demo::run(args).await?,
        Cmd::Migrate => {
            let store = cuncun_store::connect(&cfg.database.url).await?;
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied: {}", applied.join(", "));
            }
        }
        Cmd::Regions(RegionsCmd::Import { code }) => {
            let store = open_store(&cfg).await?;
            let started = std::time::Instant::now();
            let (report, counts) = import_regions(&*store, &code, &Actor::cli("regions import")).await?;
            println!(
                "imported {code}: {} provinces, {} cities, {} counties, {} townships, {} villages ({} new, {} updated) in {:.1} s",
                counts[0], counts[1], counts[2], counts[3], counts[4], report.inserted, report.updated,
                started.elapsed().as_secs_f64()
            );
        }
        Cmd::User(cmd) => user_cmd(&cfg, cmd).await?,
        Cmd::Audit(AuditCmd::Verify) => {
            let store = open_store(&cfg).await?;
            let (n, faults) = cuncun_store::verify_audit(&*store).await?;
            if faults.is_empty() {
                println!("audit log intact: {n} entries, hash chain verified");
            } else {
                for f in &faults {
                    println!("TAMPERED: {f}");
                }
                println!("audit log NOT intact: {} fault(s) in {n} entries", faults.len());
                return Ok(ExitCode::from(1));
            }
        }
        Cmd::Bench(sim_cmd::BenchCmd::Other(b)) => bench::run(&cfg, b).await?,
        Cmd::Bench(sim_cmd::BenchCmd::Fanout(a)) => sim_cmd::bench_fanout(a).await?,
        Cmd::Sim(a) => sim_cmd::run(a).await?,
        Cmd::Bench(sim_cmd::BenchCmd::Ebd(a)) => bench_ebd::run(a)?,
        Cmd::Keys(c) => return ebd_cmd::keys(c),
        Cmd::Ebd(c) => return ebd_cmd::ebd(c),
        Cmd::Gateway(a) => gateway_cmd::run(a).await?,
        Cmd::Cap(c) => return cap_cmd::run(c),
        Cmd::Bench(sim_cmd::BenchCmd::Cap(a)) => bench_cap::run(a)?,
        Cmd::Bench(sim_cmd::BenchCmd::Tickets(a)) => bench_service::run(a).await?,
        Cmd::Bench(sim_cmd::BenchCmd::Report(a)) => bench_report::run(a).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Imports a code's subtree (or "all") from the bundled data.
pub async fn import_regions(
    store: &dyn Store,
    code: &str,
    actor: &Actor,
) -> anyhow::Result<(cuncun_store::ImportReport, [usize; 5])> {
    let regions = if code == "all" {
        cuncun_regions::extract_all()?
    } else {
        cuncun_regions::extract(code)?
    };
    let counts = cuncun_regions::count_levels(&regions);
    let report = store.import_regions(&regions, code, actor).await?;
    Ok((report, counts))
}

/// Starts the terminal bus (embedded gateway or external broker) and the emergency broadcast
/// service over it, its workers as jobs of `jobs`.
pub async fn start_eb(
    cfg: &Config,
    store: Arc<dyn Store>,
    web_addr: std::net::SocketAddr,
    jobs: &Supervisor,
) -> anyhow::Result<(Arc<cuncun_eb::EbHandle>, Option<std::net::SocketAddr>)> {
    let auth = Arc::new(cuncun_eb::DeviceAuth::new(store.device_credentials().await?));
    let mut bus_addr = None;
    let (bus, events) = if cfg.bus.url == "embedded" {
        let listener = cuncun_web::bind("bus.listen", &cfg.bus.listen).await?;
        bus_addr = Some(listener.local_addr()?);
        tracing::info!(addr = %listener.local_addr()?, "terminal gateway listening");
        let gw = cuncun_gateway::GatewayConfig { max_connections: cfg.bus.max_connections, ..Default::default() };
        if cfg.bus.backbone_listen.is_empty() {
            cuncun_gateway::start_embedded(vec![listener], gw, auth.clone()).await?
        } else {
            let backbone = cuncun_web::bind("bus.backbone_listen", &cfg.bus.backbone_listen).await?;
            println!("gateway nodes link to {} (cuncun gateway --backbone ...)", backbone.local_addr()?);
            let hub_cfg = cuncun_gateway::HubConfig {
                secret: cfg.bus.backbone_secret.clone().unwrap_or_default(),
                ..Default::default()
            };
            let (hub, ev) =
                cuncun_gateway::start_hub(backbone, hub_cfg, auth.clone(), Some((vec![listener], gw, auth.clone()))).await?;
            (hub as Arc<dyn cuncun_gateway::Bus>, ev)
        }
    } else {
        let id = format!("cuncun-platform-{}", &generate_password()[..8]);
        cuncun_gateway::connect_external(&cfg.bus.url, &id, cfg.bus.username.as_deref(), cfg.bus.password.as_deref())
            .await
            .with_context(|| format!("bus.url = {}", cfg.bus.url))?
    };
    let eb_cfg = cuncun_eb::EbConfig {
        resend_after: std::time::Duration::from_secs(cfg.eb.resend_after_s.max(1)),
        // Terminals fetch audio from the web listener unless told otherwise.
        media_base_url: if cfg.eb.media_base_url.is_empty() {
            format!("http://{web_addr}")
        } else {
            cfg.eb.media_base_url.clone()
        },
        equal_severity: cfg.eb.equal_severity,
        ..Default::default()
    };
    let (eb, workers) = cuncun_eb::prepare(store, bus, events, auth, eb_cfg);
    for w in cuncun_eb::EbWorker::ALL {
        let name = match w {
            cuncun_eb::EbWorker::Ingest => JobName::Ingest,
            cuncun_eb::EbWorker::Dispatch => JobName::Dispatch,
            cuncun_eb::EbWorker::ReconnectCatchup => JobName::ReconnectCatchup,
            cuncun_eb::EbWorker::Resend => JobName::Resend,
        };
        let workers = workers.clone();
        jobs.spawn(name, move |ctx| {
            let workers = workers.clone();
            async move { workers.run(w, ctx.cancelled(), &|r| ctx.report(r)).await }
        })?;
    }
    Ok((eb, bus_addr))
}

/// Called once the terminal gateway listens, with its address (e.g. to start simulated terminals).
pub type OnBus = Box<dyn FnOnce(std::net::SocketAddr) + Send>;

/// Serves until Ctrl-C. `announce` is printed once the listeners are bound.
pub async fn serve(
    cfg: &Config,
    store: Arc<dyn Store>,
    announce: Option<String>,
    on_bus: Option<OnBus>,
) -> anyhow::Result<()> {
    let app = cuncun_web::bind("web.listen", &cfg.web.listen).await?;
    let ops = cuncun_web::bind("web.ops_listen", &cfg.web.ops_listen).await?;
    let mut state = cuncun_web::AppState::new(cuncun_app::App::new(store.clone(), Default::default()), cfg.web_options());
    let (eb, bus_addr) = start_eb(cfg, store.clone(), app.local_addr()?, &state.jobs).await?;
    let url = format!("http://{}", app.local_addr()?);
    let ops_url = format!("http://{}", ops.local_addr()?);
    println!("cuncun is serving at {url}  (health and metrics: {ops_url}/healthz {ops_url}/metrics)");
    if let Some(a) = bus_addr {
        println!("terminals connect to mqtt://{a} (docs/TERMINAL_PROTOCOL.md)");
        if let Some(f) = on_bus {
            f(a);
        }
    }
    if let Some(a) = announce {
        println!("{a}");
    }
    tracing::info!(%url, "listening");
    let media_store = Arc::new(
        cuncun_media::MediaStore::new(&cfg.media.dir).with_context(|| format!("media.dir = {}", cfg.media.dir))?,
    );
    if cfg.media.tts {
        state.media = Some(Arc::new(cuncun_web::Media {
            cache: cuncun_media::TtsCache::new(media_store)?,
            tts: Arc::new(cuncun_media::EspeakTts::new()),
        }));
    }
    state.workflow = cuncun_app::WorkflowSettings {
        drills_self_approve: cfg.eb.drills_self_approve,
        auto_dispatch: cfg.interchange.auto_dispatch.clone(),
    };
    state.platform_region = match &cfg.eb.region {
        Some(r) => Some(RegionCode::parse(r)?),
        None => None,
    };
    if cfg.interchange.enabled {
        state.interchange = Some(start_interchange(cfg, store.clone(), eb.clone(), &state.jobs)?);
    }
    state.eb = Some(eb);
    if !cfg.cap.signing_key.is_empty() {
        let cert = Some(cfg.cap.signing_cert.as_str()).filter(|c| !c.is_empty());
        state.cap_signer = Some(cuncun_web::cap_pages::load_signer(&cfg.cap.signing_key, cert)?);
    }
    if !cfg.cap.feeds.is_empty() {
        let every = std::time::Duration::from_secs(cfg.cap.poll_seconds.max(5));
        let (st, feeds) = (state.clone(), cfg.cap.feeds.clone());
        state.jobs.spawn(JobName::CapFeedPoller, move |ctx| cuncun_web::cap_pages::run_feed_poller(ctx, st.clone(), feeds.clone(), every))?;
    }
    cuncun_web::serve(state, app, ops, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// The EBD interchange, from [interchange] (checked when the configuration was loaded).
fn start_interchange(
    cfg: &Config,
    store: Arc<dyn Store>,
    eb: Arc<cuncun_eb::EbHandle>,
    jobs: &Supervisor,
) -> anyhow::Result<Arc<cuncun_interchange::Interchange>> {
    use cuncun_domain::eb::{Ebrid, ResourceKind};
    let ic = &cfg.interchange;
    let region = RegionCode::parse(cfg.eb.region.as_deref().unwrap_or_default())?;
    let own = Ebrid::generate(&region, ResourceKind::Platform, 1)?;
    let signer = cuncun_ebd::SoftwareSigner::load_dir(std::path::Path::new(&ic.keys))
        .map_err(|e| anyhow::anyhow!("interchange.keys = {}: {e} (make one with `cuncun keys generate`)", ic.keys))?;
    let trust = cuncun_ebd::TrustList::load(std::path::Path::new(&ic.trust))
        .map_err(|e| anyhow::anyhow!("interchange.trust = {}: {e}", ic.trust))?;
    let mut c = cuncun_interchange::InterchangeConfig::new(own, ic.url.clone(), region);
    if !ic.name.is_empty() {
        c.own_name = ic.name.clone();
    }
    c.auto_dispatch = ic.auto_dispatch.clone();
    c.check_every = std::time::Duration::from_secs(ic.check_every_s.max(1));
    c.report_every = std::time::Duration::from_secs(ic.report_every_s.max(1));
    c.limits.max_tar_bytes = ic.max_package_mib << 20;
    c.max_concurrent_uploads = ic.max_concurrent_uploads;
    for p in &ic.peer {
        c.peers.push(cuncun_interchange::Peer {
            role: if p.role == "parent" { cuncun_interchange::PeerRole::Parent } else { cuncun_interchange::PeerRole::Child },
            ebrid: Ebrid::parse(&p.ebrid)?,
            url: p.url.clone(),
            name: p.name.clone(),
        });
    }
    let ix = cuncun_interchange::Interchange::new(store, Arc::new(signer), trust, c, Box::new(move || eb.kick()))?;
    for w in ix.workers() {
        let name = match w {
            cuncun_interchange::IxWorker::Sender => JobName::InterchangeSender,
            cuncun_interchange::IxWorker::Link => JobName::InterchangeLink,
            cuncun_interchange::IxWorker::Forward => JobName::InterchangeForward,
        };
        let ix = ix.clone();
        jobs.spawn(name, move |ctx| {
            let ix = ix.clone();
            async move {
                ix.run(w, ctx.cancelled(), &|r| ctx.report(r)).await;
                Ok(())
            }
        })?;
    }
    println!("EBD interchange: peers post to {} ({} peer platform(s))", ic.url, ic.peer.len());
    Ok(ix)
}

pub fn generate_password() -> String {
    use rand::Rng;
    // No look-alike characters: people read this off a terminal.
    const A: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut r = rand::thread_rng();
    (0..14).map(|_| A[r.gen_range(0..A.len())] as char).collect()
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).context("reading the password from stdin")?;
    let p = s.trim_end_matches(['\r', '\n']).to_string();
    if p.chars().count() < 8 {
        bail!("the password read from stdin has fewer than 8 characters");
    }
    Ok(p)
}

async fn user_cmd(cfg: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        UserCmd::Add { username, role, region, display_name, phone, password_stdin } => {
            let role = Role::parse(&role)?;
            let region = RegionCode::parse(&region).with_context(|| format!("--region {region}"))?;
            if store.region(&region).await?.is_none() {
                bail!(
                    "region {region} is not loaded; run `cuncun regions import --code {}` first",
                    region.short()
                );
            }
            let (password, shown) =
                if password_stdin { (read_password_stdin()?, false) } else { (generate_password(), true) };
            let hash = cuncun_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            let u = store
                .create_user(
                    &cuncun_domain::model::NewUser {
                        username: username.clone(),
                        display_name: display_name.unwrap_or_else(|| username.clone()),
                        role,
                        region_code: region,
                        phone,
                        password_hash: hash,
                    },
                    &Actor::cli("user add"),
                )
                .await?;
            println!("created user {} (id {}, {}, region {})", u.username, u.id, u.role.key(), u.region_code);
            if shown {
                println!("password: {password}");
            }
        }
        UserCmd::Passwd { username, password_stdin } => {
            let (u, _) = store
                .user_credentials(&username)
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let (password, shown) =
                if password_stdin { (read_password_stdin()?, false) } else { (generate_password(), true) };
            let hash = cuncun_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
            store.set_password(u.id, &hash, &Actor::cli("user passwd")).await?;
            let n = store.revoke_user_sessions(u.id, &Actor::cli("user passwd")).await?;
            println!("password of {username} changed; {n} session(s) ended");
            if shown {
                println!("password: {password}");
            }
        }
        UserCmd::Revoke { username } => {
            let (u, _) = store
                .user_credentials(&username)
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let n = store.revoke_user_sessions(u.id, &Actor::cli("user revoke")).await?;
            println!("{n} session(s) of {username} ended");
        }
        UserCmd::Grant { username, events, regions } => {
            let (u, _) = store
                .user_credentials(&username)
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let app = cuncun_app::App::new(store.clone(), Default::default());
            // Whoever runs the CLI holds the database; the audit log names the command.
            let p = cuncun_app::Principal::System { job: "cli user grant" };
            let split = |s: &str| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect::<Vec<_>>();
            let g = match (events, regions) {
                (None, None) => app.grant(&p, u.id).await?,
                (e, r) => {
                    let old = app.grant(&p, u.id).await?;
                    let e = e.map(|e| split(&e)).unwrap_or(old.event_types);
                    let r = r.map(|r| split(&r)).unwrap_or_else(|| old.regions.iter().map(|c| c.short().to_string()).collect());
                    app.set_grant(&p, u.id, &e, &r).await?
                }
            };
            println!("{username} may send event types [{}] in regions [{}]", g.event_types.join(", "), g.regions.iter().map(|c| c.short()).collect::<Vec<_>>().join(", "));
        }
        UserCmd::List => {
            for root in ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"] {
                let code = RegionCode::parse(root)?;
                for u in store.users_in(&code).await? {
                    println!(
                        "{:>5}  {:<20} {:<18} {:<12} {}",
                        u.id,
                        u.username,
                        u.role.key(),
                        u.region_code.short(),
                        if u.disabled { "disabled" } else { "active" }
                    );
                }
            }
        }
    }
    Ok(())
}
