//! The SQS door reads each message body as an HTTP body, for the tenant named
//! by the message attribute `tenant_id`, optionally deduplicated by an
//! `idempotency_key` attribute. Only the producer roles the queue's policy
//! lists can send; with producer bindings (`switchyard_core::producers`),
//! a message whose `SenderId` is not bound to its tenant is refused like an
//! invalid one (a batch item failure, then the DLQ), and counted as
//! rejected. A message with the attribute
//! `switchyard_door: eventbridge` (an AWS service event replayed from the
//! AWS events DLQ) is instead read as the EventBridge door reads its event:
//! same mapping, tenant from the same tenant rules, and no `tenant_id` or
//! `idempotency_key` attribute allowed. An invalid message or a failure is a
//! batch item failure; the queue's redrive policy moves a message that keeps
//! failing to its DLQ.

use crate::{Ingest, describe, describe_invalid};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::HashMap;
use std::sync::Mutex;
use switchyard_aws::{Memo, RecordFailure, item_failure, process_sqs_batch};
use switchyard_core::batch_log::BatchLine;
use switchyard_core::doors::{DOOR_ATTRIBUTE, EVENTBRIDGE_DOOR, ServiceEventError, parse_service_event};
use switchyard_core::envelope::{Source, parse_event};
use switchyard_core::ingest::{Checked, IdempotencyKey, IngestConfig, IngestError, Ingested, check, confirm, publish};
use switchyard_core::metrics::m;
use switchyard_core::model::EventRecord;
use switchyard_core::ports::{EventBus, EventStore, RateLimiter, Registry, TaskQueue, send_grouped};
use switchyard_core::producers::TenantFrom;
use switchyard_core::{FanoutTask, TenantId};

/// The SQS message attribute naming the tenant of an ingest message.
pub const TENANT_ATTRIBUTE: &str = "tenant_id";
/// The SQS message attribute carrying an idempotency key (optional).
pub const IDEMPOTENCY_KEY_ATTRIBUTE: &str = "idempotency_key";
/// The SQS system attribute naming the principal that sent a message.
pub const SENDER_ID: &str = "SenderId";
/// The source of SQS ingest messages that name none.
pub const SQS_DEFAULT_SOURCE: &str = "sqs";

fn message_attribute(m: &SqsMessage, name: &str) -> Option<String> {
    let a = m.message_attributes.get(name)?;
    let is_string = a.data_type.as_deref().is_none_or(|t| t.starts_with("String"));
    is_string.then(|| a.string_value.clone()).flatten()
}

/// One SQS ingest message as the record handler needs it.
struct IngestMessage {
    body: String,
    tenant: Option<String>,
    key: Option<String>,
    /// [`DOOR_ATTRIBUTE`]: how the body is to be read, if not as an HTTP body.
    door: Option<String>,
    /// SQS's `SenderId`: the principal that sent the message.
    sender: Option<String>,
}

/// An SQS ingest message whose event is new (and published to the bus, if
/// it goes there): its fan-out task waits to be queued, then its record to
/// be stored.
struct Pending {
    message_id: String,
    tenant: TenantId,
    record: EventRecord,
    seen: bool,
}

/// Whether each tenant named in one batch exists, read once per tenant even
/// when the batch's messages ask at the same moment.
type Tenants = Memo<TenantId, bool>;

impl<R: Registry + RateLimiter, S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus> Ingest<R, S, Q, B> {
    /// Handles a batch from the SQS ingest queue: each message body is an
    /// event as the HTTP API takes it, for the tenant its `tenant_id`
    /// attribute names.
    pub async fn handle_sqs(&self, event: SqsEvent) -> SqsBatchResponse {
        let messages: HashMap<String, IngestMessage> = event
            .records
            .iter()
            .filter_map(|m| {
                let msg = IngestMessage {
                    body: m.body.clone().unwrap_or_default(),
                    tenant: message_attribute(m, TENANT_ATTRIBUTE),
                    key: message_attribute(m, IDEMPOTENCY_KEY_ATTRIBUTE),
                    door: message_attribute(m, DOOR_ATTRIBUTE),
                    sender: m.attributes.get(SENDER_ID).cloned(),
                };
                Some((m.message_id.clone()?, msg))
            })
            .collect();
        let messages = &messages;
        #[allow(clippy::expect_used, reason = "`sqs` is a literal valid source")]
        let config = IngestConfig {
            default_source: Source::parse(SQS_DEFAULT_SOURCE).expect("`sqs` is a valid source"),
            ..self.config.clone()
        };
        let config = &config;
        let tenants = &Tenants::default();
        let pending: Mutex<Vec<Pending>> = Mutex::default();
        let pending_ref = &pending;
        let accepted = BatchLine::new();
        let accepted_ref = &accepted;
        // First every message is checked (a duplicate is done here) and a new
        // event published to the bus, concurrently; the body is parsed once as any JSON here
        // (not JSON: a batch item failure), then as an event.
        let mut response = process_sqs_batch(event, |_: serde::de::IgnoredAny, record| async move {
            let id = record.message_id;
            match self.check_message(messages, config, tenants, &id).await {
                Ok((tenant, Checked::Done(done))) => {
                    self.accepted(accepted_ref, &tenant, &id, &done);
                    Ok(())
                }
                Ok((tenant, Checked::HandOver { record, seen })) => {
                    let p = Pending {
                        message_id: id,
                        tenant,
                        record: *record,
                        seen,
                    };
                    pending_ref.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                    Ok(())
                }
                Err((failure, retryable)) => {
                    if !retryable {
                        self.metrics.add(|m| m.count(m::EventsRejected, 1));
                    }
                    Err(failure)
                }
            }
        })
        .await;
        // Then the fan-out tasks of the whole batch together: SendMessageBatch
        // takes ten, where each message sent its own. If that fails, each
        // message sends its own, so one refused task fails its message only;
        // a message that fails stored nothing: it comes back and hands its
        // event over again.
        let pending = pending.into_inner().unwrap_or_else(|e| e.into_inner());
        let tasks: Vec<Option<FanoutTask>> = pending
            .iter()
            .map(|p| {
                let envelope = &p.record.envelope;
                envelope.routing.external.then(|| FanoutTask::new(envelope.clone()))
            })
            .collect();
        let groups: Vec<&[FanoutTask]> = tasks.iter().map(Option::as_slice).collect();
        let sent = send_grouped(&self.queue, &groups).await;
        let mut queued = Vec::with_capacity(pending.len());
        for (p, sent) in pending.into_iter().zip(sent) {
            match sent {
                Ok(()) => queued.push(p),
                Err(e) => {
                    tracing::warn!(tenant_id = %p.tenant, event_id = %p.record.envelope.id, message_id = %p.message_id, error = %e, "queueing the fan-out task failed; the message will be retried");
                    response.batch_item_failures.push(item_failure(p.message_id));
                }
            }
        }
        // Last, each handed-over event's record is stored; a message whose
        // record was not comes back and hands its event over again.
        let confirmed = futures_util::future::join_all(queued.into_iter().map(|p| async move {
            let done = confirm(self.ports(), &p.record, p.seen).await;
            (p, done)
        }))
        .await;
        // The events accepted share one line (see
        // `switchyard_core::batch_log`); a duplicate keeps its own.
        for (p, done) in confirmed {
            match done {
                Ok(done) => self.accepted(accepted_ref, &p.tenant, &p.message_id, &done),
                Err(e) => {
                    tracing::warn!(tenant_id = %p.tenant, event_id = %p.record.envelope.id, message_id = %p.message_id, error = %describe(&e), "storing the handed-over event failed; the message will be retried");
                    response.batch_item_failures.push(item_failure(p.message_id));
                }
            }
        }
        if let Some(line) = accepted.finish() {
            tracing::info!(count = line.count, event_ids = %line.event_ids, tenant_ids = %line.tenant_ids, trace_ids = %line.trace_ids, "events accepted from the ingest queue");
        }
        self.metrics.flush();
        response
    }

    /// Counts an event accepted through the SQS door and adds it to the
    /// batch's line (a duplicate gets a line of its own).
    fn accepted(&self, line: &BatchLine, tenant: &TenantId, message_id: &str, done: &Ingested) {
        self.metrics.add(|m| {
            if done.duplicate {
                m.count(m::EventsDuplicated, 1)
            } else {
                m.count(m::EventsIngested, 1)
            }
        });
        if done.duplicate {
            tracing::info!(tenant_id = %tenant, event_id = %done.id, trace_id = %done.trace_id, message_id = %message_id, "duplicate event from the ingest queue");
        } else {
            tracing::debug!(tenant_id = %tenant, event_id = %done.id, trace_id = %done.trace_id, message_id = %message_id, "event accepted from the ingest queue");
            line.add(tenant.as_str(), done.id.as_str(), None, &done.trace_id);
        }
    }

    /// One SQS ingest message checked (steps 1 and 2 of
    /// `switchyard_core::ingest::accept`) and a new event published to the
    /// bus: what is left to do, or why not (and whether that is worth a
    /// retry).
    async fn check_message(
        &self,
        messages: &HashMap<String, IngestMessage>,
        config: &IngestConfig,
        tenants: &Tenants,
        id: &str,
    ) -> Result<(TenantId, Checked), (RecordFailure, bool)> {
        let refused = |f: RecordFailure| (f, false);
        let msg = messages
            .get(id)
            .ok_or_else(|| refused(RecordFailure::new("the message vanished from its batch")))?;
        let now = switchyard_core::time_util::now_utc();
        // An AWS service event: mapped, and given its tenant, here.
        let service_event = match msg.door.as_deref() {
            None => None,
            Some(EVENTBRIDGE_DOOR) => {
                if msg.tenant.is_some() || msg.key.is_some() {
                    return Err(refused(RecordFailure::new(format_args!(
                        "an AWS service event gets its tenant from the tenant rules and its id from EventBridge: \
                         no `{TENANT_ATTRIBUTE}` or `{IDEMPOTENCY_KEY_ATTRIBUTE}` attribute"
                    ))));
                }
                let envelope = parse_service_event(msg.body.as_bytes(), &self.tenant_rules, config.limits, now)
                    .map_err(|e| {
                        let reason = match &e {
                            ServiceEventError::Invalid(e) => describe_invalid(e),
                            other => other.to_string(),
                        };
                        refused(RecordFailure::new(format_args!("AWS service event refused: {reason}")))
                    })?;
                Some(envelope)
            }
            Some(other) => {
                return Err(refused(RecordFailure::new(format_args!(
                    "the `{DOOR_ATTRIBUTE}` attribute names no door: {other:?}"
                ))));
            }
        };
        let tenant = match &service_event {
            Some(envelope) => envelope.tenant_id.clone(),
            None => {
                let tenant = msg.tenant.as_deref().ok_or_else(|| {
                    refused(RecordFailure::new(format_args!(
                        "no `{TENANT_ATTRIBUTE}` String message attribute"
                    )))
                })?;
                TenantId::parse(tenant).map_err(|e| {
                    refused(RecordFailure::new(format_args!(
                        "the `{TENANT_ATTRIBUTE}` attribute: {e}"
                    )))
                })?
            }
        };
        // The sender must be bound to the tenant (when producers are bound).
        let from = if service_event.is_some() {
            TenantFrom::TenantRules
        } else {
            TenantFrom::Attribute
        };
        if let Err(e) = self.producers.check(msg.sender.as_deref(), &tenant, from) {
            tracing::warn!(tenant_id = %tenant, message_id = %id, sender_id = msg.sender.as_deref().unwrap_or("<none>"), "message refused: its producer is not bound to its tenant");
            return Err(refused(RecordFailure::new(format_args!("{e}"))));
        }
        // The tenant is named, not authenticated (the queue's policy decides
        // who may send): it must at least exist, or the event would be
        // stored for nobody and fanned out to nothing. Read once per batch.
        match tenants.get(&tenant, || self.registry.tenant_exists(&tenant)).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(refused(RecordFailure::new(format_args!(
                    "the `{TENANT_ATTRIBUTE}` attribute names tenant {tenant}, which does not exist"
                ))));
            }
            Err(e) => return Err((RecordFailure::new(format_args!("reading tenant {tenant}: {e}")), true)),
        }
        let key = msg.key.as_deref().map(IdempotencyKey::parse).transpose().map_err(|e| {
            refused(RecordFailure::new(format_args!(
                "the `{IDEMPOTENCY_KEY_ATTRIBUTE}` attribute: {e}"
            )))
        })?;
        let failed = |e: IngestError| {
            (
                RecordFailure::new(format_args!(
                    "tenant {tenant}: {} (retryable: {})",
                    describe(&e),
                    e.retryable()
                )),
                e.retryable(),
            )
        };
        let envelope = match service_event {
            Some(envelope) => envelope,
            None => parse_event(
                msg.body.as_bytes(),
                tenant.clone(),
                &config.default_source,
                now,
                config.limits,
            )
            .map_err(|e| failed(IngestError::Invalid(e)))?,
        };
        let checked = check(self.ports(), envelope, key.as_ref(), config, now)
            .await
            .map_err(failed)?;
        if let Checked::HandOver { record, .. } = &checked {
            publish(self.ports(), &record.envelope).await.map_err(failed)?;
        }
        Ok((tenant, checked))
    }
}
