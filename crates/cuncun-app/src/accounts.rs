//! Users, sessions and sign-in, the region tree and hamlets, and the audit log.

#[allow(unused_imports)]
use crate::{App, Error, Result};
