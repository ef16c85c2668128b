//! One simulated terminal: connect, subscribe, heartbeat, play, reconnect.

use crate::player::{Out, Player};
use crate::{Shared, inc};
use bytes::BytesMut;
use cuncun_domain::protocol::{self, Command, Heartbeat, Status, TerminalState, VERSION};
use rand::Rng;
use rumqttc::mqttbytes::v4::{
    self, Connect, ConnectReturnCode, Disconnect, LastWill, Packet, PingReq, PubAck, PubComp, PubRec, Publish, Subscribe,
    SubscribeFilter,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{SemaphorePermit, watch};
use tokio::time::Instant;

/// Largest packet accepted from the server.
const MAX_PACKET: usize = 256 * 1024;
/// Receipts and logs kept while offline, sent on reconnect.
const OUTBOX_MAX: usize = 256;
/// Message ids remembered for de-duplication.
const SEEN_MAX: usize = 64;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn between(lo: Duration, hi: Duration) -> Duration {
    if hi <= lo {
        return lo;
    }
    rand::thread_rng().gen_range(lo..=hi)
}

fn status_json(online: bool) -> Vec<u8> {
    serde_json::to_vec(&Status { v: VERSION, online }).unwrap_or_default()
}

enum End {
    Stop,
    Lost,
    Dropped,
    Offline(Duration),
}

enum ConnectError {
    Refused(ConnectReturnCode),
    Failed,
}

struct Terminal {
    sh: Arc<Shared>,
    idx: usize,
    id: String,
    secret: String,
    topics: Vec<String>,
    player: Player,
    seen: VecDeque<Box<str>>,
    outbox: VecDeque<Out>,
    pkid: u16,
}

pub(crate) async fn run(sh: Arc<Shared>, idx: usize, id: String, secret: String) {
    let Some(region) = crate::region_of(&id) else {
        inc(&sh.ctl.c.connect_errors);
        return;
    };
    let mut topics = vec![protocol::terminal_cmd_topic(&id)];
    topics.extend(protocol::region_chain_topics(region));
    let player = Player::new(sh.cfg.player.clone());
    let mut t = Terminal { sh, idx, id, secret, topics, player, seen: VecDeque::new(), outbox: VecDeque::new(), pkid: 0 };
    t.main().await
}

impl Terminal {
    async fn main(&mut self) {
        let sh = self.sh.clone();
        let mut stop = sh.stop.clone();
        let mut drops = sh.ctl.drops.subscribe();
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let permit = tokio::select! {
                p = sh.connect_slots.acquire() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            // Only drops requested from now on concern this connection.
            drops.borrow_and_update();
            let attempt = tokio::select! {
                r = self.connect() => r,
                _ = stop.changed() => return,
            };
            let pause = match attempt {
                Ok((stream, buf)) => {
                    failures = 0;
                    inc(&sh.ctl.c.connects_total);
                    match self.session(stream, buf, permit, &mut stop, &mut drops).await {
                        End::Stop => return,
                        // A storm: back at once (the connect slots pace it).
                        End::Dropped => Duration::ZERO,
                        End::Lost => {
                            inc(&sh.ctl.c.disconnects);
                            between(Duration::ZERO, Duration::from_millis(500))
                        }
                        End::Offline(d) => {
                            inc(&sh.ctl.c.disconnects);
                            d
                        }
                    }
                }
                Err(e) => {
                    drop(permit);
                    failures = failures.saturating_add(1);
                    match e {
                        ConnectError::Refused(code) => {
                            inc(&sh.ctl.c.refused);
                            if matches!(
                                code,
                                ConnectReturnCode::BadUserNamePassword
                                    | ConnectReturnCode::NotAuthorized
                                    | ConnectReturnCode::BadClientId
                            ) {
                                // Credentials do not get better by retrying.
                                let _ = stop.wait_for(|s| *s).await;
                                return;
                            }
                        }
                        ConnectError::Failed => inc(&sh.ctl.c.connect_errors),
                    }
                    let (lo, hi) = sh.cfg.retry_backoff;
                    let exp = lo.saturating_mul(1 << failures.min(16).saturating_sub(1)).min(hi);
                    between(exp / 2, exp)
                }
            };
            if !pause.is_zero() && !self.wait(pause, &mut stop).await {
                return;
            }
        }
    }

    /// Waits while disconnected, still playing; false when stopped.
    async fn wait(&mut self, d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
        let until = Instant::now() + d;
        loop {
            if *stop.borrow() {
                return false;
            }
            let wake = self.player_wake().map_or(until, |p| p.min(until));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {
                    let outs = self.player.tick(now_ms());
                    self.keep(outs);
                    if Instant::now() >= until {
                        return true;
                    }
                }
                r = stop.changed() => {
                    if r.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    fn player_wake(&self) -> Option<Instant> {
        let ms = self.player.next_deadline()?;
        let wait = (ms - now_ms()).clamp(0, 86_400_000) as u64;
        Some(Instant::now() + Duration::from_millis(wait))
    }

    /// Keeps upward messages for the next connection.
    fn keep(&mut self, outs: Vec<Out>) {
        for o in outs {
            if self.outbox.len() >= OUTBOX_MAX {
                self.outbox.pop_front();
            }
            self.outbox.push_back(o);
        }
    }

    fn next_pkid(&mut self) -> u16 {
        self.pkid = self.pkid.wrapping_add(1).max(1);
        self.pkid
    }

    fn publish(&mut self, w: &mut BytesMut, kind: &str, payload: Vec<u8>, qos: QoS) {
        let mut p = Publish::new(protocol::up_topic(&self.id, kind), qos, payload);
        if qos != QoS::AtMostOnce {
            p.pkid = self.next_pkid();
        }
        let _ = p.write(w);
    }

    fn emit(&mut self, outs: Vec<Out>, w: &mut BytesMut) {
        if !self.sh.cfg.receipts {
            return;
        }
        for o in outs {
            let c = &self.sh.ctl.c;
            let (kind, json) = match &o {
                Out::Receipt(r) => {
                    inc(&c.receipts_sent);
                    ("rcpt", serde_json::to_vec(r))
                }
                Out::Log(l) => {
                    inc(&c.logs_sent);
                    ("log", serde_json::to_vec(l))
                }
            };
            if let Ok(json) = json {
                self.publish(w, kind, json, QoS::AtLeastOnce);
            }
        }
    }

    async fn connect(&mut self) -> Result<(TcpStream, BytesMut), ConnectError> {
        let sh = self.sh.clone();
        let fail = |_| ConnectError::Failed;
        let attempt = async {
            let sock = if sh.target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(fail)?;
            if !sh.sources.is_empty() {
                let src = sh.sources[self.idx % sh.sources.len()];
                sock.bind(SocketAddr::new(src, 0)).map_err(fail)?;
            }
            let _ = sock.set_nodelay(true);
            let mut stream = sock.connect(sh.target).await.map_err(fail)?;
            let mut c = Connect::new(self.id.clone());
            c.keep_alive = sh.cfg.keep_alive;
            c.set_login(self.id.clone(), self.secret.clone());
            c.last_will =
                Some(LastWill::new(protocol::up_topic(&self.id, "status"), status_json(false), QoS::AtLeastOnce, false));
            let mut b = BytesMut::new();
            c.write(&mut b).map_err(|_| ConnectError::Failed)?;
            stream.write_all(&b).await.map_err(fail)?;
            let mut buf = BytesMut::new();
            loop {
                match v4::read(&mut buf, MAX_PACKET) {
                    Ok(Packet::ConnAck(a)) if a.code == ConnectReturnCode::Success => return Ok((stream, buf)),
                    Ok(Packet::ConnAck(a)) => return Err(ConnectError::Refused(a.code)),
                    Ok(_) => return Err(ConnectError::Failed),
                    Err(CodecError::InsufficientBytes(_)) => {}
                    Err(_) => return Err(ConnectError::Failed),
                }
                buf.reserve(256);
                if stream.read_buf(&mut buf).await.map_err(fail)? == 0 {
                    return Err(ConnectError::Failed);
                }
            }
        };
        tokio::time::timeout(sh.cfg.connect_timeout, attempt).await.unwrap_or(Err(ConnectError::Failed))
    }

    async fn session(
        &mut self,
        mut stream: TcpStream,
        mut buf: BytesMut,
        permit: SemaphorePermit<'_>,
        stop: &mut watch::Receiver<bool>,
        drops: &mut watch::Receiver<u64>,
    ) -> End {
        let sh = self.sh.clone();
        let cfg = &sh.cfg;
        let mut permit = Some(permit);
        let mut subscribed = false;
        let mut w = BytesMut::new();
        // Presence, subscriptions, then whatever was kept while offline.
        self.publish(&mut w, "status", status_json(true), QoS::AtLeastOnce);
        let mut sub = Subscribe::new_many(self.topics.iter().map(|t| SubscribeFilter::new(t.clone(), QoS::AtMostOnce)));
        sub.pkid = self.next_pkid();
        let _ = sub.write(&mut w);
        let kept: Vec<Out> = self.outbox.drain(..).collect();
        self.emit(kept, &mut w);

        let hb = cfg.hb_interval.max(Duration::from_millis(100));
        let ka = Duration::from_secs(u64::from(cfg.keep_alive));
        let now = Instant::now();
        // The first heartbeat anywhere in the first period, so thousands do not beat together.
        let mut next_hb = now + between(Duration::ZERO, hb);
        let mut last_out = now;
        let next_offline = (cfg.offline_rate > 0.0).then(|| {
            let mean = 3600.0 / cfg.offline_rate;
            let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
            now + Duration::from_secs_f64((-u.ln() * mean).min(86_400.0 * 365.0))
        });
        let mut answering = false;
        let end = 'session: loop {
            if !w.is_empty() {
                if std::mem::take(&mut answering) {
                    // Thousands of terminals share this process's cores; let the others read the
                    // message first (their receive times are the measurement), then answer.
                    tokio::task::yield_now().await;
                }
                if stream.write_all(&w).await.is_err() {
                    break End::Lost;
                }
                w.clear();
                last_out = Instant::now();
            }
            let ping_at = (!ka.is_zero()).then(|| last_out + ka * 3 / 4);
            let wake = [Some(next_hb), ping_at, self.player_wake(), next_offline]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                r = stop.changed() => {
                    let _ = r;
                    self.publish(&mut w, "status", status_json(false), QoS::AtLeastOnce);
                    let _ = Disconnect.write(&mut w);
                    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&w)).await;
                    break End::Stop;
                }
                _ = drops.changed() => break End::Dropped,
                r = stream.readable() => {
                    if r.is_err() {
                        break End::Lost;
                    }
                    buf.reserve(2048);
                    match stream.try_read_buf(&mut buf) {
                        Ok(0) => break End::Lost,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(_) => break End::Lost,
                    }
                    // Taken at the read, before any parsing: the latency a benchmark wants.
                    let t_us = now_us();
                    loop {
                        match v4::read(&mut buf, MAX_PACKET) {
                            Ok(Packet::Publish(p)) => {
                                match p.qos {
                                    QoS::AtMostOnce => {}
                                    QoS::AtLeastOnce => { let _ = PubAck::new(p.pkid).write(&mut w); }
                                    QoS::ExactlyOnce => { let _ = PubRec::new(p.pkid).write(&mut w); }
                                }
                                self.on_command(&p.payload, t_us, &mut w);
                            }
                            Ok(Packet::SubAck(_)) => {
                                if !subscribed {
                                    subscribed = true;
                                    inc(&sh.ctl.c.subscribed);
                                    permit = None;
                                }
                            }
                            Ok(Packet::PubRel(r)) => { let _ = PubComp::new(r.pkid).write(&mut w); }
                            Ok(_) => {}
                            Err(CodecError::InsufficientBytes(_)) => break,
                            Err(_) => break 'session End::Lost,
                        }
                    }
                    if buf.is_empty() {
                        buf = BytesMut::new();
                    }
                    answering = true;
                }
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= next_hb {
                        self.heartbeat(&mut w);
                        next_hb = now + between(hb * 9 / 10, hb * 11 / 10);
                    }
                    let outs = self.player.tick(now_ms());
                    self.emit(outs, &mut w);
                    if next_offline.is_some_and(|t| now >= t) {
                        let d = between(cfg.offline_duration.0, cfg.offline_duration.1);
                        // Half go away cleanly, half just vanish (the will tells).
                        if rand::thread_rng().gen_bool(0.5) {
                            self.publish(&mut w, "status", status_json(false), QoS::AtLeastOnce);
                            let _ = Disconnect.write(&mut w);
                            let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&w)).await;
                        }
                        break End::Offline(d);
                    }
                    if w.is_empty() && ping_at.is_some_and(|p| now >= p) {
                        let _ = PingReq.write(&mut w);
                    }
                }
            }
        };
        drop(permit);
        if subscribed {
            sh.ctl.c.subscribed.fetch_sub(1, Relaxed);
        }
        end
    }

    fn heartbeat(&mut self, w: &mut BytesMut) {
        let playing = self.player.playing().map(str::to_string);
        let hb = Heartbeat {
            v: VERSION,
            ts: now_ms(),
            state: if playing.is_some() { TerminalState::Playing } else { TerminalState::Idle },
            volume: self.player.volume(),
            task: playing,
            faults: Vec::new(),
        };
        if let Ok(json) = serde_json::to_vec(&hb) {
            inc(&self.sh.ctl.c.heartbeats_sent);
            self.publish(w, "hb", json, QoS::AtMostOnce);
        }
    }

    fn on_command(&mut self, payload: &[u8], t_us: i64, w: &mut BytesMut) {
        let c = &self.sh.ctl.c;
        let now = now_ms();
        let cmd = match serde_json::from_slice::<Command>(payload) {
            Ok(cmd) => cmd,
            Err(_) => {
                inc(&c.bad_commands);
                return;
            }
        };
        let outs = match cmd {
            Command::Play(p) => {
                if self.seen.iter().any(|s| **s == *p.id) {
                    inc(&c.duplicates);
                    return;
                }
                if self.seen.len() >= SEEN_MAX {
                    self.seen.pop_front();
                }
                self.seen.push_back(p.id.as_str().into());
                inc(&c.plays_received);
                if self.sh.cfg.record_receive_times {
                    let mut r = self.sh.received.lock();
                    match r.get_mut(&p.id) {
                        Some(e) => e.1.push(t_us),
                        None => {
                            r.insert(p.id.clone(), (p.start, vec![t_us]));
                        }
                    }
                }
                if now > p.end {
                    inc(&c.expired);
                    return;
                }
                let (lo, hi) = self.sh.cfg.start_delay;
                let delay = between(lo, hi).as_millis() as i64;
                let mut outs = self.player.on_play(p, now, delay);
                // A zero delay starts at once rather than on the next timer turn.
                outs.extend(self.player.tick(now));
                outs
            }
            Command::Cancel { id, .. } => self.player.on_cancel(&id, now),
            Command::Stop { .. } => self.player.on_stop(now),
            Command::Volume { volume, .. } => {
                self.player.set_volume(volume);
                Vec::new()
            }
            Command::Time { .. } => Vec::new(),
        };
        self.emit(outs, w);
    }
}
