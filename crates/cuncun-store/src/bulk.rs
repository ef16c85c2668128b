//! Multi-row INSERT in chunks: one code path for both backends, far fewer round trips than one
//! statement per row, and under both engines' bind-parameter limits.

use sqlx::{Any, Transaction};

#[derive(Debug, Clone)]
pub enum Val {
    I(i64),
    F(Option<f64>),
    T(String),
    OptT(Option<String>),
}

/// Largest number of bind parameters per statement (SQLite allows 32766, PostgreSQL 65535).
const MAX_PARAMS: usize = 2_000;

/// Inserts `rows` into `table(cols)`; `suffix` is appended (e.g. an ON CONFLICT clause).
pub async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    cols: &[&str],
    rows: &[Vec<Val>],
    suffix: &str,
) -> Result<(), sqlx::Error> {
    let per = (MAX_PARAMS / cols.len()).max(1);
    for chunk in rows.chunks(per) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(","));
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..cols.len() {
                if c > 0 {
                    sql.push(',');
                }
                n += 1;
                sql.push('$');
                sql.push_str(&n.to_string());
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(suffix);
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Val::I(x) => q.bind(*x),
                    Val::F(x) => q.bind(*x),
                    Val::T(x) => q.bind(x.as_str()),
                    Val::OptT(x) => q.bind(x.as_deref()),
                };
            }
        }
        // Each chunk's SQL is unique to its size; do not fill the statement cache with them.
        q.persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}
