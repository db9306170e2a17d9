//! The EventBridge door maps the event with `switchyard_core::doors` and its
//! tenant rules; an event it cannot accept (no tenant rule matches, invalid,
//! or AWS unavailable) is an invocation error, which Lambda retries and then
//! sends to the function's on-failure destination.

use crate::{DispatchError, Ingest, describe, describe_invalid};
use serde_json::Value;
use switchyard_core::FanoutTask;
use switchyard_core::doors::{ServiceEventError, parse_service_event};
use switchyard_core::ingest::{Ingested, accept};
use switchyard_core::metrics::m;
use switchyard_core::ports::{EventBus, EventStore, RateLimiter, Registry, TaskQueue};

impl<R: Registry + RateLimiter, S: EventStore, Q: TaskQueue<FanoutTask>, B: EventBus> Ingest<R, S, Q, B> {
    /// Handles one AWS service event delivered by the EventBridge rule.
    pub async fn handle_eventbridge(&self, event: &Value) -> Result<Ingested, DispatchError> {
        let result = self.eventbridge_event(event).await;
        self.metrics.add(|m| match &result {
            Ok(done) if done.duplicate => m.count(m::EventsDuplicated, 1),
            Ok(_) => m.count(m::EventsIngested, 1),
            Err(DispatchError::Refused { .. }) => m.count(m::EventsRejected, 1),
            Err(_) => {}
        });
        self.metrics.flush();
        result
    }

    async fn eventbridge_event(&self, event: &Value) -> Result<Ingested, DispatchError> {
        let id = event.get("id").and_then(Value::as_str).unwrap_or("<no id>").to_string();
        let body = serde_json::to_vec(event).map_err(|e| DispatchError::Encode(e.to_string()))?;
        let now = switchyard_core::time_util::now_utc();
        let envelope = match parse_service_event(&body, &self.tenant_rules, self.config.limits, now) {
            Ok(e) => e,
            Err(e) => {
                let (reason, no_tenant) = match &e {
                    ServiceEventError::Invalid(e) => (describe_invalid(e), false),
                    other @ ServiceEventError::NoTenant { .. } => (other.to_string(), true),
                };
                tracing::error!(eventbridge_id = %id, reason = %reason, "AWS service event refused; it goes to the failure destination after Lambda's retries");
                return Err(DispatchError::Refused { id, reason, no_tenant });
            }
        };
        let tenant = envelope.tenant_id.clone();
        match accept(self.ports(), envelope, None, &self.config, now).await {
            Ok(done) => {
                tracing::info!(tenant_id = %tenant, event_id = %done.id, trace_id = %done.trace_id, duplicate = done.duplicate, "AWS service event accepted");
                Ok(done)
            }
            Err(error) => {
                tracing::error!(tenant_id = %tenant, eventbridge_id = %id, error = %describe(&error), retryable = error.retryable(), "AWS service event not ingested");
                Err(DispatchError::Ingest { id, error })
            }
        }
    }
}
