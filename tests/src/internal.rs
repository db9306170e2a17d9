//! The internal track of the stack.

use crate::Stack;
use std::time::Duration;
use switchyard_local::esm::{BatchReport, drain};

/// The internal track: the consumer function over this stack's state table,
/// and its queues as the template's rules fill them.
impl Stack {
    /// Consumer settings for tests: retries come back after `retry_base`
    /// (doubling), claims lapse after five seconds.
    pub fn consumer_settings(&self, retry_base: Duration) -> switchyard_consumer::Settings {
        switchyard_consumer::Settings {
            state_table: self.res.state_table.clone(),
            config: switchyard_flow::consumer::ConsumerConfig {
                retry_base,
                retry_max: Duration::from_secs(60),
                lease: Duration::from_secs(5),
                ..Default::default()
            },
        }
    }

    pub fn consumer(&self, retry_base: Duration) -> switchyard_consumer::AwsConsumer {
        switchyard_consumer::AwsConsumer::new(&self.sdk, &self.consumer_settings(retry_base))
            .unwrap_or_else(|e| panic!("registering the handlers: {e}"))
    }

    pub fn state_store(&self) -> switchyard_aws::dynamo::DynamoStateStore {
        switchyard_aws::dynamo::DynamoStateStore::new(self.ddb.clone(), &self.res.state_table)
    }

    /// The URL and DLQ URL of an internal queue by its template logical id.
    pub fn internal_queue(&self, logical_id: &str) -> (String, String) {
        let q = self
            .res
            .internal_queue(logical_id)
            .unwrap_or_else(|| panic!("template.yaml routes nothing to {logical_id}"));
        (q.url.clone(), q.dlq_url.clone())
    }

    /// Runs the consumer over everything visible on an internal queue, as
    /// Lambda's event source mapping would; returns the totals.
    pub async fn drain_internal(
        &self,
        consumer: &switchyard_consumer::AwsConsumer,
        logical_id: &str,
    ) -> (BatchReport, switchyard_flow::consumer::BatchCounts) {
        let (url, _) = self.internal_queue(logical_id);
        let q = self.queue(&url).await;
        let counts = std::sync::Mutex::new(switchyard_flow::consumer::BatchCounts::default());
        let report = drain(&self.sqs, &q, 10, |e| async {
            let (resp, c) = consumer.handle_counted(e).await;
            let mut total = counts.lock().unwrap_or_else(|p| p.into_inner());
            total.handled += c.handled;
            total.duplicates += c.duplicates;
            total.unknown += c.unknown;
            total.retried += c.retried;
            total.poison += c.poison;
            resp
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        (report, counts.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// One poll of an internal queue (up to `batch_size` messages, waiting up
    /// to `wait_secs`) through the consumer; returns the poll's report and
    /// what became of the records.
    pub async fn poll_internal_once(
        &self,
        consumer: &switchyard_consumer::AwsConsumer,
        url: &str,
        batch_size: i32,
        wait_secs: i32,
    ) -> (BatchReport, switchyard_flow::consumer::BatchCounts) {
        let q = self.queue(url).await;
        let counts = std::sync::Mutex::new(switchyard_flow::consumer::BatchCounts::default());
        let report = switchyard_local::esm::poll_once(&self.sqs, &q, batch_size, wait_secs, |e| async {
            let (resp, c) = consumer.handle_counted(e).await;
            *counts.lock().unwrap_or_else(|p| p.into_inner()) = c;
            resp
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        (report, counts.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends raw message bodies to a queue.
    pub async fn send_bodies(&self, url: &str, bodies: &[String]) {
        for b in bodies {
            self.sqs
                .send_message()
                .queue_url(url)
                .message_body(b)
                .send()
                .await
                .unwrap_or_else(|e| panic!("SendMessage: {e}"));
        }
    }
}

/// An event on an internal queue, as the bus's rule delivers it: the
/// EventBridge envelope around a Switchyard envelope of tenant `tenant`.
pub fn bus_message(tenant: &str, id: &str, event_type: &str, data: serde_json::Value) -> String {
    let envelope: switchyard_core::Envelope = serde_json::from_value(serde_json::json!({
        "id": id, "type": event_type, "version": "1.0", "timestamp": "2026-11-29T10:00:00Z",
        "source": "api", "tenant_id": tenant, "data": data,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let entry = switchyard_core::routing::bus_entry(&envelope).unwrap_or_else(|e| panic!("{e}"));
    serde_json::json!({
        "version": "0", "id": format!("eb-{id}"), "detail-type": entry.detail_type, "source": entry.source,
        "time": "2026-11-29T10:00:00Z", "region": switchyard_local::LOCAL_REGION, "resources": [],
        "detail": serde_json::from_str::<serde_json::Value>(&entry.detail).unwrap_or_else(|e| panic!("{e}")),
    })
    .to_string()
}
