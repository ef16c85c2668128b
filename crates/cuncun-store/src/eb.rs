//! Storage of the emergency broadcast network: resources, terminal status, messages, deliveries,
//! the dispatch outbox and broadcast logs.

use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::authz::{Grant, Transition};
use cuncun_domain::eb::{Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::protocol::{Heartbeat, LogEntry, Stage};
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
pub use cuncun_domain::model::DeviceCredential;

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
    pub fn facts(&self) -> cuncun_domain::authz::MessageFacts<'_> {
        cuncun_domain::authz::MessageFacts {
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
    pub fn facts(&self) -> cuncun_domain::authz::MessageFacts<'_> {
        cuncun_domain::authz::MessageFacts {
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
    pub intervals: Vec<cuncun_domain::online::Interval>,
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

#[async_trait]
pub trait EbStore: Send + Sync {
    /// A device's latest connections, newest first: (from, to or None while connected).
    async fn connections(&self, resource_id: i64, limit: i64) -> Result<Vec<cuncun_domain::online::Interval>>;
    /// A device's latest broadcast log entries, newest first.
    async fn broadcast_logs(&self, resource_id: i64, limit: i64) -> Result<Vec<BroadcastLogRow>>;
    /// Terminals in `scope` registered before `to_ms` with their connections overlapping [from, to).
    async fn online_history(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<Vec<OnlineHistory>>;
    async fn add_resource(&self, r: &NewResource, actor: &Actor) -> Result<Resource>;
    /// Bulk insert in one transaction (imports, the demo); codes are generated where absent.
    /// Returns the code of each row, in order.
    async fn insert_resources(&self, rs: &[NewResource], actor: &Actor) -> Result<Vec<String>>;
    async fn resource(&self, id: i64) -> Result<Option<Resource>>;
    async fn resource_by_ebrid(&self, ebrid: &str) -> Result<Option<Resource>>;
    /// Resources in `scope` with their status; `kinds` empty = all; retired excluded unless asked.
    async fn resources_in(
        &self,
        scope: &RegionCode,
        kinds: &[ResourceKind],
        include_retired: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ResourceWithStatus>>;
    async fn update_resource(&self, id: i64, patch: &ResourcePatch, actor: &Actor) -> Result<Resource>;
    async fn retire_resource(&self, id: i64, actor: &Actor) -> Result<Resource>;
    async fn set_secret_hashes(&self, pairs: &[(String, String)], actor: &Actor) -> Result<u64>;
    async fn device_credentials(&self) -> Result<Vec<DeviceCredential>>;
    async fn apply_status(&self, changes: &[StatusChange]) -> Result<()>;
    async fn insert_logs(&self, logs: &[(String, LogEntry)]) -> Result<u64>;

    async fn reach(&self, areas: &[RegionCode], terminals: &[Ebrid]) -> Result<Reach>;
    async fn create_message(&self, m: &NewMessage, actor: &Actor) -> Result<Message>;
    async fn message(&self, id: i64) -> Result<Option<Message>>;
    /// Codes of the terminals a message names explicitly (besides its areas).
    async fn message_terminals(&self, message_id: i64) -> Result<Vec<String>>;
    /// Replaces a draft's audio (an upload instead of the text-to-speech rendering).
    async fn set_message_audio(&self, id: i64, sha256: &str, size: i64, actor: &Actor) -> Result<Message>;
    async fn message_by_ebmid(&self, ebmid: &str) -> Result<Option<Message>>;
    async fn messages_recent(&self, limit: i64) -> Result<Vec<Message>>;
    /// Writes workflow steps in ONE transaction (an update's approval and its original's
    /// cancellation), each with its history row and audit entry. Approval fixes the target
    /// terminals and queues the dispatch; cancelling an approved or dispatching message queues
    /// the cancel. Failpoints `message.update.*` mark where a crash test stops an update's approval.
    async fn transition_messages(&self, moves: &[MessageMove], actor: &Actor) -> Result<Vec<Message>>;
    async fn transition_message(&self, mv: MessageMove, actor: &Actor) -> Result<Message> {
        let mut v = self.transition_messages(std::slice::from_ref(&mv), actor).await?;
        v.pop().ok_or_else(|| crate::StoreError::NotFound(format!("message {}", mv.id)))
    }
    /// Replaces a draft's content (it must still be a draft).
    async fn edit_draft(&self, id: i64, m: &NewMessage, actor: &Actor) -> Result<Message>;
    /// The message's history, oldest first.
    async fn message_steps(&self, id: i64) -> Result<Vec<MessageStepRow>>;
    /// What a department sender may send (None: nothing granted yet).
    async fn department_grant(&self, user_id: i64) -> Result<Option<Grant>>;
    async fn set_department_grant(&self, user_id: i64, grant: &Grant, actor: &Actor) -> Result<()>;
    async fn pending_outbox(&self) -> Result<Vec<OutboxItem>>;
    async fn finish_outbox(&self, id: i64) -> Result<()>;
    /// Notes that these terminals were sent the message (re-sends count).
    async fn record_sends(&self, message_id: i64, ebrids: &[String], at_ms: i64) -> Result<()>;
    /// Applies a batch of receipts; returns how many deliveries changed.
    async fn apply_receipts(&self, receipts: &[ReceiptIn]) -> Result<u64>;
    async fn delivery_summary(&self, message_id: i64) -> Result<DeliverySummary>;
    async fn deliveries(&self, message_id: i64, only_unreceived: bool, limit: i64) -> Result<Vec<DeliveryRow>>;
    /// Messages still valid at `now` that this terminal has not received.
    async fn pending_for_terminal(&self, ebrid: &str, now_ms: i64) -> Result<Vec<Message>>;
    /// Approved or dispatching messages (for re-sends and completion).
    async fn active_messages(&self) -> Result<Vec<Message>>;
}
