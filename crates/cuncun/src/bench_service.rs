//! `cuncun bench tickets`: the service desk at scale. A county with N households and M repair
//! tickets; times the .xlsx import of 100,000 households (with its peak memory), then the p50/p99
//! of the ticket list with filters and of the indicators page, over HTTP.

use crate::bench::{empty_store, peak_rss_mib, serve_logged_in};
use anyhow::bail;
use cuncun_domain::model::CoverageMode;
use cuncun_domain::service::*;
use cuncun_domain::{RegionCode, RegionLevel, Role};
use cuncun_store::Actor;
use cuncun_store::service::{HistoricTicket, HouseholdRecord, NewTicket};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct TicketsArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub households: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub tickets: usize,
    /// Households in the timed .xlsx import (part of --households).
    #[arg(long, default_value_t = 100_000)]
    pub import: usize,
    /// Requests per measured page.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// An empty database; default: a new SQLite file in the temp directory.
    #[arg(long)]
    pub database_url: Option<String>,
}

fn household(i: usize, village: &RegionCode) -> HouseholdRecord {
    HouseholdRecord {
        village_code: village.clone(),
        hamlet: (i % 10 != 0).then(|| format!("{}组", i % 9 + 1)),
        head_name: format!("户主{i}"),
        phone: format!("139{:08}", i),
        address: format!("{i}号"),
        members: 1 + (i % 5) as i64,
        reception: Some(vec![CoverageMode::ALL[i % 5]]),
        hd: i % 2 == 0,
        fibre: i % 3 == 0,
        care_elderly: i % 13 == 0,
        care_children: i % 29 == 0,
        care_disabled: false,
        fee_waiver: if i % 50 == 0 { FeeWaiver::MinimumLiving } else { FeeWaiver::None },
        fee_waiver_evidence: if i % 50 == 0 { format!("低保证{i}") } else { String::new() },
        fee_waiver_until: String::new(),
    }
}

pub async fn run(a: TicketsArgs) -> anyhow::Result<()> {
    let (store, _url) = empty_store(a.database_url.clone()).await?;
    let county = RegionCode::parse("500236")?;
    let regions = cuncun_regions::extract(county.short())?;
    store.import_regions(&regions, county.short(), &Actor::cli("bench")).await?;
    let villages: Vec<RegionCode> = regions.iter().filter(|r| r.level == RegionLevel::Village).map(|r| r.code.clone()).collect();
    let township = regions.iter().find(|r| r.level == RegionLevel::Township).map(|r| r.code.clone()).unwrap_or(county.clone());
    let actor = Actor::cli("bench");

    // 1. The timed import: an .xlsx of `import` households, parsed, checked and stored as the
    //    web import does (duplicates against the registry, one transaction).
    let n_import = a.import.min(a.households);
    let xlsx = cuncun_web::service_pages::sheets::export_households((0..n_import).map(|i| household(i, &villages[i % villages.len()])).collect::<Vec<_>>().iter())?;
    // Resets this process's peak RSS (Linux: "5" to clear_refs), so that the figure below is the
    // import's own peak and not the sheet generation's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let parsed = cuncun_web::service_pages::sheets::parse_households(&xlsx);
    if !parsed.errors.is_empty() {
        bail!("the generated sheet has errors: {:?}", &parsed.errors[..parsed.errors.len().min(3)]);
    }
    let t_parse = t.elapsed();
    let existing: std::collections::HashSet<_> = store.household_keys(&county).await?.into_iter().collect();
    let rows: Vec<HouseholdRecord> = parsed
        .valid
        .into_iter()
        .map(|(_, h)| h)
        .filter(|h| !existing.contains(&(h.village_code.as_str().to_string(), h.head_name.clone(), h.address.clone())))
        .collect();
    store.import_households(&rows, "bench.xlsx", &actor).await?;
    let t_import = t.elapsed();
    let rss_after = peak_rss_mib();
    drop(rows);
    println!(
        "bench tickets import backend={:?} households={n_import} xlsx={:.1}MiB parse={:.1}s total={:.1}s rows/s={:.0} peak_rss={:.0}MiB (before {:.0}MiB)",
        store.backend(),
        xlsx.len() as f64 / 1048576.0,
        t_parse.as_secs_f64(),
        t_import.as_secs_f64(),
        n_import as f64 / t_import.as_secs_f64(),
        rss_after,
        rss_before
    );
    drop(xlsx);

    // 2. The rest of the households and the tickets, in bulk chunks.
    let t = Instant::now();
    let chunk = 100_000;
    let mut i = n_import;
    while i < a.households {
        let end = (i + chunk).min(a.households);
        let rows: Vec<HouseholdRecord> = (i..end).map(|k| household(k, &villages[k % villages.len()])).collect();
        store.import_households(&rows, "bench", &actor).await?;
        i = end;
    }
    let t_households = t.elapsed();
    let stewards = store.stewards_in(&county).await?;
    let now = cuncun_store::now_ms();
    let year_ms = 365 * 24 * HOUR_MS;
    let t = Instant::now();
    let mut i = 0;
    while i < a.tickets {
        let end = (i + chunk).min(a.tickets);
        let rows: Vec<HistoricTicket> = (i..end)
            .map(|k| {
                // Spread over the past year, newest last; the last 0.2% still open, and 0.1% left
                // open all year (overdue).
                let at = now - year_ms + (k as i64 * year_ms / a.tickets.max(1) as i64);
                let open = k % 1000 == 999 || k * 500 >= a.tickets * 499;
                let took = if k % 30 == 0 { 30 * HOUR_MS } else { (1 + (k % 20) as i64) * HOUR_MS };
                HistoricTicket {
                    t: NewTicket {
                        kind: if k % 70 == 0 { TicketKind::Complaint } else { TicketKind::Repair },
                        source: TicketSource::ALL[k % 3],
                        category: TicketCategory::ALL[k % TicketCategory::ALL.len()],
                        village_code: villages[(k * 7) % villages.len()].clone(),
                        household_id: None,
                        reporter_name: format!("报修人{k}"),
                        reporter_phone: format!("138{:08}", k),
                        address: String::new(),
                        description: "没有信号".into(),
                        terminal_ebrid: None,
                        dedupe_key: None,
                        confirm_token_hash: None,
                        requested_at_ms: Some(at),
                    },
                    status: if open { TicketStatus::Assigned } else if k % 4 == 0 { TicketStatus::Resolved } else { TicketStatus::Confirmed },
                    steward_id: stewards.first().map(|s| s.id),
                    resolved_at_ms: (!open).then_some(at + took),
                    rating: (!open && k % 4 != 0).then_some(if k % 50 == 0 { 3 } else { 5 }),
                }
            })
            .collect();
        store.import_tickets(&rows, "bench", &actor).await?;
        i = end;
    }
    let t_tickets = t.elapsed();
    println!(
        "bench tickets load backend={:?} households={} ({:.1}s) tickets={} ({:.1}s)",
        store.backend(),
        a.households,
        t_households.as_secs_f64(),
        a.tickets,
        t_tickets.as_secs_f64()
    );

    // 3. Pages over HTTP, as the county's service desk.
    let (mut client, cookie, server) = serve_logged_in(store.clone(), Role::Broadcaster, &county).await?;
    let day = cuncun_domain::time::format_date;
    let (month_ago, today, tomorrow) = (day(now - 30 * 24 * HOUR_MS), day(now), day(now + 24 * HOUR_MS));
    let pages = [
        ("ticket list, newest", "/service/tickets".to_string(), "data-id"),
        ("list: open + satellite", "/service/tickets?status=open&category=satellite".to_string(), "data-id"),
        ("list: overdue", "/service/tickets?overdue=1".to_string(), "data-id"),
        ("list: township + 30 days + confirmed", format!("/service/tickets?status=confirmed&region={}&from={month_ago}&to={tomorrow}", township.short()), "data-id"),
        ("list: page 20", "/service/tickets?status=confirmed&page=20".to_string(), "data-id"),
        ("indicators: county, 30 days", format!("/service?from={month_ago}&to={tomorrow}"), "ind-closure24"),
        ("indicators: county, 1 year", format!("/service?from={}&to={tomorrow}", day(now - year_ms)), "ind-closure24"),
        ("indicators: township, today", format!("/service?region={}&from={today}&to={tomorrow}", township.short()), "ind-closure24"),
    ];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, path, must) in pages {
        let mut lat = Vec::with_capacity(a.requests);
        for k in 0..a.requests + 10 {
            let t = Instant::now();
            let (status, page) = client.request("GET", &path, &[("cookie", &cookie)], "").await?;
            let d = t.elapsed();
            if status != 200 || !page.contains(must) {
                bail!("{path} answered {status} without {must:?}");
            }
            if k >= 10 {
                lat.push(d);
            }
        }
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1).min(lat.len() - 1)];
        println!(
            "bench tickets page backend={:?} households={} tickets={} page=\"{name}\" p50={:.1}ms p99={:.1}ms max={:.1}ms goal_p99<100ms={}",
            store.backend(),
            a.households,
            a.tickets,
            ms(pct(0.5)),
            ms(pct(0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO)),
            if ms(pct(0.99)) < 100.0 { "met" } else { "MISSED" }
        );
    }
    server.stop().await;
    Ok(())
}
