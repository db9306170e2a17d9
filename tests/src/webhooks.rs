//! What a receiver sees: handler answers and webhook signatures.

use crate::{Received, root, venv};
use aws_lambda_events::event::apigw::ApiGatewayV2httpResponse;
use switchyard_local::venv as local_venv;

/// A handler response's JSON body.
pub fn json_body(resp: &ApiGatewayV2httpResponse) -> serde_json::Value {
    match &resp.body {
        Some(aws_lambda_events::encodings::Body::Text(t)) => {
            serde_json::from_str(t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
        }
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

/// The `webhook-id` a receiver sees for `event` of `tenant`.
pub fn webhook_id(tenant: &str, event: &str) -> String {
    switchyard_core::ids::webhook_id(
        &switchyard_core::TenantId::parse(tenant).expect("a tenant id"),
        &switchyard_core::EventId::parse(event).expect("an event id"),
    )
}

/// Checks a received webhook with Switchyard's verifier and with the public
/// `standardwebhooks` and `svix` libraries; panics with the reason if any
/// of them rejects it.
pub fn assert_verifies(req: &Received, secret: &switchyard_core::WebhookSecret) {
    let (id, ts, sig) = (
        req.header("webhook-id").unwrap_or_default(),
        req.header("webhook-timestamp").unwrap_or_default(),
        req.header("webhook-signature").unwrap_or_default(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    switchyard_core::signing::verify([secret], id, ts, sig, &req.body, now, 300)
        .unwrap_or_else(|e| panic!("our verifier rejected {}: {e}", req.path));
    let answer = local_venv::webhooks_interop(
        &root(),
        venv(),
        "verify",
        &serde_json::json!({
            "secret": secret.expose(),
            "headers": { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig },
            "body": req.body_text(),
        }),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        answer,
        serde_json::json!({ "standardwebhooks": "ok", "svix": "ok" }),
        "public libraries on {}",
        req.path
    );
}
