//! Storage of the emergency broadcast network: resources, terminal status, messages, deliveries,
//! the dispatch outbox and broadcast logs.

use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::authz::Grant;
use cuncun_domain::eb::{Ebrid, ResourceKind};
use cuncun_domain::protocol::LogEntry;
pub use cuncun_domain::records::eb::*;

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
    /// Keeps terminal reports that were refused (at the edge or by the database); one statement
    /// per chunk.
    async fn quarantine_reports(&self, rows: &[Quarantined]) -> Result<u64>;
    /// The latest quarantined reports, newest first.
    async fn quarantined_reports(&self, limit: i64) -> Result<Vec<Quarantined>>;
    /// Forgets quarantined reports kept before `before_ms`; returns how many.
    async fn prune_quarantine(&self, before_ms: i64) -> Result<u64>;

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
    /// the cancel and writes a cancel command for every target that may have heard the play
    /// (every target while approved; those sent it or receipting it once dispatching). Failpoints `message.update.*` mark where a crash test stops an update's approval.
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
    /// Notes that these terminals (none: every target) are being sent the message. Called
    /// before publishing, so that a cancel committed meanwhile finds every terminal that may
    /// have heard it. Counts per connection too (see `DeliveryRow::conn_sends`).
    async fn record_sends(&self, message_id: i64, ebrids: &[String], at_ms: i64) -> Result<()>;
    /// Commands not yet receipted and still mattering at `now_ms` for one terminal (catch-up).
    async fn open_commands_for(&self, ebrid: &str, now_ms: i64) -> Result<Vec<CommandRow>>;
    /// Commands not yet receipted and still mattering at `now_ms` for terminals online now.
    async fn open_commands_online(&self, now_ms: i64) -> Result<Vec<CommandRow>>;
    /// Every command written for a message (a cancel's targets), receipted or not.
    async fn message_commands(&self, message_id: i64) -> Result<Vec<CommandRow>>;
    /// Notes that these commands are being sent (before publishing, as `record_sends`).
    async fn record_command_sends(&self, ids: &[i64], at_ms: i64) -> Result<()>;
    /// Applies a batch of receipts; returns how many deliveries and commands changed. A
    /// `cancelled` receipt (or `finished` with reason `cancelled`) closes that message's cancel
    /// for the terminal.
    async fn apply_receipts(&self, receipts: &[ReceiptIn]) -> Result<u64>;
    async fn delivery_summary(&self, message_id: i64) -> Result<DeliverySummary>;
    async fn deliveries(&self, message_id: i64, only_unreceived: bool, limit: i64) -> Result<Vec<DeliveryRow>>;
    /// Messages still valid at `now` that this terminal has not received.
    async fn pending_for_terminal(&self, ebrid: &str, now_ms: i64) -> Result<Vec<Message>>;
    /// Approved or dispatching messages (for re-sends and completion).
    async fn active_messages(&self) -> Result<Vec<Message>>;
}
