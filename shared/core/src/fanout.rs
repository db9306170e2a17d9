//! Fan-out: one accepted event becomes one delivery task per matching endpoint.

use crate::envelope::Envelope;
use crate::error::PortError;
use crate::ids::EndpointId;
use crate::model::EventRecord;
use crate::ports::{EventStore, Registry, TaskQueue};
use crate::task::{DeliveryTask, FanoutTask};
use std::ops::Range;
use time::{Duration, OffsetDateTime};

/// Why an event could not be fanned out; the task must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    /// Reading the tenant's endpoints failed.
    #[error("reading the endpoints failed: {0}")]
    Registry(PortError),
    /// Sending the delivery tasks failed.
    #[error("queueing the deliveries failed: {0}")]
    Queue(PortError),
}

/// The deliveries of one event, planned and not yet made: the endpoints
/// they go to and the one webhook body they share. The tasks themselves are
/// made a few at a time as they are sent ([`Plan::tasks`]), so an event for
/// many endpoints never holds a copy of its body per endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    envelope: Envelope,
    body: String,
    endpoints: Vec<EndpointId>,
    operational: bool,
    now: OffsetDateTime,
}

impl Plan {
    /// How many deliveries.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there is no delivery to make.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The delivery tasks of `range` of the endpoints, made now.
    pub fn tasks(&self, range: Range<usize>) -> Vec<DeliveryTask> {
        self.endpoints[range]
            .iter()
            .map(|ep| {
                let mut delivery = DeliveryTask::new(&self.envelope, ep, self.body.clone(), self.now);
                delivery.operational = self.operational;
                delivery
            })
            .collect()
    }

    /// Every delivery task at once.
    #[cfg(test)]
    fn all_tasks(&self) -> Vec<DeliveryTask> {
        self.tasks(0..self.len())
    }
}

/// Plans the deliveries of an event: one for every enabled endpoint of the
/// event's tenant whose filters match its type and payload. Events routed
/// away from the external track have none. The plan keeps the task's
/// envelope: the task is taken, not copied.
pub async fn plan<R: Registry>(registry: &R, task: FanoutTask, now: OffsetDateTime) -> Result<Plan, FanoutError> {
    let envelope = &task.envelope;
    let endpoints = if envelope.routing.external {
        registry
            .routes(&envelope.tenant_id)
            .await
            .map_err(FanoutError::Registry)?
            .into_iter()
            // The registry is asked by tenant; checking again costs nothing.
            .filter(|ep| ep.tenant_id == envelope.tenant_id && ep.takes(&envelope.event_type, &envelope.data))
            .filter(|ep| task.skip_endpoint.as_ref() != Some(&ep.id))
            .map(|ep| ep.id)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Plan {
        body: if endpoints.is_empty() {
            String::new()
        } else {
            envelope.webhook_body()
        },
        operational: task.is_operational(),
        envelope: task.envelope,
        endpoints,
        now,
    })
}

/// The most delivery tasks in one call: one `SendMessageBatch`.
pub const CHUNK: usize = 10;

/// The most calls in flight at once: a thousand endpoints of a large body
/// are a thousand calls, too slow one after another; [`CHUNK`] tasks times
/// this is all fan-out holds at once.
pub const PARALLEL_CALLS: usize = 4;

/// The tasks of one call: (plan, range of its endpoints) pieces.
type Call = Vec<(usize, Range<usize>)>;

/// Sends the tasks of `plans`, [`CHUNK`] to a call and [`PARALLEL_CALLS`]
/// calls at a time, packing the tasks of several plans into one call where
/// they fit, and returns for each plan whether all its tasks were sent. The
/// tasks are made as their call is sent, so an event for many endpoints
/// never holds a copy of its body per endpoint. When a call that holds
/// tasks of several plans fails, each of those plans sends its own part
/// again alone, so one plan's refused task (say, too large) fails that plan
/// only. A plan that failed sends nothing more.
pub async fn send_plans<Q: TaskQueue<DeliveryTask>>(queue: &Q, plans: &[&Plan]) -> Vec<Result<(), PortError>> {
    let mut results: Vec<Result<(), PortError>> = plans.iter().map(|_| Ok(())).collect();
    let mut calls: Vec<Call> = Vec::new();
    let mut call: Call = Vec::new();
    let mut held = 0;
    for (i, plan) in plans.iter().enumerate() {
        let mut from = 0;
        while from < plan.len() {
            let to = plan.len().min(from + CHUNK - held);
            call.push((i, from..to));
            held += to - from;
            from = to;
            if held == CHUNK {
                calls.push(std::mem::take(&mut call));
                held = 0;
                if calls.len() == PARALLEL_CALLS {
                    send_calls(queue, plans, std::mem::take(&mut calls), &mut results).await;
                }
            }
        }
    }
    if !call.is_empty() {
        calls.push(call);
    }
    send_calls(queue, plans, calls, &mut results).await;
    results
}

async fn send_calls<Q: TaskQueue<DeliveryTask>>(
    queue: &Q,
    plans: &[&Plan],
    calls: Vec<Call>,
    results: &mut [Result<(), PortError>],
) {
    let live = |call: Call, results: &[Result<(), PortError>]| -> Call {
        call.into_iter().filter(|(i, _)| results[*i].is_ok()).collect()
    };
    let calls: Vec<Call> = calls
        .into_iter()
        .map(|c| live(c, results))
        .filter(|c| !c.is_empty())
        .collect();
    let sent = futures_util::future::join_all(calls.iter().map(|call| async move {
        let tasks: Vec<DeliveryTask> = call.iter().flat_map(|(i, r)| plans[*i].tasks(r.clone())).collect();
        queue.send_all(&tasks).await
    }))
    .await;
    for (call, sent) in calls.into_iter().zip(sent) {
        if sent.is_ok() {
            continue;
        }
        // Each plan of the failed call sends its own part alone; a call of
        // one plan's tasks only is tried once more.
        for (i, r) in live(call, results) {
            if let Err(e) = queue.send_all(&plans[i].tasks(r)).await {
                results[i] = Err(e);
            }
        }
    }
}

/// Stores an operational event (`delivery.exhausted`, `endpoint.disabled`:
/// a task with `skip_endpoint`) as an event of its tenant, audited, kept for
/// `retention`: a tenant with no other endpoint to hear it reads it through
/// the API (its events and audit trail). Its `received_at` is the event's
/// own time, so that storing it again (SQS delivers at least once) finds the
/// same record. Other tasks store nothing (ingest stored their events).
pub async fn keep_notice<S: EventStore>(store: &S, task: &FanoutTask, retention: Duration) -> Result<(), PortError> {
    if !task.is_operational() {
        return Ok(());
    }
    let envelope = task.envelope.clone();
    let received_at = envelope.timestamp;
    let record = EventRecord {
        expires_at: crate::ingest::ceil_seconds(received_at + retention),
        received_at,
        envelope,
    };
    // Stored, or stored before: both are done.
    store.insert_event(&record).await.map(|_| ())
}

/// Sends a delivery task to every enabled endpoint of the event's tenant whose
/// filters match its type ([`plan`]), and returns how many.
///
/// Running twice for the same event (SQS delivers at least once) sends the
/// same delivery ids twice; receivers see one `webhook-id` either way.
pub async fn fan_out<R: Registry, Q: TaskQueue<DeliveryTask>>(
    registry: &R,
    queue: &Q,
    task: FanoutTask,
    now: OffsetDateTime,
) -> Result<usize, FanoutError> {
    let plan = plan(registry, task, now).await?;
    let sent = send_plans(queue, &[&plan]).await;
    match sent.into_iter().next() {
        Some(Err(e)) => Err(FanoutError::Queue(e)),
        _ => Ok(plan.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeyHash;
    use crate::endpoint::{Endpoint, EndpointUrl};
    use crate::envelope::{IngestLimits, Source, parse_event};
    use crate::event_type::EventTypeFilter;
    use crate::ids::{EndpointId, TenantId};
    use std::sync::Mutex;

    struct Endpoints(Vec<Endpoint>);
    impl Registry for Endpoints {
        async fn key_grant(&self, _: &ApiKeyHash) -> Result<Option<crate::api_key::KeyGrant>, PortError> {
            Ok(None)
        }
        async fn routes(&self, t: &TenantId) -> Result<Vec<crate::endpoint::EndpointRoute>, PortError> {
            Ok(self.0.iter().filter(|e| &e.tenant_id == t).map(Into::into).collect())
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(None)
        }
        async fn tenant_exists(&self, t: &TenantId) -> Result<bool, PortError> {
            Ok(self.0.iter().any(|e| &e.tenant_id == t))
        }
        async fn tenant_suspended(&self, _: &TenantId) -> Result<bool, PortError> {
            Ok(false)
        }
    }
    #[derive(Default)]
    struct Queue(Mutex<Vec<DeliveryTask>>);
    impl TaskQueue<DeliveryTask> for Queue {
        async fn send_all(&self, t: &[DeliveryTask]) -> Result<(), PortError> {
            self.0.lock().unwrap().extend_from_slice(t);
            Ok(())
        }
    }

    fn ep(tenant: &str, filters: &[&str], enabled: bool) -> Endpoint {
        let mut e = Endpoint::new(
            TenantId::parse(tenant).unwrap(),
            EndpointUrl::parse("https://e.com/").unwrap(),
            filters.iter().map(|f| EventTypeFilter::parse(*f).unwrap()).collect(),
            OffsetDateTime::UNIX_EPOCH,
        );
        e.enabled = enabled;
        e
    }

    fn event(body: &str) -> FanoutTask {
        let envelope = parse_event(
            body.as_bytes(),
            TenantId::parse("t1").unwrap(),
            &Source::parse("api").unwrap(),
            OffsetDateTime::UNIX_EPOCH,
            IngestLimits::default(),
        )
        .unwrap();
        FanoutTask::new(envelope)
    }

    #[tokio::test]
    async fn one_task_per_matching_enabled_endpoint_of_the_tenant() {
        let eps = vec![
            ep("t1", &["user.created"], true),
            ep("t1", &["user.*"], true),
            ep("t1", &[], true),
            ep("t1", &["order.*"], true),
            ep("t1", &["user.*"], false),
            ep("t2", &["user.*"], true),
        ];
        let wanted: Vec<EndpointId> = eps[..3].iter().map(|e| e.id.clone()).collect();
        let (reg, queue) = (Endpoints(eps), Queue::default());
        let task = event(r#"{"id":"evt_1","type":"user.created","data":{}}"#);
        assert_eq!(
            fan_out(&reg, &queue, task.clone(), OffsetDateTime::UNIX_EPOCH).await,
            Ok(3)
        );
        let sent = queue.0.lock().unwrap();
        assert_eq!(sent.iter().map(|t| t.endpoint_id.clone()).collect::<Vec<_>>(), wanted);
        assert!(
            sent.iter()
                .all(|t| t.event_id.as_str() == "evt_1" && t.payload == task.envelope.webhook_body())
        );
        let ids: std::collections::HashSet<_> = sent.iter().map(|t| t.delivery_id.clone()).collect();
        assert_eq!(ids.len(), 3);
    }

    #[tokio::test]
    async fn payload_filters_pick_the_events_by_their_data() {
        let mut pro = ep("t1", &["user.*"], true);
        pro.payload_filter = serde_json::from_value(serde_json::json!({"plan": ["pro"]})).unwrap();
        let all = ep("t1", &["user.*"], true);
        let (pro_id, all_id) = (pro.id.clone(), all.id.clone());
        let (reg, queue) = (Endpoints(vec![pro, all]), Queue::default());
        let free = event(r#"{"type":"user.created","data":{"plan":"free"}}"#);
        assert_eq!(fan_out(&reg, &queue, free, OffsetDateTime::UNIX_EPOCH).await, Ok(1));
        assert_eq!(queue.0.lock().unwrap()[0].endpoint_id, all_id);
        let paid = event(r#"{"type":"user.created","data":{"plan":"pro"}}"#);
        assert_eq!(fan_out(&reg, &queue, paid, OffsetDateTime::UNIX_EPOCH).await, Ok(2));
        assert!(queue.0.lock().unwrap().iter().any(|t| t.endpoint_id == pro_id));
    }

    #[tokio::test]
    async fn operational_events_skip_the_endpoint_they_are_about() {
        let eps = vec![ep("t1", &[], true), ep("t1", &[], true)];
        let (about, other) = (eps[0].id.clone(), eps[1].id.clone());
        let (reg, queue) = (Endpoints(eps), Queue::default());
        let mut task = event(r#"{"type":"delivery.exhausted","data":{}}"#);
        task.skip_endpoint = Some(about);
        assert_eq!(
            fan_out(&reg, &queue, task.clone(), OffsetDateTime::UNIX_EPOCH).await,
            Ok(1)
        );
        assert_eq!(queue.0.lock().unwrap()[0].endpoint_id, other);
    }

    #[derive(Default)]
    struct Store(Mutex<Vec<EventRecord>>);
    impl EventStore for Store {
        async fn find_event(
            &self,
            _: &TenantId,
            _: &crate::EventId,
            _: OffsetDateTime,
        ) -> Result<Option<EventRecord>, PortError> {
            Ok(None)
        }
        async fn insert_event(&self, r: &EventRecord) -> Result<crate::model::InsertOutcome, PortError> {
            let mut all = self.0.lock().unwrap();
            if let Some(e) = all.iter().find(|e| e.envelope.id == r.envelope.id) {
                return Ok(crate::model::InsertOutcome::Exists(Box::new(e.clone())));
            }
            all.push(r.clone());
            Ok(crate::model::InsertOutcome::Inserted)
        }
        async fn claim_key(&self, _: &crate::model::KeyClaim) -> Result<crate::model::ClaimOutcome, PortError> {
            Ok(crate::model::ClaimOutcome::Claimed)
        }
    }

    #[tokio::test]
    async fn operational_events_are_stored_for_their_tenant_once() {
        let store = Store::default();
        let mut notice = event(r#"{"type":"delivery.exhausted","data":{}}"#);
        notice.skip_endpoint = Some(EndpointId::generate());
        let retention = Duration::days(365);
        for _ in 0..2 {
            keep_notice(&store, &notice, retention).await.unwrap();
        }
        let stored = store.0.lock().unwrap().clone();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].envelope, notice.envelope);
        assert!(stored[0].envelope.routing.audit);
        assert_eq!(stored[0].received_at, notice.envelope.timestamp);
        assert_eq!(stored[0].expires_at, notice.envelope.timestamp + retention);
        // An ordinary event was stored by ingest: nothing here.
        let plain = Store::default();
        keep_notice(&plain, &event(r#"{"type":"user.created","data":{}}"#), retention)
            .await
            .unwrap();
        assert!(plain.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn internal_only_events_fan_out_to_nobody() {
        let (reg, queue) = (Endpoints(vec![ep("t1", &[], true)]), Queue::default());
        let task = event(r#"{"type":"user.created","data":{},"routing":{"external":false}}"#);
        assert_eq!(
            fan_out(&reg, &queue, task.clone(), OffsetDateTime::UNIX_EPOCH).await,
            Ok(0)
        );
        assert!(queue.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_delivery_tasks_of_an_operational_event_are_marked_so() {
        let registry = Endpoints(vec![ep("acme", &[], true), ep("acme", &[], true)]);
        let now = OffsetDateTime::UNIX_EPOCH;
        let env = parse_event(
            br#"{"type":"delivery.exhausted","data":{}}"#,
            TenantId::parse("acme").unwrap(),
            &Source::parse("switchyard").unwrap(),
            now,
            IngestLimits::default(),
        )
        .unwrap();
        let plain = plan(&registry, FanoutTask::new(env.clone()), now)
            .await
            .unwrap()
            .all_tasks();
        assert_eq!(plain.len(), 2);
        assert!(plain.iter().all(|t| !t.operational), "a door's event is never marked");
        let notice = FanoutTask {
            skip_endpoint: Some(registry.0[0].id.clone()),
            ..FanoutTask::new(env)
        };
        let tasks = plan(&registry, notice, now).await.unwrap().all_tasks();
        assert_eq!(tasks.len(), 1);
        assert!(tasks[0].operational);
    }

    /// Records each call's tasks (event ids); refuses a call holding a task
    /// of `evt_bad`, as SQS refuses a message that is too large.
    #[derive(Default)]
    struct Calls(Mutex<Vec<Vec<String>>>);
    impl TaskQueue<DeliveryTask> for Calls {
        async fn send_all(&self, t: &[DeliveryTask]) -> Result<(), PortError> {
            let events: Vec<String> = t.iter().map(|t| t.event_id.to_string()).collect();
            if events.iter().any(|e| e == "evt_bad") {
                return Err(PortError::permanent("message too long"));
            }
            self.0.lock().unwrap().push(events);
            Ok(())
        }
    }

    #[tokio::test]
    async fn plans_are_sent_ten_tasks_a_call_and_a_refused_plan_fails_alone() {
        let eps: Vec<Endpoint> = (0..13).map(|_| ep("t1", &[], true)).collect();
        let registry = Endpoints(eps);
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut plans = Vec::new();
        for (id, n) in [("evt_a", 13), ("evt_bad", 13), ("evt_c", 13)] {
            let p = plan(
                &registry,
                event(&format!(r#"{{"id":"{id}","type":"x.y","data":{{}}}}"#)),
                now,
            )
            .await
            .unwrap();
            assert_eq!(p.len(), n);
            plans.push(p);
        }
        let queue = Calls::default();
        let refs: Vec<&Plan> = plans.iter().collect();
        let sent = send_plans(&queue, &refs).await;
        assert!(sent[0].is_ok() && sent[1].is_err() && sent[2].is_ok(), "{sent:?}");
        let calls = queue.0.lock().unwrap().clone();
        assert!(calls.iter().all(|c| !c.is_empty() && c.len() <= CHUNK), "{calls:?}");
        let count = |id: &str| calls.iter().flatten().filter(|e| *e == id).count();
        assert_eq!((count("evt_a"), count("evt_bad"), count("evt_c")), (13, 0, 13));
        // Packed: 26 tasks in three calls, not one call per plan part.
        let mixed = Calls::default();
        let ok: Vec<&Plan> = vec![&plans[0], &plans[2]];
        assert!(send_plans(&mixed, &ok).await.iter().all(Result::is_ok));
        assert_eq!(mixed.0.lock().unwrap().len(), 3);
    }
}
