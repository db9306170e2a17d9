//! Per-tenant limits: how many endpoints and API keys a tenant may hold, how
//! large an endpoint's custom headers may be, and how many events a second
//! a tenant may send through the HTTP door. Every limit has a default here;
//! the functions read the deployed values from their environment.
//!
//! Custom header values are shown masked in every API answer ([`MASK`]); an
//! update that sends the mask back keeps the stored value
//! ([`keep_masked_values`]).

use crate::endpoint::{CustomHeaders, MAX_CUSTOM_HEADERS};
use crate::error::PortError;
use crate::ids::TenantId;
use crate::ports::RateLimiter;
use std::collections::BTreeMap;
use std::fmt;

/// The limits a deployment enforces per tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Endpoints one tenant may have.
    pub endpoints_per_tenant: u32,
    /// API keys one tenant may have (revoked ones do not count).
    pub api_keys_per_tenant: u32,
    /// Custom headers one endpoint may carry (at most [`MAX_CUSTOM_HEADERS`]).
    pub headers_per_endpoint: usize,
    /// Bytes of all of an endpoint's custom header names and values together.
    pub header_bytes_per_endpoint: usize,
    /// Events a second one tenant may send through the HTTP door; 0: no limit.
    pub ingest_per_second: u32,
}

impl Limits {
    /// The default most endpoints one tenant may register.
    pub const DEFAULT_ENDPOINTS_PER_TENANT: u32 = 100;
    /// The default most API keys one tenant may hold.
    pub const DEFAULT_API_KEYS_PER_TENANT: u32 = 20;
    /// The default most custom headers on one endpoint.
    pub const DEFAULT_HEADERS_PER_ENDPOINT: usize = 20;
    /// The default most bytes of custom header names and values on one endpoint.
    pub const DEFAULT_HEADER_BYTES_PER_ENDPOINT: usize = 4096;
    /// The default events a second one tenant may send through the HTTP door.
    pub const DEFAULT_INGEST_PER_SECOND: u32 = 100;
    /// The largest ingest rate a deployment may set: one DynamoDB item
    /// counts a tenant's second, and an item takes at most 1000 writes a
    /// second.
    pub const MAX_INGEST_PER_SECOND: u32 = 1000;
    /// The most endpoints per tenant a deployment may allow: what fan-out
    /// is measured to handle for one event of the largest body within its
    /// memory (a test fans out to this many) and, with ten tasks to a call
    /// and four calls at once, well within its timeout on SQS.
    pub const MAX_ENDPOINTS_PER_TENANT: u32 = 1000;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            endpoints_per_tenant: Self::DEFAULT_ENDPOINTS_PER_TENANT,
            api_keys_per_tenant: Self::DEFAULT_API_KEYS_PER_TENANT,
            headers_per_endpoint: Self::DEFAULT_HEADERS_PER_ENDPOINT,
            header_bytes_per_endpoint: Self::DEFAULT_HEADER_BYTES_PER_ENDPOINT,
            ingest_per_second: Self::DEFAULT_INGEST_PER_SECOND,
        }
    }
}

pub use crate::model::LimitExceeded;

/// The name of the endpoints-per-tenant limit.
pub const ENDPOINTS_PER_TENANT: &str = "endpoints_per_tenant";
/// The name of the API-keys-per-tenant limit.
pub const API_KEYS_PER_TENANT: &str = "api_keys_per_tenant";
/// The name of the custom-headers-per-endpoint limit.
pub const HEADERS_PER_ENDPOINT: &str = "headers_per_endpoint";
/// The name of the custom-header-bytes-per-endpoint limit.
pub const HEADER_BYTES_PER_ENDPOINT: &str = "header_bytes_per_endpoint";
/// The name of the ingest-per-second limit.
pub const INGEST_PER_SECOND: &str = "ingest_per_second";

/// Checks an endpoint's custom headers against the deployment's count and
/// total size (names and values); each name and value has its own fixed
/// limits (see [`CustomHeaders::parse`]).
pub fn check_headers(headers: &CustomHeaders, limits: &Limits) -> Result<(), LimitExceeded> {
    let count = headers.iter().count();
    let max_count = limits.headers_per_endpoint.min(MAX_CUSTOM_HEADERS);
    if count > max_count {
        return Err(LimitExceeded {
            limit: HEADERS_PER_ENDPOINT,
            value: max_count as u64,
        });
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > limits.header_bytes_per_endpoint {
        return Err(LimitExceeded {
            limit: HEADER_BYTES_PER_ENDPOINT,
            value: limits.header_bytes_per_endpoint as u64,
        });
    }
    Ok(())
}

/// What every API answer shows instead of a custom header's value.
pub const MASK: &str = "********";

/// An endpoint's custom headers as API answers show them: names, each value
/// replaced by [`MASK`].
pub fn masked(headers: &CustomHeaders) -> BTreeMap<String, String> {
    headers.iter().map(|(k, _)| (k.to_string(), MASK.to_string())).collect()
}

/// Why an update's headers were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedUnknown(pub String);

impl fmt::Display for MaskedUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` has the masked value `{MASK}` but no stored value to keep; send its real value",
            self.0
        )
    }
}

/// The headers an update stores: every header sent with the value [`MASK`]
/// keeps its stored value (a client that read the endpoint and sends its
/// headers back unchanged changes nothing); the mask for a header with no
/// stored value is refused, never stored.
pub fn keep_masked_values(
    sent: BTreeMap<String, String>,
    stored: &CustomHeaders,
) -> Result<BTreeMap<String, String>, MaskedUnknown> {
    sent.into_iter()
        .map(|(name, value)| {
            if value != MASK {
                return Ok((name, value));
            }
            let lower = name.to_ascii_lowercase();
            match stored.iter().find(|(k, _)| *k == lower) {
                Some((_, v)) => Ok((name, v.to_string())),
                None => Err(MaskedUnknown(lower)),
            }
        })
        .collect()
}

/// Whether a request of the HTTP door may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the rate: go on.
    Admitted,
    /// Over the tenant's rate: try again after this many seconds.
    Limited {
        /// Seconds until the next second's slots, for `Retry-After`.
        retry_after_secs: u32,
    },
}

/// Takes one of the tenant's `per_second` ingest slots of the second
/// `now_secs` (unix seconds); with `per_second` 0 every request is admitted
/// without counting. Tenants are counted apart: one over its rate never
/// slows another.
pub async fn admit_ingest<L: RateLimiter>(
    limiter: &L,
    tenant: &TenantId,
    now_secs: i64,
    per_second: u32,
) -> Result<Admission, PortError> {
    if per_second == 0 || limiter.take_ingest(tenant, now_secs, per_second).await? {
        Ok(Admission::Admitted)
    } else {
        // The count starts again with the next second.
        Ok(Admission::Limited { retry_after_secs: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Memory;

    fn headers(pairs: &[(&str, &str)]) -> CustomHeaders {
        CustomHeaders::parse(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()).unwrap()
    }

    #[test]
    fn quota_header_count_and_total_size_are_limited() {
        let limits = Limits {
            headers_per_endpoint: 2,
            header_bytes_per_endpoint: 20,
            ..Limits::default()
        };
        assert_eq!(check_headers(&headers(&[("x-a", "1"), ("x-b", "2")]), &limits), Ok(()));
        assert_eq!(
            check_headers(&headers(&[("x-a", "1"), ("x-b", "2"), ("x-c", "3")]), &limits),
            Err(LimitExceeded {
                limit: HEADERS_PER_ENDPOINT,
                value: 2
            })
        );
        // 3 + 18 bytes: one over.
        assert_eq!(
            check_headers(&headers(&[("x-a", &"v".repeat(18))]), &limits),
            Err(LimitExceeded {
                limit: HEADER_BYTES_PER_ENDPOINT,
                value: 20
            })
        );
        // The default total is well under what the per-header limits allow.
        let five_big: Vec<(String, String)> = (0..5).map(|i| (format!("x-{i}"), "v".repeat(1000))).collect();
        let five_big = CustomHeaders::parse(five_big.into_iter().collect()).unwrap();
        assert!(check_headers(&five_big, &Limits::default()).is_err());
    }

    #[test]
    fn quota_masked_headers_show_names_only_and_keep_stored_values() {
        let stored = headers(&[("authorization", "Bearer real"), ("x-team", "billing")]);
        let shown = masked(&stored);
        assert_eq!(shown["authorization"], MASK);
        assert!(!format!("{shown:?}").contains("real"));
        // Sent back as read: the stored values stay.
        let kept = keep_masked_values(shown.clone(), &stored).unwrap();
        assert_eq!(CustomHeaders::parse(kept).unwrap(), stored);
        // One value changed, the other masked (and written in another case).
        let sent = [
            ("Authorization".to_string(), MASK.to_string()),
            ("x-team".to_string(), "ops".to_string()),
        ]
        .into();
        let kept = CustomHeaders::parse(keep_masked_values(sent, &stored).unwrap()).unwrap();
        assert_eq!(kept, headers(&[("authorization", "Bearer real"), ("x-team", "ops")]));
        // The mask of a header never stored is refused, not stored.
        let sent = [("x-new".to_string(), MASK.to_string())].into();
        assert_eq!(keep_masked_values(sent, &stored), Err(MaskedUnknown("x-new".into())));
    }

    #[tokio::test]
    async fn quota_ingest_rate_limits_one_tenant_and_not_another() {
        let m = Memory::default();
        let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
        for _ in 0..3 {
            assert_eq!(admit_ingest(&m, &a, 100, 3).await.unwrap(), Admission::Admitted);
        }
        assert_eq!(
            admit_ingest(&m, &a, 100, 3).await.unwrap(),
            Admission::Limited { retry_after_secs: 1 }
        );
        assert_eq!(admit_ingest(&m, &b, 100, 3).await.unwrap(), Admission::Admitted);
        // The next second counts afresh; 0 turns the limit off.
        assert_eq!(admit_ingest(&m, &a, 101, 3).await.unwrap(), Admission::Admitted);
        for _ in 0..10 {
            assert_eq!(admit_ingest(&m, &a, 100, 0).await.unwrap(), Admission::Admitted);
        }
    }
}
