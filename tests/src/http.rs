//! A client of a local runner's HTTP API.

use crate::ADMIN_KEY;

/// A client of a local runner's HTTP API (real HTTP on loopback).
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

impl Http {
    /// The first HTTP API the runner serves.
    pub fn of(runner: &switchyard_local::runner::Runner) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: runner.api_url(None).expect("the template serves an HTTP API"),
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .header("authorization", format!("Bearer {key}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// A tenant and its API key, made over HTTP with the admin key.
    pub async fn tenant(&self, id: &str) -> String {
        let (s, b) = self
            .call(
                "POST",
                "/v1/admin/tenants",
                ADMIN_KEY,
                Some(serde_json::json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .call(
                "POST",
                &format!("/v1/admin/tenants/{id}/api-keys"),
                ADMIN_KEY,
                Some(serde_json::json!({})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        b["api_key"].as_str().unwrap().to_string()
    }

    /// An endpoint for `url`; returns (id, secret).
    pub async fn endpoint(&self, key: &str, url: &str, filters: &[&str]) -> (String, switchyard_core::WebhookSecret) {
        let (s, b) = self
            .call(
                "POST",
                "/v1/endpoints",
                key,
                Some(serde_json::json!({"url": url, "filter_types": filters})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let secret = switchyard_core::WebhookSecret::parse(b["secret"].as_str().unwrap()).unwrap();
        (b["id"].as_str().unwrap().to_string(), secret)
    }
}
