//! Switchyard's AWS adapters.
//!
//! The domain (`switchyard-core`) states what it needs as small traits; this
//! crate implements them over the AWS SDK: [`sqs::SqsQueue`] for task queues,
//! [`dynamo`] for the registry, the event store and the delivery log,
//! [`eventbridge::EventBridgeBus`] for the application's event bus,
//! [`secrets::SecretsManagerAdminKey`] for the operator's admin key,
//! [`kms::KmsDataKeys`] for the data keys that seal endpoint secrets. Clients are
//! built once per process from the configuration [`config::load`] returns, which honours the standard
//! AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, credentials).
//!
//! [`batch::process_sqs_batch`] turns an SQS trigger's batch into a partial
//! batch response, one record at a time. [`logging::init`] installs the
//! functions' log subscriber.

pub mod batch;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod eventbridge;
pub mod kms;
pub mod logging;
pub mod redrive;
pub mod secrets;
pub mod sqs;
mod sqs_batch;

pub use aws_config::SdkConfig;
pub use batch::{
    BatchRegistry, Memo, RecordFailure, SqsRecord, item_failure, process_sqs_batch, process_sqs_records,
    queue_url_from_arn,
};
pub use config::{env_var, load};
pub use {aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_kms, aws_sdk_secretsmanager, aws_sdk_sqs};
