//! Secrets at rest: envelope encryption.
//!
//! An endpoint's signing secrets are stored sealed: encrypted with
//! AES-256-GCM under a data key, and the data key is stored beside them
//! wrapped by a key-management key that never leaves its service
//! ([`DataKeys`]). Reading the table is not enough to read a secret: the
//! reader must also be allowed to unwrap the data key.
//!
//! A [`Keyring`] lives as long as a warm function instance. It seals with
//! one data key until that key is [`DATA_KEY_LIFETIME`] old or has sealed
//! [`DATA_KEY_MAX_USES`] times, and keeps the data keys it has unwrapped, by
//! their wrapped form: a reader asks the key-management service once per
//! data key, not once per read.
//!
//! The sealed form ([`Sealed`]) carries its format's version; the
//! additional authenticated data binds a sealed value to the endpoint it
//! belongs to, so it cannot be copied onto another endpoint's item.

use crate::endpoint::{Endpoint, RetiredSecret};
use crate::error::PortError;
use crate::ids::{EndpointId, TenantId};
use crate::ports::{DataKeyBytes, DataKeys};
use crate::signing::WebhookSecret;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The version of the sealed format written now.
pub const SEALED_VERSION: u32 = 1;
/// How long one data key seals before a new one is made.
pub const DATA_KEY_LIFETIME: Duration = Duration::from_secs(3600);
/// How many values one data key seals before a new one is made (far below
/// the 2^32 random nonces AES-GCM allows per key).
pub const DATA_KEY_MAX_USES: u64 = 100_000;
/// How many unwrapped data keys a keyring keeps; past that it starts over.
pub const MAX_CACHED_KEYS: usize = 256;
const NONCE_LEN: usize = 12;

/// A sealed value as stored. Every field is base64 text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The format's version ([`SEALED_VERSION`]).
    pub v: u32,
    /// The data key, wrapped by the key-management key.
    pub key: String,
    /// The AES-GCM nonce (12 random bytes).
    pub nonce: String,
    /// The ciphertext and its tag.
    pub ct: String,
}

/// Why a sealed value could not be opened.
fn unreadable(what: &str) -> PortError {
    PortError::permanent(format!("a sealed secret is unreadable: {what}"))
}

#[derive(Clone)]
struct CurrentKey {
    key: Arc<DataKeyBytes>,
    wrapped: Vec<u8>,
    made: Instant,
    uses: u64,
}

/// Seals and opens values with data keys from `K`, caching them (see the
/// module's documentation). Its `Debug` shows no key.
pub struct Keyring<K> {
    keys: K,
    lifetime: Duration,
    max_uses: u64,
    current: Mutex<Option<CurrentKey>>,
    opened: Mutex<HashMap<Vec<u8>, Arc<DataKeyBytes>>>,
    /// Held while asking the key service: reads and seals that miss the
    /// cache at once (a batch on a cold instance) wait for the one call.
    asking: futures_util::lock::Mutex<()>,
}

impl<K> fmt::Debug for Keyring<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl<K: DataKeys> Keyring<K> {
    /// A keyring over `keys` with the default limits.
    pub fn new(keys: K) -> Self {
        Self::with_limits(keys, DATA_KEY_LIFETIME, DATA_KEY_MAX_USES)
    }

    /// A keyring whose data keys seal for at most `lifetime` and `max_uses`.
    pub fn with_limits(keys: K, lifetime: Duration, max_uses: u64) -> Self {
        Self {
            keys,
            lifetime,
            max_uses: max_uses.max(1),
            current: Mutex::new(None),
            opened: Mutex::new(HashMap::new()),
            asking: futures_util::lock::Mutex::new(()),
        }
    }

    /// The data-key service.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The current data key, counting one more use, if it may still seal.
    fn current_key(&self) -> Option<(Arc<DataKeyBytes>, Vec<u8>)> {
        let mut current = lock(&self.current);
        let c = current.as_mut()?;
        if c.made.elapsed() >= self.lifetime || c.uses >= self.max_uses {
            return None;
        }
        c.uses += 1;
        Some((c.key.clone(), c.wrapped.clone()))
    }

    /// The data key to seal with now: the current one, or a new one.
    async fn sealing_key(&self) -> Result<(Arc<DataKeyBytes>, Vec<u8>), PortError> {
        if let Some(key) = self.current_key() {
            return Ok(key);
        }
        let _asking = self.asking.lock().await;
        if let Some(key) = self.current_key() {
            return Ok(key);
        }
        let made = self.keys.generate().await?;
        let key = Arc::new(made.plaintext);
        self.remember(made.wrapped.clone(), key.clone());
        *lock(&self.current) = Some(CurrentKey {
            key: key.clone(),
            wrapped: made.wrapped.clone(),
            made: Instant::now(),
            uses: 1,
        });
        Ok((key, made.wrapped))
    }

    fn remember(&self, wrapped: Vec<u8>, key: Arc<DataKeyBytes>) {
        let mut opened = lock(&self.opened);
        if opened.len() >= MAX_CACHED_KEYS {
            opened.clear();
        }
        opened.insert(wrapped, key);
    }

    /// The data key of a wrapped form: from the cache, or unwrapped once.
    async fn opening_key(&self, wrapped: &[u8]) -> Result<Arc<DataKeyBytes>, PortError> {
        let cached = || lock(&self.opened).get(wrapped).cloned();
        if let Some(key) = cached() {
            return Ok(key);
        }
        let _asking = self.asking.lock().await;
        if let Some(key) = cached() {
            return Ok(key);
        }
        let key = Arc::new(self.keys.unwrap(wrapped).await?);
        self.remember(wrapped.to_vec(), key.clone());
        Ok(key)
    }

    /// Seals `plaintext`, bound to `aad`.
    pub async fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, PortError> {
        let (key, wrapped) = self.sealing_key().await?;
        let mut nonce = [0u8; NONCE_LEN];
        crate::ids::random_bytes(&mut nonce);
        let ct = cipher(&key)
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
            .map_err(|_| PortError::permanent("sealing a secret failed"))?;
        Ok(Sealed {
            v: SEALED_VERSION,
            key: STANDARD.encode(wrapped),
            nonce: STANDARD.encode(nonce),
            ct: STANDARD.encode(ct),
        })
    }

    /// Opens a sealed value, which must be bound to `aad`.
    pub async fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, PortError> {
        if sealed.v != SEALED_VERSION {
            return Err(unreadable(&format!("unknown version {}", sealed.v)));
        }
        let decode = |field: &str, text: &str| STANDARD.decode(text).map_err(|_| unreadable(field));
        let wrapped = decode("key", &sealed.key)?;
        let nonce: [u8; NONCE_LEN] = decode("nonce", &sealed.nonce)?
            .try_into()
            .map_err(|_| unreadable("nonce"))?;
        let ct = decode("ct", &sealed.ct)?;
        let key = self.opening_key(&wrapped).await?;
        cipher(&key)
            .decrypt(&Nonce::from(nonce), Payload { msg: &ct, aad })
            .map_err(|_| unreadable("it does not decrypt"))
    }
}

fn cipher(key: &DataKeyBytes) -> Aes256Gcm {
    Aes256Gcm::new(&key.0.into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a cache, still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An endpoint's secrets: what is sealed in its item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSecrets {
    /// The current signing secret.
    pub secret: WebhookSecret,
    /// The retired secrets still signed with.
    #[serde(default)]
    pub previous_secrets: Vec<RetiredSecret>,
}

impl EndpointSecrets {
    /// The endpoint attributes these secrets are stored in when not sealed
    /// (the format written before secrets were sealed).
    pub const PLAIN_ATTRIBUTES: [&'static str; 2] = ["secret", "previous_secrets"];

    /// The secrets of an endpoint.
    pub fn of(endpoint: &Endpoint) -> Self {
        Self {
            secret: endpoint.secret.clone(),
            previous_secrets: endpoint.previous_secrets.clone(),
        }
    }

    /// What a sealed value of these secrets is bound to: the endpoint.
    fn aad(tenant: &TenantId, id: &EndpointId) -> Vec<u8> {
        format!("switchyard/endpoint-secrets/{tenant}/{id}").into_bytes()
    }

    /// Seals an endpoint's secrets.
    pub async fn seal<K: DataKeys>(endpoint: &Endpoint, keyring: &Keyring<K>) -> Result<Sealed, PortError> {
        let json = serde_json::to_vec(&Self::of(endpoint))
            .map_err(|e| PortError::permanent(format!("encoding secrets: {e}")))?;
        keyring.seal(&json, &Self::aad(&endpoint.tenant_id, &endpoint.id)).await
    }

    /// Opens the sealed secrets of the endpoint `tenant`/`id`.
    pub async fn open<K: DataKeys>(
        sealed: &Sealed,
        tenant: &TenantId,
        id: &EndpointId,
        keyring: &Keyring<K>,
    ) -> Result<Self, PortError> {
        let json = keyring.open(sealed, &Self::aad(tenant, id)).await?;
        serde_json::from_slice(&json).map_err(|_| unreadable("not an endpoint's secrets"))
    }
}

#[cfg(test)]
mod tests;
