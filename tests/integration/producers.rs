//! Who may put events into the SQS ingest door, and for which tenant: the
//! ingest queue's policy (listed producer roles only), the producer
//! bindings (a sender's tenants), and the queue administration kept out of
//! the tenant-facing API's role.

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use switchyard_core::EventId;
use switchyard_core::ports::EventQueries;
use switchyard_tests::{Receiver, Stack};

const T: Duration = Duration::from_secs(5);

fn resources() -> &'static serde_json::Map<String, Value> {
    switchyard_local::template::workspace_template().unwrap()["Resources"]
        .as_object()
        .unwrap()
}

/// Every logical id a value refers to (`Ref`, `Fn::GetAtt`, `${…}` in
/// `Fn::Sub`), with the attribute for a `GetAtt` (`Queue.Arn`).
fn references(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("Ref", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    ("Fn::GetAtt", Value::Array(a)) => {
                        let parts: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                        out.insert(parts.join("."));
                    }
                    ("Fn::GetAtt", Value::String(r)) => {
                        out.insert(r.clone());
                    }
                    _ => {}
                }
                references(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let after = &rest[i + 2..];
                let Some(j) = after.find('}') else { break };
                out.insert(after[..j].to_string());
                rest = &after[j..];
            }
        }
        _ => {}
    }
}

fn refs(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    references(v, &mut out);
    out
}

/// The policy statements of a function (its `Policies`), flattened.
fn statements(function: &str) -> Vec<Value> {
    let policies = resources()[function]["Properties"]["Policies"].as_array().unwrap();
    policies
        .iter()
        .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => vec![],
    }
}

#[test]
fn the_ingest_queue_policy_denies_sending_to_all_but_the_listed_producers() {
    let r = resources();
    let (id, policy) = r
        .iter()
        .find(|(_, v)| v["Type"] == "AWS::SQS::QueuePolicy" && refs(&v["Properties"]["Queues"]).contains("IngestQueue"))
        .expect("the ingest queue has a queue policy");
    let statements = policy["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap();
    // Nothing is granted to anyone by the queue itself.
    assert!(statements.iter().all(|s| s["Effect"] == "Deny"), "{id}: {statements:?}");
    let deny = statements
        .iter()
        .find(|s| actions(s).iter().any(|a| a == "sqs:SendMessage" || a == "sqs:*"))
        .unwrap_or_else(|| panic!("{id} denies no sqs:SendMessage"));
    assert_eq!(deny["Principal"], "*", "every principal, this account's included");
    assert!(refs(&deny["Resource"]).contains("IngestQueue.Arn"), "{deny}");
    // ...but the listed producers and the queue administrator (replays).
    let except = &deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"];
    let named = refs(except);
    assert!(named.contains("IngestProducerArns"), "{except}");
    assert!(named.contains("AdminFunctionRole.Arn"), "{except}");
    assert!(!named.contains("ApiFunctionRole.Arn"), "{except}");
    // The producer list is a parameter, empty by default: no one else sends.
    let param = &switchyard_local::template::workspace_template().unwrap()["Parameters"]["IngestProducerArns"];
    assert_eq!(param["Type"], "CommaDelimitedList");
    assert_eq!(param["Default"], "");
}

#[test]
fn the_tenant_facing_api_role_cannot_touch_the_queues_but_to_send_replays() {
    let api = &resources()["ApiFunction"];
    for s in statements("ApiFunction") {
        for a in actions(&s) {
            if !a.starts_with("sqs:") {
                continue;
            }
            assert_eq!(a, "sqs:SendMessage", "the API role may not {a}: {s}");
            assert_eq!(
                refs(&s["Resource"]),
                BTreeSet::from(["DeliveriesQueue.Arn".to_string()]),
                "the API role sends replays to the deliveries queue only: {s}"
            );
        }
    }
    let all = refs(api);
    for q in [
        "IngestQueue",
        "IngestDLQ",
        "AwsEventsDLQ",
        "FanoutQueue",
        "FanoutDLQ",
        "DeliveriesDLQ",
    ] {
        assert!(
            !all.iter().any(|r| r == q || r.starts_with(&format!("{q}."))),
            "ApiFunction refers to {q}"
        );
    }
    assert!(api["Properties"]["Environment"]["Variables"].get("DLQS").is_none());
    // The queue administrator has them, in a role of its own.
    let admin: Vec<String> = statements("AdminFunction").iter().flat_map(actions).collect();
    for a in [
        "sqs:ReceiveMessage",
        "sqs:StartMessageMoveTask",
        "sqs:GetQueueAttributes",
    ] {
        assert!(admin.iter().any(|x| x == a), "AdminFunction lacks {a}");
    }
    assert!(resources()["AdminFunction"]["Properties"].get("Role").is_none());
    assert!(api["Properties"].get("Role").is_none());
}

#[test]
fn the_ingest_function_reads_the_bindings_and_knows_the_replay_sender() {
    let vars = &resources()["IngestFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        refs(&vars["INGEST_PRODUCER_TENANTS"]),
        BTreeSet::from(["IngestProducerTenants".into()])
    );
    assert_eq!(
        refs(&vars["INGEST_REPLAY_SENDER"]),
        BTreeSet::from(["AdminFunctionRole.RoleId".into()])
    );
    let param = &switchyard_local::template::workspace_template().unwrap()["Parameters"]["IngestProducerTenants"];
    let default = param["Default"].as_str().unwrap();
    let bindings = switchyard_core::producers::ProducerBindings::parse(Some(default)).unwrap();
    assert!(
        bindings.is_empty(),
        "by default every listed producer is trusted for every tenant"
    );
}

/// moto records every message as sent by this principal (its default
/// `SenderId`), whoever sends it.
const MOTO_SENDER_ID: &str = "AIDAIT2UOQQY3AUEKVGXU";

/// With producer bindings, a message for a tenant its sender is not bound
/// to is refused (a batch item failure, then the DLQ) and nothing of it is
/// stored or delivered, while the sender's own tenant is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_bindings_an_unbound_tenant_is_refused_and_a_bound_one_delivered() {
    let stack = Stack::new("door-bound").await;
    let rx = Receiver::ok().await.unwrap();
    let (acme, _) = stack.tenant("acme").await;
    let (globex, _) = stack.tenant("globex").await;
    stack.endpoint(&acme, &rx.url("/acme"), &[]).await;
    stack.endpoint(&globex, &rx.url("/globex"), &[]).await;
    let mut settings = stack.ingest_settings();
    settings.producers = switchyard_core::producers::ProducerBindings::parse(Some(&format!(
        r#"{{"{MOTO_SENDER_ID}": ["acme"], "AROAOTHERPRODUCER": ["globex"]}}"#
    )))
    .unwrap();
    let ingest = stack.ingest_with(&settings);

    let bound = stack
        .send_ingest_message(
            r#"{"id":"ok_1","type":"invoice.paid","data":{}}"#,
            &[("tenant_id", "acme")],
        )
        .await;
    let forged = stack
        .send_ingest_message(
            r#"{"id":"forged_1","type":"invoice.paid","data":{}}"#,
            &[("tenant_id", "globex")],
        )
        .await;
    let (mut received, mut failed) = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..4 {
        let (r, f) = stack.poll_ingest_queue(&ingest, 1).await;
        received.extend(r);
        failed.extend(f);
        if received.len() == 2 {
            break;
        }
    }
    assert_eq!(received, BTreeSet::from([bound.clone(), forged.clone()]));
    assert_eq!(failed, BTreeSet::from([forged]), "only the forged message fails");
    assert!(
        stack
            .event_store()
            .get_event(&globex, &EventId::parse("forged_1").unwrap())
            .await
            .unwrap()
            .is_none(),
        "nothing is stored for the tenant the sender is not bound to"
    );
    let fanned = stack.drain_fanout().await;
    assert_eq!((fanned.received, fanned.failed), (1, 0));
    stack.drain_deliveries(T).await;
    let got = rx.wait_for(1, T).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paths: Vec<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec!["/acme".to_string()], "{got:?}");
}

/// Through the local runner (the template's event source mapping hands the
/// function the `SenderId` moto records): with the producer bound to acme
/// only, acme's event is delivered and globex's is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_bindings_hold_through_the_runner_driven_stack() {
    use switchyard_local::runner::Runner;
    let sdk = switchyard_local::sdk_config(switchyard_tests::moto_endpoint()).await;
    let bindings = format!(r#"{{"{MOTO_SENDER_ID}": ["acme"]}}"#);
    let opts = crate::runner::options("runner-bound", &[("IngestProducerTenants", &bindings)]);
    let runner = Runner::start(&sdk, crate::runner::template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = switchyard_tests::Http::of(&runner);
    let rx = Receiver::ok().await.unwrap();
    let acme = api.tenant("acme").await;
    let globex = api.tenant("globex").await;
    api.endpoint(&acme, &rx.url("/acme"), &[]).await;
    api.endpoint(&globex, &rx.url("/globex"), &[]).await;
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    let queue = runner.plan().reference("IngestQueue").unwrap();
    for (id, tenant) in [("forged_1", "globex"), ("ok_1", "acme")] {
        sqs.send_message()
            .queue_url(queue)
            .message_body(serde_json::json!({"id": id, "type": "order.placed", "data": {}}).to_string())
            .message_attributes(
                "tenant_id",
                switchyard_aws::aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(tenant)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("webhook-id"),
        Some(switchyard_tests::webhook_id("acme", "ok_1").as_str())
    );
    // The forged message keeps failing (it comes back after the visibility
    // timeout, then goes to the DLQ): nothing reaches globex meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let paths: Vec<String> = rx.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, vec!["/acme".to_string()]);
    assert!(
        runner
            .invocations()
            .iter()
            .any(|i| i.function == "IngestFunction" && i.trigger == "sqs:IngestQueue"),
        "{:#?}",
        runner.invocations()
    );
    runner.shutdown().await;
}
