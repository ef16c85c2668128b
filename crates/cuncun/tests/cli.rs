//! The binary's failures, as a person at a terminal meets them: a non-zero exit code and one
//! message on stderr that names the problem (the file, the setting, the code, the user).
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Settings that the environment of the test run must not leak into the binary.
const CUNCUN_ENV: &[&str] = &[
    "CUNCUN_CONFIG",
    "CUNCUN_DATABASE_URL",
    "CUNCUN_WEB_LISTEN",
    "CUNCUN_WEB_OPS_LISTEN",
    "CUNCUN_WEB_SECURE_COOKIES",
    "CUNCUN_WEB_SESSION_TTL_HOURS",
    "CUNCUN_LOG_LEVEL",
    "RUST_LOG",
];

/// A fresh, empty directory for one test, removed when the test ends.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fresh_dir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("cuncun-cli-{}-{name}", std::process::id()));
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
        format!("exit code {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.code, self.stdout, self.stderr)
    }
    fn failed(&self) -> bool {
        self.code != Some(0)
    }
}

/// Runs the binary in `dir` with only the given CUNCUN_* variables, and waits at most two minutes.
fn cuncun(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    cuncun_stdin(dir, args, env, b"")
}

/// [`cuncun`] with `input` on stdin.
fn cuncun_stdin(dir: &Path, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cuncun"));
    cmd.args(args).current_dir(dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for k in CUNCUN_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = Out { code: status.and_then(|s| s.code()), stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() };
    assert!(status.is_some(), "`cuncun {}` did not finish within 120 s\n{}", args.join(" "), out.show());
    out
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/c.db", dir.display())
}

#[test]
fn missing_config_file_is_named() {
    let dir = fresh_dir("missing-config");
    let o = cuncun(&dir, &["--config", "/nonexistent/x.toml", "migrate"], &[]);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("/nonexistent/x.toml"), "{}", o.show());
    assert!(o.stderr.contains("error:"), "{}", o.show());
}

#[test]
fn config_typo_names_file_key_and_line() {
    let dir = fresh_dir("typo");
    let file = dir.join("typo.toml");
    std::fs::write(&file, "[web]\nlisten = \"127.0.0.1:8080\"\nlistn = \"x\"\n").unwrap();
    let o = cuncun(&dir, &["--config", file.to_str().unwrap(), "migrate"], &[]);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains(file.to_str().unwrap()), "the file is not named\n{}", o.show());
    assert!(o.stderr.contains("listn"), "the key is not named\n{}", o.show());
    assert!(o.stderr.contains("line 3"), "the line is not named\n{}", o.show());
}

#[test]
fn unsupported_database_scheme() {
    let dir = fresh_dir("scheme");
    let o = cuncun(&dir, &["migrate"], &[("CUNCUN_DATABASE_URL", "mysql://x")]);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("database.url"), "{}", o.show());
    assert!(o.stderr.contains("unsupported scheme"), "{}", o.show());
}

#[test]
fn unreachable_postgres_is_named_without_the_password() {
    let dir = fresh_dir("pg-down");
    let started = Instant::now();
    let o = cuncun(&dir, &["migrate"], &[("CUNCUN_DATABASE_URL", "postgres://u:SECRETPW@127.0.0.1:1/test")]);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("cannot open database"), "{}", o.show());
    assert!(!o.stderr.contains("SECRETPW"), "the password is printed\n{}", o.show());
    assert!(!o.stdout.contains("SECRETPW"), "the password is printed\n{}", o.show());
    eprintln!("unreachable PostgreSQL reported after {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn port_in_use_names_the_setting() {
    let dir = fresh_dir("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let url = sqlite_url(&dir);
    let o = cuncun(
        &dir,
        &["serve"],
        &[("CUNCUN_DATABASE_URL", &url), ("CUNCUN_WEB_LISTEN", &addr), ("CUNCUN_WEB_OPS_LISTEN", "127.0.0.1:0")],
    );
    drop(taken);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("web.listen"), "{}", o.show());
    assert!(o.stderr.contains("already in use"), "{}", o.show());
    assert!(o.stderr.contains(&addr), "{}", o.show());
}

#[test]
fn unknown_region_code() {
    let dir = fresh_dir("unknown-region");
    let url = sqlite_url(&dir);
    let o = cuncun(&dir, &["regions", "import", "--code", "500299"], &[("CUNCUN_DATABASE_URL", &url)]);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("unknown region code 500299"), "{}", o.show());
}

#[test]
fn import_add_users_and_verify_the_audit_log() {
    let dir = fresh_dir("import");
    let url = sqlite_url(&dir);
    let env = [("CUNCUN_DATABASE_URL", url.as_str())];

    let o = cuncun(&dir, &["regions", "import", "--code", "140824"], &env);
    assert!(!o.failed(), "{}", o.show());
    assert!(o.stdout.contains("9 townships, 151 villages"), "{}", o.show());

    let add = ["user", "add", "--username", "a1", "--role", "admin", "--region", "140824"];
    let o = cuncun(&dir, &add, &env);
    assert!(!o.failed(), "{}", o.show());
    let password = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed\n{}", o.show()));
    assert!(password.trim().len() >= 8, "{}", o.show());

    let o = cuncun(&dir, &add, &env);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("already taken"), "{}", o.show());
    assert!(o.stderr.contains("a1"), "{}", o.show());

    let o = cuncun(&dir, &["user", "add", "--username", "a2", "--role", "root", "--region", "140824"], &env);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("root"), "the role is not named\n{}", o.show());
    assert!(!o.stdout.contains("password:"), "{}", o.show());

    let o = cuncun(&dir, &["user", "add", "--username", "a3", "--role", "viewer", "--region", "500236"], &env);
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("500236") && o.stderr.contains("not loaded"), "{}", o.show());

    let o = cuncun(&dir, &["user", "list"], &env);
    assert!(!o.failed(), "{}", o.show());
    assert!(o.stdout.contains("a1") && !o.stdout.contains("a2") && !o.stdout.contains("a3"), "{}", o.show());

    // What a department may send: set from the CLI, checked by the application layer.
    let o = cuncun(&dir, &["user", "add", "--username", "qx", "--role", "department_sender", "--region", "140824"], &env);
    assert!(!o.failed(), "{}", o.show());
    let o = cuncun(&dir, &["user", "grant", "--username", "qx"], &env);
    assert!(!o.failed() && o.stdout.contains("event types [] in regions []"), "a new department may send nothing\n{}", o.show());
    let o = cuncun(&dir, &["user", "grant", "--username", "qx", "--events", "11B,11A01", "--regions", "140824"], &env);
    assert!(!o.failed() && o.stdout.contains("[11B, 11A01] in regions [140824]"), "{}", o.show());
    let o = cuncun(&dir, &["user", "grant", "--username", "qx", "--regions", "500236"], &env);
    assert!(o.failed() && o.stderr.contains("outside the department's region"), "{}", o.show());
    let o = cuncun(&dir, &["user", "grant", "--username", "a1", "--events", "11B"], &env);
    assert!(o.failed() && o.stderr.contains("not a department sender"), "{}", o.show());

    let o = cuncun(&dir, &["audit", "verify"], &env);
    assert_eq!(o.code, Some(0), "{}", o.show());
    assert!(o.stdout.contains("intact"), "{}", o.show());
    assert!(!o.stdout.contains("NOT intact"), "{}", o.show());
}

#[test]
fn short_password_from_stdin_is_refused() {
    let dir = fresh_dir("stdin");
    let url = sqlite_url(&dir);
    let o = cuncun(&dir, &["regions", "import", "--code", "140824100"], &[("CUNCUN_DATABASE_URL", &url)]);
    assert!(!o.failed(), "{}", o.show());
    let args = ["user", "add", "--username", "s1", "--role", "viewer", "--region", "140824100", "--password-stdin"];
    let o = cuncun_stdin(&dir, &args, &[("CUNCUN_DATABASE_URL", &url)], b"short\n");
    assert!(o.failed(), "{}", o.show());
    assert!(o.stderr.contains("fewer than 8 characters"), "{}", o.show());
    let o = cuncun_stdin(&dir, &args, &[("CUNCUN_DATABASE_URL", &url)], b"long enough pw\n");
    assert!(!o.failed(), "{}", o.show());
    assert!(!o.stdout.contains("password:"), "a password from stdin is not printed\n{}", o.show());
}
