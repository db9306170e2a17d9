//! One local stack's queues, tables, bus and rules, created in moto for the
//! handler-level tests and benchmarks.
//!
//! They are exactly what `template.yaml` declares: [`Resources::create`]
//! provisions the template with the local runner's provisioner
//! ([`crate::runner::provision`]) and picks out the names and URLs the
//! handlers need. Two things differ on purpose, set by [`QueueOptions`]:
//! every queue's visibility timeout (tests shorten it, so a failed message
//! comes back in a second), and the `maxReceiveCount` of the fan-out,
//! deliveries, ingest and internal queues. The AWS-events rule on the
//! default bus is given a pattern that matches nothing (tests route AWS
//! events through rules of their own). What moto cannot apply is listed by
//! the provisioner (a DLQ's `RedriveAllowPolicy`, encryption).
//!
//! Every name starts with a unique prefix (the stack name), because moto's
//! CreateQueue quietly returns an existing queue of the same name.

use crate::runner::provision;
use crate::template::{self, InternalRoute};
use crate::{LocalError, aws_err};
use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

/// The names and URLs of one local stack's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// The unique prefix of every name of this stack.
    pub prefix: String,
    /// The endpoint registry table.
    pub registry_table: String,
    /// The deliveries table (events, delivery state, attempts).
    pub deliveries_table: String,
    /// The fan-out queue (events waiting to be matched to endpoints).
    pub fanout_queue_url: String,
    /// The fan-out queue's DLQ.
    pub fanout_dlq_url: String,
    /// The deliveries queue (one message per delivery to attempt).
    pub deliveries_queue_url: String,
    /// The deliveries queue's DLQ.
    pub deliveries_dlq_url: String,
    /// The SQS ingest queue internal producers send events to, and its DLQ.
    pub ingest_queue_url: String,
    /// The ingest queue's DLQ.
    pub ingest_dlq_url: String,
    /// AWS service events that could not be ingested (replayed into the ingest queue).
    pub aws_events_dlq_url: String,
    /// The application's EventBridge bus (the internal track).
    pub event_bus_name: String,
    /// The consumers' state table (idempotency markers, workflow progress
    /// and effects).
    pub state_table: String,
    /// The queues the template's rules on the app bus send to, in the
    /// template's order, each with its DLQ.
    pub internal_queues: Vec<InternalQueue>,
    /// The KMS key that seals endpoint secrets (its key id).
    pub secrets_key_id: String,
}

/// One internal-track queue of the template, created locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalQueue {
    /// The queue's logical id in `template.yaml` (`InternalUserQueue`).
    pub logical_id: String,
    /// The queue's URL.
    pub url: String,
    /// Its DLQ's URL.
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
    /// The fan-out queue's `maxReceiveCount`.
    pub fanout_max_receive_count: u32,
    /// The deliveries queue's `maxReceiveCount`.
    pub deliveries_max_receive_count: u32,
    /// The deliveries queue's `MessageRetentionPeriod`.
    pub deliveries_retention_secs: u32,
    /// The internal queues' `maxReceiveCount`; `None`: the template's.
    pub internal_max_receive_count: Option<u32>,
}

impl QueueOptions {
    /// The deliveries queue's limits, as delivery must be told them.
    pub fn deliveries_limits(&self) -> switchyard_core::requeue::QueueLimits {
        switchyard_core::requeue::QueueLimits {
            max_receive_count: self.deliveries_max_receive_count,
            retention: std::time::Duration::from_secs(u64::from(self.deliveries_retention_secs)),
        }
    }
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self {
            visibility_timeout_secs: 30,
            fanout_max_receive_count: 5,
            deliveries_max_receive_count: 200,
            deliveries_retention_secs: 1_209_600,
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
    /// Everything the workspace's `template.yaml` declares (read once per
    /// process).
    pub async fn create(sdk: &SdkConfig, prefix: &str, opts: QueueOptions) -> Result<Self, LocalError> {
        let template = tokio::task::spawn_blocking(template::workspace_template)
            .await
            .map_err(|e| LocalError::Setup(format!("reading template.yaml: {e}")))??;
        Self::create_from(sdk, prefix, opts, template).await
    }

    /// Everything `template` (JSON, as [`template::load`] returns it)
    /// declares, provisioned by the local runner's provisioner with the
    /// queue settings of `opts`.
    pub async fn create_from(
        sdk: &SdkConfig,
        prefix: &str,
        opts: QueueOptions,
        template: &serde_json::Value,
    ) -> Result<Self, LocalError> {
        // Read before anything is created: a template the runner cannot
        // reproduce fails at once.
        let routes = template::internal_routes(template)?;
        let patched = with_queue_options(template, &routes, opts);
        // The AWS-events rule on the shared default bus matches nothing: a
        // test puts the events it wants through rules of its own.
        let never = serde_json::json!({"source": [format!("{prefix}.never")]}).to_string();
        let plan = provision::provision(
            sdk,
            &patched,
            &provision::Options {
                stack_name: prefix.to_string(),
                parameters: HashMap::from([("AwsEventsPattern".to_string(), never)]),
                bin_dir: std::path::PathBuf::new(),
                api_endpoints: HashMap::new(),
            },
        )
        .await?;
        let r = |id: &str| -> Result<String, LocalError> {
            plan.reference(id)
                .map(str::to_string)
                .ok_or_else(|| LocalError::Template(format!("the template has no {id}")))
        };
        let mut internal_queues: Vec<InternalQueue> = Vec::new();
        for route in &routes {
            let q = &route.queue;
            if internal_queues.iter().any(|i| i.logical_id == q.logical_id) {
                continue;
            }
            let (Some(dlq), Some(count)) = (&q.dlq_logical_id, q.max_receive_count) else {
                return Err(LocalError::Template(format!(
                    "resource {} (a target of {}) has no RedrivePolicy: every internal queue needs a DLQ",
                    q.logical_id, route.rule_logical_id
                )));
            };
            internal_queues.push(InternalQueue {
                logical_id: q.logical_id.clone(),
                url: r(&q.logical_id)?,
                dlq_url: r(dlq)?,
                max_receive_count: opts.internal_max_receive_count.unwrap_or(count),
            });
        }
        Ok(Self {
            prefix: prefix.to_string(),
            registry_table: r("RegistryTable")?,
            deliveries_table: r("DeliveriesTable")?,
            fanout_queue_url: r("FanoutQueue")?,
            fanout_dlq_url: r("FanoutDLQ")?,
            deliveries_queue_url: r("DeliveriesQueue")?,
            deliveries_dlq_url: r("DeliveriesDLQ")?,
            ingest_queue_url: r("IngestQueue")?,
            ingest_dlq_url: r("IngestDLQ")?,
            aws_events_dlq_url: r("AwsEventsDLQ")?,
            event_bus_name: r("AppEventBus")?,
            state_table: r("StateTable")?,
            internal_queues,
            secrets_key_id: r("EndpointSecretsKey")?,
        })
    }

    /// The internal queue whose logical id in the template is `logical_id`.
    pub fn internal_queue(&self, logical_id: &str) -> Option<&InternalQueue> {
        self.internal_queues.iter().find(|q| q.logical_id == logical_id)
    }
}

/// `template` with `opts` applied: every queue's visibility timeout, and
/// the fan-out, deliveries, ingest and internal queues' `maxReceiveCount`,
/// and the deliveries queue's retention.
fn with_queue_options(template: &serde_json::Value, routes: &[InternalRoute], opts: QueueOptions) -> serde_json::Value {
    let mut t = template.clone();
    let internal: Vec<&str> = routes.iter().map(|r| r.queue.logical_id.as_str()).collect();
    if let Some(resources) = t.get_mut("Resources").and_then(serde_json::Value::as_object_mut) {
        for (id, r) in resources.iter_mut() {
            if r.get("Type").and_then(serde_json::Value::as_str) != Some("AWS::SQS::Queue") {
                continue;
            }
            let Some(props) = r.get_mut("Properties").and_then(serde_json::Value::as_object_mut) else {
                continue;
            };
            props.insert("VisibilityTimeout".into(), opts.visibility_timeout_secs.into());
            if id == "DeliveriesQueue" {
                props.insert("MessageRetentionPeriod".into(), opts.deliveries_retention_secs.into());
            }
            let count = match id.as_str() {
                "FanoutQueue" => Some(opts.fanout_max_receive_count),
                "DeliveriesQueue" => Some(opts.deliveries_max_receive_count),
                "IngestQueue" => Some(INGEST_MAX_RECEIVE_COUNT),
                q if internal.contains(&q) => opts.internal_max_receive_count,
                _ => None,
            };
            if let (Some(count), Some(policy)) = (count, props.get_mut("RedrivePolicy"))
                && let Some(p) = policy.as_object_mut()
            {
                p.insert("maxReceiveCount".into(), count.into());
            }
        }
    }
    t
}

/// A plain queue named `name` with `attributes`; returns its URL.
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
        .ok_or_else(|| aws_err(format!("CreateQueue {name}"), "the answer has no queue URL"))
}

/// The ARN of the queue at `url`, read from SQS.
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
        .ok_or_else(|| aws_err(format!("GetQueueAttributes {url}"), "the answer has no QueueArn"))
}

/// How many messages a queue holds (visible + in flight + delayed).
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<u64, LocalError> {
    let d = switchyard_aws::redrive::queue_depth(sqs, url, url)
        .await
        .map_err(|e| aws_err(format!("the depth of {url}"), e))?;
    Ok(d.visible + d.in_flight + d.delayed)
}
