//! The webhook HTTP client: one per process, reused across invocations.
//!
//! hyper-util's pooling client over rustls, without reqwest's layers: the
//! engine needs none of them (no redirects, no proxy, no decompression, no
//! cookies), and on a loaded instance they cost more CPU per request than
//! all of the engine's own work (`cargo xtask bench-delivery --diagnose`).

use crate::resolver::{GuardedResolver, ResolveError, connector};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::borrow::Cow;
use std::time::Duration;
use switchyard_core::delivery::{MAX_RECORDED_BODY, truncate_body};
use switchyard_core::model::{HeaderText, SendError, WebhookRequest, WebhookResponse};
use switchyard_core::ports::WebhookSender;
use switchyard_core::ssrf::SsrfPolicy;
use tokio::time::{Instant, timeout_at};

/// The default limit on a whole attempt, connect to last byte kept.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// Sends webhooks over HTTP/1.1, TLS by rustls with the system's roots.
/// Redirects are never followed, no proxy is used, and every address
/// connected to has passed the SSRF policy (the resolver returns only
/// allowed addresses, so DNS rebinding cannot slip a private address in
/// between check and connect). Each attempt, from the connection to the
/// last byte kept, ends within the timeout.
#[derive(Clone, Debug)]
pub struct HttpSender {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

/// Why the webhook client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the webhook client: {0}")]
pub struct SenderError(#[from] std::io::Error);

impl HttpSender {
    /// A client whose attempts end within `timeout` (connects within the
    /// smaller of it and 10 s). Loads the system's root certificates.
    pub fn new(timeout: Duration, policy: SsrfPolicy) -> Result<Self, SenderError> {
        let tcp = connector(policy, timeout.min(Duration::from_secs(10)));
        let tls = HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(tls);
        Ok(Self { client, timeout })
    }
}

/// A header name; a static one (Switchyard's own) is used without a copy.
fn header_name(name: &HeaderText) -> Option<HeaderName> {
    match name {
        // `from_static` takes exactly these (and panics on anything else).
        Cow::Borrowed(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            Some(HeaderName::from_static(s))
        }
        _ => HeaderName::from_bytes(name.as_bytes()).ok(),
    }
}

/// A header value; a static one is used without a copy.
fn header_value(value: &HeaderText) -> Option<HeaderValue> {
    match value {
        // `from_static` takes visible ASCII, spaces and tabs (and panics on
        // anything else).
        Cow::Borrowed(s) if s.bytes().all(|b| (32..127).contains(&b) || b == b'\t') => {
            Some(HeaderValue::from_static(s))
        }
        _ => HeaderValue::from_str(value).ok(),
    }
}

/// What an attempt's failure was: the resolver's SSRF refusal, a timeout
/// (the connect timeout included), a failed connection, or any other
/// failure of the exchange. The detail is the whole source chain ("client
/// error (Connect): tcp connect error: Connection refused (os error 111)").
fn classify(e: &hyper_util::client::legacy::Error) -> SendError {
    let mut detail = e.to_string();
    let mut timed_out = false;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<ResolveError>()
            && refused.ssrf().is_some()
        {
            return SendError::Refused(refused.to_string());
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    if timed_out {
        SendError::Timeout
    } else if e.is_connect() {
        SendError::Connect(detail)
    } else {
        SendError::Io(detail)
    }
}

impl WebhookSender for HttpSender {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        let deadline = Instant::now() + self.timeout;
        let uri =
            hyper::Uri::try_from(request.url.url().as_str()).map_err(|e| SendError::Io(format!("invalid URL: {e}")))?;
        let mut http = hyper::Request::new(Full::new(Bytes::from(request.body.clone())));
        *http.method_mut() = hyper::Method::POST;
        *http.uri_mut() = uri;
        let headers: &mut HeaderMap = http.headers_mut();
        headers.reserve(request.headers.len());
        for (name, value) in &request.headers {
            let (Some(name), Some(value)) = (header_name(name), header_value(value)) else {
                return Err(SendError::Io(format!("invalid header `{name}`")));
            };
            headers.append(name, value);
        }
        let resp = match timeout_at(deadline, self.client.request(http)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(classify(&e)),
            Err(_) => return Err(SendError::Timeout),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Keep the start of the body; never read more than that, nor past
        // the deadline. The status is already known: a body cut short (or
        // still dripping at the deadline) does not change it.
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        while kept.len() < MAX_RECORDED_BODY && !body.is_end_stream() {
            match timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        kept.extend_from_slice(data);
                    }
                }
                Ok(Some(Err(_)) | None) | Err(_) => break,
            }
        }
        Ok(WebhookResponse {
            status,
            body: truncate_body(&kept, MAX_RECORDED_BODY),
            retry_after,
        })
    }

    fn wait(&self, after: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(after)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use switchyard_core::EndpointUrl;
    use switchyard_core::ssrf::SsrfPolicy;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn static_header_text_is_used_as_is_and_invalid_text_is_refused() {
        assert_eq!(header_name(&Cow::Borrowed("webhook-id")).unwrap(), "webhook-id");
        assert_eq!(header_name(&Cow::Owned("X-Team".into())).unwrap(), "x-team");
        // Never a panic, whatever a caller puts in a static name or value.
        assert!(header_name(&Cow::Borrowed("Webhook-Id")).is_some());
        assert!(header_name(&Cow::Borrowed("bad name")).is_none());
        assert!(header_name(&Cow::Borrowed("")).is_none());
        assert_eq!(
            header_value(&Cow::Borrowed("application/json")).unwrap(),
            "application/json"
        );
        assert_eq!(header_value(&Cow::Owned("v1,abc=".into())).unwrap(), "v1,abc=");
        assert!(header_value(&Cow::Borrowed("a\r\nb")).is_none());
        assert!(header_value(&Cow::Owned("a\nb".into())).is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_header_and_the_body_reach_the_receiver() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).ends_with("{\"n\":1}") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        let sender = HttpSender::new(Duration::from_secs(10), loopback()).unwrap();
        let request = WebhookRequest {
            url: EndpointUrl::parse(&url).unwrap(),
            headers: vec![
                (Cow::Owned("x-team".into()), Cow::Owned("billing".into())),
                (Cow::Borrowed("webhook-id"), Cow::Owned("evt_1".into())),
                (Cow::Borrowed("content-type"), Cow::Borrowed("application/json")),
            ],
            body: r#"{"n":1}"#.into(),
        };
        let resp = sender.send(&request).await.unwrap();
        assert_eq!((resp.status, resp.body.as_str()), (201, "ok"));
        let head = server.await.unwrap().to_ascii_lowercase();
        for line in [
            "post /hook http/1.1\r\n",
            "x-team: billing\r\n",
            "webhook-id: evt_1\r\n",
            "content-type: application/json\r\n",
            "content-length: 7\r\n",
        ] {
            assert!(head.contains(line), "{line:?} in {head}");
        }
    }

    fn loopback() -> SsrfPolicy {
        SsrfPolicy {
            allow_http: true,
            allow: SsrfPolicy::parse_allow_list("127.0.0.0/8").unwrap(),
        }
    }

    /// A POST of `{}` to `url`, without headers.
    pub(crate) fn post_to(url: &str) -> WebhookRequest {
        WebhookRequest {
            url: EndpointUrl::parse(url).unwrap(),
            headers: Vec::new(),
            body: "{}".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn https_speaks_tls_and_a_failed_handshake_is_a_failed_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut first = [0u8; 1];
            s.read_exact(&mut first).await.unwrap();
            // Not TLS: the client's handshake fails.
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
            first[0]
        });
        let sender = HttpSender::new(Duration::from_secs(10), loopback()).unwrap();
        let err = sender
            .send(&post_to(&format!("https://127.0.0.1:{port}/hook")))
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Connect(_)), "{err:?}");
        // 0x16: a TLS handshake record (the ClientHello).
        assert_eq!(server.await.unwrap(), 0x16);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_unanswered_request_times_out_and_a_closed_port_is_a_failed_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let sender = HttpSender::new(Duration::from_millis(300), loopback()).unwrap();
        let started = std::time::Instant::now();
        let err = sender.send(&post_to(&url)).await.unwrap_err();
        assert!(matches!(err, SendError::Timeout), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        held.abort();

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let err = sender.send(&post_to(&url)).await.unwrap_err();
        let SendError::Connect(detail) = &err else {
            panic!("{err:?}");
        };
        assert!(detail.to_lowercase().contains("refused"), "{detail}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_body_dripping_past_the_deadline_keeps_its_status_and_what_came() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 100\r\n\r\nslow")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let sender = HttpSender::new(Duration::from_millis(300), loopback()).unwrap();
        let started = std::time::Instant::now();
        let resp = sender.send(&post_to(&url)).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(
            (resp.status, resp.body.as_str(), resp.retry_after.as_deref()),
            (503, "slow", Some("7"))
        );
        server.abort();
    }
}
