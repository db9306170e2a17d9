//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines.
//!
//! A function counts what happened during one invocation in a [`Metrics`]
//! and writes it as one JSON line on stdout at the end; CloudWatch Logs
//! turns the line into metrics (no PutMetricData call, no extra latency).
//! Namespace `Switchyard`; dimensions are only ever low-cardinality:
//! `Stage` and `Function` on every metric, and `Queue` on the monitor's
//! queue metrics (one value per queue of the template). Tenant, endpoint,
//! event and delivery ids are never dimensions.
//!
//! [`CATALOG`] names every metric the code can emit, with its unit and
//! dimensions; a test checks that the dashboard and alarms in
//! `template.yaml` refer only to metrics of this catalog.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The CloudWatch namespace of every Switchyard metric.
pub const NAMESPACE: &str = "Switchyard";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// A metric the code emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: Unit,
    /// The function that emits it (the `Function` dimension's value).
    pub function: &'static str,
    /// Its dimension names, in order.
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

const FN_DIMS: &[&str] = &["Stage", "Function"];
const QUEUE_DIMS: &[&str] = &["Stage", "Function", "Queue"];

macro_rules! metric {
    ($name:ident, $unit:ident, $function:literal, $dims:expr, $help:literal) => {
        pub const $name: MetricDef = MetricDef {
            name: stringify!($name),
            unit: Unit::$unit,
            function: $function,
            dimensions: $dims,
            help: $help,
        };
    };
}

/// The metric definitions, by name.
#[allow(non_upper_case_globals)]
pub mod m {
    use super::*;
    metric!(
        EventsIngested,
        Count,
        "ingest",
        FN_DIMS,
        "events accepted (new), every door"
    );
    metric!(
        EventsDuplicated,
        Count,
        "ingest",
        FN_DIMS,
        "events answered as duplicates (idempotency)"
    );
    metric!(
        EventsRejected,
        Count,
        "ingest",
        FN_DIMS,
        "requests and messages refused (4xx, invalid, no tenant)"
    );
    metric!(
        FanoutTasks,
        Count,
        "fanout",
        FN_DIMS,
        "delivery tasks sent (one per matching endpoint)"
    );
    metric!(
        DeliveriesSucceeded,
        Count,
        "delivery",
        FN_DIMS,
        "webhooks delivered (2xx)"
    );
    metric!(
        DeliveriesFailed,
        Count,
        "delivery",
        FN_DIMS,
        "attempts that failed (any reason)"
    );
    metric!(
        DeliveriesRetried,
        Count,
        "delivery",
        FN_DIMS,
        "retries scheduled (after a failed attempt, or deferred by an open circuit)"
    );
    metric!(
        DeliveriesExhausted,
        Count,
        "delivery",
        FN_DIMS,
        "deliveries that ran out of attempts (to the DLQ)"
    );
    metric!(
        TasksResent,
        Count,
        "delivery",
        FN_DIMS,
        "waiting tasks sent again as new messages (kept out of the receive budget and the retention limit)"
    );
    metric!(
        AttemptLatency,
        Milliseconds,
        "delivery",
        FN_DIMS,
        "duration of one webhook attempt"
    );
    metric!(
        EndpointsOpened,
        Count,
        "delivery",
        FN_DIMS,
        "circuits opened on failing endpoints, or held open by a stalled attempt"
    );
    metric!(
        EndpointsDisabled,
        Count,
        "delivery",
        FN_DIMS,
        "endpoints disabled (410, or failing too long)"
    );
    metric!(ConsumerSucceeded, Count, "consumer", FN_DIMS, "internal events handled");
    metric!(
        ConsumerFailed,
        Count,
        "consumer",
        FN_DIMS,
        "internal events failed (retried with backoff)"
    );
    metric!(
        ConsumerSkipped,
        Count,
        "consumer",
        FN_DIMS,
        "internal events with no handler, acknowledged"
    );
    metric!(
        QueueVisible,
        Count,
        "monitor",
        QUEUE_DIMS,
        "messages waiting in a queue or DLQ"
    );
    metric!(
        QueueInFlight,
        Count,
        "monitor",
        QUEUE_DIMS,
        "messages received and not yet deleted"
    );
    metric!(
        QueueDelayed,
        Count,
        "monitor",
        QUEUE_DIMS,
        "messages delayed (not yet visible)"
    );
    metric!(
        DeliveriesRequeued,
        Count,
        "monitor",
        FN_DIMS,
        "overdue retrying deliveries whose lost task the reconciler sent again"
    );
    metric!(
        DeliveriesLost,
        Count,
        "monitor",
        FN_DIMS,
        "overdue retrying deliveries failed as task_lost (their event was gone)"
    );
    metric!(
        EndpointsCircuitOpen,
        Count,
        "monitor",
        FN_DIMS,
        "endpoints whose circuit is open now"
    );
}

/// Every metric the code can emit.
pub const CATALOG: &[MetricDef] = &[
    m::EventsIngested,
    m::EventsDuplicated,
    m::EventsRejected,
    m::FanoutTasks,
    m::DeliveriesSucceeded,
    m::DeliveriesFailed,
    m::DeliveriesRetried,
    m::DeliveriesExhausted,
    m::TasksResent,
    m::AttemptLatency,
    m::EndpointsOpened,
    m::EndpointsDisabled,
    m::ConsumerSucceeded,
    m::ConsumerFailed,
    m::ConsumerSkipped,
    m::QueueVisible,
    m::QueueInFlight,
    m::QueueDelayed,
    m::DeliveriesRequeued,
    m::DeliveriesLost,
    m::EndpointsCircuitOpen,
];

/// A metric name and, for queue metrics, the `Queue` value.
type SeriesKey = (&'static str, Option<String>);

/// An EMF line as CloudWatch reads it: namespace, dimensions (name ->
/// value), values (metric name -> values).
pub type ParsedEmf = (String, BTreeMap<String, String>, BTreeMap<String, Vec<f64>>);

/// The metrics of one invocation, written as EMF lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    stage: String,
    function: String,
    /// Per metric (and `Queue` value, for queue metrics): the values.
    values: BTreeMap<SeriesKey, (MetricDef, Vec<f64>)>,
}

impl Metrics {
    pub fn new(stage: impl Into<String>, function: impl Into<String>) -> Self {
        Self {
            stage: stage.into(),
            function: function.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds `n` to a count.
    pub fn count(&mut self, def: MetricDef, n: u64) {
        self.put(def, None, n as f64);
    }

    /// Records one value (a latency).
    pub fn record(&mut self, def: MetricDef, value: f64) {
        self.put(def, None, value);
    }

    /// Records a queue metric for `queue` (a logical name, e.g. `DeliveriesDLQ`).
    pub fn queue(&mut self, def: MetricDef, queue: &str, value: u64) {
        self.put(def, Some(queue.to_string()), value as f64);
    }

    fn put(&mut self, def: MetricDef, queue: Option<String>, v: f64) {
        let entry = self.values.entry((def.name, queue)).or_insert((def, Vec::new()));
        if def.unit == Unit::Count && entry.0.dimensions == FN_DIMS && !entry.1.is_empty() {
            entry.1[0] += v;
        } else {
            entry.1.push(v);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The EMF lines: one per `Queue` value (CloudWatch takes one set of
    /// dimension values per line), the function-level metrics together.
    /// `now_ms` is the timestamp (milliseconds since the epoch).
    pub fn emf_lines(&self, now_ms: i64) -> Vec<String> {
        let mut groups: BTreeMap<Option<&str>, Vec<(&MetricDef, &Vec<f64>)>> = BTreeMap::new();
        for ((_, queue), (def, vals)) in &self.values {
            groups.entry(queue.as_deref()).or_default().push((def, vals));
        }
        groups
            .into_iter()
            .map(|(queue, metrics)| {
                let dims: Vec<&str> = if queue.is_some() { QUEUE_DIMS.to_vec() } else { FN_DIMS.to_vec() };
                let mut line = Map::new();
                line.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": now_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": NAMESPACE,
                            "Dimensions": [dims],
                            "Metrics": metrics.iter().map(|(d, _)| json!({"Name": d.name, "Unit": d.unit.as_str()})).collect::<Vec<_>>(),
                        }],
                    }),
                );
                line.insert("Stage".into(), Value::String(self.stage.clone()));
                line.insert("Function".into(), Value::String(self.function.clone()));
                if let Some(q) = queue {
                    line.insert("Queue".into(), Value::String(q.to_string()));
                }
                for (d, vals) in metrics {
                    let v = if vals.len() == 1 { json!(vals[0]) } else { json!(vals) };
                    line.insert(d.name.into(), v);
                }
                Value::Object(line).to_string()
            })
            .collect()
    }

    /// Writes the EMF lines to stdout (where Lambda's log capture reads
    /// them) and clears the values.
    pub fn flush(&mut self) {
        if self.values.is_empty() {
            return;
        }
        let now = crate::time_util::now_utc();
        let ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        for line in self.emf_lines(ms) {
            println!("{line}");
        }
        self.values.clear();
    }
}

/// The metrics of an EMF line, as CloudWatch would extract them:
/// `(namespace, dimensions name -> value, metric name -> values)`. For the
/// tests (and anyone checking a log line).
pub fn parse_emf(line: &str) -> Option<ParsedEmf> {
    let v: Value = serde_json::from_str(line).ok()?;
    let cw = v.pointer("/_aws/CloudWatchMetrics/0")?;
    let ns = cw.get("Namespace")?.as_str()?.to_string();
    let dims = cw
        .pointer("/Dimensions/0")?
        .as_array()?
        .iter()
        .filter_map(|d| d.as_str())
        .map(|d| Some((d.to_string(), v.get(d)?.as_str()?.to_string())))
        .collect::<Option<BTreeMap<_, _>>>()?;
    let mut values = BTreeMap::new();
    for m in cw.get("Metrics")?.as_array()? {
        let name = m.get("Name")?.as_str()?;
        let vals = match v.get(name)? {
            Value::Number(n) => vec![n.as_f64()?],
            Value::Array(a) => a.iter().filter_map(Value::as_f64).collect(),
            _ => return None,
        };
        values.insert(name.to_string(), vals);
    }
    Some((ns, dims, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_dimension_set_with_counts_summed() {
        let mut m = Metrics::new("dev", "delivery");
        m.count(m::DeliveriesSucceeded, 2);
        m.count(m::DeliveriesSucceeded, 1);
        m.record(m::AttemptLatency, 12.0);
        m.record(m::AttemptLatency, 30.0);
        m.count(m::DeliveriesFailed, 0);
        let lines = m.emf_lines(1_700_000_000_000);
        assert_eq!(lines.len(), 1);
        let (ns, dims, values) = parse_emf(&lines[0]).unwrap();
        assert_eq!(ns, "Switchyard");
        assert_eq!(
            dims,
            BTreeMap::from([("Function".into(), "delivery".into()), ("Stage".into(), "dev".into())])
        );
        assert_eq!(values["DeliveriesSucceeded"], vec![3.0]);
        assert_eq!(values["AttemptLatency"], vec![12.0, 30.0]);
        assert_eq!(values["DeliveriesFailed"], vec![0.0]);
        let raw: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(raw["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(
            raw["_aws"]["CloudWatchMetrics"][0]["Metrics"][0],
            json!({"Name": "AttemptLatency", "Unit": "Milliseconds"})
        );
    }

    #[test]
    fn queue_metrics_get_a_line_per_queue() {
        let mut m = Metrics::new("prod", "monitor");
        m.queue(m::QueueVisible, "FanoutQueue", 4);
        m.queue(m::QueueVisible, "FanoutDLQ", 1);
        m.queue(m::QueueInFlight, "FanoutQueue", 2);
        m.count(m::EndpointsCircuitOpen, 3);
        let lines = m.emf_lines(0);
        assert_eq!(lines.len(), 3);
        let parsed: Vec<_> = lines.iter().map(|l| parse_emf(l).unwrap()).collect();
        let fanout = parsed
            .iter()
            .find(|p| p.1.get("Queue").map(String::as_str) == Some("FanoutQueue"))
            .unwrap();
        assert_eq!(fanout.2["QueueVisible"], vec![4.0]);
        assert_eq!(fanout.2["QueueInFlight"], vec![2.0]);
        let plain = parsed.iter().find(|p| !p.1.contains_key("Queue")).unwrap();
        assert_eq!(plain.2["EndpointsCircuitOpen"], vec![3.0]);
    }

    #[test]
    fn the_catalog_is_consistent() {
        let mut names: Vec<&str> = CATALOG.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len(), "unique names");
        for d in CATALOG {
            assert!(d.dimensions.starts_with(&["Stage", "Function"]), "{}", d.name);
            assert!(
                !d.dimensions
                    .iter()
                    .any(|x| x.contains("Tenant") || x.contains("Endpoint")),
                "{}",
                d.name
            );
        }
    }
}

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
    pub inner: T,
    pub metrics: SharedMetrics,
}

mod observed {
    use super::{Observed, m, with};
    use crate::endpoint::Circuit;
    use crate::error::PortError;
    use crate::model::{SendError, WebhookRequest, WebhookResponse};
    use crate::ports::{EndpointHealth, RateLimiter, Registry, WebhookSender};
    use crate::{ApiKeyHash, Endpoint, EndpointId, TenantId};

    impl<T: Registry> Registry for Observed<T> {
        async fn tenant_for_key(&self, hash: &ApiKeyHash) -> Result<Option<TenantId>, PortError> {
            self.inner.tenant_for_key(hash).await
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
    pub metrics: SharedMetrics,
    pub emit: Emit,
}

impl Recorder {
    /// Metrics for `function` in `stage`, written to stdout.
    pub fn new(stage: impl Into<String>, function: &str) -> Self {
        Self::with_emit(stage, function, stdout())
    }

    pub fn with_emit(stage: impl Into<String>, function: &str, emit: Emit) -> Self {
        Self {
            metrics: std::sync::Arc::new(std::sync::Mutex::new(Metrics::new(stage, function))),
            emit,
        }
    }

    pub fn add(&self, f: impl FnOnce(&mut Metrics)) {
        with(&self.metrics, f);
    }

    pub fn flush(&self) {
        flush(&self.metrics, &self.emit);
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}
