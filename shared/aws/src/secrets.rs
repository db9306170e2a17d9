//! The admin key kept in Secrets Manager: the template generates it at
//! deploy time (`AdminKeySecret`), and the API and admin functions read it
//! through [`SecretsManagerAdminKey`] on their first admin request
//! (`switchyard_core::admin_key` caches it).

use crate::error::port_error;
use aws_sdk_secretsmanager::Client;
use switchyard_core::PortError;
use switchyard_core::admin_key::{AdminKeySource, KeyFuture};

/// The current value of one Secrets Manager secret, as the admin key.
#[derive(Debug, Clone)]
pub struct SecretsManagerAdminKey {
    client: Client,
    secret_id: String,
}

impl SecretsManagerAdminKey {
    /// Reads secret `secret_id` (its ARN or name) with `client`.
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl AdminKeySource for SecretsManagerAdminKey {
    fn current(&self) -> KeyFuture<'_> {
        Box::pin(async move {
            let out = self
                .client
                .get_secret_value()
                .secret_id(&self.secret_id)
                .send()
                .await
                .map_err(|e| port_error("GetSecretValue", e))?;
            out.secret_string
                .ok_or_else(|| PortError::permanent("the admin key secret has no string value"))
        })
    }
}
