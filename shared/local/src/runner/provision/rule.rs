//! `AWS::Events::Rule`, and the rules SAM generates for a function's
//! `EventBridgeRule`/`CloudWatchEvent` and `Schedule` events: created in
//! moto, with their targets. A target that is a function gets a
//! runner-owned queue in its place; a schedule is fired by the runner.

use super::{Clients, RULE, RuleInvoke, Schedule, ScheduleTarget, check_props, err, text};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_eventbridge::error::DisplayErrorContext as EbCtx;
use aws_sdk_eventbridge::operation::put_rule::builders::PutRuleInputBuilder;
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_sqs::error::DisplayErrorContext as SqsCtx;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A rule, from an `AWS::Events::Rule` or a function's event.
pub(super) struct RuleSpec {
    name: String,
    bus: String,
    pattern: Option<String>,
    schedule: Option<String>,
    enabled: bool,
    targets: Vec<Value>,
}

impl RuleSpec {
    /// The rule an `AWS::Events::Rule` declares.
    pub(super) fn from_resource(cfn: &Cfn, id: &str, props: &Map<String, Value>) -> Result<Self, LocalError> {
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
    pub(super) fn from_function_event(
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

/// A rule's generated name: the stack's name and the logical id, cut to
/// EventBridge's 64 characters.
fn rule_name(cfn: &Cfn, id: &str) -> String {
    let mut name = format!("{}-{id}", cfn.stack_name);
    name.truncate(64);
    name
}

/// The bus a rule is on (`default` unless named).
fn bus_name(v: Option<&Value>) -> String {
    let name = v.map(text).unwrap_or_else(|| "default".into());
    // An ARN names the bus after its last '/'.
    name.rsplit('/').next().unwrap_or(&name).to_string()
}

/// An event pattern as the JSON text `PutRule` takes.
fn pattern_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `PutRule` request for `rule` (its schedule checked first: the
/// runner fires schedules itself).
fn rule_input(id: &str, rule: &RuleSpec) -> Result<PutRuleInputBuilder, LocalError> {
    let mut req = PutRuleInputBuilder::default()
        .name(&rule.name)
        .event_bus_name(&rule.bus)
        .state(if rule.enabled {
            RuleState::Enabled
        } else {
            RuleState::Disabled
        });
    if let Some(p) = &rule.pattern {
        req = req.event_pattern(p);
    }
    if let Some(s) = &rule.schedule {
        crate::runner::schedule::Expression::parse(s).map_err(|e| err(id, format!("has schedule {s:?}: {e}")))?;
        req = req.schedule_expression(s);
    }
    Ok(req)
}

/// Creates rule `id` in moto with its targets. A queue target is put as
/// is; a function target becomes a runner-owned queue (in
/// `rule_invokes`), and a scheduled rule's targets go to `schedules`, which
/// the runner fires itself.
pub(super) async fn create_rule(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    rule: RuleSpec,
    notes: &mut Vec<String>,
    rule_invokes: &mut Vec<RuleInvoke>,
    schedules: &mut Vec<Schedule>,
) -> Result<(Attrs, String), LocalError> {
    let req = rule_input(id, &rule)?;
    let out = req
        .send_with(&c.eb)
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
        put_target(c, &rule, id, queue_target(id, &target_id, &target_arn, t)?).await?;
    }
    Ok((Attrs::new(&rule.name).with("Arn", &arn), arn))
}

/// A rule target that is a queue, with what the template configures on it
/// (dead-letter queue, retry policy, input shaping, FIFO group).
fn queue_target(id: &str, target_id: &str, target_arn: &str, t: &Value) -> Result<Target, LocalError> {
    let mut b = Target::builder().id(target_id).arn(target_arn);
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
    b.build().map_err(|e| aws_err("rule target", e))
}

/// Puts one target on `rule`; a failed entry is an error.
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
        return Err(aws_err(
            format!("PutTargets {} ({id})", rule.name),
            format!("{:?}", out.failed_entries()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::props;
    use serde_json::json;

    fn cfn() -> Cfn {
        let mut cfn = crate::runner::provision::test_support::cfn();
        cfn.resources.insert(
            "Fn".into(),
            Attrs::new("stk-Fn").with("Arn", "arn:aws:lambda:us-east-1:123456789012:function:stk-Fn"),
        );
        cfn
    }

    #[test]
    fn a_rule_resource_reads_its_bus_pattern_state_and_targets() {
        let p = props(json!({
            "EventBusName": "arn:aws:events:us-east-1:123456789012:event-bus/internal",
            "EventPattern": {"source": ["switchyard"]},
            "State": "DISABLED",
            "Targets": [{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:123456789012:q"}]
        }));
        let rule = RuleSpec::from_resource(&cfn(), "ToQueue", &p).unwrap();
        assert_eq!(rule.name, "stk-ToQueue");
        assert_eq!(rule.bus, "internal");
        assert_eq!(rule.pattern.as_deref(), Some(r#"{"source":["switchyard"]}"#));
        assert!(!rule.enabled && rule.schedule.is_none());
        assert_eq!(rule.targets.len(), 1);
        let req = rule_input("ToQueue", &rule).unwrap();
        assert_eq!(req.get_state(), &Some(RuleState::Disabled));
        assert_eq!(req.get_event_bus_name().as_deref(), Some("internal"));
        let e = RuleSpec::from_resource(&cfn(), "R", &props(json!({"Nope": 1})))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("R (AWS::Events::Rule) has property Nope"), "{e}");
    }

    #[test]
    fn a_function_event_is_a_rule_on_the_default_bus_targeting_the_function() {
        let event = json!({"Pattern": {"source": ["aws.s3"]}, "Input": "{\"a\":1}"});
        let rule = RuleSpec::from_function_event(&cfn(), "FnS3", "Fn", &event, false).unwrap();
        assert_eq!((rule.name.as_str(), rule.bus.as_str()), ("stk-FnS3", "default"));
        assert!(rule.enabled);
        assert_eq!(
            rule.targets,
            vec![
                json!({"Id": "FnTarget", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:stk-Fn", "Input": "{\"a\":1}"})
            ]
        );
        let e = RuleSpec::from_function_event(&cfn(), "FnS3", "Fn", &json!({}), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("FnS3 has no Pattern"), "{e}");
        let tick = json!({"Schedule": "rate(5 minutes)", "Enabled": false});
        let rule = RuleSpec::from_function_event(&cfn(), "FnTick", "Fn", &tick, true).unwrap();
        assert_eq!(rule.schedule.as_deref(), Some("rate(5 minutes)"));
        assert!(rule.pattern.is_none() && !rule.enabled);
    }

    #[test]
    fn a_schedule_the_runner_cannot_fire_is_refused() {
        let tick = json!({"Schedule": "every now and then"});
        let rule = RuleSpec::from_function_event(&cfn(), "FnTick", "Fn", &tick, true).unwrap();
        let e = rule_input("FnTick", &rule).err().unwrap().to_string();
        assert!(e.contains("FnTick has schedule \"every now and then\""), "{e}");
        let ok = json!({"Schedule": "cron(0 12 * * ? *)"});
        let rule = RuleSpec::from_function_event(&cfn(), "FnTick", "Fn", &ok, true).unwrap();
        let req = rule_input("FnTick", &rule).unwrap();
        assert_eq!(req.get_schedule_expression().as_deref(), Some("cron(0 12 * * ? *)"));
    }

    #[test]
    fn names_are_cut_to_64_and_buses_named_by_arn_or_name() {
        let long = "L".repeat(70);
        assert_eq!(rule_name(&cfn(), &long).len(), 64);
        assert_eq!(bus_name(None), "default");
        assert_eq!(bus_name(Some(&json!("custom"))), "custom");
        assert_eq!(
            bus_name(Some(&json!("arn:aws:events:us-east-1:1:event-bus/custom"))),
            "custom"
        );
    }

    #[test]
    fn a_queue_target_keeps_what_the_template_configures() {
        let t = json!({
            "Id": "q",
            "Arn": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
            "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:dlq"},
            "RetryPolicy": {"MaximumRetryAttempts": 4, "MaximumEventAgeInSeconds": "600"},
            "InputTransformer": {"InputPathsMap": {"s": "$.source"}, "InputTemplate": "{\"s\": <s>}"},
            "SqsParameters": {"MessageGroupId": "g"}
        });
        let target = queue_target("R", "q", "arn:aws:sqs:us-east-1:123456789012:q.fifo", &t).unwrap();
        assert_eq!(target.id(), "q");
        assert_eq!(
            target.dead_letter_config().and_then(|d| d.arn()),
            Some("arn:aws:sqs:us-east-1:123456789012:dlq")
        );
        let retry = target.retry_policy().unwrap();
        assert_eq!(
            (retry.maximum_retry_attempts(), retry.maximum_event_age_in_seconds()),
            (Some(4), Some(600))
        );
        let tr = target.input_transformer().unwrap();
        assert_eq!(tr.input_template(), "{\"s\": <s>}");
        assert_eq!(tr.input_paths_map().unwrap()["s"], "$.source");
        assert_eq!(target.sqs_parameters().and_then(|p| p.message_group_id()), Some("g"));
    }
}
