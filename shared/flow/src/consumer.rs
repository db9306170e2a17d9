//! The consumer framework of the internal track.
//!
//! An internal queue carries the bus's events as EventBridge delivers them
//! to SQS: `{"id", "source", "detail-type", "detail": <envelope>, ...}`. A
//! [`Consumer`] holds the handlers registered per event type (exact, `user.*`
//! or `*`) and processes one message at a time:
//!
//! - a body that is not such an event is poison: it is failed at once (no
//!   backoff), so the queue's redrive DLQ takes it after `maxReceiveCount`;
//! - an event no handler is registered for is acknowledged and counted, never
//!   retried;
//! - each handler runs at most once per event (a marker keyed by tenant,
//!   event id and handler name, claimed before and completed after the
//!   handler): a duplicate SQS delivery, or a retry after another handler of
//!   the same event failed, skips the handlers already done;
//! - a handler's transient failure is retried with exponential backoff (the
//!   message's visibility timeout is set to the delay); a permanent one is
//!   failed at once and ends in the DLQ.
//!
//! Handlers are typed: [`typed`] parses the envelope's `data` into the
//! handler's own type, and a payload that does not fit is a permanent error.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use switchyard_core::envelope::Envelope;
use switchyard_core::error::PortError;
use switchyard_core::event_type::{EventType, EventTypeFilter};
use switchyard_core::ids::{EventId, TenantId};
use switchyard_core::retry::jittered;
use time::OffsetDateTime;
use tracing::Instrument as _;

/// A boxed, sendable future: what object-safe handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a handler did not finish: the same shape as a port's failure, and
/// like it, transient (try again later) or permanent (the event can never be
/// handled).
pub type HandlerError = PortError;

/// Something that handles an event.
pub trait Handler: Send + Sync {
    /// Handles `event`; an error says whether to try again later.
    fn handle<'a>(&'a self, event: &'a Envelope) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// An event whose `data` has been parsed into the handler's type.
#[derive(Debug, Clone)]
pub struct Event<T> {
    /// The event's id.
    pub id: EventId,
    /// The tenant the event belongs to.
    pub tenant_id: TenantId,
    /// The event's type.
    pub event_type: EventType,
    /// When the event happened, as its producer said.
    pub timestamp: OffsetDateTime,
    /// The event's priority, if its producer gave one.
    pub priority: Option<u8>,
    /// The event's `data`, parsed.
    pub data: T,
}

struct Typed<T, F> {
    f: F,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T, F, Fut> Handler for Typed<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Event<T>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle<'a>(&'a self, e: &'a Envelope) -> BoxFuture<'a, Result<(), HandlerError>> {
        let data = match T::deserialize(serde_json::Value::Object(e.data.clone())) {
            Ok(d) => d,
            Err(err) => {
                let msg = format!("{} data does not fit its handler: {err}", e.event_type);
                return Box::pin(async move { Err(HandlerError::permanent(msg)) });
            }
        };
        Box::pin((self.f)(Event {
            id: e.id.clone(),
            tenant_id: e.tenant_id.clone(),
            event_type: e.event_type.clone(),
            timestamp: e.timestamp,
            priority: e.routing.priority,
            data,
        }))
    }
}

/// A handler over the event's data parsed as `T`.
pub fn typed<T, F, Fut>(f: F) -> impl Handler
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Event<T>) -> Fut + Send + Sync,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Typed {
        f,
        _data: std::marker::PhantomData,
    }
}

/// Names one handler's processing of one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkerKey {
    /// The event's tenant.
    pub tenant: TenantId,
    /// The event.
    pub event: EventId,
    /// The handler's registered name.
    pub handler: String,
}

/// What claiming a marker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This caller runs the handler.
    Acquired,
    /// The handler already finished this event.
    Done,
    /// Someone else is running it, or crashed while running it; the claim
    /// lapses at `until`.
    Busy {
        /// When the other claim lapses.
        until: OffsetDateTime,
    },
}

/// The processed-markers store (idempotency of handlers).
pub trait Markers: Sync {
    /// Claims the marker until `lease_until` unless it is done, or claimed by
    /// someone whose lease has not lapsed at `now`.
    fn claim(
        &self,
        key: &MarkerKey,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send;
    /// Marks the handler done for this event; the marker is kept until
    /// `expires_at` (longer than any duplicate can arrive).
    fn complete(
        &self,
        key: &MarkerKey,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Gives up a claim after a failure, so that the retry need not wait for
    /// the lease.
    fn release(&self, key: &MarkerKey) -> impl Future<Output = Result<(), PortError>> + Send;
}

impl<M: Markers + Send + Sync> Markers for std::sync::Arc<M> {
    fn claim(
        &self,
        key: &MarkerKey,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> impl Future<Output = Result<Claim, PortError>> + Send {
        (**self).claim(key, now, lease_until)
    }
    fn complete(
        &self,
        key: &MarkerKey,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).complete(key, expires_at)
    }
    fn release(&self, key: &MarkerKey) -> impl Future<Output = Result<(), PortError>> + Send {
        (**self).release(key)
    }
}

/// How the consumer retries and remembers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConsumerConfig {
    /// The first retry's delay; each further receive doubles it.
    pub retry_base: Duration,
    /// The longest delay between tries (at most SQS's 12 h).
    pub retry_max: Duration,
    /// How long a claim holds off duplicates; longer than a handler runs.
    pub lease: Duration,
    /// How long a done marker is kept: longer than SQS keeps a message
    /// (14 days at most), so any duplicate finds it.
    pub marker_ttl: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(120),
            marker_ttl: Duration::from_secs(15 * 24 * 3600),
        }
    }
}

impl ConsumerConfig {
    /// The delay before the next try of a message received `receive_count`
    /// times (1 on the first): base × 2^(n−1), capped, ±20 % jitter.
    pub fn backoff(&self, receive_count: u32, unit_random: f64) -> Duration {
        let doublings = receive_count.saturating_sub(1).min(30);
        let delay = self.retry_base.saturating_mul(1u32 << doublings).min(self.retry_max);
        jittered(delay, unit_random).min(self.retry_max)
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every handler of the event ran now or had run before.
    Handled {
        /// Handlers that ran now.
        ran: usize,
        /// Handlers skipped because they had finished this event before.
        skipped: usize,
    },
    /// No handler is registered for the type: acknowledged, counted.
    Unknown {
        /// The type no handler is registered for.
        event_type: String,
    },
    /// Try again after `after` (the message's new visibility timeout).
    Retry {
        /// How long the message stays hidden before it comes back.
        after: Duration,
        /// Why it is tried again.
        reason: String,
    },
    /// It can never be handled: fail it now, the redrive DLQ takes it.
    Poison {
        /// Why it can never be handled.
        reason: String,
    },
}

impl Outcome {
    /// Whether the message is done with (deleted from the queue).
    pub fn acknowledged(&self) -> bool {
        matches!(self, Self::Handled { .. } | Self::Unknown { .. })
    }
}

/// The EventBridge event as an SQS target receives it.
#[derive(Deserialize)]
struct BusMessage {
    detail: Envelope,
}

/// Parses an internal queue's message body into its envelope.
pub fn parse_message(body: &str) -> Result<Envelope, String> {
    serde_json::from_str::<BusMessage>(body)
        .map(|m| m.detail)
        .map_err(|e| format!("not a Switchyard bus event: {e}"))
}

struct Registered {
    filter: EventTypeFilter,
    name: String,
    handler: Box<dyn Handler>,
}

/// Handlers by event type, with the processed markers.
pub struct Consumer<M> {
    markers: M,
    config: ConsumerConfig,
    handlers: Vec<Registered>,
}

/// A registration the consumer refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The filter (first) is not a valid event type filter, for the reason
    /// given second.
    #[error("`{0}` is not an event type filter: {1}")]
    Filter(String, String),
    /// Another handler is registered under this name.
    #[error("handler name `{0}` is used twice; names key the processed markers")]
    DuplicateName(String),
    /// The name is empty, too long, or has a character outside a-z, 0-9, `_`, `-`, `.`.
    #[error("handler name `{0}` must be 1 to 64 characters of a-z, 0-9, `_`, `-`, `.`")]
    BadName(String),
}

impl<M: Markers> Consumer<M> {
    /// A consumer with no handlers yet, keeping its markers in `markers`.
    pub fn new(markers: M, config: ConsumerConfig) -> Self {
        Self {
            markers,
            config,
            handlers: Vec::new(),
        }
    }

    /// Registers `handler` under `name` (stable: it keys the markers) for the
    /// types `filter` matches. An event's handlers run in registration order.
    pub fn on(mut self, filter: &str, name: &str, handler: impl Handler + 'static) -> Result<Self, RegisterError> {
        let filter = EventTypeFilter::parse(filter).map_err(|e| RegisterError::Filter(filter.into(), e.to_string()))?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
        if !valid {
            return Err(RegisterError::BadName(name.into()));
        }
        if self.handlers.iter().any(|h| h.name == name) {
            return Err(RegisterError::DuplicateName(name.into()));
        }
        self.handlers.push(Registered {
            filter,
            name: name.into(),
            handler: Box::new(handler),
        });
        Ok(self)
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Processes one message received `receive_count` times.
    pub async fn process(&self, body: &str, receive_count: u32, now: OffsetDateTime, unit_random: f64) -> Outcome {
        let envelope = match parse_message(body) {
            Ok(e) => e,
            Err(reason) => return Outcome::Poison { reason },
        };
        // Every line logged for this event carries its trace id.
        let span = switchyard_core::trace::span(envelope.metadata.traceparent.as_deref());
        self.dispatch(envelope, receive_count, now, unit_random)
            .instrument(span)
            .await
    }

    /// [`Self::process`] for a parsed event.
    async fn dispatch(&self, envelope: Envelope, receive_count: u32, now: OffsetDateTime, unit_random: f64) -> Outcome {
        let mine: Vec<&Registered> = self
            .handlers
            .iter()
            .filter(|h| h.filter.matches(&envelope.event_type))
            .collect();
        if mine.is_empty() {
            return Outcome::Unknown {
                event_type: envelope.event_type.to_string(),
            };
        }
        let (mut ran, mut skipped) = (0, 0);
        for h in mine {
            let key = MarkerKey {
                tenant: envelope.tenant_id.clone(),
                event: envelope.id.clone(),
                handler: h.name.clone(),
            };
            let retry = |reason: String| Outcome::Retry {
                after: self.config.backoff(receive_count, unit_random),
                reason,
            };
            match self.markers.claim(&key, now, now + self.config.lease).await {
                Ok(Claim::Done) => {
                    skipped += 1;
                    continue;
                }
                Ok(Claim::Busy { until }) => {
                    // Come back when the other claim lapses (or has finished).
                    let wait = (until - now).try_into().unwrap_or(Duration::ZERO);
                    return Outcome::Retry {
                        after: wait.max(Duration::from_secs(1)),
                        reason: format!("handler {} is busy with event {}", h.name, envelope.id),
                    };
                }
                Ok(Claim::Acquired) => {}
                Err(e) => return retry(format!("claiming the marker of {}: {e}", h.name)),
            }
            match h.handler.handle(&envelope).await {
                Ok(()) => {
                    let keep = now + self.config.marker_ttl;
                    if let Err(e) = self.markers.complete(&key, keep).await {
                        // The handler's work is done but not remembered: the
                        // retry runs it again (at least once, never lost).
                        return retry(format!("recording {} done: {e}", h.name));
                    }
                    ran += 1;
                }
                Err(e) => {
                    if let Err(re) = self.markers.release(&key).await {
                        tracing::warn!(handler = %h.name, event_id = %envelope.id, error = %re, "releasing a claim failed; the retry waits for its lease");
                    }
                    let reason = format!("handler {} on {} {}: {e}", h.name, envelope.event_type, envelope.id);
                    return if e.retryable {
                        retry(reason)
                    } else {
                        Outcome::Poison { reason }
                    };
                }
            }
        }
        Outcome::Handled { ran, skipped }
    }
}

/// Counts of a batch's outcomes, for the batch's log line and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Messages whose every handler ran now or before.
    pub handled: usize,
    /// Handler runs skipped because their marker was done (duplicates).
    pub duplicates: usize,
    /// Messages of a type no handler is registered for.
    pub unknown: usize,
    /// Messages to be tried again later.
    pub retried: usize,
    /// Messages that can never be handled (left for the DLQ).
    pub poison: usize,
}

impl BatchCounts {
    /// Counts one message's outcome.
    pub fn add(&mut self, o: &Outcome) {
        match o {
            Outcome::Handled { skipped, .. } => {
                self.handled += 1;
                self.duplicates += skipped;
            }
            Outcome::Unknown { .. } => self.unknown += 1,
            Outcome::Retry { .. } => self.retried += 1,
            Outcome::Poison { .. } => self.poison += 1,
        }
    }
}

#[cfg(test)]
#[path = "consumer/tests.rs"]
mod tests;
