//! CAP 1.2 rules, each broken rule one located [`Issue`]; all are collected.

use crate::geo::{parse_circle, parse_polygon};
use crate::model::*;
use crate::{Issue, Level};

/// Parses a CAP dateTime "YYYY-MM-DDThh:mm:ss[.f]+hh:mm" to Unix milliseconds. A "Z" zone is
/// accepted with a warning text (CAP 1.2 forbids it); a missing zone is an error.
pub fn parse_datetime(s: &str) -> Result<(i64, Option<String>), String> {
    let s = s.trim();
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| b[i].is_ascii_digit());
    if !shape_ok {
        return Err(format!("{s:?} is not a CAP dateTime like 2026-06-01T08:30:00+08:00"));
    }
    let (core, note) = if let Some(c) = s.strip_suffix('Z') {
        (format!("{c}+00:00"), Some(format!("{s:?} uses \"Z\"; CAP 1.2 requires a numeric zone such as +00:00")))
    } else {
        // Bytes, not a str slice: the input may end in multi-byte characters.
        let tb = &b[b.len().saturating_sub(6)..];
        let tz_ok = tb.len() == 6
            && (tb[0] == b'+' || tb[0] == b'-')
            && tb[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| tb[i].is_ascii_digit());
        if !tz_ok || s.len() < 25 {
            return Err(format!("{s:?} has no time zone; CAP 1.2 requires one, e.g. +08:00"));
        }
        (s.to_string(), None)
    };
    let dt = chrono::DateTime::parse_from_rfc3339(&core).map_err(|e| format!("{s:?} is not a valid date and time: {e}"))?;
    Ok((dt.timestamp_millis(), note))
}

/// CAP's "restricted characters" in identifier and sender: white space, comma, < and &.
fn bad_id_chars(s: &str) -> Option<char> {
    s.chars().find(|c| c.is_whitespace() || matches!(c, ',' | '<' | '&'))
}

struct V {
    issues: Vec<Issue>,
}

impl V {
    fn err(&mut self, path: String, message: String) {
        self.issues.push(Issue { level: Level::Error, path, message });
    }
    fn warn(&mut self, path: String, message: String) {
        self.issues.push(Issue { level: Level::Warning, path, message });
    }
    fn required(&mut self, path: &str, name: &str, v: &str) -> bool {
        if v.trim().is_empty() {
            self.err(format!("{path}/{name}"), format!("required element <{name}> is missing or empty"));
            false
        } else {
            true
        }
    }
    fn enumeration(&mut self, path: String, name: &str, v: &str, allowed: &[&str]) {
        if !v.is_empty() && !allowed.contains(&v) {
            let hint = allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v))
                .map(|a| format!(" (values are case-sensitive: did you mean {a}?)"))
                .unwrap_or_default();
            self.err(path, format!("<{name}> {v:?} is not one of {}{hint}", allowed.join(", ")));
        }
    }
    fn datetime(&mut self, path: String, v: &str) -> Option<i64> {
        match parse_datetime(v) {
            Ok((ms, note)) => {
                if let Some(n) = note {
                    self.warn(path, n);
                }
                Some(ms)
            }
            Err(e) => {
                self.err(path, e);
                None
            }
        }
    }
    fn pair(&mut self, path: String, p: &ValuePair) {
        if p.value_name.is_empty() {
            self.err(format!("{path}/valueName"), "required element <valueName> is missing or empty".into());
        }
        if p.value.is_empty() {
            self.err(format!("{path}/value"), "required element <value> is missing or empty".into());
        }
    }
}

/// Checks every CAP 1.2 rule this platform relies on; returns all issues found.
pub fn validate(a: &Alert) -> Vec<Issue> {
    let mut v = V { issues: Vec::new() };
    let p = "/alert";
    for (name, val) in [("identifier", &a.identifier), ("sender", &a.sender)] {
        if v.required(p, name, val)
            && let Some(c) = bad_id_chars(val)
        {
            v.err(format!("{p}/{name}"), format!("<{name}> must not contain {c:?} (spaces, commas, < and & are restricted)"));
        }
    }
    let sent = if v.required(p, "sent", &a.sent) { v.datetime(format!("{p}/sent"), &a.sent) } else { None };
    if v.required(p, "status", &a.status) {
        v.enumeration(format!("{p}/status"), "status", &a.status, STATUS);
    }
    if v.required(p, "msgType", &a.msg_type) {
        v.enumeration(format!("{p}/msgType"), "msgType", &a.msg_type, MSG_TYPE);
    }
    if v.required(p, "scope", &a.scope) {
        v.enumeration(format!("{p}/scope"), "scope", &a.scope, SCOPE);
    }
    if a.scope == "Restricted" && a.restriction.as_deref().is_none_or(|r| r.is_empty()) {
        v.err(format!("{p}/restriction"), "scope is Restricted, so <restriction> is required".into());
    }
    if a.scope == "Private" && a.addresses.as_deref().is_none_or(|r| r.is_empty()) {
        v.err(format!("{p}/addresses"), "scope is Private, so <addresses> is required".into());
    }
    match a.references.as_deref() {
        Some(r) => {
            let list = parse_references(r);
            if list.is_empty() {
                v.err(format!("{p}/references"), "<references> is empty".into());
            }
            for (i, item) in list.iter().enumerate() {
                match item {
                    Ok(rf) => {
                        if let Err(e) = parse_datetime(&rf.sent) {
                            v.err(format!("{p}/references"), format!("reference {} sent time: {e}", i + 1));
                        } else if let (Some(sent), Ok((rs, _))) = (sent, parse_datetime(&rf.sent))
                            && rs > sent
                        {
                            v.warn(format!("{p}/references"), format!("reference {} was sent after this alert", i + 1));
                        }
                    }
                    Err(entry) => v.err(
                        format!("{p}/references"),
                        format!("reference {} {entry:?} is not a \"sender,identifier,sent\" triple", i + 1),
                    ),
                }
            }
        }
        None if matches!(a.msg_type.as_str(), "Update" | "Cancel") => v.err(
            format!("{p}/references"),
            format!("msgType {} requires <references> naming the earlier alert(s) as sender,identifier,sent", a.msg_type),
        ),
        None if matches!(a.msg_type.as_str(), "Ack" | "Error") => {
            v.warn(format!("{p}/references"), format!("msgType {} should name the alert it answers in <references>", a.msg_type))
        }
        None => {}
    }
    if a.infos.is_empty() && a.msg_type == "Alert" {
        v.warn(p.to_string(), "an Alert without <info> carries nothing to broadcast".into());
    }
    for (i, info) in a.infos.iter().enumerate() {
        validate_info(&mut v, info, &format!("{p}/info[{}]", i + 1), sent);
    }
    v.issues
}

fn validate_info(v: &mut V, info: &Info, p: &str, sent: Option<i64>) {
    if let Some(l) = &info.language {
        let ok = !l.is_empty()
            && l.split('-').all(|s| !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ok {
            v.err(format!("{p}/language"), format!("<language> {l:?} is not an RFC 3066 tag such as zh-CN or en-US"));
        }
    }
    if info.categories.is_empty() {
        v.err(format!("{p}/category"), "required element <category> is missing".into());
    }
    for (i, c) in info.categories.iter().enumerate() {
        v.enumeration(format!("{p}/category[{}]", i + 1), "category", c, CATEGORY);
    }
    v.required(p, "event", &info.event);
    for (i, c) in info.response_types.iter().enumerate() {
        v.enumeration(format!("{p}/responseType[{}]", i + 1), "responseType", c, RESPONSE_TYPE);
    }
    if v.required(p, "urgency", &info.urgency) {
        v.enumeration(format!("{p}/urgency"), "urgency", &info.urgency, URGENCY);
    }
    if v.required(p, "severity", &info.severity) {
        v.enumeration(format!("{p}/severity"), "severity", &info.severity, SEVERITY);
    }
    if v.required(p, "certainty", &info.certainty) {
        if info.certainty == "Very Likely" {
            v.warn(format!("{p}/certainty"), "\"Very Likely\" is deprecated in CAP 1.2; read as Likely".into());
        } else {
            v.enumeration(format!("{p}/certainty"), "certainty", &info.certainty, CERTAINTY);
        }
    }
    for (i, ec) in info.event_codes.iter().enumerate() {
        v.pair(format!("{p}/eventCode[{}]", i + 1), ec);
    }
    for (i, pm) in info.parameters.iter().enumerate() {
        v.pair(format!("{p}/parameter[{}]", i + 1), pm);
    }
    let mut times = [None, None, None];
    for (k, (name, val)) in [("effective", &info.effective), ("onset", &info.onset), ("expires", &info.expires)]
        .into_iter()
        .enumerate()
    {
        if let Some(val) = val {
            times[k] = v.datetime(format!("{p}/{name}"), val);
        }
    }
    if let Some(exp) = times[2] {
        let start = times[0].or(times[1]).or(sent);
        if start.is_some_and(|s| exp <= s) {
            v.err(format!("{p}/expires"), "<expires> is not after <effective>/<onset>/<sent>".into());
        }
    }
    for (i, r) in info.resources.iter().enumerate() {
        let rp = format!("{p}/resource[{}]", i + 1);
        v.required(&rp, "resourceDesc", &r.resource_desc);
        v.required(&rp, "mimeType", &r.mime_type);
        if let Some(s) = &r.size
            && s.parse::<u64>().is_err()
        {
            v.err(format!("{rp}/size"), format!("<size> {s:?} is not a whole number of bytes"));
        }
        if let Some(d) = &r.digest
            && !(d.len() == 40 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            v.warn(format!("{rp}/digest"), "<digest> should be a SHA-1 hash in 40 hex digits".into());
        }
    }
    for (i, a) in info.areas.iter().enumerate() {
        let ap = format!("{p}/area[{}]", i + 1);
        v.required(&ap, "areaDesc", &a.area_desc);
        for (k, poly) in a.polygons.iter().enumerate() {
            if let Err(es) = parse_polygon(poly) {
                for e in es {
                    v.err(format!("{ap}/polygon[{}]", k + 1), e);
                }
            }
        }
        for (k, c) in a.circles.iter().enumerate() {
            if let Err(es) = parse_circle(c) {
                for e in es {
                    v.err(format!("{ap}/circle[{}]", k + 1), e);
                }
            }
        }
        for (k, g) in a.geocodes.iter().enumerate() {
            v.pair(format!("{ap}/geocode[{}]", k + 1), g);
        }
        let num = |s: &Option<String>| s.as_ref().map(|x| x.parse::<f64>().map_err(|_| x.clone()));
        if let Some(Err(x)) = num(&a.altitude) {
            v.err(format!("{ap}/altitude"), format!("<altitude> {x:?} is not a number (feet)"));
        }
        if let Some(Err(x)) = num(&a.ceiling) {
            v.err(format!("{ap}/ceiling"), format!("<ceiling> {x:?} is not a number (feet)"));
        }
        if a.ceiling.is_some() && a.altitude.is_none() {
            v.err(format!("{ap}/ceiling"), "<ceiling> needs <altitude>".into());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("2026-06-01T08:00:00+08:00").unwrap().0, 1_780_272_000_000);
        assert!(parse_datetime("2026-06-01T08:00:00").unwrap_err().contains("no time zone"));
        assert!(parse_datetime("2026-06-01T08:00:00Z").unwrap().1.is_some());
        assert!(parse_datetime("2026-13-01T08:00:00+08:00").is_err());
        assert!(parse_datetime("2026/06/01 08:00").is_err());
        assert!(parse_datetime("").is_err());
        assert!(parse_datetime("2026-07-12T08:15:00+08:0>奉节县0").is_err(), "multi-byte tail");
    }
}
