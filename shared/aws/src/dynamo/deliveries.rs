//! Deliveries and their attempts in the deliveries table.

use super::{Item, from_item, get_item, item_with_key, s};
use crate::error::port_error;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use std::time::Duration as StdDuration;
use switchyard_core::delivery::{AttemptRecord, DeliveryRecord};
use switchyard_core::keys;
use switchyard_core::ports::DeliveryLog;
use switchyard_core::{DeliveryId, PortError, TenantId};
use time::{Duration, OffsetDateTime};

/// Deliveries and their attempts, in the deliveries table.
#[derive(Clone, Debug)]
pub struct DynamoDeliveryLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
}

/// Unprocessed batch items are written again this often.
const BATCH_WRITE_TRIES: u32 = 5;

impl DynamoDeliveryLog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    fn delivery_item(&self, d: &DeliveryRecord) -> Result<Item, PortError> {
        let key = keys::deliveries::delivery(&d.tenant_id, &d.delivery_id);
        let mut item = item_with_key(d, &key, "delivery")?;
        let index = keys::deliveries::delivery_index(
            &d.tenant_id,
            &d.delivery_id,
            &d.endpoint_id,
            &d.event_id,
            &switchyard_core::time_util::sortable(d.created_at),
        );
        for (name, value) in index {
            item.insert(name.into(), s(value));
        }
        item.insert(keys::TTL.into(), self.ttl(d.updated_at));
        Ok(item)
    }

    fn ttl(&self, from: OffsetDateTime) -> AttributeValue {
        AttributeValue::N((from + self.retention).unix_timestamp().to_string())
    }

    /// Reads a delivery and its attempts, oldest attempt first.
    pub async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>, PortError> {
        let key = keys::deliveries::delivery(tenant, id);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":pk", s(&key.pk))
            .consistent_read(true)
            .into_paginator()
            .send();
        let (mut delivery, mut attempts) = (None, Vec::new());
        while let Some(page) = pages.next().await {
            for item in page
                .map_err(|e| port_error("Query delivery", e))?
                .items
                .unwrap_or_default()
            {
                let sk = item
                    .get(keys::SK)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if sk == key.sk {
                    delivery = Some(from_item::<DeliveryRecord>(item)?);
                } else if sk.starts_with(keys::deliveries::ATTEMPT_SK_PREFIX) {
                    attempts.push(from_item::<AttemptRecord>(item)?);
                }
            }
        }
        Ok(delivery.map(|d| (d, attempts)))
    }
}

impl DeliveryLog for DynamoDeliveryLog {
    async fn delivery(&self, tenant: &TenantId, id: &DeliveryId) -> Result<Option<DeliveryRecord>, PortError> {
        let key = keys::deliveries::delivery(tenant, id);
        get_item(&self.client, &self.table, &key, true, "GetItem delivery").await
    }

    async fn record_attempt(&self, delivery: &DeliveryRecord, attempt: &AttemptRecord) -> Result<(), PortError> {
        let key = keys::deliveries::attempt(&delivery.tenant_id, &delivery.delivery_id, attempt.attempt);
        let mut attempt_item = item_with_key(attempt, &key, "attempt")?;
        attempt_item.insert(keys::TTL.into(), self.ttl(attempt.at));
        let mut pending = vec![self.delivery_item(delivery)?, attempt_item];
        for n in 0..BATCH_WRITE_TRIES {
            if n > 0 {
                tokio::time::sleep(StdDuration::from_millis(25 << n)).await;
            }
            let requests = pending
                .drain(..)
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| PortError::permanent(format!("PutRequest: {e}")))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, PortError>>()?;
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| port_error("BatchWriteItem attempt", e))?;
            pending = out
                .unprocessed_items
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|w| w.put_request.map(|p| p.item))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
        }
        Err(PortError::transient(format!(
            "BatchWriteItem left {} items unprocessed after {BATCH_WRITE_TRIES} tries",
            pending.len()
        )))
    }

    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.delivery_item(delivery)?))
            .send()
            .await
            .map_err(|e| port_error("PutItem delivery", e))?;
        Ok(())
    }
}
