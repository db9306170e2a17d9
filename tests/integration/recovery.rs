//! What is kept for recovery: events EventBridge cannot put on an app bus
//! queue.

use serde_json::Value;
use switchyard_tests::Stack;

/// Every rule on the app bus keeps what it cannot put on its queue: its
/// target names a dead-letter queue whose policy lets that rule send to it,
/// and the local runner configures the target with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_app_bus_rule_target_has_a_dead_letter_queue_that_admits_its_rule() {
    let template = switchyard_local::template::workspace_template().unwrap();
    let resources = template["Resources"].as_object().unwrap();
    let rules: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Events::Rule")
        .filter(|(_, r)| r["Properties"]["EventBusName"]["Ref"] == "AppEventBus")
        .collect();
    assert!(rules.len() >= 6, "{}", rules.len());
    let stack = Stack::new("bus-dlq").await;
    let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(&stack.sdk);
    let listed = eb
        .list_rules()
        .event_bus_name(&stack.res.event_bus_name)
        .send()
        .await
        .unwrap();
    for (id, rule) in rules {
        let target = &rule["Properties"]["Targets"][0];
        let queue = target["Arn"]["Fn::GetAtt"][0].as_str().unwrap();
        let dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}'s target has no DeadLetterConfig: {target}"));
        assert_eq!(resources[dlq]["Type"], "AWS::SQS::Queue", "{id}: {dlq}");
        assert_ne!(dlq, queue, "{id}: the dead letters go to a queue of their own");
        // A queue policy on the DLQ lets EventBridge send to it for this rule.
        let admits = resources.values().any(|p| {
            p["Type"] == "AWS::SQS::QueuePolicy"
                && p["Properties"]["Queues"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|q| q["Ref"] == dlq)
                && p["Properties"]["PolicyDocument"]["Statement"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| {
                        s["Effect"] == "Allow"
                            && s["Principal"]["Service"] == "events.amazonaws.com"
                            && s["Action"] == "sqs:SendMessage"
                            && s["Resource"]["Fn::GetAtt"][0] == dlq
                            && s["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::GetAtt"][0] == id.as_str()
                    })
        });
        assert!(admits, "no policy of {dlq} lets {id} send to it");
        // Provisioned with it.
        let dlq_url = &stack
            .res
            .internal_queue(queue)
            .unwrap_or_else(|| panic!("{queue} is not an internal queue"))
            .dlq_url;
        let dlq_arn = stack
            .sqs
            .get_queue_attributes()
            .queue_url(dlq_url)
            .attribute_names(switchyard_aws::aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&switchyard_aws::aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        let name = listed
            .rules()
            .iter()
            .filter_map(|r| r.name())
            .find(|n| n.contains(id.as_str()))
            .unwrap_or_else(|| panic!("{id} is not on the bus: {listed:?}"));
        let targets = eb
            .list_targets_by_rule()
            .rule(name)
            .event_bus_name(&stack.res.event_bus_name)
            .send()
            .await
            .unwrap();
        let got = targets.targets()[0].dead_letter_config().and_then(|d| d.arn());
        assert_eq!(got, Some(dlq_arn.as_str()), "{id}");
    }
}
