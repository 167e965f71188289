//! `rag ingest --collection C FILES...` and `rag query --collection C "question"`.
//!
//! Ingest sends one request per file (one document each, `id` = the path as given so
//! re-ingesting a file replaces its chunks, `metadata.filename` = its file name and
//! `metadata.source` = the path). One request per file keeps each file atomic and lets the
//! progress bar (indicatif, on stderr) move for real; it is hidden when stderr is not a
//! terminal or with `--json`. Every file is read and checked (UTF-8, not empty) before the
//! first request, so a bad path fails fast without ingesting half the set.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

use super::output::{cell, print_json, print_lines, print_table, shorten, table};
use super::{CliError, Context};

/// How the text is split; `None` leaves the daemon's default.
pub(crate) struct Chunking {
    pub(crate) chunk_size: Option<usize>,
    pub(crate) chunk_overlap: Option<usize>,
}

fn read_document(path: &Path) -> Result<Value, CliError> {
    let input = |reason: String| CliError::Input { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|error| input(error.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| input("not UTF-8 text".to_string()))?;
    if text.trim().is_empty() {
        return Err(input("the file is empty".to_string()));
    }
    let filename = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let source = path.to_string_lossy();
    Ok(json!({"id": source, "text": text, "metadata": {"filename": filename, "source": source}}))
}

pub(crate) fn ingest(
    context: &Context,
    collection: &str,
    files: &[PathBuf],
    chunking: &Chunking,
) -> Result<(), CliError> {
    let documents = files.iter().map(|path| read_document(path)).collect::<Result<Vec<_>, _>>()?;
    let progress = ProgressBar::new(files.len() as u64);
    if context.json || !std::io::stderr().is_terminal() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        progress.set_style(style);
    }
    let mut chunks_created = 0;
    let mut report = Vec::with_capacity(files.len());
    for (path, document) in files.iter().zip(documents) {
        progress.set_message(path.display().to_string());
        let mut body = Map::new();
        body.insert("collection".to_string(), json!(collection));
        body.insert("documents".to_string(), json!([document]));
        if let Some(size) = chunking.chunk_size {
            body.insert("chunk_size".to_string(), json!(size));
        }
        if let Some(overlap) = chunking.chunk_overlap {
            body.insert("chunk_overlap".to_string(), json!(overlap));
        }
        let answer = context.client.post("/v1/rag/ingest", &Value::Object(body)).map_err(|error| match error {
            CliError::Api { status, detail } => {
                CliError::Api { status, detail: format!("{}: {detail}", path.display()) }
            }
            other => other,
        });
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                progress.abandon();
                return Err(error);
            }
        };
        let chunks = answer["chunks_created"].as_u64().unwrap_or_default();
        chunks_created += chunks;
        report.push(json!({"file": path.to_string_lossy(), "chunks_created": chunks}));
        progress.inc(1);
    }
    progress.finish_and_clear();
    if context.json {
        return print_json(&json!({
            "collection": collection,
            "documents_ingested": files.len(),
            "chunks_created": chunks_created,
            "files": report,
        }));
    }
    print_lines(&[format!("ingested {} file(s), {chunks_created} chunk(s) into {collection}", files.len())])
}

pub(crate) fn query(context: &Context, collection: &str, question: &str, top_k: Option<u32>) -> Result<(), CliError> {
    let mut body = json!({"collection": collection, "query": question});
    if let Some(top_k) = top_k {
        body["top_k"] = json!(top_k);
    }
    let answer = context.client.post("/v1/rag/query", &body)?;
    if context.json {
        return print_json(&answer);
    }
    let mut rows = table(&["SCORE", "SOURCE", "TEXT"]);
    for hit in answer["results"].as_array().into_iter().flatten() {
        let metadata = &hit["metadata"];
        let source = if metadata["source"].is_null() { cell(&metadata["filename"]) } else { cell(&metadata["source"]) };
        let score = hit["score"].as_f64().map(|score| format!("{score:.3}")).unwrap_or_default();
        rows.add_row(vec![score, source, shorten(&cell(&hit["text"]), 80)]);
    }
    print_table(&rows, "no results")
}
