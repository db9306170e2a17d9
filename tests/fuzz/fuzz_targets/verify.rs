//! The webhook signature verifier, as a receiver runs it on untrusted
//! headers: never panics, never accepts what the secret did not sign, and
//! always accepts what it did.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::WebhookSecret;
use switchyard_core::signing::verify;

const NOW: i64 = 1_795_000_000;

fuzz_target!(|data: &[u8]| {
    // id \n timestamp \n signature header \n body
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (id, ts, header, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").as_bytes(),
    );
    let Ok(secret) = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") else {
        return;
    };
    // Untrusted headers: an answer, never a panic. A forged signature is
    // refused unless it happens to be the real one.
    let real = ts.trim().parse::<i64>().map(|t| secret.sign(id, t, body));
    if verify([&secret], id, ts, header, body, NOW, 300).is_ok() {
        let real = real.expect("accepted only with a numeric timestamp");
        assert!(
            header.split(' ').any(|s| s == real),
            "accepted a signature the secret did not make"
        );
    }
    // What the secret signs verifies, alone or among others.
    let t = NOW - 10;
    let sig = secret.sign(id, t, body);
    let ts = t.to_string();
    assert!(verify([&secret], id, &ts, &sig, body, NOW, 300).is_ok());
    let both = format!("{header} {sig}");
    assert!(verify([&secret], id, &ts, &both, body, NOW, 300).is_ok());
});
