//! Tenants, API keys and endpoints in the registry table.

use super::{Item, from_item, get_item, item_with_key, key_item, s};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use serde::Deserialize;
use switchyard_core::endpoint::Circuit;
use switchyard_core::keys;
use switchyard_core::ports::{EndpointHealth, Registry};
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
        super::put_item(&self.client, &self.table, item, op).await
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

    /// Registers an endpoint: its URL must pass the SSRF policy, and so must
    /// every address its host resolves to now (it is checked again at every
    /// attempt and at connect time). Then stores it.
    pub async fn register_endpoint(
        &self,
        endpoint: &Endpoint,
        policy: &switchyard_core::ssrf::SsrfPolicy,
    ) -> Result<(), RegistrationError> {
        use switchyard_core::ssrf::check_registration;
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
        check_registration(&endpoint.url, &resolved, policy).map_err(RegistrationError::Refused)?;
        self.put_endpoint(endpoint).await.map_err(RegistrationError::Store)
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

    /// Runs a conditional update: `Ok(true)` if it applied, `Ok(false)` if its
    /// condition did not hold.
    async fn conditional(&self, update: UpdateItemFluentBuilder, op: &str) -> Result<bool, PortError> {
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(port_error(op, e)),
        }
    }
}

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
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #open = :until")
            .expression_attribute_names("#open", OPEN_UNTIL)
            .expression_attribute_values(":until", n(until_ms));
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

    async fn claim_probe(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
        seen_ms: i64,
        until_ms: i64,
    ) -> Result<bool, PortError> {
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #open = :until")
            .condition_expression("attribute_exists(#pk) AND #open = :seen")
            .expression_attribute_names("#open", OPEN_UNTIL)
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":seen", n(seen_ms));
        self.conditional(update, "UpdateItem claim probe").await
    }

    async fn reset_circuit(&self, tenant: &TenantId, id: &EndpointId) -> Result<(), PortError> {
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #f = :zero REMOVE #since, #open")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#f", FAILURES)
            .expression_attribute_names("#since", FAILING_SINCE)
            .expression_attribute_names("#open", OPEN_UNTIL)
            .expression_attribute_values(":zero", n(0));
        self.conditional(update, "UpdateItem reset circuit").await.map(|_| ())
    }

    async fn disable(&self, tenant: &TenantId, id: &EndpointId, reason: &str) -> Result<bool, PortError> {
        let update = self
            .update_endpoint(tenant, id)
            .update_expression("SET #enabled = :no, #reason = :reason")
            .condition_expression("attribute_exists(#pk) AND #enabled = :yes")
            .expression_attribute_names("#enabled", "enabled")
            .expression_attribute_names("#reason", "disabled_reason")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .expression_attribute_values(":reason", s(reason));
        self.conditional(update, "UpdateItem disable endpoint").await
    }
}

/// Why an endpoint was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("the endpoint URL is refused: {0}")]
    Refused(switchyard_core::ssrf::SsrfError),
    #[error("the endpoint's host does not resolve: {0}")]
    Unresolvable(String),
    #[error("storing the endpoint failed: {0}")]
    Store(PortError),
}
