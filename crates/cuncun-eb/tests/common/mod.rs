//! What the end-to-end tests of this crate share: a warning to approve, and approving it.
#![allow(clippy::unwrap_used, dead_code)]

use cuncun_domain::RegionCode;
use cuncun_domain::eb::{Ebrid, ResourceKind};
use cuncun_store::eb::NewMessage;
use cuncun_store::{Actor, Store};

pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

pub fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

/// An orange rainstorm warning of county `county` (6 digits) for `areas`, valid from now for
/// `valid_ms`, played once.
pub fn message(county: &str, areas: &[&str], valid_ms: i64) -> NewMessage {
    NewMessage {
        platform: Ebrid::generate(&rc(county), ResourceKind::Platform, 1).unwrap(),
        msg_type: "broadcast".into(),
        related_ebmid: None,
        priority: "emergency".into(),
        drill: false,
        event_type: "11B03".into(),
        severity: 2,
        title: "暴雨橙色预警".into(),
        body: "测试".into(),
        lang: "zho".into(),
        audio_sha256: None,
        audio_size: None,
        areas: areas.iter().map(|a| rc(a)).collect(),
        terminals: vec![],
        start_ms: cuncun_store::now_ms(),
        end_ms: cuncun_store::now_ms() + valid_ms,
        repeat_count: 1,
        volume: None,
        source: "local".into(),
        owner_region: rc(county),
        author_id: Some(1),
        start_on_approval: false,
        from_peer: None,
    }
}

/// Composes `m` and puts it on air through the workflow (author submits, reviewer approves).
pub async fn approve(store: &dyn Store, m: &NewMessage) -> String {
    let msg = store.create_message(m, &Actor::system()).await.unwrap();
    cuncun_store::testing::submit_and_approve(store, &msg, &Actor::system()).await.unwrap();
    msg.ebmid
}
