//! The delivery handler: a batch of delivery tasks from SQS in, a partial
//! batch response out. Each task is handled concurrently with the others by
//! `switchyard_core::delivery::Deliverer` (sign, POST, judge, record,
//! schedule); this module maps the outcome back to SQS:
//!
//! - delivered, failed for good (already in the DLQ), skipped, or a repeat of
//!   a finished delivery: the message is acknowledged (deleted);
//! - to be retried (or not yet due): the message is made invisible for the
//!   delay with ChangeMessageVisibility and reported as a batch item failure,
//!   so the same message comes back when the next attempt is due; or, when
//!   `switchyard_core::requeue` says so (a wait that is not a failure, a
//!   message near its retention or its receive budget), the task is sent
//!   again as a new delayed message and the received one acknowledged;
//! - the registry, the log or a queue could not be reached: a batch item
//!   failure; the message comes back after the queue's visibility timeout.

pub mod http;
pub mod resolver;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::Duration;
use switchyard_aws::config::{ConfigError, env_in_range, env_var, retention_days};
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoRegistry};
use switchyard_aws::kms::KmsDataKeys;
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{BatchRegistry, RecordFailure, SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs, process_sqs_batch};
use switchyard_core::batch_log::BatchLine;
use switchyard_core::delivery::{CircuitConfig, Deliverer, DeliveryConfig, DeliveryOutcome, NoticeLimits};
use switchyard_core::metrics::{Observed, Recorder, m};
use switchyard_core::ports::{
    DeliveryLog, EndpointHealth, RateLimiter, Redelivery, Registry, TaskQueue, WebhookSender,
};
use switchyard_core::requeue::{self, QueueLimits, Received, Requeue, WaitKind};
use switchyard_core::retry::{self, TimeScale};
use switchyard_core::ssrf::SsrfPolicy;
use switchyard_core::{DeliveryTask, FanoutTask};
use tracing::Instrument as _;

pub use http::{HttpSender, SenderError};

/// The delivery function's state, built once per process.
pub struct Delivery<R, H, L, D, O, Q> {
    /// Sends due tasks and records their outcome.
    pub deliverer: Deliverer<R, H, L, D, O>,
    /// The deliveries queue, to put a task back to sleep until it is due.
    pub queue: Q,
    /// The deliveries queue's retention and receive budget.
    pub queue_limits: QueueLimits,
    /// This invocation's metrics (the registry and sender wrappers add to
    /// them too), written as one EMF line at the end of each batch.
    pub metrics: Recorder,
}

/// Delivery over DynamoDB, SQS and the hyper-based [`HttpSender`].
pub type AwsDelivery = Delivery<
    Observed<DynamoRegistry>,
    Observed<HttpSender>,
    DynamoDeliveryLog,
    SqsQueue<DeliveryTask>,
    SqsQueue<FanoutTask>,
    SqsQueue<DeliveryTask>,
>;

/// Where delivery's resources are and how it behaves; from the environment
/// in Lambda.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The registry table (endpoints and their circuits).
    pub registry_table: String,
    /// The deliveries table (deliveries and attempts).
    pub deliveries_table: String,
    /// The deliveries queue this function reads.
    pub deliveries_queue_url: String,
    /// Its DLQ.
    pub deliveries_dlq_url: String,
    /// Operational events (`delivery.exhausted`, `endpoint.disabled`) enter here.
    pub fanout_queue_url: String,
    /// The deliveries queue's `maxReceiveCount` and retention.
    pub queue_limits: QueueLimits,
    /// How long one webhook request may take.
    pub request_timeout: Duration,
    /// How long deliveries and attempts are kept, in days.
    pub retention_days: u16,
    /// Circuit breaker, retry and notice settings.
    pub config: DeliveryConfig,
    /// The KMS key that sealed endpoint secrets; `None` (tests only) reads
    /// plain-text secrets only.
    pub secrets_key_id: Option<String>,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_TABLE`, `DELIVERIES_QUEUE_URL`,
    /// `DELIVERIES_DLQ_URL`, `FANOUT_QUEUE_URL`, `SECRETS_KEY_ID` (the KMS
    /// key that sealed endpoint secrets), and optionally
    /// `DELIVERIES_MAX_RECEIVE_COUNT` (200), `DELIVERIES_RETENTION_SECS`
    /// (1209600), `REQUEST_TIMEOUT_MS` (15000), `EVENT_RETENTION_DAYS` (30),
    /// `CIRCUIT_FAILURE_THRESHOLD` (5), `CIRCUIT_OPEN_SECS` (60),
    /// `ENDPOINT_DISABLE_AFTER_HOURS` (120), `STALL_AFTER_MS` (half the
    /// request timeout; 0: never), `MAX_RETRY_AFTER_SECS` (21600),
    /// `NOTICE_WINDOW_SECS` (300), `NOTICES_PER_TENANT_HOUR` (60),
    /// `ALLOW_HTTP` (false), `SSRF_ALLOW_LIST` (empty) and
    /// `RETRY_TIME_SCALE` (1.0; tests only).
    pub fn from_env() -> Result<Self, ConfigError> {
        let timeout_ms = env_in_range(
            "REQUEST_TIMEOUT_MS",
            http::DEFAULT_TIMEOUT.as_millis() as u64,
            100..=900_000,
        )?;
        let defaults = CircuitConfig::default();
        let circuit = CircuitConfig {
            failure_threshold: env_in_range("CIRCUIT_FAILURE_THRESHOLD", defaults.failure_threshold, 1..=1000)?,
            open_for: Duration::from_secs(env_in_range("CIRCUIT_OPEN_SECS", 60, 1..=86_400)?),
            disable_after: Duration::from_secs(3600 * env_in_range("ENDPOINT_DISABLE_AFTER_HOURS", 120, 1..=8760)?),
            stall_after: match env_in_range("STALL_AFTER_MS", timeout_ms / 2, 0..=900_000)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
        };
        let request_timeout = Duration::from_millis(timeout_ms);
        let max_retry_after = Duration::from_secs(env_in_range(
            "MAX_RETRY_AFTER_SECS",
            retry::MAX_RETRY_AFTER.as_secs(),
            0..=604_800,
        )?);
        let time_scale = match std::env::var("RETRY_TIME_SCALE").ok().filter(|v| !v.is_empty()) {
            None => TimeScale::default(),
            Some(v) => TimeScale::parse(&v).map_err(|e| ConfigError::Invalid {
                name: "RETRY_TIME_SCALE",
                reason: e.to_string(),
            })?,
        };
        let ssrf = switchyard_aws::config::ssrf_policy()?;
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            deliveries_queue_url: env_var("DELIVERIES_QUEUE_URL")?,
            deliveries_dlq_url: env_var("DELIVERIES_DLQ_URL")?,
            fanout_queue_url: env_var("FANOUT_QUEUE_URL")?,
            secrets_key_id: Some(env_var("SECRETS_KEY_ID")?),
            queue_limits: QueueLimits {
                max_receive_count: env_in_range(
                    "DELIVERIES_MAX_RECEIVE_COUNT",
                    requeue::DEFAULT_MAX_RECEIVE_COUNT,
                    2..=1000,
                )?,
                retention: Duration::from_secs(env_in_range(
                    "DELIVERIES_RETENTION_SECS",
                    requeue::MAX_RETENTION.as_secs(),
                    60..=requeue::MAX_RETENTION.as_secs(),
                )?),
            },
            request_timeout,
            retention_days: retention_days()?,
            config: DeliveryConfig {
                time_scale,
                max_retry_after,
                circuit,
                notices: NoticeLimits {
                    window: Duration::from_secs(env_in_range("NOTICE_WINDOW_SECS", 300, 1..=86_400)?),
                    per_endpoint: 1,
                    per_tenant_hour: env_in_range("NOTICES_PER_TENANT_HOUR", 60, 1..=100_000)?,
                },
                ..deployed_config(request_timeout, ssrf)
            },
        })
    }
}

/// How long ago a message sent at `sent_at_ms` (Unix milliseconds) was
/// sent; zero if SQS did not say or the clocks disagree.
pub fn message_age(sent_at_ms: Option<i64>, now: time::OffsetDateTime) -> Duration {
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    sent_at_ms
        .map(|sent| Duration::from_millis(now_ms.saturating_sub(sent).max(0) as u64))
        .unwrap_or_default()
}

/// The delivery rules as the function runs them with this request timeout
/// and no other setting: the probe window is the timeout and 5 s, and an
/// attempt stalls after half the timeout.
pub fn deployed_config(request_timeout: Duration, ssrf: SsrfPolicy) -> DeliveryConfig {
    DeliveryConfig {
        circuit: CircuitConfig {
            stall_after: Some(request_timeout / 2),
            ..CircuitConfig::default()
        },
        probe_window: request_timeout + Duration::from_secs(5),
        ssrf,
        ..DeliveryConfig::default()
    }
}

impl AwsDelivery {
    /// Delivery over the tables and queues of `settings`; fails if the HTTP client cannot be built.
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Result<Self, SenderError> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let metrics = Recorder::new(switchyard_aws::config::stage(), "delivery");
        let mut registry = DynamoRegistry::new(dynamodb.clone(), &settings.registry_table);
        if let Some(key_id) = &settings.secrets_key_id {
            registry = registry.with_keyring(KmsDataKeys::keyring(sdk, key_id));
        }
        Ok(Self {
            deliverer: Deliverer {
                registry: Observed {
                    inner: registry,
                    metrics: metrics.metrics.clone(),
                },
                sender: Observed {
                    inner: HttpSender::new(settings.request_timeout, settings.config.ssrf.clone())?,
                    metrics: metrics.metrics.clone(),
                },
                log: DynamoDeliveryLog::new(
                    dynamodb,
                    &settings.deliveries_table,
                    time::Duration::days(i64::from(settings.retention_days)),
                ),
                dead_letters: SqsQueue::new(sqs.clone(), &settings.deliveries_dlq_url),
                ops: SqsQueue::new(sqs.clone(), &settings.fanout_queue_url),
                config: settings.config.clone(),
            },
            queue: SqsQueue::new(sqs, &settings.deliveries_queue_url),
            queue_limits: settings.queue_limits,
            metrics,
        })
    }
}

impl<R, H, L, D, O, Q> Delivery<R, H, L, D, O, Q>
where
    R: Registry + EndpointHealth + RateLimiter,
    H: WebhookSender,
    L: DeliveryLog,
    D: TaskQueue<DeliveryTask>,
    O: TaskQueue<FanoutTask>,
    Q: Redelivery<DeliveryTask>,
{
    /// Handles an SQS batch of delivery tasks; the failed records are in the response.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let response = self.handle_batch(event).await;
        self.metrics.flush();
        response
    }

    async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        // The deliveries that landed share one line (see
        // `switchyard_core::batch_log`); the rest keep their own.
        let delivered = BatchLine::new();
        let delivered_ref = &delivered;
        // Each endpoint is read once per batch (`BatchRegistry`).
        let endpoints = &BatchRegistry::new(&self.deliverer.registry);
        let response = process_sqs_batch(event, |task: DeliveryTask, record| {
            let span = switchyard_core::trace::span(task.traceparent.as_deref());
            async move {
            let outcome = self
                .deliverer
                .deliver_reading(endpoints, &task, switchyard_core::time_util::now_utc, retry::random_unit)
                .await;
            self.metrics.add(|m| match &outcome {
                Ok(DeliveryOutcome::Delivered { .. }) => m.count(m::DeliveriesSucceeded, 1),
                Ok(DeliveryOutcome::Retry { .. }) => m.count(m::DeliveriesRetried, 1),
                Ok(DeliveryOutcome::Failed { .. }) => m.count(m::DeliveriesExhausted, 1),
                _ => {}
            });
            // Only a failed record needs these, for its reason.
            let ids = |task: &DeliveryTask| {
                format!(
                    "delivery {} (event {}, endpoint {}, tenant {})",
                    task.delivery_id, task.event_id, task.endpoint_id, task.tenant_id
                )
            };
            let (delay, kind) = match outcome {
                Ok(DeliveryOutcome::Retry { delay }) => {
                    tracing::info!(delivery_id = %task.delivery_id, event_id = %task.event_id, tenant_id = %task.tenant_id, retry_in_ms = delay.as_millis() as u64, "attempt failed; retry scheduled");
                    (delay, WaitKind::Attempted)
                }
                Ok(DeliveryOutcome::Wait { delay }) => (delay, WaitKind::NotAttempted),
                Ok(DeliveryOutcome::Delivered { status }) => {
                    tracing::debug!(delivery_id = %task.delivery_id, event_id = %task.event_id, tenant_id = %task.tenant_id, status, "delivered");
                    let trace = task.traceparent.as_deref().and_then(switchyard_core::trace::trace_id_of).unwrap_or_default();
                    delivered_ref.add(task.tenant_id.as_str(), task.event_id.as_str(), Some(task.delivery_id.as_str()), trace);
                    return Ok(());
                }
                Ok(other) => {
                    tracing::info!(delivery_id = %task.delivery_id, event_id = %task.event_id, tenant_id = %task.tenant_id, outcome = ?other, "delivery done");
                    return Ok(());
                }
                Err(e) => return Err(RecordFailure::new(format_args!("{}: {e}", ids(&task)))),
            };
            let received = Received {
                receive_count: record.receive_count,
                age: message_age(record.sent_at_ms, switchyard_core::time_util::now_utc()),
            };
            if let Requeue::Resend { delay_secs } = requeue::plan(delay, kind, received, &self.queue_limits) {
                // The new message first, then the received one acknowledged:
                // a crash between the two leaves two copies, never none.
                match self.queue.send_after(&task, Duration::from_secs(u64::from(delay_secs))).await {
                    Ok(()) => {
                        self.metrics.add(|m| m.count(m::TasksResent, 1));
                        tracing::debug!(delivery_id = %task.delivery_id, receive_count = record.receive_count, delay_secs, "task sent again as a new message");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(delivery_id = %task.delivery_id, error = %e, "could not send the task again; the same message is hidden instead");
                    }
                }
            }
            // Make the same message come back when the next attempt is due.
            if let Err(e) = self.queue.redeliver_after(&record.receipt_handle, delay).await {
                tracing::warn!(delivery_id = %task.delivery_id, error = %e, "could not set the retry delay; the queue's visibility timeout applies");
            }
            Err(RecordFailure::new(format_args!(
                "{}: next attempt in {} ms",
                ids(&task),
                delay.as_millis()
            )))
            }
            .instrument(span)
        })
        .await;
        if let Some(line) = delivered.finish() {
            tracing::info!(count = line.count, delivery_ids = %line.delivery_ids, event_ids = %line.event_ids, tenant_ids = %line.tenant_ids, trace_ids = %line.trace_ids, "delivered");
        }
        response
    }
}
