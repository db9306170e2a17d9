//! The webhook HTTP client: one per process, reused across invocations.

use crate::resolver::{ResolveError, client_builder};
use std::time::Duration;
use switchyard_core::delivery::{MAX_RECORDED_BODY, SendError, WebhookRequest, WebhookResponse, truncate_body};
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
        let mut builder = self.client.post(request.url.url().clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut resp = builder
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
}
