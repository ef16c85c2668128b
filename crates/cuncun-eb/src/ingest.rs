//! Ingest of terminal reports. Each report is parsed and checked on its own as it arrives
//! (`protocol::Receipt::check` and its kin); what passes is batched and written together every
//! `flush_every`. A report that fails its check, or that the database refuses when its batch is
//! written (the batch is then split until the refused records stand alone), is quarantined
//! (`terminal_quarantine`) with its reason and never retried, so one bad record cannot stall
//! every terminal's receipts. The batch is bounded: when it is full (the database is slow or
//! down) ingest stops reading and the bus's bounded queue pushes back on the gateway.

use crate::service::{EbConfig, EbStats};
use cuncun_domain::protocol::{self, Heartbeat, LogEntry, Receipt, Status};
use cuncun_gateway::BusEvent;
use cuncun_store::eb::{Quarantined, ReceiptIn, StatusChange};
use cuncun_store::{Store, StoreError, now_ms};
use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

/// Report ids a quarantined payload keeps at most (bytes): enough to see what was sent.
const MAX_QUARANTINED_PAYLOAD: usize = 4096;
/// Quarantined reports held between two writes, in all and from one terminal; past this, bad
/// reports are only counted, so a terminal sending nothing but garbage neither crowds out the
/// others nor fills the disk faster than a few rows a second.
const MAX_QUARANTINE_HELD: usize = 1000;
const MAX_QUARANTINE_PER_TERMINAL: u32 = 10;
/// How often quarantined reports older than `EbConfig::quarantine_keep` are removed.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

type Report<'a> = &'a (dyn Fn(Result<(), String>) + Send + Sync);
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads device reports and writes them in batches; at `stop`, writes what it holds.
pub(crate) async fn ingest(
    store: &dyn Store,
    events: &mut mpsc::Receiver<BusEvent>,
    stats: &EbStats,
    cfg: &EbConfig,
    reconnects: &mpsc::Sender<String>,
    stop: impl Future<Output = ()> + Send,
    report: Report<'_>,
) -> anyhow::Result<()> {
    let mut batch = Batch::default();
    let mut tick = tokio::time::interval(cfg.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    let max = cfg.max_batch.max(1);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        let room = batch.len() < max;
        tokio::select! {
            _ = &mut stop => return batch.flush(store, stats, Some(reconnects)).await.map_err(anyhow::Error::msg),
            // Only while there is room: a full batch leaves reports in the bus's bounded queue.
            ev = events.recv(), if room => {
                let Some(ev) = ev else {
                    let _ = batch.flush(store, stats, Some(reconnects)).await;
                    anyhow::bail!("the terminal bus closed its stream of device reports");
                };
                batch.add(ev, stats);
                if batch.len() >= max {
                    stats.ingest_full.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(held = batch.len(), "terminal report batch full: reading paused until it is written");
                }
            }
            _ = tick.tick() => {
                report(batch.flush(store, stats, Some(reconnects)).await);
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(tokio::time::Instant::now());
                    let before = now_ms() - i64::try_from(cfg.quarantine_keep.as_millis()).unwrap_or(i64::MAX);
                    if let Err(e) = store.prune_quarantine(before).await {
                        tracing::warn!(error = %e, "removing old quarantined terminal reports failed");
                    }
                }
            }
        }
    }
}

/// Device reports gathered between two writes.
#[derive(Default)]
struct Batch {
    status: Vec<StatusChange>,
    /// Where each terminal's heartbeat sits in `status`: only the latest one matters.
    heartbeat_at: HashMap<String, usize>,
    receipts: Vec<ReceiptIn>,
    logs: Vec<(String, LogEntry)>,
    came_online: Vec<String>,
    quarantine: Vec<Quarantined>,
    /// Reports quarantined per terminal since the last write.
    quarantined_from: HashMap<String, u32>,
}

impl Batch {
    fn len(&self) -> usize {
        self.status.len() + self.receipts.len() + self.logs.len() + self.quarantine.len() + self.came_online.len()
    }

    fn add(&mut self, ev: BusEvent, stats: &EbStats) {
        stats.reports.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let (id, kind, payload) = match ev {
            // A connection is not yet a terminal that can hear: catch-up waits for its `online`
            // status (Ready), which it publishes once subscribed.
            BusEvent::Online { id } => return self.presence(id, true, false, now, stats),
            BusEvent::Ready { id } => return self.ready(id, stats),
            BusEvent::Offline { id } => return self.presence(id, false, false, now, stats),
            BusEvent::Up { id, kind, payload } => (id, kind, payload),
        };
        if let Err(e) = protocol::check_terminal_id(&id) {
            return self.set_aside(stats, &id, &kind, &String::from_utf8_lossy(&payload), e.to_string());
        }
        // Parsed and checked here, one record at a time: what reaches a batch write is storable.
        let checked = match kind.as_str() {
            "hb" => parse(&payload, Heartbeat::check).map(|hb| {
                stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                let change = StatusChange::Heartbeat { ebrid: id.clone(), at_ms: now, hb };
                match self.heartbeat_at.get(&id) {
                    Some(&i) => self.status[i] = change,
                    None => {
                        self.heartbeat_at.insert(id.clone(), self.status.len());
                        self.status.push(change);
                    }
                }
            }),
            "rcpt" => parse(&payload, Receipt::check).map(|r| {
                stats.receipts.fetch_add(1, Ordering::Relaxed);
                self.receipts.push(ReceiptIn { ebrid: id.clone(), ebmid: r.id, stage: r.stage, ts: r.ts, reason: r.reason });
            }),
            "log" => parse(&payload, LogEntry::check).map(|l| self.logs.push((id.clone(), l))),
            // The embedded gateway reports connections itself; through an external broker these
            // messages (and the will) are how we learn them.
            "status" => parse(&payload, |_: &Status| Ok(())).map(|s| self.presence(id.clone(), s.online, s.online, now, stats)),
            _ => Err(Refusal::Malformed("unknown report kind".into())),
        };
        if let Err(e) = checked {
            if matches!(e, Refusal::Malformed(_)) {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
            self.set_aside(stats, &id, &kind, &String::from_utf8_lossy(&payload), e.to_string());
        }
    }

    /// A terminal that announced itself subscribed: catch it up.
    fn ready(&mut self, id: String, stats: &EbStats) {
        match protocol::check_terminal_id(&id) {
            Ok(()) => self.came_online.push(id),
            Err(e) => self.set_aside(stats, &id, "status", r#"{"v":1,"online":true}"#, e.to_string()),
        }
    }

    fn presence(&mut self, id: String, online: bool, catch_up: bool, now: i64, stats: &EbStats) {
        if let Err(e) = protocol::check_terminal_id(&id) {
            let payload = format!(r#"{{"v":1,"online":{online}}}"#);
            return self.set_aside(stats, &id, "status", &payload, e.to_string());
        }
        if online {
            self.status.push(StatusChange::Online { ebrid: id.clone(), at_ms: now });
            if catch_up {
                self.came_online.push(id);
            }
        } else {
            self.status.push(StatusChange::Offline { ebrid: id, at_ms: now });
        }
    }

    /// Quarantines a report (held until the next write), or counts it as shed when too many are held.
    fn set_aside(&mut self, stats: &EbStats, id: &str, kind: &str, payload: &str, reason: String) {
        tracing::debug!(terminal = id, kind, reason, "terminal report quarantined");
        // Checked before counting, so that the per-terminal counts stay as bounded as the rows.
        let from = self.quarantined_from.get(id).copied().unwrap_or(0);
        if self.quarantine.len() >= MAX_QUARANTINE_HELD || from >= MAX_QUARANTINE_PER_TERMINAL {
            stats.shed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.quarantined_from.insert(id.to_string(), from + 1);
        stats.quarantined.fetch_add(1, Ordering::Relaxed);
        self.quarantine.push(Quarantined {
            ebrid: protocol::escape_controls(id, 128),
            kind: protocol::escape_controls(kind, 32),
            payload: protocol::escape_controls(payload, MAX_QUARANTINED_PAYLOAD),
            reason: protocol::escape_controls(&reason, 1024),
            at_ms: now_ms(),
        });
    }

    /// Writes what was gathered; what the database refuses is quarantined; what failed for any
    /// other reason (the database is unreachable) stays for the next try.
    async fn flush(&mut self, store: &dyn Store, stats: &EbStats, reconnects: Option<&mpsc::Sender<String>>) -> Result<(), String> {
        if self.len() == 0 {
            return Ok(());
        }
        stats.flushes.fetch_add(1, Ordering::Relaxed);

        let s = sift(self.status.len(), |r| store.apply_status(&self.status[r])).await;
        for (i, why) in &s.refused {
            let (id, kind, payload) = match &self.status[*i] {
                StatusChange::Online { ebrid, .. } => (ebrid, "status", r#"{"v":1,"online":true}"#.to_string()),
                StatusChange::Offline { ebrid, .. } => (ebrid, "status", r#"{"v":1,"online":false}"#.to_string()),
                StatusChange::Heartbeat { ebrid, hb, .. } => (ebrid, "hb", serde_json::to_string(hb).unwrap_or_default()),
            };
            self.refused_by_db(stats, &id.clone(), kind, &payload, why);
        }
        self.status = s.keep(&self.status);
        self.heartbeat_at = self
            .status
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                StatusChange::Heartbeat { ebrid, .. } => Some((ebrid.clone(), i)),
                _ => None,
            })
            .collect();
        s.result("terminal status", self.status.len())?;

        let s = sift(self.receipts.len(), |r| store.apply_receipts(&self.receipts[r])).await;
        for (i, why) in &s.refused {
            let r = &self.receipts[*i];
            let payload = serde_json::json!({"v": protocol::VERSION, "id": r.ebmid, "stage": r.stage, "ts": r.ts, "reason": r.reason}).to_string();
            self.refused_by_db(stats, &r.ebrid.clone(), "rcpt", &payload, why);
        }
        self.receipts = s.keep(&self.receipts);
        s.result("receipts", self.receipts.len())?;

        let s = sift(self.logs.len(), |r| store.insert_logs(&self.logs[r])).await;
        for (i, why) in &s.refused {
            let (id, l) = &self.logs[*i];
            let payload = serde_json::to_string(l).unwrap_or_default();
            self.refused_by_db(stats, &id.clone(), "log", &payload, why);
        }
        self.logs = s.keep(&self.logs);
        s.result("broadcast logs", self.logs.len())?;

        match store.quarantine_reports(&self.quarantine).await {
            Ok(_) => {}
            // Escaped and bounded, a quarantined report cannot be refused; if one is, it goes
            // (counted) rather than stopping the ingest.
            Err(e) if e.is_refusal() => {
                tracing::error!(error = %e, n = self.quarantine.len(), "quarantined reports refused; dropped");
                stats.shed.fetch_add(self.quarantine.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, n = self.quarantine.len(), "writing quarantined reports failed; will retry");
                return Err(format!("writing quarantined terminal reports: {e}"));
            }
        }
        self.quarantine.clear();
        self.quarantined_from.clear();

        for id in self.came_online.drain(..) {
            // A catch-up that does not fit is shed: the re-send worker still reaches every online
            // target without a receipt, a few seconds later.
            if let Some(tx) = reconnects
                && tx.try_send(id).is_err()
            {
                stats.shed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn refused_by_db(&mut self, stats: &EbStats, id: &str, kind: &str, payload: &str, why: &str) {
        tracing::warn!(terminal = id, kind, reason = why, "the database refused a terminal report; quarantined");
        stats.refused_by_db.fetch_add(1, Ordering::Relaxed);
        self.set_aside(stats, id, kind, payload, format!("refused by the database: {why}"));
    }
}

/// Why a report did not reach a batch.
enum Refusal {
    Malformed(String),
    Refused(protocol::Refused),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(e) => write!(f, "not a valid report: {e}"),
            Refusal::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(payload: &[u8], check: impl Fn(&T) -> Result<(), protocol::Refused>) -> Result<T, Refusal> {
    let v: T = serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    check(&v).map_err(Refusal::Refused)?;
    Ok(v)
}

/// What writing a batch left: the records the database refused on their own (index, reason),
/// and, when it failed otherwise, what was not written and why.
#[derive(Debug, Default, PartialEq)]
struct Sifted {
    refused: Vec<(usize, String)>,
    unwritten: Vec<Range<usize>>,
    error: Option<String>,
}

impl Sifted {
    /// The records to keep for the next try, in their order.
    fn keep<T: Clone>(&self, items: &[T]) -> Vec<T> {
        self.unwritten.iter().flat_map(|r| items[r.clone()].iter().cloned()).collect()
    }

    fn result(&self, what: &str, left: usize) -> Result<(), String> {
        match &self.error {
            None => Ok(()),
            Some(e) => {
                tracing::error!(error = %e, left, "writing {what} failed; will retry");
                Err(format!("writing {what}: {e}"))
            }
        }
    }
}

/// Writes records `0..n` with `write`, as one batch if the database takes it. When it refuses the
/// data (`StoreError::is_refusal`), the batch is halved and each half written again, down to
/// single records, so only the records it refuses are left out: a few bad records among `n` cost
/// about `2 log n` writes each. Any other failure stops at once with what is not yet written
/// (records already written are not written twice: a log entry would be).
async fn sift<'s, O>(n: usize, mut write: impl FnMut(Range<usize>) -> BoxFuture<'s, Result<O, StoreError>>) -> Sifted {
    let mut out = Sifted::default();
    // A stack: the next part to write is on top, the parts after it below, in order.
    let mut todo: Vec<Range<usize>> = Vec::new();
    if n > 0 {
        todo.push(0..n);
    }
    while let Some(part) = todo.pop() {
        match write(part.clone()).await {
            Ok(_) => {}
            Err(e) if e.is_refusal() => {
                if part.len() == 1 {
                    out.refused.push((part.start, e.to_string()));
                } else {
                    let mid = part.start + part.len() / 2;
                    todo.push(mid..part.end);
                    todo.push(part.start..mid);
                }
            }
            Err(e) => {
                out.unwritten.push(part);
                out.unwritten.extend(todo.drain(..).rev());
                out.error = Some(e.to_string());
                break;
            }
        }
    }
    out
}

/// Writes receipts and log entries as the ingest does, without the checks at the edge: for tests
/// of what happens when the database itself refuses a record.
#[doc(hidden)]
pub async fn write_unchecked(store: &dyn Store, stats: &EbStats, receipts: Vec<ReceiptIn>, logs: Vec<(String, LogEntry)>) -> Result<(), String> {
    Batch { receipts, logs, ..Batch::default() }.flush(store, stats, None).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that refuses batches holding any of `bad`, fails with an outage on write number
    /// `outage_at`, and records what it wrote.
    fn writer<'s>(
        bad: &'s [usize],
        outage_at: Option<usize>,
        written: &'s Mutex<Vec<usize>>,
        calls: &'s Mutex<usize>,
    ) -> impl FnMut(Range<usize>) -> BoxFuture<'s, Result<(), StoreError>> {
        move |r: Range<usize>| {
            Box::pin(async move {
                let call = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                if outage_at == Some(call) {
                    return Err(StoreError::Unavailable("connection reset".into()));
                }
                if r.clone().any(|i| bad.contains(&i)) {
                    return Err(StoreError::Invalid("NUL in text".into()));
                }
                written.lock().unwrap().extend(r);
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_refused_record_is_sifted_out_and_the_rest_written_once() {
        let (written, calls) = (Mutex::new(Vec::new()), Mutex::new(0));
        let s = sift(1000, writer(&[3, 700], None, &written, &calls)).await;
        assert_eq!(s.refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 700]);
        assert!(s.refused[0].1.contains("NUL in text"));
        assert!(s.error.is_none() && s.unwritten.is_empty());
        let mut w = written.lock().unwrap().clone();
        assert_eq!(w.len(), 998, "each good record written exactly once");
        w.sort_unstable();
        w.dedup();
        assert_eq!(w.len(), 998);
        assert!(*calls.lock().unwrap() <= 2 * 2 * 10 + 1, "about 2 log n writes per bad record, not n");
    }

    #[tokio::test]
    async fn an_outage_keeps_what_was_not_written_in_order() {
        let (written, calls) = (Mutex::new(Vec::new()), Mutex::new(0));
        // Write 1 (all) is refused, write 2 (0..5) succeeds, write 3 (5..10) fails: not a refusal.
        let s = sift(10, writer(&[7], Some(3), &written, &calls)).await;
        assert_eq!(*written.lock().unwrap(), (0..5).collect::<Vec<_>>());
        assert!(s.refused.is_empty());
        assert_eq!(s.unwritten, vec![5..10]);
        assert_eq!(s.keep(&(0..10).collect::<Vec<_>>()), [5, 6, 7, 8, 9]);
        assert!(s.error.unwrap().contains("connection reset"));
    }
}
