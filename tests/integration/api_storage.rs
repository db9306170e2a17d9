//! The management API's storage against moto: tenants and their listing,
//! API keys, endpoints page by page, deliveries by endpoint, event and
//! status, replays and endpoint statistics — and that no cursor ever
//! crosses from one tenant (or one listing) to another.
//!
//! Kept whole past 600 lines: one topic (the API's storage and its paging),
//! the tests sharing the seeding and paging helpers.

use switchyard_aws::dynamo::keys;
use switchyard_aws::dynamo::{ApiKeyRecord, DynamoDeliveryLog, ListError, Page, RegistrationError};
use switchyard_core::endpoint::Written;
use switchyard_core::model::{AttemptRecord, DeliveryRecord, DeliveryState, Trigger};
use switchyard_core::ports::{DeliveryLog, Registry};
use switchyard_core::ports::{DeliveryQueries, EndpointAdmin, Tenants};
use switchyard_core::ssrf::SsrfPolicy;
use switchyard_core::time_util::now_utc;
use switchyard_core::{ApiKey, DeliveryId, Endpoint, EndpointId, EndpointUrl, EventId, EventType, TenantId};
use switchyard_tests::Stack;
use time::{Duration, OffsetDateTime};

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Every page of a listing, following its cursors; the pages' sizes too.
async fn all_pages<T, F, Fut>(mut page: F) -> (Vec<T>, Vec<usize>)
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, ListError>>,
{
    let (mut items, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None);
    loop {
        let p = page(cursor.take()).await.unwrap();
        sizes.push(p.items.len());
        items.extend(p.items);
        match p.next {
            Some(next) => cursor = Some(next),
            None => return (items, sizes),
        }
        assert!(sizes.len() < 100, "the listing never ends");
    }
}

fn bad_cursor<T: std::fmt::Debug>(r: Result<Page<T>, ListError>) -> bool {
    matches!(r, Err(ListError::BadCursor))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_created_once_and_listed_in_pages() {
    let stack = Stack::new("api-tenants").await;
    let reg = &stack.registry;
    let now = now_utc();
    let (a, b, c) = (tenant("acme"), tenant("beta"), tenant("corp"));
    assert!(reg.create_tenant(&b, "Beta", now).await.unwrap());
    assert!(reg.create_tenant(&a, "Acme", now).await.unwrap());
    assert!(
        !reg.create_tenant(&a, "Acme again", now).await.unwrap(),
        "a tenant is created once"
    );
    assert!(reg.create_tenant(&c, "Corp", now + Duration::seconds(1)).await.unwrap());
    // put_tenant (tests, the demo) lists its tenant too.
    let d = tenant("delta");
    reg.put_tenant(&d, "Delta").await.unwrap();

    let acme = reg.tenant(&a).await.unwrap().unwrap();
    assert_eq!(
        (acme.id.clone(), acme.name.as_str(), acme.created_at),
        (a.clone(), "Acme", now)
    );
    assert!(reg.tenant(&tenant("nobody")).await.unwrap().is_none());

    let (listed, sizes) = all_pages(|c| async move { reg.list_tenants(2, c.as_deref()).await }).await;
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["acme", "beta", "corp", "delta"], "sorted by id");
    assert_eq!(sizes, [2, 2], "the last full page has no cursor");
    assert_eq!(listed[0], acme);
    assert_eq!(listed[2].name, "Corp");
    assert_eq!(
        reg.list_tenants(0, None).await.unwrap().items.len(),
        1,
        "a limit below 1 is 1"
    );
    assert_eq!(reg.list_tenants(1000, None).await.unwrap().items.len(), 4);

    // Renaming keeps the creation time.
    reg.put_tenant(&a, "Acme Ltd").await.unwrap();
    let renamed = reg.tenant(&a).await.unwrap().unwrap();
    assert_eq!((renamed.name.as_str(), renamed.created_at), ("Acme Ltd", now));
    assert!(!reg.create_tenant(&d, "Delta", now).await.unwrap());

    for garbage in ["nope", "e30", "!!"] {
        assert!(bad_cursor(reg.list_tenants(2, Some(garbage)).await), "{garbage}");
    }
    // A cursor of another listing (a tenant's endpoints) is refused here.
    for n in 0..3 {
        let ep = Endpoint::new(
            a.clone(),
            EndpointUrl::parse(&format!("https://93.184.216.34/{n}")).unwrap(),
            vec![],
            now,
        );
        reg.put_endpoint(&ep).await.unwrap();
    }
    let cursor = reg.endpoints_page(&a, 1, None).await.unwrap().next.unwrap();
    assert!(bad_cursor(reg.list_tenants(2, Some(&cursor)).await));
}

fn key_record(t: &TenantId, key_id: &str, key: &ApiKey, label: Option<&str>, at: OffsetDateTime) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: key_id.into(),
        tenant_id: t.clone(),
        label: label.map(Into::into),
        prefix: key.expose()[..8].to_string(),
        created_at: at,
        scope: Default::default(),
        expires_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_listed_and_revoked() {
    let stack = Stack::new("api-keys").await;
    let reg = &stack.registry;
    let now = now_utc();
    let (a, b) = (tenant("a"), tenant("b"));
    let (k1, k2, kb) = (ApiKey::generate(), ApiKey::generate(), ApiKey::generate());
    let r1 = key_record(&a, "key_1", &k1, Some("ci"), now);
    let r2 = key_record(&a, "key_2", &k2, None, now + Duration::seconds(1));
    let rb = key_record(&b, "key_1", &kb, None, now);
    reg.create_api_key(&k1.hash(), &r1).await.unwrap();
    reg.create_api_key(&k2.hash(), &r2).await.unwrap();
    reg.create_api_key(&kb.hash(), &rb).await.unwrap();
    assert_eq!(
        reg.key_grant(&k1.hash()).await.unwrap().map(|g| g.tenant),
        Some(a.clone())
    );
    assert_eq!(
        reg.key_grant(&kb.hash()).await.unwrap().map(|g| g.tenant),
        Some(b.clone())
    );

    // The same id again, or the same key under another id: refused.
    assert!(reg.create_api_key(&ApiKey::generate().hash(), &r1).await.is_err());
    let stolen = key_record(&b, "key_9", &k1, None, now);
    assert!(reg.create_api_key(&k1.hash(), &stolen).await.is_err());
    assert_eq!(
        reg.key_grant(&k1.hash()).await.unwrap().map(|g| g.tenant),
        Some(a.clone())
    );

    assert_eq!(
        reg.list_api_keys(&a, 100, None).await.unwrap().items,
        [r1.clone(), r2.clone()]
    );
    assert_eq!(
        reg.list_api_keys(&b, 100, None).await.unwrap().items,
        std::slice::from_ref(&rb)
    );
    assert!(
        reg.list_api_keys(&tenant("c"), 100, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // The listed record holds the hash, never the key.
    let item = stack
        .ddb
        .get_item()
        .table_name(&stack.res.registry_table)
        .key(
            "pk",
            switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S("TENANT#a".into()),
        )
        .key(
            "sk",
            switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S("APIKEY#key_2".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["key_hash"].as_s().unwrap(), k2.hash().as_str());
    assert!(
        item.values()
            .all(|v| v.as_s().map_or(true, |s| !s.contains(k2.expose()))),
        "{item:?}"
    );

    // Another tenant's key id names nothing of this tenant's: nothing changes.
    assert!(!reg.revoke_api_key(&b, "key_2").await.unwrap());
    assert_eq!(
        reg.key_grant(&k2.hash()).await.unwrap().map(|g| g.tenant),
        Some(a.clone())
    );
    assert_eq!(reg.list_api_keys(&a, 100, None).await.unwrap().items.len(), 2);
    // b's own key_1 is not a's key_1.
    assert!(reg.revoke_api_key(&b, "key_1").await.unwrap());
    assert_eq!(reg.key_grant(&kb.hash()).await.unwrap().map(|g| g.tenant), None);
    assert_eq!(
        reg.key_grant(&k1.hash()).await.unwrap().map(|g| g.tenant),
        Some(a.clone())
    );

    assert!(reg.revoke_api_key(&a, "key_1").await.unwrap());
    assert_eq!(reg.key_grant(&k1.hash()).await.unwrap().map(|g| g.tenant), None);
    assert_eq!(
        reg.list_api_keys(&a, 100, None).await.unwrap().items,
        std::slice::from_ref(&r2)
    );
    assert!(!reg.revoke_api_key(&a, "key_1").await.unwrap(), "revoked once");
    assert!(!reg.revoke_api_key(&a, "no_such_key").await.unwrap());
    assert_eq!(
        reg.key_grant(&k2.hash()).await.unwrap().map(|g| g.tenant),
        Some(a.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_keep_their_scope_and_expiry_are_paged_and_old_keys_manage() {
    use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
    use switchyard_core::api_key::KeyScope;
    let stack = Stack::new("api-key-scopes").await;
    let reg = &stack.registry;
    let now = now_utc();
    let a = tenant("a");
    let (k1, k2, k3) = (ApiKey::generate(), ApiKey::generate(), ApiKey::generate());
    let mut r1 = key_record(&a, "key_1", &k1, None, now);
    r1.scope = KeyScope::Ingest;
    r1.expires_at = Some(switchyard_core::time_util::whole_seconds(now + Duration::days(30)));
    let mut r2 = key_record(&a, "key_2", &k2, None, now);
    r2.scope = KeyScope::Read;
    let r3 = key_record(&a, "key_3", &k3, None, now);
    for (k, r) in [(&k1, &r1), (&k2, &r2), (&k3, &r3)] {
        reg.create_api_key(&k.hash(), r).await.unwrap();
    }
    let g1 = reg.key_grant(&k1.hash()).await.unwrap().unwrap();
    assert_eq!((g1.scope, g1.expires_at), (KeyScope::Ingest, r1.expires_at));
    assert_eq!(reg.key_grant(&k2.hash()).await.unwrap().unwrap().scope, KeyScope::Read);

    // Page by page, each record as it was stored.
    let first = reg.list_api_keys(&a, 2, None).await.unwrap();
    assert_eq!(first.items, [r1.clone(), r2.clone()]);
    let cursor = first.next.expect("a second page");
    let second = reg.list_api_keys(&a, 2, Some(&cursor)).await.unwrap();
    assert_eq!((second.items, second.next), (vec![r3.clone()], None));
    assert!(
        reg.list_api_keys(&tenant("b"), 2, Some(&cursor)).await.is_err(),
        "a's cursor does not page b's keys"
    );

    // A lookup item written before scopes existed grants everything.
    let old = ApiKey::generate();
    stack
        .ddb
        .put_item()
        .table_name(&stack.res.registry_table)
        .item("pk", AttributeValue::S(format!("APIKEY#{}", old.hash().as_str())))
        .item("sk", AttributeValue::S("APIKEY".into()))
        .item("kind", AttributeValue::S("api_key".into()))
        .item("tenant_id", AttributeValue::S("a".into()))
        .item("key_id", AttributeValue::S("key_old".into()))
        .send()
        .await
        .unwrap();
    let grant = reg
        .key_grant(&old.hash())
        .await
        .unwrap()
        .expect("the old key still works");
    assert_eq!(
        (grant.tenant, grant.scope, grant.expires_at),
        (a.clone(), KeyScope::Manage, None)
    );
}

fn endpoint(t: &TenantId, url: &str) -> Endpoint {
    Endpoint::new(t.clone(), EndpointUrl::parse(url).unwrap(), vec![], now_utc())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_paged_per_tenant_replaced_and_deleted() {
    let stack = Stack::new("api-endpoints").await;
    let reg = &stack.registry;
    let (a, b) = (&tenant("a"), &tenant("b"));
    let mut a_ids = Vec::new();
    for n in 0..5 {
        let ep = endpoint(a, &format!("https://93.184.216.34/a{n}"));
        reg.put_endpoint(&ep).await.unwrap();
        a_ids.push(ep.id);
    }
    a_ids.sort();
    let b_ep = endpoint(b, "https://93.184.216.34/b");
    reg.put_endpoint(&b_ep).await.unwrap();

    let (listed, sizes) = all_pages(|c| async move { reg.endpoints_page(a, 2, c.as_deref()).await }).await;
    assert_eq!(listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), a_ids);
    assert_eq!(sizes, [2, 2, 1]);
    assert!(listed.iter().all(|e| &e.tenant_id == a));

    // Tenant b sees its own endpoint only, and cannot follow a's cursor.
    let (b_listed, _) = all_pages(|c| async move { reg.endpoints_page(b, 1, c.as_deref()).await }).await;
    assert_eq!(
        b_listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&b_ep.id)
    );
    let a_cursor = reg.endpoints_page(a, 2, None).await.unwrap().next.unwrap();
    assert!(bad_cursor(reg.endpoints_page(b, 2, Some(&a_cursor)).await));
    assert!(bad_cursor(reg.endpoints_page(&tenant("c"), 2, Some(&a_cursor)).await));
    assert!(bad_cursor(reg.endpoints_page(a, 2, Some("garbage")).await));
    let page = reg.endpoints_page(a, 2, Some(&a_cursor)).await.unwrap();
    assert_eq!(page.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), a_ids[2..4]);

    // Replace: an existing endpoint changes; an absent one is not created.
    let strict = SsrfPolicy::default();
    let local = switchyard_local::local_ssrf_policy();
    let mut changed = listed[0].clone();
    changed.description = "changed".into();
    changed.url = EndpointUrl::parse("http://127.0.0.1:9/changed").unwrap();
    let back = match reg.replace_endpoint(&listed[0], &changed, &local).await.unwrap() {
        Written::Done(back) => *back,
        other => panic!("the endpoint is not replaced: {other:?}"),
    };
    assert_eq!(back, reg.endpoint(a, &changed.id).await.unwrap().unwrap());
    assert_eq!(
        (back.description.as_str(), back.url.as_str()),
        ("changed", "http://127.0.0.1:9/changed")
    );
    let absent = endpoint(a, "https://93.184.216.34/new");
    assert_eq!(
        reg.replace_endpoint(&absent, &absent, &strict).await.unwrap(),
        Written::Missing
    );
    assert!(
        reg.endpoint(a, &absent.id).await.unwrap().is_none(),
        "replace never creates"
    );
    // A private URL is refused (by the strict policy), and nothing changes.
    let mut private = back.clone();
    private.url = EndpointUrl::parse("https://10.0.0.1/hook").unwrap();
    assert!(matches!(
        reg.replace_endpoint(&back, &private, &strict).await,
        Err(RegistrationError::Refused(_))
    ));
    let loopback = EndpointUrl::parse("http://127.0.0.1:9/changed").unwrap();
    private.url = loopback.clone();
    assert!(matches!(
        reg.replace_endpoint(&back, &private, &strict).await,
        Err(RegistrationError::Refused(_))
    ));
    assert_eq!(reg.endpoint(a, &changed.id).await.unwrap().unwrap(), back);

    // Delete: once; another tenant's id names nothing of this tenant's.
    assert!(!reg.delete_endpoint(a, &b_ep.id).await.unwrap());
    assert!(reg.endpoint(b, &b_ep.id).await.unwrap().is_some());
    assert!(reg.delete_endpoint(a, &changed.id).await.unwrap());
    assert!(!reg.delete_endpoint(a, &changed.id).await.unwrap());
    assert!(reg.endpoint(a, &changed.id).await.unwrap().is_none());
    assert_eq!(reg.routes(a).await.unwrap().len(), 4);
}

/// Writes a delivery the way the Deliverer does: its record with an attempt.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    log: &DynamoDeliveryLog,
    t: &TenantId,
    ep: &EndpointId,
    evt: &EventId,
    state: DeliveryState,
    attempts: u32,
    created_at: OffsetDateTime,
    duration_ms: Option<u64>,
) -> DeliveryRecord {
    let updated_at = created_at + Duration::seconds(attempts as i64);
    let record = DeliveryRecord {
        delivery_id: DeliveryId::derive(t, evt, ep),
        tenant_id: t.clone(),
        endpoint_id: ep.clone(),
        event_id: evt.clone(),
        event_type: EventType::parse("a.b").unwrap(),
        state,
        attempts,
        round_attempts: attempts,
        last_status_code: Some(if state == DeliveryState::Succeeded { 200 } else { 500 }),
        last_duration_ms: duration_ms,
        manual_request: None,
        reason: (state == DeliveryState::Failed).then(|| "exhausted".to_string()),
        next_attempt_at: (state == DeliveryState::Retrying).then(|| updated_at + Duration::minutes(5)),
        created_at,
        updated_at,
        first_attempt: None,
        task_generation: 0,
        operational: false,
    };
    let attempt = AttemptRecord {
        delivery_id: record.delivery_id.clone(),
        attempt: attempts,
        at: updated_at,
        succeeded: state == DeliveryState::Succeeded,
        status_code: record.last_status_code,
        duration_ms: duration_ms.unwrap_or(0),
        error_kind: None,
        error: None,
        response_body: None,
        next_attempt_at: record.next_attempt_at,
        trigger: Trigger::Scheduled,
    };
    log.record_attempt(&record, &attempt).await.unwrap();
    record
}

fn ids(records: &[DeliveryRecord]) -> Vec<DeliveryId> {
    records.iter().map(|r| r.delivery_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_listed_by_endpoint_event_and_status() {
    use DeliveryState::*;
    let stack = Stack::new("api-deliveries").await;
    let log = &stack.delivery_log();
    let (t, u) = (&tenant("t"), &tenant("u"));
    let (ep1, ep2) = (&EndpointId::parse("ep_1").unwrap(), &EndpointId::parse("ep_2").unwrap());
    let evt = |n: usize| EventId::parse(format!("evt_{n}")).unwrap();
    let base = now_utc() - Duration::hours(1);
    let at = |s: i64| base + Duration::seconds(s);

    // ep1: five deliveries a second apart, created out of order.
    let mut by_ep1 = Vec::new();
    for n in [3, 0, 4, 1, 2] {
        by_ep1.push(deliver(log, t, ep1, &evt(n), Succeeded, 1, at(n as i64), Some(10)).await);
    }
    by_ep1.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    // ep2: evt_0 failed, evt_1 retrying; u's ep1 (same ids, another tenant).
    let failed = deliver(log, t, ep2, &evt(0), Failed, 2, at(0), Some(20)).await;
    let retrying = deliver(log, t, ep2, &evt(1), Retrying, 1, at(1), Some(30)).await;
    let other = deliver(log, u, ep1, &evt(0), Succeeded, 1, at(0), Some(10)).await;

    // By endpoint: newest first, page by page.
    let (listed, sizes) =
        all_pages(|c| async move { log.deliveries_by_endpoint(t, ep1, None, 2, c.as_deref()).await }).await;
    assert_eq!(ids(&listed), ids(&by_ep1));
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(listed[0].last_duration_ms, Some(10));
    // A window: created in [1 s, 3 s).
    let window = Some((at(1), at(3)));
    let (windowed, _) =
        all_pages(|c| async move { log.deliveries_by_endpoint(t, ep1, window, 1, c.as_deref()).await }).await;
    assert_eq!(ids(&windowed), ids(&by_ep1[2..4]));
    assert!(
        log.deliveries_by_endpoint(t, ep1, Some((at(3), at(3))), 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Tenant u's ep_1 is another endpoint.
    let page = log.deliveries_by_endpoint(u, ep1, None, 10, None).await.unwrap();
    assert_eq!(ids(&page.items), std::slice::from_ref(&other.delivery_id));

    // Cursors stay in their listing: not another tenant's, not another
    // endpoint's, not outside the window they were made in.
    let cursor = log
        .deliveries_by_endpoint(t, ep1, None, 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    assert!(bad_cursor(
        log.deliveries_by_endpoint(u, ep1, None, 1, Some(&cursor)).await
    ));
    assert!(bad_cursor(
        log.deliveries_by_endpoint(t, ep2, None, 1, Some(&cursor)).await
    ));
    assert!(bad_cursor(
        log.deliveries_by_endpoint(t, ep1, window, 1, Some(&cursor)).await
    ));
    assert!(bad_cursor(log.deliveries_by_event(t, &evt(0), 1, Some(&cursor)).await));
    assert!(bad_cursor(
        log.deliveries_by_status(t, Succeeded, 1, Some(&cursor)).await
    ));
    assert!(bad_cursor(log.deliveries_by_status(u, Succeeded, 1, Some("x")).await));

    // By event: one delivery per endpoint it went to.
    let (of_evt0, _) = all_pages(|c| async move { log.deliveries_by_event(t, &evt(0), 1, c.as_deref()).await }).await;
    let mut want = vec![failed.delivery_id.clone(), by_ep1[4].delivery_id.clone()];
    want.sort();
    assert_eq!(ids(&of_evt0), want);
    let cursor = log
        .deliveries_by_event(t, &evt(0), 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    assert!(bad_cursor(log.deliveries_by_event(u, &evt(0), 1, Some(&cursor)).await));
    assert!(bad_cursor(log.deliveries_by_event(t, &evt(1), 1, Some(&cursor)).await));
    assert!(bad_cursor(
        log.deliveries_by_endpoint(t, ep1, None, 1, Some(&cursor)).await
    ));
    assert!(bad_cursor(log.deliveries_by_status(t, Failed, 1, Some(&cursor)).await));

    // By status: newest update first; a delivery that moves from retrying
    // to failed is listed under failed only. Succeeded deliveries are not
    // indexed: the index holds the ones that need attention.
    assert!(
        log.deliveries_by_status(t, Succeeded, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let status = |s: DeliveryState| async move { ids(&log.deliveries_by_status(t, s, 100, None).await.unwrap().items) };
    assert_eq!(status(Retrying).await, std::slice::from_ref(&retrying.delivery_id));
    assert_eq!(status(Failed).await, std::slice::from_ref(&failed.delivery_id));
    let gave_up = deliver(log, t, ep2, &evt(1), Failed, 2, at(1), Some(40)).await;
    assert_eq!(gave_up.delivery_id, retrying.delivery_id);
    assert!(status(Retrying).await.is_empty());
    assert_eq!(
        status(Failed).await,
        [gave_up.delivery_id.clone(), failed.delivery_id.clone()],
        "the most recently updated first"
    );
    assert!(status(Skipped).await.is_empty());
    assert!(
        log.deliveries_by_status(u, Failed, 10, None)
            .await
            .unwrap()
            .items
            .is_empty(),
        "another tenant's failures are its own"
    );
    let cursor = log
        .deliveries_by_status(t, Failed, 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    assert!(bad_cursor(log.deliveries_by_status(u, Failed, 1, Some(&cursor)).await));
    assert!(bad_cursor(
        log.deliveries_by_status(t, Retrying, 1, Some(&cursor)).await
    ));
    let rest = log.deliveries_by_status(t, Failed, 1, Some(&cursor)).await.unwrap();
    assert_eq!((ids(&rest.items), rest.next), (vec![failed.delivery_id.clone()], None));

    // Replay: failed -> retrying, once.
    let now = now_utc();
    assert!(log.requeue_failed(t, &failed.delivery_id, now).await.unwrap());
    let back = log.delivery(t, &failed.delivery_id).await.unwrap().unwrap();
    assert_eq!(back.state, Retrying);
    assert_eq!(back.reason.as_deref(), Some("replay_requested"));
    assert_eq!((back.next_attempt_at, back.updated_at), (None, now));
    assert_eq!((back.attempts, back.created_at), (failed.attempts, failed.created_at));
    assert_eq!(status(Retrying).await, std::slice::from_ref(&failed.delivery_id));
    assert_eq!(status(Failed).await, std::slice::from_ref(&gave_up.delivery_id));
    assert!(
        !log.requeue_failed(t, &failed.delivery_id, now).await.unwrap(),
        "not failed any more"
    );
    assert!(
        !log.requeue_failed(t, &by_ep1[0].delivery_id, now).await.unwrap(),
        "succeeded"
    );
    assert!(
        !log.requeue_failed(u, &gave_up.delivery_id, now).await.unwrap(),
        "another tenant's"
    );
    // Never created: an id of the derived shape, and one typed by hand
    // (no event group: it names no partition at all).
    for absent in [
        DeliveryId::derive(t, &EventId::parse("evt_never").unwrap(), ep1),
        DeliveryId::parse("dlv_absent").unwrap(),
    ] {
        assert!(!log.requeue_failed(t, &absent, now).await.unwrap(), "{absent}");
        assert!(log.delivery(t, &absent).await.unwrap().is_none(), "{absent}");
        assert!(log.get_delivery(t, &absent).await.unwrap().is_none(), "{absent}");
    }
    // The replayed delivery's next attempt is recorded as usual.
    let mut next = back.clone();
    next.attempts += 1;
    next.state = Succeeded;
    next.updated_at = now + Duration::seconds(1);
    let attempt = AttemptRecord {
        delivery_id: next.delivery_id.clone(),
        attempt: next.attempts,
        at: next.updated_at,
        succeeded: true,
        status_code: Some(200),
        duration_ms: 5,
        error_kind: None,
        error: None,
        response_body: None,
        next_attempt_at: None,
        trigger: Trigger::Manual,
    };
    log.record_attempt(&next, &attempt).await.unwrap();
    assert!(status(Retrying).await.is_empty());
}

/// A cursor as the listings write one: base64url of the JSON of a key.
fn cursor_of(pairs: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let map: std::collections::BTreeMap<&str, &str> = pairs.iter().copied().collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&map).unwrap())
}

/// An event's deliveries share one partition of the table with their
/// attempt items (no index): a delivery retried twice is listed once, and
/// read by its id alone with every attempt; the listing's cursors name
/// nothing but a delivery of that partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_events_deliveries_are_one_partition_beside_their_attempts() {
    use DeliveryState::*;
    let stack = Stack::new("api-by-event").await;
    let log = &stack.delivery_log();
    let (t, u) = (&tenant("t"), &tenant("u"));
    let evt = &EventId::parse("evt_retried").unwrap();
    let eps: Vec<EndpointId> = (0..4).map(|n| EndpointId::parse(format!("ep_{n}")).unwrap()).collect();
    let at = now_utc() - Duration::minutes(10);

    // ep_0 as the Deliverer records it: attempt 1 fails (kept in the item),
    // 2 fails and 3 succeeds (items of their own beside it).
    let retried = DeliveryId::derive(t, evt, &eps[0]);
    let attempt = |id: &DeliveryId, n: u32, ok: bool| AttemptRecord {
        delivery_id: id.clone(),
        attempt: n,
        at: at + Duration::seconds(n.into()),
        succeeded: ok,
        status_code: Some(if ok { 200 } else { 503 }),
        duration_ms: u64::from(n),
        error_kind: None,
        error: None,
        response_body: None,
        next_attempt_at: None,
        trigger: Trigger::Scheduled,
    };
    let record = |id: &DeliveryId, ep: &EndpointId, n: u32, state: DeliveryState| DeliveryRecord {
        delivery_id: id.clone(),
        tenant_id: t.clone(),
        endpoint_id: ep.clone(),
        event_id: evt.clone(),
        event_type: EventType::parse("a.b").unwrap(),
        state,
        attempts: n,
        round_attempts: n,
        last_status_code: None,
        last_duration_ms: None,
        manual_request: None,
        reason: None,
        next_attempt_at: None,
        created_at: at,
        updated_at: at + Duration::seconds(n.into()),
        first_attempt: Some(attempt(id, 1, n == 1 && state == Succeeded)),
        task_generation: 0,
        operational: false,
    };
    for (n, ok) in [(1, false), (2, false), (3, true)] {
        let mut r = record(&retried, &eps[0], n, if ok { Succeeded } else { Retrying });
        r.first_attempt = Some(attempt(&retried, 1, false));
        log.record_attempt(&r, &attempt(&retried, n, ok)).await.unwrap();
    }
    // ep_1: succeeded at once (one item); ep_2 and ep_3 as `deliver` writes
    // them (attempt 1 as an item of its own).
    let once = DeliveryId::derive(t, evt, &eps[1]);
    log.record_attempt(&record(&once, &eps[1], 1, Succeeded), &attempt(&once, 1, true))
        .await
        .unwrap();
    for ep in &eps[2..] {
        deliver(log, t, ep, evt, Failed, 1, at, None).await;
    }
    // Another tenant's delivery of the same event id is its own.
    deliver(log, u, &eps[0], evt, Succeeded, 1, at, None).await;
    let mut all: Vec<DeliveryId> = eps.iter().map(|ep| DeliveryId::derive(t, evt, ep)).collect();
    all.sort();

    // Listed once each, by id, attempts never among them, page by page.
    for (limit, want_sizes) in [(1, vec![1, 1, 1, 1]), (3, vec![3, 1]), (4, vec![4]), (100, vec![4])] {
        let (listed, sizes) =
            all_pages(|c| async move { log.deliveries_by_event(t, evt, limit, c.as_deref()).await }).await;
        assert_eq!(ids(&listed), all, "limit {limit}");
        assert_eq!(sizes, want_sizes, "limit {limit}");
        assert!(listed.iter().all(|d| d.event_id == *evt && d.tenant_id == *t));
    }
    let (of_u, _) = all_pages(|c| async move { log.deliveries_by_event(u, evt, 10, c.as_deref()).await }).await;
    assert_eq!(ids(&of_u), [DeliveryId::derive(u, evt, &eps[0])]);

    // By id alone: the item, and its attempt items only when it has some.
    let (d, attempts) = log.get_delivery(t, &retried).await.unwrap().unwrap();
    assert_eq!((d.state, d.attempts), (Succeeded, 3));
    assert_eq!(
        attempts,
        [
            attempt(&retried, 1, false),
            attempt(&retried, 2, false),
            attempt(&retried, 3, true)
        ]
    );
    use switchyard_local::aws_proxy::AwsProxy;
    let proxy = AwsProxy::start(switchyard_tests::moto_endpoint()).await.unwrap();
    let counted = DynamoDeliveryLog::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&switchyard_local::sdk_config(&proxy.endpoint()).await),
        &stack.res.deliveries_table,
        Duration::days(30),
    );
    let calls = |op: &str| proxy.tally().requests.get(op).copied().unwrap_or(0);
    let (_, attempts) = counted.get_delivery(t, &once).await.unwrap().unwrap();
    assert_eq!(attempts, [attempt(&once, 1, true)]);
    assert_eq!((calls("dynamodb:GetItem"), calls("dynamodb:Query")), (1, 0), "one read");
    let (_, attempts) = counted.get_delivery(t, &retried).await.unwrap().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!((calls("dynamodb:GetItem"), calls("dynamodb:Query")), (2, 1));
    // An event's page is one query, its items whole: no BatchGetItem.
    let page = counted.deliveries_by_event(t, evt, 100, None).await.unwrap();
    assert_eq!(ids(&page.items), all);
    assert_eq!((calls("dynamodb:Query"), calls("dynamodb:BatchGetItem")), (2, 0));
    // Nothing of another tenant's, nor an odd id, nor one never written.
    assert!(counted.get_delivery(u, &retried).await.unwrap().is_none());
    for absent in [
        DeliveryId::parse("dlv_1").unwrap(),
        DeliveryId::parse(format!("dlv_{}", "0".repeat(32))).unwrap(),
        DeliveryId::derive(t, &EventId::parse("evt_other").unwrap(), &eps[0]),
    ] {
        assert!(counted.get_delivery(t, &absent).await.unwrap().is_none(), "{absent}");
    }

    // An id that is not derived cannot be written either (it has no partition).
    let mut odd = record(&once, &eps[1], 1, Succeeded);
    odd.delivery_id = DeliveryId::parse("dlv_1").unwrap();
    let refused = log.record_delivery(&odd).await.unwrap_err();
    assert!(!refused.retryable, "{refused}");

    // Cursors: the last delivery's key; nothing else is followed.
    let pk = keys::deliveries::by_event_partition(t, evt);
    let cursor = log.deliveries_by_event(t, evt, 1, None).await.unwrap().next.unwrap();
    assert_eq!(
        cursor,
        cursor_of(&[("pk", &pk), ("sk", &format!("DELIVERY#{}", all[0]))])
    );
    let rest = log.deliveries_by_event(t, evt, 10, Some(&cursor)).await.unwrap();
    assert_eq!((ids(&rest.items), rest.next), (all[1..].to_vec(), None));
    let other_evt = &EventId::parse("evt_other").unwrap();
    let attempt_sk = format!("ATTEMPT#{retried}#000002");
    let delivery_sk = format!("DELIVERY#{}", all[0]);
    let refused = [
        cursor_of(&[("pk", &pk), ("sk", &attempt_sk)]),
        cursor_of(&[("pk", &pk)]),
        cursor_of(&[("pk", &pk), ("sk", &delivery_sk), ("gsi1pk", "x")]),
        cursor_of(&[
            ("pk", &keys::deliveries::by_event_partition(t, other_evt)),
            ("sk", &delivery_sk),
        ]),
        cursor_of(&[
            ("pk", &keys::deliveries::by_event_partition(u, evt)),
            ("sk", &delivery_sk),
        ]),
        cursor_of(&[("pk", "TENANT#t#EVENT#evt_retried"), ("sk", "EVENT")]),
        "garbage".to_string(),
    ];
    for c in &refused {
        assert!(bad_cursor(log.deliveries_by_event(t, evt, 10, Some(c)).await), "{c}");
    }
    assert!(bad_cursor(log.deliveries_by_event(u, evt, 10, Some(&cursor)).await));
    assert!(bad_cursor(
        log.deliveries_by_event(t, other_evt, 10, Some(&cursor)).await
    ));
    assert!(bad_cursor(
        log.deliveries_by_endpoint(t, &eps[0], None, 10, Some(&cursor)).await
    ));
    assert!(bad_cursor(log.deliveries_by_status(t, Failed, 10, Some(&cursor)).await));
    let by_endpoint = log.deliveries_by_endpoint(t, &eps[0], None, 1, None).await.unwrap();
    assert_eq!(ids(&by_endpoint.items), std::slice::from_ref(&retried));
    let by_status = log
        .deliveries_by_status(t, Failed, 1, None)
        .await
        .unwrap()
        .next
        .unwrap();
    assert!(bad_cursor(log.deliveries_by_event(t, evt, 10, Some(&by_status)).await));

    // Two events in one group would take an 80-bit hash collision; should
    // one happen, the other event's delivery is not listed as this one's.
    let mut stray = record(
        &DeliveryId::derive(t, evt, &EndpointId::parse("ep_x").unwrap()),
        &eps[0],
        1,
        Succeeded,
    );
    stray.event_id = other_evt.clone();
    log.record_delivery(&stray).await.unwrap();
    let (listed, _) = all_pages(|c| async move { log.deliveries_by_event(t, evt, 1, c.as_deref()).await }).await;
    assert_eq!(ids(&listed), all);
    let (listed, _) = all_pages(|c| async move { log.deliveries_by_event(t, other_evt, 10, c.as_deref()).await }).await;
    assert!(listed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_stats_sum_up_a_period() {
    use DeliveryState::*;
    let stack = Stack::new("api-stats").await;
    let log = &stack.delivery_log();
    let t = tenant("t");
    let ep = EndpointId::parse("ep_1").unwrap();
    let evt = |n: usize| EventId::parse(format!("evt_{n}")).unwrap();
    let now = now_utc();
    let since = now - Duration::hours(24);
    let empty = log.endpoint_stats(&t, &ep, since, now).await.unwrap();
    assert_eq!(
        (empty.deliveries, empty.success_rate, empty.latency_p50_ms),
        (0, None, None)
    );

    let rows = [
        (Succeeded, Some(100)),
        (Succeeded, Some(300)),
        (Succeeded, Some(200)),
        (Failed, Some(900)),
        (Retrying, Some(50)),
        (Skipped, None),
    ];
    for (n, (state, ms)) in rows.into_iter().enumerate() {
        let created = now - Duration::hours(1) + Duration::seconds(n as i64);
        deliver(log, &t, &ep, &evt(n), state, 1, created, ms).await;
    }
    // Outside the period, another endpoint, another tenant: not counted.
    deliver(log, &t, &ep, &evt(90), Failed, 1, since - Duration::seconds(1), Some(1)).await;
    deliver(log, &t, &ep, &evt(91), Failed, 1, now + Duration::seconds(1), Some(1)).await;
    let other_ep = EndpointId::parse("ep_2").unwrap();
    deliver(
        log,
        &t,
        &other_ep,
        &evt(92),
        Failed,
        1,
        now - Duration::hours(1),
        Some(1),
    )
    .await;
    deliver(
        log,
        &tenant("u"),
        &ep,
        &evt(93),
        Failed,
        1,
        now - Duration::hours(1),
        Some(1),
    )
    .await;

    let stats = log.endpoint_stats(&t, &ep, since, now).await.unwrap();
    assert_eq!(
        (stats.deliveries, stats.succeeded, stats.failed, stats.pending),
        (6, 3, 1, 1)
    );
    assert_eq!(stats.success_rate, Some(0.75));
    // Latencies 50, 100, 200, 300, 900: p50 is rank 3, p95 rank 5.
    assert_eq!((stats.latency_p50_ms, stats.latency_p95_ms), (Some(200), Some(900)));
}
