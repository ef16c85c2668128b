//! The running service: ingest of device reports, the outbox worker, re-sends and completion.

use crate::DeviceAuth;
use bytes::Bytes;
use cuncun_domain::authz::{MsgCommand, Principal, WorkflowSettings, decide};
use cuncun_domain::eb::MessageStatus;
use crate::ingest::ingest;
use cuncun_domain::protocol::{self, Command, Play, Priority};
use cuncun_gateway::{Bus, BusEvent};
use cuncun_store::eb::{CommandRow, Message, MessageMove};
use cuncun_store::{Actor, Store, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Clone)]
pub struct EbConfig {
    /// A target that has not receipted this long after its first send on a connection is sent
    /// the message (or command) again; each further wait doubles, up to `resend_max_interval`.
    pub resend_after: Duration,
    /// The longest wait between two re-sends on one connection.
    pub resend_max_interval: Duration,
    /// At most this many sends per terminal, message (or command) and connection, the first
    /// included; a new connection starts again. Never a lifetime count: a terminal that
    /// reconnects often still gets a still-valid warning.
    pub max_sends: i64,
    /// Device reports are written at most this often.
    pub flush_every: Duration,
    /// Base URL terminals fetch audio from (e.g. http://platform:8080); "" = no audio URLs.
    pub media_base_url: String,
    /// Sent with every play: what a terminal does with a message as severe as the one playing.
    pub equal_severity: cuncun_domain::eb::EqualSeverity,
    /// Device reports held between two writes at most; when the database is slow or down and the
    /// batch is full, ingest stops reading and the bus's bounded queue pushes back.
    pub max_batch: usize,
    /// Terminals waiting for their reconnect catch-up at most; more are shed (counted), as the
    /// re-send worker reaches them anyway.
    pub reconnect_queue: usize,
    /// Quarantined terminal reports are kept this long.
    pub quarantine_keep: Duration,
}

impl Default for EbConfig {
    fn default() -> Self {
        EbConfig {
            resend_after: Duration::from_secs(5),
            resend_max_interval: Duration::from_secs(60),
            max_sends: 10,
            flush_every: Duration::from_millis(250),
            media_base_url: String::new(),
            equal_severity: cuncun_domain::eb::EqualSeverity::NewerWins,
            max_batch: 50_000,
            reconnect_queue: 10_000,
            quarantine_keep: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Counters since start, for /metrics and the benchmarks.
#[derive(Debug, Default)]
pub struct EbStats {
    pub reports: AtomicU64,
    pub malformed: AtomicU64,
    pub unknown_device: AtomicU64,
    pub receipts: AtomicU64,
    pub heartbeats: AtomicU64,
    pub dispatched: AtomicU64,
    pub resends: AtomicU64,
    /// Tracked commands (cancels) sent on terminals' own topics.
    pub commands_sent: AtomicU64,
    pub flushes: AtomicU64,
    /// Reports set aside in `terminal_quarantine`: refused at the edge or by the database.
    pub quarantined: AtomicU64,
    /// Of those, the ones the database refused (the edge checks should leave none).
    pub refused_by_db: AtomicU64,
    /// Reports or reconnect catch-ups dropped because a bounded queue was full.
    pub shed: AtomicU64,
    /// Times ingest stopped reading because its batch was full (back-pressure).
    pub ingest_full: AtomicU64,
}

/// What the web layer holds: a way to wake the outbox worker and read the state of the bus.
pub struct EbHandle {
    pub bus: Arc<dyn Bus>,
    pub auth: Arc<DeviceAuth>,
    pub stats: Arc<EbStats>,
    kick: Arc<Notify>,
}

impl EbHandle {
    /// Wakes the outbox worker (after an approval or cancel), instead of waiting for its tick.
    pub fn kick(&self) {
        self.kick.notify_one();
    }
}

/// The Play command for a message.
pub fn play_of(m: &Message, cfg: &EbConfig) -> Command {
    let media_base_url = cfg.media_base_url.as_str();
    let audio = match (&m.audio_sha256, m.audio_size) {
        (Some(h), Some(size)) if !media_base_url.is_empty() => Some(protocol::Audio {
            url: format!("{}/media/{h}", media_base_url.trim_end_matches('/')),
            sha256: h.clone(),
            size: size.max(0) as u64,
        }),
        _ => None,
    };
    Command::Play(Play {
        v: protocol::VERSION,
        id: m.ebmid.clone(),
        priority: if m.priority == "routine" { Priority::Routine } else { Priority::Emergency },
        severity: if m.priority == "routine" { 0 } else { m.severity },
        event: m.event_type.clone(),
        title: m.title.clone(),
        text: m.body.clone(),
        audio,
        start: m.start_ms,
        end: m.end_ms,
        repeat: m.repeat_count.clamp(1, 100) as u32,
        volume: m.volume.map(|v| v.clamp(0, 100) as u8),
        drill: m.drill,
        equal_severity: Some(cfg.equal_severity),
    })
}

fn encode(c: &Command) -> Bytes {
    Bytes::from(serde_json::to_vec(c).unwrap_or_default())
}

/// The service's four background tasks, each run (and, after a failure, run again) by a
/// supervisor: the platform registers them with `cuncun_app::jobs::Supervisor` (jobs `ingest`,
/// `dispatch`, `reconnect_catchup`, `resend`). What must outlive a restart — the bus's report
/// channel, the reconnect queue, the outbox wake-up — lives here, not in the tasks.
pub struct EbWorkers {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    stats: Arc<EbStats>,
    cfg: EbConfig,
    kick: Arc<Notify>,
    events: tokio::sync::Mutex<mpsc::Receiver<BusEvent>>,
    reconnects_tx: mpsc::Sender<String>,
    reconnects_rx: tokio::sync::Mutex<mpsc::Receiver<String>>,
}

/// One of the service's background tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EbWorker {
    /// Reads device reports and writes them in batches.
    Ingest,
    /// Publishes approved messages and cancels from the outbox.
    Dispatch,
    /// Sends a terminal that says it is listening (its `online` status) every command it has
    /// not receipted and every still-valid message it has not received.
    ReconnectCatchup,
    /// Re-sends, with backoff, to online targets that have not receipted a message or a
    /// command; closes messages whose time is over.
    Resend,
}

impl EbWorker {
    pub const ALL: [EbWorker; 4] = [EbWorker::Ingest, EbWorker::Dispatch, EbWorker::ReconnectCatchup, EbWorker::Resend];
}

/// How a worker says how a round went: `Ok` after a successful one, `Err` with what failed (it
/// retries by itself). A supervisor records it; unsupervised, it is ignored.
type Report<'a> = &'a (dyn Fn(Result<(), String>) + Send + Sync);

/// The service's handle and its workers, not yet running: run each [`EbWorker`] with
/// [`EbWorkers::run`] (the platform does so under its job supervisor). `events` comes from the bus.
pub fn prepare(
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    events: mpsc::Receiver<BusEvent>,
    auth: Arc<DeviceAuth>,
    cfg: EbConfig,
) -> (Arc<EbHandle>, Arc<EbWorkers>) {
    let stats = Arc::new(EbStats::default());
    let kick = Arc::new(Notify::new());
    let handle = Arc::new(EbHandle { bus: bus.clone(), auth, stats: stats.clone(), kick: kick.clone() });
    let (reconnects_tx, reconnects_rx) = mpsc::channel::<String>(cfg.reconnect_queue.max(1));
    let workers = Arc::new(EbWorkers {
        store,
        bus,
        stats,
        cfg,
        kick,
        events: tokio::sync::Mutex::new(events),
        reconnects_tx,
        reconnects_rx: tokio::sync::Mutex::new(reconnects_rx),
    });
    (handle, workers)
}

/// Starts the service tasks without a supervisor (tests, benchmarks): nothing restarts them.
/// `events` comes from the bus; the returned handle wakes the outbox.
pub async fn start(
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    events: mpsc::Receiver<BusEvent>,
    auth: Arc<DeviceAuth>,
    cfg: EbConfig,
) -> anyhow::Result<Arc<EbHandle>> {
    let (handle, workers) = prepare(store, bus, events, auth, cfg);
    for w in EbWorker::ALL {
        let workers = workers.clone();
        tokio::spawn(async move {
            if let Err(e) = workers.run(w, std::future::pending(), &|_| {}).await {
                tracing::error!(worker = ?w, error = %format!("{e:#}"), "broadcast worker stopped");
            }
        });
    }
    Ok(handle)
}

impl EbWorkers {
    /// Runs one worker until `stop` resolves (then returns `Ok`), reporting each round to `report`.
    /// An error return means the worker cannot go on (the bus closed its report stream).
    pub async fn run(
        &self,
        worker: EbWorker,
        stop: impl std::future::Future<Output = ()> + Send,
        report: &(dyn Fn(Result<(), String>) + Send + Sync),
    ) -> anyhow::Result<()> {
        let (store, bus, stats, cfg) = (&*self.store, &*self.bus, &*self.stats, &self.cfg);
        // The ingest task keeps its batch through a stop, to write it; the others are dropped at
        // their next await (the outbox row of an interrupted dispatch is worked again later).
        if worker == EbWorker::Ingest {
            let mut events = self.events.lock().await;
            return ingest(store, &mut events, stats, cfg, &self.reconnects_tx, stop, report).await;
        }
        tokio::select! {
            _ = stop => Ok(()),
            r = async {
                match worker {
                    EbWorker::Dispatch => outbox_worker(store, bus, stats, cfg, &self.kick, report).await,
                    EbWorker::ReconnectCatchup => reconnect_worker(store, bus, stats, cfg, &mut *self.reconnects_rx.lock().await, report).await,
                    _ => resend_worker(store, bus, stats, cfg, report).await,
                }
                Ok(())
            } => r,
        }
    }
}

/// Publishes approved messages and cancels from the outbox.
async fn outbox_worker(store: &dyn Store, bus: &dyn Bus, stats: &EbStats, cfg: &EbConfig, kick: &Notify, report: Report<'_>) {
    loop {
        let mut round = Ok(());
        match store.pending_outbox().await {
            Ok(items) => {
                for item in items {
                    if let Err(e) = work_item(store, bus, stats, cfg, item.message_id, &item.action).await {
                        tracing::error!(error = %e, message = item.message_id, "dispatch failed; will retry");
                        round = Err(format!("dispatching message {}: {e}", item.message_id));
                        continue;
                    }
                    if let Err(e) = store.finish_outbox(item.id).await {
                        tracing::error!(error = %e, "marking outbox item done failed");
                        round = Err(format!("marking outbox item {} done: {e}", item.id));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                round = Err(format!("reading the outbox: {e}"));
            }
        }
        report(round);
        let _ = tokio::time::timeout(Duration::from_secs(1), kick.notified()).await;
    }
}

async fn work_item(
    store: &dyn Store,
    bus: &dyn Bus,
    stats: &EbStats,
    cfg: &EbConfig,
    message_id: i64,
    action: &str,
) -> anyhow::Result<()> {
    let m = store.message(message_id).await?.ok_or_else(|| anyhow::anyhow!("message {message_id} vanished"))?;
    let cmd = match action {
        "cancel" => Command::Cancel { v: protocol::VERSION, id: m.ebmid.clone() },
        _ => {
            if m.status != MessageStatus::Approved && m.status != MessageStatus::Dispatching {
                return Ok(()); // cancelled before it went out
            }
            if m.end_ms <= now_ms() {
                store.transition_message(system_move(&m, MsgCommand::Finish { received: false })?, &Actor::system()).await?;
                return Ok(());
            }
            play_of(&m, cfg)
        }
    };
    // Noted before it goes out: a cancel committed meanwhile then finds every terminal that may
    // have heard the play, and a cancel's re-sends wait their interval after this broadcast.
    if action == "cancel" {
        let open: Vec<i64> = store.message_commands(m.id).await?.iter().filter(|c| c.done_ms.is_none()).map(|c| c.id).collect();
        store.record_command_sends(&open, now_ms()).await?;
    } else {
        store.record_sends(m.id, &[], now_ms()).await?;
    }
    let bytes = encode(&cmd);
    // Once per target area: the broker or gateway fans out to every terminal subscribed below it.
    for a in &m.areas {
        bus.publish(&protocol::region_cmd_topic(a.short()), bytes.clone()).await?;
    }
    // Explicitly named terminals outside the areas get it on their own topic.
    let explicit: Vec<String> = store
        .message_terminals(m.id)
        .await?
        .into_iter()
        .filter(|e| !m.areas.iter().any(|a| e.get(1..13).is_some_and(|r| r.starts_with(a.short()))))
        .collect();
    for e in &explicit {
        bus.publish(&protocol::terminal_cmd_topic(e), bytes.clone()).await?;
    }
    if action != "cancel" {
        if m.status == MessageStatus::Approved {
            store.transition_message(system_move(&m, MsgCommand::Dispatch)?, &Actor::system()).await?;
        }
        stats.dispatched.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// A status change the dispatcher makes, by the workflow's rules.
fn system_move(m: &Message, cmd: MsgCommand) -> anyhow::Result<MessageMove> {
    let who = Principal::System { job: "dispatch" };
    let t = decide(&who, cmd, &m.facts(), &WorkflowSettings::default())?.ok_or_else(|| anyhow::anyhow!("no step"))?;
    Ok(MessageMove::new(m.id, t))
}

/// A terminal that says it is listening (its `online` status, sent once subscribed) gets every
/// command it has not receipted (cancels first, so nothing cancelled starts again) and every
/// still-valid message it has not received, whatever it was sent on earlier connections.
async fn reconnect_worker(
    store: &dyn Store,
    bus: &dyn Bus,
    stats: &EbStats,
    cfg: &EbConfig,
    rx: &mut mpsc::Receiver<String>,
    report: Report<'_>,
) {
    while let Some(id) = rx.recv().await {
        report(catch_up(store, bus, stats, cfg, &id).await.map_err(|e| {
            tracing::error!(terminal = %id, error = %format!("{e:#}"), "catch-up failed");
            format!("catching up terminal {id}: {e:#}")
        }));
    }
}

async fn catch_up(store: &dyn Store, bus: &dyn Bus, stats: &EbStats, cfg: &EbConfig, id: &str) -> anyhow::Result<()> {
    let now = now_ms();
    send_commands(store, bus, stats, store.open_commands_for(id, now).await?, now).await?;
    let topic = protocol::terminal_cmd_topic(id);
    for m in store.pending_for_terminal(id, now).await? {
        if m.status != MessageStatus::Dispatching && m.status != MessageStatus::Approved {
            continue;
        }
        store.record_sends(m.id, &[id.to_string()], now).await?;
        if bus.publish(&topic, encode(&play_of(&m, cfg))).await.is_ok() {
            stats.resends.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// The wire form of a tracked command.
fn command_of(c: &CommandRow) -> Option<Command> {
    match (c.kind.as_str(), &c.ebmid) {
        ("cancel", Some(id)) => Some(Command::Cancel { v: protocol::VERSION, id: id.clone() }),
        ("stop", _) => Some(Command::Stop { v: protocol::VERSION }),
        _ => None,
    }
}

/// Notes the commands as sent, then sends each on its terminal's own topic.
async fn send_commands(store: &dyn Store, bus: &dyn Bus, stats: &EbStats, cmds: Vec<CommandRow>, now: i64) -> anyhow::Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    store.record_command_sends(&cmds.iter().map(|c| c.id).collect::<Vec<_>>(), now).await?;
    for c in &cmds {
        let Some(cmd) = command_of(c) else {
            tracing::warn!(command = c.id, kind = %c.kind, "stored command of an unknown kind skipped");
            continue;
        };
        if bus.publish(&protocol::terminal_cmd_topic(&c.ebrid), encode(&cmd)).await.is_ok() {
            stats.commands_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Whether something last sent at `last_sent_ms`, sent `conn_sends` times on the terminal's
/// current connection, is due again at `now`: the first wait is `resend_after`, each next one
/// doubles up to `resend_max_interval`, and a connection gets at most `max_sends`.
fn resend_due(last_sent_ms: Option<i64>, conn_sends: i64, now: i64, cfg: &EbConfig) -> bool {
    if conn_sends >= cfg.max_sends {
        return false;
    }
    let Some(last) = last_sent_ms.filter(|_| conn_sends > 0) else { return true };
    let first = cfg.resend_after.as_millis() as i64;
    let cap = (cfg.resend_max_interval.as_millis() as i64).max(first);
    let wait = first.saturating_mul(1i64 << (conn_sends - 1).clamp(0, 20)).min(cap);
    last.saturating_add(wait) <= now
}


/// Re-sends to online targets that have not receipted, and closes messages whose time is over.
async fn resend_worker(store: &dyn Store, bus: &dyn Bus, stats: &EbStats, cfg: &EbConfig, report: Report<'_>) {
    // Ticks faster than the first wait, so that a re-send is late by at most half of it.
    let mut tick = tokio::time::interval((cfg.resend_after / 2).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        match store.open_commands_online(now).await {
            Ok(cmds) => {
                let due: Vec<CommandRow> = cmds.into_iter().filter(|c| resend_due(c.last_sent_ms, c.conn_sends, now, cfg)).collect();
                if let Err(e) = send_commands(store, bus, stats, due, now).await {
                    tracing::error!(error = %format!("{e:#}"), "re-sending commands failed");
                    report(Err(format!("re-sending commands: {e:#}")));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading open commands failed");
                report(Err(format!("reading open commands: {e}")));
            }
        }
        let active = match store.active_messages().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "reading active messages failed");
                report(Err(format!("reading active messages: {e}")));
                continue;
            }
        };
        for m in active {
            if m.status != MessageStatus::Dispatching {
                continue;
            }
            let summary = match store.delivery_summary(m.id).await {
                Ok(s) => s,
                Err(_) => continue,
            };
            if m.end_ms <= now || (summary.targets > 0 && summary.finished + summary.failed == summary.targets) {
                let received = summary.received > 0 || summary.targets == 0;
                if let Ok(mv) = system_move(&m, MsgCommand::Finish { received }) {
                    let _ = store.transition_message(mv, &Actor::system()).await;
                }
                continue;
            }
            if summary.pending == summary.pending_offline {
                continue;
            }
            let Ok(rows) = store.deliveries(m.id, true, 100_000).await else { continue };
            // Only what has waited its interval since its last send on this connection: a
            // receipt may still be on its way (or in the ingest batch) for what went out just now.
            let due: Vec<String> =
                rows.into_iter().filter(|d| d.online && resend_due(d.last_sent_ms, d.conn_sends, now, cfg)).map(|d| d.ebrid).collect();
            if due.is_empty() {
                continue;
            }
            if store.record_sends(m.id, &due, now).await.is_err() {
                continue;
            }
            let bytes = encode(&play_of(&m, cfg));
            for e in &due {
                if bus.publish(&protocol::terminal_cmd_topic(e), bytes.clone()).await.is_ok() {
                    stats.resends.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        report(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_back_off_per_connection() {
        let cfg = EbConfig { resend_after: Duration::from_secs(5), resend_max_interval: Duration::from_secs(60), max_sends: 10, ..Default::default() };
        assert!(resend_due(None, 0, 0, &cfg), "never sent: due");
        assert!(resend_due(Some(1_000), 0, 1_000, &cfg), "sent on an earlier connection: due at once");
        assert!(!resend_due(Some(0), 1, 4_999, &cfg) && resend_due(Some(0), 1, 5_000, &cfg), "first wait 5 s");
        assert!(!resend_due(Some(0), 2, 9_999, &cfg) && resend_due(Some(0), 2, 10_000, &cfg), "then 10 s");
        assert!(!resend_due(Some(0), 3, 19_999, &cfg) && resend_due(Some(0), 3, 20_000, &cfg), "then 20 s");
        assert!(!resend_due(Some(0), 6, 59_999, &cfg) && resend_due(Some(0), 6, 60_000, &cfg), "capped at 60 s");
        assert!(!resend_due(Some(0), 10, i64::MAX, &cfg), "at most 10 on one connection");
    }
}
