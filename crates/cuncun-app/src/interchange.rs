//! What the EBD interchange with parent and child platforms shows: packages in and out, peer states.

use crate::access;
use crate::{App, Result};
use cuncun_domain::authz::Principal;
use cuncun_domain::records::interchange::{EbdInRow, EbdOutRow, PeerState};
use cuncun_domain::Role;

/// The link state of each peer and the latest packages in and out.
#[derive(Debug, Clone)]
pub struct InterchangeView {
    pub peers: Vec<PeerState>,
    pub inbox: Vec<EbdInRow>,
    pub outbox: Vec<EbdOutRow>,
}

impl App {
    /// The interchange's state for those who run the emergency broadcast: administrators,
    /// broadcasters and reviewers (the packages concern the whole platform).
    pub async fn interchange_view(&self, p: &Principal, limit: i64) -> Result<InterchangeView> {
        access::require(
            p,
            &[Role::Admin, Role::Broadcaster, Role::Reviewer],
            "the interchange page is for administrators, broadcasters and reviewers",
        )?;
        Ok(InterchangeView {
            peers: self.store.peer_states().await?,
            inbox: self.store.ebd_inbox_recent(limit).await?,
            outbox: self.store.ebd_outbox_recent(limit).await?,
        })
    }
}
