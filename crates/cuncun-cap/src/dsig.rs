//! Enveloped XML-DSig on CAP alerts: verify (RSA-SHA256, ECDSA-P256-SHA256; SHA-256 digest;
//! inclusive or exclusive c14n, with or without comments) against a trusted certificate or public
//! key, and sign outgoing alerts (RSA-SHA256, exclusive c14n, software key).
//!
//! Only a signature that covers the whole alert is accepted: one ds:Signature child of <alert>,
//! one Reference with URI="" (or "#id" of the root element) and the enveloped-signature
//! transform. Anything else is reported as invalid, never silently ignored.

use crate::c14n::{self, Method};
use crate::parse::{DSIG_NS, find_signature};
use crate::xml::{Document, Element};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
pub const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
pub const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const EXC_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No ds:Signature in the alert; the caller decides per department whether that is acceptable.
    Unsigned,
    /// The signature's digest matched and it verified against the trusted key.
    Valid { algorithm: String, canonicalization: String },
    /// Signed, the digest matched, but no trusted key was given to check the signature value.
    NotChecked { algorithm: String },
    /// The alert must be refused.
    Invalid { reason: String },
}

impl SignatureStatus {
    pub fn is_refused(&self) -> bool {
        matches!(self, SignatureStatus::Invalid { .. })
    }
    pub fn describe(&self) -> String {
        match self {
            SignatureStatus::Unsigned => "unsigned".into(),
            SignatureStatus::Valid { algorithm, canonicalization } => {
                format!("valid ({}, {})", short_alg(algorithm), short_alg(canonicalization))
            }
            SignatureStatus::NotChecked { algorithm } => {
                format!("signed ({}), digest matches, signature NOT checked: no trusted certificate given", short_alg(algorithm))
            }
            SignatureStatus::Invalid { reason } => format!("INVALID: {reason}"),
        }
    }
}

fn short_alg(uri: &str) -> &str {
    let u = uri.trim_end_matches('#');
    u.rsplit(['#', '/']).next().unwrap_or(u)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the certificate or key: {0}")]
    Bad(String),
    #[error("unsupported public key: only RSA and ECDSA P-256 keys are supported")]
    Unsupported,
}

/// A sending department's trusted public key (from its certificate or a PUBLIC KEY PEM).
#[derive(Debug, Clone)]
pub enum TrustedKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl TrustedKey {
    /// Accepts a PEM certificate, a PEM public key (SubjectPublicKeyInfo) or a DER certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrustedKey, KeyError> {
        use x509_cert::der::{Decode, DecodePem, Encode};
        let text = std::str::from_utf8(bytes).unwrap_or("");
        let spki_der = if text.contains("-----BEGIN CERTIFICATE-----") {
            let cert = x509_cert::Certificate::from_pem(bytes).map_err(|e| KeyError::Bad(e.to_string()))?;
            cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| KeyError::Bad(e.to_string()))?
        } else if text.contains("-----BEGIN PUBLIC KEY-----") {
            let (_, doc) = x509_cert::der::Document::from_pem(text).map_err(|e| KeyError::Bad(e.to_string()))?;
            doc.as_bytes().to_vec()
        } else {
            let cert = x509_cert::Certificate::from_der(bytes).map_err(|e| KeyError::Bad(e.to_string()))?;
            cert.tbs_certificate.subject_public_key_info.to_der().map_err(|e| KeyError::Bad(e.to_string()))?
        };
        Self::from_spki_der(&spki_der)
    }

    pub fn from_spki_der(der: &[u8]) -> Result<TrustedKey, KeyError> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(der) {
            return Ok(TrustedKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(TrustedKey::P256(k));
        }
        Err(KeyError::Unsupported)
    }

    fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use rsa::signature::Verifier;
        match (self, alg) {
            (TrustedKey::Rsa(k), RSA_SHA256) => {
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone());
                let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| format!("malformed RSA signature: {e}"))?;
                vk.verify(msg, &s).map_err(|_| "signature value does not verify with the trusted RSA key".to_string())
            }
            (TrustedKey::P256(k), ECDSA_SHA256) => {
                // XML-DSig carries r||s (64 bytes); accept DER as well.
                let s = if sig.len() == 64 {
                    p256::ecdsa::Signature::from_slice(sig)
                } else {
                    p256::ecdsa::Signature::from_der(sig)
                }
                .map_err(|e| format!("malformed ECDSA signature: {e}"))?;
                k.verify(msg, &s).map_err(|_| "signature value does not verify with the trusted P-256 key".to_string())
            }
            (TrustedKey::Rsa(_), a) | (TrustedKey::P256(_), a) => {
                Err(format!("signature algorithm {a} does not match the trusted key's type"))
            }
        }
    }
}

fn child<'a>(e: &'a Element, local: &str) -> Option<&'a Element> {
    e.elements().find(|c| c.is(DSIG_NS, local))
}

fn child_index(e: &Element, local: &str) -> Option<usize> {
    e.elements().position(|c| c.is(DSIG_NS, local))
}

fn method_of(e: &Element) -> Result<Method, String> {
    let uri = e.attr("Algorithm").unwrap_or("");
    let mut m = Method::from_uri(uri).ok_or_else(|| format!("unsupported canonicalization {uri:?}"))?;
    if let Some(inc) = e.elements().find(|c| c.ns.as_deref() == Some(EXC_NS) && c.local == "InclusiveNamespaces") {
        m.inclusive_prefixes = inc.attr("PrefixList").unwrap_or("").split_whitespace().map(str::to_string).collect();
    }
    Ok(m)
}

fn count_signatures(e: &Element) -> usize {
    e.elements().map(|c| usize::from(c.is(DSIG_NS, "Signature")) + count_signatures(c)).sum()
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(clean).map_err(|e| format!("bad base64: {e}"))
}

/// Verifies the enveloped signature of a parsed alert.
pub fn verify(doc: &Document, key: Option<&TrustedKey>) -> SignatureStatus {
    match verify_inner(doc, key) {
        Ok(s) => s,
        Err(reason) => SignatureStatus::Invalid { reason },
    }
}

fn verify_inner(doc: &Document, key: Option<&TrustedKey>) -> Result<SignatureStatus, String> {
    let total = count_signatures(&doc.root);
    let Some((sig_idx, sig)) = find_signature(doc) else {
        return if total == 0 {
            Ok(SignatureStatus::Unsigned)
        } else {
            Err("the ds:Signature is not a direct child of <alert> (not an enveloped signature of the alert)".into())
        };
    };
    if total != 1 {
        return Err(format!("{total} ds:Signature elements; exactly one enveloped signature is accepted"));
    }
    let si_idx = child_index(sig, "SignedInfo").ok_or("ds:Signature has no ds:SignedInfo")?;
    let si = child(sig, "SignedInfo").ok_or("ds:Signature has no ds:SignedInfo")?;
    let cm = method_of(child(si, "CanonicalizationMethod").ok_or("ds:SignedInfo has no ds:CanonicalizationMethod")?)?;
    let cm_uri = child(si, "CanonicalizationMethod").and_then(|e| e.attr("Algorithm")).unwrap_or("").to_string();
    let alg = child(si, "SignatureMethod").and_then(|e| e.attr("Algorithm")).ok_or("ds:SignedInfo has no ds:SignatureMethod")?;
    if alg != RSA_SHA256 && alg != ECDSA_SHA256 {
        return Err(format!("unsupported signature algorithm {alg} (supported: rsa-sha256, ecdsa-sha256)"));
    }
    let refs: Vec<&Element> = si.elements().filter(|c| c.is(DSIG_NS, "Reference")).collect();
    let [reference] = refs.as_slice() else {
        return Err(format!("{} ds:Reference elements; exactly one covering the whole alert is accepted", refs.len()));
    };
    let uri = reference.attr("URI").ok_or("ds:Reference has no URI; it must be URI=\"\" (the whole alert)")?;
    if !uri.is_empty() {
        let id = uri.strip_prefix('#').ok_or_else(|| format!("ds:Reference URI {uri:?} is not the alert itself"))?;
        let root_id = ["Id", "ID", "id"].iter().find_map(|n| doc.root.attr(n));
        if root_id != Some(id) {
            return Err(format!("ds:Reference URI {uri:?} does not point at <alert>; the signature must cover the whole alert"));
        }
    }
    let mut enveloped = false;
    let mut method = Method::from_uri(c14n::C14N_10).ok_or("internal: c14n method table")?;
    if let Some(ts) = child(reference, "Transforms") {
        for t in ts.elements().filter(|c| c.is(DSIG_NS, "Transform")) {
            match t.attr("Algorithm").unwrap_or("") {
                ENVELOPED => enveloped = true,
                other => {
                    method = method_of(t).map_err(|_| format!("unsupported transform {other:?}"))?;
                }
            }
        }
    }
    if !enveloped {
        return Err("the reference lacks the enveloped-signature transform".into());
    }
    // Same-document references never include comments.
    method.comments = false;
    let dm = child(reference, "DigestMethod").and_then(|e| e.attr("Algorithm")).unwrap_or("");
    if dm != SHA256 {
        return Err(format!("unsupported digest method {dm:?} (supported: sha256)"));
    }
    let want = b64(&child(reference, "DigestValue").ok_or("ds:Reference has no ds:DigestValue")?.text())
        .map_err(|e| format!("DigestValue: {e}"))?;
    let canon = c14n::document(doc, &method, Some(sig));
    let got = Sha256::digest(canon.as_bytes());
    if got.as_slice() != want.as_slice() {
        return Err("digest mismatch: the alert was changed after it was signed".into());
    }
    let Some(key) = key else {
        return Ok(SignatureStatus::NotChecked { algorithm: alg.to_string() });
    };
    let sv = b64(&child(sig, "SignatureValue").ok_or("ds:Signature has no ds:SignatureValue")?.text())
        .map_err(|e| format!("SignatureValue: {e}"))?;
    let signed_info = c14n::subtree(doc, &[sig_idx, si_idx], &cm, None).ok_or("internal: SignedInfo path")?;
    key.verify(alg, signed_info.as_bytes(), &sv)?;
    Ok(SignatureStatus::Valid { algorithm: alg.to_string(), canonicalization: cm_uri })
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{0}")]
    Xml(#[from] crate::xml::XmlError),
    #[error("the alert is already signed")]
    AlreadySigned,
    #[error("cannot read the signing key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A software RSA key that signs outgoing alerts (RSA-SHA256, exclusive c14n).
pub struct RsaSigner {
    key: rsa::RsaPrivateKey,
    cert_der: Option<Vec<u8>>,
}

impl RsaSigner {
    /// A PKCS#8 ("PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY") PEM, and optionally the PEM
    /// certificate to embed in KeyInfo (informational: receivers verify against their own trust list).
    pub fn from_pem(key_pem: &str, cert_pem: Option<&str>) -> Result<RsaSigner, SignError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| SignError::Key(e.to_string()))?;
        let cert_der = match cert_pem {
            Some(p) => {
                let (label, doc) = x509_cert::der::Document::from_pem(p).map_err(|e| SignError::Key(e.to_string()))?;
                if label != "CERTIFICATE" {
                    return Err(SignError::Key(format!("expected a CERTIFICATE PEM, got {label}")));
                }
                Some(doc.as_bytes().to_vec())
            }
            None => None,
        };
        Ok(RsaSigner { key, cert_der })
    }

    pub fn from_key(key: rsa::RsaPrivateKey) -> RsaSigner {
        RsaSigner { key, cert_der: None }
    }

    /// Signs CAP XML text: returns the canonical (exclusive c14n) alert with a ds:Signature as
    /// its last child, preceded by an XML declaration.
    pub fn sign(&self, xml: &str) -> Result<String, SignError> {
        let doc = crate::xml::parse(xml)?;
        if count_signatures(&doc.root) > 0 {
            return Err(SignError::AlreadySigned);
        }
        let m = Method::exclusive();
        let (before, root, after) = c14n::document_parts(&doc, &m, None);
        let canon = format!("{before}{root}{after}");
        let digest = B64.encode(Sha256::digest(canon.as_bytes()));
        let si_xml = format!(
            "<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\"><ds:CanonicalizationMethod Algorithm=\"{exc}\"></ds:CanonicalizationMethod>\
<ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"></ds:SignatureMethod><ds:Reference URI=\"\"><ds:Transforms>\
<ds:Transform Algorithm=\"{ENVELOPED}\"></ds:Transform><ds:Transform Algorithm=\"{exc}\"></ds:Transform></ds:Transforms>\
<ds:DigestMethod Algorithm=\"{SHA256}\"></ds:DigestMethod><ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>",
            exc = c14n::EXC_C14N
        );
        let si_doc = crate::xml::parse(&si_xml)?;
        let si_canon = c14n::document(&si_doc, &m, None);
        let sk = rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone());
        use rsa::signature::{SignatureEncoding, Signer};
        let sig = sk.try_sign(si_canon.as_bytes()).map_err(|e| SignError::Sign(e.to_string()))?;
        let key_info = match &self.cert_der {
            Some(d) => format!("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>", B64.encode(d)),
            None => String::new(),
        };
        let signature = format!(
            "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{si_canon}<ds:SignatureValue>{}</ds:SignatureValue>{key_info}</ds:Signature>",
            B64.encode(sig.to_bytes())
        );
        let end = format!("</{}>", doc.root.qname());
        let body = root.strip_suffix(&end).ok_or_else(|| SignError::Sign("canonical form has no end tag".into()))?;
        Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{before}{body}{signature}{end}{after}\n"))
    }
}
