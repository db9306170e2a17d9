//! What is kept for recovery: operational events stored for a tenant that
//! has no other endpoint to hear them, events EventBridge cannot put on an
//! app bus queue, and audit records kept for their own retention, not the
//! dedupe window's or the delivery log's.

use serde_json::{Value, json};
use std::time::Duration;
use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
use switchyard_core::time_util::{now_utc, rfc3339};
use switchyard_local::http_api::post_event;
use switchyard_tests::{Api, Receiver, Reply, Stack};

/// The tenant's audit trail of the last day.
async fn audit_trail(api: &Api, key: &str) -> Vec<Value> {
    let since = rfc3339(now_utc() - time::Duration::days(1));
    let a = api
        .call("GET", &format!("/v1/audit?since={since}"), Some(key), None)
        .await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_endpoint_tenant_can_read_the_delivery_exhausted_notice() {
    let stack = Stack::new("ops-notice").await;
    let api = stack.api();
    let rx = Receiver::start(|_| Reply::status(500)).await.unwrap();
    let key = api.tenant("solo").await;
    let ep = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(
                json!({"url": rx.url("/only"), "retry_policy": {"kind": "fixed", "delay_secs": 1, "max_attempts": 1}}),
            ),
        )
        .await;
    assert_eq!(ep.status, 201, "{ep:?}");
    let endpoint = ep.body["id"].as_str().unwrap().to_string();
    let t = api
        .call("POST", &format!("/v1/endpoints/{endpoint}/test"), Some(&key), None)
        .await;
    let delivery = t.body["delivery_id"].as_str().unwrap().to_string();
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let d = api
        .call("GET", &format!("/v1/deliveries/{delivery}"), Some(&key), None)
        .await;
    assert_eq!(d.body["state"], "failed", "{d:?}");

    // The notice goes to the fan-out queue; the tenant has no other endpoint
    // to hear it, so fan-out stores it for the API.
    stack.drain_fanout().await;
    assert_eq!(
        stack.depth(&stack.res.deliveries_queue_url).await,
        0,
        "nothing to deliver it to"
    );
    let notices: Vec<Value> = audit_trail(&api, &key)
        .await
        .into_iter()
        .filter(|e| e["type"] == "delivery.exhausted")
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let notice = &notices[0];
    assert_eq!(notice["source"], "switchyard");
    assert_eq!(notice["data"]["delivery_id"].as_str(), Some(delivery.as_str()));
    assert_eq!(notice["data"]["endpoint_id"].as_str(), Some(endpoint.as_str()));
    assert_eq!(notice["data"]["reason"], "exhausted");
    let id = notice["id"].as_str().unwrap();
    let e = api.call("GET", &format!("/v1/events/{id}"), Some(&key), None).await;
    assert_eq!(
        (e.status, e.body["type"].as_str()),
        (200, Some("delivery.exhausted")),
        "{e:?}"
    );

    assert_eq!(audit_trail(&api, &key).await.len(), 2, "the test event and the notice");
}

/// The TTL attribute (`expires_at`, unix seconds) of a tenant's stored event.
async fn stored_ttl(stack: &Stack, tenant: &str, event: &str) -> i64 {
    let key = switchyard_aws::dynamo::keys::deliveries::event(
        &switchyard_core::TenantId::parse(tenant).unwrap(),
        &switchyard_core::EventId::parse(event).unwrap(),
    );
    let item = stack
        .scan(&stack.res.deliveries_table)
        .await
        .into_iter()
        .find(|i| {
            i.get(switchyard_aws::dynamo::keys::PK) == Some(&AttributeValue::S(key.pk.clone()))
                && i.get(switchyard_aws::dynamo::keys::SK) == Some(&AttributeValue::S(key.sk.clone()))
        })
        .unwrap_or_else(|| panic!("no item for {event}"));
    match item.get("expires_at") {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("{event}: expires_at is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_kept_for_the_audit_retention_and_plain_events_for_the_window() {
    let stack = Stack::new("audit-ttl").await;
    let (_, key) = stack.tenant("acme").await;
    let ingest = stack.ingest();
    let before = now_utc().unix_timestamp();
    let audited = r#"{"id":"evt_audited","type":"a.b","data":{}}"#;
    // Without webhooks: the record of an event with webhooks is kept as
    // long as its deliveries can exist (ingest_doors' an_event_id_used_again_…).
    let plain = r#"{"id":"evt_plain","type":"a.b","data":{},"routing":{"audit":false,"external":false}}"#;
    for body in [audited, plain] {
        assert_eq!(ingest.handle(post_event(key.expose(), body)).await.status_code, 202);
    }
    let after = now_utc().unix_timestamp() + 1;
    let day = 24 * 3600;
    // The defaults: audit records 365 days, others the 24 h dedupe window
    // (the 30-day event retention is the delivery log's).
    let ttl = stored_ttl(&stack, "acme", "evt_audited").await;
    assert!(
        (before + 365 * day..=after + 365 * day).contains(&ttl),
        "audited: expires_at {ttl} is not received + 365 days ({before}..{after})"
    );
    let ttl = stored_ttl(&stack, "acme", "evt_plain").await;
    assert!(
        (before + day..=after + day).contains(&ttl),
        "plain: expires_at {ttl} is not received + 24 h ({before}..{after})"
    );

    // The operator's setting.
    let mut settings = stack.ingest_settings();
    settings.audit_retention_days = 90;
    let ingest = stack.ingest_with(&settings);
    let body = r#"{"id":"evt_ninety","type":"a.b","data":{}}"#;
    let before = now_utc().unix_timestamp();
    assert_eq!(ingest.handle(post_event(key.expose(), body)).await.status_code, 202);
    let after = now_utc().unix_timestamp() + 1;
    let ttl = stored_ttl(&stack, "acme", "evt_ninety").await;
    assert!((before + 90 * day..=after + 90 * day).contains(&ttl), "{ttl}");
}

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
