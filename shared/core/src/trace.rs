//! W3C Trace Context: the `traceparent` an event carries from the producer
//! through ingest, the queues and the bus to the consumer's handlers and to
//! every webhook request.
//!
//! `traceparent` is `version-traceid-parentid-flags`: `00`, 32 and 16
//! lowercase hex digits (neither all zeros), and two hex digits of flags
//! (bit 0: sampled). Ingest settles one per event ([`TraceParent::settle`]):
//! the producer's header if it is valid, else the one in the event's
//! `metadata`, else one on the event's `metadata.trace_id` when that is a
//! W3C trace id, else a new trace. Each hop that calls out (a webhook
//! attempt) sends the same trace id with a parent id of its own
//! ([`TraceParent::child`]).

use crate::ids::random_bytes;
use std::fmt;

/// A parsed `traceparent` (version 00).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

/// Why a `traceparent` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, ids not all zeros)")]
pub struct BadTraceParent;

/// The sampled flag.
const SAMPLED: u8 = 0x01;

fn hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl TraceParent {
    /// Parses a `traceparent` header value. A version other than `00` is
    /// read as `00` when its first four fields are well formed (as the
    /// specification asks of a version-00 reader); `ff` is refused.
    pub fn parse(s: &str) -> Result<Self, BadTraceParent> {
        let s = s.trim();
        let mut parts = s.split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadTraceParent);
        };
        let version = hex_exact::<1>(version).ok_or(BadTraceParent)?[0];
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return Err(BadTraceParent);
        }
        let trace_id = hex_exact::<16>(trace).filter(|t| t != &[0; 16]).ok_or(BadTraceParent)?;
        let parent_id = hex_exact::<8>(parent).filter(|p| p != &[0; 8]).ok_or(BadTraceParent)?;
        let flags = hex_exact::<1>(flags).ok_or(BadTraceParent)?[0];
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace, sampled, with a new parent id.
    pub fn new_trace() -> Self {
        let mut trace_id = [0u8; 16];
        while trace_id == [0; 16] {
            random_bytes(&mut trace_id);
        }
        Self::on_trace(trace_id)
    }

    /// A new span on the trace `trace_id` (32 lowercase hex digits), sampled;
    /// `None` if `trace_id` is not a W3C trace id.
    pub fn on_trace_id(trace_id: &str) -> Option<Self> {
        hex_exact::<16>(trace_id).filter(|t| t != &[0; 16]).map(Self::on_trace)
    }

    fn on_trace(trace_id: [u8; 16]) -> Self {
        Self {
            trace_id,
            parent_id: new_span_id(),
            flags: SAMPLED,
        }
    }

    /// The same trace with a new parent id: what a hop sends when it calls
    /// out (a webhook attempt is a span of its own).
    pub fn child(&self) -> Self {
        Self {
            parent_id: new_span_id(),
            ..*self
        }
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The trace context of an event at the door: `header` (the producer's
    /// `traceparent`) if valid, else `in_metadata` (a `traceparent` the
    /// event carries) if valid, else a new span on `trace_id` if that is a
    /// W3C trace id, else a new trace. An invalid header is ignored, as the
    /// specification asks; nothing here refuses the event.
    pub fn settle(header: Option<&str>, in_metadata: Option<&str>, trace_id: Option<&str>) -> Self {
        header
            .and_then(|h| Self::parse(h).ok())
            .or_else(|| in_metadata.and_then(|m| Self::parse(m).ok()))
            .or_else(|| trace_id.and_then(Self::on_trace_id))
            .unwrap_or_else(Self::new_trace)
    }
}

/// The trace id of a `traceparent` (its second field), for log lines;
/// `None` unless it has the shape of one.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let id = traceparent.get(3..35)?;
    (traceparent.as_bytes().get(2) == Some(&b'-') && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// The span a hop processes one event in, so that each of its log lines
/// carries the event's trace id (empty for an event without a trace).
pub fn span(traceparent: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        "event",
        trace_id = traceparent.and_then(trace_id_of).unwrap_or_default()
    )
}

fn new_span_id() -> [u8; 8] {
    let mut id = [0u8; 8];
    while id == [0; 8] {
        random_bytes(&mut id);
    }
    id
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.parent_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let t = TraceParent::parse(SAMPLE).unwrap();
        assert_eq!(t.to_string(), SAMPLE);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), Err(BadTraceParent), "{bad:?}");
        }
        // A later version with more fields is read as version 00.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(TraceParent::parse(later).unwrap().to_string(), SAMPLE);
    }

    #[test]
    fn settling_prefers_the_header_then_metadata_then_the_trace_id() {
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert_eq!(TraceParent::settle(Some(SAMPLE), Some(other), None).to_string(), SAMPLE);
        assert_eq!(TraceParent::settle(Some("junk"), Some(other), None).to_string(), other);
        let on_id = TraceParent::settle(None, None, Some("0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(on_id.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        let fresh = TraceParent::settle(None, Some("junk"), Some("trace-abc"));
        assert_ne!(fresh.trace_id(), "0".repeat(32));
        assert_eq!(TraceParent::parse(&fresh.to_string()), Ok(fresh));
    }

    #[test]
    fn the_trace_id_of_a_traceparent_is_its_second_field() {
        assert_eq!(trace_id_of(SAMPLE), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(trace_id_of("trace-abc"), None);
        assert_eq!(trace_id_of(""), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_parent() {
        let t = TraceParent::parse(SAMPLE).unwrap();
        let c = t.child();
        assert_eq!(c.trace_id(), t.trace_id());
        assert!(c.to_string().ends_with("-01"));
        assert_ne!(c.to_string(), SAMPLE);
    }
}
