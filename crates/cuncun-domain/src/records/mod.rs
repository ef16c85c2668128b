//! The records the store reads and writes and the application layer returns: plain data, no I/O.
//! They live here so that delivery crates (web, interchange, CLI) can render them without
//! depending on the store.

pub mod cap;
pub mod eb;
pub mod interchange;
pub mod report;
pub mod service;

use crate::model::*;
use crate::{RegionCode, Role};
use serde::{Deserialize, Serialize};

/// Who made a change, as written into the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The user id in a `user:ID:name` / `api:ID:name` / `cli:ID:name` actor.
    pub fn user_id(&self) -> Option<i64> {
        let mut it = self.0.splitn(3, ':');
        match (it.next(), it.next()) {
            (Some("user" | "api" | "cli"), Some(id)) => id.parse().ok(),
            _ => None,
        }
    }
    pub fn system() -> Actor {
        Actor("system".into())
    }
    pub fn cli(what: &str) -> Actor {
        Actor(format!("cli:{what}"))
    }
    pub fn user(u: &User) -> Actor {
        Actor(format!("user:{}:{}", u.id, u.username))
    }
    pub fn api(u: &User) -> Actor {
        Actor(format!("api:{}:{}", u.id, u.username))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub inserted: u64,
    pub updated: u64,
}

/// A region with the number of direct children and of households below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionRow {
    pub region: Region,
    pub children: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub region_code: Option<RegionCode>,
    pub phone: Option<String>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token_hash: String,
    pub user_id: i64,
    pub kind: String,
    pub csrf_token: String,
    pub expires_at_ms: i64,
    pub client: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: i64,
    pub kind: String,
    pub csrf_token: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub client: String,
}

/// Everything the demo generator produces, inserted in one transaction.
#[derive(Debug, Clone, Default)]
pub struct RegistryBatch {
    pub hamlets: Vec<NewHamlet>,
    pub households: Vec<NewHousehold>,
    pub stewards: Vec<NewSteward>,
    pub outlets: Vec<NewOutlet>,
    pub terminals: Vec<NewTerminal>,
}
