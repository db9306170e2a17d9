//! Lost updates on endpoints: a management write computed from a stale read
//! never undoes what another writer (delivery opening a circuit or
//! disabling on 410, another rotation) wrote meanwhile. Each race runs
//! against moto through the real SDK, where moto serialises requests and the
//! test interleaves them (read, let the other writer write, then write), and
//! over the in-memory ports.

use std::sync::atomic::{AtomicUsize, Ordering};
use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
use switchyard_core::endpoint::Written;
use switchyard_core::endpoint_edit::{EDIT_ATTEMPTS, EditError, edit_endpoint};
use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_core::ports::{EndpointEdits, EndpointHealth};
use switchyard_core::time_util::now_utc;
use switchyard_core::{Endpoint, EndpointUrl, TenantId};
use switchyard_tests::Stack;
use time::Duration;

fn endpoint() -> Endpoint {
    let t = TenantId::parse("acme").unwrap();
    Endpoint::new(
        t,
        EndpointUrl::parse("http://127.0.0.1:9/hook").unwrap(),
        vec![],
        now_utc(),
    )
}

async fn stored<S: EndpointEdits>(store: &S, ep: &Endpoint) -> Endpoint {
    store.current(&ep.tenant_id, &ep.id).await.unwrap().unwrap()
}

fn done(w: Written) -> Endpoint {
    match w {
        Written::Done(ep) => *ep,
        other => panic!("not written: {other:?}"),
    }
}

fn now_ms() -> i64 {
    now_utc().unix_timestamp() * 1000
}

/// A PATCH computed before the circuit opened leaves it open.
async fn patch_vs_circuit_open<S: EndpointEdits + EndpointHealth>(store: &S, ep: &Endpoint) -> i64 {
    let (t, id) = (&ep.tenant_id, &ep.id);
    let now = now_ms();
    // In the store: the stale write lands, and only its own attribute.
    let stale = stored(store, ep).await;
    store.record_failure(t, id, now).await.unwrap();
    assert!(store.open_circuit(t, id, 1, now, now + 60_000).await.unwrap());
    let mut patched = stale.clone();
    patched.description = "patched".into();
    let back = done(store.write_changes(&stale, &patched).await.unwrap());
    assert_eq!(back.description, "patched");
    assert_eq!(back.circuit.open_until_ms, Some(now + 60_000), "the circuit stays open");
    assert_eq!(back.circuit.failures, 1);

    // Through an edit, the circuit opening between its read and its write.
    store.reset_circuit(t, id).await.unwrap();
    let calls = AtomicUsize::new(0);
    let back = edit_endpoint(store, t, id, |mut ep| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                store.record_failure(t, id, now).await.unwrap();
                assert!(store.open_circuit(t, id, 1, now, now + 90_000).await.unwrap());
            }
            ep.description = "patched again".into();
            Ok::<_, ()>(ep)
        }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a circuit change is no conflict");
    assert_eq!(back.description, "patched again");
    assert_eq!(back.circuit.open_until_ms, Some(now + 90_000));
    assert_eq!(stored(store, ep).await, back);
    now
}

/// A PATCH or an enable computed before a 410 disabled the endpoint does not
/// enable it again.
async fn patch_vs_410<S: EndpointEdits + EndpointHealth>(store: &S, ep: &Endpoint) {
    let (t, id) = (&ep.tenant_id, &ep.id);
    // In the store: both stale writes are refused, the disable stays.
    let stale = stored(store, ep).await;
    assert!(store.disable(t, id, "gone").await.unwrap());
    let mut patched = stale.clone();
    patched.description = "patched".into();
    assert_eq!(store.write_changes(&stale, &patched).await.unwrap(), Written::Stale);
    let mut enabled = stale.clone();
    enabled.enabled = true;
    enabled.disabled_reason = None;
    enabled.circuit = Default::default();
    assert_eq!(store.write_changes(&stale, &enabled).await.unwrap(), Written::Stale);
    let now = stored(store, ep).await;
    assert!(!now.enabled, "the 410 disable stays");
    assert_eq!(
        (now.disabled_reason.as_deref(), now.description.as_str()),
        (Some("gone"), "")
    );

    // Through edits: the tenant enables it again; then the 410 lands
    // between a PATCH's read and its write. The PATCH is made again from a
    // fresh read, and both hold.
    let back = edit_endpoint(store, t, id, |mut ep| async move {
        ep.enabled = true;
        ep.disabled_reason = None;
        Ok::<_, ()>(ep)
    })
    .await
    .unwrap();
    assert!(back.enabled);
    let calls = AtomicUsize::new(0);
    let back = edit_endpoint(store, t, id, |mut ep| {
        let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                assert!(store.disable(t, id, "gone").await.unwrap());
            }
            ep.description = "patched".into();
            Ok::<_, ()>(ep)
        }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2, "made again from a fresh read");
    assert!(!back.enabled, "the 410 disable stays");
    assert_eq!(
        (back.disabled_reason.as_deref(), back.description.as_str()),
        (Some("gone"), "patched")
    );
    assert_eq!(stored(store, ep).await, back);
}

/// Two rotations at once both land: the secret each hands out stays valid.
async fn rotate_vs_rotate<S: EndpointEdits>(store: &S, ep: &Endpoint) {
    let (t, id) = (&ep.tenant_id, &ep.id);
    let overlap = Duration::hours(24);
    let original = stored(store, ep).await;
    // In the store: the second write, from the same read, is refused.
    let (mut first, mut second) = (original.clone(), original.clone());
    let s1 = first.rotate_secret(now_utc(), overlap).clone();
    done(store.write_changes(&original, &first).await.unwrap());
    second.rotate_secret(now_utc(), overlap);
    assert_eq!(store.write_changes(&original, &second).await.unwrap(), Written::Stale);
    let now = stored(store, ep).await;
    assert_eq!(now.secret, s1);
    assert_eq!(now.signing_secrets(now_utc()), [&s1, &original.secret]);

    // Through edits: another rotation lands between this one's read and
    // its write; this one is made again on top of it.
    let inner = std::sync::Mutex::new(None);
    let outer = edit_endpoint(store, t, id, |mut ep| {
        let inner = &inner;
        async move {
            if inner.lock().unwrap().is_none() {
                let other = edit_endpoint(store, t, id, |mut ep| async move {
                    ep.rotate_secret(now_utc(), overlap);
                    Ok::<_, ()>(ep)
                })
                .await
                .unwrap();
                *inner.lock().unwrap() = Some(other.secret);
            }
            ep.rotate_secret(now_utc(), overlap);
            Ok::<_, ()>(ep)
        }
    })
    .await
    .unwrap();
    let s2 = inner.into_inner().unwrap().unwrap();
    // Both racing rotations landed: the secrets each handed out still sign.
    // The oldest, retired three rotations ago, is past the cap of two
    // retired secrets.
    assert_eq!(
        outer.signing_secrets(now_utc()),
        [&outer.secret, &s1, &s2],
        "every secret the racing rotations handed out still signs"
    );
}

/// An edit that loses every race gives up with a conflict and writes nothing.
async fn edit_gives_up<S: EndpointEdits>(store: &S, ep: &Endpoint) {
    let (t, id) = (&ep.tenant_id, &ep.id);
    let calls = AtomicUsize::new(0);
    let result = edit_endpoint(store, t, id, |mut ep| {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut other = ep.clone();
            other.description = format!("other {n}");
            done(store.write_changes(&ep, &other).await.unwrap());
            ep.description = "mine".into();
            Ok::<_, ()>(ep)
        }
    })
    .await;
    assert!(matches!(result, Err(EditError::Conflict)));
    assert_eq!(calls.load(Ordering::SeqCst), EDIT_ATTEMPTS);
    let last = format!("other {}", EDIT_ATTEMPTS - 1);
    assert_eq!(stored(store, ep).await.description, last);
}

async fn moto(name: &str) -> (Stack, Endpoint) {
    let stack = Stack::new(name).await;
    let ep = endpoint();
    stack.registry.put_endpoint(&ep).await.unwrap();
    (stack, ep)
}

fn memory() -> (Memory, Endpoint) {
    let store = Memory::new(MemoryStore::default());
    let ep = endpoint();
    store.put_endpoint(ep.clone());
    (store, ep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_race_patch_keeps_an_open_circuit() {
    let (stack, ep) = moto("race-circuit").await;
    let now = patch_vs_circuit_open(&stack.registry, &ep).await;
    assert_eq!(
        stack.registry.open_circuits(now).await.unwrap(),
        1,
        "the endpoint stays in the index of open circuits"
    );
    // Enabling closes the circuit, and takes it out of the index.
    let (t, id) = (&ep.tenant_id, &ep.id);
    edit_endpoint(&stack.registry, t, id, |mut ep| async move {
        ep.circuit = Default::default();
        Ok::<_, ()>(ep)
    })
    .await
    .unwrap();
    assert_eq!(stack.registry.open_circuits(now).await.unwrap(), 0);
}

#[tokio::test]
async fn endpoint_race_patch_keeps_an_open_circuit_in_memory() {
    let (store, ep) = memory();
    patch_vs_circuit_open(&store, &ep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_race_410_disable_survives_a_stale_patch_or_enable() {
    let (stack, ep) = moto("race-410").await;
    patch_vs_410(&stack.registry, &ep).await;
}

#[tokio::test]
async fn endpoint_race_410_disable_survives_a_stale_patch_or_enable_in_memory() {
    let (store, ep) = memory();
    patch_vs_410(&store, &ep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_race_rotations_keep_both_secrets() {
    let (stack, ep) = moto("race-rotate").await;
    rotate_vs_rotate(&stack.registry, &ep).await;
}

#[tokio::test]
async fn endpoint_race_rotations_keep_both_secrets_in_memory() {
    let (store, ep) = memory();
    rotate_vs_rotate(&store, &ep).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_race_lost_every_time_is_a_conflict() {
    let (stack, ep) = moto("race-conflict").await;
    edit_gives_up(&stack.registry, &ep).await;
}

#[tokio::test]
async fn endpoint_race_lost_every_time_is_a_conflict_in_memory() {
    let (store, ep) = memory();
    edit_gives_up(&store, &ep).await;
}

/// An endpoint stored before `version` existed is read as version 0 and
/// edited; attributes this code does not know survive an edit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_race_old_items_without_a_version_are_edited() {
    let (stack, ep) = moto("race-old-item").await;
    let key = switchyard_aws::dynamo::keys::registry::endpoint(&ep.tenant_id, &ep.id);
    let key_item = |k: &switchyard_aws::dynamo::keys::Key| {
        std::collections::HashMap::from([
            (
                switchyard_aws::dynamo::keys::PK.to_string(),
                AttributeValue::S(k.pk.clone()),
            ),
            (
                switchyard_aws::dynamo::keys::SK.to_string(),
                AttributeValue::S(k.sk.clone()),
            ),
        ])
    };
    stack
        .ddb
        .update_item()
        .table_name(&stack.res.registry_table)
        .set_key(Some(key_item(&key)))
        .update_expression("REMOVE version SET future_setting = :x")
        .expression_attribute_values(":x", AttributeValue::S("kept".into()))
        .send()
        .await
        .unwrap();
    let old = stored(&stack.registry, &ep).await;
    assert_eq!(old.version, 0);

    let (t, id) = (&ep.tenant_id, &ep.id);
    let back = edit_endpoint(&stack.registry, t, id, |mut ep| async move {
        ep.description = "edited".into();
        Ok::<_, ()>(ep)
    })
    .await
    .unwrap();
    assert_eq!((back.description.as_str(), back.version), ("edited", 1));
    let mut stale = old.clone();
    stale.description = "stale".into();
    assert_eq!(
        stack.registry.write_changes(&old, &stale).await.unwrap(),
        Written::Stale
    );

    let raw = stack
        .ddb
        .get_item()
        .table_name(&stack.res.registry_table)
        .set_key(Some(key_item(&key)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(raw.get("future_setting"), Some(&AttributeValue::S("kept".into())));
    assert_eq!(raw.get("version"), Some(&AttributeValue::N("1".into())));
}
