//! The stack's queues: running the functions over them as the event
//! source mapping would, their depth, and rules that feed a queue.

use crate::Stack;
use std::time::Duration;
use switchyard_local::esm::{BatchReport, QueueRef, drain};

impl Stack {
    pub async fn queue(&self, url: &str) -> QueueRef {
        QueueRef::resolve(&self.sqs, url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the fan-out function over everything on the fan-out queue.
    pub async fn drain_fanout(&self) -> BatchReport {
        let fanout = self.fanout();
        let q = self.queue(&self.res.fanout_queue_url).await;
        drain(&self.sqs, &q, 10, |e| fanout.handle(e))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the delivery function over everything visible on the deliveries queue.
    pub async fn drain_deliveries(&self, timeout: Duration) -> BatchReport {
        self.drain_deliveries_with(&self.delivery(timeout)).await
    }

    /// Runs this delivery function over everything visible on the deliveries queue.
    pub async fn drain_deliveries_with(&self, delivery: &switchyard_delivery::AwsDelivery) -> BatchReport {
        let q = self.queue(&self.res.deliveries_queue_url).await;
        drain(&self.sqs, &q, 10, |e| delivery.handle(e))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Messages on a queue (visible, in flight and delayed).
    pub async fn depth(&self, url: &str) -> u64 {
        switchyard_local::resources::queue_depth(&self.sqs, url)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A rule named `rule` on `bus` whose target is a new queue; returns the
    /// queue's URL. What the rule matches can then be read from the queue.
    pub async fn rule_to_queue(&self, bus: &str, rule: &str, pattern: &str) -> String {
        use switchyard_aws::aws_sdk_eventbridge::{Client, types::Target};
        let eb = Client::new(&self.sdk);
        let name = format!("{}-{rule}", self.res.prefix);
        let url = switchyard_local::resources::create_queue(&self.sqs, &name, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let arn = switchyard_local::resources::queue_arn(&self.sqs, &url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eb.put_rule()
            .name(rule)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let target = Target::builder()
            .id("q")
            .arn(arn)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        eb.put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        url
    }

    /// Receives (and deletes) every message on a queue, waiting up to a
    /// second for stragglers.
    pub async fn take_messages(&self, url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap_or_else(|e| panic!("receive: {e}"));
            let msgs = out.messages.unwrap_or_default();
            if msgs.is_empty() {
                return bodies;
            }
            for m in msgs {
                bodies.push(m.body.unwrap_or_default());
                if let Some(handle) = m.receipt_handle {
                    self.sqs
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(handle)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("delete: {e}"));
                }
            }
        }
    }
}
