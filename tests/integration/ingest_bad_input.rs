//! Bad input at ingest gets a clear 4xx JSON error and writes nothing.

use aws_lambda_events::http::Method;
use base64::Engine as _;
use switchyard_local::http_api::{post_event, request};
use switchyard_tests::{Stack, json_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_change_nothing() {
    let stack = Stack::new("badinput").await;
    let (_, key) = stack.tenant("acme").await;
    let key = key.expose();
    let registry_before = stack.scan(&stack.res.registry_table).await.len();
    let ingest = stack.ingest();

    let huge = format!(r#"{{"type":"a.b","data":{{"x":"{}"}}}}"#, "y".repeat(70 * 1024));
    let deep = format!(
        r#"{{"type":"a.b","data":{{"x":{}{}}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
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
