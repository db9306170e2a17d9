//! The monitor handler, run on a schedule: the depth of every queue and DLQ
//! of the stack (visible, in flight, delayed: one GetQueueAttributes per
//! queue) and the number of endpoints whose circuit is open (one count query
//! over the registry's sparse index, never a scan), written as EMF metrics
//! (`QueueVisible`, `QueueInFlight`, `QueueDelayed` with a `Queue`
//! dimension; `EndpointsCircuitOpen`). Then it runs the reconciler's sweep
//! (`switchyard_core::reconcile`): retrying deliveries whose next attempt is
//! overdue by more than `RECONCILE_AFTER_SECS` have lost their task; each is
//! sent again, or failed as `task_lost` if its event is gone
//! (`DeliveriesRequeued`, `DeliveriesLost`, with an alarm). It answers what
//! it found, so an operator can also invoke it by hand.
//!
//! The age of the oldest message is not among them: SQS has no API for it;
//! CloudWatch's own `AWS/SQS ApproximateAgeOfOldestMessage` metric, which
//! the template's dashboard and alarms use, is free and exact.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use switchyard_aws::config::{ConfigError, env_in_range, env_var, retention_days};
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoEventStore, DynamoRegistry};
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs};
use switchyard_core::metrics::{Recorder, m};
use switchyard_core::reconcile::{Reconciler, Swept};
use switchyard_core::{DeliveryTask, FanoutTask, PortError};

/// The most overdue deliveries one run reconciles; the rest wait a minute.
pub const RECONCILE_LIMIT: usize = 500;

/// One queue to watch: its logical name in the template (the `Queue`
/// dimension) and its URL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct WatchedQueue {
    /// The queue's logical name in the template.
    pub name: String,
    /// The queue's URL.
    pub url: String,
}

/// What the monitor watches; from the environment in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The registry table, for the count of open circuits.
    pub registry_table: String,
    /// The queues whose depth is reported.
    pub queues: Vec<WatchedQueue>,
    /// The reconciler's resources and margin.
    pub reconcile: ReconcileSettings,
}

/// Where the reconciler finds deliveries and sends tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// The deliveries table the sweep reads.
    pub deliveries_table: String,
    /// The deliveries queue lost tasks are sent to again.
    pub deliveries_queue_url: String,
    /// `task_lost` notices to the tenant enter here.
    pub fanout_queue_url: String,
    /// How long delivery records are kept, in days.
    pub retention_days: u16,
    /// How overdue a next attempt must be before its task counts as lost.
    pub after: Duration,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `QUEUES` (a JSON array of `{name, url}`),
    /// `DELIVERIES_TABLE`, `DELIVERIES_QUEUE_URL`, `FANOUT_QUEUE_URL`, and
    /// optionally `EVENT_RETENTION_DAYS` (30) and `RECONCILE_AFTER_SECS`
    /// (3600).
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = env_var("QUEUES")?;
        let queues: Vec<WatchedQueue> = serde_json::from_str(&raw).map_err(|e| ConfigError::Invalid {
            name: "QUEUES",
            reason: format!("not a JSON array of {{name, url}}: {e}"),
        })?;
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            queues,
            reconcile: ReconcileSettings {
                deliveries_table: env_var("DELIVERIES_TABLE")?,
                deliveries_queue_url: env_var("DELIVERIES_QUEUE_URL")?,
                fanout_queue_url: env_var("FANOUT_QUEUE_URL")?,
                retention_days: retention_days()?,
                after: Duration::from_secs(env_in_range("RECONCILE_AFTER_SECS", 3600, 1..=604_800)?),
            },
        })
    }
}

/// One queue's depth, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Depth {
    /// The queue's logical name.
    pub name: String,
    /// Messages ready to receive.
    pub visible: u64,
    /// Messages received and not yet deleted.
    pub in_flight: u64,
    /// Messages not yet visible (delay or backoff).
    pub delayed: u64,
}

/// What one run found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Each watched queue's depth.
    pub queues: Vec<Depth>,
    /// Endpoints whose circuit is open.
    pub open_circuits: u64,
    /// What the reconciler's sweep did.
    pub reconciled: Swept,
}

/// The reconciler over DynamoDB and SQS.
pub type AwsReconciler =
    Reconciler<DynamoDeliveryLog, DynamoEventStore, DynamoDeliveryLog, SqsQueue<DeliveryTask>, SqsQueue<FanoutTask>>;

/// The monitor's state, built once per process.
pub struct AwsMonitor {
    /// The SQS client, for queue depths.
    pub sqs: aws_sdk_sqs::Client,
    /// The registry, for the count of open circuits.
    pub registry: DynamoRegistry,
    /// The queues whose depth is reported.
    pub queues: Vec<WatchedQueue>,
    /// Finds deliveries whose task was lost and sends them again.
    pub reconciler: AwsReconciler,
    /// Queue depths, open circuits and the sweep's counts, written as an EMF
    /// line per run.
    pub metrics: Recorder,
}

impl AwsMonitor {
    /// The monitor over the clients of `sdk` and the resources of `settings`.
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Self {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let r = &settings.reconcile;
        let log = DynamoDeliveryLog::new(
            dynamodb.clone(),
            &r.deliveries_table,
            time::Duration::days(i64::from(r.retention_days)),
        );
        Self {
            reconciler: Reconciler {
                deliveries: log.clone(),
                events: DynamoEventStore::new(dynamodb.clone(), &r.deliveries_table),
                log,
                queue: SqsQueue::new(sqs.clone(), &r.deliveries_queue_url),
                ops: SqsQueue::new(sqs.clone(), &r.fanout_queue_url),
                margin: time::Duration::try_from(r.after).unwrap_or(time::Duration::HOUR),
                limit: RECONCILE_LIMIT,
            },
            sqs,
            registry: DynamoRegistry::new(dynamodb, &settings.registry_table),
            queues: settings.queues.clone(),
            metrics: Recorder::new(switchyard_aws::config::stage(), "monitor"),
        }
    }

    /// Reads every depth and the open circuits, writes the metrics, and
    /// answers the report. A queue that cannot be read fails the run (after
    /// the others' metrics are written): a silent gap would hide an alarm.
    pub async fn handle(&self) -> Result<serde_json::Value, PortError> {
        let reads = self
            .queues
            .iter()
            .map(|q| switchyard_aws::redrive::queue_depth(&self.sqs, &q.name, &q.url));
        let results = futures_util::future::join_all(reads).await;
        let now_ms = (switchyard_core::time_util::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let circuits = self.registry.open_circuits(now_ms).await;
        let mut report = Report {
            queues: Vec::new(),
            open_circuits: 0,
            reconciled: Swept::default(),
        };
        let mut failure = None;
        for (q, r) in self.queues.iter().zip(results) {
            match r {
                Ok(d) => {
                    self.metrics.add(|mt| {
                        mt.queue(m::QueueVisible, &q.name, d.visible);
                        mt.queue(m::QueueInFlight, &q.name, d.in_flight);
                        mt.queue(m::QueueDelayed, &q.name, d.delayed);
                    });
                    report.queues.push(Depth {
                        name: q.name.clone(),
                        visible: d.visible,
                        in_flight: d.in_flight,
                        delayed: d.delayed,
                    });
                }
                Err(e) => {
                    tracing::error!(queue = %q.name, error = %e, "queue depth unreadable");
                    failure = Some(e);
                }
            }
        }
        match circuits {
            Ok(n) => {
                self.metrics.add(|mt| mt.count(m::EndpointsCircuitOpen, n));
                report.open_circuits = n;
            }
            Err(e) => {
                tracing::error!(error = %e, "open circuits unreadable");
                failure = Some(e);
            }
        }
        match self.reconciler.sweep(switchyard_core::time_util::now_utc()).await {
            Ok(swept) => {
                self.metrics.add(|mt| {
                    mt.count(m::DeliveriesRequeued, swept.requeued);
                    mt.count(m::DeliveriesLost, swept.lost);
                });
                report.reconciled = swept;
            }
            Err(e) => {
                tracing::error!(error = %e, "the reconciler's sweep failed");
                failure = Some(e);
            }
        }
        self.metrics.flush();
        match failure {
            Some(e) => Err(e),
            None => Ok(serde_json::to_value(&report).unwrap_or_default()),
        }
    }
}
