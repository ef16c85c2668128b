//! Every one of the 16 EBD types, and the signature file, written and read back equal: random
//! valid values (free text with markup characters, CR/LF, Chinese and non-BMP characters,
//! optional and repeated elements present or not).
#![allow(clippy::unwrap_used)]

use cuncun_ebd::model::Body;
use cuncun_ebd::sample::{Gen, Sample};
use cuncun_ebd::sign::EbdsSignature;
use cuncun_ebd::Ebd;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_type_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        for name in Body::TYPES {
            let ebd = Ebd::sample_of(name, &mut g).unwrap();
            let xml = ebd.to_xml();
            let (back, warnings) = match Ebd::parse(xml.as_bytes()) {
                Ok(x) => x,
                Err(e) => panic!("{name}: {e}\n{xml}"),
            };
            prop_assert_eq!(&back, &ebd, "{}", name);
            prop_assert!(warnings.is_empty(), "{name}: {warnings:?}");
            prop_assert_eq!(back.to_xml(), xml, "writing is deterministic");
            prop_assert_eq!(back.ebd_type(), *name);
        }
    }

    #[test]
    fn signature_file_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let s = EbdsSignature::sample(&mut g);
        let back = EbdsSignature::parse(s.to_xml().as_bytes()).unwrap();
        prop_assert_eq!(back, s);
    }
}

#[test]
fn there_are_sixteen_types() {
    assert_eq!(Body::TYPES.len(), 16);
    let mut g = Gen::new(1);
    for name in Body::TYPES {
        assert!(Ebd::sample_of(name, &mut g).is_some(), "{name}");
    }
}

/// Over the samples every optional element appears and is absent, and lists of 0 and several
/// items occur: the round trip above covers them.
#[test]
fn samples_vary() {
    let mut with_dispatch = 0;
    let mut without = 0;
    let mut g = Gen::new(42);
    for _ in 0..200 {
        if let Some(Ebd { body: Body::Ebm(m), .. }) = Ebd::sample_of("EBM", &mut g) {
            if m.dispatch.len() > 1 { with_dispatch += 1 } else { without += 1 }
        }
    }
    assert!(with_dispatch > 10 && without > 10, "{with_dispatch} {without}");
}

/// The writer, the packer and the signer agree with the check: a signed package of any type
/// from a trusted sender checks valid with ResultCode 1 (EBM aside: random EBMs name media that
/// is not there and may end before they start, which the check rightly refuses).
#[test]
fn signed_packages_of_every_type_check_valid() {
    use cuncun_ebd::check::{CheckOptions, check_bytes};
    use cuncun_ebd::package::Package;
    use cuncun_ebd::sign::{SigStatus, Signer, SoftwareSigner, TrustList};
    let mut g = Gen::new(99);
    for round in 0..8 {
        for name in Body::TYPES.iter().filter(|n| **n != "EBM") {
            let ebd = Ebd::sample_of(name, &mut g).unwrap();
            let signer = SoftwareSigner::from_seed(round, ebd.header.src.ebrid.clone()).unwrap();
            let mut trust = TrustList::default();
            trust.add(signer.certificate().clone()).unwrap();
            let tar = Package::build(&ebd, Some(&signer as &dyn Signer), vec![], ebd.header.ebd_time)
                .unwrap()
                .to_tar()
                .unwrap();
            let r = check_bytes("x.tar", &tar, &CheckOptions { verifier: Some(&trust), ..Default::default() });
            assert!(r.is_valid() && r.result_code() == 1, "{name}: {}", r.render());
            assert!(matches!(r.signature, Some(SigStatus::Ok { .. })), "{name}");
            assert_eq!(r.ebd.as_ref(), Some(&ebd));
        }
    }
}
