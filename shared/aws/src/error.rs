//! Turning SDK errors into the domain's [`PortError`], retryable or not.

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use switchyard_core::PortError;

/// Transient codes the SDK's lists lack: server-side failures some services
/// report with a 4xx or as a batch entry's code rather than a 5xx,
/// DynamoDB's transaction conflict, and SQS's and KMS's own throttling codes.
const MORE_TRANSIENT_CODES: &[&str] = &[
    "TransactionConflictException",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KmsThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Whether an error code names a transient condition: the SDK's throttling
/// and transient codes, and the few more codes of ours above.
pub fn is_transient_code(code: &str) -> bool {
    THROTTLING_ERRORS.contains(&code) || TRANSIENT_ERRORS.contains(&code) || MORE_TRANSIENT_CODES.contains(&code)
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
        assert!(is_transient_code("RequestTimeout"), "from the SDK's transient list");
        assert!(
            is_transient_code("AWS.SimpleQueueService.RequestThrottled"),
            "one of ours"
        );
        assert!(is_transient_code("TransactionConflictException"), "one of ours");
        assert!(!is_transient_code("ValidationException"));
        assert!(!is_transient_code("ResourceNotFoundException"));
    }
}
