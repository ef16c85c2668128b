//! Records of cap (what the store reads and writes, and the application layer returns).

use super::eb::{Message, NewMessage};
use crate::RegionCode;
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
    pub principal: crate::authz::Principal,
    pub settings: crate::authz::WorkflowSettings,
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
