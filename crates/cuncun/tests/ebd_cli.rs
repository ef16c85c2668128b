//! `cuncun keys ...` and `cuncun ebd check` as a vendor or a county operator runs them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn fresh_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("cuncun-ebdcli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}
impl Out {
    fn show(&self) -> String {
        format!("exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
}

fn cuncun(dir: &Path, args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_cuncun"))
        .args(args)
        .current_dir(dir)
        .env_remove("CUNCUN_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

const PROVINCE: &str = "25000000000000103010101";
const COUNTY: &str = "45002360000000103010101";

/// A province key, its certificate in the county's trust list, and a signed example package.
fn setup(d: &Path) -> PathBuf {
    let o = cuncun(d, &["keys", "generate", "--out", "prov", "--owner", PROVINCE]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains("serial (CertSN): "), "{}", o.show());
    let o = cuncun(d, &["keys", "trust", "add", "--trust", "trust.toml", "prov/certificate.toml"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    let o = cuncun(d, &["ebd", "example", "--key", "prov", "--out", "out", "--media-bytes", "5000"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    let tar = std::fs::read_dir(d.join("out")).unwrap().next().unwrap().unwrap().path();
    assert!(tar.file_name().unwrap().to_str().unwrap().starts_with("EBDT_10"));
    tar
}

#[test]
fn valid_signed_package_prints_what_it_says_and_exits_0() {
    let d = fresh_dir("valid");
    let tar = setup(&d.0);
    let o = cuncun(&d.0, &["ebd", "check", "--trust", "trust.toml", tar.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    for want in [
        ": valid",
        "type: EBM",
        &format!("from: {PROVINCE}"),
        "severity: 1 特别重大 red",
        "event: 11B03 暴雨 Rainstorm",
        "areas: 500236101000 (township)",
        "signature: ok (CertSN",
    ] {
        assert!(o.stdout.contains(want), "missing {want:?}\n{}", o.show());
    }
    // Without a trust list the signature is read, not verified, and the file still passes.
    let o = cuncun(&d.0, &["ebd", "check", tar.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains("not checked"), "{}", o.show());
}

#[test]
fn unknown_signer_and_invalid_xml_exit_1_with_locations() {
    let d = fresh_dir("invalid");
    let tar = setup(&d.0);
    // A county that trusts only its own key does not know the province's.
    let o = cuncun(&d.0, &["keys", "generate", "--out", "county", "--owner", COUNTY]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    let o = cuncun(&d.0, &["keys", "trust", "add", "--trust", "other.toml", "county"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    let o = cuncun(&d.0, &["ebd", "check", "--trust", "other.toml", tar.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stdout.contains("INVALID (ResultCode 4)") && o.stdout.contains("UNKNOWN SIGNER"), "{}", o.show());

    let bad = "<?xml version=\"1.0\"?>\n<EBD>\n  <EBDVersion>1</EBDVersion>\n  <EBDID>10250000000000001030101010000000000000001</EBDID>\n  <EBDType>EBM</EBDType>\n  <SRC><EBRID>123</EBRID></SRC>\n  <EBDTime>2024-07-01 08:30:00</EBDTime>\n  <EBM/>\n</EBD>\n";
    std::fs::write(d.0.join("bad.xml"), bad).unwrap();
    std::fs::write(d.0.join("notxml.tar"), b"garbage").unwrap();
    let o = cuncun(&d.0, &["ebd", "check", "bad.xml", "notxml.tar", "absent.xml"]);
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stdout.contains("bad.xml:6: EBD/SRC/EBRID: \"123\" is not valid"), "{}", o.show());
    assert!(o.stdout.contains("bad.xml:8: EBD/EBM: required element <EBMVersion> is missing"), "{}", o.show());
    assert!(o.stdout.contains("notxml.tar: INVALID"), "{}", o.show());
    assert!(o.stdout.contains("absent.xml: INVALID"), "{}", o.show());
    assert!(o.stderr.contains("3 of 3 file(s) invalid"), "{}", o.show());
}

#[test]
fn keys_show_and_trust_list() {
    let d = fresh_dir("keys");
    setup(&d.0);
    let o = cuncun(&d.0, &["keys", "show", "prov"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains("matches the certificate") && o.stdout.contains(PROVINCE), "{}", o.show());
    let o = cuncun(&d.0, &["keys", "trust", "list", "--trust", "trust.toml"]);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains(&format!("owner {PROVINCE}")), "{}", o.show());
    // Adding the same certificate twice is refused; generating over an existing key too.
    let o = cuncun(&d.0, &["keys", "trust", "add", "--trust", "trust.toml", "prov"]);
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stderr.contains("already trusted"), "{}", o.show());
    let o = cuncun(&d.0, &["keys", "generate", "--out", "prov", "--owner", PROVINCE]);
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stderr.contains("not overwriting"), "{}", o.show());
    let o = cuncun(&d.0, &["keys", "generate", "--out", "x", "--owner", "12345"]);
    assert_eq!(o.code, Some(1), "{}", o.show());
    assert!(o.stderr.contains("--owner") && o.stderr.contains("23 digits"), "{}", o.show());
}
