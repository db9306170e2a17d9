//! The engine with the local stack's stores (DynamoDB and SQS on moto)
//! against the raw loop.

use anyhow::{Result, bail};
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::memory::{Memory, MemoryStore};
use switchyard_local::receiver::{Receiver, Reply};

use super::throughput::{RawRequest, raw};
use super::{Args, batches, drive_with, endpoints, tasks, tenant, timed};

/// The same engine with the stores the local stack uses: the DynamoDB and
/// SQS adapters against moto (a server of its own), N/10 deliveries (at
/// least 100), against raw reqwest posting the same requests.
pub(super) async fn against_moto(a: &Args) -> Result<()> {
    let root = switchyard_local::workspace_root();
    let venv = switchyard_local::venv::ensure(&root)?;
    let moto = switchyard_local::moto::Moto::start(&root, &venv)?;
    let sdk = switchyard_local::sdk_config(&moto.endpoint).await;
    let res = switchyard_local::resources::Resources::create(
        &sdk,
        &switchyard_local::resources::unique_prefix("bench"),
        switchyard_local::resources::QueueOptions::default(),
    )
    .await?;
    // Secrets sealed as deployed: the bench pays for opening them too.
    let registry = switchyard_aws::dynamo::DynamoRegistry::new(
        switchyard_aws::aws_sdk_dynamodb::Client::new(&sdk),
        &res.registry_table,
    )
    .with_keyring(switchyard_aws::kms::KmsDataKeys::keyring(&sdk, &res.secrets_key_id));
    registry.put_tenant(&tenant()?, "bench").await?;
    let rx = Receiver::start(|_| Reply::status(204)).await?;
    let scratch: Memory = Arc::new(MemoryStore::default());
    let eps = endpoints(&scratch, &[rx.url("/hook")])?;
    registry.put_endpoint(&eps[0]).await?;
    let timeout = Duration::from_secs(15);
    let settings = switchyard_delivery::Settings {
        registry_table: res.registry_table.clone(),
        deliveries_table: res.deliveries_table.clone(),
        deliveries_queue_url: res.deliveries_queue_url.clone(),
        deliveries_dlq_url: res.deliveries_dlq_url.clone(),
        fanout_queue_url: res.fanout_queue_url.clone(),
        queue_limits: switchyard_core::requeue::QueueLimits::default(),
        request_timeout: timeout,
        retention_days: 30,
        config: switchyard_delivery::deployed_config(timeout, switchyard_local::local_ssrf_policy()),
        secrets_key_id: Some(res.secrets_key_id.clone()),
    };
    let n = (a.n / 10).max(100);
    let ts = tasks(n, &eps)?;
    let now = switchyard_core::time_util::now_utc();
    let requests: Vec<RawRequest> = ts
        .iter()
        .map(|t| RawRequest::from(&switchyard_core::delivery::build_request(t, &eps[0], now)))
        .collect();
    let delivery = Arc::new(switchyard_delivery::AwsDelivery::new(&sdk, &settings)?);
    let engine = timed(async {
        Ok(drive_with(
            move |e| {
                let d = delivery.clone();
                async move {
                    d.handle(e).await;
                }
            },
            batches(&ts),
            a.concurrency,
        )
        .await)
    })
    .await?;
    let got = rx.received().len();
    if got < n {
        bail!("against moto the engine delivered {got} of {n}");
    }
    let raw = timed(raw(requests, a.concurrency * 10)).await?;
    let (e, r) = (engine.rate(n), raw.rate(n));
    println!(
        "against moto (the local stack's DynamoDB and SQS; {n} deliveries of 1 KB, {} batches of 10 in flight): engine {e:.0}/s, raw reqwest {r:.0}/s, ratio {:.3}: each delivery reads the delivery and writes it (a first attempt travels in it), and each batch reads its endpoints once, and moto serves about 100 requests a second",
        a.concurrency,
        e / r
    );
    Ok(())
}
