//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! `webhook-signature` is `v1,<base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))>`,
//! several space-separated while a secret rotates. Secrets are written
//! `whsec_<base64 key>`. The output verifies byte for byte with the public
//! `standardwebhooks` and `svix` libraries (see the interop tests).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The header that carries the message id (the same for every attempt).
pub const HEADER_ID: &str = "webhook-id";
/// The header that carries the signing time, in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header that carries the signatures: `v1,<base64>`, space separated.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes in a generated key (as Svix does).
pub const GENERATED_KEY_LEN: usize = 24;
const MIN_KEY_LEN: usize = 16;
const MAX_KEY_LEN: usize = 64;

/// How far a timestamp may be from now, either way, and still verify.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Why a webhook secret's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// It is not `whsec_` followed by base64.
    #[error("a webhook secret must look like `whsec_<base64>`")]
    Format,
    /// Its key is shorter or longer than allowed.
    #[error("a webhook secret's key must be {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes")]
    Length,
}

/// An endpoint's signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; GENERATED_KEY_LEN];
        crate::ids::random_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(SecretError::Format)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::Format)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(SecretError::Length);
        }
        Ok(Self { key })
    }

    /// The `whsec_…` text: for storage and for showing to the tenant once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// One `v1,<base64>` signature.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(msg_id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Constant-time check of one base64 signature.
    fn verifies(&self, msg_id: &str, timestamp: i64, body: &[u8], sig_b64: &str) -> bool {
        let Ok(sig) = STANDARD.decode(sig_b64) else {
            return false;
        };
        self.mac(msg_id, timestamp, body).verify_slice(&sig).is_ok()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl serde::Serialize for WebhookSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for WebhookSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The `webhook-signature` value: one signature per secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a WebhookSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a webhook's signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a whole number of seconds.
    #[error("the webhook-timestamp header is not a unix timestamp")]
    BadTimestamp,
    /// The timestamp is older than the tolerance allows.
    #[error("the webhook-timestamp is too old")]
    TooOld,
    /// The timestamp is further ahead than the tolerance allows.
    #[error("the webhook-timestamp is too far in the future")]
    TooNew,
    /// No signature in the header matches any of the secrets.
    #[error("no signature matched")]
    NoMatch,
}

/// Verifies a received webhook against any of `secrets`, as a receiver would.
pub fn verify<'a>(
    secrets: impl IntoIterator<Item = &'a WebhookSecret>,
    msg_id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if ts < now_unix.saturating_sub(tolerance_secs) {
        return Err(VerifyError::TooOld);
    }
    if ts > now_unix.saturating_add(tolerance_secs) {
        return Err(VerifyError::TooNew);
    }
    let candidates: Vec<&str> = signature_header
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .collect();
    for secret in secrets {
        if candidates.iter().any(|sig| secret.verifies(msg_id, ts, body, sig)) {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference tests.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specification_example() {
        let s = WebhookSecret::parse(SPEC_SECRET).unwrap();
        assert_eq!(s.sign(SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()), SPEC_SIG);
        assert_eq!(
            verify(
                [&s],
                SPEC_ID,
                "1614265330",
                SPEC_SIG,
                SPEC_BODY.as_bytes(),
                SPEC_TS,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn secrets_round_trip_and_stay_out_of_debug() {
        let s = WebhookSecret::generate();
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text).unwrap(), s);
        assert!(!format!("{s:?}").contains(&text[6..]));
        assert_eq!(WebhookSecret::parse("nope"), Err(SecretError::Format));
        assert_eq!(WebhookSecret::parse("whsec_!!!"), Err(SecretError::Format));
        assert_eq!(WebhookSecret::parse("whsec_AAAA"), Err(SecretError::Length));
        assert_ne!(WebhookSecret::generate(), WebhookSecret::generate());
    }

    #[test]
    fn verification_rejects_tampering_and_stale_timestamps() {
        let s = WebhookSecret::generate();
        let other = WebhookSecret::generate();
        let sig = s.sign("msg_1", 1000, b"{}");
        assert_eq!(verify([&s], "msg_1", "1000", &sig, b"{}", 1000, 300), Ok(()));
        assert_eq!(
            verify([&s], "msg_1", "1000", &sig, b"{ }", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify([&s], "msg_2", "1000", &sig, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify([&other], "msg_1", "1000", &sig, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify([&s], "msg_1", "1001", &sig, b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify([&s], "msg_1", "1000", &sig, b"{}", 1301, 300),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            verify([&s], "msg_1", "1000", &sig, b"{}", 699, 300),
            Err(VerifyError::TooNew)
        );
        assert_eq!(
            verify([&s], "msg_1", "x", &sig, b"{}", 1000, 300),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify([&s], "msg_1", "1000", "v1,%%%", b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify([&s], "msg_1", "1000", "", b"{}", 1000, 300),
            Err(VerifyError::NoMatch)
        );
    }

    #[test]
    fn rotation_sends_one_signature_per_secret() {
        let old = WebhookSecret::generate();
        let new = WebhookSecret::generate();
        let header = signature_header([&new, &old], "msg_1", 1000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(verify([&old], "msg_1", "1000", &header, b"{}", 1000, 300), Ok(()));
        assert_eq!(verify([&new], "msg_1", "1000", &header, b"{}", 1000, 300), Ok(()));
    }
}
