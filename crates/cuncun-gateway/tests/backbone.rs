//! Scale-out: gateway nodes linked to a hub over the backbone, seen from standard MQTT clients.

use bytes::Bytes;
use cuncun_domain::protocol;
use cuncun_gateway::{
    Bus, BusEvent, Credential, CredentialChange, CredentialSource, DeviceAuth, GatewayConfig, Hub, HubConfig, Node,
    NodeConfig, hash_secret, sha256, start_hub, start_node,
};
use parking_lot::Mutex;
use rumqttc::{ConnectReturnCode, QoS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

mod common;
use common::*;

/// Credentials as the platform would hold them, with change notices.
struct Creds {
    all: Mutex<Vec<Credential>>,
    tx: broadcast::Sender<CredentialChange>,
}

impl Creds {
    fn new(ids: &[&str]) -> Arc<Self> {
        let all = ids.iter().map(|id| cred(id)).collect();
        Arc::new(Creds { all: Mutex::new(all), tx: broadcast::channel(64).0 })
    }
    fn set(&self, id: &str) {
        self.all.lock().push(cred(id));
        let _ = self.tx.send(CredentialChange::Set(cred(id)));
    }
    fn remove(&self, id: &str) {
        self.all.lock().retain(|c| c.id != id);
        let _ = self.tx.send(CredentialChange::Remove(id.to_string()));
    }
}

fn cred(id: &str) -> Credential {
    Credential {
        id: id.to_string(),
        secret_sha256: sha256(SECRET.as_bytes()),
        region12: cuncun_gateway::ebrid_region12(id).expect("id").to_string(),
    }
}

impl CredentialSource for Creds {
    fn snapshot(&self) -> Vec<Credential> {
        self.all.lock().clone()
    }
    fn subscribe(&self) -> broadcast::Receiver<CredentialChange> {
        self.tx.subscribe()
    }
}

async fn hub(creds: Arc<Creds>) -> (Arc<Hub>, mpsc::Receiver<BusEvent>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    start_hub(l, HubConfig { secret: "backbone-secret".into(), ..Default::default() }, creds, None)
        .await
        .expect("hub")
}

async fn node(hub: &Hub, name: &str, secret: &str) -> (Node, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let n = start_node(
        vec![l],
        NodeConfig {
            backbone: hub.backbone_addr().to_string(),
            secret: secret.into(),
            name: name.into(),
            gateway: GatewayConfig::default(),
        },
    )
    .await
    .expect("node");
    let addr = n.gateway.local_addrs()[0];
    (n, addr)
}

async fn linked(n: &Node) {
    let deadline = tokio::time::Instant::now() + T;
    while !n.linked() {
        assert!(tokio::time::Instant::now() < deadline, "node did not link");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn event(rx: &mut mpsc::Receiver<BusEvent>, want: BusEvent) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if e == want => return,
            Ok(Some(_)) => {}
            other => panic!("waiting for {want:?}: {other:?}"),
        }
    }
}

/// Connected (after the node has its credentials: a refusal before that is retried).
async fn terminal_on(addr: SocketAddr, id: &str) -> Client {
    for _ in 0..50 {
        let mut c = spawn_client(options(addr, id, id, SECRET));
        if c.connack().await.is_ok() {
            c.task.abort();
            return terminal(addr, id).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{id} could not connect to {addr}");
}

#[tokio::test]
async fn nodes_carry_terminals_for_the_hub() {
    let creds = Creds::new(&[A1, A2, B1]);
    let (hub, mut ev) = hub(creds.clone()).await;
    let (n1, a1) = node(&hub, "n1", "backbone-secret").await;
    let (n2, a2) = node(&hub, "n2", "backbone-secret").await;
    linked(&n1).await;
    linked(&n2).await;

    let mut t_a1 = terminal_on(a1, A1).await;
    event(&mut ev, BusEvent::Online { id: A1.into() }).await;
    let mut t_b1 = terminal_on(a2, B1).await;
    event(&mut ev, BusEvent::Online { id: B1.into() }).await;
    assert_eq!(hub.is_online(A1), Some(true));

    // A region both terminals are in reaches both, through two nodes.
    let common_region = &protocol::region_chain_topics(cuncun_gateway::ebrid_region12(A1).expect("id"))[0];
    assert!(protocol::region_chain_topics(cuncun_gateway::ebrid_region12(B1).expect("id")).contains(common_region));
    hub.publish(common_region, Bytes::from_static(b"all")).await.expect("publish");
    assert_eq!(t_a1.publish_received().await.1, Bytes::from_static(b"all"));
    assert_eq!(t_b1.publish_received().await.1, Bytes::from_static(b"all"));

    // A command for one terminal goes to its node only, and reaches it alone.
    let n = hub.publish(&protocol::terminal_cmd_topic(B1), Bytes::from_static(b"b only")).await.expect("publish");
    assert_eq!(n, Some(1));
    assert_eq!(t_b1.publish_received().await.1, Bytes::from_static(b"b only"));
    assert!(t_a1.nothing_published_for(Duration::from_millis(300)).await);

    // Upward messages come through with the terminal's id.
    t_a1.client.publish(protocol::up_topic(A1, "rcpt"), QoS::AtMostOnce, false, "r").await.expect("pub");
    event(&mut ev, BusEvent::Up { id: A1.into(), kind: "rcpt".into(), payload: Bytes::from_static(b"r") }).await;

    // The nodes' counters add up at the hub (they report every 5 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    while hub.stats().connects_total < 2 {
        assert!(tokio::time::Instant::now() < deadline, "node stats never reached the hub");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hub.nodes().len(), 2);

    // A terminal that moves to another node stays online when the old connection ends.
    let t_a2_old = terminal_on(a1, A2).await;
    event(&mut ev, BusEvent::Online { id: A2.into() }).await;
    let _t_a2_new = terminal_on(a2, A2).await;
    event(&mut ev, BusEvent::Online { id: A2.into() }).await;
    t_a2_old.task.abort();
    drop(t_a2_old);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.is_online(A2), Some(true), "the old node's offline must not win");

    // A node that goes away takes its terminals offline at the hub.
    drop(n2);
    event(&mut ev, BusEvent::Offline { id: B1.into() }).await;
    assert_eq!(hub.is_online(B1), Some(false));
    drop(n1);
}

#[tokio::test]
async fn credentials_follow_the_platform_and_strangers_are_refused() {
    const NEW: &str = "45002361002010314000099";
    let creds = Creds::new(&[A1]);
    let (hub, mut ev) = hub(creds.clone()).await;

    // A node without the backbone secret is refused and never links.
    let (bad, _) = node(&hub, "intruder", "guess").await;
    let deadline = tokio::time::Instant::now() + T;
    while hub.links_refused() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the intruder was not refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!bad.linked());
    assert!(hub.nodes().is_empty());

    let (n, addr) = node(&hub, "n1", "backbone-secret").await;
    linked(&n).await;
    let _a1 = terminal_on(addr, A1).await;
    event(&mut ev, BusEvent::Online { id: A1.into() }).await;

    // Not yet registered: refused; registered on the platform: accepted; retired: refused again.
    let mut c = spawn_client(options(addr, NEW, NEW, SECRET));
    assert_eq!(c.connack().await, Err(ConnectReturnCode::BadUserNamePassword));
    creds.set(NEW);
    let t = terminal_on(addr, NEW).await;
    event(&mut ev, BusEvent::Online { id: NEW.into() }).await;
    t.task.abort();
    creds.remove(NEW);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = spawn_client(options(addr, NEW, NEW, SECRET));
    assert_eq!(c.connack().await, Err(ConnectReturnCode::BadUserNamePassword));
    // A wrong secret is refused at the node too.
    let mut c = spawn_client(options(addr, A1, A1, "wrong"));
    assert_eq!(c.connack().await, Err(ConnectReturnCode::BadUserNamePassword));
    assert!(n.gateway.stats().refused_auth >= 3);
}

#[tokio::test]
async fn a_node_relinks_and_says_who_is_connected() {
    let creds = Creds::new(&[A1]);
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let backbone = l.local_addr().expect("addr");
    let cfg = || HubConfig { secret: "s".into(), ..Default::default() };
    let (h1, mut ev1) = start_hub(l, cfg(), creds.clone(), None).await.expect("hub");
    let n = start_node(
        vec![TcpListener::bind("127.0.0.1:0").await.expect("bind")],
        NodeConfig { backbone: backbone.to_string(), secret: "s".into(), name: "n".into(), gateway: GatewayConfig::default() },
    )
    .await
    .expect("node");
    linked(&n).await;
    let addr = n.gateway.local_addrs()[0];
    let t = terminal_on(addr, A1).await;
    event(&mut ev1, BusEvent::Online { id: A1.into() }).await;

    // The platform restarts: the terminal stays connected to its node, which tells the new hub.
    drop(h1);
    drop(ev1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let l = TcpListener::bind(backbone).await.expect("rebind the backbone port");
    let (h2, mut ev2) = start_hub(l, cfg(), creds, None).await.expect("hub again");
    event(&mut ev2, BusEvent::Online { id: A1.into() }).await;
    assert_eq!(h2.is_online(A1), Some(true));
    // And what the terminal sends while linked again comes through.
    t.client.publish(protocol::up_topic(A1, "hb"), QoS::AtMostOnce, false, "hb").await.expect("pub");
    event(&mut ev2, BusEvent::Up { id: A1.into(), kind: "hb".into(), payload: Bytes::from_static(b"hb") }).await;
}

/// The invalidation rule across processes: the platform's `DeviceAuth` is the hub's credential
/// source; a device retired or re-keyed there is disconnected from the node holding it at once.
#[tokio::test]
async fn retired_or_rekeyed_devices_are_disconnected_from_nodes_at_once() {
    let auth = Arc::new(DeviceAuth::default());
    for id in [A1, A2, B1] {
        auth.insert(id, SECRET, cuncun_gateway::ebrid_region12(id).expect("id"));
    }
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let cfg = HubConfig { secret: "backbone-secret".into(), ..Default::default() };
    let (hub, _ev) = start_hub(l, cfg, auth.clone(), None).await.expect("hub");
    let (n, addr) = node(&hub, "n1", "backbone-secret").await;
    linked(&n).await;
    let mut a1 = terminal_on(addr, A1).await;
    let mut a2 = terminal_on(addr, A2).await;
    let mut b1 = terminal_on(addr, B1).await;

    let t0 = tokio::time::Instant::now();
    auth.device_changed(A1, None);
    a1.disconnected().await;
    assert!(t0.elapsed() < Duration::from_secs(1), "retired: disconnected after {:?}", t0.elapsed());

    let region = cuncun_gateway::ebrid_region12(A2).expect("id");
    let t0 = tokio::time::Instant::now();
    auth.device_changed(A2, Some((&hash_secret("new secret"), region)));
    a2.disconnected().await;
    assert!(t0.elapsed() < Duration::from_secs(1), "re-keyed: disconnected after {:?}", t0.elapsed());
    let mut old = spawn_client(options(addr, A2, A2, SECRET));
    assert_eq!(old.connack().await, Err(ConnectReturnCode::BadUserNamePassword));
    let mut new = spawn_client(options(addr, A2, A2, "new secret"));
    assert_eq!(new.connack().await, Ok(()));
    let mut gone = spawn_client(options(addr, A1, A1, SECRET));
    assert_eq!(gone.connack().await, Err(ConnectReturnCode::BadUserNamePassword));

    // The others stay.
    assert!(tokio::time::timeout(Duration::from_millis(300), b1.disconnected()).await.is_err(), "B1 was disconnected");
    assert_eq!(n.gateway.stats().connected, 2);
}
