//! Slow-endpoint isolation: ten endpoints, one never answering, against
//! ten healthy ones, as deployed (an open loop) and with
//! MaximumConcurrency capped (a closed loop).

use anyhow::{Result, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::error::PortError;
use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::model::{AttemptRecord, DeliveryRecord, WebhookRequest};
use switchyard_core::ports::{DeliveryLog, WebhookSender};
use switchyard_core::{DeliveryId, DeliveryTask, Endpoint, EndpointUrl, TenantId};
use switchyard_delivery::HttpSender;
use switchyard_local::receiver::{Receiver, Reply};

use super::{Args, Engine, batches, drive, endpoints, engine, tasks};
use crate::bench::stats::{median_f64, millis, percentile};

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
async fn warm(sender: &HttpSender, url: &str, n: usize) -> Result<()> {
    let request = WebhookRequest {
        url: EndpointUrl::parse(url)?,
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
            bail!("warming the pool: {r:?}");
        }
    }
    Ok(())
}

/// Ten endpoints on the healthy receiver, or nine and the stuck one last.
fn ten_endpoints(mem: &Memory, healthy: &Receiver, stuck: Option<&Receiver>) -> Result<Vec<Endpoint>> {
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
pub(super) const ACCOUNT_CONCURRENCY: usize = 1000;
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

pub(super) async fn isolation(a: &Args) -> Result<()> {
    let healthy = Receiver::start(|_| Reply::status(204)).await?;
    let stuck = Receiver::start(|_| Reply::status(200).after(Duration::from_secs(120))).await?;
    let sender = || HttpSender::new(ISOLATION_TIMEOUT, switchyard_local::local_ssrf_policy());

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
        capped.push((ok.len() as f64 / took.as_secs_f64(), ok.len(), took, percentile(ok, 99)));
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
            millis(p50),
            millis(p99),
            millis(percentile(latencies, 100)),
        );
        if a.diagnose {
            println!(
                "  diagnosis: p99 {:.2} ms for the tasks arriving in the first {} s, {:.2} ms after; {tcp}",
                millis(percentile(early, 99)),
                ISOLATION_TIMEOUT.as_secs(),
                millis(percentile(late, 99)),
            );
        }
        open[usize::from(with_stuck)].push((r, p99));
    }
    let rates = |i: usize| median_f64(open[i].iter().map(|x| x.0).collect());
    let p99s = |i: usize| percentile(open[i].iter().map(|x| x.1).collect(), 50);
    println!(
        "isolation (target: within 10 %; medians of {ROUNDS} runs each): with 1 of 10 endpoints never answering, healthy throughput {:.1} % of the all-healthy run ({:.0}/s vs {:.0}/s) and p99 latency {:.2} ms vs {:.2} ms ({:+.1} %); open loop at {:.0} % of the capped all-healthy throughput, request timeout {} s, circuit opens after 5 failures or is held open by an attempt unanswered for half the timeout",
        100.0 * rates(1) / rates(0),
        rates(1),
        rates(0),
        millis(p99s(1)),
        millis(p99s(0)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::delivery::Instant200;

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
}
