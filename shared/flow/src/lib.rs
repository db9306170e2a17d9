//! Switchyard's internal track, for the company's own code: what reads the
//! internal SQS queues.
//!
//! [`consumer`] dispatches each bus event to the handlers registered for its
//! type, at most once per handler, with retries and a DLQ for poison;
//! [`workflow`] builds resumable multi-step handlers whose effects commit
//! exactly once. Both reach storage only through their own small traits
//! ([`consumer::Markers`], [`workflow::WorkflowStore`]), which `switchyard-aws`
//! implements over DynamoDB. No AWS types.

pub mod consumer;
pub mod workflow;
