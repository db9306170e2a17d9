//! Bad input at ingest gets a clear 4xx JSON error and writes nothing.

use aws_lambda_events::http::Method;
use base64::Engine as _;
use switchyard_local::http_api::{post_event, request};
use switchyard_tests::{Stack, json_body};

/// An event whose data holds a 70 KiB string: over the 64 KiB limit.
fn huge_body() -> String {
    format!(r#"{{"type":"a.b","data":{{"x":"{}"}}}}"#, "y".repeat(70 * 1024))
}

/// An event whose data nests 5 000 arrays deep.
fn deep_body() -> String {
    format!(
        r#"{{"type":"a.b","data":{{"x":{}{}}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_change_nothing() {
    let stack = Stack::new("badinput").await;
    let (_, key) = stack.tenant("acme").await;
    let key = key.expose();
    let registry_before = stack.scan(&stack.res.registry_table).await.len();
    let ingest = stack.ingest();

    let (huge, deep) = (huge_body(), deep_body());
    let auth = format!("Bearer {key}");
    let mut invalid_utf8 = request(Method::POST, "/v1/events", &[("authorization", &auth)], None);
    invalid_utf8.body =
        Some(base64::engine::general_purpose::STANDARD.encode(b"{\"type\":\"a.b\",\"data\":{\"k\":\"\xff\"}}"));
    invalid_utf8.is_base64_encoded = true;
    let mut bad_base64 = post_event(key, "%%%");
    bad_base64.is_base64_encoded = true;

    let cases = vec![
        ("malformed JSON", post_event(key, "{\"type\": "), 400, "invalid_json"),
        ("empty body", post_event(key, ""), 400, "invalid_json"),
        ("array body", post_event(key, "[1,2]"), 400, "invalid_json"),
        (
            "unknown field",
            post_event(key, r#"{"type":"a.b","data":{},"tenant_id":"other"}"#),
            400,
            "invalid_json",
        ),
        (
            "wrong type of field",
            post_event(key, r#"{"type":["a.b"],"data":{}}"#),
            400,
            "invalid_json",
        ),
        ("deep nesting", post_event(key, &deep), 400, "invalid_json"),
        ("invalid UTF-8", invalid_utf8, 400, "invalid_json"),
        ("bad base64", bad_base64, 400, "invalid_body"),
        ("missing type", post_event(key, r#"{"data":{}}"#), 422, "missing_field"),
        (
            "missing data",
            post_event(key, r#"{"type":"a.b"}"#),
            422,
            "missing_field",
        ),
        (
            "bad type syntax",
            post_event(key, r#"{"type":"User Created!","data":{}}"#),
            422,
            "invalid_field",
        ),
        (
            "one-segment type",
            post_event(key, r#"{"type":"user","data":{}}"#),
            422,
            "invalid_field",
        ),
        (
            "non-object data",
            post_event(key, r#"{"type":"a.b","data":[1]}"#),
            422,
            "invalid_field",
        ),
        (
            "string data",
            post_event(key, r#"{"type":"a.b","data":"x"}"#),
            422,
            "invalid_field",
        ),
        (
            "bad timestamp",
            post_event(key, r#"{"type":"a.b","data":{},"timestamp":"soon"}"#),
            422,
            "invalid_field",
        ),
        (
            "bad id",
            post_event(key, r#"{"type":"a.b","data":{},"id":"a b"}"#),
            422,
            "invalid_field",
        ),
        ("over the size limit", post_event(key, &huge), 413, "payload_too_large"),
        (
            "no API key",
            request(Method::POST, "/v1/events", &[], Some(r#"{"type":"a.b","data":{}}"#)),
            401,
            "unauthorized",
        ),
        (
            "unknown API key",
            post_event("sy_AAAAAAAAAAAAAAAAAAAAAAAAAAAA", r#"{"type":"a.b","data":{}}"#),
            401,
            "unauthorized",
        ),
        (
            "malformed API key",
            post_event("hunter2", r#"{"type":"a.b","data":{}}"#),
            401,
            "unauthorized",
        ),
        (
            "not JSON content",
            request(
                Method::POST,
                "/v1/events",
                &[("authorization", &auth), ("content-type", "text/plain")],
                Some("{}"),
            ),
            415,
            "unsupported_media_type",
        ),
        (
            "wrong method",
            request(Method::GET, "/v1/events", &[("authorization", &auth)], None),
            405,
            "method_not_allowed",
        ),
    ];
    for (what, req, status, code) in cases {
        let resp = ingest.handle(req).await;
        assert_eq!(resp.status_code, i64::from(status), "{what}: {:?}", resp.body);
        let body = json_body(&resp);
        assert_eq!(body["code"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        assert_eq!(
            resp.headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
    }

    assert!(
        stack.scan(&stack.res.deliveries_table).await.is_empty(),
        "no event was stored"
    );
    assert_eq!(stack.scan(&stack.res.registry_table).await.len(), registry_before);
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0, "nothing was queued");

    // And a good request still works afterwards.
    let ok = ingest.handle(post_event(key, r#"{"type":"a.b","data":{}}"#)).await;
    assert_eq!(ok.status_code, 202);
}

/// The same bad bodies through the other doors, as Lambda hands them over
/// (`dispatch`, the function's entry point): every SQS record with one is a
/// batch item failure, an EventBridge event with a bad detail is an error,
/// a shape no door knows is an error; none panics, none writes or queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_through_every_other_door_fails_and_changes_nothing() {
    use serde_json::{Value, json};
    let stack = Stack::new("baddoors").await;
    stack.tenant("acme").await;
    let ingest = stack.ingest();
    let (huge, deep) = (huge_body(), deep_body());
    let bodies = [
        ("malformed JSON", "{\"type\": ".to_string()),
        ("empty", String::new()),
        ("an array", "[1,2]".to_string()),
        ("unknown field", r#"{"type":"a.b","data":{},"bogus":1}"#.to_string()),
        ("wrong type of field", r#"{"type":7,"data":{}}"#.to_string()),
        ("bad type syntax", r#"{"type":"Not A Type!","data":{}}"#.to_string()),
        ("string data", r#"{"type":"a.b","data":"x"}"#.to_string()),
        ("a huge string (70 KiB)", huge),
        ("deep nesting (5000)", deep),
        (
            "a NUL and a lone surrogate escape",
            "{\"type\":\"a.b\",\"data\":{\"k\":\"\\u0000\\ud800\"}}".to_string(),
        ),
    ];
    let record = |i: usize, body: &str, tenant: Option<&str>| {
        let mut attrs = serde_json::Map::new();
        if let Some(t) = tenant {
            attrs.insert("tenant_id".into(), json!({"stringValue": t, "dataType": "String"}));
        }
        json!({
            "messageId": format!("m{i}"),
            "receiptHandle": format!("r{i}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": attrs,
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
            "awsRegion": "us-east-1"
        })
    };
    // SQS: one batch of every bad body, plus a good body without a tenant.
    let mut records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, (_, b))| record(i, b, Some("acme")))
        .collect();
    records.push(record(99, r#"{"type":"a.b","data":{}}"#, None));
    records.push(record(98, r#"{"type":"a.b","data":{}}"#, Some("nobody-here")));
    let n = records.len();
    let out = ingest.dispatch(json!({ "Records": records })).await.unwrap();
    let failed: Vec<&str> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    assert_eq!(failed.len(), n, "every bad record is a batch item failure: {out}");

    // EventBridge: bad details, and events no tenant rule claims.
    for (what, detail) in [
        ("a string detail", json!("x")),
        ("a null detail", Value::Null),
        (
            "a deep detail",
            serde_json::from_str::<Value>(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap(),
        ),
        ("a huge detail", json!({"x": "y".repeat(300 * 1024)})),
    ] {
        let event = json!({
            "version": "0", "id": "e-1", "detail-type": "Object Created", "source": "aws.s3",
            "account": "123456789012", "time": "2026-11-29T10:00:00Z", "region": "us-east-1",
            "resources": [], "detail": detail
        });
        assert!(ingest.dispatch(event).await.is_err(), "{what} is refused");
    }
    // Shapes no door knows.
    for shape in [
        json!({}),
        json!([]),
        json!("a string"),
        json!(42),
        json!({"Records": "x"}),
        json!({"Records": [{"eventSource": "aws:sqs"}]}),
        json!({"requestContext": {"http": {"method": 7}}}),
    ] {
        // An error, or (for an SQS record without an id) nothing to report;
        // never an event.
        if let Ok(v) = ingest.dispatch(shape.clone()).await {
            assert!(v.get("id").is_none(), "{shape} was ingested: {v}");
        }
    }

    assert!(
        stack.scan(&stack.res.deliveries_table).await.is_empty(),
        "nothing was stored"
    );
    assert_eq!(stack.depth(&stack.res.fanout_queue_url).await, 0, "nothing was queued");
}
