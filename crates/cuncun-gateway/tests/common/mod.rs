//! MQTT client helpers shared by the gateway tests.
#![allow(dead_code)]

use bytes::Bytes;
use cuncun_domain::protocol;
use cuncun_gateway::BusEvent;
use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

pub const A1: &str = "45002361002010314000001";
pub const A2: &str = "45002361002010314000002";
pub const B1: &str = "45002361002020314000003";
pub const SECRET: &str = "correct horse";
pub const T: Duration = Duration::from_secs(5);

/// A rumqttc client whose event loop runs in a task, forwarding everything; it stops at the first
/// error instead of reconnecting (a reconnect would take a session back during takeover tests).
pub struct Client {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Result<Event, ConnectionError>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn options(addr: SocketAddr, id: &str, user: &str, secret: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_credentials(user, secret);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

pub fn spawn_client(o: MqttOptions) -> Client {
    let (client, mut el) = AsyncClient::new(o, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let r = el.poll().await;
            let stop = r.is_err();
            if tx.send(r).is_err() || stop {
                return;
            }
        }
    });
    Client { client, rx, task }
}

impl Client {
    /// The next event matching `f`, within T.
    pub async fn wait<R>(&mut self, what: &str, mut f: impl FnMut(&Result<Event, ConnectionError>) -> Option<R>) -> R {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => {
                    if let Some(r) = f(&e) {
                        return r;
                    }
                }
                Ok(None) => panic!("client stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    pub async fn connack(&mut self) -> Result<(), ConnectReturnCode> {
        self.wait("CONNACK", |e| match e {
            Ok(Event::Incoming(Packet::ConnAck(a))) => Some(Ok(())).filter(|_| a.code == ConnectReturnCode::Success),
            Err(ConnectionError::ConnectionRefused(code)) => Some(Err(*code)),
            _ => None,
        })
        .await
    }

    pub async fn suback(&mut self) -> Vec<bool> {
        self.wait("SUBACK", |e| match e {
            Ok(Event::Incoming(Packet::SubAck(s))) => Some(
                s.return_codes.iter().map(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))).collect(),
            ),
            _ => None,
        })
        .await
    }

    pub async fn publish_received(&mut self) -> (String, Bytes) {
        self.wait("PUBLISH", |e| match e {
            Ok(Event::Incoming(Packet::Publish(p))) => Some((p.topic.clone(), p.payload.clone())),
            _ => None,
        })
        .await
    }

    /// True when no PUBLISH arrives within `d`.
    pub async fn nothing_published_for(&mut self, d: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Ok(Event::Incoming(Packet::Publish(_))))) => return false,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return true,
            }
        }
    }

    pub async fn disconnected(&mut self) {
        self.wait("the connection to end", |e| e.is_err().then_some(())).await
    }
}

/// Connected and subscribed to its own topic and region chain.
pub async fn terminal(addr: SocketAddr, id: &str) -> Client {
    let mut c = spawn_client(options(addr, id, id, SECRET));
    assert_eq!(c.connack().await, Ok(()), "{id} connects");
    let mut topics = vec![protocol::terminal_cmd_topic(id)];
    topics.extend(protocol::region_chain_topics(cuncun_gateway::ebrid_region12(id).expect("id")));
    let n = topics.len();
    c.client
        .subscribe_many(topics.into_iter().map(|t| SubscribeFilter::new(t, QoS::AtMostOnce)))
        .await
        .expect("subscribe");
    assert_eq!(c.suback().await, vec![true; n]);
    c
}

pub async fn next_event(rx: &mut mpsc::Receiver<BusEvent>, what: &str, mut f: impl FnMut(&BusEvent) -> bool) -> BusEvent {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("timed out waiting for event {what}"),
        }
    }
}

pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

