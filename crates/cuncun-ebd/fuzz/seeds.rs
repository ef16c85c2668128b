//! Writes the seed corpus: valid documents of all 16 types, signature files, and signed and
//! unsigned packages (keyed like the fuzz target's trust list).
use cuncun_domain::eb::Ebrid;
use cuncun_ebd::model::Body;
use cuncun_ebd::package::Package;
use cuncun_ebd::sample::{Gen, Sample};
use cuncun_ebd::sign::{EbdsSignature, Signer, SoftwareSigner};
use cuncun_ebd::{Ebd, EbdTime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new("corpus/check");
    std::fs::create_dir_all(dir)?;
    let mut g = Gen::new(7);
    let mut n = 0;
    for name in Body::TYPES {
        for i in 0..3 {
            let ebd = Ebd::sample_of(name, &mut g).ok_or("type")?;
            std::fs::write(dir.join(format!("{name}-{i}.xml")), ebd.to_xml())?;
            n += 1;
        }
    }
    for i in 0..3 {
        std::fs::write(dir.join(format!("ebds-{i}.xml")), EbdsSignature::sample(&mut g).to_xml())?;
        n += 1;
    }
    let owner = Ebrid::parse("25000000000000103010101")?;
    let signer = SoftwareSigner::from_seed(1, owner.clone())?;
    for (i, media) in [0usize, 2000].into_iter().enumerate() {
        let (ebd, files) = cuncun_ebd::example::rainstorm_warning(&owner, None, 1, media);
        let t = EbdTime::now_beijing();
        let signed = Package::build(&ebd, Some(&signer as &dyn Signer), files.clone(), t)?.to_tar()?;
        let unsigned = Package::build(&ebd, None, files, t)?.to_tar()?;
        std::fs::write(dir.join(format!("signed-{i}.tar")), signed)?;
        std::fs::write(dir.join(format!("unsigned-{i}.tar")), unsigned)?;
        n += 2;
    }
    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
