//! The EventBridge door: AWS service events from an EventBridge rule on the
//! default bus, and the tenant rules that give them a tenant.
//!
//! # From an EventBridge event to an envelope
//!
//! | EventBridge | envelope |
//! |---|---|
//! | `id` | `id` (EventBridge redelivers at least once with the same id: it dedupes) |
//! | `source` + `detail-type` | `type`, normalised (see [`normalise_type`]) |
//! | `source` | `source` |
//! | `time` | `timestamp` (now if absent) |
//! | `detail` | `data` (must be a JSON object) |
//! | `source`, `resources` | `tenant_id`, by the [`TenantRules`] |
//!
//! `version` is `1.0`, `metadata` empty, `routing` the defaults.

use crate::envelope::{Envelope, EnvelopeError, IngestLimits, SchemaVersion, Source};
use crate::event_type::EventType;
use crate::ids::{EventId, TenantId};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use time::OffsetDateTime;

/// An event as an EventBridge rule delivers it to its target. Unknown fields
/// (`version`, `account`, `region`, …) are ignored.
#[derive(Clone, PartialEq, Deserialize)]
pub struct ServiceEvent {
    /// The event's id as EventBridge gave it (the event id it is accepted as).
    pub id: Option<String>,
    /// Its `detail-type`, e.g. `Object Created`.
    #[serde(rename = "detail-type")]
    pub detail_type: Option<String>,
    /// Its `source`, e.g. `aws.s3`.
    pub source: Option<String>,
    /// The AWS account the event comes from.
    pub account: Option<String>,
    /// When it happened (RFC 3339), as EventBridge gave it.
    pub time: Option<String>,
    /// The ARNs of the resources it concerns.
    #[serde(default)]
    pub resources: Vec<String>,
    /// `Some(Value::Null)` for an explicit `null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    pub detail: Option<Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl fmt::Debug for ServiceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The detail is the payload: it stays out of logs.
        f.debug_struct("ServiceEvent")
            .field("id", &self.id)
            .field("detail_type", &self.detail_type)
            .field("source", &self.source)
            .field("time", &self.time)
            .field("resources", &self.resources)
            .finish_non_exhaustive()
    }
}

/// Why an AWS service event was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceEventError {
    /// The event does not make a valid envelope.
    #[error(transparent)]
    Invalid(#[from] EnvelopeError),
    /// No tenant rule matched and no default tenant is configured.
    #[error(
        "no tenant rule matches source `{event_source}` with resources {resources:?}, and no default tenant is set"
    )]
    NoTenant {
        /// The event's `source`.
        event_source: String,
        /// The event's `resources`.
        resources: Vec<String>,
    },
}

/// The event type of an AWS service event: its `source` and `detail-type`
/// joined with a dot, after normalising each dot-separated segment of the
/// source and the whole detail-type alike: ASCII letters are lowercased, every
/// run of other characters than `a-z`, `0-9` and `_` (dots in the detail-type
/// included) becomes one `_`, and `_` at either end of a segment is dropped.
///
/// `aws.s3` + `Object Created` → `aws.s3.object_created`;
/// `aws.ec2` + `EC2 Instance State-change Notification` →
/// `aws.ec2.ec2_instance_state_change_notification`.
pub fn normalise_type(source: &str, detail_type: &str) -> Result<EventType, EnvelopeError> {
    let invalid = |reason: String| EnvelopeError::Invalid {
        field: "detail-type",
        reason,
    };
    let mut segments = Vec::new();
    for part in source.split('.') {
        segments.push(normalise_segment(part));
    }
    segments.push(normalise_segment(detail_type));
    if segments.iter().any(String::is_empty) {
        return Err(invalid(format!(
            "`{source}` + `{detail_type}` leaves an empty segment once normalised"
        )));
    }
    EventType::parse(segments.join(".")).map_err(|e| invalid(format!("normalised, it is not an event type: {e}")))
}

fn normalise_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out.trim_matches('_').to_string()
}

/// One tenant rule: every condition it names must hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRule {
    /// The event's `source`, exactly (`aws.s3`).
    #[serde(default)]
    pub source: Option<String>,
    /// One of the event's `resources` ARNs, matched on ARN boundaries:
    /// `arn:aws:s3:::acme-uploads` matches that bucket and its objects
    /// (`…/key`), never `arn:aws:s3:::acme-uploads-old`. A trailing `*`
    /// matches any continuation, for the rare rule that really means a
    /// prefix (`arn:aws:s3:::acme-*`).
    #[serde(default)]
    pub resource_prefix: Option<String>,
    /// The tenant the event belongs to.
    pub tenant: TenantId,
}

impl TenantRule {
    fn matches(&self, source: &str, resources: &[String]) -> bool {
        self.source.as_deref().is_none_or(|s| s == source)
            && self
                .resource_prefix
                .as_deref()
                .is_none_or(|p| resources.iter().any(|r| resource_matches(p, r)))
    }
}

/// Whether the ARN `arn` is `pattern`'s resource or one inside it (the
/// next character a `/` or `:`), or, for a pattern ending in `*`, starts
/// with what precedes it.
fn resource_matches(pattern: &str, arn: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return arn.starts_with(prefix);
    }
    match arn.strip_prefix(pattern) {
        None => false,
        Some(rest) => rest.is_empty() || pattern.ends_with(['/', ':']) || rest.starts_with(['/', ':']),
    }
}

/// Why the tenant rules configuration was refused (at start-up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantRulesError {
    /// The configuration is not JSON of the expected shape; the text says where.
    #[error("the rules are not a JSON array of {{\"source\"?, \"resource_prefix\"?, \"tenant\"}}: {0}")]
    Malformed(String),
    /// The rule at this index (0-based) names no condition.
    #[error("rule {0} names no condition (`source` or `resource_prefix`); use the default tenant instead")]
    NoCondition(usize),
    /// The rule at this index (0-based) has an empty condition.
    #[error("rule {0} has an empty `source` or `resource_prefix`")]
    EmptyCondition(usize),
    /// The default tenant is not a valid tenant id; the text says why.
    #[error("the default tenant is not valid: {0}")]
    DefaultTenant(String),
}

/// How an AWS service event finds its tenant: the first rule that matches,
/// else the default tenant, else no tenant (the event is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRules {
    /// The rules, tried in order; the first that matches gives the tenant.
    pub rules: Vec<TenantRule>,
    /// The tenant of an event no rule matches; `None`: such an event is refused.
    pub default_tenant: Option<TenantId>,
    /// The stack's own AWS account: an event from another is refused.
    /// `None`: not checked.
    pub account: Option<String>,
}

impl TenantRules {
    /// Parses the rules (a JSON array; `None` or blank for none) and the
    /// default tenant (`None` or blank for none).
    pub fn parse(rules: Option<&str>, default_tenant: Option<&str>) -> Result<Self, TenantRulesError> {
        let rules: Vec<TenantRule> = match rules.map(str::trim).filter(|r| !r.is_empty()) {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json).map_err(|e| TenantRulesError::Malformed(e.to_string()))?,
        };
        for (i, r) in rules.iter().enumerate() {
            if r.source.is_none() && r.resource_prefix.is_none() {
                return Err(TenantRulesError::NoCondition(i));
            }
            if r.source.as_deref() == Some("") || r.resource_prefix.as_deref() == Some("") {
                return Err(TenantRulesError::EmptyCondition(i));
            }
        }
        let default_tenant = default_tenant
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| TenantId::parse(t).map_err(|e| TenantRulesError::DefaultTenant(e.to_string())))
            .transpose()?;
        Ok(Self {
            rules,
            default_tenant,
            account: None,
        })
    }

    /// The tenant of an event from `source` about `resources`.
    pub fn tenant_for(&self, source: &str, resources: &[String]) -> Option<&TenantId> {
        self.rules
            .iter()
            .find(|r| r.matches(source, resources))
            .map(|r| &r.tenant)
            .or(self.default_tenant.as_ref())
    }
}

/// Turns an EventBridge event (the bytes the target received) into an
/// envelope for the tenant the rules give it.
///
/// The whole event must fit `limits.max_body_bytes`, like an HTTP body.
pub fn parse_service_event(
    body: &[u8],
    rules: &TenantRules,
    limits: IngestLimits,
    now: OffsetDateTime,
) -> Result<Envelope, ServiceEventError> {
    if body.len() > limits.max_body_bytes {
        return Err(EnvelopeError::TooLarge {
            limit: limits.max_body_bytes,
            actual: body.len(),
        }
        .into());
    }
    let event: ServiceEvent =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::Malformed(format!("not an EventBridge event: {e}")))?;
    let source_text = event.source.ok_or(EnvelopeError::Missing("source"))?;
    // This door is for AWS services: a custom source (any principal that
    // may put events on the bus can name one) is not taken for one.
    if !source_text.starts_with("aws.") {
        return Err(EnvelopeError::Invalid {
            field: "source",
            reason: format!(
                "`{source_text}` is not an AWS service's source (`aws.*`); send your own events to the HTTP or SQS door"
            ),
        }
        .into());
    }
    if let (Some(expected), Some(account)) = (rules.account.as_deref(), event.account.as_deref())
        && expected != account
    {
        return Err(EnvelopeError::Invalid {
            field: "account",
            reason: format!("the event comes from account {account}, not this stack's"),
        }
        .into());
    }
    let detail_type = event.detail_type.ok_or(EnvelopeError::Missing("detail-type"))?;
    let source = Source::parse(source_text.clone()).map_err(|e| EnvelopeError::Invalid {
        field: "source",
        reason: e.reason.to_string(),
    })?;
    let event_type = normalise_type(&source_text, &detail_type)?;
    let id = EventId::parse(event.id.ok_or(EnvelopeError::Missing("id"))?).map_err(|e| EnvelopeError::Invalid {
        field: "id",
        reason: e.reason.to_string(),
    })?;
    let timestamp = match event.time {
        Some(t) => crate::time_util::parse_rfc3339(&t).map_err(|_| EnvelopeError::Invalid {
            field: "time",
            reason: "must be an RFC 3339 date-time".to_string(),
        })?,
        None => now,
    };
    let data = match event.detail {
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(EnvelopeError::Invalid {
                field: "detail",
                reason: "must be a JSON object".to_string(),
            }
            .into());
        }
        None => return Err(EnvelopeError::Missing("detail").into()),
    };
    let tenant = rules
        .tenant_for(&source_text, &event.resources)
        .cloned()
        .ok_or_else(|| ServiceEventError::NoTenant {
            event_source: source_text.clone(),
            resources: event.resources.clone(),
        })?;
    let envelope = Envelope {
        id,
        event_type,
        version: SchemaVersion::default(),
        timestamp,
        source,
        tenant_id: tenant,
        data,
        metadata: Default::default(),
        routing: Default::default(),
    };
    crate::envelope::check_queued_size(&envelope)?;
    Ok(envelope)
}

/// The AWS service event in a message of the AWS events DLQ, as JSON text:
/// EventBridge's own dead letter is the event itself; Lambda's on-failure
/// record carries it as `requestPayload`. `None` if the body is neither
/// (it is left where it is).
pub fn dead_lettered_service_event(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let is_event = |v: &Value| v.is_object() && ["detail-type", "source", "detail"].iter().all(|k| v.get(k).is_some());
    if is_event(&value) {
        return Some(body.to_string());
    }
    let payload = value.get("requestPayload")?;
    (value.get("requestContext").is_some() && is_event(payload)).then(|| payload.to_string())
}

#[cfg(test)]
mod tests;
