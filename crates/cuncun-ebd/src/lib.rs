//! The national emergency-broadcast interchange formats (GY/T 384/385/386/389 style): the 16 EBD
//! types and their XML, `EBDT_<EBDID>.tar` packages, SM2/SM3 signatures behind `Signer` and
//! `Verifier`, trust lists of peers' certificates, and the checks that `cuncun ebd check` and the
//! HTTP endpoints share. What is assumed where the standards' text was not available is in
//! docs/EBD.md and at each place in the code.

pub mod check;
pub mod example;
pub mod model;
pub mod package;
pub mod sample;
pub mod sign;
pub mod values;
pub mod xml;

pub use check::{CheckOptions, CheckReport, check_bytes};
pub use model::{Body, Ebd, Header, ParseErrors};
pub use package::{Limits, MediaFile, Package, PackageError};
pub use sign::{Certificate, SigStatus, Signer, SoftwareSigner, TrustList, Verifier};
pub use values::{EbdTime, Ebdid, Ebmid};
