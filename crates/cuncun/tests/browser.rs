//! A person in a real browser: Debian's Chromium, driven through chromedriver with the W3C
//! WebDriver protocol, logs in to the demo county, drills down the region tree, switches the
//! language, logs out, and meets the region scope as a township viewer.
//!
//! Needs /usr/bin/chromedriver and /usr/bin/chromium (`apt-get install chromium chromium-driver`).
//! Without them the test says so and passes, unless CUNCUN_CI=1, where it fails.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Kills (by its id) and reaps a child process we started, however the test ends.
struct KillOnDrop {
    child: Child,
    what: &'static str,
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
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
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

struct Demo {
    _proc: KillOnDrop,
    url: String,
    ops_url: String,
    password: String,
}

/// Starts `cuncun demo` in `dir` and waits until it has printed its address and the password.
fn start_demo(dir: &Path, sim: usize) -> Demo {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Synchronous on the outside (each call runs on its own runtime), so that `Drop` can still end
/// the browser session after a failed assertion.
struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// http://127.0.0.1:PORT/session/ID
    base: String,
    _driver: KillOnDrop,
    _profile: TempDir,
    driver_log: PathBuf,
}

#[derive(Clone, Debug)]
struct El(String);

impl Browser {
    fn start(work: &Path) -> Browser {
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
    fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
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

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body).unwrap_or_else(|e| panic!("{e}\n{}", self.where_()))
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", json!({})).as_str().unwrap_or_default().to_string()
    }

    /// The path of the current page, without the query.
    fn path(&self) -> String {
        let u = self.url();
        let after_host = u.splitn(4, '/').nth(3).unwrap_or("");
        format!("/{}", after_host.split(['?', '#']).next().unwrap_or(""))
    }

    fn script(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", json!({ "script": script, "args": [] }))
    }

    fn lang(&self) -> String {
        self.script("return document.documentElement.lang;").as_str().unwrap_or_default().to_string()
    }

    fn els(&self, css: &str) -> Vec<El> {
        self.cmd("POST", "/elements", json!({"using": "css selector", "value": css}))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| El(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    fn els_in(&self, parent: &El, css: &str) -> Vec<El> {
        self.cmd("POST", &format!("/element/{}/elements", parent.0), json!({"using": "css selector", "value": css}))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| El(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// The one element matching `css`, waiting up to 10 s for it to appear.
    fn el(&self, css: &str) -> El {
        let v = self.wait(&format!("an element {css:?}"), || {
            self.try_cmd("POST", "/element", json!({"using": "css selector", "value": css})).ok()
        });
        El(v[ELEMENT].as_str().unwrap().to_string())
    }

    fn text(&self, e: &El) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), json!({})).as_str().unwrap_or_default().to_string()
    }

    fn text_of(&self, css: &str) -> String {
        let e = self.el(css);
        self.text(&e)
    }

    fn attr(&self, e: &El, name: &str) -> String {
        self.cmd("GET", &format!("/element/{}/attribute/{name}", e.0), json!({}))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn click(&self, e: &El) {
        self.cmd("POST", &format!("/element/{}/click", e.0), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.el(css);
        self.cmd("POST", &format!("/element/{}/clear", e.0), json!({}));
        self.cmd("POST", &format!("/element/{}/value", e.0), json!({ "text": text }));
    }

    /// Polls `f` for up to 10 s.
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
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

    fn wait_for_path(&self, path: &str) {
        self.wait(&format!("the page {path}"), || (self.path() == path).then_some(()));
    }

    /// Where the browser is and what it shows, for failure messages.
    fn where_(&self) -> String {
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

    fn login(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/login"));
        self.wait_for_path("/login");
        self.type_into("#username", username);
        self.type_into("#password", password);
        let submit = self.el("#login-submit");
        self.click(&submit);
        self.wait_for_path("/");
    }

    fn logout(&self) {
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

// ---- the scenario ----

/// One browser test at a time: they would race for chromedriver's port, and a debug build of the
/// demo plus Chromium already fills this machine's two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tools_present() -> bool {
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

#[test]
fn a_person_in_chromium() {
    if !tools_present() {
        return;
    }
    let _one_at_a_time = serial();
    let started = Instant::now();
    let work = TempDir::new("work");
    let demo = start_demo(&work.0, 0);
    let base = demo.url.clone();

    // The ops listener answers too (a plain HTTP check, not the browser).
    if !demo.ops_url.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let health = rt.block_on(async {
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            let r = c.get(format!("{}/healthz", demo.ops_url)).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        });
        assert_eq!(health, (200, "ok".to_string()), "{}/healthz", demo.ops_url);
    }

    let b = Browser::start(&work.0);

    // Not logged in: any page leads to the login page.
    b.goto(&format!("{base}/regions/500236"));
    b.wait_for_path("/login");
    assert_eq!(b.lang(), "zh-CN");

    // A wrong password keeps us on the login page with a message.
    b.type_into("#username", "admin");
    b.type_into("#password", "not-the-password");
    let submit = b.el("#login-submit");
    b.click(&submit);
    let msg = b.text_of("#login-error");
    assert!(!msg.is_empty(), "{}", b.where_());
    assert_eq!(b.path(), "/login");

    // The county administrator.
    b.login(&base, "admin", &demo.password);
    let h1 = b.text_of("h1");
    assert!(h1.contains("奉节县"), "dashboard heading {h1:?}\n{}", b.where_());
    assert_eq!(b.text_of("#count-townships"), "33", "{}", b.where_());
    assert_eq!(b.text_of("#count-villages"), "392", "{}", b.where_());

    let nav = b.el("header nav a[href='/regions/500236']");
    assert_eq!(b.text(&nav), "行政区划");
    b.click(&nav);
    b.wait_for_path("/regions/500236");
    let name = b.text_of("h1#region-name");
    assert!(name.contains("奉节县"), "region heading {name:?}");
    let rows = b.els("#children tr.child");
    assert_eq!(rows.len(), 33, "township rows on /regions/500236\n{}", b.where_());

    // Drill down: the second township (its row says how many villages it has).
    let row = &rows[1];
    let cells = b.els_in(row, "td");
    let link = b.els_in(row, "td a").into_iter().next().expect("a township row without a link");
    let township = b.text(&link);
    let href = b.attr(&link, "href");
    let code = href.rsplit('/').next().unwrap().to_string();
    assert_eq!(code.len(), 9, "township link {href:?}");
    assert!(code.starts_with("500236"), "township link {href:?}");
    let listed: usize = b.text(&cells[3]).trim().parse().unwrap_or_else(|e| panic!("village count cell: {e}"));
    assert!(listed > 0, "township {township} lists no villages");
    b.click(&link);
    b.wait_for_path(&format!("/regions/{code}"));
    let name = b.text_of("h1#region-name");
    assert!(name.contains(&township), "township heading {name:?}, expected {township:?}");
    let villages = b.els("#children tr.child");
    assert_eq!(villages.len(), listed, "village rows of {township} ({code})\n{}", b.where_());
    assert_eq!(b.text_of("#count-villages"), listed.to_string(), "{}", b.where_());
    let trail = b.text_of("#trail");
    assert!(trail.contains("奉节县"), "trail {trail:?}");

    // And one level further: a village shows its hamlets.
    let vlink = b.els_in(&villages[0], "td a").into_iter().next().unwrap();
    let village = b.text(&vlink);
    b.click(&vlink);
    b.wait(&format!("village {village}"), || b.text_of("h1#region-name").contains(&village).then_some(()));
    assert!(b.text_of("#trail").contains(&township));
    assert!(!b.els("#hamlets").is_empty(), "no hamlet table on the village page\n{}", b.where_());

    // Language: to English and back, staying on the same page.
    let here = b.path();
    let switch = b.el("#lang-switch");
    assert_eq!(b.text(&switch), "English");
    b.click(&switch);
    b.wait("html lang=\"en\"", || (b.lang() == "en").then_some(()));
    assert_eq!(b.path(), here, "switching the language left the page");
    let nav = b.el("header nav a[href='/regions/500236']");
    assert_eq!(b.text(&nav), "Regions");
    assert_eq!(b.text_of("#lang-switch"), "中文");
    assert_eq!(b.text_of("#logout"), "Log out");
    let switch = b.el("#lang-switch");
    b.click(&switch);
    b.wait("html lang=\"zh-CN\"", || (b.lang() == "zh-CN").then_some(()));
    assert_eq!(b.text_of("header nav a[href='/regions/500236']"), "行政区划");
    assert_eq!(b.text_of("#lang-switch"), "English");

    b.logout();
    // The session has ended: the dashboard sends us back to the login page.
    b.goto(&format!("{base}/"));
    b.wait_for_path("/login");

    // A viewer bound to the second township.
    b.login(&base, "zhen2", &demo.password);
    let h1 = b.text_of("h1");
    assert!(h1.contains("500236002"), "zhen2's dashboard heading {h1:?}\n{}", b.where_());
    // The township itself is the one township in zhen2's scope.
    let own_townships = b.text_of("#count-townships");
    assert_eq!(own_townships, "1", "#count-townships on zhen2's dashboard\n{}", b.where_());
    assert!(b.els("header nav a[href='/users']").is_empty(), "a viewer sees the users link");
    let nav = b.el("header nav a[href='/regions/500236002']");
    b.click(&nav);
    b.wait_for_path("/regions/500236002");
    assert!(!b.els("#children tr.child").is_empty(), "zhen2 sees no villages\n{}", b.where_());
    // The trail starts at zhen2's own township: the county is not offered.
    assert!(b.els("#trail a[href='/regions/500236']").is_empty(), "the trail links to the county");

    for (path, what) in
        [("/regions/500236001", "another township"), ("/regions/500236", "the county"), ("/users", "the users page")]
    {
        b.goto(&format!("{base}{path}"));
        b.wait_for_path(path);
        let msg = b.text_of("#error-message");
        assert!(!msg.is_empty(), "{what}: empty error message");
        let h1 = b.text_of("h1");
        assert!(h1.contains("403"), "{what} ({path}): heading {h1:?}, expected a 403 page\n{}", b.where_());
        assert!(b.els("h1#region-name").is_empty(), "{what} ({path}) shows a region\n{}", b.where_());
        assert!(b.els("#children").is_empty(), "{what} ({path}) shows subdivisions\n{}", b.where_());
        eprintln!("zhen2 at {path}: {h1} / {msg}");
    }

    b.goto(&format!("{base}/"));
    b.wait_for_path("/");
    b.logout();
    drop(b);
    eprintln!("browser scenario done in {:.1} s", started.elapsed().as_secs_f64());
}

/// A department sender composes a warning, a reviewer approves it, and the live view shows it
/// reaching the simulated terminals of the township.
#[test]
fn a_warning_reaches_simulated_terminals_in_chromium() {
    if !tools_present() {
        return;
    }
    let _one_at_a_time = serial();
    let work = TempDir::new("warning");
    // The first 600 devices of the demo (ordered by region) cover township 500236001 entirely.
    let demo = start_demo(&work.0, 600);
    let base = demo.url.clone();
    let b = Browser::start(&work.0);
    // Read by script: pages reload after each action, and element references taken from the
    // previous page would be stale.
    let text = |id: &str| -> Option<String> {
        let v = b
            .try_cmd("POST", "/execute/sync", serde_json::json!({
                "script": "var e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
                "args": [id]
            }))
            .ok()?;
        v.as_str().map(|s| s.trim().to_string())
    };
    let read = |id: &str| -> Option<i64> { text(id)?.parse().ok() };

    b.login(&base, "qixiang", &demo.password);
    b.goto(&format!("{base}/eb/messages/new"));
    b.type_into("#title", "暴雨橙色预警（浏览器测试）");
    b.type_into("#text", "预计未来6小时内有暴雨，请注意防范。");
    let areas = b.el("#areas");
    b.click(&areas);
    b.script("document.getElementById('areas').value = '500236001';");
    b.click(&b.el("#save-draft"));
    b.wait("the draft page", || {
        let p = b.path();
        (p.starts_with("/eb/messages/") && p[13..].chars().all(|c| c.is_ascii_digit())).then_some(())
    });
    let msg_path = b.path();
    b.wait("the draft's status", || text("live-status").filter(|t| t.contains("草稿")));
    let reach: i64 = b.wait("the reach", || read("reach-terminals"));
    assert!(reach > 0, "the township has terminals: {}", b.where_());
    b.click(&b.el("#action-submit"));
    b.wait("submitted", || text("live-status").filter(|t| t.contains("待审核")));
    assert!(b.els("#action-approve").is_empty(), "a department sender is offered no approval");
    b.logout();

    b.login(&base, "shenhe", &demo.password);
    b.goto(&format!("{base}{msg_path}"));
    b.click(&b.el("#action-approve"));
    // The live view (server-sent events) counts receipts from the simulated terminals.
    let got = b.wait("every target to receive the warning", || {
        let targets = read("d-targets")?;
        let received = read("d-received")?;
        (targets > 0 && received == targets).then_some(targets)
    });
    assert_eq!(got, reach, "the targets are the terminals of the township");
    assert_eq!(read("d-pending"), Some(0));
}

/// A resident files a repair on the village's public page on a phone, the steward works it from
/// the phone view (accept, on site, photo, resolve) and the resident confirms with a rating.
#[test]
fn a_repair_from_the_public_page_to_a_rated_close_on_a_phone() {
    if !tools_present() {
        return;
    }
    let _one_at_a_time = serial();
    let work = TempDir::new("repair");
    let demo = start_demo(&work.0, 0);
    let base = demo.url.clone();
    let b = Browser::start(&work.0);
    b.cmd("POST", "/window/rect", json!({ "width": 390, "height": 844 }));
    let fits = || b.script("return document.documentElement.scrollWidth <= window.innerWidth + 1;") == json!(true);

    // The steward's villages, each with its public page.
    b.login(&base, "guanjia1", &demo.password);
    b.goto(&format!("{base}/service/my"));
    let first = b.els("#my-villages a");
    assert!(!first.is_empty(), "the steward has villages\n{}", b.where_());
    let village_page = b.attr(&first[0], "href");
    b.logout();

    // The resident, not logged in, on a phone.
    let public = if village_page.starts_with("http") { village_page.clone() } else { format!("{base}{village_page}") };
    b.goto(&public);
    assert!(!b.text_of(".steward-name").is_empty(), "the steward's name is published\n{}", b.where_());
    assert!(fits(), "the public page fits a phone screen\n{}", b.where_());
    b.script("document.querySelector('#category').value = 'satellite';");
    b.type_into("#description", "卫星电视没有信号");
    b.type_into("#name", "王小红");
    b.type_into("#phone", "13911112222");
    let submit = b.el("#submit-repair");
    b.click(&submit);
    let id = b.text_of("#ticket-no");
    let link = b.attr(&b.el("#confirm-link"), "href");
    assert!(link.contains("/r/c/"), "{link}");

    // The steward's phone view.
    b.login(&base, "guanjia1", &demo.password);
    b.goto(&format!("{base}/service/my"));
    let card = format!("#my-ticket-{id}");
    assert!(b.text_of(&card).contains("卫星电视没有信号"), "{}", b.where_());
    assert!(fits(), "the phone view fits a phone screen\n{}", b.where_());
    let accept = b.el(&format!("{card} button.accept"));
    b.click(&accept);
    b.wait("the accept button to go", || b.els(&format!("{card} button.accept")).is_empty().then_some(()));
    let on_site = b.el(&format!("{card} button.on-site"));
    b.click(&on_site);
    b.wait("the on-site state", || b.els(&format!("{card} button.on-site")).is_empty().then_some(()));
    let photo = work.0.join("dish.png");
    std::fs::write(&photo, [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0]).unwrap();
    b.type_into(&format!("{card} .photo-file"), photo.to_str().unwrap());
    let up = b.el(&format!("{card} .photo-upload"));
    b.click(&up);
    b.wait_for_path("/service/my");
    b.type_into(&format!("{card} .resolve-note"), "重新对星，信号恢复");
    let resolve = b.el(&format!("{card} button.resolve"));
    b.click(&resolve);
    b.wait("the ticket to leave the open list", || b.els(&card).is_empty().then_some(()));
    b.goto(&format!("{base}/service/tickets/{id}"));
    assert_eq!(b.els("#photos img").len(), 1, "{}", b.where_());
    assert!(b.text_of("#clock").contains("用时"), "the clock stopped\n{}", b.where_());
    b.logout();

    // The resident confirms and rates.
    b.goto(&link);
    let five = b.el("#rate-5");
    b.click(&five);
    let send = b.el("#rate-submit");
    b.click(&send);
    b.el("#thanks-rating");
    assert_eq!(b.text_of("#rating"), "5");
    assert_eq!(b.text_of("#status"), "已确认");
}
