//! What the EBD interchange with parent and child platforms shows: packages in and out, peer states.

#[allow(unused_imports)]
use crate::{App, Error, Result};
