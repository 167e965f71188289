//! The web UI: `assets/` embedded in the binary and served at `/` and `/assets/*`.
//!
//! The UI is plain HTML, CSS and ES modules (no build step, nothing fetched from the network) and
//! talks only to the public `/v1` API, so everything it shows a user can also script. Files are
//! served with an ETag (the embedded SHA-256) and `no-cache`: the browser revalidates and gets a
//! 304, so a new binary never serves a stale script. Unknown non-API paths fall back to
//! `index.html` for client-side routes; unknown `/v1/...` paths keep the JSON 404 envelope
//! (see `api::fallback`).

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use super::error::ApiError;
use super::AppState;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{*path}", get(asset))
}

pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") | Some("webmanifest") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str, request_headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return ApiError::NotFound("Not Found".to_string()).into_response();
    };
    let hash: String = file.metadata.sha256_hash().iter().map(|byte| format!("{byte:02x}")).collect();
    let etag = format!("\"{}\"", &hash[..32]);
    let matches = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|tag| tag.trim() == etag));
    let etag = HeaderValue::from_str(&etag).expect("a hex ETag is a valid header value");
    let common = [(header::ETAG, etag), (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))];
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let security = [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (
            header::CONTENT_SECURITY_POLICY,
            // Everything comes from this origin; the WebSocket goes back to it too.
            HeaderValue::from_static(
                "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'",
            ),
        ),
    ];
    let kind = [(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)))];
    (StatusCode::OK, kind, common, security, file.data.into_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }
}
