//! CAP alert -> the platform's message model (a plain struct the workflow consumes).
//!
//! Severity (1 red .. 4 blue), first rule that applies wins:
//! 1. a colour in a parameter whose valueName names a level or colour (预警级别, 预警颜色, level,
//!    colour/color, awareness_level, severity...), e.g. `红色`, `橙色预警`, `Orange`, `2; yellow; Moderate`;
//! 2. a colour word followed by 预警 in a headline or event (红色预警, 橙色预警, 黄色预警, 蓝色预警);
//! 3. the CAP severity of the first info block: Extreme 1, Severe 2, Moderate 3, Minor 4;
//!    Unknown (or nothing) maps to 4 with a warning.
//!
//! Because Chinese warnings are issued by colour and the colour is what the public hears, a colour
//! found by rules 1-2 wins over a contradicting CAP severity (a warning notes the disagreement).
//!
//! Event type (national 5-character code), first rule that applies wins:
//! 1. an eventCode value that is a well-formed national code (digit + 4 capitals/digits, e.g. 11B03);
//! 2. a Chinese event name in event/headline (longest name first: 雷雨大风 before 大风);
//! 3. an English keyword in event/headline (MeteoAlarm awareness_type and NWS event names);
//! 4. otherwise the generic code ([`GENERIC_MET`] for category Met, else [`GENERIC_OTHER`]) and a warning.

use crate::geo::{Geometry, parse_circle, parse_polygon};
use crate::model::{Alert, Info, Reference};
use crate::validate::parse_datetime;
use crate::{Issue, Level};
use cuncun_domain::RegionCode;
use cuncun_domain::eb::{EVENT_TYPES, check_event_type};
use serde::{Deserialize, Serialize};

/// Used when no rule finds an event type: other meteorological warning.
pub const GENERIC_MET: &str = "11B99";
/// Used when no rule finds an event type and the category is not Met.
pub const GENERIC_OTHER: &str = "10000";

/// Event names used by Chinese warnings that are not in the composer's table
/// (`cuncun_domain::eb::EVENT_TYPES`), or that name one of its codes differently. The codes follow
/// the GB/T 35561 family but are unverified: data, not logic, so a deployment can correct them.
pub const EXTRA_EVENT_NAMES: &[(&str, &str)] = &[
    ("山洪", "11A06"),
    ("热带风暴", "11B01"),
    ("强降雨", "11B03"),
    ("低温", "11B05"),
    ("沙尘", "11B07"),
    ("强对流", "11B20"),
    ("冰冻", "11B21"),
    ("电线积冰", "11B21"),
    ("森林火灾", "11B25"),
    ("草原火险", "11B26"),
    ("滑坡", "11E01"),
    ("泥石流", "11E01"),
    ("崩塌", "11E01"),
    ("地质灾害气象风险", "11E01"),
];

/// English keywords (lower case) to codes, checked in order.
pub const ENGLISH_EVENT_WORDS: &[(&str, &str)] = &[
    ("typhoon", "11B01"),
    ("hurricane", "11B01"),
    ("tropical storm", "11B01"),
    ("tornado", "11B02"),
    ("thunderstorm", "11B20"),
    ("flash flood", "11A06"),
    ("flood", "11A01"),
    ("rain", "11B03"),
    ("blizzard", "11B04"),
    ("winter storm", "11B04"),
    ("snow", "11B04"),
    ("cold", "11B05"),
    ("low temperature", "11B05"),
    ("gale", "11B06"),
    ("wind", "11B06"),
    ("dust", "11B07"),
    ("sand", "11B07"),
    ("heat", "11B09"),
    ("high temperature", "11B09"),
    ("lightning", "11B14"),
    ("hail", "11B15"),
    ("frost", "11B16"),
    ("freeze", "11B16"),
    ("fog", "11B17"),
    ("haze", "11B19"),
    ("ice", "11B21"),
    ("icing", "11B21"),
    ("drought", "11B22"),
    ("forest fire", "11B25"),
    ("fire", "11B25"),
    ("earthquake", "11D01"),
    ("landslide", "11E01"),
    ("avalanche", "11E01"),
];

const COLOURS: &[(&str, u8)] = &[
    ("红色", 1),
    ("橙色", 2),
    ("黄色", 3),
    ("蓝色", 4),
    ("red", 1),
    ("orange", 2),
    ("amber", 2),
    ("yellow", 3),
    ("blue", 4),
    ("green", 4),
];

/// One info block's texts, kept for every language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LangText {
    pub language: String,
    pub event: String,
    pub headline: String,
    pub description: String,
    pub instruction: String,
    pub sender_name: String,
}

/// A geocode that is not a Chinese administrative code: kept so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignGeocode {
    pub value_name: String,
    pub value: String,
}

/// What the platform needs from a CAP alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformAlert {
    pub identifier: String,
    pub sender: String,
    pub sent_ms: Option<i64>,
    /// Alert, Update, Cancel, Ack, Error.
    pub msg_type: String,
    pub status: String,
    /// Status Exercise or Test: a drill, never a real warning.
    pub is_drill: bool,
    /// 1 red .. 4 blue.
    pub severity: u8,
    /// Which rule set the severity, in words.
    pub severity_rule: String,
    /// National 5-character event type.
    pub event_type: String,
    pub event_rule: String,
    /// The title and text to broadcast: from the Chinese info block if there is one, else the first.
    pub title: String,
    pub text: String,
    /// Every info block's texts (zh-CN, en-US, ...).
    pub languages: Vec<LangText>,
    /// Areas as 12-digit region codes (from geocodes), without duplicates, sorted.
    pub regions: Vec<RegionCode>,
    /// Geocodes that look administrative but are not valid or not known here.
    pub unknown_geocodes: Vec<String>,
    pub foreign_geocodes: Vec<ForeignGeocode>,
    /// Polygons and circles of every area.
    pub geometries: Vec<Geometry>,
    pub area_desc: Vec<String>,
    /// For Update and Cancel: the earlier alerts this one replaces or withdraws.
    pub references: Vec<Reference>,
    pub effective_ms: Option<i64>,
    pub onset_ms: Option<i64>,
    pub expires_ms: Option<i64>,
    /// Audio and other resources: (description, MIME type, URI).
    pub resources: Vec<(String, String, String)>,
    pub warnings: Vec<Issue>,
}

impl PlatformAlert {
    /// The ids of the points (id, lon, lat) inside this alert's polygons and circles.
    pub fn select_inside<I: Clone>(&self, points: &[(I, f64, f64)]) -> Vec<I> {
        crate::geo::select_inside(&self.geometries, points)
    }
    pub fn is_cancel(&self) -> bool {
        self.msg_type == "Cancel"
    }
    pub fn is_update(&self) -> bool {
        self.msg_type == "Update"
    }
}

fn colour_in(text: &str, need_suffix: bool) -> Option<(u8, &'static str)> {
    let lower = text.to_lowercase();
    COLOURS
        .iter()
        .filter(|(w, _)| !need_suffix || w.chars().all(|c| !c.is_ascii()))
        .filter_map(|(w, lvl)| {
            let found = if need_suffix {
                lower.find(&format!("{w}预警"))
            } else if w.is_ascii() {
                // Whole words only: "blue" but not "bluebell".
                lower
                    .split(|c: char| !c.is_ascii_alphabetic())
                    .position(|t| t == *w)
                    .map(|_| 0)
            } else {
                lower.find(w)
            };
            found.map(|_| (*lvl, *w))
        })
        .next()
}

fn level_param(name: &str) -> bool {
    let n = name.to_lowercase();
    ["级别", "颜色", "等级", "level", "colour", "color", "severity", "awareness_level"].iter().any(|k| n.contains(k))
}

fn severity_of(a: &Alert, warnings: &mut Vec<Issue>) -> (u8, String) {
    let cap_level = a.infos.first().and_then(|i| match i.severity.as_str() {
        "Extreme" => Some(1),
        "Severe" => Some(2),
        "Moderate" => Some(3),
        "Minor" => Some(4),
        _ => None,
    });
    let mut found: Option<(u8, String)> = None;
    'outer: for (ii, info) in a.infos.iter().enumerate() {
        for (pi, p) in info.parameters.iter().enumerate() {
            if level_param(&p.value_name)
                && let Some((lvl, w)) = colour_in(&p.value, false)
            {
                found = Some((lvl, format!("colour {w:?} in /alert/info[{}]/parameter[{}] ({})", ii + 1, pi + 1, p.value_name)));
                break 'outer;
            }
        }
    }
    if found.is_none() {
        'outer2: for (ii, info) in a.infos.iter().enumerate() {
            for (name, t) in [("headline", info.headline.as_deref().unwrap_or("")), ("event", info.event.as_str())] {
                if let Some((lvl, w)) = colour_in(t, true) {
                    found = Some((lvl, format!("\"{w}预警\" in /alert/info[{}]/{name}", ii + 1)));
                    break 'outer2;
                }
            }
        }
    }
    match (found, cap_level) {
        (Some((lvl, why)), cap) => {
            if let Some(c) = cap
                && c != lvl
            {
                warnings.push(Issue {
                    level: Level::Warning,
                    path: "/alert/info[1]/severity".into(),
                    message: format!("CAP severity says level {c} but the warning colour says {lvl}; the colour wins"),
                });
            }
            (lvl, why)
        }
        (None, Some(c)) => (c, format!("CAP severity {}", a.infos[0].severity)),
        (None, None) => {
            if !a.infos.is_empty() {
                warnings.push(Issue {
                    level: Level::Warning,
                    path: "/alert/info[1]/severity".into(),
                    message: "severity Unknown and no warning colour found; mapped to 4 (blue)".into(),
                });
            }
            (4, "no severity or colour; lowest level 4".into())
        }
    }
}

/// The national code for an event name in Chinese or English, if any table knows it.
pub fn event_code_for_text(text: &str) -> Option<(&'static str, &'static str)> {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        let mut names: Vec<(&'static str, &'static str)> =
            EVENT_TYPES.iter().map(|e| (e.1, e.0)).chain(EXTRA_EVENT_NAMES.iter().copied()).collect();
        names.retain(|(n, _)| !n.contains('/'));
        names.sort_by_key(|(n, _)| std::cmp::Reverse(n.chars().count()));
        names
    });
    if let Some(&(n, c)) = names.iter().find(|(n, _)| text.contains(n)) {
        return Some((c, n));
    }
    // English: whole words or phrases only ("ice" must not match "notice").
    let words: String = text.to_lowercase().chars().map(|c| if c.is_ascii_alphabetic() { c } else { ' ' }).collect();
    let padded = format!(" {} ", words.split_whitespace().collect::<Vec<_>>().join(" "));
    ENGLISH_EVENT_WORDS
        .iter()
        .find(|(w, _)| padded.contains(&format!(" {w} ")) || padded.contains(&format!(" {w}s ")) || padded.contains(&format!(" {w}ing ")))
        .map(|&(w, c)| (c, w))
}

fn event_of(a: &Alert, warnings: &mut Vec<Issue>) -> (String, String) {
    for (ii, info) in a.infos.iter().enumerate() {
        for (ei, ec) in info.event_codes.iter().enumerate() {
            if let Ok(code) = check_event_type(&ec.value) {
                return (code, format!("/alert/info[{}]/eventCode[{}] ({})", ii + 1, ei + 1, ec.value_name));
            }
        }
    }
    for (ii, info) in a.infos.iter().enumerate() {
        let awareness = info
            .parameters
            .iter()
            .filter(|p| p.value_name.eq_ignore_ascii_case("awareness_type"))
            .map(|p| p.value.as_str());
        let texts = [info.event.as_str(), info.headline.as_deref().unwrap_or("")];
        for t in texts.into_iter().chain(awareness) {
            if let Some((code, word)) = event_code_for_text(t) {
                return (code.to_string(), format!("{word:?} in /alert/info[{}] event text", ii + 1));
            }
        }
    }
    let met = a.infos.iter().any(|i| i.categories.iter().any(|c| c == "Met"));
    let code = if met { GENERIC_MET } else { GENERIC_OTHER };
    if !a.infos.is_empty() {
        warnings.push(Issue {
            level: Level::Warning,
            path: "/alert/info[1]/event".into(),
            message: format!(
                "event {:?} has no known national code; generic {code} used",
                a.infos.first().map(|i| i.event.as_str()).unwrap_or("")
            ),
        });
    }
    (code.to_string(), "generic (no code found)".into())
}

fn is_admin_geocode_name(name: &str) -> bool {
    let n = name.to_lowercase();
    ["2260", "adcode", "areacode", "area_code", "regioncode", "region_code", "admin", "division"]
        .iter()
        .any(|k| n.contains(k))
}

fn first_time(a: &Alert, f: impl Fn(&Info) -> Option<&String>) -> Option<i64> {
    a.infos.iter().filter_map(|i| f(i).and_then(|s| parse_datetime(s).ok()).map(|t| t.0)).next()
}

/// Maps a parsed alert. `known_region` says whether a region code exists in this platform's
/// division data (the CLI uses the bundled national table; a server its region tree).
pub fn map_alert(a: &Alert, known_region: &dyn Fn(&RegionCode) -> bool) -> PlatformAlert {
    let mut warnings = Vec::new();
    let (severity, severity_rule) = severity_of(a, &mut warnings);
    let (event_type, event_rule) = event_of(a, &mut warnings);
    let primary = a.infos.iter().find(|i| i.is_chinese()).or(a.infos.first());
    let title = primary.map(|i| i.headline.clone().unwrap_or_else(|| i.event.clone())).unwrap_or_default();
    let text = primary
        .map(|i| {
            [i.description.as_deref(), i.instruction.as_deref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let languages = a
        .infos
        .iter()
        .map(|i| LangText {
            language: i.language_or_default().to_string(),
            event: i.event.clone(),
            headline: i.headline.clone().unwrap_or_default(),
            description: i.description.clone().unwrap_or_default(),
            instruction: i.instruction.clone().unwrap_or_default(),
            sender_name: i.sender_name.clone().unwrap_or_default(),
        })
        .collect();
    // Sets keep de-duplication linear in the number of areas (a hostile file may hold thousands).
    let mut regions = std::collections::BTreeSet::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut foreign = Vec::new();
    let mut geometries = Vec::new();
    let mut seen: std::collections::HashSet<(u8, &str)> = std::collections::HashSet::new();
    let mut foreign_seen: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    let mut area_desc = Vec::new();
    let mut resources = Vec::new();
    for (ii, info) in a.infos.iter().enumerate() {
        for r in &info.resources {
            let uri = r.uri.clone().unwrap_or_default();
            if !resources.iter().any(|x: &(String, String, String)| x.2 == uri && x.1 == r.mime_type) {
                resources.push((r.resource_desc.clone(), r.mime_type.clone(), uri));
            }
        }
        for (ai, area) in info.areas.iter().enumerate() {
            if !area_desc.contains(&area.area_desc) {
                area_desc.push(area.area_desc.clone());
            }
            for poly in &area.polygons {
                if seen.insert((0, poly.as_str()))
                    && let Ok(g) = parse_polygon(poly)
                {
                    geometries.push(g);
                }
            }
            for c in &area.circles {
                if seen.insert((1, c.as_str()))
                    && let Ok(g) = parse_circle(c)
                {
                    geometries.push(g);
                }
            }
            for (gi, g) in area.geocodes.iter().enumerate() {
                let v = g.value.trim();
                let digits = v.bytes().all(|b| b.is_ascii_digit());
                let admin_len = matches!(v.len(), 6 | 9 | 12);
                // Administrative when the valueName says so (or is Chinese); other schemes
                // (SAME, UGC, EMMA_ID, WARNCELLID, NUTS...) are kept as foreign geocodes.
                let chinese_name = g.value_name.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
                if !(is_admin_geocode_name(&g.value_name) || chinese_name) {
                    if foreign_seen.insert((g.value_name.as_str(), v)) {
                        foreign.push(ForeignGeocode { value_name: g.value_name.clone(), value: v.to_string() });
                    }
                    continue;
                }
                let path = format!("/alert/info[{}]/area[{}]/geocode[{}]", ii + 1, ai + 1, gi + 1);
                let parsed = if digits && admin_len { RegionCode::parse(v).map_err(|e| e.to_string()) } else {
                    Err(format!("{v:?} is not a 6, 9 or 12-digit administrative code"))
                };
                match parsed {
                    Ok(rc) if known_region(&rc) => {
                        regions.insert(rc);
                    }
                    Ok(rc) => {
                        if seen.insert((4, v)) {
                            unknown.push(v.to_string());
                            warnings.push(Issue {
                                level: Level::Warning,
                                path,
                                message: format!("region code {v} ({rc}) is not in the division data; ignored"),
                            });
                        }
                    }
                    Err(e) => {
                        if seen.insert((4, v)) {
                            unknown.push(v.to_string());
                            warnings.push(Issue { level: Level::Warning, path, message: e });
                        }
                    }
                }
            }
        }
    }
    let regions: Vec<RegionCode> = regions.into_iter().collect();
    let sent_ms = parse_datetime(&a.sent).ok().map(|t| t.0);
    PlatformAlert {
        identifier: a.identifier.clone(),
        sender: a.sender.clone(),
        sent_ms,
        msg_type: a.msg_type.clone(),
        status: a.status.clone(),
        is_drill: matches!(a.status.as_str(), "Exercise" | "Test"),
        severity,
        severity_rule,
        event_type,
        event_rule,
        title,
        text,
        languages,
        regions,
        unknown_geocodes: unknown,
        foreign_geocodes: foreign,
        geometries,
        area_desc,
        references: a.reference_list(),
        effective_ms: first_time(a, |i| i.effective.as_ref()).or(sent_ms),
        onset_ms: first_time(a, |i| i.onset.as_ref()),
        expires_ms: first_time(a, |i| i.expires.as_ref()),
        resources,
        warnings,
    }
}
