//! Operational events: `delivery.exhausted` and `endpoint.disabled`
//! notices to a tenant's other endpoints, and the limits on them.

use super::{Deliverer, DeliveryError};
use crate::endpoint::Endpoint;
use crate::envelope::{Envelope, Metadata, Routing, SchemaVersion, Source};
use crate::event_type::OperationalType;
use crate::ids::{EndpointId, EventId, TenantId};
use crate::model::DeliveryRecord;
use crate::ports::{DeliveryLog, EndpointHealth, RateLimiter, Registry, TaskQueue, WebhookSender};
use crate::task::{DeliveryTask, FanoutTask};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// An operational event for a tenant (`delivery.exhausted`,
/// `endpoint.disabled`), delivered like any other event.
pub fn operational_event(
    tenant: &TenantId,
    event_type: OperationalType,
    data: Map<String, Value>,
    now: OffsetDateTime,
) -> Envelope {
    Envelope {
        id: EventId::generate(),
        event_type: event_type.event_type(),
        version: SchemaVersion::default(),
        timestamp: now,
        source: Source::switchyard(),
        tenant_id: tenant.clone(),
        data,
        metadata: Metadata::default(),
        routing: Routing::default(),
    }
}

/// An operational event about endpoint `about`, for fan-out: to the
/// tenant's endpoints but that one.
pub fn notice(
    tenant: &TenantId,
    about: &EndpointId,
    event_type: OperationalType,
    data: Map<String, Value>,
    now: OffsetDateTime,
) -> FanoutTask {
    let mut task = FanoutTask::new(operational_event(tenant, event_type, data, now));
    task.skip_endpoint = Some(about.clone());
    task
}

/// The fields every `delivery.exhausted` notice starts with: the
/// delivery's ids, the attempts made and the last status.
pub fn exhausted_data(d: &DeliveryRecord, attempts: u32, last_status_code: Option<u16>) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("delivery_id".into(), json!(d.delivery_id));
    data.insert("event_id".into(), json!(d.event_id));
    data.insert("event_type".into(), json!(d.event_type));
    data.insert("endpoint_id".into(), json!(d.endpoint_id));
    data.insert("attempts".into(), json!(attempts));
    data.insert("last_status_code".into(), json!(last_status_code));
    data
}

impl<R, H, L, D, O> Deliverer<R, H, L, D, O>
where
    R: Registry + EndpointHealth + RateLimiter,
    H: WebhookSender,
    L: DeliveryLog,
    D: TaskQueue<DeliveryTask>,
    O: TaskQueue<FanoutTask>,
{
    /// Disables the endpoint; the call that disables it tells the tenant.
    pub(super) async fn disable(
        &self,
        endpoint: &Endpoint,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let (tenant, id) = (&endpoint.tenant_id, &endpoint.id);
        if self
            .registry
            .disable(tenant, id, reason)
            .await
            .map_err(DeliveryError::Registry)?
        {
            let mut data = Map::new();
            data.insert("endpoint_id".into(), json!(id));
            data.insert("url".into(), json!(endpoint.url.as_str()));
            data.insert("reason".into(), json!(reason));
            self.tell(endpoint, OperationalType::EndpointDisabled, data, at).await?;
        }
        Ok(())
    }

    /// Sends an operational event to the tenant's endpoints (not to the one it
    /// is about).
    pub(super) async fn tell(
        &self,
        endpoint: &Endpoint,
        event_type: OperationalType,
        data: Map<String, Value>,
        at: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let task = notice(&endpoint.tenant_id, &endpoint.id, event_type, data, at);
        self.ops.send_all(&[task]).await.map_err(DeliveryError::Ops)
    }

    /// Whether a `delivery.exhausted` notice about `endpoint` may go out at
    /// `at` ([`NoticeLimits`]): the endpoint's window first, then the
    /// tenant's hour.
    pub(super) async fn admit_notice(&self, endpoint: &Endpoint, at: OffsetDateTime) -> Result<bool, DeliveryError> {
        let limits = self.config.notices;
        let (tenant, now) = (&endpoint.tenant_id, at.unix_timestamp());
        let window = (limits.window.as_secs() as i64).max(1);
        let admitted = self
            .registry
            .take_notice(
                tenant,
                Some(&endpoint.id),
                now - now.rem_euclid(window),
                window,
                limits.per_endpoint,
            )
            .await
            .map_err(DeliveryError::Registry)?
            && self
                .registry
                .take_notice(tenant, None, now - now.rem_euclid(3600), 3600, limits.per_tenant_hour)
                .await
                .map_err(DeliveryError::Registry)?;
        if !admitted {
            tracing::info!(tenant_id = %tenant, endpoint_id = %endpoint.id, "delivery.exhausted notice coalesced: one went out for this endpoint or tenant in this window");
        }
        Ok(admitted)
    }
}
