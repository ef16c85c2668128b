//! [`CapStore`] for both backends.

use crate::cap::*;
use crate::eb::{Message, MessageMove};
use crate::{Actor, Result, SqlStore, StoreError, now_ms};
use async_trait::async_trait;
use cuncun_domain::RegionCode;
use cuncun_domain::authz::{MsgCommand, decide};
use cuncun_domain::eb::MessageStatus;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const DEPT_SQL: &str = "SELECT u.id, u.username, u.display_name, u.region_code, u.disabled, d.cert_pem, d.accept_unsigned, d.updated_ms \
     FROM app_user u LEFT JOIN cap_department d ON d.user_id = u.id WHERE u.role = 'department_sender'";

const ALERT_COLS: &str =
    "id, sender, identifier, sent, msg_type, status, refs, department_id, message_id, signature, source, outcome, received_ms";

fn dept_of(r: &AnyRow) -> Result<CapDepartment> {
    let code: String = r.try_get(3)?;
    let disabled: i64 = r.try_get(4)?;
    let accept: Option<i64> = r.try_get(6)?;
    Ok(CapDepartment {
        user_id: r.try_get(0)?,
        username: r.try_get(1)?,
        display_name: r.try_get(2)?,
        region_code: RegionCode::parse(&code).map_err(|e| StoreError::Invalid(e.to_string()))?,
        disabled: disabled != 0,
        cert_pem: r.try_get(5)?,
        accept_unsigned: accept.unwrap_or(0) != 0,
        updated_ms: r.try_get(7)?,
    })
}

fn alert_of(r: &AnyRow) -> Result<CapAlertRow> {
    Ok(CapAlertRow {
        id: r.try_get(0)?,
        sender: r.try_get(1)?,
        identifier: r.try_get(2)?,
        sent: r.try_get(3)?,
        msg_type: r.try_get(4)?,
        status: r.try_get(5)?,
        refs: r.try_get(6)?,
        department_id: r.try_get(7)?,
        message_id: r.try_get(8)?,
        signature: r.try_get(9)?,
        source: r.try_get(10)?,
        outcome: r.try_get(11)?,
        received_ms: r.try_get(12)?,
    })
}

impl SqlStore {
    async fn alert_by_key(tx: &mut Transaction<'static, Any>, sender: &str, identifier: &str) -> Result<Option<CapAlertRow>> {
        sqlx::query(&format!("SELECT {ALERT_COLS} FROM cap_alert WHERE sender = $1 AND identifier = $2"))
            .bind(sender)
            .bind(identifier)
            .fetch_optional(&mut **tx)
            .await?
            .as_ref()
            .map(alert_of)
            .transpose()
    }

    /// Cancels (or supersedes, for an Update) a referenced message if the rules allow it.
    async fn cancel_tx(&self, tx: &mut Transaction<'static, Any>, m: &Message, imp: &CapImport, actor: &Actor) -> Result<Option<Message>> {
        if m.status.is_final() {
            return Ok(None);
        }
        let cmd = if imp.msg_type == "Update" {
            MsgCommand::Update { drill: imp.message.as_ref().is_some_and(|n| n.drill) }
        } else {
            MsgCommand::Cancel
        };
        let Some(t) = decide(&imp.principal, cmd, &m.facts(), &imp.settings)? else { return Ok(None) };
        let mut mv = MessageMove::new(m.id, t);
        mv.reason = format!("CAP {} {}", imp.msg_type, imp.identifier);
        Ok(Some(self.transition_message_tx(tx, &mv, actor).await?))
    }
}

#[async_trait]
impl CapStore for SqlStore {
    async fn cap_departments(&self, scope: &RegionCode) -> Result<Vec<CapDepartment>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!("{DEPT_SQL} AND u.region_code BETWEEN $1 AND $2 ORDER BY u.username"))
            .bind(lo.as_str())
            .bind(hi.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(dept_of).collect()
    }

    async fn cap_department(&self, user_id: i64) -> Result<Option<CapDepartment>> {
        sqlx::query(&format!("{DEPT_SQL} AND u.id = $1")).bind(user_id).fetch_optional(self.pool()).await?.as_ref().map(dept_of).transpose()
    }

    async fn set_cap_department(&self, user_id: i64, cert_pem: Option<&str>, accept_unsigned: bool, actor: &Actor) -> Result<CapDepartment> {
        let mut w = self.begin_write().await?;
        let before = sqlx::query(&format!("{DEPT_SQL} AND u.id = $1"))
            .bind(user_id)
            .fetch_optional(&mut *w.tx)
            .await?
            .as_ref()
            .map(dept_of)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("department sender {user_id}")))?;
        sqlx::query(
            "INSERT INTO cap_department (user_id, cert_pem, accept_unsigned, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id) DO UPDATE SET cert_pem = excluded.cert_pem, accept_unsigned = excluded.accept_unsigned, \
             updated_ms = excluded.updated_ms",
        )
        .bind(user_id)
        .bind(cert_pem)
        .bind(accept_unsigned as i64)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
        let after = sqlx::query(&format!("{DEPT_SQL} AND u.id = $1"))
            .bind(user_id)
            .fetch_one(&mut *w.tx)
            .await
            .map_err(StoreError::from)
            .and_then(|r| dept_of(&r))?;
        // The audit shows whether a certificate is set and its fingerprint-free length, not the PEM.
        let summary = |d: &CapDepartment| {
            serde_json::json!({
                "certificate": d.cert_pem.as_ref().map(|p| format!("{} bytes PEM", p.len())),
                "accept_unsigned": d.accept_unsigned,
            })
            .to_string()
        };
        self.append_audit(&mut w.tx, actor, "cap.department", "app_user", &user_id.to_string(), &summary(&before), &summary(&after))
            .await?;
        w.tx.commit().await?;
        Ok(after)
    }

    async fn import_cap(&self, imp: &CapImport, actor: &Actor) -> Result<CapImported> {
        let mut w = self.begin_write().await?;
        if let Some(alert) = Self::alert_by_key(&mut w.tx, &imp.sender, &imp.identifier).await? {
            if alert.department_id != imp.department_id {
                return Err(StoreError::Conflict(format!(
                    "alert {},{} was already received from another department",
                    imp.sender, imp.identifier
                )));
            }
            let message = match alert.message_id {
                Some(id) => Some(self.fetch_message(&mut w.tx, id).await?),
                None => None,
            };
            w.tx.commit().await?;
            return Ok(CapImported { alert, message, cancelled: Vec::new(), created: false });
        }
        // The messages the references name, oldest first; only this department's own alerts.
        let mut referenced: Vec<Message> = Vec::new();
        for (sender, identifier) in &imp.references {
            let Some(r) = Self::alert_by_key(&mut w.tx, sender, identifier).await? else { continue };
            if r.department_id != imp.department_id {
                return Err(StoreError::Invalid(format!(
                    "references: alert {sender},{identifier} was sent by another department"
                )));
            }
            if let Some(mid) = r.message_id {
                referenced.push(self.fetch_message(&mut w.tx, mid).await?);
            }
        }
        if imp.msg_type == "Cancel" && referenced.is_empty() {
            return Err(StoreError::Invalid(
                "references: none of the alerts this Cancel refers to was received here".into(),
            ));
        }
        let mut cancelled = Vec::new();
        let mut outcome = Vec::new();
        let message = match &imp.message {
            Some(nm) => {
                let mut nm = nm.clone();
                // An update relates to the latest referenced message still in force.
                if imp.msg_type == "Update" {
                    nm.related_ebmid = referenced.iter().rev().find(|m| !m.status.is_final()).map(|m| m.ebmid.clone());
                }
                decide(&imp.principal, MsgCommand::Compose, &nm.facts(), &imp.settings)?;
                let m = self.create_message_tx(&mut w.tx, &nm, actor).await?;
                let t = decide(&imp.principal, MsgCommand::Submit, &m.facts(), &imp.settings)?
                    .ok_or_else(|| StoreError::Invalid("submit made no step".into()))?;
                let m = self.transition_message_tx(&mut w.tx, &MessageMove::new(m.id, t), actor).await?;
                outcome.push(format!("submitted {}", m.ebmid));
                // A referenced message not yet approved is superseded now; one on air is cancelled
                // when its update is approved (the workflow's rule for updates).
                if imp.msg_type == "Update" {
                    for old in &referenced {
                        if matches!(old.status, MessageStatus::Draft | MessageStatus::Submitted) {
                            if let Some(c) = self.cancel_tx(&mut w.tx, old, imp, actor).await? {
                                cancelled.push(c);
                            }
                        }
                    }
                }
                Some(m)
            }
            None => {
                if imp.msg_type == "Cancel" {
                    for old in &referenced {
                        if let Some(c) = self.cancel_tx(&mut w.tx, old, imp, actor).await? {
                            cancelled.push(c);
                        }
                    }
                }
                None
            }
        };
        for c in &cancelled {
            outcome.push(format!("cancelled {}", c.ebmid));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO cap_alert (sender, identifier, sent, msg_type, status, refs, department_id, message_id, signature, source, xml, outcome, received_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id",
        )
        .bind(imp.sender.as_str())
        .bind(imp.identifier.as_str())
        .bind(imp.sent.as_str())
        .bind(imp.msg_type.as_str())
        .bind(imp.status.as_str())
        .bind(imp.refs.as_str())
        .bind(imp.department_id)
        .bind(message.as_ref().map(|m| m.id))
        .bind(imp.signature.as_str())
        .bind(imp.source.as_str())
        .bind(imp.xml.as_str())
        .bind(outcome.join("; "))
        .bind(now_ms())
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| crate::sql::conflict_or(e, || format!("CAP alert {} from {} was imported concurrently", imp.identifier, imp.sender)))?
        .try_get(0)?;
        for (seq, i) in imp.infos.iter().enumerate() {
            sqlx::query(
                "INSERT INTO cap_info (alert_id, seq, language, event, headline, description, instruction, sender_name) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            )
            .bind(id)
            .bind(seq as i64 + 1)
            .bind(i.language.as_str())
            .bind(i.event.as_str())
            .bind(i.headline.as_str())
            .bind(i.description.as_str())
            .bind(i.instruction.as_str())
            .bind(i.sender_name.as_str())
            .execute(&mut *w.tx)
            .await?;
        }
        let alert = Self::row_by_id(&mut w.tx, &format!("SELECT {ALERT_COLS} FROM cap_alert WHERE id = $1"), id, "CAP alert", alert_of).await?;
        let after = serde_json::json!({
            "sender": imp.sender, "identifier": imp.identifier, "msg_type": imp.msg_type,
            "signature": imp.signature, "source": imp.source, "outcome": alert.outcome,
        })
        .to_string();
        self.append_audit(&mut w.tx, actor, "cap.import", "cap_alert", &id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(CapImported { alert, message, cancelled, created: true })
    }

    async fn cap_alert(&self, id: i64) -> Result<Option<CapAlertRow>> {
        sqlx::query(&format!("SELECT {ALERT_COLS} FROM cap_alert WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(alert_of)
            .transpose()
    }

    async fn cap_alert_for_message(&self, message_id: i64) -> Result<Option<(CapAlertRow, String)>> {
        let row = sqlx::query(&format!("SELECT {ALERT_COLS}, xml FROM cap_alert WHERE message_id = $1 ORDER BY id DESC LIMIT 1"))
            .bind(message_id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => Ok(Some((alert_of(&r)?, r.try_get(13)?))),
            None => Ok(None),
        }
    }

    async fn cap_infos(&self, alert_id: i64) -> Result<Vec<CapInfoRow>> {
        let rows = sqlx::query(
            "SELECT language, event, headline, description, instruction, sender_name FROM cap_info WHERE alert_id = $1 ORDER BY seq",
        )
        .bind(alert_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CapInfoRow {
                    language: r.try_get(0)?,
                    event: r.try_get(1)?,
                    headline: r.try_get(2)?,
                    description: r.try_get(3)?,
                    instruction: r.try_get(4)?,
                    sender_name: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn cap_alerts_recent(&self, scope: &RegionCode, limit: i64) -> Result<Vec<CapAlertRow>> {
        let (lo, hi) = scope.subtree_bounds();
        let cols = ALERT_COLS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols} FROM cap_alert a JOIN app_user u ON u.id = a.department_id \
             WHERE u.region_code BETWEEN $1 AND $2 ORDER BY a.id DESC LIMIT $3"
        ))
        .bind(lo.as_str())
        .bind(hi.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(alert_of).collect()
    }
}
