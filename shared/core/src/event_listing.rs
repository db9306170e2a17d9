//! The listing of a tenant's stored events (`GET /v1/events`): which
//! events a request asks for, checked before any store is read.
//!
//! A listing is a time window over `received_at` (either end optional,
//! `since` included, `until` excluded) and at most one filter on the event
//! type: an exact type, or a prefix of types. The store lists newest first
//! and pages with an opaque cursor (see
//! [`EventQueries::list_events`](crate::ports::EventQueries::list_events)).

use crate::event_type::{EventType, MAX_EVENT_TYPE_LEN};
use time::{Duration, OffsetDateTime};

/// Which event types a listing keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this type.
    Exact(EventType),
    /// Every type that starts with this text (`order.` or `order`).
    Prefix(String),
}

impl TypeFilter {
    /// Whether an event of type `event_type` is kept.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(t) => t.as_str() == event_type,
            Self::Prefix(p) => event_type.starts_with(p.as_str()),
        }
    }
}

/// Why a listing request was refused: the parameter at fault and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param} {problem}")]
pub struct ListingError {
    /// The query parameter at fault.
    pub param: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ListingError {
    fn new(param: &'static str, problem: impl Into<String>) -> Self {
        Self {
            param,
            problem: problem.into(),
        }
    }
}

/// The events a listing asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventListing {
    /// Events received at or after this time; `None`: since the oldest
    /// stored.
    pub since: Option<OffsetDateTime>,
    /// Events received before this time; `None`: up to the newest.
    pub until: Option<OffsetDateTime>,
    /// Which types; `None`: every type.
    pub types: Option<TypeFilter>,
}

impl EventListing {
    /// A listing from the request's parameters: `type` and `type_prefix`
    /// exclude each other, `until` must be after `since`, a type must be a
    /// valid event type and a prefix 1 to 128 characters of what types
    /// are made of (`[a-z0-9_.]`).
    pub fn new(
        since: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
        exact: Option<&str>,
        prefix: Option<&str>,
    ) -> Result<Self, ListingError> {
        if let (Some(s), Some(u)) = (since, until)
            && u <= s
        {
            return Err(ListingError::new("until", "must be after since"));
        }
        let types = match (exact, prefix) {
            (Some(_), Some(_)) => {
                return Err(ListingError::new(
                    "type_prefix",
                    "cannot be given with type (give one of them)",
                ));
            }
            (Some(t), None) => Some(TypeFilter::Exact(
                EventType::parse(t).map_err(|e| ListingError::new("type", e.to_string()))?,
            )),
            (None, Some(p)) => Some(TypeFilter::Prefix(check_prefix(p)?)),
            (None, None) => None,
        };
        Ok(Self { since, until, types })
    }

    /// The window as whole milliseconds (what stored times hold):
    /// `[since, until)` rounded up at both ends keeps exactly the same
    /// stored times.
    pub fn millis_window(&self) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
        (self.since.map(ceil_millis), self.until.map(ceil_millis))
    }
}

/// A type prefix: 1 to [`MAX_EVENT_TYPE_LEN`] characters of `[a-z0-9_.]`.
fn check_prefix(p: &str) -> Result<String, ListingError> {
    if p.is_empty() || p.len() > MAX_EVENT_TYPE_LEN {
        return Err(ListingError::new(
            "type_prefix",
            format!("must be 1 to {MAX_EVENT_TYPE_LEN} characters"),
        ));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.';
    if !p.bytes().all(allowed) {
        return Err(ListingError::new(
            "type_prefix",
            "may hold only lowercase letters, digits, underscores and dots",
        ));
    }
    Ok(p.to_string())
}

/// `t` rounded up to a whole millisecond.
pub fn ceil_millis(t: OffsetDateTime) -> OffsetDateTime {
    let sub = t.nanosecond() % 1_000_000;
    if sub == 0 {
        t
    } else {
        t + Duration::nanoseconds(i64::from(1_000_000 - sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time_util::parse_rfc3339;

    fn at(s: &str) -> OffsetDateTime {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn a_type_or_a_prefix_but_not_both() {
        let exact = EventListing::new(None, None, Some("order.placed"), None).unwrap();
        assert_eq!(
            exact.types,
            Some(TypeFilter::Exact(EventType::parse("order.placed").unwrap()))
        );
        let prefix = EventListing::new(None, None, None, Some("order.")).unwrap();
        assert_eq!(prefix.types, Some(TypeFilter::Prefix("order.".into())));
        assert_eq!(
            EventListing::new(None, None, None, None).unwrap(),
            EventListing::default()
        );
        let both = EventListing::new(None, None, Some("order.placed"), Some("order.")).unwrap_err();
        assert_eq!(both.param, "type_prefix");
    }

    #[test]
    fn bad_types_and_prefixes_are_refused_by_name() {
        for t in ["", "order", "Order.Placed", "order..placed", &"a.".repeat(80)] {
            assert_eq!(
                EventListing::new(None, None, Some(t), None).unwrap_err().param,
                "type",
                "{t}"
            );
        }
        for p in ["", "Order", "order#", "order*", "ord er", &"a".repeat(129)] {
            assert_eq!(
                EventListing::new(None, None, None, Some(p)).unwrap_err().param,
                "type_prefix",
                "{p}"
            );
        }
        // A prefix need not be a whole segment.
        assert!(EventListing::new(None, None, None, Some("ord")).is_ok());
    }

    #[test]
    fn until_must_be_after_since() {
        let t = at("2026-05-01T10:00:00Z");
        assert_eq!(
            EventListing::new(Some(t), Some(t), None, None).unwrap_err().param,
            "until"
        );
        assert!(EventListing::new(Some(t + Duration::SECOND), Some(t), None, None).is_err());
        assert!(EventListing::new(Some(t), Some(t + Duration::MILLISECOND), None, None).is_ok());
        // Either end alone is fine.
        assert!(EventListing::new(Some(t), None, None, None).is_ok());
        assert!(EventListing::new(None, Some(t), None, None).is_ok());
    }

    #[test]
    fn filters_match_exactly_or_by_prefix() {
        let exact = TypeFilter::Exact(EventType::parse("order.placed").unwrap());
        assert!(exact.matches("order.placed"));
        assert!(!exact.matches("order.placed_v2"));
        assert!(!exact.matches("order"));
        let prefix = TypeFilter::Prefix("order.".into());
        assert!(prefix.matches("order.placed"));
        assert!(prefix.matches("order.refund.issued"));
        assert!(!prefix.matches("orders.placed"));
        assert!(!prefix.matches("user.created"));
    }

    #[test]
    fn the_window_rounds_up_to_whole_milliseconds() {
        let t = at("2026-05-01T10:00:00.0005Z");
        assert_eq!(ceil_millis(t), at("2026-05-01T10:00:00.001Z"));
        let whole = at("2026-05-01T10:00:00.002Z");
        assert_eq!(ceil_millis(whole), whole);
        // An event stored at .001 is at or after since (.0005) and before
        // until (.0015): rounding both up keeps it, and only it.
        let l = EventListing::new(Some(t), Some(t + Duration::MILLISECOND), None, None).unwrap();
        assert_eq!(
            l.millis_window(),
            (
                Some(at("2026-05-01T10:00:00.001Z")),
                Some(at("2026-05-01T10:00:00.002Z"))
            )
        );
    }
}
