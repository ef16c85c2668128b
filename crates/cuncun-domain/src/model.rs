//! Plain records shared by storage, the demo generator and the web layer.

use crate::{RegionCode, RegionLevel, Role};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub code: RegionCode,
    pub name: String,
    pub level: RegionLevel,
    pub parent: Option<RegionCode>,
}

/// 自然村: a settlement below an administrative village.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hamlet {
    pub id: i64,
    pub village_code: RegionCode,
    pub name: String,
    pub households: i64,
    pub population: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHamlet {
    pub village_code: RegionCode,
    pub name: String,
    pub households: i64,
    pub population: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub region_code: RegionCode,
    pub phone: String,
    pub disabled: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub region_code: RegionCode,
    pub phone: String,
    /// An argon2 PHC string; never the password itself.
    pub password_hash: String,
}

/// How a household receives TV and radio (`coverage_mode`). Several may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageMode {
    Cable,
    Terrestrial,
    Satellite,
    Iptv,
    FiveG,
}

impl CoverageMode {
    pub const ALL: [CoverageMode; 5] = [
        CoverageMode::Cable,
        CoverageMode::Terrestrial,
        CoverageMode::Satellite,
        CoverageMode::Iptv,
        CoverageMode::FiveG,
    ];
    pub fn key(self) -> &'static str {
        match self {
            CoverageMode::Cable => "cable",
            CoverageMode::Terrestrial => "terrestrial",
            CoverageMode::Satellite => "satellite",
            CoverageMode::Iptv => "iptv",
            CoverageMode::FiveG => "5g",
        }
    }
    pub fn parse(s: &str) -> Option<CoverageMode> {
        Self::ALL.into_iter().find(|m| m.key() == s.trim())
    }
    /// Encodes a set as a comma-separated list in a fixed order (stored form).
    pub fn encode_set(modes: &[CoverageMode]) -> String {
        Self::ALL
            .into_iter()
            .filter(|m| modes.contains(m))
            .map(|m| m.key())
            .collect::<Vec<_>>()
            .join(",")
    }
    pub fn decode_set(s: &str) -> Vec<CoverageMode> {
        s.split(',').filter_map(CoverageMode::parse).collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHousehold {
    pub village_code: RegionCode,
    /// Name of the hamlet inside the village, if known.
    pub hamlet: Option<String>,
    pub head_name: String,
    pub phone: String,
    pub address: String,
    pub members: i64,
    pub coverage_modes: Vec<CoverageMode>,
    pub hd: bool,
    pub fibre: bool,
    /// Special-care flags: elderly left behind, children left behind, disabled.
    pub care_elderly: bool,
    pub care_children: bool,
    pub care_disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSteward {
    pub name: String,
    pub phone: String,
    /// Township the steward belongs to.
    pub region_code: RegionCode,
    /// Villages the steward covers.
    pub villages: Vec<RegionCode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutletKind {
    /// County service centre.
    County,
    /// Township service outlet.
    Township,
    /// Village agent point.
    VillageAgent,
}

impl OutletKind {
    pub fn key(self) -> &'static str {
        match self {
            OutletKind::County => "county",
            OutletKind::Township => "township",
            OutletKind::VillageAgent => "village_agent",
        }
    }
    pub fn parse(s: &str) -> Option<OutletKind> {
        [OutletKind::County, OutletKind::Township, OutletKind::VillageAgent]
            .into_iter()
            .find(|k| k.key() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOutlet {
    pub kind: OutletKind,
    pub region_code: RegionCode,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub hotline: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalKind {
    OutdoorLoudspeaker,
    ColumnSpeaker,
    InHomeReceiver,
    SetTopBox,
    BuildingPa,
}

impl TerminalKind {
    pub const ALL: [TerminalKind; 5] = [
        TerminalKind::OutdoorLoudspeaker,
        TerminalKind::ColumnSpeaker,
        TerminalKind::InHomeReceiver,
        TerminalKind::SetTopBox,
        TerminalKind::BuildingPa,
    ];
    pub fn key(self) -> &'static str {
        match self {
            TerminalKind::OutdoorLoudspeaker => "outdoor_loudspeaker",
            TerminalKind::ColumnSpeaker => "column_speaker",
            TerminalKind::InHomeReceiver => "in_home_receiver",
            TerminalKind::SetTopBox => "set_top_box",
            TerminalKind::BuildingPa => "building_pa",
        }
    }
    pub fn parse(s: &str) -> Option<TerminalKind> {
        Self::ALL.into_iter().find(|k| k.key() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTerminal {
    pub kind: TerminalKind,
    pub region_code: RegionCode,
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
}

/// Counts shown on a region's home dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionCounts {
    pub townships: i64,
    pub villages: i64,
    pub hamlets: i64,
    pub households: i64,
    pub population: i64,
    pub terminals: i64,
    /// Terminals connected now.
    pub terminals_online: i64,
    pub stewards: i64,
    pub outlets: i64,
}

/// What a gateway needs to authenticate a device, as the platform stores it: the device's
/// resource code, the hex SHA-256 of its secret and its 12-digit region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    pub ebrid: String,
    pub secret_hash: String,
    pub region12: String,
}
