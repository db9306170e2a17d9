//! Throughput against the raw HTTP clients, and CPU per delivery without
//! the network.

use anyhow::{Context as _, Result, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::model::{DeliveryState, WebhookRequest};
use switchyard_core::ports::WebhookSender;
use switchyard_delivery::HttpSender;
use switchyard_local::receiver::{Receiver, Reply};

use super::{Args, Instant200, batches, bounded, cpu_time, describe, drive, endpoints, engine, tasks, timed};
use crate::bench::stats::median_f64;

/// The raw loop's client: plain reqwest, the engine's timeout.
fn raw_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the raw reqwest client")
}

/// The same requests with a plain reqwest client, `in_flight` at a time.
pub(super) async fn raw(requests: Vec<RawRequest>, in_flight: usize) -> Result<Duration> {
    let client = raw_client()?;
    let (took, statuses) = bounded(requests, in_flight, |r| {
        let client = client.clone();
        async move { post(&client, r).await }
    })
    .await;
    if !statuses.iter().any(|s| (200..300).contains(s)) {
        bail!("the raw client delivered nothing");
    }
    Ok(took)
}

/// A request for the raw client: the engine's request with owned header
/// text, built before the clock starts.
pub(super) struct RawRequest {
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
async fn raw_batched(requests: Vec<RawRequest>, groups: usize) -> Result<Duration> {
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
async fn raw_hyper(requests: Vec<RawRequest>, in_flight: usize) -> Result<Duration> {
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
async fn sender_only(requests: Vec<WebhookRequest>, in_flight: usize) -> Result<Duration> {
    let sender = Arc::new(HttpSender::new(
        Duration::from_secs(15),
        switchyard_local::local_ssrf_policy(),
    )?);
    let (took, _) = bounded(requests, in_flight, |r| {
        let sender = sender.clone();
        async move { sender.send(&r).await.map(|r| r.status).unwrap_or(0) }
    })
    .await;
    Ok(took)
}

pub(super) async fn throughput(a: &Args) -> Result<()> {
    let rx = Receiver::start(|_| Reply::status(204)).await?;
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
            HttpSender::new(Duration::from_secs(15), switchyard_local::local_ssrf_policy())?,
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
            bail!("the engine delivered {delivered} of {}", a.n);
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
    let e = median_f64(engine_runs.iter().map(|r| r.rate(a.n)).collect());
    let r = median_f64(raw_runs.iter().map(|r| r.rate(a.n)).collect());
    println!(
        "throughput ({} deliveries of 1 KB, {} batches of 10 in flight vs {} requests): engine {e:.0}/s, raw {r:.0}/s, ratio {:.2} (target >= 0.90)",
        a.n,
        a.concurrency,
        a.concurrency * 10,
        e / r
    );
    Ok(())
}

pub(super) fn cpu_per_delivery() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
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
