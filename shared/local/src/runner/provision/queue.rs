//! `AWS::SQS::Queue` (with its redrive policy) and `AWS::SQS::QueuePolicy`,
//! created in moto.

use super::{Clients, QUEUE, QUEUE_POLICY, check_props, err, tags, text};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_sqs::error::DisplayErrorContext as SqsCtx;
use aws_sdk_sqs::operation::create_queue::builders::CreateQueueInputBuilder;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};

/// The properties of a queue the local runner applies, or lists in the
/// notes as not applied.
const KNOWN: &[&str] = &[
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
];

/// The properties that are queue attributes as they are.
const ATTRIBUTES: &[(&str, QueueAttributeName)] = &[
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
];

/// The `CreateQueue` request for queue `id`, and the queue's name; what
/// moto cannot apply goes to `notes`.
fn queue_input(
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(CreateQueueInputBuilder, String), LocalError> {
    check_props(id, QUEUE, props, KNOWN)?;
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
    let mut req = CreateQueueInputBuilder::default().queue_name(&name);
    for (prop, attr) in ATTRIBUTES {
        if let Some(v) = props.get(*prop) {
            req = req.attributes(attr.clone(), text(v));
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
    Ok((req, name))
}

/// Creates queue `id` in moto; its `Ref` is its URL.
pub(super) async fn create_queue(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(Attrs, String), LocalError> {
    let (req, name) = queue_input(cfn, id, props, notes)?;
    let out = req
        .send_with(&c.sqs)
        .await
        .map_err(|e| aws_err(format!("CreateQueue {name} ({id})"), SqsCtx(e)))?;
    let url = out
        .queue_url
        .ok_or_else(|| aws_err(format!("CreateQueue {name} ({id})"), "the answer has no queue URL"))?;
    let arn = cfn.arn("sqs", &name);
    Ok((
        Attrs::new(&url)
            .with("Arn", arn)
            .with("QueueName", &name)
            .with("QueueUrl", &url),
        url,
    ))
}

/// The policy document of queue policy `id`, and the URLs of the queues it
/// applies to.
fn policy_of<'a>(id: &str, props: &'a Map<String, Value>) -> Result<(String, &'a [Value]), LocalError> {
    check_props(id, QUEUE_POLICY, props, &["Queues", "PolicyDocument"])?;
    let doc = props
        .get("PolicyDocument")
        .ok_or_else(|| err(id, "has no PolicyDocument"))?;
    let queues = props
        .get("Queues")
        .and_then(Value::as_array)
        .ok_or_else(|| err(id, "has no Queues list"))?;
    Ok((doc.to_string(), queues))
}

/// Sets queue policy `id` on each of its queues.
pub(super) async fn apply_queue_policy(
    c: &Clients,
    id: &str,
    props: &Map<String, Value>,
) -> Result<(Attrs, String), LocalError> {
    let (doc, queues) = policy_of(id, props)?;
    for q in queues {
        let url = text(q);
        c.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, doc.clone())
            .send()
            .await
            .map_err(|e| aws_err(format!("SetQueueAttributes Policy ({id})"), SqsCtx(e)))?;
    }
    Ok((Attrs::new(id), format!("policy on {} queue(s)", queues.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::{cfn, props};
    use serde_json::json;

    #[test]
    fn a_queue_is_named_after_the_stack_unless_named() {
        let mut notes = Vec::new();
        let (_, name) = queue_input(&cfn(), "Work", &props(json!({})), &mut notes).unwrap();
        assert_eq!(name, "stk-Work");
        let (_, name) = queue_input(&cfn(), "Work", &props(json!({"FifoQueue": true})), &mut notes).unwrap();
        assert_eq!(name, "stk-Work.fifo");
        let (req, name) = queue_input(&cfn(), "Work", &props(json!({"QueueName": "mine"})), &mut notes).unwrap();
        assert_eq!((name.as_str(), req.get_queue_name().as_deref()), ("mine", Some("mine")));
        let long = "q".repeat(81);
        let e = queue_input(&cfn(), "Work", &props(json!({ "QueueName": long })), &mut notes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Work") && e.contains("80 characters"), "{e}");
        assert!(notes.is_empty());
    }

    #[test]
    fn properties_become_attributes_and_tags() {
        let mut notes = Vec::new();
        let p = props(json!({
            "VisibilityTimeout": 60,
            "DelaySeconds": "5",
            "RedrivePolicy": "{\"deadLetterTargetArn\":\"arn:dlq\",\"maxReceiveCount\":3}",
            "Tags": [{"Key": "team", "Value": "hooks"}]
        }));
        let (req, _) = queue_input(&cfn(), "Work", &p, &mut notes).unwrap();
        let attrs = req.get_attributes().clone().unwrap();
        assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "60");
        assert_eq!(attrs[&QueueAttributeName::DelaySeconds], "5");
        let redrive: Value = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(redrive, json!({"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 3}));
        assert_eq!(req.get_tags().clone().unwrap()["team"], "hooks");
        // A redrive policy given as an object is sent as JSON too.
        let p = props(json!({"RedrivePolicy": {"deadLetterTargetArn": "arn:dlq", "maxReceiveCount": 1}}));
        let (req, _) = queue_input(&cfn(), "Work", &p, &mut notes).unwrap();
        let attrs = req.get_attributes().clone().unwrap();
        assert!(attrs[&QueueAttributeName::RedrivePolicy].contains("\"maxReceiveCount\":1"));
        let e = queue_input(&cfn(), "Work", &props(json!({"RedrivePolicy": "{"})), &mut notes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RedrivePolicy is not JSON"), "{e}");
    }

    #[test]
    fn what_moto_cannot_apply_is_noted_and_unknown_properties_refused() {
        let mut notes = Vec::new();
        let p = props(json!({"SqsManagedSseEnabled": true, "RedriveAllowPolicy": {"redrivePermission": "denyAll"}}));
        queue_input(&cfn(), "Dlq", &p, &mut notes).unwrap();
        assert_eq!(notes.len(), 2);
        assert!(notes[0].starts_with("Dlq.SqsManagedSseEnabled: not applied"));
        assert!(notes[1].starts_with("Dlq.RedriveAllowPolicy: not applied"));
        let e = queue_input(&cfn(), "Dlq", &props(json!({"Nope": 1})), &mut notes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Dlq") && e.contains("Nope") && e.contains(QUEUE), "{e}");
    }

    #[test]
    fn a_queue_policy_needs_a_document_and_queues() {
        let p = props(json!({"Queues": ["http://q1", "http://q2"], "PolicyDocument": {"Version": "2012-10-17"}}));
        let (doc, queues) = policy_of("Pol", &p).unwrap();
        assert_eq!((doc.as_str(), queues.len()), ("{\"Version\":\"2012-10-17\"}", 2));
        let e = policy_of("Pol", &props(json!({"Queues": []}))).unwrap_err().to_string();
        assert!(e.contains("Pol has no PolicyDocument"), "{e}");
        let e = policy_of("Pol", &props(json!({"PolicyDocument": {}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Pol has no Queues list"), "{e}");
    }
}
