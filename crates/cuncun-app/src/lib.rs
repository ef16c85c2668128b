//! The application layer of cuncun. Delivery crates (web pages and JSON API, EBD interchange, CAP
//! import, CLI, gateway) translate their input into a command run for a [`Principal`]; this crate
//! checks role and region scope, applies the domain's transition functions, writes the change and
//! its audit entry in one transaction, and returns a typed result that every delivery renders.
//! ARCHITECTURE.md says which rule lives where.

pub mod access;
pub mod accounts;
pub mod cap;
pub mod error;
pub mod grants;
pub mod interchange;
pub mod jobs;
pub mod messages;
pub mod principal;
pub mod reports;
pub mod service;
pub mod terminals;

/// The records commands return, re-exported so that delivery crates need not name the domain's
/// module layout (nor ever the store's).
pub use cuncun_domain::records;

pub use cuncun_domain::authz::WorkflowSettings;
pub use error::{Error, Result};
pub use principal::{Grant, Principal, Via};

use cuncun_domain::RegionCode;
use cuncun_domain::model::User;
use cuncun_domain::Role;
use cuncun_store::Store;
use std::sync::Arc;

/// Spoken audio and recordings for messages (the web crate's media store and text-to-speech).
#[async_trait::async_trait]
pub trait Media: Send + Sync {
    /// Renders text to speech; None when it failed (the message then goes out as text, which
    /// terminals speak themselves).
    async fn speak(&self, text: &str) -> Option<(String, i64)>;
    /// Checks and stores an uploaded recording: (SHA-256, size).
    async fn store_audio(&self, bytes: Vec<u8>) -> Result<(String, i64)>;
}

/// The application: every command of the platform, run for a principal.
#[derive(Clone)]
pub struct App {
    pub(crate) store: Arc<dyn Store>,
    pub settings: WorkflowSettings,
    /// The region of this platform, for its resource code in message ids.
    pub platform_region: Option<RegionCode>,
    pub media: Option<Arc<dyn Media>>,
    /// Wakes the dispatcher after a message was approved or cancelled.
    pub waker: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, settings: WorkflowSettings) -> App {
        App { store, settings, platform_region: None, media: None, waker: None }
    }

    pub(crate) fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }

    /// The principal of a signed-in user: a department sender with its grant (an empty grant
    /// when an administrator has set none, which allows nothing).
    pub async fn principal_of(&self, u: &User, via: Via) -> Result<Principal> {
        if u.role == Role::DepartmentSender {
            let grant = self.store.department_grant(u.id).await?.unwrap_or_default();
            return Ok(Principal::Department { id: u.id, name: u.username.clone(), region: u.region_code.clone(), grant, via });
        }
        Ok(Principal::User { id: u.id, name: u.username.clone(), role: u.role, region: u.region_code.clone(), via })
    }
}
