//! Emergency-broadcast storage, on every backend.
#![allow(clippy::unwrap_used)]

use cuncun_domain::eb::{MessageStatus, ResourceKind};
use cuncun_domain::model::Region;
use cuncun_domain::protocol::{Heartbeat, Stage, TerminalState};
use cuncun_domain::RegionCode;
use cuncun_domain::authz::{MsgCommand, Principal, Via, WorkflowSettings, decide};
use cuncun_store::eb::MessageMove;
use cuncun_store::eb::*;
use cuncun_store::testing::all_backends;
use cuncun_store::{Actor, Store};

fn rc(s: &str) -> RegionCode {
    RegionCode::parse(s).unwrap()
}

fn region(code: &str) -> Region {
    let c = rc(code);
    Region { level: c.level(), parent: c.parent(), code: c, name: code.into() }
}

fn terminal(village: &str) -> NewResource {
    NewResource {
        kind: ResourceKind::OutdoorLoudspeaker,
        region_code: rc(village),
        name: format!("{village} 大喇叭"),
        vendor: "v".into(),
        model: "m".into(),
        lon: None,
        lat: None,
        install_date: "2024-05-01".into(),
        ebrid: None,
        secret_hash: "abc".into(),
    }
}

async fn setup(s: &dyn Store) {
    let codes = ["50", "5002", "500236", "500236001", "500236001001", "500236100", "500236100201", "500236100202"];
    let regions: Vec<Region> = codes.iter().map(|c| region(c)).collect();
    s.import_regions(&regions, "t", &Actor::system()).await.unwrap();
    let mut ts = Vec::new();
    for v in ["500236001001", "500236100201", "500236100201", "500236100202"] {
        ts.push(terminal(v));
    }
    s.insert_resources(&ts, &Actor::cli("t")).await.unwrap();
}

fn author() -> Principal {
    Principal::User { id: 1, name: "a".into(), role: cuncun_domain::Role::Broadcaster, region: rc("500236"), via: Via::Cli }
}

fn reviewer() -> Principal {
    Principal::User { id: 2, name: "r".into(), role: cuncun_domain::Role::Reviewer, region: rc("500236"), via: Via::Cli }
}

/// A step the workflow rules allow (the store writes only those).
fn step(p: &Principal, cmd: MsgCommand, m: &cuncun_store::eb::Message) -> MessageMove {
    let t = decide(p, cmd, &m.facts(), &WorkflowSettings::default()).unwrap().unwrap();
    MessageMove::new(m.id, t)
}

fn new_message(areas: &[&str]) -> NewMessage {
    NewMessage { body: "预计未来6小时".into(), start_ms: 0, repeat_count: 3, ..cuncun_store::testing::warning(areas, "500236", 3_600_000) }
}

#[tokio::test]
async fn resources_get_codes_and_credentials() {
    for db in all_backends().await {
        let s = &db.store;
        setup(s).await;
        let list = s.resources_in(&rc("500236100"), &[], false, 100, 0).await.unwrap();
        assert_eq!(list.len(), 3);
        let codes: Vec<&str> = list.iter().map(|r| r.resource.ebrid.as_str()).collect();
        assert_eq!(codes[0], "65002361002010314010101");
        assert_eq!(codes[1], "65002361002010314010102", "second in the same village");
        assert!(list.iter().all(|r| r.online.is_none()), "never seen yet");
        let creds = s.device_credentials().await.unwrap();
        assert_eq!(creds.len(), 4);
        assert_eq!(creds[0].region12.len(), 12);
        let one = s.add_resource(&terminal("500236100202"), &Actor::cli("t")).await.unwrap();
        assert_eq!(one.ebrid, "65002361002020314010102");
        s.retire_resource(one.id, &Actor::cli("t")).await.unwrap();
        assert_eq!(s.device_credentials().await.unwrap().len(), 4, "a retired device cannot authenticate");
        assert_eq!(s.resources_in(&rc("500236"), &[], false, 100, 0).await.unwrap().len(), 4);
        assert_eq!(s.resources_in(&rc("500236"), &[], true, 100, 0).await.unwrap().len(), 5);
        assert_eq!(s.region_counts(&rc("500236")).await.unwrap().terminals, 4);
    }
}

#[tokio::test]
async fn status_changes_apply_in_batches() {
    for db in all_backends().await {
        let s = &db.store;
        setup(s).await;
        let e = "65002361002010314010101".to_string();
        let hb = Heartbeat { v: 1, ts: 10, state: TerminalState::Playing, volume: 70, task: Some("x".into()), faults: vec!["E01".into()] };
        s.apply_status(&[
            StatusChange::Online { ebrid: e.clone(), at_ms: 1000 },
            StatusChange::Heartbeat { ebrid: e.clone(), at_ms: 2000, hb },
        ])
        .await
        .unwrap();
        let r = &s.resources_in(&rc("500236100201"), &[], false, 10, 0).await.unwrap()[0];
        assert_eq!((r.online, r.last_seen_ms, r.volume, r.state.as_str()), (Some(true), Some(2000), 70, "playing"));
        assert_eq!(r.faults, "E01");
        s.apply_status(&[StatusChange::Offline { ebrid: e.clone(), at_ms: 5000 }]).await.unwrap();
        let r = &s.resources_in(&rc("500236100201"), &[], false, 10, 0).await.unwrap()[0];
        assert_eq!(r.online, Some(false));
        // One batch with two terminals, and one of them dropping and coming back twice: applied
        // in order, every connection interval kept.
        let e2 = "65002361002020314010101".to_string();
        s.apply_status(&[
            StatusChange::Online { ebrid: e.clone(), at_ms: 6000 },
            StatusChange::Online { ebrid: e2.clone(), at_ms: 6000 },
            StatusChange::Offline { ebrid: e.clone(), at_ms: 7000 },
            StatusChange::Online { ebrid: e.clone(), at_ms: 8000 },
            StatusChange::Online { ebrid: e.clone(), at_ms: 9000 },
        ])
        .await
        .unwrap();
        let id = s.resource_by_ebrid(&e).await.unwrap().unwrap().id;
        let mut iv: Vec<(i64, Option<i64>)> = s.connections(id, 10).await.unwrap().to_vec();
        iv.sort();
        assert_eq!(iv, vec![(1000, Some(5000)), (6000, Some(7000)), (8000, Some(9000)), (9000, None)]);
        let id2 = s.resource_by_ebrid(&e2).await.unwrap().unwrap().id;
        assert_eq!(s.connections(id2, 10).await.unwrap().len(), 1);
        // Broadcast logs, several terminals in one batch; an unknown terminal's entry is dropped.
        let log = |id: &str, start: i64, result: Option<&str>| cuncun_domain::protocol::LogEntry {
            v: 1,
            id: id.into(),
            source: "emergency".into(),
            start,
            end: start + 30_000,
            volume: 80,
            result: result.map(str::to_string),
        };
        let n = s
            .insert_logs(&[
                (e.clone(), log("m1", 1000, None)),
                (e2.clone(), log("m1", 1100, Some("amp fault"))),
                (e.clone(), log("m2", 5000, None)),
                ("99999999999999999999999".into(), log("m1", 1000, None)),
            ])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let mut mine: Vec<(String, i64)> = s.broadcast_logs(id, 10).await.unwrap().iter().map(|l| (l.ebmid.clone(), l.start_ms)).collect();
        mine.sort();
        assert_eq!(mine, vec![("m1".to_string(), 1000), ("m2".to_string(), 5000)]);
        let theirs = s.broadcast_logs(id2, 10).await.unwrap();
        assert_eq!((theirs.len(), theirs[0].result.as_deref(), theirs[0].volume), (1, Some("amp fault"), 80));
    }
}

#[tokio::test]
async fn message_lifecycle_outbox_and_receipts() {
    for db in all_backends().await {
        let s = &db.store;
        setup(s).await;
        s.apply_status(&[StatusChange::Online { ebrid: "65002361002010314010101".into(), at_ms: 1 }]).await.unwrap();
        let reach = s.reach(&[rc("500236100")], &[]).await.unwrap();
        assert_eq!((reach.terminals, reach.online, reach.villages), (3, 1, 2));
        let m = s.create_message(&new_message(&["500236100"]), &Actor::cli("t")).await.unwrap();
        assert_eq!(m.ebmid.len(), 35);
        assert_eq!(m.status, MessageStatus::Draft);
        let m2 = s.create_message(&new_message(&["500236100"]), &Actor::cli("t")).await.unwrap();
        assert_eq!(&m2.ebmid[31..], "0002", "daily sequence");
        let submit = step(&author(), MsgCommand::Submit, &m);
        s.transition_message(submit.clone(), &Actor::cli("t")).await.unwrap();
        let stale = s.transition_message(submit, &Actor::cli("t")).await;
        assert!(matches!(stale, Err(cuncun_store::StoreError::Conflict(_))), "two reviewers racing: one wins");
        assert!(s.pending_outbox().await.unwrap().is_empty());
        let mut approve = step(&reviewer(), MsgCommand::Approve, &s.message(m.id).await.unwrap().unwrap());
        approve.approver_id = Some(7);
        let a = s.transition_message(approve, &Actor::cli("t")).await.unwrap();
        assert_eq!(a.approver_id, Some(7));
        let ob = s.pending_outbox().await.unwrap();
        assert_eq!(ob.len(), 1);
        assert_eq!(ob[0].action, "dispatch");
        let sum = s.delivery_summary(m.id).await.unwrap();
        assert_eq!((sum.targets, sum.pending, sum.pending_offline), (3, 3, 2), "the township's 3 terminals, not the other township's");
        let offline = "65002361002020314010101";
        assert_eq!(s.pending_for_terminal(offline, cuncun_store::now_ms()).await.unwrap().len(), 1);
        assert!(s.pending_for_terminal("65002360010010314010101", cuncun_store::now_ms()).await.unwrap().is_empty(), "not a target");
        let rc_in = |e: &str, stage| ReceiptIn { ebrid: e.into(), ebmid: m.ebmid.clone(), stage, ts: 100, reason: None };
        let n = s
            .apply_receipts(&[
                rc_in("65002361002010314010101", Stage::Received),
                rc_in("65002361002010314010101", Stage::Started),
                rc_in(offline, Stage::Received),
                rc_in("65002360010010314010101", Stage::Received),
            ])
            .await
            .unwrap();
        assert_eq!(n, 2, "two targets' deliveries updated; the receipt of a non-target is ignored");
        // A late "received" never moves a terminal backwards.
        s.apply_receipts(&[rc_in("65002361002010314010101", Stage::Received)]).await.unwrap();
        let sum = s.delivery_summary(m.id).await.unwrap();
        assert_eq!((sum.received, sum.started, sum.pending), (2, 1, 1));
        assert!(s.pending_for_terminal(offline, cuncun_store::now_ms()).await.unwrap().is_empty());
        let missing = s.deliveries(m.id, true, 100).await.unwrap();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].ebrid, "65002361002010314010102");
        s.finish_outbox(ob[0].id).await.unwrap();
        assert!(s.pending_outbox().await.unwrap().is_empty());
        let mut cancel = step(&reviewer(), MsgCommand::Cancel, &s.message(m.id).await.unwrap().unwrap());
        cancel.reason = "test".into();
        let c = s.transition_message(cancel, &Actor::cli("t")).await.unwrap();
        assert_eq!(c.status, MessageStatus::Cancelled);
        assert_eq!(s.pending_outbox().await.unwrap()[0].action, "cancel");
        let log = s.audit_recent(20).await.unwrap();
        for step in ["message.create", "message.submitted", "message.approved", "message.cancelled"] {
            assert!(log.iter().any(|e| e.action == step), "{step} audited");
        }
    }
}
