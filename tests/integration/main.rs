//! Switchyard's integration tests: one binary, one moto server, a private
//! set of queues and tables per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "integration tests and their helpers: a failed step panics the test"
)]

mod adapters;
mod api;
mod api_client;
mod api_fuzz;
mod api_keys;
mod api_storage;
mod at_least_once;
mod consumer;
mod delivery;
mod delivery_ttl;
mod deploy_walkthrough;
mod e2e;
mod endpoint_races;
mod events_listing;
mod events_samples;
mod fanout_memory;
mod faults;
mod iam;
mod ingest_bad_input;
mod ingest_doors;
mod internal_routing;
mod observability;
mod producers;
mod queue_limits;
mod quotas;
mod rebinding;
mod reconcile;
mod recovery;
mod redrive;
mod runner;
mod secrets_at_rest;
mod signing_interop;
mod template;
mod tenants;
mod wire_compat;
