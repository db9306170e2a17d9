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
//!   `AWS::DynamoDB::Table`, `AWS::Events::EventBus`, `AWS::Events::Rule`,
//!   `AWS::SecretsManager::Secret`, `AWS::KMS::Key`;
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
//!
//! One module per resource type: `queue` (queues and queue policies),
//! `table`, `bus`, `rule` (rules and the functions' rule and schedule
//! events), `secret`, `key`, `function` and `http_api`; this module orders
//! and drives them.

mod bus;
mod function;
mod http_api;
mod key;
mod queue;
mod rule;
mod secret;
mod table;

pub use function::function_binaries;
pub use http_api::http_apis;

use super::cfn::{self, Attrs, Cfn};
use crate::LocalError;
use aws_config::SdkConfig;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

const QUEUE: &str = "AWS::SQS::Queue";
const QUEUE_POLICY: &str = "AWS::SQS::QueuePolicy";
const TABLE: &str = "AWS::DynamoDB::Table";
const BUS: &str = "AWS::Events::EventBus";
const RULE: &str = "AWS::Events::Rule";
const SECRET: &str = "AWS::SecretsManager::Secret";
const FUNCTION: &str = "AWS::Serverless::Function";
const HTTP_API: &str = "AWS::Serverless::HttpApi";
const KEY: &str = "AWS::KMS::Key";

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
        "AWS::EC2::VPC",
        "the runner's functions use the host's network (StaticEgress changes only the webhooks' source address)",
    ),
    (
        "AWS::EC2::InternetGateway",
        "the runner's functions use the host's network",
    ),
    (
        "AWS::EC2::VPCGatewayAttachment",
        "the runner's functions use the host's network",
    ),
    ("AWS::EC2::Subnet", "the runner's functions use the host's network"),
    ("AWS::EC2::RouteTable", "the runner's functions use the host's network"),
    ("AWS::EC2::Route", "the runner's functions use the host's network"),
    (
        "AWS::EC2::SubnetRouteTableAssociation",
        "the runner's functions use the host's network",
    ),
    ("AWS::EC2::EIP", "the runner's functions use the host's network"),
    ("AWS::EC2::NatGateway", "the runner's functions use the host's network"),
    ("AWS::EC2::VPCEndpoint", "the runner's functions use the host's network"),
    (
        "AWS::EC2::SecurityGroup",
        "the runner's functions use the host's network",
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
    /// The event's name under the function's `Events`.
    pub event: String,
    /// The logical id of the queue.
    pub queue: String,
    /// The queue's URL in moto.
    pub queue_url: String,
    /// The queue's ARN (the records' `eventSourceARN`).
    pub queue_arn: String,
    /// `BatchSize`: the most messages per invocation.
    pub batch_size: u32,
    /// `MaximumBatchingWindowInSeconds`; 0: invoke as soon as a poll returns messages.
    pub window_secs: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most concurrent invocations from this source (`None`: the function's limit).
    pub max_concurrency: Option<u32>,
}

/// A rule (in moto) whose target is a function: the runner reads `queue`
/// and invokes the function asynchronously with each envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInvoke {
    /// The rule's logical id.
    pub rule: String,
    /// The target function's logical id.
    pub function: String,
    /// The runner-owned queue the rule sends to instead of the function.
    pub queue_url: String,
}

/// A schedule the runner fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The rule's logical id.
    pub rule: String,
    /// The rule's ARN (the scheduled event's `resources`).
    pub rule_arn: String,
    /// `rate(...)` or `cron(...)`, as in the template.
    pub expression: String,
    /// What the schedule fires.
    pub target: ScheduleTarget,
    /// The constant `Input` of the target, if any (else the scheduled event).
    pub input: Option<String>,
}

/// What a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleTarget {
    /// The function with this logical id, invoked asynchronously.
    Function(String),
    /// The queue at this URL, sent the event.
    Queue(String),
}

/// One route of an HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The HTTP API's logical id.
    pub api: String,
    /// `ANY` or an upper-case method.
    pub method: String,
    /// The route's path (`/events`, `/endpoints/{id}`, `/{proxy+}`).
    pub path: String,
    /// The logical id of the function that serves it.
    pub function: String,
}

/// How Lambda invokes a function asynchronously (EventBridge rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncConfig {
    /// `MaximumRetryAttempts`: invocations retried this many times after the first fails.
    pub max_retries: u32,
    /// `DestinationConfig.OnFailure` when it is an SQS queue (its URL).
    pub on_failure_queue_url: Option<String>,
}

/// A function, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The function's logical id.
    pub logical_id: String,
    /// The function's physical name (`FunctionName`, else stack-prefixed).
    pub name: String,
    /// The function's ARN.
    pub arn: String,
    /// The executable built from its `CodeUri` crate.
    pub binary: PathBuf,
    /// The template's variables, resolved (Globals merged).
    pub environment: Vec<(String, String)>,
    /// `Timeout`, in seconds.
    pub timeout_secs: u64,
    /// `MemorySize`, in MB (only reported to the function).
    pub memory_mb: u32,
    /// `LoggingConfig.LogFormat`: `Text` or `JSON`.
    pub log_format: String,
    /// `LoggingConfig.ApplicationLogLevel`, if set.
    pub log_level: Option<String>,
    /// The log group name the function would write to.
    pub log_group: String,
    /// `ReservedConcurrentExecutions`, if set: caps its instances.
    pub reserved_concurrency: Option<u32>,
    /// Its SQS event sources.
    pub sqs: Vec<SqsSource>,
    /// How its asynchronous invocations are retried.
    pub async_config: AsyncConfig,
}

/// Everything provisioned and everything the runner plays.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The evaluation context, with every created resource's `Ref` and attributes.
    pub cfn: Cfn,
    /// (logical id, type, physical id) of what was created in moto, in
    /// creation order.
    pub created: Vec<(String, String, String)>,
    /// The functions the runner plays.
    pub functions: Vec<Function>,
    /// The routes of every HTTP API.
    pub routes: Vec<Route>,
    /// The logical ids of the HTTP APIs.
    pub apis: Vec<String>,
    /// The rules whose target is a function.
    pub rule_invokes: Vec<RuleInvoke>,
    /// The schedules the runner fires.
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

    /// The planned function with `logical_id`.
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

/// An error about resource `id` of the template.
fn err(id: &str, what: impl std::fmt::Display) -> LocalError {
    LocalError::Resource {
        id: id.to_string(),
        reason: what.to_string(),
    }
}

/// An intrinsic function of resource `id` that does not evaluate.
fn intrinsic(id: &str) -> impl FnOnce(cfn::Error) -> LocalError {
    let id = id.to_string();
    move |source| LocalError::Intrinsic { id, source }
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
        Cfn::new(template, &opts.stack_name, crate::LOCAL_REGION, &opts.parameters).map_err(LocalError::Parameters)?;
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
            && !cfn.condition_named(cond).map_err(intrinsic(id))?
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
            QUEUE | QUEUE_POLICY | TABLE | BUS | RULE | SECRET | KEY => nodes.push((
                id.clone(),
                Node::Resource {
                    kind: kind.to_string(),
                    props,
                },
                deps,
            )),
            FUNCTION => {
                let (merged, events) = function::declare(&mut cfn, id, &props, &globals, &opts.stack_name)?;
                nodes.extend(events);
                functions_raw.push((id.clone(), merged, resource.get("Metadata").cloned()));
            }
            HTTP_API => {
                let url = opts.api_endpoints.get(id).cloned().unwrap_or_default();
                http_api::declare(&mut cfn, id, &props, url, &mut notes);
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
        http_api::declare_implicit(&mut cfn, url);
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
                let props = cfn.resolve(props).map_err(intrinsic(id))?;
                let props = props.as_object().cloned().unwrap_or_default();
                let (attrs, physical) = match kind.as_str() {
                    QUEUE => queue::create_queue(&clients, &cfn, id, &props, &mut notes).await?,
                    QUEUE_POLICY => queue::apply_queue_policy(&clients, id, &props).await?,
                    TABLE => table::create_table(&clients, &cfn, id, &props, &mut notes).await?,
                    BUS => bus::create_bus(&clients, &cfn, id, &props).await?,
                    SECRET => secret::create_secret(&clients, &cfn, id, &props).await?,
                    KEY => key::create_key(&clients, &cfn, id, &props).await?,
                    RULE => {
                        let rule = rule::RuleSpec::from_resource(&cfn, id, &props)?;
                        rule::create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules)
                            .await?
                    }
                    _ => unreachable!("only created kinds are nodes"),
                };
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), kind.clone(), physical));
            }
            Node::FunctionRule { function, props } => {
                let props = cfn.resolve(props).map_err(intrinsic(id))?;
                let rule = rule::RuleSpec::from_function_event(&cfn, id, function, &props, false)?;
                let (attrs, physical) =
                    rule::create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules).await?;
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), RULE.to_string(), physical));
            }
            Node::FunctionSchedule { function, props } => {
                let props = cfn.resolve(props).map_err(intrinsic(id))?;
                let rule = rule::RuleSpec::from_function_event(&cfn, id, function, &props, true)?;
                let (attrs, physical) =
                    rule::create_rule(&clients, &cfn, id, rule, &mut notes, &mut rule_invokes, &mut schedules).await?;
                cfn.resources.insert(id.clone(), attrs);
                created.push((id.clone(), RULE.to_string(), physical));
            }
        }
    }

    // Pass 3: the functions, now that everything they refer to exists.
    let mut functions = Vec::new();
    let mut routes = Vec::new();
    for (id, props, metadata) in functions_raw {
        let (function, fn_routes) =
            function::plan_function(&cfn, &id, &props, metadata.as_ref(), &opts.bin_dir, &mut notes)?;
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
                return Err(LocalError::Cycle {
                    ids: stuck.into_iter().map(str::to_string).collect(),
                });
            }
        }
    }
    Ok(order)
}

/// The SDK clients provisioning uses.
struct Clients {
    sqs: aws_sdk_sqs::Client,
    ddb: aws_sdk_dynamodb::Client,
    eb: aws_sdk_eventbridge::Client,
    sm: aws_sdk_secretsmanager::Client,
    kms: aws_sdk_kms::Client,
}

impl Clients {
    fn new(sdk: &SdkConfig) -> Self {
        Self {
            sqs: aws_sdk_sqs::Client::new(sdk),
            ddb: aws_sdk_dynamodb::Client::new(sdk),
            eb: aws_sdk_eventbridge::Client::new(sdk),
            sm: aws_sdk_secretsmanager::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
        }
    }
}

/// An error if `props` holds a property outside `known`: the local stack
/// never quietly differs from the template.
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

/// A property's value as text (numbers and booleans as written).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A resource's `Tags`, as a list of `Key`/`Value` or as a map.
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

#[cfg(test)]
mod tests;

/// What the resource modules' unit tests share.
#[cfg(test)]
mod test_support {
    use super::Cfn;
    use serde_json::{Map, Value, json};
    use std::collections::HashMap;

    /// The context of a stack `stk` in `us-east-1` with no parameters.
    pub(super) fn cfn() -> Cfn {
        Cfn::new(&json!({}), "stk", "us-east-1", &HashMap::new()).unwrap()
    }

    /// A resource's `Properties` from JSON.
    pub(super) fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }
}
