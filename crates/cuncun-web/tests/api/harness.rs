use cuncun_domain::model::{NewUser, Region};
use cuncun_domain::{RegionCode, Role};
use cuncun_store::testing::{TestDb, all_backends};
use cuncun_store::{Actor, Store};
use cuncun_web::{AppState, WebOptions};
use serde_json::Value;
use std::sync::Arc;

pub const PASSWORD: &str = "demo-password-1";

fn region(code: &str, name: &str) -> Region {
    let c = RegionCode::parse(code).unwrap();
    Region { level: c.level(), parent: c.parent(), code: c, name: name.into() }
}

pub struct App {
    pub url: String,
    pub ops: String,
    pub store: Arc<dyn Store>,
    /// The same database, for tests that put a row into a state directly.
    pub sql: Arc<cuncun_store::SqlStore>,
    _db_guard: Option<TestDb>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A county with two townships of two villages each, and users:
/// admin (county admin), t1admin (admin of township 001), t1view (viewer, 001), t2view (viewer, 100).
pub async fn apps() -> Vec<App> {
    let mut out = Vec::new();
    for db in all_backends().await {
        out.push(start(db).await);
    }
    out
}

async fn start(db: TestDb) -> App {
    let sql = Arc::new(cuncun_store::SqlStore::connect(&db.url).await.unwrap());
    let store: Arc<dyn Store> = sql.clone();
    let regions = vec![
        region("50", "重庆市"),
        region("5002", "县"),
        region("500236", "奉节县"),
        region("500236001", "永安街道"),
        region("500236001001", "桂井社区"),
        region("500236001002", "诗城社区"),
        region("500236100", "白帝镇"),
        region("500236100201", "白帝村"),
        region("500236100202", "八阵村"),
    ];
    store.import_regions(&regions, "500236", &Actor::system()).await.unwrap();
    let hash = cuncun_web::auth::hash_password(PASSWORD).unwrap();
    for (name, role, code) in [
        ("admin", Role::Admin, "500236"),
        ("t1admin", Role::Admin, "500236001"),
        ("t1view", Role::Viewer, "500236001"),
        ("t2view", Role::Viewer, "500236100"),
        ("t2cast", Role::Broadcaster, "500236100"),
        ("sender", Role::DepartmentSender, "500236"),
        ("t1sender", Role::DepartmentSender, "500236001"),
        ("reviewer", Role::Reviewer, "500236"),
        ("t1review", Role::Reviewer, "500236001"),
        ("v1cast", Role::Broadcaster, "500236001001"),
    ] {
        let u = store
            .create_user(
                &NewUser {
                    username: name.into(),
                    display_name: name.into(),
                    role,
                    region_code: RegionCode::parse(code).unwrap(),
                    phone: "13800000000".into(),
                    password_hash: hash.clone(),
                },
                &Actor::system(),
            )
            .await
            .unwrap();
        if role == Role::DepartmentSender {
            // What an administrator grants a weather bureau: every meteorological event and the
            // test/drill code, in its whole region.
            let grant = cuncun_domain::authz::Grant { event_types: vec!["11B".into(), "11000".into()], regions: vec![RegionCode::parse(code).unwrap()] };
            store.set_department_grant(u.id, &grant, &Actor::system()).await.unwrap();
        }
    }
    let mut state = AppState::new(cuncun_app::App::new(store.clone(), Default::default()), WebOptions::default());
    let media_dir = std::env::temp_dir().join(format!("cuncun-media-{}-{}", std::process::id(), rand_suffix()));
    let media_store = Arc::new(cuncun_media::MediaStore::new(&media_dir).unwrap());
    state.media = Some(Arc::new(cuncun_web::Media {
        cache: cuncun_media::TtsCache::new(media_store).unwrap(),
        tts: Arc::new(cuncun_media::EspeakTts::new()),
    }));
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", app.local_addr().unwrap());
    let ops_url = format!("http://{}", ops.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cuncun_web::serve(state, app, ops, async {
        let _ = rx.await;
    }));
    App { url, ops: ops_url, store, sql, _db_guard: Some(db), stop: Some(tx) }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

impl App {
    /// Logs in through the API; returns the bearer token.
    pub async fn token(&self, user: &str) -> String {
        let r = client()
            .post(format!("{}/api/v1/login", self.url))
            .json(&serde_json::json!({ "username": user, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "login {user}");
        r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string()
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = client().get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(&self, token: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client().request(m, format!("{}{path}", self.url)).bearer_auth(token).json(&body).send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// A browser-like client logged in through the login form; returns it and the page CSRF token.
    pub async fn browser(&self, user: &str) -> (reqwest::Client, String) {
        let c = client();
        let page = c.get(format!("{}/login", self.url)).send().await.unwrap().text().await.unwrap();
        let csrf = hidden_csrf(&page);
        let r = c
            .post(format!("{}/login", self.url))
            .form(&[("username", user), ("password", PASSWORD), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "form login {user}");
        let home = c.get(format!("{}/", self.url)).send().await.unwrap().text().await.unwrap();
        (c, hidden_csrf(&home))
    }
}

pub fn hidden_csrf(page: &str) -> String {
    let i = page.find("name=\"csrf\" value=\"").expect("page has a csrf field") + 19;
    page[i..i + 64].to_string()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}
