//! Coverage, indicator targets, the county checklist, transmitter sites and the monthly report.

#[allow(unused_imports)]
use crate::{App, Error, Result};
