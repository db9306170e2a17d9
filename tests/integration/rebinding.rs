//! Names that resolve inside, probed through the whole local stack (the
//! runner's real processes, over HTTP): refused when an endpoint is
//! registered, and refused again when a delivery connects, for an endpoint
//! whose name resolved outside when it was registered and inside now (DNS
//! rebinding).
//!
//! The stack runs with the allow-list narrowed to one address,
//! `127.0.0.2`, where the honest receiver listens. The probe name is this
//! machine's own hostname, which resolves through the system resolver
//! (`/etc/hosts`, here `127.0.0.1`) to an address outside that list. The
//! probe receiver listens on every IPv4 address of the machine, so any
//! request that reached the name's addresses would be heard.

use crate::runner::{options, template};
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use switchyard_aws::aws_sdk_dynamodb;
use switchyard_aws::aws_sdk_dynamodb::types::AttributeValue;
use switchyard_core::ssrf::{IpNet, SsrfPolicy, check_ip};
use switchyard_local::runner::Runner;
use switchyard_tests::{Http, Receiver, Reply, moto_endpoint};

const ALLOWED: &str = "127.0.0.2";

/// This machine's hostname and what it resolves to now.
async fn inside_name() -> (String, Vec<IpAddr>) {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the hostname")
        .trim()
        .to_string();
    let addrs: Vec<IpAddr> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .unwrap_or_else(|e| panic!("the hostname `{name}` does not resolve ({e}); the probe needs a name that does"))
        .map(|a| a.ip())
        .collect();
    let policy = SsrfPolicy {
        allow_http: true,
        allow: vec![IpNet::parse(ALLOWED).unwrap()],
    };
    assert!(
        !addrs.is_empty() && addrs.iter().all(|ip| check_ip(*ip, &policy).is_err()),
        "the probe needs a name resolving inside only; `{name}` resolves to {addrs:?}"
    );
    (name, addrs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_resolve_inside_are_refused_at_registration_and_at_delivery() {
    let (name, addrs) = inside_name().await;
    let sdk = switchyard_local::sdk_config(moto_endpoint()).await;
    let mut opts = options("rebind", &[]);
    opts.env_overrides
        .push(("SSRF_ALLOW_LIST".into(), format!("{ALLOWED}/32")));
    let runner = Runner::start(&sdk, template(), opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let api = Http::of(&runner);
    let honest = Receiver::start_on(&format!("{ALLOWED}:0"), |_| Reply::status(200))
        .await
        .unwrap();
    // Hears on every IPv4 address, 127.0.0.2 and the name's included.
    let probe = Receiver::start_on("0.0.0.0:0", |_| Reply::status(200)).await.unwrap();
    let port = probe.addr.port();
    let key = api.tenant("rebind").await;

    // Registration: the name is resolved and refused; nothing is stored.
    let inside_url = format!("http://{name}:{port}/rebind");
    let (s, b) = api
        .call(
            "POST",
            "/v1/endpoints",
            &key,
            Some(json!({"url": inside_url, "filter_types": ["*"]})),
        )
        .await;
    assert!((400..500).contains(&s), "{s} {b}");
    let refusal = b.to_string();
    assert!(
        b["code"] == "url_refused" && addrs.iter().any(|a| refusal.contains(&a.to_string())),
        "the refusal names the address: {refusal}"
    );
    let (s, b) = api.call("GET", "/v1/endpoints", &key, None).await;
    assert_eq!((s, b["items"].as_array().map(Vec::len)), (200, Some(0)), "{b}");

    // Delivery: an endpoint registered while its name was outside
    // (`127.0.0.2`, allowed) whose name resolves inside now. The rebinding
    // is played by rewriting the stored URL, as a DNS change would.
    let (honest_id, _) = api.endpoint(&key, &honest.url("/ok"), &["*"]).await;
    let (rebound_id, _) = api
        .endpoint(&key, &format!("http://{ALLOWED}:{port}/rebind"), &["*"])
        .await;
    let registry = runner
        .plan()
        .reference("RegistryTable")
        .expect("the registry table")
        .to_string();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    ddb.update_item()
        .table_name(&registry)
        .key("pk", AttributeValue::S("TENANT#rebind".into()))
        .key("sk", AttributeValue::S(format!("ENDPOINT#{rebound_id}")))
        .update_expression("SET #u = :u")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_names("#u", "url")
        .expression_attribute_values(":u", AttributeValue::S(inside_url.clone()))
        .send()
        .await
        .expect("rewrite the stored URL");
    let (s, b) = api
        .call("GET", &format!("/v1/endpoints/{rebound_id}"), &key, None)
        .await;
    assert_eq!((s, b["url"].as_str()), (200, Some(inside_url.as_str())), "{b}");

    let (s, b) = api
        .call(
            "POST",
            "/v1/events",
            &key,
            Some(json!({"id": "evt_rebind_1", "type": "order.placed", "data": {"n": 1}})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let got = honest.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "the honest endpoint gets the event");

    // The rebound endpoint's first attempt is recorded as the refusal.
    let until = Instant::now() + Duration::from_secs(30);
    let attempt = loop {
        let (s, b) = api
            .call("GET", &format!("/v1/endpoints/{rebound_id}/deliveries"), &key, None)
            .await;
        assert_eq!(s, 200, "{b}");
        let delivery = b["items"].as_array().and_then(|i| i.first()).cloned();
        if let Some(d) = delivery.filter(|d| d["attempts"].as_u64().unwrap_or(0) >= 1) {
            let id = d["id"].as_str().unwrap().to_string();
            let (s, b) = api.call("GET", &format!("/v1/deliveries/{id}"), &key, None).await;
            assert_eq!(s, 200, "{b}");
            break b["attempt_log"][0].clone();
        }
        assert!(Instant::now() < until, "no attempt recorded for the rebound endpoint");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("rebound `{name}` ({addrs:?}): attempt {attempt}");
    assert_eq!(attempt["succeeded"], false, "{attempt}");
    assert!(attempt["status_code"].is_null(), "no answer was had: {attempt}");
    assert_eq!(attempt["error_kind"], "address_refused", "{attempt}");
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refusing to connect") && error.contains(&name),
        "the attempt says why: {attempt}"
    );
    // Nothing reached any address of the machine on the probe's port.
    assert!(probe.received().is_empty(), "{:?}", probe.received());
    assert_eq!(honest.received().len(), 1);
    let _ = honest_id;
    runner.shutdown().await;
}
