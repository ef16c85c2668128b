//! Domain types and rules of cuncun. This crate does no I/O: it parses, validates and computes.
//! Parse, don't validate: constructors return typed errors and the types stay valid afterwards.

pub mod audit;
pub mod authz;
pub mod eb;
pub mod indicators;
pub mod model;
pub mod online;
pub mod protocol;
pub mod records;
pub mod region;
pub mod role;
pub mod service;
pub mod time;

pub use region::{RegionCode, RegionCodeError, RegionLevel};
pub use role::Role;
