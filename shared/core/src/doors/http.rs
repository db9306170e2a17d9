//! The HTTP door: the caller's API key names its tenant.

use crate::api_key::ApiKey;
use crate::error::PortError;
use crate::ids::TenantId;
use crate::ports::Registry;

/// Why a caller was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("an API key is required (Authorization: Bearer <key>)")]
    Missing,
    /// The key is malformed or names no tenant.
    #[error("the API key is not valid")]
    Invalid,
    /// Looking the key up failed.
    #[error("checking the API key failed: {0}")]
    Port(PortError),
}

/// Finds the tenant an API key belongs to.
pub async fn authenticate<R: Registry>(registry: &R, presented: Option<&str>) -> Result<TenantId, AuthError> {
    let presented = presented
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::Missing)?;
    let key = ApiKey::parse(presented).map_err(|_| AuthError::Invalid)?;
    registry
        .tenant_for_key(&key.hash())
        .await
        .map_err(AuthError::Port)?
        .ok_or(AuthError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeyHash;
    use crate::endpoint::Endpoint;
    use crate::ids::EndpointId;
    use std::collections::HashMap;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    struct Keys(HashMap<String, TenantId>);
    impl Registry for Keys {
        async fn tenant_for_key(&self, h: &ApiKeyHash) -> Result<Option<TenantId>, PortError> {
            Ok(self.0.get(h.as_str()).cloned())
        }
        async fn routes(&self, _: &TenantId) -> Result<Vec<crate::endpoint::EndpointRoute>, PortError> {
            Ok(vec![])
        }
        async fn endpoint(&self, _: &TenantId, _: &EndpointId) -> Result<Option<Endpoint>, PortError> {
            Ok(None)
        }
        async fn tenant_exists(&self, t: &TenantId) -> Result<bool, PortError> {
            Ok(self.0.values().any(|k| k == t))
        }
    }

    #[tokio::test]
    async fn api_keys_resolve_to_their_tenant() {
        let key = ApiKey::generate();
        let reg = Keys(HashMap::from([(key.hash().as_str().to_string(), tenant("t1"))]));
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
}
