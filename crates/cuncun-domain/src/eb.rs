//! Emergency broadcast: resource codes (EBRID), message ids (EBMID), severity, event types, the
//! message workflow and the preemption rule. Facts from the standards are in
//! docs/EB_STANDARDS.md of the shared docs; where the standard's table is unverified, the values
//! are data here (RESOURCE_TYPES), not logic.

use crate::{RegionCode, RegionLevel};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EbError {
    #[error("resource code {0:?} must be 23 digits")]
    BadEbrid(String),
    #[error("resource code {0:?}: area level digit must be 1-6")]
    BadEbridLevel(String),
    #[error("resource code {0:?}: embedded region code is invalid: {1}")]
    BadEbridRegion(String, String),
    #[error("message id {0:?} must be 35 digits (resource code + YYYYMMDD + 4-digit sequence)")]
    BadEbmid(String),
    #[error("severity {0} must be 1 (red) to 4 (blue)")]
    BadSeverity(i64),
    #[error("event type {0:?} must be 5 characters: a digit class then 4 letters/digits, e.g. 11B03")]
    BadEventType(String),
    #[error("cannot {action} a message that is {from}")]
    BadTransition { action: &'static str, from: &'static str },
    #[error("{0}")]
    NotAllowed(String),
}

/// What a resource is. The 4+2+2 digit type codes are not verified against GY/T 386; they are
/// this table, so a deployment can correct them without touching logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Platform,
    FrontEnd,
    Adapter,
    OutdoorLoudspeaker,
    ColumnSpeaker,
    InHomeReceiver,
    SetTopBox,
    BuildingPa,
}

/// (kind, key, type(4) + type sequence(2) + subtype(2), zh, en)
pub const RESOURCE_TYPES: &[(ResourceKind, &str, &str, &str, &str)] = &[
    (ResourceKind::Platform, "platform", "01030101", "应急广播平台", "Platform"),
    (ResourceKind::FrontEnd, "front_end", "03010101", "前端/广播室", "Front-end / broadcast room"),
    (ResourceKind::Adapter, "adapter", "03010102", "适配器", "Adapter"),
    (ResourceKind::OutdoorLoudspeaker, "outdoor_loudspeaker", "03140101", "室外大喇叭", "Outdoor loudspeaker"),
    (ResourceKind::ColumnSpeaker, "column_speaker", "03140102", "音柱", "Column speaker"),
    (ResourceKind::InHomeReceiver, "in_home_receiver", "03150101", "入户终端", "In-home receiver"),
    (ResourceKind::SetTopBox, "set_top_box", "03160101", "机顶盒", "Set-top box"),
    (ResourceKind::BuildingPa, "building_pa", "03170101", "楼宇广播接口", "Building PA interface"),
];

impl ResourceKind {
    fn row(self) -> &'static (ResourceKind, &'static str, &'static str, &'static str, &'static str) {
        // Every variant has a row (tested); the fallback only keeps this total.
        RESOURCE_TYPES.iter().find(|r| r.0 == self).unwrap_or(&RESOURCE_TYPES[0])
    }
    pub fn key(self) -> &'static str {
        self.row().1
    }
    pub fn type_code(self) -> &'static str {
        self.row().2
    }
    pub fn name_zh(self) -> &'static str {
        self.row().3
    }
    pub fn name_en(self) -> &'static str {
        self.row().4
    }
    pub fn parse(s: &str) -> Option<ResourceKind> {
        RESOURCE_TYPES.iter().find(|r| r.1 == s.trim()).map(|r| r.0)
    }
    pub fn is_terminal(self) -> bool {
        !matches!(self, ResourceKind::Platform | ResourceKind::FrontEnd | ResourceKind::Adapter)
    }
    pub fn from_terminal_kind(k: crate::model::TerminalKind) -> ResourceKind {
        use crate::model::TerminalKind as T;
        match k {
            T::OutdoorLoudspeaker => ResourceKind::OutdoorLoudspeaker,
            T::ColumnSpeaker => ResourceKind::ColumnSpeaker,
            T::InHomeReceiver => ResourceKind::InHomeReceiver,
            T::SetTopBox => ResourceKind::SetTopBox,
            T::BuildingPa => ResourceKind::BuildingPa,
        }
    }
}

/// A 23-digit resource code: area level (1) + region (12) + type (4) + type seq (2) + subtype (2)
/// + subtype seq (2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ebrid(String);

impl Ebrid {
    pub fn parse(s: &str) -> Result<Ebrid, EbError> {
        let s = s.trim();
        if s.len() != 23 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EbError::BadEbrid(s.to_string()));
        }
        if !(b'1'..=b'6').contains(&s.as_bytes()[0]) {
            return Err(EbError::BadEbridLevel(s.to_string()));
        }
        RegionCode::parse(&s[1..13]).map_err(|e| EbError::BadEbridRegion(s.to_string(), e.to_string()))?;
        Ok(Ebrid(s.to_string()))
    }

    /// The area-level digit for a region level: 1 national .. 6 village.
    pub fn level_digit(level: RegionLevel) -> u8 {
        level as u8 + 1
    }

    /// The `n`-th (1-based) resource of `kind` in `region`: n spreads over the type sequence and
    /// the subtype sequence (99 x 99 per kind and region).
    pub fn generate(region: &RegionCode, kind: ResourceKind, n: u32) -> Result<Ebrid, EbError> {
        if n == 0 || n > 99 * 99 {
            return Err(EbError::NotAllowed(format!("resource sequence {n} out of range 1..=9801")));
        }
        let t = kind.type_code();
        let tseq = 1 + (n - 1) / 99;
        let sseq = 1 + (n - 1) % 99;
        let s = format!(
            "{}{}{}{:02}{}{:02}",
            Self::level_digit(region.level()),
            region.as_str(),
            &t[..4],
            tseq,
            &t[6..8],
            sseq
        );
        Ebrid::parse(&s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The 12-digit region code inside.
    pub fn region12(&self) -> &str {
        &self.0[1..13]
    }
    pub fn region(&self) -> Option<RegionCode> {
        RegionCode::parse(self.region12()).ok()
    }
}

impl std::fmt::Display for Ebrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl TryFrom<String> for Ebrid {
    type Error = EbError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ebrid::parse(&s)
    }
}
impl From<Ebrid> for String {
    fn from(e: Ebrid) -> String {
        e.0
    }
}

/// EBMID: the sending platform's EBRID + YYYYMMDD + 4-digit daily sequence (35 digits).
pub fn ebmid(platform: &Ebrid, yyyymmdd: &str, seq: u32) -> Result<String, EbError> {
    let s = format!("{}{}{:04}", platform.as_str(), yyyymmdd, seq % 10_000);
    parse_ebmid(&s)?;
    Ok(s)
}

pub fn parse_ebmid(s: &str) -> Result<(), EbError> {
    if s.len() != 35 || !s.bytes().all(|b| b.is_ascii_digit()) || Ebrid::parse(&s[..23]).is_err() {
        return Err(EbError::BadEbmid(s.to_string()));
    }
    Ok(())
}

/// 1 特别重大 red .. 4 一般 blue.
pub fn check_severity(s: i64) -> Result<u8, EbError> {
    if (1..=4).contains(&s) { Ok(s as u8) } else { Err(EbError::BadSeverity(s)) }
}

pub fn severity_colour(s: u8) -> (&'static str, &'static str) {
    match s {
        1 => ("红色", "red"),
        2 => ("橙色", "orange"),
        3 => ("黄色", "yellow"),
        4 => ("蓝色", "blue"),
        _ => ("未知", "unknown"),
    }
}

/// Common event types for the composer's picker (GB/T 35561 family; 11Bxx are weather).
pub const EVENT_TYPES: &[(&str, &str, &str)] = &[
    ("11B01", "台风", "Typhoon"),
    ("11B02", "龙卷风", "Tornado"),
    ("11B03", "暴雨", "Rainstorm"),
    ("11B04", "暴雪", "Snowstorm"),
    ("11B05", "寒潮", "Cold wave"),
    ("11B06", "大风", "Gale"),
    ("11B07", "沙尘暴", "Sandstorm"),
    ("11B09", "高温", "Heat"),
    ("11B14", "雷电", "Lightning"),
    ("11B15", "冰雹", "Hail"),
    ("11B16", "霜冻", "Frost"),
    ("11B17", "大雾", "Fog"),
    ("11B19", "霾", "Haze"),
    ("11B20", "雷雨大风", "Thunderstorm gale"),
    ("11B21", "道路结冰", "Road icing"),
    ("11B22", "干旱", "Drought"),
    ("11B25", "森林火险", "Forest-fire risk"),
    ("11A01", "洪水", "Flood"),
    ("11D01", "地震", "Earthquake"),
    ("11E01", "地质灾害", "Geological hazard"),
    ("11000", "测试/演练", "Test / drill"),
];

pub fn check_event_type(s: &str) -> Result<String, EbError> {
    let s = s.trim();
    let ok = s.len() == 5
        && s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if ok { Ok(s.to_string()) } else { Err(EbError::BadEventType(s.to_string())) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Draft,
    Submitted,
    Approved,
    Dispatching,
    Completed,
    Cancelled,
    Expired,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Draft,
        MessageStatus::Submitted,
        MessageStatus::Approved,
        MessageStatus::Dispatching,
        MessageStatus::Completed,
        MessageStatus::Cancelled,
        MessageStatus::Expired,
    ];
    pub fn key(self) -> &'static str {
        match self {
            MessageStatus::Draft => "draft",
            MessageStatus::Submitted => "submitted",
            MessageStatus::Approved => "approved",
            MessageStatus::Dispatching => "dispatching",
            MessageStatus::Completed => "completed",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<MessageStatus> {
        Self::ALL.into_iter().find(|m| m.key() == s)
    }
    pub fn is_final(self) -> bool {
        matches!(self, MessageStatus::Completed | MessageStatus::Cancelled | MessageStatus::Expired)
    }
}

/// What a terminal does when a new message arrives while it plays another of equal severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EqualSeverity {
    /// The newer message interrupts (default: the latest warning is the most current).
    #[default]
    NewerWins,
    /// The current message plays to its end; the new one waits.
    KeepCurrent,
}

/// Whether `new` preempts `current`. Emergency beats routine; a smaller severity number (more
/// severe) beats a larger one; equal severity follows `rule`. Severity 0 means routine.
pub fn preempts(current_severity: u8, new_severity: u8, rule: EqualSeverity) -> bool {
    let rank = |s: u8| if s == 0 { 99 } else { s };
    match rank(new_severity).cmp(&rank(current_severity)) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Greater => false,
        std::cmp::Ordering::Equal => rule == EqualSeverity::NewerWins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    #[test]
    fn resource_codes() {
        let v = rc("500236100201");
        let e = Ebrid::generate(&v, ResourceKind::OutdoorLoudspeaker, 1).unwrap();
        assert_eq!(e.as_str(), "65002361002010314010101");
        assert_eq!(e.region12(), "500236100201");
        let e100 = Ebrid::generate(&v, ResourceKind::OutdoorLoudspeaker, 100).unwrap();
        assert_eq!(&e100.as_str()[13..], "0314020101");
        let p = Ebrid::generate(&rc("500236"), ResourceKind::Platform, 1).unwrap();
        assert_eq!(p.as_str(), "45002360000000103010101");
        assert!(Ebrid::parse("7500236000000010301010").is_err());
        assert!(matches!(Ebrid::parse("75002360000000103010101"), Err(EbError::BadEbridLevel(_))));
        assert!(Ebrid::generate(&v, ResourceKind::ColumnSpeaker, 0).is_err());
        for k in RESOURCE_TYPES {
            assert_eq!(ResourceKind::parse(k.1), Some(k.0));
            assert_eq!(k.2.len(), 8);
        }
        let id = ebmid(&p, "20260601", 7).unwrap();
        assert_eq!(id.len(), 35);
        assert!(id.ends_with("202606010007"));
    }

    #[test]
    fn preemption_rule() {
        assert!(preempts(0, 4, EqualSeverity::NewerWins), "any emergency beats routine");
        assert!(preempts(3, 2, EqualSeverity::KeepCurrent), "orange beats yellow");
        assert!(!preempts(2, 3, EqualSeverity::NewerWins), "yellow never beats orange");
        assert!(preempts(2, 2, EqualSeverity::NewerWins));
        assert!(!preempts(2, 2, EqualSeverity::KeepCurrent));
        assert!(!preempts(4, 0, EqualSeverity::NewerWins), "routine never beats an emergency");
    }

    #[test]
    fn severity_and_events() {
        assert_eq!(check_severity(2), Ok(2));
        assert!(check_severity(5).is_err());
        assert!(check_event_type("11B03").is_ok());
        assert!(check_event_type("1b03").is_err());
        assert!(EVENT_TYPES.iter().all(|e| check_event_type(e.0).is_ok()));
    }
}
