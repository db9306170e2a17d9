//! Endpoint secrets sealed with moto's KMS through the real SDK clients:
//! nothing secret in the registry's items, webhooks still verify, delivery
//! asks KMS once per data key, and an item from before sealing is read and
//! sealed on its next change.

use base64::Engine as _;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
use switchyard_aws::dynamo::{DynamoRegistry, SEALED_SECRETS};
use switchyard_core::ports::Registry;
use switchyard_core::{Endpoint, EndpointId, EndpointUrl, TenantId, WebhookSecret};
use switchyard_local::aws_proxy::AwsProxy;
use switchyard_tests::{Api, Receiver, Stack, assert_verifies, moto_endpoint};

const T: Duration = Duration::from_secs(5);

type Item = HashMap<String, AttributeValue>;

/// The registry item of endpoint `id`, as stored.
async fn endpoint_item(stack: &Stack, id: &str) -> Item {
    stack
        .scan(&stack.res.registry_table)
        .await
        .into_iter()
        .find(|i| {
            i.get("kind") == Some(&AttributeValue::S("endpoint".into()))
                && i.get("id") == Some(&AttributeValue::S(id.into()))
        })
        .unwrap_or_else(|| panic!("no item for endpoint {id}"))
}

/// Asserts the item holds its secrets sealed and none of `secrets` in the
/// clear, neither as `whsec_…` nor as the key's bare base64 or hex.
fn assert_sealed(item: &Item, secrets: &[&WebhookSecret]) {
    assert!(
        item.get("secret").is_none() && item.get("previous_secrets").is_none(),
        "{item:?}"
    );
    let Some(AttributeValue::M(sealed)) = item.get(SEALED_SECRETS) else {
        panic!("no {SEALED_SECRETS} map in {item:?}");
    };
    assert_eq!(sealed.get("v"), Some(&AttributeValue::N("1".into())));
    let stored = format!("{item:?}");
    for s in secrets {
        let text = s.expose();
        let b64 = &text["whsec_".len()..];
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        for needle in [text.as_str(), b64, hex.as_str()] {
            assert!(!stored.contains(needle), "a secret in the clear in {stored}");
        }
    }
}

fn secret_of(v: &serde_json::Value) -> WebhookSecret {
    WebhookSecret::parse(v.as_str().unwrap_or_else(|| panic!("no secret in {v}"))).unwrap()
}

async fn create(api: &Api, key: &str, url: String) -> (String, WebhookSecret) {
    let a = api
        .call("POST", "/v1/endpoints", Some(key), Some(json!({"url": url})))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    (a.body["id"].as_str().unwrap().to_string(), secret_of(&a.body["secret"]))
}

async fn send_test(api: &Api, key: &str, id: &str) {
    let t = api
        .call("POST", &format!("/v1/endpoints/{id}/test"), Some(key), None)
        .await;
    assert_eq!(t.status, 202, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_sealed_at_rest_and_kms_is_asked_once_per_data_key() {
    let stack = Stack::new("kms-sealed").await;
    let proxy = AwsProxy::start(moto_endpoint()).await.unwrap();
    let sdk = switchyard_local::sdk_config(&proxy.endpoint()).await;
    let api = stack.api_on(&sdk, &stack.api_settings());
    let delivery = switchyard_delivery::AwsDelivery::new(&sdk, &stack.delivery_settings(T)).unwrap();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;

    let mut endpoints = Vec::new();
    for n in 0..3 {
        endpoints.push(create(&api, &key, rx.url(&format!("/e{n}"))).await);
    }
    for (id, secret) in &endpoints {
        assert_sealed(&endpoint_item(&stack, id).await, &[secret]);
    }

    // Two rounds of one webhook per endpoint, each signed with its secret.
    for round in 1..=2 {
        for (id, _) in &endpoints {
            send_test(&api, &key, id).await;
        }
        stack.drain_deliveries_with(&delivery).await;
        let got = rx.wait_for(3 * round, T).await;
        assert_eq!(got.len(), 3 * round);
        for (n, (_, secret)) in endpoints.iter().enumerate() {
            let path = format!("/e{n}");
            let mine: Vec<_> = got.iter().filter(|r| r.path == path).collect();
            assert_eq!(mine.len(), round, "{path}");
            mine.iter().for_each(|r| assert_verifies(r, secret));
        }
    }

    // The API sealed three endpoints with one data key and read them back
    // from its cache; delivery unwrapped that key once for six webhooks.
    let tally = proxy.tally();
    assert_eq!(
        tally.requests.get("kms:GenerateDataKey"),
        Some(&1),
        "{:?}",
        tally.requests
    );
    assert_eq!(tally.requests.get("kms:Decrypt"), Some(&1), "{:?}", tally.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_secret_is_delivered_and_sealed_on_its_next_change() {
    let stack = Stack::new("kms-old").await;
    let api = stack.api();
    let rx = Receiver::ok().await.unwrap();
    let key = api.tenant("acme").await;
    let tenant = TenantId::parse("acme").unwrap();
    // Items as stored before secrets were sealed: by a registry without a key.
    let before_sealing = DynamoRegistry::new(stack.ddb.clone(), &stack.res.registry_table);
    let mut old = Vec::new();
    for path in ["/rotated", "/patched"] {
        let ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(&rx.url(path)).unwrap(),
            vec![],
            switchyard_core::time_util::now_utc(),
        );
        before_sealing.put_endpoint(&ep).await.unwrap();
        let item = endpoint_item(&stack, ep.id.as_str()).await;
        assert_eq!(item.get("secret"), Some(&AttributeValue::S(ep.secret.expose())));
        assert!(!item.contains_key(SEALED_SECRETS));
        old.push(ep);
    }
    let (rotated, patched) = (&old[0], &old[1]);

    // Delivered, signed with the plain-text secret.
    send_test(&api, &key, rotated.id.as_str()).await;
    stack.drain_deliveries(T).await;
    let got = rx.wait_for(1, T).await;
    assert_verifies(&got[0], &rotated.secret);

    // Rotating seals both the new secret and the retired one.
    let rot = api
        .call(
            "POST",
            &format!("/v1/endpoints/{}/rotate-secret", rotated.id),
            Some(&key),
            Some(json!({"overlap_hours": 24})),
        )
        .await;
    assert_eq!(rot.status, 200, "{rot:?}");
    let new = secret_of(&rot.body["secret"]);
    assert_sealed(
        &endpoint_item(&stack, rotated.id.as_str()).await,
        &[&new, &rotated.secret],
    );
    let s = api
        .call("GET", &format!("/v1/endpoints/{}/secret", rotated.id), Some(&key), None)
        .await;
    assert_eq!(s.body["secret"].as_str(), Some(new.expose().as_str()));
    assert_eq!(
        s.body["previous"][0]["secret"].as_str(),
        Some(rotated.secret.expose().as_str())
    );

    // Any other change seals the unchanged secret too.
    let p = api
        .call(
            "PATCH",
            &format!("/v1/endpoints/{}", patched.id),
            Some(&key),
            Some(json!({"description": "sealed now"})),
        )
        .await;
    assert_eq!(p.status, 200, "{p:?}");
    assert_sealed(&endpoint_item(&stack, patched.id.as_str()).await, &[&patched.secret]);
    let back = stack.registry.endpoint(&tenant, &patched.id).await.unwrap().unwrap();
    assert_eq!(
        (back.secret, back.description.as_str()),
        (patched.secret.clone(), "sealed now")
    );
    send_test(&api, &key, patched.id.as_str()).await;
    stack.drain_deliveries(T).await;
    let got = rx.wait_for(2, T).await;
    let hook = got
        .iter()
        .find(|r| r.path == "/patched")
        .expect("the patched endpoint's webhook");
    assert_verifies(hook, &patched.secret);

    // Without the key, a sealed item is an error, never a wrong secret.
    let e = before_sealing.endpoint(&tenant, &patched.id).await.unwrap_err();
    assert!(!e.retryable && e.message.contains("no KMS key"), "{e}");
    // And an unknown endpoint is still simply absent.
    let none = stack
        .registry
        .endpoint(&tenant, &EndpointId::parse("ep_none").unwrap())
        .await
        .unwrap();
    assert!(none.is_none());
}

/// `SecretsKmsKeyArn` set: the stack creates no key, and both functions
/// seal and open with the one given, by its ARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_ones_own_replaces_the_stacks_key() {
    let sdk = switchyard_local::sdk_config(moto_endpoint()).await;
    let kms = switchyard_aws::aws_sdk_kms::Client::new(&sdk);
    let arn = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .arn
        .unwrap();
    let template = tokio::task::spawn_blocking(switchyard_local::template::workspace_template)
        .await
        .unwrap()
        .unwrap();
    let plan = switchyard_local::runner::provision::provision(
        &sdk,
        template,
        &switchyard_local::runner::provision::Options {
            stack_name: switchyard_local::resources::unique_prefix("kms-own"),
            parameters: HashMap::from([("SecretsKmsKeyArn".to_string(), arn.clone())]),
            bin_dir: std::path::PathBuf::new(),
            api_endpoints: HashMap::new(),
        },
    )
    .await
    .unwrap();
    assert!(plan.created_of("AWS::KMS::Key").is_empty(), "{:?}", plan.created);
    for function in ["ApiFunction", "DeliveryFunction"] {
        let env = &plan.function(function).unwrap().environment;
        let key = env.iter().find(|(k, _)| k == "SECRETS_KEY_ID").map(|(_, v)| v.as_str());
        assert_eq!(key, Some(arn.as_str()), "{function}");
    }
    let ep = Endpoint::new(
        TenantId::parse("acme").unwrap(),
        EndpointUrl::parse("https://e.example/").unwrap(),
        vec![],
        switchyard_core::time_util::now_utc(),
    );
    let writer = switchyard_aws::kms::KmsDataKeys::keyring(&sdk, &arn);
    let sealed = switchyard_core::sealing::EndpointSecrets::seal(&ep, &writer)
        .await
        .unwrap();
    let reader = switchyard_aws::kms::KmsDataKeys::keyring(&sdk, &arn);
    let opened = switchyard_core::sealing::EndpointSecrets::open(&sealed, &ep.tenant_id, &ep.id, &reader)
        .await
        .unwrap();
    assert_eq!(opened.secret, ep.secret);
}
