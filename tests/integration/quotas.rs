//! Per-tenant limits against moto: endpoints and API keys per tenant (also
//! when creates race at the limit, and for a tenant stored before the
//! counters), custom header count and size, the ingest rate of the HTTP
//! door (429 with `Retry-After` for one tenant while another is served),
//! and custom header values masked in every answer but kept, unmasked, for
//! delivery.

use serde_json::json;
use std::time::Duration;
use switchyard_core::ports::Registry as _;
use switchyard_core::quota::{Limits, MASK};
use switchyard_local::http_api::post_event;
use switchyard_tests::{ADMIN_KEY, Answer, Receiver, Stack, json_body};

fn code(a: &Answer) -> &str {
    a.body["code"].as_str().unwrap_or_default()
}

/// The API over `stack` with small limits.
fn small_limits(stack: &Stack) -> switchyard_tests::Api {
    let mut settings = stack.api_settings();
    settings.limits = Limits {
        endpoints_per_tenant: 3,
        api_keys_per_tenant: 2,
        headers_per_endpoint: 3,
        header_bytes_per_endpoint: 64,
        ..Limits::default()
    };
    stack.api_with(&settings)
}

async fn endpoint_count(stack: &Stack, tenant: &str) -> usize {
    let t = switchyard_core::TenantId::parse(tenant).unwrap();
    stack.registry.routes(&t).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_endpoints_per_tenant_hold_when_creates_race() {
    let stack = Stack::new("quota-endpoints").await;
    let api = small_limits(&stack);
    let key = api.tenant("acme").await;
    let other = api.tenant("other").await;
    let create = |key: String| {
        let api = &api;
        async move {
            api.call(
                "POST",
                "/v1/endpoints",
                Some(&key),
                Some(json!({"url": "http://127.0.0.1:9/hook"})),
            )
            .await
        }
    };
    for _ in 0..2 {
        assert_eq!(create(key.clone()).await.status, 201);
    }
    // Two creates at once at limit - 1: exactly one passes.
    let (a, b) = tokio::join!(create(key.clone()), create(key.clone()));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let refused = if a.status == 409 { &a } else { &b };
    assert_eq!(code(refused), "limit_exceeded");
    assert_eq!(
        refused.body["details"],
        json!({"limit": "endpoints_per_tenant", "value": 3})
    );
    assert_eq!(
        endpoint_count(&stack, "acme").await,
        3,
        "nothing written past the limit"
    );
    assert_eq!(create(key.clone()).await.status, 409);
    // Another tenant has its own count.
    assert_eq!(create(other.clone()).await.status, 201);
    // A deleted endpoint frees its place.
    let list = api.call("GET", "/v1/endpoints", Some(&key), None).await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        api.call("DELETE", &format!("/v1/endpoints/{id}"), Some(&key), None)
            .await
            .status,
        204
    );
    assert_eq!(create(key.clone()).await.status, 201);
    assert_eq!(create(key).await.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_endpoints_of_a_tenant_stored_before_the_counter_are_counted() {
    let stack = Stack::new("quota-seed").await;
    // Stored directly, as before counters existed: no counter item.
    let (tenant, key) = stack.tenant("legacy").await;
    for _ in 0..3 {
        let ep = switchyard_core::Endpoint::new(
            tenant.clone(),
            switchyard_core::EndpointUrl::parse("http://127.0.0.1:9/old").unwrap(),
            vec![],
            switchyard_core::time_util::now_utc(),
        );
        stack.registry.put_endpoint(&ep).await.unwrap();
    }
    let api = small_limits(&stack);
    let a = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(key.expose()),
            Some(json!({"url": "http://127.0.0.1:9/new"})),
        )
        .await;
    assert_eq!((a.status, code(&a)), (409, "limit_exceeded"), "{a:?}");
    assert_eq!(endpoint_count(&stack, "legacy").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_api_keys_per_tenant() {
    let stack = Stack::new("quota-keys").await;
    let api = small_limits(&stack);
    api.tenant("acme").await; // its first key
    let new_key = || {
        api.call(
            "POST",
            "/v1/admin/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            Some(json!({"label": "more"})),
        )
    };
    let (a, b) = tokio::join!(new_key(), new_key());
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
    let refused = if a.status == 409 { &a } else { &b };
    assert_eq!(
        refused.body["details"],
        json!({"limit": "api_keys_per_tenant", "value": 2})
    );
    let keys = api
        .call("GET", "/v1/admin/tenants/acme/api-keys", Some(ADMIN_KEY), None)
        .await;
    let items = keys.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    // A revoked key frees its place.
    let key_id = items[0]["key_id"].as_str().unwrap();
    let revoked = api
        .call(
            "DELETE",
            &format!("/v1/admin/tenants/acme/api-keys/{key_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    assert_eq!(new_key().await.status, 201);
    assert_eq!(new_key().await.status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_custom_header_count_and_size() {
    let stack = Stack::new("quota-headers").await;
    let api = small_limits(&stack);
    let key = api.tenant("acme").await;
    let with_headers = |h: serde_json::Value| json!({"url": "http://127.0.0.1:9/h", "headers": h});
    let too_many = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(with_headers(json!({"x-a": "1", "x-b": "2", "x-c": "3", "x-d": "4"}))),
        )
        .await;
    assert_eq!((too_many.status, code(&too_many)), (422, "validation_failed"));
    assert_eq!(too_many.body["details"]["limit"], "headers_per_endpoint");
    assert_eq!(too_many.body["details"]["value"], 3);
    let too_big = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(with_headers(json!({"x-a": "v".repeat(40), "x-b": "v".repeat(40)}))),
        )
        .await;
    assert_eq!(too_big.status, 422, "{too_big:?}");
    assert_eq!(too_big.body["details"]["limit"], "header_bytes_per_endpoint");
    assert_eq!(too_big.body["details"]["value"], 64);
    assert_eq!(endpoint_count(&stack, "acme").await, 0, "nothing written");
    // Within the limits; then a PATCH past them changes nothing.
    let ok = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(with_headers(json!({"x-a": "1"}))),
        )
        .await;
    assert_eq!(ok.status, 201);
    let id = ok.body["id"].as_str().unwrap();
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/endpoints/{id}"),
            Some(&key),
            Some(json!({"headers": {"x-a": "v".repeat(70)}})),
        )
        .await;
    assert_eq!(patched.status, 422);
    let stored = stack
        .registry
        .endpoint(
            &switchyard_core::TenantId::parse("acme").unwrap(),
            &switchyard_core::EndpointId::parse(id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.headers.iter().collect::<Vec<_>>(), [("x-a", "1")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_ingest_rate_answers_429_to_one_tenant_while_another_is_served() {
    let stack = Stack::new("quota-ingest").await;
    let (_, a) = stack.tenant("noisy").await;
    let (_, b) = stack.tenant("quiet").await;
    let mut settings = stack.ingest_settings();
    settings.ingest_per_second = 3;
    let ingest = stack.ingest_with(&settings);
    let body = r#"{"type":"order.placed","data":{}}"#;
    // Enough requests that some fall in one second past its three.
    let mut limited = None;
    for _ in 0..12 {
        let resp = ingest.handle(post_event(a.expose(), body)).await;
        match resp.status_code {
            202 => {}
            429 => {
                limited = Some(resp);
                break;
            }
            other => panic!("unexpected {other}: {:?}", json_body(&resp)),
        }
    }
    let resp = limited.expect("the noisy tenant is limited");
    assert_eq!(resp.headers.get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let err = json_body(&resp);
    assert_eq!(err["code"], "rate_limited");
    assert_eq!(err["details"], json!({"limit": "ingest_per_second", "value": 3}));
    // In the same second, the other tenant is served.
    let served = ingest.handle(post_event(b.expose(), body)).await;
    assert_eq!(served.status_code, 202, "{:?}", json_body(&served));
    // And the noisy one again once its second is over.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ingest.handle(post_event(a.expose(), body)).await.status_code, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_header_values_are_masked_and_a_patch_of_the_mask_keeps_them() {
    let stack = Stack::new("quota-mask").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;
    let created = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(json!({
                "url": rx.url("/hook"),
                "headers": {"authorization": "Bearer s3cr3t-token", "x-team": "billing"}
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["headers"]["authorization"], MASK);
    let id = created.body["id"].as_str().unwrap().to_string();
    let got = api.call("GET", &format!("/v1/endpoints/{id}"), Some(&key), None).await;
    let list = api.call("GET", "/v1/endpoints", Some(&key), None).await;
    for answer in [&created, &got, &list] {
        assert!(
            !answer.body.to_string().contains("s3cr3t"),
            "a header value in an answer: {answer:?}"
        );
    }
    assert_eq!(got.body["headers"], json!({"authorization": MASK, "x-team": MASK}));
    // GET, change one header, PATCH the headers back as read.
    let mut headers = got.body["headers"].clone();
    headers["x-team"] = json!("ops");
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/endpoints/{id}"),
            Some(&key),
            Some(json!({"headers": headers})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert!(!patched.body.to_string().contains("s3cr3t"));
    // The mask of a header that has no stored value is refused.
    let unknown = api
        .call(
            "PATCH",
            &format!("/v1/endpoints/{id}"),
            Some(&key),
            Some(json!({"headers": {"x-new": MASK}})),
        )
        .await;
    assert_eq!((unknown.status, code(&unknown)), (422, "validation_failed"));
    // The receiver sees the real value, never the mask.
    let test = api
        .call("POST", &format!("/v1/endpoints/{id}/test"), Some(&key), None)
        .await;
    assert_eq!(test.status, 202, "{test:?}");
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    let header = |name: &str| got[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header("authorization").as_deref(), Some("Bearer s3cr3t-token"));
    assert_eq!(header("x-team").as_deref(), Some("ops"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_an_audit_page_reads_a_bounded_number_of_days() {
    use switchyard_core::envelope::{IngestLimits, Source, parse_event};
    use switchyard_core::model::EventRecord;
    use switchyard_core::ports::EventStore;
    use switchyard_core::time_util::{now_utc, rfc3339};
    let stack = Stack::new("quota-audit").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    let tenant = switchyard_core::TenantId::parse("acme").unwrap();
    let now = now_utc();
    let store = stack.event_store();
    for (id, age_days) in [("evt_old", 45), ("evt_new", 0)] {
        let at = now - time::Duration::days(age_days);
        let body = json!({"id": id, "type": "audit.log", "data": {}});
        let envelope = parse_event(
            body.to_string().as_bytes(),
            tenant.clone(),
            &Source::parse("api").unwrap(),
            at,
            IngestLimits::default(),
        )
        .unwrap();
        let record = EventRecord {
            envelope,
            received_at: at,
            expires_at: now + time::Duration::days(30),
        };
        store.insert_event(&record).await.unwrap();
    }
    let since = rfc3339(now - time::Duration::days(60));
    let first = api
        .call("GET", &format!("/v1/audit?since={since}"), Some(&key), None)
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    // 31 days of 61 read: the old event, and a cursor to go on.
    let ids = |a: &Answer| -> Vec<String> {
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&first), ["evt_old"]);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a cursor to go on")
        .to_string();
    assert!(cursor.starts_with("day:"), "{cursor}");
    let second = api
        .call(
            "GET",
            &format!("/v1/audit?since={since}&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(ids(&second), ["evt_new"]);
    assert!(second.body["next_cursor"].is_null());
}

#[test]
fn quota_template_throttles_routes_reserves_concurrency_and_passes_the_limits() {
    let t = switchyard_local::template::load(&switchyard_tests::root(), switchyard_tests::venv()).unwrap();
    let resources = t["Resources"].as_object().unwrap();
    let functions: Vec<(&String, &serde_json::Value)> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .collect();
    assert!(functions.len() >= 6);
    for (id, f) in &functions {
        let reserved = &f["Properties"]["ReservedConcurrentExecutions"];
        assert!(reserved.is_object(), "{id} reserves no concurrency");
        let param = reserved.to_string();
        assert!(param.contains("ReservedConcurrency"), "{id}: {param}");
    }
    let api = &t["Resources"]["HttpApi"]["Properties"];
    for key in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        assert!(api["DefaultRouteSettings"][key].is_object(), "{key}");
        assert!(api["RouteSettings"]["POST /v1/events"][key].is_object(), "{key}");
    }
    let env = |id: &str| t["Resources"][id]["Properties"]["Environment"]["Variables"].clone();
    assert!(env("IngestFunction")["INGEST_RATE_PER_SECOND"].is_object());
    for v in [
        "MAX_ENDPOINTS_PER_TENANT",
        "MAX_API_KEYS_PER_TENANT",
        "MAX_HEADERS_PER_ENDPOINT",
        "MAX_HEADER_BYTES_PER_ENDPOINT",
    ] {
        assert!(env("ApiFunction")[v].is_object(), "ApiFunction does not get {v}");
    }
}
