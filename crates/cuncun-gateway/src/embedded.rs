//! The embedded gateway: accept loop, one light task per terminal, topic index and fan-out.
//!
//! Fan-out writes the once-encoded PUBLISH straight to each subscriber's socket with a
//! non-blocking `try_write` from the publisher's thread; only when a socket is full do the bytes
//! wait in that connection's small queue, drained by its own task. A queue that reaches
//! `slow_queue` packets closes the connection, so one slow terminal cannot hold memory or delay
//! the others.

use crate::{Authenticator, Bus, BusEvent, GatewayConfig, GatewayStats, RevocationListener, codec};
use bytes::{Buf, Bytes, BytesMut};
use cuncun_domain::protocol;
use parking_lot::{Mutex, RwLock};
use rumqttc::mqttbytes::v4::{self, Connect, ConnectReturnCode, Packet, Publish, Subscribe, SubscribeReasonCode};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// Read size per wake-up. The buffer is released whenever it is empty, so an idle terminal holds
/// no read buffer at all.
const READ_CHUNK: usize = 1024;

/// The keep-alive a terminal may ask for, seconds (docs/TERMINAL_PROTOCOL.md). Outside it the
/// CONNECT is refused rather than clamped: MQTT 3.1.1 cannot tell a client another keep-alive, so
/// a clamped terminal would ping too rarely and be closed, or (0) never be found dead.
pub const KEEP_ALIVE_SECS: std::ops::RangeInclusive<u16> = 1..=120;

/// At most this many refusal lines per window; the rest are counted and summed up once.
const REFUSAL_LOG_BURST: u32 = 20;
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    connects_total: AtomicU64,
    refused_auth: AtomicU64,
    refused_capacity: AtomicU64,
    malformed: AtomicU64,
    acl_denied: AtomicU64,
    published: AtomicU64,
    delivered: AtomicU64,
    bytes_out: AtomicU64,
    dropped_slow: AtomicU64,
    keepalive_timeouts: AtomicU64,
    refused_session: AtomicU64,
    takeovers: AtomicU64,
    accept_errors: AtomicU64,
    up_messages: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

struct Inner {
    cfg: GatewayConfig,
    auth: Arc<dyn Authenticator>,
    events: mpsc::Sender<BusEvent>,
    /// Terminal id -> its current connection (a newer one with the same id replaces it).
    sessions: Mutex<HashMap<Box<str>, Arc<Conn>>>,
    topics: RwLock<HashMap<Box<str>, Topic>>,
    c: Counters,
    next_no: AtomicU64,
    /// Sockets held, from accept to close, handshake included.
    open_sockets: AtomicUsize,
    /// Large fan-outs in progress, and their end (see `GatewayConfig::reads_yield_to_fanout`).
    fanouts: AtomicUsize,
    fanout_done: Notify,
    /// Refusals logged in the current window: (window start, lines, suppressed).
    refusal_log: Mutex<(Instant, u32, u64)>,
}

/// Subscribers of one topic. Publishes use `snapshot`, rebuilt only after membership changed, so
/// a publish neither clones the member list nor holds the index lock while writing.
#[derive(Default)]
struct Topic {
    members: HashMap<u64, Arc<Conn>>,
    /// Weak so that a snapshot never keeps a closed connection's socket open.
    snapshot: Option<Arc<[Weak<Conn>]>>,
}

struct Conn {
    /// Unique per connection, so a session taken over never removes its successor's entries.
    no: u64,
    id: Box<str>,
    stream: TcpStream,
    /// Bytes that could not be written at once; empty (and unallocated) almost always.
    out: Mutex<VecDeque<Bytes>>,
    wake: Notify,
    closed: AtomicBool,
}

enum Sent {
    Written,
    Queued,
    Slow,
    Closed,
}

impl Conn {
    /// Writes now if nothing is waiting, else queues behind what is (order is kept because both
    /// paths hold `out`).
    fn send(&self, pkt: &Bytes, limit: usize) -> Sent {
        if self.closed.load(Relaxed) {
            return Sent::Closed;
        }
        let mut q = self.out.lock();
        if q.is_empty() {
            match self.stream.try_write(pkt) {
                Ok(n) if n >= pkt.len() => return Sent::Written,
                Ok(n) => q.push_back(pkt.slice(n..)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => q.push_back(pkt.clone()),
                Err(_) => {
                    drop(q);
                    self.close();
                    return Sent::Closed;
                }
            }
            drop(q);
            // The connection's task now waits for the socket to become writable.
            self.wake.notify_one();
            Sent::Queued
        } else if q.len() >= limit {
            q.clear();
            drop(q);
            self.close();
            Sent::Slow
        } else {
            q.push_back(pkt.clone());
            Sent::Queued
        }
    }

    /// Writes what is queued; Ok(true) once the queue is empty.
    fn flush(&self) -> io::Result<bool> {
        let mut q = self.out.lock();
        while let Some(front) = q.front_mut() {
            if front.is_empty() {
                q.pop_front();
                continue;
            }
            match self.stream.try_write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) if n >= front.len() => {
                    q.pop_front();
                }
                Ok(n) => front.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn has_pending(&self) -> bool {
        !self.out.lock().is_empty()
    }

    fn close(&self) {
        self.closed.store(true, Relaxed);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }
}

impl Inner {
    /// Logs a refused CONNECT with the id it claimed, at most `REFUSAL_LOG_BURST` lines per
    /// window, so a device retrying in a loop cannot flood the log.
    fn log_refusal(&self, claimed_id: &str, why: &str) {
        let mut l = self.refusal_log.lock();
        if l.0.elapsed() >= REFUSAL_LOG_WINDOW {
            if l.2 > 0 {
                tracing::warn!(suppressed = l.2, "more terminal connections were refused than logged");
            }
            *l = (Instant::now(), 0, 0);
        }
        if l.1 < REFUSAL_LOG_BURST {
            l.1 += 1;
            tracing::warn!(terminal = claimed_id, why, "terminal connection refused");
        } else {
            l.2 += 1;
        }
    }

    fn snapshot(&self, topic: &str) -> Option<Arc<[Weak<Conn>]>> {
        {
            let t = self.topics.read();
            if let Some(s) = t.get(topic)?.snapshot.as_ref() {
                return Some(s.clone());
            }
        }
        let mut t = self.topics.write();
        let tp = t.get_mut(topic)?;
        let snap = tp.snapshot.get_or_insert_with(|| tp.members.values().map(Arc::downgrade).collect());
        Some(snap.clone())
    }

    fn subscribe(&self, topic: &str, conn: &Arc<Conn>) {
        let mut t = self.topics.write();
        let tp = match t.get_mut(topic) {
            Some(tp) => tp,
            None => t.entry(topic.into()).or_default(),
        };
        tp.members.insert(conn.no, conn.clone());
        tp.snapshot = None;
    }

    fn unsubscribe(&self, topic: &str, no: u64) {
        let mut t = self.topics.write();
        if let Some(tp) = t.get_mut(topic) {
            if tp.members.remove(&no).is_some() {
                tp.snapshot = None;
            }
            if tp.members.is_empty() {
                t.remove(topic);
            }
        }
    }

    /// Writes `pkt` to the subscribers in `range` of `snap`; returns how many got it.
    fn fanout(&self, snap: &[Weak<Conn>], range: Range<usize>, pkt: &Bytes) -> usize {
        let (mut ok, mut slow) = (0usize, 0u64);
        for w in snap.get(range).unwrap_or(&[]) {
            let Some(c) = w.upgrade() else { continue };
            match c.send(pkt, self.cfg.slow_queue) {
                Sent::Written | Sent::Queued => ok += 1,
                Sent::Slow => slow += 1,
                Sent::Closed => {}
            }
        }
        self.c.delivered.fetch_add(ok as u64, Relaxed);
        self.c.bytes_out.fetch_add((ok * pkt.len()) as u64, Relaxed);
        self.c.dropped_slow.fetch_add(slow, Relaxed);
        ok
    }

    fn stats(&self) -> GatewayStats {
        let c = &self.c;
        let g = |a: &AtomicU64| a.load(Relaxed);
        GatewayStats {
            connected: g(&c.connected),
            connects_total: g(&c.connects_total),
            refused_auth: g(&c.refused_auth),
            refused_capacity: g(&c.refused_capacity),
            malformed: g(&c.malformed),
            acl_denied: g(&c.acl_denied),
            published: g(&c.published),
            delivered: g(&c.delivered),
            bytes_out: g(&c.bytes_out),
            dropped_slow: g(&c.dropped_slow),
            keepalive_timeouts: g(&c.keepalive_timeouts),
            refused_session: g(&c.refused_session),
            takeovers: g(&c.takeovers),
            accept_errors: g(&c.accept_errors),
            up_messages: g(&c.up_messages),
        }
    }

    /// Authenticates a terminal and admits it, replacing an older connection with the same id;
    /// gives the socket back with the refusal when its credential is refused or the gateway is
    /// full. Both steps hold the session lock, which revocations take after the credential has
    /// changed: a connection admitted with a credential revoked meanwhile is in the sessions by
    /// the time the revocation looks, and is closed.
    fn admit(
        &self,
        id: String,
        username: Option<&str>,
        password: Option<&[u8]>,
        stream: TcpStream,
    ) -> Result<(Arc<Conn>, String), (TcpStream, ConnectReturnCode)> {
        let mut s = self.sessions.lock();
        let Some(region) = self.auth.authenticate(&id, username, password) else {
            return Err((stream, ConnectReturnCode::BadUserNamePassword));
        };
        let taking_over = s.contains_key(id.as_str());
        if !taking_over && s.len() >= self.cfg.max_connections {
            return Err((stream, ConnectReturnCode::ServiceUnavailable));
        }
        let conn = Arc::new(Conn {
            no: self.next_no.fetch_add(1, Relaxed),
            id: id.into_boxed_str(),
            stream,
            out: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        });
        match s.insert(conn.id.clone(), conn.clone()) {
            Some(old) => {
                old.close();
                inc(&self.c.takeovers);
            }
            None => inc(&self.c.connected),
        }
        inc(&self.c.connects_total);
        Ok((conn, region))
    }
}

/// The one invalidation rule's gateway half: a device whose credential was removed or replaced
/// loses its connection at once (its task unregisters it and reports it offline).
impl RevocationListener for Inner {
    fn revoked(&self, id: &str) {
        let conn = self.sessions.lock().get(id).cloned();
        if let Some(c) = conn {
            tracing::info!(id, "device retired or re-keyed: closing its connection");
            c.close();
        }
    }
}

/// The embedded gateway. It stops (listeners and every connection) when dropped.
pub struct EmbeddedGateway {
    inner: Arc<Inner>,
    local_addrs: Vec<SocketAddr>,
    accept_tasks: Vec<tokio::task::AbortHandle>,
}

impl EmbeddedGateway {
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Closes every terminal's connection (as a restart would); returns how many.
    pub fn disconnect_all(&self) -> usize {
        let conns: Vec<Arc<Conn>> = self.inner.sessions.lock().values().cloned().collect();
        for c in &conns {
            c.close();
        }
        conns.len()
    }

    /// Ids of the terminals connected now (for a backbone resync).
    pub fn connected_ids(&self) -> Vec<String> {
        self.inner.sessions.lock().keys().map(|k| k.to_string()).collect()
    }

    /// Sockets open now, handshakes included.
    pub fn open_sockets(&self) -> usize {
        self.inner.open_sockets.load(Relaxed)
    }

    pub fn stats(&self) -> GatewayStats {
        self.inner.stats()
    }
}

impl Drop for EmbeddedGateway {
    fn drop(&mut self) {
        for t in &self.accept_tasks {
            t.abort();
        }
        self.disconnect_all();
    }
}

#[async_trait::async_trait]
impl Bus for EmbeddedGateway {
    async fn publish(&self, topic: &str, payload: Bytes) -> anyhow::Result<Option<usize>> {
        let pkt = codec::publish_qos0(topic, payload)?;
        inc(&self.inner.c.published);
        let Some(snap) = self.inner.snapshot(topic) else { return Ok(Some(0)) };
        let n = snap.len();
        if n <= self.inner.cfg.inline_fanout_max {
            return Ok(Some(self.inner.fanout(&snap, 0..n, &pkt)));
        }
        // Thousands of syscalls take a few hundred ms: keep them off the async workers.
        let _running = FanoutRunning::start(&self.inner);
        let threads = self.inner.cfg.fanout_threads.clamp(1, 16);
        let chunk = n.div_ceil(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (inner, snap, pkt) = (self.inner.clone(), snap.clone(), pkt.clone());
            let range = (i * chunk).min(n)..((i + 1) * chunk).min(n);
            handles.push(tokio::task::spawn_blocking(move || inner.fanout(&snap, range, &pkt)));
        }
        let mut total = 0;
        for h in handles {
            total += h.await.map_err(|e| anyhow::anyhow!("fan-out thread failed: {e}"))?;
        }
        Ok(Some(total))
    }

    fn is_online(&self, id: &str) -> Option<bool> {
        Some(self.inner.sessions.lock().contains_key(id))
    }

    fn stats(&self) -> GatewayStats {
        self.inner.stats()
    }
}

/// Starts the gateway on the given listeners. Events come on the returned receiver; the gateway
/// waits (does not drop events) when it is full, so keep reading it.
pub async fn start_embedded(
    listeners: Vec<TcpListener>,
    cfg: GatewayConfig,
    auth: Arc<dyn Authenticator>,
) -> anyhow::Result<(Arc<dyn Bus>, mpsc::Receiver<BusEvent>)> {
    let (gw, rx) = start_embedded_gateway(listeners, cfg, auth).await?;
    Ok((gw, rx))
}

/// [`start_embedded`] with the concrete type, for the extra controls of [`EmbeddedGateway`].
pub async fn start_embedded_gateway(
    listeners: Vec<TcpListener>,
    cfg: GatewayConfig,
    auth: Arc<dyn Authenticator>,
) -> anyhow::Result<(Arc<EmbeddedGateway>, mpsc::Receiver<BusEvent>)> {
    anyhow::ensure!(!listeners.is_empty(), "the gateway needs at least one listener");
    anyhow::ensure!(cfg.max_connections > 0, "max_connections must be at least 1");
    let (tx, rx) = mpsc::channel(cfg.event_queue.max(16));
    let inner = Arc::new(Inner {
        cfg,
        auth,
        events: tx,
        sessions: Mutex::new(HashMap::new()),
        topics: RwLock::new(HashMap::new()),
        c: Counters::default(),
        next_no: AtomicU64::new(1),
        open_sockets: AtomicUsize::new(0),
        fanouts: AtomicUsize::new(0),
        fanout_done: Notify::new(),
        refusal_log: Mutex::new((Instant::now(), 0, 0)),
    });
    inner.auth.watch(Arc::downgrade(&inner) as Weak<dyn RevocationListener>);
    let mut local_addrs = Vec::new();
    let mut accept_tasks = Vec::new();
    for l in listeners {
        local_addrs.push(l.local_addr()?);
        accept_tasks.push(tokio::spawn(accept_loop(inner.clone(), l)).abort_handle());
    }
    tracing::info!(addrs = ?local_addrs, "terminal gateway listening");
    Ok((Arc::new(EmbeddedGateway { inner, local_addrs, accept_tasks }), rx))
}

/// Marks a large fan-out as running until dropped (error paths included).
struct FanoutRunning<'a>(&'a Inner);

impl<'a> FanoutRunning<'a> {
    fn start(inner: &'a Inner) -> Self {
        inner.fanouts.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self(inner)
    }
}

impl Drop for FanoutRunning<'_> {
    fn drop(&mut self) {
        if self.0.fanouts.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            self.0.fanout_done.notify_waiters();
        }
    }
}

impl Inner {
    /// Waits for running large fan-outs to end, when reads are configured to yield to them.
    async fn yield_to_fanout(&self) {
        if !self.cfg.reads_yield_to_fanout {
            return;
        }
        use std::sync::atomic::Ordering::Acquire;
        while self.fanouts.load(Acquire) > 0 {
            let done = self.fanout_done.notified();
            tokio::pin!(done);
            // Registered before the re-check, so an end in between is not missed.
            done.as_mut().enable();
            if self.fanouts.load(Acquire) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// Counts a socket from accept to close.
struct SocketSlot(Arc<Inner>);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.open_sockets.fetch_sub(1, Relaxed);
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    // Linux: ENFILE 23, EMFILE 24, ENOMEM 12, ENOBUFS 105. Retrying at once would spin a core.
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut last_warn: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                let open = inner.open_sockets.fetch_add(1, Relaxed) + 1;
                let slot = SocketSlot(inner.clone());
                if open > inner.cfg.max_connections + inner.cfg.handshake_slack {
                    // Too many sockets even to answer: close now, keep descriptors for the others.
                    inc(&inner.c.refused_capacity);
                    drop(stream);
                    drop(slot);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_socket(inner.clone(), stream, slot));
            }
            Err(e) => {
                inc(&inner.c.accept_errors);
                if last_warn.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                    tracing::warn!(error = %e, open = inner.open_sockets.load(Relaxed), "gateway accept failed; backing off");
                    last_warn = Some(Instant::now());
                }
                let pause = if out_of_descriptors(&e) { inner.cfg.accept_backoff } else { Duration::from_millis(5) };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

enum ReadError {
    Closed,
    Malformed,
}

/// Reads one packet (for the handshake, before the connection is registered).
async fn read_packet(stream: &TcpStream, buf: &mut BytesMut, max: usize) -> Result<Packet, ReadError> {
    loop {
        match v4::read(buf, max) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(_) => return Err(ReadError::Malformed),
        }
        stream.readable().await.map_err(|_| ReadError::Closed)?;
        buf.reserve(READ_CHUNK);
        match stream.try_read_buf(buf) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(ReadError::Closed),
        }
    }
}

async fn refuse(mut stream: TcpStream, code: ConnectReturnCode) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(&codec::connack(code)).await?;
        stream.shutdown().await
    })
    .await;
}

async fn serve_socket(inner: Arc<Inner>, stream: TcpStream, _slot: SocketSlot) {
    let mut buf = BytesMut::new();
    let handshake = tokio::time::timeout(inner.cfg.connect_timeout, read_packet(&stream, &mut buf, inner.cfg.max_packet));
    let connect = match handshake.await {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) | Ok(Err(ReadError::Malformed)) => {
            inc(&inner.c.malformed);
            return;
        }
        Ok(Err(ReadError::Closed)) | Err(_) => return,
    };
    let Connect { protocol, keep_alive, client_id, clean_session, login, .. } = connect;
    if protocol != Protocol::V4 {
        inc(&inner.c.malformed);
        refuse(stream, ConnectReturnCode::RefusedProtocolVersion).await;
        return;
    }
    // Refused, not accepted and ignored: a terminal relying on a kept session or on a keep-alive
    // we do not enforce would silently get nothing (the codes are in TERMINAL_PROTOCOL.md).
    let session_refusal = if !KEEP_ALIVE_SECS.contains(&keep_alive) {
        Some(format!("keep-alive {keep_alive} s is outside 1-120 s"))
    } else if !clean_session {
        Some("clean session false: the platform keeps no session; connect with clean session true".to_string())
    } else {
        None
    };
    if let Some(why) = session_refusal {
        inc(&inner.c.refused_session);
        inner.log_refusal(&client_id, &why);
        refuse(stream, ConnectReturnCode::BadClientId).await;
        return;
    }
    let (username, password) = match &login {
        Some(l) => (
            Some(l.username.as_str()).filter(|u| !u.is_empty()),
            Some(l.password.as_bytes()).filter(|p| !p.is_empty()),
        ),
        None => (None, None),
    };
    let client_id_for_log = client_id.clone();
    // The client id must be the username: ACLs are keyed by the id, authentication by the username.
    let admitted = if !client_id.is_empty() && username == Some(client_id.as_str()) {
        inner.admit(client_id, username, password, stream)
    } else {
        Err((stream, ConnectReturnCode::BadUserNamePassword))
    };
    drop(login);
    let (conn, region) = match admitted {
        Ok(a) => a,
        Err((stream, code)) => {
            if code == ConnectReturnCode::BadUserNamePassword {
                inc(&inner.c.refused_auth);
                inner.log_refusal(&client_id_for_log, "unknown device, wrong secret, or client id not the username");
            } else {
                inc(&inner.c.refused_capacity);
            }
            refuse(stream, code).await;
            return;
        }
    };
    let mut s = Session { inner: inner.clone(), conn, region: region.into_boxed_str(), subs: Vec::new(), done: false };
    s.run(buf, keep_alive).await;
    if s.unregister() {
        let _ = inner.events.send(BusEvent::Offline { id: s.conn.id.to_string() }).await;
    }
}

enum Flow {
    Continue,
    Close,
}

/// One connected terminal. Dropping it unregisters it, so a cancelled or failed task cannot leave
/// a stale session or subscription behind.
struct Session {
    inner: Arc<Inner>,
    conn: Arc<Conn>,
    region: Box<str>,
    subs: Vec<Box<str>>,
    done: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.unregister() {
            let _ = self.inner.events.try_send(BusEvent::Offline { id: self.conn.id.to_string() });
        }
    }
}

impl Session {
    /// Removes the connection from the index and, unless a newer connection took the id over, from
    /// the sessions. Returns true when the terminal is now offline.
    fn unregister(&mut self) -> bool {
        if self.done {
            return false;
        }
        self.done = true;
        self.conn.close();
        for t in self.subs.drain(..) {
            self.inner.unsubscribe(&t, self.conn.no);
        }
        let mut s = self.inner.sessions.lock();
        let mine = s.get(&*self.conn.id).is_some_and(|c| c.no == self.conn.no);
        if mine {
            s.remove(&*self.conn.id);
            self.inner.c.connected.fetch_sub(1, Relaxed);
        }
        mine
    }

    fn reply(&self, pkt: Bytes) -> Flow {
        match self.conn.send(&pkt, self.inner.cfg.slow_queue) {
            Sent::Written | Sent::Queued => Flow::Continue,
            Sent::Slow => {
                inc(&self.inner.c.dropped_slow);
                Flow::Close
            }
            Sent::Closed => Flow::Close,
        }
    }

    async fn run(&mut self, mut buf: BytesMut, keep_alive: u16) {
        if let Flow::Close = self.reply(codec::connack(ConnectReturnCode::Success)) {
            return;
        }
        let _ = self.inner.events.send(BusEvent::Online { id: self.conn.id.to_string() }).await;
        // Packets that arrived together with CONNECT.
        if let Flow::Close = self.drain(&mut buf).await {
            return;
        }
        let conn = self.conn.clone();
        // MQTT's own rule: nothing received for 1.5 keep-alives (never 0: refused at CONNECT)
        // closes the connection, which reports the terminal offline.
        let ka = Duration::from_millis(u64::from(keep_alive.max(1)) * 1500);
        let mut last_in = Instant::now();
        // Reset only when it fires, not on every packet: cheaper than re-arming per packet.
        let timer = tokio::time::sleep(ka);
        tokio::pin!(timer);
        loop {
            let pending = conn.has_pending();
            tokio::select! {
                _ = conn.wake.notified() => {
                    if conn.is_closed() {
                        return;
                    }
                }
                r = conn.stream.writable(), if pending => {
                    if r.is_err() || conn.flush().is_err() {
                        return;
                    }
                }
                r = conn.stream.readable() => {
                    if r.is_err() {
                        return;
                    }
                    self.inner.yield_to_fanout().await;
                    buf.reserve(READ_CHUNK);
                    match conn.stream.try_read_buf(&mut buf) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => return,
                    }
                    last_in = Instant::now();
                    if let Flow::Close = self.drain(&mut buf).await {
                        return;
                    }
                    if buf.is_empty() {
                        buf = BytesMut::new();
                    }
                }
                _ = &mut timer => {
                    if last_in.elapsed() >= ka {
                        inc(&self.inner.c.keepalive_timeouts);
                        return;
                    }
                    timer.as_mut().reset(last_in + ka);
                }
            }
        }
    }

    /// Handles every complete packet in `buf`.
    async fn drain(&mut self, buf: &mut BytesMut) -> Flow {
        loop {
            match v4::read(buf, self.inner.cfg.max_packet) {
                Ok(p) => {
                    if let Flow::Close = self.on_packet(p).await {
                        return Flow::Close;
                    }
                }
                Err(CodecError::InsufficientBytes(_)) => return Flow::Continue,
                Err(e) => {
                    tracing::debug!(id = %self.conn.id, error = %e, "malformed packet; closing");
                    inc(&self.inner.c.malformed);
                    return Flow::Close;
                }
            }
        }
    }

    async fn on_packet(&mut self, p: Packet) -> Flow {
        match p {
            Packet::Publish(p) => self.on_publish(p).await,
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    if let Some(i) = self.subs.iter().position(|s| **s == **t) {
                        self.subs.swap_remove(i);
                        self.inner.unsubscribe(t, self.conn.no);
                    }
                }
                self.reply(codec::unsuback(u.pkid))
            }
            Packet::PingReq => self.reply(codec::pingresp()),
            Packet::PubRel(r) => self.reply(codec::pubcomp(r.pkid)),
            // Acks for QoS > 0 sent to terminals: the gateway sends QoS 0 only, so nothing to track.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => Flow::Continue,
            // A clean disconnect discards the will; presence still becomes Offline.
            Packet::Disconnect => Flow::Close,
            Packet::Connect(_) | Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                inc(&self.inner.c.malformed);
                Flow::Close
            }
        }
    }

    async fn on_publish(&mut self, p: Publish) -> Flow {
        let kind = protocol::parse_up_topic(&p.topic).and_then(|(id, kind)| (id == &*self.conn.id).then_some(kind));
        match kind {
            None => inc(&self.inner.c.acl_denied),
            Some(kind) => {
                inc(&self.inner.c.up_messages);
                // The connection itself says online and offline; `online: true` also says the
                // terminal has subscribed (the protocol's order), which starts its catch-up.
                let presence = if kind == "status" { serde_json::from_slice::<protocol::Status>(&p.payload).ok() } else { None };
                if let Some(st) = presence {
                    if st.online {
                        let _ = self.inner.events.send(BusEvent::Ready { id: self.conn.id.to_string() }).await;
                    }
                } else {
                    let ev = BusEvent::Up {
                        id: self.conn.id.to_string(),
                        kind: kind.to_string(),
                        // A copy, so the event does not pin this connection's read buffer.
                        payload: Bytes::copy_from_slice(&p.payload),
                    };
                    let _ = self.inner.events.send(ev).await;
                }
            }
        }
        // Acknowledged even when denied, or the terminal would resend it forever; after the event
        // is queued, so an acknowledged receipt has reached the platform's queue.
        match p.qos {
            QoS::AtMostOnce => Flow::Continue,
            QoS::AtLeastOnce => self.reply(codec::puback(p.pkid)),
            QoS::ExactlyOnce => self.reply(codec::pubrec(p.pkid)),
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Flow {
        let own = protocol::terminal_cmd_topic(&self.conn.id);
        let chain = protocol::region_chain_topics(&self.region);
        let mut codes = Vec::with_capacity(s.filters.len());
        for f in &s.filters {
            if f.path == own || chain.contains(&f.path) {
                if !self.subs.iter().any(|t| **t == *f.path) {
                    self.inner.subscribe(&f.path, &self.conn);
                    self.subs.push(f.path.as_str().into());
                }
                codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
            } else {
                inc(&self.inner.c.acl_denied);
                codes.push(SubscribeReasonCode::Failure);
            }
        }
        self.reply(codec::suback(s.pkid, codes))
    }
}
