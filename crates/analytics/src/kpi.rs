//! The seed's KPI table (订单分析核心指标表), as queries. Over the orders **placed** in a range
//! of days (display zone) and a slice:
//!
//! | KPI | definition |
//! |---|---|
//! | orders | orders placed |
//! | cancelled | of those, the ones whose status is `cancelled` or `refunded`: nothing left the warehouse, and the platform cancelled it, it timed out unpaid, it was refused at review or refunded by decision, or its payments were refunded in full |
//! | valid orders (有效订单) | orders − cancelled |
//! | daily valid orders (日均有效订单数) | valid orders / days in the range |
//! | GMV (成交额) | the order totals of the valid orders (returned ones included: they were sold); for a category slice, the line amounts (qty × unit price) of that category |
//! | AOV (客单价) | GMV / valid orders |
//! | payment conversion (支付转化率) | orders with a captured payment / orders placed (the data has no visits, so this is the conversion it allows) |
//! | return rate (退货率) | orders with a returned parcel / orders with a parcel that left the warehouse |
//! | buyers | distinct customers with a valid order (one customer across channels where the phone links them, see `project`) |
//! | repurchase rate (复购率) | customers with two or more valid orders in the range / buyers |
//! | new customers (新增客户数) | customers whose first valid order ever was placed in the range (and is in the slice) |
//!
//! Cutting by an order's placement day (a cohort) keeps every ratio's numerator inside its
//! denominator: a return counts against the day its order was placed, like its shipment.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

use crate::query::{placed_in, ratio, Dimension, Filter, Range};
use crate::AnalyticsError;

/// The KPIs of one range and slice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kpis {
    pub from: String,
    pub to: String,
    pub days: i64,
    pub orders: i64,
    pub cancelled: i64,
    pub valid_orders: i64,
    pub daily_valid_orders: f64,
    pub gmv_fen: i64,
    /// GMV / valid orders, rounded to the fen; `null` without valid orders.
    pub aov_fen: Option<i64>,
    pub paid_orders: i64,
    pub payment_conversion: Option<f64>,
    pub shipped: i64,
    pub returned: i64,
    pub return_rate: Option<f64>,
    pub refunded_fen: i64,
    pub buyers: i64,
    pub repeat_buyers: i64,
    pub repurchase_rate: Option<f64>,
    pub new_customers: i64,
}

/// The KPIs of `range` in `filter`.
pub fn kpis(conn: &Connection, range: &Range, filter: &Filter) -> Result<Kpis, AnalyticsError> {
    let (condition, params) = placed_in(range, filter);
    let counts = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(o.is_cancelled), 0),
                    COALESCE(SUM(CASE WHEN NOT o.is_cancelled THEN o.total_fen END), 0),
                    COALESCE(SUM(o.paid_at IS NOT NULL), 0), COALESCE(SUM(o.is_shipped), 0),
                    COALESCE(SUM(o.returned_at IS NOT NULL), 0), COALESCE(SUM(o.refunded_fen), 0)
             FROM orders o WHERE {condition}"
        ))?
        .query_row(params_from_iter(params.iter()), |row| {
            Ok([
                row.get::<_, i64>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ])
        })?;
    let [orders, cancelled, mut gmv_fen, paid_orders, shipped, returned, refunded_fen] = counts;
    if let Some(category) = &filter.category {
        let mut params = params.clone();
        params.push(Value::Text(category.clone()));
        gmv_fen = conn
            .prepare_cached(&format!(
                "SELECT COALESCE(SUM(l.qty * l.unit_price_fen), 0)
                 FROM orders o JOIN order_lines l ON l.order_id = o.order_id
                 WHERE {condition} AND NOT o.is_cancelled AND l.category = ?{}",
                params.len()
            ))?
            .query_row(params_from_iter(params.iter()), |row| row.get(0))?;
    }
    let (buyers, repeat_buyers) = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(n >= 2), 0) FROM (
               SELECT o.customer_key, COUNT(*) AS n FROM orders o
               WHERE {condition} AND NOT o.is_cancelled GROUP BY o.customer_key)"
        ))?
        .query_row(params_from_iter(params.iter()), |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
    // A valid order in the range with no valid order of the same customer before it.
    let new_customers: i64 = conn
        .prepare_cached(&format!(
            "SELECT COUNT(DISTINCT o.customer_key) FROM orders o
             WHERE {condition} AND NOT o.is_cancelled AND NOT EXISTS (
               SELECT 1 FROM orders p WHERE p.customer_key = o.customer_key
                 AND p.placed_ms < o.placed_ms AND p.placed_ms IS NOT NULL AND NOT p.is_cancelled)"
        ))?
        .query_row(params_from_iter(params.iter()), |row| row.get(0))?;
    let valid_orders = orders - cancelled;
    let days = range.days();
    Ok(Kpis {
        from: range.from_text(),
        to: range.to_text(),
        days,
        orders,
        cancelled,
        valid_orders,
        daily_valid_orders: (valid_orders as f64 / days as f64 * 100.0).round() / 100.0,
        gmv_fen,
        aov_fen: (valid_orders > 0).then(|| rounded_div(gmv_fen, valid_orders)),
        paid_orders,
        payment_conversion: ratio(paid_orders as f64, orders as f64),
        shipped,
        returned,
        return_rate: ratio(returned as f64, shipped as f64),
        refunded_fen,
        buyers,
        repeat_buyers,
        repurchase_rate: ratio(repeat_buyers as f64, buyers as f64),
        new_customers,
    })
}

/// `a / b` rounded half away from zero (`b > 0`).
fn rounded_div(a: i64, b: i64) -> i64 {
    (a * 2 + b) / (b * 2)
}

/// The KPIs of every value of `dimension` present (each within `filter`), and the total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    pub by: Dimension,
    pub total: Kpis,
    pub groups: BTreeMap<String, Kpis>,
}

pub fn breakdown(
    conn: &Connection,
    range: &Range,
    filter: &Filter,
    dimension: Dimension,
) -> Result<Breakdown, AnalyticsError> {
    let mut groups = BTreeMap::new();
    for value in dimension.values(conn)? {
        groups.insert(
            value.clone(),
            kpis(conn, range, &filter.with(dimension, &value))?,
        );
    }
    Ok(Breakdown {
        by: dimension,
        total: kpis(conn, range, filter)?,
        groups,
    })
}

/// One day of the trend.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayPoint {
    pub day: String,
    pub orders: i64,
    pub cancelled: i64,
    pub valid_orders: i64,
    pub gmv_fen: i64,
    pub aov_fen: Option<i64>,
    pub shipped: i64,
    pub returned: i64,
}

/// Every day of `range` (days without orders too), per value of `dimension` or in total
/// (key `all`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub from: String,
    pub to: String,
    pub by: Option<Dimension>,
    pub days: Vec<String>,
    pub series: BTreeMap<String, Vec<DayPoint>>,
}

pub fn trend(
    conn: &Connection,
    range: &Range,
    filter: &Filter,
    dimension: Option<Dimension>,
) -> Result<Trend, AnalyticsError> {
    let (condition, params) = placed_in(range, filter);
    let sql = match dimension {
        Some(Dimension::Category) => format!(
            "SELECT o.placed_day, l.category, COUNT(DISTINCT o.order_id),
                    COUNT(DISTINCT CASE WHEN o.is_cancelled THEN o.order_id END),
                    COALESCE(SUM(CASE WHEN NOT o.is_cancelled THEN l.qty * l.unit_price_fen END), 0),
                    COUNT(DISTINCT CASE WHEN o.is_shipped THEN o.order_id END),
                    COUNT(DISTINCT CASE WHEN o.returned_at IS NOT NULL THEN o.order_id END)
             FROM orders o JOIN order_lines l ON l.order_id = o.order_id
             WHERE {condition} GROUP BY 1, 2"
        ),
        other => {
            let key = match other {
                Some(Dimension::Channel) => "o.channel",
                Some(Dimension::Province) => "o.province",
                _ => "'all'",
            };
            format!(
                "SELECT o.placed_day, {key}, COUNT(*), COALESCE(SUM(o.is_cancelled), 0),
                        COALESCE(SUM(CASE WHEN NOT o.is_cancelled THEN o.total_fen END), 0),
                        COALESCE(SUM(o.is_shipped), 0), COALESCE(SUM(o.returned_at IS NOT NULL), 0)
                 FROM orders o WHERE {condition} GROUP BY 1, 2"
            )
        }
    };
    let days: Vec<String> = (0..range.days())
        .map(|offset| {
            (range.from + chrono::Duration::days(offset))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect();
    let index: BTreeMap<&str, usize> = days
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    let mut series: BTreeMap<String, Vec<DayPoint>> = BTreeMap::new();
    let empty = |days: &[String]| -> Vec<DayPoint> {
        days.iter()
            .map(|day| DayPoint {
                day: day.clone(),
                ..DayPoint::default()
            })
            .collect()
    };
    if dimension.is_none() {
        series.insert("all".into(), empty(&days));
    }
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let day: String = row.get(0)?;
        let key: Option<String> = row.get(1)?;
        let Some(&at) = index.get(day.as_str()) else {
            continue;
        };
        let points = series
            .entry(key.unwrap_or_else(|| "-".into()))
            .or_insert_with(|| empty(&days));
        let point = &mut points[at];
        point.orders = row.get(2)?;
        point.cancelled = row.get(3)?;
        point.valid_orders = point.orders - point.cancelled;
        point.gmv_fen = row.get(4)?;
        point.shipped = row.get(5)?;
        point.returned = row.get(6)?;
        point.aov_fen =
            (point.valid_orders > 0).then(|| rounded_div(point.gmv_fen, point.valid_orders));
    }
    Ok(Trend {
        from: range.from_text(),
        to: range.to_text(),
        by: dimension,
        days,
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::rounded_div;

    #[test]
    fn averages_round_to_the_nearest_fen() {
        assert_eq!(rounded_div(10, 4), 3);
        assert_eq!(rounded_div(10, 3), 3);
        assert_eq!(rounded_div(11, 2), 6);
        assert_eq!(rounded_div(0, 7), 0);
    }
}
