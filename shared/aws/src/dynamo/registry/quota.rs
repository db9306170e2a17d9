//! Per-tenant quotas on endpoints and API keys.

use super::{DynamoRegistry, n};
use crate::dynamo::keys;
use crate::dynamo::{build_error, get_item, key_item, s};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use serde::Deserialize;
use switchyard_core::{PortError, TenantId};

/// The counters of a tenant's endpoints and API keys, and what they count.
pub(super) const ENDPOINTS_COUNTER: Counter = Counter {
    name: "ENDPOINTS",
    prefix: keys::registry::ENDPOINT_SK_PREFIX,
};
pub(super) const API_KEYS_COUNTER: Counter = Counter {
    name: "APIKEYS",
    prefix: keys::registry::API_KEY_SK_PREFIX,
};
/// The attribute of a counter item that holds the count.
const COUNT: &str = "count";
/// Tries of a counted create whose count changed under it.
const QUOTA_TRIES: usize = 5;

pub(super) struct Counter {
    name: &'static str,
    /// The sort-key prefix, in the tenant's partition, of what it counts.
    prefix: &'static str,
}

#[derive(Deserialize)]
struct CounterRow {
    count: i64,
}

/// Per-tenant quotas: a counter item per tenant and kind, changed in the
/// same transaction as the items it counts. A tenant stored before the
/// counters has none: its items are counted once, and the counter is
/// seeded with that count in the transaction of the next create.
impl DynamoRegistry {
    async fn counter(&self, tenant: &TenantId, what: &Counter) -> Result<Option<i64>, PortError> {
        let key = keys::registry::quota_counter(tenant, what.name);
        let row: Option<CounterRow> = get_item(&self.client, &self.table, &key, true, "GetItem quota counter").await?;
        Ok(row.map(|r| r.count))
    }

    /// How many items of `what` the tenant holds (a consistent count of
    /// keys, never the items).
    async fn count_items(&self, tenant: &TenantId, what: &Counter) -> Result<i64, PortError> {
        let pk = keys::registry::tenant(tenant).pk;
        let mut total = 0i64;
        let mut start = None;
        loop {
            let out = self
                .prefix_query(&pk, what.prefix)
                .consistent_read(true)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("Query quota count", e))?;
            total += i64::from(out.count);
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// Writes `items` (which create one item of `what`) together with one
    /// more on the tenant's counter, if the count is under `limit`;
    /// `Ok(false)` when it is not. The counter's condition is checked by
    /// DynamoDB inside the transaction: of creates that race at `limit - 1`,
    /// one passes.
    pub(super) async fn within_quota(
        &self,
        tenant: &TenantId,
        what: Counter,
        limit: u32,
        items: impl IntoIterator<Item = TransactWriteItem>,
    ) -> Result<bool, PortError> {
        let items: Vec<TransactWriteItem> = items.into_iter().collect();
        let limit = i64::from(limit);
        let key = key_item(&keys::registry::quota_counter(tenant, what.name));
        for attempt in 1..=QUOTA_TRIES {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key.clone()))
                .expression_attribute_names("#n", COUNT)
                .expression_attribute_names("#tid", "tenant_id")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":tid", s(tenant.as_str()))
                .expression_attribute_values(":kind", s("quota_counter"));
            let update = match self.counter(tenant, &what).await? {
                Some(count) if count >= limit => return Ok(false),
                Some(_) => update
                    .update_expression("ADD #n :one SET #tid = :tid, #kind = :kind")
                    .condition_expression("#n < :limit")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":limit", n(limit)),
                None => {
                    let count = self.count_items(tenant, &what).await?;
                    if count >= limit {
                        return Ok(false);
                    }
                    update
                        .update_expression("SET #n = :seeded, #tid = :tid, #kind = :kind")
                        .condition_expression("attribute_not_exists(#n)")
                        .expression_attribute_values(":seeded", n(count + 1))
                }
            };
            let update = update.build().map_err(build_error)?;
            let mut all = items.clone();
            all.push(TransactWriteItem::builder().update(update).build());
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(all))
                .client_request_token(switchyard_core::ids::ulid())
                .send()
                .await;
            let Err(e) = result else { return Ok(true) };
            let reasons: Vec<String> = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_string())
                    .collect(),
                _ => return Err(port_error("TransactWriteItems counted create", e)),
            };
            let failed = |code: &str| reasons.iter().any(|r| r == code);
            if reasons.last().is_some_and(|r| r == "ConditionalCheckFailed") {
                // The count changed (or was seeded) meanwhile: read it again.
                continue;
            }
            if failed("ConditionalCheckFailed") {
                return Err(PortError::permanent(format!(
                    "the {} item exists already",
                    what.name.to_ascii_lowercase()
                )));
            }
            // Another transaction on the same items at the same moment
            // (TransactionConflict), or throttling: try again shortly.
            if attempt == QUOTA_TRIES {
                return Err(PortError::transient(format!(
                    "TransactWriteItems counted create: cancelled ({reasons:?})"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
        }
        Err(PortError::transient(format!(
            "the tenant's {} count kept changing; try again",
            what.name.to_ascii_lowercase()
        )))
    }

    /// One less on the tenant's counter, for the transaction that removes
    /// an item of `what`; `None` if the tenant has no counter yet (its items
    /// are counted when the counter is seeded).
    pub(super) async fn count_down(
        &self,
        tenant: &TenantId,
        what: Counter,
    ) -> Result<Option<TransactWriteItem>, PortError> {
        if self.counter(tenant, &what).await?.is_none() {
            return Ok(None);
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::registry::quota_counter(tenant, what.name))))
            .update_expression("ADD #n :minus_one")
            .condition_expression("attribute_exists(#n)")
            .expression_attribute_names("#n", COUNT)
            .expression_attribute_values(":minus_one", n(-1))
            .build()
            .map_err(build_error)?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }
}
