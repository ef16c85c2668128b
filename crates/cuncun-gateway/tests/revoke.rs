//! The one invalidation rule on the embedded gateway: a device retired or re-keyed on the
//! platform (`DeviceAuth::device_changed`, as the device pages call it after the store's write)
//! loses its live connection at once. Gateway nodes: backbone.rs.

use bytes::Bytes;
use cuncun_domain::protocol;
use cuncun_gateway::{
    Bus, BusEvent, DeviceAuth, EmbeddedGateway, GatewayConfig, ebrid_region12, hash_secret, start_embedded_gateway,
};
use rumqttc::ConnectReturnCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

mod common;
use common::*;

/// How soon a revoked device must be off.
const AT_ONCE: Duration = Duration::from_secs(1);

async fn start() -> (Arc<DeviceAuth>, Arc<EmbeddedGateway>, mpsc::Receiver<BusEvent>, SocketAddr) {
    let auth = Arc::new(DeviceAuth::default());
    for id in [A1, A2, B1] {
        auth.insert(id, SECRET, ebrid_region12(id).expect("id"));
    }
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (gw, events) = start_embedded_gateway(vec![l], GatewayConfig::default(), auth.clone()).await.expect("start");
    let addr = gw.local_addrs()[0];
    (auth, gw, events, addr)
}

/// Waits for `c`'s connection to end and says how long that took.
async fn cut(c: &mut Client) -> Duration {
    let t0 = Instant::now();
    c.disconnected().await;
    t0.elapsed()
}

/// `c` is still connected after `d` and still receives its own commands.
async fn still_served(gw: &EmbeddedGateway, c: &mut Client, id: &str) {
    let r = tokio::time::timeout(Duration::from_millis(300), c.disconnected()).await;
    assert!(r.is_err(), "{id} was disconnected");
    let n = gw.publish(&protocol::terminal_cmd_topic(id), Bytes::from_static(b"{}")).await.expect("publish");
    assert_eq!(n, Some(1));
    assert_eq!(c.publish_received().await.0, protocol::terminal_cmd_topic(id));
}

#[tokio::test]
async fn a_retired_device_is_disconnected_at_once() {
    let (auth, gw, mut events, addr) = start().await;
    let mut a1 = terminal(addr, A1).await;
    let mut b1 = terminal(addr, B1).await;
    next_event(&mut events, "A1 online", |e| *e == BusEvent::Online { id: A1.into() }).await;

    auth.device_changed(A1, None);
    let took = cut(&mut a1).await;
    assert!(took < AT_ONCE, "a retired device was disconnected after {took:?}");
    next_event(&mut events, "A1 offline", |e| *e == BusEvent::Offline { id: A1.into() }).await;
    assert_eq!(gw.is_online(A1), Some(false));
    let mut again = spawn_client(options(addr, A1, A1, SECRET));
    assert_eq!(again.connack().await, Err(ConnectReturnCode::BadUserNamePassword));

    // Nobody else is touched, and retiring an unknown device disconnects nobody.
    auth.device_changed("45002361002010314999999", None);
    still_served(&gw, &mut b1, B1).await;
}

#[tokio::test]
async fn a_rekeyed_device_is_disconnected_at_once_and_comes_back_with_its_new_secret() {
    let (auth, gw, _events, addr) = start().await;
    let mut a2 = terminal(addr, A2).await;
    let mut b1 = terminal(addr, B1).await;
    let region = ebrid_region12(A2).expect("id");

    auth.device_changed(A2, Some((&hash_secret("new secret"), region)));
    let took = cut(&mut a2).await;
    assert!(took < AT_ONCE, "a re-keyed device was disconnected after {took:?}");
    let mut old = spawn_client(options(addr, A2, A2, SECRET));
    assert_eq!(old.connack().await, Err(ConnectReturnCode::BadUserNamePassword));
    let mut new = spawn_client(options(addr, A2, A2, "new secret"));
    assert_eq!(new.connack().await, Ok(()));

    // The same credential written again (a reload that changed nothing) disconnects nobody.
    auth.device_changed(B1, Some((&hash_secret(SECRET), ebrid_region12(B1).expect("id"))));
    still_served(&gw, &mut b1, B1).await;
    assert_eq!(gw.is_online(A2), Some(true));
}
