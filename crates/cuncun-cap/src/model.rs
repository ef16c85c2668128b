//! The CAP 1.2 alert as written in the document. Values are kept as the text the sender wrote
//! (trimmed), so an alert with an unknown enumeration value still parses and is reported by
//! validation with its location; typed views (geometry, dates, references) are derived.

use serde::{Deserialize, Serialize};

pub const CAP12_NS: &str = "urn:oasis:names:tc:emergency:cap:1.2";

pub const STATUS: &[&str] = &["Actual", "Exercise", "System", "Test", "Draft"];
pub const MSG_TYPE: &[&str] = &["Alert", "Update", "Cancel", "Ack", "Error"];
pub const SCOPE: &[&str] = &["Public", "Restricted", "Private"];
pub const CATEGORY: &[&str] =
    &["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"];
pub const RESPONSE_TYPE: &[&str] =
    &["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"];
pub const URGENCY: &[&str] = &["Immediate", "Expected", "Future", "Past", "Unknown"];
pub const SEVERITY: &[&str] = &["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
pub const CERTAINTY: &[&str] = &["Observed", "Likely", "Possible", "Unlikely", "Unknown"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValuePair {
    pub value_name: String,
    pub value: String,
}

impl ValuePair {
    pub fn new(name: &str, value: &str) -> ValuePair {
        ValuePair { value_name: name.to_string(), value: value.to_string() }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub identifier: String,
    pub sender: String,
    pub sent: String,
    pub status: String,
    pub msg_type: String,
    pub source: Option<String>,
    pub scope: String,
    pub restriction: Option<String>,
    pub addresses: Option<String>,
    pub codes: Vec<String>,
    pub note: Option<String>,
    pub references: Option<String>,
    pub incidents: Option<String>,
    pub infos: Vec<Info>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// As written; CAP's default when absent is "en-US" (see [`Info::language_or_default`]).
    pub language: Option<String>,
    pub categories: Vec<String>,
    pub event: String,
    pub response_types: Vec<String>,
    pub urgency: String,
    pub severity: String,
    pub certainty: String,
    pub audience: Option<String>,
    pub event_codes: Vec<ValuePair>,
    pub effective: Option<String>,
    pub onset: Option<String>,
    pub expires: Option<String>,
    pub sender_name: Option<String>,
    pub headline: Option<String>,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub web: Option<String>,
    pub contact: Option<String>,
    pub parameters: Vec<ValuePair>,
    pub resources: Vec<Resource>,
    pub areas: Vec<Area>,
}

impl Info {
    pub fn language_or_default(&self) -> &str {
        self.language.as_deref().filter(|l| !l.is_empty()).unwrap_or("en-US")
    }
    pub fn is_chinese(&self) -> bool {
        self.language_or_default().to_ascii_lowercase().starts_with("zh")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    pub resource_desc: String,
    pub mime_type: String,
    pub size: Option<String>,
    pub uri: Option<String>,
    pub deref_uri: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    pub area_desc: String,
    pub polygons: Vec<String>,
    pub circles: Vec<String>,
    pub geocodes: Vec<ValuePair>,
    pub altitude: Option<String>,
    pub ceiling: Option<String>,
}

/// One "sender,identifier,sent" triple of `references`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub sender: String,
    pub identifier: String,
    pub sent: String,
}

impl Alert {
    /// The references triples; malformed entries are skipped (validation reports them).
    pub fn reference_list(&self) -> Vec<Reference> {
        self.references.as_deref().map(parse_references).unwrap_or_default().into_iter().filter_map(Result::ok).collect()
    }
}

/// Splits `references` into triples; an entry that is not exactly three comma-separated
/// non-empty parts is an Err carrying the entry.
pub fn parse_references(s: &str) -> Vec<Result<Reference, String>> {
    s.split_whitespace()
        .map(|entry| {
            let parts: Vec<&str> = entry.split(',').collect();
            match parts.as_slice() {
                [a, b, c] if !a.is_empty() && !b.is_empty() && !c.is_empty() => {
                    Ok(Reference { sender: a.to_string(), identifier: b.to_string(), sent: c.to_string() })
                }
                _ => Err(entry.to_string()),
            }
        })
        .collect()
}
