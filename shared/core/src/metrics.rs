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

mod emf;
mod recorder;

pub use emf::{Metrics, ParsedEmf, parse_emf};
pub use recorder::{Emit, Observed, Recorder, SharedMetrics, flush, stdout, with};

/// The CloudWatch namespace of every Switchyard metric.
pub const NAMESPACE: &str = "Switchyard";

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// A number of things.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
    /// A duration in seconds.
    Seconds,
}

impl Unit {
    /// The unit's name as EMF writes it.
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
    /// The metric's name, as CloudWatch shows it.
    pub name: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The function that emits it (the `Function` dimension's value).
    pub function: &'static str,
    /// Its dimension names, in order.
    pub dimensions: &'static [&'static str],
    /// What it counts, in a few words (the dashboard and docs show it).
    pub help: &'static str,
}

const FN_DIMS: &[&str] = &["Stage", "Function"];
const QUEUE_DIMS: &[&str] = &["Stage", "Function", "Queue"];

macro_rules! metric {
    ($name:ident, $unit:ident, $function:literal, $dims:expr, $help:literal) => {
        #[doc = $help]
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

#[cfg(test)]
mod tests {
    use super::*;

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
