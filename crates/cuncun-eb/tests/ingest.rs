//! Ingest of terminal reports under bad input and a failing database: a poisoned report is
//! quarantined and everyone else's reports go on being written; a full batch pushes back.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use cuncun_domain::protocol::{LogEntry, Stage};
use cuncun_eb::{DeviceAuth, EbConfig, EbStats, EbWorker};
use cuncun_gateway::{Bus, BusEvent, GatewayStats};
use cuncun_store::eb::ReceiptIn;
use cuncun_store::testing::{self, TestDb, all_backends};
use cuncun_store::{Actor, Backend, Store};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// A bus that carries nothing down: these tests feed the reports themselves.
struct NoBus;

#[async_trait::async_trait]
impl Bus for NoBus {
    async fn publish(&self, _: &str, _: Bytes) -> anyhow::Result<Option<usize>> {
        Ok(Some(0))
    }
    fn is_online(&self, _: &str) -> Option<bool> {
        None
    }
    fn stats(&self) -> GatewayStats {
        GatewayStats::default()
    }
}

/// Three loudspeakers in one village and a warning on air to all three: (store, codes, ebmid).
async fn on_air(db: &TestDb) -> (Arc<dyn Store>, Vec<String>, String) {
    let store: Arc<dyn Store> = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    testing::import_codes(&*store, &["50", "5002", "500236", "500236100", "500236100201"]).await;
    let speakers = vec![testing::loudspeaker("500236100201", "x"); 3];
    let ids = store.insert_resources(&speakers, &Actor::system()).await.unwrap();
    let msg = store.create_message(&testing::warning(&["500236100201"], "500236", 600_000), &Actor::system()).await.unwrap();
    testing::submit_and_approve(&*store, &msg, &Actor::system()).await.unwrap();
    (store, ids, msg.ebmid)
}

/// The ingest worker alone, reading reports from the returned sender.
fn start_ingest(store: Arc<dyn Store>, cfg: EbConfig, queue: usize) -> (mpsc::Sender<BusEvent>, Arc<EbStats>) {
    let (tx, rx) = mpsc::channel(queue);
    let (handle, workers) = cuncun_eb::prepare(store, Arc::new(NoBus), rx, Arc::new(DeviceAuth::new(vec![])), cfg);
    tokio::spawn(async move { workers.run(EbWorker::Ingest, std::future::pending(), &|_| {}).await });
    (tx, handle.stats.clone())
}

fn up(id: &str, kind: &str, json: &str) -> BusEvent {
    BusEvent::Up { id: id.into(), kind: kind.into(), payload: Bytes::from(json.to_string()) }
}

fn rcpt(ebmid: &str, stage: &str, extra: &str) -> String {
    format!(r#"{{"v":1,"id":"{ebmid}","stage":"{stage}","ts":1780000000000{extra}}}"#)
}

/// Each target's delivery stage (0 pending .. 3 finished, 4 failed), in the order of `ids`.
async fn stages(store: &dyn Store, ebmid: &str, ids: &[String]) -> Vec<i64> {
    let m = store.message_by_ebmid(ebmid).await.unwrap().unwrap();
    let rows = store.deliveries(m.id, false, 100).await.unwrap();
    ids.iter().map(|id| rows.iter().find(|d| &d.ebrid == id).map_or(-1, |d| d.stage)).collect()
}

async fn wait_stages(store: &dyn Store, ebmid: &str, ids: &[String], want: &[i64]) {
    let mut got = Vec::new();
    for _ in 0..300 {
        got = stages(store, ebmid, ids).await;
        if got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("delivery stages {got:?}, expected {want:?}");
}

fn fast() -> EbConfig {
    EbConfig { flush_every: Duration::from_millis(50), ..EbConfig::default() }
}

#[tokio::test]
async fn a_report_with_nul_is_quarantined_and_the_others_are_written() {
    for db in all_backends().await {
        let (store, ids, ebmid) = on_air(&db).await;
        let (tx, stats) = start_ingest(store.clone(), fast(), 64);
        // One batch: terminal 0 sends a NUL (PostgreSQL refuses it in text) in a receipt and in
        // a log entry; terminal 1 receipts normally.
        let log_nul = format!(r#"{{"v":1,"id":"{ebmid}","source":"emergency","start":1,"end":2,"volume":80,"result":"ok\u0000"}}"#);
        tx.send(up(&ids[0], "rcpt", &rcpt(&ebmid, "failed", r#","reason":"bad\u0000byte""#))).await.unwrap();
        tx.send(up(&ids[0], "log", &log_nul)).await.unwrap();
        tx.send(up(&ids[1], "rcpt", &rcpt(&ebmid, "received", ""))).await.unwrap();
        wait_stages(&*store, &ebmid, &ids, &[0, 1, 0]).await;
        // Later batches go on, the poisoned terminal's next good receipt included.
        tx.send(up(&ids[2], "rcpt", &rcpt(&ebmid, "started", ""))).await.unwrap();
        tx.send(up(&ids[0], "rcpt", &rcpt(&ebmid, "received", ""))).await.unwrap();
        wait_stages(&*store, &ebmid, &ids, &[1, 1, 2]).await;

        let q = store.quarantined_reports(10).await.unwrap();
        let mut seen: Vec<(&str, &str, &str)> = q.iter().map(|q| (q.ebrid.as_str(), q.kind.as_str(), q.reason.as_str())).collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                (ids[0].as_str(), "log", "refused: result: control character U+0000 at character 3"),
                (ids[0].as_str(), "rcpt", "refused: reason: control character U+0000 at character 4"),
            ],
            "{:?}",
            db.store.backend()
        );
        assert!(q.iter().all(|q| q.payload.contains(&ebmid) && !q.payload.contains('\0')));
        assert_eq!(stats.quarantined.load(Ordering::Relaxed), 2);
        // Not a log entry of the poisoned one was stored.
        let r = store.resource_by_ebrid(&ids[0]).await.unwrap().unwrap();
        assert!(store.broadcast_logs(r.id, 10).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_record_the_database_refuses_is_quarantined_and_its_batch_is_written() {
    for db in all_backends().await {
        let (store, ids, ebmid) = on_air(&db).await;
        let stats = EbStats::default();
        let rc_in = |id: &String, stage, reason: Option<&str>| ReceiptIn { ebrid: id.clone(), ebmid: ebmid.clone(), stage, ts: 5, reason: reason.map(str::to_string) };
        let log = |id: &String, result: &str| {
            (id.clone(), LogEntry { v: 1, id: ebmid.clone(), source: "emergency".into(), start: 1, end: 2, volume: 80, result: Some(result.into()) })
        };
        // Not checked at the edge: as if a check had missed it.
        let receipts = vec![rc_in(&ids[0], Stage::Failed, Some("bad\0byte")), rc_in(&ids[1], Stage::Received, None), rc_in(&ids[2], Stage::Started, None)];
        let logs = vec![log(&ids[0], "ok\0"), log(&ids[1], "finished")];
        cuncun_eb::write_unchecked(&*store, &stats, receipts, logs).await.unwrap();
        let q = store.quarantined_reports(10).await.unwrap();
        let logged = |i: usize| {
            let store = store.clone();
            let id = ids[i].clone();
            async move { store.broadcast_logs(store.resource_by_ebrid(&id).await.unwrap().unwrap().id, 10).await.unwrap().len() }
        };
        assert_eq!(logged(1).await, 1);
        match db.store.backend() {
            Backend::Postgres => {
                // PostgreSQL refuses NUL in text: the two records alone are set aside.
                assert_eq!(stages(&*store, &ebmid, &ids).await, [0, 1, 2]);
                let mut kinds: Vec<&str> = q.iter().map(|q| q.kind.as_str()).collect();
                kinds.sort();
                assert_eq!(kinds, ["log", "rcpt"]);
                assert!(q.iter().all(|q| q.ebrid == ids[0] && q.reason.starts_with("refused by the database") && q.payload.contains("\\u0000")), "{q:?}");
                assert_eq!(stats.refused_by_db.load(Ordering::Relaxed), 2);
                assert_eq!(logged(0).await, 0);
            }
            Backend::Sqlite => {
                // SQLite stores it: nothing refused, nothing set aside.
                assert_eq!(stages(&*store, &ebmid, &ids).await, [4, 1, 2]);
                assert!(q.is_empty());
                assert_eq!(logged(0).await, 1);
            }
        }
    }
}

#[tokio::test]
async fn a_full_batch_stops_reading_until_the_database_is_back() {
    let db = testing::sqlite().await;
    let (store, ids, ebmid) = on_air(&db).await;
    // Writes of receipts fail (the table is gone for a while): not a refusal, so they are kept.
    sqlx::query("ALTER TABLE eb_delivery RENAME TO eb_delivery_away").execute(db.store.pool()).await.unwrap();
    let cfg = EbConfig { max_batch: 8, ..fast() };
    let (tx, stats) = start_ingest(store.clone(), cfg, 4);
    let mut accepted = 0;
    for _ in 0..100 {
        if tx.try_send(up(&ids[0], "rcpt", &rcpt(&ebmid, "received", ""))).is_ok() {
            accepted += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The batch (8) and the bus's queue (4) hold what was taken; the rest was pushed back.
    assert_eq!(accepted, 12, "reports taken while the database was failing");
    assert!(stats.ingest_full.load(Ordering::Relaxed) >= 1);
    sqlx::query("ALTER TABLE eb_delivery_away RENAME TO eb_delivery").execute(db.store.pool()).await.unwrap();
    for id in &ids {
        tx.send(up(id, "rcpt", &rcpt(&ebmid, "finished", ""))).await.unwrap();
    }
    wait_stages(&*store, &ebmid, &ids, &[3, 3, 3]).await;
    assert_eq!(stats.quarantined.load(Ordering::Relaxed), 0, "an outage is not a refusal");
}

#[tokio::test]
async fn a_terminal_sending_garbage_is_quarantined_a_few_at_a_time_and_the_rest_shed() {
    let db = testing::sqlite().await;
    let (store, ids, ebmid) = on_air(&db).await;
    let (tx, stats) = start_ingest(store.clone(), EbConfig { flush_every: Duration::from_millis(500), ..fast() }, 64);
    for _ in 0..30 {
        tx.send(up(&ids[0], "rcpt", "not json")).await.unwrap();
    }
    tx.send(up(&ids[1], "log", r#"{"v":1,"id":"x","source":"radio","start":1,"end":2,"volume":1}"#)).await.unwrap();
    tx.send(up(&ids[2], "rcpt", &rcpt(&ebmid, "received", ""))).await.unwrap();
    wait_stages(&*store, &ebmid, &ids, &[0, 0, 1]).await;
    let q = store.quarantined_reports(100).await.unwrap();
    // At most 10 a batch from one terminal (the 30 may straddle two batches).
    let kept = q.iter().filter(|q| q.ebrid == ids[0]).count() as u64;
    let shed = stats.shed.load(Ordering::Relaxed);
    assert!(kept.is_multiple_of(10) && kept + shed == 30 && shed >= 10, "kept {kept}, shed {shed}");
    assert!(q.iter().all(|q| q.ebrid != ids[0] || q.reason.starts_with("not a valid report")));
    let other: Vec<&str> = q.iter().filter(|q| q.ebrid == ids[1]).map(|q| q.reason.as_str()).collect();
    assert_eq!(other.len(), 1);
    assert!(other[0].starts_with("refused: source: \"radio\" is not one of emergency"), "{other:?}");
    assert_eq!(stats.quarantined.load(Ordering::Relaxed), kept + 1);
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 30);
    // Old rows go.
    assert_eq!(store.prune_quarantine(cuncun_store::now_ms() + 1).await.unwrap(), kept + 1);
    assert!(store.quarantined_reports(100).await.unwrap().is_empty());
}
