//! The HTTP API's OpenAPI document, generated: the management API's,
//! the admin function's and ingest's parts (each generated from its
//! handlers' annotations and its request and response types), merged, with
//! what a single part cannot say — who may call (security schemes), the
//! retry policy's discriminator and the links between operations.
//!
//! `functions/api/openapi.json` is this document, committed; the test
//! `openapi::the_committed_document_is_the_generated_one` fails when they
//! differ, and `cargo xtask openapi` writes it again.

use serde_json::{Value, json};
use utoipa::OpenApi;

/// Where the document is committed, from the workspace root.
pub const PATH: &str = "functions/api/openapi.json";

/// The whole document.
pub fn document() -> Value {
    let mut doc = switchyard_api::openapi::ApiDoc::openapi();
    doc.merge(switchyard_admin::AdminDoc::openapi());
    doc.merge(switchyard_ingest::IngestDoc::openapi());
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    doc["info"] = json!({
        "title": "Switchyard HTTP API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Events in (`POST /v1/events`), and the management of tenants, API keys, endpoints, secrets, the delivery log, replay and DLQ redrive. Every error is `{\"code\", \"message\", \"details\"?}`. A tenant's key only ever reaches its own resources: another tenant's ids answer 404, as ids that do not exist.",
        "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
    });
    doc["servers"] = json!([{ "url": "/", "description": "The stack's HTTP API (its `ApiBaseUrl` output)" }]);
    doc["tags"] = json!([
        { "name": "tenant", "description": "A tenant's calls, with one of its API keys (scope `ingest`: send events; `read`: GETs; `manage`: everything)" },
        { "name": "admin", "description": "The operator's calls, with the admin key" },
    ]);
    doc["components"]["securitySchemes"] = json!({
        "adminKey": {
            "type": "http", "scheme": "bearer",
            "description": "The operator's admin key (kept in the secret the stack's `AdminKeySecretArn` output names)",
        },
        "tenantKey": { "type": "http", "scheme": "bearer", "description": "A tenant API key (`sy_…`)" },
    });
    error_responses_name_the_error_schema(&mut doc);
    optional_bodies_are_objects(&mut doc);
    discriminate_retry_policy(&mut doc);
    add_links(&mut doc);
    plain_text(&mut doc);
    doc
}

/// Descriptions come from doc comments: their intra-doc links
/// (`` [`Name`] ``) read as plain code in the document.
fn plain_text(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(plain_text),
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(s) if key == "description" || key == "summary" => {
                        *s = s.replace("[`", "`").replace("`]", "`");
                    }
                    _ => plain_text(value),
                }
            }
        }
        _ => {}
    }
}

/// The document as committed: pretty JSON and a final newline.
pub fn text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// Every error response's body is the one `Error` schema (utoipa writes it
/// out in each), so clients get one error type.
fn error_responses_name_the_error_schema(doc: &mut Value) {
    let Some(responses) = doc["components"]["responses"].as_object_mut() else {
        return;
    };
    for response in responses.values_mut() {
        response["content"]["application/json"]["schema"] = json!({ "$ref": "#/components/schemas/Error" });
    }
}

/// A body a route may go without (`required: false`) is still an object
/// when it is sent: `null` is not one of its forms.
fn optional_bodies_are_objects(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
    {
        let Some(schema) = op.pointer_mut("/requestBody/content/application~1json/schema") else {
            continue;
        };
        let Some(forms) = schema.get("oneOf").and_then(Value::as_array) else {
            continue;
        };
        if let [null, body] = forms.as_slice()
            && null == &json!({ "type": "null" })
        {
            *schema = body.clone();
        }
    }
}

/// A retry policy is one of four objects told apart by `kind`.
fn discriminate_retry_policy(doc: &mut Value) {
    let policy = &mut doc["components"]["schemas"]["RetryPolicy"];
    if policy["oneOf"].is_array() {
        policy["discriminator"] = json!({ "propertyName": "kind" });
    }
}

/// A link: (operation, status, link name, target operation, target
/// parameters as `(name, runtime expression)`).
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// From a created resource to what can be done with it, for clients and
/// stateful testers: (operation, status, link name, target operation,
/// target parameters as `name = runtime expression`).
const LINKS: &[Link] = &[
    (
        "create_a_tenant",
        "201",
        "GetTenant",
        "get_a_tenant",
        &[("tenant_id", "$response.body#/id")],
    ),
    (
        "create_a_tenant",
        "201",
        "DeleteTenant",
        "delete_a_tenant",
        &[("tenant_id", "$response.body#/id")],
    ),
    (
        "create_a_tenant",
        "201",
        "CreateApiKey",
        "create_a_tenant_api_key",
        &[("tenant_id", "$response.body#/id")],
    ),
    (
        "create_a_tenant",
        "201",
        "ListApiKeys",
        "list_a_tenants_api_keys",
        &[("tenant_id", "$response.body#/id")],
    ),
    (
        "create_a_tenant_api_key",
        "201",
        "RevokeApiKey",
        "revoke_an_api_key",
        &[
            ("tenant_id", "$response.body#/tenant_id"),
            ("key_id", "$response.body#/key_id"),
        ],
    ),
    (
        "create_an_endpoint",
        "201",
        "GetEndpoint",
        "get_an_endpoint",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "UpdateEndpoint",
        "update_an_endpoint",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "DeleteEndpoint",
        "delete_an_endpoint",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "DisableEndpoint",
        "disable_an_endpoint",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "EnableEndpoint",
        "enable_an_endpoint",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "GetSecret",
        "get_an_endpoints_signing_secret",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "RotateSecret",
        "rotate_an_endpoints_secret",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "SendTest",
        "send_a_test_event",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "ListDeliveries",
        "list_an_endpoints_deliveries",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "Health",
        "endpoint_health",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "create_an_endpoint",
        "201",
        "Recover",
        "recover_failed_deliveries",
        &[("endpoint_id", "$response.body#/id")],
    ),
    (
        "send_a_test_event",
        "202",
        "GetDelivery",
        "get_a_delivery_with_its_attempts",
        &[("delivery_id", "$response.body#/delivery_id")],
    ),
    (
        "send_a_test_event",
        "202",
        "ResendDelivery",
        "resend_a_delivery_now",
        &[("delivery_id", "$response.body#/delivery_id")],
    ),
    (
        "send_a_test_event",
        "202",
        "GetEvent",
        "get_an_event_with_its_deliveries",
        &[("event_id", "$response.body#/event_id")],
    ),
    (
        "send_a_test_event",
        "202",
        "ListEventDeliveries",
        "list_an_events_deliveries",
        &[("event_id", "$response.body#/event_id")],
    ),
    (
        "send_an_event",
        "202",
        "GetEvent",
        "get_an_event_with_its_deliveries",
        &[("event_id", "$response.body#/id")],
    ),
    (
        "send_an_event",
        "202",
        "ListEventDeliveries",
        "list_an_events_deliveries",
        &[("event_id", "$response.body#/id")],
    ),
];

fn add_links(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else { continue };
        for op in ops.values_mut() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            for (from, status, name, to, params) in LINKS {
                if *from != id {
                    continue;
                }
                let parameters: serde_json::Map<String, Value> =
                    params.iter().map(|(p, e)| (p.to_string(), json!(e))).collect();
                op["responses"][*status]["links"][*name] = json!({ "operationId": to, "parameters": parameters });
            }
        }
    }
}
