//! Records of interchange (what the store reads and writes, and the application layer returns).

use serde::Serialize;

/// A package waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbdOut {
    pub id: i64,
    pub peer: String,
    pub ebdid: String,
    pub ebd_type: String,
    pub package: Vec<u8>,
    pub attempts: i64,
}

/// The outbox as the interchange page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EbdOutRow {
    pub id: i64,
    pub peer: String,
    pub ebdid: String,
    pub ebd_type: String,
    pub attempts: i64,
    pub created_ms: i64,
    pub done_ms: Option<i64>,
    pub result_code: Option<i64>,
    pub last_error: Option<String>,
}

/// One EBD received, and what we answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EbdInRow {
    pub ebdid: String,
    pub ebd_type: String,
    pub src_ebrid: String,
    pub received_ms: i64,
    pub result_code: i64,
    pub result_desc: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerState {
    pub peer: String,
    /// up | down | unknown
    pub link: String,
    pub changed_ms: i64,
    pub last_ok_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_report_ms: Option<i64>,
}

/// A message received from a parent, as it became here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedEbm {
    pub ebmid: String,
    pub peer: String,
    pub message_id: i64,
    pub last_state: i64,
}

/// A local message sent on to a child and what the child last said of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    pub message_id: i64,
    pub peer: String,
    pub ebdid: String,
    pub brd_state: Option<i64>,
    pub coverage_rate: Option<String>,
    pub reported_ms: Option<i64>,
}
