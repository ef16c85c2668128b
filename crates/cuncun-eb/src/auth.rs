//! Device authentication from an in-memory map, so a reconnect storm costs no database queries.

use cuncun_gateway::{Authenticator, Credential, CredentialChange, CredentialSource};
use cuncun_store::eb::DeviceCredential;
use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tokio::sync::broadcast;

/// SHA-256 hex of a device secret. Secrets are 128-bit random values, so a fast hash suffices
/// (argon2 would make 5,000 connects/s impossible and protects nothing a random secret lacks).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn new_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

pub struct DeviceAuth {
    /// ebrid -> (secret hash, 12-digit region)
    map: RwLock<HashMap<String, (String, String)>>,
    /// Changes, for gateway nodes in other processes (see `cuncun_gateway::Hub`).
    changes: broadcast::Sender<CredentialChange>,
}

impl Default for DeviceAuth {
    fn default() -> Self {
        DeviceAuth { map: RwLock::default(), changes: broadcast::channel(4096).0 }
    }
}

fn credential(ebrid: &str, secret_hash: &str, region12: &str) -> Option<Credential> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(secret_hash, &mut h).ok()?;
    Some(Credential { id: ebrid.to_string(), secret_sha256: h, region12: region12.to_string() })
}

impl CredentialSource for DeviceAuth {
    fn snapshot(&self) -> Vec<Credential> {
        self.map.read().iter().filter_map(|(id, (h, r))| credential(id, h, r)).collect()
    }
    fn subscribe(&self) -> broadcast::Receiver<CredentialChange> {
        self.changes.subscribe()
    }
}

impl DeviceAuth {
    pub fn new(creds: Vec<DeviceCredential>) -> Self {
        let a = DeviceAuth::default();
        a.replace(creds);
        a
    }
    pub fn replace(&self, creds: Vec<DeviceCredential>) {
        let m = creds.into_iter().map(|c| (c.ebrid, (c.secret_hash, c.region12))).collect();
        *self.map.write() = m;
        let _ = self.changes.send(CredentialChange::Reset);
    }
    pub fn set(&self, ebrid: &str, secret_hash: &str, region12: &str) {
        self.map.write().insert(ebrid.to_string(), (secret_hash.to_string(), region12.to_string()));
        if let Some(c) = credential(ebrid, secret_hash, region12) {
            let _ = self.changes.send(CredentialChange::Set(c));
        }
    }
    pub fn remove(&self, ebrid: &str) {
        self.map.write().remove(ebrid);
        let _ = self.changes.send(CredentialChange::Remove(ebrid.to_string()));
    }
    pub fn len(&self) -> usize {
        self.map.read().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Authenticator for DeviceAuth {
    fn authenticate(&self, client_id: &str, username: Option<&str>, password: Option<&[u8]>) -> Option<String> {
        if username.is_some_and(|u| u != client_id) {
            return None;
        }
        let password = std::str::from_utf8(password?).ok()?;
        let m = self.map.read();
        let (hash, region) = m.get(client_id)?;
        if same(hash_secret(password).as_bytes(), hash.as_bytes()) { Some(region.clone()) } else { None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn checks_id_and_secret() {
        let s = new_secret();
        let a = DeviceAuth::new(vec![DeviceCredential {
            ebrid: "t1".into(),
            secret_hash: hash_secret(&s),
            region12: "500236100201".into(),
        }]);
        assert_eq!(a.authenticate("t1", Some("t1"), Some(s.as_bytes())).as_deref(), Some("500236100201"));
        assert!(a.authenticate("t1", Some("t1"), Some(b"wrong")).is_none());
        assert!(a.authenticate("t1", Some("t2"), Some(s.as_bytes())).is_none(), "username must be the id");
        assert!(a.authenticate("t9", Some("t9"), Some(s.as_bytes())).is_none());
        assert!(a.authenticate("t1", Some("t1"), None).is_none());
        a.remove("t1");
        assert!(a.authenticate("t1", Some("t1"), Some(s.as_bytes())).is_none(), "retired");
    }
}
