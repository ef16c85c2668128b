//! Storage: the [`Store`] trait and its SQL implementation for SQLite (embedded default, WAL) and
//! PostgreSQL. Both backends share one implementation written in portable SQL (`$n` placeholders,
//! integer ids, UTC epoch milliseconds); what differs (DDL, write serialisation, the audit lock)
//! lives in [`Backend`]. One conformance suite (tests/conformance.rs) runs against both.

mod bulk;
pub mod cap;
pub mod eb;
pub mod interchange;
pub mod report;
pub mod service;
mod service_stats;
mod sql;
mod sql_cap;
mod sql_eb;
mod sql_interchange;
mod sql_report;
mod sql_service;
pub mod testing;

use async_trait::async_trait;
use cuncun_domain::audit::AuditEntry;
use cuncun_domain::model::*;
use cuncun_domain::{RegionCode, Role};
use serde::Serialize;

pub use sql::SqlStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("{0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The workflow rules (`cuncun_domain::authz::decide`) refused a step.
    #[error("{0}")]
    Denied(#[from] cuncun_domain::authz::Denied),
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl StoreError {
    /// Whether the database refused the data itself (a value it cannot store, a constraint),
    /// as opposed to being unreachable or failing: writing the same data again fails again, so a
    /// writer of batches sets the record aside instead of retrying it forever.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::Invalid(_) | StoreError::Conflict(_) => true,
            StoreError::Db(sqlx::Error::Encode(_)) => true,
            StoreError::Db(sqlx::Error::Database(d)) => {
                use sqlx::error::ErrorKind;
                if !matches!(d.kind(), ErrorKind::Other) {
                    return true; // unique, foreign key, not null, check
                }
                let code = d.code().unwrap_or_default();
                // PostgreSQL SQLSTATE: class 22 data exception (e.g. 22021, NUL in text),
                // class 23 integrity constraint. SQLite (numeric codes, the low byte is the
                // primary code): 18 TOOBIG, 19 CONSTRAINT, 20 MISMATCH.
                if code.len() == 5 && (code.starts_with("22") || code.starts_with("23")) {
                    return true;
                }
                code.parse::<u32>().is_ok_and(|c| code.len() < 5 && matches!(c & 0xff, 18..=20))
            }
            _ => false,
        }
    }
}

pub use cuncun_domain::records::{Actor, ImportReport, NewSession, RegionRow, RegistryBatch, SessionRow, UserPatch};

#[async_trait]
pub trait Store: cap::CapStore + eb::EbStore + service::ServiceStore + interchange::InterchangeStore + report::ReportStore + Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations; returns the names of those applied.
    async fn migrate(&self) -> Result<Vec<String>>;
    async fn ping(&self) -> Result<()>;

    // Regions
    /// Inserts or updates regions (parents first). One audit entry summarises the import.
    async fn import_regions(&self, regions: &[Region], source: &str, actor: &Actor) -> Result<ImportReport>;
    async fn region(&self, code: &RegionCode) -> Result<Option<Region>>;
    async fn children(&self, code: &RegionCode) -> Result<Vec<RegionRow>>;
    async fn region_counts(&self, code: &RegionCode) -> Result<RegionCounts>;
    /// Regions whose name contains `q`, within `scope`, at most `limit`.
    async fn search_regions(&self, scope: &RegionCode, q: &str, limit: i64) -> Result<Vec<Region>>;

    // Hamlets
    async fn add_hamlet(&self, h: &NewHamlet, actor: &Actor) -> Result<Hamlet>;
    async fn hamlets(&self, village: &RegionCode) -> Result<Vec<Hamlet>>;

    // Registry (bulk, used by the demo and importers)
    async fn insert_registry(&self, batch: &RegistryBatch, actor: &Actor) -> Result<()>;

    // Users
    async fn create_user(&self, u: &NewUser, actor: &Actor) -> Result<User>;
    async fn user(&self, id: i64) -> Result<Option<User>>;
    /// The user and their password hash.
    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>>;
    async fn users_in(&self, scope: &RegionCode) -> Result<Vec<User>>;
    async fn update_user(&self, id: i64, patch: &UserPatch, actor: &Actor) -> Result<User>;
    async fn set_password(&self, id: i64, password_hash: &str, actor: &Actor) -> Result<()>;
    async fn count_users(&self) -> Result<i64>;

    // Sessions
    async fn create_session(&self, s: &NewSession) -> Result<()>;
    /// A session that exists, is not revoked and not expired at `now_ms`.
    async fn live_session(&self, token_hash: &str, now_ms: i64) -> Result<Option<SessionRow>>;
    async fn sessions_of(&self, user_id: i64) -> Result<Vec<SessionRow>>;
    async fn revoke_session(&self, token_hash: &str, actor: &Actor) -> Result<bool>;
    async fn revoke_user_sessions(&self, user_id: i64, actor: &Actor) -> Result<u64>;

    // Audit
    /// Appends an entry for something that changed outside a store write (e.g. a login).
    async fn audit(&self, actor: &Actor, action: &str, entity: &str, entity_id: &str, before: &str, after: &str) -> Result<()>;
    /// Entries with seq > `after_seq`, in order, at most `limit`.
    async fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>>;
    /// Latest entries first, optionally only those touching `entity`.
    async fn audit_recent(&self, limit: i64) -> Result<Vec<AuditEntry>>;
}

pub use cuncun_domain::time::now_ms;

/// Connects to the database named by `url` (`sqlite://path` or `postgres://...`).
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(SqlStore::connect(url).await?))
}

/// The URL with any password replaced, safe to print and log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}

/// Walks the whole audit log and checks the hash chain. Returns entries checked and faults.
pub async fn verify_audit(store: &dyn Store) -> Result<(u64, Vec<cuncun_domain::audit::ChainFault>)> {
    let mut v = cuncun_domain::audit::ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| v.push(e));
    }
    Ok((v.checked, v.faults))
}
