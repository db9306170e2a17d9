//! Seeding the registry: tenants and endpoints stored directly.

use crate::Stack;
use switchyard_core::{ApiKey, Endpoint, EndpointUrl, EventTypeFilter, TenantId};

impl Stack {
    /// A tenant and an API key for it, stored in the registry.
    pub async fn tenant(&self, id: &str) -> (TenantId, ApiKey) {
        let tenant = TenantId::parse(id).unwrap_or_else(|e| panic!("{e}"));
        let key = ApiKey::generate();
        self.registry
            .put_tenant(&tenant, id)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.registry
            .put_api_key(&key.hash(), &tenant)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (tenant, key)
    }

    /// An endpoint for `tenant` at `url` receiving `filters`, stored.
    pub async fn endpoint(&self, tenant: &TenantId, url: &str, filters: &[&str]) -> Endpoint {
        let filters = filters
            .iter()
            .map(|f| EventTypeFilter::parse(*f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect();
        let ep = Endpoint::new(
            tenant.clone(),
            EndpointUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}")),
            filters,
            switchyard_core::time_util::now_utc(),
        );
        // Registered as the management API will: through the SSRF check
        // (local mode's policy: loopback and plain http allowed).
        self.registry
            .register_endpoint(&ep, &switchyard_local::local_ssrf_policy())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ep
    }

    /// An endpoint for `tenant` at `url` receiving `order.*`, retried by
    /// `policy` (a retry policy's JSON), stored.
    pub async fn order_endpoint(&self, tenant: &TenantId, url: &str, policy: serde_json::Value) -> Endpoint {
        let mut ep = self.endpoint(tenant, url, &["order.*"]).await;
        ep.retry_policy = serde_json::from_value(policy).unwrap_or_else(|e| panic!("a retry policy: {e}"));
        self.registry.put_endpoint(&ep).await.unwrap_or_else(|e| panic!("{e}"));
        ep
    }
}
