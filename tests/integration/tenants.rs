//! Deleting and suspending a tenant, against moto.
//!
//! Deleting: its keys stop working, its endpoints and key records are gone
//! from the registry, a delivery of its that was already queued is skipped
//! rather than sent, and another tenant is untouched.
//!
//! Suspending: ingest refuses its keys (403 `tenant_suspended`), its
//! deliveries wait unattempted with their reason on record, its management
//! API still answers, and once it is active again everything waiting is
//! delivered as usual; another tenant is untouched throughout.

use serde_json::json;
use std::time::Duration;
use switchyard_core::WebhookSecret;
use switchyard_local::http_api::post_event;
use switchyard_tests::{ADMIN_KEY, Receiver, Stack, assert_verifies};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_removes_its_keys_and_endpoints_skips_its_deliveries_and_spares_others() {
    let stack = Stack::new("tenant-delete").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let (acme, beta) = (api.tenant("acme").await, api.tenant("beta").await);
    for key in [&acme, &beta] {
        let a = api
            .call(
                "POST",
                "/v1/endpoints",
                Some(key),
                Some(json!({"url": rx.url("/hook"), "filter_types": ["order.*"]})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    // An event of each, fanned out: one delivery of each is queued.
    let ingest = stack.ingest();
    for key in [&acme, &beta] {
        let ev = json!({"id": "o1", "type": "order.placed", "data": {}}).to_string();
        assert_eq!(ingest.handle(post_event(key, &ev)).await.status_code, 202);
    }
    stack.drain_fanout().await;

    let gone = api
        .call("DELETE", "/v1/admin/tenants/acme", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);

    // The queued deliveries run: only beta's webhook goes out; acme's is
    // recorded as skipped (its endpoint is gone).
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "beta's webhook only");
    assert_eq!(
        got[0].header("webhook-id"),
        Some(switchyard_tests::webhook_id("beta", "o1").as_str())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "nothing more arrives");

    // acme's key is dead everywhere; the tenant is gone from the admin's view.
    assert_eq!(api.call("GET", "/v1/endpoints", Some(&acme), None).await.status, 401);
    let ev = json!({"type": "order.placed", "data": {}}).to_string();
    assert_eq!(ingest.handle(post_event(&acme, &ev)).await.status_code, 401);
    assert_eq!(
        api.call("GET", "/v1/admin/tenants/acme", Some(ADMIN_KEY), None)
            .await
            .status,
        404
    );
    let listed = api.call("GET", "/v1/admin/tenants", Some(ADMIN_KEY), None).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["beta"], "{}", listed.body);

    // Nothing of acme's is left in the registry; beta's are all there.
    let items = stack.scan(&stack.res.registry_table).await;
    let of = |t: &str| {
        items
            .iter()
            .filter(|i| {
                i.values()
                    .any(|v| v.as_s().is_ok_and(|s| s == t || s.contains(&format!("TENANT#{t}"))))
            })
            .count()
    };
    assert_eq!(of("acme"), 0, "{items:?}");
    assert!(of("beta") >= 4, "beta's tenant, listing, key and endpoint: {items:?}");
    assert_eq!(
        api.call("GET", "/v1/endpoints", Some(&beta), None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting again: 404, nothing changes; the id can be used anew.
    assert_eq!(
        api.call("DELETE", "/v1/admin/tenants/acme", Some(ADMIN_KEY), None)
            .await
            .status,
        404
    );
    let again = api.tenant("acme").await;
    assert_eq!(api.call("GET", "/v1/endpoints", Some(&again), None).await.status, 200);
    // A tenant's key cannot delete tenants.
    let no = api.call("DELETE", "/v1/admin/tenants/beta", Some(&beta), None).await;
    assert_eq!(no.status, 403, "{}", no.body);
}

/// A tenant's endpoint for every `order.*` event at `url`: its id and secret.
async fn order_endpoint(api: &switchyard_tests::Api, key: &str, url: String) -> (String, WebhookSecret) {
    let a = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(key),
            Some(json!({"url": url, "filter_types": ["order.*"]})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let secret = WebhookSecret::parse(a.body["secret"].as_str().unwrap()).unwrap();
    (a.body["id"].as_str().unwrap().to_string(), secret)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_is_refused_at_ingest_its_deliveries_wait_and_resume_and_others_flow() {
    let stack = Stack::new("tenant-suspend").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let (acme, beta) = (api.tenant("acme").await, api.tenant("beta").await);
    let (_, acme_secret) = order_endpoint(&api, &acme, rx.url("/acme")).await;
    let (_, beta_secret) = order_endpoint(&api, &beta, rx.url("/beta")).await;
    let ingest = stack.ingest();
    let event = |id: &str| json!({"id": id, "type": "order.placed", "data": {"n": 1}}).to_string();
    // Accepted before the suspension, fanned out after it.
    assert_eq!(ingest.handle(post_event(&acme, &event("o1"))).await.status_code, 202);

    let path = "/v1/admin/tenants/acme";
    let suspend = json!({"status": "suspended"});
    let s = api.call("PATCH", path, Some(ADMIN_KEY), Some(suspend.clone())).await;
    assert_eq!(
        (s.status, s.body["status"].as_str()),
        (200, Some("suspended")),
        "{}",
        s.body
    );
    assert_eq!(
        (s.body["id"].as_str(), s.body["name"].as_str()),
        (Some("acme"), Some("acme"))
    );
    let got = api.call("GET", path, Some(ADMIN_KEY), None).await;
    assert_eq!(got.body["status"], "suspended", "{}", got.body);
    let listed = api.call("GET", "/v1/admin/tenants", Some(ADMIN_KEY), None).await;
    let statuses: Vec<(&str, &str)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("acme", "suspended"), ("beta", "active")]);

    // Ingest: acme's key is refused, beta's is not.
    let refused = ingest.handle(post_event(&acme, &event("o2"))).await;
    assert_eq!(refused.status_code, 403);
    assert_eq!(switchyard_tests::json_body(&refused)["code"], "tenant_suspended");
    assert_eq!(ingest.handle(post_event(&beta, &event("o1"))).await.status_code, 202);

    // Deliveries: beta's goes out; acme's waits, unattempted, however often
    // it comes back.
    stack.drain_fanout().await;
    let mut settings = stack.delivery_settings(Duration::from_secs(5));
    settings.config.suspended_recheck = Duration::from_secs(1);
    let delivery = stack.delivery_with(&settings);
    let deliveries_of = |key: String| {
        let api = &api;
        async move {
            let a = api.call("GET", "/v1/events/o1/deliveries", Some(&key), None).await;
            assert_eq!(
                a.status, 200,
                "the management API answers a suspended tenant: {}",
                a.body
            );
            a.body["items"][0].clone()
        }
    };
    for _ in 0..3 {
        stack.drain_deliveries_with(&delivery).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "beta's webhook only");
    assert_eq!(got[0].path, "/beta");
    assert_verifies(&got[0], &beta_secret);
    let waiting = deliveries_of(acme.clone()).await;
    assert_eq!(
        (&waiting["state"], &waiting["reason"], &waiting["attempts"]),
        (&json!("retrying"), &json!("tenant_suspended"), &json!(0)),
        "{waiting}"
    );
    assert!(waiting["next_attempt_at"].is_string(), "{waiting}");
    assert_eq!(
        stack.depth(&stack.res.deliveries_dlq_url).await,
        0,
        "nothing dead-lettered"
    );

    // Only the admin key changes a tenant's status; unknown tenants and
    // bad bodies are refused and change nothing.
    let no = api
        .call("PATCH", path, Some(&acme), Some(json!({"status": "active"})))
        .await;
    assert_eq!(
        (no.status, no.body["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        no.body
    );
    let no = api
        .call("PATCH", "/v1/admin/tenants/acme", Some(&beta), Some(suspend.clone()))
        .await;
    assert_eq!(no.status, 403, "{}", no.body);
    let none = api
        .call(
            "PATCH",
            "/v1/admin/tenants/nobody",
            Some(ADMIN_KEY),
            Some(suspend.clone()),
        )
        .await;
    assert_eq!(
        (none.status, none.body["code"].as_str()),
        (404, Some("not_found")),
        "{}",
        none.body
    );
    for bad in [
        json!({}),
        json!({"status": "paused"}),
        json!({"status": "active", "name": "x"}),
    ] {
        let a = api.call("PATCH", path, Some(ADMIN_KEY), Some(bad.clone())).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad}: {}",
            a.body
        );
    }
    let still = api.call("GET", path, Some(ADMIN_KEY), None).await;
    assert_eq!(still.body["status"], "suspended");
    assert_eq!(
        api.call("GET", "/v1/admin/tenants/nobody", Some(ADMIN_KEY), None)
            .await
            .status,
        404,
        "nothing created"
    );

    // Resumed: ingest takes acme's events again, and the waiting delivery
    // goes out as any other, signed, counted as its first attempt.
    let r = api
        .call("PATCH", path, Some(ADMIN_KEY), Some(json!({"status": "active"})))
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("active")),
        "{}",
        r.body
    );
    assert_eq!(ingest.handle(post_event(&acme, &event("o3"))).await.status_code, 202);
    stack.drain_fanout().await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        stack.drain_deliveries_with(&delivery).await;
        if rx.received().len() >= 3 {
            break;
        }
    }
    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    let mut acme_ids: Vec<&str> = got
        .iter()
        .filter(|r| r.path == "/acme")
        .map(|r| {
            assert_verifies(r, &acme_secret);
            r.header("webhook-id").unwrap()
        })
        .collect();
    acme_ids.sort();
    let mut want = [
        switchyard_tests::webhook_id("acme", "o1"),
        switchyard_tests::webhook_id("acme", "o3"),
    ];
    want.sort();
    assert_eq!(acme_ids, want, "both of acme's events, once each");
    let done = deliveries_of(acme.clone()).await;
    assert_eq!(
        (&done["state"], &done["reason"], &done["attempts"]),
        (&json!("succeeded"), &json!(null), &json!(1)),
        "{done}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 3, "nothing more arrives");

    // A deleted tenant is not brought back by a status change.
    let gone = api.call("DELETE", path, Some(ADMIN_KEY), None).await;
    assert_eq!(gone.status, 204);
    let again = api.call("PATCH", path, Some(ADMIN_KEY), Some(suspend)).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(api.call("GET", path, Some(ADMIN_KEY), None).await.status, 404);
}
