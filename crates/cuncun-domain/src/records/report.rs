//! Records of report (what the store reads and writes, and the application layer returns).

use crate::indicators::{Basis, CheckStatus, CoverageCounts, Evaluation, Month, NineHaves};
use crate::model::Region;
use crate::{RegionCode, RegionLevel};
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
    /// (priority, drill, terminal deliveries, received, played): one per (message, terminal in
    /// the region); drills apart from real broadcasts. Additive: a city's are the sums of its
    /// counties'.
    pub deliveries: Vec<(String, bool, i64, i64, i64)>,
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
pub fn check_site(s: &NewTransmitterSite) -> Result<(), String> {
    let bad = |m: String| Err(m);
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
    /// Keys of [`crate::service::COMPLETENESS_FIELDS`] that are empty.
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
