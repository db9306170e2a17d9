//! The SQS trigger's batch, one record at a time.
//!
//! Each record is parsed on its own and handled concurrently with the others;
//! a record that fails (or cannot be parsed) is reported in the partial batch
//! response, so Lambda deletes the rest and only the failures come back. A
//! record that keeps failing reaches the queue's redrive DLQ after
//! `maxReceiveCount`, which is where unparseable messages belong.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use switchyard_core::endpoint::EndpointRoute;
use switchyard_core::ports::Registry;
use switchyard_core::{ApiKeyHash, Endpoint, EndpointId, PortError, TenantId};

/// At most this many records of one batch are in flight at once.
pub const MAX_CONCURRENCY: usize = 64;

/// What a record handler knows of its message besides the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsRecord {
    /// SQS's id of the message; a failure is reported by it.
    pub message_id: String,
    /// What ChangeMessageVisibility and DeleteMessage need.
    pub receipt_handle: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// The ARN of the queue the message came from (`eventSourceARN`).
    pub queue_arn: String,
    /// When the message was sent (`SentTimestamp`, Unix milliseconds);
    /// `None` if SQS did not say.
    pub sent_at_ms: Option<i64>,
}

/// Why a record was not handled; it will be delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// What went wrong, for the log.
    pub reason: String,
}

impl RecordFailure {
    /// A failure for this reason.
    pub fn new(reason: impl std::fmt::Display) -> Self {
        Self {
            reason: reason.to_string(),
        }
    }
}

/// Handles every record of `event` with `handle` and reports the failures.
pub async fn process_sqs_batch<T, F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    T: DeserializeOwned,
    F: Fn(T, SqsRecord) -> Fut,
    Fut: Future<Output = Result<(), RecordFailure>>,
{
    let handle = &handle;
    process_sqs_records(event, |body: String, record: SqsRecord| async move {
        match serde_json::from_str::<T>(&body) {
            Ok(task) => handle(task, record).await,
            Err(e) => {
                tracing::error!(message_id = %record.message_id, receive_count = record.receive_count, error = %e, "unparseable message; it goes to the DLQ after maxReceiveCount");
                Err(RecordFailure::new(format_args!("unparseable message: {e}")))
            }
        }
    })
    .await
}

/// Handles every record's raw body with `handle` (concurrently, at most
/// [`MAX_CONCURRENCY`] at once) and reports the failures.
pub async fn process_sqs_records<F, Fut>(event: SqsEvent, handle: F) -> SqsBatchResponse
where
    F: Fn(String, SqsRecord) -> Fut,
    Fut: Future<Output = Result<(), RecordFailure>>,
{
    let handle = &handle;
    let failures: Vec<String> = futures_util::stream::iter(event.records)
        .map(|mut msg| async move {
            let Some(message_id) = msg.message_id.take() else {
                // Without an id the message cannot be reported; Lambda never
                // sends one, so this is a malformed event, not a message.
                tracing::error!("SQS record without a messageId ignored");
                return None;
            };
            let receive_count = msg
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            let sent_at_ms = msg.attributes.get("SentTimestamp").and_then(|t| t.parse().ok());
            let record = SqsRecord {
                sent_at_ms,
                message_id,
                receipt_handle: msg.receipt_handle.take().unwrap_or_default(),
                receive_count,
                queue_arn: msg.event_source_arn.take().unwrap_or_default(),
            };
            // The record goes to the handler; its id is kept only if it fails.
            let id = record.message_id.clone();
            match handle(msg.body.take().unwrap_or_default(), record).await {
                Ok(()) => None,
                Err(f) => {
                    tracing::warn!(message_id = %id, receive_count, reason = %f.reason, "record failed; it will be retried");
                    Some(id)
                }
            }
        })
        .buffer_unordered(MAX_CONCURRENCY)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;

    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures.into_iter().map(item_failure).collect();
    response
}

/// The failure of one message of a batch (by its message id): SQS
/// redelivers it.
pub fn item_failure(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}

/// Values read once per batch: the records of a batch, handled at the same
/// moment, mostly ask the same things (one tenant's endpoints, whether a
/// tenant exists), and each answer is a billed read. The first record to
/// ask reads; the others wait for its answer. A failed read is not kept:
/// the next record to ask reads again. Built per batch, so nothing outlives
/// the invocation.
pub struct Memo<K, V>(std::sync::Mutex<HashMap<K, Arc<tokio::sync::OnceCell<V>>>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    /// The value for `key`, read with `read` if no record has read it yet.
    pub async fn get<E, F, Fut>(&self, key: &K, read: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(read).await.cloned()
    }
}

/// The registry as one batch sees it: each tenant's endpoints, each
/// endpoint, and whether each tenant is suspended, read once per batch (a batch's records are mostly one tenant's,
/// often one endpoint's); everything else passes through. The records of a
/// batch start together, so each would have read the same item at the same
/// moment anyway: an endpoint's circuit, changed by one record's attempt, is
/// read afresh by the next batch.
pub struct BatchRegistry<'a, R> {
    registry: &'a R,
    routes: Memo<TenantId, Vec<EndpointRoute>>,
    endpoint: Memo<(TenantId, EndpointId), Option<Endpoint>>,
    suspended: Memo<TenantId, bool>,
}

impl<'a, R> BatchRegistry<'a, R> {
    /// A view of `registry` for one batch, with nothing read yet.
    pub fn new(registry: &'a R) -> Self {
        Self {
            registry,
            routes: Memo::default(),
            endpoint: Memo::default(),
            suspended: Memo::default(),
        }
    }
}

impl<R: Registry> Registry for BatchRegistry<'_, R> {
    async fn key_grant(&self, hash: &ApiKeyHash) -> Result<Option<switchyard_core::api_key::KeyGrant>, PortError> {
        self.registry.key_grant(hash).await
    }
    async fn routes(&self, tenant: &TenantId) -> Result<Vec<EndpointRoute>, PortError> {
        self.routes.get(tenant, || self.registry.routes(tenant)).await
    }
    async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        let key = (tenant.clone(), id.clone());
        self.endpoint.get(&key, || self.registry.endpoint(tenant, id)).await
    }
    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        self.registry.tenant_exists(tenant).await
    }
    async fn tenant_suspended(&self, tenant: &TenantId) -> Result<bool, PortError> {
        self.suspended
            .get(tenant, || self.registry.tenant_suspended(tenant))
            .await
    }
}

/// The URL of the queue an ARN names (`arn:aws:sqs:<region>:<account>:<name>`),
/// in the form every SQS API accepts as `QueueUrl`; `None` for anything else.
pub fn queue_url_from_arn(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if region.is_empty() || account.is_empty() || name.is_empty() {
        return None;
    }
    let domain = match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    #[tokio::test]
    async fn a_memo_reads_once_for_records_asking_together_and_again_after_a_failure() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let memo: Memo<&str, u32> = Memo::default();
        let reads = AtomicUsize::new(0);
        let read = |v: u32| {
            let reads = &reads;
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok::<_, String>(v)
            }
        };
        let (a, b, c) = tokio::join!(
            memo.get(&"t1", read(1)),
            memo.get(&"t1", read(2)),
            memo.get(&"t2", read(3))
        );
        assert_eq!(
            (a, b, c),
            (Ok(1), Ok(1), Ok(3)),
            "the first read's answer, for every asker"
        );
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read per key");
        let failed = memo
            .get(&"t3", || async { Err::<u32, _>("throttled".to_string()) })
            .await;
        assert_eq!(failed, Err("throttled".to_string()));
        assert_eq!(memo.get(&"t3", read(4)).await, Ok(4), "a failure is not kept");
    }

    fn msg(id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes.insert("ApproximateReceiveCount".into(), "2".into());
        m
    }

    #[tokio::test]
    async fn bad_and_failed_records_are_reported_alone() {
        let mut event = SqsEvent::default();
        event.records = vec![
            msg("ok", r#"{"n":1}"#),
            msg("garbage", "not json"),
            msg("wrong-shape", r#"{"m":1}"#),
            msg("fails", r#"{"n":13}"#),
            msg("ok2", r#"{"n":2}"#),
        ];
        #[derive(serde::Deserialize)]
        struct T {
            n: u32,
        }
        let seen = std::sync::Mutex::new(vec![]);
        let resp = process_sqs_batch(event, |t: T, r| {
            seen.lock().unwrap().push((t.n, r.receive_count));
            async move {
                if t.n == 13 {
                    Err(RecordFailure::new("unlucky"))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        let mut failed: Vec<_> = resp
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        failed.sort();
        assert_eq!(failed, ["fails", "garbage", "wrong-shape"]);
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [(1, 2), (2, 2), (13, 2)]);
    }

    #[test]
    fn queue_urls_come_from_arns() {
        assert_eq!(
            queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:sy-internal-user").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/sy-internal-user")
        );
        assert_eq!(
            queue_url_from_arn("arn:aws-cn:sqs:cn-north-1:1:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/1/q")
        );
        for bad in [
            "",
            "arn:aws:sns:eu-west-1:1:q",
            "arn:aws:sqs:eu-west-1:1",
            "arn:aws:sqs::1:q",
            "arn:aws:sqs:r:1:q:x",
        ] {
            assert_eq!(queue_url_from_arn(bad), None, "{bad}");
        }
    }
}
