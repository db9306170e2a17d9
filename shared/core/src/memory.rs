//! Every port of the delivery path in memory: the registry (endpoints,
//! circuits, rate slots), the delivery log, the DLQ, the operational-event
//! queue and redelivery. For benchmarks that measure the delivery engine's
//! own cost (`cargo xtask bench-delivery`) without a database in the way;
//! production uses the DynamoDB/SQS adapters of `switchyard-aws`.

use crate::endpoint::{Circuit, EndpointRoute, Written};
use crate::error::PortError;
use crate::model::{AttemptRecord, DeliveryRecord};
use crate::ports::{
    DataKey, DataKeyBytes, DataKeys, DeliveryLog, EndpointEdits, EndpointHealth, RateLimiter, Redelivery, Registry,
    TaskQueue,
};
use crate::{ApiKeyHash, DeliveryId, DeliveryTask, Endpoint, EndpointId, FanoutTask, TenantId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A notice counter's scope: the tenant, the endpoint (or all), the window.
type NoticeWindow = (TenantId, Option<EndpointId>, i64);

/// The state behind [`Memory`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The endpoints, by id.
    pub endpoints: Mutex<HashMap<EndpointId, Endpoint>>,
    /// The delivery records, by id.
    pub records: Mutex<HashMap<DeliveryId, DeliveryRecord>>,
    /// Every attempt recorded, in order.
    pub attempts: Mutex<Vec<AttemptRecord>>,
    /// Tasks sent to the deliveries DLQ, in order.
    pub dead_letters: Mutex<Vec<DeliveryTask>>,
    /// Fan-out tasks sent (the deliverer's operational events), in order.
    pub ops: Mutex<Vec<FanoutTask>>,
    /// Received messages made invisible again: receipt handle and delay.
    pub redeliveries: Mutex<Vec<(String, std::time::Duration)>>,
    /// Tasks sent again as new messages, with their delay.
    pub resent: Mutex<Vec<(DeliveryTask, std::time::Duration)>>,
    slots: Mutex<HashMap<(EndpointId, i64), u32>>,
    notices: Mutex<HashMap<NoticeWindow, u32>>,
    ingest_slots: Mutex<HashMap<(TenantId, i64), u32>>,
    suspended: Mutex<std::collections::HashSet<TenantId>>,
}

/// In-memory ports, cheap to clone (one shared store).
pub type Memory = Arc<MemoryStore>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn missing(id: &EndpointId) -> PortError {
    PortError::permanent(format!("no endpoint {id} in memory"))
}

impl MemoryStore {
    /// Stores `ep`, replacing an endpoint with its id.
    pub fn put_endpoint(&self, ep: Endpoint) {
        lock(&self.endpoints).insert(ep.id.clone(), ep);
    }

    /// Suspends the tenant (`true`) or makes it active again.
    pub fn set_suspended(&self, tenant: &TenantId, suspended: bool) {
        let mut set = lock(&self.suspended);
        if suspended {
            set.insert(tenant.clone());
        } else {
            set.remove(tenant);
        }
    }
}

impl Registry for Memory {
    async fn key_grant(&self, _: &ApiKeyHash) -> Result<Option<crate::api_key::KeyGrant>, PortError> {
        Ok(None)
    }
    async fn routes(&self, tenant: &TenantId) -> Result<Vec<EndpointRoute>, PortError> {
        Ok(lock(&self.endpoints)
            .values()
            .filter(|e| &e.tenant_id == tenant)
            .map(EndpointRoute::from)
            .collect())
    }
    async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        Ok(lock(&self.endpoints)
            .get(id)
            .filter(|e| &e.tenant_id == tenant)
            .cloned())
    }
    /// The store keeps no tenant records: a tenant exists here if it has an
    /// endpoint.
    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        Ok(lock(&self.endpoints).values().any(|e| &e.tenant_id == tenant))
    }
    async fn tenant_suspended(&self, tenant: &TenantId) -> Result<bool, PortError> {
        Ok(lock(&self.suspended).contains(tenant))
    }
}

impl RateLimiter for Memory {
    async fn take_slot(&self, _: &TenantId, id: &EndpointId, second: i64, limit: u32) -> Result<bool, PortError> {
        let mut slots = lock(&self.slots);
        let n = slots.entry((id.clone(), second)).or_insert(0);
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }
    async fn take_notice(
        &self,
        tenant: &TenantId,
        about: Option<&EndpointId>,
        window: i64,
        _: i64,
        limit: u32,
    ) -> Result<bool, PortError> {
        let mut taken = lock(&self.notices);
        let n = taken.entry((tenant.clone(), about.cloned(), window)).or_insert(0);
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }
    async fn take_ingest(&self, tenant: &TenantId, second: i64, limit: u32) -> Result<bool, PortError> {
        let mut slots = lock(&self.ingest_slots);
        let n = slots.entry((tenant.clone(), second)).or_insert(0);
        if *n >= limit {
            return Ok(false);
        }
        *n += 1;
        Ok(true)
    }
}

impl EndpointHealth for Memory {
    async fn record_failure(&self, _: &TenantId, id: &EndpointId, now_ms: i64) -> Result<Circuit, PortError> {
        let mut eps = lock(&self.endpoints);
        let c = &mut eps.get_mut(id).ok_or_else(|| missing(id))?.circuit;
        c.failures += 1;
        c.failing_since_ms.get_or_insert(now_ms);
        Ok(c.clone())
    }
    async fn open_circuit(
        &self,
        _: &TenantId,
        id: &EndpointId,
        threshold: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, PortError> {
        let mut eps = lock(&self.endpoints);
        let c = &mut eps.get_mut(id).ok_or_else(|| missing(id))?.circuit;
        let closed = c.open_until_ms.is_none_or(|u| u < now_ms);
        if threshold == 0 || (c.failures >= threshold && closed) {
            c.open_until_ms = Some(until_ms);
            return Ok(true);
        }
        Ok(false)
    }
    async fn hold_circuit(&self, _: &TenantId, id: &EndpointId, until_ms: i64) -> Result<bool, PortError> {
        let mut eps = lock(&self.endpoints);
        let c = &mut eps.get_mut(id).ok_or_else(|| missing(id))?.circuit;
        if c.open_until_ms.is_some_and(|u| u >= until_ms) {
            return Ok(false);
        }
        c.open_until_ms = Some(until_ms);
        Ok(true)
    }
    async fn claim_probe(&self, _: &TenantId, id: &EndpointId, seen_ms: i64, until_ms: i64) -> Result<bool, PortError> {
        let mut eps = lock(&self.endpoints);
        let c = &mut eps.get_mut(id).ok_or_else(|| missing(id))?.circuit;
        if c.open_until_ms == Some(seen_ms) {
            c.open_until_ms = Some(until_ms);
            return Ok(true);
        }
        Ok(false)
    }
    async fn reset_circuit(&self, _: &TenantId, id: &EndpointId) -> Result<(), PortError> {
        if let Some(ep) = lock(&self.endpoints).get_mut(id) {
            ep.circuit = Circuit::default();
        }
        Ok(())
    }
    async fn disable(&self, _: &TenantId, id: &EndpointId, reason: &str) -> Result<bool, PortError> {
        let mut eps = lock(&self.endpoints);
        let ep = eps.get_mut(id).ok_or_else(|| missing(id))?;
        if !ep.enabled {
            return Ok(false);
        }
        ep.enabled = false;
        ep.disabled_reason = Some(reason.into());
        ep.version += 1;
        Ok(true)
    }
}

impl EndpointEdits for Memory {
    async fn current(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        self.endpoint(tenant, id).await
    }

    /// Copies each field (each of the circuit's on its own) in which
    /// `after` differs from `before`, as the DynamoDB adapter writes each
    /// such attribute.
    async fn write_changes(&self, before: &Endpoint, after: &Endpoint) -> Result<Written, PortError> {
        let mut eps = lock(&self.endpoints);
        let Some(stored) = eps.get_mut(&before.id).filter(|e| e.tenant_id == before.tenant_id) else {
            return Ok(Written::Missing);
        };
        if stored.version != before.version {
            return Ok(Written::Stale);
        }
        macro_rules! changed {
            ($($field:ident).+) => {
                if before.$($field).+ != after.$($field).+ {
                    stored.$($field).+ = after.$($field).+.clone();
                }
            };
        }
        changed!(url);
        changed!(filters);
        changed!(secret);
        changed!(previous_secrets);
        changed!(headers);
        changed!(retry_policy);
        changed!(enabled);
        changed!(disabled_reason);
        changed!(description);
        changed!(payload_filter);
        changed!(rate_limit);
        changed!(created_at);
        changed!(circuit.failures);
        changed!(circuit.failing_since_ms);
        changed!(circuit.open_until_ms);
        stored.version += 1;
        Ok(Written::Done(Box::new(stored.clone())))
    }
}

impl DeliveryLog for Memory {
    async fn delivery(&self, _: &TenantId, id: &DeliveryId) -> Result<Option<DeliveryRecord>, PortError> {
        Ok(lock(&self.records).get(id).cloned())
    }
    async fn record_attempt(&self, d: &DeliveryRecord, a: &AttemptRecord) -> Result<(), PortError> {
        lock(&self.records).insert(d.delivery_id.clone(), d.clone());
        lock(&self.attempts).push(a.clone());
        Ok(())
    }
    async fn record_delivery(&self, d: &DeliveryRecord) -> Result<(), PortError> {
        lock(&self.records).insert(d.delivery_id.clone(), d.clone());
        Ok(())
    }
}

impl TaskQueue<DeliveryTask> for Memory {
    async fn send_all(&self, tasks: &[DeliveryTask]) -> Result<(), PortError> {
        lock(&self.dead_letters).extend_from_slice(tasks);
        Ok(())
    }
}

impl TaskQueue<FanoutTask> for Memory {
    async fn send_all(&self, tasks: &[FanoutTask]) -> Result<(), PortError> {
        lock(&self.ops).extend_from_slice(tasks);
        Ok(())
    }
}

impl Redelivery<DeliveryTask> for Memory {
    async fn redeliver_after(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), PortError> {
        lock(&self.redeliveries).push((receipt_handle.to_string(), delay));
        Ok(())
    }
    async fn send_after(&self, task: &DeliveryTask, delay: std::time::Duration) -> Result<(), PortError> {
        lock(&self.resent).push((task.clone(), delay));
        Ok(())
    }
}
/// A key-management service in memory: data keys wrapped with AES-256-GCM
/// under a key of its own, and the calls it served counted.
#[derive(Debug)]
pub struct MemoryDataKeys {
    master: DataKeyBytes,
    /// How many data keys it made.
    pub generated: AtomicUsize,
    /// How many data keys it unwrapped.
    pub unwrapped: AtomicUsize,
}

impl Default for MemoryDataKeys {
    fn default() -> Self {
        let mut master = [0u8; 32];
        crate::ids::random_bytes(&mut master);
        Self {
            master: DataKeyBytes(master),
            generated: AtomicUsize::new(0),
            unwrapped: AtomicUsize::new(0),
        }
    }
}

impl MemoryDataKeys {
    fn cipher(&self) -> aes_gcm::Aes256Gcm {
        <aes_gcm::Aes256Gcm as aes_gcm::KeyInit>::new(&self.master.0.into())
    }
}

/// Gives way once, as a call over the network would.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

impl DataKeys for MemoryDataKeys {
    async fn generate(&self) -> Result<DataKey, PortError> {
        use aes_gcm::aead::Aead;
        self.generated.fetch_add(1, Ordering::Relaxed);
        yield_once().await;
        let (mut key, mut nonce) = ([0u8; 32], [0u8; 12]);
        crate::ids::random_bytes(&mut key);
        crate::ids::random_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(&aes_gcm::Nonce::from(nonce), key.as_slice())
            .map_err(|_| PortError::permanent("wrapping a data key failed"))?;
        Ok(DataKey {
            plaintext: DataKeyBytes(key),
            wrapped: [nonce.as_slice(), &ct].concat(),
        })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, PortError> {
        use aes_gcm::aead::Aead;
        self.unwrapped.fetch_add(1, Ordering::Relaxed);
        yield_once().await;
        let refused = || PortError::permanent("not a data key of this key service");
        let nonce: [u8; 12] = wrapped.get(..12).and_then(|n| n.try_into().ok()).ok_or_else(refused)?;
        let key = self
            .cipher()
            .decrypt(&aes_gcm::Nonce::from(nonce), &wrapped[12..])
            .map_err(|_| refused())?;
        Ok(DataKeyBytes(key.try_into().map_err(|_| refused())?))
    }
}
