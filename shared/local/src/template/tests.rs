use super::*;
use serde_json::json;

fn real_template() -> &'static Value {
    workspace_template().unwrap_or_else(|e| panic!("loading template.yaml: {e}"))
}

/// A small template: the bus, `rule` as the only rule, and two queues
/// `Q` (redriving to `QDLQ` after 4 receives) and `QDLQ`.
fn template_with_rule(rule: Value) -> Value {
    json!({
        "Resources": {
            "AppEventBus": { "Type": "AWS::Events::EventBus", "Properties": { "Name": "bus" } },
            "Fn": { "Type": "AWS::Serverless::Function", "Properties": {} },
            "Rule": rule,
            "Q": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    "VisibilityTimeout": "42",
                    "RedrivePolicy": "{\"deadLetterTargetArn\": {\"Fn::GetAtt\": [\"QDLQ\", \"Arn\"]}, \"maxReceiveCount\": \"4\"}"
                }
            },
            "QDLQ": { "Type": "AWS::SQS::Queue" }
        }
    })
}

fn rule(bus: Value, pattern: Value, arn: Value) -> Value {
    json!({
        "Type": "AWS::Events::Rule",
        "Properties": { "EventBusName": bus, "EventPattern": pattern, "Targets": [{ "Id": "t", "Arn": arn }] }
    })
}

fn error_of(template: &Value) -> String {
    match internal_routes(template) {
        Ok(routes) => panic!("expected an error, got {routes:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_real_template_routes_each_domain_to_its_own_queue() {
    let routes = internal_routes(real_template()).unwrap_or_else(|e| panic!("{e}"));
    let by_rule: std::collections::BTreeMap<&str, &InternalRoute> =
        routes.iter().map(|r| (r.rule_logical_id.as_str(), r)).collect();
    assert_eq!(routes.len(), 6, "{routes:#?}");
    assert_eq!(by_rule.len(), 6, "one target per rule: {routes:#?}");
    for (domain, vt) in [
        ("User", 180),
        ("Payment", 180),
        ("Order", 180),
        ("Inventory", 180),
        ("Priority", 180),
        ("Default", 181),
    ] {
        let route = by_rule
            .get(format!("Internal{domain}Rule").as_str())
            .unwrap_or_else(|| panic!("no Internal{domain}Rule in {routes:#?}"));
        assert_eq!(
            route.queue,
            TemplateQueue {
                logical_id: format!("Internal{domain}Queue"),
                visibility_timeout_secs: Some(vt),
                dlq_logical_id: Some(format!("Internal{domain}DLQ")),
                max_receive_count: Some(10),
            }
        );
    }
    assert_eq!(
        by_rule["InternalUserRule"].pattern,
        json!({ "source": ["switchyard.user"] })
    );
    assert_eq!(
        by_rule["InternalPaymentRule"].pattern,
        json!({ "source": ["switchyard.payment"] })
    );
    let others = json!([{ "anything-but": ["switchyard.user", "switchyard.payment", "switchyard.order", "switchyard.inventory"] }]);
    assert_eq!(
        by_rule["InternalPriorityRule"].pattern,
        json!({
            "source": others,
            "detail": { "tenant_id": [{ "exists": true }], "routing": { "priority": [{ "numeric": [">=", 8] }] } }
        })
    );
    assert_eq!(
        by_rule["InternalDefaultRule"].pattern,
        json!({
            "source": others,
            "detail": { "tenant_id": [{ "exists": true }], "routing": { "priority": [{ "numeric": ["<", 8] }] } }
        })
    );
}

#[test]
fn the_real_template_decodes_intrinsic_functions_to_their_long_forms() {
    let t = real_template();
    assert_eq!(
        t["Resources"]["InternalUserQueue"]["Properties"]["QueueName"],
        json!({ "Fn::Sub": "${AWS::StackName}-internal-user" })
    );
    assert_eq!(
        t["Resources"]["ConsumerFunction"]["Properties"]["Environment"]["Variables"]["STATE_TABLE"],
        json!({ "Ref": "StateTable" })
    );
}

#[test]
fn a_small_template_in_every_accepted_form() {
    for (bus, arn) in [
        (json!({ "Ref": "AppEventBus" }), json!({ "Fn::GetAtt": ["Q", "Arn"] })),
        (
            json!({ "Fn::GetAtt": ["AppEventBus", "Name"] }),
            json!({ "Fn::GetAtt": "Q.Arn" }),
        ),
        (
            json!({ "Fn::GetAtt": "AppEventBus.Arn" }),
            json!({ "Fn::GetAtt": ["Q", "Arn"] }),
        ),
    ] {
        for pattern in [json!({ "source": ["a.b"] }), json!("{\"source\": [\"a.b\"]}")] {
            let t = template_with_rule(rule(bus.clone(), pattern, arn.clone()));
            let routes = internal_routes(&t).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                routes,
                vec![InternalRoute {
                    rule_logical_id: "Rule".into(),
                    pattern: json!({ "source": ["a.b"] }),
                    queue: TemplateQueue {
                        logical_id: "Q".into(),
                        visibility_timeout_secs: Some(42),
                        dlq_logical_id: Some("QDLQ".into()),
                        max_receive_count: Some(4),
                    },
                }]
            );
        }
    }
}

#[test]
fn a_queue_without_settings_has_none() {
    let t = template_with_rule(rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "source": ["a"] }),
        json!({ "Fn::GetAtt": ["QDLQ", "Arn"] }),
    ));
    let routes = internal_routes(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        routes[0].queue,
        TemplateQueue {
            logical_id: "QDLQ".into(),
            visibility_timeout_secs: None,
            dlq_logical_id: None,
            max_receive_count: None
        }
    );
}

#[test]
fn rules_on_the_default_bus_and_disabled_rules_are_not_internal_routes() {
    let mut default_bus = rule(
        json!("default"),
        json!({ "source": ["aws.s3"] }),
        json!({ "Fn::GetAtt": ["Fn", "Arn"] }),
    );
    assert_eq!(
        internal_routes(&template_with_rule(default_bus.clone())).ok(),
        Some(vec![])
    );
    if let Some(props) = default_bus["Properties"].as_object_mut() {
        props.remove("EventBusName");
    }
    assert_eq!(internal_routes(&template_with_rule(default_bus)).ok(), Some(vec![]));
    let mut disabled = rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "source": ["a"] }),
        json!({ "Fn::GetAtt": ["Q", "Arn"] }),
    );
    disabled["Properties"]["State"] = json!("DISABLED");
    assert_eq!(internal_routes(&template_with_rule(disabled)).ok(), Some(vec![]));
}

#[test]
fn a_target_that_is_not_a_template_queue_is_an_error() {
    let bus = json!({ "Ref": "AppEventBus" });
    let pattern = json!({ "source": ["a"] });
    for arn in [
        json!({ "Fn::GetAtt": ["Fn", "Arn"] }),
        json!({ "Fn::GetAtt": ["Missing", "Arn"] }),
        json!("arn:aws:sqs:us-east-1:123456789012:elsewhere"),
        json!({ "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:q" }),
        json!({ "Ref": "Q" }),
    ] {
        let e = error_of(&template_with_rule(rule(bus.clone(), pattern.clone(), arn.clone())));
        assert!(e.starts_with("template: resource Rule has a target"), "{arn}: {e}");
    }
}

#[test]
fn a_target_that_reshapes_the_event_is_an_error() {
    let mut r = rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "source": ["a"] }),
        json!({ "Fn::GetAtt": ["Q", "Arn"] }),
    );
    r["Properties"]["Targets"][0]["InputPath"] = json!("$.detail");
    let e = error_of(&template_with_rule(r));
    assert!(e.contains("resource Rule") && e.contains("InputPath"), "{e}");
}

#[test]
fn a_pattern_with_an_intrinsic_function_is_an_error() {
    let e = error_of(&template_with_rule(rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "source": [{ "Fn::Sub": "${AWS::StackName}.user" }] }),
        json!({ "Fn::GetAtt": ["Q", "Arn"] }),
    )));
    assert!(e.contains("resource Rule") && e.contains("Fn::Sub"), "{e}");
    let e = error_of(&template_with_rule(rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "detail": { "tenant": [{ "Ref": "Tenant" }] } }),
        json!({ "Fn::GetAtt": ["Q", "Arn"] }),
    )));
    assert!(e.contains("resource Rule") && e.contains("Ref"), "{e}");
}

#[test]
fn a_rule_on_an_unknown_bus_is_an_error() {
    for bus in [
        json!({ "Ref": "OtherBus" }),
        json!("someone-elses-bus"),
        json!({ "Fn::GetAtt": ["AppEventBus", "Policy"] }),
        json!({ "Fn::ImportValue": "bus" }),
    ] {
        let e = error_of(&template_with_rule(rule(
            bus.clone(),
            json!({ "source": ["a"] }),
            json!({ "Fn::GetAtt": ["Q", "Arn"] }),
        )));
        assert!(e.contains("resource Rule is on the event bus"), "{bus}: {e}");
    }
}

#[test]
fn unreadable_rules_and_queues_are_errors() {
    let ok_rule = rule(
        json!({ "Ref": "AppEventBus" }),
        json!({ "source": ["a"] }),
        json!({ "Fn::GetAtt": ["Q", "Arn"] }),
    );
    let mut no_pattern = ok_rule.clone();
    if let Some(p) = no_pattern["Properties"].as_object_mut() {
        p.remove("EventPattern");
    }
    assert!(error_of(&template_with_rule(no_pattern)).contains("resource Rule has no EventPattern"));

    let mut t = template_with_rule(ok_rule.clone());
    t["Resources"]["Q"]["Properties"]["VisibilityTimeout"] = json!({ "Ref": "Vt" });
    assert!(error_of(&t).contains("resource Q has a VisibilityTimeout"));

    let mut t = template_with_rule(ok_rule.clone());
    t["Resources"]["Q"]["Properties"]["RedrivePolicy"] =
        json!({ "deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:x", "maxReceiveCount": 3 });
    assert!(error_of(&t).contains("resource Q has a deadLetterTargetArn"));

    let mut t = template_with_rule(ok_rule.clone());
    t["Resources"]["Q"]["Properties"]["FifoQueue"] = json!(true);
    assert!(error_of(&t).contains("resource Q is a FIFO queue"));

    let mut t = template_with_rule(ok_rule);
    if let Some(r) = t["Resources"].as_object_mut() {
        r.remove("AppEventBus");
    }
    assert!(error_of(&t).contains("resource AppEventBus"));

    assert!(error_of(&json!({ "AWSTemplateFormatVersion": "2010-09-09" })).contains("no Resources"));
}

#[test]
fn load_reports_what_cfn_lint_could_not_decode() {
    let root = crate::workspace_root();
    let venv = crate::venv::ensure(&root).unwrap_or_else(|e| panic!("{e}"));
    let dir = root.join("target/template-tests");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("broken-{}.yaml", std::process::id()));
    std::fs::write(&path, "Resources: [\n").unwrap_or_else(|e| panic!("{e}"));
    let result = load_path(&root, &venv, &path);
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(v) => panic!("decoded a broken template: {v}"),
        Err(e) => assert!(e.to_string().contains("could not read"), "{e}"),
    }
}

#[test]
fn logical_ids_in_kebab_case() {
    for (id, kebab) in [
        ("InternalUserQueue", "internal-user-queue"),
        ("InternalUserDLQ", "internal-user-dlq"),
        ("HTTPApiQueue", "http-api-queue"),
        ("Queue2Fast", "queue2-fast"),
        ("q", "q"),
    ] {
        assert_eq!(kebab_case(id), kebab);
    }
}

#[test]
fn with_default_rewrites_one_parameters_default_only() {
    let text = "Parameters:\n  A:\n    Type: String\n    Default: \"off\"\n    AllowedValues: [\"off\", on]\n  B:\n    Type: String\n    Default: x\nResources: {}\n";
    let out = with_default(text, "A", "on").unwrap();
    assert_eq!(
        out,
        "Parameters:\n  A:\n    Type: String\n    Default: \"on\"\n    AllowedValues: [\"off\", on]\n  B:\n    Type: String\n    Default: x\nResources: {}\n"
    );
    let e = with_default(text, "C", "on").unwrap_err().to_string();
    assert!(e.contains("C"), "{e}");
    let no_default = "Parameters:\n  A:\n    Type: String\n  B:\n    Default: x\n";
    assert!(with_default(no_default, "A", "on").is_err(), "B's Default is not A's");
}

#[test]
fn every_mode_names_a_parameter_of_the_workspace_template_and_one_of_its_values() {
    let text = std::fs::read_to_string(crate::workspace_root().join("template.yaml")).unwrap();
    let template = workspace_template().unwrap();
    for (name, value) in MODES {
        let allowed = template
            .pointer(&format!("/Parameters/{name}/AllowedValues"))
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{name} has AllowedValues"));
        assert!(allowed.iter().any(|v| v == value), "{name}={value}");
        with_default(&text, name, value).unwrap();
    }
}
