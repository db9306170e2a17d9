//! Switchyard's integration tests: one binary, one moto server, a private
//! set of queues and tables per test.

mod adapters;
mod api;
mod api_storage;
mod at_least_once;
mod consumer;
mod delivery;
mod e2e;
mod events_samples;
mod faults;
mod ingest_bad_input;
mod ingest_doors;
mod internal_routing;
mod observability;
mod rebinding;
mod recovery;
mod redrive;
mod runner;
mod signing_interop;
mod template;
