//! What operators see: the EMF metrics the functions write (parsed from the
//! log lines of the runner-driven stack's real processes), the monitor's
//! depths and open circuits against moto, and the template's dashboard and
//! alarms checked against the metric catalog the code emits from.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use switchyard_core::metrics::{CATALOG, NAMESPACE, parse_emf};
use switchyard_local::runner::Runner;
use switchyard_tests::{ADMIN_KEY, Http, Receiver, moto_endpoint};

fn template() -> &'static Value {
    switchyard_local::template::workspace_template().unwrap_or_else(|e| panic!("{e}"))
}

fn resources() -> &'static serde_json::Map<String, Value> {
    template()["Resources"].as_object().unwrap()
}

fn of_type(kind: &str) -> Vec<String> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, _)| id.clone())
        .collect()
}

/// The template's queues: (source queues with a redrive policy, DLQs).
fn queues() -> (Vec<String>, Vec<String>) {
    of_type("AWS::SQS::Queue")
        .into_iter()
        .partition(|q| resources()[q]["Properties"].get("RedrivePolicy").is_some())
}

/// A metric reference of the dashboard or an alarm: namespace, name,
/// dimensions (name -> value, with `${X}` / `!Ref X` / `!GetAtt X.Y` shown as
/// `X`).
type MetricRef = (String, String, BTreeMap<String, String>);

/// `${Logical}` and `${Logical.Attr}` replaced by the logical id.
fn unsub(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').unwrap();
        out.push_str(after[..end].split('.').next().unwrap());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn dashboard_metrics() -> Vec<(String, MetricRef)> {
    let body = resources()["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is an Fn::Sub string");
    let body: Value = serde_json::from_str(&unsub(body)).expect("the dashboard body is JSON");
    let mut out = Vec::new();
    for w in body["widgets"].as_array().unwrap() {
        let title = w["properties"]["title"].as_str().unwrap().to_string();
        for m in w["properties"]["metrics"].as_array().unwrap() {
            let parts: Vec<&Value> = m.as_array().unwrap().iter().take_while(|p| p.is_string()).collect();
            let dims = parts[2..]
                .chunks(2)
                .map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_str().unwrap().to_string()))
                .collect();
            out.push((
                title.clone(),
                (
                    parts[0].as_str().unwrap().into(),
                    parts[1].as_str().unwrap().into(),
                    dims,
                ),
            ));
        }
    }
    out
}

fn value_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("Ref") => o["Ref"].as_str().unwrap().to_string(),
        Value::Object(o) if o.contains_key("Fn::GetAtt") => o["Fn::GetAtt"][0].as_str().unwrap().to_string(),
        other => panic!("an alarm dimension value of an unexpected form: {other}"),
    }
}

fn alarm_metrics() -> Vec<(String, MetricRef)> {
    let mut out = Vec::new();
    for id in of_type("AWS::CloudWatch::Alarm") {
        let p = &resources()[&id]["Properties"];
        let mut stats: Vec<&Value> = vec![p];
        for m in p.get("Metrics").and_then(Value::as_array).into_iter().flatten() {
            if let Some(metric) = m.pointer("/MetricStat/Metric") {
                stats.push(metric);
            }
        }
        for s in stats {
            let (Some(ns), Some(name)) = (s.get("Namespace"), s.get("MetricName")) else {
                continue;
            };
            let dims = s["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["Name"].as_str().unwrap().to_string(), value_name(&d["Value"])))
                .collect();
            out.push((
                id.clone(),
                (ns.as_str().unwrap().into(), name.as_str().unwrap().into(), dims),
            ));
        }
    }
    out
}

/// A Switchyard metric reference is one the code emits: in the catalog,
/// with exactly its dimensions and its function.
fn check_against_catalog(where_: &str, (ns, name, dims): &MetricRef) {
    if ns != NAMESPACE {
        return;
    }
    let def = CATALOG
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{where_}: {name} is not a metric the code emits"));
    let names: Vec<&str> = dims.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = def.dimensions.to_vec();
    want.sort_unstable();
    assert_eq!(names, want, "{where_}: {name}'s dimensions");
    assert_eq!(
        dims["Function"], def.function,
        "{where_}: {name} is emitted by {}",
        def.function
    );
    assert_eq!(
        dims["Stage"], "Stage",
        "{where_}: {name}'s Stage is the Stage parameter"
    );
}

#[test]
fn the_dashboard_and_alarms_refer_only_to_metrics_the_code_emits_and_cover_every_resource() {
    let dash = dashboard_metrics();
    let alarms = alarm_metrics();
    for (w, m) in dash.iter().chain(&alarms) {
        check_against_catalog(w, m);
    }
    // Every metric the code emits is on the dashboard.
    let shown: BTreeSet<&str> = dash
        .iter()
        .filter(|(_, m)| m.0 == NAMESPACE)
        .map(|(_, m)| m.1.as_str())
        .collect();
    for d in CATALOG {
        assert!(shown.contains(d.name), "{} is emitted but on no widget", d.name);
    }
    let has = |list: &[(String, MetricRef)], ns: &str, metric: &str, dim: &str, value: &str| {
        list.iter()
            .any(|(_, m)| m.0 == ns && m.1 == metric && m.2.get(dim).map(String::as_str) == Some(value))
    };
    let (sources, dlqs) = queues();
    assert!(sources.len() >= 9 && dlqs.len() >= 10, "{sources:?} {dlqs:?}");
    for q in &dlqs {
        assert!(
            has(&dash, NAMESPACE, "QueueVisible", "Queue", q),
            "no DLQ depth widget for {q}"
        );
        assert!(
            has(&alarms, NAMESPACE, "QueueVisible", "Queue", q),
            "no not-empty alarm for {q}"
        );
    }
    for q in &sources {
        assert!(
            has(&dash, NAMESPACE, "QueueVisible", "Queue", q),
            "no depth widget for {q}"
        );
        assert!(
            has(&dash, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q),
            "no age widget for {q}"
        );
        assert!(
            has(&alarms, "AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", q),
            "no oldest-message alarm for {q}"
        );
    }
    for f in of_type("AWS::Serverless::Function") {
        for metric in ["Errors", "Throttles", "Duration"] {
            assert!(
                has(&dash, "AWS/Lambda", metric, "FunctionName", &f),
                "no {metric} widget for {f}"
            );
        }
        for metric in ["Errors", "Throttles"] {
            assert!(
                has(&alarms, "AWS/Lambda", metric, "FunctionName", &f),
                "no {metric} alarm for {f}"
            );
        }
    }
    assert!(
        alarms
            .iter()
            .any(|(id, m)| id == "DeliveryFailureRateAlarm" && m.1 == "DeliveriesFailed")
    );
    // Every alarm notifies the topic.
    for id in of_type("AWS::CloudWatch::Alarm") {
        assert_eq!(
            resources()[&id]["Properties"]["AlarmActions"],
            json!([{"Ref": "AlarmTopic"}]),
            "{id}"
        );
    }
    // The monitor watches every queue and DLQ, by logical id.
    let watched = resources()["MonitorFunction"]["Properties"]["Environment"]["Variables"]["QUEUES"]["Fn::Sub"]
        .as_str()
        .unwrap();
    let watched: Vec<Value> = serde_json::from_str(&unsub(watched)).unwrap();
    let names: BTreeSet<&str> = watched.iter().map(|q| q["name"].as_str().unwrap()).collect();
    for q in sources.iter().chain(&dlqs) {
        assert!(names.contains(q.as_str()), "the monitor does not watch {q}");
        assert!(
            watched
                .iter()
                .any(|w| w["name"] == q.as_str() && w["url"] == q.as_str()),
            "{q}'s URL"
        );
    }
}

/// An EMF line's dimensions and values.
type Line = (BTreeMap<String, String>, BTreeMap<String, Vec<f64>>);

/// Every EMF line `function` has written so far.
fn emf_of(log_dir: &std::path::Path, function: &str) -> Vec<Line> {
    let text = std::fs::read_to_string(log_dir.join(format!("{function}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(parse_emf)
        .map(|(ns, dims, values)| {
            assert_eq!(ns, NAMESPACE);
            (dims, values)
        })
        .collect()
}

/// The sum of a metric over a function's EMF lines.
fn total(lines: &[Line], metric: &str) -> f64 {
    lines.iter().filter_map(|(_, v)| v.get(metric)).flatten().sum()
}

/// The JSON batch line `message` of a function's log that names `event`.
fn batch_line(log: &str, message: &str, event: &str) -> Value {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["fields"]["message"] == message
                && l["fields"]["event_ids"]
                    .as_str()
                    .is_some_and(|e| e.split(' ').any(|e| e == event))
        })
        .unwrap_or_else(|| panic!("no JSON `{message}` line naming {event}:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_write_emf_metrics_and_the_monitor_reports_depths_and_open_circuits() {
    let sdk = switchyard_local::sdk_config(moto_endpoint()).await;
    let opts = crate::runner::options("emf", &[]);
    let log_dir = opts.function_log_dir.clone().expect("the runner tests log to files");
    let runner = Runner::start(&sdk, template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let key = api.tenant("acme").await;
    let rx = Receiver::ok().await.unwrap();
    let (s, ep) = api
        .call("POST", "/v1/endpoints", &key, Some(json!({"url": rx.url("/m")})))
        .await;
    assert_eq!(s, 201);

    // One accepted event, its duplicate, and one refused.
    let event = json!({"id": "evt_m1", "type": "a.b", "data": {}});
    assert_eq!(api.call("POST", "/v1/events", &key, Some(event.clone())).await.0, 202);
    assert_eq!(api.call("POST", "/v1/events", &key, Some(event)).await.0, 200);
    let refused = api
        .call("POST", "/v1/events", &key, Some(json!({"type": "no data"})))
        .await
        .0;
    assert!((400..500).contains(&refused), "{refused}");
    assert_eq!(rx.wait_for(1, Duration::from_secs(30)).await.len(), 1);

    // The lines arrive as the processes write them.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let done = total(&emf_of(&log_dir, "DeliveryFunction"), "DeliveriesSucceeded") >= 1.0;
        if done || Instant::now() > until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ingest = emf_of(&log_dir, "IngestFunction");
    assert_eq!(total(&ingest, "EventsIngested"), 1.0, "{ingest:?}");
    assert_eq!(total(&ingest, "EventsDuplicated"), 1.0);
    assert_eq!(total(&ingest, "EventsRejected"), 1.0);
    assert!(
        ingest
            .iter()
            .all(|(d, _)| d["Stage"] == "dev" && d["Function"] == "ingest"),
        "{ingest:?}"
    );
    assert_eq!(total(&emf_of(&log_dir, "FanoutFunction"), "FanoutTasks"), 1.0);
    let delivery = emf_of(&log_dir, "DeliveryFunction");
    assert_eq!(total(&delivery, "DeliveriesSucceeded"), 1.0, "{delivery:?}");
    assert_eq!(total(&delivery, "DeliveriesFailed"), 0.0);
    let latency: Vec<f64> = delivery
        .iter()
        .filter_map(|(_, v)| v.get("AttemptLatency"))
        .flatten()
        .copied()
        .collect();
    assert_eq!(latency.len(), 1, "one attempt, one latency: {delivery:?}");
    assert!(latency[0] > 0.0 && latency[0] < 15_000.0, "{latency:?}");

    // The monitor, against moto: two messages waiting in a DLQ, one open
    // circuit.
    let sqs = switchyard_aws::aws_sdk_sqs::Client::new(&sdk);
    let dlq = runner.plan().reference("FanoutDLQ").unwrap().to_string();
    for i in 0..2 {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!("stuck {i}"))
            .send()
            .await
            .unwrap();
    }
    let registry = switchyard_aws::dynamo::DynamoRegistry::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        runner.plan().reference("RegistryTable").unwrap(),
    );
    let tenant = switchyard_core::TenantId::parse("acme").unwrap();
    let ep_id = switchyard_core::EndpointId::parse(ep["id"].as_str().unwrap()).unwrap();
    let now_ms = (switchyard_core::time_util::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    use switchyard_core::ports::EndpointHealth;
    assert!(
        registry
            .open_circuit(&tenant, &ep_id, 0, now_ms, now_ms + 600_000)
            .await
            .unwrap()
    );
    let out = runner.invoke("MonitorFunction", bytes::Bytes::from("{}")).await;
    let switchyard_local::runner::lambda::Outcome::Ok(body) = out else {
        panic!("monitor: {out:?}")
    };
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["open_circuits"], 1, "{report}");
    let depth = |name: &str| {
        report["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
    };
    assert_eq!(depth("FanoutDLQ").unwrap()["visible"], 2, "{report}");
    let (sources, dlqs) = queues();
    assert_eq!(report["queues"].as_array().unwrap().len(), sources.len() + dlqs.len());
    let until = Instant::now() + Duration::from_secs(5);
    let monitor = loop {
        let m = emf_of(&log_dir, "MonitorFunction");
        if m.iter()
            .any(|(d, _)| d.get("Queue").map(String::as_str) == Some("FanoutDLQ"))
            || Instant::now() > until
        {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let fanout_dlq = monitor
        .iter()
        .rev()
        .find(|(d, _)| d.get("Queue").map(String::as_str) == Some("FanoutDLQ"))
        .unwrap_or_else(|| panic!("no FanoutDLQ line: {monitor:?}"));
    assert_eq!(fanout_dlq.1["QueueVisible"], vec![2.0]);
    assert_eq!(fanout_dlq.0["Function"], "monitor");
    let circuits = monitor
        .iter()
        .rev()
        .find_map(|(_, v)| v.get("EndpointsCircuitOpen"))
        .unwrap();
    assert_eq!(circuits, &vec![1.0]);
    // The functions' own log lines: JSON, one per batch for the deliveries
    // that landed, naming each of them with its event and tenant, and the
    // function and request they belong to; no secret, no key.
    let lines = std::fs::read_to_string(log_dir.join("DeliveryFunction.log")).unwrap();
    let done = batch_line(&lines, "delivered", "evt_m1");
    assert_eq!(done["fields"]["tenant_ids"], "acme");
    let count = done["fields"]["count"].as_u64().unwrap();
    let ids: Vec<&str> = done["fields"]["delivery_ids"].as_str().unwrap().split(' ').collect();
    assert_eq!(ids.len() as u64, count, "{done}");
    assert!(ids.iter().all(|d| d.starts_with("dlv_")), "{done}");
    // The per-delivery line is DEBUG, below the stack's level.
    assert!(!lines.contains("\"level\":\"DEBUG\""), "{lines}");
    let fanout = std::fs::read_to_string(log_dir.join("FanoutFunction.log")).unwrap();
    let fanned = batch_line(&fanout, "fanned out", "evt_m1");
    assert!(fanned["fields"]["deliveries"].as_u64().unwrap() >= 1, "{fanned}");
    assert!(
        fanned["fields"]["tenant_ids"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|t| t == "acme"),
        "{fanned}"
    );
    assert!(
        done["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["function"] == "delivery"),
        "{done}"
    );
    // Lambda's request id, once: the span list holds it, and the innermost
    // span is not repeated beside it (CloudWatch Logs bills every byte).
    assert!(
        done["spans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["requestId"].is_string()),
        "{done}"
    );
    assert!(done.get("span").is_none(), "{done}");
    let secret = ep["secret"].as_str().unwrap();
    for f in [
        "IngestFunction",
        "FanoutFunction",
        "DeliveryFunction",
        "ApiFunction",
        "MonitorFunction",
    ] {
        let text = std::fs::read_to_string(log_dir.join(format!("{f}.log"))).unwrap_or_default();
        assert!(
            !text.contains(secret) && !text.contains(&key),
            "{f} logged a secret or a key"
        );
        assert!(!text.contains(ADMIN_KEY), "{f} logged the admin key");
        for l in text.lines() {
            assert!(
                serde_json::from_str::<Value>(l).is_ok(),
                "{f}: a log line that is not JSON: {l}"
            );
        }
    }
    let api_log = std::fs::read_to_string(log_dir.join("ApiFunction.log")).unwrap();
    assert!(api_log.contains(r#""path":"/v1/endpoints","status":201"#), "{api_log}");

    // A closed circuit leaves the index.
    registry.reset_circuit(&tenant, &ep_id).await.unwrap();
    assert_eq!(registry.open_circuits(now_ms).await.unwrap(), 0);
    runner.shutdown().await;
}
