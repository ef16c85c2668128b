//! CAP 1.2 XML and Atom output. Output is deterministic (fixed element order, two-space
//! indentation, no timestamps of its own), so the same alert always gives the same bytes.

use crate::geo::Geometry;
use crate::map::PlatformAlert;
use crate::model::*;
use crate::validate::parse_datetime;
use cuncun_domain::eb::severity_colour;

fn esc(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
}

struct W {
    out: String,
    depth: usize,
}

impl W {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
    fn leaf(&mut self, name: &str, v: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        esc(v, &mut self.out);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    fn opt(&mut self, name: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.leaf(name, v);
        }
    }
    fn open(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    fn pair(&mut self, name: &str, p: &ValuePair) {
        self.open(name);
        self.leaf("valueName", &p.value_name);
        self.leaf("value", &p.value);
        self.close(name);
    }
}

fn write_body(a: &Alert, w: &mut W) {
    w.leaf("identifier", &a.identifier);
    w.leaf("sender", &a.sender);
    w.leaf("sent", &a.sent);
    w.leaf("status", &a.status);
    w.leaf("msgType", &a.msg_type);
    w.opt("source", &a.source);
    w.leaf("scope", &a.scope);
    w.opt("restriction", &a.restriction);
    w.opt("addresses", &a.addresses);
    for c in &a.codes {
        w.leaf("code", c);
    }
    w.opt("note", &a.note);
    w.opt("references", &a.references);
    w.opt("incidents", &a.incidents);
    for i in &a.infos {
        w.open("info");
        w.opt("language", &i.language);
        for c in &i.categories {
            w.leaf("category", c);
        }
        w.leaf("event", &i.event);
        for r in &i.response_types {
            w.leaf("responseType", r);
        }
        w.leaf("urgency", &i.urgency);
        w.leaf("severity", &i.severity);
        w.leaf("certainty", &i.certainty);
        w.opt("audience", &i.audience);
        for e in &i.event_codes {
            w.pair("eventCode", e);
        }
        w.opt("effective", &i.effective);
        w.opt("onset", &i.onset);
        w.opt("expires", &i.expires);
        w.opt("senderName", &i.sender_name);
        w.opt("headline", &i.headline);
        w.opt("description", &i.description);
        w.opt("instruction", &i.instruction);
        w.opt("web", &i.web);
        w.opt("contact", &i.contact);
        for p in &i.parameters {
            w.pair("parameter", p);
        }
        for r in &i.resources {
            w.open("resource");
            w.leaf("resourceDesc", &r.resource_desc);
            w.leaf("mimeType", &r.mime_type);
            w.opt("size", &r.size);
            w.opt("uri", &r.uri);
            w.opt("derefUri", &r.deref_uri);
            w.opt("digest", &r.digest);
            w.close("resource");
        }
        for ar in &i.areas {
            w.open("area");
            w.leaf("areaDesc", &ar.area_desc);
            for p in &ar.polygons {
                w.leaf("polygon", p);
            }
            for c in &ar.circles {
                w.leaf("circle", c);
            }
            for g in &ar.geocodes {
                w.pair("geocode", g);
            }
            w.opt("altitude", &ar.altitude);
            w.opt("ceiling", &ar.ceiling);
            w.close("area");
        }
        w.close("info");
    }
}

fn alert_element(a: &Alert, depth: usize) -> String {
    let mut w = W { out: String::new(), depth };
    w.indent();
    w.out.push_str(&format!("<alert xmlns=\"{CAP12_NS}\">\n"));
    w.depth += 1;
    write_body(a, &mut w);
    w.depth -= 1;
    w.indent();
    w.out.push_str("</alert>\n");
    w.out
}

/// The alert as a CAP 1.2 document.
pub fn write_alert(a: &Alert) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}", alert_element(a, 0))
}

/// Unix milliseconds as a CAP dateTime in Beijing time (+08:00).
pub fn cap_time(ms: i64) -> String {
    cuncun_domain::time::local(ms).unwrap_or_default().format("%Y-%m-%dT%H:%M:%S+08:00").to_string()
}

fn fmt_geometry(g: &Geometry) -> (bool, String) {
    match g {
        Geometry::Polygon(pts) => (true, pts.iter().map(|(lon, lat)| format!("{lat},{lon}")).collect::<Vec<_>>().join(" ")),
        Geometry::Circle { lon, lat, radius_km } => (false, format!("{lat},{lon} {radius_km}")),
    }
}

/// Builds a CAP alert from the platform's message: one info block per language, severity as the
/// CAP value and as the colour parameter 预警级别, the event type as an eventCode, regions as
/// 12-digit 行政区划代码 geocodes, geometry as polygons and circles.
pub fn alert_from_platform(p: &PlatformAlert) -> Alert {
    let severity = match p.severity {
        1 => "Extreme",
        2 => "Severe",
        3 => "Moderate",
        4 => "Minor",
        _ => "Unknown",
    };
    let category = if p.event_type.starts_with("11B") { "Met" } else if p.event_type.starts_with("11") { "Geo" } else { "Other" };
    let area = if p.regions.is_empty() && p.geometries.is_empty() {
        Vec::new()
    } else {
        let mut ar = Area { area_desc: p.area_desc.join("、"), ..Default::default() };
        if ar.area_desc.is_empty() {
            ar.area_desc = "见区划代码".into();
        }
        for g in &p.geometries {
            let (poly, s) = fmt_geometry(g);
            if poly { ar.polygons.push(s) } else { ar.circles.push(s) }
        }
        ar.geocodes = p.regions.iter().map(|r| ValuePair::new("行政区划代码", r.as_str())).collect();
        vec![ar]
    };
    let infos = p
        .languages
        .iter()
        .map(|l| Info {
            language: Some(l.language.clone()),
            categories: vec![category.to_string()],
            event: l.event.clone(),
            urgency: "Immediate".into(),
            severity: severity.into(),
            certainty: "Likely".into(),
            event_codes: vec![ValuePair::new("EventType", &p.event_type)],
            effective: p.effective_ms.map(cap_time),
            onset: p.onset_ms.map(cap_time),
            expires: p.expires_ms.map(cap_time),
            sender_name: Some(l.sender_name.clone()).filter(|s| !s.is_empty()),
            headline: Some(l.headline.clone()).filter(|s| !s.is_empty()),
            description: Some(l.description.clone()).filter(|s| !s.is_empty()),
            instruction: Some(l.instruction.clone()).filter(|s| !s.is_empty()),
            parameters: vec![ValuePair::new("预警级别", severity_colour(p.severity).0)],
            resources: p
                .resources
                .iter()
                .map(|(d, m, u)| Resource {
                    resource_desc: d.clone(),
                    mime_type: m.clone(),
                    uri: Some(u.clone()).filter(|s| !s.is_empty()),
                    ..Default::default()
                })
                .collect(),
            areas: area.clone(),
            ..Default::default()
        })
        .collect();
    let references = (!p.references.is_empty()).then(|| {
        p.references.iter().map(|r| format!("{},{},{}", r.sender, r.identifier, r.sent)).collect::<Vec<_>>().join(" ")
    });
    Alert {
        identifier: p.identifier.clone(),
        sender: p.sender.clone(),
        sent: p.sent_ms.map(cap_time).unwrap_or_default(),
        status: p.status.clone(),
        msg_type: p.msg_type.clone(),
        scope: "Public".into(),
        references,
        infos,
        ..Default::default()
    }
}

fn time_of(s: &str) -> Option<i64> {
    parse_datetime(s).ok().map(|t| t.0)
}

/// The alerts that are in force at `now_ms`: status Actual, not a Cancel, not withdrawn or
/// replaced by a Cancel/Update in the same list, and not expired (an alert expires when every
/// info block that has <expires> has passed it; one without any <expires> stays in force).
pub fn active_alerts(alerts: &[Alert], now_ms: i64) -> Vec<&Alert> {
    let superseded: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| matches!(a.msg_type.as_str(), "Cancel" | "Update"))
        .flat_map(|a| a.reference_list().into_iter().map(|r| (r.sender, r.identifier)))
        .collect();
    alerts
        .iter()
        .filter(|a| a.status == "Actual" && matches!(a.msg_type.as_str(), "Alert" | "Update"))
        .filter(|a| !superseded.contains(&(a.sender.clone(), a.identifier.clone())))
        .filter(|a| {
            let exp: Vec<i64> = a.infos.iter().filter_map(|i| i.expires.as_deref().and_then(time_of)).collect();
            exp.is_empty() || exp.iter().any(|&e| e > now_ms)
        })
        .collect()
}

/// An Atom feed (RFC 4287) of `alerts`, newest first (ties by identifier), each entry carrying
/// the full CAP alert inline as application/cap+xml. `feed_url` is the feed's own URL and id.
pub fn atom_feed(feed_url: &str, title: &str, updated_ms: i64, alerts: &[&Alert]) -> String {
    let mut sorted: Vec<&Alert> = alerts.to_vec();
    sorted.sort_by(|a, b| {
        time_of(&b.sent).cmp(&time_of(&a.sent)).then_with(|| a.identifier.cmp(&b.identifier))
    });
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let line = |o: &mut String, indent: &str, name: &str, v: &str| {
        o.push_str(indent);
        o.push_str(&format!("<{name}>"));
        esc(v, o);
        o.push_str(&format!("</{name}>\n"));
    };
    line(&mut o, "  ", "id", feed_url);
    line(&mut o, "  ", "title", title);
    line(&mut o, "  ", "updated", &cap_time(updated_ms));
    o.push_str("  <link rel=\"self\" href=\"");
    esc(feed_url, &mut o);
    o.push_str("\"/>\n");
    for a in sorted {
        let info = a.infos.iter().find(|i| i.is_chinese()).or(a.infos.first());
        o.push_str("  <entry>\n");
        line(&mut o, "    ", "id", &format!("{feed_url}#{}", a.identifier));
        let t = info.map(|i| i.headline.clone().unwrap_or_else(|| i.event.clone())).unwrap_or_else(|| a.identifier.clone());
        line(&mut o, "    ", "title", &t);
        line(&mut o, "    ", "updated", &a.sent);
        o.push_str("    <author>\n");
        let author = info.and_then(|i| i.sender_name.clone()).unwrap_or_else(|| a.sender.clone());
        line(&mut o, "      ", "name", &author);
        o.push_str("    </author>\n");
        if let Some(d) = info.and_then(|i| i.description.as_deref()) {
            line(&mut o, "    ", "summary", d);
        }
        o.push_str("    <content type=\"application/cap+xml\">\n");
        o.push_str(&alert_element(a, 3));
        o.push_str("    </content>\n  </entry>\n");
    }
    o.push_str("</feed>\n");
    o
}
