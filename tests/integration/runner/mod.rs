//! The local runner (`switchyard_local::runner`): `template.yaml`
//! provisioned in moto, the functions run as their real binaries, and the
//! triggers played — a webhook delivered through the runner-driven stack
//! (HTTP in, SQS event source mappings, signed POST out), an AWS service
//! event through a rule whose target is a function (with Lambda's async
//! retries and on-failure destination), a resource added to a template
//! provisioned with no code change, and Ctrl-C leaving no process behind.
//!
//! The function binaries must be built (`cargo xtask test` builds them
//! before running the tests).
//!
//! Submodules: [`provisioning`] (templates provisioned without running
//! them) and [`processes`] (the functions' processes: timeouts, crashes,
//! Ctrl-C, one-off invocations).

mod processes;
mod provisioning;

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use switchyard_aws::aws_sdk_dynamodb;
use switchyard_aws::aws_sdk_sqs::types::QueueAttributeName;
use switchyard_local::runner::{Options, Runner, provision};
use switchyard_local::target_dir;
use switchyard_tests::{ADMIN_KEY, Http, Receiver, assert_verifies, moto_endpoint, root, venv};

/// The template, with the function binaries it names checked to exist.
pub(crate) fn template() -> &'static Value {
    let t = switchyard_local::template::workspace_template().unwrap_or_else(|e| panic!("{e}"));
    for bin in provision::function_binaries(t) {
        let path = target_dir().join("debug").join(&bin);
        assert!(
            path.is_file(),
            "{} is not built: run `cargo xtask test` (it builds the function binaries first) or `cargo build --bins`",
            path.display()
        );
    }
    t
}

fn admin_sha() -> String {
    switchyard_api::extract::admin_key_digest(ADMIN_KEY)
}

/// Options for a runner test: a private stack name, the test admin key,
/// function logs in target/local/<stack>/logs, and an AWS-events rule that
/// matches only this test's events (the default bus is shared by every test
/// on this moto).
pub(crate) fn options(label: &str, extra: &[(&str, &str)]) -> Options {
    let stack = switchyard_local::resources::unique_prefix(label);
    let mut o = Options::new(&stack, target_dir().join("debug"));
    o.parameters.insert("AdminKeySha256".into(), admin_sha());
    o.parameters.insert(
        "AwsEventsPattern".into(),
        json!({"source": ["aws.s3"], "detail-type": ["Object Created"], "resources": [format!("arn:aws:s3:::{stack}-never")]})
            .to_string(),
    );
    for (k, v) in extra {
        o.parameters.insert(k.to_string(), v.to_string());
    }
    o.function_log_dir = Some(target_dir().join("local").join(&stack).join("logs"));
    o.max_instances = 2;
    o.poll_wait_secs = 1;
    o
}

pub(crate) async fn sdk() -> switchyard_aws::SdkConfig {
    switchyard_local::sdk_config(moto_endpoint()).await
}

/// Waits until `pred` holds for the runner's invocations.
async fn wait_invocations(runner: &Runner, what: &str, pred: impl Fn(&[switchyard_local::runner::Invocation]) -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if pred(&runner.invocations()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s; invocations: {:#?}", runner.invocations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_is_delivered_through_the_runner_driven_stack() {
    let sdk = sdk().await;
    let runner = Runner::start(&sdk, template(), options("runner", &[]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;
    let (_, secret) = api.endpoint(&key, &rx.url("/hook"), &["order.*"]).await;

    let (s, b) = api
        .call(
            "POST",
            "/v1/events",
            &key,
            Some(json!({"id": "ord_1", "type": "order.placed", "data": {"n": 1}})),
        )
        .await;
    assert_eq!((s, &b), (202, &json!({"id": "ord_1"})));
    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "one webhook");
    assert_eq!(
        got[0].header("webhook-id"),
        Some(switchyard_tests::webhook_id("acme", "ord_1").as_str())
    );
    assert_verifies(&got[0], &secret);

    // The SQS door: the tenant rides in a message attribute, which the
    // event source mapping must hand to the function as Lambda does.
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    sqs.send_message()
        .queue_url(runner.plan().reference("IngestQueue").unwrap())
        .message_body(json!({"id": "ord_2", "type": "order.placed", "data": {"n": 2}}).to_string())
        .message_attributes(
            "tenant_id",
            switchyard_aws::aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("acme")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let got = rx.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 2, "the queued event's webhook too");
    assert_eq!(
        got[1].header("webhook-id"),
        Some(switchyard_tests::webhook_id("acme", "ord_2").as_str())
    );
    assert_verifies(&got[1], &secret);

    // Each hop was an invocation of the function's own process, by the
    // trigger the template declares.
    wait_invocations(&runner, "ingest, fan-out and delivery", |inv| {
        let ran = |f: &str, t: &str| inv.iter().any(|i| i.function == f && i.trigger == t && i.ok);
        ran("IngestFunction", "http:POST /v1/events")
            && ran("IngestFunction", "sqs:IngestQueue")
            && ran("FanoutFunction", "sqs:FanoutQueue")
            && ran("DeliveryFunction", "sqs:DeliveriesQueue")
            && ran("ApiFunction", "http:POST /v1/endpoints")
    })
    .await;
    let (pids, functions) = (runner.pids().len(), runner.plan().functions.len());
    assert!(
        (functions..=functions * 2).contains(&pids),
        "a warm instance per function, at most max_instances (2) each: {pids} processes"
    );

    // The attempt is in the delivery log, read through the API function.
    let mut state = Value::Null;
    for _ in 0..50 {
        let (_, b) = api.call("GET", "/v1/events/ord_1/deliveries", &key, None).await;
        state = b["items"][0]["state"].clone();
        if state == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
    // An unknown route answers as API Gateway does.
    let (s, b) = api.call("GET", "/nowhere", &key, None).await;
    assert_eq!((s, &b), (404, &json!({"message": "Not Found"})));

    // Every queue and table of the template exists as declared.
    check_provisioned(&sdk, &runner).await;
    runner.shutdown().await;
}

/// Every attribute of a queue.
async fn describe_table(
    ddb: &switchyard_aws::aws_sdk_dynamodb::Client,
    name: &str,
) -> switchyard_aws::aws_sdk_dynamodb::types::TableDescription {
    let out = ddb.describe_table().table_name(name).send().await;
    out.unwrap_or_else(|e| panic!("DescribeTable {name}: {e:?}"))
        .table
        .unwrap_or_else(|| panic!("DescribeTable {name}: no table"))
}

async fn queue_attributes(sqs: &switchyard_aws::aws_sdk_sqs::Client, url: &str) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetQueueAttributes {url}: {e}"))
        .attributes
        .unwrap_or_default()
}

/// A template value as the runner provisions it with no overrides: a
/// `{"Ref": parameter}` is the parameter's default.
fn parameter_default(v: &Value) -> Value {
    match v["Ref"].as_str() {
        Some(name) => template()["Parameters"][name]["Default"].clone(),
        None => v.clone(),
    }
}

/// The template's queues (visibility timeout, redrive policy) and tables
/// (GSIs, TTL) as moto has them.
async fn check_provisioned(sdk: &switchyard_aws::SdkConfig, runner: &Runner) {
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(sdk);
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    let resources = template()["Resources"].as_object().unwrap();
    let plan = runner.plan();
    let mut queues = 0;
    let mut tables = 0;
    for (id, r) in resources {
        match r["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => {
                queues += 1;
                let url = plan.reference(id).unwrap_or_else(|| panic!("{id} not provisioned"));
                let attrs = queue_attributes(&sqs, url).await;
                let props = &r["Properties"];
                if let Some(vt) = props.get("VisibilityTimeout") {
                    assert_eq!(attrs[&QueueAttributeName::VisibilityTimeout], vt.to_string(), "{id}");
                }
                match props.get("RedrivePolicy") {
                    Some(p) => {
                        let got: Value = serde_json::from_str(&attrs[&QueueAttributeName::RedrivePolicy]).unwrap();
                        assert_eq!(
                            got["maxReceiveCount"].to_string().trim_matches('"'),
                            parameter_default(&p["maxReceiveCount"]).to_string(),
                            "{id}"
                        );
                        let dlq = p["deadLetterTargetArn"]["Fn::GetAtt"][0].as_str().unwrap();
                        assert_eq!(got["deadLetterTargetArn"].as_str(), plan.attribute(dlq, "Arn"), "{id}");
                    }
                    None => assert!(!attrs.contains_key(&QueueAttributeName::RedrivePolicy), "{id}"),
                }
            }
            "AWS::DynamoDB::Table" => {
                tables += 1;
                let name = plan.reference(id).unwrap();
                let d = describe_table(&ddb, name).await;
                let want: HashSet<&str> = r["Properties"]
                    .get("GlobalSecondaryIndexes")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|g| g["IndexName"].as_str().unwrap())
                    .collect();
                let got: HashSet<&str> = d
                    .global_secondary_indexes()
                    .iter()
                    .filter_map(|g| g.index_name())
                    .collect();
                assert_eq!(got, want, "{id} GSIs");
                let ttl = ddb.describe_time_to_live().table_name(name).send().await.unwrap();
                let ttl = ttl.time_to_live_description.unwrap();
                assert_eq!(ttl.attribute_name(), Some("expires_at"), "{id} TTL");
            }
            _ => {}
        }
    }
    assert!(queues >= 18 && tables == 3, "{queues} queues, {tables} tables");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_service_event_reaches_ingest_through_a_rule_whose_target_is_the_function() {
    let sdk = sdk().await;
    let label = switchyard_local::resources::unique_prefix("rule");
    let ok = format!("arn:aws:s3:::{label}-ok");
    let orphan = format!("arn:aws:s3:::{label}-orphan");
    let pattern =
        json!({"source": ["aws.s3"], "detail-type": ["Object Created"], "resources": [ok, orphan]}).to_string();
    let rules = json!([{"source": "aws.s3", "resource_prefix": ok, "tenant": "s3owner"}]).to_string();
    let mut opts = options("rule", &[("AwsEventsTenantRules", &rules)]);
    opts.parameters.insert("AwsEventsPattern".into(), pattern);
    let runner = Runner::start(&sdk, template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("s3owner").await;
    let (_, secret) = api.endpoint(&key, &rx.url("/s3"), &["aws.s3.*"]).await;

    let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(&sdk);
    for resource in [&ok, &orphan] {
        let out = eb
            .put_events()
            .entries(
                switchyard_aws::aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("aws.s3")
                    .detail_type("Object Created")
                    .resources(resource.as_str())
                    .detail(json!({"bucket": {"name": label}, "object": {"key": "k"}}).to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count(), 0);
    }
    // The event with a tenant is ingested, fanned out and delivered.
    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-switchyard-event-type"), Some("aws.s3.object_created"));
    assert_verifies(&got[0], &secret);

    // The one without: Lambda's async invocation fails three times
    // (MaximumRetryAttempts 2), then its failure record goes to the
    // OnFailure destination, AwsEventsDLQ.
    let dlq = runner.plan().reference("AwsEventsDLQ").unwrap().to_string();
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    let mut record = None;
    let until = Instant::now() + Duration::from_secs(30);
    while record.is_none() && Instant::now() < until {
        // Looked at, not taken: it is redriven below.
        let out = sqs
            .receive_message()
            .queue_url(&dlq)
            .wait_time_seconds(1)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        record = out.messages.unwrap_or_default().into_iter().next().and_then(|m| m.body);
    }
    let record: Value = serde_json::from_str(&record.expect("a failure record in AwsEventsDLQ")).unwrap();
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["requestPayload"]["resources"][0], orphan.as_str());
    assert_eq!(record["responsePayload"]["errorType"], "NoTenantForEvent");
    let rule_runs: Vec<_> = runner
        .invocations()
        .into_iter()
        .filter(|i| i.trigger == "rule:IngestFunctionAwsServiceEvents")
        .collect();
    assert_eq!(rule_runs.iter().filter(|i| i.ok).count(), 1, "{rule_runs:#?}");
    assert_eq!(rule_runs.iter().filter(|i| !i.ok).count(), 3, "{rule_runs:#?}");

    // The AWS events DLQ also holds EventBridge's own dead letters (the raw
    // event) and failure records of events that failed for a passing
    // reason. The operator sees the DLQ and redrives it into ingest, where
    // each event goes through the same mapping and tenant rules again.
    let raw = |id: &str| {
        json!({
            "version": "0", "id": id, "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
            "resources": [ok], "detail": {"bucket": {"name": label}, "object": {"key": id}},
        })
    };
    let dead_letter = raw(&format!("{label}-dead-letter"));
    let failure_record = json!({
        "version": "1.0", "timestamp": "2026-11-29T10:00:01.000Z",
        "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ingest:$LATEST",
            "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": raw(&format!("{label}-failure-record")),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": "IngestFailed", "errorMessage": "unavailable"},
    });
    for body in [&dead_letter, &failure_record] {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(body.to_string())
            .message_attributes(
                "ERROR_CODE",
                switchyard_aws::aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("SDK_CLIENT_ERROR")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let (status, list) = api.call("GET", "/v1/admin/dlqs", ADMIN_KEY, None).await;
    assert_eq!(status, 200, "{list}");
    let aws_events = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "aws-events")
        .unwrap_or_else(|| panic!("no aws-events DLQ in {list}"));
    assert_eq!(aws_events["messages"], 3, "{list}");
    let (status, health) = api.call("GET", "/v1/admin/queues", ADMIN_KEY, None).await;
    assert_eq!(status, 200, "{health}");
    assert!(
        health["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "aws-events-dlq"),
        "{health}"
    );
    let (status, moved) = api
        .call("POST", "/v1/admin/dlqs/aws-events/redrive", ADMIN_KEY, Some(json!({})))
        .await;
    assert_eq!((status, moved["moved"].as_u64()), (200, Some(3)), "{moved}");
    // Both events with a tenant are delivered; the orphan is refused again
    // (no tenant rule names it), so it is not delivered.
    let got = rx.wait_for(3, Duration::from_secs(30)).await;
    let keys: HashSet<String> = got
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_str(&r.body_text()).unwrap();
            body["data"]["object"]["key"].as_str().map(str::to_owned)
        })
        .collect();
    let expected = [
        "k".to_string(),
        format!("{label}-dead-letter"),
        format!("{label}-failure-record"),
    ];
    assert_eq!(keys, HashSet::from(expected));
    for r in &got {
        assert_verifies(r, &secret);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.received().len(), 3, "the orphan is not delivered");
    assert_eq!(queue_depth(&sqs, &dlq).await, 0, "the AWS events DLQ is empty");
    runner.shutdown().await;
}

/// Messages on a queue: visible, in flight and delayed.
async fn queue_depth(sqs: &switchyard_aws::aws_sdk_sqs::Client, url: &str) -> u64 {
    switchyard_local::resources::queue_depth(sqs, url).await.unwrap()
}
