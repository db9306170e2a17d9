//! Tenants, API keys and endpoints in the registry table.

use super::keys::{self, Key};
use super::{
    Expect, Item, ListError, Page, build_error, decode_cursor, from_item, get_item, get_raw_item, item_with_key,
    key_item, query_page, s, to_item, transact,
};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update};
use serde::Deserialize;
use std::collections::BTreeSet;
use switchyard_core::endpoint::{Circuit, EndpointRoute, Written};
use switchyard_core::model::{ApiKeyRecord, RegistrationError, TenantRecord};
use switchyard_core::ports::{EndpointAdmin, EndpointEdits, EndpointHealth, Registry, Tenants};
use switchyard_core::quota::LimitExceeded;
use switchyard_core::ssrf::SsrfPolicy;
use switchyard_core::time_util::rfc3339;
use switchyard_core::{ApiKeyHash, Endpoint, EndpointId, PortError, TenantId};
use time::OffsetDateTime;

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

    pub(crate) fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    /// A query of partition `pk` for the sort keys that start with `prefix`.
    fn prefix_query(&self, pk: &str, prefix: &str) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
    }

    /// Every item of partition `pk` whose sort key starts with `prefix`.
    async fn items_with_prefix(
        &self,
        pk: String,
        prefix: &str,
        consistent: bool,
        op: &str,
    ) -> Result<Vec<Item>, PortError> {
        let mut pages = self
            .prefix_query(&pk, prefix)
            .consistent_read(consistent)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| port_error(op, e))?);
        }
        Ok(items)
    }

    async fn put(&self, item: Item, op: &str) -> Result<(), PortError> {
        super::put_item(&self.client, &self.table, item, op).await
    }

    /// Creates a tenant or renames it, and its entry in the listing of
    /// tenants; `created_at` is set (to now) the first time only.
    pub async fn put_tenant(&self, tenant: &TenantId, name: &str) -> Result<(), PortError> {
        let now = rfc3339(switchyard_core::time_util::now_utc());
        let upsert = |key: &Key, kind: &str| -> Result<TransactWriteItem, PortError> {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .update_expression("SET #kind = :kind, #tid = :tid, #name = :name, #at = if_not_exists(#at, :now)")
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_names("#tid", "tenant_id")
                .expression_attribute_names("#name", "name")
                .expression_attribute_names("#at", "created_at")
                .expression_attribute_values(":kind", s(kind))
                .expression_attribute_values(":tid", s(tenant.as_str()))
                .expression_attribute_values(":name", s(name))
                .expression_attribute_values(":now", s(&now))
                .build()
                .map_err(build_error)?;
            Ok(TransactWriteItem::builder().update(update).build())
        };
        let items = vec![
            upsert(&keys::registry::tenant(tenant), TENANT_KIND)?,
            upsert(&keys::registry::tenant_listing(tenant), TENANT_LISTING_KIND)?,
        ];
        transact(&self.client, items, "TransactWriteItems put tenant")
            .await
            .map(|_| ())
    }

    /// Stores an API key's hash for a tenant.
    pub async fn put_api_key(&self, hash: &ApiKeyHash, tenant: &TenantId) -> Result<(), PortError> {
        let mut item = key_item(&keys::registry::api_key(hash));
        item.insert("kind".into(), s("api_key"));
        item.insert("tenant_id".into(), s(tenant.as_str()));
        self.put(item, "PutItem api key").await
    }

    /// Registers an endpoint: its URL must pass the SSRF policy, and so must
    /// every address its host resolves to now (it is checked again at every
    /// attempt and at connect time). Then stores it.
    /// Counted like every endpoint the API creates (see
    /// [`Self::register_endpoint_within`]), without a limit.
    pub async fn register_endpoint(&self, endpoint: &Endpoint, policy: &SsrfPolicy) -> Result<(), RegistrationError> {
        self.register_endpoint_within(endpoint, policy, u32::MAX).await
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

    /// Reads only [`EndpointRoute::ATTRIBUTES`]: secrets, URLs and header
    /// values never leave the table for fan-out, and a page holds more
    /// endpoints.
    async fn routes(&self, tenant: &TenantId) -> Result<Vec<EndpointRoute>, PortError> {
        let (pk, prefix) = keys::registry::endpoints_of(tenant);
        let mut query = self.prefix_query(&pk, prefix).projection_expression(
            EndpointRoute::ATTRIBUTES
                .iter()
                .map(|a| format!("#r_{a}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        for a in EndpointRoute::ATTRIBUTES {
            query = query.expression_attribute_names(format!("#r_{a}"), a);
        }
        let mut pages = query.into_paginator().items().send();
        let mut endpoints = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| port_error("Query endpoint routes", e))?;
            match from_item::<EndpointRoute>(item) {
                Ok(ep) => endpoints.push(ep),
                // One corrupt endpoint must not stop the tenant's others.
                Err(e) => tracing::error!(tenant_id = %tenant, error = %e, "skipping an unreadable endpoint item"),
            }
        }
        Ok(endpoints)
    }

    async fn endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        let key = keys::registry::endpoint(tenant, id);
        get_item(&self.client, &self.table, &key, false, "GetItem endpoint").await
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        Ok(self.tenant(tenant).await?.is_some())
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoRegistry {
    /// An UpdateItem of an endpoint that must still exist (a deleted endpoint
    /// is never re-created by a health update).
    fn update_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::registry::endpoint(tenant, id))))
            .expression_attribute_names("#pk", keys::PK)
    }

    /// An update that opens the endpoint's circuit until `until_ms` and puts
    /// it in the sparse index of open circuits (`gsi1`, keyed by that time);
    /// the caller adds its condition (`:until` is bound).
    fn open_until(&self, tenant: &TenantId, id: &EndpointId, until_ms: i64) -> UpdateItemFluentBuilder {
        self.update_endpoint(tenant, id)
            .update_expression("SET #open = :until, #g1pk = :open_pk, #g1sk = :open_sk")
            .expression_attribute_names("#open", OPEN_UNTIL)
            .expression_attribute_names("#g1pk", keys::GSI1_PK)
            .expression_attribute_names("#g1sk", keys::GSI1_SK)
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":open_pk", s(keys::registry::OPEN_CIRCUITS_PK))
            .expression_attribute_values(":open_sk", s(keys::registry::open_circuit_sk(until_ms, tenant, id)))
    }

    /// Runs a conditional update: `Ok(true)` if it applied, `Ok(false)` if its
    /// condition did not hold.
    async fn conditional(&self, update: UpdateItemFluentBuilder, op: &str) -> Result<bool, PortError> {
        super::applied(update.send().await, op)
    }
}

/// Every attribute the delivery function's updates of the registry name
/// (circuit, disabling, rate and notice counters, and the keys): its role
/// may update these and no other (`dynamodb:Attributes` in template.yaml),
/// so it can never change an endpoint's URL, secrets or headers.
pub const DELIVERY_UPDATES: [&str; 12] = [
    keys::PK,
    keys::SK,
    FAILURES,
    FAILING_SINCE,
    OPEN_UNTIL,
    keys::GSI1_PK,
    keys::GSI1_SK,
    "enabled",
    "disabled_reason",
    VERSION,
    "taken",
    keys::TTL,
];

/// The partition keys the delivery function's updates may name: a tenant's
/// (endpoints, rate slots and notice windows), never an API key's.
pub const DELIVERY_UPDATES_LEADING_KEYS: &str = "TENANT#*";

/// Circuit attribute names on the endpoint item (see `Circuit`).
const FAILURES: &str = "cb_failures";
const FAILING_SINCE: &str = "cb_failing_since";
const OPEN_UNTIL: &str = "cb_open_until";

impl EndpointHealth for DynamoRegistry {
    async fn record_failure(&self, tenant: &TenantId, id: &EndpointId, now_ms: i64) -> Result<Circuit, PortError> {
        let result = self
            .update_endpoint(tenant, id)
            .update_expression("SET #f = if_not_exists(#f, :zero) + :one, #since = if_not_exists(#since, :now)")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#f", FAILURES)
            .expression_attribute_names("#since", FAILING_SINCE)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => from_item(out.attributes.unwrap_or_default()),
            // Deleted meanwhile: nothing to count against.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(Circuit::default())
            }
            Err(e) => Err(port_error("UpdateItem circuit failure", e)),
        }
    }

    async fn open_circuit(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        threshold: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, PortError> {
        let update = self.open_until(tenant, id, until_ms);
        let update = if threshold == 0 {
            update.condition_expression("attribute_exists(#pk)")
        } else {
            update
                .condition_expression(
                    "attribute_exists(#pk) AND #f >= :threshold AND (attribute_not_exists(#open) OR #open < :now)",
                )
                .expression_attribute_names("#f", FAILURES)
                .expression_attribute_values(":threshold", n(i64::from(threshold)))
                .expression_attribute_values(":now", n(now_ms))
        };
        self.conditional(update, "UpdateItem open circuit").await
    }

    async fn hold_circuit(&self, tenant: &TenantId, id: &EndpointId, until_ms: i64) -> Result<bool, PortError> {
        let update = self
            .open_until(tenant, id, until_ms)
            .condition_expression("attribute_exists(#pk) AND (attribute_not_exists(#open) OR #open < :until)");
        self.conditional(update, "UpdateItem hold circuit").await
    }

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        seen_ms: i64,
        until_ms: i64,
    ) -> Result<bool, PortError> {
        let update = self
            .open_until(tenant, id, until_ms)
            .condition_expression("attribute_exists(#pk) AND #open = :seen")
            .expression_attribute_values(":seen", n(seen_ms));
        self.conditional(update, "UpdateItem claim probe").await
    }

    async fn reset_circuit(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), PortError> {
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #f = :zero REMOVE #since, #open, #g1pk, #g1sk")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#f", FAILURES)
            .expression_attribute_names("#since", FAILING_SINCE)
            .expression_attribute_names("#open", OPEN_UNTIL)
            .expression_attribute_names("#g1pk", keys::GSI1_PK)
            .expression_attribute_names("#g1sk", keys::GSI1_SK)
            .expression_attribute_values(":zero", n(0));
        self.conditional(update, "UpdateItem reset circuit").await.map(|_| ())
    }

    async fn disable(&self, tenant: &TenantId, id: &EndpointId, reason: &str) -> Result<bool, PortError> {
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #enabled = :no, #reason = :reason, #v = if_not_exists(#v, :zero) + :one")
            .condition_expression("attribute_exists(#pk) AND #enabled = :yes")
            .expression_attribute_names("#enabled", "enabled")
            .expression_attribute_names("#reason", "disabled_reason")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":reason", s(reason));
        self.conditional(update, "UpdateItem disable endpoint").await
    }
}

/// The attribute that counts an endpoint's changes (see `Endpoint::version`).
const VERSION: &str = "version";

impl EndpointEdits for DynamoRegistry {
    async fn current(&self, tenant: &TenantId, id: &EndpointId) -> Result<Option<Endpoint>, PortError> {
        let key = keys::registry::endpoint(tenant, id);
        get_item(&self.client, &self.table, &key, true, "GetItem endpoint").await
    }

    /// One UpdateItem that SETs or REMOVEs each attribute in which the two
    /// differ (attributes this code does not know are left alone), on
    /// condition that `version` is still `before`'s (absent counts as 0).
    async fn write_changes(&self, before: &Endpoint, after: &Endpoint) -> Result<Written, PortError> {
        let (old, new) = (to_item(before)?, to_item(after)?);
        let names: BTreeSet<&str> = old
            .keys()
            .chain(new.keys())
            .map(String::as_str)
            .filter(|k| *k != VERSION && old.get(*k) != new.get(*k))
            .collect();
        let (tenant, id) = (&before.tenant_id, &before.id);
        let mut update = self.update_endpoint(tenant, id);
        let (mut sets, mut removes) = (vec!["#v = :next".to_string()], Vec::new());
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
            Ok(out) => Ok(Written::Done(Box::new(from_item(out.attributes.unwrap_or_default())?))),
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

impl DynamoRegistry {
    /// How many endpoints' circuits are open at `now_ms`: a count over the
    /// sparse index, never a scan.
    pub async fn open_circuits(&self, now_ms: i64) -> Result<u64, PortError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk AND #sk > :after")
                .expression_attribute_names("#pk", keys::GSI1_PK)
                .expression_attribute_names("#sk", keys::GSI1_SK)
                .expression_attribute_values(":pk", s(keys::registry::OPEN_CIRCUITS_PK))
                .expression_attribute_values(":after", s(keys::registry::open_circuit_after(now_ms)))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| port_error("Query open circuits", e))?;
            total += out.count.max(0) as u64;
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }
}

/// The check an endpoint's URL passes before it is stored: the SSRF policy,
/// for the URL and for every address its host resolves to now (it is
/// checked again at every attempt and at connect time).
async fn check_endpoint_url(endpoint: &Endpoint, policy: &SsrfPolicy) -> Result<(), RegistrationError> {
    let url = endpoint.url.url();
    let resolved: Vec<std::net::IpAddr> = match url.host() {
        Some(url::Host::Domain(name)) => {
            // A name that does not resolve is refused: it cannot be checked.
            let port = url.port_or_known_default().unwrap_or(443);
            tokio::net::lookup_host((name, port))
                .await
                .map_err(|e| RegistrationError::Unresolvable(format!("{name}: {e}")))?
                .map(|a| a.ip())
                .collect()
        }
        _ => Vec::new(),
    };
    switchyard_core::ssrf::check_registration(&endpoint.url, &resolved, policy).map_err(RegistrationError::Refused)
}

/// The `kind` of a tenant's item, and of its entry in the listing of tenants.
const TENANT_KIND: &str = "tenant";
const TENANT_LISTING_KIND: &str = "tenant_listing";
/// The `kind` of an API key's lookup item, and of its record in its tenant's listing.
const API_KEY_KIND: &str = "api_key";
const API_KEY_RECORD_KIND: &str = "api_key_record";
/// The attribute of an API key's record that holds its hash.
const KEY_HASH: &str = "key_hash";
/// The longest API key id stored.
const MAX_KEY_ID_LEN: usize = 128;

/// A tenant's item, or its entry in the listing, as stored.
#[derive(Deserialize)]
struct TenantRow {
    tenant_id: TenantId,
    #[serde(default)]
    name: String,
    #[serde(default, with = "switchyard_core::time_util::serde_rfc3339_opt")]
    created_at: Option<OffsetDateTime>,
}

impl From<TenantRow> for TenantRecord {
    fn from(row: TenantRow) -> Self {
        Self {
            id: row.tenant_id,
            name: row.name,
            created_at: row.created_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

/// An API key's record as stored: the record and the hash of the key.
#[derive(Deserialize)]
struct ApiKeyHashRow {
    key_hash: String,
}

/// Helpers of the management API's storage ([`Tenants`], [`EndpointAdmin`]),
/// and what tests and the local runner seed directly.
impl DynamoRegistry {
    /// A `Put` for a transaction, on `condition` (which may use `#pk`).
    fn tx_put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", keys::PK)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Stores a new API key: the lookup item by hash (what authentication
    /// reads) and its record in the tenant's listing (the record and the
    /// hash, never the key), together. Fails if the key id or the hash is
    /// taken.
    pub async fn create_api_key(&self, hash: &ApiKeyHash, record: &ApiKeyRecord) -> Result<(), PortError> {
        match self.create_api_key_within(hash, record, u32::MAX).await? {
            true => Ok(()),
            false => Err(PortError::permanent("the tenant has too many API keys")),
        }
    }

    /// Writes an endpoint's changes ([`EndpointEdits::write_changes`])
    /// after the same URL check as [`Self::register_endpoint`] of `after`.
    pub async fn replace_endpoint(
        &self,
        before: &Endpoint,
        after: &Endpoint,
        policy: &SsrfPolicy,
    ) -> Result<Written, RegistrationError> {
        check_endpoint_url(after, policy).await?;
        self.write_changes(before, after)
            .await
            .map_err(RegistrationError::Store)
    }
}

/// The counters of a tenant's endpoints and API keys, and what they count.
const ENDPOINTS_COUNTER: Counter = Counter {
    name: "ENDPOINTS",
    prefix: keys::registry::ENDPOINT_SK_PREFIX,
};
const API_KEYS_COUNTER: Counter = Counter {
    name: "APIKEYS",
    prefix: keys::registry::API_KEY_SK_PREFIX,
};
/// The attribute of a counter item that holds the count.
const COUNT: &str = "count";
/// Tries of a counted create whose count changed under it.
const QUOTA_TRIES: usize = 5;

struct Counter {
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
    async fn within_quota(
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
    async fn count_down(&self, tenant: &TenantId, what: Counter) -> Result<Option<TransactWriteItem>, PortError> {
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

impl Tenants for DynamoRegistry {
    /// Creates a tenant: its item and its entry in the listing of tenants,
    /// together. `Ok(false)` if it exists.
    async fn create_tenant(&self, id: &TenantId, name: &str, now: OffsetDateTime) -> Result<bool, PortError> {
        let item = |key: &Key, kind: &str| {
            let mut item = key_item(key);
            item.insert("kind".into(), s(kind));
            item.insert("tenant_id".into(), s(id.as_str()));
            item.insert("name".into(), s(name));
            item.insert("created_at".into(), s(rfc3339(now)));
            item
        };
        let absent = "attribute_not_exists(#pk)";
        let items = vec![
            self.tx_put(item(&keys::registry::tenant(id), TENANT_KIND), absent)?,
            self.tx_put(item(&keys::registry::tenant_listing(id), TENANT_LISTING_KIND), absent)?,
        ];
        transact(&self.client, items, "TransactWriteItems create tenant").await
    }

    /// A tenant, if it exists.
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, PortError> {
        let key = keys::registry::tenant(id);
        let row: Option<TenantRow> = get_item(&self.client, &self.table, &key, true, "GetItem tenant").await?;
        Ok(row.map(TenantRecord::from))
    }

    /// Every tenant, by id, page by page.
    async fn list_tenants(&self, limit: usize, cursor: Option<&str>) -> Result<Page<TenantRecord>, ListError> {
        let (pk, prefix) = keys::registry::tenants_listing();
        let start = cursor
            .map(|c| decode_cursor(c, &[(keys::PK, Expect::Is(pk)), (keys::SK, Expect::StartsWith(prefix))]))
            .transpose()?;
        let query = self.prefix_query(pk, prefix).consistent_read(true);
        let page = query_page(query, limit, start, &[keys::PK, keys::SK], "Query tenants").await?;
        let items = page
            .items
            .into_iter()
            .map(|item| from_item::<TenantRow>(item).map(TenantRecord::from))
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next: page.next })
    }

    /// Stores a new API key as [`Self::create_api_key`] does, unless its
    /// tenant has `limit` keys already (`Ok(false)`): the key and the
    /// tenant's count of keys are written in one transaction.
    async fn create_api_key_within(
        &self,
        hash: &ApiKeyHash,
        record: &ApiKeyRecord,
        limit: u32,
    ) -> Result<bool, PortError> {
        if record.key_id.is_empty() || record.key_id.len() > MAX_KEY_ID_LEN {
            return Err(PortError::permanent(format!(
                "an API key id has 1 to {MAX_KEY_ID_LEN} characters"
            )));
        }
        let tenant = &record.tenant_id;
        let mut lookup = key_item(&keys::registry::api_key(hash));
        lookup.insert("kind".into(), s(API_KEY_KIND));
        lookup.insert("tenant_id".into(), s(tenant.as_str()));
        lookup.insert("key_id".into(), s(&record.key_id));
        let key = keys::registry::api_key_record(tenant, &record.key_id);
        let mut listed = item_with_key(record, &key, API_KEY_RECORD_KIND)?;
        listed.insert(KEY_HASH.into(), s(hash.as_str()));
        let absent = "attribute_not_exists(#pk)";
        let items = vec![self.tx_put(lookup, absent)?, self.tx_put(listed, absent)?];
        self.within_quota(tenant, API_KEYS_COUNTER, limit, items).await
    }

    /// A tenant's API keys, by id.
    async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKeyRecord>, PortError> {
        let (pk, prefix) = keys::registry::api_keys_of(tenant);
        let mut records = Vec::new();
        for item in self.items_with_prefix(pk, prefix, true, "Query api keys").await? {
            let record: ApiKeyRecord = from_item(item)?;
            if &record.tenant_id == tenant {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Revokes one of a tenant's API keys: its record and its lookup item go
    /// together. `Ok(false)` if the tenant has no such key.
    async fn revoke_api_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, PortError> {
        let key = keys::registry::api_key_record(tenant, key_id);
        let Some(row) =
            get_item::<ApiKeyHashRow>(&self.client, &self.table, &key, true, "GetItem api key record").await?
        else {
            return Ok(false);
        };
        let hash = ApiKeyHash::parse(&row.key_hash)
            .map_err(|_| PortError::permanent(format!("API key record {key_id}: bad {KEY_HASH}")))?;
        let record = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .condition_expression("attribute_exists(#pk) AND #hash = :hash")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#hash", KEY_HASH)
            .expression_attribute_values(":hash", s(hash.as_str()))
            .build()
            .map_err(build_error)?;
        // The lookup item goes only if it is this tenant's (or already gone).
        let lookup = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::registry::api_key(&hash))))
            .condition_expression("attribute_not_exists(#pk) OR #tid = :tid")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#tid", "tenant_id")
            .expression_attribute_values(":tid", s(tenant.as_str()))
            .build()
            .map_err(build_error)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(record).build(),
            TransactWriteItem::builder().delete(lookup).build(),
        ];
        items.extend(self.count_down(tenant, API_KEYS_COUNTER).await?);
        transact(&self.client, items, "TransactWriteItems revoke api key").await
    }
}

impl EndpointAdmin for DynamoRegistry {
    /// Registers an endpoint as [`Self::register_endpoint`] does, unless its
    /// tenant has `limit` endpoints already: the endpoint and the tenant's
    /// count of endpoints are written in one transaction, on condition that
    /// the count is still under the limit, so creates that race never pass
    /// it together.
    async fn register_endpoint_within(
        &self,
        endpoint: &Endpoint,
        policy: &SsrfPolicy,
        limit: u32,
    ) -> Result<(), RegistrationError> {
        check_endpoint_url(endpoint, policy).await?;
        let key = keys::registry::endpoint(&endpoint.tenant_id, &endpoint.id);
        let item = item_with_key(endpoint, &key, "endpoint").map_err(RegistrationError::Store)?;
        let put = self
            .tx_put(item, "attribute_not_exists(#pk)")
            .map_err(RegistrationError::Store)?;
        match self
            .within_quota(&endpoint.tenant_id, ENDPOINTS_COUNTER, limit, [put])
            .await
            .map_err(RegistrationError::Store)?
        {
            true => Ok(()),
            false => Err(RegistrationError::LimitReached(LimitExceeded {
                limit: switchyard_core::quota::ENDPOINTS_PER_TENANT,
                value: u64::from(limit),
            })),
        }
    }

    /// The check an endpoint's URL passes before it is stored (see
    /// [`Self::register_endpoint`]).
    async fn check_url(&self, endpoint: &Endpoint, policy: &SsrfPolicy) -> Result<(), RegistrationError> {
        check_endpoint_url(endpoint, policy).await
    }

    /// A tenant's endpoints, by id, page by page. An unreadable endpoint
    /// item is skipped (and logged), as [`Registry::endpoints`] does.
    async fn endpoints_page(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Endpoint>, ListError> {
        let (pk, prefix) = keys::registry::endpoints_of(tenant);
        let start = cursor
            .map(|c| {
                decode_cursor(
                    c,
                    &[(keys::PK, Expect::Is(&pk)), (keys::SK, Expect::StartsWith(prefix))],
                )
            })
            .transpose()?;
        let query = self.prefix_query(&pk, prefix).consistent_read(true);
        let page = query_page(query, limit, start, &[keys::PK, keys::SK], "Query endpoints").await?;
        let mut items = Vec::with_capacity(page.items.len());
        for item in page.items {
            match from_item::<Endpoint>(item) {
                Ok(ep) if &ep.tenant_id == tenant => items.push(ep),
                Ok(ep) => {
                    tracing::error!(tenant_id = %tenant, endpoint_id = %ep.id, "skipping an endpoint item of another tenant")
                }
                Err(e) => tracing::error!(tenant_id = %tenant, error = %e, "skipping an unreadable endpoint item"),
            }
        }
        Ok(Page { items, next: page.next })
    }

    /// Deletes an endpoint. `Ok(false)` if it did not exist.
    async fn delete_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> Result<bool, PortError> {
        // Counted: the endpoint and one off its tenant's count go together.
        if let Some(count_down) = self.count_down(tenant, ENDPOINTS_COUNTER).await? {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::registry::endpoint(tenant, id))))
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .build()
                .map_err(build_error)?;
            let items = vec![TransactWriteItem::builder().delete(delete).build(), count_down];
            return transact(&self.client, items, "TransactWriteItems delete endpoint").await;
        }
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::registry::endpoint(tenant, id))))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| port_error("DeleteItem endpoint", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}
