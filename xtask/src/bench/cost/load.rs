//! The load of a run (the events and how they are sent), waiting for the
//! stack to settle, and its log bytes.

use anyhow::{Result, anyhow, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use switchyard_local::aws_proxy::{AwsProxy, Tally};

/// One event of about 1 KB whose `data` looks like a real order: ids,
/// names, addresses, line items and amounts that differ from event to event
/// (pseudo-random from the event's number), so stored sizes and their
/// compression are what real traffic would see, not those of a repeated
/// character.
pub(super) fn event(run: usize, i: usize, routing: Option<&serde_json::Value>) -> serde_json::Value {
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
pub(super) fn order(seed: u64) -> serde_json::Value {
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
pub(super) async fn post_events(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    bodies: Vec<serde_json::Value>,
) -> Result<()> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let permit = permits.clone().acquire_owned().await?;
        let (http, url, key) = (http.clone(), format!("{base}/v1/events"), key.to_string());
        set.spawn(async move {
            let _p = permit;
            let resp = http
                .post(url)
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await?;
            if resp.status().as_u16() == 202 {
                Ok(())
            } else {
                Err(anyhow!("POST /v1/events answered {}", resp.status()))
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Sends the events to the ingest queue, 10 per `SendMessageBatch`, with
/// the tenant as the `tenant_id` message attribute.
pub(super) async fn queue_events(
    sqs: &switchyard_aws::aws_sdk_sqs::Client,
    queue_url: &str,
    bodies: Vec<serde_json::Value>,
) -> Result<()> {
    use switchyard_aws::aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
    let tenant = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("bench")
        .build()?;
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
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        if !out.failed().is_empty() {
            bail!("SendMessageBatch: {} entries failed", out.failed().len());
        }
    }
    Ok(())
}

/// Waits until the stack has stopped calling AWS, apart from empty polls.
pub(super) async fn quiesce(proxy: &AwsProxy) {
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
pub(super) fn log_offsets(dir: &Path) -> BTreeMap<String, u64> {
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
pub(super) fn log_bytes_since(dir: &Path, function: &str, before: &BTreeMap<String, u64>) -> LogBytes {
    let text = std::fs::read(dir.join(format!("{function}.log"))).unwrap_or_default();
    let from = before.get(function).copied().unwrap_or(0) as usize;
    split_log_bytes(text.get(from..).unwrap_or_default())
}

/// A function's log bytes by how they grow: with invocations (metric
/// lines; a batch line but the ids it names) or with records (the ids of a
/// batch line; every other line).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct LogBytes {
    pub(super) emf: u64,
    pub(super) batch: u64,
    pub(super) other: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn bench_events_are_about_1_kb_and_differ() {
        let sizes: Vec<usize> = (0..50).map(|i| event(0, i, None).to_string().len()).collect();
        assert!(sizes.iter().all(|n| (850..=1150).contains(n)), "{sizes:?}");
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((900..=1050).contains(&mean), "{mean}");
        assert_ne!(order(1), order(2));
        assert_eq!(order(7), order(7), "the same seed, the same order");
    }
}
