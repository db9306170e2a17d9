//! The consumer handler: a batch from one of the internal queues in, a
//! partial batch response out.
//!
//! Each record goes through `switchyard_flow::consumer::Consumer` on its own
//! (concurrently with the others). What becomes of it:
//!
//! - handled, or no handler for its type (acknowledged, counted): deleted;
//! - to retry: made invisible for the backoff delay, reported as failed;
//! - poison (not an event, or a permanent failure): made visible again at
//!   once and reported as failed, so it spends no time before the queue's
//!   redrive DLQ takes it after `maxReceiveCount`.
//!
//! One log line per batch gives the counts.

pub mod examples;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_aws::config::{ConfigError, env_in_range, env_var};
use switchyard_aws::dynamo::DynamoStateStore;
use switchyard_aws::{
    RecordFailure, SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs, process_sqs_records, queue_url_from_arn,
};
use switchyard_core::metrics::{Recorder, m};
use switchyard_core::retry::{random_unit, visibility_for};
use switchyard_flow::consumer::{BatchCounts, Consumer, ConsumerConfig, Markers, Outcome, RegisterError};

/// Where the consumer's state is and how it retries; from the environment in Lambda.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The consumers' state table (idempotency markers, workflow progress and effects).
    pub state_table: String,
    /// Retry delays and the handler lease.
    pub config: ConsumerConfig,
}

impl Settings {
    /// Reads `STATE_TABLE`, `CONSUMER_RETRY_BASE_SECS` (0 … 3600, default 5),
    /// `CONSUMER_RETRY_MAX_SECS` (1 … 43 200, default 900) and
    /// `CONSUMER_LEASE_SECS` (1 … 43 200, default 120; longer than a
    /// handler runs).
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = ConsumerConfig::default();
        Ok(Self {
            state_table: env_var("STATE_TABLE")?,
            config: ConsumerConfig {
                retry_base: Duration::from_secs(env_in_range(
                    "CONSUMER_RETRY_BASE_SECS",
                    d.retry_base.as_secs(),
                    0..=3600,
                )?),
                retry_max: Duration::from_secs(env_in_range(
                    "CONSUMER_RETRY_MAX_SECS",
                    d.retry_max.as_secs(),
                    1..=43_200,
                )?),
                lease: Duration::from_secs(env_in_range("CONSUMER_LEASE_SECS", d.lease.as_secs(), 1..=43_200)?),
                marker_ttl: d.marker_ttl,
            },
        })
    }
}

/// The consumer function's state, built once per process.
pub struct ConsumerApp<M> {
    /// The registered handlers and workflows.
    pub consumer: Consumer<M>,
    /// The SQS client, to put a failed message back to sleep until its retry.
    pub sqs: aws_sdk_sqs::Client,
    /// `ConsumerSucceeded` / `ConsumerFailed` / `ConsumerSkipped`, written
    /// as an EMF line at the end of each batch.
    pub metrics: Recorder,
}

/// The consumer over DynamoDB, with the example handlers and workflows.
pub type AwsConsumer = ConsumerApp<Arc<DynamoStateStore>>;

impl AwsConsumer {
    /// The consumer over the state table of `settings`, with the example handlers and workflows registered.
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Result<Self, RegisterError> {
        let store = Arc::new(DynamoStateStore::new(
            aws_sdk_dynamodb::Client::new(sdk),
            &settings.state_table,
        ));
        Ok(Self {
            consumer: examples::register(Consumer::new(store.clone(), settings.config), store)?,
            sqs: aws_sdk_sqs::Client::new(sdk),
            metrics: Recorder::new(switchyard_aws::config::stage(), "consumer"),
        })
    }
}

impl<M: Markers> ConsumerApp<M> {
    /// Handles an SQS batch; the failed records are in the response.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.handle_counted(event).await.0
    }

    /// Handles a batch and says what became of its records.
    pub async fn handle_counted(&self, event: SqsEvent) -> (SqsBatchResponse, BatchCounts) {
        let counts = Mutex::new(BatchCounts::default());
        let counts_ref = &counts;
        let response = process_sqs_records(event, |body, record| async move {
            let now = switchyard_core::time_util::now_utc();
            let outcome = self
                .consumer
                .process(&body, record.receive_count, now, random_unit())
                .await;
            if let Ok(mut c) = counts_ref.lock() {
                c.add(&outcome);
            }
            let (delay, reason) = match outcome {
                Outcome::Handled { .. } => return Ok(()),
                Outcome::Unknown { event_type } => {
                    tracing::info!(message_id = %record.message_id, event_type = %event_type, "no handler for this type; acknowledged");
                    return Ok(());
                }
                Outcome::Retry { after, reason } => (after, reason),
                Outcome::Poison { reason } => {
                    tracing::error!(message_id = %record.message_id, receive_count = record.receive_count, reason = %reason, "poison message; the DLQ takes it after maxReceiveCount");
                    (Duration::ZERO, reason)
                }
            };
            match queue_url_from_arn(&record.queue_arn) {
                Some(url) => {
                    let changed = self
                        .sqs
                        .change_message_visibility()
                        .queue_url(url)
                        .receipt_handle(&record.receipt_handle)
                        .visibility_timeout(visibility_for(delay) as i32)
                        .send()
                        .await;
                    if let Err(e) = changed {
                        // It still comes back, after the queue's own timeout.
                        tracing::warn!(message_id = %record.message_id, error = %switchyard_aws::aws_sdk_sqs::error::DisplayErrorContext(e), "ChangeMessageVisibility failed");
                    }
                }
                None => tracing::warn!(message_id = %record.message_id, arn = %record.queue_arn, "no queue URL for this record's source ARN"),
            }
            Err(RecordFailure::new(reason))
        })
        .await;
        let counts = counts.into_inner().unwrap_or_default();
        self.metrics.add(|m| {
            // A duplicate was handled before: success, nothing run again.
            m.count(m::ConsumerSucceeded, (counts.handled + counts.duplicates) as u64);
            m.count(m::ConsumerFailed, (counts.retried + counts.poison) as u64);
            m.count(m::ConsumerSkipped, counts.unknown as u64);
        });
        self.metrics.flush();
        tracing::info!(
            handled = counts.handled,
            duplicates = counts.duplicates,
            unknown_types = counts.unknown,
            retried = counts.retried,
            poison = counts.poison,
            "batch done"
        );
        (response, counts)
    }
}
