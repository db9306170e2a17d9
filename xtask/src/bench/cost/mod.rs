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

mod load;
mod model;

use crate::bench::stats::mib;
use crate::local::{self, Args};
use anyhow::{Context as _, Result, bail};
use load::{event, log_bytes_since, log_offsets, post_events, queue_events, quiesce};
use model::{ENDPOINT_MS, PROVISIONED_UTILISATION, costs, provisioned_saving, report};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_local::aws_proxy::Tally;
use switchyard_local::receiver::{Receiver, Reply};

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
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
            other => bail!("unknown option {other} (--n N, --no-build, --release)"),
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

async fn measure(stack: &local::Stack, n: usize) -> Result<()> {
    let proxy = stack
        .aws_proxy
        .as_ref()
        .context("the stack runs without the AWS proxy")?;
    let base = stack.runner.api_url(None).context("the template serves no HTTP API")?;
    let admin = stack.admin_key.as_ref().context("the template has no AdminKeySha256")?;
    let ingest_queue = stack
        .runner
        .plan()
        .reference("IngestQueue")
        .context("the template has no IngestQueue")?
        .to_string();
    let rx = Receiver::start(|_| Reply::status(200).after(Duration::from_millis(ENDPOINT_MS as u64))).await?;
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
            bail!("{label}: {} of {n} webhooks arrived", got.len() - received_before);
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
            println!("  {:<18} {} MiB", f.logical_id, mib(kib));
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
