//! Tenants, API keys and endpoints in the registry table.

mod admin;
mod edits;
mod health;
mod quota;
mod sealed;
mod tenants;

use super::keys::{self, Key};
use super::{Item, build_error, from_item, get_item, get_raw_item, key_item, s, transact};
use crate::error::port_error;
use crate::kms::KmsKeyring;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::Deserialize;
use std::sync::Arc;
use switchyard_core::endpoint::{EndpointRoute, Written};
use switchyard_core::model::{ApiKeyRecord, RegistrationError, TenantRecord, TenantStatus};
use switchyard_core::ports::{EndpointAdmin, EndpointEdits, Registry, Tenants};
use switchyard_core::ssrf::SsrfPolicy;
use switchyard_core::time_util::rfc3339;
use switchyard_core::{ApiKeyHash, Endpoint, EndpointId, PortError, TenantId};
use time::OffsetDateTime;

pub use health::{DELIVERY_UPDATES, DELIVERY_UPDATES_LEADING_KEYS};
pub use sealed::SEALED_SECRETS;

/// Tenants, API keys and endpoints.
#[derive(Clone, Debug)]
pub struct DynamoRegistry {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// Seals endpoint secrets on write and opens them on read; without one,
    /// secrets are written in plain text and sealed ones cannot be read.
    keyring: Option<Arc<KmsKeyring>>,
}

impl DynamoRegistry {
    /// The registry in `table`, without a keyring: for the functions that
    /// never read or write an endpoint's secrets.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            keyring: None,
        }
    }

    /// The same registry, sealing and opening endpoint secrets with `keyring`.
    pub fn with_keyring(mut self, keyring: Arc<KmsKeyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The keyring endpoint secrets are sealed with, if any.
    pub fn keyring(&self) -> Option<&Arc<KmsKeyring>> {
        self.keyring.as_ref()
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

    /// One page of the items of partition `pk` whose sort key starts with
    /// `prefix` (strongly consistent), from a cursor that must name this
    /// partition and prefix: a cursor of another tenant's listing is
    /// refused.
    async fn prefix_page(
        &self,
        pk: &str,
        prefix: &str,
        limit: usize,
        cursor: Option<&str>,
        op: &str,
    ) -> Result<super::Page<Item>, super::ListError> {
        let start = cursor
            .map(|c| {
                super::decode_cursor(
                    c,
                    &[
                        (keys::PK, super::Expect::Is(pk)),
                        (keys::SK, super::Expect::StartsWith(prefix)),
                    ],
                )
            })
            .transpose()?;
        let query = self.prefix_query(pk, prefix).consistent_read(true);
        Ok(super::query_page(query, limit, start, &[keys::PK, keys::SK], op).await?)
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

    /// Creates or replaces an endpoint (its secrets sealed when the
    /// registry has a keyring).
    pub async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), PortError> {
        let key = keys::registry::endpoint(&endpoint.tenant_id, &endpoint.id);
        self.put(self.endpoint_item(endpoint, &key).await?, "PutItem endpoint")
            .await
    }
}

#[derive(Deserialize)]
struct ApiKeyRow {
    tenant_id: TenantId,
    #[serde(default)]
    revoked: bool,
    /// Absent on keys stored before scopes: `manage`.
    #[serde(default)]
    scope: switchyard_core::api_key::KeyScope,
    #[serde(default, with = "switchyard_core::time_util::serde_rfc3339_opt")]
    expires_at: Option<time::OffsetDateTime>,
}

impl Registry for DynamoRegistry {
    async fn key_grant(&self, hash: &ApiKeyHash) -> Result<Option<switchyard_core::api_key::KeyGrant>, PortError> {
        let key = keys::registry::api_key(hash);
        let row: Option<ApiKeyRow> = get_item(&self.client, &self.table, &key, false, "GetItem api key").await?;
        Ok(row.filter(|r| !r.revoked).map(|r| switchyard_core::api_key::KeyGrant {
            tenant: r.tenant_id,
            scope: r.scope,
            expires_at: r.expires_at,
        }))
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
        let item = get_raw_item(&self.client, &self.table, &key, false, "GetItem endpoint").await?;
        self.endpoint_from(item).await
    }

    async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, PortError> {
        Ok(self.tenant(tenant).await?.is_some())
    }

    /// An eventually consistent read of the tenant's item: a change of
    /// status is seen within about a second.
    async fn tenant_suspended(&self, tenant: &TenantId) -> Result<bool, PortError> {
        let key = keys::registry::tenant(tenant);
        let row: Option<TenantStatusRow> =
            get_item(&self.client, &self.table, &key, false, "GetItem tenant status").await?;
        Ok(row.is_some_and(|r| r.status.0 == TenantStatus::Suspended))
    }
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
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
    #[serde(default, rename = "status")]
    status: StoredStatus,
}

/// A tenant's `status` as stored: absent on tenants stored before
/// suspension existed, and any value but `suspended` reads as active.
#[derive(Default)]
struct StoredStatus(TenantStatus);

impl<'de> Deserialize<'de> for StoredStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        Ok(Self(raw.as_deref().and_then(TenantStatus::parse).unwrap_or_default()))
    }
}

/// Just a tenant's status, as delivery and ingest read it.
#[derive(Deserialize)]
struct TenantStatusRow {
    #[serde(default)]
    status: StoredStatus,
}

impl From<TenantRow> for TenantRecord {
    fn from(row: TenantRow) -> Self {
        Self {
            id: row.tenant_id,
            name: row.name,
            created_at: row.created_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            status: row.status.0,
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
