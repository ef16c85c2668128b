//! The SQL implementation of [`ReportStore`]: set-wise counts over a region code range, the same
//! statements on both backends.

use crate::report::*;
use crate::service_stats::MODE_COLUMNS;
use crate::service::{NewTicket, ServiceStore};
use crate::*;
use cuncun_domain::indicators::{CheckStatus, CoverageCounts, HAMLET_MIN_HOUSEHOLDS, NineHaves, VILLAGE_MIN_TERMINALS};
use cuncun_domain::service::{TicketCategory, TicketKind, TicketSource};
use cuncun_domain::time::{self, day_of, day_start};
use futures::TryStreamExt;
use sqlx::Row;
use std::collections::BTreeMap;

const TERMINAL_KINDS: &str =
    "('outdoor_loudspeaker','column_speaker','in_home_receiver','set_top_box','building_pa')";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored {what} is invalid: {e}"))
}

fn sum(expr: &str) -> String {
    format!("CAST(COALESCE(SUM({expr}), 0) AS BIGINT)")
}

fn when(cond: &str) -> String {
    sum(&format!("CASE WHEN {cond} THEN 1 ELSE 0 END"))
}

fn check_digits(digits: usize) -> Result<usize> {
    match digits {
        2 | 4 | 6 | 9 | 12 => Ok(digits),
        _ => Err(StoreError::Invalid(format!("group digits must be 2, 4, 6, 9 or 12, got {digits}"))),
    }
}

/// The first `digits` digits of the code in column 0. Counts are grouped by whole code (which
/// SQLite reads in index order, without sorting millions of rows) and summed per prefix here.
fn prefix(r: &sqlx::any::AnyRow, digits: usize) -> Result<String> {
    let code: String = r.try_get(0)?;
    Ok(code.chars().take(digits).collect())
}

/// Terminals in service per region code of the scope (a derived table).
fn terminals_per_region() -> String {
    format!(
        "(SELECT region_code, COUNT(*) AS n FROM eb_resource WHERE region_code BETWEEN $1 AND $2 \
         AND retired_at_ms IS NULL AND kind IN {TERMINAL_KINDS} GROUP BY region_code)"
    )
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn coverage_grouped(&self, scope: &RegionCode, digits: usize) -> Result<BTreeMap<String, CoverageCounts>> {
        let digits = check_digits(digits)?;
        let (lo, hi) = scope.subtree_bounds();
        let mut acc: BTreeMap<String, CoverageCounts> = BTreeMap::new();
        // Household coverage from the running counts per village (migration 0007): a province is
        // tens of thousands of rows, not ten million households.
        let hh = sqlx::query(&format!(
            "SELECT s.region_code, s.households, s.population, {modes}, s.receiving, s.receiving_population, \
             CASE WHEN t.n > 0 THEN s.population ELSE s.receiving_population END, s.fibre, s.cable_fibre, s.hd \
             FROM household_stats s LEFT JOIN {tpr} t ON t.region_code = s.region_code \
             WHERE s.digits = 12 AND s.region_code BETWEEN $1 AND $2",
            modes = MODE_COLUMNS.map(|c| format!("s.{c}")).join(", "),
            tpr = terminals_per_region(),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        for r in &hh {
            let c = acc.entry(prefix(r, digits)?).or_default();
            c.households += r.try_get::<i64, _>(1)?;
            c.population += r.try_get::<i64, _>(2)?;
            for i in 0..5 {
                c.by_mode[i] += r.try_get::<i64, _>(3 + i)?;
            }
            c.receiving += r.try_get::<i64, _>(8)?;
            c.receiving_population += r.try_get::<i64, _>(9)?;
            c.radio_population += r.try_get::<i64, _>(10)?;
            c.fibre += r.try_get::<i64, _>(11)?;
            c.cable_fibre += r.try_get::<i64, _>(12)?;
            c.hd += r.try_get::<i64, _>(13)?;
        }
        let villages = sqlx::query(&format!(
            "SELECT v.code, COUNT(*), {cable}, {two} FROM region v \
             LEFT JOIN household_stats c ON c.digits = 12 AND c.region_code = v.code \
             LEFT JOIN {tpr} t ON t.region_code = v.code \
             WHERE v.level = 5 AND v.code BETWEEN $1 AND $2 GROUP BY v.code",
            cable = when("c.mode_cable > 0"),
            two = when(&format!("t.n >= {VILLAGE_MIN_TERMINALS}")),
            tpr = terminals_per_region(),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        for r in &villages {
            let c = acc.entry(prefix(r, digits)?).or_default();
            c.villages += r.try_get::<i64, _>(1)?;
            c.cable_villages += r.try_get::<i64, _>(2)?;
            c.villages_two_terminals += r.try_get::<i64, _>(3)?;
        }
        let hamlets = sqlx::query(&format!(
            "SELECT h.village_code, {big}, {covered} FROM hamlet h \
             WHERE h.village_code BETWEEN $1 AND $2 GROUP BY h.village_code",
            big = when(&format!("h.households >= {HAMLET_MIN_HOUSEHOLDS}")),
            covered = when(&format!("h.households >= {HAMLET_MIN_HOUSEHOLDS} AND EXISTS ({})", serves_hamlet())),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        for r in &hamlets {
            let c = acc.entry(prefix(r, digits)?).or_default();
            c.big_hamlets += r.try_get::<i64, _>(1)?;
            c.big_hamlets_covered += r.try_get::<i64, _>(2)?;
        }
        let terms = sqlx::query(&format!(
            "SELECT region_code, COUNT(*) FROM eb_resource WHERE region_code BETWEEN $1 AND $2 \
             AND retired_at_ms IS NULL AND kind IN {TERMINAL_KINDS} GROUP BY region_code"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        for r in &terms {
            acc.entry(prefix(r, digits)?).or_default().terminals += r.try_get::<i64, _>(1)?;
        }
        Ok(acc)
    }

    async fn village_coverage(&self, scope: &RegionCode) -> Result<Vec<VillageCoverage>> {
        let mut counts = self.coverage_grouped(scope, 12).await?;
        let mut sites = self.sites_grouped(scope, 12).await?;
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query("SELECT code, name FROM region WHERE level = 5 AND code BETWEEN $1 AND $2 ORDER BY code")
            .bind(lo.as_str())
            .bind(hi.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                let c: String = r.try_get(0)?;
                Ok(VillageCoverage {
                    code: RegionCode::parse(&c).map_err(|e| bad("village code", e))?,
                    name: r.try_get(1)?,
                    counts: counts.remove(&c).unwrap_or_default(),
                    sites: sites.remove(&c).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn hamlet_coverage(&self, scope: &RegionCode) -> Result<Vec<HamletCoverage>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!(
            "SELECT h.id, h.village_code, h.name, h.households, h.population, \
             (SELECT COUNT(*) FROM eb_resource r WHERE {cond}), \
             (SELECT COUNT(*) FROM transmitter_site t WHERE t.hamlet_id = h.id AND t.in_service <> 0) FROM hamlet h \
             WHERE h.village_code BETWEEN $1 AND $2 ORDER BY h.village_code, h.name",
            cond = serves_hamlet_cond(),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let v: String = r.try_get(1)?;
                Ok(HamletCoverage {
                    id: r.try_get(0)?,
                    village_code: RegionCode::parse(&v).map_err(|e| bad("hamlet village", e))?,
                    name: r.try_get(2)?,
                    households: r.try_get(3)?,
                    population: r.try_get(4)?,
                    terminals: r.try_get(5)?,
                    transmitters: r.try_get(6)?,
                })
            })
            .collect()
    }

    async fn terminal_hamlets(&self, scope: &RegionCode, limit: i64) -> Result<Vec<TerminalHamlet>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!(
            "SELECT id, ebrid, name, kind, region_code, hamlet_id FROM eb_resource WHERE region_code BETWEEN $1 AND $2 \
             AND retired_at_ms IS NULL AND kind IN {TERMINAL_KINDS} ORDER BY region_code, kind, id LIMIT $3"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TerminalHamlet {
                    id: r.try_get(0)?,
                    ebrid: r.try_get(1)?,
                    name: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    village_code: r.try_get(4)?,
                    hamlet_id: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn assign_terminal_hamlets(&self, pairs: &[(i64, i64)], source: &str, actor: &Actor) -> Result<u64> {
        let mut w = self.begin_write().await?;
        for (resource, hamlet) in pairs {
            let n = sqlx::query(
                "UPDATE eb_resource SET hamlet_id = $1 WHERE id = $2 \
                 AND region_code = (SELECT village_code FROM hamlet WHERE id = $1)",
            )
            .bind(*hamlet)
            .bind(*resource)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Invalid(format!("hamlet_id: hamlet {hamlet} does not lie in the village of terminal {resource} (or either does not exist)")));
            }
        }
        let after = serde_json::json!({ "source": source, "terminals": pairs.len() }).to_string();
        self.append_audit(&mut w.tx, actor, "terminal.hamlet.import", "eb_resource", source, "", &after).await?;
        w.tx.commit().await?;
        Ok(pairs.len() as u64)
    }

    async fn set_terminal_hamlet(&self, resource_id: i64, hamlet_id: Option<i64>, actor: &Actor) -> Result<()> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query("SELECT ebrid, region_code, hamlet_id FROM eb_resource WHERE id = $1")
            .bind(resource_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("terminal {resource_id}")))?;
        let ebrid: String = row.try_get(0)?;
        let region: String = row.try_get(1)?;
        let before: Option<i64> = row.try_get(2)?;
        if let Some(h) = hamlet_id {
            hamlet_in_village(&mut w.tx, h, &region, "the terminal").await?;
        }
        sqlx::query("UPDATE eb_resource SET hamlet_id = $1 WHERE id = $2")
            .bind(hamlet_id)
            .bind(resource_id)
            .execute(&mut *w.tx)
            .await?;
        let show = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "terminal.hamlet", "eb_resource", &ebrid, &show(before), &show(hamlet_id))
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn online_summary(&self, scope: &RegionCode, from_ms: i64, to_ms: i64, now_ms: i64, group_digits: usize, per_terminal: bool) -> Result<OnlineSummary> {
        let digits = check_digits(group_digits)?;
        let (lo, hi) = scope.subtree_bounds();
        let first = day_of(from_ms);
        let last = day_of(to_ms - 1);
        if last < first || last - first > 400 {
            return Err(StoreError::Invalid(format!("period: {from_ms}..{to_ms} must cover 1 to 400 days")));
        }
        let n_days = (last - first + 1) as usize;
        let mut out = OnlineSummary {
            days: (0..n_days).map(|i| (day_start(first + i as i64), 0, 0)).collect(),
            ..Default::default()
        };
        let (p_from, p_to) = (day_start(first), day_start(last + 1));
        // Streamed, terminal by terminal, so memory stays at one terminal's connections. The
        // order follows the indexes (region, kind, id; then from_ms), so SQLite needs no sort.
        let sql = format!(
            "SELECT r.id, r.ebrid, r.name, r.region_code, r.created_at_ms, r.retired_at_ms, o.from_ms, o.to_ms \
             FROM eb_resource r LEFT JOIN terminal_online o ON o.resource_id = r.id \
             AND o.from_ms < $4 AND (o.to_ms IS NULL OR o.to_ms > $3) \
             WHERE r.region_code BETWEEN $1 AND $2 AND r.kind IN {TERMINAL_KINDS} AND r.created_at_ms < $4 \
             AND (r.retired_at_ms IS NULL OR r.retired_at_ms > $3) ORDER BY r.region_code, r.kind, r.id, o.from_ms"
        );
        let mut rows = sqlx::query(&sql)
            .bind(lo.as_str())
            .bind(hi.as_str())
            .bind(p_from)
            .bind(p_to)
            .fetch(self.pool());
        struct Cur {
            id: i64,
            ebrid: String,
            name: String,
            region: String,
            created: i64,
            retired: Option<i64>,
            iv: Vec<cuncun_domain::online::Interval>,
        }
        let mut cur: Option<Cur> = None;
        let finish = |c: Cur, out: &mut OnlineSummary| {
            let (mut on_t, mut exp_t) = (0, 0);
            for (i, d) in out.days.iter_mut().enumerate() {
                let s = day_start(first + i as i64);
                let (on, exp) = cuncun_domain::online::terminal_day(&c.iv, c.created, c.retired, s, s + 86_400_000, now_ms, ONLINE_GRACE_MS);
                d.1 += on;
                d.2 += exp;
                on_t += on;
                exp_t += exp;
            }
            let key: String = c.region.chars().take(digits).collect();
            let g = out.by_group.entry(key).or_insert((0, 0));
            g.0 += on_t;
            g.1 += exp_t;
            out.online_ms += on_t;
            out.expected_ms += exp_t;
            if per_terminal {
                out.terminals.push(TerminalOnline { ebrid: c.ebrid, name: c.name, region_code: c.region, online_ms: on_t, expected_ms: exp_t });
            }
        };
        while let Some(r) = rows.try_next().await? {
            let id: i64 = r.try_get(0)?;
            if cur.as_ref().is_none_or(|c| c.id != id) {
                if let Some(c) = cur.take() {
                    finish(c, &mut out);
                }
                cur = Some(Cur {
                    id,
                    ebrid: r.try_get(1)?,
                    name: r.try_get(2)?,
                    region: r.try_get(3)?,
                    created: r.try_get(4)?,
                    retired: r.try_get(5)?,
                    iv: Vec::new(),
                });
            }
            let from: Option<i64> = r.try_get(6)?;
            if let (Some(f), Some(c)) = (from, cur.as_mut()) {
                c.iv.push((f, r.try_get(7)?));
            }
        }
        if let Some(c) = cur.take() {
            finish(c, &mut out);
        }
        Ok(out)
    }

    async fn terminal_counts(&self, scope: &RegionCode) -> Result<TerminalCounts> {
        let (lo, hi) = scope.subtree_bounds();
        let r = sqlx::query(&format!(
            "SELECT COUNT(*), {online}, {faulty} FROM eb_resource r LEFT JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.region_code BETWEEN $1 AND $2 AND r.retired_at_ms IS NULL AND r.kind IN {TERMINAL_KINDS}",
            online = when("s.online <> 0"),
            faulty = when("s.faults <> ''"),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(TerminalCounts { total: r.try_get(0)?, online: r.try_get(1)?, faulty: r.try_get(2)? })
    }

    async fn broadcast_counts(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<BroadcastCounts> {
        let (lo, hi) = scope.subtree_bounds();
        // Messages: distinct, by where they were aimed (docs/INDICATORS.md). A month holds few
        // messages, so their areas are read and matched here.
        let msgs = sqlx::query(
            "SELECT id, priority, drill, areas FROM eb_message \
             WHERE approved_at_ms >= $1 AND approved_at_ms < $2 AND msg_type = 'broadcast'",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let named: std::collections::HashSet<i64> = sqlx::query(
            "SELECT DISTINCT t.message_id FROM eb_message_terminal t JOIN eb_message m ON m.id = t.message_id \
             JOIN eb_resource r ON r.id = t.resource_id WHERE r.region_code BETWEEN $1 AND $2 \
             AND m.approved_at_ms >= $3 AND m.approved_at_ms < $4",
        )
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        let mut by: BTreeMap<(String, bool), i64> = BTreeMap::new();
        for r in &msgs {
            let id: i64 = r.try_get(0)?;
            let areas: String = r.try_get(3)?;
            if named.contains(&id) || message_reaches(&areas, scope) {
                *by.entry((r.try_get(1)?, r.try_get::<i64, _>(2)? != 0)).or_insert(0) += 1;
            }
        }
        let deliveries = sqlx::query(&format!(
            "SELECT m.priority, m.drill, COUNT(*), {received}, {played} FROM eb_delivery d JOIN eb_message m ON m.id = d.message_id \
             JOIN eb_resource r ON r.id = d.resource_id WHERE r.region_code BETWEEN $1 AND $2 \
             AND m.approved_at_ms >= $3 AND m.approved_at_ms < $4 GROUP BY m.priority, m.drill ORDER BY m.priority, m.drill",
            received = when("d.stage BETWEEN 1 AND 3"),
            played = when("d.stage BETWEEN 2 AND 3"),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(BroadcastCounts {
            messages: by.into_iter().map(|((p, d), n)| (p, d, n)).collect(),
            deliveries: deliveries
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get::<i64, _>(1)? != 0, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)))
                .collect::<Result<_>>()?,
        })
    }

    async fn tickets_per_day(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>> {
        let (lo, hi) = scope.subtree_bounds();
        // Integer division on both backends: Beijing day number.
        let day = time::day_sql("created_at_ms");
        let sql = format!(
            "SELECT {day} AS d, COUNT(*) FROM ticket \
             WHERE village_code BETWEEN $1 AND $2 AND created_at_ms >= $3 AND created_at_ms < $4 \
             AND status <> 'cancelled' AND created_at_ms >= 0 GROUP BY {day} ORDER BY d"
        );
        let rows = sqlx::query(&sql)
            .bind(lo.as_str())
            .bind(hi.as_str())
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn visits_between(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<i64> {
        let (lo, hi) = scope.subtree_bounds();
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM care_visit WHERE village_code BETWEEN $1 AND $2 AND visited_at_ms >= $3 AND visited_at_ms < $4",
        )
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_one(self.pool())
        .await?
        .try_get(0)?)
    }

    async fn incomplete_households(&self, scope: &RegionCode, limit: i64) -> Result<Vec<IncompleteHousehold>> {
        let (lo, hi) = scope.subtree_bounds();
        // Exactly the households the completeness indicator does not count (one condition, kept
        // with the running counts); report_conformance checks the two agree.
        let rows = sqlx::query(&format!(
            "SELECT id, village_code, COALESCE(hamlet, ''), head_name, phone, address, coverage_modes FROM household \
             WHERE village_code BETWEEN $1 AND $2 AND ({}) = 0 ORDER BY village_code, id LIMIT $3",
            crate::service_stats::COMPLETE_SQL
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let v: String = r.try_get(1)?;
                let fields: [String; 5] = [r.try_get(3)?, r.try_get(4)?, r.try_get(5)?, r.try_get(2)?, r.try_get(6)?];
                // In the order of COMPLETENESS_FIELDS: head_name, phone, address, hamlet, reception.
                let missing = cuncun_domain::service::COMPLETENESS_FIELDS
                    .iter()
                    .zip(&fields)
                    .filter(|(_, v)| v.trim().is_empty())
                    .map(|(k, _)| *k)
                    .collect();
                let [head_name, phone, address, hamlet, _] = fields;
                Ok(IncompleteHousehold {
                    id: r.try_get(0)?,
                    village_code: RegionCode::parse(&v).map_err(|e| bad("household village", e))?,
                    hamlet,
                    head_name,
                    phone,
                    address,
                    missing,
                })
            })
            .collect()
    }

    async fn sites_grouped(&self, scope: &RegionCode, digits: usize) -> Result<BTreeMap<String, SiteCounts>> {
        let digits = check_digits(digits)?;
        let (lo, hi) = scope.subtree_bounds();
        let mut acc: BTreeMap<String, SiteCounts> = BTreeMap::new();
        let rows = sqlx::query(&format!(
            "SELECT village_code, COUNT(*), {live}, 0, 0 FROM transmitter_site WHERE village_code BETWEEN $1 AND $2 \
             GROUP BY village_code UNION ALL \
             SELECT region_code, 0, 0, {fe}, {ad} FROM eb_resource WHERE region_code BETWEEN $1 AND $2 \
             AND retired_at_ms IS NULL AND kind IN ('front_end', 'adapter') GROUP BY region_code",
            live = when("in_service <> 0"),
            fe = when("kind = 'front_end'"),
            ad = when("kind = 'adapter'"),
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let c = acc.entry(prefix(r, digits)?).or_default();
            c.add(&SiteCounts {
                transmitters: r.try_get(1)?,
                transmitters_in_service: r.try_get(2)?,
                front_ends: r.try_get(3)?,
                adapters: r.try_get(4)?,
            });
        }
        Ok(acc)
    }

    async fn transmitter_sites(&self, scope: &RegionCode) -> Result<Vec<TransmitterSite>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!("{SITE_SELECT} WHERE t.village_code BETWEEN $1 AND $2 ORDER BY t.village_code, t.name"))
            .bind(lo.as_str())
            .bind(hi.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(site_of).collect()
    }

    async fn transmitter_site(&self, id: i64) -> Result<Option<TransmitterSite>> {
        sqlx::query(&format!("{SITE_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(self.pool()).await?.as_ref().map(site_of).transpose()
    }

    async fn add_transmitter_site(&self, s: &NewTransmitterSite, actor: &Actor) -> Result<TransmitterSite> {
        self.write_site(None, s, actor).await
    }

    async fn update_transmitter_site(&self, id: i64, s: &NewTransmitterSite, actor: &Actor) -> Result<TransmitterSite> {
        self.write_site(Some(id), s, actor).await
    }

    async fn targets_for(&self, region: &RegionCode) -> Result<Vec<TargetRow>> {
        let mut codes: Vec<String> = region.ancestors().iter().map(|c| c.as_str().to_string()).collect();
        codes.push(region.as_str().to_string());
        let mut out = Vec::new();
        for c in codes {
            let rows = sqlx::query(
                "SELECT region_code, indicator, target, updated_at_ms, updated_by FROM indicator_target \
                 WHERE region_code = $1 ORDER BY indicator",
            )
            .bind(c.as_str())
            .fetch_all(self.pool())
            .await?;
            for r in rows {
                let code: String = r.try_get(0)?;
                out.push(TargetRow {
                    region_code: RegionCode::parse(&code).map_err(|e| bad("target region", e))?,
                    indicator: r.try_get(1)?,
                    target: r.try_get(2)?,
                    updated_at_ms: r.try_get(3)?,
                    updated_by: r.try_get(4)?,
                });
            }
        }
        Ok(out)
    }

    async fn set_target(&self, region: &RegionCode, indicator: &str, target: Option<f64>, actor: &Actor) -> Result<()> {
        if let Some(t) = target {
            cuncun_domain::indicators::check_target(indicator, t).map_err(StoreError::Invalid)?;
        } else if cuncun_domain::indicators::find(indicator).is_none() {
            return Err(StoreError::Invalid(format!("unknown indicator {indicator:?}")));
        }
        let mut w = self.begin_write().await?;
        let before: Option<f64> = sqlx::query("SELECT target FROM indicator_target WHERE region_code = $1 AND indicator = $2")
            .bind(region.as_str())
            .bind(indicator)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        match target {
            Some(t) => {
                sqlx::query(
                    "INSERT INTO indicator_target (region_code, indicator, target, updated_at_ms, updated_by) VALUES ($1,$2,$3,$4,$5) \
                     ON CONFLICT (region_code, indicator) DO UPDATE SET target = excluded.target, \
                     updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by",
                )
                .bind(region.as_str())
                .bind(indicator)
                .bind(t)
                .bind(now_ms())
                .bind(actor.0.as_str())
                .execute(&mut *w.tx)
                .await
                .map_err(|e| crate::sql::conflict_or(e, || format!("region {region}")))?;
            }
            None => {
                sqlx::query("DELETE FROM indicator_target WHERE region_code = $1 AND indicator = $2")
                    .bind(region.as_str())
                    .bind(indicator)
                    .execute(&mut *w.tx)
                    .await?;
            }
        }
        let show = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "target.set", "indicator_target", &format!("{region}/{indicator}"), &show(before), &show(target))
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn county_checklist(&self, region: &RegionCode) -> Result<Vec<CountyCheck>> {
        let rows = sqlx::query(
            "SELECT item, status, evidence, file_name, updated_at_ms, updated_by FROM county_check WHERE region_code = $1",
        )
        .bind(region.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut stored: BTreeMap<String, CountyCheck> = BTreeMap::new();
        for r in rows {
            let item: String = r.try_get(0)?;
            let status: String = r.try_get(1)?;
            stored.insert(
                item.clone(),
                CountyCheck {
                    region_code: region.clone(),
                    item: NineHaves::parse(&item).ok_or_else(|| bad("checklist item", &item))?,
                    status: CheckStatus::parse(&status).ok_or_else(|| bad("checklist status", &status))?,
                    evidence: r.try_get(2)?,
                    file_name: r.try_get(3)?,
                    updated_at_ms: r.try_get(4)?,
                    updated_by: r.try_get(5)?,
                },
            );
        }
        Ok(NineHaves::ALL
            .iter()
            .map(|i| {
                stored.remove(i.key()).unwrap_or(CountyCheck {
                    region_code: region.clone(),
                    item: *i,
                    status: CheckStatus::Missing,
                    evidence: String::new(),
                    file_name: None,
                    updated_at_ms: 0,
                    updated_by: String::new(),
                })
            })
            .collect())
    }

    async fn set_county_check(&self, region: &RegionCode, item: NineHaves, status: CheckStatus, evidence: &str, file: Option<&EvidenceFile>, actor: &Actor) -> Result<()> {
        if status == CheckStatus::Done && evidence.trim().is_empty() && file.is_none() {
            return Err(StoreError::Invalid(format!("{}: evidence is required to mark it done", item.key())));
        }
        let mut w = self.begin_write().await?;
        let before: Option<String> = sqlx::query("SELECT status FROM county_check WHERE region_code = $1 AND item = $2")
            .bind(region.as_str())
            .bind(item.key())
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        sqlx::query(
            "INSERT INTO county_check (region_code, item, status, evidence, file_name, file_type, file_bytes, updated_at_ms, updated_by) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT (region_code, item) DO UPDATE SET status = excluded.status, \
             evidence = excluded.evidence, file_name = COALESCE(excluded.file_name, county_check.file_name), \
             file_type = COALESCE(excluded.file_type, county_check.file_type), \
             file_bytes = COALESCE(excluded.file_bytes, county_check.file_bytes), \
             updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by",
        )
        .bind(region.as_str())
        .bind(item.key())
        .bind(status.key())
        .bind(evidence.trim())
        .bind(file.map(|f| f.name.clone()))
        .bind(file.map(|f| f.content_type.clone()))
        .bind(file.map(|f| f.bytes.clone()))
        .bind(now_ms())
        .bind(actor.0.as_str())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| crate::sql::conflict_or(e, || format!("region {region}")))?;
        let after = match file {
            Some(f) => format!("{} ({}, {} bytes)", status.key(), f.name, f.bytes.len()),
            None => status.key().to_string(),
        };
        self.append_audit(&mut w.tx, actor, "county_check.set", "county_check", &format!("{region}/{}", item.key()), before.as_deref().unwrap_or(""), &after)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn county_check_file(&self, region: &RegionCode, item: NineHaves) -> Result<Option<EvidenceFile>> {
        let row = sqlx::query("SELECT file_name, file_type, file_bytes FROM county_check WHERE region_code = $1 AND item = $2 AND file_bytes IS NOT NULL")
            .bind(region.as_str())
            .bind(item.key())
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(EvidenceFile {
                name: r.try_get::<Option<String>, _>(0)?.unwrap_or_default(),
                content_type: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                bytes: r.try_get(2)?,
            })
        })
        .transpose()
    }

    async fn open_outage_tickets(&self, now_ms: i64, after_ms: i64) -> Result<Vec<OutageTicket>> {
        // Fault episodes: remember when a terminal was first seen reporting faults, forget it
        // when the faults clear (the next fault is a new episode).
        {
            let mut w = self.begin_write().await?;
            sqlx::query(
                "DELETE FROM terminal_fault_watch WHERE resource_id IN \
                 (SELECT resource_id FROM terminal_status WHERE faults = '')",
            )
            .execute(&mut *w.tx)
            .await?;
            sqlx::query(
                "INSERT INTO terminal_fault_watch (resource_id, since_ms) SELECT s.resource_id, $1 FROM terminal_status s \
                 WHERE s.faults <> '' AND NOT EXISTS (SELECT 1 FROM terminal_fault_watch w WHERE w.resource_id = s.resource_id)",
            )
            .bind(now_ms)
            .execute(&mut *w.tx)
            .await?;
            w.tx.commit().await?;
        }
        let due = now_ms - after_ms;
        let rows = sqlx::query(&format!(
            "SELECT r.id, r.ebrid, r.name, r.region_code, 'offline', s.changed_ms FROM eb_resource r \
             JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.retired_at_ms IS NULL AND r.kind IN {TERMINAL_KINDS} AND s.online = 0 AND s.changed_ms <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outage_ticket o WHERE o.resource_id = r.id AND o.kind = 'offline' AND o.episode_ms = s.changed_ms) \
             UNION ALL \
             SELECT r.id, r.ebrid, r.name, r.region_code, 'fault', w.since_ms FROM eb_resource r \
             JOIN terminal_fault_watch w ON w.resource_id = r.id JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.retired_at_ms IS NULL AND r.kind IN {TERMINAL_KINDS} AND w.since_ms <= $1 \
             AND NOT EXISTS (SELECT 1 FROM outage_ticket o WHERE o.resource_id = r.id AND o.kind = 'fault' AND o.episode_ms = w.since_ms)"
        ))
        .bind(due)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let ebrid: String = r.try_get(1)?;
            let name: String = r.try_get(2)?;
            let region: String = r.try_get(3)?;
            let kind: String = r.try_get(4)?;
            let episode: i64 = r.try_get(5)?;
            let Ok(village) = RegionCode::parse(&region) else { continue };
            if village.level() != cuncun_domain::RegionLevel::Village {
                // Tickets belong to villages; township and county devices are the operator's.
                continue;
            }
            let hours = (now_ms - episode) / 3_600_000;
            let what = if kind == "offline" { format!("离线已{hours}小时") } else { format!("报告故障已{hours}小时") };
            let t = NewTicket {
                kind: TicketKind::Repair,
                source: TicketSource::Terminal,
                category: TicketCategory::EbTerminal,
                village_code: village,
                household_id: None,
                reporter_name: "平台自动报修".into(),
                reporter_phone: String::new(),
                address: name.clone(),
                description: format!("应急广播终端 {name}（{ebrid}）{what}，请上门检修。"),
                terminal_ebrid: Some(ebrid.clone()),
                dedupe_key: Some(format!("terminal:{ebrid}")),
                confirm_token_hash: None,
                requested_at_ms: None,
            };
            let created = self.create_ticket(&t, &Actor::system()).await?;
            let mut w = self.begin_write().await?;
            sqlx::query(
                "INSERT INTO outage_ticket (resource_id, episode_ms, kind, ticket_id, opened_at_ms) VALUES ($1,$2,$3,$4,$5) \
                 ON CONFLICT (resource_id, episode_ms, kind) DO NOTHING",
            )
            .bind(id)
            .bind(episode)
            .bind(kind.as_str())
            .bind(created.ticket.id)
            .bind(now_ms)
            .execute(&mut *w.tx)
            .await?;
            w.tx.commit().await?;
            out.push(OutageTicket { ebrid, kind, episode_ms: episode, ticket_id: created.ticket.id, created: created.created });
        }
        Ok(out)
    }
}

/// The condition "terminal r serves hamlet h": in service, in the hamlet's village, assigned to
/// it, or unassigned and named after it (in-home receivers carry the household's address).
fn serves_hamlet_cond() -> String {
    format!(
        "r.region_code = h.village_code AND r.retired_at_ms IS NULL AND r.kind IN {TERMINAL_KINDS} \
         AND (r.hamlet_id = h.id OR (r.hamlet_id IS NULL AND r.name LIKE '%' || h.name || '%'))"
    )
}

fn serves_hamlet() -> String {
    format!("SELECT 1 FROM eb_resource r WHERE {}", serves_hamlet_cond())
}

/// Whether a message aimed at `areas` (comma-separated region codes) reaches `scope`: an area
/// inside the scope, or one containing it.
fn message_reaches(areas: &str, scope: &RegionCode) -> bool {
    areas
        .split(',')
        .filter_map(|a| RegionCode::parse(a.trim()).ok())
        .any(|a| scope.contains(&a) || a.contains(scope))
}

const SITE_SELECT: &str = "SELECT t.id, t.name, t.kind, t.village_code, t.hamlet_id, t.lon, t.lat, t.frequencies, t.power_w, \
    t.in_service, t.updated_at_ms, t.updated_by, h.name FROM transmitter_site t LEFT JOIN hamlet h ON h.id = t.hamlet_id";

fn site_of(r: &sqlx::any::AnyRow) -> Result<TransmitterSite> {
    let kind: String = r.try_get(2)?;
    let v: String = r.try_get(3)?;
    Ok(TransmitterSite {
        id: r.try_get(0)?,
        site: NewTransmitterSite {
            name: r.try_get(1)?,
            kind: TransmitterKind::parse(&kind).ok_or_else(|| bad("transmitter kind", &kind))?,
            village_code: RegionCode::parse(&v).map_err(|e| bad("transmitter village", e))?,
            hamlet_id: r.try_get(4)?,
            lon: r.try_get(5)?,
            lat: r.try_get(6)?,
            frequencies: r.try_get(7)?,
            power_w: r.try_get(8)?,
            in_service: r.try_get::<i64, _>(9)? != 0,
        },
        updated_at_ms: r.try_get(10)?,
        updated_by: r.try_get(11)?,
        hamlet: r.try_get(12)?,
    })
}

/// A site as JSON for the audit log.
fn site_line(s: &NewTransmitterSite) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl SqlStore {
    /// Adds (id None) or replaces a transmitter site, with its audit entry, in one transaction.
    async fn write_site(&self, id: Option<i64>, s: &NewTransmitterSite, actor: &Actor) -> Result<TransmitterSite> {
        check_site(s).map_err(crate::StoreError::Invalid)?;
        let mut w = self.begin_write().await?;
        let exists: Option<i64> = sqlx::query("SELECT level FROM region WHERE code = $1")
            .bind(s.village_code.as_str())
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!("village {}", s.village_code)));
        }
        if let Some(h) = s.hamlet_id {
            hamlet_in_village(&mut w.tx, h, s.village_code.as_str(), "the site").await?;
        }
        let before = match id {
            Some(id) => {
                let row = sqlx::query(&format!("{SITE_SELECT} WHERE t.id = $1"))
                    .bind(id)
                    .fetch_optional(&mut *w.tx)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("transmitter site {id}")))?;
                site_line(&site_of(&row)?.site)
            }
            None => String::new(),
        };
        let (sql, action) = match id {
            None => (
                "INSERT INTO transmitter_site (name, kind, village_code, hamlet_id, lon, lat, frequencies, power_w, in_service, updated_at_ms, updated_by) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
                "transmitter.add",
            ),
            Some(_) => (
                "UPDATE transmitter_site SET name = $1, kind = $2, village_code = $3, hamlet_id = $4, lon = $5, lat = $6, \
                 frequencies = $7, power_w = $8, in_service = $9, updated_at_ms = $10, updated_by = $11 WHERE id = $12 RETURNING id",
                "transmitter.update",
            ),
        };
        let mut q = sqlx::query(sql)
            .bind(s.name.trim())
            .bind(s.kind.key())
            .bind(s.village_code.as_str())
            .bind(s.hamlet_id)
            .bind(s.lon)
            .bind(s.lat)
            .bind(s.frequencies.trim())
            .bind(s.power_w)
            .bind(i64::from(s.in_service))
            .bind(now_ms())
            .bind(actor.0.as_str());
        if let Some(id) = id {
            q = q.bind(id);
        }
        let new_id: i64 = q
            .fetch_one(&mut *w.tx)
            .await
            .map_err(|e| crate::sql::conflict_or(e, || format!("name: village {} already has a site named {:?}", s.village_code, s.name.trim())))?
            .try_get(0)?;
        self.append_audit(&mut w.tx, actor, action, "transmitter_site", &new_id.to_string(), &before, &site_line(s)).await?;
        w.tx.commit().await?;
        self.transmitter_site(new_id).await?.ok_or_else(|| StoreError::NotFound(format!("transmitter site {new_id}")))
    }
}

/// A hamlet given for something standing in `village` must exist and lie in that village.
async fn hamlet_in_village(tx: &mut sqlx::Transaction<'static, sqlx::Any>, hamlet_id: i64, village: &str, what: &str) -> Result<()> {
    let found: Option<String> = sqlx::query("SELECT village_code FROM hamlet WHERE id = $1")
        .bind(hamlet_id)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match found {
        None => Err(StoreError::NotFound(format!("hamlet {hamlet_id}"))),
        Some(v) if v != village => Err(StoreError::Invalid(format!("hamlet_id: hamlet {hamlet_id} lies in village {v}, {what} in {village}"))),
        Some(_) => Ok(()),
    }
}
