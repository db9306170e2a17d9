//! Tenants and their API keys, for the management API.

use super::quota::API_KEYS_COUNTER;
use super::{
    API_KEY_KIND, API_KEY_RECORD_KIND, ApiKeyHashRow, DynamoRegistry, KEY_HASH, MAX_KEY_ID_LEN, TENANT_KIND,
    TENANT_LISTING_KIND, TenantRow,
};
use crate::dynamo::keys::{self, Key};
use crate::dynamo::{ListError, Page, build_error, from_item, get_item, item_with_key, key_item, s, transact};
use crate::error::port_error;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem, Update};
use switchyard_core::model::{ApiKeyRecord, TenantRecord, TenantStatus};
use switchyard_core::ports::Tenants;
use switchyard_core::time_util::rfc3339;
use switchyard_core::{ApiKeyHash, PortError, TenantId};
use time::OffsetDateTime;

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
        let page = self.prefix_page(pk, prefix, limit, cursor, "Query tenants").await?;
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
        lookup.insert("scope".into(), s(record.scope.as_str()));
        if let Some(t) = record.expires_at {
            lookup.insert("expires_at".into(), s(switchyard_core::time_util::rfc3339(t)));
        }
        let key = keys::registry::api_key_record(tenant, &record.key_id);
        let mut listed = item_with_key(record, &key, API_KEY_RECORD_KIND)?;
        listed.insert(KEY_HASH.into(), s(hash.as_str()));
        let absent = "attribute_not_exists(#pk)";
        let items = vec![self.tx_put(lookup, absent)?, self.tx_put(listed, absent)?];
        self.within_quota(tenant, API_KEYS_COUNTER, limit, items).await
    }

    /// A tenant's API keys, by id, page by page.
    async fn list_api_keys(
        &self,
        tenant: &TenantId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKeyRecord>, ListError> {
        let (pk, prefix) = keys::registry::api_keys_of(tenant);
        let page = self.prefix_page(&pk, prefix, limit, cursor, "Query api keys").await?;
        let mut items = Vec::new();
        for item in page.items {
            let record: ApiKeyRecord = from_item(item)?;
            if &record.tenant_id == tenant {
                items.push(record);
            }
        }
        Ok(Page { items, next: page.next })
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
        let mut items = vec![
            TransactWriteItem::builder().delete(record).build(),
            TransactWriteItem::builder()
                .delete(self.lookup_delete(tenant, &hash)?)
                .build(),
        ];
        items.extend(self.count_down(tenant, API_KEYS_COUNTER).await?);
        transact(&self.client, items, "TransactWriteItems revoke api key").await
    }

    /// Sets the status on the tenant's item and its listing entry together,
    /// only if the tenant's item exists (a deleted tenant stays deleted),
    /// then reads it back.
    async fn set_tenant_status(&self, id: &TenantId, status: TenantStatus) -> Result<Option<TenantRecord>, PortError> {
        let update = |key: &Key| -> Result<TransactWriteItem, PortError> {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .update_expression("SET #status = :status")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .build()
                .map_err(build_error)?;
            Ok(TransactWriteItem::builder().update(update).build())
        };
        let items = vec![
            update(&keys::registry::tenant(id))?,
            update(&keys::registry::tenant_listing(id))?,
        ];
        if !transact(&self.client, items, "TransactWriteItems tenant status").await? {
            return Ok(None);
        }
        self.tenant(id).await
    }

    /// Deletes a tenant's whole partition (API key records, endpoints,
    /// counters) and its keys' lookup items, the lookups first so that no
    /// key authenticates while the rest goes; the tenant's item and listing
    /// entry go last, together, so a failure half way leaves the tenant
    /// there for the next call to finish. Rate and notice counters live in
    /// partitions of their own and expire by TTL.
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, PortError> {
        if self.tenant(id).await?.is_none() {
            return Ok(false);
        }
        let tenant_key = keys::registry::tenant(id);
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_values(":pk", s(&tenant_key.pk))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| port_error("Query tenant partition", e))?);
        }
        for item in &items {
            let Some(hash) = item.get(KEY_HASH).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            let Ok(hash) = ApiKeyHash::parse(hash) else {
                continue;
            };
            // `Ok(false)`: the lookup is another tenant's; it stays.
            let lookup = TransactWriteItem::builder()
                .delete(self.lookup_delete(id, &hash)?)
                .build();
            transact(&self.client, vec![lookup], "TransactWriteItems delete api key lookup").await?;
        }
        for item in &items {
            let sk = item.get(keys::SK).and_then(|v| v.as_s().ok());
            if sk == Some(&tenant_key.sk) {
                continue;
            }
            let key = item
                .iter()
                .filter(|(k, _)| *k == keys::PK || *k == keys::SK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .send()
                .await
                .map_err(|e| port_error("DeleteItem tenant item", e))?;
        }
        let delete = |key: &Key| {
            Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(key)))
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
                .map_err(build_error)
        };
        let last = vec![delete(&tenant_key)?, delete(&keys::registry::tenant_listing(id))?];
        transact(&self.client, last, "TransactWriteItems delete tenant").await?;
        Ok(true)
    }
}

impl DynamoRegistry {
    /// The deletion of an API key's lookup item, only if it is `tenant`'s
    /// (or already gone).
    fn lookup_delete(&self, tenant: &TenantId, hash: &ApiKeyHash) -> Result<Delete, PortError> {
        Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::registry::api_key(hash))))
            .condition_expression("attribute_not_exists(#pk) OR #tid = :tid")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#tid", "tenant_id")
            .expression_attribute_values(":tid", s(tenant.as_str()))
            .build()
            .map_err(build_error)
    }
}
