//! The copy of a DLQ message for its source queue: as it is, or (the AWS
//! events DLQ) the event alone, marked for ingest's EventBridge door.

use super::Replay;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, SendMessageBatchRequestEntry};
use switchyard_core::PortError;

/// Whether DLQ message `m` can go back as `replay` says.
pub(super) fn replayable(replay: Replay, m: &Message) -> bool {
    match replay {
        Replay::Copy => true,
        Replay::EventbridgeToIngest => m
            .body()
            .and_then(switchyard_core::doors::dead_lettered_service_event)
            .is_some(),
    }
}

/// The copy of DLQ message `m` for the source queue, as batch entry `i`.
pub(super) fn copy_of(
    i: usize,
    m: &Message,
    fifo: bool,
    replay: Replay,
) -> Result<SendMessageBatchRequestEntry, PortError> {
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
pub(super) fn entry_size(e: &SendMessageBatchRequestEntry) -> usize {
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
