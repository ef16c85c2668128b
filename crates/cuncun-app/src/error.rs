//! What a command answers when it does not succeed. Every delivery renders these the same way
//! (pages as a page in the reader's language, the API as JSON with the HTTP status).

use cuncun_domain::authz::Denied;
use cuncun_store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The input is wrong; the text names the field.
    #[error("{0}")]
    BadRequest(String),
    /// The principal may not do this; the text says why.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// Nobody may do this in the object's present state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// A cause for the log, never shown.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Error::NotFound(m),
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::Invalid(m) => Error::BadRequest(m),
            StoreError::Unavailable(m) => Error::Unavailable(m),
            StoreError::Denied(d) => d.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<Denied> for Error {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Forbidden(m) => Error::Forbidden(m),
            Denied::Conflict(m) => Error::Conflict(m),
        }
    }
}
