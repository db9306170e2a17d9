//! The fan-out handler: a batch of fan-out tasks from SQS in, a partial batch
//! response out. Each task becomes one delivery task per matching endpoint
//! (`switchyard_core::fanout`); a task whose endpoints could not be read or
//! whose deliveries could not be queued is reported as a failure and comes
//! back from SQS later. The deliveries of the whole batch are queued
//! together, ten per `SendMessageBatch`. An operational event
//! (`delivery.exhausted`, `endpoint.disabled`) is first stored as an audited
//! event of its tenant (`switchyard_core::fanout::keep_notice`), so that a
//! tenant without another endpoint to hear it reads it through the API.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::sync::Mutex;
use switchyard_aws::config::{ConfigError, audit_retention_days, env_var};
use switchyard_aws::dynamo::{DynamoEventStore, DynamoRegistry};
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{
    BatchRegistry, RecordFailure, SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs, item_failure, process_sqs_batch,
};
use switchyard_core::batch_log::BatchLine;
use switchyard_core::fanout::{Plan, keep_notice, plan, send_plans};
use switchyard_core::metrics::{Recorder, m};
use switchyard_core::ports::{EventStore, Registry, TaskQueue};
use switchyard_core::{DeliveryTask, FanoutTask};
use tracing::Instrument as _;

/// The fan-out function's state, built once per process.
pub struct Fanout<R, Q, S> {
    /// The registry, to find each event's endpoints.
    pub registry: R,
    /// The deliveries queue, one task per delivery.
    pub queue: Q,
    /// Where operational events are stored for their tenant.
    pub store: S,
    /// How long they are kept.
    pub notice_retention: time::Duration,
    /// `FanoutTasks`, written as an EMF line at the end of each batch.
    pub metrics: Recorder,
}

/// Fan-out over DynamoDB and SQS.
pub type AwsFanout = Fanout<DynamoRegistry, SqsQueue<DeliveryTask>, DynamoEventStore>;

/// Where fan-out's resources are; from the environment in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The registry table (endpoints and their filters).
    pub registry_table: String,
    /// The deliveries queue tasks are sent to.
    pub deliveries_queue_url: String,
    /// Where operational events are stored (the events of the deliveries table).
    pub deliveries_table: String,
    /// How long operational events are kept, in days.
    pub audit_retention_days: u16,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_QUEUE_URL`, `DELIVERIES_TABLE`
    /// and `AUDIT_RETENTION_DAYS` (default 365).
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_queue_url: env_var("DELIVERIES_QUEUE_URL")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            audit_retention_days: audit_retention_days()?,
        })
    }
}

impl AwsFanout {
    /// Fan-out over the table and queue of `settings`.
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Self {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Self {
            registry: DynamoRegistry::new(dynamodb.clone(), &settings.registry_table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &settings.deliveries_queue_url),
            store: DynamoEventStore::new(dynamodb, &settings.deliveries_table),
            notice_retention: time::Duration::days(i64::from(settings.audit_retention_days)),
            metrics: Recorder::new(switchyard_aws::config::stage(), "fanout"),
        }
    }
}

impl<R: Registry, Q: TaskQueue<DeliveryTask>, S: EventStore> Fanout<R, Q, S> {
    /// Handles an SQS batch of fan-out tasks; the failed records are in the response.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        // Boxed: nested in the runtime's own future, the batch's future
        // type would otherwise exceed the compiler's layout depth limit.
        let response = Box::pin(self.handle_batch(event)).await;
        self.metrics.flush();
        response
    }

    async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        // First every record's deliveries, concurrently; a record whose
        // endpoints cannot be read fails on its own. Each tenant's endpoints
        // are read once per batch.
        let planned: Mutex<Vec<Planned>> = Mutex::new(Vec::new());
        let planned_ref = &planned;
        let registry = &BatchRegistry::new(&self.registry);
        let mut response = process_sqs_batch(event, |task: FanoutTask, record| {
            let span = switchyard_core::trace::span(task.envelope.metadata.traceparent.as_deref());
            async move {
                let (tenant, event) = (task.envelope.tenant_id.to_string(), task.envelope.id.to_string());
                let trace_id = task
                    .envelope
                    .metadata
                    .traceparent
                    .as_deref()
                    .and_then(switchyard_core::trace::trace_id_of)
                    .unwrap_or_default()
                    .to_string();
                let now = switchyard_core::time_util::now_utc();
                if let Err(e) = keep_notice(&self.store, &task, self.notice_retention).await {
                    return Err(RecordFailure::new(format!(
                        "storing operational event {event} of {tenant}: {e}"
                    )));
                }
                // The plan takes the task's envelope, not a copy of it.
                match plan(registry, task, now).await {
                    Ok(plan) => {
                        let p = Planned {
                            message_id: record.message_id,
                            tenant,
                            event,
                            trace_id,
                            plan,
                        };
                        planned_ref.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                        Ok(())
                    }
                    Err(e) => Err(RecordFailure::new(format!("event {event} of {tenant}: {e}"))),
                }
            }
            .instrument(span)
        })
        .await;
        // Then all of them together, ten tasks to a SendMessageBatch, made
        // as they are sent (a record for many endpoints never holds a copy
        // of its body per endpoint); one call takes the tasks of several
        // records, where one call per record sent one or two. A record whose
        // own task is refused (say, too large) fails that record only.
        let planned = planned.into_inner().unwrap_or_else(|e| e.into_inner());
        let plans: Vec<&Plan> = planned.iter().map(|p| &p.plan).collect();
        let sent = send_plans(&self.queue, &plans).await;
        // The events fanned out share one line (see
        // `switchyard_core::batch_log`); a failure keeps its own.
        let fanned_out = BatchLine::new();
        let mut deliveries = 0;
        for (p, sent) in planned.iter().zip(sent) {
            match sent {
                Ok(()) => {
                    self.metrics.add(|m| m.count(m::FanoutTasks, p.plan.len() as u64));
                    tracing::debug!(tenant_id = %p.tenant, event_id = %p.event, trace_id = %p.trace_id, message_id = %p.message_id, deliveries = p.plan.len(), "fanned out");
                    fanned_out.add(&p.tenant, &p.event, None, &p.trace_id);
                    deliveries += p.plan.len();
                }
                Err(e) => {
                    tracing::warn!(tenant_id = %p.tenant, event_id = %p.event, trace_id = %p.trace_id, message_id = %p.message_id, error = %e, "queueing the deliveries failed; the event will be fanned out again");
                    response.batch_item_failures.push(item_failure(p.message_id.clone()));
                }
            }
        }
        if let Some(line) = fanned_out.finish() {
            tracing::info!(count = line.count, deliveries, event_ids = %line.event_ids, tenant_ids = %line.tenant_ids, trace_ids = %line.trace_ids, "fanned out");
        }
        response
    }
}

/// One record's deliveries, planned and not yet sent.
struct Planned {
    message_id: String,
    tenant: String,
    event: String,
    trace_id: String,
    plan: Plan,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;
    use switchyard_core::memory::{Memory, MemoryStore};
    use switchyard_core::{Endpoint, EndpointUrl, PortError, TenantId};

    /// Records each `send_all` call; refuses any call holding a task of
    /// event `evt_bad` (as SQS refuses a message that is too large).
    #[derive(Default)]
    struct Calls(Mutex<Vec<Vec<String>>>);

    impl TaskQueue<DeliveryTask> for Calls {
        async fn send_all(&self, tasks: &[DeliveryTask]) -> Result<(), PortError> {
            let events: Vec<String> = tasks.iter().map(|t| t.event_id.to_string()).collect();
            if events.iter().any(|e| e == "evt_bad") {
                return Err(PortError::permanent("message too long"));
            }
            self.0.lock().unwrap().push(events);
            Ok(())
        }
    }

    /// Stores nothing (these batches hold no operational events).
    struct NoStore;
    impl EventStore for NoStore {
        async fn find_event(
            &self,
            _: &TenantId,
            _: &switchyard_core::EventId,
            _: time::OffsetDateTime,
        ) -> Result<Option<switchyard_core::model::EventRecord>, PortError> {
            Ok(None)
        }
        async fn insert_event(
            &self,
            _: &switchyard_core::model::EventRecord,
        ) -> Result<switchyard_core::model::InsertOutcome, PortError> {
            Err(PortError::permanent("nothing is stored here"))
        }
        async fn claim_key(
            &self,
            _: &switchyard_core::model::KeyClaim,
        ) -> Result<switchyard_core::model::ClaimOutcome, PortError> {
            Err(PortError::permanent("nothing is stored here"))
        }
    }

    fn fanout(endpoints: usize) -> Fanout<Memory, Calls, NoStore> {
        let mem: Memory = std::sync::Arc::new(MemoryStore::default());
        let tenant = TenantId::parse("acme").unwrap();
        for i in 0..endpoints {
            mem.put_endpoint(Endpoint::new(
                tenant.clone(),
                EndpointUrl::parse(&format!("https://hooks.example.com/{i}")).unwrap(),
                vec![],
                switchyard_core::time_util::now_utc(),
            ));
        }
        Fanout {
            registry: mem,
            queue: Calls::default(),
            store: NoStore,
            notice_retention: time::Duration::days(1),
            metrics: Recorder::with_emit("test", "fanout", std::sync::Arc::new(|_: &str| {})),
        }
    }

    fn batch(ids: &[&str]) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = ids
            .iter()
            .map(|id| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("m-{id}"));
                m.body = Some(format!(
                    r#"{{"envelope":{{"id":"{id}","type":"user.created","version":"1.0","timestamp":"2026-11-29T10:00:00Z","source":"api","tenant_id":"acme","data":{{}},"routing":{{"internal":true,"external":true,"audit":true}}}}}}"#
                ));
                m
            })
            .collect();
        e
    }

    fn failed(r: &SqsBatchResponse) -> Vec<String> {
        let mut ids: Vec<String> = r
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_is_queued_with_one_call_not_one_per_record() {
        let f = fanout(2);
        let r = f.handle(batch(&["evt_1", "evt_2", "evt_3", "evt_4", "evt_5"])).await;
        assert!(failed(&r).is_empty());
        let calls = f.queue.0.lock().unwrap().clone();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let mut events = calls[0].clone();
        events.sort();
        // Two endpoints: two tasks per event.
        assert_eq!(
            events,
            [
                "evt_1", "evt_1", "evt_2", "evt_2", "evt_3", "evt_3", "evt_4", "evt_4", "evt_5", "evt_5"
            ]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_task_fails_its_own_record_only() {
        let f = fanout(1);
        let r = f.handle(batch(&["evt_1", "evt_bad", "evt_3"])).await;
        assert_eq!(failed(&r), ["m-evt_bad"]);
        // The together-send was refused; each record then sent its own.
        let mut sent: Vec<String> = f.queue.0.lock().unwrap().iter().flatten().cloned().collect();
        sent.sort();
        assert_eq!(sent, ["evt_1", "evt_3"]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unparseable_records_fail_and_events_without_endpoints_send_nothing() {
        let f = fanout(0);
        let mut e = batch(&["evt_1"]);
        let mut junk = SqsMessage::default();
        junk.message_id = Some("m-junk".into());
        junk.body = Some("{not json".into());
        e.records.push(junk);
        let r = f.handle(e).await;
        assert_eq!(failed(&r), ["m-junk"]);
        assert!(f.queue.0.lock().unwrap().is_empty());
    }
}
