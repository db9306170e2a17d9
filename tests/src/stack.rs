//! The stack: one moto server per process, a private set of queues and
//! tables per test, and the functions' handlers over them.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use switchyard_aws::dynamo::{DynamoDeliveryLog, DynamoEventStore, DynamoRegistry};
use switchyard_aws::kms::KmsDataKeys;
use switchyard_aws::{SdkConfig, aws_sdk_dynamodb, aws_sdk_sqs};
use switchyard_local::moto::Moto;
use switchyard_local::resources::{QueueOptions, Resources, unique_prefix};
use switchyard_local::venv::{self, Venv};

pub fn root() -> PathBuf {
    switchyard_local::workspace_root()
}

/// The project's virtualenv, created on first use.
pub fn venv() -> &'static Venv {
    static VENV: OnceLock<Venv> = OnceLock::new();
    VENV.get_or_init(|| venv::ensure(&root()).unwrap_or_else(|e| panic!("the Python virtualenv is not usable: {e}")))
}

/// The endpoint of this process's moto server.
pub fn moto_endpoint() -> &'static str {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    &MOTO
        .get_or_init(|| Moto::start(&root(), venv()).unwrap_or_else(|e| panic!("moto is required for this test: {e}")))
        .endpoint
}

/// One test's private stack.
pub struct Stack {
    pub sdk: SdkConfig,
    pub res: Resources,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub registry: DynamoRegistry,
    /// How this stack's queues were made.
    pub opts: QueueOptions,
    /// A moto server of this stack's own, if it has one (stopped on drop).
    _moto: Option<Moto>,
}

impl Stack {
    /// New resources; failed messages come back after one second.
    pub async fn new(label: &str) -> Self {
        Self::with_options(
            label,
            QueueOptions {
                visibility_timeout_secs: 1,
                ..QueueOptions::default()
            },
        )
        .await
    }

    pub async fn with_options(label: &str, opts: QueueOptions) -> Self {
        Self::on(moto_endpoint(), None, label, opts).await
    }

    /// A stack on a moto server of its own: for load tests, whose traffic
    /// would otherwise slow the shared server and the timing of other tests.
    pub async fn with_own_moto(label: &str, opts: QueueOptions) -> Self {
        let moto = Moto::spawn(&root(), venv()).unwrap_or_else(|e| panic!("moto is required for this test: {e}"));
        let endpoint = moto.endpoint.clone();
        Self::on(&endpoint, Some(moto), label, opts).await
    }

    async fn on(endpoint: &str, moto: Option<Moto>, label: &str, opts: QueueOptions) -> Self {
        let sdk = switchyard_local::sdk_config(endpoint).await;
        let res = Resources::create(&sdk, &unique_prefix(label), opts)
            .await
            .unwrap_or_else(|e| panic!("creating resources in moto: {e}"));
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            registry: DynamoRegistry::new(ddb.clone(), &res.registry_table)
                .with_keyring(KmsDataKeys::keyring(&sdk, &res.secrets_key_id)),
            opts,
            ddb,
            sdk,
            res,
            _moto: moto,
        }
    }

    pub fn ingest(&self) -> switchyard_ingest::AwsIngest {
        switchyard_ingest::AwsIngest::new(&self.sdk, &self.ingest_settings())
    }

    pub fn ingest_settings(&self) -> switchyard_ingest::Settings {
        switchyard_ingest::Settings {
            registry_table: self.res.registry_table.clone(),
            deliveries_table: self.res.deliveries_table.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            max_body_bytes: switchyard_core::IngestLimits::DEFAULT_MAX_BODY_BYTES,
            audit_retention_days: 365,
            event_retention_days: 30,
            idempotency_window: Duration::from_secs(24 * 3600),
            // No bus unless a test opts in (`ingest_with`): the internal track
            // is off when EVENT_BUS_NAME is unset.
            event_bus_name: None,
            tenant_rules: switchyard_core::doors::TenantRules::default(),
            producers: Default::default(),
            // No ingest rate limit unless a test sets one (`ingest_with`):
            // load tests must not be throttled by it.
            ingest_per_second: 0,
        }
    }

    pub fn fanout(&self) -> switchyard_fanout::AwsFanout {
        switchyard_fanout::AwsFanout::new(
            &self.sdk,
            &switchyard_fanout::Settings {
                registry_table: self.res.registry_table.clone(),
                deliveries_queue_url: self.res.deliveries_queue_url.clone(),
                deliveries_table: self.res.deliveries_table.clone(),
                audit_retention_days: 365,
            },
        )
    }

    /// Delivery's settings for this stack: loopback receivers allowed,
    /// the production retry and circuit rules (an attempt stalls after half
    /// the timeout), a probe window of the timeout and a second.
    pub fn delivery_settings(&self, timeout: Duration) -> switchyard_delivery::Settings {
        switchyard_delivery::Settings {
            registry_table: self.res.registry_table.clone(),
            deliveries_table: self.res.deliveries_table.clone(),
            deliveries_queue_url: self.res.deliveries_queue_url.clone(),
            deliveries_dlq_url: self.res.deliveries_dlq_url.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            queue_limits: self.opts.deliveries_limits(),
            request_timeout: timeout,
            retention_days: 30,
            config: switchyard_core::delivery::DeliveryConfig {
                probe_window: timeout + Duration::from_secs(1),
                ..switchyard_delivery::deployed_config(timeout, switchyard_local::local_ssrf_policy())
            },
            secrets_key_id: Some(self.res.secrets_key_id.clone()),
        }
    }

    /// The monitor's reconciler settings for this stack, with `after` as
    /// its margin.
    pub fn reconcile_settings(&self, after: Duration) -> switchyard_monitor::ReconcileSettings {
        switchyard_monitor::ReconcileSettings {
            deliveries_table: self.res.deliveries_table.clone(),
            deliveries_queue_url: self.res.deliveries_queue_url.clone(),
            fanout_queue_url: self.res.fanout_queue_url.clone(),
            retention_days: 30,
            after,
        }
    }

    pub fn delivery(&self, timeout: Duration) -> switchyard_delivery::AwsDelivery {
        self.delivery_with(&self.delivery_settings(timeout))
    }

    pub fn delivery_with(&self, settings: &switchyard_delivery::Settings) -> switchyard_delivery::AwsDelivery {
        switchyard_delivery::AwsDelivery::new(&self.sdk, settings)
            .unwrap_or_else(|e| panic!("building the HTTP client: {e}"))
    }

    pub fn event_store(&self) -> DynamoEventStore {
        DynamoEventStore::new(self.ddb.clone(), &self.res.deliveries_table)
    }

    pub fn delivery_log(&self) -> DynamoDeliveryLog {
        DynamoDeliveryLog::new(self.ddb.clone(), &self.res.deliveries_table, time::Duration::days(30))
    }
}
