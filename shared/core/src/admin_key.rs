//! The operator's admin key: who may call the admin routes.
//!
//! The key comes from up to two places, and either one admits:
//!
//! - a **fixed digest**, the hex SHA-256 of a key the operator chose and
//!   passed at deploy time (`AdminKeySha256`);
//! - a **kept secret**, generated at deploy time and kept by a secret store
//!   ([`AdminKeySource`]; Secrets Manager when deployed). It is read on the
//!   first admin request, not at start-up, and cached: for [`MAX_AGE`] at
//!   most, and a presented key that does not match a cache older than
//!   [`RECHECK_AFTER`] reads the store once more. So a rotated secret is
//!   accepted within [`RECHECK_AFTER`], the old one stops being accepted
//!   within [`MAX_AGE`], and wrong keys cannot make the function call the
//!   store more than once per [`RECHECK_AFTER`].
//!
//! Only digests are kept in memory, compared in constant time; the key
//! itself never reaches a log or `Debug`.

use crate::PortError;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a secret read from the store is trusted without reading it again.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How old the cache must be before a key that does not match it makes the
/// store be read again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(30);

/// What [`AdminKeySource::current`] returns.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<String, PortError>> + Send + 'a>>;

/// A store that keeps the current admin key.
pub trait AdminKeySource: Send + Sync {
    /// The admin key as the store holds it now.
    fn current(&self) -> KeyFuture<'_>;
}

/// Whether a presented key is the admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It is.
    Admin,
    /// It is not.
    NotAdmin,
    /// No admin key is configured at all: the admin routes are closed.
    NoneConfigured,
}

/// The admin keys a function accepts. Build once per process.
#[derive(Clone, Default)]
pub struct AdminKeys {
    fixed: Option<[u8; 32]>,
    source: Option<Arc<dyn AdminKeySource>>,
    cache: Arc<Mutex<Option<Cached>>>,
}

#[derive(Clone, Copy)]
struct Cached {
    digest: [u8; 32],
    read_at: Instant,
}

impl std::fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKeys")
            .field("fixed", &self.fixed.map(|_| "<digest>"))
            .field("kept_secret", &self.source.is_some())
            .finish()
    }
}

/// The SHA-256 of a key, as hex (how `AdminKeySha256` is written).
pub fn digest_hex(key: &str) -> String {
    hex::encode(digest(key))
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminKeys {
    /// Accepts the key whose hex SHA-256 is `fixed_hex` (if any; 64 hex
    /// digits, checked by the caller's configuration) and the key `source`
    /// keeps (if any).
    pub fn new(fixed_hex: Option<&str>, source: Option<Arc<dyn AdminKeySource>>) -> Self {
        let fixed = fixed_hex.and_then(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut out).ok().map(|()| out)
        });
        Self {
            fixed,
            source,
            cache: Arc::default(),
        }
    }

    /// Whether any admin key is configured.
    pub fn configured(&self) -> bool {
        self.fixed.is_some() || self.source.is_some()
    }

    /// Whether `presented` is an admin key now. Fails only when the store
    /// must be read and cannot be.
    pub async fn check(&self, presented: &str) -> Result<Verdict, PortError> {
        self.check_at(presented, Instant::now()).await
    }

    /// [`AdminKeys::check`] at a given instant (for tests).
    pub async fn check_at(&self, presented: &str, now: Instant) -> Result<Verdict, PortError> {
        let given = digest(presented);
        if self.fixed.is_some_and(|f| same(&f, &given)) {
            return Ok(Verdict::Admin);
        }
        let Some(source) = &self.source else {
            return Ok(if self.fixed.is_some() {
                Verdict::NotAdmin
            } else {
                Verdict::NoneConfigured
            });
        };
        let cached = *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = match cached {
            Some(c) if now.saturating_duration_since(c.read_at) < MAX_AGE => {
                if same(&c.digest, &given) {
                    return Ok(Verdict::Admin);
                }
                if now.saturating_duration_since(c.read_at) < RECHECK_AFTER {
                    return Ok(Verdict::NotAdmin);
                }
                self.read(source.as_ref(), now).await?
            }
            _ => self.read(source.as_ref(), now).await?,
        };
        Ok(if same(&fresh, &given) {
            Verdict::Admin
        } else {
            Verdict::NotAdmin
        })
    }

    async fn read(&self, source: &dyn AdminKeySource, now: Instant) -> Result<[u8; 32], PortError> {
        let key = source.current().await?;
        if key.trim().is_empty() {
            return Err(PortError::permanent("the admin key secret is empty"));
        }
        let d = digest(&key);
        *self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Cached {
            digest: d,
            read_at: now,
        });
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store whose key the test changes, counting reads.
    #[derive(Default)]
    struct Store {
        key: Mutex<String>,
        reads: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl AdminKeySource for Store {
        fn current(&self) -> KeyFuture<'_> {
            Box::pin(async move {
                self.reads.fetch_add(1, Ordering::SeqCst);
                if self.fail.load(Ordering::SeqCst) {
                    return Err(PortError::transient("store down"));
                }
                Ok(self.key.lock().unwrap().clone())
            })
        }
    }

    fn kept(key: &str) -> (Arc<Store>, AdminKeys) {
        let store = Arc::new(Store::default());
        *store.key.lock().unwrap() = key.into();
        let keys = AdminKeys::new(None, Some(store.clone() as Arc<dyn AdminKeySource>));
        (store, keys)
    }

    #[tokio::test]
    async fn nothing_configured_closes_the_admin_routes() {
        let keys = AdminKeys::new(None, None);
        assert!(!keys.configured());
        assert_eq!(keys.check("anything").await.unwrap(), Verdict::NoneConfigured);
    }

    #[tokio::test]
    async fn a_fixed_digest_admits_its_key_only() {
        let keys = AdminKeys::new(Some(&digest_hex("op-key")), None);
        assert!(keys.configured());
        assert_eq!(keys.check("op-key").await.unwrap(), Verdict::Admin);
        assert_eq!(keys.check("op-key ").await.unwrap(), Verdict::NotAdmin);
        assert_eq!(keys.check("").await.unwrap(), Verdict::NotAdmin);
    }

    #[tokio::test]
    async fn the_kept_secret_is_read_once_and_cached() {
        let (store, keys) = kept("s3cret");
        let t0 = Instant::now();
        assert_eq!(keys.check_at("s3cret", t0).await.unwrap(), Verdict::Admin);
        assert_eq!(
            keys.check_at("s3cret", t0 + Duration::from_secs(60)).await.unwrap(),
            Verdict::Admin
        );
        assert_eq!(
            store.reads.load(Ordering::SeqCst),
            1,
            "one read serves the cache's life"
        );
        // After MAX_AGE the store is read again even for the right key.
        assert_eq!(keys.check_at("s3cret", t0 + MAX_AGE).await.unwrap(), Verdict::Admin);
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn wrong_keys_read_the_store_at_most_once_per_recheck_interval() {
        let (store, keys) = kept("s3cret");
        let t0 = Instant::now();
        assert_eq!(keys.check_at("s3cret", t0).await.unwrap(), Verdict::Admin);
        for i in 0..100 {
            let at = t0 + Duration::from_millis(i * 100);
            assert_eq!(keys.check_at("guess", at).await.unwrap(), Verdict::NotAdmin);
        }
        assert_eq!(store.reads.load(Ordering::SeqCst), 1, "10 s of guesses: no read");
        assert_eq!(
            keys.check_at("guess", t0 + RECHECK_AFTER).await.unwrap(),
            Verdict::NotAdmin
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 2);
        assert_eq!(
            keys.check_at("guess", t0 + RECHECK_AFTER + Duration::from_secs(1))
                .await
                .unwrap(),
            Verdict::NotAdmin
        );
        assert_eq!(store.reads.load(Ordering::SeqCst), 2, "the miss refreshed the cache");
    }

    #[tokio::test]
    async fn a_rotated_secret_is_accepted_within_the_recheck_interval_and_the_old_one_expires() {
        let (store, keys) = kept("old");
        let t0 = Instant::now();
        assert_eq!(keys.check_at("old", t0).await.unwrap(), Verdict::Admin);
        *store.key.lock().unwrap() = "new".into();
        assert_eq!(
            keys.check_at("new", t0 + Duration::from_secs(1)).await.unwrap(),
            Verdict::NotAdmin
        );
        assert_eq!(keys.check_at("new", t0 + RECHECK_AFTER).await.unwrap(), Verdict::Admin);
        // The old key was cached before: it stops once the cache is refreshed.
        assert_eq!(
            keys.check_at("old", t0 + RECHECK_AFTER).await.unwrap(),
            Verdict::NotAdmin
        );
        assert_eq!(
            keys.check_at("old", t0 + MAX_AGE + RECHECK_AFTER).await.unwrap(),
            Verdict::NotAdmin
        );
    }

    #[tokio::test]
    async fn both_sources_admit_and_a_store_failure_is_an_error_not_a_yes() {
        let store = Arc::new(Store::default());
        *store.key.lock().unwrap() = "kept".into();
        let keys = AdminKeys::new(
            Some(&digest_hex("fixed")),
            Some(store.clone() as Arc<dyn AdminKeySource>),
        );
        assert_eq!(keys.check("fixed").await.unwrap(), Verdict::Admin);
        assert_eq!(store.reads.load(Ordering::SeqCst), 0, "the fixed key needs no read");
        assert_eq!(keys.check("kept").await.unwrap(), Verdict::Admin);
        let (store, keys) = kept("kept");
        store.fail.store(true, Ordering::SeqCst);
        let e = keys.check("kept").await.unwrap_err();
        assert!(e.retryable && e.message.contains("store down"), "{e}");
        // The fixed key still works while the store is down.
        let keys = AdminKeys::new(Some(&digest_hex("fixed")), Some(store as Arc<dyn AdminKeySource>));
        assert_eq!(keys.check("fixed").await.unwrap(), Verdict::Admin);
    }

    #[tokio::test]
    async fn an_empty_secret_admits_nobody() {
        let (_, keys) = kept("  ");
        let e = keys.check("  ").await.unwrap_err();
        assert!(!e.retryable && e.message.contains("empty"), "{e}");
    }

    #[test]
    fn debug_shows_no_digest() {
        let keys = AdminKeys::new(Some(&digest_hex("k")), None);
        let shown = format!("{keys:?}");
        assert!(!shown.contains(&digest_hex("k")[..16]), "{shown}");
    }
}
