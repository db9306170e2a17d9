//! The integration tests' harness: one moto server per test process, and a
//! fresh, uniquely named set of queues and tables per test, with the
//! functions' real handlers (ingest, fan-out, delivery, the consumer, the
//! management API and queue administration) built over real SDK clients.
//!
//! A missing emulator is a failure, never a skip: if moto cannot start, the
//! test panics with moto's own log.
//!
//! - [`stack`]: moto, the virtualenv and [`Stack`] with the functions'
//!   handlers over its resources;
//! - [`seed`]: tenants and endpoints stored directly;
//! - [`queues`]: the functions run over the stack's queues, queue depths,
//!   rules that feed a queue;
//! - [`tables`]: the deliveries table read back;
//! - [`doors`]: ingest's HTTP, SQS and EventBridge doors;
//! - [`internal`]: the internal track (the consumer and its queues);
//! - [`api`]: the management API, called in-process;
//! - [`http`]: a client of a local runner's HTTP API;
//! - [`webhooks`]: handler answers and webhook signatures checked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "the integration tests' harness: a failed step panics the test that took it"
)]

pub mod api;
pub mod doors;
pub mod http;
pub mod internal;
pub mod openapi;
pub mod queues;
pub mod seed;
pub mod stack;
pub mod tables;
pub mod webhooks;

pub use api::{ADMIN_KEY, Answer, Api};
pub use http::Http;
pub use internal::bus_message;
pub use stack::{Stack, moto_endpoint, root, venv};
pub use switchyard_local::receiver::{Received, Receiver, Reply};
pub use webhooks::{assert_verifies, json_body, webhook_id};
