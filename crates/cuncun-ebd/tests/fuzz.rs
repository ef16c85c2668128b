//! Fuzz-style robustness: many thousands of mutated EBD XML documents and EBDT tars (byte
//! flips, insertions, deletions, truncations, spliced markup, copied ranges) go through the
//! whole check (unpack, parse, media and signature verification). Nothing may panic, and every
//! rejected input must come with at least one located error.
//!
//! Iterations per run: XML_CASES + TAR_CASES (printed at the end).
#![allow(clippy::unwrap_used)]

use cuncun_domain::eb::Ebrid;
use cuncun_ebd::check::{CheckOptions, check_bytes};
use cuncun_ebd::example::rainstorm_warning;
use cuncun_ebd::model::Body;
use cuncun_ebd::package::Package;
use cuncun_ebd::sample::Gen;
use cuncun_ebd::sign::{Signer, SoftwareSigner, TrustList};
use cuncun_ebd::{Ebd, EbdTime};

const XML_CASES: usize = 100_000;
const TAR_CASES: usize = 30_000;

const SNIPPETS: &[&[u8]] = &[
    b"<", b">", b"</", b"/>", b"&", b"&amp;", b"&#0;", b"&#x110000;", b"&bogus;", b"<![CDATA[", b"]]>", b"<!--", b"-->",
    b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]>", b"<?xml version=\"1.0\"?>", b"<EBD>", b"</EBD>", b"<EBM>", b"<EBDType>EBM</EBDType>",
    b"\xff\xfe", b"\xe6\x9a", b"\0", b"\r\n", b"<Dispatch>", b"99999999999999999999999999", b"-1", b"2024-13-45 25:61:61",
];

fn mutate(g: &mut Gen, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..g.range(1, 4) {
        let len = v.len().max(1) as u64;
        let at = g.below(len) as usize;
        match g.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << g.below(8)
            }
            1 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = g.below(256) as u8
            }
            2 => {
                let s = g.pick(SNIPPETS);
                let at = at.min(v.len());
                v.splice(at..at, s.iter().copied());
            }
            3 => {
                let end = (at + g.below(64) as usize).min(v.len());
                v.drain(at.min(end)..end);
            }
            4 => v.truncate(at),
            5 if !v.is_empty() => {
                let from = g.below(v.len() as u64) as usize;
                let end = (from + g.below(200) as usize).min(v.len());
                let chunk: Vec<u8> = v[from..end].to_vec();
                let at = at.min(v.len());
                v.splice(at..at, chunk);
            }
            _ => {
                let n = g.below(16) as usize;
                let at = at.min(v.len());
                let junk: Vec<u8> = (0..n).map(|_| g.below(256) as u8).collect();
                v.splice(at..at, junk);
            }
        }
    }
    v
}

#[test]
fn mutated_inputs_never_panic() {
    let start = std::time::Instant::now();
    let province = Ebrid::parse("25000000000000103010101").unwrap();
    let signer = SoftwareSigner::from_seed(1, province.clone()).unwrap();
    let mut trust = TrustList::default();
    trust.add(signer.certificate().clone()).unwrap();
    let opts = CheckOptions { verifier: Some(&trust), ..Default::default() };
    let mut g = Gen::new(20241122);

    // Seeds: a valid document of every type, and the realistic warning.
    let mut xml_seeds: Vec<Vec<u8>> = Vec::new();
    for name in Body::TYPES {
        for _ in 0..4 {
            xml_seeds.push(Ebd::sample_of(name, &mut g).unwrap().to_xml().into_bytes());
        }
    }
    let (ebd, media) = rainstorm_warning(&province, None, 1, 3000);
    xml_seeds.push(ebd.to_xml().into_bytes());
    let t = EbdTime::now_beijing();
    let tar_seeds = [
        Package::build(&ebd, Some(&signer as &dyn Signer), media.clone(), t).unwrap().to_tar().unwrap(),
        Package::build(&ebd, None, media, t).unwrap().to_tar().unwrap(),
    ];

    let (mut rejected, mut accepted) = (0usize, 0usize);
    for i in 0..XML_CASES {
        let seed = &xml_seeds[i % xml_seeds.len()];
        let input = mutate(&mut g, seed);
        let r = check_bytes("fuzz.xml", &input, &opts);
        if r.errors.is_empty() {
            accepted += 1;
        } else {
            rejected += 1;
            assert!(r.errors.iter().all(|e| !e.location.is_empty() && !e.message.is_empty()));
        }
    }
    for i in 0..TAR_CASES {
        let input = mutate(&mut g, &tar_seeds[i % 2]);
        let r = check_bytes("fuzz.tar", &input, &opts);
        if r.is_valid() { accepted += 1 } else { rejected += 1 }
    }
    // Pure noise too.
    for _ in 0..2_000 {
        let n = g.below(2048) as usize;
        let input: Vec<u8> = (0..n).map(|_| g.below(256) as u8).collect();
        let _ = check_bytes("noise", &input, &opts);
    }
    let total = XML_CASES + TAR_CASES + 2_000;
    println!("fuzz: {total} inputs ({accepted} accepted, {rejected} rejected) in {:.1?}", start.elapsed());
    assert!(rejected > total / 4, "mutations should mostly break documents: {rejected} of {total}");
}
