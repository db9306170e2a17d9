use super::*;
use crate::endpoint::EndpointUrl;
use crate::memory::MemoryDataKeys;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

fn endpoint(tenant: &str) -> Endpoint {
    Endpoint::new(
        TenantId::parse(tenant).unwrap(),
        EndpointUrl::parse("https://e.com/").unwrap(),
        vec![],
        OffsetDateTime::UNIX_EPOCH,
    )
}

fn counts(k: &MemoryDataKeys) -> (usize, usize) {
    (k.generated.load(Ordering::Relaxed), k.unwrapped.load(Ordering::Relaxed))
}

#[tokio::test]
async fn sealed_secrets_open_and_hold_no_secret_in_the_clear() {
    let keyring = Keyring::new(MemoryDataKeys::default());
    let mut ep = endpoint("t");
    ep.rotate_secret(OffsetDateTime::UNIX_EPOCH, time::Duration::hours(1));
    let sealed = EndpointSecrets::seal(&ep, &keyring).await.unwrap();
    assert_eq!(sealed.v, SEALED_VERSION);
    let stored = serde_json::to_string(&sealed).unwrap();
    for secret in [&ep.secret, &ep.previous_secrets[0].secret] {
        let text = secret.expose();
        assert!(!stored.contains(&text[6..]), "a key in the clear: {stored}");
    }
    let opened = EndpointSecrets::open(&sealed, &ep.tenant_id, &ep.id, &keyring)
        .await
        .unwrap();
    assert_eq!(opened, EndpointSecrets::of(&ep));
    // Random nonces: the same secrets never seal alike.
    let again = EndpointSecrets::seal(&ep, &keyring).await.unwrap();
    assert_ne!(again.nonce, sealed.nonce);
    assert_ne!(again.ct, sealed.ct);
}

#[tokio::test]
async fn a_warm_keyring_asks_for_one_data_key_and_unwraps_each_once() {
    let keys = MemoryDataKeys::default();
    let writer = Keyring::new(keys);
    let eps: Vec<Endpoint> = (0..50).map(|_| endpoint("t")).collect();
    let mut sealed = Vec::new();
    for ep in &eps {
        sealed.push(EndpointSecrets::seal(ep, &writer).await.unwrap());
    }
    // The writer reads its own writes without unwrapping.
    for (ep, s) in eps.iter().zip(&sealed) {
        EndpointSecrets::open(s, &ep.tenant_id, &ep.id, &writer).await.unwrap();
    }
    assert_eq!(counts(writer.keys()), (1, 0));
    // A reader of its own (another warm instance, same key service)
    // unwraps the one data key once, however many secrets it reads.
    let reader = Keyring::new(writer.keys);
    for _ in 0..3 {
        for (ep, s) in eps.iter().zip(&sealed) {
            let got = EndpointSecrets::open(s, &ep.tenant_id, &ep.id, &reader).await.unwrap();
            assert_eq!(got.secret, ep.secret);
        }
    }
    assert_eq!(counts(reader.keys()), (1, 1));
}

#[tokio::test]
async fn a_cold_keyring_asks_once_for_a_batch_that_misses_its_cache_at_once() {
    let writer = Keyring::new(MemoryDataKeys::default());
    let eps: Vec<Endpoint> = (0..10).map(|_| endpoint("t")).collect();
    let seals = futures_util::future::join_all(eps.iter().map(|ep| EndpointSecrets::seal(ep, &writer))).await;
    assert_eq!(counts(writer.keys()), (1, 0));
    let sealed: Vec<Sealed> = seals.into_iter().map(Result::unwrap).collect();
    let reader = Keyring::new(writer.keys);
    let opens = futures_util::future::join_all(
        eps.iter()
            .zip(&sealed)
            .map(|(ep, s)| EndpointSecrets::open(s, &ep.tenant_id, &ep.id, &reader)),
    )
    .await;
    assert!(opens.iter().all(Result::is_ok));
    assert_eq!(counts(reader.keys()), (1, 1));
}

#[tokio::test]
async fn a_data_key_is_replaced_after_its_uses_or_its_lifetime() {
    let by_uses = Keyring::with_limits(MemoryDataKeys::default(), DATA_KEY_LIFETIME, 2);
    let ep = endpoint("t");
    let mut wrapped = std::collections::BTreeSet::new();
    for _ in 0..5 {
        wrapped.insert(EndpointSecrets::seal(&ep, &by_uses).await.unwrap().key);
    }
    assert_eq!(counts(by_uses.keys()).0, 3);
    assert_eq!(wrapped.len(), 3);
    let by_age = Keyring::with_limits(MemoryDataKeys::default(), Duration::ZERO, u64::MAX);
    for _ in 0..3 {
        EndpointSecrets::seal(&ep, &by_age).await.unwrap();
    }
    assert_eq!(counts(by_age.keys()).0, 3);
}

#[tokio::test]
async fn sealed_secrets_open_only_for_their_endpoint_and_untouched() {
    let keyring = Keyring::new(MemoryDataKeys::default());
    let (a, b) = (endpoint("a"), endpoint("b"));
    let sealed = EndpointSecrets::seal(&a, &keyring).await.unwrap();
    assert!(
        EndpointSecrets::open(&sealed, &b.tenant_id, &a.id, &keyring)
            .await
            .is_err()
    );
    assert!(
        EndpointSecrets::open(&sealed, &a.tenant_id, &b.id, &keyring)
            .await
            .is_err()
    );
    let mut ct = STANDARD.decode(&sealed.ct).unwrap();
    ct[0] ^= 1;
    let tampered = Sealed {
        ct: STANDARD.encode(ct),
        ..sealed.clone()
    };
    let e = EndpointSecrets::open(&tampered, &a.tenant_id, &a.id, &keyring)
        .await
        .unwrap_err();
    assert!(!e.retryable);
    let future = Sealed { v: 2, ..sealed.clone() };
    let e = EndpointSecrets::open(&future, &a.tenant_id, &a.id, &keyring)
        .await
        .unwrap_err();
    assert!(e.message.contains("version 2"), "{e}");
    let short = Sealed {
        nonce: STANDARD.encode([0u8; 4]),
        ..sealed.clone()
    };
    assert!(
        EndpointSecrets::open(&short, &a.tenant_id, &a.id, &keyring)
            .await
            .is_err()
    );
    // Another key service's data key does not unwrap here.
    let other = Keyring::new(MemoryDataKeys::default());
    assert!(
        EndpointSecrets::open(&sealed, &a.tenant_id, &a.id, &other)
            .await
            .is_err()
    );
}

#[test]
fn keys_and_secrets_stay_out_of_debug() {
    let ep = endpoint("t");
    let text = ep.secret.expose();
    assert!(!format!("{:?}", EndpointSecrets::of(&ep)).contains(&text[6..]));
    assert_eq!(format!("{:?}", DataKeyBytes([7; 32])), "DataKeyBytes(<redacted>)");
    assert_eq!(
        format!("{:?}", Keyring::new(MemoryDataKeys::default())),
        "Keyring(<redacted>)"
    );
}
