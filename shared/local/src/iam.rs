//! The IAM permissions `template.yaml` gives each function, resolved to
//! the ARNs of one provisioned stack, and IAM's matching of an action and
//! a resource against them.
//!
//! A function's grants are its `Policies` (inline statements, and the few
//! SAM policy templates below) and what SAM adds to its role for its
//! events: for each `SQS` event, the event source mapping's
//! `sqs:ReceiveMessage`, `sqs:DeleteMessage` and `sqs:GetQueueAttributes`
//! on the queue (SAM attaches `AWSLambdaSQSQueueExecutionRole`, which
//! allows them on every queue; the mapping needs them on its own queue
//! only); for an SQS `OnFailure` destination, `sqs:SendMessage` on it.
//! Those are used by Lambda, not by the function's code: [`By::Lambda`].
//!
//! Conditions are not evaluated (they only narrow a grant); `Deny`,
//! `NotAction` and `NotResource` and any other policy form are refused,
//! so the check never passes by not reading a grant.

use crate::LocalError;
use crate::runner::cfn::Cfn;
use serde_json::Value;

/// Who uses a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum By {
    /// The function's own code.
    Function,
    /// Lambda on the function's behalf (event source mapping, destination).
    Lambda,
}

/// One statement of a function's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The statement's `Sid` (`ESM:<event>` and `OnFailure` for what SAM adds).
    pub sid: String,
    /// Action patterns (`sqs:SendMessage`, `dynamodb:*`).
    pub actions: Vec<String>,
    /// Resource ARN patterns, resolved for the stack.
    pub resources: Vec<String>,
    /// Who uses it.
    pub by: By,
}

impl Grant {
    /// Whether this statement allows `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        self.actions.iter().any(|a| action_matches(a, action)) && self.resources.iter().any(|r| glob(r, resource))
    }
}

/// Whether IAM action pattern `pattern` (`sqs:Send*`) covers `action`;
/// actions are case-insensitive.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
pub fn glob(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn refuse(function: &str, what: impl std::fmt::Display) -> LocalError {
    LocalError::Resource {
        id: function.to_string(),
        reason: format!("IAM: {what}"),
    }
}

/// The grants of function `function` of `template`, resolved in `cfn`
/// (a provisioned stack's context, e.g. the runner's `Plan::cfn`).
pub fn function_grants(template: &Value, cfn: &Cfn, function: &str) -> Result<Vec<Grant>, LocalError> {
    let props = template
        .pointer(&format!("/Resources/{function}/Properties"))
        .ok_or_else(|| refuse(function, "no such function"))?;
    let resolve = |v: &Value| {
        cfn.resolve(v)
            .map_err(|e| refuse(function, format!("a policy does not resolve: {e}")))
    };
    let mut grants = Vec::new();
    let policies = match props.get("Policies") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    for (n, policy) in policies.iter().enumerate() {
        let Some(obj) = policy.as_object() else {
            return Err(refuse(
                function,
                format!("policy {n} is a managed policy name ({policy}); list its statements inline"),
            ));
        };
        if let Some(statements) = obj.get("Statement") {
            for (k, st) in strings_or_list(statements).iter().enumerate() {
                grants.push(statement(function, &resolve(st)?, &format!("{n}.{k}"))?);
            }
            continue;
        }
        for (template_name, args) in obj {
            let args = resolve(args)?;
            let arg = |k: &str| {
                args.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| refuse(function, format!("{template_name} without {k}")))
            };
            let (actions, resource) = match template_name.as_str() {
                "AWSSecretsManagerGetSecretValuePolicy" => (vec!["secretsmanager:GetSecretValue"], arg("SecretArn")?),
                "KMSDecryptPolicy" => (vec!["kms:Decrypt"], cfn.arn("kms", &format!("key/{}", arg("KeyId")?))),
                "KMSEncryptPolicy" => (vec!["kms:Encrypt"], cfn.arn("kms", &format!("key/{}", arg("KeyId")?))),
                other => {
                    return Err(refuse(
                        function,
                        format!(
                            "SAM policy template {other} is not read by the IAM check; write its statements inline"
                        ),
                    ));
                }
            };
            grants.push(Grant {
                sid: template_name.clone(),
                actions: actions.into_iter().map(str::to_string).collect(),
                resources: vec![resource],
                by: By::Function,
            });
        }
    }
    grants.extend(sam_implied(template, cfn, function)?);
    Ok(grants)
}

fn strings_or_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn statement(function: &str, st: &Value, default_sid: &str) -> Result<Grant, LocalError> {
    let sid = st.get("Sid").and_then(Value::as_str).unwrap_or(default_sid).to_string();
    if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return Err(refuse(function, format!("statement {sid}: only Effect: Allow is read")));
    }
    for unsupported in ["NotAction", "NotResource"] {
        if st.get(unsupported).is_some() {
            return Err(refuse(function, format!("statement {sid}: {unsupported} is not read")));
        }
    }
    let actions = strings(st.get("Action").unwrap_or(&Value::Null));
    let resources = strings(st.get("Resource").unwrap_or(&Value::Null));
    if actions.is_empty() || resources.is_empty() {
        return Err(refuse(function, format!("statement {sid}: no Action or no Resource")));
    }
    Ok(Grant {
        sid,
        actions,
        resources,
        by: By::Function,
    })
}

/// What SAM adds to the role for the function's events and destinations.
fn sam_implied(template: &Value, cfn: &Cfn, function: &str) -> Result<Vec<Grant>, LocalError> {
    let props = template
        .pointer(&format!("/Resources/{function}/Properties"))
        .cloned()
        .unwrap_or(Value::Null);
    let resolve = |v: &Value| {
        cfn.resolve_string(v)
            .map_err(|e| refuse(function, format!("an event does not resolve: {e}")))
    };
    let mut out = Vec::new();
    for (name, event) in props.get("Events").and_then(Value::as_object).into_iter().flatten() {
        if event.get("Type").and_then(Value::as_str) == Some("SQS")
            && let Some(queue) = event.pointer("/Properties/Queue")
        {
            out.push(Grant {
                sid: format!("ESM:{name}"),
                actions: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
                    .map(str::to_string)
                    .to_vec(),
                resources: vec![resolve(queue)?],
                by: By::Lambda,
            });
        }
    }
    if let Some(dest) = props.pointer("/EventInvokeConfig/DestinationConfig/OnFailure")
        && dest.get("Type").and_then(Value::as_str) == Some("SQS")
        && let Some(arn) = dest.get("Destination")
    {
        out.push(Grant {
            sid: "OnFailure".into(),
            actions: vec!["sqs:SendMessage".into()],
            resources: vec![resolve(arn)?],
            by: By::Lambda,
        });
    }
    Ok(out)
}

/// The functions (`AWS::Serverless::Function`) of `template`, by logical id.
pub fn functions(template: &Value) -> Vec<String> {
    template
        .get("Resources")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
        .map(|(id, _)| id.clone())
        .collect()
}

/// `arn` with the longest resource ARN of `cfn` it starts with replaced by
/// that resource's logical id (`DeliveriesTable/index/due`), for messages.
pub fn logical(cfn: &Cfn, arn: &str) -> String {
    let mut best: Option<(&str, &str)> = None;
    for (id, attrs) in &cfn.resources {
        if let Some(a) = attrs.get_att.get("Arn")
            && (arn == a || arn.starts_with(&format!("{a}/")))
            && best.is_none_or(|(_, b)| a.len() > b.len())
        {
            best = Some((id, a));
        }
    }
    match best {
        Some((id, a)) => format!("{id}{}", &arn[a.len()..]),
        None => arn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::cfn::Attrs;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn wildcards_match_as_iam_matches() {
        assert!(glob(
            "arn:aws:dynamodb:r:1:table/t/index/*",
            "arn:aws:dynamodb:r:1:table/t/index/due"
        ));
        assert!(!glob(
            "arn:aws:dynamodb:r:1:table/t/index/*",
            "arn:aws:dynamodb:r:1:table/t"
        ));
        assert!(!glob(
            "arn:aws:dynamodb:r:1:table/t",
            "arn:aws:dynamodb:r:1:table/t/index/due"
        ));
        assert!(glob("arn:aws:sqs:r:1:stk-*-dlq", "arn:aws:sqs:r:1:stk-fanout-dlq"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", "") && glob("**", "x"));
        assert!(action_matches("sqs:Send*", "sqs:SendMessage"));
        assert!(action_matches("DynamoDB:getitem", "dynamodb:GetItem"));
        assert!(!action_matches("sqs:SendMessage", "sqs:SendMessageBatch"));
    }

    fn stack() -> (Value, Cfn) {
        let template = json!({
            "Resources": {
                "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
                    "Policies": [
                        {"Version": "2012-10-17", "Statement": [
                            {"Sid": "Read", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"],
                             "Resource": [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/*"}]},
                        ]},
                        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"}},
                    ],
                    "Events": {"Work": {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Queue", "Arn"]}}}},
                    "EventInvokeConfig": {"DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}}},
                }},
            }
        });
        let mut cfn = Cfn::new(&template, "stk", "us-east-1", &HashMap::new()).unwrap();
        for (id, arn) in [
            ("Table", "arn:aws:dynamodb:us-east-1:123456789012:table/stk-t"),
            ("Queue", "arn:aws:sqs:us-east-1:123456789012:stk-q"),
            ("Dlq", "arn:aws:sqs:us-east-1:123456789012:stk-dlq"),
        ] {
            cfn.resources.insert(id.into(), Attrs::new(id).with("Arn", arn));
        }
        (template, cfn)
    }

    #[test]
    fn a_functions_grants_are_its_statements_and_what_sam_adds() {
        let (template, cfn) = stack();
        let grants = function_grants(&template, &cfn, "Fn").unwrap();
        let sids: Vec<(&str, By)> = grants.iter().map(|g| (g.sid.as_str(), g.by)).collect();
        assert_eq!(
            sids,
            [
                ("Read", By::Function),
                ("AWSSecretsManagerGetSecretValuePolicy", By::Function),
                ("ESM:Work", By::Lambda),
                ("OnFailure", By::Lambda),
            ]
        );
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/stk-t";
        assert!(grants[0].allows("dynamodb:Query", &format!("{table}/index/gsi1")));
        assert!(grants[0].allows("dynamodb:GetItem", table));
        assert!(!grants[0].allows("dynamodb:PutItem", table));
        assert!(grants[2].allows("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:stk-q"));
        assert!(!grants[2].allows("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:stk-q"));
        assert!(grants[3].allows("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:stk-dlq"));
        assert_eq!(logical(&cfn, &format!("{table}/index/gsi1")), "Table/index/gsi1");
        assert_eq!(functions(&template), ["Fn"]);
    }

    #[test]
    fn what_the_check_cannot_read_is_refused() {
        let (mut template, cfn) = stack();
        let policies = template.pointer_mut("/Resources/Fn/Properties/Policies").unwrap();
        *policies = json!(["AmazonSQSFullAccess"]);
        assert!(function_grants(&template, &cfn, "Fn").is_err());
        *template.pointer_mut("/Resources/Fn/Properties/Policies").unwrap() =
            json!([{"Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}]}]);
        assert!(function_grants(&template, &cfn, "Fn").is_err());
        *template.pointer_mut("/Resources/Fn/Properties/Policies").unwrap() =
            json!([{"DynamoDBCrudPolicy": {"TableName": "t"}}]);
        assert!(function_grants(&template, &cfn, "Fn").is_err());
    }
}
