//! The fallback move, one batch at a time: receive from the DLQ, send the
//! copies to the source queue, delete from the DLQ the messages whose copy
//! was accepted, and make the others visible again.

use super::copies::{copy_of, entry_size, replayable};
use super::{DlqPair, MOVE_VISIBILITY_SECS, RECEIVE_WAIT_SECS, release};
use crate::error::port_error;
use crate::sqs_batch::{BatchReply, BatchRun, MAX_BATCH_ENTRIES, reply, split_by_size, with_retries};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::HashSet;
use switchyard_core::PortError;

/// The fallback move; returns how many messages it moved and how many it
/// left in the DLQ because they cannot be replayed.
pub(super) async fn receive_send_delete(
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
