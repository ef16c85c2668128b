//! Multi-row INSERT in chunks: one code path for both backends, far fewer round trips than one
//! statement per row, and under both engines' bind-parameter limits.

use sqlx::{Any, Transaction};

#[derive(Debug, Clone)]
pub enum Val {
    I(i64),
    OptI(Option<i64>),
    F(Option<f64>),
    T(String),
    OptT(Option<String>),
}

/// Bind parameters per statement. Measured (docs/PERFORMANCE.md, `bench regions --code all`):
/// sqlx's SQLite binding costs grow with the parameters of a statement, so SQLite wants small
/// statements (120: 2.8 s, 400: 6.3 s, 2,000: 17.7 s); PostgreSQL wants fewer round trips.
pub fn max_params(backend: crate::Backend) -> usize {
    match backend {
        crate::Backend::Sqlite => 120,
        crate::Backend::Postgres => 20_000,
    }
}

/// Inserts `rows` into `table(cols)`; `suffix` is appended (e.g. an ON CONFLICT clause).
pub async fn insert_rows(
    tx: &mut Transaction<'_, Any>,
    max_params: usize,
    table: &str,
    cols: &[&str],
    rows: &[Vec<Val>],
    suffix: &str,
) -> Result<(), sqlx::Error> {
    let per = (max_params / cols.len()).max(1);
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
                    Val::OptI(x) => q.bind(*x),
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
