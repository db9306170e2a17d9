//! The internal track's state table: processed markers, workflow runs, and
//! the records the workflows keep.

use super::keys::{self, Key};
use super::{Item, from_item, key_item, s};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use serde_json::{Map, Value};
use switchyard_core::time_util::rfc3339;
use switchyard_core::{PortError, TenantId};
use switchyard_flow::consumer::{BoxFuture, Claim, MarkerKey, Markers};
use switchyard_flow::workflow::{
    Committed, Effect, RecordRef, RunKey, RunState, StateReader, StepCommit, StepFailure, WorkflowStore,
};
use time::OffsetDateTime;

const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";
/// Attributes a record's fields may not use: the store's own.
const RESERVED: &[&str] = &[keys::PK, keys::SK, "kind", keys::TTL];

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// The state table.
#[derive(Clone, Debug)]
pub struct DynamoStateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// A run as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    /// The index of the next step to run.
    pub next_step: usize,
    /// The run's status as stored.
    pub status: String,
    /// How many times a step of the run has failed.
    pub failures: u32,
    /// The step that failed last, if any.
    pub failed_step: Option<String>,
    /// The error of the last failure, if any.
    pub last_error: Option<String>,
    /// The outputs of the steps done so far, by step name.
    pub outputs: Map<String, Value>,
}

impl DynamoStateStore {
    /// The state store in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, key: &Key, op: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(op, e))?;
        Ok(out.item)
    }

    /// A run's record.
    pub async fn run(&self, key: &RunKey) -> Result<Option<RunView>, PortError> {
        let item = self
            .get(&keys::state::run(&key.tenant, &key.event, &key.workflow), "GetItem run")
            .await?;
        item.map(|item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            Ok(RunView {
                next_step: num(&item, "next_step").unwrap_or(0).max(0) as usize,
                status: text("status").unwrap_or_default(),
                failures: num(&item, "failures").unwrap_or(0).max(0) as u32,
                failed_step: text("failed_step"),
                last_error: text("last_error"),
                outputs: parse_outputs(&item)?,
            })
        })
        .transpose()
    }

    /// Puts a record (what an operator or a non-workflow handler writes:
    /// stock levels, shipping rates).
    pub async fn put_record(
        &self,
        tenant: &TenantId,
        record: &RecordRef,
        fields: &Map<String, Value>,
    ) -> Result<(), PortError> {
        super::put_item(
            &self.client,
            &self.table,
            record_item(tenant, record, fields)?,
            "PutItem record",
        )
        .await
    }

    /// Adds `delta` to a numeric field of a record.
    pub async fn add_to_record(
        &self,
        tenant: &TenantId,
        record: &RecordRef,
        field: &str,
        delta: i64,
    ) -> Result<(), PortError> {
        let u = add_update(&self.table, tenant, record, field, delta)?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(u.key().clone()))
            .update_expression(u.update_expression())
            .set_expression_attribute_names(u.expression_attribute_names().cloned())
            .set_expression_attribute_values(u.expression_attribute_values().cloned())
            .send()
            .await
            .map_err(|e| port_error("UpdateItem record", e))?;
        Ok(())
    }
}

fn parse_outputs(item: &Item) -> Result<Map<String, Value>, PortError> {
    match item.get("outputs").and_then(|v| v.as_s().ok()) {
        None => Ok(Map::new()),
        Some(text) => serde_json::from_str(text).map_err(|e| PortError::permanent(format!("stored run outputs: {e}"))),
    }
}

fn record_item(tenant: &TenantId, record: &RecordRef, fields: &Map<String, Value>) -> Result<Item, PortError> {
    if let Some(bad) = fields.keys().find(|k| RESERVED.contains(&k.as_str())) {
        return Err(PortError::permanent(format!(
            "record {}/{} uses the reserved field `{bad}`",
            record.kind, record.id
        )));
    }
    let mut item: Item =
        serde_dynamo::to_item(fields).map_err(|e| PortError::permanent(format!("encoding a record: {e}")))?;
    item.extend(key_item(&keys::state::record(tenant, &record.kind, &record.id)));
    item.insert("kind".into(), s("record"));
    Ok(item)
}

fn add_update(
    table: &str,
    tenant: &TenantId,
    record: &RecordRef,
    field: &str,
    delta: i64,
) -> Result<Update, PortError> {
    if RESERVED.contains(&field) {
        return Err(PortError::permanent(format!("`{field}` is a reserved field")));
    }
    Update::builder()
        .table_name(table)
        .set_key(Some(key_item(&keys::state::record(tenant, &record.kind, &record.id))))
        .update_expression("ADD #f :d SET #kind = :kind")
        .expression_attribute_names("#f", field)
        .expression_attribute_names("#kind", "kind")
        .expression_attribute_values(":d", n(delta))
        .expression_attribute_values(":kind", s("record"))
        .build()
        .map_err(|e| PortError::permanent(format!("building an update: {e}")))
}

impl Markers for DynamoStateStore {
    async fn claim(
        &self,
        key: &MarkerKey,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<Claim, PortError> {
        let k = keys::state::marker(&key.tenant, &key.event, &key.handler);
        let mut item = key_item(&k);
        item.insert("kind".into(), s("marker"));
        item.insert("handler".into(), s(&key.handler));
        item.insert("status".into(), s(IN_PROGRESS));
        item.insert("lease_until".into(), n(lease_until.unix_timestamp()));
        // An abandoned claim disappears a day after its lease.
        item.insert(keys::TTL.into(), n(lease_until.unix_timestamp() + 86_400));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR (#st = :ip AND #lease <= :now)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#lease", "lease_until")
            .expression_attribute_values(":ip", s(IN_PROGRESS))
            .expression_attribute_values(":now", n(now.unix_timestamp()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(_) => return Ok(Claim::Acquired),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    match c.item() {
                        Some(item) => item.clone(),
                        None => match self.get(&k, "GetItem marker").await? {
                            Some(item) => item,
                            // Gone in between (released): try again soon.
                            None => return Ok(Claim::Busy { until: now }),
                        },
                    }
                }
                _ => return Err(port_error("PutItem marker", e)),
            },
        };
        if old.get("status").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(DONE) {
            return Ok(Claim::Done);
        }
        let until = num(&old, "lease_until")
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .unwrap_or(now);
        Ok(Claim::Busy { until })
    }

    async fn complete(&self, key: &MarkerKey, expires_at: OffsetDateTime) -> Result<(), PortError> {
        let mut item = key_item(&keys::state::marker(&key.tenant, &key.event, &key.handler));
        item.insert("kind".into(), s("marker"));
        item.insert("handler".into(), s(&key.handler));
        item.insert("status".into(), s(DONE));
        item.insert(keys::TTL.into(), n(expires_at.unix_timestamp()));
        super::put_item(&self.client, &self.table, item, "PutItem marker done").await
    }

    async fn release(&self, key: &MarkerKey) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&keys::state::marker(
                &key.tenant,
                &key.event,
                &key.handler,
            ))))
            .condition_expression("#st = :ip")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":ip", s(IN_PROGRESS))
            .send()
            .await;
        // Not in progress any more (done, or taken over): nothing to release.
        super::applied(result, "DeleteItem marker").map(|_| ())
    }
}

impl StateReader for DynamoStateStore {
    fn get<'a>(
        &'a self,
        tenant: &'a TenantId,
        record: &'a RecordRef,
    ) -> BoxFuture<'a, Result<Option<Map<String, Value>>, PortError>> {
        Box::pin(async move {
            let key = keys::state::record(tenant, &record.kind, &record.id);
            let Some(mut item) = DynamoStateStore::get(self, &key, "GetItem record").await? else {
                return Ok(None);
            };
            for k in RESERVED {
                item.remove(*k);
            }
            from_item::<Map<String, Value>>(item).map(Some)
        })
    }
}

impl WorkflowStore for DynamoStateStore {
    fn load_run<'a>(&'a self, key: &'a RunKey) -> BoxFuture<'a, Result<Option<RunState>, PortError>> {
        Box::pin(async move {
            Ok(self.run(key).await?.map(|v| RunState {
                next_step: v.next_step,
                outputs: v.outputs,
            }))
        })
    }

    fn commit_step<'a>(&'a self, key: &'a RunKey, c: &'a StepCommit) -> BoxFuture<'a, Result<Committed, PortError>> {
        Box::pin(async move {
            let outputs = serde_json::to_string(&c.outputs)
                .map_err(|e| PortError::permanent(format!("encoding run outputs: {e}")))?;
            let condition = if c.step == 0 {
                "attribute_not_exists(#pk) OR #next = :i"
            } else {
                "#next = :i"
            };
            let mut run = Update::builder()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::state::run(
                    &key.tenant,
                    &key.event,
                    &key.workflow,
                ))))
                .update_expression(
                    "SET #next = :n, #st = :st, outputs = :o, updated_at = :u, #exp = :e, workflow = :w, \
                     event_id = :evt, #kind = :kind, last_step = :ls REMOVE last_error, failed_step",
                )
                .condition_expression(condition)
                .expression_attribute_names("#next", "next_step")
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#exp", keys::TTL)
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_values(":i", n(c.step))
                .expression_attribute_values(":n", n(c.step + 1))
                .expression_attribute_values(":st", s(if c.last { "completed" } else { "running" }))
                .expression_attribute_values(":o", s(outputs))
                .expression_attribute_values(":u", s(rfc3339(c.now)))
                .expression_attribute_values(":e", n(c.expires_at.unix_timestamp()))
                .expression_attribute_values(":w", s(&key.workflow))
                .expression_attribute_values(":evt", s(key.event.as_str()))
                .expression_attribute_values(":kind", s("workflow_run"))
                .expression_attribute_values(":ls", s(&c.step_name));
            if c.step == 0 {
                run = run.expression_attribute_names("#pk", keys::PK);
            }
            let run = run
                .build()
                .map_err(|e| PortError::permanent(format!("building an update: {e}")))?;
            let mut items = vec![TransactWriteItem::builder().update(run).build()];
            for effect in &c.effects {
                items.push(match effect {
                    Effect::Put { record, fields } => TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(record_item(&key.tenant, record, fields)?))
                                .build()
                                .map_err(|e| PortError::permanent(format!("building a put: {e}")))?,
                        )
                        .build(),
                    Effect::Add { record, field, delta } => TransactWriteItem::builder()
                        .update(add_update(&self.table, &key.tenant, record, field, *delta)?)
                        .build(),
                });
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                // A retry after a lost answer is then no conflict (see `transact`).
                .client_request_token(switchyard_core::ids::ulid())
                .send()
                .await;
            match result {
                Ok(_) => Ok(Committed::Yes),
                Err(e) => {
                    if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = e.as_service_error() {
                        let run_failed = tc
                            .cancellation_reasons()
                            .first()
                            .and_then(|r| r.code())
                            .is_some_and(|code| code == "ConditionalCheckFailed");
                        if run_failed {
                            return Ok(Committed::Conflict);
                        }
                        // Cancelled for another reason (a conflicting
                        // transaction, throttling): nothing was written.
                        return Err(PortError::transient(format!(
                            "TransactWriteItems step {} cancelled: {:?}",
                            c.step_name,
                            tc.cancellation_reasons()
                                .iter()
                                .map(|r| r.code().unwrap_or("None"))
                                .collect::<Vec<_>>()
                        )));
                    }
                    Err(port_error("TransactWriteItems step", e))
                }
            }
        })
    }

    fn record_failure<'a>(&'a self, key: &'a RunKey, f: &'a StepFailure) -> BoxFuture<'a, Result<(), PortError>> {
        Box::pin(async move {
            // Keep the error short: it is for operators, not a payload store.
            let error: String = f.error.chars().take(1000).collect();
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key_item(&keys::state::run(
                    &key.tenant,
                    &key.event,
                    &key.workflow,
                ))))
                .update_expression(
                    "SET failed_step = :fs, last_error = :err, #st = :st, updated_at = :u, #exp = :e, \
                     workflow = :w, event_id = :evt, #kind = :kind, \
                     #next = if_not_exists(#next, :zero), failures = if_not_exists(failures, :zero) + :one",
                )
                .expression_attribute_names("#st", "status")
                .expression_attribute_names("#exp", keys::TTL)
                .expression_attribute_names("#kind", "kind")
                .expression_attribute_names("#next", "next_step")
                .expression_attribute_values(":fs", s(&f.step_name))
                .expression_attribute_values(":err", s(error))
                .expression_attribute_values(":st", s(if f.retryable { "retrying" } else { "failed" }))
                .expression_attribute_values(":u", s(rfc3339(f.now)))
                .expression_attribute_values(":e", n(f.expires_at.unix_timestamp()))
                .expression_attribute_values(":w", s(&key.workflow))
                .expression_attribute_values(":evt", s(key.event.as_str()))
                .expression_attribute_values(":kind", s("workflow_run"))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map_err(|e| port_error("UpdateItem run failure", e))?;
            Ok(())
        })
    }
}
