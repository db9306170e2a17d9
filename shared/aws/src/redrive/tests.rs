//! Unit tests of the DLQ settings, the move's fallback rule and the copies.

use super::copies::{copy_of, entry_size, replayable};
use super::move_task::refusal_means_unsupported;
use super::*;
use aws_sdk_sqs::types::MessageAttributeValue;

fn pair(name: &str, dlq: &str, source: &str) -> DlqPair {
    DlqPair {
        name: name.into(),
        dlq_url: dlq.into(),
        source_url: source.into(),
        replay: Replay::Copy,
    }
}

#[test]
fn parse_dlqs_reads_the_setting() {
    let json = r#"[
        {"name": "deliveries", "dlq_url": "https://sqs/q-dlq", "source_url": "https://sqs/q"},
        {"name": "internal-user", "dlq_url": "https://sqs/u-dlq", "source_url": "https://sqs/u"}
    ]"#;
    assert_eq!(
        parse_dlqs(json).unwrap(),
        vec![
            pair("deliveries", "https://sqs/q-dlq", "https://sqs/q"),
            pair("internal-user", "https://sqs/u-dlq", "https://sqs/u"),
        ]
    );
    assert_eq!(parse_dlqs("[]").unwrap(), vec![]);
}

#[test]
fn parse_dlqs_refuses_bad_settings() {
    for (json, why) in [
        ("", "empty"),
        ("{}", "not an array"),
        (r#"[{"name": "a", "dlq_url": "d"}]"#, "missing source_url"),
        (r#"[{"name": "", "dlq_url": "d", "source_url": "s"}]"#, "empty name"),
        (r#"[{"name": " ", "dlq_url": "d", "source_url": "s"}]"#, "blank name"),
        (r#"[{"name": "a", "dlq_url": "", "source_url": "s"}]"#, "empty DLQ URL"),
        (
            r#"[{"name": "a", "dlq_url": "d", "source_url": "d"}]"#,
            "DLQ is its own source",
        ),
        (
            r#"[{"name": "a", "dlq_url": "d", "source_url": "s"}, {"name": "a", "dlq_url": "e", "source_url": "t"}]"#,
            "duplicate name",
        ),
        (
            r#"[{"name": 1, "dlq_url": "d", "source_url": "s"}]"#,
            "name not a string",
        ),
    ] {
        assert!(parse_dlqs(json).is_err(), "{why}: {json}");
    }
    let err =
        parse_dlqs(r#"[{"name":"x","dlq_url":"d","source_url":"s"},{"name":"x","dlq_url":"e","source_url":"t"}]"#)
            .unwrap_err();
    assert!(err.contains("\"x\""), "{err}");
}

#[test]
fn only_refusals_that_mean_unsupported_fall_back() {
    assert!(refusal_means_unsupported(400, Some("UnsupportedOperation")));
    assert!(refusal_means_unsupported(400, Some("InvalidAction")));
    assert!(refusal_means_unsupported(400, Some("InvalidParameterValue")));
    assert!(refusal_means_unsupported(404, None));
    assert!(
        refusal_means_unsupported(500, None),
        "moto's HTML page for an action it lacks"
    );
    assert!(!refusal_means_unsupported(500, Some("InternalError")));
    assert!(!refusal_means_unsupported(503, Some("ServiceUnavailable")));
    assert!(!refusal_means_unsupported(400, Some("ThrottlingException")));
    assert!(!refusal_means_unsupported(
        400,
        Some("AWS.SimpleQueueService.RequestThrottled")
    ));
    assert!(!refusal_means_unsupported(429, None));
    assert!(!refusal_means_unsupported(403, Some("AccessDenied")));
    assert!(!refusal_means_unsupported(400, Some("AccessDeniedException")));
    assert!(!refusal_means_unsupported(403, Some("InvalidClientTokenId")));
}

/// The management API's handlers own their inputs and must be `Send`
/// (checked when this compiles; never run).
#[allow(dead_code)]
fn futures_are_send(sqs: aws_sdk_sqs::Client, pair: DlqPair) {
    fn send<T: Send + 'static>(_: T) {}
    send(async move {
        let _ = queue_depth(&sqs, &pair.name, &pair.dlq_url).await;
        let _ = peek(&sqs, &pair.dlq_url, 5).await;
        let _ = move_messages(&sqs, &pair, None).await;
    });
}

#[test]
fn entry_size_counts_body_and_attributes() {
    let m = Message::builder()
        .body("12345")
        .message_attributes(
            "k",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("vv")
                .build()
                .unwrap(),
        )
        .build();
    assert_eq!(entry_size(&copy_of(0, &m, false, Replay::Copy).unwrap()), 5 + 1 + 6 + 2);
}

#[test]
fn an_aws_events_copy_is_the_event_marked_for_the_eventbridge_door() {
    let event = r#"{"id":"e-1","source":"aws.s3","detail-type":"Object Created","detail":{}}"#;
    let record = format!(r#"{{"requestContext":{{"condition":"RetriesExhausted"}},"requestPayload":{event}}}"#);
    let error_code = MessageAttributeValue::builder()
        .data_type("String")
        .string_value("SDK_CLIENT_ERROR")
        .build()
        .unwrap();
    for body in [event.to_string(), record] {
        let m = Message::builder()
            .body(&body)
            .message_attributes("ERROR_CODE", error_code.clone())
            .build();
        assert!(replayable(Replay::EventbridgeToIngest, &m));
        let copy = copy_of(0, &m, false, Replay::EventbridgeToIngest).unwrap();
        let got: serde_json::Value = serde_json::from_str(copy.message_body()).unwrap();
        assert_eq!(got, serde_json::from_str::<serde_json::Value>(event).unwrap());
        let attributes = copy.message_attributes().unwrap();
        assert_eq!(attributes.len(), 1, "{attributes:?}");
        assert_eq!(
            attributes[switchyard_core::doors::DOOR_ATTRIBUTE].string_value(),
            Some(switchyard_core::doors::EVENTBRIDGE_DOOR)
        );
    }
    let junk = Message::builder().body("{not json").build();
    assert!(!replayable(Replay::EventbridgeToIngest, &junk));
    assert!(replayable(Replay::Copy, &junk));
}
