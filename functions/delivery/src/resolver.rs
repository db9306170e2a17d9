//! The connect-time half of the SSRF guard: a DNS resolver for the webhook
//! client's connector that hands back only the addresses Switchyard may
//! connect to.
//!
//! The connector connects only to the addresses its resolver returns, so the
//! address checked here is the address connected to: a name that resolved to
//! a public address when the endpoint was registered and to a private one now
//! (DNS rebinding) is refused.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_core::ssrf::{SsrfError, SsrfPolicy, check_ip};

/// A resolver (a `tower_service::Service` of host names, as hyper-util's
/// `HttpConnector` takes) that resolves with the system resolver
/// (`tokio::net::lookup_host`) and returns only the addresses that pass
/// [`check_ip`] under its policy. When every address is refused, resolution
/// fails with a [`ResolveError::Refused`] naming the first refused address
/// and why, so the attempt records the reason ("…: refusing to connect to
/// `localhost`: the host resolves to a loopback address (127.0.0.1)").
///
/// The connector does **not** call the resolver for IP-literal hosts
/// (`https://10.0.0.1/`, `https://[::1]/`). Callers must therefore also run
/// [`switchyard_core::ssrf::check_url`] on every URL before sending it. The
/// client must not use a proxy (the resolver would then check the proxy's
/// address, not the endpoint's) nor follow redirects (a redirect target is
/// not passed through `check_url`): the connector of [`connector`] has no
/// proxy, and hyper's client never follows a redirect.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<SsrfPolicy>,
}

impl GuardedResolver {
    /// A resolver that keeps only the addresses `policy` allows.
    pub fn new(policy: impl Into<Arc<SsrfPolicy>>) -> Self {
        Self { policy: policy.into() }
    }

    /// The policy it checks addresses against.
    pub fn policy(&self) -> &SsrfPolicy {
        &self.policy
    }

    /// Resolves `host` and keeps the addresses the policy allows.
    pub async fn lookup(&self, host: &str) -> Result<Vec<SocketAddr>, ResolveError> {
        let addrs = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|source| ResolveError::Lookup {
                host: host.to_owned(),
                source,
            })?;
        filter_addrs(host, addrs, &self.policy)
    }
}

impl fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedResolver").field("policy", &self.policy).finish()
    }
}

/// hyper-util's `HttpConnector` resolves through any such service; it sets
/// the URL's port on the addresses returned.
impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.lookup(name.as_str()).await.map(Vec::into_iter) })
    }
}

/// Why [`GuardedResolver`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system resolver failed.
    #[error("could not resolve `{host}`: {source}")]
    Lookup {
        /// The name looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The name has no addresses.
    #[error("`{host}` resolves to no address")]
    NoAddress {
        /// The name looked up.
        host: String,
    },
    /// Every address the name resolves to is refused by the SSRF policy;
    /// `first` is the first of them, `others` how many more there were.
    #[error("refusing to connect to `{host}`: {first}{}", others_suffix(*others))]
    Refused {
        /// The name looked up.
        host: String,
        /// Why the first address was refused.
        first: SsrfError,
        /// How many more addresses were refused.
        others: usize,
    },
}

fn others_suffix(others: usize) -> String {
    match others {
        0 => String::new(),
        1 => " and 1 other refused address".to_owned(),
        n => format!(" and {n} other refused addresses"),
    }
}

impl ResolveError {
    /// The SSRF refusal, if that is why resolution failed.
    pub fn ssrf(&self) -> Option<&SsrfError> {
        match self {
            Self::Refused { first, .. } => Some(first),
            _ => None,
        }
    }
}

/// The addresses among `addrs` that pass [`check_ip`], in their order; if
/// none pass, why. Refused addresses are dropped silently when others pass:
/// the client never sees them.
pub fn filter_addrs(
    host: &str,
    addrs: impl IntoIterator<Item = SocketAddr>,
    policy: &SsrfPolicy,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let mut allowed = Vec::new();
    let mut first_refused = None;
    let mut refused = 0usize;
    for addr in addrs {
        match check_ip(addr.ip(), policy) {
            Ok(()) => {
                if !allowed.contains(&addr) {
                    allowed.push(addr);
                }
            }
            Err(e) => {
                refused += 1;
                first_refused.get_or_insert(e);
            }
        }
    }
    if !allowed.is_empty() {
        return Ok(allowed);
    }
    match first_refused {
        Some(first) => Err(ResolveError::Refused {
            host: host.to_owned(),
            first,
            others: refused - 1,
        }),
        None => Err(ResolveError::NoAddress { host: host.to_owned() }),
    }
}

/// A TCP connector guarded by `policy`: DNS through [`GuardedResolver`],
/// `TCP_NODELAY`, connects given up after `connect_timeout`, any scheme
/// (TLS is the layer above). No proxy, whatever `HTTP(S)_PROXY` says. URLs
/// must still pass [`switchyard_core::ssrf::check_url`] before they are sent.
pub fn connector(policy: impl Into<Arc<SsrfPolicy>>, connect_timeout: Duration) -> HttpConnector<GuardedResolver> {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(policy));
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::post_to;
    use std::io::{Read, Write};
    use std::net::{IpAddr, TcpListener};
    use std::time::Duration;
    use switchyard_core::ssrf::Blocked;

    /// How long the tests wait for anything.
    const TEST_TIMEOUT: Duration = Duration::from_secs(10);

    fn allow_loopback(allow_http: bool) -> SsrfPolicy {
        SsrfPolicy {
            allow_http,
            allow: SsrfPolicy::parse_allow_list("127.0.0.0/8,::1").unwrap(),
        }
    }

    fn http_only() -> SsrfPolicy {
        SsrfPolicy {
            allow_http: true,
            allow: Vec::new(),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The whole source chain of an error, joined.
    fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            out = format!("{out}: {s}");
            source = s.source();
        }
        out
    }

    /// A one-request-at-a-time HTTP server on 127.0.0.1 answering 200 to
    /// everything; returns its port and a count of requests served.
    fn spawn_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(TEST_TIMEOUT));
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        (port, served)
    }

    #[test]
    fn resolver_filter_keeps_only_allowed_addresses_in_order() {
        let strict = SsrfPolicy::strict();
        // A rebinding answer: public and private mixed.
        let got = filter_addrs(
            "rebind.example",
            [
                sa("10.0.0.1:0"),
                sa("93.184.216.34:0"),
                sa("[::1]:0"),
                sa("[2606:2800:220:1::1]:0"),
                sa("93.184.216.34:0"),
            ],
            &strict,
        )
        .unwrap();
        assert_eq!(got, [sa("93.184.216.34:0"), sa("[2606:2800:220:1::1]:0")]);
    }

    #[test]
    fn resolver_filter_refuses_when_nothing_passes() {
        let err = filter_addrs(
            "metadata.example",
            [
                sa("169.254.169.254:0"),
                sa("[fd00:ec2::254]:0"),
                sa("[::ffff:8.8.8.8]:0"),
            ],
            &SsrfPolicy::strict(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to connect to `metadata.example`: the host resolves to a link-local address \
             (169.254.169.254) and 2 other refused addresses"
        );
        assert_eq!(
            err.ssrf(),
            Some(&SsrfError::Address {
                ip: IpAddr::from([169, 254, 169, 254]),
                reason: Blocked::LinkLocal
            })
        );
        let one = filter_addrs("a.example", [sa("10.0.0.1:0"), sa("[::1]:0")], &SsrfPolicy::strict()).unwrap_err();
        assert!(
            one.to_string().ends_with("(10.0.0.1) and 1 other refused address"),
            "{one}"
        );
        let none = filter_addrs("empty.example", [], &SsrfPolicy::strict()).unwrap_err();
        assert_eq!(none.to_string(), "`empty.example` resolves to no address");
        assert_eq!(none.ssrf(), None);
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_under_strict_policy() {
        let resolver = GuardedResolver::new(SsrfPolicy::strict());
        let err = resolver.lookup("localhost").await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("refusing to connect to `localhost`: "), "{msg}");
        assert!(msg.contains("loopback"), "{msg}");
        assert!(matches!(
            err.ssrf(),
            Some(SsrfError::Address {
                reason: Blocked::Loopback,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn resolver_allows_localhost_when_loopback_is_allow_listed() {
        let resolver = GuardedResolver::new(Arc::new(allow_loopback(false)));
        let addrs = resolver.lookup("localhost").await.unwrap();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn resolver_as_the_connectors_service() {
        use tower_service::Service;
        let mut resolver = GuardedResolver::new(SsrfPolicy::strict());
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.call(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(chain(&err).contains("loopback"), "{err}");
        assert!(err.ssrf().is_some(), "{err}");
        let mut allowed = GuardedResolver::new(allow_loopback(true));
        let addrs: Vec<SocketAddr> = allowed.call("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
    }

    #[tokio::test]
    async fn resolver_request_to_localhost_is_refused_under_strict_policy() {
        use switchyard_core::ports::WebhookSender;
        let (port, served) = spawn_server();
        let sender = crate::HttpSender::new(TEST_TIMEOUT, http_only()).unwrap();
        let err = sender
            .send(&post_to(&format!("http://localhost:{port}/")))
            .await
            .unwrap_err();
        let switchyard_core::model::SendError::Refused(detail) = &err else {
            panic!("not refused: {err:?}");
        };
        assert!(detail.contains("loopback"), "{detail}");
        assert!(detail.contains("refusing to connect to `localhost`"), "{detail}");
        assert_eq!(err.kind(), "address_refused");
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn resolver_request_to_localhost_succeeds_with_allow_list() {
        use switchyard_core::ports::WebhookSender;
        let (port, served) = spawn_server();
        let sender = crate::HttpSender::new(TEST_TIMEOUT, allow_loopback(true)).unwrap();
        let resp = sender
            .send(&post_to(&format!("http://localhost:{port}/")))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status, 200);
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
