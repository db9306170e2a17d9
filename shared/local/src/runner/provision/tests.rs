use super::*;
use serde_json::json;

fn node(id: &str, deps: &[&str]) -> (String, Node, Vec<String>) {
    (
        id.to_string(),
        Node::Resource {
            kind: QUEUE.to_string(),
            props: json!({}),
        },
        deps.iter().map(|d| d.to_string()).collect(),
    )
}

#[test]
fn resources_are_created_after_what_they_refer_to_in_template_order() {
    let nodes = vec![
        node("Rule", &["Bus", "Queue"]),
        node("Queue", &["Dlq"]),
        node("Dlq", &[]),
        node("Bus", &["Bus", "SomeParameterOrFunction"]),
    ];
    let order: Vec<&str> = creation_order(&nodes)
        .unwrap()
        .into_iter()
        .map(|i| nodes[i].0.as_str())
        .collect();
    assert_eq!(order, vec!["Dlq", "Queue", "Bus", "Rule"]);
}

#[test]
fn a_dependency_cycle_is_an_error_naming_its_members() {
    let nodes = vec![node("Free", &[]), node("A", &["B"]), node("B", &["A"])];
    let e = creation_order(&nodes).unwrap_err().to_string();
    assert!(
        e.contains("\"A\", \"B\"") && e.contains("cycle") && !e.contains("Free"),
        "{e}"
    );
}

#[test]
fn a_role_id_is_upper_case_letters_and_digits() {
    assert_eq!(local_role_id("Ingest-Function_1Role"), "AROALOCALINGESTFUNCTION1ROLE");
}

#[test]
fn tags_are_read_as_a_list_or_a_map_and_values_as_text() {
    let list = json!({"Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": 2}, {"Nope": 1}]});
    assert_eq!(
        tags(list.as_object().unwrap()),
        vec![("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]
    );
    let map = json!({"Tags": {"a": true}});
    assert_eq!(
        tags(map.as_object().unwrap()),
        vec![("a".to_string(), "true".to_string())]
    );
    assert!(tags(&Map::new()).is_empty());
}

#[test]
fn an_unknown_property_is_an_error_naming_the_resource_and_type() {
    let props = json!({"QueueName": "q", "Surprise": 1});
    let e = check_props("Work", QUEUE, props.as_object().unwrap(), &["QueueName"])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "template: resource Work (AWS::SQS::Queue) has property Surprise, which the local runner does not know how to apply"
    );
}

#[test]
fn the_plan_answers_refs_attributes_and_kinds() {
    let mut cfn = Cfn::new(&json!({}), "stk", "us-east-1", &HashMap::new()).unwrap();
    cfn.resources.insert(
        "Q".into(),
        Attrs::new("http://q").with("Arn", "arn:aws:sqs:us-east-1:123456789012:q"),
    );
    let plan = Plan {
        cfn,
        created: vec![
            ("Q".into(), QUEUE.into(), "http://q".into()),
            ("T".into(), TABLE.into(), "t".into()),
        ],
        functions: Vec::new(),
        routes: Vec::new(),
        apis: Vec::new(),
        rule_invokes: Vec::new(),
        schedules: Vec::new(),
        notes: Vec::new(),
    };
    assert_eq!(plan.reference("Q"), Some("http://q"));
    assert_eq!(plan.attribute("Q", "Arn"), Some("arn:aws:sqs:us-east-1:123456789012:q"));
    assert_eq!(plan.attribute("Q", "Nope"), None);
    assert_eq!(plan.created_of(QUEUE), vec!["Q"]);
    assert!(plan.function("F").is_none());
}
