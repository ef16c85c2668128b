//! `cuncun bench ebd`: EBD parse + verify throughput on one core, the work a receiving platform
//! does per incoming package (unpack the tar, parse the EBDB, check media size and SM3 digest,
//! verify the SM2 signature against the trust list), for a realistic EBM.

use cuncun_domain::eb::Ebrid;
use cuncun_ebd::check::{CheckOptions, check_bytes};
use cuncun_ebd::example::rainstorm_warning;
use cuncun_ebd::package::{Limits, Package};
use cuncun_ebd::sign::{Signer, SoftwareSigner, TrustList, verify_ebdb};
use cuncun_ebd::{Ebd, EbdTime};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct EbdBenchArgs {
    /// Seconds to measure each case.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Size of the recording in the package with media (bytes).
    #[arg(long, default_value_t = 240_000)]
    pub media_bytes: usize,
}

/// Runs `f` repeatedly for about `d`; returns (iterations, elapsed).
fn measure(d: Duration, mut f: impl FnMut() -> bool) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        if !f() {
            anyhow::bail!("the benchmark package did not check as valid");
        }
        n += 1;
    }
    Ok((n, start.elapsed()))
}

pub fn run(a: EbdBenchArgs) -> anyhow::Result<()> {
    let sender = Ebrid::parse("25000000000000103010101")?;
    let dest = Ebrid::parse("45002360000000103010101")?;
    let signer = SoftwareSigner::from_seed(1, sender.clone())?;
    let mut trust = TrustList::default();
    trust.add(signer.certificate().clone())?;
    let opts = CheckOptions { verifier: Some(&trust), ..Default::default() };
    let d = Duration::from_secs_f64(a.seconds.max(0.1));
    println!("EBD parse+verify, one thread (per core); each package: unpack tar, parse EBDB, check media size and SM3 digest, verify SM2-SM3 signature");
    for media in [0usize, a.media_bytes] {
        let (ebd, files) = rainstorm_warning(&sender, Some(&dest), 1, media);
        let pkg = Package::build(&ebd, Some(&signer as &dyn Signer), files, EbdTime::now_beijing())?;
        let tar = pkg.to_tar()?;
        let (n, el) = measure(d, || check_bytes("bench.tar", &tar, &opts).is_valid())?;
        let secs = el.as_secs_f64();
        let rate = n as f64 / secs;
        println!(
            "  EBM, EBDB {} bytes, media {} bytes, tar {} bytes: {:.0} packages/s, {:.1} MB/s ({} in {:.2} s)",
            pkg.ebdb.len(),
            media,
            tar.len(),
            rate,
            rate * tar.len() as f64 / 1e6,
            n,
            secs
        );
        // Where the time goes.
        let (n1, e1) = measure(d / 3, || Package::from_tar(&tar, &Limits::default()).is_ok())?;
        let (n2, e2) = measure(d / 3, || Ebd::parse(&pkg.ebdb).is_ok())?;
        let (n3, e3) = measure(d / 3, || {
            verify_ebdb(&pkg.ebdid, &pkg.ebdb, pkg.ebds.as_deref(), Some(&sender), Some(&trust)).is_ok()
        })?;
        let us = |n: u64, e: Duration| e.as_secs_f64() * 1e6 / n as f64;
        println!(
            "    per package: unpack {:.1} us, parse EBDB {:.1} us, verify signature {:.1} us",
            us(n1, e1),
            us(n2, e2),
            us(n3, e3)
        );
    }
    Ok(())
}
