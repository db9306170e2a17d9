//! Metrics during an invocation: shared between its tasks, counted by
//! observed ports, and flushed at its end.

use super::Metrics;

/// Metrics shared by the concurrent tasks of one invocation.
pub type SharedMetrics = std::sync::Arc<std::sync::Mutex<Metrics>>;

/// Where a function's EMF lines go: stdout in Lambda (Lambda's log
/// capture), anything in tests.
pub type Emit = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Stdout, one line at a time.
pub fn stdout() -> Emit {
    std::sync::Arc::new(|line: &str| println!("{line}"))
}

/// Adds to a shared [`Metrics`] (a poisoned lock still counts).
pub fn with(metrics: &SharedMetrics, f: impl FnOnce(&mut Metrics)) {
    let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut m);
}

/// Writes the shared metrics through `emit` and clears them.
pub fn flush(metrics: &SharedMetrics, emit: &Emit) {
    let lines = {
        let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
        let now = crate::time_util::now_utc();
        let lines = m.emf_lines((now.unix_timestamp_nanos() / 1_000_000) as i64);
        m.values.clear();
        lines
    };
    for line in lines {
        emit(&line);
    }
}

/// A port wrapped to count what passes through it: circuits opened and
/// endpoints disabled (on [`crate::ports::EndpointHealth`]) and the
/// duration of each webhook attempt (on [`crate::ports::WebhookSender`]).
/// Every other call goes straight to `inner`.
pub struct Observed<T> {
    /// The port being observed.
    pub inner: T,
    /// Where the counts go.
    pub metrics: SharedMetrics,
}

mod observed {
    use super::{Observed, with};
    use crate::endpoint::Circuit;
    use crate::error::PortError;
    use crate::metrics::m;
    use crate::model::{SendError, WebhookRequest, WebhookResponse};
    use crate::ports::{EndpointHealth, RateLimiter, Registry, WebhookSender};
    use crate::{ApiKeyHash, Endpoint, EndpointId, TenantId};

    impl<T: Registry> Registry for Observed<T> {
        async fn key_grant(&self, hash: &ApiKeyHash) -> Result<Option<crate::api_key::KeyGrant>, PortError> {
            self.inner.key_grant(hash).await
        }
        async fn routes(&self, tenant: &TenantId) -> Result<Vec<crate::endpoint::EndpointRoute>, PortError> {
            self.inner.routes(tenant).await
        }
        async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            self.inner.endpoint(tenant, id).await
        }
        async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
            self.inner.tenant_exists(tenant).await
        }
        async fn tenant_suspended(&self, tenant: &TenantId) -> Result<bool, PortError> {
            self.inner.tenant_suspended(tenant).await
        }
    }

    impl<T: RateLimiter> RateLimiter for Observed<T> {
        async fn take_slot(
            &self,
            tenant: &TenantId,
            id: &EndpointId,
            second: i64,
            limit: u32,
        ) -> Result<bool, PortError> {
            self.inner.take_slot(tenant, id, second, limit).await
        }
        async fn take_notice(
            &self,
            tenant: &TenantId,
            about: Option<&EndpointId>,
            window: i64,
            window_secs: i64,
            limit: u32,
        ) -> Result<bool, PortError> {
            self.inner.take_notice(tenant, about, window, window_secs, limit).await
        }
        async fn take_ingest(&self, tenant: &TenantId, second: i64, limit: u32) -> Result<bool, PortError> {
            self.inner.take_ingest(tenant, second, limit).await
        }
    }

    impl<T: EndpointHealth> EndpointHealth for Observed<T> {
        async fn record_failure(&self, tenant: &TenantId, id: &EndpointId, now_ms: i64) -> Result<Circuit, PortError> {
            self.inner.record_failure(tenant, id, now_ms).await
        }
        async fn open_circuit(
            &self,
            tenant: &TenantId,
            id: &EndpointId,
            threshold: u32,
            now_ms: i64,
            until_ms: i64,
        ) -> Result<bool, PortError> {
            let opened = self.inner.open_circuit(tenant, id, threshold, now_ms, until_ms).await?;
            if opened {
                with(&self.metrics, |m| m.count(m::EndpointsOpened, 1));
            }
            Ok(opened)
        }
        async fn hold_circuit(&self, tenant: &TenantId, id: &EndpointId, until_ms: i64) -> Result<bool, PortError> {
            let held = self.inner.hold_circuit(tenant, id, until_ms).await?;
            if held {
                with(&self.metrics, |m| m.count(m::EndpointsOpened, 1));
            }
            Ok(held)
        }
        async fn claim_probe(
            &self,
            tenant: &TenantId,
            id: &EndpointId,
            seen_ms: i64,
            until_ms: i64,
        ) -> Result<bool, PortError> {
            self.inner.claim_probe(tenant, id, seen_ms, until_ms).await
        }
        async fn reset_circuit(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), PortError> {
            self.inner.reset_circuit(tenant, id).await
        }
        async fn disable(&self, tenant: &TenantId, id: &EndpointId, reason: &str) -> Result<bool, PortError> {
            let disabled = self.inner.disable(tenant, id, reason).await?;
            if disabled {
                with(&self.metrics, |m| m.count(m::EndpointsDisabled, 1));
            }
            Ok(disabled)
        }
    }

    impl<T: WebhookSender> WebhookSender for Observed<T> {
        async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError> {
            let started = std::time::Instant::now();
            let result = self.inner.send(request).await;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let failed = !matches!(&result, Ok(r) if crate::delivery::is_success(r.status));
            with(&self.metrics, |m| {
                m.record(m::AttemptLatency, (ms * 10.0).round() / 10.0);
                if failed {
                    m.count(m::DeliveriesFailed, 1);
                }
            });
            result
        }

        fn wait(&self, after: std::time::Duration) -> impl Future<Output = ()> + Send {
            self.inner.wait(after)
        }
    }
}

/// A function's metrics and where they go: counted during an invocation,
/// written as EMF lines at its end.
#[derive(Clone)]
pub struct Recorder {
    /// The invocation's metrics.
    pub metrics: SharedMetrics,
    /// Where the EMF lines are written.
    pub emit: Emit,
}

impl Recorder {
    /// Metrics for `function` in `stage`, written to stdout.
    pub fn new(stage: impl Into<String>, function: &str) -> Self {
        Self::with_emit(stage, function, stdout())
    }

    /// Metrics for `function` in `stage`, written through `emit`.
    pub fn with_emit(stage: impl Into<String>, function: &str, emit: Emit) -> Self {
        Self {
            metrics: std::sync::Arc::new(std::sync::Mutex::new(Metrics::new(stage, function))),
            emit,
        }
    }

    /// Adds to the metrics (a poisoned lock still counts).
    pub fn add(&self, f: impl FnOnce(&mut Metrics)) {
        with(&self.metrics, f);
    }

    /// Writes the metrics as EMF lines and clears them.
    pub fn flush(&self) {
        flush(&self.metrics, &self.emit);
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}
