//! The cost model: list prices, the billed-duration model and the cost
//! lines per million deliveries, and the report of one run.

use super::{Batching, Door, FunctionRun, Run};

/// us-east-1 list prices (USD), as published in 2025–2026.
pub(super) mod price {
    /// Lambda on arm64, per GB-second.
    pub(crate) const LAMBDA_ARM_GB_S: f64 = 0.000_013_333_4;
    /// Lambda, per request.
    pub(crate) const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
    /// SQS standard queue, per request (64 KB chunk).
    pub(crate) const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// DynamoDB on demand, per write request unit.
    pub(crate) const DYNAMODB_WRU: f64 = 0.625 / 1e6;
    /// DynamoDB on demand, per read request unit.
    pub(crate) const DYNAMODB_RRU: f64 = 0.125 / 1e6;
    /// EventBridge, per custom event put (64 KB chunk).
    pub(crate) const EVENTBRIDGE_EVENT: f64 = 1.00 / 1e6;
    /// API Gateway HTTP API, per request (512 KB chunk, first 300 M a month).
    pub(crate) const HTTP_API_REQUEST: f64 = 1.00 / 1e6;
    /// DynamoDB provisioned capacity, per write capacity unit and hour.
    pub(crate) const DYNAMODB_WCU_HOUR: f64 = 0.000_65;
    /// DynamoDB provisioned capacity, per read capacity unit and hour.
    pub(crate) const DYNAMODB_RCU_HOUR: f64 = 0.000_13;
    /// CloudWatch Logs, per GB ingested (standard class).
    pub(crate) const LOGS_GB: f64 = 0.50;
    /// Data transfer out to the internet, per GB (first 10 TB a month).
    pub(crate) const EGRESS_GB: f64 = 0.09;
}

/// The share of provisioned DynamoDB capacity steady traffic uses (auto
/// scaling's usual target).
pub(super) const PROVISIONED_UTILISATION: f64 = 0.7;

/// What DynamoDB capacity provisioning saves per million deliveries over on
/// demand, for traffic steady enough to keep the capacity at
/// [`PROVISIONED_UTILISATION`]: a unit provisioned for an hour serves
/// 3600 × that many requests. (Strongly consistent reads of items up to
/// 4 KB are one unit either way.)
pub(super) fn provisioned_saving(run: &Run) -> f64 {
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
pub(super) const ENDPOINT_MS: f64 = 100.0;
/// CPU per record, generous (`bench-delivery` measures ~12 µs per delivery).
const CPU_MS_PER_RECORD: f64 = 1.0;

pub(super) fn report(run: &Run) {
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
pub(super) fn costs(run: &Run, batching: Batching) -> Vec<(String, f64)> {
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
    use std::collections::BTreeMap;
    use switchyard_local::aws_proxy::Tally;

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
}
