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
    pub id: Option<String>,
    #[serde(rename = "detail-type")]
    pub detail_type: Option<String>,
    pub source: Option<String>,
    /// The AWS account the event comes from.
    pub account: Option<String>,
    pub time: Option<String>,
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
    #[error(transparent)]
    Invalid(#[from] EnvelopeError),
    /// No tenant rule matched and no default tenant is configured.
    #[error(
        "no tenant rule matches source `{event_source}` with resources {resources:?}, and no default tenant is set"
    )]
    NoTenant {
        event_source: String,
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
    #[error("the rules are not a JSON array of {{\"source\"?, \"resource_prefix\"?, \"tenant\"}}: {0}")]
    Malformed(String),
    #[error("rule {0} names no condition (`source` or `resource_prefix`); use the default tenant instead")]
    NoCondition(usize),
    #[error("rule {0} has an empty `source` or `resource_prefix`")]
    EmptyCondition(usize),
    #[error("the default tenant is not valid: {0}")]
    DefaultTenant(String),
}

/// How an AWS service event finds its tenant: the first rule that matches,
/// else the default tenant, else no tenant (the event is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRules {
    pub rules: Vec<TenantRule>,
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_event_is_found_in_either_kind_of_dead_letter() {
        let event = json!({"id": "e-1", "source": "aws.s3", "detail-type": "Object Created", "detail": {"k": 1}});
        let raw = event.to_string();
        assert_eq!(dead_lettered_service_event(&raw).as_deref(), Some(raw.as_str()));
        let record = json!({
            "version": "1.0",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event,
            "responsePayload": {"errorType": "NoTenantForEvent"},
        });
        let found: Value = serde_json::from_str(&dead_lettered_service_event(&record.to_string()).unwrap()).unwrap();
        assert_eq!(found, event);
        for other in [
            "not json".to_string(),
            json!({"source": "aws.s3", "detail-type": "x"}).to_string(),
            json!({"requestPayload": event}).to_string(),
            json!({"requestContext": {}, "requestPayload": {"Records": []}}).to_string(),
            json!([event]).to_string(),
        ] {
            assert_eq!(dead_lettered_service_event(&other), None, "{other}");
        }
    }

    fn now() -> OffsetDateTime {
        crate::time_util::parse_rfc3339("2026-11-29T10:00:00Z").unwrap()
    }

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn s3_event() -> Value {
        json!({
            "version": "0",
            "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": "123456789012",
            "time": "2026-11-29T09:59:58Z",
            "region": "us-east-1",
            "resources": ["arn:aws:s3:::acme-uploads"],
            "detail": {
                "version": "0",
                "bucket": { "name": "acme-uploads" },
                "object": { "key": "invoices/42.pdf", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184" },
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": "123456789012",
                "reason": "PutObject"
            }
        })
    }

    fn rules() -> TenantRules {
        TenantRules::parse(
            Some(
                r#"[{"source":"aws.s3","resource_prefix":"arn:aws:s3:::acme-*","tenant":"acme"},
                    {"resource_prefix":"arn:aws:s3:::globex","tenant":"globex"},
                    {"source":"aws.ec2","tenant":"ops"}]"#,
            ),
            None,
        )
        .unwrap()
    }

    fn parse(v: &Value, rules: &TenantRules) -> Result<Envelope, ServiceEventError> {
        parse_service_event(v.to_string().as_bytes(), rules, IngestLimits::default(), now())
    }

    #[test]
    fn detail_types_are_normalised_to_dotted_event_types() {
        let cases = [
            ("aws.s3", "Object Created", "aws.s3.object_created"),
            ("aws.s3", "Object Deleted", "aws.s3.object_deleted"),
            (
                "aws.ec2",
                "EC2 Instance State-change Notification",
                "aws.ec2.ec2_instance_state_change_notification",
            ),
            (
                "aws.codepipeline",
                "CodePipeline Pipeline Execution State Change",
                "aws.codepipeline.codepipeline_pipeline_execution_state_change",
            ),
            ("com.Acme.Shop", "order.placed", "com.acme.shop.order_placed"),
            ("aws.s3", "  Object -- Created!! ", "aws.s3.object_created"),
            ("aws.s3", "snake_case_kept", "aws.s3.snake_case_kept"),
            ("aws.s3", "Ünïcode Thing", "aws.s3.n_code_thing"),
        ];
        for (source, detail_type, want) in cases {
            assert_eq!(
                normalise_type(source, detail_type).unwrap().as_str(),
                want,
                "{source} + {detail_type}"
            );
        }
        for (source, detail_type) in [("aws.s3", "!!!"), ("aws..s3", "Object Created"), ("aws.s3", "")] {
            let err = normalise_type(source, detail_type).unwrap_err();
            assert_eq!(err.field(), Some("detail-type"), "{source} + {detail_type}");
        }
        let long = "x".repeat(200);
        assert!(normalise_type("aws.s3", &long).is_err(), "longer than 128 characters");
    }

    #[test]
    fn an_s3_object_created_event_becomes_an_envelope() {
        let e = parse(&s3_event(), &rules()).unwrap();
        assert_eq!(e.id.as_str(), "17793124-05d4-b198-2fde-7ededc63b103");
        assert_eq!(e.event_type.as_str(), "aws.s3.object_created");
        assert_eq!(e.source.as_str(), "aws.s3");
        assert_eq!(e.tenant_id, t("acme"));
        assert_eq!(crate::time_util::rfc3339(e.timestamp), "2026-11-29T09:59:58Z");
        assert_eq!(e.data["object"]["key"], "invoices/42.pdf");
        assert_eq!(e.version.as_str(), "1.0");
        assert_eq!(e.routing, crate::Routing::default());
        // The detail keeps its key order.
        let keys: Vec<_> = e.data.keys().cloned().collect();
        assert_eq!(
            keys,
            ["version", "bucket", "object", "request-id", "requester", "reason"]
        );
    }

    #[test]
    fn detail_must_be_an_object() {
        for detail in [json!([1]), json!("x"), json!(null), json!(3)] {
            let mut ev = s3_event();
            ev["detail"] = detail.clone();
            let err = parse(&ev, &rules()).unwrap_err();
            assert_eq!(
                err,
                ServiceEventError::Invalid(EnvelopeError::Invalid {
                    field: "detail",
                    reason: "must be a JSON object".into()
                }),
                "{detail}"
            );
        }
        let mut ev = s3_event();
        ev.as_object_mut().unwrap().remove("detail");
        assert_eq!(
            parse(&ev, &rules()).unwrap_err(),
            ServiceEventError::Invalid(EnvelopeError::Missing("detail"))
        );
    }

    #[test]
    fn bad_events_are_refused() {
        let cases: &[(&str, Value, &str)] = &[
            ("id", json!("a b"), "invalid_field"),
            ("id", json!(null), "missing_field"),
            ("source", json!("bad source"), "invalid_field"),
            ("source", json!(null), "missing_field"),
            ("detail-type", json!(null), "missing_field"),
            ("detail-type", json!("???"), "invalid_field"),
            ("time", json!("yesterday"), "invalid_field"),
            ("time", json!(5), "invalid_json"),
        ];
        for (field, value, code) in cases {
            let mut ev = s3_event();
            ev[*field] = value.clone();
            match parse(&ev, &rules()) {
                Err(ServiceEventError::Invalid(e)) => assert_eq!(e.code(), *code, "{field}={value}: {e}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        for body in ["", "[]", "{", "null"] {
            let err = parse_service_event(body.as_bytes(), &rules(), IngestLimits::default(), now()).unwrap_err();
            assert!(
                matches!(err, ServiceEventError::Invalid(EnvelopeError::Malformed(_))),
                "{body}"
            );
        }
        let small = IngestLimits { max_body_bytes: 100 };
        let body = s3_event().to_string();
        assert_eq!(
            parse_service_event(body.as_bytes(), &rules(), small, now()).unwrap_err(),
            ServiceEventError::Invalid(EnvelopeError::TooLarge {
                limit: 100,
                actual: body.len()
            })
        );
    }

    #[test]
    fn the_first_matching_rule_names_the_tenant() {
        let r = rules();
        let res = |a: &str| vec![a.to_string()];
        assert_eq!(
            r.tenant_for("aws.s3", &res("arn:aws:s3:::acme-uploads")),
            Some(&t("acme"))
        );
        // Source matches rule 1 but the resource does not; rule 2 matches on the resource alone.
        assert_eq!(
            r.tenant_for("aws.s3", &res("arn:aws:s3:::globex/data/1.csv")),
            Some(&t("globex"))
        );
        assert_eq!(r.tenant_for("aws.s3", &res("arn:aws:s3:::initech")), None);
        assert_eq!(r.tenant_for("aws.ec2", &[]), Some(&t("ops")));
        // Any of the resources may match.
        assert_eq!(
            r.tenant_for("aws.s3", &["arn:aws:s3:::x".into(), "arn:aws:s3:::acme-2".into()]),
            Some(&t("acme"))
        );
        // Order matters: the first match wins.
        let both = TenantRules::parse(
            Some(r#"[{"source":"aws.s3","tenant":"first"},{"source":"aws.s3","tenant":"second"}]"#),
            None,
        )
        .unwrap();
        assert_eq!(both.tenant_for("aws.s3", &[]), Some(&t("first")));
        // The default catches the rest.
        let with_default =
            TenantRules::parse(Some(r#"[{"source":"aws.ec2","tenant":"ops"}]"#), Some("shared")).unwrap();
        assert_eq!(with_default.tenant_for("aws.s3", &[]), Some(&t("shared")));
        assert_eq!(with_default.tenant_for("aws.ec2", &[]), Some(&t("ops")));
        assert_eq!(TenantRules::parse(None, Some(" ")).unwrap(), TenantRules::default());
    }

    #[test]
    fn resources_match_on_arn_boundaries_not_as_plain_prefixes() {
        let r = TenantRules::parse(
            Some(r#"[{"resource_prefix":"arn:aws:s3:::bucket-a","tenant":"a"},{"resource_prefix":"arn:aws:s3:::team-*","tenant":"team"}]"#),
            None,
        )
        .unwrap();
        let of = |arn: &str| r.tenant_for("aws.s3", &[arn.to_string()]).cloned();
        assert_eq!(of("arn:aws:s3:::bucket-a"), Some(t("a")));
        assert_eq!(of("arn:aws:s3:::bucket-a/key/x.pdf"), Some(t("a")));
        assert_eq!(of("arn:aws:s3:::bucket-ab"), None, "another tenant's bucket");
        assert_eq!(of("arn:aws:s3:::bucket-a-old"), None);
        // A trailing `*` says "prefix" out loud.
        assert_eq!(of("arn:aws:s3:::team-x"), Some(t("team")));
        assert!(resource_matches(
            "arn:aws:sqs:eu-west-1:123:",
            "arn:aws:sqs:eu-west-1:123:q"
        ));
    }

    #[test]
    fn only_aws_sources_from_this_account_come_in_by_this_door() {
        let mut r = rules();
        let mut custom = s3_event();
        custom["source"] = json!("acme.billing");
        let e = parse(&custom, &r).unwrap_err().to_string();
        assert!(e.contains("acme.billing") && e.contains("aws.*"), "{e}");
        r.account = Some("123456789012".into());
        let mut ev = s3_event();
        ev["account"] = json!("123456789012");
        assert!(parse(&ev, &r).is_ok());
        ev["account"] = json!("999999999999");
        let e = parse(&ev, &r).unwrap_err().to_string();
        assert!(e.contains("999999999999"), "{e}");
    }

    #[test]
    fn an_event_no_rule_matches_is_refused() {
        let mut ev = s3_event();
        ev["resources"] = json!(["arn:aws:s3:::initech-files"]);
        assert_eq!(
            parse(&ev, &rules()).unwrap_err(),
            ServiceEventError::NoTenant {
                event_source: "aws.s3".into(),
                resources: vec!["arn:aws:s3:::initech-files".into()]
            }
        );
        assert!(matches!(
            parse(&s3_event(), &TenantRules::default()),
            Err(ServiceEventError::NoTenant { .. })
        ));
    }

    #[test]
    fn bad_rules_are_refused_at_start_up() {
        let bad = [
            (r#"{"source":"aws.s3","tenant":"a"}"#, "Malformed"),
            (r#"[{"source":"aws.s3","tenant":"a#b"}]"#, "Malformed"),
            (r#"[{"source":"aws.s3"}]"#, "Malformed"),
            (r#"[{"source":"aws.s3","tenant":"a","bucket":"x"}]"#, "Malformed"),
            (r#"[{"tenant":"a"}]"#, "NoCondition"),
            (r#"[{"source":"","tenant":"a"}]"#, "EmptyCondition"),
        ];
        for (json, kind) in bad {
            let err = TenantRules::parse(Some(json), None).unwrap_err();
            assert!(format!("{err:?}").starts_with(kind), "{json}: {err:?}");
        }
        assert!(matches!(
            TenantRules::parse(None, Some("not a tenant!")),
            Err(TenantRulesError::DefaultTenant(_))
        ));
    }

    #[test]
    fn debug_leaves_the_detail_out() {
        let ev: ServiceEvent = serde_json::from_value(s3_event()).unwrap();
        let dbg = format!("{ev:?}");
        assert!(!dbg.contains("invoices"), "{dbg}");
        assert!(dbg.contains("aws.s3"), "{dbg}");
    }
}
