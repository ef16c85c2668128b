//! The SQL implementation of [`Store`] for both backends.

use crate::bulk::{Val, insert_rows};
use crate::*;
use cuncun_domain::audit::{GENESIS, entry_hash};
use cuncun_domain::RegionLevel;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_foundation", include_str!("../migrations/sqlite/0001_foundation.sql")),
    (2, "0002_emergency_broadcast", include_str!("../migrations/sqlite/0002_emergency_broadcast.sql")),
    (3, "0003_service_network", include_str!("../migrations/sqlite/0003_service_network.sql")),
    (4, "0004_interchange", include_str!("../migrations/sqlite/0004_interchange.sql")),
    (5, "0005_indicators", include_str!("../migrations/sqlite/0005_indicators.sql")),
    (6, "0006_cap", include_str!("../migrations/sqlite/0006_cap.sql")),
    (7, "0007_service_stats", include_str!("../migrations/sqlite/0007_service_stats.sql")),
    (8, "0008_sites", include_str!("../migrations/sqlite/0008_sites.sql")),
    (9, "0009_workflow", include_str!("../migrations/sqlite/0009_workflow.sql")),
    (10, "0010_quarantine", include_str!("../migrations/sqlite/0010_quarantine.sql")),
    (11, "0011_commands", include_str!("../migrations/sqlite/0011_commands.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_foundation", include_str!("../migrations/postgres/0001_foundation.sql")),
    (2, "0002_emergency_broadcast", include_str!("../migrations/postgres/0002_emergency_broadcast.sql")),
    (3, "0003_service_network", include_str!("../migrations/postgres/0003_service_network.sql")),
    (4, "0004_interchange", include_str!("../migrations/postgres/0004_interchange.sql")),
    (5, "0005_indicators", include_str!("../migrations/postgres/0005_indicators.sql")),
    (6, "0006_cap", include_str!("../migrations/postgres/0006_cap.sql")),
    (7, "0007_service_stats", include_str!("../migrations/postgres/0007_service_stats.sql")),
    (8, "0008_sites", include_str!("../migrations/postgres/0008_sites.sql")),
    (9, "0009_workflow", include_str!("../migrations/postgres/0009_workflow.sql")),
    (10, "0010_quarantine", include_str!("../migrations/postgres/0010_quarantine.sql")),
    (11, "0011_commands", include_str!("../migrations/postgres/0011_commands.sql")),
];

pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; taking this before BEGIN avoids SQLITE_BUSY on lock upgrade.
    write_gate: Mutex<()>,
}

pub(crate) struct WriteTx<'a> {
    pub(crate) tx: Transaction<'static, Any>,
    _gate: Option<MutexGuard<'a, ()>>,
}

fn map_connect_err(url: &str, e: sqlx::Error) -> StoreError {
    let shown = redact_url(url);
    match e {
        sqlx::Error::Configuration(c) => {
            StoreError::Config(format!("database.url {shown:?} is not a valid database URL: {c}"))
        }
        other => StoreError::Unavailable(format!("cannot open database {shown}: {other}")),
    }
}

pub(crate) fn conflict_or(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let Some(d) = e.as_database_error() {
        if d.is_unique_violation() {
            return StoreError::Conflict(what());
        }
        if d.is_foreign_key_violation() {
            return StoreError::Invalid(format!("{}: refers to a record that does not exist", what()));
        }
    }
    StoreError::Db(e)
}

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored {what} is invalid: {e}"))
}

fn region_of(row: &AnyRow) -> Result<Region> {
    let code: String = row.try_get(0)?;
    let level: i64 = row.try_get(2)?;
    let parent: Option<String> = row.try_get(3)?;
    Ok(Region {
        code: RegionCode::parse(&code).map_err(|e| bad("region code", e))?,
        name: row.try_get(1)?,
        level: RegionLevel::from_i64(level).ok_or_else(|| bad("region level", level))?,
        parent: match parent {
            Some(p) => Some(RegionCode::parse(&p).map_err(|e| bad("region parent", e))?),
            None => None,
        },
    })
}

const USER_COLS: &str =
    "id, username, display_name, role, region_code, phone, disabled, created_at_ms, password_hash";

fn user_of(row: &AnyRow) -> Result<User> {
    let role: String = row.try_get(3)?;
    let region: String = row.try_get(4)?;
    let disabled: i64 = row.try_get(6)?;
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        role: Role::parse(&role).map_err(|e| bad("role", e))?,
        region_code: RegionCode::parse(&region).map_err(|e| bad("user region", e))?,
        phone: row.try_get(5)?,
        disabled: disabled != 0,
        created_at_ms: row.try_get(7)?,
    })
}

const SESSION_COLS: &str =
    "token_hash, user_id, kind, csrf_token, created_at_ms, expires_at_ms, revoked_at_ms, client";

fn session_of(row: &AnyRow) -> Result<SessionRow> {
    Ok(SessionRow {
        token_hash: row.try_get(0)?,
        user_id: row.try_get(1)?,
        kind: row.try_get(2)?,
        csrf_token: row.try_get(3)?,
        created_at_ms: row.try_get(4)?,
        expires_at_ms: row.try_get(5)?,
        revoked_at_ms: row.try_get(6)?,
        client: row.try_get(7)?,
    })
}

const AUDIT_COLS: &str = "seq, at_ms, actor, action, entity, entity_id, before, after, prev_hash, hash";

fn audit_of(row: &AnyRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        entity: row.try_get(4)?,
        entity_id: row.try_get(5)?,
        before: row.try_get(6)?,
        after: row.try_get(7)?,
        prev_hash: row.try_get(8)?,
        hash: row.try_get(9)?,
    })
}

/// The public (password-free) JSON of a user, as written into the audit log.
fn user_json(u: &User) -> String {
    serde_json::to_string(u).unwrap_or_default()
}

impl SqlStore {
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (backend, real_url) = if let Some(rest) =
            url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or("");
            if path.is_empty() {
                return Err(StoreError::Config(format!(
                    "database.url {url:?} names no file; use e.g. sqlite://cuncun-data/cuncun.db"
                )));
            }
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Unavailable(format!(
                            "database.url {url:?}: cannot create directory {}: {e}",
                            dir.display()
                        ))
                    })?;
                }
            }
            let u = if rest.contains('?') { format!("sqlite://{rest}") } else { format!("sqlite://{rest}?mode=rwc") };
            (Backend::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Config(format!(
                "database.url {:?} has an unsupported scheme; use sqlite://PATH or postgres://USER@HOST:PORT/DB",
                redact_url(url)
            )));
        };
        // One direct connection first: a pool would retry until its timeout and then report only
        // "pool timed out"; this surfaces the real cause (refused, unknown host, bad password).
        use sqlx::Connection;
        match tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect(&real_url)).await {
            Ok(Ok(c)) => {
                let _ = c.close().await;
            }
            Ok(Err(e)) => return Err(map_connect_err(url, e)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot open database {}: no answer within 10 s",
                    redact_url(url)
                )));
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name() == "SQLite" {
                        conn.execute(
                            // A 2 MB page cache (the default) turns every batch of receipts
                            // into thousands of page reads through the kernel; map the file
                            // instead and keep a larger cache of what changes.
                            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
                             PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000; \
                             PRAGMA cache_size=-32768; PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&real_url)
            .await
            .map_err(|e| map_connect_err(url, e))?;
        Ok(SqlStore { pool, backend, write_gate: Mutex::new(()) })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'_>> {
        let gate = match self.backend {
            Backend::Sqlite => Some(self.write_gate.lock().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _gate: gate })
    }

    pub(crate) async fn append_audit(
        &self,
        tx: &mut Transaction<'static, Any>,
        actor: &Actor,
        action: &str,
        entity: &str,
        entity_id: &str,
        before: &str,
        after: &str,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            // Serialises chain appends; plain readers (ACCESS SHARE) are not blocked.
            sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        let (seq, prev) = match last {
            Some(r) => (r.try_get::<i64, _>(0)? + 1, r.try_get::<String, _>(1)?),
            None => (1, GENESIS.to_string()),
        };
        let at = now_ms();
        let hash = entry_hash(&prev, seq, at, &actor.0, action, entity, entity_id, before, after);
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, actor, action, entity, entity_id, before, after, prev_hash, hash) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        )
        .bind(seq)
        .bind(at)
        .bind(actor.0.as_str())
        .bind(action)
        .bind(entity)
        .bind(entity_id)
        .bind(before)
        .bind(after)
        .bind(prev.as_str())
        .bind(hash.as_str())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// One record by id inside a write transaction; NotFound names `what` and the id.
    pub(crate) async fn row_by_id<T>(
        tx: &mut Transaction<'static, Any>,
        sql: &str,
        id: i64,
        what: &str,
        map: fn(&AnyRow) -> Result<T>,
    ) -> Result<T> {
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{what} {id}")))?;
        map(&row)
    }

    async fn fetch_user(&self, tx: &mut Transaction<'static, Any>, id: i64) -> Result<User> {
        Self::row_by_id(tx, &format!("SELECT {USER_COLS} FROM app_user WHERE id = $1"), id, "user", user_of).await
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<Vec<String>> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let mut w = self.begin_write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migration (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *w.tx)
        .await?;
        if self.backend == Backend::Postgres {
            // Two processes starting together must not both apply a migration.
            sqlx::query("LOCK TABLE schema_migration IN EXCLUSIVE MODE").execute(&mut *w.tx).await?;
        }
        let done: Vec<i64> = sqlx::query("SELECT version FROM schema_migration")
            .fetch_all(&mut *w.tx)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut applied = Vec::new();
        for (version, name, sql) in list {
            if done.contains(version) {
                continue;
            }
            // 0007's triggers and backfill are generated from the measures' one definition.
            let sql = if *version == 7 { format!("{sql}\n{}", crate::service_stats::migration_sql(self.backend)) } else { sql.to_string() };
            w.tx.execute(sql.as_str()).await.map_err(|e| {
                StoreError::Invalid(format!("migration {name} failed: {e}"))
            })?;
            sqlx::query("INSERT INTO schema_migration (version, name, applied_at_ms) VALUES ($1,$2,$3)")
                .bind(*version)
                .bind(*name)
                .bind(now_ms())
                .execute(&mut *w.tx)
                .await?;
            applied.push(name.to_string());
        }
        w.tx.commit().await?;
        Ok(applied)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn import_regions(&self, regions: &[Region], source: &str, actor: &Actor) -> Result<ImportReport> {
        let mut w = self.begin_write().await?;
        let before: i64 = sqlx::query("SELECT COUNT(*) FROM region")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
        let rows: Vec<Vec<Val>> = regions
            .iter()
            .map(|r| {
                vec![
                    Val::T(r.code.as_str().to_string()),
                    Val::T(r.name.clone()),
                    Val::I(r.level as i64),
                    Val::OptT(r.parent.as_ref().map(|p| p.as_str().to_string())),
                ]
            })
            .collect();
        insert_rows(
            &mut w.tx,
            crate::bulk::max_params(self.backend),
            "region",
            &["code", "name", "level", "parent_code"],
            &rows,
            "ON CONFLICT (code) DO UPDATE SET name = excluded.name, level = excluded.level, parent_code = excluded.parent_code",
        )
        .await?;
        let after: i64 = sqlx::query("SELECT COUNT(*) FROM region")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
        let report = ImportReport {
            inserted: (after - before) as u64,
            updated: regions.len() as u64 - (after - before) as u64,
        };
        let summary = serde_json::json!({
            "source": source, "rows": regions.len(), "inserted": report.inserted, "updated": report.updated
        })
        .to_string();
        self.append_audit(&mut w.tx, actor, "regions.import", "region", source, "", &summary).await?;
        w.tx.commit().await?;
        Ok(report)
    }

    async fn region(&self, code: &RegionCode) -> Result<Option<Region>> {
        let row = sqlx::query("SELECT code, name, level, parent_code FROM region WHERE code = $1")
            .bind(code.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(region_of).transpose()
    }

    async fn children(&self, code: &RegionCode) -> Result<Vec<RegionRow>> {
        let rows = sqlx::query(
            "SELECT r.code, r.name, r.level, r.parent_code, \
             (SELECT COUNT(*) FROM region c WHERE c.parent_code = r.code) \
             FROM region r WHERE r.parent_code = $1 ORDER BY r.code",
        )
        .bind(code.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(RegionRow { region: region_of(r)?, children: r.try_get(4)? }))
            .collect()
    }

    async fn region_counts(&self, code: &RegionCode) -> Result<RegionCounts> {
        let (lo, hi) = code.subtree_bounds();
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM region WHERE code BETWEEN $1 AND $2 AND level = 4), \
             (SELECT COUNT(*) FROM region WHERE code BETWEEN $1 AND $2 AND level = 5), \
             (SELECT COUNT(*) FROM hamlet WHERE village_code BETWEEN $1 AND $2), \
             (SELECT COUNT(*) FROM eb_resource WHERE region_code BETWEEN $1 AND $2 AND retired_at_ms IS NULL \
             AND kind IN ('outdoor_loudspeaker','column_speaker','in_home_receiver','set_top_box','building_pa')), \
             (SELECT COUNT(*) FROM steward WHERE region_code BETWEEN $1 AND $2), \
             (SELECT COUNT(*) FROM outlet WHERE region_code BETWEEN $1 AND $2), \
             (SELECT COUNT(*) FROM eb_resource r JOIN terminal_status s ON s.resource_id = r.id \
              WHERE r.region_code BETWEEN $1 AND $2 AND s.online = 1 AND r.retired_at_ms IS NULL \
              AND r.kind IN ('outdoor_loudspeaker','column_speaker','in_home_receiver','set_top_box','building_pa'))",
        )
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_one(&self.pool)
        .await?;
        // Households in their own statement: one index scan yields both the count and the sum.
        let hh = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(members), 0) AS BIGINT) FROM household WHERE village_code BETWEEN $1 AND $2",
        )
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(RegionCounts {
            townships: row.try_get(0)?,
            villages: row.try_get(1)?,
            hamlets: row.try_get(2)?,
            households: hh.try_get(0)?,
            population: hh.try_get(1)?,
            terminals: row.try_get(3)?,
            terminals_online: row.try_get(6)?,
            stewards: row.try_get(4)?,
            outlets: row.try_get(5)?,
        })
    }

    async fn search_regions(&self, scope: &RegionCode, q: &str, limit: i64) -> Result<Vec<Region>> {
        let (lo, hi) = scope.subtree_bounds();
        let pattern: String = q
            .trim()
            .chars()
            .filter(|c| !matches!(c, '%' | '_' | '\\'))
            .collect();
        let rows = sqlx::query(
            "SELECT code, name, level, parent_code FROM region \
             WHERE code BETWEEN $1 AND $2 AND name LIKE $3 ORDER BY level, code LIMIT $4",
        )
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(format!("%{pattern}%"))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(region_of).collect()
    }

    async fn add_hamlet(&self, h: &NewHamlet, actor: &Actor) -> Result<Hamlet> {
        if h.village_code.level() != RegionLevel::Village {
            return Err(StoreError::Invalid(format!(
                "hamlets belong under a village (12-digit code); {} is a {}",
                h.village_code,
                h.village_code.level().key()
            )));
        }
        if h.name.trim().is_empty() || h.households < 0 || h.population < 0 {
            return Err(StoreError::Invalid(
                "a hamlet needs a name and non-negative household and population counts".into(),
            ));
        }
        let mut w = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO hamlet (village_code, name, households, population) VALUES ($1,$2,$3,$4) RETURNING id",
        )
        .bind(h.village_code.as_str())
        .bind(h.name.trim())
        .bind(h.households)
        .bind(h.population)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| {
            conflict_or(e, || format!("hamlet {:?} in village {}", h.name.trim(), h.village_code))
        })?
        .try_get(0)?;
        let hamlet = Hamlet {
            id,
            village_code: h.village_code.clone(),
            name: h.name.trim().to_string(),
            households: h.households,
            population: h.population,
        };
        let after = serde_json::to_string(&hamlet).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "hamlet.create", "hamlet", &id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(hamlet)
    }

    async fn hamlets(&self, village: &RegionCode) -> Result<Vec<Hamlet>> {
        let rows = sqlx::query(
            "SELECT id, village_code, name, households, population FROM hamlet WHERE village_code = $1 ORDER BY name",
        )
        .bind(village.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let code: String = r.try_get(1)?;
                Ok(Hamlet {
                    id: r.try_get(0)?,
                    village_code: RegionCode::parse(&code).map_err(|e| bad("hamlet village", e))?,
                    name: r.try_get(2)?,
                    households: r.try_get(3)?,
                    population: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn insert_registry(&self, b: &RegistryBatch, actor: &Actor) -> Result<()> {
        let mut w = self.begin_write().await?;
        let s = |x: &str| Val::T(x.to_string());
        let flag = |x: bool| Val::I(x as i64);
        let hamlets: Vec<Vec<Val>> = b
            .hamlets
            .iter()
            .map(|h| vec![s(h.village_code.as_str()), s(&h.name), Val::I(h.households), Val::I(h.population)])
            .collect();
        insert_rows(&mut w.tx, crate::bulk::max_params(self.backend), "hamlet", &["village_code", "name", "households", "population"], &hamlets, "")
            .await
            .map_err(|e| conflict_or(e, || "hamlet already exists".into()))?;
        let households: Vec<Vec<Val>> = b
            .households
            .iter()
            .map(|h| {
                vec![
                    s(h.village_code.as_str()),
                    Val::OptT(h.hamlet.clone()),
                    s(&h.head_name),
                    s(&h.phone),
                    s(&h.address),
                    Val::I(h.members),
                    s(&CoverageMode::encode_set(&h.coverage_modes)),
                    flag(h.hd),
                    flag(h.fibre),
                    flag(h.care_elderly),
                    flag(h.care_children),
                    flag(h.care_disabled),
                ]
            })
            .collect();
        insert_rows(
            &mut w.tx,
            crate::bulk::max_params(self.backend),
            "household",
            &[
                "village_code", "hamlet", "head_name", "phone", "address", "members", "coverage_modes",
                "hd", "fibre", "care_elderly", "care_children", "care_disabled",
            ],
            &households,
            "",
        )
        .await?;
        for st in &b.stewards {
            let id: i64 = sqlx::query(
                "INSERT INTO steward (name, phone, region_code) VALUES ($1,$2,$3) RETURNING id",
            )
            .bind(st.name.as_str())
            .bind(st.phone.as_str())
            .bind(st.region_code.as_str())
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
            let rows: Vec<Vec<Val>> =
                st.villages.iter().map(|v| vec![Val::I(id), s(v.as_str())]).collect();
            insert_rows(&mut w.tx, crate::bulk::max_params(self.backend), "steward_village", &["steward_id", "village_code"], &rows, "").await?;
        }
        let outlets: Vec<Vec<Val>> = b
            .outlets
            .iter()
            .map(|o| {
                vec![s(o.kind.key()), s(o.region_code.as_str()), s(&o.name), s(&o.address), s(&o.phone), s(&o.hotline)]
            })
            .collect();
        insert_rows(&mut w.tx, crate::bulk::max_params(self.backend), "outlet", &["kind", "region_code", "name", "address", "phone", "hotline"], &outlets, "")
            .await?;
        let terminals: Vec<crate::eb::NewResource> = b
            .terminals
            .iter()
            .map(|t| crate::eb::NewResource {
                kind: cuncun_domain::eb::ResourceKind::from_terminal_kind(t.kind),
                region_code: t.region_code.clone(),
                name: t.name.clone(),
                vendor: t.vendor.clone(),
                model: t.model.clone(),
                lon: t.lon,
                lat: t.lat,
                install_date: String::new(),
                ebrid: None,
                secret_hash: String::new(),
            })
            .collect();
        self.insert_resources_tx(&mut w.tx, &terminals).await?;
        let summary = serde_json::json!({
            "hamlets": b.hamlets.len(), "households": b.households.len(), "stewards": b.stewards.len(),
            "outlets": b.outlets.len(), "terminals": b.terminals.len()
        })
        .to_string();
        self.append_audit(&mut w.tx, actor, "registry.import", "registry", "batch", "", &summary).await?;
        w.tx.commit().await?;
        if self.backend == Backend::Postgres && b.households.len() >= 10_000 {
            // After a large load, fresh statistics and a visibility map let PostgreSQL answer
            // counts by index-only scans instead of reading every row (autovacuum would, later).
            sqlx::query("VACUUM (ANALYZE) household, hamlet, eb_resource, outlet, steward").execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn create_user(&self, u: &NewUser, actor: &Actor) -> Result<User> {
        let username = u.username.trim();
        if username.is_empty() || username.len() > 64 || username.chars().any(char::is_whitespace) {
            return Err(StoreError::Invalid(format!(
                "username {username:?} must be 1-64 characters without spaces"
            )));
        }
        let mut w = self.begin_write().await?;
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO app_user (username, display_name, role, region_code, phone, password_hash, disabled, created_at_ms, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,0,$7,$7) RETURNING id",
        )
        .bind(username)
        .bind(u.display_name.trim())
        .bind(u.role.key())
        .bind(u.region_code.as_str())
        .bind(u.phone.trim())
        .bind(u.password_hash.as_str())
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| match conflict_or(e, || format!("username {username:?} is already taken")) {
            StoreError::Invalid(_) => StoreError::Invalid(format!(
                "region {} is not loaded; import it first (cuncun regions import --code {})",
                u.region_code, u.region_code
            )),
            other => other,
        })?
        .try_get(0)?;
        let user = self.fetch_user(&mut w.tx, id).await?;
        self.append_audit(&mut w.tx, actor, "user.create", "user", &id.to_string(), "", &user_json(&user)).await?;
        w.tx.commit().await?;
        Ok(user)
    }

    async fn user(&self, id: i64) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM app_user WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_of).transpose()
    }

    async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!("SELECT {USER_COLS} FROM app_user WHERE username = $1"))
            .bind(username.trim())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some((user_of(&r)?, r.try_get(8)?))),
            None => Ok(None),
        }
    }

    async fn users_in(&self, scope: &RegionCode) -> Result<Vec<User>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLS} FROM app_user WHERE region_code BETWEEN $1 AND $2 ORDER BY username"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_of).collect()
    }

    async fn update_user(&self, id: i64, p: &UserPatch, actor: &Actor) -> Result<User> {
        let mut w = self.begin_write().await?;
        let before = self.fetch_user(&mut w.tx, id).await?;
        let mut u = before.clone();
        if let Some(v) = &p.display_name {
            u.display_name = v.trim().to_string();
        }
        if let Some(v) = p.role {
            u.role = v;
        }
        if let Some(v) = &p.region_code {
            u.region_code = v.clone();
        }
        if let Some(v) = &p.phone {
            u.phone = v.trim().to_string();
        }
        if let Some(v) = p.disabled {
            u.disabled = v;
        }
        sqlx::query(
            "UPDATE app_user SET display_name=$1, role=$2, region_code=$3, phone=$4, disabled=$5, updated_at_ms=$6 WHERE id=$7",
        )
        .bind(u.display_name.as_str())
        .bind(u.role.key())
        .bind(u.region_code.as_str())
        .bind(u.phone.as_str())
        .bind(u.disabled as i64)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, || format!("region {}", u.region_code)))?;
        if u.disabled && !before.disabled {
            // A disabled account keeps no live session.
            sqlx::query("UPDATE session SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        self.append_audit(&mut w.tx, actor, "user.update", "user", &id.to_string(), &user_json(&before), &user_json(&u))
            .await?;
        w.tx.commit().await?;
        Ok(u)
    }

    async fn set_password(&self, id: i64, password_hash: &str, actor: &Actor) -> Result<()> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("UPDATE app_user SET password_hash=$1, updated_at_ms=$2 WHERE id=$3")
            .bind(password_hash)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        // The hash itself is a secret: the log records only that it changed.
        self.append_audit(&mut w.tx, actor, "user.password", "user", &id.to_string(), "", "{\"password\":\"changed\"}")
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) FROM app_user").fetch_one(&self.pool).await?.try_get(0)?)
    }

    async fn create_session(&self, s: &NewSession) -> Result<()> {
        let _w = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO session ({SESSION_COLS}) VALUES ($1,$2,$3,$4,$5,$6,NULL,$7)"
        ))
        .bind(s.token_hash.as_str())
        .bind(s.user_id)
        .bind(s.kind.as_str())
        .bind(s.csrf_token.as_str())
        .bind(now_ms())
        .bind(s.expires_at_ms)
        .bind(s.client.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn live_session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM session WHERE token_hash = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    async fn sessions_of(&self, user_id: i64) -> Result<Vec<SessionRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM session WHERE user_id = $1 ORDER BY created_at_ms DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_of).collect()
    }

    async fn revoke_session(&self, token_hash: &str, actor: &Actor) -> Result<bool> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("UPDATE session SET revoked_at_ms = $1 WHERE token_hash = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms())
            .bind(token_hash)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if n > 0 {
            // Only a prefix of the hash: enough to tell sessions apart, useless as a credential.
            self.append_audit(&mut w.tx, actor, "session.revoke", "session", &token_hash[..12.min(token_hash.len())], "", "")
                .await?;
        }
        w.tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoke_user_sessions(&self, user_id: i64, actor: &Actor) -> Result<u64> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("UPDATE session SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL")
            .bind(now_ms())
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        let after = format!("{{\"revoked\":{n}}}");
        self.append_audit(&mut w.tx, actor, "session.revoke_all", "user", &user_id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(n)
    }

    async fn audit(&self, actor: &Actor, action: &str, entity: &str, entity_id: &str, before: &str, after: &str) -> Result<()> {
        let mut w = self.begin_write().await?;
        self.append_audit(&mut w.tx, actor, action, entity, entity_id, before, after).await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn audit_entries(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_of).collect()
    }

    async fn audit_recent(&self, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&format!("SELECT {AUDIT_COLS} FROM audit_log ORDER BY seq DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_of).collect()
    }
}
