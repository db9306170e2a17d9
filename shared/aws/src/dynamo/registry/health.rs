//! An endpoint's health: its circuit, disabling it, and the count of open
//! circuits; what the delivery function may update.

use super::edits::VERSION;
use super::{DynamoRegistry, n};
use crate::dynamo::keys;
use crate::dynamo::{from_item, key_item, s};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use switchyard_core::endpoint::Circuit;
use switchyard_core::ports::EndpointHealth;
use switchyard_core::{EndpointId, PortError, TenantId};

impl DynamoRegistry {
    /// An UpdateItem of an endpoint that must still exist (a deleted endpoint
    /// is never re-created by a health update).
    pub(super) fn update_endpoint(&self, tenant: &TenantId, id: &EndpointId) -> UpdateItemFluentBuilder {
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
        crate::dynamo::applied(update.send().await, op)
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
pub(super) const OPEN_UNTIL: &str = "cb_open_until";

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
