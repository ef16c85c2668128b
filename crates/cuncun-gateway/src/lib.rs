//! The terminals' side of delivery: a lean MQTT 3.1.1 gateway of our own (embedded in the platform's
//! process) and the [`Bus`] the platform talks to, backed either by that gateway or by an external
//! broker (Mosquitto, EMQX...) through an MQTT client.
//!
//! Packets are encoded and decoded with `rumqttc::mqttbytes::v4`; the gateway only adds what a
//! broker for terminals needs: authentication, per-terminal ACLs, and a fan-out that encodes a
//! message once and writes the same bytes to every subscriber's socket.

mod auth;
mod backbone;
mod codec;
mod embedded;
mod external;

pub use backbone::{
    Credential, CredentialChange, CredentialSource, Hub, HubConfig, Node, NodeConfig, NodeInfo, start_hub, start_node,
};
pub use auth::{DeviceAuth, RevocationListener, ebrid_region12, hash_secret, sha256};
pub use embedded::{EmbeddedGateway, KEEP_ALIVE_SECS, start_embedded, start_embedded_gateway};
pub use external::{ExternalBus, UP_FILTER, connect_external, connect_external_bus, parse_mqtt_url};

use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;

/// Decides who may connect. [`DeviceAuth`] is the one implementation: every broker path that
/// authenticates terminals (the platform's embedded gateway, gateway nodes) uses it.
pub trait Authenticator: Send + Sync + 'static {
    /// Called on CONNECT; must be fast (an in-memory lookup; the platform keeps a map of terminal id
    /// -> SHA-256 of its secret). Return the terminal's 12-digit region code when accepted.
    fn authenticate(&self, client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Option<String>;
    /// Registers a gateway holding connections: from now on it is told the id of every device
    /// whose credential is removed or replaced, and must close that device's connection at once.
    /// Gateways call it when they start; the authenticator keeps only the weak reference.
    fn watch(&self, listener: std::sync::Weak<dyn RevocationListener>);
}

/// What terminals do, as the platform sees it.
///
/// Presence comes only as `Online`/`Offline`: a `status` message that parses as
/// [`cuncun_domain::protocol::Status`] is turned into one of them (external broker) or, since
/// the connection itself already says it (embedded), only its `online: true` into `Ready`; it is
/// never an `Up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    Online { id: String },
    Offline { id: String },
    /// The terminal published `{"online":true}`, which the protocol has it do once subscribed: it
    /// can hear commands now, so its catch-up starts. Through an external broker it follows
    /// the `Online` the same message gives.
    Ready { id: String },
    /// `kind` is one of `status|hb|rcpt|log` (see `protocol::UP_KINDS`); the payload is as sent.
    Up { id: String, kind: String, payload: Bytes },
}

/// The platform's handle on delivery, whatever carries it.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publish at QoS 0 to every subscriber of exactly this topic (no wildcards needed for downward
    /// topics). Returns how many subscribers it was written to when known (embedded), else None.
    async fn publish(&self, topic: &str, payload: Bytes) -> anyhow::Result<Option<usize>>;
    /// Whether a terminal is connected: the embedded gateway knows; an external broker returns None.
    fn is_online(&self, id: &str) -> Option<bool>;
    fn stats(&self) -> GatewayStats;
}

/// Counters since start. For an external broker only the publisher's side is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GatewayStats {
    /// Terminals connected now (external: 1 while the platform's client is connected).
    pub connected: u64,
    /// Successful CONNECTs (external: the platform client's own connections).
    pub connects_total: u64,
    /// CONNECTs refused for bad credentials or a client id that is not the username.
    pub refused_auth: u64,
    /// Connections refused because `max_connections` was reached.
    pub refused_capacity: u64,
    /// Connections closed for a malformed or out-of-place packet.
    pub malformed: u64,
    /// SUBSCRIBE filters refused and PUBLISHes dropped by the ACL.
    pub acl_denied: u64,
    /// `publish()` calls.
    pub published: u64,
    /// Messages written or queued to subscribers by `publish()`.
    pub delivered: u64,
    /// Bytes of fanned-out PUBLISH packets written or queued to terminals.
    pub bytes_out: u64,
    /// Connections closed because their outgoing queue was full.
    pub dropped_slow: u64,
    /// Connections closed because no packet came within 1.5x the keepalive.
    pub keepalive_timeouts: u64,
    /// CONNECTs refused (CONNACK 2) for a keep-alive outside 1-120 s or clean session false.
    #[serde(default)]
    pub refused_session: u64,
    /// A second connection with the same id replaced the first.
    pub takeovers: u64,
    /// Accept failures (EMFILE/ENFILE and others); the accept loop backs off and goes on.
    pub accept_errors: u64,
    /// Upward messages accepted from terminals (and forwarded as events unless they were presence).
    pub up_messages: u64,
}

impl GatewayStats {
    /// Adds another gateway's counters (a hub sums its nodes').
    pub fn add(&mut self, o: &GatewayStats) {
        self.connected += o.connected;
        self.connects_total += o.connects_total;
        self.refused_auth += o.refused_auth;
        self.refused_capacity += o.refused_capacity;
        self.malformed += o.malformed;
        self.acl_denied += o.acl_denied;
        self.published += o.published;
        self.delivered += o.delivered;
        self.bytes_out += o.bytes_out;
        self.dropped_slow += o.dropped_slow;
        self.keepalive_timeouts += o.keepalive_timeouts;
        self.refused_session += o.refused_session;
        self.takeovers += o.takeovers;
        self.accept_errors += o.accept_errors;
        self.up_messages += o.up_messages;
    }
}

/// Settings of the embedded gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Terminals connected at once; more get CONNACK "server unavailable". The process's
    /// open-files limit must leave room above this (20,000 here, hence 19,000).
    pub max_connections: usize,
    /// Sockets accepted but not yet through CONNECT allowed above `max_connections`, so that
    /// refusals can still be answered politely; beyond it a new socket is closed at once.
    pub handshake_slack: usize,
    /// Largest packet accepted from a terminal (remaining length), bytes; a larger one closes
    /// the connection (docs/TERMINAL_PROTOCOL.md, "Transport and identity").
    pub max_packet: usize,
    /// Packets that may wait for a slow terminal's socket; one more closes it.
    pub slow_queue: usize,
    /// Time a new socket has to send CONNECT.
    pub connect_timeout: Duration,
    /// Capacity of the event channel handed back by `start_embedded`.
    pub event_queue: usize,
    /// Fan-outs to more subscribers than this run on blocking threads, not on the caller's task.
    pub inline_fanout_max: usize,
    /// Threads a large fan-out is split over.
    pub fanout_threads: usize,
    /// Pause of the accept loop after EMFILE/ENFILE (connected terminals keep being served).
    pub accept_backoff: Duration,
    /// While a large fan-out runs, connections defer reading what terminals send (receipts,
    /// heartbeats) until it ends, so the cores go to delivering the alert first.
    pub reads_yield_to_fanout: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_connections: 19_000,
            handshake_slack: 512,
            max_packet: 64 * 1024,
            slow_queue: 256,
            connect_timeout: Duration::from_secs(10),
            event_queue: 65_536,
            inline_fanout_max: 64,
            fanout_threads: 1,
            accept_backoff: Duration::from_millis(100),
            reads_yield_to_fanout: true,
        }
    }
}
