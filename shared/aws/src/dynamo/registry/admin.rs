//! Endpoints as the management API creates, lists and deletes them.

use super::quota::ENDPOINTS_COUNTER;
use super::{DynamoRegistry, check_endpoint_url};
use crate::dynamo::keys;
use crate::dynamo::{ListError, Page, build_error, key_item, transact};
use crate::error::port_error;
use aws_sdk_dynamodb::types::{Delete, ReturnValue, TransactWriteItem};
use switchyard_core::model::RegistrationError;
use switchyard_core::ports::EndpointAdmin;
use switchyard_core::quota::LimitExceeded;
use switchyard_core::ssrf::SsrfPolicy;
use switchyard_core::{Endpoint, EndpointId, PortError, TenantId};

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
        let item = self
            .endpoint_item(endpoint, &key)
            .await
            .map_err(RegistrationError::Store)?;
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
        let page = self.prefix_page(&pk, prefix, limit, cursor, "Query endpoints").await?;
        let mut items = Vec::with_capacity(page.items.len());
        for item in page.items {
            match self.endpoint_from_item(item).await {
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
