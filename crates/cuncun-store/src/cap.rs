//! Storage of CAP 1.2 import: per sending department its trusted certificate and whether unsigned
//! alerts are accepted, and every CAP alert received (once per sender + identifier) with its XML,
//! each info block's texts and the message it became. Update and Cancel follow references here.

use crate::eb::{Message, NewMessage};
use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use serde::Serialize;

/// A department-sender account and its CAP settings (defaults when never set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapDepartment {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub region_code: RegionCode,
    pub disabled: bool,
    /// Trusted signing certificate (PEM); None: signed alerts cannot be verified and are refused.
    pub cert_pem: Option<String>,
    pub accept_unsigned: bool,
    pub updated_ms: Option<i64>,
}

/// One info block's texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapInfoRow {
    pub language: String,
    pub event: String,
    pub headline: String,
    pub description: String,
    pub instruction: String,
    pub sender_name: String,
}

/// A CAP alert as received and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapAlertRow {
    pub id: i64,
    pub sender: String,
    pub identifier: String,
    pub sent: String,
    pub msg_type: String,
    pub status: String,
    pub refs: String,
    pub department_id: i64,
    pub message_id: Option<i64>,
    pub signature: String,
    pub source: String,
    pub outcome: String,
    pub received_ms: i64,
}

/// A checked, mapped alert to store. `message` is None for Cancel.
#[derive(Debug, Clone)]
pub struct CapImport {
    pub sender: String,
    pub identifier: String,
    pub sent: String,
    pub msg_type: String,
    pub status: String,
    pub refs: String,
    /// (sender, identifier) of each referenced alert.
    pub references: Vec<(String, String)>,
    pub department_id: i64,
    pub signature: String,
    pub source: String,
    pub xml: String,
    pub infos: Vec<CapInfoRow>,
    pub message: Option<NewMessage>,
    /// The department the alert comes from, for the workflow rules that decide, inside the
    /// import's transaction, whether it may submit, update and cancel what it references.
    pub principal: cuncun_domain::authz::Principal,
    pub settings: cuncun_domain::authz::WorkflowSettings,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapImported {
    pub alert: CapAlertRow,
    /// The message created (Alert, Update), submitted for approval.
    pub message: Option<Message>,
    /// Messages cancelled by this alert (Cancel, or an Update of a message not yet approved).
    pub cancelled: Vec<Message>,
    /// False when this sender + identifier had been imported before (nothing was written).
    pub created: bool,
}

#[async_trait]
pub trait CapStore: Send + Sync {
    /// Department-sender accounts in `scope` with their CAP settings.
    async fn cap_departments(&self, scope: &RegionCode) -> Result<Vec<CapDepartment>>;
    /// One department-sender account's settings (None: not a department sender).
    async fn cap_department(&self, user_id: i64) -> Result<Option<CapDepartment>>;
    /// Sets a department's trusted certificate (None removes it) and unsigned policy. Audited.
    async fn set_cap_department(&self, user_id: i64, cert_pem: Option<&str>, accept_unsigned: bool, actor: &Actor) -> Result<CapDepartment>;
    /// Stores a checked alert in one transaction: the message is created and submitted, referenced
    /// messages are cancelled (Cancel; Update of a message not yet approved), the update is
    /// related to the message it updates. Idempotent per (sender, identifier). References to
    /// another department's alerts are refused (Invalid); a Cancel none of whose references is
    /// known is refused (Invalid); the same sender + identifier from another department is a Conflict.
    async fn import_cap(&self, imp: &CapImport, actor: &Actor) -> Result<CapImported>;
    async fn cap_alert(&self, id: i64) -> Result<Option<CapAlertRow>>;
    /// The alert a message came from, with its XML.
    async fn cap_alert_for_message(&self, message_id: i64) -> Result<Option<(CapAlertRow, String)>>;
    async fn cap_infos(&self, alert_id: i64) -> Result<Vec<CapInfoRow>>;
    /// Latest alerts of the departments in `scope`, newest first.
    async fn cap_alerts_recent(&self, scope: &RegionCode, limit: i64) -> Result<Vec<CapAlertRow>>;
}
