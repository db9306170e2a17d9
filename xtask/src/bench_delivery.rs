//! `cargo xtask bench-delivery`: the delivery engine against the raw HTTP
//! client, in one process, on loopback.
//!
//! - **Throughput**: the delivery handler's real path (SQS batch parsing,
//!   the `Deliverer`'s decisions, signing, the guarded hyper-util sender,
//!   attempt recording through the store traits, the batch response)
//!   pushing N deliveries of a 1 KB event to a receiver on 127.0.0.1, with
//!   C batches of 10 in flight (as C concurrent Lambda invocations would),
//!   against a plain reqwest loop posting the same bodies and headers with
//!   the same number of requests in flight (10·C). The store is in memory
//!   (`switchyard_core::memory`): this is the engine's own overhead. The runs
//!   alternate, three of each; the medians are compared. Each run also
//!   reports the process's CPU time per delivery and its CPU utilisation
//!   (CPU time over wall time × 2 cores): on loopback both sides are
//!   CPU-bound, so the ratio is the ratio of CPU per delivery. Why 10·C
//!   requests and not batches of ten for the raw loop too: `--diagnose` also
//!   runs the raw loop in the engine's shape (groups of ten, each waiting for
//!   its slowest, C groups at once), which runs as fast as the flat raw loop
//!   (the barrier of a batch costs nothing measurable when the CPU is the
//!   limit), so the flat loop is the fairer, and stronger, reference. It
//!   also runs the engine's `HttpSender` alone and a raw loop on hyper-util's
//!   client (the client under `HttpSender`, without reqwest's layers): the
//!   engine's own share of its CPU is its distance from those.
//! - **Against moto** (`--only moto`): the same engine with the local
//!   stack's stores (the DynamoDB and SQS adapters, moto on its own port),
//!   N/10 deliveries (at least 100), against the raw loop: what the local
//!   stack can do, bounded by moto.
//! - **CPU per delivery without the network**: the same handler with a
//!   sender that answers 200 at once, one thread, 20 000 deliveries: wall
//!   time and the process's CPU time per delivery.
//! - **Slow-endpoint isolation**: ten endpoints, one of which never answers
//!   (the 2 s request timeout cuts it off; its circuit opens after 5
//!   failures), against ten healthy ones, measured two ways:
//!   - as the template deploys it (no MaximumConcurrency on the deliveries
//!     queue's event source mapping): tasks arrive at a steady rate (an open
//!     loop, `--load` × the capped all-healthy throughput, for `--seconds`),
//!     a batch of ten is dispatched when it fills (or when the 1 s batching
//!     window ends) and is its own concurrent invocation, up to Lambda's
//!     default account concurrency of 1000; each run's HTTP pool is warmed
//!     first (warm environments have their connections open). The figure is
//!     the healthy deliveries' end-to-end latency, from the task's arrival
//!     to its 2xx recorded in the delivery log, and their throughput
//!     (delivered over the time from the first arrival to the last 2xx);
//!     three runs of each, alternating, medians compared;
//!   - with MaximumConcurrency capped at C batches (a closed loop, as many
//!     tasks as C batches can take), where a batch waits for its stuck
//!     attempt until the circuit opens: the healthy throughput and p99
//!     attempt latency.

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::delivery::Deliverer;
use switchyard_core::error::PortError;
use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::metrics::Recorder;
use switchyard_core::model::{
    AttemptRecord, DeliveryRecord, DeliveryState, SendError, WebhookRequest, WebhookResponse,
};
use switchyard_core::ports::{DeliveryLog, WebhookSender};
use switchyard_core::{DeliveryId, DeliveryTask, Endpoint, EndpointUrl, EventId, EventType, TenantId};
use switchyard_delivery::{Delivery, HttpSender};
use switchyard_local::receiver::{Receiver, Reply};

type Engine<H, L = Memory> = Delivery<Memory, H, L, Memory, Memory, Memory>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

struct Args {
    n: usize,
    concurrency: usize,
    diagnose: bool,
    /// The open-loop isolation runs' arrival rate, as a share of the capped
    /// all-healthy throughput, and their length.
    load: f64,
    seconds: f64,
    /// The invocations that may run at once without MaximumConcurrency.
    account_concurrency: usize,
    /// Which parts to run (all when empty).
    only: Vec<String>,
}

pub fn run(args: &[String]) -> Result<(), String> {
    if cfg!(debug_assertions) {
        // Numbers from a debug build mean nothing: run this again, built
        // with the release profile the Lambda binaries use.
        eprintln!(
            "bench-delivery: building xtask with the release profile (fat LTO; a few minutes the first time) ..."
        );
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(switchyard_local::workspace_root())
            .args([
                "run",
                "--quiet",
                "--release",
                "--locked",
                "-p",
                "xtask",
                "--",
                "bench-delivery",
            ])
            .args(args)
            .status()
            .map_err(|e| format!("running cargo: {e}"))?;
        return if status.success() {
            Ok(())
        } else {
            Err(format!("the release run failed ({status})"))
        };
    }
    let mut a = Args {
        n: 4000,
        concurrency: 8,
        diagnose: false,
        // Not higher: on this 2-core machine, with the receiver in the same
        // process, an uncapped open loop at 50-75 % of the capped throughput
        // is not stable even with every endpoint healthy (a stall makes the
        // engine open new connections faster than the receiver accepts them:
        // listen-queue overflows, SYN retransmissions, timeouts, circuits
        // opening on healthy endpoints). `--diagnose` prints the counters.
        load: 0.3,
        seconds: 4.0,
        account_concurrency: ACCOUNT_CONCURRENCY,
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = || -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{arg} takes a number"))
        };
        match arg.as_str() {
            "--n" => a.n = num()?.max(10),
            "--concurrency" => a.concurrency = num()?.max(1),
            "--diagnose" => a.diagnose = true,
            "--account-concurrency" => a.account_concurrency = num()?.max(1),
            "--load" => {
                a.load = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| (0.05..=2.0).contains(v))
                    .ok_or("--load takes a share of the capped throughput, 0.05 to 2")?
            }
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| (0.5..=60.0).contains(v))
                    .ok_or("--seconds takes 0.5 to 60")?
            }
            "--only" => a.only.push(
                it.next()
                    .cloned()
                    .ok_or("--only takes throughput, cpu, isolation or moto")?,
            ),
            other => {
                return Err(format!(
                    "unknown option {other} (--n N, --concurrency C, --only throughput|cpu|isolation|moto, --diagnose, --load L, --seconds S, --account-concurrency N)"
                ));
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CORES)
        .enable_all()
        .build()
        .map_err(err)?;
    let part = |p: &str| a.only.is_empty() || a.only.iter().any(|o| o == p);
    if part("throughput") {
        rt.block_on(throughput(&a))?;
    }
    if part("cpu") {
        cpu_per_delivery()?;
    }
    if part("isolation") {
        rt.block_on(isolation(&a))?;
    }
    if part("moto") {
        rt.block_on(against_moto(&a))?;
    }
    Ok(())
}

/// The same engine with the stores the local stack uses: the DynamoDB and
/// SQS adapters against moto (a server of its own), N/10 deliveries (at
/// least 100), against raw reqwest posting the same requests.
async fn against_moto(a: &Args) -> Result<(), String> {
    let root = switchyard_local::workspace_root();
    let venv = switchyard_local::venv::ensure(&root).map_err(err)?;
    let moto = switchyard_local::moto::Moto::start(&root, &venv).map_err(err)?;
    let sdk = switchyard_local::sdk_config(&moto.endpoint).await;
    let res = switchyard_local::resources::Resources::create(
        &sdk,
        &switchyard_local::resources::unique_prefix("bench"),
        switchyard_local::resources::QueueOptions::default(),
    )
    .await
    .map_err(err)?;
    let registry = switchyard_aws::dynamo::DynamoRegistry::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        &res.registry_table,
    );
    registry.put_tenant(&tenant(), "bench").await.map_err(err)?;
    let rx = Receiver::start(|_| Reply::status(204)).await.map_err(err)?;
    let scratch: Memory = Arc::new(MemoryStore::default());
    let eps = endpoints(&scratch, &[rx.url("/hook")])?;
    registry.put_endpoint(&eps[0]).await.map_err(err)?;
    let timeout = Duration::from_secs(15);
    let settings = switchyard_delivery::Settings {
        registry_table: res.registry_table.clone(),
        deliveries_table: res.deliveries_table.clone(),
        deliveries_queue_url: res.deliveries_queue_url.clone(),
        deliveries_dlq_url: res.deliveries_dlq_url.clone(),
        fanout_queue_url: res.fanout_queue_url.clone(),
        queue_limits: switchyard_core::requeue::QueueLimits::default(),
        request_timeout: timeout,
        retention_days: 30,
        config: switchyard_delivery::deployed_config(timeout, switchyard_local::local_ssrf_policy()),
    };
    let n = (a.n / 10).max(100);
    let ts = tasks(n, &eps)?;
    let now = switchyard_core::time_util::now_utc();
    let requests: Vec<RawRequest> = ts
        .iter()
        .map(|t| RawRequest::from(&switchyard_core::delivery::build_request(t, &eps[0], now)))
        .collect();
    let delivery = Arc::new(switchyard_delivery::AwsDelivery::new(&sdk, &settings).map_err(err)?);
    let engine = timed(async {
        Ok(drive_with(
            move |e| {
                let d = delivery.clone();
                async move {
                    d.handle(e).await;
                }
            },
            batches(&ts),
            a.concurrency,
        )
        .await)
    })
    .await?;
    let got = rx.received().len();
    if got < n {
        return Err(format!("against moto the engine delivered {got} of {n}"));
    }
    let raw = timed(raw(requests, a.concurrency * 10)).await?;
    let (e, r) = (engine.rate(n), raw.rate(n));
    println!(
        "against moto (the local stack's DynamoDB and SQS; {n} deliveries of 1 KB, {} batches of 10 in flight): engine {e:.0}/s, raw reqwest {r:.0}/s, ratio {:.3}: each delivery reads the delivery and writes it (a first attempt travels in it), and each batch reads its endpoints once, and moto serves about 100 requests a second",
        a.concurrency,
        e / r
    );
    Ok(())
}

fn tenant() -> TenantId {
    TenantId::parse("bench").expect("a valid tenant id")
}

/// A 1 KB event body.
fn payload(i: usize) -> String {
    let blob = "x".repeat(880);
    format!(
        r#"{{"id":"evt_{i:08}","type":"bench.event","version":"1.0","timestamp":"2026-11-29T12:00:00.000Z","source":"bench","data":{{"n":{i},"blob":"{blob}"}}}}"#
    )
}

fn tasks(n: usize, endpoints: &[Endpoint]) -> Result<Vec<DeliveryTask>, String> {
    (0..n)
        .map(|i| {
            let ep = &endpoints[i % endpoints.len()];
            let event = EventId::parse(format!("evt_{i:08}")).map_err(err)?;
            Ok(DeliveryTask {
                kind: Default::default(),
                v: switchyard_core::wire::DELIVERY_TASK_V,
                delivery_id: DeliveryId::derive(&tenant(), &event, &ep.id),
                tenant_id: tenant(),
                endpoint_id: ep.id.clone(),
                event_id: event.clone(),
                event_type: EventType::parse("bench.event").map_err(err)?,
                payload: payload(i),
                created_at: switchyard_core::time_util::now_utc(),
                dlq_reason: None,
                manual_request: None,
                generation: 0,
                operational: false,
                webhook_id: Some(switchyard_core::ids::webhook_id(&tenant(), &event)),
            })
        })
        .collect()
}

/// The SQS events Lambda would pass: batches of ten.
fn batches(tasks: &[DeliveryTask]) -> Vec<aws_lambda_events::event::sqs::SqsEvent> {
    tasks
        .chunks(10)
        .enumerate()
        .map(|(b, chunk)| {
            let mut e = aws_lambda_events::event::sqs::SqsEvent::default();
            e.records = chunk
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
                    m.message_id = Some(format!("m-{b}-{i}"));
                    m.receipt_handle = Some(format!("r-{b}-{i}"));
                    m.body = serde_json::to_string(t).ok();
                    m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
                    m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:bench-deliveries".into());
                    m
                })
                .collect();
            e
        })
        .collect()
}

fn endpoints(store: &MemoryStore, urls: &[String]) -> Result<Vec<Endpoint>, String> {
    urls.iter()
        .map(|u| {
            let ep = Endpoint::new(
                tenant(),
                EndpointUrl::parse(u).map_err(err)?,
                vec![],
                switchyard_core::time_util::now_utc(),
            );
            store.put_endpoint(ep.clone());
            Ok(ep)
        })
        .collect()
}

/// The engine over the in-memory store, configured as the function deploys
/// it with this request timeout (its circuit watches for stalls).
fn engine<H: WebhookSender, L: DeliveryLog>(mem: &Memory, sender: H, log: L, timeout: Duration) -> Engine<H, L> {
    Delivery {
        deliverer: Deliverer {
            registry: mem.clone(),
            sender,
            log,
            dead_letters: mem.clone(),
            ops: mem.clone(),
            config: switchyard_delivery::deployed_config(timeout, switchyard_local::local_ssrf_policy()),
        },
        queue: mem.clone(),
        queue_limits: switchyard_core::requeue::QueueLimits::default(),
        metrics: Recorder::with_emit("bench", "delivery", Arc::new(|_: &str| {})),
    }
}

/// Runs every batch through the engine, `concurrency` at a time.
async fn drive<H: WebhookSender + Send + Sync + 'static>(
    engine: Arc<Engine<H>>,
    events: Vec<aws_lambda_events::event::sqs::SqsEvent>,
    concurrency: usize,
) -> Duration {
    drive_with(
        move |e| {
            let engine = engine.clone();
            async move {
                engine.handle(e).await;
            }
        },
        events,
        concurrency,
    )
    .await
}

/// Runs every batch through `handle`, `concurrency` at a time, as that many
/// Lambda invocations would.
async fn drive_with<F, Fut>(
    handle: F,
    events: Vec<aws_lambda_events::event::sqs::SqsEvent>,
    concurrency: usize,
) -> Duration
where
    F: Fn(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    bounded(events, concurrency, handle).await.0
}

/// Runs `f` on every item, at most `in_flight` at once, each on its own
/// task; the time from the first start to the last end, and the results.
async fn bounded<T, R, F, Fut>(items: impl IntoIterator<Item = T>, in_flight: usize, f: F) -> (Duration, Vec<R>)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for item in items {
        let Ok(p) = permits.clone().acquire_owned().await else {
            break;
        };
        let run = f(item);
        set.spawn(async move {
            let _p = p;
            run.await
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    (started.elapsed(), results)
}

/// The raw loop's client: plain reqwest, the engine's timeout.
fn raw_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(err)
}

/// The same requests with a plain reqwest client, `in_flight` at a time.
async fn raw(requests: Vec<RawRequest>, in_flight: usize) -> Result<Duration, String> {
    let client = raw_client()?;
    let (took, statuses) = bounded(requests, in_flight, |r| {
        let client = client.clone();
        async move { post(&client, r).await }
    })
    .await;
    if !statuses.iter().any(|s| (200..300).contains(s)) {
        return Err("the raw client delivered nothing".into());
    }
    Ok(took)
}

/// A request for the raw client: the engine's request with owned header
/// text, built before the clock starts.
struct RawRequest {
    url: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl From<&WebhookRequest> for RawRequest {
    fn from(r: &WebhookRequest) -> Self {
        Self {
            url: r.url.url().to_string(),
            headers: r.headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: r.body.clone(),
        }
    }
}

async fn post(client: &reqwest::Client, r: RawRequest) -> u16 {
    let mut req = client.post(r.url.as_str()).body(r.body);
    for (k, v) in r.headers {
        req = req.header(k, v);
    }
    req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Diagnosis: the raw client in the engine's shape: groups of ten posted
/// together, each group waiting for its slowest, `groups` groups at once.
async fn raw_batched(requests: Vec<RawRequest>, groups: usize) -> Result<Duration, String> {
    let client = raw_client()?;
    let mut it = requests.into_iter().peekable();
    let mut batches = Vec::new();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(10).collect::<Vec<RawRequest>>());
    }
    let (took, _) = bounded(batches, groups, |group| {
        let client = client.clone();
        async move {
            let mut each = tokio::task::JoinSet::new();
            for r in group {
                let client = client.clone();
                each.spawn(async move { post(&client, r).await });
            }
            while each.join_next().await.is_some() {}
        }
    })
    .await;
    Ok(took)
}

/// Diagnosis: the same requests with hyper-util's pooling client, the one
/// under the engine's `HttpSender`, without reqwest's layers (the leaner
/// reference: how much of the engine's CPU is its own work).
async fn raw_hyper(requests: Vec<RawRequest>, in_flight: usize) -> Result<Duration, String> {
    use hyper_util::client::legacy::Client;
    let client: Client<_, http_body_util::Full<bytes::Bytes>> = Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let (took, _) = bounded(requests, in_flight, |r| {
        let client = client.clone();
        async move {
            let mut b = hyper::Request::post(r.url.as_str());
            for (k, v) in &r.headers {
                b = b.header(k.as_str(), v.as_str());
            }
            let Ok(req) = b.body(http_body_util::Full::new(bytes::Bytes::from(r.body))) else {
                return 0;
            };
            match tokio::time::timeout(Duration::from_secs(15), client.request(req)).await {
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                    status
                }
                _ => 0,
            }
        }
    })
    .await;
    Ok(took)
}

/// Diagnosis: the engine's sender alone (no store, no decisions), the raw
/// loop's shape.
async fn sender_only(requests: Vec<WebhookRequest>, in_flight: usize) -> Result<Duration, String> {
    let sender =
        Arc::new(HttpSender::new(Duration::from_secs(15), switchyard_local::local_ssrf_policy()).map_err(err)?);
    let (took, _) = bounded(requests, in_flight, |r| {
        let sender = sender.clone();
        async move { sender.send(&r).await.map(|r| r.status).unwrap_or(0) }
    })
    .await;
    Ok(took)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `f` in wall and process CPU time.
async fn timed<F: std::future::Future<Output = Result<Duration, String>>>(f: F) -> Result<Run, String> {
    let cpu0 = cpu_time();
    let wall = f.await?;
    Ok(Run {
        wall,
        cpu: cpu_time().saturating_sub(cpu0),
    })
}

fn describe(name: &str, r: &Run, n: usize) -> String {
    format!(
        "{name} {:.0}/s ({:.1} µs CPU per delivery, CPU {:.0} %)",
        r.rate(n),
        r.cpu_us_per(n),
        100.0 * r.utilisation(CORES)
    )
}

/// The runtime's worker threads.
const CORES: usize = 2;

async fn throughput(a: &Args) -> Result<(), String> {
    let rx = Receiver::start(|_| Reply::status(204)).await.map_err(err)?;
    let (mut engine_runs, mut raw_runs) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = endpoints(&mem, &[rx.url("/hook")])?;
        let ts = tasks(a.n, &eps)?;
        let now = switchyard_core::time_util::now_utc();
        let requests: Vec<WebhookRequest> = ts
            .iter()
            .map(|t| switchyard_core::delivery::build_request(t, &eps[0], now))
            .collect();
        let e = Arc::new(engine(
            &mem,
            HttpSender::new(Duration::from_secs(15), switchyard_local::local_ssrf_policy()).map_err(err)?,
            mem.clone(),
            Duration::from_secs(15),
        ));
        let events = batches(&ts);
        let run = timed(async { Ok(drive(e, events, a.concurrency).await) }).await?;
        let delivered = mem
            .records
            .lock()
            .map(|r| r.values().filter(|d| d.state == DeliveryState::Succeeded).count())
            .unwrap_or(0);
        if delivered != a.n {
            return Err(format!("the engine delivered {delivered} of {}", a.n));
        }
        engine_runs.push(run);
        let run = timed(raw(requests.iter().map(RawRequest::from).collect(), a.concurrency * 10)).await?;
        raw_runs.push(run);
        println!(
            "round {}: {}; {}",
            round + 1,
            describe("engine", &engine_runs[round], a.n),
            describe("raw reqwest", &raw_runs[round], a.n),
        );
        if a.diagnose {
            let b = timed(raw_batched(
                requests.iter().map(RawRequest::from).collect(),
                a.concurrency,
            ))
            .await?;
            let h = timed(raw_hyper(
                requests.iter().map(RawRequest::from).collect(),
                a.concurrency * 10,
            ))
            .await?;
            let s = timed(sender_only(requests, a.concurrency * 10)).await?;
            println!(
                "  diagnosis: {}; {}; {}",
                describe("raw in batches of 10", &b, a.n),
                describe("HttpSender alone", &s, a.n),
                describe("raw hyper-util", &h, a.n)
            );
        }
    }
    let e = median(engine_runs.iter().map(|r| r.rate(a.n)).collect());
    let r = median(raw_runs.iter().map(|r| r.rate(a.n)).collect());
    println!(
        "throughput ({} deliveries of 1 KB, {} batches of 10 in flight vs {} requests): engine {e:.0}/s, raw {r:.0}/s, ratio {:.2} (target >= 0.90)",
        a.n,
        a.concurrency,
        a.concurrency * 10,
        e / r
    );
    Ok(())
}

/// Answers 200 at once: the engine's own work, no network.
struct Instant200;

impl WebhookSender for Instant200 {
    async fn send(&self, _: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        Ok(WebhookResponse {
            status: 200,
            body: String::new(),
            retry_after: None,
        })
    }
}

/// The process's CPU time: the sum of every thread's run time from
/// `/proc/self/task/*/schedstat` (nanoseconds; the runtime's threads live
/// through the whole bench), or user + system time from `/proc/self/stat`
/// (clock ticks of 10 ms) where schedstat is not available.
fn cpu_time() -> Duration {
    let from_schedstat = || -> Option<Duration> {
        let mut ns = 0u64;
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(Duration::from_nanos(ns))
    };
    if let Some(d) = from_schedstat() {
        return d;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime ...
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Wall time and the process's CPU time over one run.
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    cpu: Duration,
}

impl Run {
    fn rate(&self, n: usize) -> f64 {
        n as f64 / self.wall.as_secs_f64()
    }
    fn cpu_us_per(&self, n: usize) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / n as f64
    }
    /// CPU time over the wall time of every core the runtime has.
    fn utilisation(&self, cores: usize) -> f64 {
        self.cpu.as_secs_f64() / (self.wall.as_secs_f64() * cores as f64)
    }
}

fn cpu_per_delivery() -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(err)?;
    let n = 20_000;
    let mem: Memory = Arc::new(MemoryStore::default());
    let eps = endpoints(&mem, &["http://127.0.0.1:9/never".to_string()])?;
    let events = batches(&tasks(n, &eps)?);
    let e = engine(&mem, Instant200, mem.clone(), Duration::from_secs(15));
    let (cpu0, t0) = (cpu_time(), Instant::now());
    rt.block_on(async {
        for ev in events {
            e.handle(ev).await;
        }
    });
    let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(cpu0));
    println!(
        "cpu per delivery without the network (parse, decide, sign, build, record in memory; {n} deliveries of 1 KB, one thread): {:.1} µs wall, {:.1} µs CPU (target <= 50)",
        wall.as_secs_f64() * 1e6 / n as f64,
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    Ok(())
}

fn p99(v: Vec<u64>) -> u64 {
    percentile(v, 99)
}

/// The nearest-rank `percent`th percentile; 0 for no values.
fn percentile<T: Ord + Copy + Default>(mut v: Vec<T>, percent: usize) -> T {
    v.sort_unstable();
    crate::bench::nearest_rank(&v, percent)
}

/// The delivery log in memory, noting the instant each successful attempt
/// was recorded (the end of a delivery's latency).
#[derive(Clone)]
struct Stamped {
    mem: Memory,
    succeeded: Arc<std::sync::Mutex<Vec<(DeliveryId, Instant)>>>,
}

impl Stamped {
    fn new(mem: &Memory) -> Self {
        Self {
            mem: mem.clone(),
            succeeded: Arc::default(),
        }
    }
}

impl DeliveryLog for Stamped {
    async fn delivery(&self, tenant: &TenantId, id: &DeliveryId) -> Result<Option<DeliveryRecord>, PortError> {
        self.mem.delivery(tenant, id).await
    }
    async fn record_attempt(&self, d: &DeliveryRecord, a: &AttemptRecord) -> Result<(), PortError> {
        self.mem.record_attempt(d, a).await?;
        if a.succeeded {
            let at = Instant::now();
            if let Ok(mut v) = self.succeeded.lock() {
                v.push((a.delivery_id.clone(), at));
            }
        }
        Ok(())
    }
    async fn record_delivery(&self, d: &DeliveryRecord) -> Result<(), PortError> {
        self.mem.record_delivery(d).await
    }
}

/// When the `i`th task becomes available, from the start, at `rate` per second.
fn arrival(i: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// When a batch of `len` tasks from the `first` is handed to an invocation:
/// when its tenth task arrives, or when the batching window opened by its
/// first task ends, whichever comes first (as the SQS event source mapping
/// does); a batch that never fills (the last one) waits for the window.
fn dispatch_at(first: usize, len: usize, rate: f64, window: Duration) -> Duration {
    let window_ends = arrival(first, rate) + window;
    if len < 10 {
        return window_ends;
    }
    arrival(first + 9, rate).min(window_ends)
}

/// Lambda without MaximumConcurrency: the tasks arrive at `rate` per second
/// whatever the engine does (an open loop); each batch of ten is dispatched
/// as it fills and is its own concurrent invocation, waiting for no other,
/// up to `limit` invocations at once (the account's concurrency; a batch
/// over it waits, and its wait counts in its tasks' latency).
/// Returns the start (task `i` arrives at `start + arrival(i, rate)`).
async fn open_loop<H: WebhookSender + Send + Sync + 'static>(
    engine: Arc<Engine<H, Stamped>>,
    tasks: &[DeliveryTask],
    rate: f64,
    window: Duration,
    limit: usize,
) -> Instant {
    let events = batches(tasks);
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let start = Instant::now() + Duration::from_millis(10);
    let mut set = tokio::task::JoinSet::new();
    for (k, e) in events.into_iter().enumerate() {
        let at = dispatch_at(k * 10, e.records.len(), rate, window);
        tokio::time::sleep_until((start + at).into()).await;
        let Ok(p) = permits.clone().acquire_owned().await else {
            break;
        };
        let engine = engine.clone();
        set.spawn(async move {
            let _p = p;
            engine.handle(e).await
        });
    }
    while set.join_next().await.is_some() {}
    start
}

/// Opens `n` connections to `url` in the sender's pool (warm Lambda
/// environments have theirs open), with concurrent requests.
async fn warm(sender: &HttpSender, url: &str, n: usize) -> Result<(), String> {
    let request = WebhookRequest {
        url: EndpointUrl::parse(url).map_err(err)?,
        headers: Vec::new(),
        body: String::new(),
    };
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (sender, request) = (sender.clone(), request.clone());
        set.spawn(async move { sender.send(&request).await.map(|r| r.status) });
    }
    while let Some(r) = set.join_next().await {
        if !matches!(r, Ok(Ok(s)) if (200..300).contains(&s)) {
            return Err(format!("warming the pool: {r:?}"));
        }
    }
    Ok(())
}

/// Ten endpoints on the healthy receiver, or nine and the stuck one last.
fn ten_endpoints(mem: &Memory, healthy: &Receiver, stuck: Option<&Receiver>) -> Result<Vec<Endpoint>, String> {
    let mut urls: Vec<String> = (0..9).map(|i| healthy.url(&format!("/h{i}"))).collect();
    urls.push(match stuck {
        Some(s) => s.url("/stuck"),
        None => healthy.url("/h9"),
    });
    endpoints(mem, &urls)
}

/// The deliveries to the first nine endpoints (healthy in both runs).
fn healthy_ids(ts: &[DeliveryTask], eps: &[Endpoint]) -> std::collections::HashMap<DeliveryId, usize> {
    ts.iter()
        .enumerate()
        .filter(|(_, t)| eps[..9].iter().any(|e| e.id == t.endpoint_id))
        .map(|(i, t)| (t.delivery_id.clone(), i))
        .collect()
}

/// The request timeout of the isolation runs.
const ISOLATION_TIMEOUT: Duration = Duration::from_secs(2);
/// Open-loop runs of each kind.
const ROUNDS: usize = 3;
/// Lambda's default concurrency limit per account and region.
const ACCOUNT_CONCURRENCY: usize = 1000;
/// Connections to the healthy receiver opened before an open-loop run.
const WARM_CONNECTIONS: usize = 200;
/// The template's MaximumBatchingWindowInSeconds.
const BATCHING_WINDOW: Duration = Duration::from_secs(1);

fn label(with_stuck: bool) -> &'static str {
    if with_stuck {
        "1 of 10 endpoints never answers"
    } else {
        "all 10 healthy"
    }
}

async fn isolation(a: &Args) -> Result<(), String> {
    let healthy = Receiver::start(|_| Reply::status(204)).await.map_err(err)?;
    let stuck = Receiver::start(|_| Reply::status(200).after(Duration::from_secs(120)))
        .await
        .map_err(err)?;
    let sender = || HttpSender::new(ISOLATION_TIMEOUT, switchyard_local::local_ssrf_policy()).map_err(err);

    // With MaximumConcurrency = C: C batches in flight at most, as many
    // tasks as they can take (a closed loop).
    let mut capped = Vec::new();
    for with_stuck in [false, true] {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = ten_endpoints(&mem, &healthy, with_stuck.then_some(&stuck))?;
        let e = Arc::new(engine(&mem, sender()?, mem.clone(), ISOLATION_TIMEOUT));
        let ts = tasks(a.n, &eps)?;
        let wanted = healthy_ids(&ts, &eps);
        let took = drive(e, batches(&ts), a.concurrency).await;
        let attempts = mem.attempts.lock().map(|a| a.clone()).unwrap_or_default();
        let ok: Vec<u64> = attempts
            .iter()
            .filter(|a| a.succeeded && wanted.contains_key(&a.delivery_id))
            .map(|a| a.duration_ms)
            .collect();
        capped.push((ok.len() as f64 / took.as_secs_f64(), ok.len(), took, p99(ok)));
    }
    let capped_rate = capped[0].0;

    // Without it: an open loop at a steady rate below the capped capacity.
    let rate = (capped_rate * a.load).max(100.0);
    let n = ((rate * a.seconds) as usize / 10 * 10).max(10);
    // Alternating, ROUNDS of each; the medians are compared.
    let mut open: [Vec<(f64, Duration)>; 2] = [Vec::new(), Vec::new()];
    for with_stuck in (0..ROUNDS).flat_map(|_| [false, true]) {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = ten_endpoints(&mem, &healthy, with_stuck.then_some(&stuck))?;
        let log = Stamped::new(&mem);
        let http = sender()?;
        warm(&http, &healthy.url("/warm"), WARM_CONNECTIONS).await?;
        let e = Arc::new(engine(&mem, http, log.clone(), ISOLATION_TIMEOUT));
        let ts = tasks(n, &eps)?;
        let wanted = healthy_ids(&ts, &eps);
        let tcp = TcpCounters::now();
        let start = open_loop(e, &ts, rate, BATCHING_WINDOW, a.account_concurrency).await;
        let stamps = log.succeeded.lock().map(|v| v.clone()).unwrap_or_default();
        let mut latencies = Vec::with_capacity(wanted.len());
        // By arrival: in the first request timeout (before any circuit can
        // open) and after it.
        let (mut early, mut late) = (Vec::new(), Vec::new());
        let mut last = start;
        for (id, at) in &stamps {
            if let Some(&i) = wanted.get(id) {
                let latency = at.saturating_duration_since(start + arrival(i, rate));
                latencies.push(latency);
                if arrival(i, rate) < ISOLATION_TIMEOUT {
                    early.push(latency);
                } else {
                    late.push(latency);
                }
                last = last.max(*at);
            }
        }
        let tcp = tcp.since();
        if latencies.len() != wanted.len() {
            // Not delivered within the run (Lambda would retry them): say why.
            let mut why = std::collections::BTreeMap::<String, usize>::new();
            let done: std::collections::HashSet<&DeliveryId> = stamps.iter().map(|(id, _)| id).collect();
            for a in mem.attempts.lock().map(|a| a.clone()).unwrap_or_default() {
                if wanted.contains_key(&a.delivery_id) && !done.contains(&a.delivery_id) {
                    *why.entry(a.error_kind.unwrap_or_default()).or_default() += 1;
                }
            }
            println!(
                "isolation, {}: only {} of {} healthy deliveries succeeded (failed attempts by kind: {why:?}; {tcp})",
                label(with_stuck),
                latencies.len(),
                wanted.len()
            );
        }
        let span = last.saturating_duration_since(start);
        let r = latencies.len() as f64 / span.as_secs_f64();
        let (p50, p99) = (percentile(latencies.clone(), 50), percentile(latencies.clone(), 99));
        println!(
            "isolation, {}, every batch its own invocation (no MaximumConcurrency; at most {} at once), {n} tasks arriving at {rate:.0}/s: {} healthy delivered in {:.2} s = {r:.0}/s; latency from arrival to 2xx recorded p50 {:.2} ms, p99 {:.2} ms, max {:.0} ms",
            label(with_stuck),
            a.account_concurrency,
            latencies.len(),
            span.as_secs_f64(),
            ms(p50),
            ms(p99),
            ms(percentile(latencies, 100)),
        );
        if a.diagnose {
            println!(
                "  diagnosis: p99 {:.2} ms for the tasks arriving in the first {} s, {:.2} ms after; {tcp}",
                ms(percentile(early, 99)),
                ISOLATION_TIMEOUT.as_secs(),
                ms(percentile(late, 99)),
            );
        }
        open[usize::from(with_stuck)].push((r, p99));
    }
    let rates = |i: usize| median(open[i].iter().map(|x| x.0).collect());
    let p99s = |i: usize| percentile(open[i].iter().map(|x| x.1).collect(), 50);
    println!(
        "isolation (target: within 10 %; medians of {ROUNDS} runs each): with 1 of 10 endpoints never answering, healthy throughput {:.1} % of the all-healthy run ({:.0}/s vs {:.0}/s) and p99 latency {:.2} ms vs {:.2} ms ({:+.1} %); open loop at {:.0} % of the capped all-healthy throughput, request timeout {} s, circuit opens after 5 failures or is held open by an attempt unanswered for half the timeout",
        100.0 * rates(1) / rates(0),
        rates(1),
        rates(0),
        ms(p99s(1)),
        ms(p99s(0)),
        100.0 * (p99s(1).as_secs_f64() / p99s(0).as_secs_f64() - 1.0),
        100.0 * a.load,
        ISOLATION_TIMEOUT.as_secs()
    );
    println!(
        "isolation: the batches that reach the stuck endpoint before its first attempt stalls (half the timeout) hold their invocation for the request timeout: {:.0} batches/s x {:.1} s = {:.0} invocations at once, against an account concurrency of {} (Lambda's default: {ACCOUNT_CONCURRENCY}); without the stall hold it would be {:.0}",
        rate / 10.0,
        ISOLATION_TIMEOUT.as_secs_f64() / 2.0,
        rate / 10.0 * ISOLATION_TIMEOUT.as_secs_f64() / 2.0,
        a.account_concurrency,
        rate / 10.0 * ISOLATION_TIMEOUT.as_secs_f64(),
    );
    for (with_stuck, (r, count, took, p99)) in [false, true].into_iter().zip(&capped) {
        println!(
            "isolation with MaximumConcurrency capped at {} batches, {}: {count} healthy deliveries in {:.2} s = {r:.0}/s, p99 attempt {p99} ms",
            a.concurrency,
            label(with_stuck),
            took.as_secs_f64(),
        );
    }
    println!(
        "isolation with MaximumConcurrency capped at {}: healthy throughput {:.0} % of the all-healthy run (each batch waits for its stuck attempt until the circuit opens)",
        a.concurrency,
        100.0 * capped[1].0 / capped[0].0,
    );
    Ok(())
}

/// The kernel's TCP counters (all of the machine's TCP, from /proc/net):
/// connections opened, and listen-queue overflows and SYN retransmissions,
/// which show a receiver that could not accept connections fast enough.
#[derive(Debug, Default, Clone, Copy)]
struct TcpCounters {
    opens: i64,
    listen_overflows: i64,
    syn_retrans: i64,
}

impl TcpCounters {
    fn now() -> Self {
        let field = |file: &str, prefix: &str, name: &str| -> i64 {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut lines = text.lines().filter(|l| l.starts_with(prefix));
            let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
                return 0;
            };
            names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(n, _)| *n == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            opens: field("/proc/net/snmp", "Tcp:", "ActiveOpens"),
            listen_overflows: field("/proc/net/netstat", "TcpExt:", "ListenOverflows"),
            syn_retrans: field("/proc/net/netstat", "TcpExt:", "TCPSynRetrans"),
        }
    }

    fn since(self) -> Self {
        let now = Self::now();
        Self {
            opens: now.opens - self.opens,
            listen_overflows: now.listen_overflows - self.listen_overflows,
            syn_retrans: now.syn_retrans - self.syn_retrans,
        }
    }
}

impl std::fmt::Display for TcpCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} TCP connections opened, {} listen-queue overflows, {} SYN retransmissions",
            self.opens, self.listen_overflows, self.syn_retrans
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_work() {
        // Spin until the process has used 150 ms of CPU: if cpu_time() did
        // not count it, the deadline would pass first. (Not a wall-clock
        // share: the machine may be busy with other work.)
        let before = cpu_time();
        let t = Instant::now();
        let mut x = 0u64;
        while cpu_time() < before + Duration::from_millis(150) {
            for _ in 0..100_000 {
                x = x.wrapping_add(std::hint::black_box(1));
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{before:?} -> {:?}", cpu_time());
        }
        assert!(x > 0);
    }

    #[test]
    fn batches_leave_when_full_or_when_the_window_ends() {
        // 1000 tasks/s: a batch of ten fills in 9 ms.
        assert_eq!(dispatch_at(0, 10, 1000.0, BATCHING_WINDOW), Duration::from_millis(9));
        assert_eq!(dispatch_at(10, 10, 1000.0, BATCHING_WINDOW), Duration::from_millis(19));
        // A batch that never fills waits for the window.
        assert_eq!(dispatch_at(20, 5, 1000.0, BATCHING_WINDOW), Duration::from_millis(1020));
        // 2 tasks/s: the window (1 s after the first task) ends first.
        assert_eq!(dispatch_at(0, 10, 2.0, BATCHING_WINDOW), Duration::from_secs(1));
        assert_eq!(arrival(3, 2.0), Duration::from_millis(1500));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(v.clone(), 50), Duration::from_millis(100));
        assert_eq!(percentile(v.clone(), 99), Duration::from_millis(198));
        assert_eq!(percentile(v, 100), Duration::from_millis(200));
        assert_eq!(percentile(Vec::<Duration>::new(), 99), Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_open_loop_stamps_every_delivery_after_its_arrival() {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = endpoints(&mem, &["http://127.0.0.1:1/a".into(), "http://127.0.0.1:1/b".into()]).unwrap();
        let log = Stamped::new(&mem);
        let e = Arc::new(engine(&mem, Instant200, log.clone(), Duration::from_secs(15)));
        let ts = tasks(45, &eps).unwrap();
        let rate = 1000.0;
        let start = open_loop(e, &ts, rate, BATCHING_WINDOW, ACCOUNT_CONCURRENCY).await;
        let stamps = log.succeeded.lock().unwrap().clone();
        assert_eq!(stamps.len(), 45);
        for (id, at) in stamps {
            let i = ts.iter().position(|t| t.delivery_id == id).unwrap();
            // A task is handled no sooner than its batch is complete.
            let batch_last = (i / 10 * 10 + 9).min(44);
            assert!(at >= start + arrival(batch_last, rate), "task {i}");
        }
        // The last, partial batch waited for the batching window.
        assert!(start.elapsed() >= arrival(40, rate) + BATCHING_WINDOW);
    }

    #[test]
    fn tcp_counters_are_read() {
        let c = TcpCounters::now();
        assert!(c.opens >= 0 && c.listen_overflows >= 0 && c.syn_retrans >= 0);
        assert!(c.since().to_string().contains("TCP connections opened"));
    }

    #[test]
    fn p99_and_median() {
        assert_eq!(p99((1..=100).collect()), 99);
        assert_eq!(p99(vec![7]), 7);
        assert_eq!(p99(vec![]), 0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn tasks_become_lambda_batches_of_ten_with_1_kb_bodies() {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = endpoints(&mem, &["http://127.0.0.1:1/a".into(), "http://127.0.0.1:1/b".into()]).unwrap();
        let ts = tasks(25, &eps).unwrap();
        assert!((1000..1100).contains(&ts[0].payload.len()), "{}", ts[0].payload.len());
        assert_eq!(ts[1].endpoint_id, eps[1].id);
        let b = batches(&ts);
        assert_eq!(b.iter().map(|e| e.records.len()).collect::<Vec<_>>(), [10, 10, 5]);
        let r = &b[2].records[4];
        assert_eq!(r.attributes["ApproximateReceiveCount"], "1");
        let back: DeliveryTask = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(back.delivery_id, ts[24].delivery_id);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_engine_delivers_every_task_without_the_network() {
        let mem: Memory = Arc::new(MemoryStore::default());
        let eps = endpoints(&mem, &["http://127.0.0.1:1/a".into()]).unwrap();
        let e = Arc::new(engine(&mem, Instant200, mem.clone(), Duration::from_secs(15)));
        drive(e, batches(&tasks(30, &eps).unwrap()), 2).await;
        let records = mem.records.lock().unwrap();
        assert_eq!(records.len(), 30);
        assert!(records.values().all(|d| d.state == DeliveryState::Succeeded));
    }
}
