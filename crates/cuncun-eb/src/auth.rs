//! Device secrets. Authentication itself (the in-memory credential cache and its invalidation
//! rule) is `cuncun_gateway::DeviceAuth`, re-exported by this crate.

/// A new device secret: 128 random bits as 32 hex characters, shown once at registration; the
/// platform keeps only `hash_secret` of it.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
