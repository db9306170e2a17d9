//! Accepted events in the deliveries table.

use super::keys;
use super::{
    Expect, Item, MAX_PAGE, Put, cursor_after, decode_cursor, encode_cursor, from_item, get_item, get_raw_item,
    item_with_key, key_item, s,
};
use crate::error::port_error;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use switchyard_core::event_listing::{EventListing, TypeFilter};
use switchyard_core::ingest::is_live;
use switchyard_core::model::{AuditPage, ClaimOutcome, EventRecord, InsertOutcome, KeyClaim, ListError, Page};
use switchyard_core::ports::{EventQueries, EventStore};
use switchyard_core::time_util::{parse_rfc3339, rfc3339, sortable};
use switchyard_core::{Envelope, EventId, PortError, TenantId};
use time::OffsetDateTime;

/// The condition of every conditional insert here: the item is absent, or
/// expired. DynamoDB's TTL deletes expired items lazily (up to days late), so
/// the stored expiry is compared with now explicitly.
const ABSENT_OR_EXPIRED: &str = "attribute_not_exists(#pk) OR #exp <= :now";

/// An idempotency key held for an event, in the deliveries table.
#[derive(Serialize, Deserialize)]
struct KeyRow {
    tenant_id: TenantId,
    event_id: EventId,
    claimed_at: String,
    /// The end of the dedupe window (unix seconds): also the TTL attribute.
    expires_at: i64,
}

/// The attribute holding the envelope's JSON deflated (Binary), in place of
/// `envelope` (String) when that makes the item smaller.
const ENVELOPE_DEFLATED: &str = "envelope_z";
/// Envelopes shorter than this are stored as text: too small to gain.
const DEFLATE_FROM: usize = 256;
/// The most a stored envelope may inflate to (a DynamoDB item is at most
/// 400 KB, and JSON deflates about tenfold at best).
const INFLATE_LIMIT: usize = 8 << 20;

/// Deflates the item's `envelope` into `envelope_z` when that is smaller.
/// DynamoDB bills writes by the kilobyte of the whole item (an update too),
/// so a 1 KB event whose JSON deflates to about half fits one write unit
/// instead of two.
fn deflate_envelope(item: &mut Item) {
    let Some(AttributeValue::S(text)) = item.get("envelope") else {
        return;
    };
    if text.len() < DEFLATE_FROM {
        return;
    }
    let packed = miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 6);
    if packed.len() + ENVELOPE_DEFLATED.len() < text.len() + "envelope".len() {
        item.remove("envelope");
        item.insert(
            ENVELOPE_DEFLATED.into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(packed)),
        );
    }
}

/// Reads an event row from its item, inflating `envelope_z` if that is how
/// the envelope was stored.
fn event_row(mut item: Item) -> Result<EventRow, PortError> {
    inflate_envelope(&mut item)?;
    from_item(item)
}

/// Turns `envelope_z` back into `envelope`; nothing to do for a text one.
fn inflate_envelope(item: &mut Item) -> Result<(), PortError> {
    if let Some(AttributeValue::B(packed)) = item.remove(ENVELOPE_DEFLATED) {
        let corrupt = |why: String| PortError::permanent(format!("stored event: bad {ENVELOPE_DEFLATED}: {why}"));
        let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(packed.as_ref(), INFLATE_LIMIT)
            .map_err(|e| corrupt(format!("{:?}", e.status)))?;
        let text = String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
        item.insert("envelope".into(), AttributeValue::S(text));
    }
    Ok(())
}

/// The stored form of an event.
#[derive(Serialize, Deserialize)]
struct EventRow {
    tenant_id: TenantId,
    event_id: EventId,
    event_type: String,
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
            received_at: parse_rfc3339(&self.received_at).map_err(|_| corrupt("received_at"))?,
            expires_at: OffsetDateTime::from_unix_timestamp(self.expires_at).map_err(|_| corrupt("expires_at"))?,
            envelope,
        })
    }
}

/// Most UTC days one audit query may span.
pub const MAX_AUDIT_DAYS: u32 = 366;
/// Most UTC days (index partitions) one page of an audit trail reads: a
/// page that reaches it before it is full ends there, with a cursor
/// (`day:YYYY-MM-DD`) that resumes at the next day. One call costs at most
/// this many queries and one page of items, whatever the window.
pub const MAX_AUDIT_DAYS_PER_PAGE: u32 = 31;
/// Most index entries one page of [`EventQueries::list_events`] evaluates
/// (about 25 read units): a type filter that keeps few of them ends the
/// page early, with a `next`.
pub const MAX_EVENTS_EVALUATED_PER_PAGE: usize = 1000;
/// What a cursor that resumes at the start of a day begins with.
pub const AUDIT_DAY_CURSOR: &str = "day:";

/// Accepted events, in the deliveries table.
#[derive(Clone, Debug)]
pub struct DynamoEventStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoEventStore {
    /// The event store in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Puts `item` unless a live item (`expires_at` after `now`) holds its
    /// key. A write whose answer was lost is [`Put::Written`] ([`put_if`]):
    /// not a duplicate, the event (or claim) is this request's, and it was
    /// never handed over.
    ///
    /// [`put_if`]: super::put_if
    async fn put_if_absent_or_expired(&self, item: Item, now: OffsetDateTime, op: &str) -> Result<Put, PortError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .condition_expression(ABSENT_OR_EXPIRED)
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()));
        super::put_if(request, item, op).await
    }
}

impl EventStore for DynamoEventStore {
    async fn find_event(
        &self,
        tenant: &TenantId,
        id: &EventId,
        now: OffsetDateTime,
    ) -> Result<Option<EventRecord>, PortError> {
        Ok(self.get_event(tenant, id).await?.filter(|r| is_live(r.expires_at, now)))
    }

    async fn insert_event(&self, record: &EventRecord) -> Result<InsertOutcome, PortError> {
        let key = keys::deliveries::event(&record.envelope.tenant_id, &record.envelope.id);
        let mut item = item_with_key(&EventRow::from_record(record)?, &key, "event")?;
        deflate_envelope(&mut item);
        item.insert(
            keys::TTL.into(),
            AttributeValue::N(record.expires_at.unix_timestamp().to_string()),
        );
        let at = sortable(record.received_at);
        // Every event is in its tenant's listing; audited ones in the audit
        // trail too.
        for (name, value) in keys::events_index(&record.envelope.tenant_id, &record.envelope.id, &at) {
            item.insert(name.into(), s(value));
        }
        if record.envelope.routing.audit {
            for (name, value) in keys::audit_index(&record.envelope.tenant_id, &record.envelope.id, &at) {
                item.insert(name.into(), s(value));
            }
        }
        let existing = match self
            .put_if_absent_or_expired(item, record.received_at, "PutItem event")
            .await?
        {
            Put::Written => return Ok(InsertOutcome::Inserted),
            Put::Refused(existing) => existing,
        };
        let existing = match existing {
            Some(item) => Some(event_row(item)?.into_record()?),
            None => self.get_event(&record.envelope.tenant_id, &record.envelope.id).await?,
        };
        // Live a moment ago; absent or expired now only if it expired in
        // between: trying again will insert.
        existing
            .filter(|r| is_live(r.expires_at, record.received_at))
            .map(|r| InsertOutcome::Exists(Box::new(r)))
            .ok_or_else(|| PortError::transient("event expired during a conditional insert"))
    }

    async fn claim_key(&self, claim: &KeyClaim) -> Result<ClaimOutcome, PortError> {
        let key = keys::deliveries::idempotency(&claim.tenant, &claim.key_digest);
        let row = KeyRow {
            tenant_id: claim.tenant.clone(),
            event_id: claim.event_id.clone(),
            claimed_at: rfc3339(claim.now),
            expires_at: claim.expires_at.unix_timestamp(),
        };
        let item = item_with_key(&row, &key, "idempotency_key")?;
        let existing = match self
            .put_if_absent_or_expired(item, claim.now, "PutItem idempotency key")
            .await?
        {
            Put::Written => return Ok(ClaimOutcome::Claimed),
            Put::Refused(existing) => existing,
        };
        let existing: Option<KeyRow> = match existing {
            Some(item) => Some(from_item(item)?),
            None => get_item(&self.client, &self.table, &key, true, "GetItem idempotency key").await?,
        };
        let now = claim.now.unix_timestamp();
        existing
            .filter(|r| r.expires_at > now)
            .map(|r| ClaimOutcome::Held(r.event_id))
            .ok_or_else(|| PortError::transient("idempotency key expired during a conditional insert"))
    }
}

impl EventQueries for DynamoEventStore {
    /// The tenant's audit trail: its `routing.audit` events received in
    /// `[from, to)`, oldest first, at most `limit` of them, after the cursor
    /// `after` (the `next` of the previous page). Reads one index partition
    /// per UTC day of the range (which spans at most [`MAX_AUDIT_DAYS`]),
    /// at most [`MAX_AUDIT_DAYS_PER_PAGE`] of them per page: a page may be
    /// short, or empty, and still have a `next`.
    async fn audit_trail(
        &self,
        tenant: &TenantId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        after: Option<&str>,
    ) -> Result<AuditPage, PortError> {
        let (lo, hi) = (sortable(from), sortable(to));
        let mut page = AuditPage::default();
        if (to.date() - from.date()).whole_days() >= i64::from(MAX_AUDIT_DAYS) {
            return Err(PortError::permanent(format!(
                "an audit query spans at most {MAX_AUDIT_DAYS} days"
            )));
        }
        let mut day = from.date();
        // A cursor `day:YYYY-MM-DD` resumes at the start of that day.
        let resume_day = after
            .and_then(|c| c.strip_prefix(AUDIT_DAY_CURSOR))
            .map(|d| {
                switchyard_core::time_util::parse_rfc3339(&format!("{d}T00:00:00Z"))
                    .map(|t| t.date())
                    .map_err(|_| PortError::permanent("not an audit cursor"))
            })
            .transpose()?;
        if let Some(d) = resume_day {
            day = day.max(d);
        }
        let after = if resume_day.is_some() { None } else { after };
        let mut days = 0;
        while day <= to.date() && page.events.len() < limit {
            days += 1;
            if days > MAX_AUDIT_DAYS_PER_PAGE {
                // Bounded cost per call: the next page goes on from here.
                page.next = Some(format!("{AUDIT_DAY_CURSOR}{day}"));
                break;
            }
            let day_str = day.to_string();
            let partition = keys::audit_partition(tenant, &day_str);
            // Resume after the cursor `{received_at}#{evt}`: skip the days
            // before it, and start its own day's query right after it.
            let mut start_key = None;
            if let Some(cursor) = after {
                let cursor_day = cursor.get(..10).unwrap_or("");
                if day_str.as_str() < cursor_day {
                    days -= 1; // skipped, not read
                    day = match day.next_day() {
                        Some(d) => d,
                        None => break,
                    };
                    continue;
                }
                if day_str == cursor_day {
                    let evt = cursor
                        .rsplit_once('#')
                        .and_then(|(_, e)| EventId::parse(e).ok())
                        .ok_or_else(|| PortError::permanent("not an audit cursor"))?;
                    let mut k = key_item(&keys::deliveries::event(tenant, &evt));
                    k.insert(keys::GSI1_PK.into(), s(&partition));
                    k.insert(keys::GSI1_SK.into(), s(cursor));
                    start_key = Some(k);
                }
            }
            // Sort keys are `{received_at}#{evt}`: `#` sorts below every id
            // character, so [lo#, hi#] covers the time range.
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :lo AND :hi")
                .expression_attribute_names("#pk", keys::GSI1_PK)
                .expression_attribute_names("#sk", keys::GSI1_SK)
                .expression_attribute_values(":pk", s(partition))
                .expression_attribute_values(":lo", s(format!("{lo}#")))
                .expression_attribute_values(":hi", s(format!("{hi}#")))
                .set_exclusive_start_key(start_key)
                // Pages of index entries no larger than this page needs.
                .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
                .into_paginator()
                .items()
                .send();
            // The index holds keys only: read the page's items from the
            // table, as many entries at a time as the page still needs.
            'day: loop {
                let need = limit - page.events.len();
                let mut entries = Vec::with_capacity(need);
                while entries.len() < need {
                    match pages.next().await {
                        Some(entry) => entries.push(entry.map_err(|e| port_error("Query audit trail", e))?),
                        None => break,
                    }
                }
                let exhausted = entries.len() < need;
                let items =
                    super::hydrate(&self.client, &self.table, &entries, None, "BatchGetItem audit trail").await?;
                for item in items {
                    let cursor = item.get(keys::GSI1_SK).and_then(|v| v.as_s().ok()).cloned();
                    let record = event_row(item)?.into_record()?;
                    // An index entry at `hi` exactly is outside the range.
                    if record.received_at >= to {
                        continue;
                    }
                    page.events.push(record);
                    if page.events.len() == limit {
                        page.next = cursor;
                        break 'day;
                    }
                }
                if exhausted {
                    break;
                }
            }
            day = match day.next_day() {
                Some(d) => d,
                None => break,
            };
        }
        Ok(page)
    }

    /// A tenant's events newest first: a query of its partition of the
    /// `events` index (keys, `event_type` and `expires_at` projected),
    /// window as a key condition on `{received_at}#{evt}`, type and expiry
    /// as a filter on the index entries; the page's items then read with
    /// `BatchGetItem`. One call evaluates at most
    /// [`MAX_EVENTS_EVALUATED_PER_PAGE`] entries: a filter that keeps few
    /// of them ends the page early, with a cursor that goes on from there.
    async fn list_events(
        &self,
        tenant: &TenantId,
        listing: &EventListing,
        limit: usize,
        cursor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Page<EventRecord>, ListError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let partition = keys::events_partition(tenant);
        // Sort keys are `{received_at}#{evt}`: `#` sorts below every id
        // character, so [since#, until#) holds exactly the window.
        let (since, until) = listing.millis_window();
        let lo = since.map(|t| format!("{}#", sortable(t)));
        let hi = until.map(|t| format!("{}#", sortable(t)));
        let item_prefix = keys::event_pk_prefix(tenant);
        let start = cursor
            .map(|c| {
                decode_cursor(
                    c,
                    &[
                        (keys::PK, Expect::StartsWith(&item_prefix)),
                        (keys::SK, Expect::Is("EVENT")),
                        (keys::EVENTS_PK, Expect::Is(&partition)),
                        (
                            keys::EVENTS_SK,
                            Expect::Between(lo.as_deref().unwrap_or(""), hi.as_deref().unwrap_or("~")),
                        ),
                    ],
                )
            })
            .transpose()?;
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI_EVENTS)
            .scan_index_forward(false)
            .expression_attribute_names("#pk", keys::EVENTS_PK)
            .expression_attribute_values(":pk", s(&partition))
            .expression_attribute_names("#exp", keys::TTL)
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()));
        let key_condition = match (&lo, &hi) {
            (Some(_), Some(_)) => "#pk = :pk AND #sk BETWEEN :lo AND :hi",
            (Some(_), None) => "#pk = :pk AND #sk >= :lo",
            (None, Some(_)) => "#pk = :pk AND #sk < :hi",
            (None, None) => "#pk = :pk",
        };
        query = query.key_condition_expression(key_condition);
        if lo.is_some() || hi.is_some() {
            query = query.expression_attribute_names("#sk", keys::EVENTS_SK);
            if let Some(lo) = &lo {
                query = query.expression_attribute_values(":lo", s(lo));
            }
            if let Some(hi) = &hi {
                query = query.expression_attribute_values(":hi", s(hi));
            }
        }
        // An expired record counts as absent (TTL deletes lazily).
        let filter = match &listing.types {
            None => "#exp > :now",
            Some(TypeFilter::Exact(t)) => {
                query = query
                    .expression_attribute_names("#type", "event_type")
                    .expression_attribute_values(":type", s(t.as_str()));
                "#exp > :now AND #type = :type"
            }
            Some(TypeFilter::Prefix(p)) => {
                query = query
                    .expression_attribute_names("#type", "event_type")
                    .expression_attribute_values(":type", s(p));
                "#exp > :now AND begins_with(#type, :type)"
            }
        };
        query = query.filter_expression(filter);
        let key_names = [keys::PK, keys::SK, keys::EVENTS_PK, keys::EVENTS_SK];
        let op = "Query events";
        let mut entries: Vec<Item> = Vec::with_capacity(limit + 1);
        let (mut start, mut evaluated, mut round) = (start, 0usize, 0u32);
        let mut next = None;
        loop {
            // The first round reads what an unfiltered page needs; later
            // ones (a filter left the page short) more at a time.
            let remaining = MAX_EVENTS_EVALUATED_PER_PAGE.saturating_sub(evaluated).max(1);
            let chunk = ((limit + 1) << round.min(6)).min(remaining);
            round += 1;
            let out = query
                .clone()
                .limit(i32::try_from(chunk).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| port_error(op, e))?;
            evaluated += usize::try_from(out.scanned_count).unwrap_or(chunk);
            entries.extend(out.items.unwrap_or_default());
            if entries.len() > limit {
                // One more than the page: the page ends at its last entry.
                entries.truncate(limit);
                if let Some(last) = entries.last() {
                    next = Some(cursor_after(last, &key_names)?);
                }
                break;
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                None => break,
                Some(k) if evaluated >= MAX_EVENTS_EVALUATED_PER_PAGE => {
                    next = Some(encode_cursor(&k)?);
                    break;
                }
                Some(k) => start = Some(k),
            }
        }
        let items = super::hydrate(&self.client, &self.table, &entries, None, "BatchGetItem events")
            .await?
            .into_iter()
            .map(|item| event_row(item)?.into_record())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next })
    }

    /// Reads one event of a tenant.
    async fn get_event(&self, tenant: &TenantId, id: &EventId) -> Result<Option<EventRecord>, PortError> {
        let key = keys::deliveries::event(tenant, id);
        get_raw_item(&self.client, &self.table, &key, true, "GetItem event")
            .await?
            .map(|item| event_row(item)?.into_record())
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_with_envelope(text: &str) -> Item {
        Item::from([("event_id".to_string(), s("evt_1")), ("envelope".to_string(), s(text))])
    }

    #[test]
    fn large_envelopes_are_stored_deflated_and_read_back_exactly() {
        let text = format!(
            r#"{{"id":"evt_1","type":"order.placed","data":{{"items":[{}]}}}}"#,
            (0..20)
                .map(|i| format!(r#"{{"sku":"SKU-{i:04}","name":"Desk lamp","quantity":{i}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut item = item_with_envelope(&text);
        deflate_envelope(&mut item);
        let Some(AttributeValue::B(packed)) = item.get(ENVELOPE_DEFLATED) else {
            panic!("not deflated: {item:?}")
        };
        assert!(
            packed.as_ref().len() < text.len() / 2,
            "{} of {}",
            packed.as_ref().len(),
            text.len()
        );
        assert!(!item.contains_key("envelope"));
        inflate_envelope(&mut item).unwrap();
        assert_eq!(item, item_with_envelope(&text));
    }

    #[test]
    fn small_envelopes_stay_text() {
        let small = r#"{"id":"evt_1","data":{}}"#;
        let mut item = item_with_envelope(small);
        deflate_envelope(&mut item);
        assert_eq!(item, item_with_envelope(small));
    }

    #[test]
    fn a_corrupt_deflated_envelope_is_a_permanent_error_not_a_panic() {
        let mut item = item_with_envelope("");
        item.remove("envelope");
        item.insert(
            ENVELOPE_DEFLATED.into(),
            AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(vec![0xff, 0x00, 0x13])),
        );
        let err = event_row(item).err().expect("refused");
        assert!(!err.retryable, "{err}");
        assert!(err.to_string().contains(ENVELOPE_DEFLATED), "{err}");
    }
}
