//! The one error shape every route answers with — the same as ingest's:
//! `{"code", "message", "details"?}`, with the right status.
//! Client mistakes are 4xx; only Switchyard's own failures are 5xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchyard_core::PortError;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key>)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// Absent, or another tenant's: the two are never told apart.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

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
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.details {
            error["details"] = d;
        }
        (self.status, axum::Json(error)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
