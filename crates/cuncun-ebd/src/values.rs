//! Text values of the EBD formats: identifiers, times, region lists and the numeric codes. Each
//! parses strictly (with a reason on failure) and writes one canonical form.

use crate::sample::{Gen, Sample};
use crate::xml::{Value, value_node};
use chrono::NaiveDateTime;
use cuncun_domain::RegionCode;
use cuncun_domain::eb::{self, Ebrid, ResourceKind};
use std::borrow::Cow;

/// The time format of every EBD time field: `YYYY-MM-DD HH:MM:SS`, Beijing time (no zone).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// An EBD time: `YYYY-MM-DD HH:MM:SS`, Beijing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EbdTime(pub NaiveDateTime);

impl EbdTime {
    /// Now, in Beijing time (UTC+8).
    pub fn now_beijing() -> EbdTime {
        let now = chrono::Utc::now().timestamp_millis();
        EbdTime(cuncun_domain::time::local(now - now.rem_euclid(1000)).unwrap_or_default())
    }
}

impl std::fmt::Display for EbdTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format(TIME_FORMAT))
    }
}

impl Value for EbdTime {
    fn parse_text(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let b = t.as_bytes();
        let shape = b.len() == 19
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            });
        if !shape {
            return Err("must be a time YYYY-MM-DD HH:MM:SS".into());
        }
        NaiveDateTime::parse_from_str(t, TIME_FORMAT).map(EbdTime).map_err(|e| format!("not a real date and time: {e}"))
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

impl Sample for EbdTime {
    fn sample(g: &mut Gen) -> Self {
        let secs = 1_600_000_000 + g.below(400_000_000) as i64;
        EbdTime(chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().naive_utc())
    }
}

impl Value for Ebrid {
    fn parse_text(s: &str) -> Result<Self, String> {
        Ebrid::parse(s).map_err(|e| e.to_string())
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
}

const SAMPLE_REGIONS: &[&str] = &["500236", "500236001", "500236001201", "500000", "500200", "110000", "532500"];

impl Sample for Ebrid {
    fn sample(g: &mut Gen) -> Self {
        // SAMPLE_REGIONS are valid region codes and n is in range (tested), so this cannot fail.
        let region = RegionCode::parse(g.pick::<&str>(SAMPLE_REGIONS)).expect("sample region");
        let kind = *g.pick(&[ResourceKind::Platform, ResourceKind::FrontEnd, ResourceKind::Adapter, ResourceKind::OutdoorLoudspeaker]);
        let n = g.range(1, 200) as u32;
        Ebrid::generate(&region, kind, n).expect("sample resource code")
    }
}

/// EBDID: the id of one EBD, also part of its file names, so only ASCII letters and digits
/// (1-64). The implementations seen use 2-digit prefix + sender EBRID + 16-digit sequence
/// (41 digits), which [`Ebdid::generate`] produces; other shapes are accepted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ebdid(String);

impl Ebdid {
    pub fn parse(s: &str) -> Result<Ebdid, String> {
        let t = s.trim();
        if t.is_empty() || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("EBDID must be 1-64 ASCII letters or digits".into());
        }
        Ok(Ebdid(t.to_string()))
    }
    /// `prefix` (2 digits) + sender EBRID (23) + sequence (16 digits).
    pub fn generate(prefix: u8, sender: &Ebrid, seq: u64) -> Ebdid {
        Ebdid(format!("{:02}{}{:016}", prefix % 100, sender.as_str(), seq % 10_000_000_000_000_000))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether it has the 41-digit shape the implementations use.
    pub fn is_standard_shape(&self) -> bool {
        self.0.len() == 41 && self.0.bytes().all(|b| b.is_ascii_digit()) && Ebrid::parse(&self.0[2..25]).is_ok()
    }
}

impl std::fmt::Display for Ebdid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Value for Ebdid {
    fn parse_text(s: &str) -> Result<Self, String> {
        Ebdid::parse(s)
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl Sample for Ebdid {
    fn sample(g: &mut Gen) -> Self {
        let sender = Ebrid::sample(g);
        Ebdid::generate(g.below(100) as u8, &sender, g.next_u64())
    }
}

/// EBMID: the sending platform's EBRID + YYYYMMDD + 4-digit daily sequence (35 digits).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ebmid(String);

impl Ebmid {
    pub fn parse(s: &str) -> Result<Ebmid, String> {
        let t = s.trim();
        eb::parse_ebmid(t).map_err(|e| e.to_string())?;
        Ok(Ebmid(t.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The sending platform's resource code inside.
    pub fn platform(&self) -> Option<Ebrid> {
        Ebrid::parse(&self.0[..23]).ok()
    }
}

impl std::fmt::Display for Ebmid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Value for Ebmid {
    fn parse_text(s: &str) -> Result<Self, String> {
        Ebmid::parse(s)
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl Sample for Ebmid {
    fn sample(g: &mut Gen) -> Self {
        let p = Ebrid::sample(g);
        let date = format!("20{:02}{:02}{:02}", g.range(18, 40), g.range(1, 12), g.range(1, 28));
        let s = eb::ebmid(&p, &date, g.below(10_000) as u32).unwrap_or_default();
        Ebmid(s)
    }
}

/// A comma-separated list of region codes (written in the 12-digit form; shorter forms are
/// accepted). At least one code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaCodes(pub Vec<RegionCode>);

impl Value for AreaCodes {
    fn parse_text(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for (i, part) in s.split(',').enumerate() {
            let part = part.trim();
            match RegionCode::parse(part) {
                Ok(r) => out.push(r),
                Err(e) => return Err(format!("area code #{} {part:?}: {e}", i + 1)),
            }
        }
        Ok(AreaCodes(out))
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.0.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","))
    }
}

impl Sample for AreaCodes {
    fn sample(g: &mut Gen) -> Self {
        let n = g.range(1, 4);
        AreaCodes((0..n).filter_map(|_| RegionCode::parse(g.pick::<&str>(SAMPLE_REGIONS)).ok()).collect())
    }
}

/// Event type, 5 characters (GB/T 35561 family: a class digit, then letters/digits; 11Bxx weather).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventType(pub String);

impl EventType {
    /// The Chinese and English names, for the common codes.
    pub fn names(&self) -> Option<(&'static str, &'static str)> {
        eb::EVENT_TYPES.iter().find(|e| e.0 == self.0).map(|e| (e.1, e.2))
    }
}

impl Value for EventType {
    fn parse_text(s: &str) -> Result<Self, String> {
        eb::check_event_type(s).map(EventType).map_err(|e| e.to_string())
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl Sample for EventType {
    fn sample(g: &mut Gen) -> Self {
        EventType(g.pick(eb::EVENT_TYPES).0.to_string())
    }
}

/// Language code: 2 or 3 lower-case ASCII letters (`zho`; minority languages such as `bod`,
/// `uig` are seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LangCode(pub String);

impl Value for LangCode {
    fn parse_text(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if (2..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_lowercase()) {
            Ok(LangCode(t.to_string()))
        } else {
            Err("must be a 2-3 letter lower-case language code such as zho".into())
        }
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.0)
    }
}

impl Sample for LangCode {
    fn sample(g: &mut Gen) -> Self {
        LangCode(g.pick(&["zho", "bod", "uig", "eng"]).to_string())
    }
}

/// A numeric code with a closed range and a meaning for each value.
macro_rules! code {
    ($(#[$m:meta])* $N:ident, [$($v:literal => $label:literal),+ $(,)?]) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $N(pub u8);
        impl $N {
            pub const VALUES: &'static [(u8, &'static str)] = &[$(($v, $label)),+];
            pub fn new(v: u8) -> Option<$N> {
                Self::VALUES.iter().any(|x| x.0 == v).then_some($N(v))
            }
            pub fn label(self) -> &'static str {
                Self::VALUES.iter().find(|x| x.0 == self.0).map(|x| x.1).unwrap_or("?")
            }
        }
        impl Value for $N {
            fn parse_text(s: &str) -> Result<Self, String> {
                let t = s.trim();
                t.parse::<u8>().ok().and_then($N::new).ok_or_else(|| {
                    let allowed: Vec<String> = Self::VALUES.iter().map(|x| format!("{} {}", x.0, x.1)).collect();
                    format!("must be one of: {}", allowed.join(", "))
                })
            }
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Owned(self.0.to_string())
            }
        }
        impl Sample for $N {
            fn sample(g: &mut Gen) -> Self {
                $N(g.pick(Self::VALUES).0)
            }
        }
        value_node!($N);
    };
}

code!(
    /// EBDResponse ResultCode.
    ResultCode,
    [0 => "received, not processed", 1 => "parsed and valid", 2 => "parse failure", 3 => "content missing",
     4 => "signature verification failed", 5 => "other error"]
);
code!(
    /// Broadcast state (EBMStateResponse, EBMBrdLog).
    BrdState,
    [0 => "not processed", 1 => "waiting", 2 => "broadcasting", 3 => "succeeded", 4 => "failed", 5 => "cancelled"]
);
code!(
    /// Resource state (the *State reports).
    ResState,
    [1 => "on/normal", 2 => "off", 3 => "fault", 4 => "recovered", 5 => "broadcasting"]
);
code!(
    /// EBM MsgType. The standard text names 1 and 2; deployments also send 3-5 for drills
    /// (platform, front-end, terminal drill) (unverified), which are accepted.
    MsgType,
    [1 => "broadcast", 2 => "cancel", 3 => "platform drill", 4 => "front-end drill", 5 => "terminal drill"]
);
code!(
    /// Severity: 1 特别重大 red .. 4 一般 blue, 0 unknown.
    Severity,
    [0 => "unknown", 1 => "特别重大 red", 2 => "重大 orange", 3 => "较大 yellow", 4 => "一般 blue"]
);

/// A text code from a fixed set of names.
macro_rules! text_enum {
    ($(#[$m:meta])* $N:ident { $($V:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $N { $($V),+ }
        impl $N {
            pub const ALL: &'static [$N] = &[$($N::$V),+];
            pub fn as_str(self) -> &'static str {
                match self { $($N::$V => $s),+ }
            }
        }
        impl Value for $N {
            fn parse_text(s: &str) -> Result<Self, String> {
                let t = s.trim();
                Self::ALL.iter().copied().find(|v| v.as_str() == t).ok_or_else(|| {
                    format!("must be one of: {}", Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                })
            }
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Borrowed(self.as_str())
            }
        }
        impl Sample for $N {
            fn sample(g: &mut Gen) -> Self {
                *g.pick(Self::ALL)
            }
        }
        value_node!($N);
    };
}

text_enum!(
    /// OMDRequest report scope.
    RptType { Full = "Full", Incremental = "Incremental" }
);
text_enum!(
    /// Per-entry data operation in Info reports: Sync (add or update) or Delete.
    DataOp { Sync = "Sync", Delete = "Delete" }
);
text_enum!(
    /// Which report an OMDRequest asks for.
    OmdType {
        EbrpsInfo = "EBRPSInfo",
        EbrstInfo = "EBRSTInfo",
        EbrasInfo = "EBRASInfo",
        EbrbsInfo = "EBRBSInfo",
        EbrdtInfo = "EBRDTInfo",
        EbrpsState = "EBRPSState",
        EbrasState = "EBRASState",
        EbrbsState = "EBRBSState",
        EbrdtState = "EBRDTState",
        EbmBrdLog = "EBMBrdLog",
    }
);

value_node!(EbdTime, Ebrid, Ebdid, Ebmid, AreaCodes, EventType, LangCode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_regions_are_valid() {
        for r in SAMPLE_REGIONS {
            assert!(RegionCode::parse(r).is_ok(), "{r}");
        }
        assert!(Ebrid::parse("45002360000000103010101").is_ok());
    }

    #[test]
    fn times_are_strict() {
        assert!(EbdTime::parse_text("2024-07-01 08:30:00").is_ok());
        assert!(EbdTime::parse_text("2024-7-01 08:30:00").is_err());
        assert!(EbdTime::parse_text("2024-02-30 08:30:00").is_err());
        assert!(EbdTime::parse_text("2024-07-01T08:30:00").is_err());
    }

    #[test]
    fn codes_name_their_allowed_values() {
        let e = Severity::parse_text("7").expect_err("7 is no severity");
        assert!(e.contains("4 一般 blue"), "{e}");
        assert_eq!(BrdState::parse_text(" 3 ").map(|b| b.label()), Ok("succeeded"));
    }
}
