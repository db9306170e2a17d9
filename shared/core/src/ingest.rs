//! Accepting an event: authenticate, parse, store once, hand to fan-out.

use crate::api_key::ApiKey;
use crate::envelope::{EnvelopeError, IngestLimits, Source, parse_event};
use crate::error::PortError;
use crate::ids::{EventId, TenantId};
use crate::ports::{EventRecord, EventState, EventStore, InsertOutcome, Registry, TaskQueue};
use crate::task::FanoutTask;
use time::{Duration, OffsetDateTime};

/// How ingest behaves.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub limits: IngestLimits,
    /// How long the event record (and with it the dedupe key) is kept.
    pub retention: Duration,
    /// The source of events that name none.
    pub default_source: Source,
}

impl IngestConfig {
    pub const DEFAULT_RETENTION_DAYS: i64 = 30;
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            limits: IngestLimits::default(),
            retention: Duration::days(Self::DEFAULT_RETENTION_DAYS),
            default_source: Source::parse("api").unwrap_or_else(|_| unreachable!("`api` is a valid source")),
        }
    }
}

/// Why a caller was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an API key is required (Authorization: Bearer <key>)")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
    #[error("checking the API key failed: {0}")]
    Port(PortError),
}

/// Finds the tenant an API key belongs to.
pub async fn authenticate<R: Registry>(registry: &R, presented: Option<&str>) -> Result<TenantId, AuthError> {
    let presented = presented
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing)?;
    let key = ApiKey::parse(presented).map_err(|_| AuthError::Invalid)?;
    registry
        .tenant_for_key(&key.hash())
        .await
        .map_err(AuthError::Port)?
        .ok_or(AuthError::Invalid)
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub id: EventId,
    /// The tenant had already sent an event with this id; nothing new was queued.
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Invalid(#[from] EnvelopeError),
    #[error("storing the event failed: {0}")]
    Store(PortError),
    #[error("queueing the event failed: {0}")]
    Queue(PortError),
}

/// Accepts one event body for `tenant`.
///
/// The event is stored with a conditional write, then its fan-out task is
/// sent, then it is marked queued. A repeat of an event id answers
/// `duplicate` without queueing again — unless the first try never confirmed
/// the hand-over (it crashed or the queue failed between the two writes), in
/// which case the stored event is queued now: nothing accepted is lost, and
/// nothing confirmed is sent twice.
pub async fn ingest<S: EventStore, Q: TaskQueue<FanoutTask>>(
    store: &S,
    queue: &Q,
    tenant: TenantId,
    body: &[u8],
    config: &IngestConfig,
    now: OffsetDateTime,
) -> Result<Ingested, IngestError> {
    let envelope = parse_event(body, tenant, &config.default_source, now, config.limits)?;
    let record = EventRecord {
        envelope,
        state: EventState::Received,
        received_at: now,
        expires_at: crate::time_util::whole_seconds(now + config.retention),
    };
    let (envelope, duplicate) = match store.insert_event(&record).await.map_err(IngestError::Store)? {
        InsertOutcome::Inserted => (record.envelope, false),
        InsertOutcome::Exists(existing) if existing.state == EventState::Queued => {
            return Ok(Ingested {
                id: existing.envelope.id,
                duplicate: true,
            });
        }
        InsertOutcome::Exists(existing) => (existing.envelope, true),
    };
    let id = envelope.id.clone();
    let tenant = envelope.tenant_id.clone();
    queue
        .send_all(&[FanoutTask { envelope }])
        .await
        .map_err(IngestError::Queue)?;
    // The task is on the queue: the event is safe. If this write fails, a
    // repeat of the event queues it once more, which delivery tolerates.
    if let Err(e) = store.mark_queued(&tenant, &id).await {
        tracing::warn!(event_id = %id, tenant_id = %tenant, error = %e, "event queued but not marked queued");
    }
    Ok(Ingested { id, duplicate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeyHash;
    use crate::endpoint::Endpoint;
    use crate::ids::EndpointId;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Store(Mutex<HashMap<String, EventRecord>>);
    impl EventStore for Store {
        async fn insert_event(&self, r: &EventRecord) -> Result<InsertOutcome, PortError> {
            let mut m = self.0.lock().unwrap();
            let k = format!("{}/{}", r.envelope.tenant_id, r.envelope.id);
            if let Some(e) = m.get(&k) {
                return Ok(InsertOutcome::Exists(Box::new(e.clone())));
            }
            m.insert(k, r.clone());
            Ok(InsertOutcome::Inserted)
        }
        async fn mark_queued(&self, t: &TenantId, id: &EventId) -> Result<(), PortError> {
            if let Some(r) = self.0.lock().unwrap().get_mut(&format!("{t}/{id}")) {
                r.state = EventState::Queued;
            }
            Ok(())
        }
    }
    #[derive(Default)]
    struct Queue {
        sent: Mutex<Vec<FanoutTask>>,
        fail: Mutex<bool>,
    }
    impl TaskQueue<FanoutTask> for Queue {
        async fn send_all(&self, t: &[FanoutTask]) -> Result<(), PortError> {
            if *self.fail.lock().unwrap() {
                return Err(PortError::transient("queue down"));
            }
            self.sent.lock().unwrap().extend_from_slice(t);
            Ok(())
        }
    }

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn now() -> OffsetDateTime {
        crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
    }

    #[tokio::test]
    async fn accepted_events_are_stored_and_queued_once() {
        let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
        let body = br#"{"id":"evt_a","type":"user.created","data":{}}"#;
        let first = ingest(&store, &queue, tenant("t1"), body, &cfg, now()).await.unwrap();
        assert_eq!(
            first,
            Ingested {
                id: EventId::parse("evt_a").unwrap(),
                duplicate: false
            }
        );
        let again = ingest(&store, &queue, tenant("t1"), body, &cfg, now()).await.unwrap();
        assert_eq!(
            again,
            Ingested {
                id: EventId::parse("evt_a").unwrap(),
                duplicate: true
            }
        );
        assert_eq!(queue.sent.lock().unwrap().len(), 1);
        // The same id from another tenant is another event.
        let other = ingest(&store, &queue, tenant("t2"), body, &cfg, now()).await.unwrap();
        assert!(!other.duplicate);
        assert_eq!(queue.sent.lock().unwrap().len(), 2);
        let rec = store.0.lock().unwrap()["t1/evt_a"].clone();
        assert_eq!(rec.state, EventState::Queued);
        assert_eq!(
            rec.expires_at,
            crate::time_util::parse_rfc3339("2026-12-29T10:00:00Z").unwrap()
        );
    }

    #[tokio::test]
    async fn a_queue_failure_is_an_error_and_a_repeat_queues_the_stored_event() {
        let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
        let body = br#"{"id":"evt_b","type":"user.created","data":{"v":1}}"#;
        *queue.fail.lock().unwrap() = true;
        let err = ingest(&store, &queue, tenant("t1"), body, &cfg, now())
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::Queue(ref e) if e.retryable));
        *queue.fail.lock().unwrap() = false;
        // The client retries (even with a changed body): the stored event is queued.
        let retry = br#"{"id":"evt_b","type":"user.created","data":{"v":2}}"#;
        let ok = ingest(&store, &queue, tenant("t1"), retry, &cfg, now()).await.unwrap();
        assert!(ok.duplicate);
        let sent = queue.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].envelope.data["v"], 1);
    }

    #[tokio::test]
    async fn invalid_events_change_nothing() {
        let (store, queue, cfg) = (Store::default(), Queue::default(), IngestConfig::default());
        let err = ingest(&store, &queue, tenant("t1"), b"{\"type\":\"bad\"}", &cfg, now())
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::Invalid(_)));
        assert!(store.0.lock().unwrap().is_empty());
        assert!(queue.sent.lock().unwrap().is_empty());
    }

    struct Keys(HashMap<String, TenantId>);
    impl Registry for Keys {
        async fn tenant_for_key(&self, h: &ApiKeyHash) -> Result<Option<TenantId>, PortError> {
            Ok(self.0.get(h.as_str()).cloned())
        }
        async fn endpoints(&self, _: &TenantId) -> Result<Vec<Endpoint>, PortError> {
            Ok(vec![])
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn api_keys_resolve_to_their_tenant() {
        let key = ApiKey::generate();
        let reg = Keys(HashMap::from([(key.hash().as_str().to_string(), tenant("t1"))]));
        assert_eq!(authenticate(&reg, Some(key.expose())).await, Ok(tenant("t1")));
        assert_eq!(authenticate(&reg, None).await, Err(AuthError::Missing));
        assert_eq!(authenticate(&reg, Some("  ")).await, Err(AuthError::Missing));
        assert_eq!(authenticate(&reg, Some("garbage")).await, Err(AuthError::Invalid));
        let unknown = ApiKey::generate();
        assert_eq!(
            authenticate(&reg, Some(unknown.expose())).await,
            Err(AuthError::Invalid)
        );
    }
}
