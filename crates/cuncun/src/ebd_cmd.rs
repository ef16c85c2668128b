//! `cuncun keys ...` (SM2 signing keys, certificates, trust lists) and `cuncun ebd ...` (check
//! EBD XML files and EBDT tars; write an example package). The checks are
//! `cuncun_ebd::check_bytes`, the same function the HTTP endpoint uses.

use anyhow::{Context, bail};
use cuncun_domain::eb::Ebrid;
use cuncun_ebd::check::{CheckOptions, check_bytes};
use cuncun_ebd::package::Package;
use cuncun_ebd::sign::{CERT_FILE, Certificate, KEY_FILE, Signer, SoftwareSigner, TrustList};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum KeysCmd {
    /// Make a new SM2 signing key (signing-key.pem, owner-only) and its public certificate
    /// (certificate.toml, to give to peers) in DIR. Software keys are for development and for
    /// platforms without a crypto device.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// The resource code (23-digit EBRID) of the platform that will sign with this key.
        #[arg(long)]
        owner: String,
    },
    /// Show a certificate (a key directory or a certificate file): serial, owner, fingerprint.
    Show { path: PathBuf },
    /// The trust list: peers' certificates whose signatures are accepted.
    #[command(subcommand)]
    Trust(TrustCmd),
}

#[derive(clap::Subcommand)]
pub enum TrustCmd {
    /// Add a peer's certificate file to the trust list (created if absent).
    Add {
        #[arg(long)]
        trust: PathBuf,
        cert: PathBuf,
    },
    /// List the trusted certificates.
    List {
        #[arg(long)]
        trust: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub enum EbdCmd {
    /// Check EBD XML files or EBDT tars: print what they say (type, ids, sender, severity, event,
    /// areas, signature) or every error with its location. Exits 1 if any file is invalid.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Trust list to verify signatures against; without it signatures are read, not verified.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
    /// Write an example signed EBDT package (a county rainstorm warning with a recording).
    Example {
        /// Key directory made by `cuncun keys generate`.
        #[arg(long)]
        key: PathBuf,
        /// Directory to write EBDT_<EBDID>.tar into.
        #[arg(long)]
        out: PathBuf,
        /// Size of the (synthetic) recording; 0 for none.
        #[arg(long, default_value_t = 100_000)]
        media_bytes: usize,
    },
}

fn cert_path(p: &Path) -> PathBuf {
    if p.is_dir() { p.join(CERT_FILE) } else { p.to_path_buf() }
}

fn show_cert(c: &Certificate) {
    println!("serial (CertSN): {}", c.serial);
    println!("owner EBRID:     {} (region {})", c.owner_ebrid, c.owner_ebrid.region12());
    println!("algorithm:       {} (distid {})", c.algorithm, c.distid);
    println!("fingerprint:     {} (SM3 of the public key)", c.fingerprint());
    println!("created:         {}", c.created);
}

pub fn keys(cmd: KeysCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCmd::Generate { out, owner } => {
            let owner = Ebrid::parse(&owner).with_context(|| "--owner")?;
            let signer = SoftwareSigner::generate(owner)?;
            signer.save_dir(&out)?;
            println!("wrote {} (private, keep it here) and {} (give to peers)", out.join(KEY_FILE).display(), out.join(CERT_FILE).display());
            show_cert(signer.certificate());
        }
        KeysCmd::Show { path } => {
            let cert = Certificate::load(&cert_path(&path))?;
            if path.is_dir() && path.join(KEY_FILE).exists() {
                SoftwareSigner::load_dir(&path)?;
                println!("private key:     {} (matches the certificate)", path.join(KEY_FILE).display());
            }
            show_cert(&cert);
        }
        KeysCmd::Trust(TrustCmd::Add { trust, cert }) => {
            let cert = Certificate::load(&cert_path(&cert))?;
            let mut list = if trust.exists() { TrustList::load(&trust)? } else { TrustList::default() };
            let (serial, owner) = (cert.serial.clone(), cert.owner_ebrid.clone());
            list.add(cert).with_context(|| trust.display().to_string())?;
            let tmp = trust.with_extension("tmp");
            std::fs::write(&tmp, list.to_toml()).with_context(|| tmp.display().to_string())?;
            std::fs::rename(&tmp, &trust).with_context(|| trust.display().to_string())?;
            println!("trusted {serial} (owner {owner}); {} certificate(s) in {}", list.peers().len(), trust.display());
        }
        KeysCmd::Trust(TrustCmd::List { trust }) => {
            let list = TrustList::load(&trust)?;
            if list.peers().is_empty() {
                println!("no trusted certificates in {}", trust.display());
            }
            for c in list.peers() {
                println!("{}  owner {}  fingerprint {}  created {}", c.serial, c.owner_ebrid, c.fingerprint(), c.created);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ebd(cmd: EbdCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EbdCmd::Check { files, trust } => {
            let trust = trust.map(|t| TrustList::load(&t)).transpose()?;
            let opts = CheckOptions { verifier: trust.as_ref().map(|t| t as _), ..Default::default() };
            let mut invalid = 0;
            for f in &files {
                let name = f.display().to_string();
                let bytes = match std::fs::read(f) {
                    Ok(b) => b,
                    Err(e) => {
                        println!("{name}: INVALID\n  error: {name}: cannot read: {e}");
                        invalid += 1;
                        continue;
                    }
                };
                let report = check_bytes(&name, &bytes, &opts);
                print!("{}", report.render());
                if !report.is_valid() {
                    invalid += 1;
                }
            }
            if invalid > 0 {
                eprintln!("{invalid} of {} file(s) invalid", files.len());
                return Ok(ExitCode::from(1));
            }
        }
        EbdCmd::Example { key, out, media_bytes } => {
            let signer = SoftwareSigner::load_dir(&key)?;
            let owner = signer.certificate().owner_ebrid.clone();
            let (ebd, media) = cuncun_ebd::example::rainstorm_warning(&owner, None, 1, media_bytes);
            let pkg = Package::build(&ebd, Some(&signer as &dyn Signer), media, cuncun_ebd::EbdTime::now_beijing())?;
            let tar = pkg.to_tar()?;
            std::fs::create_dir_all(&out).with_context(|| out.display().to_string())?;
            let path = out.join(pkg.tar_name());
            if path.exists() {
                bail!("{} exists", path.display());
            }
            std::fs::write(&path, &tar).with_context(|| path.display().to_string())?;
            println!("wrote {} ({} bytes)", path.display(), tar.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
