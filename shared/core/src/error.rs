//! The error every port returns: what went wrong, and whether trying again
//! can help.

use std::fmt;

/// A failure at a port (a queue, a table, an HTTP client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    /// Whether trying the same call again may succeed.
    pub retryable: bool,
    /// What went wrong, for logs and error answers.
    pub message: String,
}

impl PortError {
    /// A failure that may pass on a later try: throttling, timeouts, 5xx.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    /// A failure that will repeat: bad request, missing permission, corrupt data.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.retryable { "transient" } else { "permanent" };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for PortError {}

/// The body of every error answer of the HTTP APIs (ingest's and the
/// management API's): a stable machine-readable `code`, a `message` for a
/// person, and sometimes `details`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody {
    /// What kind of error: `not_found`, `validation_failed`,
    /// `limit_exceeded`, `rate_limited`, `unauthorized`, ...
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Extra facts: the `field` at fault, or for a limit its name (`limit`)
    /// and `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<serde_json::Value>,
}
