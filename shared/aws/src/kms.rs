//! Data keys for envelope encryption from AWS KMS.

use crate::error::port_error;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use std::sync::Arc;
use switchyard_core::PortError;
use switchyard_core::ports::{DataKey, DataKeyBytes, DataKeys};
use switchyard_core::sealing::Keyring;

/// The encryption context of every data key: KMS binds it to the wrapped
/// key, so a data key made for endpoint secrets unwraps only as one, and
/// CloudTrail shows it on every call.
pub const ENCRYPTION_CONTEXT: (&str, &str) = ("purpose", "switchyard-endpoint-secrets");

/// Data keys made (`GenerateDataKey`, AES_256) and unwrapped (`Decrypt`) by
/// one KMS key.
#[derive(Clone, Debug)]
pub struct KmsDataKeys {
    client: aws_sdk_kms::Client,
    key_id: String,
}

/// A keyring whose data keys come from KMS.
pub type KmsKeyring = Keyring<KmsDataKeys>;

impl KmsDataKeys {
    /// Data keys of the KMS key `key_id` (an id, an ARN or an alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }

    /// A keyring over the KMS key `key_id`, to keep for the process's life.
    pub fn keyring(sdk: &aws_config::SdkConfig, key_id: impl Into<String>) -> Arc<KmsKeyring> {
        Arc::new(Keyring::new(Self::new(aws_sdk_kms::Client::new(sdk), key_id)))
    }
}

fn key_bytes(plaintext: Option<Blob>, op: &str) -> Result<DataKeyBytes, PortError> {
    let bytes = plaintext.map(Blob::into_inner).unwrap_or_default();
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| PortError::permanent(format!("{op}: KMS answered no 256-bit key")))?;
    Ok(DataKeyBytes(key))
}

impl DataKeys for KmsDataKeys {
    async fn generate(&self) -> Result<DataKey, PortError> {
        let op = "KMS GenerateDataKey";
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(ENCRYPTION_CONTEXT.0, ENCRYPTION_CONTEXT.1)
            .send()
            .await
            .map_err(|e| port_error(op, e))?;
        let wrapped = out.ciphertext_blob.map(Blob::into_inner).unwrap_or_default();
        if wrapped.is_empty() {
            return Err(PortError::permanent(format!("{op}: KMS answered no wrapped key")));
        }
        Ok(DataKey {
            plaintext: key_bytes(out.plaintext, op)?,
            wrapped,
        })
    }

    async fn unwrap(&self, wrapped: &[u8]) -> Result<DataKeyBytes, PortError> {
        let op = "KMS Decrypt";
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .encryption_context(ENCRYPTION_CONTEXT.0, ENCRYPTION_CONTEXT.1)
            .send()
            .await
            .map_err(|e| port_error(op, e))?;
        key_bytes(out.plaintext, op)
    }
}
