//! The SQS door: the ingest queue's message body is read as an HTTP body
//! ([`parse_event`](crate::envelope::parse_event)), for the tenant the
//! message's attribute names. What it needs here is the attribute that
//! reads a message as the EventBridge door reads its event.

/// The SQS message attribute that sends an ingest-queue message through
/// another door's reading: with [`EVENTBRIDGE_DOOR`], the body is an
/// EventBridge event, mapped and given its tenant as the EventBridge door
/// does ([`parse_service_event`](super::parse_service_event) and the tenant rules), never by a
/// `tenant_id` attribute.
pub const DOOR_ATTRIBUTE: &str = "switchyard_door";
/// The [`DOOR_ATTRIBUTE`] value of an AWS service event replayed from the
/// AWS events DLQ.
pub const EVENTBRIDGE_DOOR: &str = "eventbridge";
