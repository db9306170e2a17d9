//! API key scopes and expiry, end to end against moto: an `ingest` key
//! only sends events, a `read` key only reads, a `manage` key does both,
//! an expired key answers 401 on its next call, and the admin's listing of
//! keys is paged.

use serde_json::{Value, json};
use switchyard_local::http_api::post_event;
use switchyard_tests::{ADMIN_KEY, Stack};

/// A key of `scope` for `tenant` (and optional expiry), made by the admin.
async fn key(api: &switchyard_tests::Api, tenant: &str, body: Value) -> (u16, Value) {
    let a = api
        .call(
            "POST",
            &format!("/v1/admin/tenants/{tenant}/api-keys"),
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
    (a.status, a.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_scope_limits_what_it_may_do_and_an_expired_key_answers_401() {
    let stack = Stack::new("api-key-scopes-http").await;
    let api = stack.api();
    let manage = api.tenant("acme").await;
    let ingest = stack.ingest();
    let (s, made) = key(&api, "acme", json!({"label": "producer", "scope": "ingest"})).await;
    assert_eq!((s, made["scope"].as_str()), (201, Some("ingest")), "{made}");
    let producer = made["api_key"].as_str().unwrap().to_string();
    let (_, made) = key(&api, "acme", json!({"scope": "read"})).await;
    let reader = made["api_key"].as_str().unwrap().to_string();

    let event = |n: u32| json!({"id": format!("e{n}"), "type": "order.placed", "data": {}}).to_string();
    // Sending events: ingest and manage keys; a read key gets 403 and
    // nothing is stored.
    assert_eq!(ingest.handle(post_event(&producer, &event(1))).await.status_code, 202);
    assert_eq!(ingest.handle(post_event(&manage, &event(2))).await.status_code, 202);
    let refused = ingest.handle(post_event(&reader, &event(3))).await;
    assert_eq!(refused.status_code, 403, "{:?}", refused.body);
    let got = api.call("GET", "/v1/events/e3", Some(&manage), None).await;
    assert_eq!(got.status, 404, "the refused event was not stored: {}", got.body);

    // Reading: read and manage keys; an ingest key gets 403.
    for k in [&reader, &manage] {
        assert_eq!(api.call("GET", "/v1/endpoints", Some(k), None).await.status, 200);
        assert_eq!(api.call("GET", "/v1/events/e1", Some(k), None).await.status, 200);
    }
    let no = api.call("GET", "/v1/endpoints", Some(&producer), None).await;
    assert_eq!(
        (no.status, no.body["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        no.body
    );
    assert!(no.body["message"].as_str().unwrap().contains("ingest"), "{}", no.body);

    // Changing: manage only; nothing is created by the others.
    let body = json!({"url": "https://93.184.216.34/hook", "filter_types": ["order.*"]});
    for k in [&reader, &producer] {
        let a = api.call("POST", "/v1/endpoints", Some(k), Some(body.clone())).await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    let listed = api.call("GET", "/v1/endpoints", Some(&manage), None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 0, "{}", listed.body);

    // A key past its expiry answers 401 everywhere, like one that never
    // existed. (Its expiry is set to a second from now, then waited out.)
    let soon = switchyard_core::time_util::now_utc() + time::Duration::seconds(2);
    let (s, made) = key(
        &api,
        "acme",
        json!({"scope": "manage", "expires_at": switchyard_core::time_util::rfc3339(soon)}),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let brief = made["api_key"].as_str().unwrap().to_string();
    assert_eq!(api.call("GET", "/v1/endpoints", Some(&brief), None).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(api.call("GET", "/v1/endpoints", Some(&brief), None).await.status, 401);
    assert_eq!(ingest.handle(post_event(&brief, &event(4))).await.status_code, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_requests_get_4xx_and_the_listing_is_paged() {
    let stack = Stack::new("api-key-listing").await;
    let api = stack.api();
    let _ = api.tenant("acme").await;
    let past = switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc() - time::Duration::hours(1));
    for (body, status, field) in [
        (json!({"scope": "admin"}), 422, "scope"),
        (json!({"expires_at": "tomorrow"}), 422, "expires_at"),
        (json!({"expires_at": past}), 422, "expires_at"),
        (json!({"scope": 7}), 422, "expected a string"),
    ] {
        let (s, b) = key(&api, "acme", body.clone()).await;
        assert_eq!(s, status, "{body}: {b}");
        assert!(b.to_string().contains(field), "{body}: {b}");
    }
    // Only the tenant's first key exists: nothing above was stored.
    let all = api
        .call("GET", "/v1/admin/tenants/acme/api-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1, "{}", all.body);

    for _ in 0..4 {
        assert_eq!(key(&api, "acme", json!({})).await.0, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/admin/tenants/acme/api-keys?limit=2".to_string();
    loop {
        let page = api.call("GET", &path, Some(ADMIN_KEY), None).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|k| k["key_id"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(c) => {
                path = format!(
                    "/v1/admin/tenants/acme/api-keys?limit=2&cursor={}",
                    form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
                )
            }
            None => break,
        }
    }
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    let bad = api
        .call(
            "GET",
            "/v1/admin/tenants/acme/api-keys?cursor=nope",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
}
