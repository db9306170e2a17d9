//! What one request touches, as IAM names it: the action that authorises it
//! (`dynamodb:GetItem`, `sqs:SendMessage` for `SendMessageBatch`) and the
//! ARN of each resource (a table, `<table>/index/<name>` for a query of an
//! index, a queue, an event bus, a KMS key, a secret).
//!
//! A request IAM authorises per part (`TransactWriteItems`: each item by
//! its own action) gives one access per part. A request without a resource
//! (`ListQueues`) gives `*`.

use serde_json::Value;

/// One (action, resource) a request needs allowed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    /// The IAM action (`sqs:SendMessage`).
    pub action: String,
    /// The resource's ARN, or `*`.
    pub resource: String,
}

impl Access {
    fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
        }
    }
}

/// The accesses of one request: `op` is the proxy's `service:Operation`,
/// `region` the request's signing region, `account` the account of
/// resources named without one, `request` and `response` the JSON bodies
/// (`Null` when there is none).
pub fn accesses(op: &str, region: &str, account: &str, request: &Value, response: &Value) -> Vec<Access> {
    let Some((service, operation)) = op.split_once(':') else {
        return vec![Access::new(op, "*")];
    };
    let arn = |svc: &str, rest: &str| format!("arn:aws:{svc}:{region}:{account}:{rest}");
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    match service {
        "dynamodb" => dynamodb(operation, request, &|t| arn("dynamodb", &format!("table/{t}"))),
        "sqs" => {
            let action = format!("sqs:{}", sqs_action(operation));
            let resource = if let Some(url) = str_of(request, "QueueUrl") {
                queue_arn(&url, region, account)
            } else if let Some(source) = str_of(request, "SourceArn") {
                source
            } else if let Some(name) = str_of(request, "QueueName") {
                arn("sqs", &name)
            } else {
                "*".into()
            };
            vec![Access::new(action, resource)]
        }
        "events" => {
            let bus = |name: Option<String>| {
                let name = name.unwrap_or_else(|| "default".into());
                if name.starts_with("arn:") {
                    name
                } else {
                    arn("events", &format!("event-bus/{name}"))
                }
            };
            let action = format!("events:{operation}");
            match request.get("Entries").and_then(Value::as_array) {
                Some(entries) if operation == "PutEvents" => {
                    let mut out: Vec<Access> = entries
                        .iter()
                        .map(|e| Access::new(&action, bus(str_of(e, "EventBusName"))))
                        .collect();
                    out.sort();
                    out.dedup();
                    out
                }
                _ => {
                    let name = str_of(request, "EventBusName").or_else(|| str_of(request, "Name"));
                    vec![Access::new(action, bus(name))]
                }
            }
        }
        "kms" => {
            let key = str_of(request, "KeyId").or_else(|| str_of(response, "KeyId"));
            let resource = match key {
                Some(k) if k.starts_with("arn:") => k,
                Some(k) if k.starts_with("alias/") => arn("kms", &k),
                Some(k) => arn("kms", &format!("key/{k}")),
                None => "*".into(),
            };
            vec![Access::new(op, resource)]
        }
        "secretsmanager" => {
            let resource = match str_of(request, "SecretId") {
                Some(s) if s.starts_with("arn:") => s,
                Some(s) => arn("secretsmanager", &format!("secret:{s}")),
                None => "*".into(),
            };
            vec![Access::new(op, resource)]
        }
        _ => vec![Access::new(op, "*")],
    }
}

/// The action IAM checks for an SQS operation: a batch is authorised by its
/// single-message action.
fn sqs_action(operation: &str) -> &str {
    match operation {
        "SendMessageBatch" => "SendMessage",
        "DeleteMessageBatch" => "DeleteMessage",
        "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
        other => other,
    }
}

/// The ARN of the queue at `url` (`http://host/<account>/<name>`).
fn queue_arn(url: &str, region: &str, account: &str) -> String {
    let path: Vec<&str> = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .collect();
    match path.as_slice() {
        [acct, name] => format!("arn:aws:sqs:{region}:{acct}:{name}"),
        [.., name] => format!("arn:aws:sqs:{region}:{account}:{name}"),
        [] => "*".into(),
    }
}

fn dynamodb(operation: &str, request: &Value, table: &dyn Fn(&str) -> String) -> Vec<Access> {
    let name = |v: &Value| v.get("TableName").and_then(Value::as_str).map(table);
    let mut out = Vec::new();
    match operation {
        "TransactWriteItems" | "TransactGetItems" => {
            for item in request
                .get("TransactItems")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for (kind, action) in [
                    ("Put", "PutItem"),
                    ("Update", "UpdateItem"),
                    ("Delete", "DeleteItem"),
                    ("ConditionCheck", "ConditionCheckItem"),
                    ("Get", "GetItem"),
                ] {
                    if let Some(t) = item.get(kind).and_then(name) {
                        out.push(Access::new(format!("dynamodb:{action}"), t));
                    }
                }
            }
        }
        "BatchGetItem" | "BatchWriteItem" => {
            for t in request
                .get("RequestItems")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.keys())
            {
                out.push(Access::new(format!("dynamodb:{operation}"), table(t)));
            }
        }
        _ => {
            let resource = match (name(request), request.get("IndexName").and_then(Value::as_str)) {
                (Some(t), Some(index)) => format!("{t}/index/{index}"),
                (Some(t), None) => t,
                (None, _) => "*".into(),
            };
            out.push(Access::new(format!("dynamodb:{operation}"), resource));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The signing region of a SigV4 `Authorization` header
/// (`Credential=<key>/<date>/<region>/<service>/aws4_request`).
pub(super) fn signing_region(authorization: &str) -> Option<String> {
    let scope = authorization.split("Credential=").nth(1)?;
    Some(scope.split('/').nth(2)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const R: &str = "us-east-1";
    const A: &str = "123456789012";

    fn one(op: &str, request: Value) -> Vec<(String, String)> {
        accesses(op, R, A, &request, &Value::Null)
            .into_iter()
            .map(|a| (a.action, a.resource))
            .collect()
    }

    fn pair(action: &str, resource: &str) -> (String, String) {
        (action.to_string(), resource.to_string())
    }

    #[test]
    fn dynamodb_requests_name_their_table_and_index() {
        let table = "arn:aws:dynamodb:us-east-1:123456789012:table/stk-registry";
        assert_eq!(
            one("dynamodb:GetItem", json!({"TableName": "stk-registry", "Key": {}})),
            [pair("dynamodb:GetItem", table)]
        );
        assert_eq!(
            one(
                "dynamodb:Query",
                json!({"TableName": "stk-registry", "IndexName": "gsi1"})
            ),
            [pair("dynamodb:Query", &format!("{table}/index/gsi1"))]
        );
        assert_eq!(
            one(
                "dynamodb:BatchGetItem",
                json!({"RequestItems": {"stk-registry": {}, "stk-deliveries": {}}})
            ),
            [
                pair(
                    "dynamodb:BatchGetItem",
                    "arn:aws:dynamodb:us-east-1:123456789012:table/stk-deliveries"
                ),
                pair("dynamodb:BatchGetItem", table),
            ]
        );
        assert_eq!(
            one("dynamodb:ListTables", json!({})),
            [pair("dynamodb:ListTables", "*")]
        );
    }

    #[test]
    fn a_transaction_is_authorised_item_by_item() {
        let got = one(
            "dynamodb:TransactWriteItems",
            json!({"TransactItems": [
                {"Update": {"TableName": "t", "Key": {}}},
                {"Put": {"TableName": "t", "Item": {}}},
                {"Delete": {"TableName": "u", "Key": {}}},
                {"ConditionCheck": {"TableName": "t", "Key": {}}},
                {"Update": {"TableName": "t", "Key": {}}},
            ]}),
        );
        let t = "arn:aws:dynamodb:us-east-1:123456789012:table/t";
        assert_eq!(
            got,
            [
                pair("dynamodb:ConditionCheckItem", t),
                pair("dynamodb:DeleteItem", "arn:aws:dynamodb:us-east-1:123456789012:table/u"),
                pair("dynamodb:PutItem", t),
                pair("dynamodb:UpdateItem", t),
            ]
        );
    }

    #[test]
    fn sqs_batches_are_authorised_by_their_single_action() {
        let url = json!({"QueueUrl": "http://127.0.0.1:5000/123456789012/stk-fanout"});
        let arn = "arn:aws:sqs:us-east-1:123456789012:stk-fanout";
        for (op, action) in [
            ("sqs:SendMessageBatch", "sqs:SendMessage"),
            ("sqs:SendMessage", "sqs:SendMessage"),
            ("sqs:DeleteMessageBatch", "sqs:DeleteMessage"),
            ("sqs:ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
            ("sqs:ReceiveMessage", "sqs:ReceiveMessage"),
        ] {
            assert_eq!(one(op, url.clone()), [pair(action, arn)], "{op}");
        }
        assert_eq!(
            one(
                "sqs:StartMessageMoveTask",
                json!({"SourceArn": "arn:aws:sqs:us-east-1:123456789012:stk-fanout-dlq", "DestinationArn": arn})
            ),
            [pair(
                "sqs:StartMessageMoveTask",
                "arn:aws:sqs:us-east-1:123456789012:stk-fanout-dlq"
            )]
        );
        assert_eq!(one("sqs:ListQueues", json!({})), [pair("sqs:ListQueues", "*")]);
    }

    #[test]
    fn events_kms_and_secrets_name_their_resource() {
        assert_eq!(
            one(
                "events:PutEvents",
                json!({"Entries": [{"EventBusName": "stk-bus"}, {"EventBusName": "stk-bus"}, {}]})
            ),
            [
                pair(
                    "events:PutEvents",
                    "arn:aws:events:us-east-1:123456789012:event-bus/default"
                ),
                pair(
                    "events:PutEvents",
                    "arn:aws:events:us-east-1:123456789012:event-bus/stk-bus"
                ),
            ]
        );
        assert_eq!(
            one("kms:GenerateDataKey", json!({"KeyId": "1234abcd"})),
            [pair(
                "kms:GenerateDataKey",
                "arn:aws:kms:us-east-1:123456789012:key/1234abcd"
            )]
        );
        assert_eq!(
            one("kms:Encrypt", json!({"KeyId": "alias/stk"})),
            [pair("kms:Encrypt", "arn:aws:kms:us-east-1:123456789012:alias/stk")]
        );
        // Decrypt names no key: the one the answer names.
        let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd";
        let got = accesses(
            "kms:Decrypt",
            R,
            A,
            &json!({"CiphertextBlob": "AAAA"}),
            &json!({"KeyId": key}),
        );
        assert_eq!(got, [Access::new("kms:Decrypt", key)]);
        let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stk-admin-AbCdEf";
        assert_eq!(
            one("secretsmanager:GetSecretValue", json!({"SecretId": secret})),
            [pair("secretsmanager:GetSecretValue", secret)]
        );
        assert_eq!(
            one("query:GetQueueAttributes", Value::Null),
            [pair("query:GetQueueAttributes", "*")]
        );
    }

    #[test]
    fn the_region_is_the_signing_scopes() {
        let auth = "AWS4-HMAC-SHA256 Credential=IngestFunction/20261129/eu-west-1/sqs/aws4_request, SignedHeaders=host, Signature=ab";
        assert_eq!(signing_region(auth).as_deref(), Some("eu-west-1"));
        assert_eq!(signing_region("Bearer x"), None);
    }
}
