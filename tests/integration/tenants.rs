//! Deleting a tenant, against moto: its keys stop working, its endpoints
//! and key records are gone from the registry, a delivery of its that was
//! already queued is skipped rather than sent, and another tenant is
//! untouched.

use serde_json::json;
use std::time::Duration;
use switchyard_local::http_api::post_event;
use switchyard_tests::{ADMIN_KEY, Receiver, Stack};

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
