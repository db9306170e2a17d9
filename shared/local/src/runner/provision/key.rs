//! `AWS::KMS::Key`: a symmetric encryption key, created in moto (which
//! serves `GenerateDataKey` and `Decrypt`). Its `Ref` is its key id.

use super::{Clients, KEY, check_props, tags};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_kms::error::DisplayErrorContext as KmsCtx;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use serde_json::{Map, Value};

/// The properties of a key the local runner applies (or that change
/// nothing locally: the deletion window).
const KNOWN: &[&str] = &[
    "Description",
    "Enabled",
    "EnableKeyRotation",
    "KeyPolicy",
    "KeySpec",
    "KeyUsage",
    "PendingWindowInDays",
    "Tags",
];

/// What `CreateKey` is sent for key `id`.
#[derive(Debug, PartialEq)]
struct KeySpecOf {
    description: Option<String>,
    policy: Option<String>,
    rotation: bool,
    enabled: bool,
}

fn key_spec(id: &str, props: &Map<String, Value>) -> Result<KeySpecOf, LocalError> {
    check_props(id, KEY, props, KNOWN)?;
    for (name, only) in [("KeySpec", "SYMMETRIC_DEFAULT"), ("KeyUsage", "ENCRYPT_DECRYPT")] {
        if let Some(v) = props.get(name).and_then(Value::as_str)
            && v != only
        {
            return Err(super::err(id, format!("({KEY}) has {name} {v}; locally only {only}")));
        }
    }
    let flag = |name: &str, default: bool| match props.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => default,
    };
    Ok(KeySpecOf {
        description: props.get("Description").and_then(Value::as_str).map(str::to_string),
        policy: props.get("KeyPolicy").map(|p| match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        rotation: flag("EnableKeyRotation", false),
        enabled: flag("Enabled", true),
    })
}

/// Creates key `id` in moto; its `Ref` is the key id, `Arn` and `KeyId`
/// its attributes.
pub(super) async fn create_key(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
) -> Result<(Attrs, String), LocalError> {
    let spec = key_spec(id, props)?;
    let what = |op: &str| format!("{op} ({id})");
    let out = c
        .kms
        .create_key()
        .set_description(spec.description)
        .set_policy(spec.policy)
        .key_spec(KeySpec::SymmetricDefault)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .set_tags(Some(
            tags(props)
                .into_iter()
                .filter_map(|(k, v)| Tag::builder().tag_key(k).tag_value(v).build().ok())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| aws_err(what("CreateKey"), KmsCtx(e)))?;
    let meta = out
        .key_metadata
        .ok_or_else(|| aws_err(what("CreateKey"), "no key metadata"))?;
    let key_id = meta.key_id;
    if spec.rotation {
        c.kms
            .enable_key_rotation()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| aws_err(what("EnableKeyRotation"), KmsCtx(e)))?;
    }
    if !spec.enabled {
        c.kms
            .disable_key()
            .key_id(&key_id)
            .send()
            .await
            .map_err(|e| aws_err(what("DisableKey"), KmsCtx(e)))?;
    }
    let arn = meta.arn.unwrap_or_else(|| cfn.arn("kms", &format!("key/{key_id}")));
    Ok((Attrs::new(&key_id).with("Arn", arn).with("KeyId", &key_id), key_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::props;
    use serde_json::json;

    #[test]
    fn a_key_takes_its_policy_and_rotation_and_refuses_what_moto_cannot_be() {
        let spec = key_spec(
            "Key",
            &props(json!({
                "Description": "d",
                "EnableKeyRotation": true,
                "KeyPolicy": {"Version": "2012-10-17", "Statement": []},
            })),
        )
        .unwrap();
        assert_eq!(spec.description.as_deref(), Some("d"));
        assert!(spec.rotation && spec.enabled);
        assert!(spec.policy.unwrap().contains("2012-10-17"));
        let e = key_spec("Key", &props(json!({"KeySpec": "RSA_2048"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("Key") && e.contains("RSA_2048"), "{e}");
        let e = key_spec("Key", &props(json!({"MultiRegion": true})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("MultiRegion"), "{e}");
    }
}
