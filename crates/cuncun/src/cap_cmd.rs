//! `cuncun cap ...`: the CAP 1.2 validator a department or vendor runs before connecting, and
//! signing of outgoing alerts. The checks are `cuncun_cap::check`, the same an import endpoint uses.

use anyhow::Context;
use cuncun_cap::{CheckOptions, TrustedKey};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum CapCmd {
    /// Check CAP 1.2 files: print what was understood (identifier, sender, msgType, status,
    /// level, event code, areas, languages, signature) or every error with its element path.
    /// Exits 1 if any file is invalid.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The sender's trusted certificate or public key (PEM or DER): signatures are verified
        /// against it; a failed signature makes the file invalid.
        #[arg(long)]
        trust: Option<PathBuf>,
        /// Refuse unsigned alerts (as for a department whose alerts must be signed).
        #[arg(long)]
        require_signature: bool,
        /// Print the reports as JSON (one array) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sign a CAP file with an enveloped XML signature (RSA-SHA256, exclusive c14n) using a
    /// software key; the signed alert goes to stdout.
    Sign {
        file: PathBuf,
        /// RSA private key, PKCS#8 or PKCS#1 PEM.
        #[arg(long)]
        key: PathBuf,
        /// Certificate (PEM) to embed in KeyInfo.
        #[arg(long)]
        cert: Option<PathBuf>,
    },
}

/// Whether a region code is in the bundled national division data.
fn known_region(r: &cuncun_domain::RegionCode) -> bool {
    cuncun_regions::lookup(r.as_str()).is_ok()
}

pub fn run(cmd: CapCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CapCmd::Check { files, trust, require_signature, json } => {
            let key = match &trust {
                Some(p) => {
                    let bytes = std::fs::read(p).with_context(|| format!("reading --trust {}", p.display()))?;
                    Some(TrustedKey::from_bytes(&bytes).with_context(|| format!("--trust {}", p.display()))?)
                }
                None => None,
            };
            let opts = CheckOptions { trusted: key.as_ref(), require_signature, known_region: &known_region };
            let mut all_valid = true;
            let mut reports_invalid = 0usize;
            let mut reports = Vec::new();
            for f in &files {
                let name = f.display().to_string();
                let report = match std::fs::read(f) {
                    Ok(bytes) => cuncun_cap::check(&bytes, &opts),
                    Err(e) => {
                        all_valid = false;
                        reports_invalid += 1;
                        if json {
                            reports.push(serde_json::json!({ "file": name, "valid": false, "error": format!("cannot read: {e}") }));
                        } else {
                            println!("{name}: INVALID\n  error: cannot read the file: {e}");
                        }
                        continue;
                    }
                };
                all_valid &= report.valid;
                reports_invalid += usize::from(!report.valid);
                if json {
                    let mut v = serde_json::to_value(&report)?;
                    if let Some(o) = v.as_object_mut() {
                        o.insert("file".into(), serde_json::Value::String(name));
                    }
                    reports.push(v);
                } else {
                    print!("{}", report.render(&name));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else if files.len() > 1 {
                let bad = reports_invalid;
                println!("{} file(s) checked: {} valid, {bad} invalid", files.len(), files.len() - bad);
            }
            Ok(if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        CapCmd::Sign { file, key, cert } => {
            let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
            let key_pem = read(&key)?;
            let cert_pem = cert.as_ref().map(read).transpose()?;
            let signer = cuncun_cap::RsaSigner::from_pem(&key_pem, cert_pem.as_deref())
                .with_context(|| format!("--key {}", key.display()))?;
            let xml = read(&file)?;
            // Refuse to sign what a receiver would refuse.
            if let Err(issues) = cuncun_cap::read_alert(&xml) {
                for i in issues.iter().filter(|i| i.level == cuncun_cap::Level::Error) {
                    eprintln!("{}: {i}", file.display());
                }
                anyhow::bail!("{} is not a valid CAP 1.2 alert; not signed", file.display());
            }
            let signed = signer.sign(&xml).with_context(|| format!("signing {}", file.display()))?;
            print!("{signed}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
