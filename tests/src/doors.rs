//! The ingest doors of the stack.

use crate::Stack;
use switchyard_aws::aws_sdk_sqs;

/// The ingest doors: ingest with other settings, the SQS ingest queue as
/// Lambda's event source mapping would run it (message attributes included),
/// and AWS service events as an EventBridge rule on the default bus delivers
/// them.
impl Stack {
    pub fn ingest_with(&self, settings: &switchyard_ingest::Settings) -> switchyard_ingest::AwsIngest {
        switchyard_ingest::AwsIngest::new(&self.sdk, settings)
    }

    /// Sends one message to the SQS ingest queue with the given String
    /// message attributes; returns its message id.
    pub async fn send_ingest_message(&self, body: &str, attributes: &[(&str, &str)]) -> String {
        let mut req = self
            .sqs
            .send_message()
            .queue_url(&self.res.ingest_queue_url)
            .message_body(body);
        for (name, value) in attributes {
            req = req.message_attributes(
                *name,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*value)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        let out = req.send().await.unwrap_or_else(|e| panic!("SendMessage: {e}"));
        out.message_id.unwrap_or_else(|| panic!("SendMessage returned no id"))
    }

    /// Receives up to ten messages of the ingest queue (waiting up to
    /// `wait_secs` for the first), runs them through `ingest.dispatch` as the
    /// SQS event Lambda builds, deletes the ones not reported as failures,
    /// and returns the message ids received and the ids reported.
    pub async fn poll_ingest_queue(
        &self,
        ingest: &switchyard_ingest::AwsIngest,
        wait_secs: i32,
    ) -> (Vec<String>, Vec<String>) {
        let queue = self.queue(&self.res.ingest_queue_url).await;
        let out = self
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {e}"));
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return (vec![], vec![]);
        }
        // Message attributes included, as Lambda passes them.
        let event = switchyard_local::esm::to_sqs_event(&messages, &queue);
        let answer = ingest
            .dispatch(serde_json::to_value(&event).unwrap_or_else(|e| panic!("{e}")))
            .await
            .unwrap_or_else(|e| panic!("the SQS door failed the whole batch: {e}"));
        let response: aws_lambda_events::event::sqs::SqsBatchResponse =
            serde_json::from_value(answer).unwrap_or_else(|e| panic!("not a batch response: {e}"));
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        let received: Vec<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();
        for m in &messages {
            if m.message_id.as_ref().is_some_and(|id| !failed.contains(id)) {
                self.sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("DeleteMessage: {e}"));
            }
        }
        (received, failed)
    }

    /// Puts an event on moto's default bus and returns it as a rule on that
    /// bus delivers it to its target (here an SQS queue): the JSON Lambda
    /// would get from the rule. `resources` must be unique to the test (the
    /// default bus is shared): the rule matches on them.
    pub async fn aws_service_event(
        &self,
        source: &str,
        detail_type: &str,
        resources: &[&str],
        detail: &serde_json::Value,
    ) -> serde_json::Value {
        use switchyard_aws::aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
        let eb = switchyard_aws::aws_sdk_eventbridge::Client::new(&self.sdk);
        let target_url = switchyard_local::resources::create_queue(
            &self.sqs,
            &format!("{}-default-bus-target", self.res.prefix),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let target_arn = switchyard_local::resources::queue_arn(&self.sqs, &target_url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rule = format!("{}-aws-events", self.res.prefix);
        let pattern = serde_json::json!({ "source": [source], "detail-type": [detail_type], "resources": resources });
        eb.put_rule()
            .name(&rule)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutRule: {e}"));
        eb.put_targets()
            .rule(&rule)
            .targets(
                Target::builder()
                    .id("ingest")
                    .arn(&target_arn)
                    .build()
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutTargets: {e}"));
        let out = eb
            .put_events()
            .entries(
                PutEventsRequestEntry::builder()
                    .source(source)
                    .detail_type(detail_type)
                    .set_resources(Some(resources.iter().map(|r| r.to_string()).collect()))
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutEvents: {e}"));
        assert_eq!(out.failed_entry_count(), 0, "PutEvents: {out:?}");
        let got = self
            .sqs
            .receive_message()
            .queue_url(&target_url)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ReceiveMessage: {e}"));
        let body = got
            .messages
            .unwrap_or_default()
            .into_iter()
            .next()
            .and_then(|m| m.body)
            .unwrap_or_else(|| panic!("the default bus rule delivered nothing"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }
}
