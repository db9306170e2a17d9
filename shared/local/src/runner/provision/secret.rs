//! `AWS::SecretsManager::Secret`: a secret, created in moto, with its
//! value given (`SecretString`) or generated as CloudFormation would
//! (`GenerateSecretString`, through Secrets Manager's own
//! `GetRandomPassword`).

use super::{Clients, SECRET, check_props, err, tags, text};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_secretsmanager::error::DisplayErrorContext as SmCtx;
use aws_sdk_secretsmanager::types::Tag;
use serde_json::{Map, Value};

/// The properties of a secret the local runner applies.
const KNOWN: &[&str] = &[
    "Name",
    "Description",
    "SecretString",
    "GenerateSecretString",
    "KmsKeyId",
    "Tags",
];

/// The options of `GenerateSecretString` the runner applies (the plain
/// string forms; a JSON template with a generated key is not supported).
const GENERATE_KNOWN: &[&str] = &[
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeLowercase",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "IncludeSpace",
    "RequireEachIncludedType",
];

/// How the secret's value is made.
#[derive(Debug, PartialEq)]
enum Made {
    Given(String),
    Generated(Map<String, Value>),
}

/// The secret's name (its `Name`, else `<stack>-<id>`) and how its value
/// is made, checked against what the runner can apply.
fn secret_spec(cfn: &Cfn, id: &str, props: &Map<String, Value>) -> Result<(String, Made), LocalError> {
    check_props(id, SECRET, props, KNOWN)?;
    let name = props
        .get("Name")
        .map(text)
        .unwrap_or_else(|| format!("{}-{id}", cfn.stack_name));
    let value = match (props.get("SecretString"), props.get("GenerateSecretString")) {
        (Some(s), None) => Made::Given(text(s)),
        (None, Some(Value::Object(g))) => {
            for k in g.keys() {
                if !GENERATE_KNOWN.contains(&k.as_str()) {
                    return Err(err(
                        id,
                        format!("(GenerateSecretString) has {k}, which the local runner does not know how to apply"),
                    ));
                }
            }
            Made::Generated(g.clone())
        }
        (None, None) => Made::Given(String::new()),
        _ => return Err(err(id, "has both SecretString and GenerateSecretString")),
    };
    Ok((name, value))
}

fn flag(g: &Map<String, Value>, key: &str) -> Option<bool> {
    g.get(key).map(|v| matches!(v, Value::Bool(true)) || text(v) == "true")
}

/// Creates secret `id` in moto; its `Ref` is its ARN, `Id` too.
pub(super) async fn create_secret(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
) -> Result<(Attrs, String), LocalError> {
    let (name, value) = secret_spec(cfn, id, props)?;
    let value = match value {
        Made::Given(s) => s,
        Made::Generated(g) => {
            let length = g
                .get("PasswordLength")
                .map(|v| text(v).parse::<i64>())
                .transpose()
                .map_err(|e| err(id, format!("(GenerateSecretString) PasswordLength: {e}")))?;
            c.sm.get_random_password()
                .set_password_length(length)
                .set_exclude_characters(g.get("ExcludeCharacters").map(text))
                .set_exclude_lowercase(flag(&g, "ExcludeLowercase"))
                .set_exclude_numbers(flag(&g, "ExcludeNumbers"))
                .set_exclude_punctuation(flag(&g, "ExcludePunctuation"))
                .set_exclude_uppercase(flag(&g, "ExcludeUppercase"))
                .set_include_space(flag(&g, "IncludeSpace"))
                .set_require_each_included_type(flag(&g, "RequireEachIncludedType"))
                .send()
                .await
                .map_err(|e| aws_err(format!("GetRandomPassword ({id})"), SmCtx(e)))?
                .random_password
                .unwrap_or_default()
        }
    };
    let mut req =
        c.sm.create_secret()
            .name(&name)
            .secret_string(value)
            .set_description(props.get("Description").map(text))
            .set_kms_key_id(props.get("KmsKeyId").map(text));
    for (k, v) in tags(props) {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_err(format!("CreateSecret {name} ({id})"), SmCtx(e)))?;
    let arn = out
        .arn
        .unwrap_or_else(|| cfn.arn("secretsmanager", &format!("secret:{name}")));
    Ok((Attrs::new(&arn).with("Id", &arn), name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::{cfn, props};
    use serde_json::json;

    #[test]
    fn a_secret_is_named_after_its_stack_unless_it_has_a_name() {
        let (name, value) = secret_spec(&cfn(), "Key", &props(json!({"SecretString": "v"}))).unwrap();
        assert_eq!((name.as_str(), value), ("stk-Key", Made::Given("v".into())));
        let (name, _) = secret_spec(&cfn(), "Key", &props(json!({"Name": "mine"}))).unwrap();
        assert_eq!(name, "mine");
    }

    #[test]
    fn a_generated_secret_takes_its_options_and_refuses_unknown_ones() {
        let (_, value) = secret_spec(
            &cfn(),
            "Key",
            &props(json!({"GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": true}})),
        )
        .unwrap();
        let Made::Generated(g) = value else { panic!("generated") };
        assert_eq!(flag(&g, "ExcludePunctuation"), Some(true));
        assert_eq!(flag(&g, "IncludeSpace"), None);
        let e = secret_spec(
            &cfn(),
            "Key",
            &props(json!({"GenerateSecretString": {"SecretStringTemplate": "{}", "GenerateStringKey": "k"}})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("Key") && e.contains("SecretStringTemplate"), "{e}");
        let e = secret_spec(
            &cfn(),
            "Key",
            &props(json!({"SecretString": "v", "GenerateSecretString": {}})),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("both"), "{e}");
        let e = secret_spec(&cfn(), "Key", &props(json!({"ReplicaRegions": []})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ReplicaRegions"), "{e}");
    }
}
