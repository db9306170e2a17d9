//! The fan-out handler: a batch of fan-out tasks from SQS in, a partial batch
//! response out. Each task becomes one delivery task per matching endpoint
//! (`switchyard_core::fanout`); a task whose endpoints could not be read or
//! whose deliveries could not be queued is reported as a failure and comes
//! back from SQS later.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use switchyard_aws::config::{ConfigError, env_var};
use switchyard_aws::dynamo::DynamoRegistry;
use switchyard_aws::sqs::SqsQueue;
use switchyard_aws::{RecordFailure, SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs, process_sqs_batch};
use switchyard_core::fanout::fan_out;
use switchyard_core::metrics::{Recorder, m};
use switchyard_core::ports::{Registry, TaskQueue};
use switchyard_core::{DeliveryTask, FanoutTask};

/// The fan-out function's state, built once per process.
pub struct Fanout<R, Q> {
    pub registry: R,
    pub queue: Q,
    /// `FanoutTasks`, written as an EMF line at the end of each batch.
    pub metrics: Recorder,
}

/// Fan-out over DynamoDB and SQS.
pub type AwsFanout = Fanout<DynamoRegistry, SqsQueue<DeliveryTask>>;

/// Where fan-out's resources are; from the environment in Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub registry_table: String,
    pub deliveries_queue_url: String,
}

impl Settings {
    /// Reads `REGISTRY_TABLE` and `DELIVERIES_QUEUE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            registry_table: env_var("REGISTRY_TABLE")?,
            deliveries_queue_url: env_var("DELIVERIES_QUEUE_URL")?,
        })
    }
}

impl AwsFanout {
    pub fn new(sdk: &SdkConfig, settings: &Settings) -> Self {
        Self {
            registry: DynamoRegistry::new(aws_sdk_dynamodb::Client::new(sdk), &settings.registry_table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(sdk), &settings.deliveries_queue_url),
            metrics: Recorder::new(switchyard_aws::config::stage(), "fanout"),
        }
    }
}

impl<R: Registry, Q: TaskQueue<DeliveryTask>> Fanout<R, Q> {
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let response = self.handle_batch(event).await;
        self.metrics.flush();
        response
    }

    async fn handle_batch(&self, event: SqsEvent) -> SqsBatchResponse {
        process_sqs_batch(event, |task: FanoutTask, record| async move {
            let env = &task.envelope;
            let now = switchyard_core::time_util::now_utc();
            match fan_out(&self.registry, &self.queue, &task, now).await {
                Ok(n) => {
                    self.metrics.add(|m| m.count(m::FanoutTasks, n as u64));
                    tracing::info!(tenant_id = %env.tenant_id, event_id = %env.id, message_id = %record.message_id, deliveries = n, "fanned out");
                    Ok(())
                }
                Err(e) => Err(RecordFailure::new(format_args!("event {} of {}: {e}", env.id, env.tenant_id))),
            }
        })
        .await
    }
}
