//! The one error shape every route answers with — the same as ingest's:
//! `{"code", "message", "details"?}`, with the right status.
//! Client mistakes are 4xx; only Switchyard's own failures are 5xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_core::PortError;

/// An error answer: its status and the `{"code", "message", "details"?}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`not_found`, `validation_failed`, ...).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Extra facts (the field at fault, the limit); omitted from the body when `None`.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`, without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The same error with `details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 with `code`: the request could not be read.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthorized`: no key, or not a valid one.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key>)",
        )
    }

    /// 403 `forbidden`: a valid key that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Absent, or another tenant's: the two are never told apart.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    /// 409 `conflict`: the request clashes with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A field that parsed but is not acceptable.
    pub fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {message}"),
        )
        .with_details(json!({ "field": field }))
    }

    /// A per-tenant limit the request would go past: 409 `limit_exceeded`
    /// for a count (endpoints, API keys), with the limit's name and value.
    pub fn limit_exceeded(e: &switchyard_core::quota::LimitExceeded) -> Self {
        Self::new(StatusCode::CONFLICT, "limit_exceeded", e.to_string())
            .with_details(json!({ "limit": e.limit, "value": e.value }))
    }

    /// 503 `unavailable` for a retryable port failure, else 500 `internal`; the cause is logged, never shown.
    pub fn internal(e: &PortError) -> Self {
        // The cause is logged, not shown: it may name tables and queues.
        tracing::error!(error = %e, "a dependency failed");
        if e.retryable {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "a dependency is unavailable; try again",
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request could not be completed",
            )
        }
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        Self::internal(&e)
    }
}

impl From<switchyard_core::model::ListError> for ApiError {
    fn from(e: switchyard_core::model::ListError) -> Self {
        match e {
            switchyard_core::model::ListError::BadCursor => {
                Self::bad_request("invalid_cursor", "the cursor is not valid for this listing")
            }
            switchyard_core::model::ListError::Port(p) => Self::internal(&p),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = switchyard_core::error::ErrorBody {
            code: self.code.to_string(),
            message: self.message,
            details: self.details,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
