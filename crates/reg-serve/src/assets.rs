//! The stylesheet and the small script, built into the binary. Only these
//! names are served: a URL never reaches the file system.

use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::failure::Failure;

/// The stylesheet (light and dark by `prefers-color-scheme`).
pub const CSS: &str = include_str!("../assets/reg.css");
/// Sorting and filtering of tables, local times; pages work without it.
pub const JS: &str = include_str!("../assets/reg.js");

/// `/static/FILE`.
pub async fn handler(file: Result<Path<String>, axum::extract::rejection::PathRejection>) -> Response {
    let (body, kind) = match file.as_ref().map(|Path(f)| f.as_str()) {
        Ok("reg.css") => (CSS, "text/css; charset=utf-8"),
        Ok("reg.js") => (JS, "text/javascript; charset=utf-8"),
        _ => return Failure::not_found("no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        body,
    )
        .into_response()
}
