//! Playing Lambda's SQS event source mapping for a handler.
//!
//! One poll receives a batch, hands it to the handler as the `SqsEvent`
//! Lambda would build (body, receipt handle, system attributes such as
//! `ApproximateReceiveCount`, source ARN), and applies the partial batch
//! response the way Lambda does with `ReportBatchItemFailures`: the records
//! not listed are deleted; the listed ones stay and come back after the
//! visibility timeout; a response naming an id that was not in the batch
//! fails the whole batch.

use crate::{LocalError, aws_err};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use std::collections::HashSet;
use std::future::Future;

/// A queue as the poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

impl QueueRef {
    pub async fn resolve(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Self, LocalError> {
        Ok(Self {
            url: url.to_string(),
            arn: crate::resources::queue_arn(sqs, url).await?,
        })
    }
}

/// What one poll did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub received: usize,
    pub failed: usize,
    /// Successes whose delete SQS refused (their receipt had expired).
    pub not_deleted: usize,
}

/// Builds the event Lambda would pass for these messages.
pub fn to_sqs_event(messages: &[Message], queue: &QueueRef) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut r = SqsMessage::default();
            r.message_id = m.message_id.clone();
            r.receipt_handle = m.receipt_handle.clone();
            r.body = m.body.clone();
            r.md5_of_body = m.md5_of_body.clone();
            r.attributes = m
                .attributes
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect();
            r.event_source = Some("aws:sqs".into());
            r.event_source_arn = Some(queue.arn.clone());
            r.aws_region = Some(crate::LOCAL_REGION.into());
            r
        })
        .collect();
    event
}

/// Receives up to `batch_size` messages (long-polling up to `wait_secs`),
/// runs `handler` on them, and deletes the successes.
pub async fn poll_once<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    batch_size: i32,
    wait_secs: i32,
    handler: F,
) -> Result<BatchReport, LocalError>
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let out = sqs
        .receive_message()
        .queue_url(&queue.url)
        .max_number_of_messages(batch_size.clamp(1, 10))
        .wait_time_seconds(wait_secs.clamp(0, 20))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(|e| aws_err("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(BatchReport::default());
    }
    let response = handler(to_sqs_event(&messages, queue)).await;

    let ids: HashSet<&str> = messages.iter().filter_map(|m| m.message_id.as_deref()).collect();
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    if failed.iter().any(|f| !ids.contains(f)) {
        // Lambda's rule: an unknown or empty identifier fails the whole batch.
        return Ok(BatchReport {
            received: messages.len(),
            failed: messages.len(),
            not_deleted: 0,
        });
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id.as_deref().is_some_and(|id| !failed.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle.clone()?)
                .build()
                .ok()
        })
        .collect();
    let mut not_deleted = 0;
    if !entries.is_empty() {
        let out = sqs
            .delete_message_batch()
            .queue_url(&queue.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_err("DeleteMessageBatch", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        // As with Lambda, a delete SQS refuses (the message's visibility ran
        // out and it was received again) only means it comes back later.
        not_deleted = out.failed.len();
    }
    Ok(BatchReport {
        received: messages.len(),
        failed: failed.len(),
        not_deleted,
    })
}

/// Polls until a poll finds the queue empty; returns the totals.
pub async fn drain<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue: &QueueRef,
    batch_size: i32,
    handler: F,
) -> Result<BatchReport, LocalError>
where
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = SqsBatchResponse>,
{
    let mut total = BatchReport::default();
    loop {
        let r = poll_once(sqs, queue, batch_size, 0, &handler).await?;
        if r.received == 0 {
            return Ok(total);
        }
        total.received += r.received;
        total.failed += r.failed;
        total.not_deleted += r.not_deleted;
    }
}
