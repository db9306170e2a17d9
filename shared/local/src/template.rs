//! `template.yaml`, read as CloudFormation reads it, and the parts of it the
//! local runner provisions.
//!
//! [`load`] turns the template into JSON with cfn-lint's own decoder
//! (`shared/local/python/template_json.py`, run by the project's virtualenv),
//! so the short forms of the intrinsic functions arrive in their long forms:
//! `{"Ref": ...}`, `{"Fn::GetAtt": [...]}`, `{"Fn::Sub": ...}`. The SAM
//! transform is not applied.
//!
//! [`internal_routes`] reads the internal track from it: every
//! `AWS::Events::Rule` on the application's bus (`AppEventBus`) and, for
//! each of its targets, the `AWS::SQS::Queue` it sends to, with the queue's
//! visibility timeout and redrive policy. Whatever it cannot interpret (a
//! target that is not a queue of the template, a pattern holding an
//! intrinsic function, a rule on a bus it does not know, a target that
//! reshapes the event) is an error naming the resource: the local stack must
//! never quietly differ from the template.

use crate::LocalError;
use crate::venv::Venv;
use serde_json::{Map, Value};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// The logical id of the application's event bus in `template.yaml`.
pub const APP_EVENT_BUS: &str = "AppEventBus";

const RULE: &str = "AWS::Events::Rule";
const QUEUE: &str = "AWS::SQS::Queue";
const EVENT_BUS: &str = "AWS::Events::EventBus";

/// An SQS queue of the template, as far as the local runner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateQueue {
    /// The queue's logical id.
    pub logical_id: String,
    /// `VisibilityTimeout`, in seconds, if set.
    pub visibility_timeout_secs: Option<u32>,
    /// The queue its `RedrivePolicy` sends to, if it has one.
    pub dlq_logical_id: Option<String>,
    /// The `maxReceiveCount` of its `RedrivePolicy`, if it has one.
    pub max_receive_count: Option<u32>,
}

/// One target of a rule on the application's bus: events matching `pattern`
/// go to `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalRoute {
    /// The rule's logical id.
    pub rule_logical_id: String,
    /// The rule's event pattern, free of intrinsic functions.
    pub pattern: Value,
    /// The queue the rule targets.
    pub queue: TemplateQueue,
}

/// `<root>/template.yaml` as JSON.
pub fn load(root: &Path, venv: &Venv) -> Result<Value, LocalError> {
    load_path(root, venv, &root.join("template.yaml"))
}

/// A template file as JSON, decoded by `template_json.py` from `root`.
pub fn load_path(root: &Path, venv: &Venv, path: &Path) -> Result<Value, LocalError> {
    let script = root.join("shared/local/python/template_json.py");
    let out = Command::new(venv.python())
        .arg(&script)
        .arg(path)
        .output()
        .map_err(LocalError::io("running template_json.py"))?;
    if !out.status.success() {
        return Err(LocalError::Template(format!(
            "template_json.py could not read {} ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let template: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| LocalError::Template(format!("template_json.py printed no JSON for {}: {e}", path.display())))?;
    if !template.is_object() {
        return Err(LocalError::Template(format!("{} is not a JSON object", path.display())));
    }
    Ok(template)
}

/// The workspace's `template.yaml`, loaded once per process (with the
/// project's virtualenv, set up if needed). A failure is remembered too.
pub fn workspace_template() -> Result<&'static Value, LocalError> {
    static TEMPLATE: OnceLock<Result<Value, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let root = crate::workspace_root();
            let venv = crate::venv::ensure(&root).map_err(|e| e.to_string())?;
            load(&root, &venv).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalError::Template(e.clone()))
}

/// Every (rule, SQS queue target) pair on the application's bus, in the
/// order of the template's resources.
///
/// Rules on the default bus (no `EventBusName`, or `default`) and disabled
/// rules are not routes of the internal track and are left out; anything
/// else that is not understood is an error.
pub fn internal_routes(template: &Value) -> Result<Vec<InternalRoute>, LocalError> {
    let resources = resources(template)?;
    match resources.get(APP_EVENT_BUS).and_then(|r| r.get("Type")) {
        Some(Value::String(t)) if t == EVENT_BUS => {}
        _ => {
            return Err(err(APP_EVENT_BUS, format!("is not an {EVENT_BUS} of the template")));
        }
    }
    let mut routes = Vec::new();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Value::as_str) != Some(RULE) {
            continue;
        }
        let props = properties(id, resource)?;
        if !on_app_bus(id, props.get("EventBusName"))? || !enabled(id, props.get("State"))? {
            continue;
        }
        let pattern = match props.get("EventPattern") {
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|e| err(id, format!("has an EventPattern string that is not JSON: {e}")))?,
            Some(p @ Value::Object(_)) => p.clone(),
            Some(other) => return Err(err(id, format!("has an EventPattern that is not an object: {other}"))),
            None => return Err(err(id, "has no EventPattern")),
        };
        if let Some(f) = intrinsic_in(&pattern) {
            return Err(err(
                id,
                format!("has an EventPattern with the intrinsic function {f}, which cannot be resolved locally"),
            ));
        }
        let targets = match props.get("Targets") {
            None => continue, // a rule without targets routes nothing
            Some(Value::Array(t)) => t,
            Some(other) => return Err(err(id, format!("has Targets that are not a list: {other}"))),
        };
        for target in targets {
            let queue_id = target_queue(id, target)?;
            if resources
                .get(&queue_id)
                .and_then(|r| r.get("Type"))
                .and_then(Value::as_str)
                != Some(QUEUE)
            {
                return Err(err(
                    id,
                    format!("has a target that is not an SQS queue of the template: {queue_id} is not an {QUEUE}"),
                ));
            }
            routes.push(InternalRoute {
                rule_logical_id: id.clone(),
                pattern: pattern.clone(),
                queue: queue(template, &queue_id)?,
            });
        }
    }
    Ok(routes)
}

/// The SQS queue `logical_id` of the template.
pub fn queue(template: &Value, logical_id: &str) -> Result<TemplateQueue, LocalError> {
    let resources = resources(template)?;
    let resource = resources
        .get(logical_id)
        .ok_or_else(|| err(logical_id, "is not a resource of the template"))?;
    if resource.get("Type").and_then(Value::as_str) != Some(QUEUE) {
        return Err(err(logical_id, format!("is not an {QUEUE}")));
    }
    let no_properties = Map::new();
    let props = match resource.get("Properties") {
        None => &no_properties,
        Some(Value::Object(p)) => p,
        Some(_) => return Err(err(logical_id, "has Properties that are not an object")),
    };
    if props.get("FifoQueue").is_some_and(|f| f != &Value::Bool(false)) {
        return Err(err(
            logical_id,
            "is a FIFO queue, which the local runner does not create",
        ));
    }
    let visibility_timeout_secs = props
        .get("VisibilityTimeout")
        .map(|v| number(logical_id, "VisibilityTimeout", v))
        .transpose()?;
    let (dlq_logical_id, max_receive_count) = match props.get("RedrivePolicy") {
        None => (None, None),
        Some(policy) => {
            let parsed;
            let policy = match policy {
                Value::String(s) => {
                    parsed = serde_json::from_str::<Value>(s)
                        .map_err(|e| err(logical_id, format!("has a RedrivePolicy string that is not JSON: {e}")))?;
                    &parsed
                }
                other => other,
            };
            let dlq = policy
                .get("deadLetterTargetArn")
                .ok_or_else(|| err(logical_id, "has a RedrivePolicy without deadLetterTargetArn"))?;
            let dlq = get_att_arn(dlq).ok_or_else(|| {
                err(
                    logical_id,
                    format!("has a deadLetterTargetArn that is not !GetAtt <queue>.Arn: {dlq}"),
                )
            })?;
            match resources.get(&dlq).and_then(|r| r.get("Type")).and_then(Value::as_str) {
                Some(QUEUE) => {}
                _ => {
                    return Err(err(
                        logical_id,
                        format!("has a deadLetterTargetArn naming {dlq}, which is not an {QUEUE} of the template"),
                    ));
                }
            }
            let count = policy
                .get("maxReceiveCount")
                .ok_or_else(|| err(logical_id, "has a RedrivePolicy without maxReceiveCount"))?;
            (Some(dlq), Some(number(logical_id, "maxReceiveCount", count)?))
        }
    };
    Ok(TemplateQueue {
        logical_id: logical_id.to_string(),
        visibility_timeout_secs,
        dlq_logical_id,
        max_receive_count,
    })
}

/// The parameter values that change which resources the template creates,
/// beside its defaults: the checkers (cfn-lint, checkov) run on the
/// template as it is and once with each of these as its default.
pub const MODES: &[(&str, &str)] = &[("StaticEgress", "one-az"), ("StaticEgress", "two-az")];

/// `text` (a template as YAML) with parameter `name`'s `Default` set to
/// `value`; an error when the parameter or its `Default` line is missing.
/// Text in, text out: CloudFormation's short-form tags do not survive a
/// YAML round trip.
pub fn with_default(text: &str, name: &str, value: &str) -> Result<String, LocalError> {
    let missing = || LocalError::Template(format!("parameter {name} with a Default line is not in the template"));
    let head = format!("\n  {name}:\n");
    let start = text.find(&head).ok_or_else(missing)? + head.len();
    let mut offset = start;
    for line in text[start..].split_inclusive('\n') {
        if !line.starts_with("    ") {
            break;
        }
        if line.starts_with("    Default:") {
            let end = offset + line.len() - usize::from(line.ends_with('\n'));
            return Ok(format!("{}    Default: \"{value}\"{}", &text[..offset], &text[end..]));
        }
        offset += line.len();
    }
    Err(missing())
}

/// A logical id in kebab case, for local resource names:
/// `InternalUserQueue` -> `internal-user-queue`, `InternalUserDLQ` ->
/// `internal-user-dlq`.
pub fn kebab_case(logical_id: &str) -> String {
    let chars: Vec<char> = logical_id.chars().collect();
    let mut out = String::with_capacity(chars.len() + 4);
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('-');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn err(logical_id: &str, what: impl std::fmt::Display) -> LocalError {
    LocalError::Resource {
        id: logical_id.to_string(),
        reason: what.to_string(),
    }
}

fn resources(template: &Value) -> Result<&Map<String, Value>, LocalError> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .ok_or_else(|| LocalError::Template("the template has no Resources object".into()))
}

fn properties<'a>(id: &str, resource: &'a Value) -> Result<&'a Map<String, Value>, LocalError> {
    match resource.get("Properties") {
        Some(Value::Object(p)) => Ok(p),
        Some(_) => Err(err(id, "has Properties that are not an object")),
        None => Err(err(id, "has no Properties")),
    }
}

/// Whether a rule's `EventBusName` is the application's bus (`true`) or the
/// default bus (`false`); any other bus is an error.
fn on_app_bus(id: &str, bus: Option<&Value>) -> Result<bool, LocalError> {
    let Some(bus) = bus else { return Ok(false) };
    if bus.as_str() == Some("default") {
        return Ok(false);
    }
    let is_app_bus = match bus {
        Value::Object(o) if o.len() == 1 => match (o.get("Ref"), o.get("Fn::GetAtt")) {
            (Some(Value::String(r)), _) => r == APP_EVENT_BUS,
            (_, Some(att)) => {
                get_att(att).is_some_and(|(res, attr)| res == APP_EVENT_BUS && (attr == "Name" || attr == "Arn"))
            }
            _ => false,
        },
        _ => false,
    };
    if is_app_bus {
        Ok(true)
    } else {
        Err(err(
            id,
            format!("is on the event bus {bus}, which is neither {APP_EVENT_BUS} nor the default bus"),
        ))
    }
}

fn enabled(id: &str, state: Option<&Value>) -> Result<bool, LocalError> {
    match state.map(|s| s.as_str()) {
        None | Some(Some("ENABLED")) => Ok(true),
        Some(Some("DISABLED")) => Ok(false),
        Some(_) => Err(err(
            id,
            format!("has a State the local runner does not know: {state:?}"),
        )),
    }
}

/// The logical id of the template queue a rule target sends to.
fn target_queue(rule: &str, target: &Value) -> Result<String, LocalError> {
    let Value::Object(t) = target else {
        return Err(err(rule, format!("has a target that is not an object: {target}")));
    };
    let id = t.get("Id").and_then(Value::as_str).unwrap_or("?");
    // These change neither what is delivered nor where: everything else
    // (Input, InputPath, InputTransformer, SqsParameters, RoleArn, ...) would
    // make the local delivery differ from AWS's.
    if let Some(k) = t
        .keys()
        .find(|k| !matches!(k.as_str(), "Id" | "Arn" | "RetryPolicy" | "DeadLetterConfig"))
    {
        return Err(err(
            rule,
            format!("has a target ({id}) with {k}, which the local runner does not apply"),
        ));
    }
    let arn = t
        .get("Arn")
        .ok_or_else(|| err(rule, format!("has a target ({id}) without an Arn")))?;
    let queue = get_att_arn(arn).ok_or_else(|| {
        err(
            rule,
            format!("has a target ({id}) that is not !GetAtt <queue>.Arn of the template: {arn}"),
        )
    })?;
    Ok(queue)
}

/// `X` of `{"Fn::GetAtt": ["X", "Arn"]}` or `{"Fn::GetAtt": "X.Arn"}`.
fn get_att_arn(v: &Value) -> Option<String> {
    let o = v.as_object().filter(|o| o.len() == 1)?;
    let (res, attr) = get_att(o.get("Fn::GetAtt")?)?;
    (attr == "Arn").then_some(res)
}

/// (resource, attribute) of a `Fn::GetAtt` argument, in its list or dotted form.
fn get_att(att: &Value) -> Option<(String, String)> {
    match att {
        Value::Array(a) => match a.as_slice() {
            [Value::String(res), Value::String(attr)] => Some((res.clone(), attr.clone())),
            _ => None,
        },
        Value::String(s) => s.split_once('.').map(|(r, a)| (r.to_string(), a.to_string())),
        _ => None,
    }
}

/// The first intrinsic function inside `v`: an object whose only key is
/// `Fn::<name>`, or `Ref` with a string (an event field named `Ref` would
/// have a list of filters).
fn intrinsic_in(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => {
            let intrinsic = match o.iter().next() {
                Some((k, v)) if o.len() == 1 => k.starts_with("Fn::") || (k == "Ref" && v.is_string()),
                _ => false,
            };
            if intrinsic {
                o.keys().next().cloned()
            } else {
                o.values().find_map(intrinsic_in)
            }
        }
        Value::Array(a) => a.iter().find_map(intrinsic_in),
        _ => None,
    }
}

/// A non-negative integer property, written as a number or a numeric string.
fn number(id: &str, name: &str, v: &Value) -> Result<u32, LocalError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| err(id, format!("has a {name} that is not a whole number: {v}")))
}

#[cfg(test)]
mod tests;
