//! Event types (`user.created`) and the filters endpoints subscribe with
//! (`user.created`, `user.*`, `*`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The longest event type accepted.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// Why an event type or filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// The text is empty.
    #[error("must not be empty")]
    Empty,
    /// The text is longer than [`MAX_EVENT_TYPE_LEN`].
    #[error("longer than {MAX_EVENT_TYPE_LEN} characters")]
    TooLong,
    /// The text is not dotted segments of `[a-z0-9_]`.
    #[error(
        "must be two or more dot-separated segments of lowercase letters, digits and underscores, e.g. `user.created`"
    )]
    Syntax,
}

/// A dotted event type: `^[a-z0-9_]+(\.[a-z0-9_]+)+$`, at most 128 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl EventType {
    /// Checks `s` against the type's syntax.
    pub fn parse(s: impl Into<String>) -> Result<Self, EventTypeError> {
        let s = s.into();
        if s.is_empty() {
            return Err(EventTypeError::Empty);
        }
        if s.len() > MAX_EVENT_TYPE_LEN {
            return Err(EventTypeError::TooLong);
        }
        let mut segments = 0;
        for seg in s.split('.') {
            if !valid_segment(seg) {
                return Err(EventTypeError::Syntax);
            }
            segments += 1;
        }
        if segments < 2 {
            return Err(EventTypeError::Syntax);
        }
        Ok(Self(s))
    }

    /// The type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = EventTypeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({:?})", self.0)
    }
}

/// The operational events Switchyard itself sends to a tenant's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationalType {
    /// `delivery.exhausted`: a delivery was given up (retries exhausted,
    /// URL refused, or the task lost).
    DeliveryExhausted,
    /// `endpoint.disabled`: an endpoint was disabled after failing too long.
    EndpointDisabled,
}

impl OperationalType {
    /// The event type's text, e.g. `delivery.exhausted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeliveryExhausted => "delivery.exhausted",
            Self::EndpointDisabled => "endpoint.disabled",
        }
    }

    /// The event type the notice is sent as. Each text is a valid event
    /// type (a unit test parses them), so no check is needed here.
    pub fn event_type(self) -> EventType {
        EventType(self.as_str().to_string())
    }
}

/// What an endpoint subscribes to.
///
/// - `*` matches every event type;
/// - `user.*` matches every type under `user.` (`user.created`,
///   `user.profile.updated`), but not `user` itself or `users.created`;
/// - anything else is an exact event type.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventTypeFilter(Filter);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Filter {
    All,
    /// The prefix including its trailing dot: `user.`.
    Prefix(String),
    Exact(EventType),
}

impl EventTypeFilter {
    /// Parses `*`, a `prefix.*` or an exact event type.
    pub fn parse(s: impl Into<String>) -> Result<Self, EventTypeError> {
        let s = s.into();
        if s == "*" {
            return Ok(Self(Filter::All));
        }
        if let Some(prefix) = s.strip_suffix(".*") {
            if prefix.is_empty() {
                return Err(EventTypeError::Syntax);
            }
            if s.len() > MAX_EVENT_TYPE_LEN {
                return Err(EventTypeError::TooLong);
            }
            if !prefix.split('.').all(valid_segment) {
                return Err(EventTypeError::Syntax);
            }
            return Ok(Self(Filter::Prefix(format!("{prefix}."))));
        }
        EventType::parse(s).map(|t| Self(Filter::Exact(t)))
    }

    /// Whether an event of this type matches.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match &self.0 {
            Filter::All => true,
            Filter::Prefix(p) => event_type.as_str().starts_with(p.as_str()),
            Filter::Exact(t) => t == event_type,
        }
    }
}

impl TryFrom<String> for EventTypeFilter {
    type Error = EventTypeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<EventTypeFilter> for String {
    fn from(f: EventTypeFilter) -> String {
        f.to_string()
    }
}

impl fmt::Display for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Filter::All => f.write_str("*"),
            Filter::Prefix(p) => write!(f, "{p}*"),
            Filter::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

impl fmt::Debug for EventTypeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventTypeFilter({:?})", self.to_string())
    }
}

/// Whether any of `filters` accepts `event_type`; an empty list accepts all.
pub fn any_matches(filters: &[EventTypeFilter], event_type: &EventType) -> bool {
    filters.is_empty() || filters.iter().any(|f| f.matches(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> EventType {
        EventType::parse(s).unwrap()
    }

    #[test]
    fn operational_types_are_valid_event_types() {
        for op in [OperationalType::DeliveryExhausted, OperationalType::EndpointDisabled] {
            assert_eq!(op.event_type(), t(op.as_str()));
        }
    }

    #[test]
    fn event_type_syntax() {
        for ok in ["user.created", "a.b", "payment_1.completed.v2", "x_.y_"] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "user",
            "User.created",
            "user..created",
            ".user",
            "user.",
            "user.created!",
            "user created",
            "user.*",
            "ü.x",
            "user-x.created",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            EventType::parse("a.".to_string() + &"b".repeat(127)).map(|_| ()),
            Err(EventTypeError::TooLong)
        );
        assert!(EventType::parse("a.".to_string() + &"b".repeat(126)).is_ok());
    }

    #[test]
    fn filters_match_exactly_and_by_prefix() {
        let exact = EventTypeFilter::parse("user.created").unwrap();
        assert!(exact.matches(&t("user.created")));
        assert!(!exact.matches(&t("user.deleted")));
        assert!(!exact.matches(&t("user.created.v2")));

        let wild = EventTypeFilter::parse("user.*").unwrap();
        assert!(wild.matches(&t("user.created")));
        assert!(wild.matches(&t("user.profile.updated")));
        assert!(!wild.matches(&t("users.created")));
        assert!(!wild.matches(&t("order.user.created")));

        let deep = EventTypeFilter::parse("user.profile.*").unwrap();
        assert!(deep.matches(&t("user.profile.updated")));
        assert!(!deep.matches(&t("user.created")));

        let all = EventTypeFilter::parse("*").unwrap();
        assert!(all.matches(&t("anything.at_all")));
    }

    #[test]
    fn bad_filters_are_refused() {
        for bad in ["", ".*", "user.**", "*.created", "user.*.x", "User.*", "user", "user*"] {
            assert!(EventTypeFilter::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn filters_round_trip_as_strings() {
        for s in ["*", "user.*", "user.created", "a.b.*"] {
            let f = EventTypeFilter::parse(s).unwrap();
            assert_eq!(f.to_string(), s);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<EventTypeFilter>(&json).unwrap(), f);
        }
    }

    #[test]
    fn empty_filter_list_accepts_everything() {
        assert!(any_matches(&[], &t("a.b")));
        let fs = [EventTypeFilter::parse("order.*").unwrap()];
        assert!(any_matches(&fs, &t("order.paid")));
        assert!(!any_matches(&fs, &t("user.paid")));
    }
}
