//! Switchyard's domain.
//!
//! Everything here is pure: no AWS SDK types, no network. The functions'
//! handlers turn their triggers into these types, call the services in
//! [`ingest`], [`fanout`] and [`delivery`], and map the results back. The
//! services talk to the outside world only through the small traits in
//! [`ports`], which `switchyard-aws` implements for SQS, DynamoDB and
//! EventBridge. The internal track's consumer framework and workflow engine
//! are a crate of their own, `switchyard-flow`, on top of this one.
//!
//! The modules form a one-way graph (`cargo xtask cycles` prints it by
//! layer): leaf types (ids, envelope, endpoint, task) at the bottom, then
//! the records the ports pass ([`model`]), then [`ports`], then the services
//! over ports and model. [`memory`] implements the ports in memory for
//! tests and benchmarks; no service needs it.

pub mod admin_key;
pub mod api_key;
pub mod batch_log;
pub mod delivery;
pub mod doors;
pub mod endpoint;
pub mod endpoint_edit;
pub mod envelope;
pub mod error;
pub mod event_listing;
pub mod event_type;
pub mod fanout;
pub mod ids;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod ports;
pub mod producers;
pub mod quota;
pub mod reconcile;
pub mod requeue;
pub mod retry;
pub mod routing;
pub mod sealing;
pub mod signing;
pub mod ssrf;
pub mod task;
pub mod time_util;
pub mod trace;
pub mod wire;

pub use api_key::{ApiKey, ApiKeyHash};
pub use endpoint::{Endpoint, EndpointUrl};
pub use envelope::{Envelope, EnvelopeError, IngestLimits, Metadata, Routing};
pub use error::PortError;
pub use event_type::{EventType, EventTypeFilter};
pub use ids::{DeliveryId, EndpointId, EventId, TenantId};
pub use signing::WebhookSecret;
pub use task::{DeliveryTask, FanoutTask};

/// The `user-agent` Switchyard sends with every webhook.
pub const USER_AGENT: &str = concat!("Switchyard/", env!("CARGO_PKG_VERSION"));
