//! Signatures (GY/T 389 style): SM2 with SM3 over the exact EBDB bytes, carried in the
//! `EBDS_EBDB_<EBDID>.xml` file; `Signer` and `Verifier` so a hardware crypto device can replace
//! the software key; certificates and trust lists.
//!
//! Certificates here are not X.509: a certificate is a small self-describing TOML file (format
//! `cuncun-sm2-cert/1`) with the serial (16 hex characters, as CertSN), the owner's EBRID, the
//! SM2 public key (SEC1, hex) and the SM2 distinguishing identifier. Issuing and revocation by a
//! national CA are not modelled: trust is the list of peers' certificates an operator adds.

use crate::model::RelatedEbd;
use crate::sample::{Gen, Sample};
use crate::values::{EbdTime, Ebdid};
use crate::xml::{self, Cx, Node, Problem, W, node};
use base64::Engine;
use cuncun_domain::eb::Ebrid;
use serde::{Deserialize, Serialize};
use sm2::dsa::signature::{Signer as _, Verifier as _};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sm3::Digest;
use std::collections::HashMap;
use std::path::Path;

/// The SM2 distinguishing identifier used in the signer's Z value (the GM/T 0009 default).
pub const DEFAULT_DISTID: &str = "1234567812345678";
/// `SignatureAlgorithm` as written in EBDS files.
pub const SIGNATURE_ALGORITHM: &str = "SM2-SM3";
/// The certificate file format name.
pub const CERT_FORMAT: &str = "cuncun-sm2-cert/1";
/// File names inside a key directory made by `cuncun keys generate`.
pub const KEY_FILE: &str = "signing-key.pem";
pub const CERT_FILE: &str = "certificate.toml";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Format(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.display().to_string(), source }
}

/// SM3 digest, hex (lower case).
pub fn sm3_hex(data: &[u8]) -> String {
    hex::encode(sm3::Sm3::digest(data))
}

/// A public "certificate": who owns which SM2 public key under which serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub format: String,
    /// The certificate serial, 16 upper-case hex characters; the EBDS `CertSN`.
    pub serial: String,
    /// The resource code of the platform that signs with this key.
    pub owner_ebrid: Ebrid,
    pub algorithm: String,
    pub distid: String,
    /// SEC1 public key, hex.
    pub public_key: String,
    /// When the key was made, `YYYY-MM-DD HH:MM:SS` Beijing time.
    pub created: String,
}

fn check_serial(s: &str) -> Result<(), KeyError> {
    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        Ok(())
    } else {
        Err(KeyError::Format(format!("certificate serial {s:?} must be 16 upper-case hex characters")))
    }
}

impl Certificate {
    /// Reads and checks a certificate file's text.
    pub fn parse(text: &str) -> Result<Certificate, KeyError> {
        let c: Certificate = toml::from_str(text).map_err(|e| KeyError::Format(format!("not a certificate file: {e}")))?;
        c.verifying_key()?;
        Ok(c)
    }
    pub fn load(path: &Path) -> Result<Certificate, KeyError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        Certificate::parse(&text).map_err(|e| KeyError::Format(format!("{}: {e}", path.display())))
    }
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!("# cuncun SM2 public certificate (not X.509; see docs/EBD.md)\n{body}")
    }
    /// The key to verify with; fails when the file is not a valid certificate.
    pub fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        if self.format != CERT_FORMAT {
            return Err(KeyError::Format(format!("format {:?} is not {CERT_FORMAT:?}", self.format)));
        }
        check_serial(&self.serial)?;
        if self.algorithm != SIGNATURE_ALGORITHM {
            return Err(KeyError::Format(format!("algorithm {:?} is not {SIGNATURE_ALGORITHM:?}", self.algorithm)));
        }
        let bytes = hex::decode(&self.public_key).map_err(|_| KeyError::Format("public_key is not hex".into()))?;
        VerifyingKey::from_sec1_bytes(&self.distid, &bytes)
            .map_err(|_| KeyError::Format("public_key is not an SM2 public key".into()))
    }
    /// SM3 of the public key, first 16 hex characters: to compare keys by eye.
    pub fn fingerprint(&self) -> String {
        let bytes = hex::decode(&self.public_key).unwrap_or_default();
        sm3_hex(&bytes)[..16].to_string()
    }
}

/// Signs EBDB bytes. One implementation is the software key below; a crypto device is another.
pub trait Signer: Send + Sync {
    /// The serial of the certificate that verifies this signer's signatures (`CertSN`).
    fn cert_sn(&self) -> &str;
    /// The signature over `data` (SM2 with SM3; 64 bytes r || s).
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// A software SM2 key with its certificate. For development and for platforms without a
/// crypto device.
pub struct SoftwareSigner {
    cert: Certificate,
    secret: sm2::SecretKey,
    key: SigningKey,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner").field("cert", &self.cert).finish_non_exhaustive()
    }
}

impl SoftwareSigner {
    /// A new random key owned by `owner`, with a random serial.
    pub fn generate(owner: Ebrid) -> Result<SoftwareSigner, KeyError> {
        use rand::RngCore;
        let secret = sm2::SecretKey::random(&mut rand::rngs::OsRng);
        let mut sn = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut sn);
        let serial = hex::encode_upper(sn);
        Self::with_secret(secret, owner, serial, EbdTime::now_beijing().to_string())
    }

    /// A key made from a seed: for tests and benchmarks only (never for real use).
    pub fn from_seed(seed: u64, owner: Ebrid) -> Result<SoftwareSigner, KeyError> {
        let mut g = Gen::new(seed);
        loop {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&g.next_u64().to_be_bytes());
            }
            if let Ok(secret) = sm2::SecretKey::from_slice(&bytes) {
                let serial = format!("{:016X}", g.next_u64());
                return Self::with_secret(secret, owner, serial, "2024-01-01 00:00:00".into());
            }
        }
    }

    fn with_secret(secret: sm2::SecretKey, owner: Ebrid, serial: String, created: String) -> Result<SoftwareSigner, KeyError> {
        let key = SigningKey::new(DEFAULT_DISTID, &secret).map_err(|e| KeyError::Format(format!("SM2 key: {e}")))?;
        let cert = Certificate {
            format: CERT_FORMAT.into(),
            serial,
            owner_ebrid: owner,
            algorithm: SIGNATURE_ALGORITHM.into(),
            distid: DEFAULT_DISTID.into(),
            public_key: hex::encode(key.verifying_key().to_sec1_bytes()),
            created,
        };
        Ok(SoftwareSigner { cert, secret, key })
    }

    /// From a PKCS#8 PEM private key and its certificate; fails when they do not belong together.
    pub fn from_pem(pem: &str, cert: Certificate) -> Result<SoftwareSigner, KeyError> {
        let secret = sm2::SecretKey::from_pkcs8_pem(pem)
            .map_err(|e| KeyError::Format(format!("not an SM2 private key (PKCS#8 PEM): {e}")))?;
        cert.verifying_key()?;
        let key = SigningKey::new(&cert.distid, &secret).map_err(|e| KeyError::Format(format!("SM2 key: {e}")))?;
        if hex::encode(key.verifying_key().to_sec1_bytes()) != cert.public_key {
            return Err(KeyError::Format(format!("the private key does not match certificate {}", cert.serial)));
        }
        Ok(SoftwareSigner { cert, secret, key })
    }

    /// Loads `signing-key.pem` and `certificate.toml` from a key directory.
    pub fn load_dir(dir: &Path) -> Result<SoftwareSigner, KeyError> {
        let kp = dir.join(KEY_FILE);
        let pem = std::fs::read_to_string(&kp).map_err(io_err(&kp))?;
        let cert = Certificate::load(&dir.join(CERT_FILE))?;
        Self::from_pem(&pem, cert).map_err(|e| KeyError::Format(format!("{}: {e}", dir.display())))
    }

    /// Writes the key directory (the private key readable by the owner only). Refuses to
    /// overwrite an existing key.
    pub fn save_dir(&self, dir: &Path) -> Result<(), KeyError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let kp = dir.join(KEY_FILE);
        let cp = dir.join(CERT_FILE);
        for p in [&kp, &cp] {
            if p.exists() {
                return Err(KeyError::Format(format!("{} exists; not overwriting a key", p.display())));
            }
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&kp).map_err(io_err(&kp))?;
        std::io::Write::write_all(&mut f, self.private_key_pem()?.as_bytes()).map_err(io_err(&kp))?;
        std::fs::write(&cp, self.cert.to_toml()).map_err(io_err(&cp))?;
        Ok(())
    }

    pub fn private_key_pem(&self) -> Result<String, KeyError> {
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .map(|z| z.to_string())
            .map_err(|e| KeyError::Format(format!("encoding the private key: {e}")))
    }

    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
}

impl Signer for SoftwareSigner {
    fn cert_sn(&self) -> &str {
        &self.cert.serial
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        let sig: Signature = self.key.try_sign(data).map_err(|e| KeyError::Format(format!("signing: {e}")))?;
        Ok(sig.to_bytes().to_vec())
    }
}

/// What a verifier says about one signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    UnknownSigner,
    Bad(String),
    Ok { owner: Ebrid },
}

/// Verifies signatures by certificate serial.
pub trait Verifier: Send + Sync {
    fn verify(&self, cert_sn: &str, data: &[u8], signature: &[u8]) -> Verification;
}

/// The peers whose signatures are trusted: their certificates, by serial.
#[derive(Debug, Clone, Default)]
pub struct TrustList {
    peers: Vec<Certificate>,
    keys: HashMap<String, VerifyingKey>,
}

#[derive(Serialize, Deserialize)]
struct TrustFile {
    #[serde(default)]
    peer: Vec<Certificate>,
}

impl TrustList {
    pub fn parse(text: &str) -> Result<TrustList, KeyError> {
        let f: TrustFile = toml::from_str(text).map_err(|e| KeyError::Format(format!("not a trust list: {e}")))?;
        let mut t = TrustList::default();
        for (i, c) in f.peer.into_iter().enumerate() {
            t.add(c).map_err(|e| KeyError::Format(format!("peer #{}: {e}", i + 1)))?;
        }
        Ok(t)
    }
    pub fn load(path: &Path) -> Result<TrustList, KeyError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        TrustList::parse(&text).map_err(|e| KeyError::Format(format!("{}: {e}", path.display())))
    }
    pub fn to_toml(&self) -> String {
        let f = TrustFile { peer: self.peers.clone() };
        format!("# cuncun trust list: peers' SM2 certificates (see docs/EBD.md)\n{}", toml::to_string(&f).unwrap_or_default())
    }
    /// Adds a peer's certificate; refuses an invalid one or a serial already present.
    pub fn add(&mut self, cert: Certificate) -> Result<(), KeyError> {
        let key = cert.verifying_key()?;
        if self.keys.contains_key(&cert.serial) {
            return Err(KeyError::Format(format!("certificate {} is already trusted", cert.serial)));
        }
        self.keys.insert(cert.serial.clone(), key);
        self.peers.push(cert);
        Ok(())
    }
    pub fn peers(&self) -> &[Certificate] {
        &self.peers
    }
    pub fn by_serial(&self, serial: &str) -> Option<&Certificate> {
        self.peers.iter().find(|c| c.serial == serial)
    }
    pub fn by_ebrid<'a>(&'a self, ebrid: &'a Ebrid) -> impl Iterator<Item = &'a Certificate> + 'a {
        self.peers.iter().filter(move |c| &c.owner_ebrid == ebrid)
    }
}

impl Verifier for TrustList {
    fn verify(&self, cert_sn: &str, data: &[u8], signature: &[u8]) -> Verification {
        let (Some(key), Some(cert)) = (self.keys.get(cert_sn), self.by_serial(cert_sn)) else {
            return Verification::UnknownSigner;
        };
        let Ok(sig) = Signature::try_from(signature) else {
            return Verification::Bad(format!("the signature is not a 64-byte SM2 signature ({} bytes)", signature.len()));
        };
        match key.verify(data, &sig) {
            Ok(()) => Verification::Ok { owner: cert.owner_ebrid.clone() },
            Err(_) => Verification::Bad("the signature does not match the EBDB bytes".into()),
        }
    }
}

// ----- the EBDS file -----

node! {
    /// The older form's certificate fields.
    pub struct SignatureCert {
        cert_type: Option<String> = "CertType",
        issuer_id: Option<String> = "IssuerID",
        cert_sn: String = "CertSN",
    }
}
node! {
    /// `EBDS_EBDB_<EBDID>.xml`, root `<Signature>`. Written in the newer form (CertSN directly,
    /// SignatureTime added); the older form with `SignatureCert{CertType, IssuerID, CertSN}` and
    /// `DigestAlgorithm` is read too.
    pub struct EbdsSignature {
        version: String = "Version",
        related_ebd: RelatedEbd = "RelatedEBD",
        signature_cert: Option<SignatureCert> = "SignatureCert",
        cert_sn: Option<String> = "CertSN",
        signature_time: Option<EbdTime> = "SignatureTime",
        signature_algorithm: Option<String> = "SignatureAlgorithm",
        digest_algorithm: Option<String> = "DigestAlgorithm",
        signature_value: String = "SignatureValue",
    }
}

impl EbdsSignature {
    /// The certificate serial, from either form.
    pub fn cert_sn(&self) -> Option<&str> {
        self.cert_sn.as_deref().or(self.signature_cert.as_ref().map(|c| c.cert_sn.as_str())).map(str::trim)
    }

    /// Signs `ebdb` (the exact EBDB file bytes) for `ebdid`.
    pub fn create(ebdid: &Ebdid, ebdb: &[u8], signer: &dyn Signer, time: EbdTime) -> Result<EbdsSignature, KeyError> {
        let sig = signer.sign(ebdb)?;
        Ok(EbdsSignature {
            version: "1".into(),
            related_ebd: RelatedEbd { ebdid: ebdid.clone() },
            signature_cert: None,
            cert_sn: Some(signer.cert_sn().to_string()),
            signature_time: Some(time),
            signature_algorithm: Some(SIGNATURE_ALGORITHM.into()),
            digest_algorithm: None,
            signature_value: base64::engine::general_purpose::STANDARD.encode(sig),
        })
    }

    pub fn to_xml(&self) -> String {
        let mut w = W::new();
        self.write("Signature", &mut w);
        w.finish()
    }

    pub fn parse(bytes: &[u8]) -> Result<EbdsSignature, crate::model::ParseErrors> {
        let fail = |errors| crate::model::ParseErrors { errors, warnings: vec![] };
        let root = xml::parse_tree(bytes).map_err(|e| fail(vec![e]))?;
        let mut cx = Cx::default();
        if root.name != "Signature" {
            cx.error(&root.name, root.line, Problem::WrongRoot { expected: "Signature", found: root.name.clone() });
            return Err(fail(cx.errors));
        }
        match EbdsSignature::read(&root, "Signature", &mut cx) {
            Some(s) if cx.errors.is_empty() => Ok(s),
            _ => Err(fail(cx.errors)),
        }
    }
}

/// The signature state of a package, as the receiver acts on it: everything but `Ok` and
/// `NotRequired` earns ResultCode 4 and nothing from the package is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigStatus {
    /// A heartbeat without signature file (heartbeats are not signature-checked).
    NotRequired,
    /// No `EBDS_EBDB_<EBDID>.xml` in the package.
    Missing,
    /// The signature file cannot be read, or names another EBD, or its value is not base64.
    Malformed(String),
    /// No verifier was given: the file is well-formed, the signature was not checked.
    NotChecked { cert_sn: String },
    /// The CertSN is not in the trust list.
    UnknownSigner { cert_sn: String },
    /// The signature does not verify (or the certificate's owner is not the sender).
    Bad { cert_sn: String, reason: String },
    Ok { cert_sn: String, owner: Ebrid },
}

impl SigStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, SigStatus::Ok { .. } | SigStatus::NotRequired)
    }
    /// ResultCode 4 when the signature is missing, unreadable, unknown or bad.
    pub fn result_code(&self) -> Option<u8> {
        match self {
            SigStatus::Ok { .. } | SigStatus::NotRequired | SigStatus::NotChecked { .. } => None,
            _ => Some(4),
        }
    }
}

impl std::fmt::Display for SigStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigStatus::NotRequired => write!(f, "not required (heartbeat)"),
            SigStatus::Missing => write!(f, "MISSING: the package has no EBDS signature file"),
            SigStatus::Malformed(m) => write!(f, "MALFORMED: {m}"),
            SigStatus::NotChecked { cert_sn } => write!(f, "present (CertSN {cert_sn}), not checked: no --trust list given"),
            SigStatus::UnknownSigner { cert_sn } => write!(f, "UNKNOWN SIGNER: CertSN {cert_sn} is not in the trust list"),
            SigStatus::Bad { cert_sn, reason } => write!(f, "BAD (CertSN {cert_sn}): {reason}"),
            SigStatus::Ok { cert_sn, owner } => write!(f, "ok (CertSN {cert_sn}, owner {owner})"),
        }
    }
}

/// Checks the signature of a package's EBDB bytes.
/// `sender` is the EBD's SRC EBRID when known: a certificate owned by another resource is bad.
pub fn verify_ebdb(
    ebdid: &Ebdid,
    ebdb: &[u8],
    ebds: Option<&[u8]>,
    sender: Option<&Ebrid>,
    verifier: Option<&dyn Verifier>,
) -> SigStatus {
    let Some(ebds) = ebds else { return SigStatus::Missing };
    let sig = match EbdsSignature::parse(ebds) {
        Ok(s) => s,
        Err(e) => return SigStatus::Malformed(format!("EBDS file: {e}")),
    };
    let Some(cert_sn) = sig.cert_sn().map(str::to_string) else {
        return SigStatus::Malformed("EBDS file: no CertSN".into());
    };
    if &sig.related_ebd.ebdid != ebdid {
        return SigStatus::Malformed(format!("EBDS file signs EBD {}, not {ebdid}", sig.related_ebd.ebdid));
    }
    if let Some(alg) = sig.signature_algorithm.as_deref().map(str::trim)
        && !alg.eq_ignore_ascii_case(SIGNATURE_ALGORITHM)
        && !alg.eq_ignore_ascii_case("SM2")
    {
        return SigStatus::Malformed(format!("SignatureAlgorithm {alg:?} is not {SIGNATURE_ALGORITHM}"));
    }
    let value: String = sig.signature_value.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(value) else {
        return SigStatus::Malformed("SignatureValue is not base64".into());
    };
    let Some(verifier) = verifier else { return SigStatus::NotChecked { cert_sn } };
    match verifier.verify(&cert_sn, ebdb, &raw) {
        Verification::UnknownSigner => SigStatus::UnknownSigner { cert_sn },
        Verification::Bad(reason) => SigStatus::Bad { cert_sn, reason },
        Verification::Ok { owner } => match sender {
            Some(s) if s != &owner => {
                SigStatus::Bad { reason: format!("certificate {cert_sn} belongs to {owner}, but the EBD is from {s}"), cert_sn }
            }
            _ => SigStatus::Ok { cert_sn, owner },
        },
    }
}

impl Sample for Certificate {
    fn sample(g: &mut Gen) -> Self {
        let owner = Ebrid::sample(g);
        match SoftwareSigner::from_seed(g.next_u64(), owner) {
            Ok(s) => s.cert,
            Err(_) => Certificate {
                format: CERT_FORMAT.into(),
                serial: "0000000000000000".into(),
                owner_ebrid: Ebrid::sample(g),
                algorithm: SIGNATURE_ALGORITHM.into(),
                distid: DEFAULT_DISTID.into(),
                public_key: String::new(),
                created: String::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Ebrid {
        Ebrid::parse("45002360000000103010101").expect("ebrid")
    }

    #[test]
    fn pem_and_certificate_round_trip() {
        let s = SoftwareSigner::from_seed(7, owner()).expect("key");
        let pem = s.private_key_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let cert = Certificate::parse(&s.certificate().to_toml()).expect("cert");
        let back = SoftwareSigner::from_pem(&pem, cert).expect("load");
        assert_eq!(back.sign(b"x").expect("sign"), s.sign(b"x").expect("sign"));
        let other = SoftwareSigner::from_seed(8, owner()).expect("key");
        let e = SoftwareSigner::from_pem(&pem, other.certificate().clone()).expect_err("wrong certificate");
        assert!(e.to_string().contains("does not match"), "{e}");
    }

    #[test]
    fn trust_list_round_trip_and_duplicates() {
        let mut t = TrustList::default();
        let a = SoftwareSigner::from_seed(1, owner()).expect("key");
        t.add(a.certificate().clone()).expect("add");
        assert!(t.add(a.certificate().clone()).is_err());
        let back = TrustList::parse(&t.to_toml()).expect("parse");
        assert_eq!(back.peers(), t.peers());
        let sig = a.sign(b"data").expect("sign");
        assert_eq!(back.verify(a.cert_sn(), b"data", &sig), Verification::Ok { owner: owner() });
        assert!(matches!(back.verify(a.cert_sn(), b"datb", &sig), Verification::Bad(_)));
        assert_eq!(back.verify("0123456789ABCDEF", b"data", &sig), Verification::UnknownSigner);
    }
}
