//! `AWS::Events::EventBus`: a custom event bus, created in moto.

use super::{BUS, Clients, check_props, err, text};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_eventbridge::error::DisplayErrorContext as EbCtx;
use serde_json::{Map, Value};

/// The properties of a bus the local runner applies (or that change
/// nothing locally).
const KNOWN: &[&str] = &["Name", "Description", "Tags"];

/// The name of bus `id`, checked against what the runner can apply.
fn bus_name(id: &str, props: &Map<String, Value>) -> Result<String, LocalError> {
    check_props(id, BUS, props, KNOWN)?;
    props.get("Name").map(text).ok_or_else(|| err(id, "has no Name"))
}

/// Creates bus `id` in moto; its `Ref` is its name.
pub(super) async fn create_bus(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
) -> Result<(Attrs, String), LocalError> {
    let name = bus_name(id, props)?;
    let out =
        c.eb.create_event_bus()
            .name(&name)
            .send()
            .await
            .map_err(|e| aws_err(format!("CreateEventBus {name} ({id})"), EbCtx(e)))?;
    let arn = out
        .event_bus_arn
        .unwrap_or_else(|| cfn.arn("events", &format!("event-bus/{name}")));
    Ok((Attrs::new(&name).with("Arn", arn).with("Name", &name), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::props;
    use serde_json::json;

    #[test]
    fn a_bus_needs_a_name_and_only_known_properties() {
        assert_eq!(
            bus_name("Bus", &props(json!({"Name": "internal"}))).unwrap(),
            "internal"
        );
        let e = bus_name("Bus", &props(json!({"Description": "x"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bus") && e.contains("has no Name"), "{e}");
        let e = bus_name("Bus", &props(json!({"Name": "b", "Policy": {}})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bus") && e.contains("Policy"), "{e}");
    }
}
