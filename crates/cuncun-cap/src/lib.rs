//! OASIS CAP 1.2 for cuncun: parse (tolerant of prefixes, CDATA, extensions, XML signatures),
//! validate with located errors, map to the platform's message model, verify and create
//! enveloped XML signatures, and write CAP XML and Atom feeds. No I/O, no storage.
//!
//! [`check`] is the one entry point for a validator: the `cuncun cap check` command and an HTTP
//! import endpoint both call it. See docs/CAP.md for the rules.

pub mod c14n;
pub mod dsig;
pub mod geo;
pub mod map;
pub mod model;
pub mod parse;
pub mod validate;
pub mod write;
pub mod xml;

pub use dsig::{RsaSigner, SignatureStatus, TrustedKey};
pub use geo::Geometry;
pub use map::{PlatformAlert, map_alert};
pub use model::{Alert, Area, Info, Reference, Resource, ValuePair};
pub use write::{active_alerts, alert_from_platform, atom_feed, write_alert};

use cuncun_domain::RegionCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Error,
    Warning,
}

/// One problem, located by element path (e.g. /alert/info[2]/area[1]/polygon[1]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub level: Level,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{l}: {}: {}", self.path, self.message)
    }
}

/// Parses CAP text into the alert, its XML tree and the structural issues. Only a document that
/// is not well-formed XML is an Err.
pub fn parse_alert(text: &str) -> Result<(Alert, xml::Document, Vec<Issue>), xml::XmlError> {
    let doc = xml::parse(text)?;
    let (alert, issues) = parse::alert_from_document(&doc);
    Ok((alert, doc, issues))
}

/// Parses and validates: the alert when it has no errors, else every issue (errors and warnings).
pub fn read_alert(text: &str) -> Result<Alert, Vec<Issue>> {
    let (alert, _, mut issues) = parse_alert(text)
        .map_err(|e| vec![Issue { level: Level::Error, path: format!("line {}", e.line), message: e.message }])?;
    issues.extend(validate::validate(&alert));
    if issues.iter().any(|i| i.level == Level::Error) { Err(issues) } else { Ok(alert) }
}

pub struct CheckOptions<'a> {
    /// The sending department's trusted key; None checks only the digest of a signed alert.
    pub trusted: Option<&'a TrustedKey>,
    /// Whether an unsigned alert is refused (a per-department setting).
    pub require_signature: bool,
    /// Whether a region code exists (division data or the platform's region tree).
    pub known_region: &'a dyn Fn(&RegionCode) -> bool,
}

/// What a check understood, or why the alert is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckReport {
    pub valid: bool,
    /// Errors and warnings, located.
    pub issues: Vec<Issue>,
    pub signature: SignatureStatus,
    pub alert: Option<Alert>,
    pub mapped: Option<PlatformAlert>,
}

/// Checks one CAP document (bytes as received): well-formedness, CAP 1.2 rules, signature,
/// mapping. `valid` is false when any error was found, the signature is invalid, or the alert is
/// unsigned while a signature is required.
pub fn check(bytes: &[u8], opts: &CheckOptions<'_>) -> CheckReport {
    let not_xml = |e: xml::XmlError| CheckReport {
        valid: false,
        issues: vec![Issue { level: Level::Error, path: format!("line {}", e.line), message: e.message }],
        signature: SignatureStatus::Unsigned,
        alert: None,
        mapped: None,
    };
    let text = match xml::decode(bytes) {
        Ok(t) => t,
        Err(e) => return not_xml(e),
    };
    let (alert, doc, mut issues) = match parse_alert(text) {
        Ok(x) => x,
        Err(e) => return not_xml(e),
    };
    issues.extend(validate::validate(&alert));
    let signature = dsig::verify(&doc, opts.trusted);
    if let SignatureStatus::Invalid { reason } = &signature {
        issues.push(Issue { level: Level::Error, path: "/alert/Signature".into(), message: format!("signature refused: {reason}") });
    }
    if opts.require_signature && signature == SignatureStatus::Unsigned {
        issues.push(Issue {
            level: Level::Error,
            path: "/alert".into(),
            message: "the alert is unsigned and this sender's alerts must be signed".into(),
        });
    }
    let structurally_ok = !alert.identifier.is_empty() || !alert.infos.is_empty();
    let mapped = structurally_ok.then(|| map_alert(&alert, opts.known_region));
    if let Some(m) = &mapped {
        issues.extend(m.warnings.iter().cloned());
    }
    let valid = !issues.iter().any(|i| i.level == Level::Error);
    CheckReport { valid, issues, signature, alert: Some(alert), mapped }
}

fn fmt_ms(ms: Option<i64>) -> String {
    ms.map(write::cap_time).unwrap_or_else(|| "-".into())
}

impl CheckReport {
    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.level == Level::Error)
    }

    /// The human-readable report the CLI prints for one file.
    pub fn render(&self, name: &str) -> String {
        let mut o = String::new();
        let n_err = self.errors().count();
        o.push_str(&format!("{name}: {}\n", if self.valid { "OK".to_string() } else { format!("INVALID ({n_err} error(s))") }));
        if let (Some(a), Some(m)) = (&self.alert, &self.mapped) {
            o.push_str(&format!("  identifier: {}\n", a.identifier));
            o.push_str(&format!("  sender:     {}\n", a.sender));
            o.push_str(&format!("  sent:       {}\n", a.sent));
            o.push_str(&format!("  msgType:    {}    status: {}{}\n", a.msg_type, a.status, if m.is_drill { " (drill)" } else { "" }));
            for r in &m.references {
                o.push_str(&format!("  references: {} {} {}\n", r.sender, r.identifier, r.sent));
            }
            let (zh, en) = cuncun_domain::eb::severity_colour(m.severity);
            o.push_str(&format!("  level:      {} {zh} {en}  [{}]\n", m.severity, m.severity_rule));
            let ev_name = cuncun_domain::eb::EVENT_TYPES.iter().find(|e| e.0 == m.event_type).map(|e| e.1).unwrap_or("");
            o.push_str(&format!("  event:      {} {ev_name}  [{}]\n", m.event_type, m.event_rule));
            o.push_str(&format!("  title:      {}\n", m.title));
            o.push_str(&format!("  effective:  {}  expires: {}\n", fmt_ms(m.effective_ms), fmt_ms(m.expires_ms)));
            let langs: Vec<&str> = m.languages.iter().map(|l| l.language.as_str()).collect();
            o.push_str(&format!("  languages:  {}\n", if langs.is_empty() { "-".into() } else { langs.join(", ") }));
            if !m.area_desc.is_empty() {
                o.push_str(&format!("  areas:      {}\n", m.area_desc.join("; ")));
            }
            for r in &m.regions {
                o.push_str(&format!("  region:     {} ({r})\n", r.as_str()));
            }
            for g in &m.foreign_geocodes {
                o.push_str(&format!("  geocode:    {}={} (not a Chinese region code)\n", g.value_name, g.value));
            }
            for g in &m.geometries {
                match g {
                    Geometry::Polygon(p) => o.push_str(&format!("  polygon:    {} vertices\n", p.len().saturating_sub(1))),
                    Geometry::Circle { lon, lat, radius_km } => {
                        o.push_str(&format!("  circle:     centre {lat},{lon} radius {radius_km} km\n"))
                    }
                }
            }
        }
        o.push_str(&format!("  signature:  {}\n", self.signature.describe()));
        for i in &self.issues {
            o.push_str(&format!("  {i}\n"));
        }
        o
    }
}
