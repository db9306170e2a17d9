//! Our signatures verify with the public `standardwebhooks` and `svix`
//! libraries, theirs verify with ours, and both produce the same bytes.

use switchyard_core::WebhookSecret;
use switchyard_core::signing::{signature_header, verify};
use switchyard_local::venv::webhooks_interop;
use switchyard_tests::{root, venv};

fn interop(command: &str, input: serde_json::Value) -> serde_json::Value {
    webhooks_interop(&root(), venv(), command, &input).unwrap_or_else(|e| panic!("{e}"))
}

const BODIES: &[&str] = &[
    r#"{"type":"user.created","data":{"user_id":"u_1"}}"#,
    r#"{"type":"a.b","data":{"text":"héllo wörld ✓ 🚀","quote":"\"x\""}}"#,
    "{}",
];

#[test]
fn our_signatures_verify_with_the_public_libraries() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for body in BODIES {
        let secret = WebhookSecret::generate();
        let old = WebhookSecret::generate();
        // One signature, and two (rotation): both must verify.
        for header in [
            signature_header([&secret], "msg_1", now, body.as_bytes()),
            signature_header([&old, &secret], "msg_1", now, body.as_bytes()),
        ] {
            let answer = interop(
                "verify",
                serde_json::json!({
                    "secret": secret.expose(),
                    "headers": { "webhook-id": "msg_1", "webhook-timestamp": now.to_string(), "webhook-signature": header },
                    "body": body,
                }),
            );
            assert_eq!(
                answer,
                serde_json::json!({ "standardwebhooks": "ok", "svix": "ok" }),
                "{body}"
            );
        }
        // The check can fail: a changed body is rejected by both.
        let answer = interop(
            "verify",
            serde_json::json!({
                "secret": secret.expose(),
                "headers": { "webhook-id": "msg_1", "webhook-timestamp": now.to_string(),
                             "webhook-signature": signature_header([&secret], "msg_1", now, body.as_bytes()) },
                "body": format!("{body} "),
            }),
        );
        assert_ne!(answer["standardwebhooks"], "ok");
        assert_ne!(answer["svix"], "ok");
    }
}

#[test]
fn their_signatures_verify_with_ours_byte_for_byte() {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for body in BODIES {
        let secret = WebhookSecret::generate();
        let theirs = interop(
            "sign",
            serde_json::json!({
                "secret": secret.expose(), "msg_id": "evt_42", "timestamp": now, "body": body,
            }),
        );
        let ours = secret.sign("evt_42", now, body.as_bytes());
        for lib in ["standardwebhooks", "svix"] {
            let sig = theirs[lib].as_str().unwrap_or_else(|| panic!("{lib}: {theirs}"));
            assert_eq!(sig, ours, "{lib} and Switchyard sign the same bytes");
            verify([&secret], "evt_42", &now.to_string(), sig, body.as_bytes(), now, 300)
                .unwrap_or_else(|e| panic!("{lib}'s signature rejected: {e}"));
        }
    }
}
