//! The registry, the event store and the delivery log over DynamoDB.
//!
//! Keys come from `switchyard_core::keys` only; items are written with
//! `serde_dynamo` from the domain's own types plus their keys, and read back
//! through the same types (so a corrupt item is an error, not a panic).

mod deliveries;
mod events;
mod registry;
mod state;

pub use deliveries::DynamoDeliveryLog;
pub use events::{AuditPage, DynamoEventStore, MAX_AUDIT_DAYS};
pub use registry::{DynamoRegistry, RegistrationError};
pub use state::{DynamoStateStore, RunView};

use crate::error::port_error;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use switchyard_core::PortError;
use switchyard_core::keys::{self, Key};

pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn key_item(key: &Key) -> Item {
    HashMap::from([(keys::PK.to_string(), s(&key.pk)), (keys::SK.to_string(), s(&key.sk))])
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::permanent(format!("encoding an item: {e}")))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| PortError::permanent(format!("decoding an item: {e}")))
}

/// Reads one item and decodes it; `None` when absent.
pub(crate) async fn get_item<T: for<'de> Deserialize<'de>>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &Key,
    consistent: bool,
    op: &str,
) -> Result<Option<T>, PortError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key_item(key)))
        .consistent_read(consistent)
        .send()
        .await
        .map_err(|e| port_error(op, e))?;
    out.item.map(from_item).transpose()
}

/// Puts one item, unconditionally.
pub(crate) async fn put_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
    op: &str,
) -> Result<(), PortError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| port_error(op, e))?;
    Ok(())
}

/// `value` with its key and a `kind` attribute added.
pub(crate) fn item_with_key<T: Serialize>(value: &T, key: &Key, kind: &str) -> Result<Item, PortError> {
    let mut item = to_item(value)?;
    item.extend(key_item(key));
    item.insert("kind".into(), s(kind));
    Ok(item)
}
