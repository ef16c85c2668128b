//! Coverage, indicator targets, the county "nine haves" checklist, the terminal → repair ticket
//! loop and the monthly report (docs/INDICATORS.md). Storage counts set-wise over a region
//! subtree (a code range); the formulas live in `cuncun_domain::indicators`.

use crate::{Actor, Result, Store};
use async_trait::async_trait;
use cuncun_domain::indicators::{self, Basis, CheckStatus, CoverageCounts, Evaluation, Month, NineHaves};
use cuncun_domain::model::Region;
use cuncun_domain::{RegionCode, RegionLevel};
use serde::Serialize;
use std::collections::BTreeMap;

/// Connections separated by less than this are one (docs/INDICATORS.md).
pub const ONLINE_GRACE_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
const BJ_MS: i64 = 8 * 3_600_000;

/// Coverage of one village.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VillageCoverage {
    pub code: RegionCode,
    pub name: String,
    pub counts: CoverageCounts,
}

/// A hamlet with its households and the emergency terminals serving it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HamletCoverage {
    pub id: i64,
    pub village_code: RegionCode,
    pub name: String,
    pub households: i64,
    pub population: i64,
    pub terminals: i64,
}

/// Online time of one terminal over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalOnline {
    pub ebrid: String,
    pub name: String,
    pub region_code: String,
    pub online_ms: i64,
    pub expected_ms: i64,
}

/// The online rate over a period, per Beijing day and per group (region prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OnlineSummary {
    /// (day start UTC ms, online ms, expected ms), one per day of the period.
    pub days: Vec<(i64, i64, i64)>,
    /// Region prefix of `group_digits` → (online ms, expected ms).
    pub by_group: BTreeMap<String, (i64, i64)>,
    pub online_ms: i64,
    pub expected_ms: i64,
    /// Per terminal, only when asked for.
    pub terminals: Vec<TerminalOnline>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRow {
    pub region_code: RegionCode,
    pub indicator: String,
    pub target: f64,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountyCheck {
    pub region_code: RegionCode,
    pub item: NineHaves,
    pub status: CheckStatus,
    pub evidence: String,
    pub file_name: Option<String>,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

/// An uploaded evidence file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFile {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Messages (by the author's region) and terminal deliveries (by the terminal's region) of a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BroadcastCounts {
    /// (priority, drill, messages approved in the period).
    pub messages: Vec<(String, bool, i64)>,
    /// (priority, terminals targeted, terminals that received).
    pub deliveries: Vec<(String, i64, i64)>,
}

/// Terminals now: in service, online, reporting faults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TerminalCounts {
    pub total: i64,
    pub online: i64,
    pub faulty: i64,
}

/// A ticket the repair loop opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutageTicket {
    pub ebrid: String,
    pub kind: String,
    pub episode_ms: i64,
    pub ticket_id: i64,
    /// False when the terminal already had an open ticket (e.g. a resident's report), reused.
    pub created: bool,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Coverage counts grouped by the first `digits` digits of the village code (2, 4, 6, 9, 12).
    async fn coverage_grouped(&self, scope: &RegionCode, digits: usize) -> Result<BTreeMap<String, CoverageCounts>>;
    /// Villages of the scope with their names and coverage, in code order.
    async fn village_coverage(&self, scope: &RegionCode) -> Result<Vec<VillageCoverage>>;
    /// Hamlets of the scope with the terminals serving them (assigned, or named after the hamlet).
    async fn hamlet_coverage(&self, scope: &RegionCode) -> Result<Vec<HamletCoverage>>;
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

/// The digits of a region's children's codes (12 for a village's own code).
pub fn child_digits(level: RegionLevel) -> usize {
    match level {
        RegionLevel::Province => 4,
        RegionLevel::City => 6,
        RegionLevel::County => 9,
        _ => 12,
    }
}

/// Beijing day number of a UTC time.
pub fn day_of(ms: i64) -> i64 {
    (ms + BJ_MS).div_euclid(DAY_MS)
}

/// UTC start of a Beijing day number.
pub fn day_start(day: i64) -> i64 {
    day * DAY_MS - BJ_MS
}

/// Monday of the week of a Beijing day number (1970-01-01 was a Thursday).
pub fn week_of(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// One region's part of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionBasis {
    pub code: RegionCode,
    pub name: String,
    pub basis: Basis,
}

/// The monthly report of a region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthlyReport {
    pub region: Region,
    pub month: Month,
    pub generated_ms: i64,
    pub basis: Basis,
    pub evaluations: Vec<Evaluation>,
    /// (day start, online, expected).
    pub daily_online: Vec<(i64, i64, i64)>,
    /// (Monday's day number, tickets requested that week, within the month).
    pub tickets_per_week: Vec<(i64, i64)>,
    pub visits: i64,
    pub broadcasts: BroadcastCounts,
    pub terminals: TerminalCounts,
    pub children: Vec<RegionBasis>,
}

impl MonthlyReport {
    pub fn evaluation(&self, id: &str) -> Option<&Evaluation> {
        self.evaluations.iter().find(|e| e.def.id == id)
    }
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
    let coverage = store.coverage_grouped(scope, digits).await?;
    let service = store.service_counts(scope, from, to, month.year, true).await?;
    let online = store.online_summary(scope, from, to, now_ms, digits, false).await?;
    let mut by: BTreeMap<String, Basis> = BTreeMap::new();
    for (k, c) in coverage {
        by.entry(k).or_default().coverage = c;
    }
    for r in service {
        by.entry(r.region_code.short().to_string()).or_default().service = r.counts;
    }
    for (k, (on, exp)) in &online.by_group {
        let b = by.entry(k.clone()).or_default();
        b.online_ms = *on;
        b.expected_ms = *exp;
    }
    let names: BTreeMap<String, String> = store
        .children(scope)
        .await?
        .into_iter()
        .map(|r| (r.region.code.short().to_string(), r.region.name))
        .collect();
    let mut total = Basis::default();
    let mut children = Vec::new();
    for (k, b) in by {
        total.add(&b);
        let code = RegionCode::parse(&k).map_err(|e| crate::StoreError::Invalid(format!("region prefix {k}: {e}")))?;
        let name = names.get(code.short()).cloned().unwrap_or_else(|| code.short().to_string());
        children.push(RegionBasis { code, name, basis: b });
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
    let evaluations = evaluate_all(store, scope, &basis).await?;
    let per_day = store.tickets_per_day(scope, from, to).await?;
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
        visits: store.visits_between(scope, from, to).await?,
        broadcasts: store.broadcast_counts(scope, from, to).await?,
        terminals: store.terminal_counts(scope).await?,
        basis,
        children,
    })
}
