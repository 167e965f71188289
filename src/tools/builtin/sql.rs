//! sql_query: one statement against the SQLite database of the tool's config (rusqlite, bundled).
//!
//! `read_only` (default true) opens the database with `SQLITE_OPEN_READ_ONLY`, so SQLite itself
//! refuses every write, whatever the SQL looks like (the reference used a keyword regex, which
//! `WITH ... DELETE` or a trigger slips past). ATTACH is disabled (attached files would be
//! opened by the model's choice of path), and so is extension loading (rusqlite's default).
//! A progress handler interrupts a statement at the tool's deadline; `max_rows` (default 1000)
//! bounds the rows returned. The database path comes from the config (`connection_string`
//! `sqlite:///path`, or `database`), never from the model.

use std::time::Instant;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{limits::Limit, OpenFlags};
use serde_json::{json, Value};

use super::{str_arg, BuiltinCall, ToolFailure};

fn database_path(config: &serde_json::Map<String, Value>) -> Result<String, ToolFailure> {
    if let Some(path) = config.get("database").and_then(Value::as_str) {
        return Ok(path.to_string());
    }
    let Some(connection) = config.get("connection_string").and_then(Value::as_str) else {
        return Err(ToolFailure::MissingSetting { tool: "sql_query", setting: "connection_string", env: None });
    };
    connection
        .strip_prefix("sqlite:///")
        .map(|rest| if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") })
        .or_else(|| connection.strip_prefix("sqlite://").map(str::to_string))
        .ok_or_else(|| {
            ToolFailure::failed(format!("unsupported connection_string (only sqlite:///path): {connection}"))
        })
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
        Value::Number(number) => match number.as_i64() {
            Some(int) => SqlValue::Integer(int),
            None => SqlValue::Real(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => SqlValue::Text(text.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(int) => json!(int),
        ValueRef::Real(real) => json!(real),
        ValueRef::Text(bytes) => json!(String::from_utf8_lossy(bytes)),
        ValueRef::Blob(bytes) => json!(format!("<blob of {} bytes>", bytes.len())),
    }
}

fn sql_failure(error: rusqlite::Error) -> ToolFailure {
    match error {
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::ReadOnly => ToolFailure::failed(
            "the database is read-only for this tool (read_only: true): the statement tried to write",
        ),
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::OperationInterrupted => {
            ToolFailure::failed("the query was interrupted at the tool's timeout")
        }
        other => ToolFailure::failed(format!("SQL error: {other}")),
    }
}

pub(super) async fn sql_query(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let query = str_arg(call.input, "query")?.to_string();
    let params: Vec<SqlValue> = call
        .input
        .get("params")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(to_sql).collect())
        .unwrap_or_default();
    let path = database_path(call.config)?;
    let read_only = call.config.get("read_only").and_then(Value::as_bool).unwrap_or(true);
    let max_rows = call.config.get("max_rows").and_then(Value::as_u64).unwrap_or(1000) as usize;
    let deadline = Instant::now() + call.timeout;
    tokio::task::spawn_blocking(move || {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            // Never create a database the operator did not make: a typo in the path would
            // otherwise answer "no such table" from an empty new file.
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let mut connection = rusqlite::Connection::open_with_flags(&path, flags)
            .map_err(|error| ToolFailure::failed(format!("cannot open the database {path}: {error}")))?;
        connection.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(sql_failure)?;
        connection.progress_handler(1000, Some(move || Instant::now() >= deadline)).map_err(sql_failure)?;
        let mut statement = connection.prepare(&query).map_err(sql_failure)?;
        let params = rusqlite::params_from_iter(params.iter());
        if statement.column_count() == 0 {
            let affected = statement.execute(params).map_err(sql_failure)?;
            return Ok(json!({"affected_rows": affected}));
        }
        let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
        let mut rows = statement.query(params).map_err(sql_failure)?;
        let mut out: Vec<Value> = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows.next().map_err(sql_failure)? {
            if out.len() == max_rows {
                truncated = true;
                break;
            }
            let values = (0..columns.len()).map(|idx| row.get_ref(idx).map(to_json)).collect::<Result<Vec<_>, _>>();
            out.push(Value::Array(values.map_err(sql_failure)?));
        }
        Ok(json!({"columns": columns, "row_count": out.len(), "rows": out, "truncated": truncated}))
    })
    .await?
}
