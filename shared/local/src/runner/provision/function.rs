//! `AWS::Serverless::Function`: the function's name, ARN and role in the
//! stack, the rules and schedules its events stand for (nodes created in
//! moto), and the [`Function`] the runner plays, with its SQS event source
//! mappings and HTTP API routes.

use super::{
    AsyncConfig, FUNCTION, Function, IMPLICIT_HTTP_API, Node, Route, SqsSource, err, intrinsic, local_role_id, text,
};
use crate::LocalError;
use crate::runner::cfn::{ACCOUNT_ID, Attrs, Cfn};
use serde_json::{Map, Value};
use std::path::Path;

/// The creation-graph nodes of one function's events: (node id, node, the
/// resources it refers to).
pub(super) type EventNodes = Vec<(String, Node, Vec<String>)>;

/// Declares function `id` in `cfn` (its `Ref`, `Arn`, and its role's
/// attributes) and returns its properties merged over the template's
/// `Globals`, and the rules and schedules its events stand for.
pub(super) fn declare(
    cfn: &mut Cfn,
    id: &str,
    props: &Value,
    globals: &Map<String, Value>,
    stack_name: &str,
) -> Result<(Map<String, Value>, EventNodes), LocalError> {
    // SAM's Globals: maps merge, lists append, the function's own values win.
    let mut merged = globals.clone();
    for (k, v) in props.as_object().cloned().unwrap_or_default() {
        let g = merged.remove(&k);
        merged.insert(k, merge_globals(g, v));
    }
    let name = match merged.get("FunctionName") {
        Some(n) => cfn.resolve_string(n).map_err(intrinsic(id))?,
        None => format!("{stack_name}-{id}"),
    };
    let arn = cfn.arn("lambda", &format!("function:{name}"));
    cfn.resources
        .insert(id.to_string(), Attrs::new(&name).with("Arn", &arn));
    let role = format!("{id}Role");
    cfn.resources.insert(
        role.clone(),
        Attrs::new(format!("{stack_name}-{role}"))
            .with("Arn", format!("arn:aws:iam::{}:role/{stack_name}-{role}", ACCOUNT_ID))
            // A role's unique id; moto records every sender as its own
            // default id whatever this is.
            .with("RoleId", local_role_id(&role)),
    );
    let mut nodes = Vec::new();
    for (event, spec) in merged.get("Events").and_then(Value::as_object).into_iter().flatten() {
        let etype = spec.get("Type").and_then(Value::as_str).unwrap_or_default();
        let eprops = spec.get("Properties").cloned().unwrap_or(Value::Object(Map::new()));
        let node_id = format!("{id}{event}");
        let mut edeps = Vec::new();
        cfn.references(&eprops, &mut edeps);
        let function = id.to_string();
        match etype {
            "EventBridgeRule" | "CloudWatchEvent" => nodes.push((
                node_id,
                Node::FunctionRule {
                    function,
                    props: eprops,
                },
                edeps,
            )),
            "Schedule" | "ScheduleV2" => nodes.push((
                node_id,
                Node::FunctionSchedule {
                    function,
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
    Ok((merged, nodes))
}

/// A function property over its `Globals` value, as SAM merges them.
pub(super) fn merge_globals(global: Option<Value>, own: Value) -> Value {
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

/// The function `id` as the runner plays it, and its HTTP API routes, once
/// everything it refers to exists.
pub(super) fn plan_function(
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    metadata: Option<&Value>,
    bin_dir: &Path,
    notes: &mut Vec<String>,
) -> Result<(Function, Vec<Route>), LocalError> {
    let resolve = |v: &Value| cfn.resolve(v).map_err(intrinsic(id));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:stk-Work";

    fn cfn() -> Cfn {
        let mut cfn = Cfn::new(&json!({}), "stk", "us-east-1", &HashMap::new()).unwrap();
        cfn.resources
            .insert("Work".into(), Attrs::new("http://q/work").with("Arn", QUEUE_ARN));
        cfn.resources.insert(
            "Failed".into(),
            Attrs::new("http://q/failed").with("Arn", "arn:aws:sqs:us-east-1:123456789012:stk-Failed"),
        );
        cfn.resources.insert("Api".into(), Attrs::new("localapi"));
        cfn
    }

    fn declared(props: Value, globals: Value) -> (Cfn, Map<String, Value>, EventNodes) {
        let mut cfn = cfn();
        let (merged, nodes) = declare(&mut cfn, "Fn", &props, globals.as_object().unwrap(), "stk").unwrap();
        (cfn, merged, nodes)
    }

    fn plan(props: Value) -> Result<(Function, Vec<Route>, Vec<String>), LocalError> {
        let (cfn, merged, _) = declared(props, json!({}));
        let mut notes = Vec::new();
        let metadata = json!({"BuildProperties": {"Binary": "fn-bin"}});
        let (f, routes) = plan_function(&cfn, "Fn", &merged, Some(&metadata), Path::new("/bin"), &mut notes)?;
        Ok((f, routes, notes))
    }

    #[test]
    fn globals_merge_maps_append_lists_and_the_function_wins() {
        let globals = json!({"Timeout": 3, "Environment": {"Variables": {"A": "g", "B": "g"}}, "Layers": ["l1"]});
        let props = json!({"Timeout": 9, "Environment": {"Variables": {"B": "own"}}, "Layers": ["l2"]});
        let (cfn, merged, nodes) = declared(props, globals);
        assert_eq!(merged["Timeout"], json!(9));
        assert_eq!(merged["Environment"]["Variables"], json!({"A": "g", "B": "own"}));
        assert_eq!(merged["Layers"], json!(["l1", "l2"]));
        assert!(nodes.is_empty());
        assert_eq!(cfn.resources["Fn"].reference, "stk-Fn");
        assert_eq!(
            cfn.resources["Fn"].get_att["Arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:stk-Fn"
        );
        assert_eq!(cfn.resources["FnRole"].get_att["RoleId"], "AROALOCALFNROLE");
    }

    #[test]
    fn rule_and_schedule_events_become_nodes_and_unknown_events_errors() {
        let props = json!({"Events": {
            "S3": {"Type": "EventBridgeRule", "Properties": {"Pattern": {"source": ["aws.s3"]}}},
            "Tick": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}},
            "Q": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Work", "Arn"]}}}
        }});
        let (_, _, nodes) = declared(props, json!({}));
        let kinds: Vec<(&str, bool)> = nodes
            .iter()
            .map(|(id, n, _)| (id.as_str(), matches!(n, Node::FunctionSchedule { .. })))
            .collect();
        assert_eq!(kinds, vec![("FnS3", false), ("FnTick", true)]);
        let mut cfn = cfn();
        let kinesis = json!({"Events": {"K": {"Type": "Kinesis", "Properties": {}}}});
        let e = declare(&mut cfn, "Fn", &kinesis, &Map::new(), "stk")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Fn has event K of type Kinesis"), "{e}");
    }

    #[test]
    fn a_function_plan_reads_its_settings_and_sqs_sources() {
        let (f, routes, notes) = plan(json!({
            "Runtime": "provided.al2023",
            "Timeout": 30,
            "MemorySize": "256",
            "Architectures": ["arm64"],
            "Environment": {"Variables": {"QUEUE_URL": {"Ref": "Work"}}},
            "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG"},
            "EventInvokeConfig": {"MaximumRetryAttempts": 0, "DestinationConfig": {"OnFailure": {
                "Type": "SQS", "Destination": {"Fn::GetAtt": ["Failed", "Arn"]}}}},
            "Events": {"Q": {"Type": "SQS", "Properties": {
                "Queue": {"Fn::GetAtt": ["Work", "Arn"]},
                "BatchSize": 5,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": 2}}}}
        }))
        .unwrap();
        assert_eq!(f.binary, Path::new("/bin/fn-bin"));
        assert_eq!(
            f.environment,
            vec![("QUEUE_URL".to_string(), "http://q/work".to_string())]
        );
        assert_eq!((f.timeout_secs, f.memory_mb), (30, 256));
        assert_eq!((f.log_format.as_str(), f.log_level.as_deref()), ("JSON", Some("DEBUG")));
        assert_eq!(f.log_group, "/aws/lambda/stk-Fn");
        assert_eq!(
            f.async_config,
            AsyncConfig {
                max_retries: 0,
                on_failure_queue_url: Some("http://q/failed".into())
            }
        );
        assert_eq!(
            f.sqs,
            vec![SqsSource {
                event: "Q".into(),
                queue: "Work".into(),
                queue_url: "http://q/work".into(),
                queue_arn: QUEUE_ARN.into(),
                batch_size: 5,
                window_secs: 0,
                report_failures: true,
                max_concurrency: Some(2),
            }]
        );
        assert!(routes.is_empty());
        assert_eq!(
            notes,
            vec!["Fn.Architectures: runs on this machine's architecture locally"]
        );
    }

    #[test]
    fn http_api_events_become_routes() {
        let (f, routes, notes) = plan(json!({
            "Runtime": "provided.al2023",
            "Events": {
                "Post": {"Type": "HttpApi", "Properties": {"Path": "/v1/events", "Method": "post", "Auth": {}}},
                "Rest": {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}}}
            }
        }))
        .unwrap();
        assert_eq!((f.timeout_secs, f.memory_mb, f.async_config.max_retries), (3, 128, 2));
        assert_eq!(
            routes,
            vec![
                Route {
                    api: IMPLICIT_HTTP_API.into(),
                    method: "POST".into(),
                    path: "/v1/events".into(),
                    function: "Fn".into()
                },
                Route {
                    api: "Api".into(),
                    method: "ANY".into(),
                    path: "$default".into(),
                    function: "Fn".into()
                },
            ]
        );
        assert_eq!(notes, vec!["Fn event Post.Auth: not applied by the local HTTP API"]);
    }

    #[test]
    fn what_the_runner_cannot_play_is_an_error_naming_the_function() {
        let cases = [
            (json!({"Runtime": "python3.12"}), "custom runtimes"),
            (
                json!({"Runtime": "provided.al2023", "Events": {"Q": {"Type": "SQS", "Properties": {
                    "Queue": QUEUE_ARN, "FilterCriteria": {}}}}}),
                "event Q has FilterCriteria",
            ),
            (
                json!({"Runtime": "provided.al2023", "Events": {"Q": {"Type": "SQS", "Properties": {
                    "Queue": "arn:aws:sqs:us-east-1:123456789012:elsewhere"}}}}),
                "not a queue of the template",
            ),
            (
                json!({"Runtime": "provided.al2023", "Events": {"H": {"Type": "HttpApi", "Properties": {
                    "PayloadFormatVersion": "1.0"}}}}),
                "payload format 1.0",
            ),
            (
                json!({"Runtime": "provided.al2023", "EventInvokeConfig": {"DestinationConfig": {"OnFailure": {
                    "Type": "SNS", "Destination": "arn:aws:sns:us-east-1:123456789012:t"}}}}),
                "locally only SQS",
            ),
            (
                json!({"Runtime": "provided.al2023", "Timeout": "soon"}),
                "Timeout that is not a number",
            ),
        ];
        for (props, needle) in cases {
            let e = plan(props).err().unwrap().to_string();
            assert!(e.contains("resource Fn") && e.contains(needle), "{e}");
        }
        let (cfn, merged, _) = declared(json!({"Runtime": "provided.al2023"}), json!({}));
        let e = plan_function(&cfn, "Fn", &merged, None, Path::new("/bin"), &mut Vec::new())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Metadata.BuildProperties.Binary"), "{e}");
    }

    #[test]
    fn function_binaries_come_from_build_metadata_in_template_order() {
        let t = json!({"Resources": {
            "A": {"Type": "AWS::Serverless::Function", "Metadata": {"BuildProperties": {"Binary": "a"}}},
            "Q": {"Type": "AWS::SQS::Queue"},
            "B": {"Type": "AWS::Serverless::Function", "Metadata": {"BuildProperties": {"Binary": "b"}}}
        }});
        assert_eq!(function_binaries(&t), vec!["a", "b"]);
    }
}
