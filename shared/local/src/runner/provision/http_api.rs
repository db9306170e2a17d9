//! `AWS::Serverless::HttpApi`: the APIs a template serves, played by the
//! runner as servers on localhost; nothing is created in moto.

use super::{HTTP_API, IMPLICIT_HTTP_API};
use crate::runner::cfn::{Attrs, Cfn};
use serde_json::Value;

/// The properties the local HTTP API honours or that change nothing
/// locally; any other is listed in the notes.
const APPLIED: &[&str] = &["Description", "Tags", "StageName", "FailOnWarnings"];

/// Declares HTTP API `id`, served at `url`, in `cfn`; what the local API
/// does not apply goes to `notes`.
pub(super) fn declare(cfn: &mut Cfn, id: &str, props: &Value, url: String, notes: &mut Vec<String>) {
    cfn.resources.insert(
        id.to_string(),
        Attrs::new(format!("local{}", id.to_lowercase())).with("ApiEndpoint", url),
    );
    for (k, _) in props.as_object().into_iter().flatten() {
        if !APPLIED.contains(&k.as_str()) {
            notes.push(format!("{id}.{k} ({HTTP_API}): not applied by the local HTTP API"));
        }
    }
}

/// Declares SAM's implicit HTTP API, served at `url`, in `cfn`.
pub(super) fn declare_implicit(cfn: &mut Cfn, url: String) {
    cfn.resources.insert(
        IMPLICIT_HTTP_API.into(),
        Attrs::new("localserverlesshttpapi").with("ApiEndpoint", url),
    );
}

/// The HTTP APIs a template serves: its `AWS::Serverless::HttpApi`
/// resources, and the implicit one if a function's `HttpApi` event names
/// none.
pub fn http_apis(template: &Value) -> Vec<String> {
    let resources = template.get("Resources").and_then(Value::as_object);
    let mut apis: Vec<String> = resources
        .into_iter()
        .flatten()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(HTTP_API))
        .map(|(id, _)| id.clone())
        .collect();
    let implicit = resources.into_iter().flatten().any(|(_, r)| {
        r.pointer("/Properties/Events")
            .and_then(Value::as_object)
            .is_some_and(|events| {
                events.values().any(|e| {
                    e.get("Type").and_then(Value::as_str) == Some("HttpApi") && e.pointer("/Properties/ApiId").is_none()
                })
            })
    });
    if implicit {
        apis.push(IMPLICIT_HTTP_API.to_string());
    }
    apis
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    #[test]
    fn an_event_without_api_id_brings_the_implicit_api() {
        let explicit = json!({"Resources": {
            "Api": {"Type": "AWS::Serverless::HttpApi"},
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
                "Get": {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "Api"}, "Path": "/x", "Method": "GET"}}}}}
        }});
        assert_eq!(http_apis(&explicit), vec!["Api"]);
        let implicit = json!({"Resources": {
            "Fn": {"Type": "AWS::Serverless::Function", "Properties": {"Events": {
                "Get": {"Type": "HttpApi", "Properties": {"Path": "/x", "Method": "GET"}},
                "Q": {"Type": "SQS", "Properties": {}}}}}
        }});
        assert_eq!(http_apis(&implicit), vec![IMPLICIT_HTTP_API]);
        assert!(http_apis(&json!({"Resources": {}})).is_empty());
    }

    #[test]
    fn an_api_gets_its_endpoint_and_unapplied_properties_are_noted() {
        let mut cfn = Cfn::new(&json!({}), "stk", "us-east-1", &HashMap::new()).unwrap();
        let mut notes = Vec::new();
        let props = json!({"StageName": "$default", "CorsConfiguration": {"AllowOrigins": ["*"]}});
        declare(&mut cfn, "Api", &props, "http://127.0.0.1:3000".into(), &mut notes);
        let attrs = &cfn.resources["Api"];
        assert_eq!(attrs.reference, "localapi");
        assert_eq!(attrs.get_att["ApiEndpoint"], "http://127.0.0.1:3000");
        assert_eq!(
            notes,
            vec!["Api.CorsConfiguration (AWS::Serverless::HttpApi): not applied by the local HTTP API"]
        );
        declare_implicit(&mut cfn, "http://127.0.0.1:3001".into());
        assert_eq!(cfn.resources[IMPLICIT_HTTP_API].reference, "localserverlesshttpapi");
    }
}
