//! `GET /v1/events` against moto: a tenant's events newest first, by time
//! window, by exact type and by type prefix, paged by cursor; tenants never
//! see each other's events (not even with another's cursor); bad queries
//! answer 400 and change nothing; `read` keys may list, `ingest` keys not;
//! event items written without the listing's index keys are not listed and
//! still read.

use serde_json::{Value, json};
use switchyard_core::envelope::{IngestLimits, Source, parse_event};
use switchyard_core::model::{EventRecord, InsertOutcome};
use switchyard_core::ports::EventStore;
use switchyard_core::time_util::{now_utc, rfc3339, whole_seconds};
use switchyard_core::{Envelope, TenantId};
use switchyard_local::http_api::post_event;
use switchyard_tests::{ADMIN_KEY, Api, Stack};
use time::{Duration, OffsetDateTime};

fn envelope(tenant: &TenantId, id: &str, event_type: &str) -> Envelope {
    let body = format!(r#"{{"id":"{id}","type":"{event_type}","data":{{"n":"{id}"}}}}"#);
    parse_event(
        body.as_bytes(),
        tenant.clone(),
        &Source::parse("api").unwrap(),
        now_utc(),
        IngestLimits::default(),
    )
    .unwrap()
}

/// The type of seeded event `i`: three types, two of them `order.*`.
fn type_of(i: usize) -> &'static str {
    ["order.placed", "order.refunded", "user.created"][i % 3]
}

/// Stores `n` events `e0`, `e1`, ... received a minute apart from `base`
/// on, live for a day, as ingest stores them.
async fn seed(stack: &Stack, tenant: &TenantId, base: OffsetDateTime, n: usize) {
    let store = stack.event_store();
    for i in 0..n {
        let record = EventRecord {
            envelope: envelope(tenant, &format!("e{i}"), type_of(i)),
            received_at: base + Duration::minutes(i as i64),
            expires_at: whole_seconds(now_utc() + Duration::days(1)),
        };
        assert_eq!(store.insert_event(&record).await.unwrap(), InsertOutcome::Inserted);
    }
}

/// The ids of one page, and its next cursor.
async fn page(api: &Api, key: &str, query: &str) -> (Vec<String>, Option<String>) {
    let a = api.call("GET", &format!("/v1/events{query}"), Some(key), None).await;
    assert_eq!(a.status, 200, "{query}: {:?}", a.body);
    let ids = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    (ids, a.body["next_cursor"].as_str().map(str::to_string))
}

/// Every id of the listing, following `next_cursor` page by page; also
/// how many pages it took.
async fn all(api: &Api, key: &str, query: &str) -> (Vec<String>, usize) {
    let sep = if query.is_empty() { "?" } else { "&" };
    let (mut ids, mut next) = page(api, key, query).await;
    let mut pages = 1;
    while let Some(c) = next {
        let (more, n) = page(api, key, &format!("{query}{sep}cursor={c}")).await;
        ids.extend(more);
        next = n;
        pages += 1;
        assert!(pages < 100, "the listing does not end");
    }
    (ids, pages)
}

/// `e{i}` for each `i`, newest (highest) first.
fn newest_first(is: impl DoubleEndedIterator<Item = usize>) -> Vec<String> {
    is.rev().map(|i| format!("e{i}")).collect()
}

/// A time as a query value (UTC, whole seconds: nothing to escape).
fn q(t: OffsetDateTime) -> String {
    rfc3339(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_newest_first_by_window_and_type_and_paged() {
    let stack = Stack::new("events-list").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    let acme = TenantId::parse("acme").unwrap();
    let base = whole_seconds(now_utc()) - Duration::days(3);
    seed(&stack, &acme, base, 25).await;
    // An event through ingest (received now): the newest.
    let sent = json!({"id": "via_ingest", "type": "invoice.paid", "data": {}}).to_string();
    assert_eq!(stack.ingest().handle(post_event(&key, &sent)).await.status_code, 202);
    // An expired record TTL has not deleted yet: not listed.
    let expired = EventRecord {
        envelope: envelope(&acme, "gone", "order.placed"),
        received_at: base + Duration::seconds(30),
        expires_at: whole_seconds(now_utc() - Duration::hours(1)),
    };
    stack.event_store().insert_event(&expired).await.unwrap();

    let mut everything = vec!["via_ingest".to_string()];
    everything.extend(newest_first(0..25));
    let (ids, _) = page(&api, &key, "?limit=100").await;
    assert_eq!(ids, everything);
    // Items carry the event.
    let a = api.call("GET", "/v1/events?limit=1", Some(&key), None).await;
    let item = &a.body["items"][0];
    assert_eq!(
        (item["id"].as_str(), item["type"].as_str(), item["source"].as_str()),
        (Some("via_ingest"), Some("invoice.paid"), Some("api")),
        "{item}"
    );
    assert!(
        item["received_at"].is_string() && item["timestamp"].is_string(),
        "{item}"
    );

    // Pages of 10 through the cursor: the same listing, in order, once.
    let (paged, pages) = all(&api, &key, "?limit=10").await;
    assert_eq!((paged, pages), (everything.clone(), 3));
    // The default page is 20.
    let (first, next) = page(&api, &key, "").await;
    assert_eq!((first.len(), next.is_some()), (20, true));

    // A window: [since, until) over received_at.
    let (since, until) = (base + Duration::minutes(5), base + Duration::minutes(10));
    let (ids, _) = page(&api, &key, &format!("?since={}&until={}", q(since), q(until))).await;
    assert_eq!(ids, newest_first(5..10));
    let (ids, _) = page(&api, &key, &format!("?until={}", q(base + Duration::minutes(3)))).await;
    assert_eq!(ids, newest_first(0..3));
    let (ids, _) = page(
        &api,
        &key,
        &format!("?since={}&limit=100", q(base + Duration::minutes(22))),
    )
    .await;
    let mut want = vec!["via_ingest".to_string()];
    want.extend(newest_first(22..25));
    assert_eq!(ids, want);
    // A window paged by cursor.
    let window = format!("?since={}&until={}&limit=2", q(since), q(until));
    assert_eq!(all(&api, &key, &window).await, (newest_first(5..10), 3));

    // Exact type and type prefix, paged.
    let placed: Vec<String> = newest_first((0..25).filter(|i| i % 3 == 0));
    assert_eq!(all(&api, &key, "?type=order.placed&limit=4").await.0, placed);
    let orders: Vec<String> = newest_first((0..25).filter(|i| i % 3 != 2));
    assert_eq!(all(&api, &key, "?type_prefix=order.&limit=5").await.0, orders);
    assert_eq!(all(&api, &key, "?type_prefix=ord").await.0, orders);
    assert_eq!(page(&api, &key, "?type=order.shipped").await, (vec![], None));
    // Type and window together.
    let (ids, _) = page(
        &api,
        &key,
        &format!("?type=user.created&since={}&until={}", q(since), q(until)),
    )
    .await;
    assert_eq!(ids, vec!["e8", "e5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_sees_another_tenants_events_even_with_its_cursor() {
    let stack = Stack::new("events-iso").await;
    let api = stack.api();
    let key_a = api.tenant("acme").await;
    let key_b = api.tenant("bolt").await;
    let base = whole_seconds(now_utc()) - Duration::hours(2);
    seed(&stack, &TenantId::parse("acme").unwrap(), base, 5).await;
    // B has an event with one of A's ids: its own.
    let b_event = EventRecord {
        envelope: envelope(&TenantId::parse("bolt").unwrap(), "e1", "user.created"),
        received_at: base,
        expires_at: whole_seconds(now_utc() + Duration::days(1)),
    };
    stack.event_store().insert_event(&b_event).await.unwrap();

    let (a_ids, cursor) = page(&api, &key_a, "?limit=2").await;
    assert_eq!(a_ids, vec!["e4", "e3"]);
    let a = api.call("GET", "/v1/events?limit=100", Some(&key_b), None).await;
    assert_eq!(a.status, 200);
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", a.body);
    assert_eq!(items[0]["type"], "user.created");
    // A's cursor is refused, never followed.
    let cursor = cursor.unwrap();
    for query in [
        format!("?cursor={cursor}"),
        format!("?cursor={cursor}&type_prefix=order."),
    ] {
        let a = api.call("GET", &format!("/v1/events{query}"), Some(&key_b), None).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (400, Some("invalid_cursor")),
            "{}",
            a.body
        );
        assert!(a.body["items"].is_null(), "{}", a.body);
    }
    // A's own cursor goes on, and one from another window is refused.
    assert_eq!(
        page(&api, &key_a, &format!("?limit=2&cursor={cursor}")).await.0,
        vec!["e2", "e1"]
    );
    let later = q(base + Duration::minutes(4));
    let a = api
        .call(
            "GET",
            &format!("/v1/events?since={later}&cursor={cursor}"),
            Some(&key_a),
            None,
        )
        .await;
    assert_eq!((a.status, a.body["code"].as_str()), (400, Some("invalid_cursor")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_queries_answer_400_and_change_nothing() {
    let stack = Stack::new("events-bad").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    seed(
        &stack,
        &TenantId::parse("acme").unwrap(),
        now_utc() - Duration::hours(1),
        3,
    )
    .await;
    let before = page(&api, &key, "").await;
    let now = q(now_utc());
    let bad = [
        ("?type=order.placed&type_prefix=order.", "invalid_query", "type_prefix"),
        ("?type=", "invalid_query", "type"),
        ("?type=Order.Placed", "invalid_query", "type"),
        ("?type=order", "invalid_query", "type"),
        ("?type_prefix=", "invalid_query", "type_prefix"),
        ("?type_prefix=order*", "invalid_query", "type_prefix"),
        ("?since=yesterday", "invalid_query", "since"),
        ("?since=", "invalid_query", "since"),
        ("?until=2026-13-01T00:00:00Z", "invalid_query", "until"),
        (&format!("?since={now}&until={now}") as &str, "invalid_query", "until"),
        ("?limit=0", "invalid_query", "limit"),
        ("?limit=101", "invalid_query", "limit"),
        ("?limit=ten", "invalid_query", "limit"),
        ("?cursor=", "invalid_query", "cursor"),
        ("?cursor=bm90LWEtY3Vyc29y", "invalid_cursor", "cursor"),
        ("?status=failed", "invalid_query", "status"),
        ("?type=order.placed&type=user.created", "invalid_query", "type"),
    ];
    for (query, code, mention) in bad {
        let a = api.call("GET", &format!("/v1/events{query}"), Some(&key), None).await;
        assert_eq!(
            (a.status, a.body["code"].as_str()),
            (400, Some(code)),
            "{query}: {}",
            a.body
        );
        let message = a.body["message"].as_str().unwrap();
        assert!(
            message.contains(mention) || code == "invalid_cursor",
            "{query}: {message}"
        );
    }
    assert_eq!(page(&api, &key, "").await, before, "a refused query changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_manage_keys_may_list_events_and_ingest_keys_may_not() {
    let stack = Stack::new("events-scope").await;
    let api = stack.api();
    let manage = api.tenant("acme").await;
    let mut keys = Vec::new();
    for scope in ["read", "ingest"] {
        let a = api
            .call(
                "POST",
                "/v1/admin/tenants/acme/api-keys",
                Some(ADMIN_KEY),
                Some(json!({"scope": scope})),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        keys.push(a.body["api_key"].as_str().unwrap().to_string());
    }
    let (read, ingest) = (&keys[0], &keys[1]);
    let sent = json!({"id": "e1", "type": "order.placed", "data": {}}).to_string();
    assert_eq!(stack.ingest().handle(post_event(ingest, &sent)).await.status_code, 202);
    for k in [read, &manage] {
        assert_eq!(page(&api, k, "").await, (vec!["e1".to_string()], None));
    }
    let no = api.call("GET", "/v1/events", Some(ingest), None).await;
    assert_eq!(
        (no.status, no.body["code"].as_str()),
        (403, Some("forbidden")),
        "{}",
        no.body
    );
    let none = api.call("GET", "/v1/events", None, None).await;
    assert_eq!(none.status, 401);
    // The admin key is not a tenant's.
    assert_eq!(api.call("GET", "/v1/events", Some(ADMIN_KEY), None).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_items_stored_before_the_listing_are_not_listed_and_still_read() {
    let stack = Stack::new("events-old").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    let acme = TenantId::parse("acme").unwrap();
    seed(&stack, &acme, now_utc() - Duration::hours(1), 2).await;
    // An item as stored before the listing existed: no `evpk`/`evsk`.
    let key_of =
        switchyard_aws::dynamo::keys::deliveries::event(&acme, &switchyard_core::EventId::parse("e0").unwrap());
    stack
        .ddb
        .update_item()
        .table_name(&stack.res.deliveries_table)
        .key(
            "pk",
            switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S(key_of.pk),
        )
        .key(
            "sk",
            switchyard_aws::aws_sdk_dynamodb::types::AttributeValue::S(key_of.sk),
        )
        .update_expression("REMOVE evpk, evsk")
        .send()
        .await
        .unwrap();
    assert_eq!(page(&api, &key, "").await, (vec!["e1".to_string()], None));
    let got = api.call("GET", "/v1/events/e0", Some(&key), None).await;
    assert_eq!(
        (got.status, got.body["type"].clone()),
        (200, Value::from("order.placed")),
        "{:?}",
        got.body
    );
    // Ingest still finds it: the same id again is a duplicate.
    let again = json!({"id": "e0", "type": "order.placed", "data": {}}).to_string();
    let answer = stack.ingest().handle(post_event(&key, &again)).await;
    assert_eq!(answer.status_code, 200);
    let body = switchyard_tests::json_body(&answer);
    assert_eq!(body["duplicate"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rare_type_costs_a_bounded_read_per_page_and_is_found_through_the_cursor() {
    let stack = Stack::new("events-rare").await;
    let api = stack.api();
    let key = api.tenant("acme").await;
    let acme = TenantId::parse("acme").unwrap();
    let base = whole_seconds(now_utc()) - Duration::days(1);
    let store = stack.event_store();
    // One `user.deleted` event, older than 1100 others.
    let n = switchyard_aws::dynamo::MAX_EVENTS_EVALUATED_PER_PAGE + 100;
    for i in 0..=n {
        let event_type = if i == 0 { "user.deleted" } else { "order.placed" };
        let record = EventRecord {
            envelope: envelope(&acme, &format!("e{i}"), event_type),
            received_at: base + Duration::seconds(i as i64),
            expires_at: whole_seconds(now_utc() + Duration::days(1)),
        };
        store.insert_event(&record).await.unwrap();
    }
    // The first page reads its bound of entries, finds nothing, and says
    // where to go on; the next finds the event and ends.
    let (first, next) = page(&api, &key, "?type=user.deleted").await;
    assert!(first.is_empty(), "{first:?}");
    let next = next.expect("a page that stopped early has a cursor");
    let (second, last) = page(&api, &key, &format!("?type=user.deleted&cursor={next}")).await;
    assert_eq!((second, last), (vec!["e0".to_string()], None));
    // Without a filter a page reads only what it shows.
    let (ids, more) = page(&api, &key, "?limit=3").await;
    assert_eq!(ids, newest_first(n - 2..n + 1));
    assert!(more.is_some());
}
