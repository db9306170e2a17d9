//! Tenant API keys: random, shown once, stored only as a SHA-256 hash.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// The prefix of every tenant API key.
pub const API_KEY_PREFIX: &str = "sy_";
const KEY_BYTES: usize = 32;

/// A tenant API key as the client presents it. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// Why a presented API key was refused: it is not of the key's form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an API key looks like `sy_` followed by 20 to 128 URL-safe characters")]
pub struct ApiKeyFormatError;

impl ApiKey {
    /// A new random key (256 bits).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        crate::ids::random_bytes(&mut bytes);
        Self(format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Checks the shape of a presented key (not whether it exists).
    pub fn parse(s: &str) -> Result<Self, ApiKeyFormatError> {
        let rest = s.strip_prefix(API_KEY_PREFIX).ok_or(ApiKeyFormatError)?;
        let ok_len = (20..=128).contains(&rest.len());
        let ok_chars = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok_len && ok_chars {
            Ok(Self(s.to_string()))
        } else {
            Err(ApiKeyFormatError)
        }
    }

    /// The text to hand to the tenant, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored and looked up.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The lowercase hex SHA-256 of an API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    /// A hash as stored (64 lowercase hex digits), read back from storage.
    pub fn parse(s: &str) -> Result<Self, ApiKeyFormatError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(s.to_string()))
        } else {
            Err(ApiKeyFormatError)
        }
    }

    /// The key as text (to hash it, or to show it once at creation).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a tenant API key may do: `ingest` (send events), `read` (GETs) or
/// `manage` (everything a tenant may do). Keys made before scopes existed
/// are `manage`, which is also the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyScope {
    /// `POST /v1/events` only: for producers.
    Ingest,
    /// The tenant's `GET` routes only: for dashboards and reports.
    Read,
    /// Everything a tenant may do.
    #[default]
    Manage,
}

/// The kind of call a key is presented for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Sending events.
    Ingest,
    /// Reading the tenant's resources.
    Read,
    /// Changing them.
    Manage,
}

impl KeyScope {
    /// The scope named `s` (`ingest`, `read` or `manage`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "read" => Some(Self::Read),
            "manage" => Some(Self::Manage),
            _ => None,
        }
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Manage => "manage",
        }
    }

    /// Whether a key of this scope may make a call of kind `access`.
    pub fn allows(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Self::Manage, _) | (Self::Ingest, Access::Ingest) | (Self::Read, Access::Read)
        )
    }
}

/// What a stored API key grants: its tenant, its scope, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGrant {
    /// The tenant the key authenticates as.
    pub tenant: crate::ids::TenantId,
    /// What the key may do.
    pub scope: KeyScope,
    /// When the key stops working; `None`: never.
    pub expires_at: Option<time::OffsetDateTime>,
}

impl KeyGrant {
    /// A key of `tenant` that may do everything and never expires.
    pub fn manage(tenant: crate::ids::TenantId) -> Self {
        Self {
            tenant,
            scope: KeyScope::Manage,
            expires_at: None,
        }
    }

    /// Whether the key still works at `now`.
    pub fn live_at(&self, now: time::OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let k = ApiKey::generate();
        assert_eq!(ApiKey::parse(k.expose()).unwrap(), k);
        assert_eq!(k.hash(), ApiKey::parse(k.expose()).unwrap().hash());
        assert_eq!(k.hash().as_str().len(), 64);
        assert_ne!(k.hash(), ApiKey::generate().hash());
        assert_eq!(ApiKeyHash::parse(k.hash().as_str()), Ok(k.hash()));
        assert!(ApiKeyHash::parse("ABC").is_err());
        assert!(ApiKeyHash::parse(&"A".repeat(64)).is_err());
        assert!(!format!("{k:?}").contains(&k.expose()[3..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "sy_",
            "sk_aaaaaaaaaaaaaaaaaaaaaaaa",
            "sy_short",
            "sy_aaaaaaaaaaaaaaaaaaaa aa",
            "sy_ääääääääääääääääääääää",
        ] {
            assert!(ApiKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ApiKey::parse("sy_local_demo_key_not_a_secret").is_ok());
    }

    #[test]
    fn scopes_allow_what_they_name_and_manage_allows_everything() {
        use Access::*;
        let table = [
            (KeyScope::Ingest, [true, false, false]),
            (KeyScope::Read, [false, true, false]),
            (KeyScope::Manage, [true, true, true]),
        ];
        for (scope, want) in table {
            let got = [Ingest, Read, Manage].map(|a| scope.allows(a));
            assert_eq!(got, want, "{scope:?}");
            assert_eq!(KeyScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(KeyScope::parse("admin"), None);
        assert_eq!(KeyScope::default(), KeyScope::Manage);
        assert_eq!(serde_json::to_string(&KeyScope::Read).unwrap(), "\"read\"");
    }

    #[test]
    fn a_grant_is_live_until_it_expires() {
        let now = time::OffsetDateTime::now_utc();
        let mut g = KeyGrant::manage(crate::ids::TenantId::parse("acme").unwrap());
        assert!(g.live_at(now));
        g.expires_at = Some(now + time::Duration::seconds(1));
        assert!(g.live_at(now));
        assert!(!g.live_at(now + time::Duration::seconds(1)), "expired at its instant");
    }
}
