//! The stack's queues, tables, bus and rules, created in moto.
//!
//! They mirror `template.yaml`: three tables with string keys `pk`/`sk` (the
//! deliveries table with the `gsi1`, `gsi2` and `gsi3` indexes) and TTL on
//! `expires_at` (registry, deliveries, and the consumers' state); the
//! fan-out, deliveries and ingest queues, each with a redrive DLQ; and the
//! application's EventBridge bus.
//!
//! The internal track is read from `template.yaml` itself
//! ([`crate::template::internal_routes`]): every rule on `AppEventBus` is
//! created on the local bus with the template's pattern, and every queue it
//! targets with its DLQ and the template's `maxReceiveCount`, named
//! `{prefix}-{logical id in kebab case}` (`InternalUserQueue` ->
//! `…-internal-user-queue`). A template the runner cannot reproduce fails
//! the creation, naming the resource. Two things differ from AWS on purpose:
//! the visibility timeout is [`QueueOptions::visibility_timeout_secs`] for
//! every queue (tests shorten it), and the DLQs get no `RedriveAllowPolicy`
//! (moto's GetQueueAttributes fails on a queue that has one).
//!
//! Every name starts with a unique prefix, because moto's CreateQueue quietly
//! returns an existing queue of the same name; the rules keep their own
//! names, since each stack has a bus of its own.

use crate::template::{self, InternalRoute};
use crate::{LocalError, aws_err};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;
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
    /// The consumers' state table (idempotency markers, workflow progress
    /// and effects).
    pub state_table: String,
    /// The queues the template's rules on the app bus send to, in the
    /// template's order, each with its DLQ.
    pub internal_queues: Vec<InternalQueue>,
}

/// One internal-track queue of the template, created locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalQueue {
    /// The queue's logical id in `template.yaml` (`InternalUserQueue`).
    pub logical_id: String,
    pub url: String,
    pub dlq_url: String,
    /// The redrive policy's `maxReceiveCount` it was created with.
    pub max_receive_count: u32,
}

/// The ingest queue's `maxReceiveCount`, as in `template.yaml`.
pub const INGEST_MAX_RECEIVE_COUNT: u32 = 5;

/// How the queues behave; tests shorten the visibility timeout so a failed
/// message comes back in a second, not in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Every queue's visibility timeout, the internal track's included.
    pub visibility_timeout_secs: u32,
    pub fanout_max_receive_count: u32,
    pub deliveries_max_receive_count: u32,
    /// The internal queues' `maxReceiveCount`; `None`: the template's.
    pub internal_max_receive_count: Option<u32>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            fanout_max_receive_count: 5,
            deliveries_max_receive_count: 200,
            internal_max_receive_count: None,
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
    /// Everything, the internal track as the workspace's `template.yaml`
    /// declares it (read once per process).
    pub async fn create(sdk: &SdkConfig, prefix: &str, opts: QueueOptions) -> Result<Self, LocalError> {
        let template = tokio::task::spawn_blocking(template::workspace_template)
            .await
            .map_err(|e| LocalError::Setup(format!("reading template.yaml: {e}")))??;
        Self::create_from(sdk, prefix, opts, template).await
    }

    /// Everything, the internal track as `template` (JSON, as
    /// [`template::load`] returns it) declares it.
    pub async fn create_from(
        sdk: &SdkConfig,
        prefix: &str,
        opts: QueueOptions,
        template: &serde_json::Value,
    ) -> Result<Self, LocalError> {
        // Read before anything is created: a template the runner cannot
        // reproduce fails at once.
        let routes = template::internal_routes(template)?;
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
                (keys::GSI3, keys::GSI3_PK, keys::GSI3_SK),
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
        let eb = aws_sdk_eventbridge::Client::new(sdk);
        eb.create_event_bus().name(&event_bus_name).send().await.map_err(|e| {
            aws_err(
                format!("CreateEventBus {event_bus_name}"),
                aws_sdk_eventbridge::error::DisplayErrorContext(e),
            )
        })?;
        let state_table = format!("{prefix}-state");
        create_table(&ddb, &state_table, &[]).await?;
        let internal_queues = create_internal_track(&sqs, &eb, prefix, &event_bus_name, &routes, opts).await?;
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
            state_table,
            internal_queues,
        })
    }

    /// The internal queue whose logical id in the template is `logical_id`.
    pub fn internal_queue(&self, logical_id: &str) -> Option<&InternalQueue> {
        self.internal_queues.iter().find(|q| q.logical_id == logical_id)
    }
}

/// The template's internal queues (each once, however many rules send to
/// it) and its rules on the app bus, on `bus`.
async fn create_internal_track(
    sqs: &aws_sdk_sqs::Client,
    eb: &aws_sdk_eventbridge::Client,
    prefix: &str,
    bus: &str,
    routes: &[InternalRoute],
    opts: QueueOptions,
) -> Result<Vec<InternalQueue>, LocalError> {
    use aws_sdk_eventbridge::error::DisplayErrorContext;
    let mut queues: Vec<InternalQueue> = Vec::new();
    let mut arns: HashMap<&str, String> = HashMap::new();
    for route in routes {
        let q = &route.queue;
        if arns.contains_key(q.logical_id.as_str()) {
            continue;
        }
        let (Some(dlq), Some(count)) = (&q.dlq_logical_id, q.max_receive_count) else {
            return Err(LocalError::Template(format!(
                "resource {} (a target of {}) has no RedrivePolicy: every internal queue needs a DLQ",
                q.logical_id, route.rule_logical_id
            )));
        };
        let max_receive_count = opts.internal_max_receive_count.unwrap_or(count);
        let (url, dlq_url) = create_queue_with_named_dlq(
            sqs,
            &format!("{prefix}-{}", template::kebab_case(&q.logical_id)),
            &format!("{prefix}-{}", template::kebab_case(dlq)),
            opts.visibility_timeout_secs,
            max_receive_count,
        )
        .await?;
        arns.insert(&q.logical_id, queue_arn(sqs, &url).await?);
        queues.push(InternalQueue {
            logical_id: q.logical_id.clone(),
            url,
            dlq_url,
            max_receive_count,
        });
    }
    let mut rules: Vec<&str> = Vec::new();
    for route in routes {
        let rule = template::kebab_case(&route.rule_logical_id);
        if !rules.contains(&route.rule_logical_id.as_str()) {
            rules.push(&route.rule_logical_id);
            eb.put_rule()
                .name(&rule)
                .event_bus_name(bus)
                .event_pattern(route.pattern.to_string())
                .send()
                .await
                .map_err(|e| aws_err(format!("PutRule {rule} on {bus}"), DisplayErrorContext(e)))?;
        }
        let arn = arns
            .get(route.queue.logical_id.as_str())
            .ok_or_else(|| LocalError::Setup(format!("no queue created for {}", route.queue.logical_id)))?;
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(&route.queue.logical_id)
            .arn(arn)
            .build()
            .map_err(|e| aws_err("rule target", e))?;
        let out = eb
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| aws_err(format!("PutTargets {rule} on {bus}"), DisplayErrorContext(e)))?;
        if out.failed_entry_count() > 0 {
            return Err(LocalError::Aws(format!(
                "PutTargets {rule} on {bus}: {:?}",
                out.failed_entries()
            )));
        }
    }
    Ok(queues)
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

/// A queue and its DLQ `{name}-dlq`; returns (queue URL, DLQ URL).
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<(String, String), LocalError> {
    create_queue_with_named_dlq(
        sqs,
        name,
        &format!("{name}-dlq"),
        visibility_timeout_secs,
        max_receive_count,
    )
    .await
}

/// A queue and its DLQ `dlq_name`; returns (queue URL, DLQ URL).
pub async fn create_queue_with_named_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    dlq_name: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<(String, String), LocalError> {
    let dlq_url = create_queue(sqs, dlq_name, &[]).await?;
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
    let d = switchyard_aws::redrive::queue_depth(sqs, url, url)
        .await
        .map_err(|e| LocalError::Aws(e.to_string()))?;
    Ok(d.visible + d.in_flight + d.delayed)
}
