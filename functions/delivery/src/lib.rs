//! The delivery handler: a batch of delivery tasks from SQS in, a partial
//! batch response out. Each task is delivered concurrently with the others
//! (`switchyard_core::delivery::deliver`): signed, POSTed, its attempt
//! recorded. A 2xx acknowledges the message; any other answer, no answer, or
//! a failure to read the endpoint or record the attempt is reported as a
//! batch item failure, so SQS delivers the task again after the queue's
//! visibility timeout (and to the DLQ after `maxReceiveCount`).

pub mod http;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::Duration;
use switchyard_aws::config::{ConfigError, env_in_range, env_var, retention_days};
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoRegistry};
use switchyard_aws::{RecordFailure, SdkConfig, aws_sdk_dynamodb, process_sqs_batch};
use switchyard_core::DeliveryTask;
use switchyard_core::delivery::{DeliveryOutcome, deliver};
use switchyard_core::ports::{DeliveryLog, Registry, WebhookSender};

pub use http::HttpSender;

/// The delivery function's state, built once per process.
pub struct Delivery<R, H, L> {
    pub registry: R,
    pub sender: H,
    pub log: L,
}

/// Delivery over DynamoDB and reqwest.
pub type AwsDelivery = Delivery<DynamoRegistry, HttpSender, DynamoDeliveryLog>;

/// Where delivery's resources are and how it calls out; from the
/// environment in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub registry_table: String,
    pub deliveries_table: String,
    pub request_timeout: Duration,
    pub retention_days: u16,
}

impl Settings {
    /// Reads `REGISTRY_TABLE`, `DELIVERIES_TABLE`, and optionally
    /// `REQUEST_TIMEOUT_MS` (default 15000) and `EVENT_RETENTION_DAYS`
    /// (default 30).
    pub fn from_env() -> Result<Self, ConfigError> {
        let timeout_ms = env_in_range(
            "REQUEST_TIMEOUT_MS",
            http::DEFAULT_TIMEOUT.as_millis() as u64,
            100..=900_000,
        )?;
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_table: env_var("DELIVERIES_TABLE")?,
            request_timeout: Duration::from_millis(timeout_ms),
            retention_days: retention_days()?,
        })
    }
}

impl AwsDelivery {
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Result<Self, reqwest::Error> {
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Ok(Self {
            registry: DynamoRegistry::new(dynamodb.clone(), &settings.registry_table),
            sender: HttpSender::new(settings.request_timeout)?,
            log: DynamoDeliveryLog::new(
                dynamodb,
                &settings.deliveries_table,
                time::Duration::days(i64::from(settings.retention_days)),
            ),
        })
    }
}

impl<R: Registry, H: WebhookSender, L: DeliveryLog> Delivery<R, H, L> {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        process_sqs_batch(event, |task: DeliveryTask, record| async move {
            let outcome = deliver(
                &self.registry,
                &self.sender,
                &self.log,
                &task,
                record.receive_count,
                switchyard_core::time_util::now_utc,
            )
            .await;
            let ids = format!("delivery {} (event {}, endpoint {}, tenant {})", task.delivery_id, task.event_id, task.endpoint_id, task.tenant_id);
            match outcome {
                Ok(DeliveryOutcome::Delivered { status }) => {
                    tracing::info!(delivery_id = %task.delivery_id, event_id = %task.event_id, tenant_id = %task.tenant_id, attempt = record.receive_count, status, "delivered");
                    Ok(())
                }
                Ok(DeliveryOutcome::Skipped { reason }) => {
                    tracing::info!(delivery_id = %task.delivery_id, event_id = %task.event_id, tenant_id = %task.tenant_id, reason, "skipped");
                    Ok(())
                }
                Ok(DeliveryOutcome::Failed { status, error_kind }) => Err(RecordFailure::new(format_args!(
                    "{ids}: attempt {} failed (status {status:?}, {})",
                    record.receive_count,
                    error_kind.unwrap_or("-")
                ))),
                Err(e) => Err(RecordFailure::new(format_args!("{ids}: {e}"))),
            }
        })
        .await
    }
}
