//! Any bytes through the whole check (tar unpack, EBD parse, media checks, signature
//! verification against a trust list) and through the EBD and EBDS parsers: no panic.
#![no_main]

use cuncun_domain::eb::Ebrid;
use cuncun_ebd::check::{CheckOptions, check_bytes};
use cuncun_ebd::sign::{EbdsSignature, SoftwareSigner, TrustList};
use cuncun_ebd::Ebd;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn trust() -> &'static TrustList {
    static T: OnceLock<TrustList> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = TrustList::default();
        let owner = Ebrid::parse("25000000000000103010101").expect("valid literal");
        let s = SoftwareSigner::from_seed(1, owner).expect("seeded key");
        t.add(s.certificate().clone()).expect("fresh list");
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let opts = CheckOptions { verifier: Some(trust()), ..Default::default() };
    let r = check_bytes("fuzz", data, &opts);
    let _ = r.render();
    let _ = Ebd::parse(data);
    let _ = EbdsSignature::parse(data);
});
