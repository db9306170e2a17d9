//! What every message Switchyard puts on a queue says about itself.
//!
//! A message names its `kind` and the version `v` of its shape, as its
//! first two fields: `{"kind":"delivery_task","v":1,…}`. The functions of
//! one deployment read each other's messages, and during a deploy (or when
//! an operator redrives a DLQ that holds messages from before it) a function
//! reads messages written by an older or a newer version of itself. So:
//!
//! - internal messages are read tolerantly: fields a reader does not know
//!   are ignored, fields it expects but an older writer did not send take
//!   their defaults, and a message without `kind` and `v` is version 0 (as
//!   written before they existed);
//! - a message of another kind is refused by name (`unknown variant
//!   `fanout_task`, expected `delivery_task``), never half-read;
//! - strictness (unknown fields refused, limits checked) is kept for what
//!   producers send to the doors (`envelope::parse_event`).
//!
//! The fixtures in `shared/core/fixtures/wire/` are messages exactly as
//! earlier versions wrote them; the tests below read every one of them.

use serde::{Deserialize, Serialize};

/// The version of [`crate::FanoutTask`]'s shape this code writes.
pub const FANOUT_TASK_V: u16 = 1;
/// The version of [`crate::DeliveryTask`]'s shape this code writes.
pub const DELIVERY_TASK_V: u16 = 1;
/// The version of the envelope published on the application bus (the
/// internal queues' messages' `detail`).
pub const BUS_EVENT_V: u16 = 1;

macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $tag:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            /// The one tag this kind has.
            #[default]
            #[serde(rename = $tag)]
            Tag,
        }

        impl $name {
            /// The tag as it appears on the wire.
            pub const fn as_str(self) -> &'static str {
                $tag
            }
        }
    };
}

kind!(
    /// `"kind": "fanout_task"`: an accepted event for fan-out.
    FanoutKind,
    "fanout_task"
);
kind!(
    /// `"kind": "delivery_task"`: one event for one endpoint.
    DeliveryKind,
    "delivery_task"
);
kind!(
    /// `"kind": "event"`: an envelope on the application bus.
    EventKind,
    "event"
);

#[cfg(test)]
mod tests {
    use crate::envelope::Envelope;
    use crate::{DeliveryTask, FanoutTask};
    use serde_json::{Value, json};

    const V0_FANOUT: &str = include_str!("../fixtures/wire/v0/fanout_task.json");
    const V0_FANOUT_OPS: &str = include_str!("../fixtures/wire/v0/fanout_task_operational.json");
    const V0_DELIVERY: &str = include_str!("../fixtures/wire/v0/delivery_task.json");
    const V0_DELIVERY_DLQ: &str = include_str!("../fixtures/wire/v0/delivery_task_dead_letter.json");
    const V0_DELIVERY_MANUAL: &str = include_str!("../fixtures/wire/v0/delivery_task_manual.json");
    const V0_BUS: &str = include_str!("../fixtures/wire/v0/bus_message.json");

    /// The envelope of a bus message as an internal queue carries it
    /// (`{"detail": <envelope>, ...}`), as the consumer reads it.
    fn parse_message(body: &str) -> serde_json::Result<Envelope> {
        #[derive(serde::Deserialize)]
        struct BusMessage {
            detail: Envelope,
        }
        serde_json::from_str::<BusMessage>(body).map(|m| m.detail)
    }

    fn with(body: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(body).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn version_0_messages_still_read() {
        let f: FanoutTask = serde_json::from_str(V0_FANOUT).unwrap();
        assert_eq!(f.v, 0);
        assert_eq!(f.envelope.event_type.as_str(), "order.placed");
        assert_eq!(f.envelope.metadata.trace_id.as_deref(), Some("trace-1"));
        assert_eq!(f.envelope.routing.priority, Some(7));
        let ops: FanoutTask = serde_json::from_str(V0_FANOUT_OPS).unwrap();
        assert!(ops.skip_endpoint.is_some());

        let d: DeliveryTask = serde_json::from_str(V0_DELIVERY).unwrap();
        assert_eq!(d.v, 0);
        assert!(d.dlq_reason.is_none() && d.manual_request.is_none());
        assert!(d.payload.contains("ord_1"));
        let dead: DeliveryTask = serde_json::from_str(V0_DELIVERY_DLQ).unwrap();
        assert_eq!(dead.dlq_reason.as_deref(), Some("exhausted"));
        let manual: DeliveryTask = serde_json::from_str(V0_DELIVERY_MANUAL).unwrap();
        assert_eq!(manual.manual_request.as_deref(), Some("req_1"));

        let e = parse_message(V0_BUS).unwrap();
        assert_eq!(e.tenant_id.as_str(), "acme");
        assert_eq!(e.routing.priority, Some(7));
    }

    #[test]
    fn what_this_version_writes_is_tagged_first_and_reads_back() {
        let f: FanoutTask = serde_json::from_str(V0_FANOUT).unwrap();
        let f = FanoutTask::new(f.envelope);
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.starts_with(r#"{"kind":"fanout_task","v":1,"#), "{text}");
        assert_eq!(serde_json::from_str::<FanoutTask>(&text).unwrap(), f);

        let d: DeliveryTask = serde_json::from_str(V0_DELIVERY).unwrap();
        let d = DeliveryTask {
            v: super::DELIVERY_TASK_V,
            ..d
        };
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.starts_with(r#"{"kind":"delivery_task","v":1,"#), "{text}");
        assert_eq!(serde_json::from_str::<DeliveryTask>(&text).unwrap(), d);

        let entry = crate::routing::bus_entry(&f.envelope).unwrap();
        assert!(
            entry.detail.starts_with(r#"{"kind":"event","v":1,"#),
            "{}",
            entry.detail
        );
        let msg =
            json!({"detail-type": "order.placed", "detail": serde_json::from_str::<Value>(&entry.detail).unwrap()});
        assert_eq!(parse_message(&msg.to_string()).unwrap().id, f.envelope.id);
    }

    #[test]
    fn a_newer_writers_fields_are_ignored() {
        // A later version adds fields at every level, metadata and routing
        // included; this version reads what it knows.
        let f = with(V0_FANOUT, |v| {
            v["v"] = json!(7);
            v["kind"] = json!("fanout_task");
            v["shard"] = json!(3);
            v["envelope"]["metadata"]["span_id"] = json!("s-1");
            v["envelope"]["routing"]["region"] = json!("eu");
            v["envelope"]["schema_ref"] = json!("x");
        });
        let f: FanoutTask = serde_json::from_str(&f).unwrap();
        assert_eq!(f.v, 7);
        assert_eq!(f.envelope.metadata.trace_id.as_deref(), Some("trace-1"));
        let d = with(V0_DELIVERY, |v| {
            v["kind"] = json!("delivery_task");
            v["v"] = json!(2);
            v["ordering_key"] = json!("k");
        });
        assert_eq!(serde_json::from_str::<DeliveryTask>(&d).unwrap().v, 2);
        let bus = with(V0_BUS, |v| {
            v["detail"]["metadata"]["span_id"] = json!("s-1");
            v["detail"]["routing"]["region"] = json!("eu");
            v["detail"]["kind"] = json!("event");
            v["detail"]["v"] = json!(2);
        });
        assert!(parse_message(&bus).is_ok());
    }

    #[test]
    fn a_message_of_another_kind_is_refused_by_name() {
        let wrong = with(V0_DELIVERY, |v| v["kind"] = json!("fanout_task"));
        let e = serde_json::from_str::<DeliveryTask>(&wrong).unwrap_err().to_string();
        assert!(e.contains("fanout_task") && e.contains("delivery_task"), "{e}");
        let wrong = with(V0_FANOUT, |v| v["kind"] = json!("delivery_task"));
        assert!(serde_json::from_str::<FanoutTask>(&wrong).is_err());
    }

    #[test]
    fn the_doors_stay_strict_about_metadata_and_routing() {
        use crate::envelope::{IngestLimits, Source, parse_event};
        let parse = |body: Value| {
            parse_event(
                body.to_string().as_bytes(),
                crate::TenantId::parse("acme").unwrap(),
                &Source::parse("api").unwrap(),
                crate::time_util::now_utc(),
                IngestLimits::default(),
            )
        };
        assert!(parse(json!({"type": "a.b", "data": {}, "metadata": {"trace_id": "t"}})).is_ok());
        assert!(parse(json!({"type": "a.b", "data": {}, "metadata": {"span_id": "t"}})).is_err());
        assert!(parse(json!({"type": "a.b", "data": {}, "routing": {"region": "eu"}})).is_err());
        assert!(parse(json!({"type": "a.b", "data": {}, "routing": {"priority": 11}})).is_err());
        let long = "x".repeat(crate::envelope::MAX_METADATA_LEN + 1);
        assert!(parse(json!({"type": "a.b", "data": {}, "metadata": {"trace_id": long}})).is_err());
    }
}
