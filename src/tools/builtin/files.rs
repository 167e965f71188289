//! read_file and write_file, inside the `allowed_paths` roots of the tool's config.
//!
//! Paths are resolved by `FilePolicy` (symlinks and `..` cannot leave the roots; no roots, no
//! access). The write opens the final component with `O_NOFOLLOW`, so a symlink planted between
//! the check and the open is not followed. File I/O runs on the blocking pool. Text only
//! (UTF-8); `max_bytes` (default 1 MiB) bounds what read_file returns.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use serde_json::{json, Value};

use super::{opt_str, str_arg, BuiltinCall, ToolFailure};
use crate::tools::policy::FilePolicy;

const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;

fn check_encoding(encoding: Option<&str>) -> Result<(), ToolFailure> {
    match encoding.map(|name| name.to_ascii_lowercase().replace('_', "-")) {
        None => Ok(()),
        Some(name) if name == "utf-8" || name == "utf8" => Ok(()),
        Some(name) => Err(ToolFailure::failed(format!("unsupported encoding '{name}' (only utf-8)"))),
    }
}

fn max_bytes(call: &BuiltinCall<'_>) -> u64 {
    call.config.get("max_bytes").and_then(Value::as_u64).filter(|bytes| *bytes > 0).unwrap_or(DEFAULT_MAX_BYTES)
}

pub(super) async fn read_file(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let path = str_arg(call.input, "path")?.to_string();
    check_encoding(opt_str(call.input, "encoding"))?;
    let policy = FilePolicy::from_config(call.config);
    let limit = max_bytes(call);
    tokio::task::spawn_blocking(move || {
        let real = policy.resolve_existing(&path)?;
        let io_error = |source| ToolFailure::Io { path: path.clone(), source };
        let file = std::fs::File::open(&real).map_err(io_error)?;
        let size = file.metadata().map_err(io_error)?.len();
        if size > limit {
            return Err(ToolFailure::failed(format!(
                "{path} is {size} bytes, over the {limit}-byte limit (max_bytes)"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit + 1).read_to_end(&mut bytes).map_err(io_error)?;
        let content = String::from_utf8(bytes).map_err(|_| ToolFailure::failed(format!("{path} is not UTF-8 text")))?;
        Ok(json!({"path": real.display().to_string(), "content": content, "size": size}))
    })
    .await?
}

pub(super) async fn write_file(call: &BuiltinCall<'_>) -> Result<Value, ToolFailure> {
    let path = str_arg(call.input, "path")?.to_string();
    let content = str_arg(call.input, "content")?.to_string();
    check_encoding(opt_str(call.input, "encoding"))?;
    let policy = FilePolicy::from_config(call.config);
    tokio::task::spawn_blocking(move || {
        let target = policy.resolve_for_write(&path)?;
        let io_error = |source| ToolFailure::Io { path: path.clone(), source };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_error)?;
            // Created directories are plain directories; resolving again proves nothing was
            // swapped for a symlink meanwhile.
            let real_parent = parent.canonicalize().map_err(io_error)?;
            let again = policy.resolve_for_write(real_parent.to_str().unwrap_or_default())?;
            if again != real_parent {
                return Err(ToolFailure::failed(format!("{path} changed while it was being written")));
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(io_error)?;
        file.write_all(content.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Ok(json!({"path": target.display().to_string(), "bytes_written": content.len()}))
    })
    .await?
}
