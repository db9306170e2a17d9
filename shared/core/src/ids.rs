//! Identifiers, parsed once at the edge and trusted afterwards.
//!
//! Every id is a newtype over a `String` that can only be built through a
//! validating constructor (or `serde`, which goes through the same check), so
//! a `TenantId` in a function signature is a tenant id, not any string. None of
//! them may contain `#`, which the DynamoDB key layout (`switchyard_aws::dynamo::keys`) uses as its separator.

use sha2::{Digest, Sha256};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    /// What was being parsed, e.g. `tenant id`.
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $allowed:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(s: impl Into<String>) -> Result<Self, $crate::ids::IdError> {
                let s = s.into();
                if s.is_empty() {
                    return Err($crate::ids::IdError { kind: $kind, reason: "must not be empty" });
                }
                if s.len() > $max {
                    return Err($crate::ids::IdError { kind: $kind, reason: concat!("longer than ", stringify!($max), " characters") });
                }
                let allowed: fn(char) -> bool = $allowed;
                if !s.chars().all(allowed) {
                    return Err($crate::ids::IdError { kind: $kind, reason: "contains a character outside the allowed set" });
                }
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ids::IdError;
            fn try_from(s: String) -> Result<Self, $crate::ids::IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

pub(crate) use string_id;

fn slug_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn client_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

string_id!(
    /// A tenant: 1–64 characters of `[A-Za-z0-9_-]`. Always taken from
    /// authentication, never from a request body.
    TenantId, "tenant id", 64, slug_char
);
string_id!(
    /// An event's id: generated as `evt_<ULID>`, or supplied by the client
    /// (1–128 characters of `[A-Za-z0-9_.:-]`), in which case it is also the
    /// idempotency key.
    EventId, "event id", 128, client_id_char
);
string_id!(
    /// A registered endpoint: `ep_<ULID>`.
    EndpointId, "endpoint id", 64, slug_char
);
string_id!(
    /// One (event, endpoint) delivery: derived from both, so a fan-out that
    /// runs twice names the same delivery twice; it also names the event's
    /// group ([`DeliveryId::event_group`]), so it alone finds the delivery.
    DeliveryId, "delivery id", 64, slug_char
);

impl EventId {
    /// A new event id: `evt_` and a ULID.
    pub fn generate() -> Self {
        Self(format!("evt_{}", ulid()))
    }
}

impl EndpointId {
    /// A new endpoint id: `ep_` and a ULID.
    pub fn generate() -> Self {
        Self(format!("ep_{}", ulid()))
    }
}

/// The `webhook-id` of `event`'s webhooks: `msg_` and the event's group
/// ([`DeliveryId::group_of`], a hash of tenant and event id). Unique per
/// tenant and event, where the producer's event id is unique only within
/// its tenant; the same for every attempt, endpoint and resend of the event,
/// so that receivers deduplicate on it, as Standard Webhooks intends.
pub fn webhook_id(tenant: &TenantId, event: &EventId) -> String {
    format!("msg_{}", DeliveryId::group_of(tenant, event))
}

impl DeliveryId {
    /// Every derived id starts with this.
    const PREFIX: &'static str = "dlv_";
    /// Characters of each of the two hashes of a derived id.
    const HASH_CHARS: usize = 16;

    /// The delivery of `event` to `endpoint` for `tenant`: deterministic.
    ///
    /// `dlv_`, then the event's group ([`Self::group_of`]: shared by every
    /// delivery of the event), then 16 characters of a hash of all three:
    /// 36 characters, Crockford base32 after the prefix.
    pub fn derive(tenant: &TenantId, event: &EventId, endpoint: &EndpointId) -> Self {
        let own = hash80(&[tenant.as_str(), event.as_str(), endpoint.as_str()]);
        Self(format!("{}{}{own}", Self::PREFIX, Self::group_of(tenant, event)))
    }

    /// The group of `event`'s deliveries: 16 Crockford base32 characters
    /// (80 bits) of a hash of (tenant, event). The deliveries table keeps
    /// an event's deliveries in one partition named by it.
    pub fn group_of(tenant: &TenantId, event: &EventId) -> String {
        hash80(&[tenant.as_str(), event.as_str()])
    }

    /// The event group this id was derived under; `None` for an id not in
    /// the derived shape (one typed by hand), which names no delivery.
    pub fn event_group(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(Self::PREFIX)?;
        let derived = rest.len() == 2 * Self::HASH_CHARS && rest.bytes().all(|b| CROCKFORD.contains(&b));
        derived.then(|| &rest[..Self::HASH_CHARS])
    }
}

/// 80 bits of a SHA-256 of `parts` (each prefixed with its length, so
/// ("ab", "c") and ("a", "bc") differ) as 16 Crockford base32 characters.
fn hash80(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes[6..].copy_from_slice(&digest[..10]);
    base32(u128::from_be_bytes(bytes), 16)
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 128 bits as 26 Crockford base32 characters (the ULID text form).
fn crockford(value: u128) -> String {
    base32(value, 26)
}

/// The low `5 × chars` bits of `value` as `chars` Crockford base32
/// characters, most significant first.
fn base32(value: u128, chars: usize) -> String {
    (0..chars)
        .map(|i| {
            let shift = 5 * (chars - 1 - i);
            CROCKFORD[((value >> shift) & 0x1f) as usize] as char
        })
        .collect()
}

/// Fills `buf` with random bytes from the operating system.
///
/// `getrandom` only fails where the OS has no entropy source at all, which
/// no platform Switchyard runs on lacks; treat that as the bug it would be.
#[allow(clippy::expect_used, reason = "no supported platform lacks an OS random source")]
pub(crate) fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// A ULID: 48 bits of milliseconds since the epoch, 80 random bits. Sorts by
/// creation time.
pub fn ulid() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ulid_from(ms, {
        let mut r = [0u8; 10];
        random_bytes(&mut r);
        r
    })
}

fn ulid_from(ms: u64, random: [u8; 10]) -> String {
    let mut value = u128::from(ms & 0xffff_ffff_ffff) << 80;
    let mut rnd = [0u8; 16];
    rnd[6..].copy_from_slice(&random);
    value |= u128::from_be_bytes(rnd);
    crockford(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_validated() {
        assert!(TenantId::parse("acme-corp_1").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a#b").is_err());
        assert!(TenantId::parse("a b").is_err());
        assert!(TenantId::parse("x".repeat(65)).is_err());
        assert!(TenantId::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: Result<TenantId, _> = serde_json::from_str("\"acme\"");
        assert_eq!(ok.unwrap().as_str(), "acme");
        let bad: Result<TenantId, _> = serde_json::from_str("\"ac#me\"");
        assert!(bad.is_err());
    }

    #[test]
    fn ulid_layout_and_order() {
        assert_eq!(ulid_from(0, [0; 10]), "00000000000000000000000000");
        assert_eq!(ulid_from(1, [0; 10]), "0000000001".to_string() + &"0".repeat(16));
        assert_eq!(ulid_from(0, [0xff; 10]), "0000000000ZZZZZZZZZZZZZZZZ");
        // Text order follows time order.
        assert!(ulid_from(1_700_000_000_000, [0xff; 10]) < ulid_from(1_700_000_000_001, [0; 10]));
        let id = EventId::generate();
        assert!(id.as_str().starts_with("evt_") && id.as_str().len() == 30);
        assert_ne!(EventId::generate(), EventId::generate());
    }

    #[test]
    fn delivery_ids_are_deterministic_and_distinct() {
        let t = TenantId::parse("t1").unwrap();
        let e = EventId::parse("evt_1").unwrap();
        let a = EndpointId::parse("ep_a").unwrap();
        let b = EndpointId::parse("ep_b").unwrap();
        assert_eq!(DeliveryId::derive(&t, &e, &a), DeliveryId::derive(&t, &e, &a));
        assert_ne!(DeliveryId::derive(&t, &e, &a), DeliveryId::derive(&t, &e, &b));
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        let x = DeliveryId::derive(&TenantId::parse("ab").unwrap(), &EventId::parse("c").unwrap(), &a);
        let y = DeliveryId::derive(&TenantId::parse("a").unwrap(), &EventId::parse("bc").unwrap(), &a);
        assert_ne!(x, y);
        assert_ne!(x.event_group(), y.event_group());
        assert!(DeliveryId::parse(x.as_str()).is_ok());
    }

    #[test]
    fn delivery_ids_carry_their_event_group() {
        let t = TenantId::parse("t1").unwrap();
        let (e, f) = (EventId::parse("evt_1").unwrap(), EventId::parse("evt_2").unwrap());
        let (a, b) = (EndpointId::parse("ep_a").unwrap(), EndpointId::parse("ep_b").unwrap());
        let (ea, eb) = (DeliveryId::derive(&t, &e, &a), DeliveryId::derive(&t, &e, &b));
        let group = DeliveryId::group_of(&t, &e);
        assert_eq!(group, DeliveryId::group_of(&t, &e), "deterministic");
        assert_eq!(ea.event_group(), Some(group.as_str()));
        assert_eq!(eb.event_group(), Some(group.as_str()), "one group per event");
        // Another event, or the same event id of another tenant: another group.
        assert_ne!(DeliveryId::derive(&t, &f, &a).event_group(), Some(group.as_str()));
        let u = TenantId::parse("t2").unwrap();
        assert_ne!(DeliveryId::group_of(&u, &e), group);
        assert_ne!(DeliveryId::derive(&u, &e, &a).event_group(), Some(group.as_str()));
        // Shape: dlv_ + 16 + 16 Crockford characters, under the 64 limit.
        for id in [&ea, &eb] {
            let s = id.as_str();
            assert_eq!(s.len(), 36);
            assert!(s.starts_with("dlv_"));
            assert!(s[4..].bytes().all(|c| CROCKFORD.contains(&c)), "{s}");
            assert!(s[4..].starts_with(&group));
        }
        assert_eq!(group.len(), 16);
        // Pinned: ids already stored must keep naming their items, and the
        // sample delivery task (events/delivery-delivery-tasks.json) carries this one.
        let sample = DeliveryId::derive(
            &TenantId::parse("demo").unwrap(),
            &EventId::parse("evt_01JDSAMPLE0000000000000001").unwrap(),
            &EndpointId::parse("ep_sample_01").unwrap(),
        );
        assert_eq!(sample.as_str(), "dlv_MFV0YSPH1M4C89XFFDKNC2CY3QHRD9WJ");
    }

    #[test]
    fn ids_not_in_the_derived_shape_have_no_group() {
        let base = DeliveryId::derive(
            &TenantId::parse("t1").unwrap(),
            &EventId::parse("evt_1").unwrap(),
            &EndpointId::parse("ep_a").unwrap(),
        );
        let s = base.as_str();
        let odd = [
            "dlv_1".to_string(),
            "dlv_absent".to_string(),
            format!("x{}", &s[1..]),           // another prefix
            s[..s.len() - 1].to_string(),      // one short
            format!("{s}0"),                   // one long
            s.to_lowercase(),                  // not Crockford's alphabet
            format!("{}U", &s[..s.len() - 1]), // U is not a Crockford digit
            format!("dlv_{}", "0".repeat(26)), // the old 26-character shape
        ];
        for raw in odd {
            let id = DeliveryId::parse(&raw).unwrap();
            assert_eq!(id.event_group(), None, "{raw}");
        }
    }

    #[test]
    fn base32_takes_the_low_bits() {
        assert_eq!(base32(0, 16), "0".repeat(16));
        assert_eq!(base32((1 << 80) - 1, 16), "Z".repeat(16));
        assert_eq!(base32(1 << 80, 16), "0".repeat(16), "bit 80 is out of range");
        assert_eq!(base32(33, 2), "11");
    }
}
