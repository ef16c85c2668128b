//! `cuncun bench cap`: CAP import throughput on one core — parse + validate + map, and signature
//! verification (RSA-2048 and ECDSA P-256 alerts signed by xmlsec1) on top.

use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct CapBenchArgs {
    /// Seconds to run each measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
}

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_bytes!(concat!("../../cuncun-cap/tests/fixtures/", $name)).as_slice())
    };
}

const UNSIGNED: &[(&str, &[u8])] = &[
    fixture!("cn_rainstorm_orange.xml"),
    fixture!("multilang_typhoon.xml"),
    fixture!("update_rainstorm.xml"),
    fixture!("cancel_rainstorm.xml"),
    fixture!("nws_tornado.xml"),
    fixture!("meteoalarm_wind.xml"),
];

/// CPU time of this thread, seconds (Linux schedstat), so figures are per core even when other
/// processes compete for the machine.
fn thread_cpu_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse::<f64>().ok().map(|ns| ns / 1e9)
}

fn measure(label: &str, docs: &[&[u8]], seconds: f64, f: &dyn Fn(&[u8]) -> bool) -> anyhow::Result<()> {
    for d in docs {
        anyhow::ensure!(f(d), "{label}: a benchmark document did not pass its check");
    }
    let budget = Duration::from_secs_f64(seconds.max(0.1));
    let t0 = Instant::now();
    let c0 = thread_cpu_s();
    let (mut n, mut bytes) = (0u64, 0u64);
    while t0.elapsed() < budget {
        for d in docs {
            std::hint::black_box(f(d));
            n += 1;
            bytes += d.len() as u64;
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    // Per core: divided by the thread's CPU time (wall time where schedstat is unavailable).
    let s = match (c0, thread_cpu_s()) {
        (Some(a), Some(b)) if b > a => b - a,
        _ => wall,
    };
    println!(
        "{label:<44} {:>9.0} alerts/s  {:>7.1} MB/s per core  ({} alerts, mean {:.1} KB, {:.2} s CPU of {:.1} s wall)",
        n as f64 / s,
        bytes as f64 / s / 1e6,
        n,
        bytes as f64 / n.max(1) as f64 / 1e3,
        s,
        wall
    );
    Ok(())
}

pub fn run(a: CapBenchArgs) -> anyhow::Result<()> {
    let docs: Vec<&[u8]> = UNSIGNED.iter().map(|d| d.1).collect();
    let known = |_: &cuncun_domain::RegionCode| true;
    let opts = cuncun_cap::CheckOptions { trusted: None, require_signature: false, known_region: &known };
    println!("CAP 1.2 import throughput ({} documents: {})", docs.len(), UNSIGNED.iter().map(|d| d.0).collect::<Vec<_>>().join(", "));
    measure("parse (XML tree + CAP structure)", &docs, a.seconds, &|d| {
        std::str::from_utf8(d).ok().and_then(|t| cuncun_cap::parse_alert(t).ok()).is_some()
    })?;
    measure("parse + validate + map (cuncun_cap::check)", &docs, a.seconds, &|d| cuncun_cap::check(d, &opts).valid)?;
    let signed: &[(&[u8], &[u8])] = &[
        (
            include_bytes!("../../cuncun-cap/tests/fixtures/signed_rsa_exc.xml"),
            include_bytes!("../../cuncun-cap/tests/fixtures/rsa_cert.pem"),
        ),
        (
            include_bytes!("../../cuncun-cap/tests/fixtures/signed_ecdsa_inc.xml"),
            include_bytes!("../../cuncun-cap/tests/fixtures/ec_cert.pem"),
        ),
    ];
    for (label, (doc, cert)) in ["check + verify RSA-2048 (exc-c14n)", "check + verify ECDSA P-256 (c14n)"].iter().zip(signed) {
        let key = cuncun_cap::TrustedKey::from_bytes(cert)?;
        let o = cuncun_cap::CheckOptions { trusted: Some(&key), require_signature: true, known_region: &known };
        measure(label, &[doc], a.seconds, &|d| {
            let r = cuncun_cap::check(d, &o);
            r.valid && matches!(r.signature, cuncun_cap::SignatureStatus::Valid { .. })
        })?;
    }
    Ok(())
}
