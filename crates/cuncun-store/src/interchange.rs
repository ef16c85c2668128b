//! Storage for the interchange with upper and lower platforms (EBD): the durable outbox of signed
//! packages, the inbox log, peers' link state, EBMs received from a parent and messages forwarded
//! to children with the state they report.

use crate::eb::{Message, NewMessage, ResourceWithStatus};
use crate::{Actor, Result};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
pub use cuncun_domain::records::interchange::*;

#[async_trait]
pub trait InterchangeStore: Send + Sync {
    /// Queues a signed package for `peer` (its EBRID); sent by the interchange worker.
    async fn enqueue_ebd(&self, peer: &str, ebdid: &str, ebd_type: &str, package: &[u8], now_ms: i64) -> Result<i64>;
    /// Packages due for (another) attempt, oldest first.
    async fn due_ebds(&self, now_ms: i64, limit: i64) -> Result<Vec<EbdOut>>;
    /// The peer answered; `result_code` from its EBDResponse.
    async fn ebd_done(&self, id: i64, result_code: i64, now_ms: i64) -> Result<()>;
    async fn ebd_retry(&self, id: i64, error: &str, next_attempt_ms: i64) -> Result<()>;
    async fn ebd_outbox_recent(&self, limit: i64) -> Result<Vec<EbdOutRow>>;
    async fn record_ebd_in(&self, e: &EbdInRow) -> Result<()>;
    async fn ebd_inbox_recent(&self, limit: i64) -> Result<Vec<EbdInRow>>;
    /// Records a link check; true when the link changed state (down -> up or up -> down).
    async fn set_peer_link(&self, peer: &str, up: bool, now_ms: i64, error: Option<&str>) -> Result<bool>;
    async fn set_peer_reported(&self, peer: &str, until_ms: i64) -> Result<()>;
    async fn peer_states(&self) -> Result<Vec<PeerState>>;
    /// An EBM from `peer` becomes a local message (by `arrive`, which the workflow rules made:
    /// submitted, or approved when the platform dispatches its severity at once), once
    /// per EBMID: the second time the existing message comes back with `false`. `also` (the
    /// original an approved update replaces) is written in the same transaction.
    async fn receive_ebm(&self, ebmid: &str, peer: &str, m: &NewMessage, arrive: cuncun_domain::authz::Transition, also: &[crate::eb::MessageMove], actor: &Actor) -> Result<(Message, bool)>;
    async fn received_ebms(&self) -> Result<Vec<ReceivedEbm>>;
    async fn set_received_state(&self, ebmid: &str, state: i64, now_ms: i64) -> Result<()>;
    /// Marks a local message as sent on to a child (false if it already was).
    async fn mark_forwarded(&self, message_id: i64, peer: &str, ebdid: &str) -> Result<bool>;
    async fn forwarded(&self, message_id: i64) -> Result<Vec<Forwarded>>;
    /// What a child reported of a message we sent it (by the message's EBMID).
    async fn set_forwarded_state(&self, ebmid: &str, peer: &str, state: i64, coverage_rate: Option<&str>, now_ms: i64) -> Result<bool>;
    /// Resources in `scope` created, edited or retired at or after `since_ms` (None: all current
    /// ones), with their status: what an Info report carries.
    async fn resources_for_report(&self, scope: &RegionCode, since_ms: Option<i64>) -> Result<Vec<ResourceWithStatus>>;
    /// Resources whose online state changed at or after `since_ms` (None: all): a State report.
    async fn states_for_report(&self, scope: &RegionCode, since_ms: Option<i64>) -> Result<Vec<ResourceWithStatus>>;
}
