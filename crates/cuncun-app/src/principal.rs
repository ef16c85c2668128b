//! Who a command runs for. The type and the rules that read it are pure and live in
//! `cuncun_domain::authz`; this module resolves a principal from what a delivery crate knows.

pub use cuncun_domain::authz::{Grant, Principal, Via};
