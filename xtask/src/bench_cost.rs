//! `cargo xtask bench-cost`: what one delivery costs on AWS, from counts
//! measured on the local stack.
//!
//! The whole stack runs from `template.yaml` (the local runner, every
//! function as its real binary) with the counting proxy
//! (`switchyard_local::aws_proxy`) between it and moto, so every AWS request
//! the functions and Lambda's event source mappings make is counted by
//! operation, with DynamoDB capacity units sized as AWS bills them
//! (indexes included). One tenant, one endpoint that answers 200 after
//! 100 ms, N events of about 1 KB (an order with varied values) in three runs: POSTed to `/v1/events` (8 at a
//! time) external-only (`"routing": {"internal": false}`), the same with
//! the default routing (the event also goes to the app bus), and sent to
//! the SQS ingest queue external-only, 10 per `SendMessageBatch`. Per
//! delivery: requests per caller and operation, DynamoDB capacity units
//! per operation and table, Lambda invocations and records per invocation,
//! log bytes (per-invocation metric lines apart from per-record lines).
//!
//! The cost per million deliveries at 128 MB arm64 with the list prices
//! below, twice: with the batches this run formed (a trickle: a few
//! records per invocation), and with full batches of 10 (steady traffic of
//! more than ~10 events a second, where Lambda's pollers fill the batching
//! window). Billed duration is modelled, not taken from the local run (moto
//! and the proxy answer far slower than AWS): per invocation, the
//! function's AWS calls for one record in sequence at 5 ms per DynamoDB,
//! 8 ms per SQS and 15 ms per EventBridge call, the 100 ms the endpoint
//! takes, and 1 ms of CPU per record; the records of a batch run
//! concurrently.
//!
//! Last, each function's peak resident memory (`VmHWM` of its processes,
//! after every invocation of the runs): the most one invocation can have
//! needed. `--release` runs the release binaries (as deployed; the first
//! build takes a while), else the debug ones.

use crate::local::{self, Args};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_local::aws_proxy::{AwsProxy, Tally};
use switchyard_local::receiver::{Receiver, Reply};

/// us-east-1 list prices (USD), as published in 2025–2026.
pub mod price {
    /// Lambda on arm64, per GB-second.
    pub const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
    /// Lambda, per request.
    pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// SQS standard queue, per request (64 KB chunk).
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// DynamoDB on demand, per write request unit.
    pub const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on demand, per read request unit.
    pub const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// EventBridge, per custom event put (64 KB chunk).
    pub const EVENTBRIDGE_EVENT: f64 = 1.00 / 1e6;
    /// API Gateway HTTP API, per request (512 KB chunk, first 300 M a month).
    pub const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// DynamoDB provisioned capacity, per write capacity unit and hour.
    pub const DYNAMODB_WCU_HOUR: f64 = 0.000_65;
    /// DynamoDB provisioned capacity, per read capacity unit and hour.
    pub const DYNAMODB_RCU_HOUR: f64 = 0.000_13;
    /// CloudWatch Logs, per GB ingested (standard class).
    pub const LOGS_GB: f64 = 0.50;
    /// Data transfer out to the internet, per GB (first 10 TB a month).
    pub const EGRESS_GB: f64 = 0.09;
}

/// The share of provisioned DynamoDB capacity steady traffic uses (auto
/// scaling's usual target).
const PROVISIONED_UTILISATION: f64 = 0.7;

/// What DynamoDB capacity provisioning saves per million deliveries over on
/// demand, for traffic steady enough to keep the capacity at
/// [`PROVISIONED_UTILISATION`]: a unit provisioned for an hour serves
/// 3600 × that many requests. (Strongly consistent reads of items up to
/// 4 KB are one unit either way.)
fn provisioned_saving(run: &Run) -> f64 {
    let million = 1e6 / run.deliveries as f64;
    let per_request = |hourly: f64| hourly / (3600.0 * PROVISIONED_UTILISATION);
    let t = &run.tally;
    (t.write_units * (price::DYNAMODB_WRU - per_request(price::DYNAMODB_WCU_HOUR))
        + t.read_units * (price::DYNAMODB_RRU - per_request(price::DYNAMODB_RCU_HOUR)))
        * million
}

/// The memory every function of the template runs with.
const MEMORY_GB: f64 = 128.0 / 1024.0;
/// Lambda's own log lines per invocation (`platform.start`,
/// `platform.report` in JSON), which the local runner does not write.
const PLATFORM_LOG_BYTES: f64 = 400.0;

/// Modelled latency of one call, in ms, by service prefix.
fn call_ms(op: &str) -> f64 {
    match op.split(':').next() {
        Some("dynamodb") => 5.0,
        Some("sqs") => 8.0,
        Some("events") => 15.0,
        _ => 10.0,
    }
}

/// What the endpoint takes to answer.
const ENDPOINT_MS: f64 = 100.0;
/// CPU per record, generous (`bench-delivery` measures ~12 µs per delivery).
const CPU_MS_PER_RECORD: f64 = 1.0;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn run(root: &Path, args: &[String]) -> Result<(), String> {
    let mut n = 300usize;
    let mut largs = Args::parse(root, &[])?;
    largs.port = 0;
    largs.aws_proxy = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => n = local::option_value(&mut it, |&v| v >= 10, "--n takes a number of at least 10")?,
            "--no-build" => largs.build = false,
            "--release" => largs.release = true,
            other => return Err(format!("unknown option {other} (--n N, --no-build, --release)")),
        }
    }
    local::with_stack(root, &largs, async |stack| measure(stack, n).await)
}

/// How the events came in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Door {
    /// `POST /v1/events` through the HTTP API.
    Http,
    /// The SQS ingest queue, 10 per `SendMessageBatch`.
    Queue,
}

/// One function's share of a run.
#[derive(Debug, Default, Clone)]
struct FunctionRun {
    invocations: u64,
    records: u64,
    /// Measured locally (moto), for reference only.
    local_ms: u64,
    /// Its own AWS calls by operation.
    calls: BTreeMap<String, u64>,
    /// Log bytes: per-invocation metric (EMF) lines, the rest of a batch
    /// line but its ids (per invocation), and the rest (per record).
    emf_bytes: u64,
    batch_bytes: u64,
    line_bytes: u64,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    door: Door,
    deliveries: usize,
    tally: Tally,
    functions: BTreeMap<String, FunctionRun>,
    webhook_bytes: u64,
}

/// The batches to cost a run with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Batching {
    /// As the run formed them.
    Measured,
    /// Every SQS-triggered invocation handles 10 records.
    Full,
}

async fn measure(stack: &local::Stack, n: usize) -> Result<(), String> {
    let proxy = stack.aws_proxy.as_ref().ok_or("the stack runs without the AWS proxy")?;
    let base = stack.runner.api_url(None).ok_or("the template serves no HTTP API")?;
    let admin = stack.admin_key.as_ref().ok_or("the template has no AdminKeySha256")?;
    let ingest_queue = stack
        .runner
        .plan()
        .reference("IngestQueue")
        .ok_or("the template has no IngestQueue")?
        .to_string();
    let rx = Receiver::start(|_| Reply::status(200).after(Duration::from_millis(ENDPOINT_MS as u64)))
        .await
        .map_err(err)?;
    let http = reqwest::Client::new();
    let (key, _) = crate::demo::onboard(&http, &base, admin.expose(), "bench", &rx.url("/hook"), &["*"]).await?;
    // The queue door's producer, counted apart from the stack.
    let producer =
        switchyard_aws::aws_sdk_sqs::Client::new(&switchyard_local::sdk_config_as(&proxy.endpoint(), "producer").await);
    let logs = switchyard_local::target_dir()
        .join("local")
        .join(&stack.stack_name)
        .join("logs");
    let mut runs = Vec::new();
    for (i, (label, door, routing)) in [
        ("HTTP API, external only", Door::Http, Some(json!({"internal": false}))),
        ("HTTP API, default routing (also to the app bus)", Door::Http, None),
        (
            "SQS ingest queue, external only",
            Door::Queue,
            Some(json!({"internal": false})),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        quiesce(proxy).await;
        proxy.reset();
        let invocations_before = stack.runner.invocations().len();
        let logs_before = log_offsets(&logs);
        let received_before = rx.received().len();
        let started = Instant::now();
        let bodies: Vec<serde_json::Value> = (0..n).map(|k| event(i, k, routing.as_ref())).collect();
        match door {
            Door::Http => post_events(&http, &base, &key, bodies).await?,
            Door::Queue => queue_events(&producer, &ingest_queue, bodies).await?,
        }
        let got = rx.wait_for(received_before + n, Duration::from_secs(300)).await;
        if got.len() < received_before + n {
            return Err(format!(
                "{label}: {} of {n} webhooks arrived",
                got.len() - received_before
            ));
        }
        quiesce(proxy).await;
        let took = started.elapsed();
        let tally = proxy.tally();
        let mut functions: BTreeMap<String, FunctionRun> = BTreeMap::new();
        // Scheduled invocations (the monitor) are a fixed monthly cost,
        // not a delivery's.
        for inv in stack.runner.invocations()[invocations_before..]
            .iter()
            .filter(|i| !i.trigger.starts_with("schedule:"))
        {
            let f = functions.entry(inv.function.clone()).or_default();
            f.invocations += 1;
            f.records += inv.batch as u64;
            f.local_ms += (inv.duration.as_micros() as u64).div_ceil(1000);
        }
        for (name, f) in functions.iter_mut() {
            f.calls = tally.by_caller.get(name).cloned().unwrap_or_default();
            let b = log_bytes_since(&logs, name, &logs_before);
            (f.emf_bytes, f.batch_bytes, f.line_bytes) = (b.emf, b.batch, b.other);
        }
        let webhook_bytes = got[received_before..]
            .iter()
            .map(|r| {
                r.body.len() as u64
                    + r.headers
                        .iter()
                        .map(|(k, v)| (k.len() + v.len() + 4) as u64)
                        .sum::<u64>()
            })
            .sum();
        let run = Run {
            door,
            deliveries: n,
            tally,
            functions,
            webhook_bytes,
        };
        println!(
            "\n== {label}: {n} events of 1 KB to one endpoint (answers in {ENDPOINT_MS} ms), {:.1} s locally",
            took.as_secs_f64()
        );
        report(&run);
        runs.push((label, run));
    }
    // The most memory each function's processes held over every invocation
    // of the three runs.
    println!("\n== peak resident memory (VmHWM) of each function's processes after the runs (128 MB configured)");
    for f in &stack.runner.plan().functions {
        if let Some(kib) = local::function_status_kib(stack, &f.logical_id, "VmHWM") {
            println!("  {:<18} {:.1} MiB", f.logical_id, kib as f64 / 1024.0);
        }
    }
    println!("\n== cost per million deliveries (128 MB arm64, us-east-1 list prices; target <= $2.00)");
    println!(
        "  {:<50} {:>16} {:>16} {:>28}",
        "", "batches as run", "full batches", "full, DynamoDB provisioned"
    );
    for (label, run) in &runs {
        let total = |b| costs(run, b).iter().map(|x| x.1).sum::<f64>();
        println!(
            "  {label:<50} {:>16} {:>16} {:>28}",
            format!("${:.2}", total(Batching::Measured)),
            format!("${:.2}", total(Batching::Full)),
            format!("${:.2}", total(Batching::Full) - provisioned_saving(run))
        );
    }
    println!(
        "  (provisioned: $0.00065 per WCU-hour and $0.00013 per RCU-hour, used at {:.0} %)",
        PROVISIONED_UTILISATION * 100.0
    );
    Ok(())
}

/// One event of about 1 KB whose `data` looks like a real order: ids,
/// names, addresses, line items and amounts that differ from event to event
/// (pseudo-random from the event's number), so stored sizes and their
/// compression are what real traffic would see, not those of a repeated
/// character.
fn event(run: usize, i: usize, routing: Option<&serde_json::Value>) -> serde_json::Value {
    let mut body = json!({
        "id": format!("evt_bench_{run}_{i:06}"),
        "type": "bench.created",
        "data": order((run * 1_000_003 + i) as u64),
    });
    if let Some(r) = routing {
        body["routing"] = r.clone();
    }
    body
}

/// A pseudo-random order of about 950 bytes of JSON.
fn order(seed: u64) -> serde_json::Value {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen",
    ];
    const CITY: [&str; 6] = ["Lisbon", "Utrecht", "Tallinn", "Valencia", "Gdansk", "Leeds"];
    const ITEM: [&str; 6] = [
        "USB-C cable",
        "Desk lamp",
        "Notebook A5",
        "Mechanical keyboard",
        "Monitor arm",
        "Webcam",
    ];
    let mut id = |prefix: &str| format!("{prefix}_{:016x}", next(u64::MAX));
    let (order_id, customer_id, payment_id) = (id("ord"), id("cus"), id("pay"));
    let (first, last) = (FIRST[next(8) as usize], LAST[next(8) as usize]);
    let items: Vec<serde_json::Value> = (0..4 + next(2))
        .map(|_| {
            json!({
                "sku": format!("SKU-{:06}", next(1_000_000)),
                "name": ITEM[next(6) as usize],
                "quantity": 1 + next(4),
                "unit_price": {"amount": 100 + next(20_000), "currency": "EUR"},
            })
        })
        .collect();
    json!({
        "order_id": order_id,
        "placed_at": format!("2026-11-{:02}T{:02}:{:02}:{:02}Z", 1 + next(28), next(24), next(60), next(60)),
        "customer": {
            "id": customer_id,
            "name": format!("{first} {last}"),
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), next(1000)),
        },
        "shipping_address": {
            "line1": format!("{} Rua {}", 1 + next(300), LAST[next(8) as usize]),
            "city": CITY[next(6) as usize],
            "postal_code": format!("{:04}-{:03}", next(10_000), next(1_000)),
            "country": "PT",
        },
        "items": items,
        "payment": {"id": payment_id, "method": "card", "last4": format!("{:04}", next(10_000))},
        "total": {"amount": 1000 + next(90_000), "currency": "EUR"},
        "notes": if next(2) == 0 { "Leave at the door" } else { "Call on arrival" },
    })
}

/// POSTs the events, 8 at a time.
async fn post_events(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    bodies: Vec<serde_json::Value>,
) -> Result<(), String> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let permit = permits.clone().acquire_owned().await.map_err(err)?;
        let (http, url, key) = (http.clone(), format!("{base}/v1/events"), key.to_string());
        set.spawn(async move {
            let _p = permit;
            let resp = http
                .post(url)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(err)?;
            if resp.status().as_u16() == 202 {
                Ok(())
            } else {
                Err(format!("POST /v1/events answered {}", resp.status()))
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(err)??;
    }
    Ok(())
}

/// Sends the events to the ingest queue, 10 per `SendMessageBatch`, with
/// the tenant as the `tenant_id` message attribute.
async fn queue_events(
    sqs: &switchyard_aws::aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: Vec<serde_json::Value>,
) -> Result<(), String> {
    use switchyard_aws::aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
    let tenant = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("bench")
        .build()
        .map_err(err)?;
    for (c, chunk) in bodies.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{c}_{i}"))
                    .message_body(b.to_string())
                    .message_attributes("tenant_id", tenant.clone())
                    .build()
                    .map_err(err)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(err)?;
        if !out.failed().is_empty() {
            return Err(format!("SendMessageBatch: {} entries failed", out.failed().len()));
        }
    }
    Ok(())
}

/// Waits until the stack has stopped calling AWS, apart from empty polls.
async fn quiesce(proxy: &AwsProxy) {
    let busy = |t: &Tally| -> u64 {
        t.requests
            .iter()
            .filter(|(k, _)| k.as_str() != "sqs:ReceiveMessage(empty)")
            .map(|(_, v)| v)
            .sum()
    };
    let mut last = busy(&proxy.tally());
    let mut quiet = 0;
    while quiet < 6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = busy(&proxy.tally());
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
}

/// The length of every function's log file now.
fn log_offsets(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().strip_suffix(".log")?.to_string();
            Some((name, e.metadata().ok()?.len()))
        })
        .collect()
}

/// The bytes `function` logged since `before`: metric (EMF) lines, other
/// lines (each with its newline).
fn log_bytes_since(dir: &Path, function: &str, before: &BTreeMap<String, u64>) -> LogBytes {
    let text = std::fs::read(dir.join(format!("{function}.log"))).unwrap_or_default();
    let from = before.get(function).copied().unwrap_or(0) as usize;
    split_log_bytes(text.get(from..).unwrap_or_default())
}

/// A function's log bytes by how they grow: with invocations (metric
/// lines; a batch line but the ids it names) or with records (the ids of a
/// batch line; every other line).
#[derive(Debug, Default, PartialEq, Eq)]
struct LogBytes {
    emf: u64,
    batch: u64,
    other: u64,
}

/// The fields of a batch line (`switchyard_core::batch_log`) that name one
/// id per record.
const BATCH_ID_FIELDS: [&str; 2] = ["event_ids", "delivery_ids"];

fn split_log_bytes(text: &[u8]) -> LogBytes {
    let mut b = LogBytes::default();
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let len = line.len() as u64 + 1;
        if line.starts_with(br#"{"_aws""#) {
            b.emf += len;
            continue;
        }
        let fields = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("fields").cloned())
            .filter(|f| f.get("count").is_some_and(serde_json::Value::is_u64));
        match fields {
            Some(f) => {
                let ids: u64 = BATCH_ID_FIELDS
                    .iter()
                    .filter_map(|k| f.get(k).and_then(serde_json::Value::as_str))
                    .map(|v| v.len() as u64)
                    .sum();
                b.batch += len - ids;
                b.other += ids;
            }
            None => b.other += len,
        }
    }
    b
}

fn report(run: &Run) {
    let per = |x: f64| x / run.deliveries as f64;
    println!("  AWS requests per delivery, by caller (`testing`: Lambda's pollers; empty polls are the idle cost):");
    for (who, ops) in &run.tally.by_caller {
        for (op, count) in ops {
            println!("    {who:<18} {op:<34} {:>7.3}", per(*count as f64));
        }
    }
    println!(
        "  DynamoDB per delivery: {:.2} write units, {:.2} read units; write units by caller, operation, table:",
        per(run.tally.write_units),
        per(run.tally.read_units)
    );
    for (what, wru) in &run.tally.write_units_by {
        println!("    {what:<70} {:>6.2}", per(*wru));
    }
    for (name, f) in &run.functions {
        println!(
            "  {name:<18} {:.3} invocations per delivery, {:.1} records each, modelled {:.0} ms billed each ({:.0} ms locally), logs {:.0} B per record + {:.0} B per invocation",
            per(f.invocations as f64),
            f.records as f64 / f.invocations.max(1) as f64,
            billed_ms(name, f),
            f.local_ms as f64 / f.invocations.max(1) as f64,
            f.line_bytes as f64 / f.records.max(1) as f64,
            (f.emf_bytes + f.batch_bytes) as f64 / f.invocations.max(1) as f64,
        );
    }
    println!("  webhook: {:.0} bytes on the wire", per(run.webhook_bytes as f64));
    for batching in [Batching::Measured, Batching::Full] {
        println!("  cost per million deliveries, {batching:?} batches:");
        let c = costs(run, batching);
        for (what, usd) in &c {
            println!("    {what:<52} ${usd:.3}");
        }
        println!("    {:<52} ${:.3}", "total", c.iter().map(|x| x.1).sum::<f64>());
    }
}

/// The modelled billed duration of one invocation of `name`: the calls of
/// one record in sequence, the endpoint's time for the delivery function,
/// CPU for each record (records of a batch run concurrently).
fn billed_ms(name: &str, f: &FunctionRun) -> f64 {
    let records = f.records.max(1) as f64;
    let chain: f64 = f.calls.iter().map(|(op, n)| *n as f64 / records * call_ms(op)).sum();
    let wait = if name == "DeliveryFunction" { ENDPOINT_MS } else { 0.0 };
    let per_invocation = records / f.invocations.max(1) as f64;
    (chain + wait + CPU_MS_PER_RECORD * per_invocation).ceil()
}

/// Whether a function is triggered by SQS (its batches can fill).
fn sqs_triggered(name: &str, door: Door) -> bool {
    name != "IngestFunction" || door == Door::Queue
}

/// The cost lines per million deliveries.
fn costs(run: &Run, batching: Batching) -> Vec<(String, f64)> {
    let million = 1e6 / run.deliveries as f64;
    let t = &run.tally;
    // Invocations per function under this batching.
    let invocations = |name: &str, f: &FunctionRun| -> f64 {
        match batching {
            Batching::Full if sqs_triggered(name, run.door) => (f.records as f64 / 10.0).max(1.0),
            _ => f.invocations as f64,
        }
    };
    let mut lambda_requests = 0.0;
    let mut gb_s = 0.0;
    let mut log_bytes = 0.0;
    let mut poll_requests = 0.0;
    for (name, f) in &run.functions {
        let inv = invocations(name, f);
        lambda_requests += inv;
        let modelled = FunctionRun {
            invocations: inv.round() as u64,
            ..f.clone()
        };
        gb_s += inv * billed_ms(name, &modelled) / 1000.0 * MEMORY_GB;
        log_bytes += f.line_bytes as f64
            + inv * (PLATFORM_LOG_BYTES + (f.emf_bytes + f.batch_bytes) as f64 / f.invocations.max(1) as f64);
        if sqs_triggered(name, run.door) {
            // Lambda's pollers: one receive and one delete per batch.
            poll_requests += 2.0 * inv;
        }
    }
    let pollers_measured = t
        .by_caller
        .get("testing")
        .map(|ops| {
            ops.iter()
                .filter(|(op, _)| op.as_str() != "sqs:ReceiveMessage(empty)")
                .map(|(_, n)| *n as f64)
                .sum::<f64>()
        })
        .unwrap_or(0.0);
    let polls = match batching {
        Batching::Measured => pollers_measured,
        Batching::Full => poll_requests,
    };
    // The delivery path's own calls and the queue door's producer; not the
    // pollers (counted above) nor a scheduled function (a fixed cost).
    let own_sqs: f64 = t
        .by_caller
        .iter()
        .filter(|(who, _)| run.functions.contains_key(who.as_str()) || who.as_str() == "producer")
        .flat_map(|(_, ops)| ops.iter())
        .filter(|(op, _)| op.starts_with("sqs:"))
        .map(|(_, n)| *n as f64)
        .sum();
    let put_events = t.requests.get("events:PutEvents").copied().unwrap_or(0);
    // PutEvents is billed per entry; ingest puts one entry per event.
    let entries = if put_events > 0 { run.deliveries as f64 } else { 0.0 };
    let http = if run.door == Door::Http {
        run.deliveries as f64
    } else {
        0.0
    };
    vec![
        (
            "API Gateway HTTP API (one POST per event)".into(),
            http * price::HTTP_API_REQUEST * million,
        ),
        (
            format!(
                "Lambda requests ({:.2} per delivery)",
                lambda_requests / run.deliveries as f64
            ),
            lambda_requests * price::LAMBDA_REQUEST * million,
        ),
        (
            "Lambda duration (modelled, 128 MB arm64)".into(),
            gb_s * price::LAMBDA_ARM_GB_S * million,
        ),
        (
            format!(
                "SQS requests ({:.2} per delivery)",
                (own_sqs + polls) / run.deliveries as f64
            ),
            (own_sqs + polls) * price::SQS_REQUEST * million,
        ),
        (
            format!(
                "DynamoDB writes ({:.1} WRU per delivery)",
                t.write_units / run.deliveries as f64
            ),
            t.write_units * price::DYNAMODB_WRU * million,
        ),
        (
            format!(
                "DynamoDB reads ({:.1} RRU per delivery)",
                t.read_units / run.deliveries as f64
            ),
            t.read_units * price::DYNAMODB_RRU * million,
        ),
        (
            "EventBridge events".into(),
            entries * price::EVENTBRIDGE_EVENT * million,
        ),
        (
            format!(
                "CloudWatch Logs ({:.0} B per delivery)",
                log_bytes / run.deliveries as f64
            ),
            log_bytes / 1e9 * price::LOGS_GB * million,
        ),
        (
            "data transfer out (the webhooks)".into(),
            run.webhook_bytes as f64 / 1e9 * price::EGRESS_GB * million,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(door: Door) -> Run {
        let mut tally = Tally::default();
        let mut calls = BTreeMap::new();
        calls.insert("sqs:SendMessageBatch".to_string(), 1_000);
        calls.insert("dynamodb:PutItem".to_string(), 2_000);
        tally.by_caller.insert("DeliveryFunction".into(), calls.clone());
        let mut polls = BTreeMap::new();
        polls.insert("sqs:ReceiveMessage".to_string(), 500);
        polls.insert("sqs:DeleteMessageBatch".to_string(), 500);
        polls.insert("sqs:ReceiveMessage(empty)".to_string(), 9_000);
        tally.by_caller.insert("testing".into(), polls);
        tally.requests.insert("events:PutEvents".into(), 1_000);
        tally.write_units = 3_000.0;
        tally.read_units = 500.0;
        let mut functions = BTreeMap::new();
        functions.insert(
            "DeliveryFunction".to_string(),
            FunctionRun {
                invocations: 500,
                records: 1_000,
                local_ms: 0,
                calls,
                emf_bytes: 500 * 300,
                batch_bytes: 500 * 200,
                line_bytes: 1_000 * 200,
            },
        );
        Run {
            door,
            deliveries: 1_000,
            tally,
            functions,
            webhook_bytes: 1_000_000,
        }
    }

    fn line(c: &[(String, f64)], k: &str) -> f64 {
        c.iter().find(|(name, _)| name.starts_with(k)).unwrap().1
    }

    #[test]
    fn provisioning_prices_a_unit_at_the_hourly_rate_over_the_used_hour() {
        let r = run(Door::Queue);
        // 3 WRU and 0.5 RRU per delivery; a WCU-hour at 70 % serves 2 520
        // writes: $0.2579 per million against $0.625 on demand.
        let want = 3.0 * (0.625 - 0.00065 / 2520.0 * 1e6) + 0.5 * (0.125 - 0.00013 / 2520.0 * 1e6);
        assert!(
            (provisioned_saving(&r) - want).abs() < 1e-9,
            "{}",
            provisioned_saving(&r)
        );
    }

    #[test]
    fn costs_add_up_from_the_counts() {
        let r = run(Door::Http);
        let c = costs(&r, Batching::Measured);
        let near = |k: &str, want: f64| {
            let got = line(&c, k);
            assert!((got - want).abs() < 1e-6, "{k}: {got} vs {want}");
        };
        near("API Gateway", 1.00);
        // 500 invocations for 1000 deliveries.
        near("Lambda requests", 0.10);
        // Per invocation: (1 × 8 + 2 × 5) ms of calls + 100 ms + 2 ms of CPU
        // = 120 ms; 500 × 0.12 s × 0.125 GB × $0.0000133334 × 1000.
        near(
            "Lambda duration",
            500.0 * 0.120 * 0.125 * price::LAMBDA_ARM_GB_S * 1000.0,
        );
        // Own sends 1000 + the pollers' 1000; empty polls are not per delivery.
        near("SQS requests", 0.80);
        near("DynamoDB writes", 1.875);
        near("DynamoDB reads", 0.0625);
        near("EventBridge", 1.00);
        // Lines 200 KB + per invocation (400 + 300 + 200) × 500.
        near("CloudWatch Logs", (200_000.0 + 450_000.0) / 1e9 * 0.5 * 1000.0);
        near("data transfer", 0.09);
    }

    #[test]
    fn full_batches_cut_the_per_invocation_costs_only() {
        let r = run(Door::Queue);
        let (m, f) = (costs(&r, Batching::Measured), costs(&r, Batching::Full));
        assert_eq!(line(&f, "API Gateway"), 0.0);
        // 100 invocations of 10 instead of 500 of 2.
        assert!((line(&f, "Lambda requests") - 0.02).abs() < 1e-9);
        // Pollers: 2 per invocation → 200 instead of 1000; own sends stay.
        assert!((line(&f, "SQS requests") - (1_000.0 + 200.0) * 0.4 / 1000.0).abs() < 1e-9);
        assert_eq!(line(&f, "DynamoDB writes"), line(&m, "DynamoDB writes"));
        assert!(line(&f, "CloudWatch Logs") < line(&m, "CloudWatch Logs"));
    }

    #[test]
    fn log_lines_are_split_into_metrics_batch_lines_and_the_rest() {
        let batch = r#"{"fields":{"message":"delivered","count":2,"event_ids":"evt_1 evt_2","delivery_ids":"d1 d2"}}"#;
        let text = format!("{{\"_aws\":{{}}}}\n{{\"level\":\"INFO\"}}\n\n{batch}\n");
        let ids = ("evt_1 evt_2".len() + "d1 d2".len()) as u64;
        assert_eq!(
            split_log_bytes(text.as_bytes()),
            LogBytes {
                emf: 12,
                batch: batch.len() as u64 + 1 - ids,
                other: 17 + ids,
            }
        );
    }

    #[test]
    fn the_billed_duration_model_runs_a_batch_concurrently() {
        let f = FunctionRun {
            invocations: 10,
            records: 100,
            calls: [
                ("dynamodb:GetItem".to_string(), 200),
                ("sqs:SendMessageBatch".to_string(), 100),
            ]
            .into(),
            ..Default::default()
        };
        // Per record 2 × 5 + 8 = 18 ms, + 10 records × 1 ms of CPU.
        assert_eq!(billed_ms("FanoutFunction", &f), 28.0);
        assert_eq!(billed_ms("DeliveryFunction", &f), 128.0);
    }

    #[test]
    fn bench_events_are_about_1_kb_and_differ() {
        let sizes: Vec<usize> = (0..50).map(|i| event(0, i, None).to_string().len()).collect();
        assert!(sizes.iter().all(|n| (850..=1150).contains(n)), "{sizes:?}");
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((900..=1050).contains(&mean), "{mean}");
        assert_ne!(order(1), order(2));
        assert_eq!(order(7), order(7), "the same seed, the same order");
    }
}
