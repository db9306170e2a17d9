//! The event envelope parser (every door's body): never panics; what it
//! accepts is a valid envelope that serializes, round-trips and makes a
//! webhook body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::TenantId;
use switchyard_core::envelope::{Envelope, IngestLimits, Source, parse_event};

fuzz_target!(|data: &[u8]| {
    let Ok(tenant) = TenantId::parse("fuzz") else { return };
    let Ok(source) = Source::parse("api") else { return };
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let limits = IngestLimits {
        max_body_bytes: IngestLimits::DEFAULT_MAX_BODY_BYTES,
    };
    if let Ok(env) = parse_event(data, tenant, &source, now, limits) {
        assert_eq!(env.tenant_id.as_str(), "fuzz", "the tenant comes from authentication");
        let json = serde_json::to_vec(&env).expect("an accepted envelope serializes");
        let back: Envelope = serde_json::from_slice(&json).expect("and parses back");
        assert_eq!(back, env);
        let body = env.webhook_body();
        serde_json::from_str::<serde_json::Value>(&body).expect("the webhook body is JSON");
    }
});
