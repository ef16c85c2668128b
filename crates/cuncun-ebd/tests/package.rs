//! EBDT tar packages and their signatures, as a receiving platform meets them.
#![allow(clippy::unwrap_used)]

use cuncun_domain::eb::Ebrid;
use cuncun_ebd::check::{CheckOptions, check_bytes};
use cuncun_ebd::example::rainstorm_warning;
use cuncun_ebd::package::{Limits, Package, PackageError};
use cuncun_ebd::sign::{SigStatus, Signer, SoftwareSigner, TrustList};
use cuncun_ebd::{Ebd, EbdTime};

fn county() -> Ebrid {
    Ebrid::parse("45002360000000103010101").unwrap()
}
fn province() -> Ebrid {
    Ebrid::parse("25000000000000103010101").unwrap()
}
fn time() -> EbdTime {
    EbdTime(chrono::NaiveDateTime::parse_from_str("2024-07-01 08:30:02", "%Y-%m-%d %H:%M:%S").unwrap())
}

fn signed_tar(signer: &SoftwareSigner, media_bytes: usize) -> (Ebd, Vec<u8>) {
    let (ebd, media) = rainstorm_warning(&province(), Some(&county()), 7, media_bytes);
    let pkg = Package::build(&ebd, Some(signer as &dyn Signer), media, time()).unwrap();
    (ebd, pkg.to_tar().unwrap())
}

fn trust(signers: &[&SoftwareSigner]) -> TrustList {
    let mut t = TrustList::default();
    for s in signers {
        t.add(s.certificate().clone()).unwrap();
    }
    t
}

#[test]
fn pack_unpack_round_trip_is_deterministic() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (ebd, tar) = signed_tar(&signer, 20_000);
    let (_, tar2) = signed_tar(&signer, 20_000);
    assert_eq!(tar, tar2, "same EBD, same key, same time: same bytes");
    let pkg = Package::from_tar(&tar, &Limits::default()).unwrap();
    assert_eq!(pkg.tar_name(), format!("EBDT_{}.tar", ebd.header.ebdid));
    assert_eq!(Ebd::parse(&pkg.ebdb).unwrap().0, ebd);
    assert_eq!(pkg.media.len(), 1);
    assert_eq!(pkg.media[0].data.len(), 20_000);
    assert_eq!(pkg.to_tar().unwrap(), tar);
}

#[test]
fn signed_package_from_a_trusted_peer_is_valid() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (_, tar) = signed_tar(&signer, 5_000);
    let t = trust(&[&signer]);
    let r = check_bytes("p.tar", &tar, &CheckOptions { verifier: Some(&t), ..Default::default() });
    assert!(r.is_valid(), "{}", r.render());
    assert_eq!(r.result_code(), 1);
    assert!(matches!(r.signature, Some(SigStatus::Ok { .. })));
    let text = r.render();
    assert!(text.contains("severity: 1 特别重大 red"), "{text}");
    assert!(text.contains("500236101000 (township)"), "{text}");
}

#[test]
fn one_tampered_ebdb_byte_makes_the_signature_bad() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (_, tar) = signed_tar(&signer, 0);
    let t = trust(&[&signer]);
    // Change the severity from 1 to 4 inside the tar's EBDB file.
    let pat: &[u8] = b"<Severity>1</Severity>";
    let at = tar.windows(pat.len()).position(|w| w == pat).unwrap() + 10;
    let mut bad = tar.clone();
    bad[at] = b'4';
    let r = check_bytes("p.tar", &bad, &CheckOptions { verifier: Some(&t), ..Default::default() });
    assert!(matches!(r.signature, Some(SigStatus::Bad { .. })), "{}", r.render());
    assert_eq!(r.result_code(), 4);
    assert!(!r.is_valid());
}

#[test]
fn missing_signature_file_is_missing() {
    let (ebd, media) = rainstorm_warning(&province(), Some(&county()), 7, 0);
    let tar = Package::build(&ebd, None, media, time()).unwrap().to_tar().unwrap();
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let t = trust(&[&signer]);
    let r = check_bytes("p.tar", &tar, &CheckOptions { verifier: Some(&t), ..Default::default() });
    assert_eq!(r.signature, Some(SigStatus::Missing));
    assert_eq!(r.result_code(), 4);
}

#[test]
fn unknown_key_is_unknown_signer() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let other = SoftwareSigner::from_seed(2, province()).unwrap();
    let (_, tar) = signed_tar(&signer, 0);
    let t = trust(&[&other]);
    let r = check_bytes("p.tar", &tar, &CheckOptions { verifier: Some(&t), ..Default::default() });
    assert_eq!(r.signature, Some(SigStatus::UnknownSigner { cert_sn: signer.cert_sn().to_string() }));
    assert_eq!(r.result_code(), 4);
}

#[test]
fn a_key_of_another_resource_is_bad() {
    // The county's own (trusted) key signing a package that claims to come from the province.
    let county_key = SoftwareSigner::from_seed(3, county()).unwrap();
    let (_, tar) = signed_tar(&county_key, 0);
    let t = trust(&[&county_key]);
    let r = check_bytes("p.tar", &tar, &CheckOptions { verifier: Some(&t), ..Default::default() });
    match &r.signature {
        Some(SigStatus::Bad { reason, .. }) => assert!(reason.contains("belongs to"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn media_that_does_not_match_its_digest_is_an_error() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (ebd, mut media) = rainstorm_warning(&province(), Some(&county()), 7, 1000);
    media[0].data[500] ^= 1;
    let tar = Package::build(&ebd, Some(&signer as &dyn Signer), media, time()).unwrap().to_tar().unwrap();
    let r = check_bytes("p.tar", &tar, &CheckOptions::default());
    assert!(r.errors.iter().any(|e| e.message.contains("Digest does not match")), "{}", r.render());
    assert!(r.errors[0].location.contains("EBD/EBM/MsgContent/Auxiliary[1]"));
}

/// A tar with one raw entry (name and claimed size written as given).
fn raw_tar(entries: &[(&str, &[u8], Option<u64>, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, claimed, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(claimed.unwrap_or(data.len() as u64));
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::new(*kind));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn unpack_refuses_traversal_links_and_absurd_sizes() {
    let l = Limits::default();
    let e = Package::from_tar(&raw_tar(&[("../etc/passwd", b"x", None, b'0')]), &l).unwrap_err();
    assert!(matches!(e, PackageError::Entry { ref name, .. } if name == "../etc/passwd"), "{e}");
    let e = Package::from_tar(&raw_tar(&[("/abs.mp3", b"x", None, b'0')]), &l).unwrap_err();
    assert!(matches!(e, PackageError::Entry { .. }), "{e}");
    let e = Package::from_tar(&raw_tar(&[("EBDB_1.xml", b"", None, b'2')]), &l).unwrap_err();
    assert!(e.to_string().contains("plain files only"), "{e}");
    let e = Package::from_tar(&raw_tar(&[("big.mp3", b"x", Some(50 << 30), b'0')]), &l).unwrap_err();
    assert!(matches!(e, PackageError::TooLarge(_)), "{e}");
    let e = Package::from_tar(&raw_tar(&[("a.mp3", b"x", None, b'0')]), &l).unwrap_err();
    assert_eq!(e, PackageError::NoEbdb);
    assert_eq!(e.result_code(), 3);
    let many: Vec<(String, Vec<u8>)> = (0..70).map(|i| (format!("m{i}.mp3"), vec![1u8])).collect();
    let refs: Vec<(&str, &[u8], Option<u64>, u8)> = many.iter().map(|(n, d)| (n.as_str(), d.as_slice(), None, b'0')).collect();
    let e = Package::from_tar(&raw_tar(&refs), &l).unwrap_err();
    assert!(e.to_string().contains("more than 64 files"), "{e}");
}

#[test]
fn malformed_xml_errors_name_the_element_path() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (ebd, _) = rainstorm_warning(&province(), None, 7, 0);
    let xml = ebd.to_xml().replace("<Severity>1</Severity>", "<Severity>9</Severity>").replace("<EventType>11B03</EventType>", "");
    let r = check_bytes("w.xml", xml.as_bytes(), &CheckOptions::default());
    let _ = signer;
    let all: Vec<String> = r.errors.iter().map(|e| format!("{}: {}", e.location, e.message)).collect();
    assert!(all.iter().any(|e| e.contains("EBD/EBM/MsgBasicInfo/Severity") && e.contains("must be one of")), "{all:?}");
    assert!(all.iter().any(|e| e.contains("EBD/EBM/MsgBasicInfo") && e.contains("<EventType> is missing")), "{all:?}");
    assert_eq!(r.result_code(), 3);
    let r = check_bytes("w.xml", b"<EBD><EBDID>1</EBDID>\n<EBDType>EBM</EBD>", &CheckOptions::default());
    assert!(r.errors[0].location.starts_with("w.xml:2"), "{:?}", r.errors);
}

#[test]
fn the_receipt_for_a_tampered_package_says_4_and_relates_to_it() {
    let signer = SoftwareSigner::from_seed(1, province()).unwrap();
    let (ebd, tar) = signed_tar(&signer, 0);
    let t = trust(&[&signer]);
    let pat: &[u8] = b"<MsgTitle>";
    let at = tar.windows(pat.len()).position(|w| w == pat).unwrap() + pat.len();
    let mut bad = tar.clone();
    bad[at + 1] ^= 0x01;
    let r = check_bytes("p.tar", &bad, &CheckOptions { verifier: Some(&t), ..Default::default() });
    let own_id = cuncun_ebd::Ebdid::generate(10, &county(), 1);
    let resp = r.response(&county(), own_id, time()).unwrap();
    assert_eq!(resp.header.related_ebd.as_ref().unwrap().ebdid, ebd.header.ebdid);
    assert_eq!(resp.header.dest.as_ref().unwrap().ebrid, province());
    match &resp.body {
        cuncun_ebd::Body::EbdResponse(b) => {
            assert_eq!(b.result_code.0, 4);
            assert!(b.result_desc.as_deref().unwrap().contains("signature"));
        }
        other => panic!("{other:?}"),
    }
    // The receipt itself is a valid EBD.
    assert_eq!(Ebd::parse(resp.to_xml().as_bytes()).unwrap().0, resp);
}

#[test]
fn vendor_elements_are_warnings_and_the_file_stays_valid() {
    let (ebd, _) = rainstorm_warning(&province(), None, 7, 0);
    let xml = ebd.to_xml().replace("<MsgTitle>", "<VendorPriority>9</VendorPriority>\n      <MsgTitle>");
    let r = check_bytes("v.xml", xml.as_bytes(), &CheckOptions::default());
    assert!(r.is_valid(), "{}", r.render());
    assert!(
        r.warnings.iter().any(|w| w.location.ends_with("EBD/EBM/MsgContent/VendorPriority") && w.message.contains("unknown element")),
        "{}",
        r.render()
    );
    // A document without EBDType: one error for it, no noise about the body element.
    let xml = ebd.to_xml().replace("  <EBDType>EBM</EBDType>\n", "");
    let r = check_bytes("t.xml", xml.as_bytes(), &CheckOptions::default());
    assert_eq!(r.errors.len(), 1, "{}", r.render());
    assert!(r.errors[0].message.contains("<EBDType> is missing"), "{}", r.render());
    assert!(r.warnings.iter().all(|w| !w.location.ends_with("/EBM")), "{}", r.render());
}
