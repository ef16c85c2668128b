//! A small XML layer: bytes -> element tree (with line numbers and limits), element tree -> typed
//! values with every error located by element path, and a deterministic writer.
//!
//! Attributes are ignored on input and never written (the EBD formats carry everything in
//! elements). DTDs are refused. Text is kept exactly (no trimming) for free-text fields; typed
//! values (codes, times, numbers) are trimmed before they are parsed.

use quick_xml::Reader;
use quick_xml::events::Event;
use std::borrow::Cow;

/// Nesting deeper than this is refused (the deepest EBD is about 8 levels).
pub const MAX_DEPTH: usize = 32;
/// More elements than this in one document are refused.
pub const MAX_ELEMENTS: usize = 100_000;

/// What is wrong at one place of a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the file is not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("document too large: {0}")]
    TooLarge(String),
    #[error("the root element must be <{expected}>, found <{found}>")]
    WrongRoot { expected: &'static str, found: String },
    #[error("required element <{0}> is missing")]
    Missing(String),
    #[error("<{0}> appears {1} times; at most once is allowed")]
    Repeated(String, usize),
    #[error("expected a text value, found child elements")]
    NotText,
    #[error("{value:?} is not valid: {reason}")]
    Invalid { value: String, reason: String },
    #[error("unknown EBDType {0:?}")]
    UnknownType(String),
    #[error("EBDType is {declared} but the body element <{declared}> is missing (found <{found}>)")]
    TypeMismatch { declared: String, found: String },
    #[error("unknown element <{0}>, ignored")]
    Unknown(String),
}

impl Problem {
    /// The EBDResponse ResultCode this problem earns: 3 for missing content, else 2 (parse failure).
    pub fn result_code(&self) -> u8 {
        match self {
            Problem::Missing(_) | Problem::TypeMismatch { .. } => 3,
            _ => 2,
        }
    }
}

/// A problem with its location: the element path (`EBD/EBM/MsgBasicInfo/Severity`, repeated
/// elements with a 1-based index `Dispatch[2]`) and the line where that element starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} (line {line}): {problem}")]
pub struct Located {
    pub path: String,
    pub line: u32,
    pub problem: Problem,
}

/// One XML element: name (namespace prefix removed), line of its start tag, text, children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct El {
    pub name: String,
    pub line: u32,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a whole document into its root element. Any failure is located.
pub fn parse_tree(bytes: &[u8]) -> Result<El, Located> {
    let at = |line: u32, path: &str, problem: Problem| Located { path: path.to_string(), line, problem };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u32;
        at(line, "", Problem::NotUtf8(e.valid_up_to()))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.expand_empty_elements = false;

    let mut stack: Vec<El> = Vec::new();
    let mut root: Option<El> = None;
    let mut elements = 0usize;
    let (mut line, mut counted_to) = (1u32, 0usize);
    let mut line_at = |pos: u64| -> u32 {
        let pos = (pos as usize).min(text.len());
        if pos > counted_to {
            line += text.as_bytes()[counted_to..pos].iter().filter(|&&b| b == b'\n').count() as u32;
            counted_to = pos;
        }
        line
    };
    let path_of = |stack: &[El]| stack.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join("/");

    loop {
        let before = reader.buffer_position();
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                let l = line_at(reader.error_position());
                return Err(at(l, &path_of(&stack), Problem::Malformed(e.to_string())));
            }
        };
        // The start of this event (skipping leading whitespace would cost a scan; the event's
        // first byte is close enough for a line number).
        let l = line_at(before);
        match ev {
            Event::Start(ref s) | Event::Empty(ref s) => {
                let self_closing = matches!(ev, Event::Empty(_));
                let name = s.local_name().as_ref().to_string();
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(at(l, &path_of(&stack), Problem::TooLarge(format!("more than {MAX_ELEMENTS} elements"))));
                }
                if root.is_some() {
                    return Err(at(l, "", Problem::Malformed(format!("element <{name}> after the root element"))));
                }
                let el = El { name, line: l, text: String::new(), children: Vec::new() };
                if self_closing {
                    attach(&mut stack, &mut root, el);
                } else {
                    if stack.len() >= MAX_DEPTH {
                        return Err(at(l, &path_of(&stack), Problem::TooLarge(format!("nesting deeper than {MAX_DEPTH}"))));
                    }
                    stack.push(el);
                }
            }
            Event::End(_) => match stack.pop() {
                Some(el) => attach(&mut stack, &mut root, el),
                None => return Err(at(l, "", Problem::Malformed("closing tag without an opening tag".into()))),
            },
            Event::Text(t) => {
                let content = t.xml10_content();
                push_text(&mut stack, &content, l)?;
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                push_text(&mut stack, &content, l)?;
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch,
                    Ok(None) => match r.xml10_content().as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => {
                            return Err(at(l, &path_of(&stack), Problem::Malformed(format!("unknown entity &{other};"))));
                        }
                    },
                    Err(e) => return Err(at(l, &path_of(&stack), Problem::Malformed(e.to_string()))),
                };
                let mut buf = [0u8; 4];
                push_text(&mut stack, ch.encode_utf8(&mut buf), l)?;
            }
            Event::DocType(_) => {
                return Err(at(l, "", Problem::Malformed("DOCTYPE declarations are not accepted".into())));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        let l = line_at(text.len() as u64);
        return Err(at(l, &path_of(&stack), Problem::Malformed("the document ends before this element is closed".into())));
    }
    root.ok_or_else(|| at(1, "", Problem::Malformed("no root element".into())))
}

fn attach(stack: &mut [El], root: &mut Option<El>, el: El) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [El], s: &str, line: u32) -> Result<(), Located> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(Located {
            path: String::new(),
            line,
            problem: Problem::Malformed("text outside the root element".into()),
        }),
    }
}

/// Collects errors and warnings while a tree is read into typed values.
#[derive(Debug, Default)]
pub struct Cx {
    pub errors: Vec<Located>,
    pub warnings: Vec<Located>,
}

impl Cx {
    pub fn error(&mut self, path: &str, line: u32, problem: Problem) {
        self.errors.push(Located { path: path.to_string(), line, problem });
    }
    /// Children that no field names are reported as warnings (vendors add their own elements;
    /// refusing them would break interchange).
    pub fn unknown(&mut self, el: &El, path: &str, known: &[&str]) {
        for c in &el.children {
            if !known.contains(&c.name.as_str()) {
                self.warnings.push(Located {
                    path: format!("{path}/{}", c.name),
                    line: c.line,
                    problem: Problem::Unknown(c.name.clone()),
                });
            }
        }
    }
}

/// Deterministic writer: UTF-8, two-space indentation, elements only.
pub struct W {
    out: String,
    depth: usize,
}

impl Default for W {
    fn default() -> Self {
        Self::new()
    }
}

impl W {
    pub fn new() -> W {
        W { out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), depth: 0 }
    }
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }
    pub fn open(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.depth += 1;
    }
    pub fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    pub fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes text for element content. `\r` is written as a character reference so that it
/// survives XML end-of-line normalisation; characters XML 1.0 cannot carry become U+FFFD.
fn escape_into(out: &mut String, s: &str) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// Whether XML 1.0 can carry this character (what the writer keeps as is).
pub fn xml_char(c: char) -> bool {
    !(((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}')
}

/// A typed element: read from its element, written as an element of a given name.
pub trait Node: Sized {
    fn read(el: &El, path: &str, cx: &mut Cx) -> Option<Self>;
    fn write(&self, name: &str, w: &mut W);
}

/// A text value: parsed from (and written as) the text of a leaf element.
pub trait Value: Sized {
    fn parse_text(s: &str) -> Result<Self, String>;
    fn to_text(&self) -> Cow<'_, str>;
}

/// How many times a field's element occurs: a plain type exactly once, `Option` at most once,
/// `Vec` any number of times.
pub trait Card: Sized {
    fn read_in(parent: &El, name: &str, path: &str, cx: &mut Cx) -> Option<Self>;
    fn write_in(&self, name: &str, w: &mut W);
}

fn one<'a>(parent: &'a El, name: &str, path: &str, cx: &mut Cx) -> Result<Option<&'a El>, ()> {
    let mut it = parent.children.iter().filter(|c| c.name == name);
    let first = it.next();
    let more = it.count();
    if more > 0 {
        cx.error(&format!("{path}/{name}"), parent.line, Problem::Repeated(name.to_string(), more + 1));
        return Err(());
    }
    Ok(first)
}

impl<T: Node> Card for T {
    fn read_in(parent: &El, name: &str, path: &str, cx: &mut Cx) -> Option<Self> {
        match one(parent, name, path, cx).ok()? {
            Some(el) => T::read(el, &format!("{path}/{name}"), cx),
            None => {
                cx.error(path, parent.line, Problem::Missing(name.to_string()));
                None
            }
        }
    }
    fn write_in(&self, name: &str, w: &mut W) {
        self.write(name, w)
    }
}

impl<T: Node> Card for Option<T> {
    fn read_in(parent: &El, name: &str, path: &str, cx: &mut Cx) -> Option<Self> {
        match one(parent, name, path, cx).ok()? {
            Some(el) => T::read(el, &format!("{path}/{name}"), cx).map(Some),
            None => Some(None),
        }
    }
    fn write_in(&self, name: &str, w: &mut W) {
        if let Some(v) = self {
            v.write(name, w)
        }
    }
}

impl<T: Node> Card for Vec<T> {
    fn read_in(parent: &El, name: &str, path: &str, cx: &mut Cx) -> Option<Self> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, el) in parent.named(name).enumerate() {
            match T::read(el, &format!("{path}/{name}[{}]", i + 1), cx) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
    fn write_in(&self, name: &str, w: &mut W) {
        for v in self {
            v.write(name, w)
        }
    }
}

/// Makes a text value usable as an element.
macro_rules! value_node {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::xml::Node for $t {
            fn read(el: &$crate::xml::El, path: &str, cx: &mut $crate::xml::Cx) -> Option<Self> {
                if !el.children.is_empty() {
                    cx.error(path, el.line, $crate::xml::Problem::NotText);
                    return None;
                }
                match <$t as $crate::xml::Value>::parse_text(&el.text) {
                    Ok(v) => Some(v),
                    Err(reason) => {
                        cx.error(path, el.line, $crate::xml::Problem::Invalid { value: el.text.clone(), reason });
                        None
                    }
                }
            }
            fn write(&self, name: &str, w: &mut $crate::xml::W) {
                w.leaf(name, &$crate::xml::Value::to_text(self));
            }
        }
    )*};
}
pub(crate) use value_node;

impl Value for String {
    fn parse_text(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
}

impl Value for u64 {
    fn parse_text(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a whole number".into());
        }
        t.parse().map_err(|_| "number too large".to_string())
    }
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
}

value_node!(String, u64);

/// A struct of elements: each field names its element; `T`, `Option<T>`, `Vec<T>` say how often
/// it occurs. Generates the struct, its reader (collecting every error) and its writer.
macro_rules! node {
    ($(#[$m:meta])* pub struct $N:ident { $( $(#[$fm:meta])* $f:ident : $t:ty = $x:literal ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $N { $( $(#[$fm])* #[doc = concat!("`<", $x, ">`")] pub $f: $t ),* }
        impl $N {
            /// The element names of the fields, in document order.
            pub const ELEMENTS: &'static [&'static str] = &[$($x),*];
        }
        impl $crate::xml::Node for $N {
            fn read(el: &$crate::xml::El, path: &str, cx: &mut $crate::xml::Cx) -> Option<Self> {
                if !el.text.trim().is_empty() && el.children.is_empty() && !Self::ELEMENTS.is_empty() {
                    cx.error(path, el.line, $crate::xml::Problem::Invalid {
                        value: el.text.chars().take(40).collect(),
                        reason: "expected child elements, found text".into(),
                    });
                    return None;
                }
                $( let $f = <$t as $crate::xml::Card>::read_in(el, $x, path, cx); )*
                cx.unknown(el, path, Self::ELEMENTS);
                Some(Self { $( $f: $f? ),* })
            }
            fn write(&self, name: &str, w: &mut $crate::xml::W) {
                w.open(name);
                $( $crate::xml::Card::write_in(&self.$f, $x, w); )*
                w.close(name);
            }
        }
        impl $crate::sample::Sample for $N {
            fn sample(g: &mut $crate::sample::Gen) -> Self {
                Self { $( $f: <$t as $crate::sample::Sample>::sample(g) ),* }
            }
        }
    };
}
pub(crate) use node;
