//! Provisioning `template.yaml` in moto: every queue (with its redrive
//! policy), table (with its GSIs and TTL), event bus and rule (with its
//! targets) the template declares, in dependency order, and the plan of
//! everything the runner plays itself: the functions, their triggers, the
//! HTTP APIs and the schedules.
//!
//! Nothing is hard-wired to Switchyard's resources: a resource of a
//! supported type added to the template appears locally with no code
//! change. Each type is one of three kinds:
//!
//! - created in moto: `AWS::SQS::Queue`, `AWS::SQS::QueuePolicy`,
//!   `AWS::DynamoDB::Table`, `AWS::Events::EventBus`, `AWS::Events::Rule`;
//! - played by the runner: `AWS::Serverless::Function` (a local process
//!   behind an emulated Lambda Runtime API, with its `SQS`, `HttpApi`,
//!   `EventBridgeRule`/`CloudWatchEvent`, `Schedule`/`ScheduleV2` events)
//!   and `AWS::Serverless::HttpApi` (a server on localhost);
//! - without a local counterpart, listed in [`Plan::notes`] with the
//!   reason: log groups, IAM, Lambda permissions, CloudWatch alarms and
//!   dashboards, SNS topics and subscriptions.
//!
//! Any other type, an unknown property of a created resource, or an event
//! type the runner cannot play is an error naming the resource: the local
//! stack never quietly differs from the template. What cannot be applied in
//! moto (queue encryption, a DLQ's `RedriveAllowPolicy`, table encryption
//! and backups) is listed in the notes too.
//!
//! Never created in moto, as measured: Lambda functions, event source
//! mappings and rule targets that are functions (moto tries Docker, and a
//! function target fails PutEvents as a whole). A rule whose target is a
//! function gets a runner-owned queue as its target instead, and the runner
//! invokes the function with each EventBridge envelope that arrives there.

use super::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::DisplayErrorContext as DdbCtx;
use aws_sdk_dynamodb::types as ddb;
use aws_sdk_eventbridge::error::DisplayErrorContext as EbCtx;
use aws_sdk_sqs::error::DisplayErrorContext as SqsCtx;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

const QUEUE: &str = "AWS::SQS::Queue";
const QUEUE_POLICY: &str = "AWS::SQS::QueuePolicy";
const TABLE: &str = "AWS::DynamoDB::Table";
const BUS: &str = "AWS::Events::EventBus";
const RULE: &str = "AWS::Events::Rule";
const FUNCTION: &str = "AWS::Serverless::Function";
const HTTP_API: &str = "AWS::Serverless::HttpApi";

/// Types with no local counterpart, and why that is all right.
const NOT_EMULATED: &[(&str, &str)] = &[
    ("AWS::Logs::LogGroup", "function logs go to the runner's output"),
    ("AWS::IAM::Role", "moto's endpoints do not enforce IAM"),
    ("AWS::IAM::Policy", "moto's endpoints do not enforce IAM"),
    ("AWS::IAM::ManagedPolicy", "moto's endpoints do not enforce IAM"),
    ("AWS::Lambda::Permission", "the runner invokes functions itself"),
    (
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "moto does not meter DynamoDB capacity, so there is nothing to scale",
    ),
    (
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "moto does not meter DynamoDB capacity, so there is nothing to scale",
    ),
    (
        "AWS::CloudWatch::Alarm",
        "CloudWatch is not emulated (metrics are log lines locally)",
    ),
    (
        "AWS::CloudWatch::Dashboard",
        "CloudWatch is not emulated (metrics are log lines locally)",
    ),
    (
        "AWS::SNS::Topic",
        "alarms are not evaluated locally, so nothing publishes to it",
    ),
    (
        "AWS::SNS::Subscription",
        "alarms are not evaluated locally, so nothing publishes to it",
    ),
];

/// The local stand-in for a role's unique id (`AROA…`, letters and digits).
pub fn local_role_id(logical_id: &str) -> String {
    let id: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("AROALOCAL{id}")
}

/// The SAM implicit HTTP API's logical id (events without `ApiId`).
pub const IMPLICIT_HTTP_API: &str = "ServerlessHttpApi";

/// What to provision, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix of every physical name (`AWS::StackName`).
    pub stack_name: String,
    /// Parameter overrides (`sam deploy --parameter-overrides`).
    pub parameters: HashMap<String, String>,
    /// Where the function binaries are (`target/debug`).
    pub bin_dir: PathBuf,
    /// The base URL each HTTP API is served at (logical id -> URL); the
    /// runner binds the listeners before provisioning.
    pub api_endpoints: HashMap<String, String>,
}

/// One SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsSource {
    pub event: String,
    /// The logical id of the queue.
    pub queue: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    pub window_secs: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_failures: bool,
    pub max_concurrency: Option<u32>,
}

/// A rule (in moto) whose target is a function: the runner reads `queue`
/// and invokes the function asynchronously with each envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInvoke {
    pub rule: String,
    pub function: String,
    pub queue_url: String,
}

/// A schedule the runner fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub rule: String,
    pub rule_arn: String,
    pub expression: String,
    pub target: ScheduleTarget,
    /// The constant `Input` of the target, if any (else the scheduled event).
    pub input: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleTarget {
    Function(String),
    Queue(String),
}

/// One route of an HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub api: String,
    /// `ANY` or an upper-case method.
    pub method: String,
    pub path: String,
    pub function: String,
}

/// How Lambda invokes a function asynchronously (EventBridge rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncConfig {
    pub max_retries: u32,
    /// `DestinationConfig.OnFailure` when it is an SQS queue (its URL).
    pub on_failure_queue_url: Option<String>,
}

/// A function, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub logical_id: String,
    pub name: String,
    pub arn: String,
    pub binary: PathBuf,
    /// The template's variables, resolved (Globals merged).
    pub environment: Vec<(String, String)>,
    pub timeout_secs: u64,
    pub memory_mb: u32,
    pub log_format: String,
    pub log_level: Option<String>,
    pub log_group: String,
    pub reserved_concurrency: Option<u32>,
    pub sqs: Vec<SqsSource>,
    pub async_config: AsyncConfig,
}

/// Everything provisioned and everything the runner plays.
#[derive(Debug, Clone)]
pub struct Plan {
    pub cfn: Cfn,
    /// (logical id, type, physical id) of what was created in moto, in
    /// creation order.
    pub created: Vec<(String, String, String)>,
    pub functions: Vec<Function>,
    pub routes: Vec<Route>,
    pub apis: Vec<String>,
    pub rule_invokes: Vec<RuleInvoke>,
    pub schedules: Vec<Schedule>,
    /// What has no local counterpart, or differs locally, and why.
    pub notes: Vec<String>,
}

impl Plan {
    /// `Ref` of a resource (a queue's URL, a table's name, ...).
    pub fn reference(&self, logical_id: &str) -> Option<&str> {
        self.cfn.resources.get(logical_id).map(|a| a.reference.as_str())
    }

    /// `Fn::GetAtt` of a resource.
    pub fn attribute(&self, logical_id: &str, name: &str) -> Option<&str> {
        self.cfn
            .resources
            .get(logical_id)?
            .get_att
            .get(name)
            .map(String::as_str)
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    /// The logical ids of the created resources of `kind`.
    pub fn created_of(&self, kind: &str) -> Vec<&str> {
        self.created
            .iter()
            .filter(|c| c.1 == kind)
            .map(|c| c.0.as_str())
            .collect()
    }
}

fn err(id: &str, what: impl std::fmt::Display) -> LocalError {
    LocalError::Template(format!("resource {id} {what}"))
}

/// The HTTP APIs a template serves: its `AWS::Serverless::HttpApi`
/// resources, and the implicit one if a function's `HttpApi` event names
/// none.
pub fn http_apis(template: &Value) -> Vec<String> {
    let resources = template.get("Resources").and_then(Value::as_object);
    let mut apis: Vec<String> = resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(HTTP_API))
        .map(|(id, _)| id.clone())
        .collect();
    let implicit = resources.into_iter().flatten().any(|(_, r)| {
        r.pointer("/Properties/Events")
            .and_then(Value::as_object)
            .is_some_and(|events| {
                events.values().any(|e| {
                    e.get("Type").and_then(Value::as_str) == Some("HttpApi") && e.pointer("/Properties/ApiId").is_none()
                })
            })
    });
    if implicit {
        apis.push(IMPLICIT_HTTP_API.to_string());
    }
    apis
}

/// A node of the creation graph.
#[derive(Debug, Clone)]
enum Node {
    /// A template resource created in moto.
    Resource { kind: String, props: Value },
    /// A rule SAM would generate for a function's EventBridgeRule event.
    FunctionRule { function: String, props: Value },
    /// A schedule SAM would generate for a function's Schedule event.
    FunctionSchedule { function: String, props: Value },
}

/// Provisions `template` in moto (at `sdk`'s endpoint) and plans the rest.
pub async fn provision(sdk: &SdkConfig, template: &Value, opts: &Options) -> Result<Plan, LocalError> {
    let mut cfn =
        Cfn::new(template, &opts.stack_name, crate::LOCAL_REGION, &opts.parameters).map_err(LocalError::Template)?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| LocalError::Template("the template has no Resources object".into()))?;
    let globals = template
        .pointer("/Globals/Function")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut notes = Vec::new();

    // Pass 1: what exists without being created (functions, APIs, the
    // types without a local counterpart), and the nodes to create.
    let mut nodes: Vec<(String, Node, Vec<String>)> = Vec::new();
    let mut functions_raw: Vec<(String, Map<String, Value>, Option<Value>)> = Vec::new();
    let mut apis = Vec::new();
    for (id, resource) in resources {
        let kind = resource
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(|| err(id, "has no Type"))?;
        if let Some(cond) = resource.get("Condition").and_then(Value::as_str)
            && !cfn.condition_named(cond).map_err(|e| err(id, e))?
        {
            notes.push(format!("{id} ({kind}): condition {cond} is false, not created"));
            continue;
        }
        let props = resource.get("Properties").cloned().unwrap_or(Value::Object(Map::new()));
        let mut deps: Vec<String> = Vec::new();
        cfn.references(&props, &mut deps);
        match resource.get("DependsOn") {
            Some(Value::String(d)) => deps.push(d.clone()),
            Some(Value::Array(a)) => deps.extend(a.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
        match kind {
            QUEUE | QUEUE_POLICY | TABLE | BUS | RULE => nodes.push((
                id.clone(),
                Node::Resource {
                    kind: kind.to_string(),
                    props,
                },
                deps,
            )),
            FUNCTION => {
                // SAM's Globals: maps merge, lists append, the function's own
                // values win.
                let mut merged = globals.clone();
                for (k, v) in props.as_object().cloned().unwrap_or_default() {
                    let g = merged.remove(&k);
                    merged.insert(k, merge_globals(g, v));
                }
                let name = match merged.get("FunctionName") {
                    Some(n) => cfn.resolve_string(n).map_err(|e| err(id, e))?,
                    None => format!("{}-{id}", opts.stack_name),
                };
                let arn = cfn.arn("lambda", &format!("function:{name}"));
                cfn.resources.insert(id.clone(), Attrs::new(&name).with("Arn", &arn));
                let role = format!("{id}Role");
                cfn.resources.insert(
                    role.clone(),
                    Attrs::new(format!("{}-{role}", opts.stack_name))
                        .with(
                            "Arn",
                            format!(
                                "arn:aws:iam::{}:role/{}-{role}",
                                super::cfn::ACCOUNT_ID,
                                opts.stack_name
                            ),
                        )
                        // A role's unique id; moto records every sender as
                        // its own default id whatever this is.
                        .with("RoleId", local_role_id(&role)),
                );
                for (event, spec) in merged.get("Events").and_then(Value::as_object).into_iter().flatten() {
                    let etype = spec.get("Type").and_then(Value::as_str).unwrap_or_default();
                    let eprops = spec.get("Properties").cloned().unwrap_or(Value::Object(Map::new()));
                    let node_id = format!("{id}{event}");
                    let mut edeps = Vec::new();
                    cfn.references(&eprops, &mut edeps);
                    match etype {
                        "EventBridgeRule" | "CloudWatchEvent" => nodes.push((
                            node_id,
                            Node::FunctionRule {
                                function: id.clone(),
                                props: eprops,
                            },
                            edeps,
                        )),
                        "Schedule" | "ScheduleV2" => nodes.push((
                            node_id,
                            Node::FunctionSchedule {
                                function: id.clone(),
                                props: eprops,
                            },
                            edeps,
                        )),
                        "SQS" | "HttpApi" => {}
                        other => {
                            return Err(err(
                                id,
                                format!(
                                    "has event {event} of type {other}, which the local runner cannot play \
                                     (it plays SQS, HttpApi, EventBridgeRule, CloudWatchEvent, Schedule, ScheduleV2)"
                                ),
                            ));
                        }
                    }
                }
                functions_raw.push((id.clone(), merged, resource.get("Metadata").cloned()));
            }
            HTTP_API => {
                let url = opts.api_endpoints.get(id).cloned().unwrap_or_default();
                cfn.resources.insert(
                    id.clone(),
                    Attrs::new(format!("local{}", id.to_lowercase())).with("ApiEndpoint", url),
                );
                for (k, _) in props.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "Description" | "Tags" | "StageName" | "FailOnWarnings" => {}
                        other => notes.push(format!("{id}.{other} ({HTTP_API}): not applied by the local HTTP API")),
                    }
                }
                apis.push(id.clone());
            }
            other => match NOT_EMULATED.iter().find(|(t, _)| *t == other) {
                Some((_, why)) => {
                    let name = format!("{}-{id}", opts.stack_name);
                    let service = other.split("::").nth(1).unwrap_or("local").to_lowercase();
                    let arn = cfn.arn(&service, &name);
                    cfn.resources.insert(id.clone(), Attrs::new(&name).with("Arn", arn));
                    notes.push(format!("{id} ({other}): not emulated; {why}"));
                }
                None => {
                    return Err(err(
                        id,
                        format!("has type {other}, which the local runner does not support"),
                    ));
                }
            },
        }
    }
    if http_apis(template).iter().any(|a| a == IMPLICIT_HTTP_API) {
        let url = opts.api_endpoints.get(IMPLICIT_HTTP_API).cloned().unwrap_or_default();
        cfn.resources.insert(
            IMPLICIT_HTTP_API.into(),
            Attrs::new("localserverlesshttpapi").with("ApiEndpoint", url),
        );
        apis.push(IMPLICIT_HTTP_API.into());
    }

    // Pass 2: create in dependency order.
    let order = creation_order(&nodes)?;
    let clients = Clients::new(sdk);
    let mut created = Vec::new();
    let mut rule_invokes = Vec::new();
    let mut schedules = Vec::new();
    for i in order {
        let (id, node, _) = &nodes[i];
        match node {
            Node::Resource { kind, props } => {
                let props = cfn.resolve(props).map_err(|e| err(id, e))?;
                let props = props.as_object().cloned().unwrap_or_default();
                let (attrs, physical) = match kind.as_str() {
                    QUEUE => create_queue(&clients, &cfn, id, &props, &mut notes).await?,
                    QUEUE_POLICY => apply_queue_policy(&clients, id, &props).await?,
                    TABLE => create_table(&clients, &cfn, id, &props, &mut notes).await?,
                    BUS => create_bus(&clients, &cfn, id, &props).await?,
                    RULE => {
                        let rule = RuleSpec::from_resource(&cfn, id, &props)?;
                        create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules).await?
                    }
                    _ => unreachable!("only created kinds are nodes"),
                };
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), kind.clone(), physical));
            }
            Node::FunctionRule { function, props } => {
                let props = cfn.resolve(props).map_err(|e| err(id, e))?;
                let rule = RuleSpec::from_function_event(&cfn, id, function, &props, false)?;
                let (attrs, physical) =
                    create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules).await?;
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), RULE.to_string(), physical));
            }
            Node::FunctionSchedule { function, props } => {
                let props = cfn.resolve(props).map_err(|e| err(id, e))?;
                let rule = RuleSpec::from_function_event(&cfn, id, function, &props, true)?;
                let (attrs, physical) =
                    create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules).await?;
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), RULE.to_string(), physical));
            }
        }
    }

    // Pass 3: the functions, now that everything they refer to exists.
    let mut functions = Vec::new();
    let mut routes = Vec::new();
    for (id, props, metadata) in functions_raw {
        let (function, fn_routes) = plan_function(&cfn, &id, &props, metadata.as_ref(), &opts.bin_dir, &mut notes)?;
        functions.push(function);
        routes.extend(fn_routes);
    }
    Ok(Plan {
        cfn,
        created,
        functions,
        routes,
        apis,
        rule_invokes,
        schedules,
        notes,
    })
}

/// A function property over its `Globals` value, as SAM merges them.
fn merge_globals(global: Option<Value>, own: Value) -> Value {
    match (global, own) {
        (Some(Value::Object(mut g)), Value::Object(o)) => {
            for (k, v) in o {
                let gv = g.remove(&k);
                g.insert(k, merge_globals(gv, v));
            }
            Value::Object(g)
        }
        (Some(Value::Array(mut g)), Value::Array(o)) => {
            g.extend(o);
            Value::Array(g)
        }
        (_, own) => own,
    }
}

/// Kahn's algorithm over the nodes, template order among equals; a cycle is
/// an error naming its members.
fn creation_order(nodes: &[(String, Node, Vec<String>)]) -> Result<Vec<usize>, LocalError> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.0.as_str(), i)).collect();
    let deps: Vec<HashSet<usize>> = nodes
        .iter()
        .map(|(id, _, d)| {
            d.iter()
                .filter_map(|x| index.get(x.as_str()).copied())
                .filter(|&j| nodes[j].0 != *id)
                .collect()
        })
        .collect();
    let mut done = vec![false; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    while order.len() < nodes.len() {
        let next = (0..nodes.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let stuck: Vec<&str> = (0..nodes.len())
                    .filter(|&i| !done[i])
                    .map(|i| nodes[i].0.as_str())
                    .collect();
                return Err(LocalError::Template(format!(
                    "resources {stuck:?} depend on each other in a cycle"
                )));
            }
        }
    }
    Ok(order)
}

struct Clients {
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    eb: aws_sdk_eventbridge::Client,
}

impl Clients {
    fn new(sdk: &SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            eb: aws_sdk_eventbridge::Client::new(sdk),
        }
    }
}

fn check_props(id: &str, kind: &str, props: &Map<String, Value>, known: &[&str]) -> Result<(), LocalError> {
    for k in props.keys() {
        if !known.contains(&k.as_str()) {
            return Err(err(
                id,
                format!("({kind}) has property {k}, which the local runner does not know how to apply"),
            ));
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn tags(props: &Map<String, Value>) -> Vec<(String, String)> {
    match props.get("Tags") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|t| Some((t.get("Key")?.as_str()?.to_string(), text(t.get("Value")?))))
            .collect(),
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => Vec::new(),
    }
}

async fn create_queue(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(Attrs, String), LocalError> {
    check_props(
        id,
        QUEUE,
        props,
        &[
            "QueueName",
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "RedrivePolicy",
            "RedriveAllowPolicy",
            "FifoQueue",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
            "SqsManagedSseEnabled",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "Tags",
        ],
    )?;
    let fifo = props.get("FifoQueue").is_some_and(|v| text(v) == "true");
    let name = match props.get("QueueName") {
        Some(n) => text(n),
        None if fifo => format!("{}-{id}.fifo", cfn.stack_name),
        None => format!("{}-{id}", cfn.stack_name),
    };
    if name.len() > 80 {
        return Err(err(
            id,
            format!("would be named {name:?}, longer than SQS's 80 characters"),
        ));
    }
    let mut req = c.sqs.create_queue().queue_name(&name);
    for (prop, attr) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
        (
            "ReceiveMessageWaitTimeSeconds",
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
        ),
        ("FifoQueue", QueueAttributeName::FifoQueue),
        (
            "ContentBasedDeduplication",
            QueueAttributeName::ContentBasedDeduplication,
        ),
        ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
        ("FifoThroughputLimit", QueueAttributeName::FifoThroughputLimit),
    ] {
        if let Some(v) = props.get(prop) {
            req = req.attributes(attr, text(v));
        }
    }
    if let Some(policy) = props.get("RedrivePolicy") {
        let policy: Value = match policy {
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| err(id, format!("RedrivePolicy is not JSON: {e}")))?
            }
            other => other.clone(),
        };
        req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    for (k, v) in tags(props) {
        req = req.tags(k, v);
    }
    for prop in ["SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"] {
        if props.contains_key(prop) {
            notes.push(format!("{id}.{prop}: not applied (moto's queues are not encrypted)"));
        }
    }
    if props.contains_key("RedriveAllowPolicy") {
        notes.push(format!(
            "{id}.RedriveAllowPolicy: not applied (moto's GetQueueAttributes fails on a queue that has one)"
        ));
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_err(format!("CreateQueue {name} ({id})"), SqsCtx(e)))?;
    let url = out
        .queue_url
        .ok_or_else(|| LocalError::Aws(format!("CreateQueue {name} returned no URL")))?;
    let arn = cfn.arn("sqs", &name);
    Ok((
        Attrs::new(&url)
            .with("Arn", arn)
            .with("QueueName", &name)
            .with("QueueUrl", &url),
        url,
    ))
}

async fn apply_queue_policy(c: &Clients, id: &str, props: &Map<String, Value>) -> Result<(Attrs, String), LocalError> {
    check_props(id, QUEUE_POLICY, props, &["Queues", "PolicyDocument"])?;
    let doc = props
        .get("PolicyDocument")
        .ok_or_else(|| err(id, "has no PolicyDocument"))?;
    let queues = props
        .get("Queues")
        .and_then(Value::as_array)
        .ok_or_else(|| err(id, "has no Queues list"))?;
    for q in queues {
        let url = text(q);
        c.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, doc.to_string())
            .send()
            .await
            .map_err(|e| aws_err(format!("SetQueueAttributes Policy ({id})"), SqsCtx(e)))?;
    }
    Ok((Attrs::new(id), format!("policy on {} queue(s)", queues.len())))
}

fn key_schema(id: &str, v: Option<&Value>) -> Result<Vec<ddb::KeySchemaElement>, LocalError> {
    let list = v
        .and_then(Value::as_array)
        .ok_or_else(|| err(id, "has no KeySchema list"))?;
    list.iter()
        .map(|k| {
            let name = k.get("AttributeName").map(text).unwrap_or_default();
            let kind = ddb::KeyType::from(k.get("KeyType").map(text).unwrap_or_default().as_str());
            ddb::KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| err(id, format!("KeySchema: {e}")))
        })
        .collect()
}

fn projection(v: Option<&Value>) -> ddb::Projection {
    let mut p = ddb::Projection::builder().projection_type(ddb::ProjectionType::from(
        v.and_then(|p| p.get("ProjectionType"))
            .map(text)
            .unwrap_or_else(|| "ALL".into())
            .as_str(),
    ));
    for a in v
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        p = p.non_key_attributes(text(a));
    }
    p.build()
}

fn throughput(id: &str, v: Option<&Value>) -> Result<Option<ddb::ProvisionedThroughput>, LocalError> {
    let Some(v) = v else { return Ok(None) };
    let n = |k: &str| v.get(k).map(text).and_then(|s| s.parse::<i64>().ok()).unwrap_or(1);
    ddb::ProvisionedThroughput::builder()
        .read_capacity_units(n("ReadCapacityUnits"))
        .write_capacity_units(n("WriteCapacityUnits"))
        .build()
        .map(Some)
        .map_err(|e| err(id, format!("ProvisionedThroughput: {e}")))
}

async fn create_table(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(Attrs, String), LocalError> {
    check_props(
        id,
        TABLE,
        props,
        &[
            "TableName",
            "AttributeDefinitions",
            "KeySchema",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "BillingMode",
            "ProvisionedThroughput",
            "StreamSpecification",
            "TimeToLiveSpecification",
            "PointInTimeRecoverySpecification",
            "SSESpecification",
            "DeletionProtectionEnabled",
            "TableClass",
            "Tags",
        ],
    )?;
    let name = props
        .get("TableName")
        .map(text)
        .unwrap_or_else(|| format!("{}-{id}", cfn.stack_name));
    let mut req = c.ddb.create_table().table_name(&name);
    for a in props
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        req = req.attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name(a.get("AttributeName").map(text).unwrap_or_default())
                .attribute_type(ddb::ScalarAttributeType::from(
                    a.get("AttributeType").map(text).unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| err(id, format!("AttributeDefinitions: {e}")))?,
        );
    }
    req = req.set_key_schema(Some(key_schema(id, props.get("KeySchema"))?));
    let billing = props
        .get("BillingMode")
        .map(text)
        .unwrap_or_else(|| "PROVISIONED".into());
    req = req.billing_mode(ddb::BillingMode::from(billing.as_str()));
    if billing == "PROVISIONED" {
        req = req.set_provisioned_throughput(throughput(id, props.get("ProvisionedThroughput"))?);
    }
    for g in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut b = ddb::GlobalSecondaryIndex::builder()
            .index_name(g.get("IndexName").map(text).unwrap_or_default())
            .set_key_schema(Some(key_schema(id, g.get("KeySchema"))?))
            .projection(projection(g.get("Projection")));
        if billing == "PROVISIONED" {
            b = b.set_provisioned_throughput(throughput(id, g.get("ProvisionedThroughput"))?);
        }
        req = req.global_secondary_indexes(b.build().map_err(|e| err(id, format!("GSI: {e}")))?);
    }
    for l in props
        .get("LocalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        req = req.local_secondary_indexes(
            ddb::LocalSecondaryIndex::builder()
                .index_name(l.get("IndexName").map(text).unwrap_or_default())
                .set_key_schema(Some(key_schema(id, l.get("KeySchema"))?))
                .projection(projection(l.get("Projection")))
                .build()
                .map_err(|e| err(id, format!("LSI: {e}")))?,
        );
    }
    if let Some(s) = props.get("StreamSpecification") {
        req = req.stream_specification(
            ddb::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(
                    s.get("StreamViewType").map(text).unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| err(id, format!("StreamSpecification: {e}")))?,
        );
    }
    for (k, v) in tags(props) {
        req = req.tags(
            ddb::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| err(id, format!("Tags: {e}")))?,
        );
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_err(format!("CreateTable {name} ({id})"), DdbCtx(e)))?;
    if let Some(ttl) = props.get("TimeToLiveSpecification")
        && ttl.get("Enabled").is_some_and(|e| text(e) == "true")
    {
        let attr = ttl.get("AttributeName").map(text).unwrap_or_default();
        c.ddb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                ddb::TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(true)
                    .build()
                    .map_err(|e| err(id, format!("TimeToLiveSpecification: {e}")))?,
            )
            .send()
            .await
            .map_err(|e| aws_err(format!("UpdateTimeToLive {name} ({id})"), DdbCtx(e)))?;
        notes.push(format!("{id}: TTL is set, but moto never expires items"));
    }
    for prop in [
        "PointInTimeRecoverySpecification",
        "SSESpecification",
        "DeletionProtectionEnabled",
        "TableClass",
    ] {
        if props.contains_key(prop) {
            notes.push(format!("{id}.{prop}: not applied locally"));
        }
    }
    let desc = out.table_description;
    let arn = desc
        .as_ref()
        .and_then(|d| d.table_arn.clone())
        .unwrap_or_else(|| cfn.arn("dynamodb", &format!("table/{name}")));
    let mut attrs = Attrs::new(&name).with("Arn", arn);
    if let Some(stream) = desc.and_then(|d| d.latest_stream_arn) {
        attrs = attrs.with("StreamArn", stream);
    }
    Ok((attrs, name))
}

async fn create_bus(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
) -> Result<(Attrs, String), LocalError> {
    check_props(id, BUS, props, &["Name", "Description", "Tags"])?;
    let name = props.get("Name").map(text).ok_or_else(|| err(id, "has no Name"))?;
    let out =
        c.eb.create_event_bus()
            .name(&name)
            .send()
            .await
            .map_err(|e| aws_err(format!("CreateEventBus {name} ({id})"), EbCtx(e)))?;
    let arn = out
        .event_bus_arn
        .unwrap_or_else(|| cfn.arn("events", &format!("event-bus/{name}")));
    Ok((Attrs::new(&name).with("Arn", arn).with("Name", &name), name))
}

/// A rule, from an `AWS::Events::Rule` or a function's event.
struct RuleSpec {
    name: String,
    bus: String,
    pattern: Option<String>,
    schedule: Option<String>,
    enabled: bool,
    targets: Vec<Value>,
}

impl RuleSpec {
    fn from_resource(cfn: &Cfn, id: &str, props: &Map<String, Value>) -> Result<Self, LocalError> {
        check_props(
            id,
            RULE,
            props,
            &[
                "Name",
                "Description",
                "EventBusName",
                "EventPattern",
                "ScheduleExpression",
                "State",
                "Targets",
                "RoleArn",
            ],
        )?;
        Ok(Self {
            name: props.get("Name").map(text).unwrap_or_else(|| rule_name(cfn, id)),
            bus: bus_name(props.get("EventBusName")),
            pattern: props.get("EventPattern").map(pattern_text),
            schedule: props.get("ScheduleExpression").map(text),
            enabled: props.get("State").is_none_or(|s| text(s) == "ENABLED"),
            targets: props
                .get("Targets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// What SAM generates for an `EventBridgeRule`/`CloudWatchEvent` (or a
    /// `Schedule`) event of `function`: one rule, the function its target.
    fn from_function_event(
        cfn: &Cfn,
        id: &str,
        function: &str,
        props: &Value,
        schedule: bool,
    ) -> Result<Self, LocalError> {
        let arn = cfn
            .resources
            .get(function)
            .and_then(|a| a.get_att.get("Arn"))
            .cloned()
            .unwrap_or_default();
        let mut target = serde_json::json!({ "Id": format!("{function}Target"), "Arn": arn });
        for k in ["Input", "InputPath", "InputTransformer"] {
            if let Some(v) = props.get(k) {
                target[k] = v.clone();
            }
        }
        let enabled = props.get("Enabled").is_none_or(|e| text(e) == "true")
            && props.get("State").is_none_or(|s| text(s) == "ENABLED");
        Ok(Self {
            name: props.get("Name").map(text).unwrap_or_else(|| rule_name(cfn, id)),
            bus: bus_name(props.get("EventBusName")),
            pattern: if schedule {
                None
            } else {
                Some(pattern_text(
                    props.get("Pattern").ok_or_else(|| err(id, "has no Pattern"))?,
                ))
            },
            schedule: if schedule {
                Some(
                    props
                        .get("Schedule")
                        .or_else(|| props.get("ScheduleExpression"))
                        .map(text)
                        .ok_or_else(|| err(id, "has no Schedule"))?,
                )
            } else {
                None
            },
            enabled,
            targets: vec![target],
        })
    }
}

fn rule_name(cfn: &Cfn, id: &str) -> String {
    let mut name = format!("{}-{id}", cfn.stack_name);
    name.truncate(64);
    name
}

fn bus_name(v: Option<&Value>) -> String {
    let name = v.map(text).unwrap_or_else(|| "default".into());
    // An ARN names the bus after its last '/'.
    name.rsplit('/').next().unwrap_or(&name).to_string()
}

fn pattern_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn create_rule(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    rule: RuleSpec,
    notes: &mut Vec<String>,
    rule_invokes: &mut Vec<RuleInvoke>,
    schedules: &mut Vec<Schedule>,
) -> Result<(Attrs, String), LocalError> {
    let mut req =
        c.eb.put_rule()
            .name(&rule.name)
            .event_bus_name(&rule.bus)
            .state(if rule.enabled {
                aws_sdk_eventbridge::types::RuleState::Enabled
            } else {
                aws_sdk_eventbridge::types::RuleState::Disabled
            });
    if let Some(p) = &rule.pattern {
        req = req.event_pattern(p);
    }
    if let Some(s) = &rule.schedule {
        super::schedule::Expression::parse(s).map_err(|e| err(id, format!("has schedule {s:?}: {e}")))?;
        req = req.schedule_expression(s);
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_err(format!("PutRule {} ({id})", rule.name), EbCtx(e)))?;
    let arn = out
        .rule_arn
        .unwrap_or_else(|| cfn.arn("events", &format!("rule/{}", rule.name)));
    let function_arns: HashMap<String, String> = cfn
        .resources
        .iter()
        .filter_map(|(lid, a)| {
            let arn = a.get_att.get("Arn")?;
            arn.contains(":lambda:").then(|| (arn.clone(), lid.clone()))
        })
        .collect();
    for t in &rule.targets {
        let target_id = t.get("Id").map(text).unwrap_or_else(|| "target".into());
        let target_arn = t
            .get("Arn")
            .map(text)
            .ok_or_else(|| err(id, "has a target without Arn"))?;
        if let Some(function) = function_arns.get(&target_arn) {
            for k in ["DeadLetterConfig", "RetryPolicy"] {
                if t.get(k).is_some() {
                    notes.push(format!(
                        "{id} target {target_id}: {k} not applied (moto delivers or drops at once)"
                    ));
                }
            }
            if t.get("InputTransformer").is_some() || t.get("InputPath").is_some() {
                return Err(err(
                    id,
                    format!("target {target_id} reshapes the event for a function, which the local runner does not do"),
                ));
            }
            if let Some(s) = &rule.schedule {
                if rule.enabled {
                    schedules.push(Schedule {
                        rule: id.to_string(),
                        rule_arn: arn.clone(),
                        expression: s.clone(),
                        target: ScheduleTarget::Function(function.clone()),
                        input: t.get("Input").map(text),
                    });
                }
                continue;
            }
            if t.get("Input").is_some() {
                return Err(err(
                    id,
                    format!("target {target_id} has a constant Input for a function; only schedules may"),
                ));
            }
            // A runner-owned queue stands in for the function.
            let mut qname = format!("{}-invoke-{}", rule.name, target_id);
            qname.truncate(80);
            let q = c
                .sqs
                .create_queue()
                .queue_name(&qname)
                .send()
                .await
                .map_err(|e| aws_err(format!("CreateQueue {qname} (for {id})"), SqsCtx(e)))?;
            let url = q.queue_url.unwrap_or_default();
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id(&target_id)
                .arn(cfn.arn("sqs", &qname))
                .build()
                .map_err(|e| aws_err("rule target", e))?;
            put_target(c, &rule, id, target).await?;
            rule_invokes.push(RuleInvoke {
                rule: id.to_string(),
                function: function.clone(),
                queue_url: url,
            });
            continue;
        }
        if !target_arn.starts_with("arn:aws:sqs:") {
            return Err(err(
                id,
                format!(
                    "has target {target_arn}, which is neither a queue nor a function; the local runner cannot deliver to it"
                ),
            ));
        }
        if let Some(s) = &rule.schedule {
            let name = target_arn.rsplit(':').next().unwrap_or_default();
            let url = cfn
                .resources
                .values()
                .find(|a| a.get_att.get("QueueName").map(String::as_str) == Some(name))
                .map(|a| a.reference.clone())
                .ok_or_else(|| err(id, format!("targets {target_arn}, not a queue of the template")))?;
            if rule.enabled {
                schedules.push(Schedule {
                    rule: id.to_string(),
                    rule_arn: arn.clone(),
                    expression: s.clone(),
                    target: ScheduleTarget::Queue(url),
                    input: t.get("Input").map(text),
                });
            }
            continue;
        }
        let mut b = aws_sdk_eventbridge::types::Target::builder()
            .id(&target_id)
            .arn(&target_arn);
        // Configured on the target as in AWS (moto keeps them; it delivers
        // to a queue at once or not at all, so neither comes into play).
        if let Some(dlq) = t.pointer("/DeadLetterConfig/Arn") {
            b = b.dead_letter_config(
                aws_sdk_eventbridge::types::DeadLetterConfig::builder()
                    .arn(text(dlq))
                    .build(),
            );
        }
        if let Some(r) = t.get("RetryPolicy") {
            let mut rb = aws_sdk_eventbridge::types::RetryPolicy::builder();
            if let Some(n) = r.get("MaximumRetryAttempts").and_then(|v| text(v).parse().ok()) {
                rb = rb.maximum_retry_attempts(n);
            }
            if let Some(n) = r.get("MaximumEventAgeInSeconds").and_then(|v| text(v).parse().ok()) {
                rb = rb.maximum_event_age_in_seconds(n);
            }
            b = b.retry_policy(rb.build());
        }
        if let Some(input) = t.get("Input") {
            b = b.input(text(input));
        }
        if let Some(path) = t.get("InputPath") {
            b = b.input_path(text(path));
        }
        if let Some(tr) = t.get("InputTransformer") {
            let mut tb = aws_sdk_eventbridge::types::InputTransformer::builder()
                .input_template(tr.get("InputTemplate").map(text).unwrap_or_default());
            for (k, v) in tr.get("InputPathsMap").and_then(Value::as_object).into_iter().flatten() {
                tb = tb.input_paths_map(k, text(v));
            }
            b = b.input_transformer(tb.build().map_err(|e| err(id, format!("InputTransformer: {e}")))?);
        }
        if let Some(group) = t.pointer("/SqsParameters/MessageGroupId") {
            b = b.sqs_parameters(
                aws_sdk_eventbridge::types::SqsParameters::builder()
                    .message_group_id(text(group))
                    .build(),
            );
        }
        put_target(c, &rule, id, b.build().map_err(|e| aws_err("rule target", e))?).await?;
    }
    Ok((Attrs::new(&rule.name).with("Arn", &arn), arn))
}

async fn put_target(
    c: &Clients,
    rule: &RuleSpec,
    id: &str,
    target: aws_sdk_eventbridge::types::Target,
) -> Result<(), LocalError> {
    let out =
        c.eb.put_targets()
            .rule(&rule.name)
            .event_bus_name(&rule.bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| aws_err(format!("PutTargets {} ({id})", rule.name), EbCtx(e)))?;
    if out.failed_entry_count() > 0 {
        return Err(LocalError::Aws(format!(
            "PutTargets {} ({id}): {:?}",
            rule.name,
            out.failed_entries()
        )));
    }
    Ok(())
}

fn plan_function(
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    metadata: Option<&Value>,
    bin_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<(Function, Vec<Route>), LocalError> {
    let resolve = |v: &Value| cfn.resolve(v).map_err(|e| err(id, e));
    let runtime = props.get("Runtime").map(text).unwrap_or_default();
    if !runtime.starts_with("provided") {
        return Err(err(
            id,
            format!("has runtime {runtime:?}; the local runner runs custom runtimes (provided.*) only"),
        ));
    }
    let binary = metadata
        .and_then(|m| m.pointer("/BuildProperties/Binary"))
        .and_then(Value::as_str)
        .ok_or_else(|| err(id, "has no Metadata.BuildProperties.Binary (the cargo binary to run)"))?;
    let attrs = cfn.resources.get(id).cloned().unwrap_or_default();
    let mut environment = Vec::new();
    if let Some(vars) = props.get("Environment").and_then(|e| e.get("Variables")) {
        for (k, v) in resolve(vars)?.as_object().into_iter().flatten() {
            environment.push((k.clone(), text(v)));
        }
    }
    let number = |k: &str, default: u64| -> Result<u64, LocalError> {
        match props.get(k) {
            None => Ok(default),
            Some(v) => text(&resolve(v)?)
                .parse()
                .map_err(|_| err(id, format!("has a {k} that is not a number"))),
        }
    };
    let logging = props
        .get("LoggingConfig")
        .map(resolve)
        .transpose()?
        .unwrap_or(Value::Null);
    let log_group = logging
        .get("LogGroup")
        .map(text)
        .unwrap_or_else(|| format!("/aws/lambda/{}", attrs.reference));
    let async_cfg = props
        .get("EventInvokeConfig")
        .map(resolve)
        .transpose()?
        .unwrap_or(Value::Null);
    let on_failure = match async_cfg.pointer("/DestinationConfig/OnFailure") {
        None => None,
        Some(d) if d.get("Type").map(text).as_deref() == Some("SQS") => {
            let arn = d.get("Destination").map(text).unwrap_or_default();
            let url = cfn
                .resources
                .values()
                .find(|a| a.get_att.get("Arn") == Some(&arn))
                .map(|a| a.reference.clone())
                .ok_or_else(|| {
                    err(
                        id,
                        format!("has an OnFailure destination {arn} that is not a queue of the template"),
                    )
                })?;
            Some(url)
        }
        Some(d) => {
            return Err(err(
                id,
                format!(
                    "has an OnFailure destination of type {:?}; locally only SQS",
                    d.get("Type")
                ),
            ));
        }
    };
    let mut sqs = Vec::new();
    let mut routes = Vec::new();
    for (event, spec) in props.get("Events").and_then(Value::as_object).into_iter().flatten() {
        let eprops = resolve(spec.get("Properties").unwrap_or(&Value::Null))?;
        match spec.get("Type").and_then(Value::as_str).unwrap_or_default() {
            "SQS" => {
                for k in eprops.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
                    match k {
                        "Queue"
                        | "BatchSize"
                        | "MaximumBatchingWindowInSeconds"
                        | "FunctionResponseTypes"
                        | "Enabled"
                        | "ScalingConfig" => {}
                        other => {
                            return Err(err(
                                id,
                                format!("event {event} has {other}, which the local runner does not play"),
                            ));
                        }
                    }
                }
                if eprops.get("Enabled").is_some_and(|e| text(e) == "false") {
                    notes.push(format!("{id} event {event}: disabled in the template, not polled"));
                    continue;
                }
                let arn = eprops.get("Queue").map(text).unwrap_or_default();
                let (queue, attrs) = cfn
                    .resources
                    .iter()
                    .find(|(_, a)| a.get_att.get("Arn") == Some(&arn))
                    .ok_or_else(|| {
                        err(
                            id,
                            format!("event {event} reads {arn}, which is not a queue of the template"),
                        )
                    })?;
                let num = |k: &str| eprops.get(k).map(text).and_then(|s| s.parse::<u32>().ok());
                sqs.push(SqsSource {
                    event: event.clone(),
                    queue: queue.clone(),
                    queue_url: attrs.reference.clone(),
                    queue_arn: arn.clone(),
                    batch_size: num("BatchSize").unwrap_or(10),
                    window_secs: num("MaximumBatchingWindowInSeconds").unwrap_or(0),
                    report_failures: eprops
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|t| text(t) == "ReportBatchItemFailures")),
                    max_concurrency: eprops
                        .pointer("/ScalingConfig/MaximumConcurrency")
                        .map(text)
                        .and_then(|s| s.parse().ok()),
                });
            }
            "HttpApi" => {
                let api = match spec.pointer("/Properties/ApiId") {
                    Some(Value::Object(r)) => r.get("Ref").map(text).unwrap_or_default(),
                    Some(other) => {
                        return Err(err(
                            id,
                            format!("event {event} has ApiId {other}; expected !Ref to an HttpApi"),
                        ));
                    }
                    None => IMPLICIT_HTTP_API.to_string(),
                };
                if let Some(v) = eprops.get("PayloadFormatVersion")
                    && text(v) != "2.0"
                {
                    return Err(err(
                        id,
                        format!(
                            "event {event} uses payload format {}; the local HTTP API plays 2.0",
                            text(v)
                        ),
                    ));
                }
                for k in eprops.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
                    if !matches!(
                        k,
                        "ApiId" | "Method" | "Path" | "PayloadFormatVersion" | "TimeoutInMillis"
                    ) {
                        notes.push(format!("{id} event {event}.{k}: not applied by the local HTTP API"));
                    }
                }
                routes.push(Route {
                    api,
                    method: eprops
                        .get("Method")
                        .map(text)
                        .unwrap_or_else(|| "ANY".into())
                        .to_uppercase(),
                    path: eprops.get("Path").map(text).unwrap_or_else(|| "$default".into()),
                    function: id.to_string(),
                });
            }
            _ => {} // rules and schedules are nodes, created already
        }
    }
    if props.get("Architectures").is_some() {
        notes.push(format!(
            "{id}.Architectures: runs on this machine's architecture locally"
        ));
    }
    let function = Function {
        logical_id: id.to_string(),
        name: attrs.reference.clone(),
        arn: attrs.get_att.get("Arn").cloned().unwrap_or_default(),
        binary: bin_dir.join(binary),
        environment,
        timeout_secs: number("Timeout", 3)?,
        memory_mb: number("MemorySize", 128)? as u32,
        log_format: logging.get("LogFormat").map(text).unwrap_or_else(|| "Text".into()),
        log_level: logging.get("ApplicationLogLevel").map(text),
        log_group,
        reserved_concurrency: props
            .get("ReservedConcurrentExecutions")
            .map(|v| resolve(v).map(|v| text(&v)))
            .transpose()?
            .and_then(|s| s.parse().ok()),
        sqs,
        async_config: AsyncConfig {
            max_retries: async_cfg
                .get("MaximumRetryAttempts")
                .map(text)
                .and_then(|s| s.parse().ok())
                .unwrap_or(2),
            on_failure_queue_url: on_failure,
        },
    };
    Ok((function, routes))
}

/// The cargo binaries the template's functions run
/// (`Metadata.BuildProperties.Binary`), in template order.
pub fn function_binaries(template: &Value) -> Vec<String> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(FUNCTION))
        .filter_map(|(_, r)| r.pointer("/Metadata/BuildProperties/Binary").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}
