//! `cargo xtask bench-delivery`: the delivery engine against the raw HTTP
//! client, in one process, on loopback.
//!
//! - **Throughput**: the delivery handler's real path (SQS batch parsing,
//!   the `Deliverer`'s decisions, signing, the guarded reqwest sender,
//!   attempt recording through the store traits, the batch response)
//!   pushing N deliveries of a 1 KB event to a receiver on 127.0.0.1, with
//!   C batches of 10 in flight (as C concurrent Lambda invocations would),
//!   against a plain reqwest loop posting the same bodies and headers with
//!   the same number of requests in flight. The store is in memory
//!   (`switchyard_core::memory`): this is the engine's own overhead. The runs
//!   alternate, three of each; the medians are compared.
//! - **CPU per delivery without the network**: the same handler with a
//!   sender that answers 200 at once, one thread, 20 000 deliveries: wall
//!   time and the process's CPU time per delivery.
//! - **Slow-endpoint isolation**: ten endpoints, one of which never answers
//!   (the request timeout cuts it off), against the all-healthy run: the
//!   healthy deliveries' throughput and p99 attempt latency.

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::delivery::{Deliverer, DeliveryConfig, SendError, WebhookRequest, WebhookResponse};
use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::metrics::Recorder;
use switchyard_core::ports::WebhookSender;
use switchyard_core::{DeliveryId, DeliveryTask, Endpoint, EndpointUrl, EventId, EventType, TenantId};
use switchyard_delivery::{Delivery, HttpSender};
use switchyard_local::receiver::{Receiver, Reply};

type Engine<H> = Delivery<Memory, H, Memory, Memory, Memory, Memory>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

struct Args {
    n: usize,
    concurrency: usize,
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
            other => return Err(format!("unknown option {other} (--n N, --concurrency C)")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(err)?;
    rt.block_on(throughput(&a))?;
    cpu_per_delivery()?;
    rt.block_on(isolation(&a))
}

fn tenant() -> TenantId {
    TenantId::parse("bench").unwrap_or_else(|_| unreachable!("a valid tenant id"))
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
                delivery_id: DeliveryId::derive(&tenant(), &event, &ep.id),
                tenant_id: tenant(),
                endpoint_id: ep.id.clone(),
                event_id: event,
                event_type: EventType::parse("bench.event").map_err(err)?,
                payload: payload(i),
                created_at: switchyard_core::time_util::now_utc(),
                dlq_reason: None,
                manual_request: None,
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

fn engine<H: WebhookSender>(mem: &Memory, sender: H) -> Engine<H> {
    Delivery {
        deliverer: Deliverer {
            registry: mem.clone(),
            sender,
            log: mem.clone(),
            dead_letters: mem.clone(),
            ops: mem.clone(),
            config: DeliveryConfig {
                ssrf: switchyard_local::local_ssrf_policy(),
                ..Default::default()
            },
        },
        queue: mem.clone(),
        metrics: Recorder::with_emit("bench", "delivery", Arc::new(|_: &str| {})),
    }
}

/// Runs every batch through the engine, `concurrency` at a time.
async fn drive<H: WebhookSender + Send + Sync + 'static>(
    engine: Arc<Engine<H>>,
    events: Vec<aws_lambda_events::event::sqs::SqsEvent>,
    concurrency: usize,
) -> Duration {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for e in events {
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
    started.elapsed()
}

/// The same requests with a plain reqwest client, `in_flight` at a time.
async fn raw(requests: Vec<WebhookRequest>, in_flight: usize) -> Result<Duration, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(err)?;
    let permits = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for r in requests {
        let Ok(p) = permits.clone().acquire_owned().await else {
            break;
        };
        let client = client.clone();
        set.spawn(async move {
            let _p = p;
            let mut req = client.post(r.url.url().as_str()).body(r.body);
            for (k, v) in r.headers {
                req = req.header(k, v);
            }
            req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        });
    }
    let mut ok = 0;
    while let Some(s) = set.join_next().await {
        if s.is_ok_and(|s| (200..300).contains(&s)) {
            ok += 1;
        }
    }
    let took = started.elapsed();
    if ok == 0 {
        return Err("the raw client delivered nothing".into());
    }
    Ok(took)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn throughput(a: &Args) -> Result<(), String> {
    let rx = Receiver::start(|_| Reply::status(204)).await.map_err(err)?;
    let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
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
        ));
        let took = drive(e, batches(&ts), a.concurrency).await;
        let delivered = mem
            .records
            .lock()
            .map(|r| {
                r.values()
                    .filter(|d| d.state == switchyard_core::delivery::DeliveryState::Succeeded)
                    .count()
            })
            .unwrap_or(0);
        if delivered != a.n {
            return Err(format!("the engine delivered {delivered} of {}", a.n));
        }
        engine_rates.push(a.n as f64 / took.as_secs_f64());
        let took = raw(requests, a.concurrency * 10).await?;
        raw_rates.push(a.n as f64 / took.as_secs_f64());
        println!(
            "round {}: engine {:.0}/s, raw reqwest {:.0}/s",
            round + 1,
            engine_rates[round],
            raw_rates[round]
        );
    }
    let (e, r) = (median(engine_rates), median(raw_rates));
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

/// The process's user + system CPU time (from /proc/self/stat, in clock
/// ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After "pid (comm)": state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime ...
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
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
    let e = engine(&mem, Instant200);
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

fn p99(mut v: Vec<u64>) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let idx = ((v.len() as f64) * 0.99).ceil() as usize;
    v[idx.clamp(1, v.len()) - 1]
}

async fn isolation(a: &Args) -> Result<(), String> {
    let healthy = Receiver::start(|_| Reply::status(204)).await.map_err(err)?;
    let stuck = Receiver::start(|_| Reply::status(200).after(Duration::from_secs(120)))
        .await
        .map_err(err)?;
    let timeout = Duration::from_secs(2);
    let mut results = Vec::new();
    for with_stuck in [false, true] {
        let mem: Memory = Arc::new(MemoryStore::default());
        let mut urls: Vec<String> = (0..9).map(|i| healthy.url(&format!("/h{i}"))).collect();
        urls.push(if with_stuck {
            stuck.url("/stuck")
        } else {
            healthy.url("/h9")
        });
        let eps = endpoints(&mem, &urls)?;
        let e = Arc::new(engine(
            &mem,
            HttpSender::new(timeout, switchyard_local::local_ssrf_policy()).map_err(err)?,
        ));
        let ts = tasks(a.n, &eps)?;
        let healthy_deliveries: std::collections::HashSet<DeliveryId> = ts
            .iter()
            .filter(|t| eps[..9].iter().any(|e| e.id == t.endpoint_id))
            .map(|t| t.delivery_id.clone())
            .collect();
        let took = drive(e, batches(&ts), a.concurrency).await;
        let attempts = mem.attempts.lock().map(|a| a.clone()).unwrap_or_default();
        let ok: Vec<u64> = attempts
            .iter()
            .filter(|a| a.succeeded && healthy_deliveries.contains(&a.delivery_id))
            .map(|a| a.duration_ms)
            .collect();
        let rate = ok.len() as f64 / took.as_secs_f64();
        println!(
            "isolation, {}: {} healthy deliveries in {:.2} s = {rate:.0}/s, p99 attempt {} ms",
            if with_stuck {
                "1 of 10 endpoints never answers"
            } else {
                "all 10 healthy"
            },
            ok.len(),
            took.as_secs_f64(),
            p99(ok.clone())
        );
        results.push((rate, p99(ok)));
    }
    println!(
        "isolation: healthy throughput {:.0} % of the all-healthy run, p99 {} ms vs {} ms (target: within 10 %; request timeout {} s, circuit opens after 5 failures)",
        100.0 * results[1].0 / results[0].0,
        results[1].1,
        results[0].1,
        timeout.as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_work() {
        let before = cpu_time();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(
            cpu_time() >= before + Duration::from_millis(150),
            "{before:?} -> {:?}",
            cpu_time()
        );
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
        let e = Arc::new(engine(&mem, Instant200));
        drive(e, batches(&tasks(30, &eps).unwrap()), 2).await;
        let records = mem.records.lock().unwrap();
        assert_eq!(records.len(), 30);
        assert!(
            records
                .values()
                .all(|d| d.state == switchyard_core::delivery::DeliveryState::Succeeded)
        );
    }
}
