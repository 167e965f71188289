//! Architecture checks over `src/` (STYLE.md §13): module docs, where HTTP lives, banned macros.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn source_files_follow_the_architecture_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for path in files {
        let relative = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!("{relative}: must start with a //! module comment"));
        }
        let is_edge = relative.starts_with("api/") || relative == "lib.rs" || relative == "main.rs";
        let is_main = relative == "main.rs";
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if !is_edge && (code.contains("axum") || code.contains("tower_http")) {
                problems.push(format!("{relative}:{}: axum/tower_http belong in src/api/", number + 1));
            }
            if !is_main {
                for banned in ["dbg!(", "todo!(", "println!(", "std::process::exit"] {
                    if code.contains(banned) {
                        problems.push(format!("{relative}:{}: {banned} is only allowed in main.rs", number + 1));
                    }
                }
            }
        }
        let lines = text.lines().count();
        if lines > 800 {
            problems.push(format!("{relative}: {lines} lines; split it by responsibility"));
        }
    }
    assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
}
