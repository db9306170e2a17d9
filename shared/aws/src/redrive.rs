//! Dead-letter queues for the management API: how deep each queue is, a look
//! at what a DLQ holds without consuming it, and moving its messages back to
//! the queue they came from.
//!
//! A move never loses a message: with SQS's own move task SQS guarantees it,
//! and the fallback deletes a message from the DLQ only after the source
//! queue accepted its copy, so a crash in between leaves a duplicate (which
//! the consumers' idempotency absorbs), never a gap.

use crate::error::{is_transient_code, port_error};
use crate::sqs_batch::{BatchReply, BatchRun, MAX_BATCH_ENTRIES, reply, split_by_size, with_retries};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
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
    pub name: String,
    pub dlq_url: String,
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
pub struct QueueDepth {
    pub name: String,
    pub visible: u64,
    pub in_flight: u64,
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
pub struct PeekedMessage {
    pub message_id: String,
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
pub struct MoveResult {
    /// Messages moved; with a move task, the DLQ's approximate number of
    /// visible messages when the task started (it runs on asynchronously).
    pub moved: u64,
    /// Messages left in the DLQ because they cannot be replayed
    /// ([`Replay::EventbridgeToIngest`]: no event in them).
    #[serde(skip_serializing_if = "is_zero")]
    pub kept: u64,
    /// [`METHOD_MOVE_TASK`] or [`METHOD_RECEIVE_SEND_DELETE`].
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
        && let Some(result) = start_move_task(sqs, pair).await?
    {
        return Ok(result);
    }
    let (moved, kept) = receive_send_delete(sqs, pair, max).await?;
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

/// Starts SQS's move task; `None` if SQS does not support it here.
async fn start_move_task(sqs: &aws_sdk_sqs::Client, pair: &DlqPair) -> Result<Option<MoveResult>, PortError> {
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
fn refusal_means_unsupported(status: u16, code: Option<&str>) -> bool {
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

/// The fallback move; returns how many messages it moved and how many it
/// left in the DLQ because they cannot be replayed.
async fn receive_send_delete(
    sqs: &aws_sdk_sqs::Client,
    pair: &DlqPair,
    max: Option<u64>,
) -> Result<(u64, u64), PortError> {
    let mut moved = 0u64;
    // The ids the source queue gave this call's copies: the DLQ keeps a
    // message's id, so seeing one again means it went round. The ids of the
    // messages left in the DLQ join them.
    let mut copies: HashSet<String> = HashSet::new();
    let mut kept = 0u64;
    loop {
        let want = match max {
            Some(max) => max.saturating_sub(moved).min(MAX_BATCH_ENTRIES as u64),
            None => MAX_BATCH_ENTRIES as u64,
        };
        if want == 0 {
            return Ok((moved, kept));
        }
        let received = sqs
            .receive_message()
            .queue_url(&pair.dlq_url)
            .max_number_of_messages(want as i32)
            .visibility_timeout(MOVE_VISIBILITY_SECS)
            .wait_time_seconds(RECEIVE_WAIT_SECS)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| after(moved, port_error("ReceiveMessage", e)))?
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return Ok((moved, kept));
        }
        let (again, fresh): (Vec<Message>, Vec<Message>) = received
            .into_iter()
            .partition(|m| m.message_id().is_some_and(|id| copies.contains(id)));
        // A message with nothing to replay stays in the DLQ, hidden for the
        // rest of this move (its visibility timeout).
        let (fresh, unreplayable): (Vec<Message>, Vec<Message>) =
            fresh.into_iter().partition(|m| replayable(pair.replay, m));
        for m in unreplayable {
            tracing::warn!(dlq = %pair.name, message_id = m.message_id().unwrap_or_default(),
                "a message holds nothing to replay; it stays in the DLQ");
            kept += 1;
            copies.extend(m.message_id().map(str::to_owned));
        }
        let batch = move_batch(sqs, pair, &fresh).await;
        moved += batch.moved;
        copies.extend(batch.copies);
        if !again.is_empty() {
            let handles: Vec<String> = again
                .iter()
                .filter_map(|m| m.receipt_handle().map(str::to_owned))
                .collect();
            if let Err(e) = release(sqs, &pair.dlq_url, &handles).await {
                tracing::warn!(dlq = %pair.name, error = %e, "messages that came back stay hidden for their visibility timeout");
            }
        }
        if let Some(e) = batch.error {
            return Err(after(moved, e));
        }
        if !again.is_empty() {
            return Ok((moved, kept));
        }
    }
}

fn after(moved: u64, e: PortError) -> PortError {
    PortError {
        message: format!("{} (after moving {moved} messages)", e.message),
        ..e
    }
}

struct BatchMove {
    moved: u64,
    copies: Vec<String>,
    error: Option<PortError>,
}

/// Sends copies of `messages` to the source queue, deletes from the DLQ the
/// ones that were sent, and makes the others visible again.
async fn move_batch(sqs: &aws_sdk_sqs::Client, pair: &DlqPair, messages: &[Message]) -> BatchMove {
    let fifo = pair.source_url.ends_with(".fifo");
    let entries: Result<Vec<SendMessageBatchRequestEntry>, PortError> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| copy_of(i, m, fifo, pair.replay))
        .collect();
    let mut sent: Vec<(usize, String)> = Vec::new();
    let mut error = None;
    match entries {
        Err(e) => error = Some(e),
        Ok(entries) => {
            let sizes: Vec<usize> = entries.iter().map(entry_size).collect();
            for range in split_by_size(&sizes) {
                let call = BatchCall::Send {
                    url: &pair.source_url,
                    entries: &entries,
                };
                let run = with_retries(
                    call.op(),
                    range.collect(),
                    |ids| async move { call.once(sqs, &ids).await },
                )
                .await;
                sent.extend(run.done);
                if let Some(e) = run.error {
                    error = Some(e);
                    break;
                }
            }
        }
    }
    let sent_positions: HashSet<usize> = sent.iter().map(|(i, _)| *i).collect();
    let mut moved = 0u64;
    let sent_handles: Vec<&str> = sent
        .iter()
        .filter_map(|(i, _)| messages.get(*i).and_then(|m| m.receipt_handle()))
        .collect();
    if !sent_handles.is_empty() {
        let deleted = delete(sqs, &pair.dlq_url, &sent_handles).await;
        moved = deleted.done.len() as u64;
        if let Some(e) = deleted.error {
            let left = sent_handles.len() - deleted.done.len();
            error = Some(PortError {
                message: format!(
                    "{} ({left} messages were copied to the source queue but are still in the DLQ: they will be moved again)",
                    e.message
                ),
                ..e
            });
        }
    }
    let unsent: Vec<String> = messages
        .iter()
        .enumerate()
        .filter(|(i, _)| !sent_positions.contains(i))
        .filter_map(|(_, m)| m.receipt_handle().map(str::to_owned))
        .collect();
    if let Err(e) = release(sqs, &pair.dlq_url, &unsent).await {
        tracing::warn!(dlq = %pair.name, error = %e, "unsent messages stay hidden for their visibility timeout");
    }
    BatchMove {
        moved,
        copies: sent.into_iter().map(|(_, copy)| copy).collect(),
        error,
    }
}

/// Whether DLQ message `m` can go back as `replay` says.
fn replayable(replay: Replay, m: &Message) -> bool {
    match replay {
        Replay::Copy => true,
        Replay::EventbridgeToIngest => m
            .body()
            .and_then(switchyard_core::doors::dead_lettered_service_event)
            .is_some(),
    }
}

/// The copy of DLQ message `m` for the source queue, as batch entry `i`.
fn copy_of(i: usize, m: &Message, fifo: bool, replay: Replay) -> Result<SendMessageBatchRequestEntry, PortError> {
    let entry = SendMessageBatchRequestEntry::builder().id(i.to_string());
    let mut entry = match replay {
        Replay::Copy => entry
            .message_body(m.body().unwrap_or_default())
            .set_message_attributes(m.message_attributes().cloned()),
        Replay::EventbridgeToIngest => {
            let event = m
                .body()
                .and_then(switchyard_core::doors::dead_lettered_service_event)
                .ok_or_else(|| PortError::permanent("a message of the AWS events DLQ holds no event"))?;
            let door = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(switchyard_core::doors::EVENTBRIDGE_DOOR)
                .build()
                .map_err(|e| PortError::permanent(format!("message attribute: {e}")))?;
            entry
                .message_body(event)
                .message_attributes(switchyard_core::doors::DOOR_ATTRIBUTE, door)
        }
    };
    if fifo {
        let group = m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
            .ok_or_else(|| PortError::permanent("a message for a FIFO queue has no MessageGroupId"))?;
        // The DLQ copy's own id: a resend of the same copy after a crash is
        // deduplicated, and no earlier message of the source can match it.
        entry = entry
            .message_group_id(group)
            .message_deduplication_id(m.message_id().unwrap_or_default());
    }
    entry
        .build()
        .map_err(|e| PortError::permanent(format!("SendMessageBatch entry: {e}")))
}

/// A copy's size as SQS counts it against the batch limit.
fn entry_size(e: &SendMessageBatchRequestEntry) -> usize {
    let attributes: usize = e
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(k, v)| k.len() + attribute_size(v))
        .sum();
    e.message_body().len() + attributes
}

fn attribute_size(v: &MessageAttributeValue) -> usize {
    v.data_type().len() + v.string_value().map_or(0, str::len) + v.binary_value().map_or(0, |b| b.as_ref().len())
}

/// Deletes these messages from `url`; the ids in the answer are positions in `handles`.
async fn delete(sqs: &aws_sdk_sqs::Client, url: &str, handles: &[&str]) -> BatchRun {
    let mut run = BatchRun {
        done: Vec::new(),
        error: None,
    };
    for start in (0..handles.len()).step_by(MAX_BATCH_ENTRIES) {
        let ids = (start..(start + MAX_BATCH_ENTRIES).min(handles.len())).collect();
        let call = BatchCall::Delete { url, handles };
        let part = with_retries(call.op(), ids, |ids| async move { call.once(sqs, &ids).await }).await;
        run.done.extend(part.done);
        if part.error.is_some() {
            run.error = part.error;
            break;
        }
    }
    run
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

/// A batch call, repeated for the entries that failed.
#[derive(Clone, Copy)]
enum BatchCall<'a> {
    /// Copies for the queue at `url`; entry ids are positions in `entries`.
    Send {
        url: &'a str,
        entries: &'a [SendMessageBatchRequestEntry],
    },
    /// Messages to delete from the queue at `url`; entry ids are positions in `handles`.
    Delete { url: &'a str, handles: &'a [&'a str] },
}

impl BatchCall<'_> {
    fn op(&self) -> &'static str {
        match self {
            BatchCall::Send { .. } => "SendMessageBatch",
            BatchCall::Delete { .. } => "DeleteMessageBatch",
        }
    }

    /// One call for the entries `pending`.
    async fn once(&self, sqs: &aws_sdk_sqs::Client, pending: &[usize]) -> Result<BatchReply, PortError> {
        match *self {
            BatchCall::Send { url, entries } => {
                let out = sqs
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(pending.iter().filter_map(|&i| entries.get(i).cloned()).collect()))
                    .send()
                    .await
                    .map_err(|e| port_error(self.op(), e))?;
                let ok = out.successful().iter().map(|s| (s.id(), s.message_id().to_owned()));
                Ok(reply(ok, out.failed()))
            }
            BatchCall::Delete { url, handles } => {
                let entries = pending
                    .iter()
                    .filter_map(|&i| Some((i, *handles.get(i)?)))
                    .map(|(i, handle)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(handle)
                            .build()
                            .map_err(|e| PortError::permanent(format!("DeleteMessageBatch entry: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = sqs
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| port_error(self.op(), e))?;
                let ok = out.successful().iter().map(|s| (s.id(), String::new()));
                Ok(reply(ok, out.failed()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, dlq: &str, source: &str) -> DlqPair {
        DlqPair {
            name: name.into(),
            dlq_url: dlq.into(),
            source_url: source.into(),
            replay: Replay::Copy,
        }
    }

    #[test]
    fn parse_dlqs_reads_the_setting() {
        let json = r#"[
            {"name": "deliveries", "dlq_url": "https://sqs/q-dlq", "source_url": "https://sqs/q"},
            {"name": "internal-user", "dlq_url": "https://sqs/u-dlq", "source_url": "https://sqs/u"}
        ]"#;
        assert_eq!(
            parse_dlqs(json).unwrap(),
            vec![
                pair("deliveries", "https://sqs/q-dlq", "https://sqs/q"),
                pair("internal-user", "https://sqs/u-dlq", "https://sqs/u"),
            ]
        );
        assert_eq!(parse_dlqs("[]").unwrap(), vec![]);
    }

    #[test]
    fn parse_dlqs_refuses_bad_settings() {
        for (json, why) in [
            ("", "empty"),
            ("{}", "not an array"),
            (r#"[{"name": "a", "dlq_url": "d"}]"#, "missing source_url"),
            (r#"[{"name": "", "dlq_url": "d", "source_url": "s"}]"#, "empty name"),
            (r#"[{"name": " ", "dlq_url": "d", "source_url": "s"}]"#, "blank name"),
            (r#"[{"name": "a", "dlq_url": "", "source_url": "s"}]"#, "empty DLQ URL"),
            (
                r#"[{"name": "a", "dlq_url": "d", "source_url": "d"}]"#,
                "DLQ is its own source",
            ),
            (
                r#"[{"name": "a", "dlq_url": "d", "source_url": "s"}, {"name": "a", "dlq_url": "e", "source_url": "t"}]"#,
                "duplicate name",
            ),
            (
                r#"[{"name": 1, "dlq_url": "d", "source_url": "s"}]"#,
                "name not a string",
            ),
        ] {
            assert!(parse_dlqs(json).is_err(), "{why}: {json}");
        }
        let err =
            parse_dlqs(r#"[{"name":"x","dlq_url":"d","source_url":"s"},{"name":"x","dlq_url":"e","source_url":"t"}]"#)
                .unwrap_err();
        assert!(err.contains("\"x\""), "{err}");
    }

    #[test]
    fn only_refusals_that_mean_unsupported_fall_back() {
        assert!(refusal_means_unsupported(400, Some("UnsupportedOperation")));
        assert!(refusal_means_unsupported(400, Some("InvalidAction")));
        assert!(refusal_means_unsupported(400, Some("InvalidParameterValue")));
        assert!(refusal_means_unsupported(404, None));
        assert!(
            refusal_means_unsupported(500, None),
            "moto's HTML page for an action it lacks"
        );
        assert!(!refusal_means_unsupported(500, Some("InternalError")));
        assert!(!refusal_means_unsupported(503, Some("ServiceUnavailable")));
        assert!(!refusal_means_unsupported(400, Some("ThrottlingException")));
        assert!(!refusal_means_unsupported(
            400,
            Some("AWS.SimpleQueueService.RequestThrottled")
        ));
        assert!(!refusal_means_unsupported(429, None));
        assert!(!refusal_means_unsupported(403, Some("AccessDenied")));
        assert!(!refusal_means_unsupported(400, Some("AccessDeniedException")));
        assert!(!refusal_means_unsupported(403, Some("InvalidClientTokenId")));
    }

    /// The management API's handlers own their inputs and must be `Send`
    /// (checked when this compiles; never run).
    #[allow(dead_code)]
    fn futures_are_send(sqs: aws_sdk_sqs::Client, pair: DlqPair) {
        fn send<T: Send + 'static>(_: T) {}
        send(async move {
            let _ = queue_depth(&sqs, &pair.name, &pair.dlq_url).await;
            let _ = peek(&sqs, &pair.dlq_url, 5).await;
            let _ = move_messages(&sqs, &pair, None).await;
        });
    }

    #[test]
    fn entry_size_counts_body_and_attributes() {
        let m = Message::builder()
            .body("12345")
            .message_attributes(
                "k",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("vv")
                    .build()
                    .unwrap(),
            )
            .build();
        assert_eq!(entry_size(&copy_of(0, &m, false, Replay::Copy).unwrap()), 5 + 1 + 6 + 2);
    }

    #[test]
    fn an_aws_events_copy_is_the_event_marked_for_the_eventbridge_door() {
        let event = r#"{"id":"e-1","source":"aws.s3","detail-type":"Object Created","detail":{}}"#;
        let record = format!(r#"{{"requestContext":{{"condition":"RetriesExhausted"}},"requestPayload":{event}}}"#);
        let error_code = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("SDK_CLIENT_ERROR")
            .build()
            .unwrap();
        for body in [event.to_string(), record] {
            let m = Message::builder()
                .body(&body)
                .message_attributes("ERROR_CODE", error_code.clone())
                .build();
            assert!(replayable(Replay::EventbridgeToIngest, &m));
            let copy = copy_of(0, &m, false, Replay::EventbridgeToIngest).unwrap();
            let got: serde_json::Value = serde_json::from_str(copy.message_body()).unwrap();
            assert_eq!(got, serde_json::from_str::<serde_json::Value>(event).unwrap());
            let attributes = copy.message_attributes().unwrap();
            assert_eq!(attributes.len(), 1, "{attributes:?}");
            assert_eq!(
                attributes[switchyard_core::doors::DOOR_ATTRIBUTE].string_value(),
                Some(switchyard_core::doors::EVENTBRIDGE_DOOR)
            );
        }
        let junk = Message::builder().body("{not json").build();
        assert!(!replayable(Replay::EventbridgeToIngest, &junk));
        assert!(replayable(Replay::Copy, &junk));
    }
}
