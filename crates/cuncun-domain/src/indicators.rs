//! The indicator catalogue and the coverage formulas (docs/INDICATORS.md). Pure: storage counts
//! records set-wise over a region subtree; every count here is additive over disjoint regions, so
//! a city's figures are the sums of its counties' and its rates are those of the union of records.

use crate::service::{IndicatorCounts, Indicators, VISITS_PER_YEAR, percent};
use crate::time;
use serde::{Deserialize, Serialize};

/// Hamlets (自然村) of at least this many households must have an emergency terminal.
pub const HAMLET_MIN_HOUSEHOLDS: i64 = 20;
/// A village "has the network" with at least this many emergency broadcast terminals.
pub const VILLAGE_MIN_TERMINALS: i64 = 2;

/// How a figure is compared with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Met when the value is at least the target.
    AtLeast,
    /// Met when the value is below the target.
    Below,
}

/// One indicator of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IndicatorDef {
    pub id: &'static str,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// The formula in words: numerator ÷ denominator.
    pub formula_zh: &'static str,
    pub formula_en: &'static str,
    pub unit: &'static str,
    pub period_zh: &'static str,
    pub period_en: &'static str,
    pub default_target: f64,
    pub direction: Direction,
    /// Where the target comes from (the seed documents).
    pub source: &'static str,
}

const PZH: &str = "攀枝花市 县级标准化试点实施方案 (2023)";
const FJ: &str = "奉节县 智慧广电乡村工程试点实施方案 (2024)";
const BS: &str = "市广电局 2024年上半年工作总结 (保山)";
const NAT: &str = "全国应急广播体系建设 2025年末目标";

macro_rules! def {
    ($id:literal, $zh:literal, $en:literal, $fzh:literal, $fen:literal, $unit:literal, $pzh:literal, $pen:literal, $t:expr, $d:ident, $src:expr) => {
        IndicatorDef {
            id: $id,
            name_zh: $zh,
            name_en: $en,
            formula_zh: $fzh,
            formula_en: $fen,
            unit: $unit,
            period_zh: $pzh,
            period_en: $pen,
            default_target: $t,
            direction: Direction::$d,
            source: $src,
        }
    };
}

/// The catalogue, in the order reports show it.
pub const CATALOGUE: &[IndicatorDef] = &[
    def!("online_rate", "应急广播终端在线率", "terminal online rate",
        "Σ终端在线时长 ÷ Σ终端应在线时长（按日，60秒内重连不计离线）", "Σ terminal online time ÷ Σ expected time (per day; reconnects within 60 s are not outages)",
        "%", "日/月", "daily/monthly", 90.0, AtLeast, BS),
    def!("tv_population", "电视人口综合覆盖率", "TV population coverage",
        "有任一收视方式的户的人口 ÷ 登记户总人口", "members of households receiving TV by any mode ÷ members of all registered households",
        "%", "当前", "current", 100.0, AtLeast, FJ),
    def!("radio_population", "广播人口综合覆盖率", "radio population coverage",
        "（有任一收视方式或所在行政村有应急广播终端的户的人口）÷ 登记户总人口", "members of households receiving by any mode or living in a village with an emergency terminal ÷ all members",
        "%", "当前", "current", 100.0, AtLeast, FJ),
    def!("cable_village", "有线电视行政村通达率", "cable reach of administrative villages",
        "有有线电视用户的行政村数 ÷ 行政村数", "administrative villages with at least one cable household ÷ administrative villages",
        "%", "当前", "current", 100.0, AtLeast, FJ),
    def!("hamlet_coverage", "20户以上自然村覆盖率", "hamlets of 20+ households covered",
        "有应急广播终端的20户以上自然村数 ÷ 20户以上自然村数", "hamlets of 20+ households with an emergency terminal ÷ hamlets of 20+ households",
        "%", "当前", "current", 90.0, AtLeast, FJ),
    def!("village_two_terminals", "有两个以上终端的行政村比例", "villages with at least two emergency terminals",
        "应急广播终端数≥2的行政村数 ÷ 行政村数", "administrative villages with 2 or more emergency terminals ÷ administrative villages",
        "%", "当前", "current", 70.0, AtLeast, NAT),
    def!("fibre", "有线电视网内光纤入户比例", "fibre to the home (cable network)",
        "光纤入户的有线电视用户 ÷ 有线电视用户", "cable households with fibre to the home ÷ cable households",
        "%", "当前", "current", 80.0, AtLeast, FJ),
    def!("hd", "高清化比例", "HD share",
        "高清用户 ÷ 有收视方式的用户（攀枝花50%，奉节有线100%）", "HD households ÷ households receiving TV (Panzhihua 50%, Fengjie cable 100%)",
        "%", "当前", "current", 50.0, AtLeast, PZH),
    def!("digital", "数字化比例", "digital share",
        "以数字方式（有线、地面数字DTMB、卫星、IPTV、5G）收视的户 ÷ 登记户", "households receiving by a digital mode (cable, DTMB, satellite, IPTV, 5G) ÷ registered households",
        "%", "当前", "current", 100.0, AtLeast, FJ),
    def!("closure", "报修办结率", "ticket closure rate",
        "期间受理且已办结的工单 ÷ 期间受理的工单（不含撤销）", "tickets of the period resolved ÷ tickets of the period (cancelled excluded)",
        "%", "月", "monthly", 100.0, AtLeast, BS),
    def!("closure_24h", "24小时办结率", "24-hour closure rate",
        "受理后24小时内办结的工单 ÷ 期间受理的工单", "tickets resolved within 24 h of the request ÷ tickets of the period",
        "%", "月", "monthly", 95.0, AtLeast, BS),
    def!("complaint", "年度用户投诉率", "complaint rate",
        "期间投诉工单 ÷ 登记户", "complaints of the period ÷ registered households",
        "%", "年", "yearly", 2.0, Below, PZH),
    def!("satisfaction", "用户服务满意率", "satisfaction",
        "评价4-5分的工单 ÷ 有评价的工单", "tickets rated 4 or 5 ÷ rated tickets",
        "%", "月", "monthly", 100.0, AtLeast, PZH),
    def!("care_visits", "特殊群体上门服务完成率", "special-care visits done",
        "特殊群体户年度走访次数（每户最多计2次）÷（特殊群体户数 × 2）", "visits to special-care households in the year (at most 2 per household) ÷ (special-care households × 2)",
        "%", "年", "yearly", 100.0, AtLeast, PZH),
    def!("data_completeness", "用户数据录入完整率", "data completeness",
        "必填项齐全的户 ÷ 登记户", "households with every required field ÷ registered households",
        "%", "当前", "current", 100.0, AtLeast, PZH),
];

pub fn find(id: &str) -> Option<&'static IndicatorDef> {
    CATALOGUE.iter().find(|d| d.id == id.trim())
}

/// Checks a target typed by a person: a percentage 0-100.
pub fn check_target(id: &str, value: f64) -> Result<&'static IndicatorDef, String> {
    let def = find(id).ok_or_else(|| format!("unknown indicator {id:?}"))?;
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(format!("target of {id} must be a percentage from 0 to 100, got {value}"));
    }
    Ok(def)
}

/// Coverage counts of a region subtree; every field is additive over disjoint regions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageCounts {
    pub villages: i64,
    pub households: i64,
    pub population: i64,
    /// Households per mode, in [`crate::model::CoverageMode::ALL`] order.
    pub by_mode: [i64; 5],
    /// Households receiving by at least one mode, and their members.
    pub receiving: i64,
    pub receiving_population: i64,
    /// Members of households receiving, or living in a village with an emergency terminal.
    pub radio_population: i64,
    pub fibre: i64,
    /// Cable households with fibre.
    pub cable_fibre: i64,
    pub hd: i64,
    /// Villages with at least one cable household.
    pub cable_villages: i64,
    /// Villages with at least [`VILLAGE_MIN_TERMINALS`] emergency terminals.
    pub villages_two_terminals: i64,
    /// Hamlets of [`HAMLET_MIN_HOUSEHOLDS`]+ households, and those with a terminal.
    pub big_hamlets: i64,
    pub big_hamlets_covered: i64,
    /// Emergency terminals in service (not retired).
    pub terminals: i64,
}

impl CoverageCounts {
    pub fn add(&mut self, o: &CoverageCounts) {
        self.villages += o.villages;
        self.households += o.households;
        self.population += o.population;
        for i in 0..5 {
            self.by_mode[i] += o.by_mode[i];
        }
        self.receiving += o.receiving;
        self.receiving_population += o.receiving_population;
        self.radio_population += o.radio_population;
        self.fibre += o.fibre;
        self.cable_fibre += o.cable_fibre;
        self.hd += o.hd;
        self.cable_villages += o.cable_villages;
        self.villages_two_terminals += o.villages_two_terminals;
        self.big_hamlets += o.big_hamlets;
        self.big_hamlets_covered += o.big_hamlets_covered;
        self.terminals += o.terminals;
    }
}

/// Everything an indicator value is computed from, for one region and period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub coverage: CoverageCounts,
    pub service: IndicatorCounts,
    /// Terminal-milliseconds online and expected in the period.
    pub online_ms: i64,
    pub expected_ms: i64,
}

impl Basis {
    /// (numerator, denominator) of an indicator.
    pub fn fraction(&self, id: &str) -> Option<(i64, i64)> {
        let c = &self.coverage;
        let s = &self.service;
        Some(match id {
            "online_rate" => (self.online_ms, self.expected_ms),
            "tv_population" => (c.receiving_population, c.population),
            "radio_population" => (c.radio_population, c.population),
            "cable_village" => (c.cable_villages, c.villages),
            "hamlet_coverage" => (c.big_hamlets_covered, c.big_hamlets),
            "village_two_terminals" => (c.villages_two_terminals, c.villages),
            "fibre" => (c.cable_fibre, c.by_mode[0]),
            "hd" => (c.hd, c.receiving),
            "digital" => (c.receiving, c.households),
            "closure" => (s.closed, s.tickets),
            "closure_24h" => (s.closed_24h, s.tickets),
            "complaint" => (s.complaints, s.households),
            "satisfaction" => (s.satisfied, s.rated),
            "care_visits" => (s.visits_done, s.care_households * VISITS_PER_YEAR),
            "data_completeness" => (s.complete_households, s.households),
            _ => return None,
        })
    }

    pub fn value(&self, id: &str) -> Option<f64> {
        self.fraction(id).and_then(|(n, d)| percent(n, d))
    }

    pub fn add(&mut self, o: &Basis) {
        self.coverage.add(&o.coverage);
        self.service.add(&o.service);
        self.online_ms += o.online_ms;
        self.expected_ms += o.expected_ms;
    }

    pub fn service_indicators(&self) -> Indicators {
        Indicators::from_counts(self.service.clone())
    }
}

/// An indicator's value against its target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub def: &'static IndicatorDef,
    pub numerator: i64,
    pub denominator: i64,
    pub value: Option<f64>,
    pub target: f64,
    /// Where the target was set ("" = the catalogue default).
    pub target_from: String,
    /// None when there is nothing to measure.
    pub met: Option<bool>,
}

pub fn evaluate(def: &'static IndicatorDef, basis: &Basis, target: f64, target_from: &str) -> Evaluation {
    let (numerator, denominator) = basis.fraction(def.id).unwrap_or((0, 0));
    let value = percent(numerator, denominator);
    let met = value.map(|v| match def.direction {
        Direction::AtLeast => v >= target,
        Direction::Below => v < target,
    });
    Evaluation { def, numerator, denominator, value, target, target_from: target_from.to_string(), met }
}

/// The target in force for a region: its own, else the nearest ancestor's, else the default.
/// `set` holds (region code, target) of the region and its ancestors in any order.
pub fn inherited_target(def: &IndicatorDef, region: &crate::RegionCode, set: &[(crate::RegionCode, f64)]) -> (f64, String) {
    let mut best: Option<&(crate::RegionCode, f64)> = None;
    for t in set.iter().filter(|(c, _)| c.contains(region)) {
        if best.is_none_or(|b| t.0.short().len() > b.0.short().len()) {
            best = Some(t);
        }
    }
    match best {
        Some((c, v)) => (*v, c.as_str().to_string()),
        None => (def.default_target, String::new()),
    }
}

/// The county checklist ("nine haves", 9个有).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NineHaves {
    Institution,
    TownshipOutlets,
    VillageAgents,
    HouseholdStewards,
    Rules,
    Standards,
    Platform,
    Funds,
    Assessment,
}

impl NineHaves {
    pub const ALL: [NineHaves; 9] = [
        NineHaves::Institution,
        NineHaves::TownshipOutlets,
        NineHaves::VillageAgents,
        NineHaves::HouseholdStewards,
        NineHaves::Rules,
        NineHaves::Standards,
        NineHaves::Platform,
        NineHaves::Funds,
        NineHaves::Assessment,
    ];
    pub fn key(self) -> &'static str {
        self.names().0
    }
    pub fn name_zh(self) -> &'static str {
        self.names().1
    }
    pub fn name_en(self) -> &'static str {
        self.names().2
    }
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            NineHaves::Institution => ("institution", "县级有机构", "an institution at county level"),
            NineHaves::TownshipOutlets => ("township_outlets", "乡镇有网点", "an outlet in every township"),
            NineHaves::VillageAgents => ("village_agents", "村有代办点", "an agent in every village"),
            NineHaves::HouseholdStewards => ("household_stewards", "户有广电管家", "a steward for every household"),
            NineHaves::Rules => ("rules", "管理有制度", "management rules"),
            NineHaves::Standards => ("standards", "服务有标准", "service standards"),
            NineHaves::Platform => ("platform", "运行有平台", "an operating platform"),
            NineHaves::Funds => ("funds", "经费有保障", "secured funds"),
            NineHaves::Assessment => ("assessment", "绩效有考核", "performance assessment"),
        }
    }
    pub fn parse(s: &str) -> Option<NineHaves> {
        let s = s.trim();
        Self::ALL.into_iter().find(|v| v.key() == s || v.name_zh() == s)
    }
}

/// Status of a checklist item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Missing,
    Partial,
    Done,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 3] = [CheckStatus::Missing, CheckStatus::Partial, CheckStatus::Done];
    pub fn key(self) -> &'static str {
        match self {
            CheckStatus::Missing => "missing",
            CheckStatus::Partial => "partial",
            CheckStatus::Done => "done",
        }
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            CheckStatus::Missing => "未达成",
            CheckStatus::Partial => "部分达成",
            CheckStatus::Done => "已达成",
        }
    }
    pub fn parse(s: &str) -> Option<CheckStatus> {
        Self::ALL.into_iter().find(|v| v.key() == s.trim())
    }
}

/// A Beijing calendar month "YYYY-MM": [start, end) in UTC ms and its number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Month {
    pub year: i64,
    pub month: i64,
}

impl Month {
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("month must look like 2025-06, got {s:?}");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let year: i64 = y.parse().map_err(|_| bad())?;
        let month: i64 = m.parse().map_err(|_| bad())?;
        if !(2000..=2100).contains(&year) || !(1..=12).contains(&month) || y.len() != 4 {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
    /// The Beijing month containing a UTC time.
    pub fn of_ms(ms: i64) -> Month {
        let (year, month, _) = time::civil_of(ms);
        Month { year, month }
    }
    pub fn start_ms(self) -> i64 {
        time::month_start(self.year, self.month)
    }
    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { year: self.year, month: self.month + 1 } }
    }
    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }
    pub fn days(self) -> i64 {
        (self.end_ms() - self.start_ms()) / time::DAY_MS
    }
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::RegionCode;

    #[test]
    fn catalogue_is_complete_and_unique() {
        let ids: std::collections::BTreeSet<_> = CATALOGUE.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), CATALOGUE.len());
        let b = Basis::default();
        for d in CATALOGUE {
            assert!(b.fraction(d.id).is_some(), "{} has no formula", d.id);
        }
        assert_eq!(find("online_rate").map(|d| d.default_target), Some(90.0));
        assert_eq!(find("fibre").map(|d| d.default_target), Some(80.0));
        assert!(check_target("hd", 101.0).is_err());
        assert!(check_target("nope", 1.0).is_err());
    }

    #[test]
    fn baoshan_and_complaints_against_targets() {
        let basis = Basis {
            service: IndicatorCounts { tickets: 114, closed: 114, closed_24h: 110, complaints: 3, households: 200, ..Default::default() },
            ..Default::default()
        };
        let e = evaluate(find("closure_24h").unwrap(), &basis, 95.0, "");
        assert_eq!((e.numerator, e.denominator, e.value, e.met), (110, 114, Some(96.49), Some(true)));
        let e = evaluate(find("closure").unwrap(), &basis, 100.0, "");
        assert_eq!(e.value, Some(100.0));
        // 3 of 200 = 1.50% is below the 2% ceiling; 4 of 200 = 2.00% is not.
        assert_eq!(evaluate(find("complaint").unwrap(), &basis, 2.0, "").met, Some(true));
        let mut b2 = basis.clone();
        b2.service.complaints = 4;
        assert_eq!(evaluate(find("complaint").unwrap(), &b2, 2.0, "").met, Some(false));
        assert_eq!(evaluate(find("hd").unwrap(), &basis, 50.0, "").met, None);
    }

    #[test]
    fn targets_inherit_from_the_nearest_ancestor() {
        let c = |s: &str| RegionCode::parse(s).unwrap();
        let def = find("hd").unwrap();
        let set = vec![(c("510000000000"), 60.0), (c("510400000000"), 80.0), (c("510411000000"), 100.0)];
        assert_eq!(inherited_target(def, &c("510422001001"), &set), (80.0, "510400000000".into()));
        assert_eq!(inherited_target(def, &c("510411002003"), &set), (100.0, "510411000000".into()));
        assert_eq!(inherited_target(def, &c("500236000000"), &set), (50.0, String::new()));
    }

    #[test]
    fn months_in_beijing_time() {
        let m = Month::parse("2024-02").unwrap();
        assert_eq!(m.days(), 29);
        // 2024-02-01 00:00 Beijing = 2024-01-31T16:00:00Z.
        assert_eq!(m.start_ms(), 1_706_716_800_000);
        assert_eq!(Month::of_ms(m.start_ms()), m);
        assert_eq!(Month::of_ms(m.start_ms() - 1), Month::parse("2024-01").unwrap());
        assert_eq!(Month::parse("2024-12").unwrap().next(), Month::parse("2025-01").unwrap());
        assert!(Month::parse("2024-13").is_err());
        assert!(Month::parse("24-1").is_err());
    }

    #[test]
    fn sums_of_bases_are_the_union() {
        let a = Basis { coverage: CoverageCounts { villages: 3, cable_villages: 3, ..Default::default() }, online_ms: 9, expected_ms: 10, ..Default::default() };
        let b = Basis { coverage: CoverageCounts { villages: 1, cable_villages: 0, ..Default::default() }, online_ms: 1, expected_ms: 10, ..Default::default() };
        let mut s = a.clone();
        s.add(&b);
        assert_eq!(s.value("cable_village"), Some(75.0));
        assert_eq!(s.value("online_rate"), Some(50.0));
    }
}
