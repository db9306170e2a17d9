//! Task queues over SQS.

use crate::error::port_error;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;
use switchyard_core::PortError;
use switchyard_core::ports::{Redelivery, TaskQueue};

/// SQS takes at most ten messages per batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// …and at most 256 KiB in one call.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Entries that SQS refused for a transient reason are sent again this often.
const SEND_TRIES: u32 = 4;

/// A queue of `T`s, each sent as a JSON message.
pub struct SqsQueue<T> {
    client: aws_sdk_sqs::Client,
    url: String,
    _task: PhantomData<fn(&T)>,
}

impl<T> SqsQueue<T> {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            _task: PhantomData,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes a received message invisible for `seconds` (at most 12 h):
    /// it comes back after that, which is how a delivery is retried later.
    pub async fn change_visibility(&self, receipt_handle: &str, seconds: u32) -> Result<(), PortError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(43_200) as i32)
            .send()
            .await
            .map_err(|e| crate::error::port_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}

/// Splits message bodies into batches within SQS's count and size limits.
pub fn batches(bodies: &[String]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, b) in bodies.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || (i > start && bytes + b.len() > MAX_BATCH_BYTES);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(start..bodies.len());
    }
    out
}

impl<T: Serialize> SqsQueue<T> {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), PortError> {
        // Entry ids are positions in `bodies`; only refused entries are resent.
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut last_error = String::new();
        for attempt in 0..SEND_TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&bodies[i])
                        .build()
                        .map_err(|e| PortError::permanent(format!("SendMessageBatch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let e = port_error("SendMessageBatch", e);
                    if !e.retryable {
                        return Err(e);
                    }
                    last_error = e.message;
                    continue;
                }
            };
            let failed = out.failed();
            if failed.is_empty() {
                return Ok(());
            }
            if let Some(f) = failed.iter().find(|f| f.sender_fault()) {
                return Err(PortError::permanent(format!(
                    "SendMessageBatch refused a message: {} {}",
                    f.code(),
                    f.message().unwrap_or("")
                )));
            }
            last_error = format!(
                "{} of {} messages failed: {}",
                failed.len(),
                pending.len(),
                failed[0].code()
            );
            pending = failed.iter().filter_map(|f| f.id().parse().ok()).collect();
        }
        Err(PortError::transient(format!(
            "SendMessageBatch gave up after {SEND_TRIES} tries: {last_error}"
        )))
    }
}

impl<T: Serialize + Sync> Redelivery<T> for SqsQueue<T> {
    async fn redeliver_after(&self, receipt_handle: &str, delay: Duration) -> Result<(), PortError> {
        self.change_visibility(receipt_handle, switchyard_core::retry::visibility_for(delay))
            .await
    }

    async fn send_after(&self, task: &T, delay: Duration) -> Result<(), PortError> {
        let body = serde_json::to_string(task).map_err(|e| PortError::permanent(format!("serialising a task: {e}")))?;
        let secs = switchyard_core::retry::visibility_for(delay).min(switchyard_core::requeue::MAX_SEND_DELAY_SECS);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(secs as i32)
            .send()
            .await
            .map_err(|e| port_error("SendMessage", e))?;
        Ok(())
    }
}

impl<T: Serialize + Sync> TaskQueue<T> for SqsQueue<T> {
    async fn send_all(&self, tasks: &[T]) -> Result<(), PortError> {
        let bodies = tasks
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PortError::permanent(format!("serialising a task: {e}")))?;
        for range in batches(&bodies) {
            self.send_batch(&bodies[range]).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<String> = (0..23).map(|i| i.to_string()).collect();
        assert_eq!(batches(&small), vec![0..10, 10..20, 20..23]);
        let big: Vec<String> = (0..3).map(|_| "x".repeat(100 * 1024)).collect();
        assert_eq!(batches(&big), vec![0..2, 2..3]);
        assert!(batches(&[]).is_empty());
    }
}
