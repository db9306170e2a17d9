//! `AWS::DynamoDB::Table` (with its indexes, stream and TTL), created in
//! moto.

use super::{Clients, TABLE, check_props, err, tags, text};
use crate::runner::cfn::{Attrs, Cfn};
use crate::{LocalError, aws_err};
use aws_sdk_dynamodb::error::DisplayErrorContext as DdbCtx;
use aws_sdk_dynamodb::operation::create_table::builders::CreateTableInputBuilder;
use aws_sdk_dynamodb::types as ddb;
use serde_json::{Map, Value};

/// The properties of a table the local runner applies, or lists in the
/// notes as not applied.
const KNOWN: &[&str] = &[
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
    "TimeToLiveSpecification",
    "PointInTimeRecoverySpecification",
    "SSESpecification",
    "DeletionProtectionEnabled",
    "TableClass",
    "Tags",
];

/// A `KeySchema` list (of the table or an index).
fn key_schema(id: &str, v: Option<&Value>) -> Result<Vec<ddb::KeySchemaElement>, LocalError> {
    let list = v
        .and_then(Value::as_array)
        .ok_or_else(|| err(id, "has no KeySchema list"))?;
    list.iter()
        .map(|k| {
            let name = k.get("AttributeName").map(text).unwrap_or_default();
            let kind = ddb::KeyType::from(k.get("KeyType").map(text).unwrap_or_default().as_str());
            ddb::KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| err(id, format!("KeySchema: {e}")))
        })
        .collect()
}

/// An index's `Projection` (`ALL` unless given).
fn projection(v: Option<&Value>) -> ddb::Projection {
    let mut p = ddb::Projection::builder().projection_type(ddb::ProjectionType::from(
        v.and_then(|p| p.get("ProjectionType"))
            .map(text)
            .unwrap_or_else(|| "ALL".into())
            .as_str(),
    ));
    for a in v
        .and_then(|p| p.get("NonKeyAttributes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        p = p.non_key_attributes(text(a));
    }
    p.build()
}

/// `ProvisionedThroughput`, if given (1 unit for what it leaves out).
fn throughput(id: &str, v: Option<&Value>) -> Result<Option<ddb::ProvisionedThroughput>, LocalError> {
    let Some(v) = v else { return Ok(None) };
    let n = |k: &str| v.get(k).map(text).and_then(|s| s.parse::<i64>().ok()).unwrap_or(1);
    ddb::ProvisionedThroughput::builder()
        .read_capacity_units(n("ReadCapacityUnits"))
        .write_capacity_units(n("WriteCapacityUnits"))
        .build()
        .map(Some)
        .map_err(|e| err(id, format!("ProvisionedThroughput: {e}")))
}

/// What creating one table takes: the `CreateTable` request, the table's
/// name, and its TTL if enabled (set once the table exists).
struct TableInput {
    request: CreateTableInputBuilder,
    name: String,
    ttl: Option<ddb::TimeToLiveSpecification>,
}

/// The requests that create table `id`; what moto cannot apply goes to
/// `notes`.
fn table_input(
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<TableInput, LocalError> {
    check_props(id, TABLE, props, KNOWN)?;
    let name = props
        .get("TableName")
        .map(text)
        .unwrap_or_else(|| format!("{}-{id}", cfn.stack_name));
    let mut req = CreateTableInputBuilder::default().table_name(&name);
    for a in props
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        req = req.attribute_definitions(
            ddb::AttributeDefinition::builder()
                .attribute_name(a.get("AttributeName").map(text).unwrap_or_default())
                .attribute_type(ddb::ScalarAttributeType::from(
                    a.get("AttributeType").map(text).unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| err(id, format!("AttributeDefinitions: {e}")))?,
        );
    }
    req = req.set_key_schema(Some(key_schema(id, props.get("KeySchema"))?));
    let billing = props
        .get("BillingMode")
        .map(text)
        .unwrap_or_else(|| "PROVISIONED".into());
    req = req.billing_mode(ddb::BillingMode::from(billing.as_str()));
    if billing == "PROVISIONED" {
        req = req.set_provisioned_throughput(throughput(id, props.get("ProvisionedThroughput"))?);
    }
    for g in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut b = ddb::GlobalSecondaryIndex::builder()
            .index_name(g.get("IndexName").map(text).unwrap_or_default())
            .set_key_schema(Some(key_schema(id, g.get("KeySchema"))?))
            .projection(projection(g.get("Projection")));
        if billing == "PROVISIONED" {
            b = b.set_provisioned_throughput(throughput(id, g.get("ProvisionedThroughput"))?);
        }
        req = req.global_secondary_indexes(b.build().map_err(|e| err(id, format!("GSI: {e}")))?);
    }
    for l in props
        .get("LocalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        req = req.local_secondary_indexes(
            ddb::LocalSecondaryIndex::builder()
                .index_name(l.get("IndexName").map(text).unwrap_or_default())
                .set_key_schema(Some(key_schema(id, l.get("KeySchema"))?))
                .projection(projection(l.get("Projection")))
                .build()
                .map_err(|e| err(id, format!("LSI: {e}")))?,
        );
    }
    if let Some(s) = props.get("StreamSpecification") {
        req = req.stream_specification(
            ddb::StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(ddb::StreamViewType::from(
                    s.get("StreamViewType").map(text).unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|e| err(id, format!("StreamSpecification: {e}")))?,
        );
    }
    for (k, v) in tags(props) {
        req = req.tags(
            ddb::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| err(id, format!("Tags: {e}")))?,
        );
    }
    let mut ttl = None;
    if let Some(spec) = props.get("TimeToLiveSpecification")
        && spec.get("Enabled").is_some_and(|e| text(e) == "true")
    {
        let attr = spec.get("AttributeName").map(text).unwrap_or_default();
        ttl = Some(
            ddb::TimeToLiveSpecification::builder()
                .attribute_name(attr)
                .enabled(true)
                .build()
                .map_err(|e| err(id, format!("TimeToLiveSpecification: {e}")))?,
        );
        notes.push(format!("{id}: TTL is set, but moto never expires items"));
    }
    for prop in [
        "PointInTimeRecoverySpecification",
        "SSESpecification",
        "DeletionProtectionEnabled",
        "TableClass",
    ] {
        if props.contains_key(prop) {
            notes.push(format!("{id}.{prop}: not applied locally"));
        }
    }
    Ok(TableInput {
        request: req,
        name,
        ttl,
    })
}

/// Creates table `id` in moto (and sets its TTL); its `Ref` is its name.
pub(super) async fn create_table(
    c: &Clients,
    cfn: &Cfn,
    id: &str,
    props: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(Attrs, String), LocalError> {
    let TableInput { request, name, ttl } = table_input(cfn, id, props, notes)?;
    let out = request
        .send_with(&c.ddb)
        .await
        .map_err(|e| aws_err(format!("CreateTable {name} ({id})"), DdbCtx(e)))?;
    if let Some(ttl) = ttl {
        c.ddb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| aws_err(format!("UpdateTimeToLive {name} ({id})"), DdbCtx(e)))?;
    }
    let desc = out.table_description;
    let arn = desc
        .as_ref()
        .and_then(|d| d.table_arn.clone())
        .unwrap_or_else(|| cfn.arn("dynamodb", &format!("table/{name}")));
    let mut attrs = Attrs::new(&name).with("Arn", arn);
    if let Some(stream) = desc.and_then(|d| d.latest_stream_arn) {
        attrs = attrs.with("StreamArn", stream);
    }
    Ok((attrs, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::provision::test_support::{cfn, props};
    use serde_json::json;

    fn registry() -> Value {
        json!({
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "gsi1pk", "AttributeType": "S"}
            ],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "gsi1",
                "KeySchema": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]},
                "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": "3"}
            }],
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            "Tags": [{"Key": "team", "Value": "hooks"}]
        })
    }

    #[test]
    fn an_on_demand_table_has_keys_indexes_and_no_throughput() {
        let mut notes = Vec::new();
        let mut p = registry();
        p["BillingMode"] = json!("PAY_PER_REQUEST");
        let t = table_input(&cfn(), "Registry", &props(p), &mut notes).unwrap();
        let req = t.request;
        assert_eq!(t.name, "stk-Registry");
        assert_eq!(req.get_table_name().as_deref(), Some("stk-Registry"));
        assert_eq!(req.get_billing_mode(), &Some(ddb::BillingMode::PayPerRequest));
        assert!(req.get_provisioned_throughput().is_none());
        let keys = req.get_key_schema().clone().unwrap();
        assert_eq!(
            (keys[0].attribute_name(), keys[0].key_type()),
            ("pk", &ddb::KeyType::Hash)
        );
        assert_eq!(req.get_attribute_definitions().as_ref().map(Vec::len), Some(2));
        let gsi = &req.get_global_secondary_indexes().clone().unwrap()[0];
        assert_eq!(gsi.index_name(), "gsi1");
        assert!(gsi.provisioned_throughput().is_none());
        let projection = gsi.projection().unwrap();
        assert_eq!(projection.projection_type(), Some(&ddb::ProjectionType::Include));
        assert_eq!(projection.non_key_attributes(), ["state".to_string()]);
        let stream = req.get_stream_specification().clone().unwrap();
        assert!(stream.stream_enabled());
        assert_eq!(stream.stream_view_type(), Some(&ddb::StreamViewType::NewImage));
        assert_eq!(req.get_tags().clone().unwrap()[0].key(), "team");
        assert!(t.ttl.is_none() && notes.is_empty());
    }

    #[test]
    fn a_provisioned_table_gives_its_indexes_throughput_too() {
        let mut notes = Vec::new();
        let mut p = registry();
        p["ProvisionedThroughput"] = json!({"ReadCapacityUnits": 5});
        let req = table_input(&cfn(), "Registry", &props(p), &mut notes).unwrap().request;
        assert_eq!(req.get_billing_mode(), &Some(ddb::BillingMode::Provisioned));
        let own = req.get_provisioned_throughput().clone().unwrap();
        assert_eq!((own.read_capacity_units(), own.write_capacity_units()), (5, 1));
        let gsi = &req.get_global_secondary_indexes().clone().unwrap()[0];
        let t = gsi.provisioned_throughput().unwrap();
        assert_eq!((t.read_capacity_units(), t.write_capacity_units()), (7, 3));
    }

    #[test]
    fn ttl_is_set_after_creation_and_what_moto_ignores_is_noted() {
        let mut notes = Vec::new();
        let mut p = registry();
        p["TableName"] = json!("named");
        p["TimeToLiveSpecification"] = json!({"AttributeName": "expires_at", "Enabled": true});
        p["SSESpecification"] = json!({"SSEEnabled": true});
        let t = table_input(&cfn(), "Registry", &props(p), &mut notes).unwrap();
        assert_eq!(t.name, "named");
        assert_eq!(t.ttl.unwrap().attribute_name(), "expires_at");
        assert_eq!(
            notes,
            vec![
                "Registry: TTL is set, but moto never expires items",
                "Registry.SSESpecification: not applied locally"
            ]
        );
    }

    #[test]
    fn a_table_without_keys_or_with_unknown_properties_is_refused() {
        let mut notes = Vec::new();
        let e = table_input(&cfn(), "T", &props(json!({})), &mut notes)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("T has no KeySchema list"), "{e}");
        let mut p = registry();
        p["ImportSourceSpecification"] = json!({});
        let e = table_input(&cfn(), "T", &props(p), &mut notes)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ImportSourceSpecification") && e.contains(TABLE), "{e}");
    }
}
