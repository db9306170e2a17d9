//! The management API against moto: its whole lifecycle, tenant isolation
//! on every route, rotation, recover, DLQ redrive, and the OpenAPI document
//! against the router's real routes.
//!
//! Kept whole past 600 lines: one topic (the management API's routes end to
//! end), the tests sharing the answer helpers.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use switchyard_core::WebhookSecret;
use switchyard_tests::{ADMIN_KEY, Answer, Receiver, Reply, Stack, assert_verifies, root};

/// The audit trail of the last day (a query spans at most 366 days).
fn audit_since_yesterday() -> String {
    let since = switchyard_core::time_util::now_utc() - time::Duration::days(1);
    format!("/v1/audit?since={}", switchyard_core::time_util::rfc3339(since))
}

fn code(a: &Answer) -> &str {
    a.body["code"].as_str().unwrap_or_default()
}

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::parse(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_lifecycle_of_tenants_keys_and_endpoints() {
    let stack = Stack::new("api-crud").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;

    // Tenants and keys (admin).
    assert_eq!(
        api.call(
            "POST",
            "/v1/admin/tenants",
            Some(ADMIN_KEY),
            Some(json!({"id": "acme", "name": "again"}))
        )
        .await
        .status,
        409
    );
    let t = api.call("GET", "/v1/admin/tenants/acme", Some(ADMIN_KEY), None).await;
    assert_eq!((t.status, t.body["name"].as_str()), (200, Some("acme")));
    let keys = api
        .call("GET", "/v1/admin/tenants/acme/api-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 1);
    assert!(keys.body.to_string().find(&key).is_none(), "a key is shown only once");

    // Create, with everything an endpoint can have.
    let created = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(json!({
                "url": rx.url("/hook"),
                "description": "billing",
                "filter_types": ["user.*", "webhook.test"],
                "payload_filter": {"plan": ["pro"]},
                "headers": {"x-team": "billing"},
                "retry_policy": {"kind": "fixed", "delay_secs": 60, "max_attempts": 3},
                "rate_limit": 50
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.body["id"].as_str().unwrap().to_string();
    let sec = secret(created.body["secret"].as_str().unwrap());
    assert_eq!(created.body["filter_types"], json!(["user.*", "webhook.test"]));
    assert_eq!(created.body["rate_limit"], 50);

    // Get, list with paging, update.
    let got = api.call("GET", &format!("/v1/endpoints/{id}"), Some(&key), None).await;
    assert_eq!((got.status, got.body["description"].as_str()), (200, Some("billing")));
    assert!(got.body.get("secret").is_none(), "no secret in a plain read");
    let second = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(json!({"url": rx.url("/other")})),
        )
        .await;
    assert_eq!(second.status, 201);
    let p1 = api.call("GET", "/v1/endpoints?limit=1", Some(&key), None).await;
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 1);
    let cursor = p1.body["next_cursor"].as_str().unwrap().to_string();
    let p2 = api
        .call(
            "GET",
            &format!("/v1/endpoints?limit=1&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(p2.body["items"].as_array().unwrap().len(), 1);
    assert_ne!(p1.body["items"][0]["id"], p2.body["items"][0]["id"]);
    let patched = api
        .call(
            "PATCH",
            &format!("/v1/endpoints/{id}"),
            Some(&key),
            Some(json!({"description": "payments", "rate_limit": null, "payload_filter": null})),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.body["description"], "payments");
    assert_eq!(patched.body["rate_limit"], Value::Null);
    // Header values are shown masked; the header itself stays.
    assert_eq!(patched.body["headers"]["x-team"], "********", "untouched fields stay");

    // Disable, enable, the secret.
    let d = api
        .call("POST", &format!("/v1/endpoints/{id}/disable"), Some(&key), None)
        .await;
    assert_eq!((d.status, d.body["enabled"].as_bool()), (200, Some(false)));
    let t = api
        .call("POST", &format!("/v1/endpoints/{id}/test"), Some(&key), None)
        .await;
    assert_eq!(
        (t.status, code(&t)),
        (409, "conflict"),
        "no test event to a disabled endpoint"
    );
    let e = api
        .call("POST", &format!("/v1/endpoints/{id}/enable"), Some(&key), None)
        .await;
    assert_eq!((e.status, e.body["enabled"].as_bool()), (200, Some(true)));
    let s = api
        .call("GET", &format!("/v1/endpoints/{id}/secret"), Some(&key), None)
        .await;
    assert_eq!(s.body["secret"].as_str(), Some(sec.expose().as_str()));

    // A test event is delivered, signed, with the custom header; the delivery
    // log, the event and the health show it.
    let t = api
        .call("POST", &format!("/v1/endpoints/{id}/test"), Some(&key), None)
        .await;
    assert_eq!(t.status, 202, "{t:?}");
    let (event_id, delivery_id) = (
        t.body["event_id"].as_str().unwrap().to_string(),
        t.body["delivery_id"].as_str().unwrap().to_string(),
    );
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-switchyard-event-type"), Some("webhook.test"));
    assert_eq!(got[0].header("x-team"), Some("billing"));
    assert_verifies(&got[0], &sec);
    let list = api
        .call("GET", &format!("/v1/endpoints/{id}/deliveries"), Some(&key), None)
        .await;
    assert_eq!(list.body["items"][0]["id"].as_str(), Some(delivery_id.as_str()));
    let one = api
        .call("GET", &format!("/v1/deliveries/{delivery_id}"), Some(&key), None)
        .await;
    assert_eq!(one.body["state"], "succeeded");
    assert_eq!(one.body["attempt_log"][0]["status_code"], 200);
    let ev = api
        .call("GET", &format!("/v1/events/{event_id}"), Some(&key), None)
        .await;
    assert_eq!(
        (ev.body["type"].as_str(), ev.body["deliveries"][0]["id"].as_str()),
        (Some("webhook.test"), Some(delivery_id.as_str()))
    );
    // The test event is audited (the default): it is in the audit trail.
    let audit = api.call("GET", &audit_since_yesterday(), Some(&key), None).await;
    assert_eq!(
        audit.body["items"][0]["id"].as_str(),
        Some(event_id.as_str()),
        "{audit:?}"
    );
    let bad = api.call("GET", "/v1/audit", Some(&key), None).await;
    assert_eq!((bad.status, code(&bad)), (400, "invalid_query"));
    let h = api
        .call("GET", &format!("/v1/endpoints/{id}/health"), Some(&key), None)
        .await;
    assert_eq!(
        (h.body["deliveries"].as_u64(), h.body["success_rate"].as_f64()),
        (Some(1), Some(1.0)),
        "{h:?}"
    );
    // Succeeded deliveries are listed by endpoint or event, not by status.
    let ok = api
        .call("GET", "/v1/deliveries?status=succeeded", Some(&key), None)
        .await;
    assert_eq!((ok.status, code(&ok)), (400, "invalid_query"), "{ok:?}");
    let ok = api
        .call("GET", &format!("/v1/endpoints/{id}/deliveries"), Some(&key), None)
        .await;
    assert_eq!(ok.body["items"][0]["state"], "succeeded", "{ok:?}");

    // Delete.
    assert_eq!(
        api.call("DELETE", &format!("/v1/endpoints/{id}"), Some(&key), None)
            .await
            .status,
        204
    );
    assert_eq!(
        api.call("GET", &format!("/v1/endpoints/{id}"), Some(&key), None)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call("DELETE", &format!("/v1/endpoints/{id}"), Some(&key), None)
            .await
            .status,
        404
    );

    // Revoking the key locks the tenant out.
    let key_id = keys.body["items"][0]["key_id"].as_str().unwrap().to_string();
    let r = api
        .call(
            "DELETE",
            &format!("/v1/admin/tenants/acme/api-keys/{key_id}"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(api.call("GET", "/v1/endpoints", Some(&key), None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_get_the_right_4xx_in_one_shape_and_change_nothing() {
    let stack = Stack::new("api-errors").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    let cases: Vec<(Answer, u16, &str)> = vec![
        (api.call("GET", "/v1/endpoints", None, None).await, 401, "unauthorized"),
        (api.call("GET", "/v1/endpoints", Some("sy_nope"), None).await, 401, "unauthorized"),
        (api.call("GET", "/v1/admin/tenants", Some(&key), None).await, 403, "forbidden"),
        (api.call("GET", "/v1/nowhere", Some(&key), None).await, 404, "not_found"),
        (api.call("PUT", "/v1/endpoints", Some(&key), None).await, 405, "method_not_allowed"),
        (
            api.raw("POST", "/v1/endpoints", Some(&key), Some(b"{not json".to_vec()), "application/json").await,
            400,
            "invalid_json",
        ),
        (
            api.raw("POST", "/v1/endpoints", Some(&key), Some(b"url=x".to_vec()), "text/plain").await,
            415,
            "unsupported_media_type",
        ),
        (
            api.raw("POST", "/v1/endpoints", Some(&key), Some(vec![b' '; 70_000]), "application/json").await,
            413,
            "payload_too_large",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://example.com/", "colour": 1}))).await,
            422,
            "validation_failed",
        ),
        (api.call("POST", "/v1/endpoints", Some(&key), Some(json!({}))).await, 422, "validation_failed"),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "ftp://example.com/"}))).await,
            422,
            "validation_failed",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://169.254.169.254/latest"}))).await,
            422,
            "url_refused",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://example.com/", "filter_types": ["Bad Type"]}))).await,
            422,
            "validation_failed",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://example.com/", "headers": {"webhook-id": "x"}}))).await,
            422,
            "validation_failed",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://example.com/", "rate_limit": 0}))).await,
            422,
            "validation_failed",
        ),
        (
            api.call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": "https://example.com/", "retry_policy": {"kind": "fixed", "delay_secs": 0, "max_attempts": 3}}))).await,
            422,
            "validation_failed",
        ),
        (api.call("GET", "/v1/endpoints?limit=0", Some(&key), None).await, 400, "invalid_query"),
        (api.call("GET", "/v1/endpoints?colour=red", Some(&key), None).await, 400, "invalid_query"),
        (api.call("GET", "/v1/endpoints?cursor=garbage", Some(&key), None).await, 400, "invalid_cursor"),
        (api.call("GET", "/v1/deliveries?status=lost", Some(&key), None).await, 400, "invalid_query"),
        (api.call("GET", "/v1/endpoints/ep_missing", Some(&key), None).await, 404, "not_found"),
        (api.call("GET", "/v1/endpoints/bad%20id", Some(&key), None).await, 404, "not_found"),
        // Delivery ids: hand-typed (no event group), malformed, and in the
        // derived shape but never written: all simply not found.
        (api.call("GET", "/v1/deliveries/dlv_1", Some(&key), None).await, 404, "not_found"),
        (api.call("POST", "/v1/deliveries/dlv_1/resend", Some(&key), None).await, 404, "not_found"),
        (api.call("GET", "/v1/deliveries/bad%20id", Some(&key), None).await, 404, "not_found"),
        (api.call("GET", &format!("/v1/deliveries/dlv_{}", "0".repeat(32)), Some(&key), None).await, 404, "not_found"),
        (api.call("POST", &format!("/v1/deliveries/dlv_{}/resend", "0".repeat(32)), Some(&key), None).await, 404, "not_found"),
        (
            api.call("POST", "/v1/admin/tenants", Some(ADMIN_KEY), Some(json!({"id": "bad id!", "name": "x"}))).await,
            422,
            "validation_failed",
        ),
    ];
    for (i, (a, status, c)) in cases.iter().enumerate() {
        assert_eq!((a.status, code(a)), (*status, *c), "case {i}: {a:?}");
        assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()), "case {i}");
    }
    // None of them created anything.
    let list = api.call("GET", "/v1/endpoints", Some(&key), None).await;
    assert_eq!(list.body["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_changes_or_replays_another_tenants_resources() {
    let stack = Stack::new("api-isolation").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let a_key = api.tenant("alpha").await;
    let b_key = api.tenant("bravo").await;
    let ep = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&a_key),
            Some(json!({"url": rx.url("/a")})),
        )
        .await;
    let ep_id = ep.body["id"].as_str().unwrap().to_string();
    let t = api
        .call("POST", &format!("/v1/endpoints/{ep_id}/test"), Some(&a_key), None)
        .await;
    let (evt, dlv) = (
        t.body["event_id"].as_str().unwrap().to_string(),
        t.body["delivery_id"].as_str().unwrap().to_string(),
    );
    stack.drain_deliveries(Duration::from_secs(5)).await;
    assert_eq!(rx.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let before = api
        .call("GET", &format!("/v1/endpoints/{ep_id}"), Some(&a_key), None)
        .await;

    // Every tenant route with one of alpha's ids, called with bravo's key.
    let mut walked = 0;
    for (method, path, _) in switchyard_api::routes::<switchyard_api::Aws>() {
        if path.starts_with("/v1/admin") {
            // Bravo's key is not the admin key: refused outright.
            let p = path
                .replace("{tenant_id}", "alpha")
                .replace("{key_id}", "key_x")
                .replace("{name}", "deliveries");
            let a = api.call(method.as_str(), &p, Some(&b_key), Some(json!({}))).await;
            assert_eq!(a.status, 403, "{method} {p}: {a:?}");
            continue;
        }
        if !path.contains('{') {
            continue; // listings: checked below
        }
        let p = path
            .replace("{endpoint_id}", &ep_id)
            .replace("{delivery_id}", &dlv)
            .replace("{event_id}", &evt);
        let body = match (method.as_str(), path) {
            (_, p) if p.ends_with("/recover") => Some(json!({"since": "2020-01-01T00:00:00Z"})),
            ("PATCH", _) => Some(json!({"description": "mine now"})),
            ("POST", _) => Some(json!({})),
            _ => None,
        };
        let a = api.call(method.as_str(), &p, Some(&b_key), body).await;
        assert_eq!((a.status, code(&a)), (404, "not_found"), "{method} {p}: {a:?}");
        walked += 1;
    }
    assert_eq!(walked, 15, "every tenant route that takes an id");
    // The queue administrator takes the admin key only: a tenant's is refused.
    for (method, path, _) in switchyard_admin::routes() {
        let p = path.replace("{name}", "deliveries");
        let a = api.call(method.as_str(), &p, Some(&b_key), Some(json!({}))).await;
        assert_eq!((a.status, code(&a)), (401, "unauthorized"), "{method} {p}: {a:?}");
    }
    // Bravo's listings hold nothing of alpha's.
    for p in [
        "/v1/endpoints",
        "/v1/deliveries?status=retrying",
        "/v1/deliveries?status=failed",
        &audit_since_yesterday(),
    ] {
        let a = api.call("GET", p, Some(&b_key), None).await;
        assert_eq!((a.status, &a.body["items"]), (200, &json!([])), "{p}");
    }
    // A cursor of alpha's listing is refused to bravo.
    api.call(
        "POST",
        "/v1/endpoints",
        Some(&a_key),
        Some(json!({"url": rx.url("/a2")})),
    )
    .await;
    let page = api.call("GET", "/v1/endpoints?limit=1", Some(&a_key), None).await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let stolen = api
        .call(
            "GET",
            &format!("/v1/endpoints?limit=1&cursor={cursor}"),
            Some(&b_key),
            None,
        )
        .await;
    assert_eq!((stolen.status, code(&stolen)), (400, "invalid_cursor"));
    // Nothing of alpha's changed, and nothing was resent.
    let after = api
        .call("GET", &format!("/v1/endpoints/{ep_id}"), Some(&a_key), None)
        .await;
    assert_eq!(before.body, after.body);
    assert_eq!(stack.depth(&stack.res.deliveries_queue_url).await, 0);
    let d = api
        .call("GET", &format!("/v1/deliveries/{dlv}"), Some(&a_key), None)
        .await;
    assert_eq!(d.body["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_sends_two_signatures_that_both_verify_during_the_overlap() {
    let stack = Stack::new("api-rotate").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;
    let ep = api
        .call("POST", "/v1/endpoints", Some(&key), Some(json!({"url": rx.url("/r")})))
        .await;
    let id = ep.body["id"].as_str().unwrap().to_string();
    let old = secret(ep.body["secret"].as_str().unwrap());
    let rot = api
        .call(
            "POST",
            &format!("/v1/endpoints/{id}/rotate-secret"),
            Some(&key),
            Some(json!({"overlap_hours": 24})),
        )
        .await;
    assert_eq!(rot.status, 200, "{rot:?}");
    let new = secret(rot.body["secret"].as_str().unwrap());
    assert_ne!(old.expose(), new.expose());
    let s = api
        .call("GET", &format!("/v1/endpoints/{id}/secret"), Some(&key), None)
        .await;
    assert_eq!(s.body["previous"][0]["secret"].as_str(), Some(old.expose().as_str()));
    api.call("POST", &format!("/v1/endpoints/{id}/test"), Some(&key), None)
        .await;
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let sig = got[0].header("webhook-signature").unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    // Each secret alone verifies, with our verifier and the public libraries.
    assert_verifies(&got[0], &old);
    assert_verifies(&got[0], &new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_replays_exactly_the_failed_deliveries_in_its_window_once() {
    let stack = Stack::new("api-recover").await;
    let api = stack.api();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let rx = Receiver::start(move |_| {
        if h.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::status(200)
        } else {
            Reply::status(500)
        }
    })
    .await
    .unwrap();
    let key = api.tenant("acme").await;
    let ep = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(
                json!({"url": rx.url("/flaky"), "retry_policy": {"kind": "fixed", "delay_secs": 1, "max_attempts": 1}}),
            ),
        )
        .await;
    let id = ep.body["id"].as_str().unwrap().to_string();
    let send = |n: usize| {
        let (api, key, id) = (&api, &key, &id);
        async move {
            let mut ids = Vec::new();
            for _ in 0..n {
                let t = api
                    .call("POST", &format!("/v1/endpoints/{id}/test"), Some(key), None)
                    .await;
                ids.push(t.body["delivery_id"].as_str().unwrap().to_string());
            }
            ids
        }
    };
    // One failure before the window, three inside it (four in a row: below
    // the circuit breaker's threshold of five, which would defer the resends).
    let early = send(1).await;
    stack.drain_deliveries(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc());
    let inside = send(3).await;
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let failed = api.call("GET", "/v1/deliveries?status=failed", Some(&key), None).await;
    assert_eq!(failed.body["items"].as_array().unwrap().len(), 4, "{failed:?}");
    assert_eq!(stack.depth(&stack.res.deliveries_dlq_url).await, 4);

    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = api
        .call(
            "POST",
            &format!("/v1/endpoints/{id}/recover"),
            Some(&key),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!((r.status, r.body["requeued"].as_u64()), (200, Some(3)), "{r:?}");
    // Called twice: nothing more.
    let again = api
        .call(
            "POST",
            &format!("/v1/endpoints/{id}/recover"),
            Some(&key),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(again.body["requeued"].as_u64(), Some(0), "{again:?}");
    stack.drain_deliveries(Duration::from_secs(5)).await;
    for d in &inside {
        let one = api.call("GET", &format!("/v1/deliveries/{d}"), Some(&key), None).await;
        assert_eq!(one.body["state"], "succeeded", "{one:?}");
        let log = one.body["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1]["trigger"], "manual");
    }
    for d in &early {
        let one = api.call("GET", &format!("/v1/deliveries/{d}"), Some(&key), None).await;
        assert_eq!(one.body["state"], "failed", "outside the window: untouched");
    }
    // One failed delivery resent by hand.
    let r = api
        .call("POST", &format!("/v1/deliveries/{}/resend", early[0]), Some(&key), None)
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let one = api
        .call("GET", &format!("/v1/deliveries/{}", early[0]), Some(&key), None)
        .await;
    assert_eq!(
        (one.body["state"].as_str(), one.body["attempts"].as_u64()),
        (Some("succeeded"), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_replays_the_deliveries_skipped_while_the_endpoint_was_disabled() {
    let stack = Stack::new("api-recover-skipped").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;
    let ep = api
        .call(
            "POST",
            "/v1/endpoints",
            Some(&key),
            Some(json!({"url": rx.url("/hook")})),
        )
        .await;
    let id = ep.body["id"].as_str().unwrap().to_string();
    let since = switchyard_core::time_util::rfc3339(switchyard_core::time_util::now_utc());
    let t = api
        .call("POST", &format!("/v1/endpoints/{id}/test"), Some(&key), None)
        .await;
    let delivery = t.body["delivery_id"].as_str().unwrap().to_string();
    // Disabled before the task is delivered: the delivery is skipped.
    let d = api
        .call("POST", &format!("/v1/endpoints/{id}/disable"), Some(&key), None)
        .await;
    assert_eq!(d.status, 200, "{d:?}");
    stack.drain_deliveries(Duration::from_secs(5)).await;
    let one = api
        .call("GET", &format!("/v1/deliveries/{delivery}"), Some(&key), None)
        .await;
    assert_eq!(one.body["state"], "skipped", "{one:?}");
    assert!(rx.received().is_empty());

    let e = api
        .call("POST", &format!("/v1/endpoints/{id}/enable"), Some(&key), None)
        .await;
    assert_eq!(e.status, 200, "{e:?}");
    let path = format!("/v1/endpoints/{id}/recover");
    let recover = || api.call("POST", &path, Some(&key), Some(json!({"since": since})));
    let r = recover().await;
    assert_eq!((r.status, r.body["requeued"].as_u64()), (200, Some(1)), "{r:?}");
    assert_eq!(recover().await.body["requeued"].as_u64(), Some(0), "requeued once");
    stack.drain_deliveries(Duration::from_secs(5)).await;
    assert_eq!(rx.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    let one = api
        .call("GET", &format!("/v1/deliveries/{delivery}"), Some(&key), None)
        .await;
    assert_eq!(one.body["state"], "succeeded", "{one:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_empties_a_dlq_back_into_its_source_queue() {
    let stack = Stack::new("api-redrive").await;
    let api = stack.api();
    let bodies: Vec<String> = (0..12).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    stack.send_bodies(&stack.res.fanout_dlq_url, &bodies).await;
    let list = api.call("GET", "/v1/admin/dlqs", Some(ADMIN_KEY), None).await;
    let fanout = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "fanout")
        .cloned()
        .unwrap();
    assert_eq!(fanout["messages"], 12);
    let names: BTreeSet<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains("deliveries") && names.contains("internal-user"),
        "{names:?}"
    );
    let peek = api
        .call("GET", "/v1/admin/dlqs/fanout/messages?max=3", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(peek.body["items"].as_array().unwrap().len(), 3);
    let moved = api
        .call(
            "POST",
            "/v1/admin/dlqs/fanout/redrive",
            Some(ADMIN_KEY),
            None, // no body: every field is optional
        )
        .await;
    assert_eq!(
        (moved.status, moved.body["moved"].as_u64()),
        (200, Some(12)),
        "{moved:?}"
    );
    assert_eq!(stack.depth(&stack.res.fanout_dlq_url).await, 0);
    let mut back = stack.take_messages(&stack.res.fanout_queue_url).await;
    back.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(back, want);
    let health = api.call("GET", "/v1/admin/queues", Some(ADMIN_KEY), None).await;
    assert!(health.body["queues"].as_array().unwrap().len() >= 6, "{health:?}");
    let missing = api
        .call("POST", "/v1/admin/dlqs/nope/redrive", Some(ADMIN_KEY), Some(json!({})))
        .await;
    assert_eq!(missing.status, 404);
}

#[test]
fn the_openapi_document_names_exactly_the_routes_the_router_serves() {
    let doc = switchyard_tests::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    let mut operations = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
            operations.insert(op["operationId"].as_str().unwrap().to_string());
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            assert!(op["security"].is_array(), "{method} {path} says who may call it");
        }
    }
    // One document for every function behind the HTTP API: the api and
    // admin routers, and ingest's one route.
    let served: BTreeSet<String> = switchyard_api::routes::<switchyard_api::Aws>()
        .iter()
        .map(|(m, p, _)| format!("{m} {p}"))
        .chain(switchyard_admin::routes().iter().map(|(m, p, _)| format!("{m} {p}")))
        .chain(["POST /v1/events".to_string()])
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    assert!(unserved.is_empty(), "documented routes the router lacks: {unserved:?}");
    // Every link leads to an operation of the document, with its parameters.
    for ops in doc["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            for response in op["responses"].as_object().unwrap().values() {
                for (name, link) in response["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().unwrap();
                    assert!(operations.contains(target), "link {name} leads to {target}");
                }
            }
        }
    }
}

/// The committed document is the generated one (`cargo xtask openapi`
/// writes it); `SWITCHYARD_WRITE_OPENAPI=1` makes this test write it.
#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let path = root().join(switchyard_tests::openapi::PATH);
    let generated = switchyard_tests::openapi::text();
    if std::env::var_os("SWITCHYARD_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from the document the code generates: run `cargo xtask openapi` and commit it",
        switchyard_tests::openapi::PATH
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_really_served_and_asks_for_a_key() {
    let stack = Stack::new("api-routes").await;
    let api = stack.api();
    let admin = switchyard_admin::routes().into_iter().map(|(m, p, _)| (m, p));
    for (method, path) in switchyard_api::routes::<switchyard_api::Aws>()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .chain(admin)
    {
        let p = path.replace(['{', '}'], "");
        let a = api.call(method.as_str(), &p, None, None).await;
        // Not the router's fallback (404) nor a wrong method (405): the route's
        // own authentication answered.
        assert_eq!((a.status, code(&a)), (401, "unauthorized"), "{method} {p}: {a:?}");
    }
}
