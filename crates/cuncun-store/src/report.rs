//! Coverage, indicator targets, the county "nine haves" checklist, the terminal → repair ticket
//! loop and the monthly report (docs/INDICATORS.md). Storage counts set-wise over a region
//! subtree (a code range); the formulas live in `cuncun_domain::indicators`.

use crate::{Actor, Result, Store};
use async_trait::async_trait;
use cuncun_domain::indicators::{self, Basis, CheckStatus, CoverageCounts, Evaluation, Month, NineHaves};
use cuncun_domain::time::{day_of, day_start, week_of};
use cuncun_domain::RegionCode;
use std::collections::BTreeMap;
pub use cuncun_domain::records::report::*;

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Coverage counts grouped by the first `digits` digits of the village code (2, 4, 6, 9, 12).
    async fn coverage_grouped(&self, scope: &RegionCode, digits: usize) -> Result<BTreeMap<String, CoverageCounts>>;
    /// Villages of the scope with their names and coverage, in code order.
    async fn village_coverage(&self, scope: &RegionCode) -> Result<Vec<VillageCoverage>>;
    /// Hamlets of the scope with the terminals serving them (assigned, or named after the hamlet).
    async fn hamlet_coverage(&self, scope: &RegionCode) -> Result<Vec<HamletCoverage>>;
    /// Emergency terminals in service in the scope with their assigned hamlets, in code order.
    async fn terminal_hamlets(&self, scope: &RegionCode, limit: i64) -> Result<Vec<TerminalHamlet>>;
    /// Assigns many terminals to hamlets, (resource id, hamlet id), in one transaction (all or
    /// nothing: each hamlet must lie in its terminal's village); one audit entry summarises it.
    async fn assign_terminal_hamlets(&self, pairs: &[(i64, i64)], source: &str, actor: &Actor) -> Result<u64>;
    /// Says which hamlet a terminal serves (None clears). Audited.
    async fn set_terminal_hamlet(&self, resource_id: i64, hamlet_id: Option<i64>, actor: &Actor) -> Result<()>;

    /// Online and expected time per Beijing day of [from_ms, to_ms) (whole days), grouped by
    /// the first `group_digits` digits of the terminal's region.
    async fn online_summary(&self, scope: &RegionCode, from_ms: i64, to_ms: i64, now_ms: i64, group_digits: usize, per_terminal: bool) -> Result<OnlineSummary>;
    async fn terminal_counts(&self, scope: &RegionCode) -> Result<TerminalCounts>;
    async fn broadcast_counts(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<BroadcastCounts>;
    /// Tickets (not cancelled) requested per Beijing day: (day number since 1970-01-01, count).
    async fn tickets_per_day(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<Vec<(i64, i64)>>;
    /// Care visits made in [from_ms, to_ms).
    async fn visits_between(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<i64>;
    /// Households of the scope missing a field required for data completeness, by village and
    /// id, at most `limit`.
    async fn incomplete_households(&self, scope: &RegionCode, limit: i64) -> Result<Vec<IncompleteHousehold>>;

    /// Transmitter and front-end sites grouped by the first `digits` digits of the village code.
    async fn sites_grouped(&self, scope: &RegionCode, digits: usize) -> Result<BTreeMap<String, SiteCounts>>;
    /// Transmitter sites of the scope, by village and name.
    async fn transmitter_sites(&self, scope: &RegionCode) -> Result<Vec<TransmitterSite>>;
    async fn transmitter_site(&self, id: i64) -> Result<Option<TransmitterSite>>;
    /// Registers a site. Audited (`transmitter.add`).
    async fn add_transmitter_site(&self, s: &NewTransmitterSite, actor: &Actor) -> Result<TransmitterSite>;
    /// Replaces a site's record (taking it out of service sets `in_service` false). Audited
    /// (`transmitter.update`).
    async fn update_transmitter_site(&self, id: i64, s: &NewTransmitterSite, actor: &Actor) -> Result<TransmitterSite>;

    /// Targets set on the region and its ancestors.
    async fn targets_for(&self, region: &RegionCode) -> Result<Vec<TargetRow>>;
    /// Sets (Some) or clears (None) a region's target. Audited.
    async fn set_target(&self, region: &RegionCode, indicator: &str, target: Option<f64>, actor: &Actor) -> Result<()>;

    async fn county_checklist(&self, region: &RegionCode) -> Result<Vec<CountyCheck>>;
    /// Sets an item's status and evidence text; a file, when given, replaces the stored one. Audited.
    async fn set_county_check(&self, region: &RegionCode, item: NineHaves, status: CheckStatus, evidence: &str, file: Option<&EvidenceFile>, actor: &Actor) -> Result<()>;
    async fn county_check_file(&self, region: &RegionCode, item: NineHaves) -> Result<Option<EvidenceFile>>;

    /// The repair loop: every terminal offline, or reporting faults, since at least
    /// `after_ms` before `now_ms` gets a repair ticket for its village's steward, once per
    /// outage. Returns what it opened.
    async fn open_outage_tickets(&self, now_ms: i64, after_ms: i64) -> Result<Vec<OutageTicket>>;
}


/// Every indicator of the catalogue against the target in force for the region (its own, the
/// nearest ancestor's, or the catalogue default).
pub async fn evaluate_all(store: &dyn Store, region: &RegionCode, basis: &Basis) -> Result<Vec<Evaluation>> {
    let set = store.targets_for(region).await?;
    Ok(indicators::CATALOGUE
        .iter()
        .map(|def| {
            let own: Vec<(RegionCode, f64)> =
                set.iter().filter(|t| t.indicator == def.id).map(|t| (t.region_code.clone(), t.target)).collect();
            let (target, from) = indicators::inherited_target(def, region, &own);
            indicators::evaluate(def, basis, target, &from)
        })
        .collect())
}

/// Everything behind the indicators of `scope` for a month, as one basis per child region and
/// their sum (the scope's own figures). Tickets and online time of the month; coverage now;
/// visits of the month's year (the visit indicator is yearly).
pub async fn bases(store: &dyn Store, scope: &RegionCode, month: Month, now_ms: i64) -> Result<(Basis, Vec<RegionBasis>, OnlineSummary)> {
    let digits = child_digits(scope.level());
    let (from, to) = (month.start_ms(), month.end_ms());
    let t = std::time::Instant::now();
    let coverage = store.coverage_grouped(scope, digits).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: coverage");
    let t = std::time::Instant::now();
    let service = store.service_counts(scope, from, to, month.year, true).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: service counts");
    let t = std::time::Instant::now();
    let online = store.online_summary(scope, from, to, now_ms, digits, false).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: online summary");
    let mut by: BTreeMap<String, (Basis, SiteCounts)> = BTreeMap::new();
    for (k, c) in coverage {
        by.entry(k).or_default().0.coverage = c;
    }
    for r in service {
        by.entry(r.region_code.short().to_string()).or_default().0.service = r.counts;
    }
    for (k, (on, exp)) in &online.by_group {
        let b = &mut by.entry(k.clone()).or_default().0;
        b.online_ms = *on;
        b.expected_ms = *exp;
    }
    let t = std::time::Instant::now();
    for (k, c) in store.sites_grouped(scope, digits).await? {
        by.entry(k).or_default().1 = c;
    }
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: sites");
    let names: BTreeMap<String, String> = store
        .children(scope)
        .await?
        .into_iter()
        .map(|r| (r.region.code.short().to_string(), r.region.name))
        .collect();
    let mut total = Basis::default();
    let mut children = Vec::new();
    for (k, (b, sites)) in by {
        total.add(&b);
        let code = RegionCode::parse(&k).map_err(|e| crate::StoreError::Invalid(format!("region prefix {k}: {e}")))?;
        let name = names.get(code.short()).cloned().unwrap_or_else(|| code.short().to_string());
        children.push(RegionBasis { code, name, basis: b, sites });
    }
    Ok((total, children, online))
}

/// The monthly report of `scope` for `month`.
pub async fn monthly_report(store: &dyn Store, scope: &RegionCode, month: Month, now_ms: i64) -> Result<MonthlyReport> {
    let region = store
        .region(scope)
        .await?
        .ok_or_else(|| crate::StoreError::NotFound(format!("region {scope}")))?;
    let (from, to) = (month.start_ms(), month.end_ms());
    let (basis, children, online) = bases(store, scope, month, now_ms).await?;
    let t = std::time::Instant::now();
    let evaluations = evaluate_all(store, scope, &basis).await?;
    let per_day = store.tickets_per_day(scope, from, to).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: evaluations and tickets per day");
    let t = std::time::Instant::now();
    let visits = store.visits_between(scope, from, to).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: visits");
    let t = std::time::Instant::now();
    let broadcasts = store.broadcast_counts(scope, from, to).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: broadcasts");
    let t = std::time::Instant::now();
    let terminals = store.terminal_counts(scope).await?;
    tracing::debug!(ms = t.elapsed().as_millis() as u64, "report: terminals");
    let mut weeks: BTreeMap<i64, i64> = BTreeMap::new();
    let mut d = day_of(from);
    while day_start(d) < to {
        weeks.entry(week_of(d)).or_insert(0);
        d += 1;
    }
    for (day, n) in per_day {
        *weeks.entry(week_of(day)).or_insert(0) += n;
    }
    Ok(MonthlyReport {
        region,
        month,
        generated_ms: now_ms,
        evaluations,
        daily_online: online.days,
        tickets_per_week: weeks.into_iter().collect(),
        visits,
        broadcasts,
        terminals,
        sites: children.iter().fold(SiteCounts::default(), |mut a, k| {
            a.add(&k.sites);
            a
        }),
        basis,
        children,
    })
}
