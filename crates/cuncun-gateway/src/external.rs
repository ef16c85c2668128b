//! [`Bus`] over an external MQTT broker, with rumqttc as the platform's client. The platform
//! subscribes to every terminal's upward topics and publishes downward at QoS 0; presence comes
//! from `status` messages (terminals send `online: true` after connecting, their will `false`).

use crate::{Bus, BusEvent, GatewayStats};
use bytes::Bytes;
use cuncun_domain::protocol;
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Every terminal's upward topics.
pub const UP_FILTER: &str = "eb/v1/t/+/+";

/// `mqtt://host:port` (or `tcp://`, or a bare `host:port`; port 1883 by default).
pub fn parse_mqtt_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.strip_prefix("mqtt://").or_else(|| url.strip_prefix("tcp://")).unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    anyhow::ensure!(!rest.is_empty() && !rest.contains(['/', '@', '?']), "unsupported MQTT URL {url:?}: expected mqtt://host:port");
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => {
            let port = p.parse::<u16>().map_err(|_| anyhow::anyhow!("bad port in MQTT URL {url:?}"))?;
            (h, port)
        }
        _ => (rest, 1883),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    anyhow::ensure!(!host.is_empty(), "no host in MQTT URL {url:?}");
    Ok((host.to_string(), port))
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    connects_total: AtomicU64,
    published: AtomicU64,
    bytes_out: AtomicU64,
    up_messages: AtomicU64,
}

pub struct ExternalBus {
    client: AsyncClient,
    c: Arc<Counters>,
    task: tokio::task::AbortHandle,
}

impl Drop for ExternalBus {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl Bus for ExternalBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> anyhow::Result<Option<usize>> {
        let n = payload.len();
        self.client.publish_bytes(topic, QoS::AtMostOnce, false, payload).await?;
        self.c.published.fetch_add(1, Relaxed);
        self.c.bytes_out.fetch_add(n as u64, Relaxed);
        Ok(None)
    }

    fn is_online(&self, _id: &str) -> Option<bool> {
        None
    }

    fn stats(&self) -> GatewayStats {
        GatewayStats {
            connected: u64::from(self.c.connected.load(Relaxed)),
            connects_total: self.c.connects_total.load(Relaxed),
            published: self.c.published.load(Relaxed),
            bytes_out: self.c.bytes_out.load(Relaxed),
            up_messages: self.c.up_messages.load(Relaxed),
            ..GatewayStats::default()
        }
    }
}

/// What an upward message means to the platform; None for topics that are not upward.
fn translate(topic: &str, payload: Bytes) -> Option<BusEvent> {
    let (id, kind) = protocol::parse_up_topic(topic)?;
    let id = id.to_string();
    if kind == "status"
        && let Ok(s) = serde_json::from_slice::<protocol::Status>(&payload)
    {
        return Some(if s.online { BusEvent::Online { id } } else { BusEvent::Offline { id } });
    }
    Some(BusEvent::Up { id, kind: kind.to_string(), payload })
}

/// Connects to the broker at `url` and subscribes to the terminals' upward topics. Returns once
/// subscribed (so nothing published afterwards is missed), or fails after 10 s of trying. After
/// that it reconnects by itself, every second, and subscribes again.
pub async fn connect_external(
    url: &str,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> anyhow::Result<(Arc<dyn Bus>, mpsc::Receiver<BusEvent>)> {
    let (bus, rx) = connect_external_bus(url, client_id, username, password).await?;
    Ok((bus, rx))
}

/// [`connect_external`] with the concrete type.
pub async fn connect_external_bus(
    url: &str,
    client_id: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> anyhow::Result<(Arc<ExternalBus>, mpsc::Receiver<BusEvent>)> {
    let (host, port) = parse_mqtt_url(url)?;
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    if let Some(u) = username {
        opts.set_credentials(u, password.unwrap_or(""));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 4096);
    let (tx, rx) = mpsc::channel(65_536);
    let (ready_tx, ready_rx) = oneshot::channel::<()>();
    let c = Arc::new(Counters::default());
    let (task_client, task_c) = (client.clone(), c.clone());
    let url_owned = url.to_string();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut last_err: Option<String> = None;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    task_c.connected.store(true, Relaxed);
                    task_c.connects_total.fetch_add(1, Relaxed);
                    // QoS 0: a broker holds few QoS 1 messages per subscriber (Mosquitto by default 20
                    // in flight + 1,000 queued) and drops the rest; measured, it lost 6,112 of
                    // 10,000 presence messages of a connect wave. QoS 0 to a connected subscriber is
                    // written straight out, limited only by TCP.
                    if let Err(e) = task_client.try_subscribe(UP_FILTER, QoS::AtMostOnce) {
                        tracing::warn!(error = %e, "cannot queue the subscription to terminals' topics");
                    }
                    if last_err.take().is_some() {
                        tracing::info!(url = %url_owned, "reconnected to the MQTT broker");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // None: the platform's own `cmd` messages, which the wildcard also matches.
                    if let Some(ev) = translate(&p.topic, p.payload) {
                        // `online: true` is also the terminal saying it has subscribed (the
                        // protocol's order): its catch-up starts from it.
                        let ready = match &ev {
                            BusEvent::Online { id } => Some(BusEvent::Ready { id: id.clone() }),
                            _ => None,
                        };
                        // An error means nobody listens any more; the bus still publishes.
                        let _ = tx.send(ev).await;
                        if let Some(r) = ready {
                            let _ = tx.send(r).await;
                        }
                        task_c.up_messages.fetch_add(1, Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    task_c.connected.store(false, Relaxed);
                    let msg = e.to_string();
                    if last_err.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(url = %url_owned, error = %msg, "MQTT broker connection failed; retrying every second");
                    }
                    last_err = Some(msg);
                    if matches!(e, ConnectionError::RequestsDone) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
    .abort_handle();
    let bus = Arc::new(ExternalBus { client, c, task });
    match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
        Ok(Ok(())) => Ok((bus, rx)),
        _ => anyhow::bail!("cannot connect and subscribe to the MQTT broker at {url} within 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_mqtt_url("mqtt://127.0.0.1:1883").ok(), Some(("127.0.0.1".into(), 1883)));
        assert_eq!(parse_mqtt_url("tcp://broker").ok(), Some(("broker".into(), 1883)));
        assert_eq!(parse_mqtt_url("localhost:1884/").ok(), Some(("localhost".into(), 1884)));
        assert!(parse_mqtt_url("mqtt://h:notaport").is_err());
        assert!(parse_mqtt_url("mqtt://").is_err());
        assert!(parse_mqtt_url("mqtt://user@h:1").is_err());
    }

    #[test]
    fn translation() {
        let on = translate("eb/v1/t/x/status", Bytes::from_static(br#"{"v":1,"online":true}"#));
        assert_eq!(on, Some(BusEvent::Online { id: "x".into() }));
        let off = translate("eb/v1/t/x/status", Bytes::from_static(br#"{"v":1,"online":false}"#));
        assert_eq!(off, Some(BusEvent::Offline { id: "x".into() }));
        let odd = translate("eb/v1/t/x/status", Bytes::from_static(b"garbage"));
        assert!(matches!(odd, Some(BusEvent::Up { ref kind, .. }) if kind == "status"));
        assert!(matches!(translate("eb/v1/t/x/rcpt", Bytes::new()), Some(BusEvent::Up { .. })));
        assert_eq!(translate("eb/v1/t/x/cmd", Bytes::new()), None);
    }
}
