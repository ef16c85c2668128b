//! HTTP-level tests of pages and API, against every storage backend: scoping, CSRF, sessions,
//! rate limiting, audit, operations endpoints.
#![allow(clippy::unwrap_used)]

mod cap;
mod eb;
mod exploits;
mod hardening;
mod harness;
mod interchange;
mod jobs;
mod report;
mod scope;
mod service;
mod sessions;
mod surface;
