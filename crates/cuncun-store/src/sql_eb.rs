//! The SQL implementation of [`EbStore`].

use crate::bulk::{Val, insert_rows, max_params};
use crate::eb::*;
use crate::sql::SqlStore;
use crate::{Actor, Result, Store, StoreError, now_ms};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::authz::Grant;
use cuncun_domain::eb::{Ebrid, MessageStatus, ResourceKind};
use cuncun_domain::protocol::{LogEntry, Stage};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

pub(crate) const RES_COLS: &str = "r.id, r.ebrid, r.kind, r.region_code, r.name, r.vendor, r.model, r.lon, r.lat, \
     r.install_date, r.retired_at_ms, r.created_at_ms, r.secret_hash";

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored {what} is invalid: {e}"))
}

/// `(CAST($1 AS T1), CAST($2 AS T2)), (...)`: `rows` rows of typed parameters for a VALUES list
/// (the casts make both backends agree on the column types).
fn values_list(types: &[&str], rows: usize) -> String {
    let mut out = String::with_capacity(rows * types.len() * 24);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ",(" });
        for (i, t) in types.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("CAST(${} AS {t})", r * types.len() + i + 1));
        }
        out.push(')');
    }
    out
}

/// A row of `SELECT {RES_COLS}, s.online, s.last_seen_ms, s.state, s.volume, s.task, s.faults`.
pub(crate) fn resource_with_status_of(row: &AnyRow) -> Result<ResourceWithStatus> {
    let online: Option<i64> = row.try_get(13)?;
    Ok(ResourceWithStatus {
        resource: resource_of(row)?,
        online: online.map(|o| o != 0),
        last_seen_ms: row.try_get(14)?,
        state: row.try_get::<Option<String>, _>(15)?.unwrap_or_default(),
        volume: row.try_get::<Option<i64>, _>(16)?.unwrap_or(0),
        task: row.try_get(17)?,
        faults: row.try_get::<Option<String>, _>(18)?.unwrap_or_default(),
    })
}

fn resource_of(row: &AnyRow) -> Result<Resource> {
    let kind: String = row.try_get(2)?;
    let region: String = row.try_get(3)?;
    let secret: String = row.try_get(12)?;
    Ok(Resource {
        id: row.try_get(0)?,
        ebrid: row.try_get(1)?,
        kind: ResourceKind::parse(&kind).ok_or_else(|| bad("resource kind", &kind))?,
        region_code: RegionCode::parse(&region).map_err(|e| bad("resource region", e))?,
        name: row.try_get(4)?,
        vendor: row.try_get(5)?,
        model: row.try_get(6)?,
        lon: row.try_get(7)?,
        lat: row.try_get(8)?,
        install_date: row.try_get(9)?,
        retired_at_ms: row.try_get(10)?,
        created_at_ms: row.try_get(11)?,
        has_secret: !secret.is_empty(),
    })
}

const MSG_COLS: &str = "id, ebmid, msg_type, related_ebmid, priority, drill, event_type, severity, title, body, lang, \
     audio_sha256, audio_size, areas, start_ms, end_ms, repeat_count, volume, status, source, owner_region, \
     author_id, approver_id, created_at_ms, approved_at_ms, completed_at_ms, start_on_approval, from_peer";

fn message_of(row: &AnyRow) -> Result<Message> {
    let areas: String = row.try_get(13)?;
    let status: String = row.try_get(18)?;
    let owner: String = row.try_get(20)?;
    let drill: i64 = row.try_get(5)?;
    let severity: i64 = row.try_get(7)?;
    Ok(Message {
        id: row.try_get(0)?,
        ebmid: row.try_get(1)?,
        msg_type: row.try_get(2)?,
        related_ebmid: row.try_get(3)?,
        priority: row.try_get(4)?,
        drill: drill != 0,
        event_type: row.try_get(6)?,
        severity: severity.clamp(0, 9) as u8,
        title: row.try_get(8)?,
        body: row.try_get(9)?,
        lang: row.try_get(10)?,
        audio_sha256: row.try_get(11)?,
        audio_size: row.try_get(12)?,
        areas: areas
            .split(',')
            .filter(|s| !s.is_empty())
            .map(RegionCode::parse)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad("message area", e))?,
        start_ms: row.try_get(14)?,
        end_ms: row.try_get(15)?,
        repeat_count: row.try_get(16)?,
        volume: row.try_get(17)?,
        status: MessageStatus::parse(&status).ok_or_else(|| bad("message status", &status))?,
        source: row.try_get(19)?,
        owner_region: RegionCode::parse(&owner).map_err(|e| bad("message owner", e))?,
        author_id: row.try_get(21)?,
        approver_id: row.try_get(22)?,
        created_at_ms: row.try_get(23)?,
        approved_at_ms: row.try_get(24)?,
        completed_at_ms: row.try_get(25)?,
        start_on_approval: row.try_get::<i64, _>(26)? != 0,
        from_peer: row.try_get(27)?,
    })
}

const TERMINAL_KINDS: &str =
    "('outdoor_loudspeaker','column_speaker','in_home_receiver','set_top_box','building_pa')";


/// SQL condition "region_code lies in one of these areas", with its bind values.
fn area_condition(col: &str, areas: &[RegionCode], first_param: usize) -> (String, Vec<String>) {
    let mut parts = Vec::new();
    let mut binds = Vec::new();
    for (i, a) in areas.iter().enumerate() {
        let (lo, hi) = a.subtree_bounds();
        parts.push(format!("{col} BETWEEN ${} AND ${}", first_param + 2 * i, first_param + 2 * i + 1));
        binds.push(lo);
        binds.push(hi);
    }
    if parts.is_empty() {
        ("1 = 0".into(), binds)
    } else {
        (format!("({})", parts.join(" OR ")), binds)
    }
}

/// `SET` list noting a send at `$1` in a table with `sends`, `conn_sends`, `last_sent_ms` and
/// `resource_id`: the per-connection count starts again at 1 when the last send was before the
/// terminal's presence last changed (it has reconnected since).
fn sends_bump(table: &str) -> String {
    format!(
        "sends = sends + 1, conn_sends = CASE WHEN last_sent_ms IS NULL OR last_sent_ms < \
         COALESCE((SELECT s.changed_ms FROM terminal_status s WHERE s.resource_id = {table}.resource_id), 0) \
         THEN 1 ELSE conn_sends + 1 END, last_sent_ms = $1"
    )
}

/// The sends of row `t` on its terminal's current connection, with `terminal_status s` joined.
fn conn_sends_now(t: &str) -> String {
    format!("CASE WHEN {t}.last_sent_ms IS NULL OR {t}.last_sent_ms < COALESCE(s.changed_ms, 0) THEN 0 ELSE {t}.conn_sends END")
}

/// A lookup key: an id or a code.
enum Key<'a> {
    Id(i64),
    Code(&'a str),
}

impl SqlStore {
    /// One row by key, mapped; the four single-record lookups of this module share it.
    async fn one<T>(&self, sql: &str, key: Key<'_>, map: fn(&AnyRow) -> Result<T>) -> Result<Option<T>> {
        let q = sqlx::query(sql);
        let q = match key {
            Key::Id(i) => q.bind(i),
            Key::Code(c) => q.bind(c),
        };
        q.fetch_optional(self.pool()).await?.as_ref().map(map).transpose()
    }

    /// Commands matching `cond` (over `eb_command c`, `eb_resource r`, `terminal_status s`), with
    /// `$1` bound to `first` and `$2` to `ebrid` when given; oldest first.
    async fn commands_where(&self, cond: &str, first: i64, ebrid: Option<&str>) -> Result<Vec<CommandRow>> {
        let sql = format!(
            "SELECT c.id, r.ebrid, c.kind, m.ebmid, c.until_ms, c.sends, {}, c.last_sent_ms, c.done_ms, COALESCE(s.online, 0) \
             FROM eb_command c JOIN eb_resource r ON r.id = c.resource_id LEFT JOIN eb_message m ON m.id = c.message_id \
             LEFT JOIN terminal_status s ON s.resource_id = c.resource_id WHERE {cond} ORDER BY c.id",
            conn_sends_now("c")
        );
        let mut q = sqlx::query(&sql).bind(first);
        if let Some(e) = ebrid {
            q = q.bind(e);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let online: i64 = r.try_get(9)?;
                Ok(CommandRow {
                    id: r.try_get(0)?,
                    ebrid: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    ebmid: r.try_get(3)?,
                    until_ms: r.try_get(4)?,
                    sends: r.try_get(5)?,
                    conn_sends: r.try_get(6)?,
                    last_sent_ms: r.try_get(7)?,
                    done_ms: r.try_get(8)?,
                    online: online != 0,
                })
            })
            .collect()
    }

    /// Assigns codes to resources that have none: the next free sequence per (region, kind).
    pub(crate) async fn assign_codes(&self, tx: &mut Transaction<'static, Any>, rs: &[NewResource]) -> Result<Vec<String>> {
        let mut next: std::collections::HashMap<(String, ResourceKind), u32> = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(rs.len());
        for r in rs {
            if let Some(e) = &r.ebrid {
                out.push(e.as_str().to_string());
                continue;
            }
            let key = (r.region_code.as_str().to_string(), r.kind);
            let n = match next.get(&key) {
                Some(n) => *n,
                None => {
                    let used: i64 = sqlx::query("SELECT COUNT(*) FROM eb_resource WHERE region_code = $1 AND kind = $2")
                        .bind(r.region_code.as_str())
                        .bind(r.kind.key())
                        .fetch_one(&mut **tx)
                        .await?
                        .try_get(0)?;
                    used as u32 + 1
                }
            };
            next.insert(key, n + 1);
            let e = Ebrid::generate(&r.region_code, r.kind, n).map_err(|e| StoreError::Invalid(e.to_string()))?;
            out.push(e.as_str().to_string());
        }
        Ok(out)
    }

    pub(crate) async fn create_message_tx(&self, tx: &mut Transaction<'static, Any>, m: &NewMessage, actor: &Actor) -> Result<Message> {
        // Daily sequence (Beijing date) for the EBMID.
        let beijing = cuncun_domain::time::ebmid_date(now_ms());
        let n: i64 = sqlx::query(
            "INSERT INTO eb_sequence (day, n) VALUES ($1, 1) ON CONFLICT (day) DO UPDATE SET n = eb_sequence.n + 1 RETURNING n",
        )
        .bind(beijing.as_str())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let ebmid = cuncun_domain::eb::ebmid(&m.platform, &beijing, n as u32).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let areas: Vec<&str> = m.areas.iter().map(|a| a.as_str()).collect();
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO eb_message (ebmid, msg_type, related_ebmid, priority, drill, event_type, severity, title, body, lang, \
             audio_sha256, audio_size, areas, start_ms, end_ms, repeat_count, volume, status, source, owner_region, author_id, \
             created_at_ms, updated_at_ms, start_on_approval, from_peer) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,'draft',$18,$19,$20,$21,$21,$22,$23) RETURNING id",
        )
        .bind(ebmid.as_str())
        .bind(m.msg_type.as_str())
        .bind(m.related_ebmid.as_deref())
        .bind(m.priority.as_str())
        .bind(m.drill as i64)
        .bind(m.event_type.as_str())
        .bind(m.severity as i64)
        .bind(m.title.as_str())
        .bind(m.body.as_str())
        .bind(m.lang.as_str())
        .bind(m.audio_sha256.as_deref())
        .bind(m.audio_size)
        .bind(areas.join(","))
        .bind(m.start_ms)
        .bind(m.end_ms)
        .bind(m.repeat_count)
        .bind(m.volume)
        .bind(m.source.as_str())
        .bind(m.owner_region.as_str())
        .bind(m.author_id)
        .bind(now)
        .bind(m.start_on_approval as i64)
        .bind(m.from_peer.as_deref())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        Self::name_terminals(tx, id, &m.terminals).await?;
        let msg = self.fetch_message(tx, id).await?;
        let after = serde_json::to_string(&msg).unwrap_or_default();
        self.append_audit(tx, actor, "message.create", "eb_message", &ebmid, "", &after).await?;
        Self::write_step(tx, id, "compose", MessageStatus::Draft, actor, "").await?;
        Ok(msg)
    }

    /// The terminals a message names explicitly (besides its areas); each must be in service.
    async fn name_terminals(tx: &mut Transaction<'static, Any>, id: i64, terminals: &[Ebrid]) -> Result<()> {
        for t in terminals {
            let n = sqlx::query(
                "INSERT INTO eb_message_terminal (message_id, resource_id) SELECT $1, id FROM eb_resource WHERE ebrid = $2 AND retired_at_ms IS NULL",
            )
            .bind(id)
            .bind(t.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::Invalid(format!("terminal {t} does not exist or is retired")));
            }
        }
        Ok(())
    }

    async fn write_step(
        tx: &mut Transaction<'static, Any>,
        id: i64,
        step: &str,
        status: MessageStatus,
        actor: &Actor,
        reason: &str,
    ) -> Result<()> {
        sqlx::query("INSERT INTO eb_message_step (message_id, step, status, actor, user_id, reason, at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7)")
            .bind(id)
            .bind(step)
            .bind(status.key())
            .bind(actor.0.as_str())
            .bind(actor.user_id())
            .bind(reason)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub(crate) async fn transition_message_tx(&self, tx: &mut Transaction<'static, Any>, mv: &MessageMove, actor: &Actor) -> Result<Message> {
        let (id, from, to, approver_id) = (mv.id, mv.t.from(), mv.t.to(), mv.approver_id);
        let before = self.fetch_message(tx, id).await?;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE eb_message SET status = $1, updated_at_ms = $2, \
             approver_id = COALESCE($3, approver_id), \
             approved_at_ms = CASE WHEN $1 = 'approved' THEN $2 ELSE approved_at_ms END, \
             completed_at_ms = CASE WHEN $1 IN ('completed','cancelled','expired') THEN $2 ELSE completed_at_ms END, \
             start_ms = COALESCE($6, start_ms), end_ms = COALESCE($7, end_ms), \
             start_on_approval = CASE WHEN $6 IS NULL THEN start_on_approval ELSE 0 END \
             WHERE id = $4 AND status = $5",
        )
        .bind(to.key())
        .bind(now)
        .bind(approver_id)
        .bind(id)
        .bind(from.key())
        .bind(mv.validity.map(|v| v.0))
        .bind(mv.validity.map(|v| v.1))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "message {} is {}, not {}; reload and try again",
                before.ebmid,
                before.status.key(),
                from.key()
            )));
        }
        if to == MessageStatus::Approved {
            // Fix the targets now: terminals in the areas plus the explicitly named ones.
            let (cond, binds) = area_condition("region_code", &before.areas, 2);
            let sql = format!(
                "INSERT INTO eb_delivery (message_id, resource_id) SELECT $1, id FROM eb_resource \
                 WHERE retired_at_ms IS NULL AND kind IN {TERMINAL_KINDS} AND ({cond} OR id IN (SELECT resource_id FROM eb_message_terminal WHERE message_id = $1)) \
                 ON CONFLICT DO NOTHING"
            );
            let mut q = sqlx::query(&sql).bind(id);
            for b in &binds {
                q = q.bind(b.as_str());
            }
            q.execute(&mut **tx).await?;
            sqlx::query("INSERT INTO eb_outbox (message_id, action, created_at_ms) VALUES ($1, 'dispatch', $2)")
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        if to == MessageStatus::Cancelled && matches!(from, MessageStatus::Approved | MessageStatus::Dispatching) {
            sqlx::query("INSERT INTO eb_outbox (message_id, action, created_at_ms) VALUES ($1, 'cancel', $2)")
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            // One tracked cancel per target that may have heard the play: sends are recorded
            // before they are published, so once dispatching those are the ones sent it (or
            // receipting it); while approved, the dispatch may be on its way: every target.
            sqlx::query(
                "INSERT INTO eb_command (resource_id, kind, message_id, created_at_ms, until_ms) \
                 SELECT d.resource_id, 'cancel', d.message_id, $2, $3 FROM eb_delivery d \
                 WHERE d.message_id = $1 AND ($4 = 1 OR d.sends > 0 OR d.stage > 0) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(before.end_ms)
            .bind(i64::from(from == MessageStatus::Approved))
            .execute(&mut **tx)
            .await?;
        }
        let after = self.fetch_message(tx, id).await?;
        let b = serde_json::json!({ "status": before.status.key() }).to_string();
        let a = serde_json::json!({
            "status": after.status.key(), "step": mv.t.step().key(), "reason": mv.reason,
            "approver_id": after.approver_id, "areas": after.areas, "start_ms": after.start_ms, "end_ms": after.end_ms,
        })
        .to_string();
        self.append_audit(tx, actor, &format!("message.{}", to.key()), "eb_message", &after.ebmid, &b, &a).await?;
        Self::write_step(tx, id, mv.t.step().key(), to, actor, &mv.reason).await?;
        Ok(after)
    }

    /// Terminals coming online (or going offline) together, none twice: status, and the
    /// connection intervals that the online rate is computed from.
    async fn presence_run(&self, tx: &mut Transaction<'static, Any>, online: bool, run: &[(&str, i64)]) -> Result<()> {
        let per = (max_params(self.backend()) / 2).max(1);
        for chunk in run.chunks(per) {
            let v = format!("WITH v (ebrid, at_ms) AS (VALUES {}) ", values_list(&["TEXT", "BIGINT"], chunk.len()));
            let mut sqls = Vec::new();
            if online {
                // `WHERE true` keeps SQLite from reading ON CONFLICT as part of the join.
                sqls.push(format!(
                    "{v}INSERT INTO terminal_status (resource_id, online, changed_ms, last_seen_ms) \
                     SELECT r.id, 1, v.at_ms, v.at_ms FROM v JOIN eb_resource r ON r.ebrid = v.ebrid WHERE true \
                     ON CONFLICT (resource_id) DO UPDATE SET online = 1, changed_ms = excluded.changed_ms, last_seen_ms = excluded.last_seen_ms"
                ));
            } else {
                sqls.push(format!(
                    "{v}UPDATE terminal_status SET online = 0, changed_ms = v.at_ms \
                     FROM v JOIN eb_resource r ON r.ebrid = v.ebrid WHERE terminal_status.resource_id = r.id"
                ));
            }
            // A dangling interval (the platform crashed) is closed before a new one opens.
            sqls.push(format!(
                "{v}UPDATE terminal_online SET to_ms = v.at_ms FROM v JOIN eb_resource r ON r.ebrid = v.ebrid \
                 WHERE terminal_online.to_ms IS NULL AND terminal_online.resource_id = r.id"
            ));
            if online {
                sqls.push(format!(
                    "{v}INSERT INTO terminal_online (resource_id, from_ms) SELECT r.id, v.at_ms FROM v JOIN eb_resource r ON r.ebrid = v.ebrid"
                ));
            }
            for sql in &sqls {
                let mut q = sqlx::query(sql);
                for (e, at) in chunk {
                    q = q.bind(*e).bind(*at);
                }
                q.persistent(false).execute(&mut **tx).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn insert_resources_tx(&self, tx: &mut Transaction<'static, Any>, rs: &[NewResource]) -> Result<Vec<String>> {
        let codes = self.assign_codes(tx, rs).await?;
        let now = now_ms();
        let rows: Vec<Vec<Val>> = rs
            .iter()
            .zip(&codes)
            .map(|(r, c)| {
                vec![
                    Val::T(c.clone()),
                    Val::T(r.kind.key().into()),
                    Val::T(r.region_code.as_str().into()),
                    Val::T(r.name.clone()),
                    Val::T(r.vendor.clone()),
                    Val::T(r.model.clone()),
                    Val::F(r.lon),
                    Val::F(r.lat),
                    Val::T(r.install_date.clone()),
                    Val::T(r.secret_hash.clone()),
                    Val::I(now),
                ]
            })
            .collect();
        insert_rows(
            tx,
            max_params(self.backend()),
            "eb_resource",
            &["ebrid", "kind", "region_code", "name", "vendor", "model", "lon", "lat", "install_date", "secret_hash", "created_at_ms"],
            &rows,
            "",
        )
        .await
        .map_err(|e| crate::sql::conflict_or(e, || "a resource code in the batch already exists".into()))?;
        Ok(codes)
    }

    pub(crate) async fn fetch_message(&self, tx: &mut Transaction<'static, Any>, id: i64) -> Result<Message> {
        Self::row_by_id(tx, &format!("SELECT {MSG_COLS} FROM eb_message WHERE id = $1"), id, "message", message_of).await
    }
}

#[async_trait]
impl EbStore for SqlStore {
    async fn connections(&self, resource_id: i64, limit: i64) -> Result<Vec<cuncun_domain::online::Interval>> {
        let rows = sqlx::query("SELECT from_ms, to_ms FROM terminal_online WHERE resource_id = $1 ORDER BY from_ms DESC LIMIT $2")
            .bind(resource_id)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn broadcast_logs(&self, resource_id: i64, limit: i64) -> Result<Vec<BroadcastLogRow>> {
        let rows = sqlx::query(
            "SELECT ebmid, source, start_ms, end_ms, volume, result FROM eb_broadcast_log WHERE resource_id = $1 ORDER BY start_ms DESC LIMIT $2",
        )
        .bind(resource_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BroadcastLogRow {
                    ebmid: r.try_get(0)?,
                    source: r.try_get(1)?,
                    start_ms: r.try_get(2)?,
                    end_ms: r.try_get(3)?,
                    volume: r.try_get(4)?,
                    result: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn online_history(&self, scope: &RegionCode, from_ms: i64, to_ms: i64) -> Result<Vec<OnlineHistory>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!(
            "SELECT r.ebrid, r.name, r.region_code, r.created_at_ms, r.retired_at_ms, o.from_ms, o.to_ms \
             FROM eb_resource r LEFT JOIN terminal_online o ON o.resource_id = r.id \
             AND o.from_ms < $4 AND (o.to_ms IS NULL OR o.to_ms > $3) \
             WHERE r.region_code BETWEEN $1 AND $2 AND r.kind IN {TERMINAL_KINDS} AND r.created_at_ms < $4 \
             AND (r.retired_at_ms IS NULL OR r.retired_at_ms > $3) ORDER BY r.region_code, r.ebrid, o.from_ms"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<OnlineHistory> = Vec::new();
        for r in rows {
            let ebrid: String = r.try_get(0)?;
            if out.last().is_none_or(|h| h.ebrid != ebrid) {
                out.push(OnlineHistory {
                    ebrid,
                    name: r.try_get(1)?,
                    region_code: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                    retired_ms: r.try_get(4)?,
                    intervals: Vec::new(),
                });
            }
            let from: Option<i64> = r.try_get(5)?;
            if let (Some(f), Some(h)) = (from, out.last_mut()) {
                h.intervals.push((f, r.try_get(6)?));
            }
        }
        Ok(out)
    }

    async fn add_resource(&self, r: &NewResource, actor: &Actor) -> Result<Resource> {
        let mut w = self.begin_write().await?;
        let code = self.assign_codes(&mut w.tx, std::slice::from_ref(r)).await?.remove(0);
        let id: i64 = sqlx::query(
            "INSERT INTO eb_resource (ebrid, kind, region_code, name, vendor, model, lon, lat, install_date, secret_hash, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
        )
        .bind(code.as_str())
        .bind(r.kind.key())
        .bind(r.region_code.as_str())
        .bind(r.name.trim())
        .bind(r.vendor.trim())
        .bind(r.model.trim())
        .bind(r.lon)
        .bind(r.lat)
        .bind(r.install_date.trim())
        .bind(r.secret_hash.as_str())
        .bind(now_ms())
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| crate::sql::conflict_or(e, || format!("resource code {code} already exists")))?
        .try_get(0)?;
        let row = sqlx::query(&format!("SELECT {RES_COLS} FROM eb_resource r WHERE r.id = $1"))
            .bind(id)
            .fetch_one(&mut *w.tx)
            .await?;
        let res = resource_of(&row)?;
        let after = serde_json::to_string(&res).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "resource.create", "eb_resource", &code, "", &after).await?;
        w.tx.commit().await?;
        Ok(res)
    }

    async fn insert_resources(&self, rs: &[NewResource], actor: &Actor) -> Result<Vec<String>> {
        let mut w = self.begin_write().await?;
        let codes = self.insert_resources_tx(&mut w.tx, rs).await?;
        let summary = serde_json::json!({ "resources": rs.len() }).to_string();
        self.append_audit(&mut w.tx, actor, "resource.import", "eb_resource", "batch", "", &summary).await?;
        w.tx.commit().await?;
        Ok(codes)
    }

    async fn resource(&self, id: i64) -> Result<Option<Resource>> {
        self.one(&format!("SELECT {RES_COLS} FROM eb_resource r WHERE r.id = $1"), Key::Id(id), resource_of).await
    }

    async fn resource_by_ebrid(&self, ebrid: &str) -> Result<Option<Resource>> {
        self.one(&format!("SELECT {RES_COLS} FROM eb_resource r WHERE r.ebrid = $1"), Key::Code(ebrid), resource_of).await
    }

    async fn resources_in(
        &self,
        scope: &RegionCode,
        kinds: &[ResourceKind],
        include_retired: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ResourceWithStatus>> {
        let (lo, hi) = scope.subtree_bounds();
        let kind_list: Vec<String> = kinds.iter().map(|k| format!("'{}'", k.key())).collect();
        let kind_cond = if kinds.is_empty() { String::new() } else { format!(" AND r.kind IN ({})", kind_list.join(",")) };
        let retired = if include_retired { "" } else { " AND r.retired_at_ms IS NULL" };
        let rows = sqlx::query(&format!(
            "SELECT {RES_COLS}, s.online, s.last_seen_ms, s.state, s.volume, s.task, s.faults \
             FROM eb_resource r LEFT JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.region_code BETWEEN $1 AND $2{kind_cond}{retired} ORDER BY r.region_code, r.ebrid LIMIT $3 OFFSET $4"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(resource_with_status_of).collect()
    }

    async fn update_resource(&self, id: i64, p: &ResourcePatch, actor: &Actor) -> Result<Resource> {
        let mut w = self.begin_write().await?;
        let res_sql = format!("SELECT {RES_COLS} FROM eb_resource r WHERE r.id = $1");
        let before = Self::row_by_id(&mut w.tx, &res_sql, id, "resource", resource_of).await?;
        let mut r = before.clone();
        if let Some(v) = &p.name {
            r.name = v.trim().into();
        }
        if let Some(v) = &p.vendor {
            r.vendor = v.trim().into();
        }
        if let Some(v) = &p.model {
            r.model = v.trim().into();
        }
        if let Some(v) = &p.install_date {
            r.install_date = v.trim().into();
        }
        // updated_at_ms lets an incremental report to the parent platform find the change.
        sqlx::query("UPDATE eb_resource SET name=$1, vendor=$2, model=$3, install_date=$4, updated_at_ms=$6 WHERE id=$5")
            .bind(r.name.as_str())
            .bind(r.vendor.as_str())
            .bind(r.model.as_str())
            .bind(r.install_date.as_str())
            .bind(id)
            .bind(now_ms())
            .execute(&mut *w.tx)
            .await?;
        let (b, a) = (serde_json::to_string(&before).unwrap_or_default(), serde_json::to_string(&r).unwrap_or_default());
        self.append_audit(&mut w.tx, actor, "resource.update", "eb_resource", &r.ebrid, &b, &a).await?;
        w.tx.commit().await?;
        Ok(r)
    }

    async fn retire_resource(&self, id: i64, actor: &Actor) -> Result<Resource> {
        let mut w = self.begin_write().await?;
        let now = now_ms();
        let n = sqlx::query("UPDATE eb_resource SET retired_at_ms = $1, secret_hash = '' WHERE id = $2 AND retired_at_ms IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("active resource {id}")));
        }
        let res_sql = format!("SELECT {RES_COLS} FROM eb_resource r WHERE r.id = $1");
        let r = Self::row_by_id(&mut w.tx, &res_sql, id, "resource", resource_of).await?;
        self.append_audit(&mut w.tx, actor, "resource.retire", "eb_resource", &r.ebrid, "", &format!("{{\"retired_at_ms\":{now}}}"))
            .await?;
        w.tx.commit().await?;
        Ok(r)
    }

    async fn set_secret_hashes(&self, pairs: &[(String, String)], actor: &Actor) -> Result<u64> {
        let mut w = self.begin_write().await?;
        let mut n = 0;
        for (ebrid, hash) in pairs {
            n += sqlx::query("UPDATE eb_resource SET secret_hash = $1 WHERE ebrid = $2 AND retired_at_ms IS NULL")
                .bind(hash.as_str())
                .bind(ebrid.as_str())
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        }
        // The secrets themselves never enter the log; only that they were set.
        let after = serde_json::json!({ "devices": n }).to_string();
        let id = if pairs.len() == 1 { pairs[0].0.clone() } else { "batch".into() };
        self.append_audit(&mut w.tx, actor, "resource.secret", "eb_resource", &id, "", &after).await?;
        w.tx.commit().await?;
        Ok(n)
    }

    async fn device_credentials(&self) -> Result<Vec<DeviceCredential>> {
        let rows = sqlx::query(
            "SELECT ebrid, secret_hash FROM eb_resource WHERE retired_at_ms IS NULL AND secret_hash <> ''",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let ebrid: String = r.try_get(0)?;
                let region12 = ebrid.get(1..13).unwrap_or_default().to_string();
                Ok(DeviceCredential { ebrid, secret_hash: r.try_get(1)?, region12 })
            })
            .collect()
    }

    async fn apply_status(&self, changes: &[StatusChange]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut w = self.begin_write().await?;
        // Presence changes in order, as runs of one kind in which no terminal repeats; each run
        // is written a chunk per statement.
        let mut run: Vec<(&str, i64)> = Vec::new();
        let mut run_online = true;
        for c in changes {
            let (online, ebrid, at) = match c {
                StatusChange::Online { ebrid, at_ms } => (true, ebrid.as_str(), *at_ms),
                StatusChange::Offline { ebrid, at_ms } => (false, ebrid.as_str(), *at_ms),
                // Heartbeats change no presence: written together below.
                StatusChange::Heartbeat { .. } => continue,
            };
            if !run.is_empty() && (online != run_online || run.iter().any(|(e, _)| *e == ebrid)) {
                self.presence_run(&mut w.tx, run_online, &run).await?;
                run.clear();
            }
            run_online = online;
            run.push((ebrid, at));
        }
        if !run.is_empty() {
            self.presence_run(&mut w.tx, run_online, &run).await?;
        }
        let hbs: Vec<_> = changes
            .iter()
            .filter_map(|c| match c {
                StatusChange::Heartbeat { ebrid, at_ms, hb } => Some((ebrid, at_ms, hb)),
                _ => None,
            })
            .collect();
        let per = (max_params(self.backend()) / 6).max(1);
        for chunk in hbs.chunks(per) {
            let sql = format!(
                "WITH v (ebrid, at_ms, state, volume, task, faults) AS (VALUES {}) \
                 UPDATE terminal_status SET last_seen_ms = v.at_ms, state = v.state, volume = v.volume, task = v.task, faults = v.faults \
                 FROM v JOIN eb_resource r ON r.ebrid = v.ebrid WHERE terminal_status.resource_id = r.id",
                values_list(&["TEXT", "BIGINT", "TEXT", "BIGINT", "TEXT", "TEXT"], chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (ebrid, at_ms, hb) in chunk {
                let state = serde_json::to_value(hb.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                q = q.bind(ebrid.as_str()).bind(**at_ms).bind(state).bind(hb.volume as i64).bind(hb.task.as_deref()).bind(hb.faults.join(","));
            }
            q.persistent(false).execute(&mut *w.tx).await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    async fn insert_logs(&self, logs: &[(String, LogEntry)]) -> Result<u64> {
        if logs.is_empty() {
            return Ok(0);
        }
        let mut w = self.begin_write().await?;
        let now = now_ms();
        let mut n = 0;
        // One statement per chunk: logs come in bursts when a broadcast ends everywhere at once.
        let types = ["TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "TEXT"];
        for chunk in logs.chunks((max_params(self.backend()) / types.len()).max(1)) {
            let sql = format!(
                "WITH v (ebrid, ebmid, source, start_ms, end_ms, volume, result) AS (VALUES {}) \
                 INSERT INTO eb_broadcast_log (resource_id, ebmid, source, start_ms, end_ms, volume, result, at_ms) \
                 SELECT r.id, v.ebmid, v.source, v.start_ms, v.end_ms, v.volume, v.result, {now} FROM v JOIN eb_resource r ON r.ebrid = v.ebrid",
                values_list(&types, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (ebrid, l) in chunk {
                q = q.bind(ebrid.as_str()).bind(l.id.as_str()).bind(l.source.as_str()).bind(l.start).bind(l.end).bind(l.volume as i64).bind(l.result.as_deref());
            }
            n += q.persistent(false).execute(&mut *w.tx).await?.rows_affected();
        }
        w.tx.commit().await?;
        Ok(n)
    }

    async fn quarantine_reports(&self, rows: &[Quarantined]) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let vals: Vec<Vec<Val>> = rows
            .iter()
            .map(|q| vec![Val::T(q.ebrid.clone()), Val::T(q.kind.clone()), Val::T(q.payload.clone()), Val::T(q.reason.clone()), Val::I(q.at_ms)])
            .collect();
        let mut w = self.begin_write().await?;
        insert_rows(&mut w.tx, max_params(self.backend()), "terminal_quarantine", &["ebrid", "kind", "payload", "reason", "at_ms"], &vals, "").await?;
        w.tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn quarantined_reports(&self, limit: i64) -> Result<Vec<Quarantined>> {
        sqlx::query("SELECT ebrid, kind, payload, reason, at_ms FROM terminal_quarantine ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(Quarantined { ebrid: r.try_get(0)?, kind: r.try_get(1)?, payload: r.try_get(2)?, reason: r.try_get(3)?, at_ms: r.try_get(4)? }))
            .collect()
    }

    async fn prune_quarantine(&self, before_ms: i64) -> Result<u64> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM terminal_quarantine WHERE at_ms < $1").bind(before_ms).execute(&mut *w.tx).await?.rows_affected();
        w.tx.commit().await?;
        Ok(n)
    }

    async fn reach(&self, areas: &[RegionCode], terminals: &[Ebrid]) -> Result<Reach> {
        let (cond, binds) = area_condition("r.region_code", areas, 1);
        let explicit: Vec<String> = terminals.iter().map(|t| format!("'{}'", t.as_str())).collect();
        // Ebrid values are 23 validated digits, safe to inline.
        let tcond = if explicit.is_empty() { cond.clone() } else { format!("({cond} OR r.ebrid IN ({}))", explicit.join(",")) };
        let sql_t = format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN s.online = 1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM eb_resource r LEFT JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.retired_at_ms IS NULL AND r.kind IN {TERMINAL_KINDS} AND {tcond}"
        );
        let mut qt = sqlx::query(&sql_t);
        for b in &binds {
            qt = qt.bind(b.as_str());
        }
        let t = qt.fetch_one(self.pool()).await?;
        let (vcond, vbinds) = area_condition("code", areas, 1);
        let sql_v = format!("SELECT COUNT(*) FROM region WHERE level = 5 AND {vcond}");
        let mut qv = sqlx::query_scalar::<_, i64>(&sql_v);
        for b in &vbinds {
            qv = qv.bind(b.as_str());
        }
        let villages = qv.fetch_one(self.pool()).await?;
        let (hcond, hbinds) = area_condition("village_code", areas, 1);
        let sql_h = format!("SELECT COUNT(*), CAST(COALESCE(SUM(members), 0) AS BIGINT) FROM household WHERE {hcond}");
        let mut qh = sqlx::query(&sql_h);
        for b in &hbinds {
            qh = qh.bind(b.as_str());
        }
        let h = qh.fetch_one(self.pool()).await?;
        Ok(Reach {
            terminals: t.try_get(0)?,
            online: t.try_get(1)?,
            villages,
            households: h.try_get(0)?,
            population: h.try_get(1)?,
        })
    }

    async fn create_message(&self, m: &NewMessage, actor: &Actor) -> Result<Message> {
        let mut w = self.begin_write().await?;
        let msg = self.create_message_tx(&mut w.tx, m, actor).await?;
        w.tx.commit().await?;
        Ok(msg)
    }

    async fn message(&self, id: i64) -> Result<Option<Message>> {
        self.one(&format!("SELECT {MSG_COLS} FROM eb_message WHERE id = $1"), Key::Id(id), message_of).await
    }

    async fn message_by_ebmid(&self, ebmid: &str) -> Result<Option<Message>> {
        self.one(&format!("SELECT {MSG_COLS} FROM eb_message WHERE ebmid = $1"), Key::Code(ebmid), message_of).await
    }

    async fn message_terminals(&self, message_id: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT r.ebrid FROM eb_message_terminal t JOIN eb_resource r ON r.id = t.resource_id WHERE t.message_id = $1 ORDER BY r.ebrid",
        )
        .bind(message_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn set_message_audio(&self, id: i64, sha256: &str, size: i64, actor: &Actor) -> Result<Message> {
        let mut w = self.begin_write().await?;
        let before = self.fetch_message(&mut w.tx, id).await?;
        let n = sqlx::query("UPDATE eb_message SET audio_sha256 = $1, audio_size = $2, updated_at_ms = $3 WHERE id = $4 AND status = 'draft'")
            .bind(sha256)
            .bind(size)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!("message {} is {}; audio can change only in a draft", before.ebmid, before.status.key())));
        }
        let after = self.fetch_message(&mut w.tx, id).await?;
        let b = serde_json::json!({ "audio_sha256": before.audio_sha256 }).to_string();
        let a = serde_json::json!({ "audio_sha256": sha256, "audio_size": size }).to_string();
        self.append_audit(&mut w.tx, actor, "message.audio", "eb_message", &after.ebmid, &b, &a).await?;
        w.tx.commit().await?;
        Ok(after)
    }

    async fn messages_recent(&self, limit: i64) -> Result<Vec<Message>> {
        let rows = sqlx::query(&format!("SELECT {MSG_COLS} FROM eb_message ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(message_of).collect()
    }

    async fn transition_messages(&self, moves: &[MessageMove], actor: &Actor) -> Result<Vec<Message>> {
        let mut w = self.begin_write().await?;
        let mut out = Vec::with_capacity(moves.len());
        // An update's approval and its original's cancellation: a crash test stops the process
        // at each of these points, and the transaction must leave both or neither.
        let update = moves.len() > 1;
        for (i, mv) in moves.iter().enumerate() {
            out.push(self.transition_message_tx(&mut w.tx, mv, actor).await?);
            if update && i == 0 {
                fail::fail_point!("message.update.between");
            }
        }
        if update {
            fail::fail_point!("message.update.before_commit");
        }
        w.tx.commit().await?;
        if update {
            fail::fail_point!("message.update.after_commit");
        }
        // A crash test stops here: the cancel is committed, nothing of it has been sent.
        if moves.iter().any(|m| m.t.to() == MessageStatus::Cancelled) {
            fail::fail_point!("message.cancel.after_commit");
        }
        Ok(out)
    }

    async fn edit_draft(&self, id: i64, m: &NewMessage, actor: &Actor) -> Result<Message> {
        let mut w = self.begin_write().await?;
        let before = self.fetch_message(&mut w.tx, id).await?;
        let areas: Vec<&str> = m.areas.iter().map(|a| a.as_str()).collect();
        let n = sqlx::query(
            "UPDATE eb_message SET related_ebmid = $1, priority = $2, drill = $3, event_type = $4, severity = $5, title = $6, \
             body = $7, audio_sha256 = $8, audio_size = $9, areas = $10, start_ms = $11, end_ms = $12, repeat_count = $13, \
             start_on_approval = $14, updated_at_ms = $15 WHERE id = $16 AND status = 'draft'",
        )
        .bind(m.related_ebmid.as_deref())
        .bind(m.priority.as_str())
        .bind(m.drill as i64)
        .bind(m.event_type.as_str())
        .bind(m.severity as i64)
        .bind(m.title.as_str())
        .bind(m.body.as_str())
        .bind(m.audio_sha256.as_deref())
        .bind(m.audio_size)
        .bind(areas.join(","))
        .bind(m.start_ms)
        .bind(m.end_ms)
        .bind(m.repeat_count)
        .bind(m.start_on_approval as i64)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(format!("message {} is {}; only a draft can be edited", before.ebmid, before.status.key())));
        }
        sqlx::query("DELETE FROM eb_message_terminal WHERE message_id = $1").bind(id).execute(&mut *w.tx).await?;
        Self::name_terminals(&mut w.tx, id, &m.terminals).await?;
        let after = self.fetch_message(&mut w.tx, id).await?;
        let b = serde_json::to_string(&before).unwrap_or_default();
        let a = serde_json::to_string(&after).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "message.edit", "eb_message", &after.ebmid, &b, &a).await?;
        Self::write_step(&mut w.tx, id, "edit", MessageStatus::Draft, actor, "").await?;
        w.tx.commit().await?;
        Ok(after)
    }

    async fn message_steps(&self, id: i64) -> Result<Vec<MessageStepRow>> {
        let rows = sqlx::query("SELECT step, status, actor, user_id, reason, at_ms FROM eb_message_step WHERE message_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageStepRow {
                    step: r.try_get(0)?,
                    status: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    user_id: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    at_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn department_grant(&self, user_id: i64) -> Result<Option<Grant>> {
        let row = sqlx::query("SELECT event_types, regions FROM department_grant WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else { return Ok(None) };
        let (events, regions): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        let list = |s: &str| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect::<Vec<_>>();
        let regions = list(&regions)
            .iter()
            .map(|c| RegionCode::parse(c))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad("department grant region", e))?;
        Ok(Some(Grant { event_types: list(&events), regions }))
    }

    async fn set_department_grant(&self, user_id: i64, grant: &Grant, actor: &Actor) -> Result<()> {
        let mut w = self.begin_write().await?;
        let before: Option<(String, String)> = sqlx::query("SELECT event_types, regions FROM department_grant WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        let events = grant.event_types.join(",");
        let regions = grant.regions.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",");
        sqlx::query(
            "INSERT INTO department_grant (user_id, event_types, regions, updated_at_ms) VALUES ($1,$2,$3,$4) \
             ON CONFLICT (user_id) DO UPDATE SET event_types = excluded.event_types, regions = excluded.regions, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(user_id)
        .bind(events.as_str())
        .bind(regions.as_str())
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| crate::sql::conflict_or(e, || format!("user {user_id} does not exist")))?;
        let b = before.map(|(e, r)| serde_json::json!({ "event_types": e, "regions": r }).to_string()).unwrap_or_default();
        let a = serde_json::json!({ "event_types": events, "regions": regions }).to_string();
        self.append_audit(&mut w.tx, actor, "department.grant", "app_user", &user_id.to_string(), &b, &a).await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn pending_outbox(&self) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query("SELECT id, message_id, action FROM eb_outbox WHERE done_at_ms IS NULL ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(OutboxItem { id: r.try_get(0)?, message_id: r.try_get(1)?, action: r.try_get(2)? }))
            .collect()
    }

    async fn finish_outbox(&self, id: i64) -> Result<()> {
        let _w = self.begin_write().await?;
        sqlx::query("UPDATE eb_outbox SET done_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn record_sends(&self, message_id: i64, ebrids: &[String], at_ms: i64) -> Result<()> {
        let mut w = self.begin_write().await?;
        let bump = sends_bump("eb_delivery");
        if ebrids.is_empty() {
            sqlx::query(&format!("UPDATE eb_delivery SET {bump} WHERE message_id = $2"))
                .bind(at_ms)
                .bind(message_id)
                .execute(&mut *w.tx)
                .await?;
        }
        // One statement per chunk of terminals, not one per terminal.
        let per = max_params(self.backend()).saturating_sub(2).max(1);
        for chunk in ebrids.chunks(per) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE eb_delivery SET {bump} WHERE message_id = $2 \
                 AND resource_id IN (SELECT id FROM eb_resource WHERE ebrid IN ({}))",
                list.join(",")
            );
            let mut q = sqlx::query(&sql).bind(at_ms).bind(message_id);
            for e in chunk {
                q = q.bind(e.as_str());
            }
            q.persistent(false).execute(&mut *w.tx).await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    async fn open_commands_for(&self, ebrid: &str, now_ms: i64) -> Result<Vec<CommandRow>> {
        self.commands_where("c.done_ms IS NULL AND c.until_ms > $1 AND r.ebrid = $2", now_ms, Some(ebrid)).await
    }

    async fn open_commands_online(&self, now_ms: i64) -> Result<Vec<CommandRow>> {
        self.commands_where("c.done_ms IS NULL AND c.until_ms > $1 AND s.online = 1", now_ms, None).await
    }

    async fn message_commands(&self, message_id: i64) -> Result<Vec<CommandRow>> {
        self.commands_where("c.message_id = $1", message_id, None).await
    }

    async fn record_command_sends(&self, ids: &[i64], at_ms: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut w = self.begin_write().await?;
        let bump = sends_bump("eb_command");
        let per = max_params(self.backend()).saturating_sub(1).max(1);
        for chunk in ids.chunks(per) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("UPDATE eb_command SET {bump} WHERE id IN ({})", list.join(","));
            let mut q = sqlx::query(&sql).bind(at_ms);
            for id in chunk {
                q = q.bind(*id);
            }
            q.persistent(false).execute(&mut *w.tx).await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    async fn apply_receipts(&self, receipts: &[ReceiptIn]) -> Result<u64> {
        if receipts.is_empty() {
            return Ok(0);
        }
        // One row per (message, terminal): the furthest stage and the first time of each stage.
        // Any later stage implies receipt, so it also fills received_ms.
        #[derive(Default)]
        struct Agg {
            stage: i64,
            rec: Option<i64>,
            st: Option<i64>,
            fin: Option<i64>,
            reason: Option<String>,
        }
        let mut agg: std::collections::BTreeMap<(&str, &str), Agg> = std::collections::BTreeMap::new();
        // Cancels receipted: the stage of their own, or (terminals before it) a play ended so.
        let mut cancels: std::collections::BTreeSet<(&str, &str)> = std::collections::BTreeSet::new();
        for r in receipts {
            let key = (r.ebmid.as_str(), r.ebrid.as_str());
            if r.stage == Stage::Cancelled || (r.stage == Stage::Finished && r.reason.as_deref() == Some("cancelled")) {
                cancels.insert(key);
            }
            if r.stage == Stage::Cancelled {
                continue;
            }
            let a = agg.entry(key).or_default();
            let min = |x: Option<i64>| Some(x.map_or(r.ts, |v| v.min(r.ts)));
            let stage = match r.stage {
                Stage::Received => 1,
                Stage::Started => {
                    a.st = min(a.st);
                    2
                }
                Stage::Finished => {
                    a.fin = min(a.fin);
                    3
                }
                Stage::Failed => {
                    a.fin = min(a.fin);
                    4
                }
                Stage::Cancelled => continue,
            };
            a.rec = min(a.rec);
            a.stage = a.stage.max(stage);
            if r.reason.is_some() {
                a.reason = r.reason.clone();
            }
        }
        let rows: Vec<((&str, &str), Agg)> = agg.into_iter().collect();
        let mut w = self.begin_write().await?;
        let mut n = 0;
        // Stages only move forward; a receipt for a message the terminal was not targeted by
        // matches no delivery row and is ignored. One statement per chunk, not per receipt.
        let per = (max_params(self.backend()) / 7).max(1);
        for chunk in rows.chunks(per) {
            let sql = format!(
                "WITH v (ebmid, ebrid, stage, rec, st, fin, reason) AS (VALUES {}) \
                 UPDATE eb_delivery SET \
                 stage = CASE WHEN eb_delivery.stage < v.stage THEN v.stage ELSE eb_delivery.stage END, \
                 received_ms = COALESCE(eb_delivery.received_ms, v.rec), \
                 started_ms = COALESCE(eb_delivery.started_ms, v.st), \
                 finished_ms = COALESCE(eb_delivery.finished_ms, v.fin), \
                 failed_reason = COALESCE(v.reason, eb_delivery.failed_reason) \
                 FROM v JOIN eb_message m ON m.ebmid = v.ebmid JOIN eb_resource r ON r.ebrid = v.ebrid \
                 WHERE eb_delivery.message_id = m.id AND eb_delivery.resource_id = r.id",
                values_list(&["TEXT", "TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT", "TEXT"], chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for ((ebmid, ebrid), a) in chunk {
                q = q.bind(*ebmid).bind(*ebrid).bind(a.stage).bind(a.rec).bind(a.st).bind(a.fin).bind(a.reason.as_deref());
            }
            n += q.persistent(false).execute(&mut *w.tx).await?.rows_affected();
        }
        // A cancel for a message the terminal was never sent matches no command and is ignored.
        let cancels: Vec<(&str, &str)> = cancels.into_iter().collect();
        let now = now_ms();
        for chunk in cancels.chunks((max_params(self.backend()) / 2).max(1)) {
            let sql = format!(
                "WITH v (ebmid, ebrid) AS (VALUES {}) \
                 UPDATE eb_command SET done_ms = {now} \
                 FROM v JOIN eb_message m ON m.ebmid = v.ebmid JOIN eb_resource r ON r.ebrid = v.ebrid \
                 WHERE eb_command.kind = 'cancel' AND eb_command.message_id = m.id AND eb_command.resource_id = r.id \
                 AND eb_command.done_ms IS NULL",
                values_list(&["TEXT", "TEXT"], chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for (ebmid, ebrid) in chunk {
                q = q.bind(*ebmid).bind(*ebrid);
            }
            n += q.persistent(false).execute(&mut *w.tx).await?.rows_affected();
        }
        w.tx.commit().await?;
        Ok(n)
    }

    async fn delivery_summary(&self, message_id: i64) -> Result<DeliverySummary> {
        let r = sqlx::query(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN d.stage >= 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN d.stage >= 2 AND d.stage <> 4 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN d.stage = 3 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN d.stage = 4 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN d.stage = 0 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN d.stage = 0 AND COALESCE(s.online, 0) = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) \
             FROM eb_delivery d LEFT JOIN terminal_status s ON s.resource_id = d.resource_id WHERE d.message_id = $1",
        )
        .bind(message_id)
        .fetch_one(self.pool())
        .await?;
        Ok(DeliverySummary {
            targets: r.try_get(0)?,
            received: r.try_get(1)?,
            started: r.try_get(2)?,
            finished: r.try_get(3)?,
            failed: r.try_get(4)?,
            pending: r.try_get(5)?,
            pending_offline: r.try_get(6)?,
        })
    }

    async fn deliveries(&self, message_id: i64, only_unreceived: bool, limit: i64) -> Result<Vec<DeliveryRow>> {
        let cond = if only_unreceived { " AND d.stage = 0" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT r.ebrid, r.name, r.region_code, d.stage, COALESCE(s.online, 0), d.received_ms, d.started_ms, d.finished_ms, \
             d.failed_reason, d.sends, d.last_sent_ms, {} FROM eb_delivery d JOIN eb_resource r ON r.id = d.resource_id \
             LEFT JOIN terminal_status s ON s.resource_id = d.resource_id WHERE d.message_id = $1{cond} \
             ORDER BY r.region_code, r.ebrid LIMIT $2",
            conn_sends_now("d")
        ))
        .bind(message_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let online: i64 = r.try_get(4)?;
                Ok(DeliveryRow {
                    ebrid: r.try_get(0)?,
                    name: r.try_get(1)?,
                    region_code: r.try_get(2)?,
                    stage: r.try_get(3)?,
                    online: online != 0,
                    received_ms: r.try_get(5)?,
                    started_ms: r.try_get(6)?,
                    finished_ms: r.try_get(7)?,
                    failed_reason: r.try_get(8)?,
                    sends: r.try_get(9)?,
                    last_sent_ms: r.try_get(10)?,
                    conn_sends: r.try_get(11)?,
                })
            })
            .collect()
    }

    async fn pending_for_terminal(&self, ebrid: &str, now: i64) -> Result<Vec<Message>> {
        let cols: Vec<String> = MSG_COLS.split(", ").map(|c| format!("m.{}", c.trim())).collect();
        let rows = sqlx::query(&format!(
            "SELECT {} FROM eb_message m JOIN eb_delivery d ON d.message_id = m.id \
             JOIN eb_resource r ON r.id = d.resource_id \
             WHERE r.ebrid = $1 AND d.stage = 0 AND m.status IN ('approved','dispatching') AND m.end_ms > $2 ORDER BY m.id",
            cols.join(", ")
        ))
        .bind(ebrid)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_of).collect()
    }

    async fn active_messages(&self) -> Result<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {MSG_COLS} FROM eb_message WHERE status IN ('approved','dispatching') ORDER BY id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_of).collect()
    }
}
