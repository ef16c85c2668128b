//! The emergency broadcast service. It feeds the device authenticator (`DeviceAuth`, the
//! in-memory copy of the devices' credentials), works off the dispatch outbox (so an approved
//! message goes out even if the process died after approving it), publishes each message once
//! per target region topic at QoS 0, and proves delivery by per-terminal receipts: terminals that
//! have not receipted are re-sent the message on their own topic, and every terminal that
//! reconnects gets the still-valid messages it missed. Device reports (status, heartbeats,
//! receipts, logs) are parsed and checked one by one, written to storage in bounded batches, and
//! quarantined when refused (see `ingest`).

mod auth;
mod ingest;
mod service;

pub use auth::new_secret;
pub use cuncun_gateway::{DeviceAuth, hash_secret};
pub use ingest::write_unchecked;
pub use service::{EbConfig, EbHandle, EbStats, EbWorker, EbWorkers, play_of, prepare, start};
