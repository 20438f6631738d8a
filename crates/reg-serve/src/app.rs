//! The routes, and what every request passes through first: the Host
//! rule (421 for a name the server does not answer, [`crate::host`]), only
//! GET and HEAD are served, and a handler that takes too long gets 503.
//! Every response carries the security headers of [`SECURITY_HEADERS`].
//!
//! | URL | what |
//! |---|---|
//! | `/` | models |
//! | `/m/NAME` | a model's versions, plots, a form to diff two |
//! | `/m/NAME/REF` | one version (`reg show`), download links |
//! | `/diff?a=REF&b=REF` | what changed (`reg diff --stats`) |
//! | `/api/ls`, `/api/log/NAME`, `/api/show/REF`, `/api/diff?a=&b=` | the CLI's `--json` output |
//! | `/pull/REF` | the file (`?format=safetensors`, `?weights_only=1`) |
//! | `/pull/REF/PATH` | a file of a directory version (not yet) |
//! | `/static/FILE` | the built-in CSS and script |

use crate::failure::Failure;
use crate::host::HostRule;
use crate::state::AppState;
use crate::{api, assets, download, pages};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// The Content-Security-Policy of every response: the pages load only
/// their own `/static/` stylesheet and script (no inline script or
/// `style=` attribute anywhere; plots are inline SVG styled by the
/// stylesheet), the empty `data:` favicon, and submit their one form to
/// themselves; nothing may frame them.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers set on every response the application makes (docs/serve.md has
/// the table).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    // Other sites' pages may not even embed a response (an <img> or
    // <script> of /api or /pull).
    ("cross-origin-resource-policy", "same-origin"),
];

/// The whole application.
pub fn router(state: AppState, handler_timeout: Duration, hosts: Arc<HostRule>) -> Router {
    Router::new()
        .route("/", get(pages::index::handler))
        .route("/m/{name}", get(pages::model::handler))
        .route("/m/{name}/{reference}", get(pages::version::handler))
        .route("/diff", get(pages::diff::handler))
        .route("/api/ls", get(api::ls))
        .route("/api/log/{name}", get(api::log))
        .route("/api/show/{reference}", get(api::show))
        .route("/api/diff", get(api::diff))
        .route("/pull/{reference}", get(download::version))
        .route("/pull/{reference}/{*path}", get(download::directory_file))
        .route("/static/{file}", get(assets::handler))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(move |req, next| {
            deadline(req, next, handler_timeout)
        }))
        .layer(middleware::from_fn(only_get_and_head))
        .layer(middleware::from_fn(move |req, next| {
            host_first(req, next, hosts.clone())
        }))
        .layer(middleware::from_fn(security_headers))
}

/// 400 or 421 for a request the Host rule refuses, before anything else
/// (method, routing, registry).
async fn host_first(req: Request, next: Next, hosts: Arc<HostRule>) -> Response {
    match hosts.check(req.version(), req.uri(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// [`SECURITY_HEADERS`] on every response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn not_found() -> Failure {
    Failure::not_found("no such page").page()
}

/// 405 for every method but GET and HEAD, before any routing.
async fn only_get_and_head(req: Request, next: Next) -> Response {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return next.run(req).await;
    }
    let mut response = Failure::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed: reg serve is read-only (GET and HEAD only)",
            req.method()
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// 503 when the handler has not answered within `limit` (the body of a
/// download is not counted: it streams afterwards).
async fn deadline(req: Request, next: Next, limit: Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => Failure::unavailable(format!(
            "the registry did not answer within {} s (another reg process may hold it)",
            limit.as_secs()
        ))
        .into_response(),
    }
}
