//! A small namespace-aware XML tree built on quick-xml: enough for CAP documents and for
//! canonicalizing them (c14n). CDATA becomes text; entity and character references are resolved;
//! attribute values are normalized as XML 1.0 says; a DOCTYPE is refused (no entity expansion).

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub prefix: Option<String>,
    pub local: String,
    /// Resolved namespace URI (unprefixed attributes have none).
    pub ns: Option<String>,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub prefix: Option<String>,
    pub local: String,
    /// Resolved namespace URI; None when in no namespace.
    pub ns: Option<String>,
    /// Namespace declarations on this element: (prefix or None for the default, URI).
    pub ns_decls: Vec<(Option<String>, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// 1-based line of the start tag.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    Comment(String),
    Pi { target: String, content: String },
}

/// A parsed document: the root element and the processing instructions/comments around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub before: Vec<Node>,
    pub root: Element,
    pub after: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("XML is not well-formed at line {line}: {message}")]
pub struct XmlError {
    pub line: usize,
    pub message: String,
}

impl Element {
    pub fn qname(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.clone(),
        }
    }
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }
    /// The concatenated text children (not descendants).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.is_none() && a.local == local).map(|a| a.value.as_str())
    }
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }
}

fn line_of(src: &str, pos: usize) -> usize {
    let end = pos.min(src.len());
    src.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

struct Scope {
    decls: Vec<(Option<String>, String)>,
}

fn lookup_ns(scopes: &[Scope], prefix: Option<&str>) -> Option<String> {
    if prefix == Some("xml") {
        return Some(XML_NS.to_string());
    }
    for s in scopes.iter().rev() {
        for (p, uri) in s.decls.iter().rev() {
            if p.as_deref() == prefix {
                return if uri.is_empty() { None } else { Some(uri.clone()) };
            }
        }
    }
    None
}

fn split_qname(q: &str) -> (Option<String>, String) {
    match q.split_once(':') {
        Some((p, l)) => (Some(p.to_string()), l.to_string()),
        None => (None, q.to_string()),
    }
}

fn resolve_ref(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let v = if let Some(hex) = num.strip_prefix('x') {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        let c = char::from_u32(v)?;
        return if c == '\0' { None } else { Some(c) };
    }
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

fn start_element(
    e: &BytesStart<'_>,
    scopes: &mut Vec<Scope>,
    line: usize,
) -> Result<Element, XmlError> {
    let err = |message: String| XmlError { line, message };
    let qname: String = e.name().as_ref().to_string();
    let mut decls = Vec::new();
    let mut raw_attrs = Vec::new();
    for (n, a) in e.attributes().enumerate() {
        if n >= MAX_ATTRS {
            return Err(err(format!("<{qname}> has more than {MAX_ATTRS} attributes")));
        }
        let a = a.map_err(|x| err(format!("in <{qname}>: {x}")))?;
        let key: String = a.key.as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|x| err(format!("in <{qname}> attribute {key}: {x}")))?
            .into_owned();
        if key == "xmlns" {
            decls.push((None, value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            if value.is_empty() {
                return Err(err(format!("in <{qname}>: prefix {p} cannot be undeclared (xmlns:{p}=\"\")")));
            }
            decls.push((Some(p.to_string()), value));
        } else {
            raw_attrs.push((key, value));
        }
    }
    scopes.push(Scope { decls: decls.clone() });
    let (prefix, local) = split_qname(&qname);
    let ns = lookup_ns(scopes, prefix.as_deref());
    if let Some(p) = &prefix
        && ns.is_none()
    {
        return Err(err(format!("element <{qname}> uses undeclared namespace prefix {p}")));
    }
    let mut attrs = Vec::with_capacity(raw_attrs.len());
    for (key, value) in raw_attrs {
        let (ap, al) = split_qname(&key);
        let ans = match &ap {
            Some(p) => Some(
                lookup_ns(scopes, Some(p))
                    .ok_or_else(|| err(format!("attribute {key} on <{qname}> uses undeclared prefix {p}")))?,
            ),
            None => None,
        };
        if attrs.iter().any(|x: &Attr| x.local == al && x.ns == ans) {
            return Err(err(format!("attribute {key} appears twice on <{qname}>")));
        }
        attrs.push(Attr { prefix: ap, local: al, ns: ans, value });
    }
    Ok(Element { prefix, local, ns, ns_decls: decls, attrs, children: Vec::new(), line })
}

fn push_text(children: &mut Vec<Node>, s: &str) {
    if let Some(Node::Text(t)) = children.last_mut() {
        t.push_str(s);
    } else {
        children.push(Node::Text(s.to_string()));
    }
}

/// Limits that keep a hostile document from exhausting memory, time or the stack (attribute
/// checks are quadratic in the number of attributes of one element).
const MAX_DEPTH: usize = 64;
const MAX_ATTRS: usize = 256;

/// Parses UTF-8 XML text (a leading BOM is skipped).
pub fn parse(src: &str) -> Result<Document, XmlError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut reader = quick_xml::Reader::from_str(src);
    reader.config_mut().check_end_names = true;
    let mut scopes: Vec<Scope> = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut root: Option<Element> = None;
    // Line numbers are counted incrementally (recounting from the start would be quadratic).
    let (mut line_pos, mut line_no) = (0usize, 1usize);
    loop {
        let pos = (reader.buffer_position() as usize).min(src.len());
        if pos > line_pos {
            line_no += src.as_bytes()[line_pos..pos].iter().filter(|&&b| b == b'\n').count();
            line_pos = pos;
        }
        let ev = reader.read_event().map_err(|e| XmlError {
            line: line_of(src, reader.error_position() as usize),
            message: e.to_string(),
        })?;
        let line = line_no;
        let err = |message: String| XmlError { line, message };
        match ev {
            Event::Start(e) | Event::Empty(e) if root.is_some() && stack.is_empty() => {
                let _ = e;
                return Err(err("more than one root element".into()));
            }
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("elements nested deeper than {MAX_DEPTH}")));
                }
                let el = start_element(&e, &mut scopes, line)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = start_element(&e, &mut scopes, line)?;
                scopes.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                scopes.pop();
                let el = stack.pop().ok_or_else(|| err("end tag without start tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.xml10_content();
                match stack.last_mut() {
                    Some(parent) => push_text(&mut parent.children, &s),
                    None => {
                        if !s.trim().is_empty() {
                            return Err(err("text outside the root element".into()));
                        }
                    }
                }
            }
            Event::GeneralRef(r) => {
                let name: String = r.as_ref().to_string();
                let c = resolve_ref(&name).ok_or_else(|| err(format!("unknown or invalid reference &{name};")))?;
                match stack.last_mut() {
                    Some(parent) => push_text(&mut parent.children, c.encode_utf8(&mut [0; 4])),
                    None => return Err(err("reference outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let s = c.xml10_content();
                match stack.last_mut() {
                    Some(parent) => push_text(&mut parent.children, &s),
                    None => return Err(err("CDATA outside the root element".into())),
                }
            }
            Event::Comment(c) => {
                let n = Node::Comment(c.xml10_content().into_owned());
                match stack.last_mut() {
                    Some(parent) => parent.children.push(n),
                    None if root.is_none() => before.push(n),
                    None => after.push(n),
                }
            }
            Event::PI(p) => {
                let target = p.target().to_string();
                let content = p.content().trim_start().to_string();
                let n = Node::Pi { target, content };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(n),
                    None if root.is_none() => before.push(n),
                    None => after.push(n),
                }
            }
            Event::Decl(_) => {}
            Event::DocType(_) => return Err(err("a DOCTYPE is not allowed in CAP messages".into())),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError {
            line: line_of(src, src.len()),
            message: format!("document ends inside <{}>", stack.last().map(|e| e.qname()).unwrap_or_default()),
        });
    }
    let root = root.ok_or(XmlError { line: 1, message: "no root element".into() })?;
    Ok(Document { before, root, after })
}

/// Bytes to text: UTF-8 only (CAP 1.2 requires it); says where the first bad byte is.
pub fn decode(bytes: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let pos = e.valid_up_to();
        let line = bytes[..pos].iter().filter(|&&b| b == b'\n').count() + 1;
        XmlError { line, message: format!("not UTF-8 (byte offset {pos}); CAP 1.2 documents must be UTF-8") }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_text_and_refs() {
        let d = parse("<?xml version=\"1.0\"?>\n<c:alert xmlns:c=\"urn:x\" a=\"1&#10;2\tz\"><c:b>x &amp; <![CDATA[<y>]]>&#x4e2d;</c:b><d xmlns=\"urn:d\"/></c:alert>").unwrap();
        assert_eq!(d.root.ns.as_deref(), Some("urn:x"));
        assert_eq!(d.root.attr("a"), Some("1\n2 z"));
        let b = d.root.elements().next().unwrap();
        assert_eq!(b.text(), "x & <y>中");
        let dd = d.root.elements().nth(1).unwrap();
        assert_eq!(dd.ns.as_deref(), Some("urn:d"));
        assert_eq!(dd.line, 2);
    }

    #[test]
    fn refuses_bad_documents() {
        for bad in [
            "<a><b></a>",
            "<a>",
            "<a/><b/>",
            "<p:a/>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a>&bogus;</a>",
            "",
            "<a x='1' x='2'/>",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let many: String = (0..300).map(|i| format!(" a{i}=\"\"")).collect();
        let e = parse(&format!("<a{many}/>")).unwrap_err();
        assert!(e.message.contains("more than 256 attributes"), "{e}");
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).unwrap_err().message.contains("deeper than 64"));
        assert!(parse("<a/>trailing").is_err());
    }
}
