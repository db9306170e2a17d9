//! The messages the functions pass each other through SQS. Each names its
//! kind and version first and is read tolerantly (see [`crate::wire`]).

use crate::envelope::Envelope;
use crate::event_type::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId, TenantId};
use crate::wire::{DELIVERY_TASK_V, DeliveryKind, FANOUT_TASK_V, FanoutKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

/// Ingest → fan-out: one accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutTask {
    /// The message's kind tag (`fanout_task`): tells it apart from other messages.
    #[serde(default)]
    pub kind: FanoutKind,
    /// The shape's version; 0 for messages written before it was named.
    #[serde(default)]
    pub v: u16,
    /// The event to fan out.
    pub envelope: Envelope,
    /// An endpoint this event must not be sent to: operational events about
    /// an endpoint (it is failing, it was disabled) never go to that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_endpoint: Option<EndpointId>,
}

impl FanoutTask {
    /// Whether this is one of Switchyard's own operational events: those
    /// are sent by delivery and the reconciler with the endpoint they are
    /// about to skip; the doors never set it.
    pub fn is_operational(&self) -> bool {
        self.skip_endpoint.is_some()
    }

    /// The task of an event from a door: the current version, no endpoint skipped.
    pub fn new(envelope: Envelope) -> Self {
        Self {
            kind: FanoutKind::Tag,
            v: FANOUT_TASK_V,
            envelope,
            skip_endpoint: None,
        }
    }
}

/// Fan-out → delivery: one event to one endpoint.
///
/// It carries the webhook body already serialised, so every attempt sends and
/// signs the same bytes; it carries no secret and no URL, which the delivery
/// function reads fresh from the registry (a disabled endpoint or a rotated
/// secret takes effect on the next attempt).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTask {
    /// The message's kind tag (`delivery_task`): tells it apart from other messages.
    #[serde(default)]
    pub kind: DeliveryKind,
    /// The shape's version; 0 for messages written before it was named.
    #[serde(default)]
    pub v: u16,
    /// The delivery's id: one per event and endpoint.
    pub delivery_id: DeliveryId,
    /// The tenant that owns the event and the endpoint.
    pub tenant_id: TenantId,
    /// The endpoint to deliver to.
    pub endpoint_id: EndpointId,
    /// The event delivered.
    pub event_id: EventId,
    /// The event's type, sent in the `x-switchyard-event-type` header.
    pub event_type: EventType,
    /// The webhook body: the event serialised once, so every attempt sends and
    /// signs the same bytes.
    pub payload: String,
    /// When fan-out created the task.
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
    /// Set on the copy sent to the deliveries DLQ: why the delivery failed.
    /// When an operator redrives it to the deliveries queue, its presence
    /// starts a new round of attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dlq_reason: Option<String>,
    /// Set on a task the management API sent to resend the delivery now (a
    /// replay): a unique request id. The first time the delivery sees an id
    /// it starts a new round of attempts at once, the attempt recorded as
    /// manual; the same message coming back later is an ordinary retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_request: Option<String>,
    /// Which copy of the task this is: 0 from fan-out, one more each time
    /// the reconciler sends the task again because its message was lost.
    /// The delivery record keeps the latest (`task_generation`), and an
    /// older copy that turns up after all is dropped.
    #[serde(default)]
    pub generation: u32,
    /// The task delivers one of Switchyard's own operational events
    /// (`delivery.exhausted`, `endpoint.disabled`). When it fails, no notice
    /// is sent about it: a notice about a notice would feed itself. Only
    /// fan-out sets it, from an operational [`FanoutTask`]; no door can.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operational: bool,
    /// The `webhook-id` the receiver sees ([`crate::ids::webhook_id`]). A
    /// task written before it was named carries none and is sent with the
    /// event id, as it was then, so a retry keeps the id its first attempt
    /// had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The event's W3C `traceparent` (its `metadata.traceparent`): each
    /// attempt sends the trace on with a span of its own. `None` for an
    /// event accepted before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl DeliveryTask {
    /// The task of delivering `envelope`, serialised as `payload`, to `endpoint`,
    /// created `now`: the current version, first generation.
    pub fn new(envelope: &Envelope, endpoint: &EndpointId, payload: String, now: OffsetDateTime) -> Self {
        Self {
            kind: DeliveryKind::Tag,
            v: DELIVERY_TASK_V,
            delivery_id: DeliveryId::derive(&envelope.tenant_id, &envelope.id, endpoint),
            tenant_id: envelope.tenant_id.clone(),
            endpoint_id: endpoint.clone(),
            event_id: envelope.id.clone(),
            event_type: envelope.event_type.clone(),
            payload,
            created_at: now,
            dlq_reason: None,
            manual_request: None,
            generation: 0,
            operational: false,
            webhook_id: Some(crate::ids::webhook_id(&envelope.tenant_id, &envelope.id)),
            traceparent: envelope.metadata.traceparent.clone(),
        }
    }
}

impl fmt::Debug for DeliveryTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryTask")
            .field("v", &self.v)
            .field("delivery_id", &self.delivery_id)
            .field("tenant_id", &self.tenant_id)
            .field("endpoint_id", &self.endpoint_id)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .field("created_at", &self.created_at)
            .field("dlq_reason", &self.dlq_reason)
            .field("generation", &self.generation)
            .field("operational", &self.operational)
            .field("webhook_id", &self.webhook_id)
            .finish()
    }
}
