//! `cargo xtask soak [--secs S] [--rate R]`: the whole local stack under a
//! steady load for a bounded time, then an accounting of every event.
//!
//! The stack of `template.yaml` runs through the local runner (every
//! function its real binary, moto as AWS). One tenant has four endpoints on
//! loopback: healthy (200 at once), slow (200 after 300 ms), flaky (500 a
//! third of the time; retries 1 s apart, 10 attempts) and failing (always
//! 503; retries 1 s apart, 3 attempts).
//! Events of about 1 KB go to `POST /v1/events` at R a second for S
//! seconds. While they flow, the resident memory of every function process
//! is sampled every 5 s. At the end (after the last event, at most 90 s
//! more) every (event, endpoint) pair must be accounted for: delivered with
//! the event's `webhook-id` (healthy, slow, flaky) or failed with its
//! attempts recorded (failing), as the API reports. Printed: accepted
//! events and deliveries per second, end-to-end latency (accepted → the
//! receiver's 2xx) p50/p90/p99 per endpoint, memory per function over time,
//! and the accounting. A pair unaccounted for fails the command.

use crate::bench::stats::{mib, nearest_rank};
use crate::local::{self, Args};
use anyhow::{Context as _, Result, bail};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_local::receiver::{Receiver, Reply};

const ENDPOINTS: [&str; 4] = ["/healthy", "/slow", "/flaky", "/failing"];

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut secs, mut rate) = (60u64, 3.0f64);
    let mut largs = Args::parse(root, &[])?;
    largs.port = 0;
    // A circuit that opens closes again within the run.
    largs.env.push(("CIRCUIT_OPEN_SECS".into(), "2".into()));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = local::option_value(&mut it, |v| (5..=3600).contains(v), "--secs takes 5 to 3600")?,
            "--rate" => {
                rate = local::option_value(
                    &mut it,
                    |&v: &f64| v > 0.0 && v <= 100.0,
                    "--rate takes events a second, up to 100",
                )?
            }
            "--no-build" => largs.build = false,
            other => bail!("unknown option {other} (--secs S, --rate R, --no-build)"),
        }
    }
    local::with_stack(root, &largs, async |stack| {
        soak(stack, Duration::from_secs(secs), rate).await
    })
}

/// When each (event, endpoint) pair was first answered 2xx.
type Arrivals = Arc<Mutex<HashMap<(String, String), Instant>>>;

async fn soak(stack: &local::Stack, length: Duration, rate: f64) -> Result<()> {
    let base = stack.runner.api_url(None).context("the template serves no HTTP API")?;
    let admin = stack.admin_key.as_ref().context("the template has no AdminKeySha256")?;
    let arrivals: Arrivals = Arc::default();
    let (a, count) = (arrivals.clone(), Arc::new(Mutex::new(0u64)));
    let rx = Receiver::start(move |r| {
        let n = {
            let mut c = count.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        let reply = match r.path.as_str() {
            "/slow" => Reply::status(200).after(Duration::from_millis(300)),
            "/flaky" if n % 3 == 0 => Reply::status(500),
            "/failing" => Reply::status(503),
            _ => Reply::status(200),
        };
        if reply.status < 300
            && let Some(id) = r.header("webhook-id")
        {
            a.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((id.to_string(), r.path.clone()))
                .or_insert_with(Instant::now);
        }
        reply
    })
    .await?;
    let http = reqwest::Client::new();
    let (key, _) = crate::demo::onboard(&http, &base, admin.expose(), "soak", &rx.url(ENDPOINTS[0]), &["*"]).await?;
    for path in &ENDPOINTS[1..] {
        let mut body = json!({"url": rx.url(path), "filter_types": ["*"]});
        // Retries a second apart, so the run ends in minutes: the flaky
        // endpoint gets ten tries, the failing one three.
        match *path {
            "/failing" => body["retry_policy"] = json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 3}),
            "/flaky" => body["retry_policy"] = json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 10}),
            _ => {}
        }
        crate::demo::expect(
            "POST /v1/endpoints",
            crate::demo::call(&http, &base, "POST", "/v1/endpoints", &key, Some(body)).await?,
            201,
        )?;
    }
    println!(
        "==> soak: {rate} events/s for {} s to 4 endpoints (healthy, slow 300 ms, flaky 1 in 3, failing 503)",
        length.as_secs()
    );

    // Memory of every function process, every 5 s (between sends).
    let mut memory = Memory::default();
    memory.sample(stack);

    // The load: one event every 1/rate s, each POST on its own task.
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (length.as_secs_f64() * rate).round() as usize;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        memory.sample(stack);
        let (http, url, key) = (http.clone(), format!("{base}/v1/events"), key.clone());
        sends.spawn(async move {
            let id = format!("evt_soak_{i:06}");
            let body = json!({"id": id, "type": "soak.tick", "data": {"n": i, "blob": "s".repeat(900)}});
            // A refusal is retried with the same id, as a client would.
            for _ in 0..5 {
                let sent = http
                    .post(&url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await;
                if let Ok(r) = sent
                    && (r.status().as_u16() == 202 || r.status().as_u16() == 200)
                {
                    return Some((id, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None
        });
    }
    let mut accepted: HashMap<String, Instant> = HashMap::new();
    let mut refused = 0;
    while let Some(r) = sends.join_next().await {
        match r? {
            Some((id, at)) => {
                accepted.insert(id, at);
            }
            None => refused += 1,
        }
    }
    let load_time = started.elapsed();

    // Drain: every pair of the three answering endpoints delivered.
    let answering = &ENDPOINTS[..3];
    let drain_until = Instant::now() + Duration::from_secs(90);
    let delivered = |arrivals: &Arrivals| {
        let got = arrivals.lock().unwrap_or_else(|p| p.into_inner());
        accepted
            .keys()
            .flat_map(|id| answering.iter().map(move |p| (id.clone(), p.to_string())))
            .filter(|k| got.contains_key(k))
            .count()
    };
    while delivered(&arrivals) < accepted.len() * answering.len() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        memory.sample(stack);
    }
    let all_done = started.elapsed();

    // The failing endpoint's deliveries: failed, every attempt recorded (the
    // API's view), once their three attempts are over.
    let mut failing_states: BTreeMap<String, usize> = BTreeMap::new();
    let until = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<&String> = accepted.keys().collect();
    while !pending.is_empty() && Instant::now() < until {
        let mut still = Vec::new();
        for id in pending {
            let (s, b) =
                crate::demo::call(&http, &base, "GET", &format!("/v1/events/{id}/deliveries"), &key, None).await?;
            let failed = s == 200
                && b["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|d| d["state"] == "failed" && d["attempts"] == 3));
            if !failed {
                still.push(id);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    failing_states.insert("failed after 3 attempts".into(), accepted.len() - pending.len());
    failing_states.insert("not (yet) failed".into(), pending.len());

    // The report.
    let got = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let n_delivered = delivered(&arrivals);
    println!(
        "==> load: {} events accepted in {:.1} s ({:.1}/s), {refused} refused after 5 tries; all answering deliveries done {:.1} s after the start",
        accepted.len(),
        load_time.as_secs_f64(),
        accepted.len() as f64 / load_time.as_secs_f64(),
        all_done.as_secs_f64()
    );
    println!(
        "==> deliveries: {n_delivered} of {} to the answering endpoints ({:.1}/s over the run)",
        accepted.len() * answering.len(),
        n_delivered as f64 / all_done.as_secs_f64()
    );
    println!("==> end-to-end latency, accepted → the receiver's 2xx:");
    for path in answering {
        let mut ms: Vec<f64> = accepted
            .iter()
            .filter_map(|(id, at)| {
                got.get(&(id.clone(), path.to_string()))
                    .map(|t| t.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "      {path:<9} n={:<5} p50 {:>6.0} ms  p90 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms",
            ms.len(),
            nearest_rank(&ms, 50),
            nearest_rank(&ms, 90),
            nearest_rank(&ms, 99),
            ms.last().copied().unwrap_or(0.0)
        );
    }
    println!("==> the failing endpoint: {failing_states:?}");
    println!("==> resident memory of each function (largest of its processes), sampled every 5 s:");
    for (f, v) in &memory.samples {
        let sizes: Vec<String> = v.iter().map(|k| mib(*k)).collect();
        println!("      {f:<18} MiB: {}", sizes.join(" "));
    }
    let lost = accepted.len() * answering.len() - n_delivered + pending.len();
    if lost > 0 || refused > 0 {
        bail!("{lost} accepted (event, endpoint) pairs unaccounted for, {refused} events refused");
    }
    println!(
        "==> zero loss: every accepted event delivered to the 3 answering endpoints and failed, recorded, at the failing one"
    );
    Ok(())
}

/// Resident memory per function over time.
#[derive(Default)]
struct Memory {
    samples: BTreeMap<String, Vec<u64>>,
    last: Option<Instant>,
}

impl Memory {
    /// Every function's largest process's `VmRSS`, if 5 s have passed since
    /// the last sample.
    fn sample(&mut self, stack: &local::Stack) {
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_secs(5)) {
            return;
        }
        self.last = Some(Instant::now());
        for f in &stack.runner.plan().functions {
            let rss = local::function_status_kib(stack, &f.logical_id, "VmRSS").unwrap_or(0);
            self.samples.entry(f.logical_id.clone()).or_default().push(rss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_fields_are_read_from_proc() {
        let me = std::process::id();
        let (rss, hwm) = (
            local::proc_status_kib(me, "VmRSS").unwrap(),
            local::proc_status_kib(me, "VmHWM").unwrap(),
        );
        assert!(rss > 100 && hwm >= rss, "{rss} {hwm}");
        assert_eq!(local::proc_status_kib(me, "VmNope"), None);
        assert_eq!(local::proc_status_kib(u32::MAX, "VmRSS"), None);
    }
}
