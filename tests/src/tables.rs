//! Reading the stack's tables back: delivery records and attempts, and
//! whole scans.

use crate::Stack;
use switchyard_aws::aws_sdk_dynamodb;

impl Stack {
    /// Every delivery record and every attempt in the deliveries table, by
    /// delivery id, oldest attempt first, read with one scan. The first
    /// attempt is the one its delivery record carries (`first_attempt`).
    pub async fn delivery_records(
        &self,
    ) -> (
        std::collections::HashMap<switchyard_core::DeliveryId, switchyard_core::model::DeliveryRecord>,
        std::collections::HashMap<switchyard_core::DeliveryId, Vec<switchyard_core::model::AttemptRecord>>,
    ) {
        let (mut records, mut attempts) = (std::collections::HashMap::new(), std::collections::HashMap::new());
        for item in self.scan(&self.res.deliveries_table).await {
            let kind = item
                .get("kind")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            match kind.as_str() {
                "delivery" => {
                    let r: switchyard_core::model::DeliveryRecord =
                        serde_dynamo::from_item(item).unwrap_or_else(|e| panic!("a delivery item: {e}"));
                    records.insert(r.delivery_id.clone(), r);
                }
                "attempt" => {
                    let a: switchyard_core::model::AttemptRecord =
                        serde_dynamo::from_item(item).unwrap_or_else(|e| panic!("an attempt item: {e}"));
                    attempts.entry(a.delivery_id.clone()).or_insert_with(Vec::new).push(a);
                }
                _ => {}
            }
        }
        for r in records.values() {
            let log = r.attempt_log(attempts.remove(&r.delivery_id).unwrap_or_default());
            if !log.is_empty() {
                attempts.insert(r.delivery_id.clone(), log);
            }
        }
        (records, attempts)
    }

    /// Every item of a table.
    pub async fn scan(
        &self,
        table: &str,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let mut items = Vec::new();
        let mut pages = self.ddb.scan().table_name(table).into_paginator().send();
        while let Some(page) = pages.next().await {
            items.extend(page.unwrap_or_else(|e| panic!("scan: {e}")).items.unwrap_or_default());
        }
        items
    }
}
