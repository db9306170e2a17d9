//! How deliveries behave: the circuit breaker, notice limits and the rest.

use crate::retry::{self, TimeScale};
use crate::ssrf::SsrfPolicy;
use std::time::Duration;

/// The circuit breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before a probe.
    pub open_for: Duration,
    /// How long an endpoint may fail without a success before it is disabled.
    pub disable_after: Duration,
    /// An attempt still unanswered after this long holds the endpoint's
    /// circuit open until it ends (see [`Deliverer::deliver`](super::Deliverer::deliver)); `None`: never.
    pub stall_after: Option<Duration>,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(60),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            stall_after: None,
        }
    }
}

/// How many `delivery.exhausted` notices a tenant gets: at most
/// `per_endpoint` about one endpoint in each `window`, and at most
/// `per_tenant_hour` in all in each hour. A delivery given up beyond them is
/// still recorded `failed` and sent to the DLQ; its notice is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeLimits {
    /// The window an endpoint's notices are counted in.
    pub window: Duration,
    /// Notices about one endpoint per `window`.
    pub per_endpoint: u32,
    /// Notices to one tenant per hour, about all its endpoints.
    pub per_tenant_hour: u32,
}

impl Default for NoticeLimits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            per_endpoint: 1,
            per_tenant_hour: 60,
        }
    }
}

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Scales every delay (retries, circuit, disabling); 1.0 in production.
    pub time_scale: TimeScale,
    /// The longest a receiver's `Retry-After` may push an attempt back.
    pub max_retry_after: Duration,
    /// The circuit breaker's settings.
    pub circuit: CircuitConfig,
    /// Which addresses an endpoint may resolve to.
    pub ssrf: SsrfPolicy,
    /// How long a half-open probe holds the circuit (the request timeout).
    pub probe_window: Duration,
    /// How many `delivery.exhausted` notices a tenant gets.
    pub notices: NoticeLimits,
    /// How often a delivery of a suspended tenant looks again (1 s to
    /// [`MAX_SUSPENDED_RECHECK`], then time-scaled): each look is a read of
    /// the tenant, a write of the delivery record and a new message, and
    /// the longest a delivery waits once its tenant is active again.
    pub suspended_recheck: Duration,
}

/// The longest [`DeliveryConfig::suspended_recheck`]: the longest delay a
/// task sent again as a new message can have (see [`crate::requeue`]), so a
/// waiting task never uses up its queue's receive budget or retention.
pub const MAX_SUSPENDED_RECHECK: Duration = Duration::from_secs(crate::requeue::MAX_SEND_DELAY_SECS as u64);

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            time_scale: TimeScale::default(),
            max_retry_after: retry::MAX_RETRY_AFTER,
            circuit: CircuitConfig::default(),
            ssrf: SsrfPolicy::strict(),
            probe_window: Duration::from_secs(30),
            notices: NoticeLimits::default(),
            suspended_recheck: Duration::from_secs(300),
        }
    }
}
