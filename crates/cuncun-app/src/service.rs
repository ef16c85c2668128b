//! The service network: households, stewards, outlets, repair tickets and care visits.

#[allow(unused_imports)]
use crate::{App, Error, Result};
