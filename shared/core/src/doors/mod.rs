//! What each door does before the event goes the way every event goes
//! ([`crate::ingest`]: dedupe, hand over, store once):
//!
//! - the HTTP API (`http`) authenticates the caller's API key
//!   ([`authenticate`]) and reads the body with
//!   [`parse_event`](crate::envelope::parse_event);
//! - the SQS ingest queue (`sqs`) reads each message body as an HTTP body,
//!   for the tenant its attribute names; the [`DOOR_ATTRIBUTE`] sends an
//!   AWS service event replayed from its DLQ through the EventBridge
//!   reading instead;
//! - the EventBridge rule (`eventbridge`) maps an AWS service event to an
//!   envelope ([`parse_service_event`]) for the tenant its
//!   [`TenantRules`] give it.
//!
//! Every item is re-exported here: callers name `doors::X`.

mod eventbridge;
mod http;
mod sqs;

pub use eventbridge::{
    ServiceEvent, ServiceEventError, TenantRule, TenantRules, TenantRulesError, dead_lettered_service_event,
    normalise_type, parse_service_event,
};
pub use http::{AuthError, authenticate};
pub use sqs::{DOOR_ATTRIBUTE, EVENTBRIDGE_DOOR};
