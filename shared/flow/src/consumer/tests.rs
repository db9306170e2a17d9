use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Markers in memory, with the store's semantics.
#[derive(Default)]
struct MemMarkers {
    rows: Mutex<HashMap<MarkerKey, (bool, OffsetDateTime)>>,
}

impl Markers for MemMarkers {
    async fn claim(
        &self,
        key: &MarkerKey,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Claim, PortError> {
        let mut rows = self.rows.lock().unwrap();
        match rows.get(key) {
            Some((true, _)) => Ok(Claim::Done),
            Some((false, until)) if *until > now => Ok(Claim::Busy { until: *until }),
            _ => {
                rows.insert(key.clone(), (false, lease_until));
                Ok(Claim::Acquired)
            }
        }
    }
    async fn complete(&self, key: &MarkerKey, expires_at: OffsetDateTime) -> Result<(), PortError> {
        self.rows.lock().unwrap().insert(key.clone(), (true, expires_at));
        Ok(())
    }
    async fn release(&self, key: &MarkerKey) -> Result<(), PortError> {
        let mut rows = self.rows.lock().unwrap();
        if rows.get(key).is_some_and(|(done, _)| !done) {
            rows.remove(key);
        }
        Ok(())
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

#[test]
fn a_version_0_bus_message_still_parses() {
    let v0 = include_str!("../../../core/fixtures/wire/v0/bus_message.json");
    let e = parse_message(v0).unwrap();
    assert_eq!(e.tenant_id.as_str(), "acme");
    assert_eq!(e.routing.priority, Some(7));
}

fn message(id: &str, t: &str, data: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0", "id": "eb-1", "source": "switchyard.x", "detail-type": t,
        "time": "2026-11-29T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {
            "id": id, "type": t, "version": "1.0", "timestamp": "2026-11-29T00:00:00Z",
            "source": "api", "tenant_id": "t1", "data": data,
            "routing": {"internal": true, "external": true, "audit": true, "priority": 8}
        }
    })
    .to_string()
}

#[derive(serde::Deserialize)]
struct Signup {
    email: String,
}

/// A handler that counts its runs and fails while `fail` says so.
fn counting(runs: Arc<AtomicUsize>, fail: Arc<Mutex<Option<HandlerError>>>) -> impl Handler {
    typed(move |e: Event<Signup>| {
        let (runs, fail) = (runs.clone(), fail.clone());
        async move {
            assert!(e.data.email.contains('@'));
            if let Some(err) = fail.lock().unwrap().clone() {
                return Err(err);
            }
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    })
}

fn config() -> ConsumerConfig {
    ConsumerConfig {
        retry_base: Duration::from_secs(5),
        retry_max: Duration::from_secs(60),
        ..ConsumerConfig::default()
    }
}

#[tokio::test]
async fn a_duplicate_is_handled_once_and_unknown_types_are_acknowledged() {
    let runs = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(MemMarkers::default(), config())
        .on("user.created", "welcome", counting(runs.clone(), Arc::default()))
        .unwrap();
    let body = message("evt_1", "user.created", serde_json::json!({"email": "a@b.c"}));
    assert_eq!(
        consumer.process(&body, 1, now(), 0.5).await,
        Outcome::Handled { ran: 1, skipped: 0 }
    );
    assert_eq!(
        consumer.process(&body, 1, now(), 0.5).await,
        Outcome::Handled { ran: 0, skipped: 1 }
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let other = message("evt_2", "analytics.track", serde_json::json!({}));
    let o = consumer.process(&other, 1, now(), 0.5).await;
    assert_eq!(
        o,
        Outcome::Unknown {
            event_type: "analytics.track".into()
        }
    );
    assert!(o.acknowledged());
}

#[tokio::test]
async fn poison_bodies_and_misfit_data_fail_at_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(MemMarkers::default(), config())
        .on("user.*", "welcome", counting(runs.clone(), Arc::default()))
        .unwrap();
    for body in [
        "not json".to_string(),
        r#"{"detail": {"id": "evt_1"}}"#.to_string(),
        serde_json::json!({"detail-type": "x"}).to_string(),
    ] {
        assert!(
            matches!(consumer.process(&body, 1, now(), 0.5).await, Outcome::Poison { .. }),
            "{body}"
        );
    }
    // Data that does not fit the handler's type can never be handled.
    let misfit = message("evt_3", "user.created", serde_json::json!({"mail": 1}));
    let o = consumer.process(&misfit, 1, now(), 0.5).await;
    assert!(
        matches!(&o, Outcome::Poison { reason } if reason.contains("does not fit")),
        "{o:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // …and its marker was released, not left claimed.
    let fixed = message("evt_3", "user.created", serde_json::json!({"email": "a@b.c"}));
    assert!(consumer.process(&fixed, 2, now(), 0.5).await.acknowledged());
}

#[tokio::test]
async fn transient_failures_back_off_and_a_retry_skips_the_handlers_done() {
    let (first, second) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let fail = Arc::new(Mutex::new(Some(HandlerError::transient("mail server down"))));
    let consumer = Consumer::new(MemMarkers::default(), config())
        .on("user.created", "settings", counting(first.clone(), Arc::default()))
        .unwrap()
        .on("user.*", "welcome", counting(second.clone(), fail.clone()))
        .unwrap();
    let body = message("evt_1", "user.created", serde_json::json!({"email": "a@b.c"}));
    for (n, want) in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (9, 60)] {
        match consumer.process(&body, n, now(), 0.5).await {
            Outcome::Retry { after, reason } => {
                assert_eq!(after, Duration::from_secs(want), "receive {n}");
                assert!(reason.contains("mail server down"));
            }
            o => panic!("{o:?}"),
        }
    }
    assert_eq!(first.load(Ordering::SeqCst), 1, "the first handler ran once");
    *fail.lock().unwrap() = None;
    assert_eq!(
        consumer.process(&body, 10, now(), 0.5).await,
        Outcome::Handled { ran: 1, skipped: 1 }
    );
    assert_eq!((first.load(Ordering::SeqCst), second.load(Ordering::SeqCst)), (1, 1));
    // A permanent failure is poison.
    *fail.lock().unwrap() = Some(HandlerError::permanent("no such user"));
    let other = message("evt_2", "user.created", serde_json::json!({"email": "a@b.c"}));
    assert!(matches!(
        consumer.process(&other, 1, now(), 0.5).await,
        Outcome::Poison { .. }
    ));
}

#[tokio::test]
async fn a_handler_busy_elsewhere_is_retried_when_its_lease_lapses() {
    let markers = MemMarkers::default();
    let key = MarkerKey {
        tenant: TenantId::parse("t1").unwrap(),
        event: EventId::parse("evt_1").unwrap(),
        handler: "welcome".into(),
    };
    let until = now() + Duration::from_secs(30);
    assert_eq!(markers.claim(&key, now(), until).await.unwrap(), Claim::Acquired);
    let runs = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(markers, config())
        .on("user.created", "welcome", counting(runs.clone(), Arc::default()))
        .unwrap();
    let body = message("evt_1", "user.created", serde_json::json!({"email": "a@b.c"}));
    match consumer.process(&body, 1, now(), 0.5).await {
        Outcome::Retry { after, .. } => assert_eq!(after, Duration::from_secs(30)),
        o => panic!("{o:?}"),
    }
    // After the lease, a crashed claim is taken over.
    let later = now() + Duration::from_secs(31);
    assert!(consumer.process(&body, 2, later, 0.5).await.acknowledged());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn registrations_are_checked() {
    let c = || Consumer::new(MemMarkers::default(), config());
    let h = || counting(Arc::default(), Arc::default());
    assert!(matches!(c().on("User", "a", h()), Err(RegisterError::Filter(..))));
    assert!(matches!(c().on("user.*", "A b", h()), Err(RegisterError::BadName(_))));
    assert!(matches!(
        c().on("user.*", "a", h()).unwrap().on("*", "a", h()),
        Err(RegisterError::DuplicateName(_))
    ));
}

#[test]
fn backoff_doubles_within_its_cap_and_jitters() {
    let cfg = ConsumerConfig::default();
    assert_eq!(cfg.backoff(1, 0.5), Duration::from_secs(5));
    assert_eq!(cfg.backoff(4, 0.5), Duration::from_secs(40));
    assert_eq!(cfg.backoff(100, 0.5), Duration::from_secs(900));
    assert_eq!(cfg.backoff(1, 0.0), Duration::from_secs(4));
    assert!(cfg.backoff(100, 0.99) <= Duration::from_secs(900));
    let zero = ConsumerConfig {
        retry_base: Duration::ZERO,
        ..cfg
    };
    assert_eq!(zero.backoff(3, 0.9), Duration::ZERO);
}

#[test]
fn batch_counts_add_up() {
    let mut c = BatchCounts::default();
    c.add(&Outcome::Handled { ran: 1, skipped: 2 });
    c.add(&Outcome::Unknown {
        event_type: "a.b".into(),
    });
    c.add(&Outcome::Retry {
        after: Duration::ZERO,
        reason: String::new(),
    });
    c.add(&Outcome::Poison { reason: String::new() });
    assert_eq!(
        c,
        BatchCounts {
            handled: 1,
            duplicates: 2,
            unknown: 1,
            retried: 1,
            poison: 1
        }
    );
}
