//! Running counts behind the service indicators (migration 0007).
//!
//! The indicators page must answer in well under 100 ms with a million households and a million
//! tickets in a county, which rules out reading the rows per request. Each count is kept per
//! region at every level (province, city, county, township, village: `stat_digits`) and per
//! Beijing day (tickets) or year (visits), by triggers in the same transaction as the change, so a
//! county's figure over a year is ~365 rows and its townships' ~30 x 365.
//!
//! The measures are written once here and used three ways: the triggers that keep the counts, the
//! backfill of existing rows, and the request-time query over the raw rows for the part of a
//! period that is not whole days.

use crate::Backend;
use sqlx::{Any, Transaction};
use cuncun_domain::service::{SLA_MS, VISITS_PER_YEAR};
use cuncun_domain::time;

/// A kept count: rows of `source` (filtered) summed per village prefix and `keys`.
struct Kept {
    table: &'static str,
    source: &'static str,
    filter: &'static str,
    /// Extra key columns beyond (digits, region_code), with their expression over the source row.
    keys: Vec<(&'static str, String)>,
    measures: Vec<(&'static str, String)>,
    /// Source columns whose change moves a row's contribution (SQLite `UPDATE OF`).
    watched: &'static str,
}


pub(crate) fn ticket_measures() -> Vec<(&'static str, String)> {
    vec![
        ("tickets", "1".into()),
        ("closed", "CASE WHEN resolved_at_ms IS NOT NULL THEN 1 ELSE 0 END".into()),
        ("closed_24h", format!("CASE WHEN resolved_at_ms IS NOT NULL AND resolved_at_ms - created_at_ms <= {SLA_MS} THEN 1 ELSE 0 END")),
        ("close_ms_sum", "CASE WHEN resolved_at_ms IS NOT NULL THEN resolved_at_ms - created_at_ms ELSE 0 END".into()),
        ("complaints", "CASE WHEN kind = 'complaint' THEN 1 ELSE 0 END".into()),
        ("rated", "CASE WHEN rating IS NOT NULL THEN 1 ELSE 0 END".into()),
        ("satisfied", "CASE WHEN rating >= 4 THEN 1 ELSE 0 END".into()),
    ]
}
pub(crate) const TICKET_FILTER: &str = "status <> 'cancelled'";

/// Data completeness: every required field filled (reception mode may be "none").
pub(crate) const COMPLETE_SQL: &str = "CASE WHEN head_name <> '' AND phone <> '' AND address <> '' \
    AND COALESCE(hamlet, '') <> '' AND coverage_modes <> '' THEN 1 ELSE 0 END";
pub(crate) const CARE_SQL: &str = "(care_elderly + care_children + care_disabled) > 0";

/// Households receiving by at least one mode (the stored set is '' when unknown, 'none' for none).
pub(crate) const RECEIVING_SQL: &str = "coverage_modes <> '' AND coverage_modes <> 'none'";

/// Household measures: the service indicators' (count, complete, special care) and coverage's
/// (people, each reception mode in `CoverageMode::ALL` order, receiving, fibre, HD).
pub(crate) fn household_measures() -> Vec<(&'static str, String)> {
    let when = |c: &str| format!("CASE WHEN {c} THEN 1 ELSE 0 END");
    let mut m = vec![
        ("households", "1".to_string()),
        ("complete_households", COMPLETE_SQL.into()),
        ("care_households", when(CARE_SQL)),
        ("population", "members".into()),
    ];
    for (col, mode) in MODE_COLUMNS.iter().zip(cuncun_domain::model::CoverageMode::ALL) {
        m.push((col, when(&format!("coverage_modes LIKE '%{}%'", mode.key()))));
    }
    m.extend([
        ("receiving", when(RECEIVING_SQL)),
        ("receiving_population", format!("CASE WHEN {RECEIVING_SQL} THEN members ELSE 0 END")),
        ("fibre", when("fibre <> 0")),
        ("cable_fibre", when("fibre <> 0 AND coverage_modes LIKE '%cable%'")),
        ("hd", when(&format!("hd <> 0 AND {RECEIVING_SQL}"))),
    ]);
    m
}

/// `household_stats` columns counting each reception mode, in `CoverageMode::ALL` order.
pub(crate) const MODE_COLUMNS: [&str; 5] = ["mode_cable", "mode_terrestrial", "mode_satellite", "mode_iptv", "mode_5g"];

fn kept() -> Vec<Kept> {
    vec![
        Kept {
            table: "ticket_day_stats",
            source: "ticket",
            filter: TICKET_FILTER,
            keys: vec![("day", time::day_sql("created_at_ms"))],
            measures: ticket_measures(),
            watched: "status, kind, village_code, created_at_ms, resolved_at_ms, rating",
        },
        Kept {
            table: "household_stats",
            source: "household",
            filter: "1 = 1",
            keys: Vec::new(),
            measures: household_measures(),
            watched: "village_code, hamlet, head_name, phone, address, members, coverage_modes, hd, fibre, care_elderly, care_children, care_disabled",
        },
    ]
}

fn key_cols(k: &Kept) -> String {
    let mut cols = vec!["digits", "region_code"];
    cols.extend(k.keys.iter().map(|(c, _)| *c));
    cols.join(", ")
}

fn measure_cols(k: &Kept) -> String {
    k.measures.iter().map(|(m, _)| *m).collect::<Vec<_>>().join(", ")
}

/// `SELECT digits, prefix, keys..., measures...` over `rows` (an alias of source rows) joined with
/// every level, each measure multiplied by `sign` and, when `grouped`, summed: first per village
/// (one pass over the rows), then per level (five rows per village, not per source row).
fn select(k: &Kept, backend: Backend, rows: &str, sign: &str, grouped: bool) -> String {
    let digits = match backend {
        Backend::Sqlite => "d.digits",
        Backend::Postgres => "d.digits::int",
    };
    // Key and measure expressions name the source row's columns unqualified: stat_digits has
    // only `digits`, so they resolve to the row.
    if !grouped {
        let mut out = vec!["d.digits".to_string(), format!("SUBSTR(r.village_code, 1, {digits})")];
        out.extend(k.keys.iter().map(|(_, e)| e.to_string()));
        out.extend(k.measures.iter().map(|(_, e)| format!("{sign} * ({e})")));
        return format!("SELECT {} FROM {rows} r CROSS JOIN stat_digits d WHERE {}", out.join(", "), k.filter);
    }
    let mut inner = vec!["village_code".to_string()];
    inner.extend(k.keys.iter().map(|(c, e)| format!("{e} AS {c}")));
    inner.extend(k.measures.iter().map(|(m, e)| format!("SUM({sign} * ({e})) AS {m}")));
    let inner_group = (1..=1 + k.keys.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    let mut outer = vec!["d.digits".to_string(), format!("SUBSTR(g.village_code, 1, {digits})")];
    outer.extend(k.keys.iter().map(|(c, _)| format!("g.{c}")));
    outer.extend(k.measures.iter().map(|(m, _)| format!("SUM(g.{m})")));
    let list = (1..=2 + k.keys.len()).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT {} FROM (SELECT {} FROM {rows} r WHERE {} GROUP BY {inner_group}) g CROSS JOIN stat_digits d WHERE 1 = 1 GROUP BY {list} ORDER BY {list}",
        outer.join(", "),
        inner.join(", "),
        k.filter
    )
}

fn upsert_tail(k: &Kept) -> String {
    let sets = k.measures.iter().map(|(m, _)| format!("{m} = {t}.{m} + excluded.{m}", t = k.table)).collect::<Vec<_>>().join(", ");
    format!(" ON CONFLICT ({}) DO UPDATE SET {sets}", key_cols(k))
}

fn insert_head(k: &Kept) -> String {
    format!("INSERT INTO {} ({}, {})", k.table, key_cols(k), measure_cols(k))
}

/// Triggers, views and backfill for migration 0007 on `backend`.
pub(crate) fn migration_sql(backend: Backend) -> String {
    let mut sql = String::new();
    for k in kept() {
        // Backfill what is already there.
        sql += &format!("{} {}{};\n", insert_head(&k), select(&k, backend, k.source, "1", true), upsert_tail(&k));
        match backend {
            Backend::Sqlite => {
                // Row triggers: the old contribution leaves before the change, the new one
                // arrives after it; the source row is read by id (primary key).
                let apply = |sign: &str, which: &str| {
                    format!(
                        "{} {}{};",
                        insert_head(&k),
                        select(&k, backend, &format!("(SELECT * FROM {} WHERE id = {which}.id)", k.source), sign, false),
                        upsert_tail(&k)
                    )
                };
                let t = k.table;
                let s = k.source;
                sql += &format!("CREATE TRIGGER {t}_ins AFTER INSERT ON {s} {} BEGIN {} END;\n", unless_bulk(s), apply("1", "NEW"));
                sql += &format!("CREATE TRIGGER {t}_upd_old BEFORE UPDATE OF {} ON {s} BEGIN {} END;\n", k.watched, apply("-1", "OLD"));
                sql += &format!("CREATE TRIGGER {t}_upd_new AFTER UPDATE OF {} ON {s} BEGIN {} END;\n", k.watched, apply("1", "NEW"));
                sql += &format!("CREATE TRIGGER {t}_del BEFORE DELETE ON {s} BEGIN {} END;\n", apply("-1", "OLD"));
            }
            Backend::Postgres => {
                // Statement triggers with transition tables: a bulk import of a million rows is
                // one grouped upsert, not a million. The statement is built once with the
                // transition table and sign as format() arguments.
                // A literal % (LIKE patterns) is doubled for format(); the placeholders go in after.
                let q = format!("{} {}{}", insert_head(&k), select(&k, backend, "@ROWS@", "@SIGN@", true), upsert_tail(&k))
                    .replace('%', "%%")
                    .replace("@ROWS@", "%1$I")
                    .replace("@SIGN@", "%2$s")
                    .replace('\'', "''");
                let t = k.table;
                let s = k.source;
                sql += &format!(
                    "CREATE FUNCTION {t}_apply() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
                     DECLARE q text := '{q}';\n\
                     BEGIN\n\
                       IF TG_OP <> 'INSERT' THEN EXECUTE format(q, 'old_rows', -1); END IF;\n\
                       IF TG_OP <> 'DELETE' THEN EXECUTE format(q, 'new_rows', 1); END IF;\n\
                       RETURN NULL;\n\
                     END $f$;\n\
                     CREATE TRIGGER {t}_ins AFTER INSERT ON {s} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {t}_apply();\n\
                     CREATE TRIGGER {t}_upd AFTER UPDATE ON {s} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {t}_apply();\n\
                     CREATE TRIGGER {t}_del AFTER DELETE ON {s} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {t}_apply();\n"
                );
            }
        }
    }
    sql += &visit_sql(backend);
    sql
}

/// Counting visits of `rows` (id, household_id) that rank within the first VISITS_PER_YEAR of
/// their household's year: at most that many count per household and year, and visits are
/// append-only (a trigger refuses changes), so a visit's rank never changes.
fn visits_counted(backend: Backend, rows: &str) -> String {
    let n = VISITS_PER_YEAR;
    let digits = match backend {
        Backend::Sqlite => "d.digits",
        Backend::Postgres => "d.digits::int",
    };
    format!(
        "INSERT INTO visit_stats (digits, region_code, year, visits_done) \
         SELECT d.digits, SUBSTR(x.village_code, 1, {digits}), x.year, COUNT(*) FROM \
         (SELECT c.id, c.village_code, c.year, ROW_NUMBER() OVER (PARTITION BY c.household_id, c.year ORDER BY c.id) AS rn \
          FROM care_visit c WHERE c.household_id IN (SELECT household_id FROM {rows})) x \
         CROSS JOIN stat_digits d WHERE x.rn <= {n} AND x.id IN (SELECT id FROM {rows}) \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 \
         ON CONFLICT (digits, region_code, year) DO UPDATE SET visits_done = visit_stats.visits_done + excluded.visits_done"
    )
}

fn visit_sql(backend: Backend) -> String {
    let mut sql = format!("{};\n", visits_counted(backend, "care_visit"));
    match backend {
        Backend::Sqlite => {
            sql += &format!(
                "CREATE TRIGGER visit_stats_ins AFTER INSERT ON care_visit {} BEGIN {}; END;\n\
                 CREATE TRIGGER care_visit_kept BEFORE UPDATE ON care_visit BEGIN SELECT RAISE(ABORT, 'care visits are kept as recorded'); END;\n\
                 CREATE TRIGGER care_visit_kept_del BEFORE DELETE ON care_visit BEGIN SELECT RAISE(ABORT, 'care visits are kept as recorded'); END;\n",
                unless_bulk("care_visit"),
                visits_counted(backend, "(SELECT NEW.id AS id, NEW.household_id AS household_id)")
            );
        }
        Backend::Postgres => {
            sql += &format!(
                "CREATE FUNCTION visit_stats_apply() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
                 BEGIN {}; RETURN NULL; END $f$;\n\
                 CREATE TRIGGER visit_stats_ins AFTER INSERT ON care_visit REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION visit_stats_apply();\n\
                 CREATE FUNCTION care_visit_kept() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
                 BEGIN RAISE EXCEPTION 'care visits are kept as recorded'; END $f$;\n\
                 CREATE TRIGGER care_visit_kept BEFORE UPDATE OR DELETE ON care_visit FOR EACH STATEMENT EXECUTE FUNCTION care_visit_kept();\n",
                visits_counted(backend, "new_rows")
            );
        }
    }
    sql
}

/// SQLite's row triggers cost about 40 us a row (five upserts), 400 s for ten million households.
/// A bulk insert therefore marks its source in `stat_bulk` (in its own transaction, under the
/// store's single-writer gate), inserts, then adds the new rows' counts in one grouped statement.
/// PostgreSQL's statement triggers are set-wise already: nothing to do there.
fn unless_bulk(source: &str) -> String {
    format!("WHEN NOT EXISTS (SELECT 1 FROM stat_bulk WHERE source = '{source}')")
}

/// Starts a bulk insert into `source`: returns the id the new rows will follow (SQLite).
pub(crate) async fn bulk_begin(tx: &mut Transaction<'static, Any>, backend: Backend, source: &str) -> sqlx::Result<Option<i64>> {
    if backend != Backend::Sqlite {
        return Ok(None);
    }
    sqlx::query("INSERT INTO stat_bulk (source) VALUES ($1)").bind(source).execute(&mut **tx).await?;
    let max: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(MAX(id), 0) FROM {source}")).fetch_one(&mut **tx).await?;
    Ok(Some(max))
}

/// Ends a bulk insert: the counts of every row inserted since `bulk_begin`, in one statement each.
pub(crate) async fn bulk_end(tx: &mut Transaction<'static, Any>, backend: Backend, source: &str, since: Option<i64>) -> sqlx::Result<()> {
    let Some(since) = since else { return Ok(()) };
    // INTEGER PRIMARY KEY ids grow past the largest one, and the write gate keeps other writers out.
    let rows = format!("(SELECT * FROM {source} WHERE id > {since})");
    let mut statements: Vec<String> = kept()
        .iter()
        .filter(|k| k.source == source)
        .map(|k| format!("{} {}{}", insert_head(k), select(k, backend, &rows, "1", true), upsert_tail(k)))
        .collect();
    if source == "care_visit" {
        statements.push(visits_counted(backend, &rows));
    }
    for sql in statements {
        sqlx::query(&sql).execute(&mut **tx).await?;
    }
    sqlx::query("DELETE FROM stat_bulk WHERE source = $1").bind(source).execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statement_quotes_are_doubled_inside_the_function() {
        let sql = migration_sql(Backend::Postgres);
        assert!(sql.contains("status <> ''cancelled''"), "{sql}");
        assert!(sql.contains("LIKE ''%%cable%%''"), "a LIKE pattern's % is not a format() specifier");
        assert!(sql.contains("REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"));
    }
}
