//! The small traits through which the services reach the outside world.
//! `switchyard-aws` implements them for DynamoDB and SQS; the delivery
//! function implements [`WebhookSender`] with an HTTP client.

use crate::api_key::{ApiKeyHash, KeyGrant};
use crate::endpoint::{Circuit, Endpoint, EndpointRoute};
use crate::envelope::Envelope;
use crate::error::PortError;
use crate::event_listing::EventListing;
use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::model::{
    ApiKeyRecord, AttemptRecord, AuditPage, ClaimOutcome, DeliveryRecord, DeliveryState, EndpointStats, EventRecord,
    InsertOutcome, KeyClaim, ListError, Page, RegistrationError, SendError, TenantRecord, TenantStatus, WebhookRequest,
    WebhookResponse,
};
use crate::ssrf::SsrfPolicy;
use std::future::Future;
use time::OffsetDateTime;

/// Accepted events and the idempotency keys that name them.
///
/// Both kinds of item expire: a stored `expires_at` at or before "now" counts
/// as absent, whether or not DynamoDB's TTL (which deletes lazily, up to days
/// late) has removed the item yet. "Now" is the whole second of the new
/// record's `received_at` (or the claim's `now`); see
/// [`crate::ingest::is_live`].
pub trait EventStore: Sync {
    /// The tenant's event with this id if it is live at `now` (a strongly
    /// consistent read: a record stored a moment ago is found).
    fn find_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<EventRecord>, PortError>> + Send;
    /// Stores `record` unless the tenant already has a live event with its id
    /// (an expired one is replaced).
    fn insert_event(&self, record: &EventRecord) -> impl Future<Output = Result<InsertOutcome, PortError>> + Send;
    /// Claims an idempotency key for an event id unless the tenant holds the
    /// key already (live); then answers the event id it was claimed for.
    fn claim_key(&self, claim: &KeyClaim) -> impl Future<Output = Result<ClaimOutcome, PortError>> + Send;
}

/// A queue of tasks of one kind.
pub trait TaskQueue<T: Sync>: Sync {
    /// Sends every task, or fails; a failure may leave some of them sent.
    fn send_all(&self, tasks: &[T]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Sends the tasks of several groups (say, one per record of an SQS batch)
/// together, in as few calls as the queue needs; if that fails, each group
/// on its own, so a task the queue refuses fails only its group. The result
/// of each group, in order. Tasks sent before a failure are sent again with
/// their group: consumers of the queue tolerate that (same ids).
pub async fn send_grouped<T: Clone + Sync, Q: TaskQueue<T>>(queue: &Q, groups: &[&[T]]) -> Vec<Result<(), PortError>> {
    let all: Vec<T> = groups.iter().flat_map(|g| g.iter().cloned()).collect();
    if all.is_empty() || queue.send_all(&all).await.is_ok() {
        return groups.iter().map(|_| Ok(())).collect();
    }
    let mut results = Vec::with_capacity(groups.len());
    for group in groups {
        results.push(if group.is_empty() {
            Ok(())
        } else {
            queue.send_all(group).await
        });
    }
    results
}

/// Tenants, their API keys and their endpoints.
pub trait Registry: Sync {
    /// What a key (by its hash) grants: its tenant, scope and expiry;
    /// `None` when no tenant has it or it was revoked. An expired key is
    /// returned as it is: the caller checks [`KeyGrant::live_at`].
    fn key_grant(&self, hash: &ApiKeyHash) -> impl Future<Output = Result<Option<KeyGrant>, PortError>> + Send;
    /// Every endpoint of the tenant, enabled or not, as fan-out needs it:
    /// whether and for what it takes events, and nothing secret.
    fn routes(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<EndpointRoute>, PortError>> + Send;
    /// One endpoint with its secrets and circuit; `None` when the tenant has no
    /// endpoint with this id.
    fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<Endpoint>, PortError>> + Send;
    /// Whether the tenant exists (doors that name their tenant, not
    /// authenticate it, check it here).
    fn tenant_exists(&self, tenant: &TenantId) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Whether the tenant is suspended (see [`TenantStatus`]); a tenant that
    /// does not exist, or was stored without a status, is not.
    fn tenant_suspended(&self, tenant: &TenantId) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// The bytes of a 256-bit data key. Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeyBytes(pub [u8; 32]);

impl std::fmt::Debug for DataKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKeyBytes(<redacted>)")
    }
}

/// A new data key: its bytes, and the same key wrapped (encrypted) by the
/// key-management key, which is what is stored.
#[derive(Debug, Clone)]
pub struct DataKey {
    /// The key itself, kept in memory only.
    pub plaintext: DataKeyBytes,
    /// The key encrypted by the key-management key.
    pub wrapped: Vec<u8>,
}

/// A key-management service that makes and unwraps data keys for envelope
/// encryption (see [`crate::sealing`]). The key that wraps them never leaves
/// the service.
pub trait DataKeys: Sync {
    /// A new random 256-bit data key.
    fn generate(&self) -> impl Future<Output = Result<DataKey, PortError>> + Send;
    /// The bytes of a data key from its wrapped form.
    fn unwrap(&self, wrapped: &[u8]) -> impl Future<Output = Result<DataKeyBytes, PortError>> + Send;
}

/// The circuit breaker and state of endpoints, changed atomically in place
/// (many deliveries to one endpoint run at once).
pub trait EndpointHealth: Sync {
    /// Counts one more consecutive failure (starting the failing period if
    /// none is running) and returns the circuit after the change.
    fn record_failure(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        now_ms: i64,
    ) -> impl Future<Output = Result<Circuit, PortError>> + Send;
    /// Opens the circuit until `until_ms` if at least `threshold` consecutive
    /// failures are counted and it is not open already; true if this call
    /// opened it.
    fn open_circuit(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        threshold: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Holds the circuit open until `until_ms` (an attempt has stalled),
    /// unless it is open until then or later already; true if this call
    /// changed it.
    fn hold_circuit(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Claims the half-open probe: moves `open_until` from `seen_ms` to
    /// `until_ms`; true for exactly one of the deliveries that try.
    fn claim_probe(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        seen_ms: i64,
        until_ms: i64,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Closes the circuit and forgets the failures.
    fn reset_circuit(&self, tenant: &TenantId, id: &EndpointId) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Disables an enabled endpoint, counting a change of its `version`;
    /// true if this call disabled it.
    fn disable(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        reason: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// The management API's changes to endpoints, made so that none undoes
/// another write (see [`crate::endpoint_edit::edit_endpoint`]).
pub trait EndpointEdits: Sync {
    /// The endpoint as stored now (a strongly consistent read).
    fn current(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<Endpoint>, PortError>> + Send;
    /// Writes the settings and state in which `after` differs from `before`
    /// (a read of the endpoint), and nothing else, and counts one more
    /// change (`version`); only if the endpoint's `version` is still
    /// `before`'s, otherwise [`Written::Stale`](crate::endpoint::Written)
    /// and nothing is written. Closing the circuit also takes the endpoint
    /// out of the index of open circuits.
    fn write_changes(
        &self,
        before: &Endpoint,
        after: &Endpoint,
    ) -> impl Future<Output = Result<crate::endpoint::Written, PortError>> + Send;
}

/// Rate limits: slots counted per whole second (per endpoint, or per
/// tenant at ingest), and operational notices counted per window.
pub trait RateLimiter: Sync {
    /// Takes one of the `limit` slots of `second` (unix seconds) for the
    /// endpoint; false when they are all taken.
    fn take_slot(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        second: i64,
        limit: u32,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Takes one of the `limit` operational notices of the window that
    /// starts at `window` (unix seconds) and lasts `window_secs`: about the
    /// endpoint `about`, or, with `None`, the tenant's notices as a whole;
    /// false when they are all taken.
    fn take_notice(
        &self,
        tenant: &TenantId,
        about: Option<&EndpointId>,
        window: i64,
        window_secs: i64,
        limit: u32,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Takes one of the `limit` ingest slots of `second` (unix seconds) for
    /// the tenant; false when they are all taken.
    fn take_ingest(
        &self,
        tenant: &TenantId,
        second: i64,
        limit: u32,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// The record of deliveries and their attempts.
pub trait DeliveryLog: Sync {
    /// A delivery's current state, read consistently.
    fn delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> impl Future<Output = Result<Option<DeliveryRecord>, PortError>> + Send;
    /// Stores an attempt and the delivery's new state together.
    fn record_attempt(
        &self,
        delivery: &DeliveryRecord,
        attempt: &AttemptRecord,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stores the delivery's state when no attempt was made.
    fn record_delivery(&self, delivery: &DeliveryRecord) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Sends one webhook request.
pub trait WebhookSender: Sync {
    /// Sends the request and returns the receiver's answer, or why none came.
    fn send(&self, request: &WebhookRequest) -> impl Future<Output = Result<WebhookResponse, SendError>> + Send;
    /// Completes once `after` has passed, on the sender's clock: how the
    /// deliverer notices an attempt still unanswered (a stall). A sender
    /// without a clock never completes it, and stalls go unnoticed.
    fn wait(&self, after: std::time::Duration) -> impl Future<Output = ()> + Send {
        let _ = after;
        std::future::pending()
    }
}

/// The application's event bus (the internal track).
pub trait EventBus: Sync {
    /// Publishes every event, or fails; never drops one silently.
    fn publish(&self, events: &[Envelope]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// The queue a task was received from, to put it back when it must wait
/// (see [`crate::requeue`]): the same message hidden for a while, or the
/// task sent again as a new, delayed message.
pub trait Redelivery<T: Sync>: Sync {
    /// Makes the received message invisible for `delay` (at most 12 h).
    fn redeliver_after(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Sends `task` as a new message that becomes visible after `delay`
    /// (at most 15 min).
    fn send_after(&self, task: &T, delay: std::time::Duration) -> impl Future<Output = Result<(), PortError>> + Send;
}

// ---------------------------------------------------------------------------
// The management API's ports. Listings take a `limit` (clamped by the
// adapter) and the opaque cursor of the previous page, and refuse a cursor
// that belongs to another listing with [`ListError::BadCursor`].

/// Tenants and their API keys, as the operator manages them.
pub trait Tenants: Sync {
    /// Creates a tenant; `Ok(false)` if it exists.
    fn create_tenant(
        &self,
        id: &TenantId,
        name: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// A tenant, if it exists.
    fn tenant(&self, id: &TenantId) -> impl Future<Output = Result<Option<TenantRecord>, PortError>> + Send;
    /// Every tenant, by id, page by page.
    fn list_tenants(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<TenantRecord>, ListError>> + Send;
    /// Stores a new API key (by its hash, never the key) unless its tenant
    /// has `limit` keys already (`Ok(false)`); creates that race never pass
    /// the limit together. Fails if the key id or the hash is taken.
    fn create_api_key_within(
        &self,
        hash: &ApiKeyHash,
        record: &ApiKeyRecord,
        limit: u32,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// A tenant's API keys, by id, page by page.
    fn list_api_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<ApiKeyRecord>, ListError>> + Send;
    /// Revokes one of a tenant's API keys; `Ok(false)` if it has no such key.
    fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Sets a tenant's status and answers the tenant as it is then;
    /// `Ok(None)` if it does not exist (nothing is created).
    fn set_tenant_status(
        &self,
        id: &TenantId,
        status: TenantStatus,
    ) -> impl Future<Output = Result<Option<TenantRecord>, PortError>> + Send;
    /// Deletes a tenant with its API keys and endpoints (so its keys stop
    /// working and its deliveries in flight find no endpoint); `Ok(false)`
    /// if it does not exist. A call that fails half way is finished by the
    /// next one.
    fn delete_tenant(&self, id: &TenantId) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// A tenant's endpoints, as the management API creates, lists and deletes
/// them (edits go through [`EndpointEdits`]).
pub trait EndpointAdmin: Sync {
    /// Registers an endpoint whose URL passes `policy`, unless its tenant
    /// has `limit` endpoints already; creates that race never pass the
    /// limit together.
    fn register_endpoint_within(
        &self,
        endpoint: &Endpoint,
        policy: &SsrfPolicy,
        limit: u32,
    ) -> impl Future<Output = Result<(), RegistrationError>> + Send;
    /// Whether the endpoint's URL passes `policy`, its host resolved (what
    /// registration checks, for an edit that changes the URL).
    fn check_url(
        &self,
        endpoint: &Endpoint,
        policy: &SsrfPolicy,
    ) -> impl Future<Output = Result<(), RegistrationError>> + Send;
    /// A tenant's endpoints, by id, page by page.
    fn endpoints_page(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Endpoint>, ListError>> + Send;
    /// Deletes an endpoint; `Ok(false)` if it did not exist.
    fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
}

/// The delivery log as the management API reads it, and the replay of
/// failed deliveries.
pub trait DeliveryQueries: Sync {
    /// A delivery and its attempts, oldest attempt first; `None` for an id
    /// that names none of the tenant's deliveries.
    fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> impl Future<Output = Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>, PortError>> + Send;
    /// An endpoint's deliveries, newest first; with a window, those created
    /// in `[from, to)`.
    fn deliveries_by_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: Option<(OffsetDateTime, OffsetDateTime)>,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<DeliveryRecord>, ListError>> + Send;
    /// An event's deliveries (one per endpoint it went to), by delivery id.
    fn deliveries_by_event(
        &self,
        tenant: &TenantId,
        event: &EventId,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<DeliveryRecord>, ListError>> + Send;
    /// A tenant's deliveries in one state, most recently updated first.
    fn deliveries_by_status(
        &self,
        tenant: &TenantId,
        state: DeliveryState,
        limit: usize,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<DeliveryRecord>, ListError>> + Send;
    /// Puts a failed or skipped delivery back to retrying, due now, for a
    /// replay; `Ok(false)` if it is neither (any more), or does not exist.
    fn requeue_failed(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// An endpoint's deliveries created in `[since, now)`, summed up.
    fn endpoint_stats(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<EndpointStats, PortError>> + Send;
}

/// Accepted events as the management API reads them.
pub trait EventQueries: Sync {
    /// One event of a tenant, live or expired but not yet deleted.
    fn get_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<EventRecord>, PortError>> + Send;
    /// The tenant's audit trail: its `routing.audit` events received in
    /// `[from, to)`, oldest first, at most `limit`, after the cursor `after`.
    /// A page may be short, or empty, and still have a `next`.
    fn audit_trail(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        after: Option<&str>,
    ) -> impl Future<Output = Result<AuditPage, PortError>> + Send;
    /// The tenant's stored events that `listing` asks for, newest
    /// (`received_at`) first, at most `limit`, after `cursor`; an event
    /// whose record expired by `now` is left out. A page may be short, or
    /// empty, and still have a `next` (a type filter reads a bounded number
    /// of entries per page).
    fn list_events(
        &self,
        tenant: &TenantId,
        listing: &EventListing,
        limit: usize,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Page<EventRecord>, ListError>> + Send;
}
