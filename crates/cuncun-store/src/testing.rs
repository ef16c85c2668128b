//! Fresh databases for tests, on either backend. PostgreSQL tests need CUNCUN_TEST_PG_URL; when it
//! is unset they say so on stderr, and under CUNCUN_CI=1 they fail instead (CI must never skip).

use crate::{SqlStore, Store};
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

pub struct TestDb {
    pub store: SqlStore,
    pub url: String,
    _dir: Option<TempDir>,
}

/// A directory removed on drop (no dependency needed for this).
pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(tag: &str) -> TempDir {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let p = std::env::temp_dir().join(format!("cuncun-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("create temp dir");
    TempDir(p)
}

pub async fn sqlite() -> TestDb {
    let dir = temp_dir("test");
    let url = format!("sqlite://{}/cuncun.db", dir.0.display());
    let store = SqlStore::connect(&url).await.expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    TestDb { store, url, _dir: Some(dir) }
}

/// The PostgreSQL base URL, or None (with a notice) when tests should not use PostgreSQL.
pub fn pg_base_url() -> Option<String> {
    match std::env::var("CUNCUN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("CUNCUN_CI").is_ok_and(|v| v == "1") {
                panic!("CUNCUN_CI=1 but CUNCUN_TEST_PG_URL is not set: PostgreSQL tests must run in CI");
            }
            eprintln!("NOTE: PostgreSQL part of this test not run: set CUNCUN_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/test");
            None
        }
    }
}

/// A new, empty, migrated PostgreSQL database; databases left by runs over 2 hours old are dropped.
pub async fn postgres() -> Option<TestDb> {
    let base = pg_base_url()?;
    let admin = SqlStore::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is required for this test: {e}", crate::redact_url(&base)));
    let now = crate::now_ms() / 1000;
    let name = format!("cuncun_t_{now}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    use sqlx::Row;
    let old = sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE 'cuncun_t_%'")
        .fetch_all(admin.pool())
        .await
        .expect("list test databases");
    for r in old {
        let d: String = r.try_get(0).unwrap_or_default();
        let ts: i64 = d.split('_').nth(2).and_then(|t| t.parse().ok()).unwrap_or(now);
        if now - ts > 7200 {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {d}")).execute(admin.pool()).await;
        }
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(admin.pool())
        .await
        .expect("create test database");
    admin.pool().close().await;
    let url = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => format!("{}/{name}", &base[..i]),
        _ => panic!("CUNCUN_TEST_PG_URL must end in /DATABASE"),
    };
    let store = SqlStore::connect(&url).await.expect("open test database");
    store.migrate().await.expect("migrate postgres");
    Some(TestDb { store, url, _dir: None })
}

/// Both backends: SQLite always, PostgreSQL when configured.
pub async fn all_backends() -> Vec<TestDb> {
    let mut v = vec![sqlite().await];
    if let Some(pg) = postgres().await {
        v.push(pg);
    }
    v
}

/// Puts a message on air through the workflow rules, as its author (a broadcaster, user id
/// `m.author_id`) submitting it and a reviewer of its owner region (another id) approving it:
/// for tests and benchmarks that need an approved message without a console. The message's
/// `author_id` must be set.
pub async fn submit_and_approve(s: &dyn Store, m: &crate::eb::Message, actor: &crate::Actor) -> crate::Result<crate::eb::Message> {
    use cuncun_domain::authz::{MsgCommand, Principal, Via, WorkflowSettings, decide};
    let author_id = m.author_id.ok_or_else(|| crate::StoreError::Invalid("submit_and_approve: the message needs an author_id".into()))?;
    let region = m.owner_region.clone();
    let author = Principal::User { id: author_id, name: "author".into(), role: cuncun_domain::Role::Broadcaster, region: region.clone(), via: Via::Cli };
    let reviewer = Principal::User { id: author_id + 1, name: "reviewer".into(), role: cuncun_domain::Role::Reviewer, region, via: Via::Cli };
    let settings = WorkflowSettings::default();
    let step = |p: &Principal, cmd, m: &crate::eb::Message| -> crate::Result<crate::eb::MessageMove> {
        let t = decide(p, cmd, &m.facts(), &settings)?.ok_or_else(|| crate::StoreError::Invalid("no step".into()))?;
        Ok(crate::eb::MessageMove::new(m.id, t))
    };
    let m = s.transition_message(step(&author, MsgCommand::Submit, m)?, actor).await?;
    let mut mv = step(&reviewer, MsgCommand::Approve, &m)?;
    mv.approver_id = Some(author_id + 1);
    s.transition_message(mv, actor).await
}

/// Runs one statement with one integer parameter, for tests that put rows into a state directly.
pub async fn exec(s: &crate::SqlStore, sql: &str, id: i64) {
    sqlx::query(sql).bind(id).execute(s.pool()).await.expect("test statement");
}

/// An emergency warning (orange rainstorm, 11B03) of the county platform 500236 to `areas`, owned
/// by `owner` and written by user 1, valid from now for `valid_ms`: for tests that need a
/// message and do not care about its content.
pub fn warning(areas: &[&str], owner: &str, valid_ms: i64) -> crate::eb::NewMessage {
    use cuncun_domain::RegionCode;
    use cuncun_domain::eb::{Ebrid, ResourceKind};
    let rc = |s: &str| RegionCode::parse(s).expect("test region code");
    let now = crate::now_ms();
    crate::eb::NewMessage {
        platform: Ebrid::generate(&rc("500236"), ResourceKind::Platform, 1).expect("platform code"),
        msg_type: "broadcast".into(),
        related_ebmid: None,
        priority: "emergency".into(),
        drill: false,
        event_type: "11B03".into(),
        severity: 2,
        title: "暴雨橙色预警".into(),
        body: "测试".into(),
        lang: "zho".into(),
        audio_sha256: None,
        audio_size: None,
        areas: areas.iter().map(|a| rc(a)).collect(),
        terminals: vec![],
        start_ms: now,
        end_ms: now + valid_ms,
        repeat_count: 1,
        volume: None,
        source: "local".into(),
        owner_region: rc(owner),
        author_id: Some(1),
        start_on_approval: false,
        from_peer: None,
    }
}

/// Imports these region codes (parents before children), each named by its short code.
pub async fn import_codes(s: &dyn Store, codes: &[&str]) {
    use cuncun_domain::RegionCode;
    let regions: Vec<cuncun_domain::model::Region> = codes
        .iter()
        .map(|c| {
            let c = RegionCode::parse(c).expect("test region code");
            cuncun_domain::model::Region { level: c.level(), parent: c.parent(), name: c.short().into(), code: c }
        })
        .collect();
    s.import_regions(&regions, "t", &crate::Actor::system()).await.expect("import test regions");
}

/// An outdoor loudspeaker in `village`, code generated, with this secret hash.
pub fn loudspeaker(village: &str, secret_hash: &str) -> crate::eb::NewResource {
    crate::eb::NewResource {
        kind: cuncun_domain::eb::ResourceKind::OutdoorLoudspeaker,
        region_code: cuncun_domain::RegionCode::parse(village).expect("test region code"),
        name: format!("{village} 大喇叭"),
        vendor: String::new(),
        model: String::new(),
        lon: None,
        lat: None,
        install_date: String::new(),
        ebrid: None,
        secret_hash: secret_hash.into(),
    }
}
