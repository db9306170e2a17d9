//! Accepting an event: parse, dedupe, hand over, store once. This is what
//! the doors share; what each door does first is in [`crate::doors`].
//!
//! Every door (HTTP API, SQS ingest queue, EventBridge) ends in [`accept`]:
//!
//! 1. an `Idempotency-Key`, if the producer sent one, is claimed for the
//!    event's id for the dedupe window; a live claim names the original id;
//! 2. the tenant's event with that id is looked up (a strongly consistent
//!    read): a live record makes this a duplicate, and nothing more is done;
//! 3. the event is handed over as its routing asks: published to the
//!    application's bus (`internal`, when a bus is configured), then its
//!    fan-out task queued (`external`);
//! 4. the event record is stored with a conditional write keyed by the event
//!    id: the record of an event says it was handed over.
//!
//! A stored record is the proof of a hand-over, so the record is written
//! once and never updated (a read costs a fifth of a write). If the
//! hand-over or the write fails, the request fails and nothing is stored:
//! its repeat hands the event over again (consumers and delivery tolerate
//! that: same event id, same delivery ids), so nothing accepted is lost, and
//! a repeat of an event already accepted is not handed over twice. Two
//! copies racing through steps 2–4 at once may both hand over; one stores.

use crate::envelope::{Envelope, EnvelopeError, IngestLimits, Routing, Source, parse_event};
use crate::error::PortError;
use crate::ids::{EventId, TenantId};
use crate::model::{ClaimOutcome, EventRecord, InsertOutcome, KeyClaim};
use crate::ports::{EventBus, EventStore, TaskQueue};
use crate::task::FanoutTask;
use crate::trace::TraceParent;
use sha2::{Digest, Sha256};
use std::fmt;
use time::{Duration, OffsetDateTime};

/// How ingest behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The size limits an incoming event must keep to.
    pub limits: IngestLimits,
    /// How long the record of an `audit` event is kept (at least the dedupe
    /// window): the audit retention, apart from the event retention that
    /// expires deliveries and attempts.
    pub retention: Duration,
    /// How long an `Idempotency-Key` or an event id deduplicates; also how
    /// long the record of an event with `routing.audit = false` and
    /// `routing.external = false` is kept.
    pub dedupe_window: Duration,
    /// How long the delivery records of an event can last: the event
    /// retention (which expires deliveries after their last change) plus
    /// the longest round of attempts ([`crate::retry::LONGEST_ROUND`]). The
    /// record of an event with webhooks is kept at least this long, so its
    /// id stays taken while its deliveries exist: the same id sent again
    /// later is a duplicate, not a new event whose deliveries would collide
    /// with the old ones and never be sent.
    pub delivery_horizon: Duration,
    /// The source of events that name none.
    pub default_source: Source,
}

impl IngestConfig {
    /// How long delivery records and attempts are kept unless the operator says
    /// otherwise, in days: the event retention.
    pub const DEFAULT_RETENTION_DAYS: i64 = 30;
    /// How long audit records are kept unless the operator says otherwise.
    pub const DEFAULT_AUDIT_RETENTION_DAYS: i64 = 365;
    /// How long an event id or `Idempotency-Key` deduplicates unless the
    /// operator says otherwise, in hours.
    pub const DEFAULT_DEDUPE_WINDOW_HOURS: i64 = 24;

    /// [`Self::delivery_horizon`] for deliveries kept `retention_days`.
    pub fn delivery_horizon(retention_days: u16) -> Duration {
        Duration::days(i64::from(retention_days))
            + Duration::try_from(crate::retry::LONGEST_ROUND).unwrap_or(Duration::MAX)
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            limits: IngestLimits::default(),
            retention: Duration::days(Self::DEFAULT_AUDIT_RETENTION_DAYS),
            dedupe_window: Duration::hours(Self::DEFAULT_DEDUPE_WINDOW_HOURS),
            delivery_horizon: Self::delivery_horizon(Self::DEFAULT_RETENTION_DAYS as u16),
            default_source: Source::api(),
        }
    }
}

/// A producer's `Idempotency-Key`: 1–255 visible ASCII characters, optionally
/// in double quotes (the IETF draft sends it as a structured-field string).
/// Only its SHA-256 is stored; its `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the Idempotency-Key must be 1 to {max} visible ASCII characters", max = IdempotencyKey::MAX_LEN)]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    /// The longest key accepted, in characters (quotes not counted).
    pub const MAX_LEN: usize = 255;

    /// Trims the header value, drops one pair of surrounding double quotes and
    /// checks what is left.
    pub fn parse(raw: &str) -> Result<Self, InvalidIdempotencyKey> {
        let raw = raw.trim();
        let key = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
        let visible = |b: u8| (0x21..=0x7e).contains(&b);
        if key.is_empty() || key.len() > Self::MAX_LEN || !key.bytes().all(visible) {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key.to_string()))
    }

    /// The key's SHA-256, hex: what is stored.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey(<{} chars>)", self.0.len())
    }
}

/// `t` rounded up to a whole second, so that a window never ends early.
pub fn ceil_seconds(t: OffsetDateTime) -> OffsetDateTime {
    let whole = crate::time_util::whole_seconds(t);
    if whole == t { whole } else { whole + Duration::SECOND }
}

/// Whether something stored to expire at `expires_at` still counts at `now`:
/// until the whole second it names. DynamoDB conditions say the same thing as
/// `attribute_not_exists(pk) OR expires_at <= :now_secs` for "absent".
pub fn is_live(expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
    expires_at.unix_timestamp() > now.unix_timestamp()
}

/// When the record of an event received at `now` expires: at the end of
/// the dedupe window, or later: after the audit retention if it is an audit
/// record (`routing.audit`), and not before its deliveries can have expired
/// if it has webhooks (`routing.external`, see
/// [`IngestConfig::delivery_horizon`]).
pub fn record_expiry(routing: &Routing, now: OffsetDateTime, config: &IngestConfig) -> OffsetDateTime {
    let mut keep = config.dedupe_window;
    if routing.audit {
        keep = keep.max(config.retention);
    }
    if routing.external {
        keep = keep.max(config.delivery_horizon);
    }
    ceil_seconds(now + keep)
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The event's id (the one stored first, for a duplicate).
    pub id: EventId,
    /// The tenant had already sent this event (same id or same
    /// `Idempotency-Key` within the window); nothing new was handed over
    /// unless the first try never finished.
    pub duplicate: bool,
    /// The trace id of the event's `traceparent` (the stored one, for a
    /// duplicate), for the door's log line; empty when it has none.
    pub trace_id: String,
}

/// Why an event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The event itself is refused: a 4xx, and retrying it will not help.
    #[error(transparent)]
    Invalid(#[from] EnvelopeError),
    /// The event store failed.
    #[error("storing the event failed: {0}")]
    Store(PortError),
    /// The fan-out queue failed.
    #[error("queueing the event failed: {0}")]
    Queue(PortError),
    /// The application's bus failed.
    #[error("publishing the event to the bus failed: {0}")]
    Publish(PortError),
}

impl IngestError {
    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Invalid(_) => false,
            Self::Store(e) | Self::Queue(e) | Self::Publish(e) => e.retryable,
        }
    }
}

/// Where accepted events go.
pub struct Ports<'a, S, Q, B> {
    /// Where accepted events are recorded and deduplicated.
    pub store: &'a S,
    /// The fan-out queue: one task per event with webhooks.
    pub fanout: &'a Q,
    /// The application's bus (the internal track), if one is configured.
    pub bus: Option<&'a B>,
}

impl<S, Q, B> Clone for Ports<'_, S, Q, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S, Q, B> Copy for Ports<'_, S, Q, B> {}

/// A bus for deployments without one; it is never published to.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBus;

impl EventBus for NoBus {
    async fn publish(&self, _: &[Envelope]) -> Result<(), PortError> {
        Err(PortError::permanent("no event bus is configured"))
    }
}

impl<'a, S, Q> Ports<'a, S, Q, NoBus> {
    /// Ports for a deployment without an application bus.
    pub fn without_bus(store: &'a S, fanout: &'a Q) -> Self {
        Self {
            store,
            fanout,
            bus: None,
        }
    }
}

/// Accepts one event body (the HTTP body or an SQS ingest message) for
/// `tenant`, deduplicated by `key` if given and by the event id. `trace` is
/// the request's W3C `traceparent`, if it carried one: a valid one is the
/// event's trace (over one in its `metadata`); an invalid one is ignored.
pub async fn ingest<S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus>(
    ports: Ports<'_, S, Q, B>,
    tenant: TenantId,
    body: &[u8],
    key: Option<&IdempotencyKey>,
    trace: Option<&str>,
    config: &IngestConfig,
    now: OffsetDateTime,
) -> Result<Ingested, IngestError> {
    let mut envelope = parse_event(body, tenant, &config.default_source, now, config.limits)?;
    if let Some(t) = trace.and_then(|t| TraceParent::parse(t).ok()) {
        envelope.metadata.traceparent = Some(t.to_string());
    }
    accept(ports, envelope, key, config, now).await
}

/// Accepts a parsed envelope: see the module documentation for the steps.
pub async fn accept<S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus>(
    ports: Ports<'_, S, Q, B>,
    envelope: Envelope,
    key: Option<&IdempotencyKey>,
    config: &IngestConfig,
    now: OffsetDateTime,
) -> Result<Ingested, IngestError> {
    match check(ports, envelope, key, config, now).await? {
        Checked::Done(done) => Ok(done),
        Checked::HandOver { record, seen } => {
            publish(ports, &record.envelope).await?;
            if record.envelope.routing.external {
                ports
                    .fanout
                    .send_all(&[FanoutTask::new(record.envelope.clone())])
                    .await
                    .map_err(IngestError::Queue)?;
            }
            confirm(ports, &record, seen).await
        }
    }
}

/// What [`check`] leaves to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// Nothing: a duplicate of an event already accepted, or an event with
    /// nowhere to go (stored already).
    Done(Ingested),
    /// Hand the record's envelope over ([`publish`], then its fan-out task
    /// if `routing.external`), then [`confirm`] (store) the record. `seen`:
    /// the request named an event claimed before (its `Idempotency-Key`).
    HandOver {
        /// The record to store once the event is handed over.
        record: Box<EventRecord>,
        /// The request's `Idempotency-Key` was claimed before, for this event.
        seen: bool,
    },
}

/// Steps 1 and 2 of [`accept`]: the idempotency key claimed, the event
/// looked up (and an event with nowhere to go stored). Callers that hand
/// over many events at once (the SQS door queues a whole batch's fan-out
/// tasks together) go on with [`publish`], the queue and [`confirm`]
/// themselves; [`accept`] does it for one.
pub async fn check<S: EventStore, Q, B: EventBus>(
    ports: Ports<'_, S, Q, B>,
    mut envelope: Envelope,
    key: Option<&IdempotencyKey>,
    config: &IngestConfig,
    now: OffsetDateTime,
) -> Result<Checked, IngestError> {
    let mut seen = false;
    if let Some(key) = key {
        let claim = KeyClaim {
            tenant: envelope.tenant_id.clone(),
            key_digest: key.digest(),
            event_id: envelope.id.clone(),
            now,
            expires_at: ceil_seconds(now + config.dedupe_window),
        };
        if let ClaimOutcome::Held(original) = ports.store.claim_key(&claim).await.map_err(IngestError::Store)? {
            // The key names an earlier event: this request is that event.
            envelope.id = original;
            seen = true;
        }
    }
    let found = ports
        .store
        .find_event(&envelope.tenant_id, &envelope.id, now)
        .await
        .map_err(IngestError::Store)?;
    if let Some(existing) = found {
        return Ok(Checked::Done(Ingested {
            trace_id: trace_id(&existing.envelope),
            id: existing.envelope.id,
            duplicate: true,
        }));
    }
    let mut envelope = envelope;
    let trace = TraceParent::settle(
        None,
        envelope.metadata.traceparent.as_deref(),
        envelope.metadata.trace_id.as_deref(),
    );
    envelope.metadata.traceparent = Some(trace.to_string());
    let record = EventRecord {
        expires_at: record_expiry(&envelope.routing, now, config),
        envelope,
        received_at: now,
    };
    if has_work(&record.envelope, ports) {
        return Ok(Checked::HandOver {
            record: Box::new(record),
            seen,
        });
    }
    confirm(ports, &record, seen).await.map(Checked::Done)
}

/// Publishes the event to the application's bus if it goes there
/// (`routing.internal` and a bus configured). The bus goes before the
/// fan-out queue: a repeat after a failed fan-out publishes again
/// (consumers dedupe on the event id) rather than sending the webhooks'
/// tasks twice.
pub async fn publish<S, Q, B: EventBus>(ports: Ports<'_, S, Q, B>, envelope: &Envelope) -> Result<(), IngestError> {
    if envelope.routing.internal
        && let Some(bus) = ports.bus
    {
        bus.publish(std::slice::from_ref(envelope))
            .await
            .map_err(IngestError::Publish)?;
    }
    Ok(())
}

/// Step 4: stores the record of a handed-over event. If a copy of the event
/// racing this one stored it first, this one is its duplicate. If the write
/// fails, so does the request: its repeat hands the event over again
/// rather than leave it accepted with no record.
pub async fn confirm<S: EventStore, Q, B>(
    ports: Ports<'_, S, Q, B>,
    record: &EventRecord,
    seen: bool,
) -> Result<Ingested, IngestError> {
    let outcome = ports.store.insert_event(record).await.map_err(IngestError::Store)?;
    Ok(Ingested {
        id: record.envelope.id.clone(),
        duplicate: seen || matches!(outcome, InsertOutcome::Exists(_)),
        trace_id: trace_id(&record.envelope),
    })
}

/// The trace id of an envelope's `traceparent`; empty without one.
fn trace_id(envelope: &crate::Envelope) -> String {
    envelope
        .metadata
        .traceparent
        .as_deref()
        .and_then(crate::trace::trace_id_of)
        .unwrap_or_default()
        .to_string()
}

/// Whether the event goes anywhere: the external track, or the internal one
/// when a bus is configured.
fn has_work<S, Q, B>(envelope: &Envelope, ports: Ports<'_, S, Q, B>) -> bool {
    envelope.routing.external || (envelope.routing.internal && ports.bus.is_some())
}

#[cfg(test)]
mod tests;
