//! CAP 1.2 import and export: department settings, alerts received, and the messages they became.

#[allow(unused_imports)]
use crate::{App, Error, Result};
