//! The SQL implementation of [`ServiceStore`].

use crate::bulk::{Val, insert_rows, max_params};
use crate::service::*;
use crate::sql::conflict_or;
use crate::*;
use cuncun_domain::model::OutletKind;
use cuncun_domain::service::*;
use cuncun_domain::time;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

fn bad(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("stored {what} is invalid: {e}"))
}

fn code(row: &AnyRow, i: usize, what: &str) -> Result<RegionCode> {
    let s: String = row.try_get(i)?;
    RegionCode::parse(&s).map_err(|e| bad(what, e))
}

fn flag(row: &AnyRow, i: usize) -> Result<bool> {
    Ok(row.try_get::<i64, _>(i)? != 0)
}

const HH_COLS: &str = "id, village_code, hamlet, head_name, phone, address, members, coverage_modes, hd, fibre, \
    care_elderly, care_children, care_disabled, fee_waiver, fee_waiver_evidence, fee_waiver_until";

fn household_of(r: &AnyRow) -> Result<Household> {
    let reception: String = r.try_get(7)?;
    let waiver: String = r.try_get(13)?;
    Ok(Household {
        id: r.try_get(0)?,
        rec: HouseholdRecord {
            village_code: code(r, 1, "household village")?,
            hamlet: r.try_get(2)?,
            head_name: r.try_get(3)?,
            phone: r.try_get(4)?,
            address: r.try_get(5)?,
            members: r.try_get(6)?,
            reception: HouseholdRecord::reception_of(&reception),
            hd: flag(r, 8)?,
            fibre: flag(r, 9)?,
            care_elderly: flag(r, 10)?,
            care_children: flag(r, 11)?,
            care_disabled: flag(r, 12)?,
            fee_waiver: FeeWaiver::parse(&waiver).ok_or_else(|| bad("fee waiver", &waiver))?,
            fee_waiver_evidence: r.try_get(14)?,
            fee_waiver_until: r.try_get(15)?,
        },
    })
}

fn household_vals(h: &HouseholdRecord, now: i64) -> Vec<Val> {
    let s = |x: &str| Val::T(x.to_string());
    let b = |x: bool| Val::I(x as i64);
    vec![
        s(h.village_code.as_str()),
        Val::OptT(h.hamlet.clone()),
        s(h.head_name.trim()),
        s(h.phone.trim()),
        s(h.address.trim()),
        Val::I(h.members),
        s(&h.reception_key()),
        b(h.hd),
        b(h.fibre),
        b(h.care_elderly),
        b(h.care_children),
        b(h.care_disabled),
        s(h.fee_waiver.key()),
        s(h.fee_waiver_evidence.trim()),
        s(h.fee_waiver_until.trim()),
        Val::I(now),
    ]
}

const HH_INSERT_COLS: [&str; 16] = [
    "village_code", "hamlet", "head_name", "phone", "address", "members", "coverage_modes", "hd", "fibre",
    "care_elderly", "care_children", "care_disabled", "fee_waiver", "fee_waiver_evidence", "fee_waiver_until",
    "updated_at_ms",
];

/// A household with every required field (docs/INDICATORS.md, data completeness), as SQL.
use crate::service_stats::{bulk_begin, bulk_end, CARE_SQL, TICKET_FILTER, ticket_measures};

fn validate_household(h: &HouseholdRecord) -> Result<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.to_string()));
    if h.village_code.level() != cuncun_domain::RegionLevel::Village {
        return invalid("village_code: a household belongs to a village (12-digit code)");
    }
    if h.head_name.trim().is_empty() {
        return invalid("head_name: required");
    }
    if h.members < 0 {
        return invalid("members: must not be negative");
    }
    if h.fee_waiver != FeeWaiver::None && h.fee_waiver_evidence.trim().is_empty() {
        return invalid("fee_waiver_evidence: a fee waiver needs its evidence");
    }
    Ok(())
}

const ST_COLS: &str = "id, name, phone, region_code, user_id";

const OUTLET_COLS: &str = "id, kind, region_code, name, address, phone, hotline, service_scope, process, head_user_id";

fn outlet_of(r: &AnyRow) -> Result<Outlet> {
    let kind: String = r.try_get(1)?;
    Ok(Outlet {
        id: r.try_get(0)?,
        kind: OutletKind::parse(&kind).ok_or_else(|| bad("outlet kind", &kind))?,
        region_code: code(r, 2, "outlet region")?,
        name: r.try_get(3)?,
        address: r.try_get(4)?,
        phone: r.try_get(5)?,
        hotline: r.try_get(6)?,
        service_scope: r.try_get(7)?,
        process: r.try_get(8)?,
        head_user_id: r.try_get(9)?,
    })
}

const TICKET_COLS: &str = "id, kind, source, category, village_code, household_id, reporter_name, reporter_phone, \
    address, description, status, steward_id, created_at_ms, deadline_ms, assigned_at_ms, accepted_at_ms, \
    on_site_at_ms, resolved_at_ms, confirmed_at_ms, cancelled_at_ms, escalated_at_ms, escalated_to, rating, \
    resolution_note, terminal_ebrid, dedupe_key, reopen_count";

fn ticket_of(r: &AnyRow) -> Result<Ticket> {
    fn parse<T>(r: &AnyRow, i: usize, what: &str, f: fn(&str) -> Option<T>) -> Result<T> {
        let s: String = r.try_get(i)?;
        f(&s).ok_or_else(|| bad(what, &s))
    }
    Ok(Ticket {
        id: r.try_get(0)?,
        kind: parse(r, 1, "ticket kind", TicketKind::parse)?,
        source: parse(r, 2, "ticket source", TicketSource::parse)?,
        category: parse(r, 3, "ticket category", TicketCategory::parse)?,
        village_code: code(r, 4, "ticket village")?,
        household_id: r.try_get(5)?,
        reporter_name: r.try_get(6)?,
        reporter_phone: r.try_get(7)?,
        address: r.try_get(8)?,
        description: r.try_get(9)?,
        status: parse(r, 10, "ticket status", TicketStatus::parse)?,
        steward_id: r.try_get(11)?,
        created_at_ms: r.try_get(12)?,
        deadline_ms: r.try_get(13)?,
        assigned_at_ms: r.try_get(14)?,
        accepted_at_ms: r.try_get(15)?,
        on_site_at_ms: r.try_get(16)?,
        resolved_at_ms: r.try_get(17)?,
        confirmed_at_ms: r.try_get(18)?,
        cancelled_at_ms: r.try_get(19)?,
        escalated_at_ms: r.try_get(20)?,
        escalated_to: r.try_get(21)?,
        rating: r.try_get(22)?,
        resolution_note: r.try_get(23)?,
        terminal_ebrid: r.try_get(24)?,
        dedupe_key: r.try_get(25)?,
        reopen_count: r.try_get(26)?,
    })
}

fn ticket_json(t: &Ticket) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

const VISIT_COLS: &str = "id, household_id, steward_id, year, visited_at_ms, note, recorded_by";

fn visit_of(r: &AnyRow) -> Result<CareVisit> {
    Ok(CareVisit {
        id: r.try_get(0)?,
        household_id: r.try_get(1)?,
        steward_id: r.try_get(2)?,
        year: r.try_get(3)?,
        visited_at_ms: r.try_get(4)?,
        note: r.try_get(5)?,
        recorded_by: r.try_get(6)?,
    })
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

fn bind_vals(mut q: AnyQuery<'_>, vals: Vec<Val>) -> AnyQuery<'_> {
    for v in vals {
        q = match v {
            Val::I(x) => q.bind(x),
            Val::OptI(x) => q.bind(x),
            Val::T(x) => q.bind(x),
            Val::OptT(x) => q.bind(x),
            Val::F(x) => q.bind(x),
        };
    }
    q
}

/// Adds `(lo, hi)` of `scope` as the next two parameters; returns the condition on `col`.
fn scope_cond(col: &str, n: usize) -> String {
    format!("{col} BETWEEN ${} AND ${}", n, n + 1)
}

impl SqlStore {
    /// After a large load, fresh PostgreSQL statistics (as `insert_registry` does): without them
    /// the planner sorts a million tickets for a filtered list. The running counts are vacuumed
    /// with their table: the load updated their rows many times over.
    async fn analyze_after_load(&self, table: &str, rows: usize) -> Result<()> {
        if self.backend() == Backend::Postgres && rows >= 10_000 {
            sqlx::query(&format!("VACUUM (ANALYZE) {table}")).execute(self.pool()).await?;
        }
        Ok(())
    }

    async fn fetch_household(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Household> {
        Self::row_by_id(tx, &format!("SELECT {HH_COLS} FROM household WHERE id = $1"), id, "household", household_of).await
    }

    async fn fetch_ticket(tx: &mut Transaction<'static, Any>, id: i64) -> Result<Ticket> {
        Self::row_by_id(tx, &format!("SELECT {TICKET_COLS} FROM ticket WHERE id = $1"), id, "ticket", ticket_of).await
    }

    /// Stewards with their villages, from rows of ST_COLS.
    async fn stewards_from(&self, rows: Vec<AnyRow>) -> Result<Vec<Steward>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let villages = sqlx::query("SELECT village_code FROM steward_village WHERE steward_id = $1 ORDER BY village_code")
                .bind(id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|v| code(v, 0, "steward village"))
                .collect::<Result<Vec<_>>>()?;
            out.push(Steward {
                id,
                name: r.try_get(1)?,
                phone: r.try_get(2)?,
                region_code: code(r, 3, "steward township")?,
                user_id: r.try_get(4)?,
                villages,
            });
        }
        Ok(out)
    }

    async fn one_steward(&self, sql: &str, key: i64) -> Result<Option<Steward>> {
        let rows = sqlx::query(sql).bind(key).fetch_all(self.pool()).await?;
        Ok(self.stewards_from(rows).await?.into_iter().next())
    }

    async fn insert_steward_tx(&self, tx: &mut Transaction<'static, Any>, s: &StewardRecord) -> Result<i64> {
        if s.name.trim().is_empty() {
            return Err(StoreError::Invalid("name: required".into()));
        }
        let id: i64 = sqlx::query("INSERT INTO steward (name, phone, region_code, user_id) VALUES ($1,$2,$3,$4) RETURNING id")
            .bind(s.name.trim())
            .bind(s.phone.trim())
            .bind(s.region_code.as_str())
            .bind(s.user_id)
            .fetch_one(&mut **tx)
            .await
            .map_err(|e| conflict_or(e, || format!("steward {:?}", s.name)))?
            .try_get(0)?;
        let rows: Vec<Vec<Val>> = s.villages.iter().map(|v| vec![Val::I(id), Val::T(v.as_str().into())]).collect();
        insert_rows(tx, max_params(self.backend()), "steward_village", &["steward_id", "village_code"], &rows, "")
            .await
            .map_err(|e| conflict_or(e, || format!("villages of steward {:?}", s.name)))?;
        Ok(id)
    }

    async fn event(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
        actor: &Actor,
        action: &str,
        from: &str,
        to: &str,
        note: &str,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO ticket_event (ticket_id, at_ms, actor, action, from_status, to_status, note) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        )
        .bind(id)
        .bind(at)
        .bind(actor.0.as_str())
        .bind(action)
        .bind(from)
        .bind(to)
        .bind(note)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ServiceStore for SqlStore {
    async fn add_household(&self, h: &HouseholdRecord, actor: &Actor) -> Result<Household> {
        validate_household(h)?;
        let mut w = self.begin_write().await?;
        let ph: Vec<String> = (1..=HH_INSERT_COLS.len()).map(|i| format!("${i}")).collect();
        let sql = format!("INSERT INTO household ({}) VALUES ({}) RETURNING id", HH_INSERT_COLS.join(", "), ph.join(", "));
        let id: i64 = bind_vals(sqlx::query(&sql), household_vals(h, now_ms()))
            .fetch_one(&mut *w.tx)
            .await
            .map_err(|e| conflict_or(e, || format!("village {}", h.village_code)))?
            .try_get(0)?;
        let hh = Self::fetch_household(&mut w.tx, id).await?;
        let after = serde_json::to_string(&hh).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "household.create", "household", &id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(hh)
    }

    async fn update_household(&self, id: i64, h: &HouseholdRecord, actor: &Actor) -> Result<Household> {
        validate_household(h)?;
        let mut w = self.begin_write().await?;
        let before = Self::fetch_household(&mut w.tx, id).await?;
        let sets: Vec<String> = HH_INSERT_COLS.iter().enumerate().map(|(i, c)| format!("{c} = ${}", i + 1)).collect();
        let sql = format!("UPDATE household SET {} WHERE id = ${}", sets.join(", "), HH_INSERT_COLS.len() + 1);
        bind_vals(sqlx::query(&sql), household_vals(h, now_ms()))
            .bind(id).execute(&mut *w.tx).await.map_err(|e| conflict_or(e, || format!("village {}", h.village_code)))?;
        let after = Self::fetch_household(&mut w.tx, id).await?;
        let j = |x: &Household| serde_json::to_string(x).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "household.update", "household", &id.to_string(), &j(&before), &j(&after)).await?;
        w.tx.commit().await?;
        Ok(after)
    }

    async fn household(&self, id: i64) -> Result<Option<Household>> {
        let row = sqlx::query(&format!("SELECT {HH_COLS} FROM household WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(household_of).transpose()
    }

    async fn households_in(&self, scope: &RegionCode, q: &HouseholdQuery, limit: i64, offset: i64) -> Result<Vec<Household>> {
        let (lo, hi) = scope.subtree_bounds();
        let mut sql = format!("SELECT {HH_COLS} FROM household WHERE {}", scope_cond("village_code", 1));
        if q.care_only {
            sql.push_str(&format!(" AND {CARE_SQL}"));
        }
        let text = q.text.trim();
        if !text.is_empty() {
            sql.push_str(" AND (head_name LIKE $5 OR phone LIKE $5 OR address LIKE $5)");
        }
        sql.push_str(" ORDER BY village_code, id LIMIT $3 OFFSET $4");
        let mut query = sqlx::query(&sql).bind(lo).bind(hi).bind(limit).bind(offset);
        if !text.is_empty() {
            query = query.bind(format!("%{}%", text.replace(['%', '_'], "")));
        }
        query.fetch_all(self.pool()).await?.iter().map(household_of).collect()
    }

    async fn household_keys(&self, scope: &RegionCode) -> Result<Vec<(String, String, String)>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query("SELECT village_code, head_name, address FROM household WHERE village_code BETWEEN $1 AND $2")
            .bind(lo)
            .bind(hi)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    async fn import_households(&self, rows: &[HouseholdRecord], source: &str, actor: &Actor) -> Result<u64> {
        for (i, h) in rows.iter().enumerate() {
            validate_household(h).map_err(|e| StoreError::Invalid(format!("row {}: {e}", i + 1)))?;
        }
        let now = now_ms();
        let vals: Vec<Vec<Val>> = rows.iter().map(|h| household_vals(h, now)).collect();
        let mut w = self.begin_write().await?;
        let since = bulk_begin(&mut w.tx, self.backend(), "household").await?;
        insert_rows(&mut w.tx, max_params(self.backend()), "household", &HH_INSERT_COLS, &vals, "")
            .await
            .map_err(|e| conflict_or(e, || "a village of the file".into()))?;
        bulk_end(&mut w.tx, self.backend(), "household", since).await?;
        let summary = serde_json::json!({ "source": source, "rows": rows.len() }).to_string();
        self.append_audit(&mut w.tx, actor, "household.import", "household", source, "", &summary).await?;
        w.tx.commit().await?;
        self.analyze_after_load("household, household_stats", rows.len()).await?;
        Ok(rows.len() as u64)
    }

    async fn add_steward(&self, s: &StewardRecord, actor: &Actor) -> Result<Steward> {
        let mut w = self.begin_write().await?;
        let id = self.insert_steward_tx(&mut w.tx, s).await?;
        let after = serde_json::to_string(s).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "steward.create", "steward", &id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        self.steward(id).await?.ok_or_else(|| StoreError::NotFound(format!("steward {id}")))
    }

    async fn import_stewards(&self, rows: &[StewardRecord], source: &str, actor: &Actor) -> Result<u64> {
        let mut w = self.begin_write().await?;
        for (i, s) in rows.iter().enumerate() {
            self.insert_steward_tx(&mut w.tx, s).await.map_err(|e| StoreError::Invalid(format!("row {}: {e}", i + 1)))?;
        }
        let summary = serde_json::json!({ "source": source, "rows": rows.len() }).to_string();
        self.append_audit(&mut w.tx, actor, "steward.import", "steward", source, "", &summary).await?;
        w.tx.commit().await?;
        Ok(rows.len() as u64)
    }

    async fn set_steward_user(&self, steward_id: i64, user_id: Option<i64>, actor: &Actor) -> Result<Steward> {
        let before = self.steward(steward_id).await?.ok_or_else(|| StoreError::NotFound(format!("steward {steward_id}")))?;
        let mut w = self.begin_write().await?;
        if let Some(u) = user_id {
            let role: Option<String> = sqlx::query("SELECT role FROM app_user WHERE id = $1")
                .bind(u)
                .fetch_optional(&mut *w.tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            match role.as_deref() {
                None => return Err(StoreError::NotFound(format!("user {u}"))),
                Some("steward") => {}
                Some(other) => {
                    return Err(StoreError::Invalid(format!("user {u} has role {other}; a steward's account must have the steward role")));
                }
            }
        }
        sqlx::query("UPDATE steward SET user_id = $1 WHERE id = $2").bind(user_id).bind(steward_id).execute(&mut *w.tx).await?;
        let after = serde_json::json!({ "user_id": user_id }).to_string();
        let before_j = serde_json::json!({ "user_id": before.user_id }).to_string();
        self.append_audit(&mut w.tx, actor, "steward.link_user", "steward", &steward_id.to_string(), &before_j, &after).await?;
        w.tx.commit().await?;
        Ok(Steward { user_id, ..before })
    }

    async fn steward(&self, id: i64) -> Result<Option<Steward>> {
        self.one_steward(&format!("SELECT {ST_COLS} FROM steward WHERE id = $1"), id).await
    }

    async fn steward_of_user(&self, user_id: i64) -> Result<Option<Steward>> {
        self.one_steward(&format!("SELECT {ST_COLS} FROM steward WHERE user_id = $1 ORDER BY id LIMIT 1"), user_id).await
    }

    async fn stewards_in(&self, scope: &RegionCode) -> Result<Vec<Steward>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!("SELECT {ST_COLS} FROM steward WHERE region_code BETWEEN $1 AND $2 ORDER BY region_code, id"))
            .bind(lo)
            .bind(hi)
            .fetch_all(self.pool())
            .await?;
        self.stewards_from(rows).await
    }

    async fn village_steward(&self, village: &RegionCode) -> Result<Option<Steward>> {
        let id: Option<i64> = sqlx::query("SELECT MIN(steward_id) FROM steward_village WHERE village_code = $1")
            .bind(village.as_str())
            .fetch_one(self.pool())
            .await?
            .try_get(0)?;
        match id {
            Some(id) => self.steward(id).await,
            None => Ok(None),
        }
    }

    async fn outlets_in(&self, scope: &RegionCode) -> Result<Vec<Outlet>> {
        let (lo, hi) = scope.subtree_bounds();
        let rows = sqlx::query(&format!("SELECT {OUTLET_COLS} FROM outlet WHERE region_code BETWEEN $1 AND $2 ORDER BY region_code, id"))
            .bind(lo)
            .bind(hi)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(outlet_of).collect()
    }

    async fn outlet(&self, id: i64) -> Result<Option<Outlet>> {
        let row = sqlx::query(&format!("SELECT {OUTLET_COLS} FROM outlet WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(outlet_of).transpose()
    }

    async fn update_outlet(&self, id: i64, p: &OutletPatch, actor: &Actor) -> Result<Outlet> {
        let mut w = self.begin_write().await?;
        let before = Self::row_by_id(&mut w.tx, &format!("SELECT {OUTLET_COLS} FROM outlet WHERE id = $1"), id, "outlet", outlet_of).await?;
        let mut o = before.clone();
        let set = |field: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                *field = v.trim().to_string();
            }
        };
        set(&mut o.address, &p.address);
        set(&mut o.phone, &p.phone);
        set(&mut o.hotline, &p.hotline);
        set(&mut o.service_scope, &p.service_scope);
        set(&mut o.process, &p.process);
        if let Some(h) = p.head_user_id {
            o.head_user_id = h;
        }
        sqlx::query(
            "UPDATE outlet SET address=$1, phone=$2, hotline=$3, service_scope=$4, process=$5, head_user_id=$6, updated_at_ms=$7 WHERE id=$8",
        )
        .bind(o.address.as_str())
        .bind(o.phone.as_str())
        .bind(o.hotline.as_str())
        .bind(o.service_scope.as_str())
        .bind(o.process.as_str())
        .bind(o.head_user_id)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, || format!("outlet head user {:?}", o.head_user_id)))?;
        let j = |x: &Outlet| serde_json::to_string(x).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "outlet.update", "outlet", &id.to_string(), &j(&before), &j(&o)).await?;
        w.tx.commit().await?;
        Ok(o)
    }

    async fn outlet_checklist(&self, outlet_id: i64) -> Result<Vec<OutletCheck>> {
        let rows = sqlx::query("SELECT item, done, evidence, updated_at_ms, updated_by FROM outlet_check WHERE outlet_id = $1")
            .bind(outlet_id)
            .fetch_all(self.pool())
            .await?;
        let mut stored = std::collections::HashMap::new();
        for r in &rows {
            let item: String = r.try_get(0)?;
            stored.insert(item, r);
        }
        // Every item, in the checklist's order; missing ones are not done.
        NineOnes::ALL
            .iter()
            .map(|item| match stored.get(item.key()) {
                Some(r) => Ok(OutletCheck {
                    item: *item,
                    done: flag(r, 1)?,
                    evidence: r.try_get(2)?,
                    updated_at_ms: r.try_get(3)?,
                    updated_by: r.try_get(4)?,
                }),
                None => Ok(OutletCheck { item: *item, done: false, evidence: String::new(), updated_at_ms: 0, updated_by: String::new() }),
            })
            .collect()
    }

    async fn set_outlet_check(&self, outlet_id: i64, item: NineOnes, done: bool, evidence: &str, actor: &Actor) -> Result<()> {
        if done && evidence.trim().is_empty() {
            return Err(StoreError::Invalid(format!("{}: an item marked done needs its evidence", item.key())));
        }
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO outlet_check (outlet_id, item, done, evidence, updated_at_ms, updated_by) VALUES ($1,$2,$3,$4,$5,$6) \
             ON CONFLICT (outlet_id, item) DO UPDATE SET done = excluded.done, evidence = excluded.evidence, \
             updated_at_ms = excluded.updated_at_ms, updated_by = excluded.updated_by",
        )
        .bind(outlet_id)
        .bind(item.key())
        .bind(done as i64)
        .bind(evidence.trim())
        .bind(now_ms())
        .bind(actor.0.as_str())
        .execute(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, || format!("outlet {outlet_id}")))?;
        let after = serde_json::json!({ "item": item.key(), "done": done, "evidence": evidence.trim() }).to_string();
        self.append_audit(&mut w.tx, actor, "outlet.checklist", "outlet", &outlet_id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(())
    }

    async fn create_ticket(&self, t: &NewTicket, actor: &Actor) -> Result<TicketCreated> {
        if t.village_code.level() != cuncun_domain::RegionLevel::Village {
            return Err(StoreError::Invalid("village_code: a ticket belongs to a village (12-digit code)".into()));
        }
        if t.description.trim().is_empty() {
            return Err(StoreError::Invalid("description: say what is wrong".into()));
        }
        let mut w = self.begin_write().await?;
        if let Some(key) = &t.dedupe_key {
            let open = sqlx::query(&format!(
                "SELECT {TICKET_COLS} FROM ticket WHERE dedupe_key = $1 AND status IN {}",
                TicketStatus::OPEN_SQL
            ))
            .bind(key.as_str())
            .fetch_optional(&mut *w.tx)
            .await?;
            if let Some(r) = open {
                return Ok(TicketCreated { ticket: ticket_of(&r)?, created: false });
            }
        }
        let now = now_ms();
        let at = t.requested_at_ms.unwrap_or(now);
        let steward: Option<i64> = sqlx::query("SELECT MIN(steward_id) FROM steward_village WHERE village_code = $1")
            .bind(t.village_code.as_str())
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
        let status = if steward.is_some() { TicketStatus::Assigned } else { TicketStatus::New };
        let id: i64 = sqlx::query(
            "INSERT INTO ticket (kind, source, category, village_code, household_id, reporter_name, reporter_phone, address, \
             description, status, steward_id, created_at_ms, deadline_ms, assigned_at_ms, confirm_token_hash, terminal_ebrid, \
             dedupe_key, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) RETURNING id",
        )
        .bind(t.kind.key())
        .bind(t.source.key())
        .bind(t.category.key())
        .bind(t.village_code.as_str())
        .bind(t.household_id)
        .bind(t.reporter_name.trim())
        .bind(t.reporter_phone.trim())
        .bind(t.address.trim())
        .bind(t.description.trim())
        .bind(status.key())
        .bind(steward)
        .bind(at)
        .bind(at + SLA_MS)
        .bind(steward.map(|_| at))
        .bind(t.confirm_token_hash.as_deref())
        .bind(t.terminal_ebrid.as_deref())
        .bind(t.dedupe_key.as_deref())
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, || format!("an open ticket with key {:?}", t.dedupe_key)))?
        .try_get(0)?;
        let ticket = Self::fetch_ticket(&mut w.tx, id).await?;
        self.event(&mut w.tx, id, actor, "create", "", status.key(), "", at).await?;
        self.append_audit(&mut w.tx, actor, "ticket.create", "ticket", &id.to_string(), "", &ticket_json(&ticket)).await?;
        w.tx.commit().await?;
        Ok(TicketCreated { ticket, created: true })
    }

    async fn import_tickets(&self, rows: &[HistoricTicket], source: &str, actor: &Actor) -> Result<u64> {
        let now = now_ms();
        let opt = Val::OptI;
        let vals: Vec<Vec<Val>> = rows
            .iter()
            .map(|h| {
                let t = &h.t;
                let at = t.requested_at_ms.unwrap_or(now);
                let done = |s: TicketStatus| if h.status == s { h.resolved_at_ms.map(|r| r + 60_000) } else { None };
                vec![
                    Val::T(t.kind.key().into()),
                    Val::T(t.source.key().into()),
                    Val::T(t.category.key().into()),
                    Val::T(t.village_code.as_str().into()),
                    opt(t.household_id),
                    Val::T(t.reporter_name.clone()),
                    Val::T(t.reporter_phone.clone()),
                    Val::T(t.address.clone()),
                    Val::T(t.description.clone()),
                    Val::T(h.status.key().into()),
                    opt(h.steward_id),
                    Val::I(at),
                    Val::I(at + SLA_MS),
                    opt(h.steward_id.map(|_| at)),
                    opt(h.resolved_at_ms),
                    opt(done(TicketStatus::Confirmed)),
                    opt(h.rating),
                    Val::OptT(t.terminal_ebrid.clone()),
                    Val::OptT(t.dedupe_key.clone()),
                    Val::I(now),
                ]
            })
            .collect();
        let mut w = self.begin_write().await?;
        let since = bulk_begin(&mut w.tx, self.backend(), "ticket").await?;
        insert_rows(
            &mut w.tx,
            max_params(self.backend()),
            "ticket",
            &[
                "kind", "source", "category", "village_code", "household_id", "reporter_name", "reporter_phone", "address",
                "description", "status", "steward_id", "created_at_ms", "deadline_ms", "assigned_at_ms", "resolved_at_ms",
                "confirmed_at_ms", "rating", "terminal_ebrid", "dedupe_key", "updated_at_ms",
            ],
            &vals,
            "",
        )
        .await
        .map_err(|e| conflict_or(e, || "a ticket of the batch".into()))?;
        bulk_end(&mut w.tx, self.backend(), "ticket", since).await?;
        let summary = serde_json::json!({ "source": source, "rows": rows.len() }).to_string();
        self.append_audit(&mut w.tx, actor, "ticket.import", "ticket", source, "", &summary).await?;
        w.tx.commit().await?;
        self.analyze_after_load("ticket, ticket_day_stats", rows.len()).await?;
        Ok(rows.len() as u64)
    }

    async fn ticket(&self, id: i64) -> Result<Option<Ticket>> {
        let row = sqlx::query(&format!("SELECT {TICKET_COLS} FROM ticket WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(ticket_of).transpose()
    }

    async fn ticket_by_confirm_token(&self, token_hash: &str) -> Result<Option<Ticket>> {
        let row = sqlx::query(&format!("SELECT {TICKET_COLS} FROM ticket WHERE confirm_token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(ticket_of).transpose()
    }

    async fn tickets(&self, f: &TicketFilter, limit: i64, offset: i64) -> Result<Vec<Ticket>> {
        let (lo, hi) = f.scope.subtree_bounds();
        // Newest first: above a village, walking the index on the request time and filtering by
        // region finds a page after a few thousand rows, where the region index would sort the
        // whole subtree (measured: 130 ms at 1,000,000 tickets). SQLite's planner has no
        // statistics to see that; a unary + keeps it off the region index. PostgreSQL decides
        // from its statistics.
        let col = if self.backend() == Backend::Sqlite && f.scope.level() != cuncun_domain::RegionLevel::Village && f.villages.is_none() {
            "+village_code"
        } else {
            "village_code"
        };
        let mut sql = format!("SELECT {TICKET_COLS} FROM ticket WHERE {}", scope_cond(col, 1));
        let mut texts: Vec<String> = vec![lo, hi];
        let mut ints: Vec<i64> = Vec::new();
        // Text parameters first ($1..), then integers; numbered as they are added.
        let mut conds_t = Vec::new();
        if let Some(vs) = &f.villages {
            if vs.is_empty() {
                return Ok(Vec::new());
            }
            let mut ph = Vec::new();
            for v in vs {
                texts.push(v.as_str().into());
                ph.push(format!("${}", texts.len()));
            }
            conds_t.push(format!("village_code IN ({})", ph.join(",")));
        }
        if !f.statuses.is_empty() {
            let mut ph = Vec::new();
            for s in &f.statuses {
                texts.push(s.key().into());
                ph.push(format!("${}", texts.len()));
            }
            conds_t.push(format!("status IN ({})", ph.join(",")));
        }
        if let Some(c) = f.category {
            texts.push(c.key().into());
            conds_t.push(format!("category = ${}", texts.len()));
        }
        if let Some(k) = f.kind {
            texts.push(k.key().into());
            conds_t.push(format!("kind = ${}", texts.len()));
        }
        let n = texts.len();
        let mut conds_i = Vec::new();
        if f.overdue {
            ints.push(f.now_ms);
            conds_i.push(format!("status IN {} AND deadline_ms < ${}", TicketStatus::OPEN_SQL, n + ints.len()));
        }
        if let Some(s) = f.steward_id {
            ints.push(s);
            conds_i.push(format!("steward_id = ${}", n + ints.len()));
        }
        if let Some(from) = f.from_ms {
            ints.push(from);
            conds_i.push(format!("created_at_ms >= ${}", n + ints.len()));
        }
        if let Some(to) = f.to_ms {
            ints.push(to);
            conds_i.push(format!("created_at_ms < ${}", n + ints.len()));
        }
        for c in conds_t.iter().chain(&conds_i) {
            sql.push_str(" AND ");
            sql.push_str(c);
        }
        ints.push(limit);
        ints.push(offset);
        sql.push_str(&format!(" ORDER BY created_at_ms DESC, id DESC LIMIT ${} OFFSET ${}", n + ints.len() - 1, n + ints.len()));
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t.as_str());
        }
        for i in &ints {
            q = q.bind(*i);
        }
        q.fetch_all(self.pool()).await?.iter().map(ticket_of).collect()
    }

    async fn transition_ticket(&self, id: i64, action: &TicketAction, actor: &Actor, now: i64) -> Result<Ticket> {
        let mut w = self.begin_write().await?;
        let before = Self::fetch_ticket(&mut w.tx, id).await?;
        let has_steward = before.steward_id.is_some() || matches!(action, TicketAction::Assign { .. });
        let to = next_status(before.status, action, has_steward).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let (sql, note): (&str, String) = match action {
            TicketAction::Assign { steward_id } => {
                let exists = sqlx::query("SELECT id FROM steward WHERE id = $1").bind(*steward_id).fetch_optional(&mut *w.tx).await?;
                if exists.is_none() {
                    return Err(StoreError::Invalid(format!("steward {steward_id} does not exist")));
                }
                sqlx::query("UPDATE ticket SET steward_id = $1, accepted_at_ms = NULL WHERE id = $2")
                    .bind(*steward_id)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                ("UPDATE ticket SET status = $1, assigned_at_ms = $2, updated_at_ms = $2 WHERE id = $3", format!("steward {steward_id}"))
            }
            TicketAction::Accept => {
                ("UPDATE ticket SET status = $1, accepted_at_ms = COALESCE(accepted_at_ms, $2), updated_at_ms = $2 WHERE id = $3", String::new())
            }
            TicketAction::OnSite => ("UPDATE ticket SET status = $1, on_site_at_ms = $2, updated_at_ms = $2 WHERE id = $3", String::new()),
            TicketAction::Resolve { note } => {
                sqlx::query("UPDATE ticket SET resolution_note = $1 WHERE id = $2").bind(note.trim()).bind(id).execute(&mut *w.tx).await?;
                ("UPDATE ticket SET status = $1, resolved_at_ms = $2, updated_at_ms = $2 WHERE id = $3", note.trim().to_string())
            }
            TicketAction::Confirm { rating } => {
                sqlx::query("UPDATE ticket SET rating = $1 WHERE id = $2").bind(*rating as i64).bind(id).execute(&mut *w.tx).await?;
                ("UPDATE ticket SET status = $1, confirmed_at_ms = $2, updated_at_ms = $2 WHERE id = $3", format!("rating {rating}"))
            }
            TicketAction::Reopen { reason } => (
                // The clock runs on from the original request: the resolution no longer stands.
                "UPDATE ticket SET status = $1, resolved_at_ms = NULL, reopen_count = reopen_count + 1, updated_at_ms = $2 WHERE id = $3",
                reason.trim().to_string(),
            ),
            TicketAction::Cancel { reason } => {
                ("UPDATE ticket SET status = $1, cancelled_at_ms = $2, updated_at_ms = $2 WHERE id = $3", reason.trim().to_string())
            }
        };
        sqlx::query(sql).bind(to.key()).bind(now).bind(id).execute(&mut *w.tx).await?;
        let after = Self::fetch_ticket(&mut w.tx, id).await?;
        self.event(&mut w.tx, id, actor, action.key(), before.status.key(), to.key(), &note, now).await?;
        self.append_audit(&mut w.tx, actor, &format!("ticket.{}", action.key()), "ticket", &id.to_string(), &ticket_json(&before), &ticket_json(&after))
            .await?;
        w.tx.commit().await?;
        Ok(after)
    }

    async fn ticket_events(&self, id: i64) -> Result<Vec<TicketEvent>> {
        let rows = sqlx::query("SELECT at_ms, actor, action, from_status, to_status, note FROM ticket_event WHERE ticket_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TicketEvent {
                    at_ms: r.try_get(0)?,
                    actor: r.try_get(1)?,
                    action: r.try_get(2)?,
                    from_status: r.try_get(3)?,
                    to_status: r.try_get(4)?,
                    note: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn add_ticket_photo(&self, ticket_id: i64, content_type: &str, bytes: &[u8], actor: &Actor) -> Result<i64> {
        let mut w = self.begin_write().await?;
        let t = Self::fetch_ticket(&mut w.tx, ticket_id).await?;
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO ticket_photo (ticket_id, at_ms, actor, content_type, bytes) VALUES ($1,$2,$3,$4,$5) RETURNING id",
        )
        .bind(ticket_id)
        .bind(now)
        .bind(actor.0.as_str())
        .bind(content_type)
        .bind(bytes.to_vec())
        .fetch_one(&mut *w.tx)
        .await?
        .try_get(0)?;
        let note = format!("photo {id} ({} bytes)", bytes.len());
        self.event(&mut w.tx, ticket_id, actor, "photo", t.status.key(), t.status.key(), &note, now).await?;
        let after = serde_json::json!({ "photo": id, "bytes": bytes.len(), "content_type": content_type }).to_string();
        self.append_audit(&mut w.tx, actor, "ticket.photo", "ticket", &ticket_id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(id)
    }

    async fn ticket_photo(&self, photo_id: i64) -> Result<Option<(i64, String, Vec<u8>)>> {
        let row = sqlx::query("SELECT ticket_id, content_type, bytes FROM ticket_photo WHERE id = $1")
            .bind(photo_id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))),
            None => Ok(None),
        }
    }

    async fn ticket_photo_ids(&self, ticket_id: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT id FROM ticket_photo WHERE ticket_id = $1 ORDER BY id").bind(ticket_id).fetch_all(self.pool()).await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    async fn escalate_due(&self, now: i64, escalate_after_ms: i64) -> Result<Vec<Ticket>> {
        let mut w = self.begin_write().await?;
        let due = sqlx::query(&format!(
            "SELECT {TICKET_COLS} FROM ticket WHERE status IN {} AND deadline_ms <= $1 AND escalated_at_ms IS NULL ORDER BY deadline_ms",
            TicketStatus::OPEN_SQL
        ))
        .bind(now - escalate_after_ms + SLA_MS)
        .fetch_all(&mut *w.tx)
        .await?
        .iter()
        .map(ticket_of)
        .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(due.len());
        let actor = Actor::system();
        for t in due {
            let v = t.village_code.as_str();
            let township = format!("{}000", &v[..9]);
            let county = format!("{}000000", &v[..6]);
            let head: Option<i64> = sqlx::query(
                "SELECT head_user_id FROM outlet WHERE head_user_id IS NOT NULL AND region_code IN ($1, $2) \
                 ORDER BY CASE WHEN region_code = $1 THEN 0 ELSE 1 END, id LIMIT 1",
            )
            .bind(township.as_str())
            .bind(county.as_str())
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            sqlx::query("UPDATE ticket SET escalated_at_ms = $1, escalated_to = $2, updated_at_ms = $1 WHERE id = $3")
                .bind(now)
                .bind(head)
                .bind(t.id)
                .execute(&mut *w.tx)
                .await?;
            let note = match head {
                Some(h) => format!("escalated to outlet head user {h}"),
                None => "escalated; no outlet head is set for this township or county".into(),
            };
            self.event(&mut w.tx, t.id, &actor, "escalate", t.status.key(), t.status.key(), &note, now).await?;
            let after = serde_json::json!({ "escalated_to": head, "deadline_ms": t.deadline_ms }).to_string();
            self.append_audit(&mut w.tx, &actor, "ticket.escalate", "ticket", &t.id.to_string(), "", &after).await?;
            out.push(Self::fetch_ticket(&mut w.tx, t.id).await?);
        }
        w.tx.commit().await?;
        Ok(out)
    }

    async fn record_visit(&self, household_id: i64, steward_id: Option<i64>, visited_at_ms: i64, note: &str, actor: &Actor) -> Result<CareVisit> {
        let mut w = self.begin_write().await?;
        let h = Self::fetch_household(&mut w.tx, household_id).await?;
        if !h.rec.special_care() {
            return Err(StoreError::Invalid(format!("household {household_id} is not a special-care household")));
        }
        let year = time::year_of(visited_at_ms);
        let id: i64 = sqlx::query(
            "INSERT INTO care_visit (household_id, village_code, steward_id, year, visited_at_ms, note, recorded_by) \
             VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id",
        )
        .bind(household_id)
        .bind(h.rec.village_code.as_str())
        .bind(steward_id)
        .bind(year)
        .bind(visited_at_ms)
        .bind(note.trim())
        .bind(actor.0.as_str())
        .fetch_one(&mut *w.tx)
        .await
        .map_err(|e| conflict_or(e, || format!("steward {steward_id:?}")))?
        .try_get(0)?;
        let v = CareVisit { id, household_id, steward_id, year, visited_at_ms, note: note.trim().into(), recorded_by: actor.0.clone() };
        let after = serde_json::to_string(&v).unwrap_or_default();
        self.append_audit(&mut w.tx, actor, "visit.record", "household", &household_id.to_string(), "", &after).await?;
        w.tx.commit().await?;
        Ok(v)
    }

    async fn visits_of(&self, household_id: i64) -> Result<Vec<CareVisit>> {
        let rows = sqlx::query(&format!("SELECT {VISIT_COLS} FROM care_visit WHERE household_id = $1 ORDER BY visited_at_ms DESC"))
            .bind(household_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(visit_of).collect()
    }

    async fn visit_plan(&self, scope: &RegionCode, year: i64, limit: i64, offset: i64) -> Result<Vec<VisitPlanRow>> {
        let (lo, hi) = scope.subtree_bounds();
        let cols: Vec<String> = HH_COLS.split(", ").map(|c| format!("h.{c}")).collect();
        let rows = sqlx::query(&format!(
            "SELECT {}, (SELECT COUNT(*) FROM care_visit v WHERE v.household_id = h.id AND v.year = $3) \
             FROM household h WHERE h.village_code BETWEEN $1 AND $2 AND {} ORDER BY h.village_code, h.id LIMIT $4 OFFSET $5",
            cols.join(", "),
            CARE_SQL.replace("care_", "h.care_")
        ))
        .bind(lo)
        .bind(hi)
        .bind(year)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(VisitPlanRow { household: household_of(r)?, done: r.try_get(16)? })).collect()
    }

    async fn service_counts(&self, scope: &RegionCode, from_ms: i64, to_ms: i64, year: i64, by_child: bool) -> Result<Vec<RegionIndicatorCounts>> {
        // Read from the running counts kept by migration 0007's triggers (service_stats.rs): a
        // county over a year is a few hundred rows, its townships' a few thousand.
        let digits = if by_child {
            match scope.level() {
                cuncun_domain::RegionLevel::Province => 4,
                cuncun_domain::RegionLevel::City => 6,
                cuncun_domain::RegionLevel::County => 9,
                _ => 12,
            }
        } else {
            scope.level().digits()
        };
        let p = scope.short();
        let (lo, hi) = (format!("{p:0<digits$}"), format!("{p:9<digits$}"));
        let mut acc: std::collections::BTreeMap<String, IndicatorCounts> = std::collections::BTreeMap::new();
        // Whole Beijing days of the period come from the day counts; a part-day at either end (a
        // period that does not start or end at midnight) is counted from the tickets themselves.
        let first_day = time::day_of(from_ms - 1) + 1;
        let end_day = time::day_of(to_ms);
        let day_ms = time::day_start;
        let mut raw = Vec::new();
        if first_day < end_day {
            if from_ms < day_ms(first_day) {
                raw.push((from_ms, day_ms(first_day)));
            }
            if day_ms(end_day) < to_ms {
                raw.push((day_ms(end_day), to_ms));
            }
            let measures = ticket_measures();
            let cols = measures.iter().map(|(m, _)| format!("CAST(SUM({m}) AS BIGINT)")).collect::<Vec<_>>().join(", ");
            let rows = sqlx::query(&format!(
                "SELECT region_code, {cols} FROM ticket_day_stats WHERE digits = $1 AND region_code BETWEEN $2 AND $3 \
                 AND day >= $4 AND day < $5 GROUP BY region_code"
            ))
            .bind(digits as i64)
            .bind(&lo)
            .bind(&hi)
            .bind(first_day)
            .bind(end_day)
            .fetch_all(self.pool())
            .await?;
            for r in &rows {
                add_ticket_counts(acc.entry(r.try_get(0)?).or_default(), r)?;
            }
        } else if from_ms < to_ms {
            raw.push((from_ms, to_ms));
        }
        for (from, to) in raw {
            self.raw_ticket_counts(scope, digits, from, to, &mut acc).await?;
        }
        let households = sqlx::query(
            "SELECT region_code, households, complete_households, care_households FROM household_stats \
             WHERE digits = $1 AND region_code BETWEEN $2 AND $3",
        )
        .bind(digits as i64)
        .bind(&lo)
        .bind(&hi)
        .fetch_all(self.pool())
        .await?;
        for r in &households {
            let c = acc.entry(r.try_get(0)?).or_default();
            c.households += r.try_get::<i64, _>(1)?;
            c.complete_households += r.try_get::<i64, _>(2)?;
            c.care_households += r.try_get::<i64, _>(3)?;
        }
        let visits = sqlx::query("SELECT region_code, visits_done FROM visit_stats WHERE digits = $1 AND region_code BETWEEN $2 AND $3 AND year = $4")
            .bind(digits as i64)
            .bind(&lo)
            .bind(&hi)
            .bind(year)
            .fetch_all(self.pool())
            .await?;
        for r in &visits {
            acc.entry(r.try_get(0)?).or_default().visits_done += r.try_get::<i64, _>(1)?;
        }
        acc.into_iter()
            // Counts that went back to zero (all of a village's tickets cancelled, say) are no region's figure.
            .filter(|(_, c)| *c != IndicatorCounts::default())
            .map(|(k, counts)| {
                let region_code = RegionCode::parse(&k).map_err(|e| bad("region prefix", e))?;
                Ok(RegionIndicatorCounts { region_code, counts })
            })
            .collect()
    }

}

/// Adds a row of (key, tickets, closed, closed_24h, close_ms_sum, complaints, rated, satisfied).
fn add_ticket_counts(c: &mut IndicatorCounts, r: &AnyRow) -> Result<()> {
    c.tickets += r.try_get::<i64, _>(1)?;
    c.closed += r.try_get::<i64, _>(2)?;
    c.closed_24h += r.try_get::<i64, _>(3)?;
    c.close_ms_sum += r.try_get::<i64, _>(4)?;
    c.complaints += r.try_get::<i64, _>(5)?;
    c.rated += r.try_get::<i64, _>(6)?;
    c.satisfied += r.try_get::<i64, _>(7)?;
    Ok(())
}

impl SqlStore {
    /// Runs one `INSERT ... SELECT` into `source` (household, ticket or care_visit) as a bulk load:
    /// on SQLite the running counts are added once at the end instead of by a trigger per row.
    /// For generated data (benchmarks); the statement must only insert into `source`.
    pub async fn bulk_insert_sql(&self, source: &str, sql: &str) -> Result<u64> {
        let mut w = self.begin_write().await?;
        let since = bulk_begin(&mut w.tx, self.backend(), source).await?;
        let n = sqlx::query(sql).execute(&mut *w.tx).await?.rows_affected();
        bulk_end(&mut w.tx, self.backend(), source, since).await?;
        w.tx.commit().await?;
        Ok(n)
    }

    /// Ticket counts of [from, to) read from the tickets, summed per region prefix of `digits`.
    async fn raw_ticket_counts(
        &self,
        scope: &RegionCode,
        digits: usize,
        from: i64,
        to: i64,
        acc: &mut std::collections::BTreeMap<String, IndicatorCounts>,
    ) -> Result<()> {
        let (lo, hi) = scope.subtree_bounds();
        let measures = ticket_measures();
        let cols = measures.iter().map(|(_, e)| format!("CAST(COALESCE(SUM({e}), 0) AS BIGINT)")).collect::<Vec<_>>().join(", ");
        // Grouped by the whole village code (index order on SQLite) and summed per prefix here.
        let rows = sqlx::query(&format!(
            "SELECT village_code, {cols} FROM ticket WHERE village_code BETWEEN $1 AND $2 \
             AND created_at_ms >= $3 AND created_at_ms < $4 AND {TICKET_FILTER} GROUP BY village_code"
        ))
        .bind(lo)
        .bind(hi)
        .bind(from)
        .bind(to)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let v: String = r.try_get(0)?;
            add_ticket_counts(acc.entry(v.get(..digits).unwrap_or(&v).to_string()).or_default(), r)?;
        }
        Ok(())
    }
}
