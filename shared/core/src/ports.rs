//! The small traits through which the services reach the outside world.
//! `switchyard-aws` implements them for DynamoDB and SQS; the delivery
//! function implements [`WebhookSender`] with an HTTP client.

use crate::api_key::ApiKeyHash;
use crate::delivery::{AttemptRecord, DeliveryRecord, SendError, WebhookRequest, WebhookResponse};
use crate::endpoint::Endpoint;
use crate::envelope::Envelope;
use crate::error::PortError;
use crate::ids::{EndpointId, EventId, TenantId};
use std::future::Future;
use time::OffsetDateTime;

/// Where an accepted event is in its hand-over to the fan-out queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventState {
    /// Stored; the fan-out task may or may not have been sent.
    Received,
    /// The fan-out task was sent.
    Queued,
}

/// The stored record of an accepted event (its audit record and dedupe key).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub envelope: Envelope,
    pub state: EventState,
    pub received_at: OffsetDateTime,
    /// When the record may be deleted (DynamoDB TTL): whole seconds.
    pub expires_at: OffsetDateTime,
}

/// The result of a conditional insert.
#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Inserted,
    /// An event with this id already exists for the tenant; here it is.
    Exists(Box<EventRecord>),
}

/// Accepted events.
pub trait EventStore: Sync {
    /// Stores `record` unless the tenant already has an event with its id.
    fn insert_event(&self, record: &EventRecord) -> impl Future<Output = Result<InsertOutcome, PortError>> + Send;
    /// Records that the event's fan-out task was sent.
    fn mark_queued(&self, tenant: &TenantId, id: &EventId) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// A queue of tasks of one kind.
pub trait TaskQueue<T: Sync>: Sync {
    /// Sends every task, or fails; a failure may leave some of them sent.
    fn send_all(&self, tasks: &[T]) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Tenants, their API keys and their endpoints.
pub trait Registry: Sync {
    fn tenant_for_key(&self, hash: &ApiKeyHash) -> impl Future<Output = Result<Option<TenantId>, PortError>> + Send;
    /// Every endpoint of the tenant, enabled or not.
    fn endpoints(&self, tenant: &TenantId) -> impl Future<Output = Result<Vec<Endpoint>, PortError>> + Send;
    fn endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> impl Future<Output = Result<Option<Endpoint>, PortError>> + Send;
}

/// The record of deliveries and their attempts.
pub trait DeliveryLog: Sync {
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
    fn send(&self, request: &WebhookRequest) -> impl Future<Output = Result<WebhookResponse, SendError>> + Send;
}

/// The application's event bus (the internal track).
pub trait EventBus: Sync {
    /// Publishes every event, or fails; never drops one silently.
    fn publish(&self, events: &[Envelope]) -> impl Future<Output = Result<(), PortError>> + Send;
}
