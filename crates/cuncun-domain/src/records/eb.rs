//! Records of eb (what the store reads and writes, and the application layer returns).

use crate::RegionCode;
use crate::authz::Transition;
use crate::eb::{Ebrid, MessageStatus, ResourceKind};
use crate::protocol::{Heartbeat, Stage};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct NewResource {
    pub kind: ResourceKind,
    pub region_code: RegionCode,
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub install_date: String,
    /// Given (e.g. on import of an existing device) or generated from region and kind.
    pub ebrid: Option<Ebrid>,
    /// SHA-256 hex of the device secret; empty: the device cannot connect until one is set.
    pub secret_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resource {
    pub id: i64,
    pub ebrid: String,
    pub kind: ResourceKind,
    pub region_code: RegionCode,
    pub name: String,
    pub vendor: String,
    pub model: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub install_date: String,
    pub retired_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub has_secret: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceWithStatus {
    pub resource: Resource,
    /// None: never seen.
    pub online: Option<bool>,
    pub last_seen_ms: Option<i64>,
    pub state: String,
    pub volume: i64,
    pub task: Option<String>,
    pub faults: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct ResourcePatch {
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub install_date: Option<String>,
}

/// What the gateway needs to authenticate a device, kept in memory by the platform.
pub use crate::model::DeviceCredential;

/// Device-reported changes, applied in batches (never one write per heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub enum StatusChange {
    Online { ebrid: String, at_ms: i64 },
    Offline { ebrid: String, at_ms: i64 },
    Heartbeat { ebrid: String, at_ms: i64, hb: Heartbeat },
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub platform: Ebrid,
    pub msg_type: String,
    pub related_ebmid: Option<String>,
    pub priority: String,
    pub drill: bool,
    pub event_type: String,
    pub severity: u8,
    pub title: String,
    pub body: String,
    pub lang: String,
    pub audio_sha256: Option<String>,
    pub audio_size: Option<i64>,
    pub areas: Vec<RegionCode>,
    pub terminals: Vec<Ebrid>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub repeat_count: i64,
    pub volume: Option<i64>,
    pub source: String,
    pub owner_region: RegionCode,
    pub author_id: Option<i64>,
    /// Validity starts when the message is approved and lasts `end_ms - start_ms`.
    pub start_on_approval: bool,
    /// The parent platform that sent it (its resource code).
    pub from_peer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: i64,
    pub ebmid: String,
    pub msg_type: String,
    pub related_ebmid: Option<String>,
    pub priority: String,
    pub drill: bool,
    pub event_type: String,
    pub severity: u8,
    pub title: String,
    pub body: String,
    pub lang: String,
    pub audio_sha256: Option<String>,
    pub audio_size: Option<i64>,
    pub areas: Vec<RegionCode>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub repeat_count: i64,
    pub volume: Option<i64>,
    pub status: MessageStatus,
    pub source: String,
    pub owner_region: RegionCode,
    pub author_id: Option<i64>,
    pub approver_id: Option<i64>,
    pub created_at_ms: i64,
    pub approved_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    /// Until approval, `start_ms`/`end_ms` hold the intended duration from now.
    pub start_on_approval: bool,
    pub from_peer: Option<String>,
}

impl NewMessage {
    /// The facts the workflow rules read of a message about to be written.
    pub fn facts(&self) -> crate::authz::MessageFacts<'_> {
        crate::authz::MessageFacts {
            status: MessageStatus::Draft,
            drill: self.drill,
            author_id: self.author_id,
            owner_region: &self.owner_region,
            areas: &self.areas,
            event_type: &self.event_type,
            severity: self.severity,
            from_peer: self.from_peer.as_deref(),
        }
    }
}

impl Message {
    /// The facts the workflow rules read.
    pub fn facts(&self) -> crate::authz::MessageFacts<'_> {
        crate::authz::MessageFacts {
            status: self.status,
            drill: self.drill,
            author_id: self.author_id,
            owner_region: &self.owner_region,
            areas: &self.areas,
            event_type: &self.event_type,
            severity: self.severity,
            from_peer: self.from_peer.as_deref(),
        }
    }
}

/// One workflow step to write: the message moves by `t` (which only the domain's rules make) if
/// it is still in `t.from()`, else the write is a Conflict and nothing of the batch is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageMove {
    pub id: i64,
    pub t: Transition,
    pub reason: String,
    /// Set on approval: who approved, and the validity the message plays in.
    pub approver_id: Option<i64>,
    pub validity: Option<(i64, i64)>,
}

impl MessageMove {
    pub fn new(id: i64, t: Transition) -> MessageMove {
        MessageMove { id, t, reason: String::new(), approver_id: None, validity: None }
    }
}

/// A step in a message's history, as the message page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageStepRow {
    pub step: String,
    pub status: String,
    pub actor: String,
    pub user_id: Option<i64>,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: i64,
    pub message_id: i64,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceiptIn {
    pub ebrid: String,
    pub ebmid: String,
    pub stage: Stage,
    pub ts: i64,
    pub reason: Option<String>,
}

/// A terminal report that was not stored, with why (table `terminal_quarantine`). Text fields
/// are escaped before they get here (`protocol::escape_controls`), so keeping it cannot fail
/// the way storing the report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    pub ebrid: String,
    /// `hb`, `rcpt`, `log` or `status`.
    pub kind: String,
    pub payload: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    pub targets: i64,
    pub received: i64,
    pub started: i64,
    pub finished: i64,
    pub failed: i64,
    /// Targets with no receipt yet.
    pub pending: i64,
    /// Of the pending, how many are offline now.
    pub pending_offline: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub ebrid: String,
    pub name: String,
    pub region_code: String,
    pub stage: i64,
    pub online: bool,
    pub received_ms: Option<i64>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub failed_reason: Option<String>,
    pub sends: i64,
    /// When it was last sent to this terminal (None: never).
    pub last_sent_ms: Option<i64>,
    /// Sends on the terminal's current connection (0 when the last send was before it began):
    /// re-sends are limited per connection, never over the delivery's lifetime.
    pub conn_sends: i64,
}

/// A command tracked for one terminal until it receipts it (a cancel; stop to come).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRow {
    pub id: i64,
    pub ebrid: String,
    /// `cancel` or `stop`.
    pub kind: String,
    /// A cancel's message (its EBMID).
    pub ebmid: Option<String>,
    /// Not sent after this time.
    pub until_ms: i64,
    pub sends: i64,
    /// Sends on the terminal's current connection (see [`DeliveryRow::conn_sends`]).
    pub conn_sends: i64,
    pub last_sent_ms: Option<i64>,
    /// When the terminal receipted it (None: not yet).
    pub done_ms: Option<i64>,
    pub online: bool,
}

/// What a message would reach, shown before approval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub terminals: i64,
    pub online: i64,
    pub villages: i64,
    pub households: i64,
    pub population: i64,
}

/// A terminal's connection intervals overlapping a period, for the online rate.
#[derive(Debug, Clone, PartialEq)]
pub struct OnlineHistory {
    pub ebrid: String,
    pub name: String,
    pub region_code: String,
    pub created_ms: i64,
    pub retired_ms: Option<i64>,
    pub intervals: Vec<crate::online::Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BroadcastLogRow {
    pub ebmid: String,
    pub source: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub volume: i64,
    pub result: Option<String>,
}
