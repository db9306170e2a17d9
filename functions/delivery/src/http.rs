//! The webhook HTTP client: one per process, reused across invocations.

use crate::resolver::{ResolveError, client_builder};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::borrow::Cow;
use std::time::Duration;
use switchyard_core::delivery::{
    HeaderText, MAX_RECORDED_BODY, SendError, WebhookRequest, WebhookResponse, truncate_body,
};
use switchyard_core::ports::WebhookSender;
use switchyard_core::ssrf::SsrfPolicy;

/// The default limit on a whole attempt, connect to last byte kept.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends webhooks with reqwest over rustls. Redirects are never followed, no
/// proxy is used, and every address connected to has passed the SSRF policy
/// (the resolver returns only allowed addresses, so DNS rebinding cannot
/// slip a private address in between check and connect).
#[derive(Clone, Debug)]
pub struct HttpSender {
    client: reqwest::Client,
}

impl HttpSender {
    pub fn new(timeout: Duration, policy: SsrfPolicy) -> Result<Self, reqwest::Error> {
        let client = client_builder(policy)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { client })
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

fn classify(e: &reqwest::Error) -> SendError {
    // The source chain carries the useful part ("connection refused"), and
    // the resolver's refusal if the SSRF guard stopped the connection.
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<ResolveError>()
            && refused.ssrf().is_some()
        {
            return SendError::Refused(refused.to_string());
        }
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    if e.is_timeout() {
        SendError::Timeout
    } else if e.is_connect() {
        SendError::Connect(detail)
    } else {
        SendError::Io(detail)
    }
}

impl WebhookSender for HttpSender {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        let mut headers = HeaderMap::with_capacity(request.headers.len());
        for (name, value) in &request.headers {
            let (Some(name), Some(value)) = (header_name(name), header_value(value)) else {
                return Err(SendError::Io(format!("invalid header `{name}`")));
            };
            headers.append(name, value);
        }
        let mut resp = self
            .client
            .post(request.url.url().clone())
            .headers(headers)
            .body(request.body.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // Keep the start of the body; never read more than that.
        let mut kept = Vec::new();
        while kept.len() < MAX_RECORDED_BODY {
            match resp.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is already known; a body cut short does not change it.
                Err(_) => break,
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
mod tests {
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
        let policy = SsrfPolicy {
            allow_http: true,
            allow: SsrfPolicy::parse_allow_list("127.0.0.0/8").unwrap(),
        };
        let sender = HttpSender::new(Duration::from_secs(10), policy).unwrap();
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
}
