//! The walking skeleton's queues and tables, created in moto.
//!
//! They mirror `template.yaml`: two tables with string keys `pk`/`sk` (the
//! deliveries table with the `gsi1` and `gsi2` indexes) and TTL on
//! `expires_at`; the fan-out, deliveries and ingest queues, each with a
//! redrive DLQ; and the application's EventBridge bus.
//! Every name starts with a unique prefix, because moto's CreateQueue quietly
//! returns an existing queue of the same name.

use crate::{LocalError, aws_err};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::sync::atomic::{AtomicU32, Ordering};
use switchyard_core::keys;

/// The names and URLs of one local stack's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub prefix: String,
    pub registry_table: String,
    pub deliveries_table: String,
    pub fanout_queue_url: String,
    pub fanout_dlq_url: String,
    pub deliveries_queue_url: String,
    pub deliveries_dlq_url: String,
    /// The SQS ingest queue internal producers send events to, and its DLQ.
    pub ingest_queue_url: String,
    pub ingest_dlq_url: String,
    /// The application's EventBridge bus (the internal track).
    pub event_bus_name: String,
}

/// The ingest queue's `maxReceiveCount`, as in `template.yaml`.
pub const INGEST_MAX_RECEIVE_COUNT: u32 = 5;

/// How the queues behave; tests shorten the visibility timeout so a failed
/// message comes back in a second, not in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    pub visibility_timeout_secs: u32,
    pub fanout_max_receive_count: u32,
    pub deliveries_max_receive_count: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            fanout_max_receive_count: 5,
            deliveries_max_receive_count: 200,
        }
    }
}

/// A prefix no other run or test in this process has used.
pub fn unique_prefix(label: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "sy-{label}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Resources {
    pub async fn create(sdk: &SdkConfig, prefix: &str, opts: QueueOptions) -> Result<Self, LocalError> {
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let registry_table = format!("{prefix}-registry");
        let deliveries_table = format!("{prefix}-deliveries");
        create_table(&ddb, &registry_table, &[]).await?;
        create_table(
            &ddb,
            &deliveries_table,
            &[
                (keys::GSI1, keys::GSI1_PK, keys::GSI1_SK),
                (keys::GSI2, keys::GSI2_PK, keys::GSI2_SK),
            ],
        )
        .await?;
        let vt = opts.visibility_timeout_secs;
        let (fanout_queue_url, fanout_dlq_url) =
            create_queue_with_dlq(&sqs, &format!("{prefix}-fanout"), vt, opts.fanout_max_receive_count).await?;
        let (deliveries_queue_url, deliveries_dlq_url) = create_queue_with_dlq(
            &sqs,
            &format!("{prefix}-deliveries"),
            vt,
            opts.deliveries_max_receive_count,
        )
        .await?;
        let (ingest_queue_url, ingest_dlq_url) =
            create_queue_with_dlq(&sqs, &format!("{prefix}-ingest"), vt, INGEST_MAX_RECEIVE_COUNT).await?;
        let event_bus_name = format!("{prefix}-app-bus");
        aws_sdk_eventbridge::Client::new(sdk)
            .create_event_bus()
            .name(&event_bus_name)
            .send()
            .await
            .map_err(|e| {
                aws_err(
                    format!("CreateEventBus {event_bus_name}"),
                    aws_sdk_eventbridge::error::DisplayErrorContext(e),
                )
            })?;
        Ok(Self {
            prefix: prefix.to_string(),
            registry_table,
            deliveries_table,
            fanout_queue_url,
            fanout_dlq_url,
            deliveries_queue_url,
            deliveries_dlq_url,
            ingest_queue_url,
            ingest_dlq_url,
            event_bus_name,
        })
    }
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, LocalError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| aws_err("key schema", e))
}

fn string_attr(name: &str) -> Result<AttributeDefinition, LocalError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| aws_err("attribute definition", e))
}

/// A pay-per-request table keyed `pk`/`sk`, with the given GSIs
/// (name, hash key, range key) and TTL on `expires_at`.
pub async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    name: &str,
    gsis: &[(&str, &str, &str)],
) -> Result<(), LocalError> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(keys::PK, KeyType::Hash)?)
        .key_schema(key(keys::SK, KeyType::Range)?)
        .attribute_definitions(string_attr(keys::PK)?)
        .attribute_definitions(string_attr(keys::SK)?);
    for (index, hash, range) in gsis {
        req = req
            .attribute_definitions(string_attr(hash)?)
            .attribute_definitions(string_attr(range)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .key_schema(key(hash, KeyType::Hash)?)
                    .key_schema(key(range, KeyType::Range)?)
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(|e| aws_err("GSI", e))?,
            );
    }
    req.send().await.map_err(|e| {
        aws_err(
            format!("CreateTable {name}"),
            aws_sdk_dynamodb::error::DisplayErrorContext(e),
        )
    })?;
    ddb.update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(keys::TTL)
                .enabled(true)
                .build()
                .map_err(|e| aws_err("TTL", e))?,
        )
        .send()
        .await
        .map_err(|e| {
            aws_err(
                format!("UpdateTimeToLive {name}"),
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    Ok(())
}

/// A queue and its DLQ; returns (queue URL, DLQ URL).
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<(String, String), LocalError> {
    let dlq_url = create_queue(sqs, &format!("{name}-dlq"), &[]).await?;
    let dlq_arn = queue_arn(sqs, &dlq_url).await?;
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string() });
    let url = create_queue(
        sqs,
        name,
        &[
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_secs.to_string(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ],
    )
    .await?;
    Ok((url, dlq_url))
}

pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, LocalError> {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        req = req.attributes(k.clone(), v);
    }
    let out = req.send().await.map_err(|e| {
        aws_err(
            format!("CreateQueue {name}"),
            aws_sdk_sqs::error::DisplayErrorContext(e),
        )
    })?;
    out.queue_url
        .ok_or_else(|| LocalError::Aws(format!("CreateQueue {name} returned no URL")))
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, LocalError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| aws_err("GetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    out.attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| LocalError::Aws(format!("no ARN for {url}")))
}

/// How many messages a queue holds (visible + in flight + delayed).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, LocalError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| aws_err("GetQueueAttributes", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    Ok(out
        .attributes
        .unwrap_or_default()
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}
