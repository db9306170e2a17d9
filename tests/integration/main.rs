//! Switchyard's integration tests: one binary, one moto server, a private
//! set of queues and tables per test.

mod adapters;
mod e2e;
mod events_samples;
mod ingest_bad_input;
mod signing_interop;
mod template;
