//! The application layer of cuncun. Delivery crates (web pages and JSON API, EBD interchange, CAP
//! import, CLI, gateway) translate their input into a command run for a [`Principal`]; this crate
//! checks role and region scope, applies the domain's transition functions, writes the change and
//! its audit entry in one transaction, and returns a typed result that every delivery renders.
//! ARCHITECTURE.md says which rule lives where.

pub mod jobs;
pub mod principal;

pub use principal::Principal;
