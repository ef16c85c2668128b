//! `cuncun bench report`: the monthly report of a province-sized data set — by default 54,000
//! villages, 10,000,000 households, 270,000 hamlets, 100,000 terminals with a month of connection
//! history (two connections a day each), 200,000 tickets, 30 broadcasts with their deliveries
//! (half for the province, half for two of its cities), a front-end in every village and 5,400
//! transmitter sites —
//! generated set-wise (INSERT ... SELECT over a number series), then the report for the province,
//! one city and one county: wall time and peak memory (VmHWM, reset before each measurement).
//! PostgreSQL: give --database-url of any database on the server; the benchmark creates its own
//! database next to it and drops it at the end.

use cuncun_domain::RegionCode;
use cuncun_domain::indicators::Month;
use cuncun_store::{Backend, SqlStore, Store};
use std::time::Instant;

#[derive(clap::Args)]
pub struct ReportBenchArgs {
    /// Households in the province.
    #[arg(long, default_value_t = 10_000_000)]
    pub households: i64,
    /// Emergency broadcast terminals, each with a month of connection history.
    #[arg(long, default_value_t = 100_000)]
    pub terminals: i64,
    /// Tickets requested in the month.
    #[arg(long, default_value_t = 200_000)]
    pub tickets: i64,
    /// sqlite://path (default: a temporary file) or postgres://.../db (a scratch database is
    /// created beside it and dropped afterwards).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Keep the generated database (SQLite file or PostgreSQL database) for another run.
    #[arg(long)]
    pub keep: bool,
    /// Report on the database at --database-url as it is when it already holds the generated
    /// province (kept by an earlier --keep run; for PostgreSQL, the kept scratch database's URL).
    #[arg(long)]
    pub reuse: bool,
}

const CITIES: i64 = 20;
const COUNTIES: i64 = 9;
const TOWNSHIPS: i64 = 25;
const VILLAGES: i64 = 12;
const HAMLETS: i64 = 5;
const DAY: i64 = 86_400_000;

fn month() -> Month {
    Month { year: 2025, month: 6 }
}

/// Resident-memory peak reset (Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A number series 0..n as a derived table `nums(i)`.
fn series(b: Backend, n: i64) -> String {
    match b {
        Backend::Postgres => format!("(SELECT generate_series(CAST(0 AS BIGINT), CAST({} AS BIGINT)) AS i) nums", n - 1),
        Backend::Sqlite => format!("(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}) SELECT i FROM s) nums", n - 1),
    }
}

/// Zero-padded decimal text of an integer expression.
fn pad(b: Backend, expr: &str, width: usize) -> String {
    match b {
        Backend::Postgres => format!("lpad(CAST(({expr}) AS TEXT), {width}, '0')"),
        Backend::Sqlite => format!("printf('%0{width}d', {expr})"),
    }
}

async fn exec(store: &SqlStore, label: &str, sql: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    // Tables with running counts (migration 0007) load in bulk mode; see `bulk_insert_sql`.
    let into = sql.strip_prefix("INSERT INTO ").and_then(|r| r.split_whitespace().next()).unwrap_or("");
    let n = if ["household", "ticket", "care_visit"].contains(&into) {
        store.bulk_insert_sql(into, sql).await.map_err(|e| anyhow::anyhow!("{label}: {e}"))?
    } else {
        sqlx::query(sql).execute(store.pool()).await.map_err(|e| anyhow::anyhow!("{label}: {e}"))?.rows_affected()
    };
    eprintln!("  {label:<28} {:>10} rows {:>7.1} s", n, t.elapsed().as_secs_f64());
    Ok(())
}

async fn generate(store: &SqlStore, a: &ReportBenchArgs) -> anyhow::Result<()> {
    let b = store.backend();
    let n_v = CITIES * COUNTIES * TOWNSHIPS * VILLAGES;
    let m0 = month().start_ms();
    // Villages numbered 0..n_v: a scratch table maps the number to the code.
    exec(store, "bench_village table", "CREATE TABLE bench_village (n BIGINT PRIMARY KEY, code TEXT NOT NULL)").await?;
    let code = format!(
        "'51' || {} || {} || {} || {}",
        pad(b, &format!("i / {} + 1", COUNTIES * TOWNSHIPS * VILLAGES), 2),
        pad(b, &format!("(i / {}) % {COUNTIES} + 1", TOWNSHIPS * VILLAGES), 2),
        pad(b, &format!("(i / {VILLAGES}) % {TOWNSHIPS} + 100"), 3),
        pad(b, &format!("i % {VILLAGES} + 201"), 3)
    );
    exec(store, "villages (numbered)", &format!("INSERT INTO bench_village (n, code) SELECT i, {code} FROM {}", series(b, n_v))).await?;
    exec(store, "region: province", "INSERT INTO region (code, name, level, parent_code) VALUES ('510000000000', '四川省(基准)', 1, NULL)").await?;
    exec(store, "region: cities", "INSERT INTO region (code, name, level, parent_code) SELECT DISTINCT SUBSTR(code, 1, 4) || '00000000', '市' || SUBSTR(code, 3, 2), 2, '510000000000' FROM bench_village").await?;
    exec(store, "region: counties", "INSERT INTO region (code, name, level, parent_code) SELECT DISTINCT SUBSTR(code, 1, 6) || '000000', '县' || SUBSTR(code, 3, 4), 3, SUBSTR(code, 1, 4) || '00000000' FROM bench_village").await?;
    exec(store, "region: townships", "INSERT INTO region (code, name, level, parent_code) SELECT DISTINCT SUBSTR(code, 1, 9) || '000', '镇' || SUBSTR(code, 3, 7), 4, SUBSTR(code, 1, 6) || '000000' FROM bench_village").await?;
    exec(store, "region: villages", "INSERT INTO region (code, name, level, parent_code) SELECT code, '村' || SUBSTR(code, 3, 10), 5, SUBSTR(code, 1, 9) || '000' FROM bench_village").await?;
    exec(
        store,
        "hamlets",
        &format!(
            "INSERT INTO hamlet (village_code, name, households, population) SELECT v.code, '组' || CAST(h.i AS TEXT), 10 + (v.n + h.i) % 40, 3 * (10 + (v.n + h.i) % 40) \
             FROM bench_village v CROSS JOIN {}",
            series(b, HAMLETS).replace("nums", "h")
        ),
    )
    .await?;
    let modes = "CASE i % 10 WHEN 0 THEN '' WHEN 1 THEN 'none' WHEN 2 THEN 'cable' WHEN 3 THEN 'cable,iptv' WHEN 4 THEN 'terrestrial' \
                 WHEN 5 THEN 'satellite' WHEN 6 THEN 'satellite,5g' WHEN 7 THEN 'cable' WHEN 8 THEN 'iptv' ELSE 'terrestrial,satellite' END";
    exec(
        store,
        "households",
        &format!(
            "INSERT INTO household (village_code, hamlet, head_name, phone, address, members, coverage_modes, hd, fibre, care_elderly, care_children, care_disabled) \
             SELECT v.code, '组' || CAST(i % {HAMLETS} AS TEXT), '户主', '13800000000', '门牌' || CAST(i AS TEXT), 1 + i % 5, {modes}, \
             CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 4 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 17 = 0 THEN 1 ELSE 0 END, 0, 0 \
             FROM {} JOIN bench_village v ON v.n = i % {n_v}",
            series(b, a.households)
        ),
    )
    .await?;
    exec(
        store,
        "terminals",
        &format!(
            "INSERT INTO eb_resource (ebrid, kind, region_code, name, created_at_ms) \
             SELECT '9' || {}, CASE WHEN i % 4 = 3 THEN 'column_speaker' ELSE 'outdoor_loudspeaker' END, v.code, '组' || CAST(i % {HAMLETS} AS TEXT) || '大喇叭', {} \
             FROM {} JOIN bench_village v ON v.n = i % {n_v}",
            pad(b, "i", 22),
            m0 - 60 * DAY,
            series(b, a.terminals)
        ),
    )
    .await?;
    let end = month().end_ms();
    exec(
        store,
        "terminal status",
        &format!(
            "INSERT INTO terminal_status (resource_id, online, changed_ms, last_seen_ms, faults) SELECT id, CASE WHEN id % 20 = 0 THEN 0 ELSE 1 END, {end} - (id % 50) * 3600000, {end}, \
             CASE WHEN id % 97 = 0 THEN 'amplifier' ELSE '' END FROM eb_resource"
        ),
    )
    .await?;
    // Two connections a day: a morning drop of id % 30 minutes, and every 20th terminal down
    // from 18:00 to the end of the day.
    let days = month().days();
    exec(
        store,
        "connection history",
        &format!(
            "INSERT INTO terminal_online (resource_id, from_ms, to_ms) \
             SELECT r.id, {m0} + d.i * {DAY} + k.i * 43200000 + CASE WHEN k.i = 0 THEN 0 ELSE (r.id % 30) * 60000 END, \
             {m0} + d.i * {DAY} + k.i * 43200000 + CASE WHEN k.i = 1 AND r.id % 20 = 0 THEN 21600000 ELSE 43200000 - 60000 * ((r.id + d.i) % 3) END \
             FROM eb_resource r CROSS JOIN {} CROSS JOIN {}",
            series(b, days).replace("nums", "d"),
            series(b, 2).replace("nums", "k")
        ),
    )
    .await?;
    exec(
        store,
        "tickets",
        &format!(
            "INSERT INTO ticket (kind, source, category, village_code, reporter_name, reporter_phone, address, description, status, created_at_ms, deadline_ms, resolved_at_ms, rating, updated_at_ms) \
             SELECT CASE WHEN i % 50 = 0 THEN 'complaint' ELSE 'repair' END, 'phone', 'satellite', v.code, '王', '13800000000', '门牌', '没有信号', \
             CASE WHEN i % 10 = 0 THEN 'assigned' ELSE 'resolved' END, {m0} + (i * 12960) % {}, {m0} + (i * 12960) % {} + {DAY}, \
             CASE WHEN i % 10 = 0 THEN NULL ELSE {m0} + (i * 12960) % {} + 3600000 * (1 + i % 30) END, CASE WHEN i % 3 = 0 THEN 1 + i % 5 ELSE NULL END, {m0} \
             FROM {} JOIN bench_village v ON v.n = (i * 7) % {n_v}",
            days * DAY,
            days * DAY,
            days * DAY,
            series(b, a.tickets)
        ),
    )
    .await?;
    exec(
        store,
        "care visits",
        &format!(
            "INSERT INTO care_visit (household_id, village_code, year, visited_at_ms, note, recorded_by) \
             SELECT id, village_code, 2025, {m0} + (id % {days}) * {DAY}, '走访', 'bench' FROM household WHERE care_elderly = 1 AND id % 3 = 0"
        ),
    )
    .await?;
    exec(
        store,
        "messages",
        &format!(
            "INSERT INTO eb_message (ebmid, msg_type, priority, drill, event_type, severity, title, body, areas, start_ms, end_ms, repeat_count, status, source, owner_region, created_at_ms, updated_at_ms, approved_at_ms) \
             SELECT 'BENCH' || CAST(i AS TEXT), 'broadcast', CASE WHEN i % 3 = 0 THEN 'emergency' ELSE 'routine' END, CASE WHEN i % 10 = 9 THEN 1 ELSE 0 END, \
             '11B03', 3, '通知', '内容', CASE WHEN i % 2 = 0 THEN '510000000000' ELSE '510100000000,510200000000' END, {m0} + i * {DAY}, {m0} + i * {DAY} + 3600000, 1, 'completed', 'local', '510000000000', {m0} + i * {DAY}, {m0} + i * {DAY}, {m0} + i * {DAY} \
             FROM {}",
            series(b, days)
        ),
    )
    .await?;
    exec(
        store,
        "deliveries",
        &format!(
            "INSERT INTO eb_delivery (message_id, resource_id, stage) SELECT m.id, r.id, CASE WHEN r.id % 20 = 0 THEN 0 ELSE 3 END \
             FROM eb_message m JOIN eb_resource r ON r.id % {days} = m.id % {days}"
        ),
    )
    .await?;
    // After the terminals' status, history and deliveries (which stay as they were): a
    // front-end (broadcast room) in every village, and a transmitter or relay station in one
    // village of ten (one in twenty of them out of service).
    exec(
        store,
        "front-ends",
        &format!(
            "INSERT INTO eb_resource (ebrid, kind, region_code, name, created_at_ms) SELECT '8' || {}, 'front_end', code, '村广播室', {} FROM bench_village",
            pad(b, "n", 22),
            m0 - 60 * DAY
        ),
    )
    .await?;
    exec(
        store,
        "transmitter sites",
        &format!(
            "INSERT INTO transmitter_site (name, kind, village_code, frequencies, power_w, in_service, updated_at_ms, updated_by) \
             SELECT '台站' || CAST(n AS TEXT), CASE n % 40 WHEN 0 THEN 'fm' WHEN 10 THEN 'dtmb' WHEN 20 THEN 'tv' ELSE 'relay' END, code, \
             'FM 97.5 MHz, DS-23', 100, CASE WHEN n % 200 = 0 THEN 0 ELSE 1 END, {m0}, 'bench' FROM bench_village WHERE n % 10 = 0"
        ),
    )
    .await?;
    exec(store, "analyze", "ANALYZE").await?;
    Ok(())
}

async fn measure(store: &SqlStore, code: &str) -> anyhow::Result<()> {
    let scope = RegionCode::parse(code)?;
    reset_peak();
    let base = crate::bench::peak_rss_mib();
    let t = Instant::now();
    let r = cuncun_store::report::monthly_report(store, &scope, month(), month().end_ms() + DAY).await?;
    let secs = t.elapsed().as_secs_f64();
    let e = |id: &str| r.evaluation(id).and_then(|e| e.value).map(|v| format!("{v:.2}%")).unwrap_or_else(|| "-".into());
    println!(
        "bench report backend={:?} region={code} ({}) households={} terminals={} tickets={} online={} closure_24h={} hamlets={} sites={} messages={} time={secs:.1}s peak_rss={:.0}MiB (before: {base:.0}MiB)",
        store.backend(),
        r.region.level.key(),
        r.basis.coverage.households,
        r.terminals.total,
        r.basis.service.tickets,
        e("online_rate"),
        e("closure_24h"),
        e("hamlet_coverage"),
        r.sites.transmitters,
        r.broadcasts.messages.iter().map(|m| m.2).sum::<i64>(),
        crate::bench::peak_rss_mib()
    );
    Ok(())
}

pub async fn run(a: ReportBenchArgs) -> anyhow::Result<()> {
    let base = a.database_url.clone().unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("cuncun-bench-report-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        format!("sqlite://{}/report.db", dir.display())
    });
    let (url, scratch) = if a.reuse {
        (base.clone(), None)
    } else if base.starts_with("postgres") {
        let name = format!("cuncun_bench_report_{}", std::process::id());
        let admin = SqlStore::connect(&base).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(admin.pool()).await?;
        admin.pool().close().await;
        let i = base.rfind('/').filter(|i| *i > "postgres://".len()).ok_or_else(|| anyhow::anyhow!("--database-url must end in /DATABASE"))?;
        (format!("{}/{name}", &base[..i]), Some(name))
    } else {
        (base.clone(), None)
    };
    let result = async {
        let store = SqlStore::connect(&url).await?;
        store.migrate().await?;
        let generated = store.region(&RegionCode::parse("51")?).await?.is_some();
        if a.reuse {
            anyhow::ensure!(generated, "--reuse: {} holds no generated province", cuncun_store::redact_url(&url));
        } else {
            anyhow::ensure!(!generated, "the benchmark database {} is not empty", cuncun_store::redact_url(&url));
            eprintln!("generating {} households, {} terminals ({:?})", a.households, a.terminals, store.backend());
            let t = Instant::now();
            generate(&store, &a).await?;
            println!("bench report generate backend={:?} households={} terminals={} time={:.0}s", store.backend(), a.households, a.terminals, t.elapsed().as_secs_f64());
        }
        store.pool().close().await;
        // A fresh connection pool, so that the report's memory is measured without the
        // generator's caches.
        let store = SqlStore::connect(&url).await?;
        for code in ["510000000000", "510100000000", "510101000000"] {
            measure(&store, code).await?;
        }
        store.pool().close().await;
        Ok(())
    }
    .await;
    if !a.keep && !a.reuse {
        if let Some(name) = scratch {
            let admin = SqlStore::connect(&base).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(admin.pool()).await?;
        } else if let Some(path) = url.strip_prefix("sqlite://")
            && a.database_url.is_none()
        {
            // Our own temporary directory.
            let _ = std::fs::remove_dir_all(std::path::Path::new(path).parent().unwrap_or(std::path::Path::new(path)));
        }
    }
    result
}
