//! The endpoint's circuit breaker as a delivery sees it: watching for a
//! stalled attempt, deferring while open, counting failures.

use super::{Ctx, Deliverer, DeliveryError, DeliveryOutcome, NOT_CALLED_CIRCUIT, unix_ms};
use crate::endpoint::Endpoint;
use crate::event_type::OperationalType;
use crate::model::{SendError, WebhookRequest, WebhookResponse};
use crate::ports::{DeliveryLog, EndpointHealth, RateLimiter, Registry, TaskQueue, WebhookSender};
use crate::retry;
use crate::task::{DeliveryTask, FanoutTask};
use std::time::Duration;
use time::OffsetDateTime;

impl<R, H, L, D, O> Deliverer<R, H, L, D, O>
where
    R: Registry + EndpointHealth + RateLimiter,
    H: WebhookSender,
    L: DeliveryLog,
    D: TaskQueue<DeliveryTask>,
    O: TaskQueue<FanoutTask>,
{
    /// Sends the request. If it is still unanswered after the circuit's
    /// `stall_after`, the endpoint's circuit is opened until this attempt
    /// can have ended (the probe window: the request timeout and a margin),
    /// so the endpoint's other deliveries are deferred, recorded as
    /// `circuit_open`, instead of each holding its batch's invocation for
    /// the whole request timeout: one endpoint that stops answering ties up
    /// its traffic's rate × `stall_after` invocations, not rate × timeout.
    /// The attempt itself runs to its end, and its answer decides: a success
    /// closes the circuit, a failure counts as one. The second value says
    /// whether it stalled. A probe is not watched: it holds the circuit
    /// already.
    pub(super) async fn send_watching(
        &self,
        request: &WebhookRequest,
        endpoint: &Endpoint,
        probing: bool,
        started_ms: i64,
    ) -> (Result<WebhookResponse, SendError>, bool) {
        let send = self.sender.send(request);
        let Some(after) = self.config.circuit.stall_after.filter(|_| !probing) else {
            return (send.await, false);
        };
        let mut send = std::pin::pin!(send);
        let mut timer = std::pin::pin!(self.sender.wait(after));
        let early = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => std::task::Poll::Ready(Some(r)),
            std::task::Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
        })
        .await;
        if let Some(result) = early {
            return (result, false);
        }
        let (tenant, id) = (&endpoint.tenant_id, &endpoint.id);
        let until_ms = started_ms + self.scaled_ms(self.config.probe_window);
        match self.registry.hold_circuit(tenant, id, until_ms).await {
            Ok(held) => {
                if held {
                    tracing::warn!(tenant_id = %tenant, endpoint_id = %id, stalled_ms = after.as_millis() as u64, "endpoint not answering; its circuit is held open until this attempt ends");
                }
            }
            // Only the endpoint's other deliveries lose: they are attempted.
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, endpoint_id = %id, error = %e, "could not hold a stalled endpoint's circuit open")
            }
        }
        (send.await, true)
    }

    /// The circuit is open until `until_ms`: the endpoint is not called; the
    /// attempt is recorded as `circuit_open` and the next one scheduled by the
    /// policy, but not before the circuit may close.
    pub(super) async fn defer_for_circuit(
        &self,
        cx: Ctx<'_>,
        endpoint: &Endpoint,
        until_ms: i64,
        unit_random: &impl Fn() -> f64,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let mut attempt = self.attempt_without_call(&cx, NOT_CALLED_CIRCUIT);
        attempt.error = Some("the endpoint's circuit is open; it was not called".into());
        let Some(delay) = endpoint.retry_policy.delay_after(cx.round_attempt) else {
            return self
                .give_up(
                    cx,
                    endpoint,
                    attempt,
                    "exhausted",
                    Some(OperationalType::DeliveryExhausted),
                )
                .await;
        };
        let open_left = Duration::from_millis((until_ms - unix_ms(cx.at)).max(0) as u64);
        let delay = self
            .config
            .time_scale
            .apply(retry::jittered(delay, unit_random()))
            .max(open_left);
        self.schedule(cx, attempt, delay).await
    }

    /// Counts a failure against the endpoint's circuit: opens it at the
    /// threshold (or again after a failed probe), and disables an endpoint
    /// that has failed for `disable_after`.
    pub(super) async fn count_failure(
        &self,
        endpoint: &Endpoint,
        probing: bool,
        now_ms: i64,
        at: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let (tenant, id) = (&endpoint.tenant_id, &endpoint.id);
        let circuit = self
            .registry
            .record_failure(tenant, id, now_ms)
            .await
            .map_err(DeliveryError::Registry)?;
        let cfg = &self.config.circuit;
        let until_ms = now_ms + self.scaled_ms(cfg.open_for);
        if probing {
            // The probe failed: whatever the count, open again.
            self.registry
                .open_circuit(tenant, id, 0, now_ms, until_ms)
                .await
                .map_err(DeliveryError::Registry)?;
        } else if circuit.failures >= cfg.failure_threshold && circuit.open_until_ms.is_none() {
            self.registry
                .open_circuit(tenant, id, cfg.failure_threshold, now_ms, until_ms)
                .await
                .map_err(DeliveryError::Registry)?;
        }
        if let Some(since) = circuit.failing_since_ms
            && now_ms - since >= self.scaled_ms(cfg.disable_after)
        {
            let hours = cfg.disable_after.as_secs() / 3600;
            self.disable(endpoint, &format!("failing without a success for {hours} h"), at)
                .await?;
        }
        Ok(())
    }
}
