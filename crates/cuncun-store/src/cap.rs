//! Storage of CAP 1.2 import: per sending department its trusted certificate and whether unsigned
//! alerts are accepted, and every CAP alert received (once per sender + identifier) with its XML,
//! each info block's texts and the message it became. Update and Cancel follow references here.

use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
pub use cuncun_domain::records::cap::*;

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
