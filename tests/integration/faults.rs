//! AWS failing under the whole stack: the local runner's functions and
//! Lambda's pollers reach moto through the fault-injecting proxy
//! (`switchyard_local::aws_proxy`), which answers a share of every SQS,
//! DynamoDB and EventBridge request with a throttling error or a 500, or
//! drops the connection before the request reaches moto, or after it took
//! effect (the caller never hears). Events go in over HTTP as a client would
//! send them (retrying a refusal with the same id); at the end every
//! accepted event is accounted for at every endpoint: delivered with its
//! one `webhook-id`, or dead-lettered.

use crate::runner::{options, template};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_local::aws_proxy::{AwsProxy, Fault, Faults};
use switchyard_local::runner::Runner;
use switchyard_tests::{Http, Receiver, Reply, moto_endpoint};

const EVENTS: usize = 30;
/// The share of AWS requests that fail.
const FAULT_RATE: f64 = 0.1;

/// The template with every queue's visibility timeout at 3 s: a message
/// whose handler failed hard comes back in seconds, not minutes.
fn quick_template() -> Value {
    let mut t = template().clone();
    if let Some(resources) = t["Resources"].as_object_mut() {
        for r in resources.values_mut() {
            if r["Type"] == "AWS::SQS::Queue"
                && let Some(props) = r["Properties"].as_object_mut()
            {
                props.insert("VisibilityTimeout".into(), json!(3));
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_errors_and_dropped_connections_lose_no_accepted_event() {
    let proxy = AwsProxy::start(moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config(&proxy.endpoint()).await;
    let mut opts = options("faults", &[]);
    // Days of backoff in milliseconds; a circuit that opens closes soon.
    opts.env_overrides.push(("RETRY_TIME_SCALE".into(), "0.0001".into()));
    opts.env_overrides.push(("CIRCUIT_OPEN_SECS".into(), "1".into()));
    let runner = Runner::start(&sdk, &quick_template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    // The pairs each endpoint answered 2xx for: delivered.
    let ok: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let (d, o) = (Arc::new(AtomicU64::new(7)), ok.clone());
    let rx = Receiver::start(move |r| {
        let x =
            (d.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
        if r.path == "/flaky" && x < 0.3 {
            return Reply::status(500);
        }
        if let Some(id) = r.header("webhook-id") {
            o.lock().unwrap().insert((id.to_string(), r.path.clone()));
        }
        Reply::status(200)
    })
    .await
    .unwrap();
    let key = api.tenant("acme").await;
    let paths = ["/healthy", "/flaky"];
    for p in paths {
        api.endpoint(&key, &rx.url(p), &["*"]).await;
    }

    proxy.reset();
    proxy.set_faults(Faults {
        rate: FAULT_RATE,
        kinds: vec![Fault::Throttle, Fault::ServerError, Fault::Drop, Fault::LoseResponse],
        only: vec!["sqs:".into(), "dynamodb:".into(), "events:".into()],
        limit: None,
    });
    // A client sends each event until it is accepted (202) or known (200),
    // with the same id: ingest is idempotent.
    let mut accepted = Vec::new();
    let mut refusals = 0;
    for i in 0..EVENTS {
        let id = format!("evt_fault_{i:03}");
        let body = json!({"id": id, "type": "order.placed", "data": {"n": i}});
        for _ in 0..10 {
            let (s, _) = api.call("POST", "/v1/events", &key, Some(body.clone())).await;
            if s == 202 || s == 200 {
                accepted.push(id.clone());
                break;
            }
            assert!(s >= 500, "a refusal of a valid event is the server's: {s}");
            refusals += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(accepted.len(), EVENTS, "every event accepted after retries");

    // Every (event, endpoint) pair arrives, with faults still on.
    // Receivers see each event under its webhook-id.
    let want: HashSet<(String, String)> = accepted
        .iter()
        .map(|e| switchyard_tests::webhook_id("acme", e))
        .flat_map(|e| paths.iter().map(move |p| (e.clone(), p.to_string())))
        .collect();
    let delivered = || ok.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(150);
    while !want.is_subset(&delivered()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tally = proxy.tally();
    proxy.set_faults(Faults::default());
    let got = delivered();
    let missing: Vec<_> = want.difference(&got).collect();
    // Requests per pair (a 500 and its retry count two), each with the
    // event's webhook-id.
    let mut per_pair: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in rx.received() {
        if let Some(id) = r.header("webhook-id") {
            *per_pair.entry((id.to_string(), r.path.clone())).or_default() += 1;
        }
    }
    let duplicates = per_pair.values().filter(|n| **n > 1).count();
    let faults: u64 = tally.faults.values().sum();
    println!(
        "faults injected: {:?} of {} requests; {refusals} refusals retried by the client; {} pairs delivered; {duplicates} pairs were sent more than once (retries after a 500, and redeliveries)",
        tally.faults,
        tally.requests.values().sum::<u64>(),
        got.len()
    );
    assert!(missing.is_empty(), "pairs never delivered: {missing:?}");
    let accepted_ids: HashSet<String> = accepted
        .iter()
        .map(|e| switchyard_tests::webhook_id("acme", e))
        .collect();
    assert!(
        per_pair.keys().all(|(id, _)| accepted_ids.contains(id)),
        "only accepted events arrive"
    );
    // The faults really happened, of every kind.
    for kind in ["Throttle", "ServerError", "Drop", "LoseResponse"] {
        assert!(
            tally.faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} injected: {:?}",
            tally.faults
        );
    }
    assert!(faults >= 10, "{faults} faults");

    // With the faults off, every delivery's record says succeeded.
    let mut states: HashMap<String, usize> = HashMap::new();
    for id in &accepted {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (s, b) = api
                .call("GET", &format!("/v1/events/{id}/deliveries"), &key, None)
                .await;
            let items = b["items"].as_array().cloned().unwrap_or_default();
            let done = s == 200 && items.len() == paths.len() && items.iter().all(|d| d["state"] == "succeeded");
            if done || Instant::now() > until {
                for d in items {
                    *states
                        .entry(d["state"].as_str().unwrap_or("?").to_string())
                        .or_default() += 1;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_eq!(states, HashMap::from([("succeeded".to_string(), EVENTS * paths.len())]));
    runner.shutdown().await;
}
