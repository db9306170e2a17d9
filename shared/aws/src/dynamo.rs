//! The registry, the event store and the delivery log over DynamoDB.
//!
//! Keys come from `switchyard_core::keys` only; items are written with
//! `serde_dynamo` from the domain's own types plus their keys, and read back
//! through the same types (so a corrupt item is an error, not a panic).

use crate::error::port_error;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration as StdDuration;
use switchyard_core::delivery::{AttemptRecord, DeliveryRecord};
use switchyard_core::keys::{self, Key};
use switchyard_core::ports::{DeliveryLog, EventRecord, EventState, EventStore, InsertOutcome, Registry};
use switchyard_core::time_util::{parse_rfc3339, rfc3339};
use switchyard_core::{ApiKeyHash, Endpoint, EndpointId, Envelope, EventId, PortError, TenantId};
use time::{Duration, OffsetDateTime};

pub type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key_item(key: &Key) -> Item {
    HashMap::from([(keys::PK.to_string(), s(&key.pk)), (keys::SK.to_string(), s(&key.sk))])
}

fn to_item<T: Serialize>(value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::permanent(format!("encoding an item: {e}")))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| PortError::permanent(format!("decoding an item: {e}")))
}

/// Reads one item and decodes it; `None` when absent.
async fn get_item<T: for<'de> Deserialize<'de>>(
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

/// `value` with its key and a `kind` attribute added.
fn item_with_key<T: Serialize>(value: &T, key: &Key, kind: &str) -> Result<Item, PortError> {
    let mut item = to_item(value)?;
    item.extend(key_item(key));
    item.insert("kind".into(), s(kind));
    Ok(item)
}

/// Tenants, API keys and endpoints.
#[derive(Clone, Debug)]
pub struct DynamoRegistry {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRegistry {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn put(&self, item: Item, op: &str) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error(op, e))?;
        Ok(())
    }

    /// Creates or replaces a tenant.
    pub async fn put_tenant(&self, tenant: &TenantId, name: &str) -> Result<(), PortError> {
        let mut item = key_item(&keys::registry::tenant(tenant));
        item.insert("kind".into(), s("tenant"));
        item.insert("tenant_id".into(), s(tenant.as_str()));
        item.insert("name".into(), s(name));
        self.put(item, "PutItem tenant").await
    }

    /// Stores an API key's hash for a tenant.
    pub async fn put_api_key(&self, hash: &ApiKeyHash, tenant: &TenantId) -> Result<(), PortError> {
        let mut item = key_item(&keys::registry::api_key(hash));
        item.insert("kind".into(), s("api_key"));
        item.insert("tenant_id".into(), s(tenant.as_str()));
        self.put(item, "PutItem api key").await
    }

    /// Creates or replaces an endpoint.
    pub async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), PortError> {
        let key = keys::registry::endpoint(&endpoint.tenant_id, &endpoint.id);
        self.put(item_with_key(endpoint, &key, "endpoint")?, "PutItem endpoint")
            .await
    }
}

#[derive(Deserialize)]
struct ApiKeyRow {
    tenant_id: TenantId,
    #[serde(default)]
    revoked: bool,
}

impl Registry for DynamoRegistry {
    async fn tenant_for_key(&self, hash: &ApiKeyHash) -> Result<Option<TenantId>, PortError> {
        let key = keys::registry::api_key(hash);
        let row: Option<ApiKeyRow> = get_item(&self.client, &self.table, &key, false, "GetItem api key").await?;
        Ok(row.filter(|r| !r.revoked).map(|r| r.tenant_id))
    }

    async fn endpoints(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, PortError> {
        let (pk, prefix) = keys::registry::endpoints_of(tenant);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .into_paginator()
            .send();
        let mut endpoints = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error("Query endpoints", e))?;
            for item in page.items.unwrap_or_default() {
                match from_item::<Endpoint>(item) {
                    Ok(ep) => endpoints.push(ep),
                    // One corrupt endpoint must not stop the tenant's others.
                    Err(e) => tracing::error!(tenant_id = %tenant, error = %e, "skipping an unreadable endpoint item"),
                }
            }
        }
        Ok(endpoints)
    }

    async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        let key = keys::registry::endpoint(tenant, id);
        get_item(&self.client, &self.table, &key, false, "GetItem endpoint").await
    }
}

/// The stored form of an event.
#[derive(Serialize, Deserialize)]
struct EventRow {
    tenant_id: TenantId,
    event_id: EventId,
    event_type: String,
    state: EventState,
    received_at: String,
    expires_at: i64,
    /// The envelope as JSON text: exact, and free of DynamoDB's type rules.
    envelope: String,
}

impl EventRow {
    fn from_record(r: &EventRecord) -> Result<Self, PortError> {
        Ok(Self {
            tenant_id: r.envelope.tenant_id.clone(),
            event_id: r.envelope.id.clone(),
            event_type: r.envelope.event_type.to_string(),
            state: r.state,
            received_at: rfc3339(r.received_at),
            expires_at: r.expires_at.unix_timestamp(),
            envelope: serde_json::to_string(&r.envelope)
                .map_err(|e| PortError::permanent(format!("encoding an envelope: {e}")))?,
        })
    }

    fn into_record(self) -> Result<EventRecord, PortError> {
        let corrupt = |what: &str| PortError::permanent(format!("stored event {}: bad {what}", self.event_id));
        let envelope: Envelope = serde_json::from_str(&self.envelope).map_err(|_| corrupt("envelope"))?;
        Ok(EventRecord {
            state: self.state,
            received_at: parse_rfc3339(&self.received_at).map_err(|_| corrupt("received_at"))?,
            expires_at: OffsetDateTime::from_unix_timestamp(self.expires_at).map_err(|_| corrupt("expires_at"))?,
            envelope,
        })
    }
}

/// Accepted events, in the deliveries table.
#[derive(Clone, Debug)]
pub struct DynamoEventStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoEventStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Reads one event of a tenant.
    pub async fn get_event(&self, tenant: &TenantId, id: &EventId) -> Result<Option<EventRecord>, PortError> {
        let key = keys::deliveries::event(tenant, id);
        let row: Option<EventRow> = get_item(&self.client, &self.table, &key, true, "GetItem event").await?;
        row.map(EventRow::into_record).transpose()
    }
}

impl EventStore for DynamoEventStore {
    async fn insert_event(&self, record: &EventRecord) -> Result<InsertOutcome, PortError> {
        let key = keys::deliveries::event(&record.envelope.tenant_id, &record.envelope.id);
        let mut item = item_with_key(&EventRow::from_record(record)?, &key, "event")?;
        item.insert(
            keys::TTL.into(),
            AttributeValue::N(record.expires_at.unix_timestamp().to_string()),
        );
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", keys::PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(InsertOutcome::Inserted),
            Err(e) => {
                let existing = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        c.item().cloned()
                    }
                    _ => return Err(port_error("PutItem event", e)),
                };
                let existing = match existing {
                    Some(item) => Some(from_item::<EventRow>(item)?.into_record()?),
                    None => self.get_event(&record.envelope.tenant_id, &record.envelope.id).await?,
                };
                // Present a moment ago; absent now only if it expired in between.
                existing
                    .map(|r| InsertOutcome::Exists(Box::new(r)))
                    .ok_or_else(|| PortError::transient("event vanished during a conditional insert"))
            }
        }
    }

    async fn mark_queued(&self, tenant: &TenantId, id: &EventId) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::deliveries::event(tenant, id))))
            .update_expression("SET #state = :queued")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":queued", s("queued"))
            .send()
            .await
            .map_err(|e| port_error("UpdateItem event state", e))?;
        Ok(())
    }
}

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
            &rfc3339(d.created_at),
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
        id: &switchyard_core::DeliveryId,
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
