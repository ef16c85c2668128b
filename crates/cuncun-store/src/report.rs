//! Coverage, indicator targets, the county "nine haves" checklist, the terminal → repair ticket
//! loop and the monthly report (docs/INDICATORS.md). Storage counts set-wise over a region
//! subtree (a code range); the formulas live in `cuncun_domain::indicators`.

use crate::{Actor, Result, Store};
use async_trait::async_trait;
use cuncun_domain::indicators::{self, Basis, CheckStatus, CoverageCounts, Evaluation, Month, NineHaves};
use cuncun_domain::model::Region;
use cuncun_domain::time::{day_of, day_start, week_of};
use cuncun_domain::{RegionCode, RegionLevel};
use serde::Serialize;
use std::collections::BTreeMap;

/// Connections separated by less than this are one (docs/INDICATORS.md).
pub const ONLINE_GRACE_MS: i64 = 60_000;

/// Coverage of one village.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VillageCoverage {
    pub code: RegionCode,
    pub name: String,
    pub counts: CoverageCounts,
    pub sites: SiteCounts,
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
    /// Transmitter sites in service in the hamlet.
    pub transmitters: i64,
}

/// An emergency terminal in service with the hamlet it is assigned to (None: unassigned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalHamlet {
    pub id: i64,
    pub ebrid: String,
    pub name: String,
    pub kind: String,
    pub village_code: String,
    pub hamlet_id: Option<i64>,
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

/// Broadcasts approved in a period, seen from a region (docs/INDICATORS.md, "Broadcasts").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BroadcastCounts {
    /// (priority, drill, messages): distinct messages whose target reached the region (an area
    /// inside it or containing it, or a named terminal in it). NOT additive: a message for two
    /// counties counts once in each county and once in their city.
    pub messages: Vec<(String, bool, i64)>,
    /// (priority, terminal deliveries, received, played): one per (message, terminal in the
    /// region). Additive: a city's are the sums of its counties'.
    pub deliveries: Vec<(String, i64, i64, i64)>,
}

/// Kinds of transmitter site (发射台/转播台).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransmitterKind {
    Tv,
    Fm,
    Dtmb,
    Mw,
    Relay,
}

impl TransmitterKind {
    pub const ALL: [TransmitterKind; 5] = [Self::Tv, Self::Fm, Self::Dtmb, Self::Mw, Self::Relay];
    pub fn key(self) -> &'static str {
        match self {
            Self::Tv => "tv",
            Self::Fm => "fm",
            Self::Dtmb => "dtmb",
            Self::Mw => "mw",
            Self::Relay => "relay",
        }
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Tv => "电视发射台",
            Self::Fm => "调频广播发射台",
            Self::Dtmb => "地面数字电视发射台",
            Self::Mw => "中波广播发射台",
            Self::Relay => "差转台/转播台",
        }
    }
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Tv => "TV transmitter",
            Self::Fm => "FM transmitter",
            Self::Dtmb => "DTMB transmitter",
            Self::Mw => "Medium-wave transmitter",
            Self::Relay => "Relay station",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == s.trim())
    }
}

/// A transmitter site as entered (new or edited).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTransmitterSite {
    pub name: String,
    pub kind: TransmitterKind,
    /// The administrative village the site stands in (12 digits, level 5).
    pub village_code: RegionCode,
    pub hamlet_id: Option<i64>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    /// Channels / frequencies, e.g. "FM 97.5 MHz, FM 101.2 MHz" or "DS-23".
    pub frequencies: String,
    /// Transmitter power in watts.
    pub power_w: Option<f64>,
    pub in_service: bool,
}

/// A registered transmitter site.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransmitterSite {
    pub id: i64,
    #[serde(flatten)]
    pub site: NewTransmitterSite,
    pub hamlet: Option<String>,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

/// Checks a site before it is stored: clear messages naming the field.
pub fn check_site(s: &NewTransmitterSite) -> Result<()> {
    let bad = |m: String| Err(crate::StoreError::Invalid(m));
    if s.name.trim().is_empty() {
        return bad("name: required".into());
    }
    if s.name.chars().count() > 100 {
        return bad("name: at most 100 characters".into());
    }
    if s.village_code.level() != RegionLevel::Village {
        return bad(format!("village_code: {} is not an administrative village (12 digits, level 5)", s.village_code));
    }
    if s.frequencies.trim().is_empty() {
        return bad("frequencies: give the channels or frequencies (e.g. FM 97.5 MHz, DS-23)".into());
    }
    if s.frequencies.chars().count() > 200 {
        return bad("frequencies: at most 200 characters".into());
    }
    if s.lon.is_some() != s.lat.is_some() {
        return bad("location: give both longitude and latitude, or neither".into());
    }
    if s.lon.is_some_and(|x| !(-180.0..=180.0).contains(&x)) {
        return bad("lon: must lie between -180 and 180".into());
    }
    if s.lat.is_some_and(|x| !(-90.0..=90.0).contains(&x)) {
        return bad("lat: must lie between -90 and 90".into());
    }
    if s.power_w.is_some_and(|p| !p.is_finite() || p <= 0.0 || p > 10_000_000.0) {
        return bad("power_w: must be a positive number of watts".into());
    }
    Ok(())
}

/// Transmitter and front-end sites of a region (additive over disjoint regions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SiteCounts {
    /// Transmitter sites registered, and those in service.
    pub transmitters: i64,
    pub transmitters_in_service: i64,
    /// Front-ends (village/township broadcast rooms) and adapters in service (`eb_resource`).
    pub front_ends: i64,
    pub adapters: i64,
}

impl SiteCounts {
    pub fn add(&mut self, o: &SiteCounts) {
        self.transmitters += o.transmitters;
        self.transmitters_in_service += o.transmitters_in_service;
        self.front_ends += o.front_ends;
        self.adapters += o.adapters;
    }
}

/// A household missing fields required for data completeness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteHousehold {
    pub id: i64,
    pub village_code: RegionCode,
    pub hamlet: String,
    pub head_name: String,
    pub phone: String,
    pub address: String,
    /// Keys of [`cuncun_domain::service::COMPLETENESS_FIELDS`] that are empty.
    pub missing: Vec<&'static str>,
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

/// The digits of a region's children's codes (12 for a village's own code).
pub fn child_digits(level: RegionLevel) -> usize {
    match level {
        RegionLevel::Province => 4,
        RegionLevel::City => 6,
        RegionLevel::County => 9,
        _ => 12,
    }
}

/// One region's part of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionBasis {
    pub code: RegionCode,
    pub name: String,
    pub basis: Basis,
    /// Transmitter and front-end sites now.
    pub sites: SiteCounts,
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
    /// Transmitter and front-end sites now (the sum of the children's).
    pub sites: SiteCounts,
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
