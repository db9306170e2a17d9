//! Every DynamoDB key Switchyard writes or reads is built here, and every
//! tenant-owned key starts from a [`TenantId`] — which only authentication
//! produces — so one tenant's request can never name another's items.
//!
//! Two tables, both with string keys `pk` and `sk`:
//!
//! | table | item | pk | sk |
//! |---|---|---|---|
//! | registry | tenant | `TENANT#{t}` | `TENANT` |
//! | registry | tenant, in the listing of all tenants | `TENANTS` | `TENANT#{t}` |
//! | registry | endpoint | `TENANT#{t}` | `ENDPOINT#{ep}` |
//! | registry | API key (lookup by hash) | `APIKEY#{sha256}` | `APIKEY` |
//! | registry | API key, in its tenant's listing (record + hash) | `TENANT#{t}` | `APIKEY#{key id}` |
//! | deliveries | event | `TENANT#{t}#EVENT#{evt}` | `EVENT` |
//! | deliveries | idempotency key | `TENANT#{t}#IDEMPOTENCY#{sha256}` | `IDEMPOTENCY` |
//! | deliveries | delivery | `TENANT#{t}#DELIVERIES#{group}` | `DELIVERY#{dlv}` |
//! | deliveries | attempt, from the second on | `TENANT#{t}#DELIVERIES#{group}` | `ATTEMPT#{dlv}#{n:06}` |
//! | state | processed marker | `TENANT#{t}#EVENT#{evt}` | `MARKER#{handler}` |
//! | state | workflow run | `TENANT#{t}#EVENT#{evt}` | `RUN#{workflow}` |
//! | state | a workflow's record | `TENANT#{t}#{KIND}#{id}` | `{KIND}` |
//!
//! `{group}` is the event group of the delivery id
//! ([`DeliveryId::event_group`], 16 characters of a hash of tenant and
//! event): every delivery of one event, and their attempts, share one
//! partition, so an event's deliveries are one query of the table
//! (`begins_with(sk, "DELIVERY#")`), and the id alone still names the
//! partition. An id not in the derived shape has no group and no key.
//!
//! Delivery items also carry two index keys: `gsi1pk = TENANT#{t}#ENDPOINT#{ep}`
//! with `gsi1sk = {created_at}#{dlv}` (fixed-width time) (an endpoint's deliveries, newest first
//! when read backwards), and
//! `gsi3pk = TENANT#{t}#STATUS#{state}` with `gsi3sk = {updated_at}#{dlv}`
//! (not for succeeded deliveries: see `deliveries::indexed_by_status`)
//! (fixed-width time) (a tenant's deliveries in one state, newest first when
//! read backwards). Event items of
//! `routing.audit` events carry `gsi1pk = TENANT#{t}#AUDIT#{yyyy-mm-dd}` and
//! `gsi1sk = {received_at}#{evt}` (fixed-width time): the audit trail, per tenant and day,
//! in time order. Every event item carries `evpk = TENANT#{t}#EVENTS` and
//! `evsk = {received_at}#{evt}` (fixed-width time): the `events` index, a
//! tenant's events in time order (`GET /v1/events`).

use switchyard_core::api_key::ApiKeyHash;
use switchyard_core::ids::{DeliveryId, EndpointId, EventId, TenantId};
use switchyard_core::model::DeliveryState;

/// The partition key attribute of both tables.
pub const PK: &str = "pk";
/// The sort key attribute of both tables.
pub const SK: &str = "sk";
/// The index of an endpoint's deliveries, the audit trail, and (registry)
/// the open circuits.
pub const GSI1: &str = "gsi1";
/// [`GSI1`]'s partition key attribute.
pub const GSI1_PK: &str = "gsi1pk";
/// [`GSI1`]'s sort key attribute.
pub const GSI1_SK: &str = "gsi1sk";
/// The index of a tenant's deliveries by state.
pub const GSI3: &str = "gsi3";
/// [`GSI3`]'s partition key attribute.
pub const GSI3_PK: &str = "gsi3pk";
/// [`GSI3`]'s sort key attribute.
pub const GSI3_SK: &str = "gsi3sk";
/// The sparse index of retrying deliveries by when their next attempt is
/// due, across tenants (the reconciler's sweep).
pub const GSI_DUE: &str = "due";
/// [`GSI_DUE`]'s partition key attribute.
pub const DUE_PK: &str = "duepk";
/// [`GSI_DUE`]'s sort key attribute.
pub const DUE_SK: &str = "duesk";
/// The index of a tenant's events by the time they were received.
pub const GSI_EVENTS: &str = "events";
/// [`GSI_EVENTS`]'s partition key attribute.
pub const EVENTS_PK: &str = "evpk";
/// [`GSI_EVENTS`]'s sort key attribute.
pub const EVENTS_SK: &str = "evsk";
/// The TTL attribute of both tables (unix seconds).
pub const TTL: &str = "expires_at";

/// A primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The partition key.
    pub pk: String,
    /// The sort key.
    pub sk: String,
}

fn tenant_pk(t: &TenantId) -> String {
    format!("TENANT#{t}")
}

/// `s` with `%` and `#` escaped: free text can never add a key segment.
fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('#', "%23")
}

/// Keys of the registry table.
pub mod registry {
    use super::*;

    /// What the sort key of every endpoint item starts with.
    pub const ENDPOINT_SK_PREFIX: &str = "ENDPOINT#";
    /// What the sort key of every API key record in a tenant's listing starts with.
    pub const API_KEY_SK_PREFIX: &str = "APIKEY#";
    /// The partition listing every tenant (one item per tenant).
    pub const TENANTS_PK: &str = "TENANTS";
    /// What the sort key of every entry in the listing of tenants starts with.
    pub const TENANT_LISTING_SK_PREFIX: &str = "TENANT#";
    /// The registry's sparse `gsi1` partition of endpoints whose circuit
    /// is open; the monitor counts them without a scan.
    pub const OPEN_CIRCUITS_PK: &str = "CIRCUITS#OPEN";

    /// An open circuit's `gsi1sk`: the time it stays open until (fixed
    /// width, so a key range finds the ones still open), then the ids.
    pub fn open_circuit_sk(until_ms: i64, t: &TenantId, id: &EndpointId) -> String {
        format!("{:015}#{}#{}", until_ms.max(0), t.as_str(), id.as_str())
    }

    /// The `gsi1sk` lower bound of the circuits still open at `now_ms`.
    pub fn open_circuit_after(now_ms: i64) -> String {
        format!("{:015}#", now_ms.max(0))
    }

    /// A tenant's item.
    pub fn tenant(t: &TenantId) -> Key {
        Key {
            pk: tenant_pk(t),
            sk: "TENANT".into(),
        }
    }

    /// A tenant's item in the listing of all tenants (sorted by id).
    pub fn tenant_listing(t: &TenantId) -> Key {
        Key {
            pk: TENANTS_PK.into(),
            sk: format!("{TENANT_LISTING_SK_PREFIX}{t}"),
        }
    }

    /// The partition and sort-key prefix of the listing of all tenants.
    pub fn tenants_listing() -> (&'static str, &'static str) {
        (TENANTS_PK, TENANT_LISTING_SK_PREFIX)
    }

    /// An API key's record in its tenant's listing. The key id is escaped
    /// (it cannot leave the tenant's partition anyway).
    pub fn api_key_record(t: &TenantId, key_id: &str) -> Key {
        Key {
            pk: tenant_pk(t),
            sk: format!("{API_KEY_SK_PREFIX}{}", escape(key_id)),
        }
    }

    /// The partition and sort-key prefix that hold all of a tenant's API key records.
    pub fn api_keys_of(t: &TenantId) -> (String, &'static str) {
        (tenant_pk(t), API_KEY_SK_PREFIX)
    }

    /// An endpoint's item.
    pub fn endpoint(t: &TenantId, ep: &EndpointId) -> Key {
        Key {
            pk: tenant_pk(t),
            sk: format!("{ENDPOINT_SK_PREFIX}{ep}"),
        }
    }

    /// The partition and sort-key prefix that hold all of a tenant's endpoints.
    pub fn endpoints_of(t: &TenantId) -> (String, &'static str) {
        (tenant_pk(t), ENDPOINT_SK_PREFIX)
    }

    /// An endpoint's rate-limit counter for one second (unix seconds).
    pub fn rate_slot(t: &TenantId, ep: &EndpointId, second: i64) -> Key {
        Key {
            pk: format!("{}#RATE#{ep}", tenant_pk(t)),
            sk: second.to_string(),
        }
    }

    /// The counter of operational notices of one window: about one
    /// endpoint, or (`None`) the tenant's as a whole.
    pub fn notice_window(t: &TenantId, about: Option<&EndpointId>, window: i64) -> Key {
        let scope = about.map_or("TENANT", EndpointId::as_str);
        Key {
            pk: format!("{}#NOTICES#{scope}", tenant_pk(t)),
            sk: window.to_string(),
        }
    }

    /// A tenant's ingest counter for one second (unix seconds).
    pub fn ingest_slot(t: &TenantId, second: i64) -> Key {
        Key {
            pk: format!("{}#INGEST", tenant_pk(t)),
            sk: second.to_string(),
        }
    }

    /// The counter of a tenant's endpoints (`QUOTA#ENDPOINTS`) or API keys
    /// (`QUOTA#APIKEYS`), beside the tenant's item; no listing's prefix
    /// matches it.
    pub fn quota_counter(t: &TenantId, what: &str) -> Key {
        Key {
            pk: tenant_pk(t),
            sk: format!("QUOTA#{what}"),
        }
    }

    /// An API key's lookup item, by the key's hash.
    pub fn api_key(hash: &ApiKeyHash) -> Key {
        Key {
            pk: format!("APIKEY#{}", hash.as_str()),
            sk: "APIKEY".into(),
        }
    }
}

/// Keys of the deliveries table.
pub mod deliveries {
    use super::*;

    /// What the sort key of every attempt item starts with.
    pub const ATTEMPT_SK_PREFIX: &str = "ATTEMPT#";
    /// What the sort key of every delivery item starts with.
    pub const DELIVERY_SK_PREFIX: &str = "DELIVERY#";

    /// An event's item.
    pub fn event(t: &TenantId, evt: &EventId) -> Key {
        Key {
            pk: format!("{}#EVENT#{evt}", tenant_pk(t)),
            sk: "EVENT".into(),
        }
    }

    /// An idempotency key's claim; `digest` is the SHA-256 hex of the key.
    pub fn idempotency(t: &TenantId, digest: &str) -> Key {
        Key {
            pk: format!("{}#IDEMPOTENCY#{digest}", tenant_pk(t)),
            sk: "IDEMPOTENCY".into(),
        }
    }

    /// The partition of an event group's deliveries and attempts; `group`
    /// is Crockford base32 (from [`DeliveryId`]), never free text.
    fn group_partition(t: &TenantId, group: &str) -> String {
        format!("{}{group}", delivery_pk_prefix(t))
    }

    /// A delivery's item, in its event's partition. `None` when the id is
    /// not a derived one ([`DeliveryId::event_group`]): no such delivery
    /// can exist.
    pub fn delivery(t: &TenantId, dlv: &DeliveryId) -> Option<Key> {
        Some(Key {
            pk: group_partition(t, dlv.event_group()?),
            sk: format!("{DELIVERY_SK_PREFIX}{dlv}"),
        })
    }

    /// What the partition key of every delivery of a tenant starts with.
    pub fn delivery_pk_prefix(t: &TenantId) -> String {
        format!("{}#DELIVERIES#", tenant_pk(t))
    }

    /// Attempt `n` (1-based) of a delivery, beside it; zero-padded so
    /// attempts sort. `None` as for [`delivery`].
    pub fn attempt(t: &TenantId, dlv: &DeliveryId, n: u32) -> Option<Key> {
        Some(Key {
            pk: delivery(t, dlv)?.pk,
            sk: format!("{}{n:06}", attempts_sk_prefix(dlv)),
        })
    }

    /// What the sort keys of a delivery's attempt items start with.
    pub fn attempts_sk_prefix(dlv: &DeliveryId) -> String {
        format!("{ATTEMPT_SK_PREFIX}{dlv}#")
    }

    /// The partition holding an event's deliveries (their sort keys start
    /// with [`DELIVERY_SK_PREFIX`]). Two events could share a group only
    /// by an 80-bit hash collision; readers check the item's `event_id`.
    pub fn by_event_partition(t: &TenantId, evt: &EventId) -> String {
        group_partition(t, &DeliveryId::group_of(t, evt))
    }

    /// Index keys of a delivery by endpoint (time-ordered).
    pub fn delivery_index(
        t: &TenantId,
        dlv: &DeliveryId,
        ep: &EndpointId,
        created_at_sortable: &str,
    ) -> [(&'static str, String); 2] {
        [
            (GSI1_PK, by_endpoint_partition(t, ep)),
            (GSI1_SK, format!("{created_at_sortable}#{dlv}")),
        ]
    }

    /// The `gsi1` partition of an endpoint's deliveries.
    pub fn by_endpoint_partition(t: &TenantId, ep: &EndpointId) -> String {
        format!("{}#ENDPOINT#{ep}", tenant_pk(t))
    }

    /// A delivery state as it is stored (and serialized).
    pub fn state_name(state: DeliveryState) -> &'static str {
        match state {
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        }
    }

    /// The due index's partitions: deliveries spread over this many by
    /// their id, so that no one partition takes every retry's write.
    pub const DUE_SHARDS: u32 = 8;

    /// The due index partition `shard` (below [`DUE_SHARDS`]).
    pub fn due_partition(shard: u32) -> String {
        format!("DUE#{shard}")
    }

    /// Index keys of a retrying delivery by when its next attempt is due
    /// (`next_attempt_at` as [`switchyard_core::time_util::sortable`] writes it).
    pub fn due_index(dlv: &DeliveryId, next_attempt_sortable: &str) -> [(&'static str, String); 2] {
        let shard = dlv
            .as_str()
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % DUE_SHARDS;
        [
            (DUE_PK, due_partition(shard)),
            (DUE_SK, format!("{next_attempt_sortable}#{dlv}")),
        ]
    }

    /// The `gsi3` partition of a tenant's deliveries in one state.
    pub fn by_status_partition(t: &TenantId, state: DeliveryState) -> String {
        format!("{}#STATUS#{}", tenant_pk(t), state_name(state))
    }

    /// Whether deliveries in `state` are in the by-status index (`gsi3`).
    /// Succeeded ones are not: the index is for the deliveries that need
    /// attention (retrying, failed, skipped), and leaving out the most
    /// common state saves every successful delivery an index write.
    pub fn indexed_by_status(state: DeliveryState) -> bool {
        state != DeliveryState::Succeeded
    }

    /// Index keys of a delivery by state: `updated_at` as
    /// [`switchyard_core::time_util::sortable`] writes it, so a partition sorts by time.
    pub fn status_index(
        t: &TenantId,
        dlv: &DeliveryId,
        state: DeliveryState,
        updated_at_sortable: &str,
    ) -> [(&'static str, String); 2] {
        [
            (GSI3_PK, by_status_partition(t, state)),
            (GSI3_SK, format!("{updated_at_sortable}#{dlv}")),
        ]
    }
}

/// Keys of the state table (the internal track's consumers).
pub mod state {
    use super::*;

    /// One handler's processed marker for one event.
    pub fn marker(t: &TenantId, evt: &EventId, handler: &str) -> Key {
        Key {
            pk: format!("{}#EVENT#{evt}", tenant_pk(t)),
            sk: format!("MARKER#{handler}"),
        }
    }

    /// One workflow's run over one event.
    pub fn run(t: &TenantId, evt: &EventId, workflow: &str) -> Key {
        Key {
            pk: format!("{}#EVENT#{evt}", tenant_pk(t)),
            sk: format!("RUN#{workflow}"),
        }
    }

    /// A record the workflows keep (`STOCK`, `sku-1`). `kind` and `id` come
    /// from code and event data: a `#` in them is escaped, so no record's
    /// key can reach into another partition.
    pub fn record(t: &TenantId, kind: &str, id: &str) -> Key {
        Key {
            pk: format!("{}#{}#{}", tenant_pk(t), escape(kind), escape(id)),
            sk: escape(kind),
        }
    }
}

/// The index keys of an event in its tenant's listing of events
/// ([`GSI_EVENTS`]): one partition per tenant, sorted by `received_at` (as
/// [`switchyard_core::time_util::sortable`] writes it), then the id.
pub fn events_index(t: &TenantId, evt: &EventId, received_at_sortable: &str) -> [(&'static str, String); 2] {
    [
        (EVENTS_PK, events_partition(t)),
        (EVENTS_SK, format!("{received_at_sortable}#{evt}")),
    ]
}

/// The [`GSI_EVENTS`] partition of a tenant's events.
pub fn events_partition(t: &TenantId) -> String {
    format!("{}#EVENTS", tenant_pk(t))
}

/// What the table's partition key of every event item of a tenant starts with.
pub fn event_pk_prefix(t: &TenantId) -> String {
    format!("{}#EVENT#", tenant_pk(t))
}

/// The audit trail's index keys of an event received at `received_at`
/// (as [`switchyard_core::time_util::sortable`] writes it).
pub fn audit_index(t: &TenantId, evt: &EventId, received_at_sortable: &str) -> [(&'static str, String); 2] {
    let day = received_at_sortable.get(..10).unwrap_or(received_at_sortable);
    [
        (GSI1_PK, audit_partition(t, day)),
        (GSI1_SK, format!("{received_at_sortable}#{evt}")),
    ]
}

/// The audit trail's index partition of one tenant and one UTC day
/// (`yyyy-mm-dd`).
pub fn audit_partition(t: &TenantId, day: &str) -> String {
    format!("{}#AUDIT#{day}", tenant_pk(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let ep = EndpointId::parse("ep_1").unwrap();
        let evt = EventId::parse("evt_1").unwrap();
        let dlv = DeliveryId::derive(&t("a"), &evt, &ep);
        let group = DeliveryId::group_of(&t("a"), &evt);
        assert_eq!(
            registry::tenant(&t("a")),
            Key {
                pk: "TENANT#a".into(),
                sk: "TENANT".into()
            }
        );
        assert_eq!(registry::endpoint(&t("a"), &ep).sk, "ENDPOINT#ep_1");
        assert_eq!(registry::endpoints_of(&t("a")), ("TENANT#a".to_string(), "ENDPOINT#"));
        assert_eq!(deliveries::event(&t("a"), &evt).pk, "TENANT#a#EVENT#evt_1");
        let claim = deliveries::idempotency(&t("t1"), "ab");
        assert_eq!(
            (claim.pk.as_str(), claim.sk.as_str()),
            ("TENANT#t1#IDEMPOTENCY#ab", "IDEMPOTENCY")
        );
        let key = deliveries::delivery(&t("a"), &dlv).unwrap();
        assert_eq!(key.pk, format!("TENANT#a#DELIVERIES#{group}"));
        assert_eq!(key.sk, format!("DELIVERY#{dlv}"));
        let third = deliveries::attempt(&t("a"), &dlv, 3).unwrap();
        assert_eq!(third.pk, key.pk, "attempts live beside their delivery");
        assert_eq!(third.sk, format!("ATTEMPT#{dlv}#000003"));
        assert!(third.sk.starts_with(&deliveries::attempts_sk_prefix(&dlv)));
        assert!(!third.sk.starts_with(deliveries::DELIVERY_SK_PREFIX));
        assert!(key.sk.starts_with(deliveries::DELIVERY_SK_PREFIX));
        assert!(deliveries::attempt(&t("a"), &dlv, 10).unwrap().sk > deliveries::attempt(&t("a"), &dlv, 9).unwrap().sk);
        // An event's deliveries are its group's partition.
        assert_eq!(deliveries::by_event_partition(&t("a"), &evt), key.pk);
        let other = DeliveryId::derive(&t("a"), &EventId::parse("evt_2").unwrap(), &ep);
        assert_ne!(deliveries::delivery(&t("a"), &other).unwrap().pk, key.pk);
        assert!(key.pk.starts_with(&deliveries::delivery_pk_prefix(&t("a"))));
        let idx = deliveries::delivery_index(&t("a"), &dlv, &ep, "2026-01-01T00:00:00Z");
        assert_eq!(idx[0], (GSI1_PK, "TENANT#a#ENDPOINT#ep_1".to_string()));
        assert_eq!(idx[1], (GSI1_SK, format!("2026-01-01T00:00:00Z#{dlv}")));
        let idx = deliveries::status_index(&t("a"), &dlv, DeliveryState::Failed, "2026-01-01T00:00:00.000Z");
        assert_eq!(idx[0], (GSI3_PK, "TENANT#a#STATUS#failed".to_string()));
        assert_eq!(idx[1], (GSI3_SK, format!("2026-01-01T00:00:00.000Z#{dlv}")));
    }

    #[test]
    fn an_id_not_derived_has_no_key() {
        let odd = DeliveryId::parse("dlv_1").unwrap();
        assert_eq!(deliveries::delivery(&t("a"), &odd), None);
        assert_eq!(deliveries::attempt(&t("a"), &odd, 2), None);
    }

    #[test]
    fn tenants_never_share_a_delivery_partition() {
        let ep = EndpointId::parse("ep_1").unwrap();
        let evt = EventId::parse("evt_1").unwrap();
        // The same delivery id read as another tenant's names another partition.
        let dlv = DeliveryId::derive(&t("a"), &evt, &ep);
        let (a, ab) = (
            deliveries::delivery(&t("a"), &dlv).unwrap(),
            deliveries::delivery(&t("ab"), &dlv).unwrap(),
        );
        assert_ne!(a.pk, ab.pk);
        assert!(!ab.pk.starts_with(&deliveries::delivery_pk_prefix(&t("a"))));
    }

    #[test]
    fn state_names_are_the_serialized_states() {
        for state in [
            DeliveryState::Succeeded,
            DeliveryState::Retrying,
            DeliveryState::Failed,
            DeliveryState::Skipped,
        ] {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json.as_str(), Some(deliveries::state_name(state)));
        }
    }

    #[test]
    fn registry_listing_keys() {
        assert_eq!(
            registry::tenant_listing(&t("a")),
            Key {
                pk: "TENANTS".into(),
                sk: "TENANT#a".into()
            }
        );
        assert_eq!(registry::tenants_listing(), ("TENANTS", "TENANT#"));
        assert_eq!(registry::api_key_record(&t("a"), "key_1").pk, "TENANT#a");
        assert_eq!(registry::api_key_record(&t("a"), "key_1").sk, "APIKEY#key_1");
        assert_eq!(
            registry::api_key_record(&t("a"), "k#ENDPOINT#x").sk,
            "APIKEY#k%23ENDPOINT%23x"
        );
        assert_eq!(registry::api_keys_of(&t("a")), ("TENANT#a".to_string(), "APIKEY#"));
    }

    #[test]
    fn state_keys_are_tenant_scoped_and_escaped() {
        let evt = EventId::parse("evt_1").unwrap();
        assert_eq!(state::marker(&t("a"), &evt, "welcome").sk, "MARKER#welcome");
        assert_eq!(state::run(&t("a"), &evt, "order").pk, "TENANT#a#EVENT#evt_1");
        assert_eq!(state::record(&t("a"), "STOCK", "sku-1").pk, "TENANT#a#STOCK#sku-1");
        assert_eq!(
            state::record(&t("a"), "STOCK", "x#TENANT#b").pk,
            "TENANT#a#STOCK#x%23TENANT%23b"
        );
        let idx = events_index(&t("a"), &evt, "2026-11-29T10:00:00.000Z");
        assert_eq!(idx[0], (EVENTS_PK, "TENANT#a#EVENTS".to_string()));
        assert_eq!(idx[1], (EVENTS_SK, "2026-11-29T10:00:00.000Z#evt_1".to_string()));
        assert!(
            deliveries::event(&t("a"), &evt)
                .pk
                .starts_with(&event_pk_prefix(&t("a")))
        );
        assert!(
            !deliveries::event(&t("ab"), &evt)
                .pk
                .starts_with(&event_pk_prefix(&t("a")))
        );
        let idx = audit_index(&t("a"), &evt, "2026-11-29T10:00:00Z");
        assert_eq!(idx[0].1, "TENANT#a#AUDIT#2026-11-29");
        assert_eq!(idx[1].1, "2026-11-29T10:00:00Z#evt_1");
    }

    #[test]
    fn tenants_never_share_a_key() {
        // Ids cannot contain '#', so no tenant's key is a prefix of another's items.
        let evt = EventId::parse("evt_1").unwrap();
        assert_ne!(deliveries::event(&t("a"), &evt), deliveries::event(&t("ab"), &evt));
        assert!(TenantId::parse("a#EVENT").is_err());
        let (pk_a, _) = registry::endpoints_of(&t("a"));
        let (pk_ab, _) = registry::endpoints_of(&t("ab"));
        assert_ne!(pk_a, pk_ab);
    }
}
