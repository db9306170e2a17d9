//! Per-endpoint rate limits in the registry table: one counter item per
//! endpoint and second, taken with a conditional increment, gone a minute
//! later (TTL). A tenant's ingest requests are counted the same way, per
//! tenant and second, and operational notices per endpoint or tenant and
//! window.

use super::keys;
use super::{DynamoRegistry, key_item};
use aws_sdk_dynamodb::types::AttributeValue;
use switchyard_core::ports::RateLimiter;
use switchyard_core::{EndpointId, PortError, TenantId};

impl RateLimiter for DynamoRegistry {
    async fn take_slot(&self, tenant: &TenantId, id: &EndpointId, second: i64, limit: u32) -> Result<bool, PortError> {
        self.take(
            &keys::registry::rate_slot(tenant, id, second),
            limit,
            second + 60,
            "UpdateItem rate slot",
        )
        .await
    }

    async fn take_notice(
        &self,
        tenant: &TenantId,
        about: Option<&EndpointId>,
        window: i64,
        window_secs: i64,
        limit: u32,
    ) -> Result<bool, PortError> {
        let key = keys::registry::notice_window(tenant, about, window);
        self.take(&key, limit, window + window_secs + 60, "UpdateItem notice window")
            .await
    }

    async fn take_ingest(&self, tenant: &TenantId, second: i64, limit: u32) -> Result<bool, PortError> {
        self.take(
            &keys::registry::ingest_slot(tenant, second),
            limit,
            second + 60,
            "UpdateItem ingest slot",
        )
        .await
    }
}

impl DynamoRegistry {
    /// Takes one of `limit` from the counter item `key`, which expires at
    /// `expires` (unix seconds).
    async fn take(&self, key: &keys::Key, limit: u32, expires: i64, op: &str) -> Result<bool, PortError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.table())
            .set_key(Some(key_item(key)))
            .update_expression("ADD #n :one SET #exp = :exp")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", "taken")
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":exp", AttributeValue::N(expires.to_string()))
            .send()
            .await;
        super::applied(result, op)
    }
}
