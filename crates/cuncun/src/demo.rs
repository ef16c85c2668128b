//! `cuncun demo`: a real county (奉节县 by default) from the bundled national data, with
//! deterministic generated stewards, households, outlets and terminals, and demo accounts.

use crate::config::Config;
use anyhow::Context;
use cuncun_domain::model::NewUser;
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_store::{Actor, RegistryBatch, Store};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the demo's SQLite database lives.
    #[arg(long, default_value = "cuncun-data/demo")]
    pub data_dir: PathBuf,
    /// Use this database instead (e.g. an empty PostgreSQL database).
    #[arg(long)]
    pub database_url: Option<String>,
    /// The county to load (6-digit code).
    #[arg(long, default_value = "500236")]
    pub county: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub ops_listen: String,
    /// Where simulated and real terminals connect (MQTT). Not 1883, to stay clear of a local Mosquitto.
    #[arg(long, default_value = "127.0.0.1:1884")]
    pub bus_listen: String,
    /// Load the data and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
    /// How many of the demo's devices to simulate in-process, so that the dashboard is alive
    /// (0 = none; default: all).
    #[arg(long)]
    pub sim: Option<usize>,
}

/// Demo accounts: (username, display name, role, region: None = the county, Some(i) = i-th township).
const ACCOUNTS: &[(&str, &str, Role, Option<usize>)] = &[
    ("admin", "县级管理员", Role::Admin, None),
    ("boke", "播控员 张敏", Role::Broadcaster, None),
    ("shenhe", "审核员 刘洋", Role::Reviewer, None),
    ("qixiang", "县气象局 陈静", Role::DepartmentSender, None),
    ("zhen1", "乡镇管理员 王强", Role::Admin, Some(0)),
    ("guanjia1", "广电管家 李文华", Role::Steward, Some(0)),
    ("zhen2", "乡镇查看员 赵丽", Role::Viewer, Some(1)),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(None)?;
    cfg.database.url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!("sqlite://{}/cuncun.db", args.data_dir.display()),
    };
    cfg.web.listen = args.listen.clone();
    cfg.web.ops_listen = args.ops_listen.clone();
    cfg.bus.listen = args.bus_listen.clone();
    cfg.eb.region = Some(args.county.clone());
    cfg.media.dir = args.data_dir.join("media").display().to_string();
    let county = RegionCode::parse(&args.county).with_context(|| format!("--county {}", args.county))?;
    if county.level() != RegionLevel::County {
        anyhow::bail!("--county {county}: expected a 6-digit county code, got a {}", county.level().key());
    }
    let store = crate::open_store(&cfg).await?;
    let summary = load(&*store, &county, &args.data_dir).await?;
    let password = crate::generate_password();
    let hash = cuncun_web::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
    let mut others = Vec::new();
    for (name, _, role, _) in ACCOUNTS {
        if let Some((u, _)) = store.user_credentials(name).await? {
            store.set_password(u.id, &hash, &Actor::cli("demo")).await?;
            if *name != "admin" {
                others.push(format!("{name} ({}, {})", role.key(), u.region_code));
            }
        }
    }
    let announce = format!(
        "{summary}\nlog in as: admin / {password}\nother demo accounts, same password: {}",
        others.join(", ")
    );
    if args.no_serve {
        println!("{announce}");
        return Ok(());
    }
    let creds_path = args.data_dir.join("sim-credentials.csv");
    let want = args.sim;
    let on_bus: Option<crate::OnBus> = match cuncun_sim::load_credentials(&creds_path) {
        Ok(mut creds) if want != Some(0) => {
            if let Some(n) = want {
                creds.truncate(n);
            }
            Some(Box::new(move |addr| {
                println!("simulating {} terminals and front-ends", creds.len());
                // A few offline episodes an hour each, so that the online rate has something to show.
                let cfg = cuncun_sim::SimConfig { offline_rate: 0.5, ..Default::default() };
                tokio::spawn(async move {
                    cuncun_sim::run(cfg, creds, addr, std::future::pending::<()>()).await;
                });
            }))
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!("note: no simulated terminals ({e:#})");
            None
        }
    };
    crate::serve(&cfg, store, Some(announce), on_bus).await
}

/// Loads the county once; later runs find it and leave the data as it is.
async fn load(store: &dyn Store, county: &RegionCode, data_dir: &std::path::Path) -> anyhow::Result<String> {
    let name = |r: Option<cuncun_domain::model::Region>| r.map(|r| r.name).unwrap_or_default();
    if store.region(county).await?.is_some() && store.user_credentials("admin").await?.is_some() {
        let c = store.region_counts(county).await?;
        return Ok(format!(
            "demo county {} ({county}) already loaded: {} townships, {} villages, {} households, {} terminals",
            name(store.region(county).await?),
            c.townships,
            c.villages,
            c.households,
            c.terminals
        ));
    }
    let started = std::time::Instant::now();
    let regions = cuncun_regions::extract(county.short())?;
    store.import_regions(&regions, county.short(), &Actor::cli("demo")).await?;
    let d = cuncun_demo::generate(&regions, 20240601);
    let batch = RegistryBatch {
        hamlets: d.hamlets,
        households: d.households,
        stewards: d.stewards,
        outlets: d.outlets,
        terminals: d.terminals,
    };
    store.insert_registry(&batch, &Actor::cli("demo")).await?;
    let townships: Vec<_> = regions.iter().filter(|r| r.level == RegionLevel::Township).collect();
    network(store, &regions, county, data_dir).await?;
    // The accounts are created with an unusable hash; `run` sets the password printed this time.
    let placeholder = cuncun_web::auth::hash_password(&crate::generate_password()).map_err(anyhow::Error::msg)?;
    for (username, display, role, at) in ACCOUNTS {
        let region = match at {
            None => county.clone(),
            Some(i) => townships.get(*i).map(|t| t.code.clone()).unwrap_or_else(|| county.clone()),
        };
        store
            .create_user(
                &NewUser {
                    username: username.to_string(),
                    display_name: display.to_string(),
                    role: *role,
                    region_code: region,
                    phone: String::new(),
                    password_hash: placeholder.clone(),
                },
                &Actor::cli("demo"),
            )
            .await?;
    }
    let c = store.region_counts(county).await?;
    Ok(format!(
        "demo county {} ({county}) loaded in {:.1} s: {} townships, {} villages, {} hamlets, {} households, {} stewards, {} outlets, {} terminals",
        name(store.region(county).await?),
        started.elapsed().as_secs_f64(),
        c.townships,
        c.villages,
        c.hamlets,
        c.households,
        c.stewards,
        c.outlets,
        c.terminals
    ))
}

/// The county platform and a front-end (broadcast room) per township and village; every device
/// gets a secret, written for the simulator to `<data_dir>/sim-credentials.csv` (mode 0600).
async fn network(
    store: &dyn Store,
    regions: &[cuncun_domain::model::Region],
    county: &RegionCode,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    use cuncun_domain::eb::ResourceKind;
    use cuncun_store::eb::NewResource;
    let mut rs = vec![NewResource {
        kind: ResourceKind::Platform,
        region_code: county.clone(),
        name: "县级应急广播平台".into(),
        vendor: "cuncun".into(),
        model: env!("CARGO_PKG_VERSION").into(),
        lon: None,
        lat: None,
        install_date: "2024-01-01".into(),
        ebrid: None,
        secret_hash: String::new(),
    }];
    for r in regions.iter().filter(|r| matches!(r.level, RegionLevel::Township | RegionLevel::Village)) {
        let short = r.name.trim_end_matches("村民委员会").trim_end_matches("居民委员会");
        rs.push(NewResource {
            kind: ResourceKind::FrontEnd,
            region_code: r.code.clone(),
            name: format!("{short}广播室"),
            vendor: "数码视讯".into(),
            model: "EB-FE100".into(),
            lon: None,
            lat: None,
            install_date: "2023-09-15".into(),
            ebrid: None,
            secret_hash: String::new(),
        });
    }
    store.insert_resources(&rs, &Actor::cli("demo")).await?;
    let devices = store.resources_in(county, &[], false, 1_000_000, 0).await?;
    let mut pairs = Vec::new();
    let mut csv = String::from("id,secret\n");
    for d in devices.iter().filter(|d| d.resource.kind != ResourceKind::Platform) {
        let secret = cuncun_eb::new_secret();
        csv.push_str(&format!("{},{}\n", d.resource.ebrid, secret));
        pairs.push((d.resource.ebrid.clone(), cuncun_eb::hash_secret(&secret)));
    }
    store.set_secret_hashes(&pairs, &Actor::cli("demo")).await?;
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("sim-credentials.csv");
    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}
