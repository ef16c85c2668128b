//! [`InterchangeStore`] for both backends.

use crate::eb::{Message, MessageMove, NewMessage, ResourceWithStatus};
use crate::interchange::*;
use crate::sql_eb::{RES_COLS, resource_with_status_of};
use crate::{Actor, Result, SqlStore};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::authz::Transition;
use sqlx::Row;

/// One statement in its own write transaction.
macro_rules! write1 {
    ($self:expr, $sql:expr $(, $b:expr)* $(,)?) => {{
        let mut w = $self.begin_write().await?;
        let n = sqlx::query($sql)$(.bind($b))*.execute(&mut *w.tx).await?.rows_affected();
        w.tx.commit().await?;
        n
    }};
}

/// Attempts after which a package is given up (with its error kept): a day at the 5-minute cap.
pub const MAX_ATTEMPTS: i64 = 300;

#[async_trait]
impl InterchangeStore for SqlStore {
    async fn enqueue_ebd(&self, peer: &str, ebdid: &str, ebd_type: &str, package: &[u8], now_ms: i64) -> Result<i64> {
        let mut w = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO ebd_outbox (peer, ebdid, ebd_type, package, next_attempt_ms, created_ms) VALUES ($1,$2,$3,$4,$5,$5) RETURNING id",
        )
        .bind(peer)
        .bind(ebdid)
        .bind(ebd_type)
        .bind(package.to_vec())
        .bind(now_ms)
        .fetch_one(&mut *w.tx)
        .await?
        .try_get(0)?;
        w.tx.commit().await?;
        Ok(id)
    }

    async fn due_ebds(&self, now_ms: i64, limit: i64) -> Result<Vec<EbdOut>> {
        let rows = sqlx::query(
            "SELECT id, peer, ebdid, ebd_type, package, attempts FROM ebd_outbox \
             WHERE done_ms IS NULL AND next_attempt_ms <= $1 AND attempts < $2 ORDER BY id LIMIT $3",
        )
        .bind(now_ms)
        .bind(MAX_ATTEMPTS)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EbdOut {
                    id: r.try_get(0)?,
                    peer: r.try_get(1)?,
                    ebdid: r.try_get(2)?,
                    ebd_type: r.try_get(3)?,
                    package: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn ebd_done(&self, id: i64, result_code: i64, now_ms: i64) -> Result<()> {
        write1!(self, "UPDATE ebd_outbox SET done_ms = $1, result_code = $2, attempts = attempts + 1, last_error = NULL WHERE id = $3", now_ms, result_code, id);
        Ok(())
    }

    async fn ebd_retry(&self, id: i64, error: &str, next_attempt_ms: i64) -> Result<()> {
        write1!(self, "UPDATE ebd_outbox SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2 WHERE id = $3", error, next_attempt_ms, id);
        Ok(())
    }

    async fn ebd_outbox_recent(&self, limit: i64) -> Result<Vec<EbdOutRow>> {
        let rows = sqlx::query(
            "SELECT id, peer, ebdid, ebd_type, attempts, created_ms, done_ms, result_code, last_error FROM ebd_outbox ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EbdOutRow {
                    id: r.try_get(0)?,
                    peer: r.try_get(1)?,
                    ebdid: r.try_get(2)?,
                    ebd_type: r.try_get(3)?,
                    attempts: r.try_get(4)?,
                    created_ms: r.try_get(5)?,
                    done_ms: r.try_get(6)?,
                    result_code: r.try_get(7)?,
                    last_error: r.try_get(8)?,
                })
            })
            .collect()
    }

    async fn record_ebd_in(&self, e: &EbdInRow) -> Result<()> {
        write1!(
            self,
            "INSERT INTO ebd_inbox (ebdid, ebd_type, src_ebrid, received_ms, result_code, result_desc) VALUES ($1,$2,$3,$4,$5,$6)",
            e.ebdid.as_str(),
            e.ebd_type.as_str(),
            e.src_ebrid.as_str(),
            e.received_ms,
            e.result_code,
            e.result_desc.as_str(),
        );
        Ok(())
    }

    async fn ebd_inbox_recent(&self, limit: i64) -> Result<Vec<EbdInRow>> {
        let rows = sqlx::query(
            "SELECT ebdid, ebd_type, src_ebrid, received_ms, result_code, result_desc FROM ebd_inbox ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EbdInRow {
                    ebdid: r.try_get(0)?,
                    ebd_type: r.try_get(1)?,
                    src_ebrid: r.try_get(2)?,
                    received_ms: r.try_get(3)?,
                    result_code: r.try_get(4)?,
                    result_desc: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn set_peer_link(&self, peer: &str, up: bool, now_ms: i64, error: Option<&str>) -> Result<bool> {
        let mut w = self.begin_write().await?;
        let link = if up { "up" } else { "down" };
        let before: Option<String> = sqlx::query("SELECT link FROM ebd_peer_state WHERE peer = $1")
            .bind(peer)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let changed = before.as_deref() != Some(link);
        sqlx::query(
            "INSERT INTO ebd_peer_state (peer, link, changed_ms, last_ok_ms, last_error) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (peer) DO UPDATE SET link = excluded.link, \
             changed_ms = CASE WHEN ebd_peer_state.link = excluded.link THEN ebd_peer_state.changed_ms ELSE excluded.changed_ms END, \
             last_ok_ms = COALESCE(excluded.last_ok_ms, ebd_peer_state.last_ok_ms), last_error = excluded.last_error",
        )
        .bind(peer)
        .bind(link)
        .bind(now_ms)
        .bind(up.then_some(now_ms))
        .bind(error)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(changed)
    }

    async fn set_peer_reported(&self, peer: &str, until_ms: i64) -> Result<()> {
        write1!(
            self,
            "INSERT INTO ebd_peer_state (peer, link, changed_ms, last_report_ms) VALUES ($1, 'unknown', $2, $2) \
             ON CONFLICT (peer) DO UPDATE SET last_report_ms = excluded.last_report_ms",
            peer,
            until_ms,
        );
        Ok(())
    }

    async fn peer_states(&self) -> Result<Vec<PeerState>> {
        let rows = sqlx::query("SELECT peer, link, changed_ms, last_ok_ms, last_error, last_report_ms FROM ebd_peer_state ORDER BY peer")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PeerState {
                    peer: r.try_get(0)?,
                    link: r.try_get(1)?,
                    changed_ms: r.try_get(2)?,
                    last_ok_ms: r.try_get(3)?,
                    last_error: r.try_get(4)?,
                    last_report_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn receive_ebm(&self, ebmid: &str, peer: &str, m: &NewMessage, arrive: Transition, also: &[MessageMove], actor: &Actor) -> Result<(Message, bool)> {
        let mut w = self.begin_write().await?;
        let existing: Option<i64> = sqlx::query("SELECT message_id FROM ebd_received_ebm WHERE ebmid = $1")
            .bind(ebmid)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if let Some(id) = existing {
            let msg = self.fetch_message(&mut w.tx, id).await?;
            w.tx.commit().await?;
            return Ok((msg, false));
        }
        let msg = self.create_message_tx(&mut w.tx, m, actor).await?;
        let msg = self.transition_message_tx(&mut w.tx, &MessageMove::new(msg.id, arrive), actor).await?;
        for mv in also {
            self.transition_message_tx(&mut w.tx, mv, actor).await?;
        }
        sqlx::query("INSERT INTO ebd_received_ebm (ebmid, peer, message_id) VALUES ($1, $2, $3)")
            .bind(ebmid)
            .bind(peer)
            .bind(msg.id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok((msg, true))
    }

    async fn received_ebms(&self) -> Result<Vec<ReceivedEbm>> {
        let rows = sqlx::query("SELECT ebmid, peer, message_id, last_state FROM ebd_received_ebm ORDER BY message_id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok(ReceivedEbm { ebmid: r.try_get(0)?, peer: r.try_get(1)?, message_id: r.try_get(2)?, last_state: r.try_get(3)? }))
            .collect()
    }

    async fn set_received_state(&self, ebmid: &str, state: i64, now_ms: i64) -> Result<()> {
        write1!(self, "UPDATE ebd_received_ebm SET last_state = $1, reported_ms = $2 WHERE ebmid = $3", state, now_ms, ebmid);
        Ok(())
    }

    async fn mark_forwarded(&self, message_id: i64, peer: &str, ebdid: &str) -> Result<bool> {
        let n = write1!(self, "INSERT INTO ebd_forwarded (message_id, peer, ebdid) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", message_id, peer, ebdid);
        Ok(n == 1)
    }

    async fn forwarded(&self, message_id: i64) -> Result<Vec<Forwarded>> {
        let rows = sqlx::query(
            "SELECT message_id, peer, ebdid, brd_state, coverage_rate, reported_ms FROM ebd_forwarded WHERE message_id = $1 ORDER BY peer",
        )
        .bind(message_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Forwarded {
                    message_id: r.try_get(0)?,
                    peer: r.try_get(1)?,
                    ebdid: r.try_get(2)?,
                    brd_state: r.try_get(3)?,
                    coverage_rate: r.try_get(4)?,
                    reported_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn set_forwarded_state(&self, ebmid: &str, peer: &str, state: i64, coverage_rate: Option<&str>, now_ms: i64) -> Result<bool> {
        let n = write1!(
            self,
            "UPDATE ebd_forwarded SET brd_state = $1, coverage_rate = $2, reported_ms = $3 \
             WHERE peer = $4 AND message_id = (SELECT id FROM eb_message WHERE ebmid = $5)",
            state,
            coverage_rate,
            now_ms,
            peer,
            ebmid,
        );
        Ok(n > 0)
    }

    async fn resources_for_report(&self, scope: &RegionCode, since_ms: Option<i64>) -> Result<Vec<ResourceWithStatus>> {
        self.report_rows(scope, since_ms, "(r.created_at_ms >= $3 OR r.updated_at_ms >= $3 OR r.retired_at_ms >= $3)").await
    }

    async fn states_for_report(&self, scope: &RegionCode, since_ms: Option<i64>) -> Result<Vec<ResourceWithStatus>> {
        self.report_rows(scope, since_ms, "(s.changed_ms >= $3 OR r.retired_at_ms >= $3)").await
    }
}

impl SqlStore {
    /// Resources in `scope` with their status: all current ones, or those matching `changed`
    /// (a condition on $3 = `since_ms`).
    async fn report_rows(&self, scope: &RegionCode, since_ms: Option<i64>, changed: &str) -> Result<Vec<ResourceWithStatus>> {
        let (lo, hi) = scope.subtree_bounds();
        let cond = if since_ms.is_some() { changed } else { "r.retired_at_ms IS NULL" };
        let sql = format!(
            "SELECT {RES_COLS}, s.online, s.last_seen_ms, s.state, s.volume, s.task, s.faults \
             FROM eb_resource r LEFT JOIN terminal_status s ON s.resource_id = r.id \
             WHERE r.region_code BETWEEN $1 AND $2 AND {cond} ORDER BY r.region_code, r.ebrid"
        );
        let mut q = sqlx::query(&sql).bind(lo.as_str()).bind(hi.as_str());
        if let Some(t) = since_ms {
            q = q.bind(t);
        }
        q.fetch_all(self.pool()).await?.iter().map(resource_with_status_of).collect()
    }
}
