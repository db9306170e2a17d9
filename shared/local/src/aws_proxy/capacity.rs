//! DynamoDB capacity as AWS bills it, from the requests and answers the
//! proxy sees: item sizes, write units per item and per index copy, and
//! read units per request.

use serde_json::Value;

/// A global secondary index as far as its write cost goes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Gsi {
    /// The index's key attributes.
    index_keys: Vec<String>,
    /// The index's and the table's key attributes (always projected).
    keys: Vec<String>,
    /// `None`: every attribute (`ALL`); else the projected non-key ones.
    projected: Option<Vec<String>>,
}

/// The global secondary indexes of a `DescribeTable` answer.
pub(super) fn indexes_of(desc: &Value) -> Vec<Gsi> {
    let table_keys: Vec<String> = key_names(desc.pointer("/Table/KeySchema"));
    desc.pointer("/Table/GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| {
            let index_keys = key_names(g.get("KeySchema"));
            let mut keys = index_keys.clone();
            keys.extend(table_keys.iter().cloned());
            let projected = match g.pointer("/Projection/ProjectionType").and_then(Value::as_str) {
                Some("ALL") => None,
                _ => Some(key_names_list(g.pointer("/Projection/NonKeyAttributes"))),
            };
            Gsi {
                index_keys,
                keys,
                projected,
            }
        })
        .collect()
}

/// The attribute names of a `KeySchema`.
fn key_names(schema: Option<&Value>) -> Vec<String> {
    schema
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k.get("AttributeName").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// A list of attribute names.
fn key_names_list(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

impl Gsi {
    /// Whether `item` is in the index (it has the index's key attributes).
    fn holds(&self, item: &Value) -> bool {
        !self.index_keys.is_empty() && self.index_keys.iter().all(|k| item.get(k).is_some())
    }

    /// The index's copy of `item`.
    fn project(&self, item: &Value) -> Value {
        match (&self.projected, item.as_object()) {
            (Some(extra), Some(m)) => Value::Object(
                m.iter()
                    .filter(|(k, _)| self.keys.contains(k) || extra.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => item.clone(),
        }
    }

    fn projected_size(&self, item: &Value) -> usize {
        item_size(&self.project(item))
    }

    fn key_of(&self, item: &Value) -> Vec<Value> {
        self.index_keys
            .iter()
            .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
            .collect()
    }

    /// Write units this index costs for an item going from `before` to
    /// `after` (either may be absent): a put, a delete, or both when the
    /// index key changed.
    pub(super) fn write_units(&self, before: Option<&Value>, after: Option<&Value>) -> f64 {
        let b = before.filter(|i| self.holds(i));
        let a = after.filter(|i| self.holds(i));
        match (b, a) {
            (None, None) => 0.0,
            (Some(x), None) | (None, Some(x)) => write_units(self.projected_size(x)),
            (Some(x), Some(y)) if self.key_of(x) == self.key_of(y) => {
                // DynamoDB writes an index only if its copy changed.
                if self.project(x) == self.project(y) {
                    0.0
                } else {
                    write_units(self.projected_size(x).max(self.projected_size(y)))
                }
            }
            (Some(x), Some(y)) => write_units(self.projected_size(x)) + write_units(self.projected_size(y)),
        }
    }
}

/// The items a DynamoDB write touches: (table, key, units per KB).
pub(super) fn dynamo_writes(op: &str, req: &Value) -> Vec<(Value, Value, f64)> {
    let table = || req.get("TableName").cloned().unwrap_or(Value::Null);
    match op {
        "dynamodb:PutItem" => {
            // The key is the item's key attributes; the whole item works as
            // a key for GetItem only if it has no others, so read the key
            // schema-free way: keep pk/sk-like attributes moto accepts.
            let item = req.get("Item").cloned().unwrap_or(Value::Null);
            vec![(table(), key_of(&item), 1.0)]
        }
        "dynamodb:UpdateItem" | "dynamodb:DeleteItem" => {
            vec![(table(), req.get("Key").cloned().unwrap_or(Value::Null), 1.0)]
        }
        "dynamodb:TransactWriteItems" => req
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|ti| {
                let (kind, body) = ti.as_object()?.iter().next()?;
                let t = body.get("TableName").cloned()?;
                let k = match kind.as_str() {
                    "Put" => key_of(body.get("Item")?),
                    _ => body.get("Key").cloned()?,
                };
                Some((t, k, 2.0))
            })
            .collect(),
        "dynamodb:BatchWriteItem" => req
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(t, reqs)| {
                reqs.as_array().into_iter().flatten().filter_map(move |r| {
                    let k = if let Some(p) = r.get("PutRequest") {
                        key_of(p.get("Item")?)
                    } else {
                        r.get("DeleteRequest")?.get("Key").cloned()?
                    };
                    Some((Value::String(t.clone()), k, 1.0))
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The key attributes of an item of this project's tables (`pk`, `sk`).
fn key_of(item: &Value) -> Value {
    let mut key = serde_json::Map::new();
    for name in ["pk", "sk"] {
        if let Some(v) = item.get(name) {
            key.insert(name.into(), v.clone());
        }
    }
    Value::Object(key)
}

/// Write units of a write touching an item of `size` bytes: 1 per KB begun.
pub(super) fn write_units(size: usize) -> f64 {
    size.div_ceil(1024).max(1) as f64
}

/// Read units a successful read consumed: 1 per 4 KB begun of what it read
/// (a query's items together), half when eventually consistent.
pub(super) fn read_units(op: &str, req: &Value, resp: &Value) -> f64 {
    let consistent = req.get("ConsistentRead").and_then(Value::as_bool).unwrap_or(false);
    let factor = if consistent { 1.0 } else { 0.5 };
    let units = |bytes: usize| bytes.div_ceil(4096).max(1) as f64 * factor;
    match op {
        "dynamodb:GetItem" => units(resp.get("Item").map_or(0, item_size)),
        "dynamodb:Query" | "dynamodb:Scan" => units(
            resp.get("Items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(item_size)
                .sum(),
        ),
        "dynamodb:BatchGetItem" => resp
            .get("Responses")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .flat_map(|(_, items)| items.as_array().into_iter().flatten())
            .map(|i| units(item_size(i)))
            .sum(),
        "dynamodb:TransactGetItems" => resp
            .get("Responses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| 2.0 * r.get("Item").map_or(0, item_size).div_ceil(4096).max(1) as f64)
            .sum(),
        _ => 0.0,
    }
}

/// An item's size as DynamoDB counts it: attribute names plus values.
pub fn item_size(item: &Value) -> usize {
    item.as_object()
        .map(|m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum())
        .unwrap_or(0)
}

/// One attribute value's size (DynamoDB JSON: `{"S": ..}`, `{"N": ..}`, ...).
fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    let s = |x: &Value| x.as_str().map_or(0, str::len);
    let n = |x: &Value| {
        let digits = x.as_str().map_or(0, |t| t.chars().filter(char::is_ascii_digit).count());
        digits.div_ceil(2) + 1
    };
    let b = |x: &Value| x.as_str().map_or(0, |t| t.len() * 3 / 4);
    let each = |f: &dyn Fn(&Value) -> usize| inner.as_array().into_iter().flatten().map(f).sum::<usize>();
    match kind.as_str() {
        "S" => s(inner),
        "N" => n(inner),
        "B" => b(inner),
        "BOOL" | "NULL" => 1,
        "SS" => each(&s),
        "NS" => each(&n),
        "BS" => each(&b),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| 1 + value_size(x))
                .sum::<usize>()
        }
        "M" => {
            3 + inner
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        // "pk" (2) + "evt_1" (5); "n" (1) + 3 digits → 2 + 1; "ok" (2) + 1.
        let item = json!({"pk": {"S": "evt_1"}, "n": {"N": "123"}, "ok": {"BOOL": true}});
        assert_eq!(item_size(&item), 7 + 4 + 3);
        let nested = json!({"m": {"M": {"a": {"S": "xy"}}}, "l": {"L": [{"S": "abc"}]}});
        // m: 1 + (3 + 1 + 1 + 2); l: 1 + (3 + 1 + 3)
        assert_eq!(item_size(&nested), 8 + 8);
    }

    #[test]
    fn units_round_up_per_kb_and_per_4_kb() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        let big = json!({"Item": {"pk": {"S": "x".repeat(5000)}}});
        assert_eq!(read_units("dynamodb:GetItem", &json!({}), &big), 1.0);
        assert_eq!(
            read_units("dynamodb:GetItem", &json!({"ConsistentRead": true}), &big),
            2.0
        );
        let q = json!({"Items": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]});
        assert_eq!(read_units("dynamodb:Query", &json!({}), &q), 0.5);
    }

    #[test]
    fn writes_name_the_items_they_touch() {
        let put = json!({"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}, "x": {"S": "y"}}});
        assert_eq!(
            dynamo_writes("dynamodb:PutItem", &put),
            [(json!("t"), json!({"pk": {"S": "a"}, "sk": {"S": "b"}}), 1.0)]
        );
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}}}},
            {"Update": {"TableName": "u", "Key": {"pk": {"S": "b"}}}}
        ]});
        let w = dynamo_writes("dynamodb:TransactWriteItems", &tx);
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|(_, _, f)| *f == 2.0));
    }

    #[test]
    fn index_writes_cost_what_changed_in_them() {
        let all = Gsi {
            index_keys: vec!["g1pk".into(), "g1sk".into()],
            keys: vec!["g1pk".into(), "g1sk".into(), "pk".into(), "sk".into()],
            projected: None,
        };
        let keys_only = Gsi {
            projected: Some(vec![]),
            ..all.clone()
        };
        let item = |g: Option<&str>, blob: usize| {
            let mut m = json!({"pk": {"S": "p"}, "sk": {"S": "s"}, "blob": {"S": "x".repeat(blob)}});
            if let Some(g) = g {
                m["g1pk"] = json!({"S": g});
                m["g1sk"] = json!({"S": "1"});
            }
            m
        };
        // Not in the index before or after: free.
        assert_eq!(all.write_units(None, Some(&item(None, 10))), 0.0);
        // A new item in the index: its projection, per KB.
        assert_eq!(all.write_units(None, Some(&item(Some("a"), 1500))), 2.0);
        assert_eq!(keys_only.write_units(None, Some(&item(Some("a"), 1500))), 1.0);
        // The index key changed: a delete and a put.
        assert_eq!(
            all.write_units(Some(&item(Some("a"), 10)), Some(&item(Some("b"), 10))),
            2.0
        );
        // Unchanged: nothing.
        assert_eq!(
            all.write_units(Some(&item(Some("a"), 10)), Some(&item(Some("a"), 10))),
            0.0
        );
        // A change outside the projection: nothing for a keys-only index.
        let (before, after) = (item(Some("a"), 10), item(Some("a"), 20));
        assert_eq!(keys_only.write_units(Some(&before), Some(&after)), 0.0);
        assert_eq!(all.write_units(Some(&before), Some(&after)), 1.0);
        // Left the index: a delete.
        assert_eq!(all.write_units(Some(&item(Some("a"), 10)), Some(&item(None, 10))), 1.0);
    }

    #[test]
    fn indexes_are_read_from_describe_table() {
        let desc = json!({"Table": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "GlobalSecondaryIndexes": [
                {"IndexName": "a", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "ALL"}},
                {"IndexName": "b", "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                 "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["state"]}}
            ]
        }});
        assert_eq!(
            indexes_of(&desc),
            vec![
                Gsi {
                    index_keys: vec!["g".into()],
                    keys: vec!["g".into(), "pk".into(), "sk".into()],
                    projected: None,
                },
                Gsi {
                    index_keys: vec!["h".into()],
                    keys: vec!["h".into(), "pk".into(), "sk".into()],
                    projected: Some(vec!["state".into()]),
                },
            ]
        );
        assert!(indexes_of(&Value::Null).is_empty());
    }
}
