//! Templates provisioned in moto without running them: table capacity by
//! parameter, a resource added with no code change, and what the runner
//! cannot reproduce refused by name.

use super::*;

/// `template.yaml` with `extra` resources added.
fn template_with(extra: Value) -> Value {
    let mut t = template().clone();
    let resources = t["Resources"].as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        resources.insert(k.clone(), v.clone());
    }
    t
}

async fn provision_only(template: &Value, label: &str) -> Result<provision::Plan, String> {
    provision_with(template, label, &[]).await
}

async fn provision_with(template: &Value, label: &str, params: &[(&str, &str)]) -> Result<provision::Plan, String> {
    let mut parameters = HashMap::from([("AdminKeySha256".to_string(), admin_sha())]);
    parameters.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    provision::provision(
        &sdk().await,
        template,
        &provision::Options {
            stack_name: switchyard_local::resources::unique_prefix(label),
            parameters,
            bin_dir: target_dir().join("debug"),
            api_endpoints: HashMap::new(),
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// `TableCapacity=provisioned` gives the registry and deliveries tables and
/// every index of theirs provisioned capacity (auto scaling is AWS's own and
/// not emulated); the default is on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_capacity_is_on_demand_or_provisioned_by_parameter() {
    let ddb = switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk().await);
    for (capacity, min) in [("on-demand", None), ("provisioned", Some(7))] {
        let plan = provision_with(
            template(),
            &format!("cap-{capacity}"),
            &[("TableCapacity", capacity), ("TableMinCapacity", "7")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        for table in ["RegistryTable", "DeliveriesTable"] {
            let name = plan.reference(table).unwrap();
            let t = describe_table(&ddb, name).await;
            let units = |p: Option<&switchyard_aws::aws_sdk_dynamodb::types::ProvisionedThroughputDescription>| {
                p.and_then(|p| p.read_capacity_units().zip(p.write_capacity_units()))
                    .filter(|&(r, w)| r > 0 || w > 0)
            };
            let want = min.map(|m| (m, m));
            assert_eq!(units(t.provisioned_throughput()), want, "{capacity}: {table}");
            assert!(!t.global_secondary_indexes().is_empty());
            for g in t.global_secondary_indexes() {
                assert_eq!(
                    units(g.provisioned_throughput()),
                    want,
                    "{capacity}: {table} {:?}",
                    g.index_name()
                );
            }
        }
        let scaling = plan
            .notes
            .iter()
            .filter(|n| n.contains("ApplicationAutoScaling"))
            .count();
        match min {
            None => assert!(
                plan.notes
                    .iter()
                    .any(|n| n.contains("condition ProvisionedTables is false")),
                "{:?}",
                plan.notes
            ),
            Some(_) => assert_eq!(
                scaling, 24,
                "12 targets and 12 policies noted as not emulated: {:?}",
                plan.notes
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_egress_provisions_in_every_mode_with_its_network_noted() {
    for (mode, vpc) in [("off", false), ("one-az", true), ("two-az", true)] {
        let plan = provision_with(template(), &format!("egress-{mode}"), &[("StaticEgress", mode)])
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(plan.function("DeliveryFunction").is_some(), "{mode}");
        let noted = |id: &str| {
            plan.notes
                .iter()
                .any(|n| n.starts_with(&format!("{id} (AWS::EC2::")) && n.contains("not emulated"))
        };
        assert_eq!(noted("EgressVpc"), vpc, "{mode}: {:?}", plan.notes);
        assert_eq!(noted("EgressNatB"), mode == "two-az", "{mode}: {:?}", plan.notes);
        assert_eq!(noted("EgressNatA"), vpc, "{mode}: {:?}", plan.notes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_added_to_the_template_is_provisioned_without_code_changes() {
    let t = template_with(json!({
        "AuditExportQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": {"Fn::Sub": "${AWS::StackName}-audit-export"},
            "VisibilityTimeout": 7,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["AuditExportDLQ", "Arn"]}, "maxReceiveCount": 3}}},
        "AuditExportDLQ": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 1209600}},
        "AuditExportRule": {"Type": "AWS::Events::Rule", "Properties": {
            "EventBusName": {"Ref": "AppEventBus"},
            "EventPattern": {"source": ["switchyard.audit"]},
            "Targets": [{"Id": "q", "Arn": {"Fn::GetAtt": ["AuditExportQueue", "Arn"]}}]}},
        "ExportsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "owner", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{"IndexName": "byOwner", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}], "Projection": {"ProjectionType": "KEYS_ONLY"}}],
            "TimeToLiveSpecification": {"AttributeName": "gone_at", "Enabled": true}}}
    }));
    let plan = provision_only(&t, "extra").await.unwrap_or_else(|e| panic!("{e}"));
    for id in ["AuditExportQueue", "AuditExportDLQ", "AuditExportRule", "ExportsTable"] {
        assert!(
            plan.created.iter().any(|c| c.0 == id),
            "{id} created: {:?}",
            plan.created
        );
    }
    // The DLQ was created before the queue whose redrive policy names it.
    let pos = |id: &str| plan.created.iter().position(|c| c.0 == id).unwrap();
    assert!(pos("AuditExportDLQ") < pos("AuditExportQueue"));

    let sdk = sdk().await;
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    let url = plan.reference("AuditExportQueue").unwrap();
    assert!(url.ends_with("-audit-export"), "{url}");
    let attrs = queue_attributes(&sqs, url).await;
    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], "7");
    let redrive: Value = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"].as_str(),
        plan.attribute("AuditExportDLQ", "Arn")
    );

    // The new rule routes from the app bus to the new queue.
    let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(&sdk);
    eb.put_events()
        .entries(
            switchyard_aws::aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(plan.reference("AppEventBus").unwrap())
                .source("switchyard.audit")
                .detail_type("audit.exported")
                .detail(r#"{"n":1}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = sqs
        .receive_message()
        .queue_url(url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["detail-type"], "audit.exported");

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = plan.reference("ExportsTable").unwrap();
    let d = ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    assert_eq!(d.global_secondary_indexes()[0].index_name(), Some("byOwner"));
    let ttl = ddb.describe_time_to_live().table_name(table).send().await.unwrap();
    assert_eq!(ttl.time_to_live_description.unwrap().attribute_name(), Some("gone_at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_runner_cannot_reproduce_is_an_error_naming_it() {
    let cases = [
        (
            json!({"Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}}}),
            "AWS::Kinesis::Stream",
        ),
        (
            json!({"Odd": {"Type": "AWS::SQS::Queue", "Properties": {"MadeUpSetting": 1}}}),
            "MadeUpSetting",
        ),
        (
            json!({"Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": "provided.al2023", "Events": {
                "Stream": {"Type": "Kinesis", "Properties": {"Stream": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}}}}}}),
            "Kinesis",
        ),
        (
            json!({"Imp": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::ImportValue": "other-stack-name"}}}}),
            "Fn::ImportValue",
        ),
    ];
    for (extra, needle) in cases {
        let id = extra.as_object().unwrap().keys().next().unwrap().clone();
        let e = provision_only(&template_with(extra), "bad").await.unwrap_err();
        assert!(e.contains(&id) && e.contains(needle), "{e}");
    }
    // And the types with no local counterpart are reported, not ignored.
    let plan = provision_only(template(), "notes").await.unwrap();
    assert!(
        plan.notes
            .iter()
            .any(|n| n.starts_with("IngestLogGroup (AWS::Logs::LogGroup): not emulated")),
        "{:#?}",
        plan.notes
    );
}
