//! Turning SDK errors into the domain's [`PortError`], retryable or not.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use switchyard_core::PortError;

/// Error codes that mean "try again later" across SQS, DynamoDB and EventBridge.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "TransactionConflictException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KmsThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Whether an error code names a transient condition.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// Maps any SDK error: transport failures, timeouts, 5xx, 429 and throttling
/// are transient; everything else (validation, permissions, missing
/// resources) is permanent.
pub fn port_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            status >= 500 || status == 429 || se.err().code().is_some_and(is_transient_code)
        }
        _ => false,
    };
    let message = format!("{operation}: {}", DisplayErrorContext(&err));
    PortError { retryable, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_transient_and_validation_is_not() {
        assert!(is_transient_code("ThrottlingException"));
        assert!(is_transient_code("ProvisionedThroughputExceededException"));
        assert!(!is_transient_code("ValidationException"));
        assert!(!is_transient_code("ResourceNotFoundException"));
    }
}
