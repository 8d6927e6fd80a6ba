//! The flat `order-facts` topic: the road to a distributed engine for a shop that outgrows one
//! machine. With `analytics.order-facts = true` the projection publishes, after each batch,
//! the flat row of every order the batch changed: one JSON object per line-free record, with
//! the lines as parallel arrays, keyed by order id, `version` = the order's latest offset in
//! `order-events` (an order lives in one partition, so it only grows).
//!
//! ClickHouse reads it with its Kafka engine into a `ReplacingMergeTree(version)`
//! (`deploy/clickhouse/order_facts.sql`): the latest version per order wins, re-deliveries and
//! replays change nothing, and the KPIs of `kpi` are the queries at the end of that file.

use rusqlite::{params, Connection};
use serde::Serialize;

use crate::AnalyticsError;

/// One record of `order-facts` (JSONEachRow for ClickHouse). Times are epoch milliseconds,
/// `null` until the stage is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderFact {
    pub order_id: String,
    pub version: i64,
    pub channel: String,
    pub customer_key: String,
    pub province: String,
    pub city: String,
    pub payment_method: String,
    pub total_fen: i64,
    pub discount_fen: i64,
    pub shipping_fen: i64,
    pub paid_fen: i64,
    pub refunded_fen: i64,
    pub placed_ms: i64,
    pub paid_ms: Option<i64>,
    pub approved_ms: Option<i64>,
    pub routed_ms: Option<i64>,
    pub accepted_ms: Option<i64>,
    pub shipped_ms: Option<i64>,
    pub delivered_ms: Option<i64>,
    pub completed_ms: Option<i64>,
    pub cancelled_ms: Option<i64>,
    pub returned_ms: Option<i64>,
    pub is_cancelled: u8,
    pub line_skus: Vec<String>,
    pub line_categories: Vec<String>,
    pub line_qty: Vec<u32>,
    pub line_unit_price_fen: Vec<u64>,
}

/// The record of `order_id`, if its placement is known (an order seen only by a later fact has
/// no row for ClickHouse yet).
pub fn order_fact(conn: &Connection, order_id: &str) -> Result<Option<OrderFact>, AnalyticsError> {
    let mut statement = conn.prepare_cached(
        "SELECT order_id, COALESCE(log_offset, 0), channel, customer_key, province, city,
                payment_method, total_fen, discount_fen, shipping_fen, paid_fen, refunded_fen,
                placed_ms, paid_at, approved_at, routed_at, accepted_at, shipped_at, delivered_at,
                completed_at, cancelled_at, returned_at, is_cancelled
         FROM orders WHERE order_id = ?1 AND placed_ms IS NOT NULL",
    )?;
    let mut rows = statement.query(params![order_id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let text = |i: usize| -> Result<String, rusqlite::Error> {
        Ok(row.get::<_, Option<String>>(i)?.unwrap_or_default())
    };
    let mut fact = OrderFact {
        order_id: row.get(0)?,
        version: row.get(1)?,
        channel: row.get(2)?,
        customer_key: text(3)?,
        province: text(4)?,
        city: text(5)?,
        payment_method: text(6)?,
        total_fen: row.get::<_, Option<i64>>(7)?.unwrap_or(0),
        discount_fen: row.get::<_, Option<i64>>(8)?.unwrap_or(0),
        shipping_fen: row.get::<_, Option<i64>>(9)?.unwrap_or(0),
        paid_fen: row.get(10)?,
        refunded_fen: row.get(11)?,
        placed_ms: row.get(12)?,
        paid_ms: row.get(13)?,
        approved_ms: row.get(14)?,
        routed_ms: row.get(15)?,
        accepted_ms: row.get(16)?,
        shipped_ms: row.get(17)?,
        delivered_ms: row.get(18)?,
        completed_ms: row.get(19)?,
        cancelled_ms: row.get(20)?,
        returned_ms: row.get(21)?,
        is_cancelled: row.get(22)?,
        line_skus: Vec::new(),
        line_categories: Vec::new(),
        line_qty: Vec::new(),
        line_unit_price_fen: Vec::new(),
    };
    drop(rows);
    let mut lines = conn.prepare_cached(
        "SELECT sku, category, qty, unit_price_fen FROM order_lines WHERE order_id = ?1 ORDER BY line_no",
    )?;
    let mut rows = lines.query(params![order_id])?;
    while let Some(row) = rows.next()? {
        fact.line_skus.push(row.get(0)?);
        fact.line_categories.push(row.get(1)?);
        fact.line_qty
            .push(u32::try_from(row.get::<_, i64>(2)?).unwrap_or(0));
        fact.line_unit_price_fen
            .push(u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0));
    }
    Ok(Some(fact))
}

/// The ClickHouse DDL of the `order-facts` path, kept beside the deployment files.
pub const CLICKHOUSE_DDL: &str = include_str!("../../../deploy/clickhouse/order_facts.sql");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    /// The columns of the `order_facts_queue` table (the Kafka engine's input) and their types.
    fn queue_columns() -> BTreeMap<String, String> {
        let start = CLICKHOUSE_DDL
            .find("CREATE TABLE order_facts_queue")
            .unwrap();
        let body = &CLICKHOUSE_DDL[start..];
        let open = body.find('(').unwrap();
        let close = body.find(") ENGINE").unwrap();
        body[open + 1..close]
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("--"))
            .map(|line| {
                let line = line.trim_end_matches(',');
                let (name, kind) = line.split_once(' ').unwrap();
                (name.to_string(), kind.trim().to_string())
            })
            .collect()
    }

    #[test]
    fn every_field_of_the_record_is_a_column_of_the_kafka_table_with_a_matching_type() {
        let fact = OrderFact {
            order_id: "tmall:1".into(),
            version: 3,
            channel: "tmall".into(),
            customer_key: "p:ab".into(),
            province: "浙江省".into(),
            city: "杭州市".into(),
            payment_method: "alipay".into(),
            total_fen: 100,
            discount_fen: 0,
            shipping_fen: 0,
            paid_fen: 100,
            refunded_fen: 0,
            placed_ms: 1,
            paid_ms: Some(2),
            approved_ms: None,
            routed_ms: None,
            accepted_ms: None,
            shipped_ms: None,
            delivered_ms: None,
            completed_ms: None,
            cancelled_ms: None,
            returned_ms: None,
            is_cancelled: 0,
            line_skus: vec!["S".into()],
            line_categories: vec!["tea".into()],
            line_qty: vec![1],
            line_unit_price_fen: vec![100],
        };
        let value = serde_json::to_value(&fact).unwrap();
        let columns = queue_columns();
        let fields: Vec<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(
            fields.len(),
            columns.len(),
            "fields {fields:?} vs columns {columns:?}"
        );
        for (name, field) in value.as_object().unwrap() {
            let kind = columns
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not a column"));
            let fits = match field {
                serde_json::Value::String(_) => {
                    kind == "String" || kind == "LowCardinality(String)"
                }
                serde_json::Value::Number(_) | serde_json::Value::Null => {
                    kind.contains("Int") && (field.is_number() || kind.starts_with("Nullable("))
                }
                serde_json::Value::Array(_) => kind.starts_with("Array("),
                _ => false,
            };
            assert!(fits, "{name}: {field} does not fit {kind}");
        }
        for optional in ["paid_ms", "shipped_ms", "cancelled_ms"] {
            assert!(columns[optional].starts_with("Nullable("), "{optional}");
        }
    }
}
