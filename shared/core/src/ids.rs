//! Identifiers, parsed once at the edge and trusted afterwards.
//!
//! Every id is a newtype over a `String` that can only be built through a
//! validating constructor (or `serde`, which goes through the same check), so
//! a `TenantId` in a function signature is a tenant id, not any string. None of
//! them may contain `#`, which [`crate::keys`] uses as its separator.

use sha2::{Digest, Sha256};

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
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
    /// runs twice names the same delivery twice.
    DeliveryId, "delivery id", 64, slug_char
);

impl EventId {
    pub fn generate() -> Self {
        Self(format!("evt_{}", ulid()))
    }
}

impl EndpointId {
    pub fn generate() -> Self {
        Self(format!("ep_{}", ulid()))
    }
}

impl DeliveryId {
    /// The delivery of `event` to `endpoint` for `tenant`: deterministic.
    pub fn derive(tenant: &TenantId, event: &EventId, endpoint: &EndpointId) -> Self {
        let mut h = Sha256::new();
        for part in [tenant.as_str(), event.as_str(), endpoint.as_str()] {
            h.update((part.len() as u32).to_be_bytes());
            h.update(part.as_bytes());
        }
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(format!("dlv_{}", crockford(u128::from_be_bytes(bytes))))
    }
}

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// 128 bits as 26 Crockford base32 characters (the ULID text form).
fn crockford(value: u128) -> String {
    (0..26)
        .map(|i| {
            let shift = 125 - 5 * i;
            CROCKFORD[((value >> shift) & 0x1f) as usize] as char
        })
        .collect()
}

/// Fills `buf` with random bytes from the operating system.
///
/// `getrandom` only fails where the OS has no entropy source at all, which
/// no platform Switchyard runs on lacks; treat that as the bug it would be.
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
        assert!(DeliveryId::parse(x.as_str()).is_ok());
    }
}
