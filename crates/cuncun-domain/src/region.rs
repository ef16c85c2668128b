//! Region codes: the 12-digit statistical division codes of the National Bureau of Statistics.
//! Province 2 digits, city 4, county 6, township 9, village 12; shorter codes are padded with zeros.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionLevel {
    Province = 1,
    City = 2,
    County = 3,
    Township = 4,
    Village = 5,
}

impl RegionLevel {
    /// Number of significant digits of a code at this level.
    pub fn digits(self) -> usize {
        match self {
            RegionLevel::Province => 2,
            RegionLevel::City => 4,
            RegionLevel::County => 6,
            RegionLevel::Township => 9,
            RegionLevel::Village => 12,
        }
    }
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            1 => RegionLevel::Province,
            2 => RegionLevel::City,
            3 => RegionLevel::County,
            4 => RegionLevel::Township,
            5 => RegionLevel::Village,
            _ => return None,
        })
    }
    pub fn key(self) -> &'static str {
        match self {
            RegionLevel::Province => "province",
            RegionLevel::City => "city",
            RegionLevel::County => "county",
            RegionLevel::Township => "township",
            RegionLevel::Village => "village",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("region code {0:?} must contain only digits")]
    NotDigits(String),
    #[error("region code {0:?} must have 2, 4, 6, 9 or 12 digits (got {1})")]
    BadLength(String, usize),
    #[error("region code {0:?} is all zeros")]
    Zero(String),
}

/// A region code, stored canonically as 12 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionCode(String);

impl RegionCode {
    /// Accepts the short form (2, 4, 6, 9 digits) or the padded 12-digit form.
    pub fn parse(s: &str) -> Result<Self, RegionCodeError> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::NotDigits(s.to_string()));
        }
        if ![2, 4, 6, 9, 12].contains(&s.len()) {
            return Err(RegionCodeError::BadLength(s.to_string(), s.len()));
        }
        if s.bytes().all(|b| b == b'0') || s[..2] == *"00" {
            return Err(RegionCodeError::Zero(s.to_string()));
        }
        let mut full = s.to_string();
        while full.len() < 12 {
            full.push('0');
        }
        Ok(RegionCode(full))
    }

    pub fn level(&self) -> RegionLevel {
        let b = self.0.as_bytes();
        let zeros_from = |i: usize| b[i..].iter().all(|&c| c == b'0');
        if zeros_from(2) {
            RegionLevel::Province
        } else if zeros_from(4) {
            RegionLevel::City
        } else if zeros_from(6) {
            RegionLevel::County
        } else if zeros_from(9) {
            RegionLevel::Township
        } else {
            RegionLevel::Village
        }
    }

    /// The padded 12-digit form, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The significant digits (e.g. "500236" for a county).
    pub fn short(&self) -> &str {
        &self.0[..self.level().digits()]
    }

    pub fn parent(&self) -> Option<RegionCode> {
        let level = self.level();
        let up = match level {
            RegionLevel::Province => return None,
            RegionLevel::City => RegionLevel::Province,
            RegionLevel::County => RegionLevel::City,
            RegionLevel::Township => RegionLevel::County,
            RegionLevel::Village => RegionLevel::Township,
        };
        RegionCode::parse(&self.0[..up.digits()]).ok()
    }

    /// Ancestors from the province down to the parent.
    pub fn ancestors(&self) -> Vec<RegionCode> {
        let mut v = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            cur = p.parent();
            v.push(p);
        }
        v.reverse();
        v
    }

    /// True when `other` is this region or lies below it.
    pub fn contains(&self, other: &RegionCode) -> bool {
        other.0.starts_with(self.short())
    }

    /// Inclusive bounds of the 12-digit codes in this subtree, for index range scans.
    pub fn subtree_bounds(&self) -> (String, String) {
        let p = self.short();
        let pad = 12 - p.len();
        (format!("{p}{}", "0".repeat(pad)), format!("{p}{}", "9".repeat(pad)))
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}

impl TryFrom<String> for RegionCode {
    type Error = RegionCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        RegionCode::parse(&s)
    }
}

impl From<RegionCode> for String {
    fn from(c: RegionCode) -> String {
        c.0
    }
}

impl std::str::FromStr for RegionCode {
    type Err = RegionCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RegionCode::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_padding() {
        let c = RegionCode::parse("500236").unwrap();
        assert_eq!(c.as_str(), "500236000000");
        assert_eq!(c.level(), RegionLevel::County);
        assert_eq!(c.short(), "500236");
        assert_eq!(c.parent().unwrap().short(), "5002");
        let v = RegionCode::parse("500236100201").unwrap();
        assert_eq!(v.level(), RegionLevel::Village);
        assert_eq!(v.parent().unwrap().short(), "500236100");
        assert!(c.contains(&v));
        assert!(!RegionCode::parse("500235").unwrap().contains(&v));
        let anc: Vec<_> = v.ancestors().iter().map(|a| a.short().to_string()).collect();
        assert_eq!(anc, ["50", "5002", "500236", "500236100"]);
        assert_eq!(c.subtree_bounds(), ("500236000000".into(), "500236999999".into()));
    }

    #[test]
    fn rejects_bad_codes() {
        assert!(matches!(RegionCode::parse("5002x6"), Err(RegionCodeError::NotDigits(_))));
        assert!(matches!(RegionCode::parse("50023"), Err(RegionCodeError::BadLength(_, 5))));
        assert!(matches!(RegionCode::parse("000000"), Err(RegionCodeError::Zero(_))));
        assert!(RegionCode::parse("").is_err());
    }
}
