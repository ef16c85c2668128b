//! Scale-out: terminals spread over several gateway processes ("nodes"), each an
//! [`EmbeddedGateway`] under the 20,000 open-files cap, joined to the platform's [`Hub`] by one
//! backbone link each.
//!
//! The link is TCP with length-prefixed frames (`u32` big-endian length of what follows, one type
//! byte, the body). The platform sends each downward publish once per node and the node fans it
//! out to its own terminals; a command for one terminal goes only to the node holding it. Nodes
//! send presence and every upward message, batched per write. Terminal credentials live on the
//! platform: a node gets a snapshot when it links and every change after, so connects stay
//! in-memory lookups. A node that loses its link keeps its terminals, keeps their upward
//! messages (bounded), and on relinking says again who is connected; the hub marks a lost
//! node's terminals offline meanwhile. Frames are documented in docs/TERMINAL_PROTOCOL.md.

use crate::{Authenticator, Bus, BusEvent, DeviceAuth, EmbeddedGateway, GatewayConfig, GatewayStats};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

const T_PING: u8 = 0;
const T_HELLO: u8 = 1;
const T_WELCOME: u8 = 2;
const T_REFUSED: u8 = 3;
const T_CREDS: u8 = 4;
const T_CRED_SET: u8 = 5;
const T_CRED_DEL: u8 = 6;
const T_PUBLISH: u8 = 7;
const T_ONLINE: u8 = 8;
const T_OFFLINE: u8 = 9;
const T_UP: u8 = 10;
const T_STATS: u8 = 11;
const T_READY: u8 = 12;

/// A credentials snapshot of 1,000,000 terminals is about 120 MB; nothing else comes near.
const MAX_FRAME: usize = 256 << 20;
const PING_EVERY: Duration = Duration::from_secs(5);
/// A link with nothing received for this long (six pings missed) is dead.
const LINK_TIMEOUT: Duration = Duration::from_secs(30);
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Upward messages a node keeps while its link is down; older ones go first.
const NODE_BACKLOG: usize = 200_000;

/// A terminal's credential as the platform holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub secret_sha256: [u8; 32],
    pub region12: String,
}

#[derive(Debug, Clone)]
pub enum CredentialChange {
    Set(Credential),
    Remove(String),
    /// Everything may have changed: send a new snapshot.
    Reset,
}

/// Where the hub gets terminal credentials from (the platform's device table in memory).
pub trait CredentialSource: Send + Sync + 'static {
    fn snapshot(&self) -> Vec<Credential>;
    fn subscribe(&self) -> broadcast::Receiver<CredentialChange>;
}

#[derive(Debug, thiserror::Error)]
#[error("malformed backbone frame: {0}")]
pub struct FrameError(&'static str);

struct Cur(Bytes);

impl Cur {
    fn str16(&mut self) -> Result<String, FrameError> {
        if self.0.remaining() < 2 {
            return Err(FrameError("truncated string length"));
        }
        let n = self.0.get_u16() as usize;
        if self.0.remaining() < n {
            return Err(FrameError("truncated string"));
        }
        let b = self.0.split_to(n);
        String::from_utf8(b.to_vec()).map_err(|_| FrameError("string is not UTF-8"))
    }
    fn hash(&mut self) -> Result<[u8; 32], FrameError> {
        if self.0.remaining() < 32 {
            return Err(FrameError("truncated hash"));
        }
        let mut h = [0u8; 32];
        self.0.copy_to_slice(&mut h);
        Ok(h)
    }
    fn credential(&mut self) -> Result<Credential, FrameError> {
        Ok(Credential { id: self.str16()?, secret_sha256: self.hash()?, region12: self.str16()? })
    }
    fn rest(self) -> Bytes {
        self.0
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn put_str16(b: &mut BytesMut, s: &str) -> Result<(), FrameError> {
    let n = u16::try_from(s.len()).map_err(|_| FrameError("string longer than 65,535 bytes"))?;
    b.put_u16(n);
    b.put_slice(s.as_bytes());
    Ok(())
}

/// Starts a frame in `b`; `finish` fills in its length.
fn begin(b: &mut BytesMut, t: u8) -> usize {
    let at = b.len();
    b.put_u32(0);
    b.put_u8(t);
    at
}

fn finish(b: &mut BytesMut, at: usize) {
    let n = (b.len() - at - 4) as u32;
    b[at..at + 4].copy_from_slice(&n.to_be_bytes());
}

fn frame(t: u8, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + body.len());
    let at = begin(&mut b, t);
    b.put_slice(body);
    finish(&mut b, at);
    b.freeze()
}

fn put_cred(b: &mut BytesMut, c: &Credential) -> Result<(), FrameError> {
    put_str16(b, &c.id)?;
    b.put_slice(&c.secret_sha256);
    put_str16(b, &c.region12)
}

fn creds_frame(creds: &[Credential]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + creds.len() * 80);
    let at = begin(&mut b, T_CREDS);
    for c in creds {
        // Ids and regions are short; a credential that cannot be encoded is left out, not fatal.
        let mark = b.len();
        if put_cred(&mut b, c).is_err() {
            b.truncate(mark);
        }
    }
    finish(&mut b, at);
    b.freeze()
}

/// Appends the frame for one terminal event.
fn put_event(b: &mut BytesMut, ev: &BusEvent) -> Result<(), FrameError> {
    let mark = b.len();
    let r = (|| {
        match ev {
            BusEvent::Online { id } | BusEvent::Offline { id } | BusEvent::Ready { id } => {
                let t = match ev {
                    BusEvent::Online { .. } => T_ONLINE,
                    BusEvent::Offline { .. } => T_OFFLINE,
                    _ => T_READY,
                };
                let at = begin(b, t);
                put_str16(b, id)?;
                finish(b, at);
            }
            BusEvent::Up { id, kind, payload } => {
                let at = begin(b, T_UP);
                put_str16(b, id)?;
                put_str16(b, kind)?;
                b.put_slice(payload);
                finish(b, at);
            }
        }
        Ok(())
    })();
    if r.is_err() {
        b.truncate(mark);
    }
    r
}

fn publish_frame(topic: &str, payload: &[u8]) -> Result<Bytes, FrameError> {
    let mut b = BytesMut::with_capacity(9 + topic.len() + payload.len());
    let at = begin(&mut b, T_PUBLISH);
    put_str16(&mut b, topic)?;
    b.put_slice(payload);
    finish(&mut b, at);
    Ok(b.freeze())
}

/// Reads one frame; None at a clean end of stream.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<Option<(u8, Bytes)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_be_bytes(len) as usize;
    anyhow::ensure!((1..=MAX_FRAME).contains(&n), FrameError("frame length out of range"));
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await?;
    let mut b = Bytes::from(buf);
    let t = b.get_u8();
    Ok(Some((t, b)))
}

async fn read_frame_within(r: &mut (impl AsyncRead + Unpin), d: Duration) -> anyhow::Result<Option<(u8, Bytes)>> {
    match tokio::time::timeout(d, read_frame(r)).await {
        Ok(v) => v,
        Err(_) => anyhow::bail!("backbone peer silent for {} s", d.as_secs()),
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Hello {
    v: u32,
    name: String,
    secret: String,
}

// ---------------------------------------------------------------------------------------------
// Platform side

/// Who holds a terminal's connection: the platform's own gateway or a node's link.
const LOCAL: u64 = 0;

struct Link {
    name: String,
    tx: mpsc::Sender<Bytes>,
    stats: GatewayStats,
    closed: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct HubCounters {
    links_total: AtomicU64,
    links_refused: AtomicU64,
    links_dropped_slow: AtomicU64,
    malformed_frames: AtomicU64,
}

struct HubInner {
    secret: String,
    creds: Arc<dyn CredentialSource>,
    events: mpsc::Sender<BusEvent>,
    local: Option<Arc<EmbeddedGateway>>,
    links: Mutex<HashMap<u64, Link>>,
    presence: Mutex<HashMap<String, u64>>,
    next_link: AtomicU64,
    link_queue: usize,
    c: HubCounters,
}

/// Settings of the platform's side of the backbone.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Nodes must present this in their hello.
    pub secret: String,
    /// Frames that may wait for a slow node; one more drops its link (it relinks and resyncs).
    pub link_queue: usize,
    /// Capacity of the event channel handed back.
    pub event_queue: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self { secret: String::new(), link_queue: 65_536, event_queue: 65_536 }
    }
}

/// The platform's [`Bus`] when gateway nodes run in other processes, optionally with terminals
/// on its own embedded gateway too. Stops accepting links when dropped.
pub struct Hub {
    inner: Arc<HubInner>,
    backbone_addr: std::net::SocketAddr,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// What a node reported, for the benchmark and /metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub stats: GatewayStats,
}

impl Hub {
    pub fn backbone_addr(&self) -> std::net::SocketAddr {
        self.backbone_addr
    }
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.inner.links.lock().values().map(|l| NodeInfo { name: l.name.clone(), stats: l.stats.clone() }).collect()
    }
    pub fn local(&self) -> Option<&Arc<EmbeddedGateway>> {
        self.inner.local.as_ref()
    }
    /// Backbone frames that could not be decoded (the link that sent them was closed).
    pub fn malformed_frames(&self) -> u64 {
        self.inner.c.malformed_frames.load(Relaxed)
    }
    pub fn links_refused(&self) -> u64 {
        self.inner.c.links_refused.load(Relaxed)
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for l in self.inner.links.lock().values() {
            l.closed.notify_one();
        }
    }
}

/// Starts the hub on `backbone`, with the platform's own gateway when `local` is given.
pub async fn start_hub(
    backbone: TcpListener,
    cfg: HubConfig,
    creds: Arc<dyn CredentialSource>,
    local: Option<(Vec<TcpListener>, GatewayConfig, Arc<dyn Authenticator>)>,
) -> anyhow::Result<(Arc<Hub>, mpsc::Receiver<BusEvent>)> {
    anyhow::ensure!(!cfg.secret.is_empty(), "the backbone needs a shared secret (bus.backbone_secret)");
    let (tx, rx) = mpsc::channel(cfg.event_queue.max(16));
    let mut tasks = Vec::new();
    let (local_gw, local_rx) = match local {
        Some((listeners, gcfg, auth)) => {
            let (gw, rx) = crate::start_embedded_gateway(listeners, gcfg, auth).await?;
            (Some(gw), Some(rx))
        }
        None => (None, None),
    };
    let inner = Arc::new(HubInner {
        secret: cfg.secret,
        creds,
        events: tx,
        local: local_gw,
        links: Mutex::new(HashMap::new()),
        presence: Mutex::new(HashMap::new()),
        next_link: AtomicU64::new(LOCAL + 1),
        link_queue: cfg.link_queue.max(16),
        c: HubCounters::default(),
    });
    if let Some(mut lrx) = local_rx {
        let inner = inner.clone();
        tasks.push(
            tokio::spawn(async move {
                while let Some(ev) = lrx.recv().await {
                    inner.on_event(LOCAL, ev).await;
                }
            })
            .abort_handle(),
        );
    }
    let backbone_addr = backbone.local_addr()?;
    let acc = inner.clone();
    tasks.push(
        tokio::spawn(async move {
            loop {
                match backbone.accept().await {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        let inner = acc.clone();
                        tokio::spawn(async move {
                            if let Err(e) = inner.clone().serve_link(s).await {
                                tracing::warn!(%peer, error = %e, "backbone link ended");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "backbone accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
        .abort_handle(),
    );
    tracing::info!(addr = %backbone_addr, "backbone listening for gateway nodes");
    Ok((Arc::new(Hub { inner, backbone_addr, tasks }), rx))
}

impl HubInner {
    async fn on_event(&self, link: u64, ev: BusEvent) {
        let forward = match &ev {
            BusEvent::Online { id } => {
                self.presence.lock().insert(id.clone(), link);
                true
            }
            // A terminal that moved to another node is still online: ignore the old node's word.
            BusEvent::Offline { id } => {
                let mut p = self.presence.lock();
                if p.get(id) == Some(&link) {
                    p.remove(id);
                    true
                } else {
                    false
                }
            }
            BusEvent::Up { .. } | BusEvent::Ready { .. } => true,
        };
        if forward {
            let _ = self.events.send(ev).await;
        }
    }

    async fn serve_link(self: Arc<Self>, stream: TcpStream) -> anyhow::Result<()> {
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::with_capacity(256 << 10, rd);
        let hello = match read_frame_within(&mut rd, HELLO_TIMEOUT).await? {
            Some((T_HELLO, b)) => serde_json::from_slice::<Hello>(&b).ok(),
            _ => None,
        };
        let Some(hello) = hello.filter(|h| h.v == 1 && same(h.secret.as_bytes(), self.secret.as_bytes())) else {
            self.c.links_refused.fetch_add(1, Relaxed);
            let _ = wr.write_all(&frame(T_REFUSED, b"bad hello or secret")).await;
            anyhow::bail!("refused a gateway node: bad hello or secret");
        };
        // Subscribe before the snapshot so that no change falls between the two.
        let mut changes = self.creds.subscribe();
        wr.write_all(&frame(T_WELCOME, b"")).await?;
        wr.write_all(&creds_frame(&self.creds.snapshot())).await?;
        let id = self.next_link.fetch_add(1, Relaxed);
        self.c.links_total.fetch_add(1, Relaxed);
        let (tx, mut out) = mpsc::channel::<Bytes>(self.link_queue);
        let closed = Arc::new(tokio::sync::Notify::new());
        self.links.lock().insert(
            id,
            Link { name: hello.name.clone(), tx, stats: GatewayStats::default(), closed: closed.clone() },
        );
        tracing::info!(node = %hello.name, link = id, "gateway node linked");
        let creds = self.creds.clone();
        let writer = tokio::spawn(async move {
            let mut ping = tokio::time::interval(PING_EVERY);
            let mut buf = BytesMut::new();
            loop {
                tokio::select! {
                    f = out.recv() => {
                        let Some(f) = f else { break };
                        buf.put_slice(&f);
                        while buf.len() < (1 << 20) {
                            match out.try_recv() { Ok(f) => buf.put_slice(&f), Err(_) => break }
                        }
                    }
                    c = changes.recv() => match c {
                        Ok(CredentialChange::Set(c)) => {
                            let at = begin(&mut buf, T_CRED_SET);
                            if put_cred(&mut buf, &c).is_ok() { finish(&mut buf, at) } else { buf.truncate(at) }
                        }
                        Ok(CredentialChange::Remove(id)) => {
                            let at = begin(&mut buf, T_CRED_DEL);
                            if put_str16(&mut buf, &id).is_ok() { finish(&mut buf, at) } else { buf.truncate(at) }
                        }
                        Ok(CredentialChange::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => {
                            buf.put_slice(&creds_frame(&creds.snapshot()));
                        }
                        Err(broadcast::error::RecvError::Closed) => {}
                    },
                    _ = ping.tick() => buf.put_slice(&frame(T_PING, b"")),
                }
                if !buf.is_empty() {
                    if wr.write_all(&buf).await.is_err() {
                        break;
                    }
                    buf.clear();
                }
            }
        });
        let result = tokio::select! {
            r = self.read_link(id, &mut rd) => r,
            _ = closed.notified() => Err(anyhow::anyhow!("link closed by the hub (slow or shutting down)")),
        };
        writer.abort();
        self.links.lock().remove(&id);
        // Everything this node held is offline until it says otherwise.
        let gone: Vec<String> = {
            let mut p = self.presence.lock();
            let ids: Vec<String> = p.iter().filter(|(_, l)| **l == id).map(|(k, _)| k.clone()).collect();
            for k in &ids {
                p.remove(k);
            }
            ids
        };
        tracing::warn!(node = %hello.name, terminals = gone.len(), "gateway node unlinked; its terminals are offline");
        for k in gone {
            let _ = self.events.send(BusEvent::Offline { id: k }).await;
        }
        result
    }

    async fn read_link(&self, link: u64, rd: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<()> {
        loop {
            let Some((t, body)) = read_frame_within(rd, LINK_TIMEOUT).await? else { return Ok(()) };
            let ev = match decode_event(t, body) {
                Ok(Some(ev)) => ev,
                Ok(None) => continue,
                Err(Decoded::Stats(s)) => {
                    if let Some(l) = self.links.lock().get_mut(&link) {
                        l.stats = s;
                    }
                    continue;
                }
                Err(Decoded::Bad(e)) => {
                    self.c.malformed_frames.fetch_add(1, Relaxed);
                    return Err(e.into());
                }
            };
            self.on_event(link, ev).await;
        }
    }

    fn send_to(&self, link: u64, f: &Bytes) -> bool {
        let mut links = self.links.lock();
        let Some(l) = links.get(&link) else { return false };
        match l.tx.try_send(f.clone()) {
            Ok(()) => true,
            Err(_) => {
                // Better a relink and resync than a hub that waits on its slowest node.
                self.c.links_dropped_slow.fetch_add(1, Relaxed);
                l.closed.notify_one();
                links.remove(&link);
                false
            }
        }
    }
}

enum Decoded {
    Stats(GatewayStats),
    Bad(FrameError),
}

/// A node's frame as a terminal event; Ok(None) for a ping.
fn decode_event(t: u8, body: Bytes) -> Result<Option<BusEvent>, Decoded> {
    let mut c = Cur(body);
    let bad = Decoded::Bad;
    match t {
        T_PING => Ok(None),
        T_ONLINE | T_OFFLINE | T_READY => {
            let id = c.str16().map_err(bad)?;
            if !c.is_empty() {
                return Err(bad(FrameError("trailing bytes after presence")));
            }
            Ok(Some(match t {
                T_ONLINE => BusEvent::Online { id },
                T_OFFLINE => BusEvent::Offline { id },
                _ => BusEvent::Ready { id },
            }))
        }
        T_UP => {
            let id = c.str16().map_err(bad)?;
            let kind = c.str16().map_err(bad)?;
            Ok(Some(BusEvent::Up { id, kind, payload: c.rest() }))
        }
        T_STATS => match serde_json::from_slice(&c.rest()) {
            Ok(s) => Err(Decoded::Stats(s)),
            Err(_) => Err(bad(FrameError("stats are not JSON"))),
        },
        _ => Err(bad(FrameError("unexpected frame type from a node"))),
    }
}

/// The terminal id of a one-terminal command topic.
fn terminal_of(topic: &str) -> Option<&str> {
    topic.strip_prefix("eb/v1/t/")?.strip_suffix("/cmd")
}

#[async_trait::async_trait]
impl Bus for Hub {
    async fn publish(&self, topic: &str, payload: Bytes) -> anyhow::Result<Option<usize>> {
        anyhow::ensure!(!topic.contains(['+', '#']), "wildcards are not publish topics: {topic:?}");
        let inner = &self.inner;
        if let Some(id) = terminal_of(topic) {
            let at = inner.presence.lock().get(id).copied();
            return match at {
                Some(LOCAL) => match &inner.local {
                    Some(l) => l.publish(topic, payload).await,
                    None => Ok(Some(0)),
                },
                Some(link) => Ok(Some(usize::from(inner.send_to(link, &publish_frame(topic, &payload)?)))),
                None => Ok(Some(0)),
            };
        }
        let f = publish_frame(topic, &payload)?;
        let ids: Vec<u64> = inner.links.lock().keys().copied().collect();
        for link in &ids {
            inner.send_to(*link, &f);
        }
        let local = match &inner.local {
            Some(l) => l.publish(topic, payload).await?,
            None => Some(0),
        };
        // How many terminals the nodes reach is not known here (they count it in their stats).
        Ok(if ids.is_empty() { local } else { None })
    }

    fn is_online(&self, id: &str) -> Option<bool> {
        Some(self.inner.presence.lock().contains_key(id))
    }

    fn stats(&self) -> GatewayStats {
        let mut s = self.inner.local.as_ref().map(|l| l.stats()).unwrap_or_default();
        for l in self.inner.links.lock().values() {
            s.add(&l.stats);
        }
        s.connected = self.inner.presence.lock().len() as u64;
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Node side

/// Settings of a gateway node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The platform's backbone, host:port.
    pub backbone: String,
    pub secret: String,
    /// Shown in the platform's logs and metrics.
    pub name: String,
    pub gateway: GatewayConfig,
}

/// A running node: its gateway, and whether its link to the platform is up.
pub struct Node {
    pub gateway: Arc<EmbeddedGateway>,
    linked: Arc<AtomicBool>,
    backlog_dropped: Arc<AtomicU64>,
    task: tokio::task::AbortHandle,
}

impl Node {
    pub fn linked(&self) -> bool {
        self.linked.load(Relaxed)
    }
    /// Upward messages dropped because the link stayed down too long.
    pub fn backlog_dropped(&self) -> u64 {
        self.backlog_dropped.load(Relaxed)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a gateway node on `listeners` and keeps it linked to the platform.
pub async fn start_node(listeners: Vec<TcpListener>, cfg: NodeConfig) -> anyhow::Result<Node> {
    // The node's copy of the platform's credentials, under the same invalidation rule: a device the
    // platform retires or re-keys is disconnected from this node as soon as the change arrives.
    let auth = Arc::new(DeviceAuth::default());
    let (gw, rx) = crate::start_embedded_gateway(listeners, cfg.gateway.clone(), auth.clone()).await?;
    let linked = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(node_loop(gw.clone(), rx, auth, cfg, linked.clone(), dropped.clone())).abort_handle();
    Ok(Node { gateway: gw, linked, backlog_dropped: dropped, task })
}

struct Backlog {
    q: VecDeque<BusEvent>,
    dropped: Arc<AtomicU64>,
}

impl Backlog {
    /// Presence is not kept: the node says who is connected when it relinks. `Ready` is kept
    /// with the upward messages: it is what the terminal said, and starts its catch-up.
    fn keep(&mut self, ev: BusEvent) {
        if matches!(ev, BusEvent::Up { .. } | BusEvent::Ready { .. }) {
            if self.q.len() >= NODE_BACKLOG {
                self.q.pop_front();
                self.dropped.fetch_add(1, Relaxed);
            }
            self.q.push_back(ev);
        }
    }
}

/// Runs `fut` while keeping what terminals send; None if the gateway stopped.
async fn while_keeping<T>(
    rx: &mut mpsc::Receiver<BusEvent>,
    backlog: &mut Backlog,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            v = &mut fut => return Some(v),
            ev = rx.recv() => match ev {
                Some(ev) => backlog.keep(ev),
                None => return None,
            },
        }
    }
}

async fn node_loop(
    gw: Arc<EmbeddedGateway>,
    mut rx: mpsc::Receiver<BusEvent>,
    auth: Arc<DeviceAuth>,
    cfg: NodeConfig,
    linked: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut backlog = Backlog { q: VecDeque::new(), dropped };
    let mut delay = Duration::from_millis(200);
    loop {
        let Some(conn) = while_keeping(&mut rx, &mut backlog, link_up(&cfg)).await else { return };
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(backbone = %cfg.backbone, error = %e, "cannot link to the platform; retrying");
                if while_keeping(&mut rx, &mut backlog, tokio::time::sleep(delay)).await.is_none() {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        delay = Duration::from_millis(200);
        linked.store(true, Relaxed);
        tracing::info!(backbone = %cfg.backbone, "linked to the platform");
        let r = serve_node_link(&gw, &mut rx, &mut backlog, &auth, stream).await;
        linked.store(false, Relaxed);
        match r {
            Ok(true) => return,
            Ok(false) => tracing::warn!("platform closed the backbone link; relinking"),
            Err(e) => tracing::warn!(error = %e, "backbone link lost; relinking"),
        }
    }
}

/// Connects and says hello; the platform's welcome comes back.
async fn link_up(cfg: &NodeConfig) -> anyhow::Result<(BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf)> {
    let s = tokio::time::timeout(HELLO_TIMEOUT, TcpStream::connect(&cfg.backbone))
        .await
        .map_err(|_| anyhow::anyhow!("connect timed out"))??;
    let _ = s.set_nodelay(true);
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::with_capacity(256 << 10, rd);
    let hello = serde_json::to_vec(&Hello { v: 1, name: cfg.name.clone(), secret: cfg.secret.clone() })?;
    wr.write_all(&frame(T_HELLO, &hello)).await?;
    match read_frame_within(&mut rd, HELLO_TIMEOUT).await? {
        Some((T_WELCOME, _)) => Ok((rd, wr)),
        Some((T_REFUSED, why)) => anyhow::bail!("the platform refused this node: {}", String::from_utf8_lossy(&why)),
        _ => anyhow::bail!("the platform did not answer the hello"),
    }
}

/// One linked period. Ok(true) when the gateway stopped (the node is done).
async fn serve_node_link(
    gw: &Arc<EmbeddedGateway>,
    rx: &mut mpsc::Receiver<BusEvent>,
    backlog: &mut Backlog,
    auth: &Arc<DeviceAuth>,
    (mut rd, mut wr): (BufReader<tokio::net::tcp::OwnedReadHalf>, tokio::net::tcp::OwnedWriteHalf),
) -> anyhow::Result<bool> {
    let (g, a) = (gw.clone(), auth.clone());
    let mut reader = tokio::spawn(async move { node_read(&g, &a, &mut rd).await });
    let result = async {
        // What happened before now is summed up by who is connected now.
        while let Ok(ev) = rx.try_recv() {
            backlog.keep(ev);
        }
        let mut buf = BytesMut::new();
        for id in gw.connected_ids() {
            put_event(&mut buf, &BusEvent::Online { id })?;
        }
        while let Some(ev) = backlog.q.pop_front() {
            put_event(&mut buf, &ev)?;
            if buf.len() > (1 << 20) {
                wr.write_all(&buf).await?;
                buf.clear();
            }
        }
        wr.write_all(&buf).await?;
        buf.clear();
        let mut ping = tokio::time::interval(PING_EVERY);
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { return Ok(true) };
                    // An event too large to frame is dropped; it cannot be a valid terminal message.
                    let _ = put_event(&mut buf, &ev);
                    while buf.len() < (1 << 20) {
                        match rx.try_recv() { Ok(ev) => { let _ = put_event(&mut buf, &ev); } Err(_) => break }
                    }
                }
                _ = ping.tick() => {
                    buf.put_slice(&frame(T_PING, b""));
                    buf.put_slice(&frame(T_STATS, &serde_json::to_vec(&gw.stats())?));
                }
                r = &mut reader => {
                    return match r {
                        Ok(Ok(())) => Ok(false),
                        Ok(Err(e)) => Err(e),
                        Err(e) => Err(anyhow::anyhow!("backbone reader failed: {e}")),
                    };
                }
            }
            wr.write_all(&buf).await?;
            buf.clear();
        }
    }
    .await;
    reader.abort();
    result
}

/// Applies what the platform sends: credentials and publishes, in order.
async fn node_read(gw: &EmbeddedGateway, auth: &DeviceAuth, rd: &mut (impl AsyncRead + Unpin)) -> anyhow::Result<()> {
    loop {
        let Some((t, body)) = read_frame_within(rd, LINK_TIMEOUT).await? else { return Ok(()) };
        let mut c = Cur(body);
        match t {
            T_PING => {}
            T_CREDS => {
                let mut all = Vec::new();
                while !c.is_empty() {
                    all.push(c.credential()?);
                }
                tracing::info!(terminals = all.len(), "credentials from the platform");
                auth.replace_credentials(all);
            }
            T_CRED_SET => auth.apply_credential(c.credential()?),
            T_CRED_DEL => {
                let id = c.str16()?;
                auth.device_changed(&id, None);
            }
            T_PUBLISH => {
                let topic = c.str16()?;
                if let Err(e) = gw.publish(&topic, c.rest()).await {
                    tracing::warn!(%topic, error = %e, "publish from the platform failed");
                }
            }
            _ => return Err(FrameError("unexpected frame type from the platform").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_frames() {
        let evs = vec![
            BusEvent::Online { id: "a".into() },
            BusEvent::Offline { id: "b".into() },
            BusEvent::Ready { id: "d".into() },
            BusEvent::Up { id: "c".into(), kind: "rcpt".into(), payload: Bytes::from_static(b"{\"x\":1}") },
        ];
        let mut b = BytesMut::new();
        for e in &evs {
            put_event(&mut b, e).expect("encode");
        }
        let mut b = b.freeze();
        let mut got = Vec::new();
        while !b.is_empty() {
            let n = b.get_u32() as usize;
            let mut f = b.split_to(n);
            let t = f.get_u8();
            got.push(decode_event(t, f).ok().flatten().expect("event"));
        }
        assert_eq!(got, evs);
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        for t in 0..=255u8 {
            for body in [&b""[..], b"\x00", b"\xff\xff", b"\x00\x05ab", b"\x00\x01\xff"] {
                let _ = decode_event(t, Bytes::copy_from_slice(body));
            }
        }
        assert!(matches!(decode_event(T_ONLINE, Bytes::from_static(b"\x00\x05ab")), Err(Decoded::Bad(_))));
        assert!(matches!(decode_event(99, Bytes::new()), Err(Decoded::Bad(_))));
        assert_eq!(terminal_of("eb/v1/t/123/cmd"), Some("123"));
        assert_eq!(terminal_of("eb/v1/r/50/cmd"), None);
    }
}
