//! The application's event bus over EventBridge.

use crate::error::{is_transient_code, port_error};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;
use switchyard_core::ports::EventBus;
use switchyard_core::{Envelope, PortError};

/// EventBridge takes at most ten entries per PutEvents call.
pub const MAX_ENTRIES: usize = 10;
const PUT_TRIES: u32 = 4;

/// An EventBridge bus. Every envelope is published as
/// `switchyard_core::routing::bus_entry` says: source `switchyard.<domain>`,
/// detail-type the event type, detail the envelope with its priority; the
/// template's rules match on those.
#[derive(Clone, Debug)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl EventBridgeBus {
    /// The bus named `bus_name`.
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    fn entry(&self, e: &Envelope) -> Result<PutEventsRequestEntry, PortError> {
        let entry = switchyard_core::routing::bus_entry(e)?;
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(entry.source)
            .detail_type(entry.detail_type)
            .detail(entry.detail)
            .time(aws_sdk_eventbridge::primitives::DateTime::from_secs(
                e.timestamp.unix_timestamp(),
            ))
            .build())
    }

    /// Puts up to ten entries, resending the ones EventBridge failed for a
    /// transient reason; any entry that still fails fails the call.
    async fn put_chunk(&self, mut entries: Vec<PutEventsRequestEntry>) -> Result<(), PortError> {
        let mut last = String::new();
        for n in 0..PUT_TRIES {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(50 << n)).await;
            }
            let out = match self.client.put_events().set_entries(Some(entries.clone())).send().await {
                Ok(out) => out,
                Err(e) => {
                    let e = port_error("PutEvents", e);
                    if !e.retryable {
                        return Err(e);
                    }
                    last = e.message;
                    continue;
                }
            };
            if out.failed_entry_count() == 0 {
                return Ok(());
            }
            // Results are positional: keep the entries whose result has an error.
            let mut retry = Vec::new();
            for (entry, result) in entries.into_iter().zip(out.entries()) {
                if let Some(code) = result.error_code() {
                    if !is_transient_code(code) && code != "InternalFailure" {
                        return Err(PortError::permanent(format!(
                            "PutEvents refused an entry: {code} {}",
                            result.error_message().unwrap_or("")
                        )));
                    }
                    last = format!("{code} {}", result.error_message().unwrap_or(""));
                    retry.push(entry);
                }
            }
            entries = retry;
            if entries.is_empty() {
                return Ok(());
            }
        }
        Err(PortError::transient(format!(
            "PutEvents gave up after {PUT_TRIES} tries: {last}"
        )))
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[Envelope]) -> Result<(), PortError> {
        let entries = events.iter().map(|e| self.entry(e)).collect::<Result<Vec<_>, _>>()?;
        for chunk in entries.chunks(MAX_ENTRIES) {
            self.put_chunk(chunk.to_vec()).await?;
        }
        Ok(())
    }
}
