//! Building the SDK configuration and clients, once per process.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment: region, credentials and
/// `AWS_ENDPOINT_URL` (which points every client at moto locally). Makes no
/// network call: credentials are resolved lazily on first use.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A configuration value a function cannot start without.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The variable (named) is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// The variable is set but its value is not usable.
    #[error("environment variable {name} is not valid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// Why its value is refused.
        reason: String,
    },
}

/// The deployment stage (`STAGE`, the template's `Stage` parameter), the
/// `Stage` dimension of every metric; `local` when unset.
pub fn stage() -> String {
    std::env::var("STAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// Reads a required environment variable.
pub fn env_var(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// Reads an optional number within `range`, or returns `default`.
pub fn env_in_range<T>(name: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = env_parse(name, default)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!("must be {} to {}", range.start(), range.end()),
        })
    }
}

/// `EVENT_RETENTION_DAYS`: how long events, deliveries and attempts are kept.
pub fn retention_days() -> Result<u16, ConfigError> {
    let default = switchyard_core::ingest::IngestConfig::DEFAULT_RETENTION_DAYS as u16;
    env_in_range("EVENT_RETENTION_DAYS", default, 1..=3650)
}

/// `AUDIT_RETENTION_DAYS` (1 … 3650, default 365): how long audit records
/// are kept (events with `routing.audit`, operational events).
pub fn audit_retention_days() -> Result<u16, ConfigError> {
    let default = switchyard_core::ingest::IngestConfig::DEFAULT_AUDIT_RETENTION_DAYS as u16;
    env_in_range("AUDIT_RETENTION_DAYS", default, 1..=3650)
}

/// Reads an optional environment variable and parses it, or returns `default`.
pub fn env_parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

/// `ADMIN_KEY_SHA256`: the SHA-256 of the operator's key, as 64 hex digits
/// (lower-cased); `None` when unset.
pub fn admin_key_sha256() -> Result<Option<String>, ConfigError> {
    admin_key_sha256_from(env_opt("ADMIN_KEY_SHA256"))
}

fn admin_key_sha256_from(value: Option<String>) -> Result<Option<String>, ConfigError> {
    let admin = value.map(|h| h.trim().to_ascii_lowercase());
    if let Some(h) = &admin
        && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ConfigError::Invalid {
            name: "ADMIN_KEY_SHA256",
            reason: "must be 64 hex digits (the SHA-256 of the admin key)".into(),
        });
    }
    Ok(admin)
}

/// `ADMIN_KEY_SECRET_ID`: the ARN (or name) of the Secrets Manager secret
/// that keeps the generated admin key; `None` when unset.
pub fn admin_key_secret_id() -> Option<String> {
    env_opt("ADMIN_KEY_SECRET_ID")
}

/// Reads an optional environment variable; unset and empty are both `None`.
pub fn env_opt(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `IDEMPOTENCY_WINDOW_HOURS` (1 … 720, default 24): how long an
/// `Idempotency-Key` or event id deduplicates at ingest.
pub fn idempotency_window() -> Result<std::time::Duration, ConfigError> {
    let default = switchyard_core::ingest::IngestConfig::DEFAULT_DEDUPE_WINDOW_HOURS as u64;
    let hours: u64 = env_in_range("IDEMPOTENCY_WINDOW_HOURS", default, 1..=720)?;
    Ok(std::time::Duration::from_secs(hours * 3600))
}

/// `ALLOW_HTTP` (default false) and `SSRF_ALLOW_LIST` (comma-separated
/// CIDRs, default none): what the SSRF guard lets through. Local mode and
/// tests only: in Lambda (`AWS_LAMBDA_FUNCTION_NAME` set) a function refuses
/// to start with either unless `LOCAL_MODE=true` says it runs under the
/// local runner (which sets it), the one documented override.
pub fn ssrf_policy() -> Result<switchyard_core::ssrf::SsrfPolicy, ConfigError> {
    ssrf_policy_from(|name| std::env::var(name).ok())
}

/// [`ssrf_policy`] over the variables `var` answers.
pub fn ssrf_policy_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<switchyard_core::ssrf::SsrfPolicy, ConfigError> {
    use switchyard_core::ssrf::SsrfPolicy;
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let allow_http = match set("ALLOW_HTTP") {
        None => false,
        Some(v) => v.parse().map_err(|e: std::str::ParseBoolError| ConfigError::Invalid {
            name: "ALLOW_HTTP",
            reason: e.to_string(),
        })?,
    };
    let allow_list = set("SSRF_ALLOW_LIST").unwrap_or_default();
    let in_lambda = set("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let local = set("LOCAL_MODE").is_some_and(|v| v == "true");
    if in_lambda && !local {
        for (name, relaxed) in [("ALLOW_HTTP", allow_http), ("SSRF_ALLOW_LIST", !allow_list.is_empty())] {
            if relaxed {
                return Err(ConfigError::Invalid {
                    name,
                    reason: "relaxes the SSRF guard, which only local mode may do; unset it (or set LOCAL_MODE=true \
                             if this really is the local runner)"
                        .into(),
                });
            }
        }
    }
    Ok(SsrfPolicy {
        allow_http,
        allow: SsrfPolicy::parse_allow_list(&allow_list).map_err(|e| ConfigError::Invalid {
            name: "SSRF_ALLOW_LIST",
            reason: e.to_string(),
        })?,
    })
}

/// The per-tenant limits (see `switchyard_core::quota::Limits`):
/// `MAX_ENDPOINTS_PER_TENANT` (1 … 1000, default 100),
/// `MAX_API_KEYS_PER_TENANT` (1 … 1000, default 20),
/// `MAX_HEADERS_PER_ENDPOINT` (0 … 20, default 20),
/// `MAX_HEADER_BYTES_PER_ENDPOINT` (0 … 65536, default 4096) and
/// `INGEST_RATE_PER_SECOND` (0 … 1000, default 100; 0: no limit).
pub fn limits() -> Result<switchyard_core::quota::Limits, ConfigError> {
    use switchyard_core::quota::Limits;
    Ok(Limits {
        endpoints_per_tenant: env_in_range(
            "MAX_ENDPOINTS_PER_TENANT",
            Limits::DEFAULT_ENDPOINTS_PER_TENANT,
            1..=Limits::MAX_ENDPOINTS_PER_TENANT,
        )?,
        api_keys_per_tenant: env_in_range("MAX_API_KEYS_PER_TENANT", Limits::DEFAULT_API_KEYS_PER_TENANT, 1..=1000)?,
        headers_per_endpoint: env_in_range(
            "MAX_HEADERS_PER_ENDPOINT",
            Limits::DEFAULT_HEADERS_PER_ENDPOINT,
            0..=switchyard_core::endpoint::MAX_CUSTOM_HEADERS,
        )?,
        header_bytes_per_endpoint: env_in_range(
            "MAX_HEADER_BYTES_PER_ENDPOINT",
            Limits::DEFAULT_HEADER_BYTES_PER_ENDPOINT,
            0..=65_536,
        )?,
        ingest_per_second: env_in_range(
            "INGEST_RATE_PER_SECOND",
            Limits::DEFAULT_INGEST_PER_SECOND,
            0..=Limits::MAX_INGEST_PER_SECOND,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn policy(vars: &[(&str, &str)]) -> Result<switchyard_core::ssrf::SsrfPolicy, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ssrf_policy_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_function_in_lambda_refuses_the_local_mode_switches() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "switchyard-delivery");
        // Production: nothing relaxed, nothing refused.
        let strict = policy(&[lambda]).unwrap();
        assert!(!strict.allow_http && strict.allow.is_empty());
        for relaxed in [("ALLOW_HTTP", "true"), ("SSRF_ALLOW_LIST", "127.0.0.0/8")] {
            let e = policy(&[lambda, relaxed]).unwrap_err().to_string();
            assert!(e.contains(relaxed.0) && e.contains("local mode"), "{e}");
            // The local runner says so, and may.
            assert!(policy(&[lambda, relaxed, ("LOCAL_MODE", "true")]).is_ok());
            // Outside Lambda (tests, tools) the switches are taken as they are.
            assert!(policy(&[relaxed]).is_ok());
        }
        // ALLOW_HTTP=false relaxes nothing.
        assert!(policy(&[lambda, ("ALLOW_HTTP", "false")]).is_ok());
        assert!(policy(&[("ALLOW_HTTP", "yes")]).is_err());
    }

    #[test]
    fn the_admin_key_digest_is_64_hex_digits_or_absent() {
        let hex = "AB".repeat(32);
        assert_eq!(
            admin_key_sha256_from(Some(format!(" {hex}\n"))).unwrap(),
            Some("ab".repeat(32))
        );
        assert_eq!(admin_key_sha256_from(None).unwrap(), None);
        for bad in ["abc", &"g".repeat(64), &"a".repeat(65)] {
            let e = admin_key_sha256_from(Some(bad.to_string())).unwrap_err().to_string();
            assert!(e.contains("ADMIN_KEY_SHA256") && e.contains("64 hex digits"), "{e}");
        }
    }
}
