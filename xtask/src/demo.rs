//! `cargo xtask demo`: Switchyard's main job on this machine, through the
//! local runner.
//!
//! Starts the whole stack from `template.yaml` (moto as AWS, every function
//! as its real binary, the HTTP API on localhost) and a demo receiver on
//! 127.0.0.1, then does what a user would, over HTTP only: creates a tenant
//! and an API key with the admin key, registers the receiver as an endpoint,
//! and POSTs one event. The runner's event source mappings carry it through
//! fan-out and delivery; the demo shows the signed webhook the receiver got,
//! verified with Switchyard's verifier and the public Standard Webhooks
//! libraries, then the delivery's attempt record (from the API) and the
//! internal track: the app bus's rule put the same event on the user queue,
//! and the consumer ran the `user_onboarding` workflow over it.
//!
//! `--keep-running` leaves the stack up afterwards (Ctrl-C stops it).

use crate::local::{self, Args};
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard_local::receiver::Receiver;
use switchyard_local::venv;

const EVENT: &str = r#"{"type":"user.created","data":{"user_id":"usr_123","email":"ada@example.com","plan":"pro"},"metadata":{"trace_id":"demo-trace-1"}}"#;

pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut args = Args::parse(root, args)?;
    if args.port == 3000 && !args.keep_running {
        args.port = 0; // a one-shot demo never fights over a port
    }
    let venv = crate::setup(root)?;
    local::runtime()?.block_on(async {
        let template = switchyard_local::template::load_path(root, &venv, &args.template)?;
        if args.build {
            local::build_functions(root, &template)?;
            args.build = false;
        }
        let started = Instant::now();
        let stack = local::start(root, &venv, &args, true).await?;
        let result = demo(root, &venv, &stack).await;
        step(&format!(
            "done in {:.1} s after the build",
            started.elapsed().as_secs_f64()
        ));
        if result.is_ok() && args.keep_running {
            local::describe(&stack, &args);
            println!("==> the stack keeps running; Ctrl-C stops it");
            local::wait_for_stop().await;
        }
        local::stop(stack).await;
        result
    })
}

/// One call to the local HTTP API.
pub(crate) async fn call(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = http
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.with_context(|| path.to_string())?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

pub(crate) fn expect(what: &str, (status, body): (u16, Value), want: u16) -> Result<Value> {
    if status == want {
        Ok(body)
    } else {
        Err(anyhow!("{what}: expected {want}, got {status} {body}"))
    }
}

/// What a user does first, over HTTP: a tenant (admin key), an API key for
/// it, and an endpoint at `url` for `types`. Returns the API key and the
/// endpoint as the API answered (with its secret).
pub(crate) async fn onboard(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    tenant: &str,
    url: &str,
    types: &[&str],
) -> Result<(String, Value)> {
    expect(
        "POST /v1/admin/tenants",
        call(
            http,
            base,
            "POST",
            "/v1/admin/tenants",
            admin,
            Some(json!({"id": tenant, "name": format!("{tenant} Inc.")})),
        )
        .await?,
        201,
    )?;
    let key = expect(
        "POST /v1/admin/tenants/{id}/api-keys",
        call(
            http,
            base,
            "POST",
            &format!("/v1/admin/tenants/{tenant}/api-keys"),
            admin,
            Some(json!({"label": tenant})),
        )
        .await?,
        201,
    )?;
    let key = key["api_key"].as_str().context("no api_key in the answer")?.to_string();
    let endpoint = expect(
        "POST /v1/endpoints",
        call(
            http,
            base,
            "POST",
            "/v1/endpoints",
            &key,
            Some(json!({"url": url, "filter_types": types})),
        )
        .await?,
        201,
    )?;
    Ok((key, endpoint))
}

async fn demo(root: &Path, venv: &venv::Venv, stack: &local::Stack) -> Result<()> {
    let base = stack.runner.api_url(None).context("the template serves no HTTP API")?;
    let admin = stack
        .admin_key
        .as_ref()
        .context("the template has no AdminKeySha256 parameter")?;
    step(&format!(
        "the stack from template.yaml is up: {} resources in moto, {} functions, HTTP API at {base}",
        stack.runner.plan().created.len(),
        stack.runner.plan().functions.len()
    ));
    let rx = Receiver::ok().await?;
    let http = reqwest::Client::new();
    let admin = admin.expose();
    let url = rx.url("/webhooks/switchyard");
    let (key, endpoint) = onboard(&http, &base, admin, "demo", &url, &["user.*"]).await?;
    let endpoint_id = endpoint["id"].as_str().context("no endpoint id")?.to_string();
    let secret = endpoint["secret"].as_str().context("no secret")?.to_string();
    step(&format!(
        "over HTTP: tenant `demo` (admin key), an API key, endpoint {endpoint_id} → {url} for `user.*`"
    ));

    let t = Instant::now();
    let accepted = expect(
        "POST /v1/events",
        call(
            &http,
            &base,
            "POST",
            "/v1/events",
            &key,
            Some(serde_json::from_str(EVENT)?),
        )
        .await?,
        202,
    )?;
    step(&format!("POST {base}/v1/events {EVENT}\n      → 202 {accepted}"));

    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    let Some(webhook) = got.first() else {
        bail!("the receiver got no webhook within 30 s");
    };
    step(&format!(
        "{:.0} ms later the receiver at {url} got (ingest → fanout queue → fanout → deliveries queue → delivery):",
        t.elapsed().as_secs_f64() * 1000.0
    ));
    println!("      {} {}", webhook.method, webhook.path);
    for (k, v) in &webhook.headers {
        println!("      {k}: {v}");
    }
    println!("\n      {}\n", webhook.body_text());

    let (id, ts, sig) = (
        webhook.header("webhook-id").unwrap_or_default(),
        webhook.header("webhook-timestamp").unwrap_or_default(),
        webhook.header("webhook-signature").unwrap_or_default(),
    );
    let parsed_secret = switchyard_core::WebhookSecret::parse(&secret)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    switchyard_core::signing::verify([&parsed_secret], id, ts, sig, &webhook.body, now, 300)
        .context("Switchyard's verifier rejected the webhook")?;
    let public = venv::webhooks_interop(
        root,
        venv,
        "verify",
        &json!({
            "secret": secret,
            "headers": { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig },
            "body": webhook.body_text(),
        }),
    )?;
    if public != json!({ "standardwebhooks": "ok", "svix": "ok" }) {
        bail!("the public libraries rejected the webhook: {public}");
    }
    step("signature verified with Switchyard's verifier and with the PyPI `standardwebhooks` and `svix` libraries");

    // The attempt record is written just after the receiver answers.
    let mut deliveries = Value::Null;
    for _ in 0..50 {
        let (status, body) = call(&http, &base, "GET", &format!("/v1/events/{id}/deliveries"), &key, None).await?;
        if status == 200
            && body["items"]
                .as_array()
                .is_some_and(|i| i.iter().any(|d| d["state"] == "succeeded"))
        {
            deliveries = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery_id = deliveries["items"][0]["delivery_id"]
        .as_str()
        .or_else(|| deliveries["items"][0]["id"].as_str())
        .context("the delivery log has no succeeded delivery for the event")?
        .to_string();
    let d = expect(
        "GET /v1/deliveries/{id}",
        call(
            &http,
            &base,
            "GET",
            &format!("/v1/deliveries/{delivery_id}"),
            &key,
            None,
        )
        .await?,
        200,
    )?;
    step(&format!("GET /v1/deliveries/{delivery_id} → {}", d["state"]));
    for a in d["attempt_log"].as_array().into_iter().flatten() {
        println!(
            "      attempt {} at {}: status {} in {} ms ({})",
            a["attempt"], a["at"], a["status_code"], a["duration_ms"], a["trigger"]
        );
    }

    // The internal track, played by the runner: bus rule → internal-user
    // queue → consumer.
    let state_table = stack
        .runner
        .plan()
        .reference("StateTable")
        .context("the template has no StateTable")?
        .to_string();
    let sdk = switchyard_local::sdk_config(&stack.moto.endpoint).await;
    let store = switchyard_aws::dynamo::DynamoStateStore::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        &state_table,
    );
    let key = switchyard_flow::workflow::RunKey {
        tenant: switchyard_core::TenantId::parse("demo")?,
        event: switchyard_core::EventId::parse(id)?,
        workflow: "user_onboarding".into(),
    };
    let mut run = None;
    for _ in 0..100 {
        if let Some(r) = store.run(&key).await?
            && r.status == "completed"
        {
            run = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = run.context("the user_onboarding workflow did not complete within 10 s")?;
    step(&format!(
        "internal track: the bus rule put the event on the internal-user queue; the consumer ran user_onboarding: {} after {} step(s) ({})",
        run.status,
        run.next_step,
        run.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
    ));
    let invocations = stack.runner.invocations();
    let failed = invocations.iter().filter(|i| !i.ok).count();
    step(&format!("{} invocations, {failed} failed", invocations.len()));
    Ok(())
}

fn step(text: &str) {
    println!("==> {text}");
}
