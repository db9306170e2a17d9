//! Changes to a stored endpoint, counted by its version.

use super::health::OPEN_UNTIL;
use super::sealed::SEALED_SECRETS;
use super::{DynamoRegistry, n};
use crate::dynamo::keys;
use crate::dynamo::{get_raw_item, s, to_item};
use crate::error::port_error;
use aws_sdk_dynamodb::types::ReturnValue;
use std::collections::BTreeSet;
use switchyard_core::endpoint::Written;
use switchyard_core::ports::EndpointEdits;
use switchyard_core::sealing::EndpointSecrets;
use switchyard_core::{Endpoint, EndpointId, PortError, TenantId};

/// The attribute that counts an endpoint's changes (see `Endpoint::version`).
pub(super) const VERSION: &str = "version";

impl EndpointEdits for DynamoRegistry {
    async fn current(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        let key = keys::registry::endpoint(tenant, id);
        let item = get_raw_item(&self.client, &self.table, &key, true, "GetItem endpoint").await?;
        self.endpoint_from(item).await
    }

    /// One UpdateItem that SETs or REMOVEs each attribute in which the two
    /// differ (attributes this code does not know are left alone), on
    /// condition that `version` is still `before`'s (absent counts as 0).
    ///
    /// With a keyring, the secrets are compared as values, not as stored:
    /// changed ones are sealed anew; unchanged ones are sealed only if the
    /// item still holds them in plain text (`if_not_exists`), and the plain
    /// attributes are removed either way, so every change seals an old item.
    async fn write_changes(&self, before: &Endpoint, after: &Endpoint) -> Result<Written, PortError> {
        let (mut old, mut new) = (to_item(before)?, to_item(after)?);
        let sealed = self.sealed_value(after).await?;
        if sealed.is_some() {
            for name in EndpointSecrets::PLAIN_ATTRIBUTES {
                old.remove(name);
                new.remove(name);
            }
        }
        let names: BTreeSet<&str> = old
            .keys()
            .chain(new.keys())
            .map(String::as_str)
            .filter(|k| *k != VERSION && old.get(*k) != new.get(*k))
            .collect();
        let (tenant, id) = (&before.tenant_id, &before.id);
        let mut update = self.update_endpoint(tenant, id);
        let (mut sets, mut removes) = (vec!["#v = :next".to_string()], Vec::new());
        if let Some(sealed) = sealed {
            let changed = EndpointSecrets::of(before) != EndpointSecrets::of(after);
            sets.push(if changed {
                "#sealed = :sealed".to_string()
            } else {
                "#sealed = if_not_exists(#sealed, :sealed)".to_string()
            });
            removes.push("#plain0, #plain1".to_string());
            let [plain0, plain1] = EndpointSecrets::PLAIN_ATTRIBUTES;
            update = update
                .expression_attribute_names("#sealed", SEALED_SECRETS)
                .expression_attribute_names("#plain0", plain0)
                .expression_attribute_names("#plain1", plain1)
                .expression_attribute_values(":sealed", sealed);
        }
        for (i, name) in names.iter().enumerate() {
            update = update.expression_attribute_names(format!("#a{i}"), *name);
            match new.get(*name) {
                Some(v) => {
                    sets.push(format!("#a{i} = :a{i}"));
                    update = update.expression_attribute_values(format!(":a{i}"), v.clone());
                }
                None => removes.push(format!("#a{i}")),
            }
        }
        // The index of open circuits follows `cb_open_until`.
        if names.contains(OPEN_UNTIL) {
            update = update
                .expression_attribute_names("#g1pk", keys::GSI1_PK)
                .expression_attribute_names("#g1sk", keys::GSI1_SK);
            match after.circuit.open_until_ms {
                Some(until_ms) => {
                    sets.push("#g1pk = :open_pk, #g1sk = :open_sk".into());
                    update = update
                        .expression_attribute_values(":open_pk", s(keys::registry::OPEN_CIRCUITS_PK))
                        .expression_attribute_values(
                            ":open_sk",
                            s(keys::registry::open_circuit_sk(until_ms, tenant, id)),
                        );
                }
                None => removes.push("#g1pk, #g1sk".into()),
            }
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let seen = before.version;
        let condition = if seen == 0 {
            "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :seen)"
        } else {
            "attribute_exists(#pk) AND #v = :seen"
        };
        let result = update
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":seen", n(seen as i64))
            .expression_attribute_values(":next", n(seen as i64 + 1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Written::Done(Box::new(
                self.endpoint_from_item(out.attributes.unwrap_or_default()).await?,
            ))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                // Gone, or changed since `before` was read.
                let key = keys::registry::endpoint(tenant, id);
                let exists = get_raw_item(&self.client, &self.table, &key, true, "GetItem endpoint")
                    .await?
                    .is_some();
                Ok(if exists { Written::Stale } else { Written::Missing })
            }
            Err(e) => Err(port_error("UpdateItem endpoint changes", e)),
        }
    }
}
