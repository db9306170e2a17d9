//! Deliveries and their attempts in the deliveries table.
//!
//! Every delivery of one event, and their attempt items, share one
//! partition named by the event's group (`TENANT#{t}#DELIVERIES#{group}`,
//! see `crate::dynamo::keys`): the delivery item is `DELIVERY#{dlv}`,
//! attempt `n` (from the second on; the first is in the delivery item) is
//! `ATTEMPT#{dlv}#{n:06}`. The group is part of the delivery id, so the id
//! alone finds the item (one `GetItem`), and an event's deliveries are one
//! query of the table itself. Deliveries by endpoint and by state come from
//! the keys-only indexes `gsi1` and `gsi3` and are read with `BatchGetItem`;
//! the reconciler finds overdue retrying deliveries through the sparse,
//! keys-only `due` index (sharded across tenants, by due time).

use super::keys;
use super::{
    Expect, Item, ListError, Page, Put, decode_cursor, from_item, get_item, item_with_key, key_item, query_page, s,
};
use crate::error::port_error;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Deserialize;
use switchyard_core::model::{AttemptRecord, DeliveryRecord, DeliveryState, EndpointStats};
use switchyard_core::ports::{DeliveryLog, DeliveryQueries};
use switchyard_core::time_util::{rfc3339, sortable};
use switchyard_core::{DeliveryId, EndpointId, EventId, PortError, TenantId};
use time::{Duration, OffsetDateTime};

/// Deliveries and their attempts, in the deliveries table.
#[derive(Clone, Debug)]
pub struct DynamoDeliveryLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
}

impl DynamoDeliveryLog {
    /// The delivery log in `table`; its items expire `retention` after
    /// their last change (and never before a retry is due).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, retention: Duration) -> Self {
        Self {
            client,
            table: table.into(),
            retention,
        }
    }

    fn delivery_item(&self, d: &DeliveryRecord) -> Result<Item, PortError> {
        let key =
            keys::deliveries::delivery(&d.tenant_id, &d.delivery_id).ok_or_else(|| not_derived(&d.delivery_id))?;
        let mut item = item_with_key(d, &key, "delivery")?;
        let index =
            keys::deliveries::delivery_index(&d.tenant_id, &d.delivery_id, &d.endpoint_id, &sortable(d.created_at));
        let by_status = keys::deliveries::indexed_by_status(d.state)
            .then(|| keys::deliveries::status_index(&d.tenant_id, &d.delivery_id, d.state, &sortable(d.updated_at)));
        // Only a retrying delivery with a due time is in the due index.
        let due = (d.state == DeliveryState::Retrying)
            .then_some(d.next_attempt_at)
            .flatten()
            .map(|next| keys::deliveries::due_index(&d.delivery_id, &sortable(next)));
        for (name, value) in index
            .into_iter()
            .chain(by_status.into_iter().flatten())
            .chain(due.into_iter().flatten())
        {
            item.insert(name.into(), s(value));
        }
        // Kept for the retention period after its last change, and never
        // expired before its next attempt (a retry may be due a day or more
        // after the last one, beyond a short retention).
        let last = d.next_attempt_at.map_or(d.updated_at, |next| next.max(d.updated_at));
        item.insert(keys::TTL.into(), self.ttl(last));
        Ok(item)
    }

    fn ttl(&self, from: OffsetDateTime) -> AttributeValue {
        AttributeValue::N((from + self.retention).unix_timestamp().to_string())
    }
}

/// A delivery id that names no partition (not from [`DeliveryId::derive`])
/// cannot be written.
fn not_derived(id: &DeliveryId) -> PortError {
    PortError::permanent(format!("delivery id {id} is not a derived one: it has no event group"))
}

impl DeliveryLog for DynamoDeliveryLog {
    async fn delivery(&self, tenant: &TenantId, id: &DeliveryId) -> Result<Option<DeliveryRecord>, PortError> {
        let Some(key) = keys::deliveries::delivery(tenant, id) else {
            return Ok(None);
        };
        get_item(&self.client, &self.table, &key, true, "GetItem delivery").await
    }

    async fn record_attempt(&self, delivery: &DeliveryRecord, attempt: &AttemptRecord) -> Result<(), PortError> {
        // The delivery's state first, on the condition that no other worker
        // recorded this attempt number (or a later one) meanwhile: a stale
        // duplicate of the task never overwrites a newer state. Then the
        // attempt. A crash between the two leaves the attempt unrecorded,
        // never a state that goes back in time.
        self.put_delivery_if_newer(delivery, "<", "PutItem delivery").await?;
        if delivery
            .first_attempt
            .as_ref()
            .is_some_and(|first| first.attempt == attempt.attempt)
        {
            // Stored in the delivery item just written: one write, not two.
            return Ok(());
        }
        let key = keys::deliveries::attempt(&delivery.tenant_id, &delivery.delivery_id, attempt.attempt)
            .ok_or_else(|| not_derived(&delivery.delivery_id))?;
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
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .condition_expression(format!("attribute_not_exists(#pk) OR #attempts {cmp} :n"))
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_values(":n", AttributeValue::N(delivery.attempts.to_string()));
        if super::put_if(request, self.delivery_item(delivery)?, op).await? == Put::Written {
            return Ok(());
        }
        // Another delivery of the same task got further; this one is stale.
        // Transient: the task comes back and finds the newer state (done, or
        // due later).
        Err(PortError::transient(format!(
            "delivery {} was recorded by a newer attempt meanwhile",
            delivery.delivery_id
        )))
    }
}

/// The reason a replayed delivery carries.
pub(crate) const REPLAY_REASON: &str = "replay_requested";
/// The most deliveries [`DynamoDeliveryLog::endpoint_stats`] reads (the newest).
pub(crate) const MAX_STATS_DELIVERIES: usize = 10_000;

/// What the statistics read of a delivery.
#[derive(Deserialize)]
struct StatsRow {
    state: DeliveryState,
    #[serde(default)]
    last_duration_ms: Option<u64>,
}

/// Sums up deliveries given as (state, last attempt's duration).
fn summarize(deliveries: impl IntoIterator<Item = (DeliveryState, Option<u64>)>) -> EndpointStats {
    let mut stats = EndpointStats::default();
    let mut latencies = Vec::new();
    for (state, duration) in deliveries {
        stats.deliveries += 1;
        match state {
            DeliveryState::Succeeded => stats.succeeded += 1,
            DeliveryState::Failed => stats.failed += 1,
            DeliveryState::Retrying => stats.pending += 1,
            DeliveryState::Skipped => {}
        }
        latencies.extend(duration);
    }
    let ended = stats.succeeded + stats.failed;
    stats.success_rate = (ended > 0).then(|| stats.succeeded as f64 / ended as f64);
    latencies.sort_unstable();
    stats.latency_p50_ms = nearest_rank(&latencies, 50);
    stats.latency_p95_ms = nearest_rank(&latencies, 95);
    stats
}

/// The `p`th percentile of sorted values by nearest rank: the value at rank
/// ⌈p/100 × n⌉ (1-based).
fn nearest_rank(sorted: &[u64], p: usize) -> Option<u64> {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The attributes of a delivery's keys in an index (the table's and the index's).
fn index_key_names(index_pk: &'static str, index_sk: &'static str) -> [&'static str; 4] {
    [keys::PK, keys::SK, index_pk, index_sk]
}

/// The queries behind [`DeliveryQueries`].
impl DynamoDeliveryLog {
    /// A query of one index partition of a tenant's deliveries.
    fn index_query(&self, index: &str, pk_attr: &str, pk: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .expression_attribute_names("#ipk", pk_attr)
            .expression_attribute_values(":ipk", s(pk))
    }

    /// The cursor rules of a tenant's delivery listing over an index: the
    /// item keys must be this tenant's delivery items, the index partition
    /// the one queried, and its sort key as `sk` admits.
    fn decode_delivery_cursor(
        tenant: &TenantId,
        cursor: Option<&str>,
        (pk_attr, pk): (&str, &str),
        (sk_attr, sk): (&str, Expect<'_>),
    ) -> Result<Option<Item>, ListError> {
        let prefix = keys::deliveries::delivery_pk_prefix(tenant);
        cursor
            .map(|c| {
                decode_cursor(
                    c,
                    &[
                        (keys::PK, Expect::StartsWith(&prefix)),
                        (keys::SK, Expect::StartsWith(keys::deliveries::DELIVERY_SK_PREFIX)),
                        (pk_attr, Expect::Is(pk)),
                        (sk_attr, sk),
                    ],
                )
            })
            .transpose()
    }

    async fn delivery_page(
        &self,
        query: QueryFluentBuilder,
        limit: usize,
        start: Option<Item>,
        key_names: [&str; 4],
        op: &str,
    ) -> Result<Page<DeliveryRecord>, ListError> {
        let page = query_page(query, limit, start, &key_names, op).await?;
        // The indexes hold keys only: the items come from the table.
        let items = super::hydrate(&self.client, &self.table, &page.items, None, op)
            .await?
            .into_iter()
            .map(from_item::<DeliveryRecord>)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next: page.next })
    }
}

impl switchyard_core::reconcile::OverdueDeliveries for DynamoDeliveryLog {
    /// One query per shard of the due index (oldest first, at most `limit`
    /// each), the items read with `BatchGetItem`, merged oldest first.
    async fn overdue(&self, before: OffsetDateTime, limit: usize) -> Result<Vec<DeliveryRecord>, PortError> {
        let bound = format!("{}#", sortable(before));
        let mut all = Vec::new();
        for shard in 0..keys::deliveries::DUE_SHARDS {
            let query = self
                .index_query(keys::GSI_DUE, keys::DUE_PK, &keys::deliveries::due_partition(shard))
                .key_condition_expression("#ipk = :ipk AND #isk < :before")
                .expression_attribute_names("#isk", keys::DUE_SK)
                .expression_attribute_values(":before", s(&bound));
            let names = index_key_names(keys::DUE_PK, keys::DUE_SK);
            let page = self
                .delivery_page(query, limit, None, names, "Query overdue deliveries")
                .await
                .map_err(|e| match e {
                    ListError::Port(p) => p,
                    other => PortError::permanent(other.to_string()),
                })?;
            all.extend(page.items);
        }
        all.retain(|r| r.state == DeliveryState::Retrying && r.next_attempt_at.is_some_and(|n| n < before));
        all.sort_by_key(|r| r.next_attempt_at);
        all.truncate(limit);
        Ok(all)
    }

    /// An UpdateItem conditioned on the delivery still retrying with the due
    /// time and attempt count that were read; it moves the due index entry
    /// with the due time.
    async fn claim(&self, seen: &DeliveryRecord, generation: u32, next: OffsetDateTime) -> Result<bool, PortError> {
        let (Some(key), Some(due)) = (
            keys::deliveries::delivery(&seen.tenant_id, &seen.delivery_id),
            seen.next_attempt_at,
        ) else {
            return Ok(false);
        };
        let [(dpk, dpk_value), (dsk, dsk_value)] = keys::deliveries::due_index(&seen.delivery_id, &sortable(next));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression("SET #gen = :gen, #next = :next, #dpk = :dpk, #dsk = :dsk, #exp = :exp")
            .condition_expression("#state = :retrying AND #next = :due AND #attempts = :attempts")
            .expression_attribute_names("#gen", "task_generation")
            .expression_attribute_names("#next", "next_attempt_at")
            .expression_attribute_names("#dpk", dpk)
            .expression_attribute_names("#dsk", dsk)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#attempts", "attempts")
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":exp", self.ttl(next))
            .expression_attribute_values(":gen", AttributeValue::N(generation.to_string()))
            .expression_attribute_values(":next", s(rfc3339(next)))
            .expression_attribute_values(":dpk", s(dpk_value))
            .expression_attribute_values(":dsk", s(dsk_value))
            .expression_attribute_values(":retrying", s(keys::deliveries::state_name(DeliveryState::Retrying)))
            .expression_attribute_values(":due", s(rfc3339(due)))
            .expression_attribute_values(":attempts", AttributeValue::N(seen.attempts.to_string()))
            .send()
            .await;
        super::applied(result, "UpdateItem claim overdue delivery")
    }
}

impl DeliveryQueries for DynamoDeliveryLog {
    /// Reads a delivery and its attempts, oldest attempt first: one
    /// `GetItem`, and a query of its attempt items only when it counts more
    /// attempts than the first (which the item holds). `None` for an id
    /// that names no delivery (not found, or not a derived id).
    async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>)>, PortError> {
        let Some(key) = keys::deliveries::delivery(tenant, id) else {
            return Ok(None);
        };
        let Some(delivery) =
            get_item::<DeliveryRecord>(&self.client, &self.table, &key, true, "GetItem delivery").await?
        else {
            return Ok(None);
        };
        let embedded = u32::from(delivery.first_attempt.is_some());
        let mut attempts = Vec::new();
        if delivery.attempts > embedded {
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :attempts)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", s(&key.pk))
                .expression_attribute_values(":attempts", s(keys::deliveries::attempts_sk_prefix(id)))
                .consistent_read(true)
                .into_paginator()
                .items()
                .send();
            while let Some(item) = pages.next().await {
                attempts.push(from_item::<AttemptRecord>(
                    item.map_err(|e| port_error("Query attempts", e))?,
                )?);
            }
        }
        let log = delivery.attempt_log(attempts);
        Ok(Some((delivery, log)))
    }

    /// An endpoint's deliveries, newest first; with a window, those created
    /// in `[from, to)` (to the millisecond, as index keys store times).
    async fn deliveries_by_endpoint(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        window: Option<(OffsetDateTime, OffsetDateTime)>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, ListError> {
        let pk = keys::deliveries::by_endpoint_partition(tenant, endpoint);
        // Sort keys are `{created_at}#{dlv}`: `#` sorts below every id
        // character, so [from#, to#] holds exactly the window.
        let bounds = window.map(|(from, to)| (format!("{}#", sortable(from)), format!("{}#", sortable(to))));
        if let Some((lo, hi)) = &bounds
            && lo >= hi
        {
            return Ok(Page::empty());
        }
        let sk_rule = match &bounds {
            Some((lo, hi)) => Expect::Between(lo, hi),
            None => Expect::Any,
        };
        let start = Self::decode_delivery_cursor(tenant, cursor, (keys::GSI1_PK, &pk), (keys::GSI1_SK, sk_rule))?;
        let query = self
            .index_query(keys::GSI1, keys::GSI1_PK, &pk)
            .scan_index_forward(false);
        let query = match &bounds {
            Some((lo, hi)) => query
                .key_condition_expression("#ipk = :ipk AND #isk BETWEEN :lo AND :hi")
                .expression_attribute_names("#isk", keys::GSI1_SK)
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi)),
            None => query.key_condition_expression("#ipk = :ipk"),
        };
        let names = index_key_names(keys::GSI1_PK, keys::GSI1_SK);
        self.delivery_page(query, limit, start, names, "Query deliveries by endpoint")
            .await
    }

    /// An event's deliveries (one per endpoint it went to), by delivery id:
    /// a query of the event group's partition of the table (no index; the
    /// items come whole, the attempt items beside them are not read).
    /// The cursor is the last delivery's key, refused unless it names
    /// exactly this partition and a delivery in it.
    async fn deliveries_by_event(
        &self,
        tenant: &TenantId,
        event: &EventId,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, ListError> {
        let pk = keys::deliveries::by_event_partition(tenant, event);
        let sk_prefix = keys::deliveries::DELIVERY_SK_PREFIX;
        let start = cursor
            .map(|c| {
                decode_cursor(
                    c,
                    &[(keys::PK, Expect::Is(&pk)), (keys::SK, Expect::StartsWith(sk_prefix))],
                )
            })
            .transpose()?;
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :deliveries)")
            // Another event in the same group would take an 80-bit hash
            // collision; its deliveries are not this event's all the same.
            .filter_expression("#evt = :evt")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_names("#evt", "event_id")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":deliveries", s(sk_prefix))
            .expression_attribute_values(":evt", s(event.as_str()));
        let page = query_page(query, limit, start, &[keys::PK, keys::SK], "Query deliveries by event").await?;
        let items = page
            .items
            .into_iter()
            .map(from_item::<DeliveryRecord>)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next: page.next })
    }

    /// A tenant's deliveries in one state, most recently updated first.
    /// Succeeded deliveries are not indexed
    /// ([`keys::deliveries::indexed_by_status`]): that listing is empty.
    async fn deliveries_by_status(
        &self,
        tenant: &TenantId,
        state: DeliveryState,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<DeliveryRecord>, ListError> {
        let pk = keys::deliveries::by_status_partition(tenant, state);
        let start = Self::decode_delivery_cursor(tenant, cursor, (keys::GSI3_PK, &pk), (keys::GSI3_SK, Expect::Any))?;
        let query = self
            .index_query(keys::GSI3, keys::GSI3_PK, &pk)
            .key_condition_expression("#ipk = :ipk")
            .scan_index_forward(false);
        let names = index_key_names(keys::GSI3_PK, keys::GSI3_SK);
        self.delivery_page(query, limit, start, names, "Query deliveries by status")
            .await
    }

    /// Puts a failed or skipped delivery back to retrying for a replay:
    /// reason `replay_requested`, no `next_attempt_at` (due now), updated now
    /// (and moved in the by-status index). `Ok(false)` if it is neither (any
    /// more), or does not exist. Attempt counts are left as they are.
    async fn requeue_failed(&self, tenant: &TenantId, id: &DeliveryId, now: OffsetDateTime) -> Result<bool, PortError> {
        let retrying = DeliveryState::Retrying;
        let Some(key) = keys::deliveries::delivery(tenant, id) else {
            return Ok(false);
        };
        let [(g3pk, g3pk_value), (g3sk, g3sk_value)] =
            keys::deliveries::status_index(tenant, id, retrying, &sortable(now));
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(&key)))
            .update_expression(
                "SET #state = :retrying, #reason = :reason, #updated = :now, #g3pk = :g3pk, #g3sk = :g3sk, \
                 #exp = :exp REMOVE #next",
            )
            .condition_expression("attribute_exists(#pk) AND #state IN (:failed, :skipped)")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#reason", "reason")
            .expression_attribute_names("#updated", "updated_at")
            .expression_attribute_names("#next", "next_attempt_at")
            .expression_attribute_names("#g3pk", g3pk)
            .expression_attribute_names("#g3sk", g3sk)
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":retrying", s(keys::deliveries::state_name(retrying)))
            .expression_attribute_values(":failed", s(keys::deliveries::state_name(DeliveryState::Failed)))
            .expression_attribute_values(":skipped", s(keys::deliveries::state_name(DeliveryState::Skipped)))
            .expression_attribute_values(":reason", s(REPLAY_REASON))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .expression_attribute_values(":g3pk", s(g3pk_value))
            .expression_attribute_values(":g3sk", s(g3sk_value))
            .expression_attribute_values(":exp", self.ttl(now))
            .send()
            .await;
        super::applied(result, "UpdateItem requeue delivery")
    }

    /// An endpoint's deliveries created in `[since, now)`, summed up; at most
    /// the newest [`MAX_STATS_DELIVERIES`] are read.
    async fn endpoint_stats(
        &self,
        tenant: &TenantId,
        endpoint: &EndpointId,
        since: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<EndpointStats, PortError> {
        let (lo, hi) = (format!("{}#", sortable(since)), format!("{}#", sortable(now)));
        if lo >= hi {
            return Ok(EndpointStats::default());
        }
        let pk = keys::deliveries::by_endpoint_partition(tenant, endpoint);
        let mut entries = self
            .index_query(keys::GSI1, keys::GSI1_PK, &pk)
            .key_condition_expression("#ipk = :ipk AND #isk BETWEEN :lo AND :hi")
            .expression_attribute_names("#isk", keys::GSI1_SK)
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        let mut keys = Vec::new();
        while keys.len() < MAX_STATS_DELIVERIES {
            let Some(entry) = entries.next().await else { break };
            keys.push(entry.map_err(|e| port_error("Query endpoint stats", e))?);
        }
        // The index holds keys only: the two attributes come from the table.
        let items = super::hydrate(
            &self.client,
            &self.table,
            &keys,
            Some(&["state", "last_duration_ms"]),
            "BatchGetItem endpoint stats",
        )
        .await?;
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let row: StatsRow = from_item(item)?;
            rows.push((row.state, row.last_duration_ms));
        }
        Ok(summarize(rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryState::*;

    #[test]
    fn stats_count_states_and_take_nearest_rank_percentiles() {
        let mut rows = vec![
            (Succeeded, Some(10)),
            (Succeeded, Some(30)),
            (Failed, Some(20)),
            (Failed, None),
        ];
        rows.extend([(Retrying, Some(40)), (Skipped, None)]);
        let stats = summarize(rows);
        assert_eq!(
            (stats.deliveries, stats.succeeded, stats.failed, stats.pending),
            (6, 2, 2, 1)
        );
        assert_eq!(stats.success_rate, Some(0.5));
        // Latencies 10, 20, 30, 40: p50 is rank 2, p95 rank 4.
        assert_eq!((stats.latency_p50_ms, stats.latency_p95_ms), (Some(20), Some(40)));
    }

    #[test]
    fn stats_of_nothing_have_no_rates() {
        assert_eq!(summarize([]), EndpointStats::default());
        let stats = summarize([(Retrying, None), (Skipped, None)]);
        assert_eq!((stats.deliveries, stats.pending, stats.success_rate), (2, 1, None));
        assert_eq!((stats.latency_p50_ms, stats.latency_p95_ms), (None, None));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&hundred, 50), Some(50));
        assert_eq!(nearest_rank(&hundred, 95), Some(95));
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[7], 95), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[], 50), None);
        let twenty: Vec<u64> = (1..=20).collect();
        assert_eq!(nearest_rank(&twenty, 95), Some(19));
    }
}
