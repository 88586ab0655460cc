//! Node errors as eKuiper writes them: `{"error":<code>,"message":"<prefix>:
//! <text>"}` plus a newline, `text/plain` (Go's `http.Error`), status 404
//! for code 1002 and 400 otherwise.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::error::{code, Error};

/// An error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// eKuiper error code.
    pub(crate) code: u32,
    /// The message, prefix included.
    pub(crate) message: String,
    /// The status when it is not derived from the code (413).
    status: Option<StatusCode>,
}

impl ApiError {
    /// `err` with eKuiper's `prefix` for the route (empty for none).
    pub(crate) fn new(prefix: &str, err: &Error) -> ApiError {
        ApiError::with_code(err.code(), prefix, err)
    }

    /// A message with an explicit code.
    pub(crate) fn with_code(code: u32, prefix: &str, text: impl fmt::Display) -> ApiError {
        let message = if prefix.is_empty() { text.to_string() } else { format!("{prefix}: {text}") };
        ApiError { code, message, status: None }
    }

    /// A request body over the limit.
    pub(crate) fn too_large(limit: usize) -> ApiError {
        ApiError {
            code: code::UNDEFINED,
            message: format!("Invalid body: request body is larger than {limit} bytes"),
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }
    }
}

/// Wraps node errors of a route with its eKuiper prefix.
pub(crate) fn prefixed(prefix: &'static str) -> impl Fn(Error) -> ApiError {
    move |e| ApiError::new(prefix, &e)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self.status {
            Some(s) => s,
            None if self.code == code::NOT_FOUND => StatusCode::NOT_FOUND,
            None => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message }).to_string();
        body.push('\n');
        HttpResponse::build(self.status_code()).content_type("text/plain; charset=utf-8").body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_is_404_only_for_1002() {
        let e = ApiError::new("describe rule error", &Error::not_found("rule", "r9"));
        assert_eq!(e.status_code(), StatusCode::NOT_FOUND);
        assert_eq!(e.message, "describe rule error: rule r9 is not found");
        let e = ApiError::new("", &Error::invalid_rule("Missing rule id."));
        assert_eq!((e.code, e.status_code()), (4000, StatusCode::BAD_REQUEST));
        assert_eq!(e.message, "Missing rule id.");
        assert_eq!(ApiError::too_large(10).status_code(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
