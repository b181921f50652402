//! Query plans, for the benchmarks' notes (`bench stats --explain`, `bench reconcile
//! --explain`; docs/plans-postgres.md): the statements a piece of work runs are recorded as it
//! runs them — diesel's instrumentation hands over each statement with its bind values — and
//! each is then run again under PostgreSQL's `EXPLAIN (ANALYZE, BUFFERS)`, its binds written in
//! as literals (the custom plan PostgreSQL makes for a prepared statement's first runs). So the
//! notes show the SQL the code sends, not a hand-written copy of it. Nothing here runs in a node.

use std::sync::{Arc, Mutex};

use diesel::connection::{Connection, InstrumentationEvent};
use diesel::RunQueryDsl;

use super::{DbConn, StorageError};

/// A statement as the code ran it: its SQL (PostgreSQL's `$1`, `$2`, … placeholders) and its
/// bind values as diesel prints them.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub binds: String,
}

/// Runs `work` on `conn`, recording every statement it sends.
pub fn record<T, E>(
    conn: &mut DbConn,
    work: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<(T, Vec<Statement>), E> {
    let seen: Arc<Mutex<Vec<Statement>>> = Arc::default();
    let sink = seen.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            let text = query.to_string();
            let (sql, binds) = match text.rsplit_once(" -- binds: ") {
                Some((sql, binds)) => (sql.to_owned(), binds.to_owned()),
                None => (text, "[]".to_owned()),
            };
            if let Ok(mut v) = sink.lock() {
                v.push(Statement { sql, binds });
            }
        }
    });
    let out = work(conn);
    conn.set_instrumentation(None::<Box<dyn diesel::connection::Instrumentation>>);
    let statements = seen.lock().map(|v| v.clone()).unwrap_or_default();
    out.map(|t| (t, statements))
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of `statement` on PostgreSQL (runs it): the plan's lines.
/// Only reads are explained (`None` for writes, which `ANALYZE` would run a second time, and
/// for transaction control), and nothing on SQLite.
pub fn explain(conn: &mut DbConn, statement: &Statement) -> Result<Option<String>, StorageError> {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[diesel(column_name = "QUERY PLAN")]
        line: String,
    }
    let head = statement.sql.trim_start().to_ascii_uppercase();
    let plannable = ["SELECT", "WITH"].iter().any(|k| head.starts_with(k));
    if !plannable || matches!(conn, DbConn::Sqlite(_)) {
        return Ok(None);
    }
    let sql = with_literals(&statement.sql, &literals(&statement.binds));
    let lines: Vec<Line> =
        diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")).load(conn)?;
    Ok(Some(
        lines
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

/// `sql` with each `$n` replaced by `literals[n - 1]` (highest first, so `$1` never eats the
/// start of `$10`).
pub fn with_literals(sql: &str, literals: &[String]) -> String {
    let mut out = sql.to_owned();
    for (i, lit) in literals.iter().enumerate().rev() {
        out = out.replace(&format!("${}", i + 1), lit);
    }
    out
}

/// diesel's printed bind list (`["41%", 100, 2026-06-05]`) as SQL literals: strings quoted,
/// numbers as they are, lists as arrays, anything else (dates, times, booleans) quoted for
/// PostgreSQL to read as the column's type.
pub fn literals(binds: &str) -> Vec<String> {
    let inner = binds
        .trim()
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or("");
    split_top(inner).into_iter().map(|b| literal(&b)).collect()
}

fn literal(bind: &str) -> String {
    let b = bind.trim();
    if let Some(s) = b.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        let unescaped = s.replace("\\\"", "\"").replace("\\\\", "\\");
        return format!("'{}'", unescaped.replace('\'', "''"));
    }
    if let Some(list) = b.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let items: Vec<String> = split_top(list).iter().map(|i| literal(i)).collect();
        return format!("ARRAY[{}]", items.join(", "));
    }
    if b.parse::<f64>().is_ok() {
        return b.to_owned();
    }
    format!("'{}'", b.replace('\'', "''"))
}

/// `list` split at its top-level commas (not inside quotes or brackets).
fn split_top(list: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let (mut cur, mut depth, mut quoted, mut escaped) = (String::new(), 0i32, false, false);
    for ch in list.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '[' | '(' if !quoted => depth += 1,
            ']' | ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_become_literals_in_their_places() {
        let lits = literals(r#"["41%", 100, 2026-06-05, "it's \"x\"", ["a", "b,c"]]"#);
        assert_eq!(
            lits,
            [
                "'41%'",
                "100",
                "'2026-06-05'",
                r#"'it''s "x"'"#,
                "ARRAY['a', 'b,c']"
            ]
        );
        let sql = "SELECT 1 WHERE a LIKE $1 AND b = $10 LIMIT $2";
        let ten: Vec<String> = (1..=10).map(|i| format!("v{i}")).collect();
        assert_eq!(
            with_literals(sql, &ten),
            "SELECT 1 WHERE a LIKE v1 AND b = v10 LIMIT v2"
        );
        assert!(literals("[]").is_empty());
    }
}
