//! Least privilege, checked against the calls the code makes: the whole
//! stack runs on the local runner behind the counting AWS proxy, which
//! records each (IAM action, resource ARN) per caller (each function signs
//! with its logical id; Lambda's own pollers here sign as [`LAMBDA`]).
//! Traffic reaches every function and door: HTTP, SQS and EventBridge
//! ingest, deliveries that succeed, fail and retry, are exhausted and
//! dead-lettered, a gone endpoint, an open circuit, a lost task the monitor
//! sends again, the internal track's handlers and workflows (a retry
//! included), the management API's tenant and admin routes, and the queue
//! administrator's peek and redrive.
//!
//! Then, against each function's policy in `template.yaml` (resolved for
//! this stack, with what SAM adds for SQS events and destinations):
//!
//! 1. every (action, resource) a function needed is allowed to it; every
//!    call Lambda made for a function (polling its queues, its OnFailure
//!    destination) is allowed by what SAM adds;
//! 2. every action of every statement is used in the run, or listed in
//!    [`UNSEEN`] with the reason it is still needed.
//!
//! A grant added to a policy fails (2) until the run uses it or it is
//! listed; a grant removed fails (1). `docs/security.md` ("IAM") has the
//! list with its reasons, and how to run this alone.

use crate::runner::options;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use switchyard_local::aws_proxy::{Access, AwsProxy};
use switchyard_local::iam::{By, Grant, function_grants, functions, logical};
use switchyard_local::runner::Runner;
use switchyard_local::runner::provision::Plan;
use switchyard_tests::{ADMIN_KEY, Http, Receiver, Reply, moto_endpoint};

/// The access key id of Lambda's side of the runner: provisioning, the
/// event source mappings' polls, rule targets and OnFailure destinations.
const LAMBDA: &str = "LambdaService";

/// Grants the run does not use, and why each is still needed:
/// (function, statement Sid, action, reason).
pub(crate) const UNSEEN: &[(&str, &str, &str, &str)] = &[
    (
        "FanoutFunction",
        "StoreNotices",
        "dynamodb:GetItem",
        "a notice stored again (a redelivered fan-out task) whose refused put returned no item reads the stored one",
    ),
    (
        "MonitorFunction",
        "ReconcileDeliveries",
        "dynamodb:PutItem",
        "a lost task whose event is gone too is failed as task_lost, and its attempt recorded",
    ),
    (
        "MonitorFunction",
        "TellTenantLost",
        "sqs:SendMessage",
        "the task_lost notice of such a delivery goes to fan-out",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_aws_call_is_allowed_and_every_grant_is_used() {
    let t0 = Instant::now();
    let proxy = AwsProxy::start(moto_endpoint()).await.unwrap();
    let lambda_sdk = switchyard_local::sdk_config_as(&proxy.endpoint(), LAMBDA).await;
    // The test's own calls go straight to moto: they are nobody's role's.
    let sdk = switchyard_local::sdk_config(moto_endpoint()).await;
    let label = switchyard_local::resources::unique_prefix("iam");
    let s3_ok = format!("arn:aws:s3:::{label}-ok");
    let s3_orphan = format!("arn:aws:s3:::{label}-orphan");
    let rules = json!([{"source": "aws.s3", "resource_prefix": s3_ok, "tenant": "acme"}]).to_string();
    let mut opts = options(
        "iam",
        &[("AwsEventsTenantRules", &rules), ("CircuitFailureThreshold", "2")],
    );
    opts.parameters.insert(
        "AwsEventsPattern".into(),
        json!({"source": ["aws.s3"], "detail-type": ["Object Created"], "resources": [s3_ok, s3_orphan]}).to_string(),
    );
    opts.env_overrides.push(("RECONCILE_AFTER_SECS".into(), "1".into()));
    let template = crate::runner::template();
    let runner = Runner::start(&lambda_sdk, template, opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    proxy.reset();
    drive(&runner, &sdk, &s3_ok, &s3_orphan).await;
    let tally = proxy.tally();
    let plan = runner.plan().clone();
    runner.shutdown().await;
    println!("IAM run: {:.1} s", t0.elapsed().as_secs_f64());
    let report = check(template, &plan, &tally.accesses);
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// `method path` with `key`, which must succeed; its answer.
async fn ok(api: &Http, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let (s, out) = api.call(method, path, key, body).await;
    assert!(s < 300, "{method} {path}: {s} {out}");
    out
}

async fn depth(sqs: &switchyard_aws::aws_sdk_sqs::Client, url: &str) -> u64 {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(switchyard_aws::aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes()
        .and_then(|a| a.get(&switchyard_aws::aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Traffic that reaches every function and every path the policies name.
async fn drive(runner: &Runner, sdk: &switchyard_aws::SdkConfig, s3_ok: &str, s3_orphan: &str) {
    let api = Http::of(runner);
    let plan = runner.plan();
    let rx = Receiver::start(|r| match r.path.as_str() {
        "/gone" => Reply::status(410),
        "/flaky" => Reply::status(500),
        _ => Reply::status(204),
    })
    .await
    .unwrap();
    let later = Receiver::failing_first(1).await.unwrap();

    // Tenants and keys (admin routes).
    let key = api.tenant("acme").await;
    let key = key.as_str();
    ok(&api, "GET", "/v1/admin/tenants", ADMIN_KEY, None).await;
    ok(&api, "GET", "/v1/admin/tenants/acme", ADMIN_KEY, None).await;
    // The key the stack generated (as after a first deploy): both admin
    // functions read it from Secrets Manager.
    let generated = switchyard_aws::aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(plan.reference("AdminKeySecret").unwrap())
        .send()
        .await
        .unwrap()
        .secret_string
        .unwrap();
    ok(&api, "GET", "/v1/admin/tenants", &generated, None).await;
    ok(&api, "GET", "/v1/admin/queues", &generated, None).await;
    let second = ok(
        &api,
        "POST",
        "/v1/admin/tenants/acme/api-keys",
        ADMIN_KEY,
        Some(json!({})),
    )
    .await;
    ok(&api, "GET", "/v1/admin/tenants/acme/api-keys", ADMIN_KEY, None).await;
    let key_id = second["key_id"].as_str().unwrap_or_default().to_string();
    ok(
        &api,
        "DELETE",
        &format!("/v1/admin/tenants/acme/api-keys/{key_id}"),
        ADMIN_KEY,
        None,
    )
    .await;

    // Endpoints (tenant routes).
    let (ok_id, _) = api.endpoint(key, &rx.url("/ok"), &[]).await;
    let (_, _) = api.endpoint(key, &rx.url("/gone"), &["order.*"]).await;
    let flaky = ok(
        &api,
        "POST",
        "/v1/endpoints",
        key,
        Some(json!({"url": rx.url("/flaky"), "filter_types": ["order.*"],
            "retry_policy": {"kind": "fixed", "delay_secs": 1, "max_attempts": 3}})),
    )
    .await;
    ok(
        &api,
        "POST",
        "/v1/endpoints",
        key,
        Some(json!({"url": later.url("/later"), "filter_types": ["reconcile.*"],
            "retry_policy": {"kind": "fixed", "delay_secs": 2, "max_attempts": 5}})),
    )
    .await;
    // One delivery a second: a burst waits its turn, each waiting task sent
    // again as a new message (the delivery function's SendMessage).
    let rated = ok(
        &api,
        "POST",
        "/v1/endpoints",
        key,
        Some(json!({"url": rx.url("/rated"), "filter_types": ["rated.*"], "rate_limit": 1})),
    )
    .await;
    let (spare, _) = api.endpoint(key, &rx.url("/spare"), &["none.*"]).await;
    ok(&api, "GET", "/v1/endpoints", key, None).await;
    ok(&api, "GET", &format!("/v1/endpoints/{ok_id}"), key, None).await;
    ok(
        &api,
        "PATCH",
        &format!("/v1/endpoints/{spare}"),
        key,
        Some(json!({"description": "spare"})),
    )
    .await;
    ok(&api, "GET", &format!("/v1/endpoints/{spare}/secret"), key, None).await;
    ok(
        &api,
        "POST",
        &format!("/v1/endpoints/{spare}/rotate-secret"),
        key,
        Some(json!({})),
    )
    .await;
    ok(
        &api,
        "POST",
        &format!("/v1/endpoints/{spare}/disable"),
        key,
        Some(json!({})),
    )
    .await;
    ok(
        &api,
        "POST",
        &format!("/v1/endpoints/{spare}/enable"),
        key,
        Some(json!({})),
    )
    .await;
    ok(
        &api,
        "POST",
        &format!("/v1/endpoints/{ok_id}/test"),
        key,
        Some(json!({})),
    )
    .await;
    ok(&api, "DELETE", &format!("/v1/endpoints/{spare}"), key, None).await;

    // The lost task first: one attempt fails, the task is purged, and the
    // monitor's sweep sends it again once overdue.
    let body = json!({"id": "evt_lost", "type": "reconcile.probe", "data": {}});
    ok(&api, "POST", "/v1/events", key, Some(body)).await;
    later.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(sdk);
    let deliveries = plan.reference("DeliveriesQueue").unwrap().to_string();
    sqs.purge_queue().queue_url(&deliveries).send().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let out = runner.invoke("MonitorFunction", bytes::Bytes::from("{}")).await;
    assert!(out.is_ok(), "monitor: {out:?}");
    later.wait_for(2, Duration::from_secs(20)).await;

    // HTTP ingest: external (ok, gone, flaky), a repeat, and the internal
    // track's handlers and workflows (an order with no shipping rate is
    // retried).
    let mut bodies = vec![
        json!({"id": "evt_order", "type": "order.placed", "data": {"n": 1}}),
        json!({"id": "evt_order", "type": "order.placed", "data": {"n": 1}}),
        json!({"id": "evt_user", "type": "user.created", "data": {"user_id": "usr_1", "email": "ada@example.com"},
            "routing": {"external": false}}),
        json!({"id": "evt_pay", "type": "payment.completed",
            "data": {"payment_id": "pay_1", "amount_cents": 4200, "currency": "eur"}, "routing": {"external": false}}),
        json!({"id": "evt_low", "type": "inventory.low", "data": {"sku": "sku-tee", "available": 4},
            "routing": {"external": false}}),
        json!({"id": "evt_click", "type": "analytics.track", "data": {"page": "/"}, "routing": {"external": false}}),
    ];
    let store = switchyard_aws::dynamo::DynamoStateStore::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(sdk),
        plan.reference("StateTable").unwrap(),
    );
    let acme = switchyard_core::TenantId::parse("acme").unwrap();
    use switchyard_flow::workflow::RecordRef;
    let Value::Object(stock) = json!({"available": 10}) else {
        unreachable!()
    };
    store
        .put_record(&acme, &RecordRef::new("STOCK", "sku-mug"), &stock)
        .await
        .unwrap();
    bodies.push(
        json!({"id": "evt_fulfil", "type": "order.created", "routing": {"external": false},
        "data": {"order_id": "ord_1", "items": [{"sku": "sku-mug", "quantity": 1, "unit_price_cents": 1250}],
            "ship_to": {"country": "nz"}, "customer_email": "ada@example.com"}}),
    );
    for b in bodies {
        let (s, out) = api.call("POST", "/v1/events", key, Some(b)).await;
        assert!(s == 202 || s == 200, "{s} {out}");
    }

    // The SQS door.
    sqs.send_message()
        .queue_url(plan.reference("IngestQueue").unwrap())
        .message_body(json!({"id": "evt_sqs", "type": "order.placed", "data": {"n": 2}}).to_string())
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

    // The EventBridge door: one with a tenant, one without (Lambda retries
    // it, then sends it to the OnFailure destination).
    let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(sdk);
    for resource in [s3_ok, s3_orphan] {
        eb.put_events()
            .entries(
                switchyard_aws::aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source("aws.s3")
                    .detail_type("Object Created")
                    .resources(resource)
                    .detail(json!({"bucket": {"name": "b"}, "object": {"key": "k"}}).to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    // A burst for the rate-limited endpoint, all sent at once.
    for n in 0..10 {
        let body = json!({"id": format!("evt_rated_{n}"), "type": "rated.tick", "data": {}});
        let (s, out) = api.call("POST", "/v1/events", key, Some(body)).await;
        assert_eq!(s, 202, "{out}");
    }

    // Deliveries settle: the flaky endpoint is exhausted (3 attempts, 1 s
    // apart) and dead-lettered (so that recover, below, has something to
    // requeue); every burst delivery lands. Generous deadlines: the whole
    // suite may be running beside this test.
    let flaky_id = flaky["id"].as_str().unwrap().to_string();
    let rated_id = rated["id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        // The flaky endpoint's own delivery must be failed: recover (below)
        // requeues exactly those.
        let (_, b) = api
            .call(
                "GET",
                &format!("/v1/endpoints/{flaky_id}/deliveries?limit=100"),
                key,
                None,
            )
            .await;
        let failed = b["items"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["state"] == "failed").count());
        let (_, r) = api
            .call(
                "GET",
                &format!("/v1/endpoints/{rated_id}/deliveries?limit=100"),
                key,
                None,
            )
            .await;
        let rated_done = r["items"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|d| d["state"] == "succeeded").count());
        if failed >= 1 && rated_done == 10 {
            break;
        }
        assert!(
            Instant::now() < until,
            "deliveries did not settle in 120 s: {failed} of the flaky endpoint's failed (want 1), {rated_done} of 10 rate-limited delivered"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The delivery log and replay.
    let (_, list) = api.call("GET", "/v1/events/evt_order/deliveries", key, None).await;
    // The resend goes to the healthy endpoint's delivery: resending the
    // flaky one would put it back in flight and leave recover (below)
    // nothing failed to requeue.
    let delivery = list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|d| d["endpoint_id"] == ok_id.as_str()))
        .and_then(|d| d["id"].as_str())
        .unwrap_or_else(|| panic!("evt_order has no delivery to the healthy endpoint: {list}"))
        .to_string();
    for path in [
        "/v1/events/evt_order".to_string(),
        "/v1/events?type_prefix=order.&limit=5".to_string(),
        format!("/v1/deliveries/{delivery}"),
        format!("/v1/endpoints/{ok_id}/deliveries"),
        format!("/v1/endpoints/{flaky_id}/health"),
        "/v1/deliveries?status=retrying".into(),
        format!(
            "/v1/audit?since={}",
            switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc() - time::Duration::hours(1))
        ),
    ] {
        ok(&api, "GET", &path, key, None).await;
    }
    ok(
        &api,
        "POST",
        &format!("/v1/deliveries/{delivery}/resend"),
        key,
        Some(json!({})),
    )
    .await;
    let since = switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc() - time::Duration::hours(1));
    let recovered = ok(
        &api,
        "POST",
        &format!("/v1/endpoints/{flaky_id}/recover"),
        key,
        Some(json!({"since": since})),
    )
    .await;
    assert!(
        recovered["requeued"].as_u64() >= Some(1),
        "recover requeued nothing: {recovered}"
    );

    // The queue administrator: health, DLQs, a peek and redrives (the AWS
    // events DLQ's replay, and a bounded move of the deliveries DLQ).
    let aws_dlq = plan.reference("AwsEventsDLQ").unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(20);
    while depth(&sqs, &aws_dlq).await < 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    ok(&api, "GET", "/v1/admin/queues", ADMIN_KEY, None).await;
    ok(&api, "GET", "/v1/admin/dlqs", ADMIN_KEY, None).await;
    ok(&api, "GET", "/v1/admin/dlqs/deliveries/messages", ADMIN_KEY, None).await;
    ok(
        &api,
        "POST",
        "/v1/admin/dlqs/aws-events/redrive",
        ADMIN_KEY,
        Some(json!({})),
    )
    .await;
    ok(
        &api,
        "POST",
        "/v1/admin/dlqs/deliveries/redrive",
        ADMIN_KEY,
        Some(json!({"max": 10})),
    )
    .await;
    // A whole-DLQ redrive: SQS's own move task where SQS offers it.
    sqs.send_message()
        .queue_url(plan.reference("FanoutDLQ").unwrap())
        .message_body("{}")
        .send()
        .await
        .unwrap();
    ok(
        &api,
        "POST",
        "/v1/admin/dlqs/fanout/redrive",
        ADMIN_KEY,
        Some(json!({})),
    )
    .await;
    // Everything in flight lands.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = runner.invoke("MonitorFunction", bytes::Bytes::from("{}")).await;
    assert!(out.is_ok(), "monitor: {out:?}");
}

/// Everything wrong with the policies, given what each caller needed.
fn check(template: &Value, plan: &Plan, seen: &BTreeMap<String, BTreeMap<Access, u64>>) -> Vec<String> {
    let name = |arn: &str| logical(&plan.cfn, arn);
    let mut wrong = Vec::new();
    let grants: BTreeMap<String, Vec<Grant>> = functions(template)
        .into_iter()
        .map(|f| {
            let g = function_grants(template, &plan.cfn, &f).unwrap_or_else(|e| panic!("{e}"));
            (f, g)
        })
        .collect();
    let lambda_grants: Vec<&Grant> = grants.values().flatten().filter(|g| g.by == By::Lambda).collect();
    // The template's own resources (a runner-owned queue standing in for a
    // rule's Lambda target is not one).
    let in_template = |arn: &str| name(arn) != arn;
    for (caller, accesses) in seen {
        for a in accesses.keys() {
            let allowed = if caller == LAMBDA {
                !in_template(&a.resource) || lambda_grants.iter().any(|g| g.allows(&a.action, &a.resource))
            } else if let Some(gs) = grants.get(caller) {
                gs.iter()
                    .any(|g| g.by == By::Function && g.allows(&a.action, &a.resource))
            } else {
                false
            };
            if !allowed {
                wrong.push(format!(
                    "{caller} needed {} on {}, which its policy does not allow",
                    a.action,
                    name(&a.resource)
                ));
            }
        }
    }
    let mut listed_but_seen = Vec::new();
    for (function, gs) in &grants {
        let used: BTreeSet<&Access> = seen.get(function).map(|m| m.keys().collect()).unwrap_or_default();
        for g in gs.iter().filter(|g| g.by == By::Function) {
            for action in &g.actions {
                let hit = used.iter().any(|a| {
                    switchyard_local::iam::action_matches(action, &a.action) && g.allows(&a.action, &a.resource)
                });
                let listed = UNSEEN
                    .iter()
                    .any(|(f, sid, act, _)| f == function && *sid == g.sid && act == action);
                match (hit, listed) {
                    (false, false) => wrong.push(format!(
                        "{function} {}: {action} on {} is granted but the run never used it (remove it, or list it in UNSEEN with the reason)",
                        g.sid,
                        g.resources.iter().map(|r| name(r)).collect::<Vec<_>>().join(", ")
                    )),
                    (true, true) => listed_but_seen.push(format!("{function} {} {action}", g.sid)),
                    _ => {}
                }
                // Resources of a used action the run did not touch: shown,
                // not failed (one DLQ's peek stands for every DLQ's).
                if hit {
                    for r in &g.resources {
                        let touched = used.iter().any(|a| {
                            switchyard_local::iam::action_matches(action, &a.action)
                                && switchyard_local::iam::glob(r, &a.resource)
                        });
                        if !touched {
                            println!("note: {function} {action} on {} not reached in the run", name(r));
                        }
                    }
                }
            }
        }
    }
    for l in listed_but_seen {
        println!("note: {l} is listed in UNSEEN but the run used it");
    }
    wrong
}
