//! Delivering one task: decide whether to call the endpoint now, sign and
//! send, judge the answer, record the attempt, and schedule what comes next.
//!
//! The rules:
//!
//! - 2xx is delivered. 3xx is a failure (redirects are never followed).
//!   410 Gone disables the endpoint and ends the delivery. 429/502/503/504
//!   are retried honouring `Retry-After` within bounds; every other status,
//!   timeouts and transport errors are retried per the endpoint's policy.
//! - A retry is the same SQS message made invisible for the delay; this
//!   module returns the delay ([`DeliveryOutcome::Retry`]) and the handler
//!   changes the message's visibility. Delays beyond SQS's 12 h limit are
//!   waited out in steps: the delivery record holds `next_attempt_at`, and a
//!   message that comes back early is put back to sleep
//!   ([`DeliveryOutcome::Wait`]). How a waiting task goes back on the queue
//!   (the same message hidden, or sent again as a new one so that no wait
//!   outlives the queue's retention or uses up its receive budget) is
//!   [`crate::requeue`]'s choice.
//! - When the policy is exhausted (or the URL is refused, or the endpoint is
//!   gone) the delivery is marked failed, the task goes to the deliveries DLQ
//!   with its reason, and a `delivery.exhausted` operational event goes to
//!   the tenant's other endpoints.
//! - Each endpoint has a circuit breaker: after `failure_threshold`
//!   consecutive failures it opens; deliveries are then deferred without
//!   calling the endpoint (recorded as `circuit_open` attempts that follow
//!   the retry schedule); after `open_for` one delivery probes it; success
//!   closes the circuit. An endpoint failing for `disable_after` is disabled
//!   with an `endpoint.disabled` operational event. An attempt still
//!   unanswered after `stall_after` holds the circuit open until it can have
//!   ended, so the endpoint's other deliveries wait without a call.
//! - A suspended tenant's delivery is not attempted and not counted: its
//!   record says `tenant_suspended` and it looks again every
//!   `suspended_recheck`, as a new message, until the tenant is active.
//! - Every attempt is recorded, with the delivery's new state beside it.

use crate::endpoint::{Endpoint, Gate};
use crate::error::PortError;
use crate::event_type::OperationalType;
use crate::model::{AttemptRecord, DeliveryRecord, DeliveryState, Trigger};
use crate::ports::{DeliveryLog, EndpointHealth, RateLimiter, Registry, TaskQueue, WebhookSender};
use crate::retry::{self, Verdict};
use crate::ssrf;
use crate::task::{DeliveryTask, FanoutTask};
use serde_json::json;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

mod circuit;
mod config;
mod notice;
mod request;

pub use config::{CircuitConfig, DeliveryConfig, MAX_SUSPENDED_RECHECK, NoticeLimits};
pub use notice::{exhausted_data, notice, operational_event};
pub use request::{HEADER_EVENT_TYPE, HEADER_TRACEPARENT, MAX_RECORDED_BODY, build_request, is_success, truncate_body};

/// The reason a delivery of a suspended tenant waits with.
pub const TENANT_SUSPENDED: &str = "tenant_suspended";
/// The `error_kind`s of attempts that did not call the endpoint.
const NOT_CALLED_CIRCUIT: &str = "circuit_open";
const NOT_CALLED_URL: &str = "url_refused";
/// A message that comes back less than this before its next attempt is due
/// is attempted now rather than put back to sleep.
const DUE_SLACK: Duration = Duration::from_secs(1);

/// The result of handling one delivery task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// The receiver's status code.
        status: u16,
    },
    /// The attempt failed (or the circuit is open); try again after `delay`.
    Retry {
        /// How long until the next attempt (already time-scaled).
        delay: Duration,
    },
    /// Not attempted: the next attempt is not due for `delay`, the
    /// endpoint's rate limit is taken, or the tenant is suspended.
    Wait {
        /// How long until the next attempt is due.
        delay: Duration,
    },
    /// Given up; recorded as failed and sent to the DLQ.
    Failed {
        /// Why: `exhausted`, `url_refused` or `endpoint_gone`.
        reason: &'static str,
    },
    /// Not attempted; the endpoint was deleted or disabled.
    Skipped {
        /// Why: `endpoint_deleted` or `endpoint_disabled`.
        reason: &'static str,
    },
    /// The delivery had already finished (SQS delivered the task again).
    AlreadyDone,
    /// An older copy of a task the reconciler has sent again: dropped.
    Superseded,
}

/// A failure to handle a task at all; the task must be retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The registry (endpoint, circuit, rate limits) failed.
    #[error("reading or updating the endpoint failed: {0}")]
    Registry(PortError),
    /// The delivery log failed.
    #[error("reading or recording the delivery failed: {0}")]
    Log(PortError),
    /// The deliveries DLQ failed.
    #[error("sending the task to the DLQ failed: {0}")]
    DeadLetter(PortError),
    /// The fan-out queue, where operational events go, failed.
    #[error("publishing an operational event failed: {0}")]
    Ops(PortError),
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn std_to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// The ports a delivery uses.
pub struct Deliverer<R, H, L, D, O> {
    /// Where endpoints and their circuits are read and updated.
    pub registry: R,
    /// What sends the webhook.
    pub sender: H,
    /// Where deliveries and their attempts are recorded.
    pub log: L,
    /// The deliveries DLQ.
    pub dead_letters: D,
    /// Where operational events go (the fan-out queue).
    pub ops: O,
    /// How deliveries behave.
    pub config: DeliveryConfig,
}

impl Ctx<'_> {
    fn trigger(&self) -> Trigger {
        if self.manual {
            Trigger::Manual
        } else {
            Trigger::Scheduled
        }
    }
}

/// What is known while one task is handled.
struct Ctx<'a> {
    task: &'a DeliveryTask,
    record: DeliveryRecord,
    /// The first attempt of a replay the API asked for.
    manual: bool,
    /// This attempt's number over the delivery's life, and within its round.
    attempt: u32,
    round_attempt: u32,
    at: OffsetDateTime,
}

impl<R, H, L, D, O> Deliverer<R, H, L, D, O>
where
    R: Registry + EndpointHealth + RateLimiter,
    H: WebhookSender,
    L: DeliveryLog,
    D: TaskQueue<DeliveryTask>,
    O: TaskQueue<FanoutTask>,
{
    /// Handles one delivery task. `now` is the clock; `unit_random` feeds
    /// the retry jitter (uniform in [0, 1)).
    pub async fn deliver(
        &self,
        task: &DeliveryTask,
        now: impl Fn() -> OffsetDateTime,
        unit_random: impl Fn() -> f64,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        self.deliver_reading(&self.registry, task, now, unit_random).await
    }

    /// [`Self::deliver`], reading the task's endpoint from `endpoints`: a
    /// view of the registry that one batch's records share, so that each
    /// endpoint is read once per batch. The circuit's updates still go to
    /// the registry itself.
    pub async fn deliver_reading(
        &self,
        endpoints: &impl Registry,
        task: &DeliveryTask,
        now: impl Fn() -> OffsetDateTime,
        unit_random: impl Fn() -> f64,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let at = now();
        let existing = self
            .log
            .delivery(&task.tenant_id, &task.delivery_id)
            .await
            .map_err(DeliveryError::Log)?;
        // A replay request newer than the last one acted on starts a new
        // round now, whatever the state; the same message coming back later,
        // or an older request's (two resends at once), is an ordinary retry.
        // Request ids are `rpl_` and a ULID: they sort by time.
        let fresh_manual = task.manual_request.is_some()
            && existing
                .as_ref()
                .is_none_or(|r| r.manual_request.is_none() || task.manual_request > r.manual_request);
        // A copy older than the one the reconciler sent is dropped, unless
        // it starts a new round (a fresh replay, a redrive from the DLQ).
        if let Some(r) = &existing
            && task.generation < r.task_generation
            && !fresh_manual
            && !(r.state == DeliveryState::Failed && task.dlq_reason.is_some())
        {
            return Ok(DeliveryOutcome::Superseded);
        }
        let mut record = match existing {
            None => DeliveryRecord::new(task, DeliveryState::Retrying, at),
            Some(r) if fresh_manual => DeliveryRecord {
                round_attempts: 0,
                next_attempt_at: None,
                reason: None,
                ..r
            },
            Some(r) => match r.state {
                DeliveryState::Succeeded | DeliveryState::Skipped => return Ok(DeliveryOutcome::AlreadyDone),
                // A failed delivery comes back only when redriven from the DLQ:
                // that starts a new round of attempts.
                DeliveryState::Failed if task.dlq_reason.is_some() => DeliveryRecord {
                    round_attempts: 0,
                    next_attempt_at: None,
                    reason: None,
                    ..r
                },
                DeliveryState::Failed => return Ok(DeliveryOutcome::AlreadyDone),
                DeliveryState::Retrying => {
                    if let Some(next) = r.next_attempt_at {
                        let wait = next - at;
                        if wait > std_to_time(DUE_SLACK) {
                            return Ok(DeliveryOutcome::Wait {
                                delay: wait.try_into().unwrap_or(Duration::ZERO),
                            });
                        }
                    }
                    r
                }
            },
        };
        record.state = DeliveryState::Retrying;
        record.task_generation = record.task_generation.max(task.generation);

        // A suspended tenant's delivery waits, not attempted and not
        // counted, for as long as the suspension lasts; its record says why.
        if endpoints
            .tenant_suspended(&task.tenant_id)
            .await
            .map_err(DeliveryError::Registry)?
        {
            return self.wait_for_tenant(record, at).await;
        }
        if record.reason.as_deref() == Some(TENANT_SUSPENDED) {
            record.reason = None;
        }
        if fresh_manual {
            record.manual_request = task.manual_request.clone();
        }

        let endpoint = endpoints
            .endpoint(&task.tenant_id, &task.endpoint_id)
            .await
            .map_err(DeliveryError::Registry)?;
        let endpoint = match endpoint {
            Some(ep) if ep.enabled => ep,
            other => {
                let reason = if other.is_none() {
                    "endpoint_deleted"
                } else {
                    "endpoint_disabled"
                };
                record.state = DeliveryState::Skipped;
                record.reason = Some(reason.to_string());
                record.next_attempt_at = None;
                record.updated_at = at;
                self.log.record_delivery(&record).await.map_err(DeliveryError::Log)?;
                return Ok(DeliveryOutcome::Skipped { reason });
            }
        };

        let cx = Ctx {
            task,
            attempt: record.attempts + 1,
            round_attempt: record.round_attempts + 1,
            record,
            manual: fresh_manual,
            at,
        };

        // The URL is checked at every attempt, not only at registration.
        if let Err(e) = ssrf::check_url(&endpoint.url, &self.config.ssrf) {
            let mut attempt = self.attempt_without_call(&cx, NOT_CALLED_URL);
            attempt.error = Some(e.to_string());
            return self.give_up(cx, &endpoint, attempt, "url_refused", None).await;
        }

        let now_ms = unix_ms(at);
        let probing = match endpoint.circuit.gate(now_ms) {
            Gate::Pass => false,
            Gate::Open { until_ms } => return self.defer_for_circuit(cx, &endpoint, until_ms, &unit_random).await,
            Gate::Probe { seen_ms } => {
                let until_ms = now_ms + self.scaled_ms(self.config.probe_window);
                let won = self
                    .registry
                    .claim_probe(&task.tenant_id, &endpoint.id, seen_ms, until_ms)
                    .await
                    .map_err(DeliveryError::Registry)?;
                if !won {
                    // Another delivery is probing; try again on this one's own
                    // schedule, by when the probe has closed or reopened the circuit.
                    return self.defer_for_circuit(cx, &endpoint, now_ms, &unit_random).await;
                }
                true
            }
        };

        // Over the endpoint's rate limit: no attempt; back within a second or two.
        if let Some(limit) = endpoint.rate_limit {
            let free = self
                .registry
                .take_slot(&task.tenant_id, &endpoint.id, at.unix_timestamp(), limit.per_second())
                .await
                .map_err(DeliveryError::Registry)?;
            if !free {
                let delay = Duration::from_millis(1000 + (unit_random() * 1000.0) as u64);
                return Ok(DeliveryOutcome::Wait { delay });
            }
        }

        let request = build_request(task, &endpoint, at);
        let clock = Instant::now();
        let (result, stalled) = self.send_watching(&request, &endpoint, probing, now_ms).await;
        let duration_ms = clock.elapsed().as_millis() as u64;

        let mut attempt = AttemptRecord {
            delivery_id: task.delivery_id.clone(),
            attempt: cx.attempt,
            at,
            succeeded: false,
            status_code: None,
            duration_ms,
            error_kind: None,
            error: None,
            response_body: None,
            next_attempt_at: None,
            trigger: cx.trigger(),
        };
        let (verdict, retry_after) = match result {
            Ok(resp) => {
                attempt.status_code = Some(resp.status);
                attempt.response_body = Some(resp.body);
                let verdict = retry::judge(resp.status);
                if !matches!(verdict, Verdict::Delivered) {
                    attempt.error_kind = Some("http_status".into());
                }
                (verdict, resp.retry_after.and_then(|v| retry::parse_retry_after(&v, at)))
            }
            Err(e) => {
                attempt.error_kind = Some(e.kind().into());
                attempt.error = Some(e.to_string());
                (
                    Verdict::Retry {
                        retry_after_allowed: false,
                    },
                    None,
                )
            }
        };

        match verdict {
            Verdict::Delivered => {
                let circuit = &endpoint.circuit;
                if probing || stalled || circuit.failures > 0 || circuit.open_until_ms.is_some() {
                    self.registry
                        .reset_circuit(&task.tenant_id, &endpoint.id)
                        .await
                        .map_err(DeliveryError::Registry)?;
                }
                attempt.succeeded = true;
                let status = attempt.status_code.unwrap_or(200);
                let mut record = cx.record;
                record.state = DeliveryState::Succeeded;
                record.next_attempt_at = None;
                self.record(&mut record, cx.attempt, cx.round_attempt, &attempt).await?;
                Ok(DeliveryOutcome::Delivered { status })
            }
            Verdict::Gone => {
                let reason = "the endpoint answered 410 Gone";
                self.disable(&endpoint, reason, at).await?;
                self.give_up(cx, &endpoint, attempt, "endpoint_gone", None).await
            }
            Verdict::Retry { retry_after_allowed } => {
                self.count_failure(&endpoint, probing, now_ms, at).await?;
                let Some(delay) = endpoint.retry_policy.delay_after(cx.round_attempt) else {
                    return self
                        .give_up(
                            cx,
                            &endpoint,
                            attempt,
                            "exhausted",
                            Some(OperationalType::DeliveryExhausted),
                        )
                        .await;
                };
                let mut delay = retry::jittered(delay, unit_random());
                if retry_after_allowed {
                    delay = retry::honour_retry_after(delay, retry_after, self.config.max_retry_after);
                }
                self.schedule(cx, attempt, self.config.time_scale.apply(delay)).await
            }
        }
    }

    /// Records that the delivery waits for its suspended tenant and when it
    /// looks again. The wait is short enough to be a new message (see
    /// [`crate::requeue`]), so however long the suspension lasts the task
    /// neither ages out of the queue nor uses up its receives, and the
    /// record, written at every look, outlives it too.
    async fn wait_for_tenant(
        &self,
        mut record: DeliveryRecord,
        at: OffsetDateTime,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let recheck = self
            .config
            .suspended_recheck
            .clamp(Duration::from_secs(1), MAX_SUSPENDED_RECHECK);
        let delay = self.config.time_scale.apply(recheck);
        record.reason = Some(TENANT_SUSPENDED.to_string());
        record.next_attempt_at = Some(at + std_to_time(delay));
        record.updated_at = at;
        self.log.record_delivery(&record).await.map_err(DeliveryError::Log)?;
        Ok(DeliveryOutcome::Wait { delay })
    }

    fn scaled_ms(&self, d: Duration) -> i64 {
        self.config.time_scale.apply(d).as_millis() as i64
    }

    /// An attempt record for an attempt that did not call the endpoint.
    fn attempt_without_call(&self, cx: &Ctx<'_>, kind: &str) -> AttemptRecord {
        AttemptRecord {
            delivery_id: cx.task.delivery_id.clone(),
            attempt: cx.attempt,
            at: cx.at,
            succeeded: false,
            status_code: None,
            duration_ms: 0,
            error_kind: Some(kind.into()),
            error: None,
            response_body: None,
            next_attempt_at: None,
            trigger: cx.trigger(),
        }
    }

    /// Stores the attempt and the record's new state.
    async fn record(
        &self,
        record: &mut DeliveryRecord,
        attempt: u32,
        round_attempt: u32,
        att: &AttemptRecord,
    ) -> Result<(), DeliveryError> {
        record.attempts = attempt;
        record.round_attempts = round_attempt;
        record.last_status_code = att.status_code;
        // An attempt that never called the endpoint (circuit open, URL
        // refused) measured nothing: the last real latency stands.
        if !matches!(att.error_kind.as_deref(), Some(NOT_CALLED_CIRCUIT | NOT_CALLED_URL)) {
            record.last_duration_ms = Some(att.duration_ms);
        }
        record.updated_at = att.at;
        if attempt == 1 {
            record.first_attempt = Some(att.clone());
        }
        self.log.record_attempt(record, att).await.map_err(DeliveryError::Log)
    }

    /// Records a failed attempt and schedules the next one after `delay`
    /// (already time-scaled).
    async fn schedule(
        &self,
        cx: Ctx<'_>,
        mut attempt: AttemptRecord,
        delay: Duration,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let next = cx.at + std_to_time(delay);
        attempt.next_attempt_at = Some(next);
        let mut record = cx.record;
        record.state = DeliveryState::Retrying;
        record.next_attempt_at = Some(next);
        self.record(&mut record, cx.attempt, cx.round_attempt, &attempt).await?;
        Ok(DeliveryOutcome::Retry { delay })
    }

    /// Ends the delivery without success: the task goes to the DLQ with its
    /// reason, the tenant is told (if `event` is given and the delivery was
    /// not itself an operational event), and the attempt and
    /// the failed state are recorded — in that order, so that a crash part way
    /// leaves the delivery retrying rather than failed without a DLQ record.
    async fn give_up(
        &self,
        cx: Ctx<'_>,
        endpoint: &Endpoint,
        attempt: AttemptRecord,
        reason: &'static str,
        event: Option<OperationalType>,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        let mut dead = cx.task.clone();
        dead.dlq_reason = Some(reason.to_string());
        self.dead_letters
            .send_all(&[dead])
            .await
            .map_err(DeliveryError::DeadLetter)?;
        // A notice that could not be delivered tells no one: a notice about
        // a notice would be delivered to the tenant's other endpoints, fail
        // there too, and feed itself.
        if let Some(event_type) = event.filter(|_| !cx.task.operational)
            && self.admit_notice(endpoint, cx.at).await?
        {
            let mut data = exhausted_data(&cx.record, cx.attempt, attempt.status_code);
            data.insert("last_error".into(), json!(attempt.error_kind));
            data.insert("reason".into(), json!(reason));
            data.insert(
                "coalesce_window_secs".into(),
                json!(self.config.notices.window.as_secs()),
            );
            self.tell(endpoint, event_type, data, cx.at).await?;
        }
        let mut record = cx.record;
        record.state = DeliveryState::Failed;
        record.reason = Some(reason.to_string());
        record.next_attempt_at = None;
        self.record(&mut record, cx.attempt, cx.round_attempt, &attempt).await?;
        Ok(DeliveryOutcome::Failed { reason })
    }
}

#[cfg(test)]
mod tests;
