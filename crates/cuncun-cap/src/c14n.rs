//! Canonical XML: Canonical XML 1.0 (inclusive) and Exclusive XML Canonicalization 1.0, each
//! without comments (and the "with comments" variants), for whole documents and for one element's
//! subtree, optionally leaving out one element (the enveloped signature).
//!
//! Subset implemented (what CAP documents and XML-DSig SignedInfo need): elements, namespace
//! declarations (rendered per the inclusive or exclusive rules), attributes (sorted, escaped),
//! text (escaped), processing instructions, comments (with-comments variants only), the
//! PrefixList of exclusive c14n, and inclusive c14n's inheritance of xml:* attributes into a
//! subtree's apex. Not implemented: XPath node-set filtering other than the enveloped-signature
//! removal.

use crate::xml::{Document, Element, Node};
use std::borrow::Cow;
use std::collections::BTreeMap;

pub const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
pub const C14N_10_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    pub exclusive: bool,
    pub comments: bool,
    /// Exclusive c14n: prefixes treated as in inclusive c14n ("#default" for the default namespace).
    pub inclusive_prefixes: Vec<String>,
}

impl Method {
    pub fn from_uri(uri: &str) -> Option<Method> {
        let (exclusive, comments) = match uri {
            C14N_10 => (false, false),
            C14N_10_COMMENTS => (false, true),
            EXC_C14N => (true, false),
            EXC_C14N_COMMENTS => (true, true),
            _ => return None,
        };
        Some(Method { exclusive, comments, inclusive_prefixes: Vec::new() })
    }
    pub fn exclusive() -> Method {
        Method { exclusive: true, comments: false, inclusive_prefixes: Vec::new() }
    }
}

type NsMap = BTreeMap<String, String>; // prefix ("" = default) -> URI

fn key(p: &Option<String>) -> String {
    p.clone().unwrap_or_default()
}

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

struct Ctx<'a> {
    m: &'a Method,
    skip: Option<&'a Element>,
}

fn render_pi(target: &str, content: &str, out: &mut String) {
    out.push_str("<?");
    out.push_str(target);
    if !content.is_empty() {
        out.push(' ');
        out.push_str(content);
    }
    out.push_str("?>");
}

/// `in_scope`: namespaces in scope at the parent (from the document); `rendered`: namespaces
/// already output by canonicalized ancestors.
fn render(el: &Element, in_scope: &NsMap, rendered: &NsMap, ctx: &Ctx<'_>, out: &mut String) {
    if ctx.skip.is_some_and(|s| std::ptr::eq(s, el)) {
        return;
    }
    // Maps are copied only when this element changes them (most elements declare nothing).
    let scope: Cow<'_, NsMap> = if el.ns_decls.is_empty() {
        Cow::Borrowed(in_scope)
    } else {
        let mut s = in_scope.clone();
        for (p, uri) in &el.ns_decls {
            s.insert(key(p), uri.clone());
        }
        Cow::Owned(s)
    };
    let mut new_rendered: Cow<'_, NsMap> = Cow::Borrowed(rendered);
    let mut ns_out: Vec<(String, String)> = Vec::new();
    let rendered_val = |p: &str| rendered.get(p).map(String::as_str).unwrap_or("");
    if ctx.m.exclusive {
        let mut used: Vec<String> = vec![key(&el.prefix)];
        for a in &el.attrs {
            if let Some(p) = &a.prefix
                && p != "xml"
            {
                used.push(p.clone());
            }
        }
        for p in &ctx.m.inclusive_prefixes {
            let p = if p == "#default" { String::new() } else { p.clone() };
            if scope.contains_key(&p) || p.is_empty() {
                used.push(p);
            }
        }
        used.sort();
        used.dedup();
        for p in used {
            let uri = scope.get(&p).cloned().unwrap_or_default();
            if rendered_val(&p) != uri {
                if !(p.is_empty() && uri.is_empty() && !rendered.contains_key("")) {
                    ns_out.push((p.clone(), uri.clone()));
                }
                new_rendered.to_mut().insert(p, uri);
            }
        }
    } else {
        for (p, uri) in scope.iter() {
            if rendered_val(p) != uri {
                if !(p.is_empty() && uri.is_empty() && !rendered.contains_key("")) {
                    ns_out.push((p.clone(), uri.clone()));
                }
                new_rendered.to_mut().insert(p.clone(), uri.clone());
            }
        }
    }
    ns_out.sort();
    out.push('<');
    out.push_str(&el.qname());
    for (p, uri) in &ns_out {
        if p.is_empty() {
            out.push_str(" xmlns=\"");
        } else {
            out.push_str(" xmlns:");
            out.push_str(p);
            out.push_str("=\"");
        }
        escape_attr(uri, out);
        out.push('"');
    }
    let mut attrs: Vec<_> = el.attrs.iter().collect();
    attrs.sort_by(|a, b| (a.ns.as_deref().unwrap_or(""), &a.local).cmp(&(b.ns.as_deref().unwrap_or(""), &b.local)));
    for a in attrs {
        out.push(' ');
        if let Some(p) = &a.prefix {
            out.push_str(p);
            out.push(':');
        }
        out.push_str(&a.local);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    out.push('>');
    for n in &el.children {
        match n {
            Node::Element(c) => render(c, &scope, &new_rendered, ctx, out),
            Node::Text(t) => escape_text(t, out),
            Node::Comment(c) => {
                if ctx.m.comments {
                    out.push_str("<!--");
                    out.push_str(c);
                    out.push_str("-->");
                }
            }
            Node::Pi { target, content } => render_pi(target, content, out),
        }
    }
    out.push_str("</");
    out.push_str(&el.qname());
    out.push('>');
}

/// Canonicalizes the whole document, leaving out `skip` (and its subtree) if given.
pub fn document(doc: &Document, m: &Method, skip: Option<&Element>) -> String {
    let (before, root, after) = document_parts(doc, m, skip);
    format!("{before}{root}{after}")
}

/// The canonical document in three parts: what precedes the root element, the root element,
/// what follows it (their concatenation is [`document`]).
pub fn document_parts(doc: &Document, m: &Method, skip: Option<&Element>) -> (String, String, String) {
    let ctx = Ctx { m, skip };
    let mut out = String::new();
    for n in &doc.before {
        match n {
            Node::Pi { target, content } => {
                render_pi(target, content, &mut out);
                out.push('\n');
            }
            Node::Comment(c) if m.comments => {
                out.push_str("<!--");
                out.push_str(c);
                out.push_str("-->\n");
            }
            _ => {}
        }
    }
    let before = std::mem::take(&mut out);
    render(&doc.root, &NsMap::new(), &NsMap::new(), &ctx, &mut out);
    let root = std::mem::take(&mut out);
    for n in &doc.after {
        match n {
            Node::Pi { target, content } => {
                out.push('\n');
                render_pi(target, content, &mut out);
            }
            Node::Comment(c) if m.comments => {
                out.push_str("\n<!--");
                out.push_str(c);
                out.push_str("-->");
            }
            _ => {}
        }
    }
    (before, root, out)
}

/// Canonicalizes the subtree of `target`, an element reached from the root by `path` (child
/// element indices). Namespaces in scope from its ancestors count as the c14n method says.
pub fn subtree(doc: &Document, path: &[usize], m: &Method, skip: Option<&Element>) -> Option<String> {
    let mut scope = NsMap::new();
    let mut el = &doc.root;
    for &i in path {
        for (p, uri) in &el.ns_decls {
            scope.insert(key(p), uri.clone());
        }
        el = el.elements().nth(i)?;
    }
    let ctx = Ctx { m, skip };
    let mut out = String::new();
    if m.exclusive || path.is_empty() {
        render(el, &scope, &NsMap::new(), &ctx, &mut out);
        return Some(out);
    }
    // Inclusive c14n of a document subset: the apex inherits the xml:* attributes (xml:lang,
    // xml:space, ...) of its ancestors that it does not set itself, nearest ancestor first.
    let mut apex = el.clone();
    let mut anc = &doc.root;
    let mut chain = vec![anc];
    for &i in &path[..path.len() - 1] {
        anc = anc.elements().nth(i)?;
        chain.push(anc);
    }
    for a in chain.iter().rev() {
        for at in a.attrs.iter().filter(|at| at.ns.as_deref() == Some(crate::xml::XML_NS)) {
            if !apex.attrs.iter().any(|x| x.ns == at.ns && x.local == at.local) {
                apex.attrs.push(at.clone());
            }
        }
    }
    render(&apex, &scope, &NsMap::new(), &ctx, &mut out);
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::xml::parse;

    #[test]
    fn inclusive_and_exclusive_namespaces() {
        let d = parse(
            "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" xmlns=\"urn:d\"><x z=\"2\" b:y=\"1\" a=\"&lt;&#9;\">t&gt;\r\n</x><a:s/></a:r>",
        )
        .unwrap();
        let inc = subtree(&d, &[0], &Method::from_uri(C14N_10).unwrap(), None).unwrap();
        assert_eq!(
            inc,
            "<x xmlns=\"urn:d\" xmlns:a=\"urn:a\" xmlns:b=\"urn:b\" a=\"&lt;&#x9;\" z=\"2\" b:y=\"1\">t&gt;\n</x>"
        );
        let exc = subtree(&d, &[0], &Method::exclusive(), None).unwrap();
        assert_eq!(exc, "<x xmlns=\"urn:d\" xmlns:b=\"urn:b\" a=\"&lt;&#x9;\" z=\"2\" b:y=\"1\">t&gt;\n</x>");
        let whole = document(&d, &Method::exclusive(), None);
        assert!(whole.starts_with("<a:r xmlns:a=\"urn:a\"><x xmlns=\"urn:d\" xmlns:b=\"urn:b\""), "{whole}");
        assert!(whole.ends_with("<a:s></a:s></a:r>"));
    }

    #[test]
    fn comments_and_pis_around_the_root() {
        let d = parse("<?xml version=\"1.0\"?>\n<?a b?>\n<!--c1-->\n<r><!--in--><?p  q?></r>\n<!--c2-->\n<?z?>").unwrap();
        assert_eq!(document(&d, &Method::exclusive(), None), "<?a b?>\n<r><?p q?></r>\n<?z?>");
        let with = Method::from_uri(EXC_C14N_COMMENTS).unwrap();
        assert_eq!(document(&d, &with, None), "<?a b?>\n<!--c1-->\n<r><!--in--><?p q?></r>\n<!--c2-->\n<?z?>");
        let (before, root, after) = document_parts(&d, &with, None);
        assert_eq!((before.as_str(), root.as_str(), after.as_str()), ("<?a b?>\n<!--c1-->\n", "<r><!--in--><?p q?></r>", "\n<!--c2-->\n<?z?>"));
    }

    #[test]
    fn empty_default_namespace_is_undeclared_only_when_needed() {
        let d = parse("<r xmlns=\"urn:d\"><c xmlns=\"\"><e/></c></r>").unwrap();
        let inc = document(&d, &Method::from_uri(C14N_10).unwrap(), None);
        assert_eq!(inc, "<r xmlns=\"urn:d\"><c xmlns=\"\"><e></e></c></r>");
        let d2 = parse("<r><c xmlns=\"\"/></r>").unwrap();
        assert_eq!(document(&d2, &Method::exclusive(), None), "<r><c></c></r>");
    }
}
