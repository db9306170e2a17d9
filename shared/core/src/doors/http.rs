//! The HTTP door: the caller's API key names its tenant.

use crate::api_key::{Access, ApiKey, KeyScope};
use crate::error::PortError;
use crate::ids::TenantId;
use crate::ports::Registry;

/// Why a caller was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("an API key is required (Authorization: Bearer <key>)")]
    Missing,
    /// The key is malformed, names no tenant, was revoked or has expired.
    #[error("the API key is not valid")]
    Invalid,
    /// The key is valid but its scope does not allow sending events.
    #[error("this API key's scope ({}) does not allow sending events", .0.as_str())]
    Scope(KeyScope),
    /// The key is valid but its tenant is suspended.
    #[error("the tenant is suspended; its events are refused until it is active again")]
    Suspended,
    /// Looking the key up failed.
    #[error("checking the API key failed: {0}")]
    Port(PortError),
}

/// Finds the tenant an API key belongs to, if the key is live, may send
/// events, and its tenant is not suspended.
pub async fn authenticate<R: Registry>(registry: &R, presented: Option<&str>) -> Result<TenantId, AuthError> {
    let presented = presented
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing)?;
    let key = ApiKey::parse(presented).map_err(|_| AuthError::Invalid)?;
    let grant = registry
        .key_grant(&key.hash())
        .await
        .map_err(AuthError::Port)?
        .filter(|g| g.live_at(crate::time_util::now_utc()))
        .ok_or(AuthError::Invalid)?;
    if !grant.scope.allows(Access::Ingest) {
        return Err(AuthError::Scope(grant.scope));
    }
    // Read after the key: an unknown key never costs a tenant read.
    if registry
        .tenant_suspended(&grant.tenant)
        .await
        .map_err(AuthError::Port)?
    {
        return Err(AuthError::Suspended);
    }
    Ok(grant.tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeyHash;
    use crate::api_key::KeyGrant;
    use crate::endpoint::Endpoint;
    use crate::ids::EndpointId;
    use std::collections::HashMap;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    struct Keys(HashMap<String, KeyGrant>, Vec<TenantId>);
    impl Registry for Keys {
        async fn key_grant(&self, h: &ApiKeyHash) -> Result<Option<KeyGrant>, PortError> {
            Ok(self.0.get(h.as_str()).cloned())
        }
        async fn routes(&self, _: &TenantId) -> Result<Vec<crate::endpoint::EndpointRoute>, PortError> {
            Ok(vec![])
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(None)
        }
        async fn tenant_exists(&self, t: &TenantId) -> Result<bool, PortError> {
            Ok(self.0.values().any(|k| &k.tenant == t))
        }
        async fn tenant_suspended(&self, t: &TenantId) -> Result<bool, PortError> {
            Ok(self.1.contains(t))
        }
    }

    #[tokio::test]
    async fn api_keys_resolve_to_their_tenant() {
        let key = ApiKey::generate();
        let reg = Keys(
            HashMap::from([(key.hash().as_str().to_string(), KeyGrant::manage(tenant("t1")))]),
            vec![],
        );
        assert_eq!(authenticate(&reg, Some(key.expose())).await, Ok(tenant("t1")));
        assert_eq!(authenticate(&reg, None).await, Err(AuthError::Missing));
        assert_eq!(authenticate(&reg, Some("  ")).await, Err(AuthError::Missing));
        assert_eq!(authenticate(&reg, Some("garbage")).await, Err(AuthError::Invalid));
        let unknown = ApiKey::generate();
        assert_eq!(
            authenticate(&reg, Some(unknown.expose())).await,
            Err(AuthError::Invalid)
        );
    }

    #[tokio::test]
    async fn only_live_keys_whose_scope_sends_events_get_in() {
        let now = crate::time_util::now_utc();
        let grant = |scope, expires_at| KeyGrant {
            tenant: tenant("t1"),
            scope,
            expires_at,
        };
        let cases = [
            (grant(KeyScope::Ingest, None), Ok(tenant("t1"))),
            (
                grant(KeyScope::Manage, Some(now + time::Duration::hours(1))),
                Ok(tenant("t1")),
            ),
            (grant(KeyScope::Read, None), Err(AuthError::Scope(KeyScope::Read))),
            (
                grant(KeyScope::Ingest, Some(now - time::Duration::seconds(1))),
                Err(AuthError::Invalid),
            ),
        ];
        for (g, want) in cases {
            let key = ApiKey::generate();
            let reg = Keys(HashMap::from([(key.hash().as_str().to_string(), g.clone())]), vec![]);
            assert_eq!(authenticate(&reg, Some(key.expose())).await, want, "{g:?}");
        }
    }

    #[tokio::test]
    async fn a_suspended_tenants_keys_are_refused_and_other_tenants_are_not() {
        let (k1, k2) = (ApiKey::generate(), ApiKey::generate());
        let reg = Keys(
            HashMap::from([
                (k1.hash().as_str().to_string(), KeyGrant::manage(tenant("t1"))),
                (k2.hash().as_str().to_string(), KeyGrant::manage(tenant("t2"))),
            ]),
            vec![tenant("t1")],
        );
        assert_eq!(authenticate(&reg, Some(k1.expose())).await, Err(AuthError::Suspended));
        assert_eq!(authenticate(&reg, Some(k2.expose())).await, Ok(tenant("t2")));
        // An unknown key is still 401, whatever is suspended.
        let unknown = ApiKey::generate();
        assert_eq!(
            authenticate(&reg, Some(unknown.expose())).await,
            Err(AuthError::Invalid)
        );
    }
}
