//! Terminals and front-ends (emergency broadcast resources): register, import, re-key, retire, status.

#[allow(unused_imports)]
use crate::{App, Error, Result};
