//! The one device authenticator: an in-memory cache of terminal id -> SHA-256 of its secret and
//! its 12-digit region, so a reconnect storm costs no database queries.
//!
//! The platform fills it from its device table and tells it every change
//! ([`DeviceAuth::device_changed`]); a gateway node holds a copy that follows the platform's over
//! the backbone (snapshot, then every change). Whichever process holds it, one rule applies:
//! when a device's credential is removed (retired) or replaced (re-keyed), the cache entry changes
//! and every gateway watching the cache closes that device's live connection at once.

use crate::{Authenticator, Credential, CredentialChange, CredentialSource};
use cuncun_domain::model::DeviceCredential;
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::broadcast;

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// What the platform stores of a device secret: the lowercase hex SHA-256. Secrets are 128-bit
/// random values, so a fast hash suffices (argon2 would make 5,000 connects/s impossible and
/// protects nothing a random secret lacks).
pub fn hash_secret(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sha256(secret.as_bytes()).iter().flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char]).collect()
}

/// The 32 bytes of a hex SHA-256 (either case); None if it is not one.
fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = hex.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut h = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        h[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(h)
}

/// The 12-digit region code inside a 23-digit terminal resource code (its digits 2..14).
pub fn ebrid_region12(id: &str) -> Option<&str> {
    if id.len() != 23 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.get(1..13)
}

/// Holds device connections and must drop a device's connection when told its credential was
/// revoked (see [`Authenticator::watch`]).
pub trait RevocationListener: Send + Sync + 'static {
    fn revoked(&self, id: &str);
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hash: [u8; 32],
    region12: String,
}

impl Entry {
    fn of(c: Credential) -> (String, Entry) {
        (c.id, Entry { hash: c.secret_sha256, region12: c.region12 })
    }
    fn from_stored(hash_hex: &str, region12: &str) -> Option<Entry> {
        Some(Entry { hash: parse_hash(hash_hex)?, region12: region12.to_string() })
    }
    fn credential(&self, id: &str) -> Credential {
        Credential { id: id.to_string(), secret_sha256: self.hash, region12: self.region12.clone() }
    }
}

/// Terminal id -> SHA-256 of its secret and its region, with the change broadcast gateway nodes
/// follow (it is the hub's [`CredentialSource`]) and the gateways to tell of revocations.
pub struct DeviceAuth {
    map: RwLock<HashMap<String, Entry>>,
    changes: broadcast::Sender<CredentialChange>,
    watchers: Mutex<Vec<Weak<dyn RevocationListener>>>,
}

impl Default for DeviceAuth {
    fn default() -> Self {
        DeviceAuth { map: RwLock::default(), changes: broadcast::channel(4096).0, watchers: Mutex::default() }
    }
}

impl DeviceAuth {
    /// A cache holding the platform's device credentials (as the store lists them).
    pub fn new(creds: Vec<DeviceCredential>) -> Self {
        let a = DeviceAuth::default();
        a.replace(creds);
        a
    }

    /// Replaces every entry with the store's list (a reload); devices that went or whose
    /// credential changed are disconnected.
    pub fn replace(&self, creds: Vec<DeviceCredential>) {
        let entries = creds
            .into_iter()
            .filter_map(|c| Some((c.ebrid, Entry::from_stored(&c.secret_hash, &c.region12)?)))
            .collect();
        self.replace_entries(entries);
    }

    /// THE invalidation rule, called after the store has written the change: `Some((secret hash
    /// as stored, region12))` for a device registered or re-keyed, `None` for one retired. A
    /// device whose credential is removed or replaced is disconnected at once from every gateway
    /// watching this cache, and gateway nodes get the change and do the same. A stored hash that
    /// is not a SHA-256 can match no secret and counts as a removal.
    pub fn device_changed(&self, id: &str, cred: Option<(&str, &str)>) {
        self.apply(id, cred.and_then(|(hash, region12)| Entry::from_stored(hash, region12)));
    }

    /// Adds a device by its secret (tests, simulators, benchmarks).
    pub fn insert(&self, id: &str, secret: &str, region12: &str) {
        self.apply(id, Some(Entry { hash: sha256(secret.as_bytes()), region12: region12.to_string() }));
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A gateway node's copy: one entry as the platform sent it.
    pub(crate) fn apply_credential(&self, c: Credential) {
        let (id, e) = Entry::of(c);
        self.apply(&id, Some(e));
    }

    /// A gateway node's copy: the platform's snapshot.
    pub(crate) fn replace_credentials(&self, creds: Vec<Credential>) {
        self.replace_entries(creds.into_iter().map(Entry::of).collect());
    }

    fn apply(&self, id: &str, new: Option<Entry>) {
        let old = {
            let mut m = self.map.write();
            match &new {
                Some(e) => m.insert(id.to_string(), e.clone()),
                None => m.remove(id),
            }
        };
        let change = match &new {
            Some(e) => CredentialChange::Set(e.credential(id)),
            None => CredentialChange::Remove(id.to_string()),
        };
        let _ = self.changes.send(change);
        if old.is_some() && old != new {
            self.revoke(&[id.to_string()]);
        }
    }

    fn replace_entries(&self, entries: HashMap<String, Entry>) {
        let gone: Vec<String> = {
            let mut m = self.map.write();
            let old = std::mem::replace(&mut *m, entries);
            old.into_iter().filter(|(id, e)| m.get(id) != Some(e)).map(|(id, _)| id).collect()
        };
        let _ = self.changes.send(CredentialChange::Reset);
        self.revoke(&gone);
    }

    /// Tells the watching gateways, after the map has changed and without holding its lock (a
    /// gateway authenticates under its own session lock, which the listeners take).
    fn revoke(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let listeners: Vec<Arc<dyn RevocationListener>> = {
            let mut w = self.watchers.lock();
            w.retain(|l| l.strong_count() > 0);
            w.iter().filter_map(Weak::upgrade).collect()
        };
        for l in &listeners {
            for id in ids {
                l.revoked(id);
            }
        }
    }
}

impl CredentialSource for DeviceAuth {
    fn snapshot(&self) -> Vec<Credential> {
        self.map.read().iter().map(|(id, e)| e.credential(id)).collect()
    }
    fn subscribe(&self) -> broadcast::Receiver<CredentialChange> {
        self.changes.subscribe()
    }
}

impl Authenticator for DeviceAuth {
    fn authenticate(&self, client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Option<String> {
        if client_id.is_empty() || username != Some(client_id) {
            return None;
        }
        let given = sha256(password?);
        let map = self.map.read();
        let e = map.get(client_id)?;
        // Compare without an early exit so timing does not tell how much of the hash matched.
        let diff = e.hash.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then(|| e.region12.clone())
    }

    fn watch(&self, listener: Weak<dyn RevocationListener>) {
        self.watchers.lock().push(listener);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "45002361002010314000001";
    const REGION: &str = "500236100201";

    #[derive(Default)]
    struct Kicked(Mutex<Vec<String>>);
    impl RevocationListener for Kicked {
        fn revoked(&self, id: &str) {
            self.0.lock().push(id.to_string());
        }
    }

    fn stored(id: &str, secret: &str) -> DeviceCredential {
        DeviceCredential { ebrid: id.into(), secret_hash: hash_secret(secret), region12: REGION.into() }
    }

    #[test]
    fn checks_id_username_and_secret() {
        let a = DeviceAuth::new(vec![stored(ID, "s3cret")]);
        assert_eq!(ebrid_region12(ID), Some(REGION));
        assert_eq!(ebrid_region12("123"), None);
        assert_eq!(a.authenticate(ID, Some(ID), Some(b"s3cret")).as_deref(), Some(REGION));
        assert_eq!(a.authenticate(ID, Some(ID), Some(b"wrong")), None);
        assert_eq!(a.authenticate(ID, Some("other"), Some(b"s3cret")), None, "username must be the id");
        assert_eq!(a.authenticate(ID, None, Some(b"s3cret")), None);
        assert_eq!(a.authenticate(ID, Some(ID), None), None);
        assert_eq!(a.authenticate("", Some(""), Some(b"s3cret")), None);
        assert_eq!(a.authenticate("45002361002010314000009", Some("45002361002010314000009"), Some(b"s3cret")), None);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        let h = hash_secret("abc");
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(parse_hash(&h), Some(sha256(b"abc")));
        assert_eq!(parse_hash(&h.to_uppercase()), Some(sha256(b"abc")));
        assert_eq!(parse_hash(&h[1..]), None);
        assert_eq!(parse_hash(&format!("{}g", &h[1..])), None);
        assert_eq!(parse_hash(""), None);
    }

    #[test]
    fn retiring_or_rekeying_revokes_and_nothing_else_does() {
        let a = DeviceAuth::new(vec![stored(ID, "one")]);
        let kicked = Arc::new(Kicked::default());
        a.watch(Arc::downgrade(&kicked) as Weak<dyn RevocationListener>);
        let mut changes = a.subscribe();
        let kicks = || kicked.0.lock().clone();

        // Registering a new device or setting the same credential again disconnects nobody.
        const NEW: &str = "45002361002010314000002";
        a.device_changed(NEW, Some((&hash_secret("two"), REGION)));
        a.device_changed(ID, Some((&hash_secret("one"), REGION)));
        assert!(kicks().is_empty());
        assert!(matches!(changes.try_recv(), Ok(CredentialChange::Set(c)) if c.id == NEW));
        assert!(matches!(changes.try_recv(), Ok(CredentialChange::Set(c)) if c.id == ID));

        // Re-keyed: the old secret no longer works and the device is disconnected.
        a.device_changed(ID, Some((&hash_secret("three"), REGION)));
        assert_eq!(kicks(), [ID]);
        assert_eq!(a.authenticate(ID, Some(ID), Some(b"one")), None);
        assert_eq!(a.authenticate(ID, Some(ID), Some(b"three")).as_deref(), Some(REGION));
        assert!(matches!(changes.try_recv(), Ok(CredentialChange::Set(c)) if c.secret_sha256 == sha256(b"three")));

        // Retired.
        a.device_changed(NEW, None);
        assert_eq!(kicks(), [ID, NEW]);
        assert_eq!(a.authenticate(NEW, Some(NEW), Some(b"two")), None);
        assert!(matches!(changes.try_recv(), Ok(CredentialChange::Remove(id)) if id == NEW));
        // Retiring an unknown device revokes nothing.
        a.device_changed(NEW, None);
        assert_eq!(kicks().len(), 2);

        // A reload disconnects exactly the devices that went or changed.
        a.insert(NEW, "two", REGION);
        kicked.0.lock().clear();
        a.replace(vec![stored(ID, "three"), stored("45002361002010314000003", "x")]);
        assert_eq!(kicks(), [NEW]);
        assert_eq!(a.len(), 2);

        // A stored hash that is not one counts as a removal.
        kicked.0.lock().clear();
        a.device_changed(ID, Some(("not a hash", REGION)));
        assert_eq!(kicks(), [ID]);
        assert_eq!(a.authenticate(ID, Some(ID), Some(b"three")), None);

        // A gateway that is gone is forgotten.
        drop(kicked);
        a.device_changed("45002361002010314000003", None);
        assert!(a.watchers.lock().is_empty());
    }
}
