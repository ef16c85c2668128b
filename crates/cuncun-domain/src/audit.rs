//! The audit chain: each entry's hash covers its content and the previous entry's hash, so that
//! editing, deleting or reordering a stored row breaks the chain at a findable place.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hash of the (empty) chain before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    /// UTC milliseconds since the epoch.
    pub at_ms: i64,
    /// "user:<id>:<username>", "api:<id>:<username>" or "system".
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    /// JSON of the record before the change ("" when created).
    pub before: String,
    /// JSON of the record after the change ("" when deleted).
    pub after: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Computes the hash of an entry from its fields and the previous hash. Every field is
/// length-prefixed so that moving bytes between fields changes the hash.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: &str,
    after: &str,
) -> String {
    let mut h = Sha256::new();
    let seq_s = seq.to_string();
    let at_s = at_ms.to_string();
    for part in [prev_hash, &seq_s, &at_s, actor, action, entity, entity_id, before, after] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

impl AuditEntry {
    pub fn computed_hash(&self) -> String {
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at_ms,
            &self.actor,
            &self.action,
            &self.entity,
            &self.entity_id,
            &self.before,
            &self.after,
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainFault {
    /// The stored hash does not match the entry's content: the row was edited.
    ContentChanged { seq: i64 },
    /// The entry does not point at the previous entry's hash: a row was removed or inserted.
    Broken { seq: i64 },
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainFault::ContentChanged { seq } => {
                write!(f, "audit entry {seq}: content does not match its hash (edited)")
            }
            ChainFault::Broken { seq } => write!(
                f,
                "audit entry {seq}: does not follow the previous entry (an entry was removed or inserted)"
            ),
        }
    }
}

/// Walks entries in order and reports every fault; `prev` is the hash before the first one.
pub struct ChainVerifier {
    prev: String,
    pub checked: u64,
    pub faults: Vec<ChainFault>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { prev: GENESIS.to_string(), checked: 0, faults: Vec::new() }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, e: &AuditEntry) {
        self.checked += 1;
        if e.prev_hash != self.prev {
            self.faults.push(ChainFault::Broken { seq: e.seq });
        }
        if e.computed_hash() != e.hash {
            self.faults.push(ChainFault::ContentChanged { seq: e.seq });
        }
        // Continue from the stored hash so one edit is reported once, not at every later row.
        self.prev = e.hash.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at_ms: 1_700_000_000_000 + seq,
                    actor: "user:1:admin".into(),
                    action: "update".into(),
                    entity: "user".into(),
                    entity_id: seq.to_string(),
                    before: "{}".into(),
                    after: format!("{{\"n\":{seq}}}"),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.computed_hash();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify(entries: &[AuditEntry]) -> Vec<ChainFault> {
        let mut v = ChainVerifier::default();
        entries.iter().for_each(|e| v.push(e));
        v.faults
    }

    #[test]
    fn intact_chain_verifies() {
        assert!(verify(&chain(5)).is_empty());
    }

    #[test]
    fn edit_is_detected_at_its_row() {
        let mut c = chain(5);
        c[2].after = "{\"n\":99}".into();
        assert_eq!(verify(&c), vec![ChainFault::ContentChanged { seq: 3 }]);
    }

    #[test]
    fn deletion_is_detected() {
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c), vec![ChainFault::Broken { seq: 3 }]);
    }

    #[test]
    fn moving_bytes_between_fields_changes_hash() {
        let a = entry_hash(GENESIS, 1, 1, "ab", "c", "", "", "", "");
        let b = entry_hash(GENESIS, 1, 1, "a", "bc", "", "", "", "");
        assert_ne!(a, b);
    }
}
