//! Playing Lambda's SQS event source mapping for a handler.
//!
//! One poll receives a batch, hands it to the handler as the `SqsEvent`
//! Lambda would build (body, receipt handle, system attributes such as
//! `ApproximateReceiveCount`, message attributes, source ARN), and applies the partial batch
//! response the way Lambda does with `ReportBatchItemFailures`: the records
//! not listed are deleted; the listed ones stay and come back after the
//! visibility timeout; a response naming an id that was not in the batch
//! fails the whole batch.

use crate::{LocalError, aws_err};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use std::collections::HashSet;
use std::future::Future;

/// A queue as the poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// The queue's URL.
    pub url: String,
    /// The queue's ARN (the `eventSourceARN` of each record).
    pub arn: String,
}

impl QueueRef {
    /// The queue at `url`, with its ARN read from SQS.
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
    /// Messages received in the batch.
    pub received: usize,
    /// Messages the handler reported as failed (left on the queue).
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
            r.message_attributes = m
                .message_attributes
                .iter()
                .flatten()
                .map(|(k, v)| {
                    let mut a = SqsMessageAttribute::default();
                    a.data_type = Some(v.data_type.clone());
                    a.string_value = v.string_value.clone();
                    a.binary_value = v.binary_value.as_ref().map(|b| {
                        let mut data = aws_lambda_events::encodings::Base64Data::default();
                        data.extend_from_slice(b.as_ref());
                        data
                    });
                    (k.clone(), a)
                })
                .collect();
            r.md5_of_message_attributes = m.md5_of_message_attributes.clone();
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
    let messages = receive(sqs, &queue.url, batch_size, wait_secs).await?;
    if messages.is_empty() {
        return Ok(BatchReport::default());
    }
    let response = handler(to_sqs_event(&messages, queue)).await;
    let Some(failed) = batch_failures(&messages, &response) else {
        // Lambda's rule: an unknown or empty identifier fails the whole batch.
        return Ok(BatchReport {
            received: messages.len(),
            failed: messages.len(),
            not_deleted: 0,
        });
    };
    let not_deleted = delete_except(sqs, &queue.url, &messages, &failed).await?;
    Ok(BatchReport {
        received: messages.len(),
        failed: failed.len(),
        not_deleted,
    })
}

/// Receives up to `max` messages (at most 10, SQS's limit per call),
/// long-polling up to `wait_secs`, with every system attribute.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
    wait_secs: i32,
) -> Result<Vec<Message>, LocalError> {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(wait_secs.clamp(0, 20))
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| aws_err("ReceiveMessage", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(out.messages.unwrap_or_default())
}

/// The ids a partial batch response names as failed, or `None` when it
/// fails the whole batch (it names an id that was not in the batch, or an
/// empty one), as Lambda reads it.
pub fn batch_failures(messages: &[Message], response: &SqsBatchResponse) -> Option<HashSet<String>> {
    let ids: HashSet<&str> = messages.iter().filter_map(|m| m.message_id.as_deref()).collect();
    let failed: HashSet<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.iter().all(|f| ids.contains(f.as_str())).then_some(failed)
}

/// Deletes every message of the batch but the `failed` ones; returns how
/// many deletes SQS refused (their receipt had expired: as with Lambda,
/// such a message only comes back later).
pub async fn delete_except(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    messages: &[Message],
    failed: &HashSet<String>,
) -> Result<usize, LocalError> {
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
    if entries.is_empty() {
        return Ok(0);
    }
    let out = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| aws_err("DeleteMessageBatch", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(out.failed.len())
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
