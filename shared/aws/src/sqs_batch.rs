//! SQS batch calls: cutting entries into batches within SQS's limits, and
//! making a batch call again for the entries SQS refused for a transient
//! reason. Task queues ([`crate::sqs`]) and DLQ moves ([`crate::redrive`])
//! share it.

use aws_sdk_sqs::types::BatchResultErrorEntry;
use std::future::Future;
use std::ops::Range;
use std::time::Duration;
use switchyard_core::PortError;

/// SQS takes at most ten messages per batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// …and at most 256 KiB in one call.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Batch entries that SQS refused for a transient reason are tried this often.
pub(crate) const BATCH_TRIES: u32 = 4;

/// Splits entries of these sizes into batches within SQS's count and size limits.
pub(crate) fn split_by_size(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if i - start == MAX_BATCH_ENTRIES || (i > start && bytes + size > MAX_BATCH_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

/// One batch call's answer, by entry id (a position in the caller's list):
/// the entries that succeeded (each with a value, such as the new message's
/// id) and the ones that failed (with whether it was the sender's fault).
pub(crate) struct BatchReply {
    ok: Vec<(usize, String)>,
    failed: Vec<(usize, bool, String)>,
}

/// The reply of a batch call from its successful entries (id and value) and
/// its failed entries.
pub(crate) fn reply<'a>(ok: impl Iterator<Item = (&'a str, String)>, failed: &[BatchResultErrorEntry]) -> BatchReply {
    BatchReply {
        // SQS answers with the ids it was given; anything else is ignored
        // (and so counts as not done).
        ok: ok.filter_map(|(id, v)| Some((id.parse().ok()?, v))).collect(),
        failed: failed
            .iter()
            .filter_map(|f| {
                let what = format!("{} {}", f.code(), f.message().unwrap_or(""));
                Some((f.id().parse().ok()?, f.sender_fault(), what.trim_end().to_owned()))
            })
            .collect(),
    }
}

/// What a batch operation achieved: the entries that succeeded, and why it stopped short.
pub(crate) struct BatchRun {
    /// The ids of the entries that succeeded, each with its value.
    pub(crate) done: Vec<(usize, String)>,
    /// Why some entries were not done; `None` if all were.
    pub(crate) error: Option<PortError>,
}

/// Makes batch call `op` with `once` for the entry ids `ids`, then again for
/// the entries that failed for a transient reason, up to [`BATCH_TRIES`]
/// times in all, waiting a little longer before each try. A call that fails
/// as a whole for a transient reason counts as a try; a permanent failure,
/// or an entry refused as the sender's fault, stops at once.
pub(crate) async fn with_retries<F, Fut>(op: &str, ids: Vec<usize>, mut once: F) -> BatchRun
where
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Result<BatchReply, PortError>>,
{
    let mut pending = ids;
    let mut done = Vec::new();
    let mut last_error = String::new();
    for attempt in 0..BATCH_TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        let reply = match once(pending.clone()).await {
            Ok(reply) => reply,
            Err(e) if e.retryable => {
                last_error = e.message;
                continue;
            }
            Err(e) => return BatchRun { done, error: Some(e) },
        };
        done.extend(reply.ok);
        if reply.failed.is_empty() {
            return BatchRun { done, error: None };
        }
        if let Some((_, _, what)) = reply.failed.iter().find(|(_, sender_fault, _)| *sender_fault) {
            return BatchRun {
                done,
                error: Some(PortError::permanent(format!("{op} refused a message: {what}"))),
            };
        }
        last_error = format!(
            "{} of {} entries failed: {}",
            reply.failed.len(),
            pending.len(),
            reply.failed[0].2
        );
        pending = reply.failed.iter().map(|(id, _, _)| *id).collect();
    }
    BatchRun {
        done,
        error: Some(PortError::transient(format!(
            "{op} gave up after {BATCH_TRIES} tries: {last_error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn batches_respect_count_and_size() {
        assert_eq!(split_by_size(&[1; 23]), vec![0..10, 10..20, 20..23]);
        assert_eq!(split_by_size(&[100 * 1024; 3]), vec![0..2, 2..3]);
        assert_eq!(split_by_size(&[300 * 1024, 1]), vec![0..1, 1..2]);
        assert!(split_by_size(&[]).is_empty());
    }

    fn refusal(id: usize, sender_fault: bool, code: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry::builder()
            .id(id.to_string())
            .sender_fault(sender_fault)
            .code(code)
            .build()
            .unwrap()
    }

    /// A batch call that refuses, as a transient failure, the entries in
    /// `refuse` while any are left in it, and records each call's entries.
    fn call_refusing(
        calls: &Mutex<Vec<Vec<usize>>>,
        refuse: Vec<usize>,
        sender_fault: bool,
    ) -> impl FnMut(Vec<usize>) -> std::future::Ready<Result<BatchReply, PortError>> + '_ {
        move |pending: Vec<usize>| {
            calls.lock().unwrap().push(pending.clone());
            let ids: Vec<String> = pending.iter().map(usize::to_string).collect();
            let failed: Vec<_> = pending
                .iter()
                .filter(|i| refuse.contains(i))
                .map(|&i| refusal(i, sender_fault, "InternalError"))
                .collect();
            let ok = ids
                .iter()
                .filter(|id| !failed.iter().any(|f| f.id() == id.as_str()))
                .map(|id| (id.as_str(), format!("m-{id}")));
            std::future::ready(Ok(reply(ok, &failed)))
        }
    }

    #[tokio::test]
    async fn only_refused_entries_are_retried_and_then_it_gives_up() {
        let calls = Mutex::new(vec![]);
        let run = with_retries("SendMessageBatch", vec![0, 1, 2], call_refusing(&calls, vec![1], false)).await;
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls, vec![vec![0, 1, 2], vec![1], vec![1], vec![1]]);
        assert_eq!(run.done, vec![(0, "m-0".to_string()), (2, "m-2".to_string())]);
        let e = run.error.unwrap();
        assert!(e.retryable, "{e:?}");
        assert!(e.message.contains("gave up after 4 tries"), "{}", e.message);
    }

    #[tokio::test]
    async fn a_refusal_by_the_senders_fault_stops_at_once() {
        let calls = Mutex::new(vec![]);
        let run = with_retries("DeleteMessageBatch", vec![0, 1], call_refusing(&calls, vec![0], true)).await;
        assert_eq!(calls.into_inner().unwrap().len(), 1);
        assert_eq!(run.done, vec![(1, "m-1".to_string())]);
        let e = run.error.unwrap();
        assert!(!e.retryable);
        assert_eq!(e.message, "DeleteMessageBatch refused a message: InternalError");
    }

    #[tokio::test]
    async fn a_permanent_call_failure_stops_and_a_transient_one_is_tried_again() {
        let mut tries = 0;
        let run = with_retries("SendMessageBatch", vec![0], |_| {
            tries += 1;
            let first = tries == 1;
            async move {
                if first {
                    Err(PortError::transient("throttled"))
                } else {
                    Ok(reply([("0", String::new())].into_iter(), &[]))
                }
            }
        })
        .await;
        assert!(run.error.is_none());
        assert_eq!(tries, 2);
        let run = with_retries("SendMessageBatch", vec![0], |_| async {
            Err(PortError::permanent("AccessDenied"))
        })
        .await;
        assert!(run.done.is_empty());
        assert_eq!(run.error.unwrap().message, "AccessDenied");
    }
}
