//! SQS's own move task, and when a refusal of it means "not supported here".

use super::{DlqPair, METHOD_MOVE_TASK, MoveResult};
use crate::error::{is_transient_code, port_error};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use switchyard_core::PortError;

/// Starts SQS's move task; `None` if SQS does not support it here.
pub(super) async fn start_move_task(
    sqs: &aws_sdk_sqs::Client,
    pair: &DlqPair,
) -> Result<Option<MoveResult>, PortError> {
    let dlq = sqs
        .get_queue_attributes()
        .queue_url(&pair.dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send();
    let source = sqs
        .get_queue_attributes()
        .queue_url(&pair.source_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send();
    let (dlq, source) = futures_util::future::join(dlq, source).await;
    let op = format!("GetQueueAttributes {}", pair.name);
    let mut dlq = dlq.map_err(|e| port_error(&op, e))?.attributes.unwrap_or_default();
    let mut source = source.map_err(|e| port_error(&op, e))?.attributes.unwrap_or_default();
    let no_arn = |url: &str| PortError::permanent(format!("{op}: no QueueArn for {url}"));
    let dlq_arn = dlq
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| no_arn(&pair.dlq_url))?;
    let source_arn = source
        .remove(&QueueAttributeName::QueueArn)
        .ok_or_else(|| no_arn(&pair.source_url))?;
    let waiting = dlq
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    match sqs
        .start_message_move_task()
        .source_arn(&dlq_arn)
        .destination_arn(&source_arn)
        .send()
        .await
    {
        Ok(out) => Ok(Some(MoveResult {
            moved: waiting,
            kept: 0,
            method: METHOD_MOVE_TASK,
            task_handle: out.task_handle().map(str::to_owned),
        })),
        Err(e) if move_task_unsupported(&e) => {
            tracing::info!(dlq = %pair.name, error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                "StartMessageMoveTask is not available; moving the messages one batch at a time");
            Ok(None)
        }
        Err(e) => Err(port_error(&format!("StartMessageMoveTask {}", pair.name), e)),
    }
}

fn move_task_unsupported<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(se) => refusal_means_unsupported(se.raw().status().as_u16(), se.err().code()),
        _ => false,
    }
}

/// Whether a refused StartMessageMoveTask means "not supported here", so the
/// messages should be moved by hand: any 4xx but throttling and missing
/// permissions or credentials, and a 5xx that is not an AWS error at all
/// (moto answers an action it lacks with a bare HTML 500 page).
pub(super) fn refusal_means_unsupported(status: u16, code: Option<&str>) -> bool {
    if code.is_some_and(|c| is_transient_code(c) || c.contains("Throttl") || c.contains("AccessDenied")) {
        return false;
    }
    match status {
        401 | 403 | 429 => false,
        400..=499 => true,
        500..=599 => code.is_none(),
        _ => false,
    }
}
