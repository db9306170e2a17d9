//! Task queues over SQS.

use crate::error::port_error;
use crate::sqs_batch::{reply, split_by_size, with_retries};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Duration;
use switchyard_core::PortError;
use switchyard_core::ports::{Redelivery, TaskQueue};

pub use crate::sqs_batch::{MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

/// A queue of `T`s, each sent as a JSON message.
pub struct SqsQueue<T> {
    client: aws_sdk_sqs::Client,
    url: String,
    _task: PhantomData<fn(&T)>,
}

impl<T> SqsQueue<T> {
    /// The queue at `url`.
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
            _task: PhantomData,
        }
    }

    /// The queue's URL.
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
    split_by_size(&bodies.iter().map(String::len).collect::<Vec<_>>())
}

impl<T: Serialize> SqsQueue<T> {
    /// Sends `bodies` as one batch; entries refused for a transient reason
    /// are sent again (entry ids are positions in `bodies`).
    async fn send_batch(&self, bodies: &[String]) -> Result<(), PortError> {
        const OP: &str = "SendMessageBatch";
        let run = with_retries(OP, (0..bodies.len()).collect(), |pending| async move {
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
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| port_error(OP, e))?;
            let ok = out.successful().iter().map(|s| (s.id(), String::new()));
            Ok(reply(ok, out.failed()))
        })
        .await;
        run.error.map_or(Ok(()), Err)
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
