//! The internal track's routing: an event's domain and priority, and the
//! EventBridge entry it is published as.
//!
//! Every event with `routing.internal` goes onto the application's bus as one
//! entry: `source` = `switchyard.<domain>` (the first segment of its type:
//! `user.created` is in the `user` domain), `detail-type` = its type, and
//! `detail` = the envelope with `routing.priority` always filled in (the
//! producer's, else the per-type default below). Rules in `template.yaml`
//! route by `source` to one queue per domain, and the types outside those
//! domains by priority: [`HIGH_PRIORITY`] and above to a queue of their own,
//! so a flood of analytics never delays what matters.

use crate::envelope::Envelope;
use crate::error::PortError;
use crate::event_type::EventType;
use crate::wire::{BUS_EVENT_V, EventKind};
use serde::Serialize;

/// The bus `source` of every Switchyard event starts with this, then its domain.
pub const SOURCE_PREFIX: &str = "switchyard.";

/// The priority of a type the table below does not name.
pub const DEFAULT_PRIORITY: u8 = 5;

/// From this priority on, an event outside the named domains takes the
/// priority queue instead of the default one (see `InternalPriorityRule` in
/// `template.yaml`).
pub const HIGH_PRIORITY: u8 = 8;

/// Default priorities per event type (0 lowest, 10 highest), used when the
/// producer sets no `routing.priority`.
pub const PRIORITY_DEFAULTS: &[(&str, u8)] = &[
    ("payment.completed", 10),
    ("inventory.low", 9),
    ("user.created", 8),
    ("audit.log", 3),
    ("analytics.track", 1),
];

/// The default priority of a type.
pub fn default_priority(event_type: &EventType) -> u8 {
    PRIORITY_DEFAULTS
        .iter()
        .find(|(t, _)| *t == event_type.as_str())
        .map_or(DEFAULT_PRIORITY, |(_, p)| *p)
}

/// The priority an event is routed with: its own, else its type's default.
pub fn effective_priority(envelope: &Envelope) -> u8 {
    envelope
        .routing
        .priority
        .unwrap_or_else(|| default_priority(&envelope.event_type))
}

/// The domain of a type: its first segment (`order` for `order.created`).
pub fn domain(event_type: &EventType) -> &str {
    let t = event_type.as_str();
    t.split_once('.').map_or(t, |(d, _)| d)
}

/// One entry for the bus, in the contract the template's rules match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusEntry {
    /// `switchyard.<domain>`: the rules route on it.
    pub source: String,
    /// The event's type.
    pub detail_type: String,
    /// The envelope as JSON, with `routing.priority` set.
    pub detail: String,
}

/// The bus event's `detail`: the envelope, named and versioned first
/// (see [`crate::wire`]).
#[derive(Serialize)]
struct BusDetail<'a> {
    kind: EventKind,
    v: u16,
    #[serde(flatten)]
    envelope: &'a Envelope,
}

/// The bus entry of an event.
pub fn bus_entry(envelope: &Envelope) -> Result<BusEntry, PortError> {
    let mut routed = envelope.clone();
    routed.routing.priority = Some(effective_priority(envelope));
    let tagged = BusDetail {
        kind: EventKind::Tag,
        v: BUS_EVENT_V,
        envelope: &routed,
    };
    let detail =
        serde_json::to_string(&tagged).map_err(|e| PortError::permanent(format!("encoding an envelope: {e}")))?;
    Ok(BusEntry {
        source: format!("{SOURCE_PREFIX}{}", domain(&envelope.event_type)),
        detail_type: envelope.event_type.to_string(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Routing;

    fn envelope(t: &str, priority: Option<u8>) -> Envelope {
        let raw = serde_json::json!({
            "id": "evt_1", "type": t, "version": "1.0", "timestamp": "2026-11-29T00:00:00Z",
            "source": "api", "tenant_id": "t1", "data": {"a": 1},
        });
        let mut e: Envelope = serde_json::from_value(raw).unwrap();
        e.routing = Routing {
            priority,
            ..Routing::default()
        };
        e
    }

    #[test]
    fn priorities_come_from_the_event_else_the_table_else_the_default() {
        assert_eq!(effective_priority(&envelope("payment.completed", None)), 10);
        assert_eq!(effective_priority(&envelope("analytics.track", None)), 1);
        assert_eq!(effective_priority(&envelope("analytics.track", Some(9))), 9);
        assert_eq!(effective_priority(&envelope("order.created", None)), DEFAULT_PRIORITY);
        assert_eq!(effective_priority(&envelope("order.created", Some(0))), 0);
    }

    #[test]
    fn the_bus_entry_names_the_domain_and_carries_the_priority() {
        let e = bus_entry(&envelope("inventory.low", None)).unwrap();
        assert_eq!(e.source, "switchyard.inventory");
        assert_eq!(e.detail_type, "inventory.low");
        let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(detail["routing"]["priority"], 9);
        assert_eq!(detail["tenant_id"], "t1");
        assert_eq!(detail["data"]["a"], 1);
        // The detail reads back as the same envelope, priority filled in.
        let back: Envelope = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(back.id.as_str(), "evt_1");
        assert_eq!(back.routing.priority, Some(9));
        assert_eq!(domain(&EventType::parse("a.b.c").unwrap()), "a");
    }
}
