//! Dead-letter queues for the management API: how deep each queue is, a look
//! at what a DLQ holds without consuming it, and moving its messages back to
//! the queue they came from.
//!
//! A move never loses a message: with SQS's own move task SQS guarantees it,
//! and the fallback deletes a message from the DLQ only after the source
//! queue accepted its copy, so a crash in between leaves a duplicate (which
//! the consumers' idempotency absorbs), never a gap.

mod by_hand;
mod copies;
mod move_task;
#[cfg(test)]
mod tests;

use crate::error::port_error;
use crate::sqs_batch::MAX_BATCH_ENTRIES;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use std::collections::{BTreeMap, HashSet};
use switchyard_core::PortError;

/// `MoveResult::method` when SQS moves the messages itself.
pub const METHOD_MOVE_TASK: &str = "start_message_move_task";
/// `MoveResult::method` when this process receives, re-sends and deletes.
pub const METHOD_RECEIVE_SEND_DELETE: &str = "receive_send_delete";

/// How long a peeked message would stay hidden if making it visible again failed.
const PEEK_VISIBILITY_SECS: i32 = 10;
/// How long a message being moved stays hidden from other readers of the DLQ.
const MOVE_VISIBILITY_SECS: i32 = 30;
/// Receives wait this long for messages: a long poll asks every SQS server,
/// so an empty answer means the queue is empty (a short poll samples a few).
const RECEIVE_WAIT_SECS: i32 = 1;

/// A DLQ and the queue its messages go back to, by a stable name
/// ("deliveries", "fanout", "ingest", "internal-user", "aws-events", ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DlqPair {
    /// The stable name the management API knows the DLQ by.
    pub name: String,
    /// The DLQ's URL.
    pub dlq_url: String,
    /// The URL of the queue its messages go back to.
    pub source_url: String,
    /// How a message goes back; a copy unless the setting says otherwise.
    #[serde(default)]
    pub replay: Replay,
}

/// How the messages of a DLQ go back to its source queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replay {
    /// As they are: same body, same message attributes.
    #[default]
    Copy,
    /// AWS service events (the AWS events DLQ) into the ingest queue: the
    /// event, taken out of a Lambda failure record if it is in one, marked
    /// with the message attribute that makes ingest read it as the
    /// EventBridge door does (`switchyard_core::doors::DOOR_ATTRIBUTE`). A
    /// message that holds no event stays in the DLQ.
    EventbridgeToIngest,
}

/// Parses the API function's `DLQS` setting: a JSON array of
/// `{"name","dlq_url","source_url","replay"?}` (`replay`: `copy`, the
/// default, or `eventbridge_to_ingest`); names unique and non-empty, URLs
/// non-empty, and a DLQ is never its own source.
pub fn parse_dlqs(json: &str) -> Result<Vec<DlqPair>, String> {
    let pairs: Vec<DlqPair> =
        serde_json::from_str(json).map_err(|e| format!("DLQS is not a JSON array of DLQs: {e}"))?;
    let mut names = HashSet::new();
    for (i, p) in pairs.iter().enumerate() {
        if p.name.trim().is_empty() {
            return Err(format!("DLQS[{i}]: the name is empty"));
        }
        if !names.insert(p.name.as_str()) {
            return Err(format!("DLQS[{i}]: the name {:?} appears twice", p.name));
        }
        if p.dlq_url.trim().is_empty() || p.source_url.trim().is_empty() {
            return Err(format!(
                "DLQS[{i}] ({}): dlq_url and source_url must not be empty",
                p.name
            ));
        }
        if p.dlq_url == p.source_url {
            return Err(format!("DLQS[{i}] ({}): the DLQ is its own source queue", p.name));
        }
    }
    Ok(pairs)
}

/// How many messages a queue holds, by state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueDepth {
    /// The queue's name, as the caller gave it.
    pub name: String,
    /// Messages ready to be received.
    pub visible: u64,
    /// Messages received and not yet deleted (hidden by their visibility timeout).
    pub in_flight: u64,
    /// Messages sent with a delay that has not passed yet.
    pub delayed: u64,
    /// Always `None` for now: SQS has no attribute for it (only the
    /// `ApproximateAgeOfOldestMessage` CloudWatch metric).
    pub oldest_age_secs: Option<u64>,
}

/// One GetQueueAttributes: the approximate numbers of visible, in-flight and
/// delayed messages.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, name: &str, url: &str) -> Result<QueueDepth, PortError> {
    let op = format!("GetQueueAttributes {name}");
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| port_error(&op, e))?;
    let attrs = out.attributes.unwrap_or_default();
    let count = |attr: QueueAttributeName| -> Result<u64, PortError> {
        let value = attrs
            .get(&attr)
            .ok_or_else(|| PortError::permanent(format!("{op}: no {}", attr.as_str())))?;
        value
            .parse()
            .map_err(|_| PortError::permanent(format!("{op}: {} is {value:?}", attr.as_str())))
    };
    Ok(QueueDepth {
        name: name.to_owned(),
        visible: count(QueueAttributeName::ApproximateNumberOfMessages)?,
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)?,
        delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed)?,
        oldest_age_secs: None,
    })
}

/// A DLQ message as [`peek`] shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "A DLQ message, left on the DLQ.")
)]
pub struct PeekedMessage {
    /// SQS's id of the message.
    pub message_id: String,
    /// The message body, as it is.
    pub body: String,
    /// SQS's `ApproximateReceiveCount`, which counts the peek's own receive.
    pub receive_count: u32,
    /// When the message was first sent (RFC 3339, UTC).
    pub sent_at: Option<String>,
    /// The message attributes that have a text value (`String` and `Number`
    /// types, custom subtypes included); binary ones are left out.
    pub attributes: BTreeMap<String, String>,
}

/// Up to `max` (1..=10) messages of a DLQ without consuming them: received
/// with a short visibility timeout, then made visible again at once. Fewer
/// when the DLQ holds fewer. If making them visible again fails they come
/// back on their own after a few seconds, so that is logged, not returned.
pub async fn peek(sqs: &aws_sdk_sqs::Client, dlq_url: &str, max: u32) -> Result<Vec<PeekedMessage>, PortError> {
    if !(1..=MAX_BATCH_ENTRIES as u32).contains(&max) {
        return Err(PortError::permanent(format!(
            "peek: max must be 1..={MAX_BATCH_ENTRIES}, not {max}"
        )));
    }
    let want = max as usize;
    let mut peeked: Vec<PeekedMessage> = Vec::new();
    let mut handles: Vec<String> = Vec::new();
    let mut failure = None;
    // At most `want` receives: each one returns a message or ends the loop.
    for _ in 0..want {
        if peeked.len() >= want {
            break;
        }
        let received = match sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages((want - peeked.len()) as i32)
            .visibility_timeout(PEEK_VISIBILITY_SECS)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
        {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                failure = Some(port_error("ReceiveMessage", e));
                break;
            }
        };
        if received.is_empty() {
            break;
        }
        for m in &received {
            handles.extend(m.receipt_handle().map(str::to_owned));
            let id = m.message_id().unwrap_or_default();
            if !peeked.iter().any(|p| p.message_id == id) {
                peeked.push(peeked_message(m));
            }
        }
    }
    if let Err(e) = release(sqs, dlq_url, &handles).await {
        tracing::warn!(dlq_url, error = %e, "peeked messages stay hidden until their visibility timeout ends");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(peeked),
    }
}

fn peeked_message(m: &Message) -> PeekedMessage {
    let system = m.attributes();
    let system = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name));
    let sent_at = system(MessageSystemAttributeName::SentTimestamp)
        .and_then(|ms| ms.parse::<i128>().ok())
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
        .map(switchyard_core::time_util::rfc3339);
    let attributes = m
        .message_attributes()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
        .collect();
    PeekedMessage {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        body: m.body().unwrap_or_default().to_owned(),
        receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        sent_at,
        attributes,
    }
}

/// What [`move_messages`] did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(description = "What a redrive did.")
)]
pub struct MoveResult {
    /// Messages moved; with a move task, the DLQ's approximate number of
    /// visible messages when the task started (it runs on asynchronously).
    pub moved: u64,
    /// Messages left in the DLQ because they cannot be replayed (an AWS
    /// event DLQ's messages with no event in them); left out when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub kept: u64,
    /// How: `start_message_move_task` (SQS moves them, asynchronously) or
    /// `receive_send_delete` (moved ten at a time by this call).
    pub method: &'static str,
    /// The move task's handle (to list or cancel it), if one was started.
    pub task_handle: Option<String>,
}

/// Moves up to `max` messages (`None`: all there are now) from the DLQ back
/// to its source queue.
///
/// With `max` `None` and [`Replay::Copy`] it first asks SQS to do it (StartMessageMoveTask from
/// the DLQ's ARN to the source queue's); where that is not supported (an
/// emulator, a queue type or region without it, a move task already
/// running) — any refusal that is neither throttling nor a missing
/// permission — it moves them itself, ten at a time: receive (with every
/// message attribute, hidden for 30 s), send the copies to the source queue
/// (same body, message attributes, and group for a FIFO queue), then delete
/// from the DLQ exactly the messages whose copy was accepted. That loop ends
/// when a receive returns nothing, when `max` is reached, or when a message
/// this call moved comes back to the DLQ (the source failed it again).
///
/// On an error after some messages were moved, the error's message says how
/// many.
pub async fn move_messages(
    sqs: &aws_sdk_sqs::Client,
    pair: &DlqPair,
    max: Option<u64>,
) -> Result<MoveResult, PortError> {
    if max.is_none()
        && pair.replay == Replay::Copy
        && let Some(result) = move_task::start_move_task(sqs, pair).await?
    {
        return Ok(result);
    }
    let (moved, kept) = by_hand::receive_send_delete(sqs, pair, max).await?;
    Ok(MoveResult {
        moved,
        kept,
        method: METHOD_RECEIVE_SEND_DELETE,
        task_handle: None,
    })
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Makes received messages visible again at once (one try; the visibility
/// timeout brings them back anyway).
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, handles: &[String]) -> Result<(), PortError> {
    for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(h)
                    .visibility_timeout(0)
                    .build()
                    .map_err(|e| PortError::permanent(format!("ChangeMessageVisibilityBatch entry: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| port_error("ChangeMessageVisibilityBatch", e))?;
        if let Some(f) = out.failed().first() {
            return Err(PortError::transient(format!(
                "ChangeMessageVisibilityBatch: {} of {} failed: {} {}",
                out.failed().len(),
                chunk.len(),
                f.code(),
                f.message().unwrap_or("")
            )));
        }
    }
    Ok(())
}
