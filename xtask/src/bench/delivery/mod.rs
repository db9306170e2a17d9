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

mod isolation;
mod moto;
#[cfg(test)]
mod tests;
mod throughput;

use anyhow::{Context as _, Result, anyhow, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::delivery::Deliverer;
use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::metrics::Recorder;
use switchyard_core::model::{SendError, WebhookRequest, WebhookResponse};
use switchyard_core::ports::{DeliveryLog, WebhookSender};
use switchyard_core::{DeliveryId, DeliveryTask, Endpoint, EndpointUrl, EventId, EventType, TenantId};
use switchyard_delivery::Delivery;

type Engine<H, L = Memory> = Delivery<Memory, H, L, Memory, Memory, Memory>;

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

pub(crate) fn run(args: &[String]) -> Result<()> {
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
            .context("running cargo")?;
        return if status.success() {
            Ok(())
        } else {
            Err(anyhow!("the release run failed ({status})"))
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
        account_concurrency: isolation::ACCOUNT_CONCURRENCY,
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut num = || -> Result<usize> {
            it.next()
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{arg} takes a number"))
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
                    .context("--load takes a share of the capped throughput, 0.05 to 2")?
            }
            "--seconds" => {
                a.seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| (0.5..=60.0).contains(v))
                    .context("--seconds takes 0.5 to 60")?
            }
            "--only" => a.only.push(
                it.next()
                    .cloned()
                    .context("--only takes throughput, cpu, isolation or moto")?,
            ),
            other => {
                bail!(
                    "unknown option {other} (--n N, --concurrency C, --only throughput|cpu|isolation|moto, --diagnose, --load L, --seconds S, --account-concurrency N)"
                );
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CORES)
        .enable_all()
        .build()?;
    let part = |p: &str| a.only.is_empty() || a.only.iter().any(|o| o == p);
    if part("throughput") {
        rt.block_on(throughput::throughput(&a))?;
    }
    if part("cpu") {
        throughput::cpu_per_delivery()?;
    }
    if part("isolation") {
        rt.block_on(isolation::isolation(&a))?;
    }
    if part("moto") {
        rt.block_on(moto::against_moto(&a))?;
    }
    Ok(())
}

/// The bench's tenant.
fn tenant() -> Result<TenantId> {
    Ok(TenantId::parse("bench")?)
}

/// A 1 KB event body.
fn payload(i: usize) -> String {
    let blob = "x".repeat(880);
    format!(
        r#"{{"id":"evt_{i:08}","type":"bench.event","version":"1.0","timestamp":"2026-11-29T12:00:00.000Z","source":"bench","data":{{"n":{i},"blob":"{blob}"}}}}"#
    )
}

fn tasks(n: usize, endpoints: &[Endpoint]) -> Result<Vec<DeliveryTask>> {
    let tenant = tenant()?;
    (0..n)
        .map(|i| {
            let ep = &endpoints[i % endpoints.len()];
            let event = EventId::parse(format!("evt_{i:08}"))?;
            Ok(DeliveryTask {
                kind: Default::default(),
                v: switchyard_core::wire::DELIVERY_TASK_V,
                delivery_id: DeliveryId::derive(&tenant, &event, &ep.id),
                tenant_id: tenant.clone(),
                endpoint_id: ep.id.clone(),
                event_id: event.clone(),
                event_type: EventType::parse("bench.event")?,
                payload: payload(i),
                created_at: switchyard_core::time_util::now_utc(),
                dlq_reason: None,
                manual_request: None,
                generation: 0,
                operational: false,
                webhook_id: Some(switchyard_core::ids::webhook_id(&tenant, &event)),
                // Every event ingest accepts carries one: each attempt sends it on.
                traceparent: Some(switchyard_core::trace::TraceParent::new_trace().to_string()),
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

fn endpoints(store: &MemoryStore, urls: &[String]) -> Result<Vec<Endpoint>> {
    urls.iter()
        .map(|u| {
            let ep = Endpoint::new(
                tenant()?,
                EndpointUrl::parse(u)?,
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

/// Times `f` in wall and process CPU time.
async fn timed<F: std::future::Future<Output = Result<Duration>>>(f: F) -> Result<Run> {
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
