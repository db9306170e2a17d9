//! One log line for the records of a batch that went as expected.
//!
//! CloudWatch Logs bills every byte: a JSON line per record cost about 390
//! bytes in each of ingest, fan-out and delivery, half a dollar per million
//! deliveries. The records that went as expected (an event accepted, fanned
//! out, delivered) are gathered into one line per batch that still names
//! every event, delivery and tenant, so a search for an id finds it; the
//! records that need a look (a retry, a failure, a duplicate, a skip) keep a
//! line of their own. The per-record lines are still there at `DEBUG`.

use std::sync::Mutex;

/// The ids of a batch's records, gathered while they are handled
/// (concurrently: adding takes `&self`).
#[derive(Debug, Default)]
pub struct BatchLine {
    inner: Mutex<BatchSummary>,
}

/// What one batch line says: how many records, and their ids, space
/// separated (tenants once each).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// How many records the batch held.
    pub count: usize,
    /// The tenants' ids, each once.
    pub tenant_ids: String,
    /// The events' ids.
    pub event_ids: String,
    /// Empty where the records are not deliveries.
    pub delivery_ids: String,
    /// The trace ids of the records' events, each once (events without a
    /// trace add none).
    pub trace_ids: String,
}

impl BatchLine {
    /// An empty line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record: its tenant, its event, for a delivery its id, and
    /// its event's trace id (empty: none).
    pub fn add(&self, tenant: &str, event: &str, delivery: Option<&str>, trace: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.count += 1;
        if !s.tenant_ids.split(' ').any(|t| t == tenant) {
            push_word(&mut s.tenant_ids, tenant);
        }
        push_word(&mut s.event_ids, event);
        if let Some(d) = delivery {
            push_word(&mut s.delivery_ids, d);
        }
        if !trace.is_empty() && !s.trace_ids.split(' ').any(|t| t == trace) {
            push_word(&mut s.trace_ids, trace);
        }
    }

    /// The line's fields, or `None` when no record was added (no line).
    pub fn finish(self) -> Option<BatchSummary> {
        let s = self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        (s.count > 0).then_some(s)
    }
}

fn push_word(list: &mut String, word: &str) {
    if !list.is_empty() {
        list.push(' ');
    }
    list.push_str(word);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_every_record_and_each_tenant_once() {
        let line = BatchLine::new();
        line.add("acme", "evt_1", Some("dlv_1"), "4bf92f3577b34da6a3ce929d0e0e4736");
        line.add("globex", "evt_2", Some("dlv_2"), "0af7651916cd43dd8448eb211c80319c");
        line.add("acme", "evt_3", Some("dlv_3"), "4bf92f3577b34da6a3ce929d0e0e4736");
        line.add("acme", "evt_4", Some("dlv_4"), "");
        assert_eq!(
            line.finish(),
            Some(BatchSummary {
                count: 4,
                tenant_ids: "acme globex".into(),
                event_ids: "evt_1 evt_2 evt_3 evt_4".into(),
                delivery_ids: "dlv_1 dlv_2 dlv_3 dlv_4".into(),
                trace_ids: "4bf92f3577b34da6a3ce929d0e0e4736 0af7651916cd43dd8448eb211c80319c".into(),
            })
        );
    }

    #[test]
    fn a_tenant_that_prefixes_another_is_still_named() {
        let line = BatchLine::new();
        line.add("acme-eu", "evt_1", None, "");
        line.add("acme", "evt_2", None, "");
        let s = line.finish().unwrap();
        assert_eq!(s.tenant_ids, "acme-eu acme");
        assert_eq!(s.delivery_ids, "");
    }

    #[test]
    fn an_empty_batch_has_no_line() {
        assert_eq!(BatchLine::new().finish(), None);
    }

    #[test]
    fn records_added_from_concurrent_tasks_are_all_counted() {
        let line = BatchLine::new();
        std::thread::scope(|s| {
            for i in 0..8 {
                let line = &line;
                s.spawn(move || line.add("t", &format!("evt_{i}"), None, ""));
            }
        });
        let s = line.finish().unwrap();
        assert_eq!(s.count, 8);
        assert_eq!(s.event_ids.split(' ').count(), 8);
    }
}
