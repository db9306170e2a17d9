use super::*;
use serde_json::json;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn policy(v: serde_json::Value) -> RetryPolicy {
    serde_json::from_value(v).unwrap()
}

fn refused(v: serde_json::Value) -> String {
    serde_json::from_value::<RetryPolicy>(v).unwrap_err().to_string()
}

#[test]
fn the_default_is_the_three_day_schedule() {
    let p = RetryPolicy::default();
    assert_eq!(p.max_attempts(), 10);
    let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
    assert_eq!(delays, [5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400]);
    assert_eq!(p.delay_after(1), Some(secs(5)));
    assert_eq!(p.delay_after(9), Some(secs(24 * 3600)));
    assert_eq!(p.delay_after(10), None);
    let total: Duration = p.delays().sum();
    assert_eq!(total, secs(272_105));
    assert!(total > secs(3 * 86_400) && total < secs(4 * 86_400));
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"kind": "schedule", "delays_secs": [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]})
    );
}

#[test]
fn a_schedule_allows_one_attempt_more_than_it_has_delays() {
    let p = policy(json!({"kind": "schedule", "delays_secs": [5, 60, 3600]}));
    assert_eq!(p.max_attempts(), 4);
    assert_eq!(p.delay_after(1), Some(secs(5)));
    assert_eq!(p.delay_after(2), Some(secs(60)));
    assert_eq!(p.delay_after(3), Some(secs(3600)));
    assert_eq!(p.delay_after(4), None);
    assert_eq!(p.delay_after(5), None);

    let one = policy(json!({"kind": "schedule", "delays_secs": [1]}));
    assert_eq!(one.max_attempts(), 2);
    assert_eq!(one.delay_after(1), Some(secs(1)));
    assert_eq!(one.delay_after(2), None);

    let longest = policy(json!({"kind": "schedule", "delays_secs": vec![MAX_DELAY_SECS; MAX_SCHEDULE_DELAYS]}));
    assert_eq!(longest.max_attempts(), 50);
    assert_eq!(longest.delay_after(49), Some(MAX_DELAY));
    assert_eq!(longest.delay_after(50), None);
}

#[test]
fn fixed_repeats_its_delay_until_the_last_attempt() {
    let p = policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10}));
    assert_eq!(p.max_attempts(), 10);
    assert_eq!(p.delays().collect::<Vec<_>>(), vec![secs(60); 9]);
    assert_eq!(p.delay_after(9), Some(secs(60)));
    assert_eq!(p.delay_after(10), None);

    let once = policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 1}));
    assert_eq!(once.max_attempts(), 1);
    assert_eq!(once.delay_after(1), None);
    assert_eq!(once.delays().count(), 0);

    let most = policy(json!({"kind": "fixed", "delay_secs": 1, "max_attempts": 50}));
    assert_eq!(most.delay_after(49), Some(secs(1)));
    assert_eq!(most.delay_after(50), None);
}

#[test]
fn linear_grows_by_its_increment_up_to_the_cap() {
    let p = policy(json!({
        "kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 10, "max_delay_secs": 300
    }));
    assert_eq!(p.max_attempts(), 10);
    let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
    assert_eq!(delays, [60, 120, 180, 240, 300, 300, 300, 300, 300]);
    assert_eq!(p.delay_after(10), None);

    // A zero increment is a fixed delay; the cap defaults to 24 h.
    let flat = policy(json!({"kind": "linear", "initial_delay_secs": 5, "increment_secs": 0, "max_attempts": 3}));
    assert_eq!(flat.delays().collect::<Vec<_>>(), [secs(5), secs(5)]);

    let steep = policy(json!({
        "kind": "linear", "initial_delay_secs": MAX_DELAY_SECS, "increment_secs": MAX_DELAY_SECS, "max_attempts": 50
    }));
    assert_eq!(steep.delay_after(49), Some(MAX_DELAY));
}

#[test]
fn exponential_multiplies_by_its_factor_up_to_the_cap() {
    let p = policy(json!({
        "kind": "exponential", "initial_delay_secs": 5, "factor": 2.0, "max_attempts": 12, "max_delay_secs": 3600
    }));
    assert_eq!(p.max_attempts(), 12);
    let delays: Vec<u64> = p.delays().map(|d| d.as_secs()).collect();
    assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
    assert_eq!(p.delay_after(12), None);

    // Fractional results are kept to the millisecond.
    let gentle = policy(json!({"kind": "exponential", "initial_delay_secs": 60, "factor": 1.1, "max_attempts": 4}));
    let delays: Vec<u128> = gentle.delays().map(|d| d.as_millis()).collect();
    assert_eq!(delays, [60_000, 66_000, 72_600]);

    // The largest growth never overflows: capped at 24 h by default.
    let wild =
        policy(json!({"kind": "exponential", "initial_delay_secs": MAX_DELAY_SECS, "factor": 10, "max_attempts": 50}));
    assert_eq!(wild.delay_after(1), Some(MAX_DELAY));
    assert_eq!(wild.delay_after(49), Some(MAX_DELAY));
    assert_eq!(wild.delay_after(50), None);
}

#[test]
fn attempt_zero_and_huge_attempt_numbers_have_no_delay() {
    let policies = [
        RetryPolicy::default(),
        policy(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 50})),
        policy(
            json!({"kind": "linear", "initial_delay_secs": 1, "increment_secs": MAX_DELAY_SECS, "max_attempts": 50}),
        ),
        policy(json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 10.0, "max_attempts": 50})),
    ];
    for p in &policies {
        assert_eq!(p.delay_after(0), None, "{p:?}");
        for n in [
            p.max_attempts(),
            p.max_attempts() + 1,
            1_000,
            u32::MAX / 2,
            u32::MAX - 1,
            u32::MAX,
        ] {
            assert_eq!(p.delay_after(n), None, "{p:?} {n}");
        }
        for n in 1..p.max_attempts() {
            let d = p.delay_after(n).unwrap();
            assert!(d >= secs(1) && d <= MAX_DELAY, "{p:?} {n}: {d:?}");
        }
    }
}

#[test]
fn policies_round_trip_through_json() {
    let cases = [
        json!({"kind": "schedule", "delays_secs": [5, 300, 1800]}),
        json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10}),
        json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 10, "max_delay_secs": 3600}),
        json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 2.0, "max_attempts": 12, "max_delay_secs": 86400}),
        json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 1.5, "max_attempts": 3, "max_delay_secs": 5}),
    ];
    for v in cases {
        let p = policy(v.clone());
        assert_eq!(serde_json::to_value(&p).unwrap(), v);
        let again: RetryPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(again, p);
        assert_eq!(RetryPolicy::try_from(p.to_raw()).unwrap(), p);
        assert_eq!(RawRetryPolicy::from(p.clone()), p.to_raw());
    }
    let default = RetryPolicy::default();
    assert_eq!(policy(serde_json::to_value(&default).unwrap()), default);
}

#[test]
fn a_missing_cap_defaults_to_seven_days_and_is_written_out() {
    let p = policy(json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 3}));
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({"kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 3, "max_delay_secs": 86400})
    );
    let p = policy(json!({"kind": "exponential", "initial_delay_secs": 5, "factor": 3, "max_attempts": 2}));
    assert_eq!(
        p.to_raw(),
        RawRetryPolicy::Exponential {
            initial_delay_secs: 5,
            factor: 3.0,
            max_attempts: 2,
            max_delay_secs: Some(MAX_DELAY_SECS),
        }
    );
}

#[test]
fn schedules_are_validated() {
    assert_eq!(
        refused(json!({"kind": "schedule", "delays_secs": []})),
        "`delays_secs` must list at least one delay"
    );
    assert_eq!(
        refused(json!({"kind": "schedule", "delays_secs": vec![5; 50]})),
        "`delays_secs` lists 50 delays; at most 49 are allowed"
    );
    assert_eq!(
        refused(json!({"kind": "schedule", "delays_secs": [5, 0]})),
        "`delays_secs[1]` is 0; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        refused(json!({"kind": "schedule", "delays_secs": [86401]})),
        "`delays_secs[0]` is 86401; it must be between 1 and 86400 seconds (24 h)"
    );
    assert!(refused(json!({"kind": "schedule", "delays_secs": [-5]})).contains("-5"));
    assert!(refused(json!({"kind": "schedule", "delays_secs": [1.5]})).contains("1.5"));
    assert!(refused(json!({"kind": "schedule"})).contains("missing field `delays_secs`"));
}

#[test]
fn fixed_policies_are_validated() {
    let err =
        |delay: u64, attempts: u64| refused(json!({"kind": "fixed", "delay_secs": delay, "max_attempts": attempts}));
    assert_eq!(
        err(0, 10),
        "`delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        err(86_401, 10),
        "`delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(err(60, 0), "`max_attempts` is 0; it must be between 1 and 50");
    assert_eq!(err(60, 51), "`max_attempts` is 51; it must be between 1 and 50");
    assert_eq!(
        err(60, u64::MAX),
        format!("`max_attempts` is {}; it must be between 1 and 50", u64::MAX)
    );
    assert!(refused(json!({"kind": "fixed", "delay_secs": 60})).contains("missing field `max_attempts`"));
}

#[test]
fn linear_policies_are_validated() {
    let err = |initial: u64, increment: u64, attempts: u64, max: u64| {
        refused(json!({
            "kind": "linear", "initial_delay_secs": initial, "increment_secs": increment,
            "max_attempts": attempts, "max_delay_secs": max
        }))
    };
    assert_eq!(
        err(0, 60, 5, 600),
        "`initial_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        err(60, 86_401, 5, 600),
        "`increment_secs` is 86401; it must be between 0 and 86400 seconds (24 h)"
    );
    assert_eq!(err(60, 60, 0, 600), "`max_attempts` is 0; it must be between 1 and 50");
    assert_eq!(
        err(60, 60, 5, 0),
        "`max_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        err(60, 60, 5, 86_401),
        "`max_delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        err(60, 60, 5, 59),
        "`max_delay_secs` (59) must not be less than `initial_delay_secs` (60)"
    );
    assert!(
        policy(json!({
            "kind": "linear", "initial_delay_secs": 60, "increment_secs": 60, "max_attempts": 5, "max_delay_secs": 60
        }))
        .delays()
        .all(|d| d == secs(60))
    );
}

#[test]
fn exponential_policies_are_validated() {
    let err = |initial: u64, factor: serde_json::Value, attempts: u64, max: u64| {
        refused(json!({
            "kind": "exponential", "initial_delay_secs": initial, "factor": factor,
            "max_attempts": attempts, "max_delay_secs": max
        }))
    };
    assert_eq!(
        err(0, json!(2.0), 5, 600),
        "`initial_delay_secs` is 0; it must be between 1 and 86400 seconds (24 h)"
    );
    assert_eq!(
        err(5, json!(1.0), 5, 600),
        "`factor` is 1; it must be a number between 1.1 and 10"
    );
    assert_eq!(
        err(5, json!(1.09), 5, 600),
        "`factor` is 1.09; it must be a number between 1.1 and 10"
    );
    assert_eq!(
        err(5, json!(10.5), 5, 600),
        "`factor` is 10.5; it must be a number between 1.1 and 10"
    );
    assert_eq!(
        err(5, json!(-2), 5, 600),
        "`factor` is -2; it must be a number between 1.1 and 10"
    );
    assert!(err(5, json!("2"), 5, 600).contains("invalid type"));
    assert_eq!(
        err(5, json!(2.0), 51, 600),
        "`max_attempts` is 51; it must be between 1 and 50"
    );
    assert_eq!(
        err(5, json!(2.0), 5, 4),
        "`max_delay_secs` (4) must not be less than `initial_delay_secs` (5)"
    );
    assert_eq!(
        err(5, json!(2.0), 5, 86_401),
        "`max_delay_secs` is 86401; it must be between 1 and 86400 seconds (24 h)"
    );
    // The bounds themselves are allowed.
    assert!(
        serde_json::from_value::<RetryPolicy>(
            json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 1.1, "max_attempts": 1})
        )
        .is_ok()
    );
    assert!(
        serde_json::from_value::<RetryPolicy>(
            json!({"kind": "exponential", "initial_delay_secs": 1, "factor": 10, "max_attempts": 50})
        )
        .is_ok()
    );
    // Non-finite factors, which JSON cannot carry, are refused when built directly.
    for factor in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let raw = RawRetryPolicy::Exponential {
            initial_delay_secs: 5,
            factor,
            max_attempts: 5,
            max_delay_secs: None,
        };
        assert!(
            matches!(RetryPolicy::try_from(raw), Err(RetryPolicyError::Factor(_))),
            "{factor}"
        );
    }
}

#[test]
fn unknown_kinds_and_fields_and_shapes_are_refused() {
    assert!(refused(json!({"kind": "random", "delay_secs": 5})).contains("unknown variant `random`"));
    assert!(refused(json!({"delays_secs": [5]})).contains("missing field `kind`"));
    assert!(
        refused(json!({"kind": "fixed", "delay_secs": 60, "max_attempts": 10, "max_attempt": 3}))
            .contains("unknown field `max_attempt`")
    );
    assert!(refused(json!({"kind": "schedule", "delays_secs": [5], "max_attempts": 3})).contains("unknown field"));
    assert!(serde_json::from_value::<RetryPolicy>(json!("schedule")).is_err());
    assert!(serde_json::from_value::<RetryPolicy>(json!(null)).is_err());
}
