//! A ready-made in-memory [`Authenticator`]: terminal id -> SHA-256 of its secret and region.

use crate::Authenticator;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// The 12-digit region code inside a 23-digit terminal resource code (its digits 2..14).
pub fn ebrid_region12(id: &str) -> Option<&str> {
    if id.len() != 23 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.get(1..13)
}

#[derive(Default)]
pub struct MapAuthenticator {
    map: RwLock<HashMap<String, ([u8; 32], String)>>,
}

impl MapAuthenticator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, id: &str, secret: &str, region12: &str) {
        self.insert_hashed(id, sha256(secret.as_bytes()), region12);
    }

    pub fn insert_hashed(&self, id: &str, secret_sha256: [u8; 32], region12: &str) {
        self.map.write().insert(id.to_string(), (secret_sha256, region12.to_string()));
    }

    /// Replaces every entry at once (a backbone snapshot).
    pub fn replace_hashed(&self, entries: impl IntoIterator<Item = (String, [u8; 32], String)>) {
        let m = entries.into_iter().map(|(id, h, r)| (id, (h, r))).collect();
        *self.map.write() = m;
    }

    pub fn remove(&self, id: &str) -> bool {
        self.map.write().remove(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Authenticator for MapAuthenticator {
    fn authenticate(&self, client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Option<String> {
        if username != Some(client_id) {
            return None;
        }
        let given = sha256(password?);
        let map = self.map.read();
        let (want, region) = map.get(client_id)?;
        // Compare without an early exit so timing does not tell how much of the hash matched.
        let diff = want.iter().zip(given.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        (diff == 0).then(|| region.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_authenticator() {
        let a = MapAuthenticator::new();
        let id = "45002361002010314000001";
        a.insert(id, "s3cret", "500236100201");
        assert_eq!(ebrid_region12(id), Some("500236100201"));
        assert_eq!(a.authenticate(id, Some(id), Some(b"s3cret")).as_deref(), Some("500236100201"));
        assert_eq!(a.authenticate(id, Some(id), Some(b"wrong")), None);
        assert_eq!(a.authenticate(id, Some("other"), Some(b"s3cret")), None);
        assert_eq!(a.authenticate(id, None, Some(b"s3cret")), None);
        assert_eq!(a.authenticate(id, Some(id), None), None);
        assert_eq!(ebrid_region12("123"), None);
    }
}
