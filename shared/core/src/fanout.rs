//! Fan-out: one accepted event becomes one delivery task per matching endpoint.

use crate::error::PortError;
use crate::ports::{EventRecord, EventStore, Registry, TaskQueue};
use crate::task::{DeliveryTask, FanoutTask};
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    #[error("reading the endpoints failed: {0}")]
    Registry(PortError),
    #[error("queueing the deliveries failed: {0}")]
    Queue(PortError),
}

/// The delivery tasks of an event: one for every enabled endpoint of the
/// event's tenant whose filters match its type and payload. Events routed
/// away from the external track have none.
pub async fn plan<R: Registry>(
    registry: &R,
    task: &FanoutTask,
    now: OffsetDateTime,
) -> Result<Vec<DeliveryTask>, FanoutError> {
    let envelope = &task.envelope;
    if !envelope.routing.external {
        return Ok(Vec::new());
    }
    let endpoints = registry
        .endpoints(&envelope.tenant_id)
        .await
        .map_err(FanoutError::Registry)?;
    let mut body = None;
    Ok(endpoints
        .iter()
        // The registry is asked by tenant; checking again costs nothing.
        .filter(|ep| ep.tenant_id == envelope.tenant_id && ep.accepts(&envelope.event_type))
        .filter(|ep| ep.payload_filter.matches(&envelope.data))
        .filter(|ep| task.skip_endpoint.as_ref() != Some(&ep.id))
        .map(|ep| {
            let payload = body.get_or_insert_with(|| envelope.webhook_body()).clone();
            let mut delivery = DeliveryTask::new(envelope, &ep.id, payload, now);
            delivery.operational = task.is_operational();
            delivery
        })
        .collect())
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
    task: &FanoutTask,
    now: OffsetDateTime,
) -> Result<usize, FanoutError> {
    let tasks = plan(registry, task, now).await?;
    if tasks.is_empty() {
        return Ok(0);
    }
    queue.send_all(&tasks).await.map_err(FanoutError::Queue)?;
    Ok(tasks.len())
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
        async fn tenant_for_key(&self, _: &ApiKeyHash) -> Result<Option<TenantId>, PortError> {
            Ok(None)
        }
        async fn endpoints(&self, t: &TenantId) -> Result<Vec<Endpoint>, PortError> {
            Ok(self.0.iter().filter(|e| &e.tenant_id == t).cloned().collect())
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(None)
        }
        async fn tenant_exists(&self, t: &TenantId) -> Result<bool, PortError> {
            Ok(self.0.iter().any(|e| &e.tenant_id == t))
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
        assert_eq!(fan_out(&reg, &queue, &task, OffsetDateTime::UNIX_EPOCH).await, Ok(3));
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
        assert_eq!(fan_out(&reg, &queue, &free, OffsetDateTime::UNIX_EPOCH).await, Ok(1));
        assert_eq!(queue.0.lock().unwrap()[0].endpoint_id, all_id);
        let paid = event(r#"{"type":"user.created","data":{"plan":"pro"}}"#);
        assert_eq!(fan_out(&reg, &queue, &paid, OffsetDateTime::UNIX_EPOCH).await, Ok(2));
        assert!(queue.0.lock().unwrap().iter().any(|t| t.endpoint_id == pro_id));
    }

    #[tokio::test]
    async fn operational_events_skip_the_endpoint_they_are_about() {
        let eps = vec![ep("t1", &[], true), ep("t1", &[], true)];
        let (about, other) = (eps[0].id.clone(), eps[1].id.clone());
        let (reg, queue) = (Endpoints(eps), Queue::default());
        let mut task = event(r#"{"type":"delivery.exhausted","data":{}}"#);
        task.skip_endpoint = Some(about);
        assert_eq!(fan_out(&reg, &queue, &task, OffsetDateTime::UNIX_EPOCH).await, Ok(1));
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
        async fn insert_event(&self, r: &EventRecord) -> Result<crate::ports::InsertOutcome, PortError> {
            let mut all = self.0.lock().unwrap();
            if let Some(e) = all.iter().find(|e| e.envelope.id == r.envelope.id) {
                return Ok(crate::ports::InsertOutcome::Exists(Box::new(e.clone())));
            }
            all.push(r.clone());
            Ok(crate::ports::InsertOutcome::Inserted)
        }
        async fn claim_key(&self, _: &crate::ingest::KeyClaim) -> Result<crate::ingest::ClaimOutcome, PortError> {
            Ok(crate::ingest::ClaimOutcome::Claimed)
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
        assert_eq!(fan_out(&reg, &queue, &task, OffsetDateTime::UNIX_EPOCH).await, Ok(0));
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
        let plain = plan(&registry, &FanoutTask::new(env.clone()), now).await.unwrap();
        assert_eq!(plain.len(), 2);
        assert!(plain.iter().all(|t| !t.operational), "a door's event is never marked");
        let notice = FanoutTask {
            skip_endpoint: Some(registry.0[0].id.clone()),
            ..FanoutTask::new(env)
        };
        let tasks = plan(&registry, &notice, now).await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert!(tasks[0].operational);
    }
}
