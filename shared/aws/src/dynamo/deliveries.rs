//! Deliveries and their attempts in the deliveries table.

use super::{Item, from_item, get_item, item_with_key, s};
use crate::error::port_error;
use aws_sdk_dynamodb::types::AttributeValue;
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
        // The delivery's state first, on the condition that no other worker
        // recorded this attempt number (or a later one) meanwhile: a stale
        // duplicate of the task never overwrites a newer state. Then the
        // attempt. A crash between the two leaves the attempt unrecorded,
        // never a state that goes back in time.
        self.put_delivery_if_newer(delivery, "<", "PutItem delivery").await?;
        let key = keys::deliveries::attempt(&delivery.tenant_id, &delivery.delivery_id, attempt.attempt);
        let mut attempt_item = item_with_key(attempt, &key, "attempt")?;
        attempt_item.insert(keys::TTL.into(), self.ttl(attempt.at));
        super::put_item(&self.client, &self.table, attempt_item, "PutItem attempt").await
    }

    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<(), PortError> {
        self.put_delivery_if_newer(delivery, "<=", "PutItem delivery").await
    }
}

impl DynamoDeliveryLog {
    /// Puts the delivery item unless the stored one has counted more attempts
    /// (`cmp` `<`: this write adds an attempt, so the stored count must be
    /// lower; `<=`: a state change without an attempt).
    async fn put_delivery_if_newer(&self, delivery: &DeliveryRecord, cmp: &str, op: &str) -> Result<(), PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.delivery_item(delivery)?))
            .condition_expression(format!("attribute_not_exists(#pk) OR #attempts {cmp} :n"))
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_values(":n", AttributeValue::N(delivery.attempts.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                // Another delivery of the same task got further; this one is
                // stale. Transient: the task comes back and finds the newer
                // state (done, or due later).
                Err(PortError::transient(format!(
                    "delivery {} was recorded by a newer attempt meanwhile",
                    delivery.delivery_id
                )))
            }
            Err(e) => Err(port_error(op, e)),
        }
    }
}
