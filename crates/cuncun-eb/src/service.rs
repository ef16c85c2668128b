//! The running service: ingest of device reports, the outbox worker, re-sends and completion.

use crate::DeviceAuth;
use bytes::Bytes;
use cuncun_domain::authz::{MsgCommand, Principal, WorkflowSettings, decide};
use cuncun_domain::eb::MessageStatus;
use cuncun_domain::protocol::{self, Command, Heartbeat, LogEntry, Play, Priority, Receipt, Status};
use cuncun_gateway::{Bus, BusEvent};
use cuncun_store::eb::{Message, MessageMove, ReceiptIn, StatusChange};
use cuncun_store::{Actor, Store, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

#[derive(Debug, Clone)]
pub struct EbConfig {
    /// A target that has not receipted this long after a send is sent the message again.
    pub resend_after: Duration,
    /// At most this many sends per terminal and message (the first included).
    pub max_sends: i64,
    /// Device reports are written at most this often.
    pub flush_every: Duration,
    /// Base URL terminals fetch audio from (e.g. http://platform:8080); "" = no audio URLs.
    pub media_base_url: String,
    /// Sent with every play: what a terminal does with a message as severe as the one playing.
    pub equal_severity: cuncun_domain::eb::EqualSeverity,
}

impl Default for EbConfig {
    fn default() -> Self {
        EbConfig {
            resend_after: Duration::from_secs(5),
            max_sends: 10,
            flush_every: Duration::from_millis(250),
            media_base_url: String::new(),
            equal_severity: cuncun_domain::eb::EqualSeverity::NewerWins,
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
    pub flushes: AtomicU64,
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

/// Starts the service tasks. `events` comes from the bus; the returned handle wakes the outbox.
pub async fn start(
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    events: mpsc::Receiver<BusEvent>,
    auth: Arc<DeviceAuth>,
    cfg: EbConfig,
) -> anyhow::Result<Arc<EbHandle>> {
    let stats = Arc::new(EbStats::default());
    let kick = Arc::new(Notify::new());
    let handle = Arc::new(EbHandle { bus: bus.clone(), auth, stats: stats.clone(), kick: kick.clone() });
    let (reconnects_tx, reconnects_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(ingest(store.clone(), events, stats.clone(), cfg.clone(), reconnects_tx));
    tokio::spawn(outbox_worker(store.clone(), bus.clone(), stats.clone(), cfg.clone(), kick));
    tokio::spawn(reconnect_worker(store.clone(), bus.clone(), stats.clone(), cfg.clone(), reconnects_rx));
    tokio::spawn(resend_worker(store, bus, stats, cfg));
    Ok(handle)
}

/// Reads device reports and writes them in batches.
async fn ingest(
    store: Arc<dyn Store>,
    mut events: mpsc::Receiver<BusEvent>,
    stats: Arc<EbStats>,
    cfg: EbConfig,
    reconnects: mpsc::UnboundedSender<String>,
) {
    let mut status: Vec<StatusChange> = Vec::new();
    let mut receipts: Vec<ReceiptIn> = Vec::new();
    let mut logs: Vec<(String, LogEntry)> = Vec::new();
    let mut came_online: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(cfg.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                stats.reports.fetch_add(1, Ordering::Relaxed);
                let now = now_ms();
                match ev {
                    BusEvent::Online { id } => {
                        status.push(StatusChange::Online { ebrid: id.clone(), at_ms: now });
                        came_online.push(id);
                    }
                    BusEvent::Offline { id } => status.push(StatusChange::Offline { ebrid: id, at_ms: now }),
                    BusEvent::Up { id, kind, payload } => match kind.as_str() {
                        "hb" => match serde_json::from_slice::<Heartbeat>(&payload) {
                            Ok(hb) => {
                                stats.heartbeats.fetch_add(1, Ordering::Relaxed);
                                // Only the latest heartbeat of a terminal in a batch matters.
                                status.retain(|c| !matches!(c, StatusChange::Heartbeat { ebrid, .. } if *ebrid == id));
                                status.push(StatusChange::Heartbeat { ebrid: id, at_ms: now, hb });
                            }
                            Err(e) => malformed(&stats, &id, "hb", &e),
                        },
                        "rcpt" => match serde_json::from_slice::<Receipt>(&payload) {
                            Ok(r) => {
                                stats.receipts.fetch_add(1, Ordering::Relaxed);
                                receipts.push(ReceiptIn { ebrid: id, ebmid: r.id, stage: r.stage, ts: r.ts, reason: r.reason });
                            }
                            Err(e) => malformed(&stats, &id, "rcpt", &e),
                        },
                        "log" => match serde_json::from_slice::<LogEntry>(&payload) {
                            Ok(l) => logs.push((id, l)),
                            Err(e) => malformed(&stats, &id, "log", &e),
                        },
                        "status" => match serde_json::from_slice::<Status>(&payload) {
                            // The embedded gateway reports connections itself; through an external
                            // broker these messages (and the will) are how we learn them.
                            Ok(s) if s.online => {
                                status.push(StatusChange::Online { ebrid: id.clone(), at_ms: now });
                                came_online.push(id);
                            }
                            Ok(_) => status.push(StatusChange::Offline { ebrid: id, at_ms: now }),
                            Err(e) => malformed(&stats, &id, "status", &e),
                        },
                        _ => malformed(&stats, &id, &kind, &"unknown report kind"),
                    },
                }
            }
            _ = tick.tick() => {
                if status.is_empty() && receipts.is_empty() && logs.is_empty() {
                    continue;
                }
                stats.flushes.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = store.apply_status(&status).await {
                    tracing::error!(error = %e, n = status.len(), "writing terminal status failed; will retry");
                    continue;
                }
                status.clear();
                if let Err(e) = store.apply_receipts(&receipts).await {
                    tracing::error!(error = %e, n = receipts.len(), "writing receipts failed; will retry");
                    continue;
                }
                receipts.clear();
                if let Err(e) = store.insert_logs(&logs).await {
                    tracing::error!(error = %e, "writing broadcast logs failed; will retry");
                    continue;
                }
                logs.clear();
                for id in came_online.drain(..) {
                    let _ = reconnects.send(id);
                }
            }
        }
    }
}

fn malformed(stats: &EbStats, id: &str, kind: &str, e: &dyn std::fmt::Display) {
    stats.malformed.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(terminal = id, kind, error = %e, "malformed report dropped");
}

/// Publishes approved messages and cancels from the outbox.
async fn outbox_worker(store: Arc<dyn Store>, bus: Arc<dyn Bus>, stats: Arc<EbStats>, cfg: EbConfig, kick: Arc<Notify>) {
    loop {
        match store.pending_outbox().await {
            Ok(items) => {
                for item in items {
                    if let Err(e) = work_item(&*store, &*bus, &stats, &cfg, item.message_id, &item.action).await {
                        tracing::error!(error = %e, message = item.message_id, "dispatch failed; will retry");
                        continue;
                    }
                    if let Err(e) = store.finish_outbox(item.id).await {
                        tracing::error!(error = %e, "marking outbox item done failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the outbox failed"),
        }
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
            play_of(&m, &cfg)
        }
    };
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
        store.record_sends(m.id, &[], now_ms()).await?;
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

/// A terminal that (re)connects gets every still-valid message it has not received.
async fn reconnect_worker(
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    stats: Arc<EbStats>,
    cfg: EbConfig,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    while let Some(id) = rx.recv().await {
        let pending = match store.pending_for_terminal(&id, now_ms()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "looking up missed messages failed");
                continue;
            }
        };
        for m in pending {
            if m.status != MessageStatus::Dispatching && m.status != MessageStatus::Approved {
                continue;
            }
            let bytes = encode(&play_of(&m, &cfg));
            if bus.publish(&protocol::terminal_cmd_topic(&id), bytes).await.is_ok() {
                stats.resends.fetch_add(1, Ordering::Relaxed);
                let _ = store.record_sends(m.id, std::slice::from_ref(&id), now_ms()).await;
            }
        }
    }
}

/// Re-sends to online targets that have not receipted, and closes messages whose time is over.
async fn resend_worker(store: Arc<dyn Store>, bus: Arc<dyn Bus>, stats: Arc<EbStats>, cfg: EbConfig) {
    let mut tick = tokio::time::interval(cfg.resend_after);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let active = match store.active_messages().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "reading active messages failed");
                continue;
            }
        };
        let now = now_ms();
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
            // Only what has waited a full interval since its last send: a receipt may still be on
            // its way (or in the ingest batch) for what went out just now.
            let waited = now - cfg.resend_after.as_millis() as i64;
            let due: Vec<String> = rows
                .into_iter()
                .filter(|d| d.online && d.sends < cfg.max_sends && d.last_sent_ms.is_none_or(|t| t <= waited))
                .map(|d| d.ebrid)
                .collect();
            if due.is_empty() {
                continue;
            }
            let bytes = encode(&play_of(&m, &cfg));
            for e in &due {
                if bus.publish(&protocol::terminal_cmd_topic(e), bytes.clone()).await.is_ok() {
                    stats.resends.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = store.record_sends(m.id, &due, now).await;
        }
    }
}
