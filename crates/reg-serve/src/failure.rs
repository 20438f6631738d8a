//! A request that cannot be answered: a status and the one-line message
//! the CLI would print, as plain text (API, downloads) or as a page.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use reg_registry::RegistryError;

/// An error response.
#[derive(Debug)]
pub struct Failure {
    /// The status.
    pub status: StatusCode,
    /// One line, as `reg` prints it after `reg: error: `.
    pub message: String,
    /// Render as an HTML page rather than plain text.
    pub page: bool,
}

impl Failure {
    /// A failure with this status and message, as plain text.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into().replace(['\n', '\r'], " "),
            page: false,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Failure {
        Failure::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The same failure shown as a page.
    pub fn page(mut self) -> Failure {
        self.page = true;
        self
    }
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        let status = match &e {
            RegistryError::NoSuchName { .. } | RegistryError::NoSuchVersion { .. } => StatusCode::NOT_FOUND,
            RegistryError::BadRef(_)
            | RegistryError::BadName(_)
            | RegistryError::Read(_)
            | RegistryError::Push(_)
            | RegistryError::Tag(_)
            | RegistryError::Import(_)
            | RegistryError::Open(_) => StatusCode::BAD_REQUEST,
            RegistryError::Locked { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            eprintln!("reg serve: error: {e}");
        }
        Failure::new(status, e.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = if self.page {
            let title = self.status.canonical_reason().unwrap_or("error").to_string();
            crate::pages::layout::error_page(&title, &self.message).into_response()
        } else {
            let mut text = self.message;
            text.push('\n');
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                text,
            )
                .into_response()
        };
        *response.status_mut() = self.status;
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
