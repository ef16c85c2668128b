//! From the XML tree to [`Alert`]: tolerant of namespace prefixes, whitespace, CDATA, comments,
//! extension elements in other namespaces and the XML Signature; reports structural problems
//! (duplicates, unknown CAP elements, markup inside values) as located issues.

use crate::model::*;
use crate::xml::{Document, Element};
use crate::{Issue, Level};

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

struct Cx {
    issues: Vec<Issue>,
}

impl Cx {
    fn err(&mut self, path: &str, msg: String) {
        self.issues.push(Issue { level: Level::Error, path: path.to_string(), message: msg });
    }
    fn warn(&mut self, path: &str, msg: String) {
        self.issues.push(Issue { level: Level::Warning, path: path.to_string(), message: msg });
    }
    /// The trimmed text of a leaf element.
    fn leaf(&mut self, e: &Element, path: &str) -> String {
        if e.elements().next().is_some() {
            self.warn(path, format!("<{}> should hold text only; child elements ignored", e.local));
        }
        e.text().trim().to_string()
    }
    fn single(&mut self, slot: &mut Option<String>, e: &Element, path: &str) {
        let v = self.leaf(e, path);
        if slot.is_some() {
            self.err(path, format!("<{}> appears more than once", e.local));
        } else {
            *slot = Some(v);
        }
    }
    fn pair(&mut self, e: &Element, path: &str, ns: Option<&str>) -> ValuePair {
        let mut name = None;
        let mut value = None;
        for c in e.elements() {
            if c.ns.as_deref() != ns {
                continue;
            }
            let p = format!("{path}/{}", c.local);
            match c.local.as_str() {
                "valueName" => self.single(&mut name, c, &p),
                "value" => self.single(&mut value, c, &p),
                other => self.warn(&p, format!("unknown element <{other}> ignored")),
            }
        }
        if e.elements().next().is_none() && !e.text().trim().is_empty() {
            self.err(path, format!("<{}> must hold <valueName> and <value> elements, not bare text", e.local));
        }
        ValuePair { value_name: name.unwrap_or_default(), value: value.unwrap_or_default() }
    }
}

/// Counts occurrences of repeatable children so paths read info[1], info[2], ...
#[derive(Default)]
struct Counter(std::collections::HashMap<String, usize>);
impl Counter {
    fn next(&mut self, name: &str) -> usize {
        let n = self.0.entry(name.to_string()).or_insert(0);
        *n += 1;
        *n
    }
}

/// Reads the alert. Returns the alert (possibly incomplete) and the structural issues.
pub fn alert_from_document(doc: &Document) -> (Alert, Vec<Issue>) {
    let mut cx = Cx { issues: Vec::new() };
    let root = &doc.root;
    let ns = root.ns.as_deref();
    if root.local != "alert" {
        cx.err("/", format!("root element is <{}>, expected <alert>", root.qname()));
        return (Alert::default(), cx.issues);
    }
    match ns {
        Some(CAP12_NS) => {}
        None => cx.warn("/alert", format!("<alert> has no namespace; expected xmlns=\"{CAP12_NS}\"")),
        Some(other) => cx.err(
            "/alert",
            format!("namespace is {other}; only CAP 1.2 ({CAP12_NS}) is supported"),
        ),
    }
    let mut a = Alert::default();
    let (mut identifier, mut sender, mut sent, mut status, mut msg_type, mut scope) =
        (None, None, None, None, None, None);
    let mut counter = Counter::default();
    for c in root.elements() {
        if c.ns.as_deref() != ns {
            // Extension elements and the XML signature live in other namespaces.
            continue;
        }
        let p = format!("/alert/{}", c.local);
        match c.local.as_str() {
            "identifier" => cx.single(&mut identifier, c, &p),
            "sender" => cx.single(&mut sender, c, &p),
            "sent" => cx.single(&mut sent, c, &p),
            "status" => cx.single(&mut status, c, &p),
            "msgType" => cx.single(&mut msg_type, c, &p),
            "source" => cx.single(&mut a.source, c, &p),
            "scope" => cx.single(&mut scope, c, &p),
            "restriction" => cx.single(&mut a.restriction, c, &p),
            "addresses" => cx.single(&mut a.addresses, c, &p),
            "code" => {
                let n = counter.next("code");
                let v = cx.leaf(c, &format!("/alert/code[{n}]"));
                a.codes.push(v);
            }
            "note" => cx.single(&mut a.note, c, &p),
            "references" => cx.single(&mut a.references, c, &p),
            "incidents" => cx.single(&mut a.incidents, c, &p),
            "info" => {
                let n = counter.next("info");
                let info = read_info(&mut cx, c, &format!("/alert/info[{n}]"), ns);
                a.infos.push(info);
            }
            other => cx.warn(&p, format!("unknown CAP element <{other}> ignored")),
        }
    }
    a.identifier = identifier.unwrap_or_default();
    a.sender = sender.unwrap_or_default();
    a.sent = sent.unwrap_or_default();
    a.status = status.unwrap_or_default();
    a.msg_type = msg_type.unwrap_or_default();
    a.scope = scope.unwrap_or_default();
    (a, cx.issues)
}

fn read_info(cx: &mut Cx, e: &Element, path: &str, ns: Option<&str>) -> Info {
    let mut i = Info::default();
    let (mut event, mut urgency, mut severity, mut certainty) = (None, None, None, None);
    let mut counter = Counter::default();
    for c in e.elements() {
        if c.ns.as_deref() != ns {
            continue;
        }
        let p = format!("{path}/{}", c.local);
        let indexed = |counter: &mut Counter| format!("{path}/{}[{}]", c.local, counter.next(&c.local));
        match c.local.as_str() {
            "language" => cx.single(&mut i.language, c, &p),
            "category" => {
                let p = indexed(&mut counter);
                let v = cx.leaf(c, &p);
                i.categories.push(v);
            }
            "event" => cx.single(&mut event, c, &p),
            "responseType" => {
                let p = indexed(&mut counter);
                let v = cx.leaf(c, &p);
                i.response_types.push(v);
            }
            "urgency" => cx.single(&mut urgency, c, &p),
            "severity" => cx.single(&mut severity, c, &p),
            "certainty" => cx.single(&mut certainty, c, &p),
            "audience" => cx.single(&mut i.audience, c, &p),
            "eventCode" => {
                let p = indexed(&mut counter);
                let v = cx.pair(c, &p, ns);
                i.event_codes.push(v);
            }
            "effective" => cx.single(&mut i.effective, c, &p),
            "onset" => cx.single(&mut i.onset, c, &p),
            "expires" => cx.single(&mut i.expires, c, &p),
            "senderName" => cx.single(&mut i.sender_name, c, &p),
            "headline" => cx.single(&mut i.headline, c, &p),
            "description" => cx.single(&mut i.description, c, &p),
            "instruction" => cx.single(&mut i.instruction, c, &p),
            "web" => cx.single(&mut i.web, c, &p),
            "contact" => cx.single(&mut i.contact, c, &p),
            "parameter" => {
                let p = indexed(&mut counter);
                let v = cx.pair(c, &p, ns);
                i.parameters.push(v);
            }
            "resource" => {
                let p = indexed(&mut counter);
                let v = read_resource(cx, c, &p, ns);
                i.resources.push(v);
            }
            "area" => {
                let p = indexed(&mut counter);
                let v = read_area(cx, c, &p, ns);
                i.areas.push(v);
            }
            other => cx.warn(&p, format!("unknown CAP element <{other}> ignored")),
        }
    }
    i.event = event.unwrap_or_default();
    i.urgency = urgency.unwrap_or_default();
    i.severity = severity.unwrap_or_default();
    i.certainty = certainty.unwrap_or_default();
    i
}

fn read_resource(cx: &mut Cx, e: &Element, path: &str, ns: Option<&str>) -> Resource {
    let mut r = Resource::default();
    let (mut desc, mut mime) = (None, None);
    for c in e.elements() {
        if c.ns.as_deref() != ns {
            continue;
        }
        let p = format!("{path}/{}", c.local);
        match c.local.as_str() {
            "resourceDesc" => cx.single(&mut desc, c, &p),
            "mimeType" => cx.single(&mut mime, c, &p),
            "size" => cx.single(&mut r.size, c, &p),
            "uri" => cx.single(&mut r.uri, c, &p),
            "derefUri" => cx.single(&mut r.deref_uri, c, &p),
            "digest" => cx.single(&mut r.digest, c, &p),
            other => cx.warn(&p, format!("unknown CAP element <{other}> ignored")),
        }
    }
    r.resource_desc = desc.unwrap_or_default();
    r.mime_type = mime.unwrap_or_default();
    r
}

fn read_area(cx: &mut Cx, e: &Element, path: &str, ns: Option<&str>) -> Area {
    let mut a = Area::default();
    let mut desc = None;
    let mut counter = Counter::default();
    for c in e.elements() {
        if c.ns.as_deref() != ns {
            continue;
        }
        let p = format!("{path}/{}", c.local);
        match c.local.as_str() {
            "areaDesc" => cx.single(&mut desc, c, &p),
            "polygon" => {
                let p = format!("{path}/polygon[{}]", counter.next("polygon"));
                let v = cx.leaf(c, &p);
                a.polygons.push(v);
            }
            "circle" => {
                let p = format!("{path}/circle[{}]", counter.next("circle"));
                let v = cx.leaf(c, &p);
                a.circles.push(v);
            }
            "geocode" => {
                let p = format!("{path}/geocode[{}]", counter.next("geocode"));
                let v = cx.pair(c, &p, ns);
                a.geocodes.push(v);
            }
            "altitude" => cx.single(&mut a.altitude, c, &p),
            "ceiling" => cx.single(&mut a.ceiling, c, &p),
            other => cx.warn(&p, format!("unknown CAP element <{other}> ignored")),
        }
    }
    a.area_desc = desc.unwrap_or_default();
    a
}

/// The enveloped signature: a ds:Signature child of the root, with its child index.
pub fn find_signature(doc: &Document) -> Option<(usize, &Element)> {
    doc.root.elements().enumerate().find(|(_, e)| e.is(DSIG_NS, "Signature"))
}
