//! `cuncun cap check` and `cuncun cap sign` as a department's integrator runs them.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cuncun-cap/tests/fixtures")
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cuncun(args: &[&str]) -> Out {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cuncun"));
    c.current_dir(fixtures()).args(args);
    for v in ["CUNCUN_CONFIG", "CUNCUN_DATABASE_URL", "CUNCUN_LOG_LEVEL", "RUST_LOG"] {
        c.env_remove(v);
    }
    let o = c.output().unwrap();
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn show(o: &Out) -> String {
    format!("exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", o.code, o.stdout, o.stderr)
}

#[test]
fn valid_files_print_what_was_understood() {
    let o = cuncun(&["cap", "check", "cn_rainstorm_orange.xml", "multilang_typhoon.xml", "cancel_rainstorm.xml"]);
    assert_eq!(o.code, Some(0), "{}", show(&o));
    for want in [
        "cn_rainstorm_orange.xml: OK",
        "identifier: 50023641600100_20260712081500_1",
        "sender:     50023641600100",
        "msgType:    Alert    status: Actual",
        "level:      2 橙色 orange",
        "event:      11B03 暴雨",
        "region:     500236117000 (500236117)",
        "polygon:    4 vertices",
        "languages:  zh-CN, en-US",
        "circle:     centre 31.02,109.46 radius 25 km",
        "msgType:    Cancel",
        "references: 50023641600100 50023641600100_20260712113000_2 2026-07-12T11:30:00+08:00",
        "signature:  unsigned",
    ] {
        assert!(o.stdout.contains(want), "missing {want:?}\n{}", show(&o));
    }
}

#[test]
fn invalid_files_list_every_error_with_its_location_and_exit_1() {
    let o = cuncun(&["cap", "check", "nws_tornado.xml", "invalid_lat95.xml", "invalid_missing_required.xml", "no_such_file.xml"]);
    assert_eq!(o.code, Some(1), "{}", show(&o));
    for want in [
        "nws_tornado.xml: OK",
        "invalid_lat95.xml: INVALID (1 error(s))",
        "error: /alert/info[1]/area[1]/polygon[1]: latitude 95 in \"95.00,109.60\" is outside [-90, 90]",
        "invalid_missing_required.xml: INVALID (2 error(s))",
        "error: /alert/sender: required element <sender> is missing or empty",
        "error: /alert/info[1]/event: required element <event> is missing or empty",
        "no_such_file.xml: INVALID",
        "4 file(s) checked: 1 valid, 3 invalid",
    ] {
        assert!(o.stdout.contains(want), "missing {want:?}\n{}", show(&o));
    }
    // Geocodes outside the national division data are reported (warning, not error).
    let o = cuncun(&["cap", "check", "nws_tornado.xml"]);
    assert!(o.stdout.contains("geocode:    SAME=040027 (not a Chinese region code)"), "{}", show(&o));
}

#[test]
fn signatures_are_checked_against_the_trusted_certificate() {
    let o = cuncun(&["cap", "check", "--trust", "rsa_cert.pem", "--require-signature", "signed_rsa_exc.xml", "signed_rsa_inc.xml"]);
    assert_eq!(o.code, Some(0), "{}", show(&o));
    assert_eq!(o.stdout.matches("signature:  valid (rsa-sha256").count(), 2, "{}", show(&o));
    let o = cuncun(&["cap", "check", "--trust", "other_rsa_cert.pem", "signed_rsa_exc.xml"]);
    assert_eq!(o.code, Some(1), "{}", show(&o));
    assert!(o.stdout.contains("signature:  INVALID: signature value does not verify with the trusted RSA key"), "{}", show(&o));
    let o = cuncun(&["cap", "check", "--require-signature", "cn_rainstorm_orange.xml"]);
    assert_eq!(o.code, Some(1), "{}", show(&o));
    assert!(o.stdout.contains("the alert is unsigned and this sender's alerts must be signed"), "{}", show(&o));
    let o = cuncun(&["cap", "check", "--trust", "cn_rainstorm_orange.xml", "signed_rsa_exc.xml"]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("--trust cn_rainstorm_orange.xml"), "{}", show(&o));
}

#[test]
fn signed_output_checks_and_json_reports() {
    let o = cuncun(&["cap", "sign", "--key", "rsa_key.pem", "--cert", "rsa_cert.pem", "multilang_typhoon.xml"]);
    assert_eq!(o.code, Some(0), "{}", show(&o));
    let dir = std::env::temp_dir().join(format!("cuncun-cap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let signed = dir.join("signed.xml");
    std::fs::write(&signed, &o.stdout).unwrap();
    let s = signed.to_str().unwrap();
    let o = cuncun(&["cap", "check", "--json", "--trust", "rsa_cert.pem", s, "invalid_bad_enum.xml"]);
    assert_eq!(o.code, Some(1), "{}", show(&o));
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["valid"], true);
    assert_eq!(v[0]["signature"]["status"], "valid");
    assert_eq!(v[0]["mapped"]["severity"], 1);
    assert_eq!(v[1]["valid"], false);
    assert_eq!(v[1]["issues"][0]["path"], "/alert/status");
    // An invalid alert is not signed.
    let o = cuncun(&["cap", "sign", "--key", "rsa_key.pem", "invalid_open_polygon.xml"]);
    assert_ne!(o.code, Some(0));
    assert!(o.stderr.contains("polygon is not closed"), "{}", show(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
