//! Endpoints: where a tenant wants its webhooks.

use crate::event_type::{EventType, EventTypeFilter, any_matches};
use crate::ids::{EndpointId, TenantId};
use crate::signing::WebhookSecret;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use url::Url;

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is not a valid absolute URL")]
    Syntax,
    #[error("must use http or https")]
    Scheme,
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a user name or password")]
    Credentials,
    #[error("must not carry a fragment")]
    Fragment,
    #[error("is longer than {MAX_URL_LEN} characters")]
    TooLong,
}

/// An absolute `http`/`https` URL with a host, no credentials and no fragment.
///
/// Which hosts may be called (and whether plain `http` is allowed) is a
/// deployment policy checked when the endpoint is registered and again when
/// it is called; this type only guarantees the shape.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let url = Url::parse(s).map_err(|_| UrlError::Syntax)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        Self::parse(&s)
    }
}

impl From<EndpointUrl> for String {
    fn from(u: EndpointUrl) -> String {
        u.0.into()
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Query strings often carry tokens: show scheme, host and path only.
        write!(
            f,
            "EndpointUrl({}://{}{})",
            self.0.scheme(),
            self.0.host_str().unwrap_or(""),
            self.0.path()
        )
    }
}

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant_id: TenantId,
    pub url: EndpointUrl,
    /// Event types it receives; empty means all.
    #[serde(default)]
    pub filters: Vec<EventTypeFilter>,
    pub secret: WebhookSecret,
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    #[serde(with = "crate::time_util::serde_rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Endpoint {
    /// A new enabled endpoint with a fresh secret.
    pub fn new(tenant_id: TenantId, url: EndpointUrl, filters: Vec<EventTypeFilter>, now: OffsetDateTime) -> Self {
        Self {
            id: EndpointId::generate(),
            tenant_id,
            url,
            filters,
            secret: WebhookSecret::generate(),
            enabled: true,
            description: String::new(),
            created_at: now,
        }
    }

    /// Whether this endpoint should receive an event of `event_type`.
    pub fn accepts(&self, event_type: &EventType) -> bool {
        self.enabled && any_matches(&self.filters, event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_for_shape() {
        assert!(EndpointUrl::parse("https://hooks.example.com/x?y=1").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook").is_ok());
        assert_eq!(EndpointUrl::parse("ftp://example.com/"), Err(UrlError::Scheme));
        assert_eq!(EndpointUrl::parse("file:///etc/passwd"), Err(UrlError::Scheme));
        assert_eq!(EndpointUrl::parse("example.com/hook"), Err(UrlError::Syntax));
        assert_eq!(
            EndpointUrl::parse("https://user:pw@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(EndpointUrl::parse("https://example.com/#frag"), Err(UrlError::Fragment));
        assert_eq!(
            EndpointUrl::parse(&format!("https://e.com/{}", "a".repeat(2048))),
            Err(UrlError::TooLong)
        );
    }

    #[test]
    fn debug_hides_query_strings() {
        let u = EndpointUrl::parse("https://e.com/hook?token=s3cr3t").unwrap();
        assert!(!format!("{u:?}").contains("s3cr3t"));
    }

    #[test]
    fn endpoints_accept_by_filter_and_state() {
        let t = TenantId::parse("t").unwrap();
        let url = EndpointUrl::parse("https://e.com/").unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut ep = Endpoint::new(t, url, vec![EventTypeFilter::parse("user.*").unwrap()], now);
        let created = EventType::parse("user.created").unwrap();
        assert!(ep.accepts(&created));
        assert!(!ep.accepts(&EventType::parse("order.placed").unwrap()));
        ep.enabled = false;
        assert!(!ep.accepts(&created));
        assert!(!format!("{ep:?}").contains(&ep.secret.expose()[6..]));
    }
}
