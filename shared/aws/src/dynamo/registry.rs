//! Tenants, API keys and endpoints in the registry table.

use super::{Item, from_item, get_item, item_with_key, key_item, s};
use crate::error::port_error;
use serde::Deserialize;
use switchyard_core::keys;
use switchyard_core::ports::Registry;
use switchyard_core::{ApiKeyHash, Endpoint, EndpointId, PortError, TenantId};

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
