//! Printing for the client commands: aligned tables (comfy-table) for people, JSON for scripts.
//!
//! Tables have no borders, like `kubectl get`, so `grep` and `awk` work on them; trailing
//! spaces are trimmed. Everything goes to a locked stdout with `writeln!`, so a closed pipe is
//! an `io::Error` the caller turns into a quiet exit. Notes for people (session ids, progress,
//! tool calls during a run) go to stderr through `note`, so stdout stays the answer.

use std::io::Write;

use comfy_table::{presets, Table};
use serde_json::Value;

use super::CliError;

/// A table with a header row and no borders (columns two spaces apart).
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header.to_vec());
    table
}

/// Prints a table, or a line saying there is nothing when it has no rows.
pub(crate) fn print_table(table: &Table, empty: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    if table.is_empty() {
        writeln!(out, "{empty}")?;
    } else {
        // Cells are padded one space on each side: drop the left pad of the first column.
        for line in table.lines() {
            writeln!(out, "{}", line.strip_prefix(' ').unwrap_or(&line).trim_end())?;
        }
    }
    Ok(())
}

/// Prints a value as pretty JSON (the `--json` output).
pub(crate) fn print_json(value: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    Ok(())
}

/// Prints lines of text on stdout.
pub(crate) fn print_lines(lines: &[String]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// A note for the person at the terminal, on stderr. A failing stderr is not worth an error.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}"); // Nowhere left to report it.
}

/// A JSON value as a table cell: strings bare, null empty, the rest as compact JSON.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Shortens text to `max` characters on one line, marking the cut with `...`.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// Milliseconds for people: `850 ms`, `3.2 s`.
pub(crate) fn millis(value: &Value) -> String {
    match value.as_f64() {
        Some(ms) if ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_and_shortening() {
        assert_eq!(cell(&json!(null)), "");
        assert_eq!(cell(&json!(["a", "b"])), "a, b");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(shorten("a  b\nc", 10), "a b c");
        assert_eq!(shorten("héllo world", 5), "héllo...");
        assert_eq!(millis(&json!(1500)), "1.5 s");
        assert_eq!(millis(&json!(12.4)), "12 ms");
    }
}
