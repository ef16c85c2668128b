//! The WebDriver harness shared by the browser tests: the demo server, a small W3C WebDriver
//! client over chromedriver and Chromium, and the one-at-a-time lock.
#![allow(dead_code, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which WebDriver returns an element reference.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Kills (by its id) and reaps a child process we started, however the test ends.
pub struct KillOnDrop {
    pub child: Child,
    pub what: &'static str,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Err(e) = self.child.kill()
        {
            eprintln!("could not kill {} (pid {}): {e}", self.what, self.child.id());
        }
        let _ = self.child.wait();
    }
}

/// A directory removed when the test ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("cuncun-browser-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- the demo server ----

pub struct Demo {
    pub _proc: KillOnDrop,
    pub url: String,
    pub ops_url: String,
    pub password: String,
}

/// Starts `cuncun demo` in `dir` and waits until it has printed its address and the password.
pub fn start_demo(dir: &Path, sim: usize) -> Demo {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cuncun"));
    cmd.args(["demo", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--bus-listen", "127.0.0.1:0"])
        .args(["--sim", &sim.to_string()])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("CUNCUN_") && k != "CUNCUN_CI" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("cannot start `cuncun demo`");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let proc = KillOnDrop { child, what: "cuncun demo" };

    let err_text = Arc::new(Mutex::new(String::new()));
    let sink = err_text.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Keeps reading after the test has what it needs, so that the server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });

    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let mut seen = Vec::new();
    let (mut url, mut ops_url, mut password) = (None, None, None);
    while url.is_none() || password.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.split("cuncun is serving at ").nth(1) {
                    url = rest.split_whitespace().next().map(str::to_string);
                    ops_url = rest
                        .split_whitespace()
                        .find(|w| w.ends_with("/healthz"))
                        .map(|w| w.trim_end_matches("/healthz").to_string());
                }
                if let Some(p) = line.strip_prefix("log in as: admin / ") {
                    password = Some(p.trim().to_string());
                }
                seen.push(line);
            }
            Err(e) => panic!(
                "`cuncun demo` did not print its address and the admin password within 120 s ({e:?})\n\
                 --- stdout so far ---\n{}\n--- stderr ---\n{}",
                seen.join("\n"),
                err_text.lock().unwrap()
            ),
        }
    }
    eprintln!("demo up in {:.1} s: {}", started.elapsed().as_secs_f64(), seen.join(" | "));
    Demo { _proc: proc, url: url.unwrap(), ops_url: ops_url.unwrap_or_default(), password: password.unwrap() }
}

// ---- a small WebDriver client ----

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Synchronous on the outside (each call runs on its own runtime), so that `Drop` can still end
/// the browser session after a failed assertion.
pub struct Browser {
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    /// http://127.0.0.1:PORT/session/ID
    pub base: String,
    pub _driver: KillOnDrop,
    pub _profile: TempDir,
    pub driver_log: PathBuf,
}

#[derive(Clone, Debug)]
pub struct El(pub String);

impl Browser {
    pub fn start(work: &Path) -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(90)).build().unwrap();
        let port = free_port();
        let driver_log = work.join("chromedriver.log");
        let log = std::fs::File::create(&driver_log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start chromedriver");
        let driver = KillOnDrop { child, what: "chromedriver" };
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = rt.block_on(async {
                let r = http.get(format!("{root}/status")).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                v["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver on port {port} was not ready within 30 s\n{}",
                std::fs::read_to_string(&driver_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = TempDir::new("chromium-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--no-proxy-server", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.0.display()),
                ],
            },
        }}});
        let v = rt.block_on(async {
            let r = http.post(format!("{root}/session")).json(&caps).send().await;
            match r {
                Ok(r) => r.json::<Value>().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        });
        let v = v.unwrap_or_else(|e| {
            panic!("new session: {e}\n{}", std::fs::read_to_string(&driver_log).unwrap_or_default())
        });
        let Some(id) = v["value"]["sessionId"].as_str() else {
            panic!(
                "chromedriver did not start Chromium: {v}\n--- chromedriver log ---\n{}",
                std::fs::read_to_string(&driver_log).unwrap_or_default()
            );
        };
        eprintln!(
            "browser: {} {}",
            v["value"]["capabilities"]["browserName"], v["value"]["capabilities"]["browserVersion"]
        );
        let b =
            Browser { rt, http, base: format!("{root}/session/{id}"), _driver: driver, _profile: profile, driver_log };
        b.cmd("POST", "/timeouts", json!({"implicit": 0, "pageLoad": 60000, "script": 30000}));
        b
    }

    /// One WebDriver command; `Err` carries the WebDriver error code and message.
    pub fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let req = match method {
                "GET" => self.http.get(&url),
                "DELETE" => self.http.delete(&url),
                _ => self.http.post(&url).json(&body),
            };
            let res = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
            let status = res.status();
            let v: Value = res.json().await.map_err(|e| format!("{method} {path}: {e}"))?;
            if status.is_success() {
                Ok(v["value"].clone())
            } else {
                Err(format!("{method} {path}: {} {}: {}", status, v["value"]["error"], v["value"]["message"]))
            }
        })
    }

    pub fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body).unwrap_or_else(|e| panic!("{e}\n{}", self.where_()))
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", json!({})).as_str().unwrap_or_default().to_string()
    }

    /// The path of the current page, without the query.
    pub fn path(&self) -> String {
        let u = self.url();
        let after_host = u.splitn(4, '/').nth(3).unwrap_or("");
        format!("/{}", after_host.split(['?', '#']).next().unwrap_or(""))
    }

    pub fn script(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    pub fn lang(&self) -> String {
        self.script("return document.documentElement.lang;").as_str().unwrap_or_default().to_string()
    }

    pub fn els(&self, css: &str) -> Vec<El> {
        self.cmd("POST", "/elements", json!({"using": "css selector", "value": css}))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| El(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    pub fn els_in(&self, parent: &El, css: &str) -> Vec<El> {
        self.cmd("POST", &format!("/element/{}/elements", parent.0), json!({"using": "css selector", "value": css}))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| El(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// The one element matching `css`, waiting up to 10 s for it to appear.
    pub fn el(&self, css: &str) -> El {
        let v = self.wait(&format!("an element {css:?}"), || {
            self.try_cmd("POST", "/element", json!({"using": "css selector", "value": css})).ok()
        });
        El(v[ELEMENT].as_str().unwrap().to_string())
    }

    pub fn text(&self, e: &El) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), json!({})).as_str().unwrap_or_default().to_string()
    }

    pub fn text_of(&self, css: &str) -> String {
        let e = self.el(css);
        self.text(&e)
    }

    pub fn attr(&self, e: &El, name: &str) -> String {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn click(&self, e: &El) {
        self.cmd("POST", &format!("/element/{}/click", e.0), json!({}));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css);
        self.cmd("POST", &format!("/element/{}/clear", e.0), json!({}));
        self.cmd("POST", &format!("/element/{}/value", e.0), json!({ "text": text }));
    }

    /// Polls `f` for up to 10 s.
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("waited 10 s for {what}\n{}", self.where_());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page holding `e` has been replaced (after a click that submits a form and
    /// comes back to the same path, the old page is still there for a moment).
    pub fn wait_replaced(&self, e: &El) {
        self.wait("the page to be replaced", || self.try_cmd("GET", &format!("/element/{}/name", e.0), json!({})).is_err().then_some(()));
    }

    pub fn wait_for_path(&self, path: &str) {
        self.wait(&format!("the page {path}"), || (self.path() == path).then_some(()));
    }

    /// Where the browser is and what it shows, for failure messages.
    pub fn where_(&self) -> String {
        let url = self.try_cmd("GET", "/url", json!({})).unwrap_or_default();
        let body = self
            .try_cmd(
                "POST",
                "/execute/sync",
                json!({"script": "return document.body ? document.body.innerText : '';", "args": []}),
            )
            .unwrap_or_default();
        format!("--- browser at {url} shows ---\n{}", body.as_str().unwrap_or_default())
    }

    pub fn login(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/login"));
        self.wait_for_path("/login");
        self.type_into("#username", username);
        self.type_into("#password", password);
        let submit = self.el("#login-submit");
        self.click(&submit);
        self.wait_for_path("/");
    }

    pub fn logout(&self) {
        let b = self.el("#logout");
        self.click(&b);
        self.wait_for_path("/login");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.where_());
            if let Ok(log) = std::fs::read_to_string(&self.driver_log) {
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!("--- chromedriver log (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // Ends Chromium; chromedriver itself is killed by its own guard afterwards.
        if let Err(e) = self.try_cmd("DELETE", "", json!({})) {
            eprintln!("could not end the browser session: {e}");
        }
    }
}


/// One browser test at a time: they would race for chromedriver's port, and a debug build of the
/// demo plus Chromium already fills this machine's two cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn tools_present() -> bool {
    let present = Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists();
    if !present {
        if std::env::var("CUNCUN_CI").as_deref() == Ok("1") {
            panic!("CUNCUN_CI=1 but chromedriver is missing: apt-get install chromium chromium-driver");
        }
        eprintln!(
            "NOTE: the browser test did NOT run: {CHROMEDRIVER} or {CHROMIUM} is missing \
             (apt-get install chromium chromium-driver); set CUNCUN_CI=1 to make this a failure"
        );
    }
    present
}

