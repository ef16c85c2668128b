//! What the crash tests share: the demo server as a child process (stopped by SIGKILL when
//! dropped, or by an armed failpoint), free ports, and logging in.
#![allow(clippy::unwrap_used, dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server(pub Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the demo server (web, ops and terminal gateway on `ports`, no simulated terminals)
/// with `failpoint` armed (it aborts the process there); returns it and the password it printed.
pub fn start(dir: &std::path::Path, ports: (u16, u16, u16), failpoint: Option<&str>) -> (Server, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cuncun"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CUNCUN_") && k != "CUNCUN_CI" {
            c.env_remove(k);
        }
    }
    if let Some(f) = failpoint {
        c.env("CUNCUN_FAILPOINTS", f);
    }
    let mut child = c
        .args(["demo", "--data-dir"])
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{}", ports.0), "--ops-listen", &format!("127.0.0.1:{}", ports.1)])
        .args(["--bus-listen", &format!("127.0.0.1:{}", ports.2), "--sim", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("demo printed its password");
        if let Some(p) = line.strip_prefix("log in as: admin / ") {
            return (server, p.trim().to_string());
        }
    }
}

/// Waits (up to 10 s) for a server stopped by its failpoint to exit.
pub async fn wait_exit(server: &mut Server, what: &str) {
    let t = Instant::now();
    while server.0.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: the process did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> String {
    let r: Value = http.post(format!("{base}/api/v1/login")).json(&json!({"username": user, "password": pw})).send().await.unwrap().json().await.unwrap();
    r["token"].as_str().unwrap_or_else(|| panic!("login {user}: {r}")).to_string()
}
