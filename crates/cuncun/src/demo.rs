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
    let (sites, terminal_hamlets) = (d.transmitters, d.terminal_hamlets);
    let batch = RegistryBatch {
        hamlets: d.hamlets,
        households: d.households,
        stewards: d.stewards,
        outlets: d.outlets,
        terminals: d.terminals,
    };
    store.insert_registry(&batch, &Actor::cli("demo")).await?;
    crate::demo_sites::load(store, county, &sites, &terminal_hamlets).await?;
    let townships: Vec<_> = regions.iter().filter(|r| r.level == RegionLevel::Township).collect();
    network(store, &regions, county, data_dir).await?;
    // The accounts are created with an unusable hash; `run` sets the password printed this time.
    let placeholder = cuncun_web::auth::hash_password(&crate::generate_password()).map_err(anyhow::Error::msg)?;
    for (username, display, role, at) in ACCOUNTS {
        let region = match at {
            None => county.clone(),
            Some(i) => townships.get(*i).map(|t| t.code.clone()).unwrap_or_else(|| county.clone()),
        };
        let u = store
            .create_user(
                &NewUser {
                    username: username.to_string(),
                    display_name: display.to_string(),
                    role: *role,
                    region_code: region.clone(),
                    phone: String::new(),
                    password_hash: placeholder.clone(),
                },
                &Actor::cli("demo"),
            )
            .await?;
        if *role == Role::DepartmentSender {
            // The weather bureau's grant: meteorological events (11B..) and drills, whole county.
            let grant = cuncun_domain::authz::Grant { event_types: vec!["11B".into(), "11000".into()], regions: vec![region] };
            store.set_department_grant(u.id, &grant, &Actor::cli("demo")).await?;
        }
    }
    let tickets = service(store, county, townships.first().map(|t| &t.code)).await?;
    let c = store.region_counts(county).await?;
    Ok(format!(
        "demo county {} ({county}) loaded in {:.1} s: {} townships, {} villages, {} hamlets, {} households, {} stewards, {} outlets, {} terminals, {tickets} repair tickets",
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

/// The service desk's history: the steward account guanjia1 linked to the first township's
/// first steward, two months of repair tickets (most closed within 24 hours and rated, a few
/// late, complaints, the last two days' still open) and some special-care visits.
async fn service(store: &dyn Store, county: &RegionCode, first_township: Option<&RegionCode>) -> anyhow::Result<usize> {
    use cuncun_domain::service::*;
    use cuncun_store::service::{HistoricTicket, HouseholdQuery, NewTicket};
    let actor = Actor::cli("demo");
    if let (Some(t), Some((u, _))) = (first_township, store.user_credentials("guanjia1").await?) {
        if let Some(s) = store.stewards_in(t).await?.first() {
            store.set_steward_user(s.id, Some(u.id), &actor).await?;
        }
    }
    let stewards = store.stewards_in(county).await?;
    let mut by_village = std::collections::HashMap::new();
    for s in &stewards {
        for v in &s.villages {
            by_village.entry(v.clone()).or_insert(s.id);
        }
    }
    let mut villages: Vec<&RegionCode> = by_village.keys().collect();
    villages.sort();
    // A small deterministic generator (the demo is the same every time).
    let mut x: u64 = 0x2024_0601;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n.max(1)
    };
    let now = cuncun_store::now_ms();
    let day = 24 * HOUR_MS;
    let cats = [TicketCategory::Satellite, TicketCategory::Satellite, TicketCategory::Cable, TicketCategory::Terrestrial, TicketCategory::Loudspeaker, TicketCategory::EbTerminal, TicketCategory::IptvFiveG, TicketCategory::Other];
    let what = ["没有信号", "画面卡顿", "大喇叭不响", "机顶盒无法开机", "声音断断续续", "频道少了"];
    let mut rows = Vec::new();
    for (i, v) in villages.iter().enumerate() {
        for _ in 0..(1 + next(2)) {
            let at = now - (next(60) as i64) * day - (next(24) as i64) * HOUR_MS;
            let age = now - at;
            let roll = next(100);
            let (status, resolved, rating) = if age < 2 * day && roll < 60 {
                (TicketStatus::Assigned, None, None)
            } else {
                let took = if roll < 97 { (1 + next(20) as i64) * HOUR_MS } else { (26 + next(20) as i64) * HOUR_MS };
                let rated = age > 3 * day && roll < 85;
                let rating = if next(100) < 96 { 5 } else { 3 };
                (if rated { TicketStatus::Confirmed } else { TicketStatus::Resolved }, Some(at + took.min(age.max(HOUR_MS))), rated.then_some(rating))
            };
            rows.push(HistoricTicket {
                t: NewTicket {
                    kind: if next(100) < 2 { TicketKind::Complaint } else { TicketKind::Repair },
                    source: [TicketSource::Public, TicketSource::Phone, TicketSource::Phone, TicketSource::WalkIn][next(4) as usize],
                    category: cats[next(cats.len() as u64) as usize],
                    village_code: (*v).clone(),
                    household_id: None,
                    reporter_name: format!("{}{}", ["王", "李", "张", "刘", "陈"][next(5) as usize], ["大爷", "阿姨", "先生", "女士"][next(4) as usize]),
                    reporter_phone: format!("139{:08}", 10_000_000 + i as u64 * 97 + next(97)),
                    address: format!("{}组", 1 + next(8)),
                    description: what[next(what.len() as u64) as usize].to_string(),
                    terminal_ebrid: None,
                    dedupe_key: None,
                    confirm_token_hash: None,
                    requested_at_ms: Some(at),
                },
                status,
                steward_id: by_village.get(*v).copied(),
                resolved_at_ms: resolved,
                rating,
            });
        }
    }
    store.import_tickets(&rows, "demo", &actor).await?;
    // This year's first visit to some special-care households of the first township.
    if let Some(t) = first_township {
        let care = store.households_in(t, &HouseholdQuery { care_only: true, ..Default::default() }, 120, 0).await?;
        for h in care.iter().step_by(2) {
            let sid = by_village.get(&h.rec.village_code).copied();
            store.record_visit(h.id, sid, now - (next(200) as i64) * HOUR_MS, "上门检查设备，讲解应急广播", &actor).await?;
        }
    }
    Ok(rows.len())
}
