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
