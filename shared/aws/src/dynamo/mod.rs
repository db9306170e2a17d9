//! The registry, the event store and the delivery log over DynamoDB.
//!
//! Keys come from [`keys`] only; items are written with
//! `serde_dynamo` from the domain's own types plus their keys, and read back
//! through the same types (so a corrupt item is an error, not a panic).

mod deliveries;
mod events;
pub mod keys;
mod rate;
mod registry;
mod state;

pub use deliveries::DynamoDeliveryLog;
pub use events::{
    AUDIT_DAY_CURSOR, DynamoEventStore, MAX_AUDIT_DAYS, MAX_AUDIT_DAYS_PER_PAGE, MAX_EVENTS_EVALUATED_PER_PAGE,
};
pub use registry::{DELIVERY_UPDATES, DELIVERY_UPDATES_LEADING_KEYS, DynamoRegistry, SEALED_SECRETS};
pub use state::{DynamoStateStore, RunView};
pub use switchyard_core::model::{
    ApiKeyRecord, AuditPage, EndpointStats, ListError, Page, RegistrationError, TenantRecord,
};

use crate::error::port_error;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keys::Key;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use switchyard_core::PortError;

/// A DynamoDB item: attribute names and values.
pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn key_item(key: &Key) -> Item {
    HashMap::from([(keys::PK.to_string(), s(&key.pk)), (keys::SK.to_string(), s(&key.sk))])
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<Item, PortError> {
    serde_dynamo::to_item(value).map_err(|e| PortError::permanent(format!("encoding an item: {e}")))
}

pub(crate) fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, PortError> {
    serde_dynamo::from_item(item).map_err(|e| PortError::permanent(format!("decoding an item: {e}")))
}

/// Reads one item and decodes it; `None` when absent.
pub(crate) async fn get_item<T: for<'de> Deserialize<'de>>(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &Key,
    consistent: bool,
    op: &str,
) -> Result<Option<T>, PortError> {
    get_raw_item(client, table, key, consistent, op)
        .await?
        .map(from_item)
        .transpose()
}

/// Reads one item as DynamoDB stores it; `None` when absent.
pub(crate) async fn get_raw_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &Key,
    consistent: bool,
    op: &str,
) -> Result<Option<Item>, PortError> {
    let out = client
        .get_item()
        .table_name(table)
        .set_key(Some(key_item(key)))
        .consistent_read(consistent)
        .send()
        .await
        .map_err(|e| port_error(op, e))?;
    Ok(out.item)
}

/// What a conditional `PutItem` ([`put_if`]) did.
#[derive(Debug, PartialEq)]
pub(crate) enum Put {
    Written,
    /// Its condition did not hold; the item in the way, when DynamoDB
    /// returned it.
    Refused(Option<Item>),
}

/// Sends `request` (a `PutItem` with its table and condition) for `item`.
///
/// An item in the way that is exactly `item` is this write: it landed, its
/// answer was lost, and the SDK's retry found it in the way. That is
/// [`Put::Written`], not a refusal.
pub(crate) async fn put_if(request: PutItemFluentBuilder, item: Item, op: &str) -> Result<Put, PortError> {
    let result = request
        .set_item(Some(item.clone()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .send()
        .await;
    match result {
        Ok(_) => Ok(Put::Written),
        Err(e) => match e.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(c)) => match c.item() {
                Some(stored) if *stored == item => Ok(Put::Written),
                stored => Ok(Put::Refused(stored.cloned())),
            },
            _ => Err(port_error(op, e)),
        },
    }
}

/// The outcome of a conditional write: `Ok(true)` if it applied,
/// `Ok(false)` if its condition did not hold, an error otherwise.
pub(crate) fn applied<O, E>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>>,
    op: &str,
) -> Result<bool, PortError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(port_error(op, e)),
    }
}

/// Puts one item, unconditionally.
pub(crate) async fn put_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    item: Item,
    op: &str,
) -> Result<(), PortError> {
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| port_error(op, e))?;
    Ok(())
}

/// `value` with its key and a `kind` attribute added.
pub(crate) fn item_with_key<T: Serialize>(value: &T, key: &Key, kind: &str) -> Result<Item, PortError> {
    let mut item = to_item(value)?;
    item.extend(key_item(key));
    item.insert("kind".into(), s(kind));
    Ok(item)
}

/// The most items one page holds (a `limit` is clamped to `1..=MAX_PAGE`).
pub const MAX_PAGE: usize = 100;

/// The longest cursor accepted (ours are far shorter).
const MAX_CURSOR_LEN: usize = 4096;

/// What one attribute of a cursor must hold for the listing at hand.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect<'a> {
    /// Exactly this (the partition being queried).
    Is(&'a str),
    StartsWith(&'a str),
    /// Within the key condition's own `BETWEEN` bounds.
    Between(&'a str, &'a str),
    /// Any string (a sort key the query does not bound).
    Any,
}

impl Expect<'_> {
    fn admits(self, v: &str) -> bool {
        match self {
            Self::Is(x) => v == x,
            Self::StartsWith(p) => v.starts_with(p),
            Self::Between(lo, hi) => lo <= v && v <= hi,
            Self::Any => true,
        }
    }
}

/// A cursor: base64url (no padding) of the JSON of a DynamoDB key (string
/// attributes only).
pub(crate) fn encode_cursor(key: &Item) -> Result<String, PortError> {
    let mut map = BTreeMap::new();
    for (name, value) in key {
        match value {
            AttributeValue::S(v) => map.insert(name.as_str(), v.as_str()),
            _ => {
                return Err(PortError::permanent(format!(
                    "a listing's key attribute `{name}` is not a string"
                )));
            }
        };
    }
    let json = serde_json::to_vec(&map).map_err(|e| PortError::permanent(format!("encoding a cursor: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor into an `ExclusiveStartKey`. It must name exactly the
/// attributes of `expected`, each holding what its [`Expect`] admits: a
/// cursor from another tenant's (or another partition's) listing is refused,
/// never followed.
pub(crate) fn decode_cursor(cursor: &str, expected: &[(&str, Expect<'_>)]) -> Result<Item, ListError> {
    if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
        return Err(ListError::BadCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| ListError::BadCursor)?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&bytes).map_err(|_| ListError::BadCursor)?;
    if map.len() != expected.len() {
        return Err(ListError::BadCursor);
    }
    for (name, expect) in expected {
        match map.get(*name) {
            Some(v) if expect.admits(v) => {}
            _ => return Err(ListError::BadCursor),
        }
    }
    Ok(map.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
}

/// The cursor that resumes after `item`: its `key_names` attributes.
pub(crate) fn cursor_after(item: &Item, key_names: &[&str]) -> Result<String, PortError> {
    let mut key = Item::new();
    for name in key_names {
        let value = item
            .get(*name)
            .ok_or_else(|| PortError::permanent(format!("a listed item has no `{name}`")))?;
        key.insert((*name).to_string(), value.clone());
    }
    encode_cursor(&key)
}

/// Runs one page of `query` (its key condition, index and order already
/// set): at most `limit` (clamped to `1..=MAX_PAGE`) items from `start` on.
/// `key_names` are the attributes of the query's keys (the table's, and the
/// index's if any). One item more than the page is read, so the last page
/// has no `next`.
pub(crate) async fn query_page(
    query: QueryFluentBuilder,
    limit: usize,
    start: Option<Item>,
    key_names: &[&str],
    op: &str,
) -> Result<Page<Item>, PortError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let out = query
        .limit((limit + 1) as i32)
        .set_exclusive_start_key(start)
        .send()
        .await
        .map_err(|e| port_error(op, e))?;
    let mut items = out.items.unwrap_or_default();
    let next = if items.len() > limit {
        items.truncate(limit);
        match items.last() {
            Some(last) => Some(cursor_after(last, key_names)?),
            None => None,
        }
    } else {
        // Fewer items than asked for: more exist only if DynamoDB stopped
        // early (1 MB per page) and said where.
        out.last_evaluated_key
            .filter(|k| !k.is_empty())
            .map(|k| encode_cursor(&k))
            .transpose()?
    };
    Ok(Page { items, next })
}

/// The most keys one `BatchGetItem` takes.
const BATCH_GET_MAX: usize = 100;

/// The base-table items of index entries, in the entries' order; entries
/// whose item is gone meanwhile (deleted, expired) are skipped.
///
/// The indexes of the deliveries table project keys only: each index write
/// then costs one write unit of a small entry, and an update that leaves an
/// index's keys alone costs that index nothing, where a projection of whole
/// items rewrote them all on every change. Listings read the page's items
/// here, in batches of 100 (eventually consistent, like the index).
/// `projection`: only these attributes (names, not placeholders).
pub(crate) async fn hydrate(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    entries: &[Item],
    projection: Option<&[&str]>,
    op: &str,
) -> Result<Vec<Item>, PortError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let key_of = |i: &Item| -> Option<(String, String)> {
        Some((
            i.get(keys::PK)?.as_s().ok()?.clone(),
            i.get(keys::SK)?.as_s().ok()?.clone(),
        ))
    };
    let wanted: Vec<(String, String)> = entries.iter().filter_map(key_of).collect();
    let mut found: HashMap<(String, String), Item> = HashMap::new();
    for chunk in wanted.chunks(BATCH_GET_MAX) {
        let mut keys_and_attributes = KeysAndAttributes::builder().set_keys(Some(
            chunk
                .iter()
                .map(|(pk, sk)| HashMap::from([(keys::PK.to_string(), s(pk)), (keys::SK.to_string(), s(sk))]))
                .collect(),
        ));
        if let Some(names) = projection {
            // The keys too, to put the items back in order.
            let all: Vec<&str> = [keys::PK, keys::SK].into_iter().chain(names.iter().copied()).collect();
            keys_and_attributes = keys_and_attributes
                .projection_expression((0..all.len()).map(|i| format!("#a{i}")).collect::<Vec<_>>().join(", "));
            for (i, name) in all.iter().enumerate() {
                keys_and_attributes = keys_and_attributes.expression_attribute_names(format!("#a{i}"), *name);
            }
        }
        let mut request = Some(HashMap::from([(
            table.to_string(),
            keys_and_attributes.build().map_err(build_error)?,
        )]));
        // Unprocessed keys (throttling, 16 MB) are asked for again, with a
        // short backoff, a bounded number of times.
        for round in 0..8u32 {
            let Some(req) = request.take().filter(|r| !r.is_empty()) else {
                break;
            };
            if round > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << round.min(5))).await;
            }
            let out = client
                .batch_get_item()
                .set_request_items(Some(req))
                .send()
                .await
                .map_err(|e| port_error(op, e))?;
            for item in out.responses.unwrap_or_default().remove(table).unwrap_or_default() {
                if let Some(k) = key_of(&item) {
                    found.insert(k, item);
                }
            }
            request = out.unprocessed_keys.filter(|u| !u.is_empty());
        }
        if request.is_some() {
            return Err(PortError::transient(format!(
                "{op}: keys left unprocessed after retries"
            )));
        }
    }
    Ok(wanted.iter().filter_map(|k| found.remove(k)).collect())
}

/// Runs a transaction: `Ok(true)` if it applied, `Ok(false)` if one of its
/// conditions did not hold. A cancellation for any other reason (a
/// conflicting transaction, throttling) is transient.
///
/// Each call carries its own `ClientRequestToken`, so the SDK's retry of a
/// transaction that committed but whose answer was lost succeeds instead of
/// finding its own write in its way (DynamoDB remembers a token for ten
/// minutes; moto ignores it).
pub(crate) async fn transact(
    client: &aws_sdk_dynamodb::Client,
    items: Vec<TransactWriteItem>,
    op: &str,
) -> Result<bool, PortError> {
    match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .client_request_token(switchyard_core::ids::ulid())
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                let codes: Vec<&str> = c.cancellation_reasons().iter().filter_map(|r| r.code()).collect();
                if codes.contains(&"ConditionalCheckFailed") {
                    Ok(false)
                } else {
                    Err(PortError::transient(format!("{op}: transaction cancelled ({codes:?})")))
                }
            }
            _ => Err(port_error(op, e)),
        },
    }
}

/// A transaction's part-builder error (a required field missing: a bug).
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::permanent(format!("building a request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), s(*v))).collect()
    }

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_partition() {
        let k = key(&[("pk", "TENANT#a"), ("sk", "ENDPOINT#ep_1")]);
        let c = encode_cursor(&k).unwrap();
        assert!(!c.contains('=') && !c.contains('+') && !c.contains('/'));
        let expect_a = [("pk", Expect::Is("TENANT#a")), ("sk", Expect::StartsWith("ENDPOINT#"))];
        assert_eq!(decode_cursor(&c, &expect_a).unwrap(), k);
        // Another tenant's listing, another prefix, extra or missing attributes.
        let expect_b = [("pk", Expect::Is("TENANT#b")), ("sk", Expect::StartsWith("ENDPOINT#"))];
        assert!(matches!(decode_cursor(&c, &expect_b), Err(ListError::BadCursor)));
        let other_prefix = [("pk", Expect::Is("TENANT#a")), ("sk", Expect::StartsWith("APIKEY#"))];
        assert!(matches!(decode_cursor(&c, &other_prefix), Err(ListError::BadCursor)));
        let more = [
            ("pk", Expect::Is("TENANT#a")),
            ("sk", Expect::Any),
            ("gsi1pk", Expect::Any),
        ];
        assert!(matches!(decode_cursor(&c, &more), Err(ListError::BadCursor)));
        let fewer = [("pk", Expect::Is("TENANT#a"))];
        assert!(matches!(decode_cursor(&c, &fewer), Err(ListError::BadCursor)));
        let window = [
            ("pk", Expect::Is("TENANT#a")),
            ("sk", Expect::Between("ENDPOINT#a", "ENDPOINT#b")),
        ];
        assert!(matches!(decode_cursor(&c, &window), Err(ListError::BadCursor)));
    }

    #[test]
    fn garbage_is_a_bad_cursor() {
        let expect = [("pk", Expect::Any), ("sk", Expect::Any)];
        for c in ["", "!!!", "e30", "bnVsbA", &"A".repeat(5000)] {
            assert!(matches!(decode_cursor(c, &expect), Err(ListError::BadCursor)), "{c}");
        }
        // A number where a string belongs.
        let c = URL_SAFE_NO_PAD.encode(br#"{"pk":1,"sk":"x"}"#);
        assert!(matches!(decode_cursor(&c, &expect), Err(ListError::BadCursor)));
        let n = Item::from([("pk".to_string(), AttributeValue::N("1".into()))]);
        assert!(encode_cursor(&n).is_err());
    }
}
