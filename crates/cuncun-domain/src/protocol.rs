//! Terminal protocol v1: topics and payloads exchanged with terminals over MQTT 3.1.1.
//! The normative text is docs/TERMINAL_PROTOCOL.md; these types are its Rust form, shared by the
//! platform, the gateway and the simulator. JSON, UTF-8, times in UTC epoch milliseconds.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

/// `eb/v1/r/{short region code}/cmd`: commands for every terminal in a region.
pub fn region_cmd_topic(short_code: &str) -> String {
    format!("eb/v1/r/{short_code}/cmd")
}
/// `eb/v1/t/{ebrid}/cmd`: commands for one terminal.
pub fn terminal_cmd_topic(ebrid: &str) -> String {
    format!("eb/v1/t/{ebrid}/cmd")
}
/// `eb/v1/t/{ebrid}/{kind}` where kind is one of [`UP_KINDS`].
pub fn up_topic(ebrid: &str, kind: &str) -> String {
    format!("eb/v1/t/{ebrid}/{kind}")
}
pub const UP_KINDS: [&str; 4] = ["status", "hb", "rcpt", "log"];

/// Splits an upward topic into (ebrid, kind); None if it is not one.
pub fn parse_up_topic(topic: &str) -> Option<(&str, &str)> {
    let rest = topic.strip_prefix("eb/v1/t/")?;
    let (id, kind) = rest.split_once('/')?;
    if id.is_empty() || id.len() > 64 || !UP_KINDS.contains(&kind) {
        return None;
    }
    Some((id, kind))
}

/// The region topics a terminal subscribes to: every level of the region in its resource code.
pub fn region_chain_topics(region12: &str) -> Vec<String> {
    let mut v = Vec::new();
    if region12.len() != 12 || !region12.bytes().all(|b| b.is_ascii_digit()) {
        return v;
    }
    for n in [2usize, 4, 6, 9, 12] {
        let prefix = &region12[..n];
        let rest = &region12[n..];
        v.push(region_cmd_topic(prefix));
        if rest.bytes().all(|b| b == b'0') {
            break;
        }
    }
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminalState {
    Idle,
    Playing,
    Fault,
}

/// `eb/v1/t/{ebrid}/status`: `online: true` right after connecting; the will carries `false`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub v: u32,
    pub online: bool,
}

/// `eb/v1/t/{ebrid}/hb`: heartbeat, every 30 s by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub v: u32,
    pub ts: i64,
    pub state: TerminalState,
    /// 0-100.
    pub volume: u8,
    /// Message id being played, if any.
    #[serde(default)]
    pub task: Option<String>,
    #[serde(default)]
    pub faults: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Received,
    Started,
    Finished,
    Failed,
    /// The receipt of a `cancel` (its `id` is the cancelled message's): sent for every copy of
    /// the cancel, whether the terminal was playing the message, had finished it or never had it.
    Cancelled,
}

/// `eb/v1/t/{ebrid}/rcpt`: one receipt per stage of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub v: u32,
    /// The message id (EBMID).
    pub id: String,
    pub stage: Stage,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// On `started`: the message this one displaced (a task switch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted: Option<String>,
}

/// `eb/v1/t/{ebrid}/log`: a broadcast log entry, sent when a play ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub v: u32,
    pub id: String,
    /// emergency, routine, phone, sms, mixer, usb, other
    pub source: String,
    pub start: i64,
    pub end: i64,
    pub volume: u8,
    #[serde(default)]
    pub result: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Emergency,
    Routine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audio {
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// Platform-to-terminal commands, on region or terminal `cmd` topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Play(Play),
    Cancel { v: u32, id: String },
    Stop { v: u32 },
    Volume { v: u32, volume: u8 },
    Time { v: u32, ts: i64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Play {
    pub v: u32,
    pub id: String,
    pub priority: Priority,
    /// 1 red (most severe) .. 4 blue; routine broadcasts carry 0.
    pub severity: u8,
    pub event: String,
    pub title: String,
    pub text: String,
    #[serde(default)]
    pub audio: Option<Audio>,
    pub start: i64,
    pub end: i64,
    pub repeat: u32,
    #[serde(default)]
    pub volume: Option<u8>,
    /// A drill (演练): the terminal announces it as a drill before and after it plays, and logs
    /// it apart. Absent (older platforms): false.
    #[serde(default)]
    pub drill: bool,
    /// The platform's rule for a message as severe as the one playing (absent: the terminal's
    /// own setting, by default newer_wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equal_severity: Option<crate::eb::EqualSeverity>,
}

/// Why a terminal's record was refused at the edge: the field and what is wrong with it. The
/// record is quarantined (docs/TERMINAL_PROTOCOL.md, "What a record may contain"), never retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Refused {
    pub field: &'static str,
    pub problem: String,
}

/// Longest message id (EBMID) or task a terminal may name.
pub const MAX_ID_CHARS: usize = 64;
/// Longest free text (a failure reason, a log result, a fault code list entry).
pub const MAX_TEXT_CHARS: usize = 500;
/// Most fault codes in one heartbeat, and the longest of them.
pub const MAX_FAULTS: usize = 32;
pub const MAX_FAULT_CHARS: usize = 64;
/// Times a record may carry: from the epoch to 2100-01-01 (a terminal with a lost clock
/// reports 0, which is kept; a negative or far-future time is a broken encoder).
pub const MAX_TS_MS: i64 = 4_102_444_800_000;
/// Log sources the protocol defines.
pub const LOG_SOURCES: [&str; 7] = ["emergency", "routine", "phone", "sms", "mixer", "usb", "other"];

fn refused(field: &'static str, problem: impl Into<String>) -> Refused {
    Refused { field, problem: problem.into() }
}

/// Free text: at most `max` characters, no control character but tab and line breaks (NUL, which
/// PostgreSQL refuses in text, is one of them).
fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), Refused> {
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) {
        return Err(refused(field, format!("control character U+{:04X} at character {}", c as u32, i + 1)));
    }
    let n = s.chars().count();
    if n > max {
        return Err(refused(field, format!("{n} characters, at most {max}")));
    }
    Ok(())
}

/// An identifier: 1 to [`MAX_ID_CHARS`] printable ASCII characters.
fn check_id(field: &'static str, s: &str) -> Result<(), Refused> {
    if s.is_empty() {
        return Err(refused(field, "empty"));
    }
    if let Some((i, c)) = s.chars().enumerate().find(|(_, c)| !c.is_ascii_graphic()) {
        return Err(refused(field, format!("character U+{:04X} at character {} (printable ASCII only)", c as u32, i + 1)));
    }
    if s.len() > MAX_ID_CHARS {
        return Err(refused(field, format!("{} characters, at most {MAX_ID_CHARS}", s.len())));
    }
    Ok(())
}

fn check_ts(field: &'static str, ts: i64) -> Result<(), Refused> {
    if !(0..=MAX_TS_MS).contains(&ts) {
        return Err(refused(field, format!("time {ts} outside 0..={MAX_TS_MS} (UTC milliseconds)")));
    }
    Ok(())
}

fn check_volume(v: u8) -> Result<(), Refused> {
    if v > 100 {
        return Err(refused("volume", format!("{v}, at most 100")));
    }
    Ok(())
}

/// The terminal's code as it arrives on a topic: what the platform stores it under.
pub fn check_terminal_id(id: &str) -> Result<(), Refused> {
    check_id("terminal", id)
}

impl Receipt {
    /// What the platform stores of a receipt, checked before it is batched.
    pub fn check(&self) -> Result<(), Refused> {
        check_id("id", &self.id)?;
        check_ts("ts", self.ts)?;
        if let Some(r) = &self.reason {
            check_text("reason", r, MAX_TEXT_CHARS)?;
        }
        if let Some(p) = &self.preempted {
            check_id("preempted", p)?;
        }
        Ok(())
    }
}

impl LogEntry {
    /// What the platform stores of a log entry, checked before it is batched.
    pub fn check(&self) -> Result<(), Refused> {
        check_id("id", &self.id)?;
        if !LOG_SOURCES.contains(&self.source.as_str()) {
            let mut shown: String = self.source.chars().take(32).collect();
            shown.retain(|c| !c.is_control());
            return Err(refused("source", format!("{shown:?} is not one of {}", LOG_SOURCES.join(", "))));
        }
        check_ts("start", self.start)?;
        check_ts("end", self.end)?;
        check_volume(self.volume)?;
        if let Some(r) = &self.result {
            check_text("result", r, MAX_TEXT_CHARS)?;
        }
        Ok(())
    }
}

impl Heartbeat {
    /// What the platform stores of a heartbeat, checked before it is batched.
    pub fn check(&self) -> Result<(), Refused> {
        check_ts("ts", self.ts)?;
        check_volume(self.volume)?;
        if let Some(t) = &self.task {
            check_id("task", t)?;
        }
        if self.faults.len() > MAX_FAULTS {
            return Err(refused("faults", format!("{} codes, at most {MAX_FAULTS}", self.faults.len())));
        }
        for f in &self.faults {
            check_text("faults", f, MAX_FAULT_CHARS)?;
            // Stored joined by commas.
            if f.contains(',') {
                return Err(refused("faults", "a fault code contains a comma"));
            }
        }
        Ok(())
    }
}

/// `s` with every control character but tab and line breaks written as `\u{..}`, at most
/// `max_bytes` long (cut at a character boundary, marked with `…`): how refused records are
/// kept, so that keeping them cannot fail the way storing them did.
pub fn escape_controls(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes) + 8);
    for c in s.chars() {
        let piece = if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            format!("\\u{{{:04x}}}", c as u32)
        } else {
            c.to_string()
        };
        if out.len() + piece.len() > max_bytes {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            region_chain_topics("500236100201"),
            ["eb/v1/r/50/cmd", "eb/v1/r/5002/cmd", "eb/v1/r/500236/cmd", "eb/v1/r/500236100/cmd", "eb/v1/r/500236100201/cmd"]
        );
        assert_eq!(region_chain_topics("500236100000").len(), 4, "a township terminal stops at its township");
        assert_eq!(parse_up_topic("eb/v1/t/abc/rcpt"), Some(("abc", "rcpt")));
        assert_eq!(parse_up_topic("eb/v1/t/abc/cmd"), None);
        assert_eq!(parse_up_topic("eb/v1/r/50/cmd"), None);
    }

    fn receipt(id: &str, reason: Option<&str>) -> Receipt {
        Receipt { v: 1, id: id.into(), stage: Stage::Failed, ts: 1_780_000_000_000, reason: reason.map(str::to_string), preempted: None }
    }

    #[test]
    fn records_are_checked_field_by_field() {
        assert_eq!(receipt("650023610020103140101012026120100001", Some("没有音频\n重试")).check(), Ok(()));
        let e = receipt("m", Some("bad\u{0}byte")).check().unwrap_err();
        assert_eq!(e.to_string(), "reason: control character U+0000 at character 4");
        assert_eq!(receipt("m\u{0}", None).check().unwrap_err().field, "id");
        assert_eq!(receipt("", None).check().unwrap_err().field, "id");
        assert_eq!(receipt(&"9".repeat(65), None).check().unwrap_err().field, "id");
        assert!(receipt("m", Some(&"长".repeat(501))).check().unwrap_err().problem.contains("501 characters"));
        let mut r = receipt("m", None);
        r.ts = -1;
        assert_eq!(r.check().unwrap_err().field, "ts");

        let log = LogEntry { v: 1, id: "m".into(), source: "emergency".into(), start: 1, end: 2, volume: 80, result: Some("finished".into()) };
        assert_eq!(log.check(), Ok(()));
        assert_eq!(LogEntry { source: "radio".into(), ..log.clone() }.check().unwrap_err().field, "source");
        assert_eq!(LogEntry { volume: 101, ..log.clone() }.check().unwrap_err().field, "volume");
        assert_eq!(LogEntry { result: Some("x\u{0}".into()), ..log }.check().unwrap_err().field, "result");

        let hb = Heartbeat { v: 1, ts: 5, state: TerminalState::Idle, volume: 70, task: None, faults: vec!["E1".into()] };
        assert_eq!(hb.check(), Ok(()));
        assert_eq!(Heartbeat { faults: vec!["E\u{0}".into()], ..hb.clone() }.check().unwrap_err().field, "faults");
        assert_eq!(Heartbeat { faults: vec!["E".into(); 33], ..hb.clone() }.check().unwrap_err().field, "faults");
        assert_eq!(Heartbeat { task: Some("t t".into()), ..hb }.check().unwrap_err().field, "task");
        assert!(check_terminal_id("65002361002010314010101").is_ok());
        assert!(check_terminal_id("650\u{0}").is_err());
    }

    #[test]
    fn escaped_text_has_no_control_characters_and_is_bounded() {
        assert_eq!(escape_controls("a\u{0}b\nc", 100), "a\\u{0000}b\nc");
        let long = escape_controls(&"喇叭".repeat(1000), 100);
        assert!(long.len() <= 100 + '…'.len_utf8() && long.ends_with('…'), "{long}");
    }

    #[test]
    fn command_json_shape() {
        let c = Command::Cancel { v: 1, id: "x".into() };
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"cmd":"cancel","v":1,"id":"x"}"#);
        let r: Receipt = serde_json::from_str(r#"{"v":1,"id":"m","stage":"received","ts":5}"#).unwrap();
        assert_eq!(r.stage, Stage::Received);
        assert!(serde_json::from_str::<Receipt>(r#"{"v":1,"id":"m","stage":"lost","ts":5}"#).is_err());
        let r: Receipt = serde_json::from_str(r#"{"v":1,"id":"m","stage":"cancelled","ts":5}"#).unwrap();
        assert_eq!(r.stage, Stage::Cancelled, "a cancel has a receipt stage of its own");
    }
}
