//! Endpoint items with their secrets sealed.
//!
//! With a keyring, an endpoint's secrets are stored in one attribute,
//! [`SEALED_SECRETS`] (see `switchyard_core::sealing`), and the plain
//! `secret` and `previous_secrets` attributes are not written. Reading takes
//! either form: an item written before secrets were sealed still holds them
//! in plain text, and its next change through the API seals them (see
//! `write_changes`).

use super::DynamoRegistry;
use crate::dynamo::keys::Key;
use crate::dynamo::{Item, from_item, item_with_key, to_item};
use aws_sdk_dynamodb::types::AttributeValue;
use switchyard_core::sealing::{EndpointSecrets, Sealed};
use switchyard_core::{Endpoint, EndpointId, PortError, TenantId};

/// The attribute that holds an endpoint's sealed secrets.
pub const SEALED_SECRETS: &str = "sealed_secrets";

impl DynamoRegistry {
    /// The sealed secrets of `endpoint` as an attribute value; `None`
    /// without a keyring.
    pub(super) async fn sealed_value(&self, endpoint: &Endpoint) -> Result<Option<AttributeValue>, PortError> {
        let Some(keyring) = &self.keyring else {
            return Ok(None);
        };
        let sealed = EndpointSecrets::seal(endpoint, keyring).await?;
        Ok(Some(AttributeValue::M(to_item(&sealed)?)))
    }

    /// An endpoint's item as stored: its secrets sealed when the registry has
    /// a keyring, in plain text otherwise.
    pub(super) async fn endpoint_item(&self, endpoint: &Endpoint, key: &Key) -> Result<Item, PortError> {
        let mut item = item_with_key(endpoint, key, "endpoint")?;
        if let Some(sealed) = self.sealed_value(endpoint).await? {
            for name in EndpointSecrets::PLAIN_ATTRIBUTES {
                item.remove(name);
            }
            item.insert(SEALED_SECRETS.into(), sealed);
        }
        Ok(item)
    }

    /// An endpoint from its stored item, sealed or not.
    pub(super) async fn endpoint_from_item(&self, mut item: Item) -> Result<Endpoint, PortError> {
        if let Some(value) = item.remove(SEALED_SECRETS) {
            let keyring = self
                .keyring
                .as_ref()
                .ok_or_else(|| PortError::permanent("an endpoint's secrets are sealed and no KMS key is configured"))?;
            let AttributeValue::M(map) = value else {
                return Err(PortError::permanent("an endpoint's sealed secrets are not a map"));
            };
            let sealed: Sealed = from_item(map)?;
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => Ok(s.as_str()),
                _ => Err(PortError::permanent(format!("an endpoint item lacks `{name}`"))),
            };
            let tenant = TenantId::parse(text("tenant_id")?).map_err(|e| PortError::permanent(e.to_string()))?;
            let id = EndpointId::parse(text("id")?).map_err(|e| PortError::permanent(e.to_string()))?;
            let secrets = EndpointSecrets::open(&sealed, &tenant, &id, keyring).await?;
            item.extend(to_item(&secrets)?);
        }
        from_item(item)
    }

    /// The endpoint of a stored item, if there is one.
    pub(super) async fn endpoint_from(&self, item: Option<Item>) -> Result<Option<Endpoint>, PortError> {
        match item {
            Some(item) => self.endpoint_from_item(item).await.map(Some),
            None => Ok(None),
        }
    }
}
