//! The lifecycle board (the seed's 订单生命周期仪表盘: how long each stage takes and where
//! exceptions pile up), and the operational cards beside it: exceptions by kind, owner and
//! level with their SLA, status-sync latency per channel, the skus returned most, and stock
//! cover.
//!
//! Definitions:
//!
//! - **Funnel**: of the orders placed in the range, how many reached each stage: paid (a
//!   payment captured), approved (automatically or by a person), routed, shipped (a parcel
//!   left), delivered, completed.
//! - **Stage duration**: from reaching one stage to reaching the next, per order that reached
//!   both in that order (a shipment reported before its payment has no paid → approved time);
//!   p50 and p90 by nearest rank, in seconds.
//! - **Stuck now**: orders not finished (not completed, cancelled or returned) whose latest
//!   stage was reached longer than `analytics.stuck-after-minutes` ago, whatever the range.
//!   A delivered order waits for the buyer to confirm (days, by design): not stuck.
//! - **Exceptions**: raised in the range by kind and their share of all raised; handling time
//!   `resolved_at − raised_at` of those resolved in the range; open now by owner and level,
//!   with the time at the level against the level's SLA (the rules' `[sla]`).
//! - **Status-sync latency** per channel, of the orders placed in the range: *inbound*, from a
//!   fact reaching the log to the first `order-state` snapshot that shows it (payment,
//!   shipment, delivery, cancellation; both Kafka record timestamps); *outbound*, from the fact
//!   reaching the log to the channel acknowledging the change (`orderflow-sync`'s
//!   `channel_sync_attempted`, where it runs).
//! - **Top return skus**: per sku, orders returned / orders shipped that hold it.
//! - **Days of cover** (库存周转天数): units on hand (latest `stock_level_changed` per
//!   warehouse) / average units sold per day in the 28 days ending the range.

use std::collections::BTreeMap;

use orderflow_domain::{ExceptionKind, Level, SlaRules};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection};
use serde::Serialize;

use crate::project::level_name;
use crate::query::{midnight_ms, placed_in, quantile, ratio, Filter, Range};
use crate::AnalyticsError;

/// The board's stages, in order, with the SQL of when an order reached each.
const STAGES: [(&str, &str); 7] = [
    ("placed", "o.placed_ms"),
    ("paid", "o.paid_at"),
    ("approved", "o.approved_at"),
    ("routed", "o.routed_at"),
    (
        "shipped",
        "COALESCE(o.shipped_at, o.delivered_at, o.returned_at)",
    ),
    ("delivered", "o.delivered_at"),
    ("completed", "o.completed_at"),
];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Durations {
    pub orders: i64,
    pub p50_secs: Option<i64>,
    pub p90_secs: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelFunnel {
    /// Orders that reached each stage, in the board's order.
    pub reached: BTreeMap<String, i64>,
    /// `paid→approved` and so on.
    pub durations: BTreeMap<String, Durations>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    pub from: String,
    pub to: String,
    pub stages: Vec<String>,
    /// Per channel, and `all`.
    pub channels: BTreeMap<String, ChannelFunnel>,
}

pub fn funnel(conn: &Connection, range: &Range, filter: &Filter) -> Result<Funnel, AnalyticsError> {
    let (condition, params) = placed_in(range, filter);
    let columns: Vec<&str> = STAGES.iter().map(|(_, sql)| *sql).collect();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT o.channel, {} FROM orders o WHERE {condition}",
        columns.join(", ")
    ))?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut reached: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut spans: BTreeMap<String, BTreeMap<String, Vec<i64>>> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        let times: Vec<Option<i64>> = (0..STAGES.len())
            .map(|i| row.get::<_, Option<i64>>(i + 1))
            .collect::<Result<_, _>>()?;
        for key in [channel.as_str(), "all"] {
            let counts = reached.entry(key.to_string()).or_default();
            for ((stage, _), at) in STAGES.iter().zip(&times) {
                *counts.entry((*stage).to_string()).or_default() += i64::from(at.is_some());
            }
            let per = spans.entry(key.to_string()).or_default();
            for pair in STAGES.windows(2).zip(times.windows(2)) {
                let ([(a, _), (b, _)], [Some(start), Some(end)]) = pair else {
                    continue;
                };
                if end >= start {
                    per.entry(format!("{a}→{b}"))
                        .or_default()
                        .push((end - start) / 1_000);
                }
            }
        }
    }
    let mut channels = BTreeMap::new();
    for (channel, counts) in reached {
        let mut durations = BTreeMap::new();
        for pair in STAGES.windows(2) {
            let name = format!("{}→{}", pair[0].0, pair[1].0);
            let mut values = spans
                .get_mut(&channel)
                .and_then(|per| per.remove(&name))
                .unwrap_or_default();
            values.sort_unstable();
            durations.insert(
                name,
                Durations {
                    orders: values.len() as i64,
                    p50_secs: quantile(&values, 0.5),
                    p90_secs: quantile(&values, 0.9),
                },
            );
        }
        channels.insert(
            channel,
            ChannelFunnel {
                reached: counts,
                durations,
            },
        );
    }
    Ok(Funnel {
        from: range.from_text(),
        to: range.to_text(),
        stages: STAGES.iter().map(|(s, _)| (*s).to_string()).collect(),
        channels,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StuckOrder {
    pub order_id: String,
    pub channel: String,
    pub stage: String,
    pub since_ms: i64,
    pub waiting_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stuck {
    pub now_ms: i64,
    pub threshold_minutes: u64,
    /// Stuck orders per stage they wait in, per channel.
    pub counts: BTreeMap<String, BTreeMap<String, i64>>,
    /// The longest waiting, longest first.
    pub oldest: Vec<StuckOrder>,
}

pub fn stuck(
    conn: &Connection,
    now_ms: i64,
    threshold_minutes: u64,
    limit: usize,
) -> Result<Stuck, AnalyticsError> {
    let columns: Vec<&str> = STAGES.iter().map(|(_, sql)| *sql).collect();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT o.order_id, o.channel, {} FROM orders o
         WHERE o.placed_ms IS NOT NULL AND o.completed_at IS NULL AND o.returned_at IS NULL
           AND NOT o.is_cancelled AND o.delivered_at IS NULL",
        columns.join(", ")
    ))?;
    let threshold_ms = i64::try_from(threshold_minutes)
        .unwrap_or(i64::MAX / 60_000)
        .saturating_mul(60_000);
    let mut rows = statement.query([])?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        let order_id: String = row.get(0)?;
        let channel: String = row.get(1)?;
        let mut latest: Option<(&str, i64)> = None;
        for (index, (stage, _)) in STAGES.iter().enumerate() {
            if let Some(at) = row.get::<_, Option<i64>>(index + 2)? {
                latest = Some((stage, at));
            }
        }
        let Some((stage, since_ms)) = latest else {
            continue;
        };
        let waiting = now_ms - since_ms;
        if waiting <= threshold_ms {
            continue;
        }
        for key in [channel.as_str(), "all"] {
            *counts
                .entry(stage.to_string())
                .or_default()
                .entry(key.to_string())
                .or_default() += 1;
        }
        all.push(StuckOrder {
            order_id,
            channel,
            stage: stage.to_string(),
            since_ms,
            waiting_secs: waiting / 1_000,
        });
    }
    all.sort_by(|a, b| (a.since_ms, &a.order_id).cmp(&(b.since_ms, &b.order_id)));
    all.truncate(limit);
    Ok(Stuck {
        now_ms,
        threshold_minutes,
        counts,
        oldest: all,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindActivity {
    pub raised: i64,
    pub share: Option<f64>,
    pub resolved: i64,
    pub avg_handling_secs: Option<i64>,
    pub p90_handling_secs: Option<i64>,
    pub escalations: i64,
    pub open: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OwnerLevel {
    pub open: i64,
    /// Longer at their level than its SLA.
    pub overdue: i64,
    pub oldest_at_level_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenItem {
    pub exception_id: String,
    pub order_id: String,
    pub kind: String,
    pub owner: String,
    pub level: String,
    pub raised_ms: i64,
    pub at_level_secs: i64,
    pub sla_minutes: Option<u32>,
    pub overdue: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exceptions {
    pub from: String,
    pub to: String,
    pub now_ms: i64,
    pub raised: i64,
    /// Of the orders placed in the range, the share with an exception.
    pub orders_with_exceptions_share: Option<f64>,
    pub by_kind: BTreeMap<String, KindActivity>,
    /// Open now: owner → level → counts.
    pub open: BTreeMap<String, BTreeMap<String, OwnerLevel>>,
    /// Open now, longest at their level first.
    pub oldest_open: Vec<OpenItem>,
}

pub fn exceptions(
    conn: &Connection,
    range: &Range,
    zone: chrono_tz::Tz,
    now_ms: i64,
    sla: &SlaRules,
    limit: usize,
) -> Result<Exceptions, AnalyticsError> {
    let from_ms = midnight_ms(range.from, zone);
    let to_ms = midnight_ms(range.to + chrono::Duration::days(1), zone);
    let mut by_kind: BTreeMap<String, KindActivity> = ExceptionKind::ALL
        .iter()
        .map(|kind| (kind.as_str().to_string(), KindActivity::default()))
        .collect();
    let mut handling: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut open: BTreeMap<String, BTreeMap<String, OwnerLevel>> = BTreeMap::new();
    let mut items = Vec::new();
    let mut statement = conn.prepare_cached(
        "SELECT e.exception_id, e.order_id, e.kind, e.owner, e.level, e.level_since, e.raised_at,
                e.raised_day, e.resolved_at,
                (SELECT COUNT(*) FROM exception_levels x WHERE x.exception_id = e.exception_id
                   AND x.since BETWEEN ?3 AND ?4 AND x.since > e.raised_at)
         FROM exceptions e
         WHERE (e.raised_day BETWEEN ?1 AND ?2) OR e.resolved_at IS NULL
            OR (e.resolved_at >= ?3 AND e.resolved_at < ?4)",
    )?;
    let mut rows = statement.query(params![range.from_text(), range.to_text(), from_ms, to_ms])?;
    let mut raised_total = 0;
    while let Some(row) = rows.next()? {
        let exception_id: String = row.get(0)?;
        let order_id: String = row.get(1)?;
        let kind: String = row.get(2)?;
        let owner: String = row.get(3)?;
        let level: i64 = row.get(4)?;
        let level_since: i64 = row.get(5)?;
        let raised_at: i64 = row.get(6)?;
        let raised_day: String = row.get(7)?;
        let resolved_at: Option<i64> = row.get(8)?;
        let escalations: i64 = row.get(9)?;
        let activity = by_kind.entry(kind.clone()).or_default();
        if raised_day.as_str() >= range.from_text().as_str()
            && raised_day.as_str() <= range.to_text().as_str()
        {
            activity.raised += 1;
            raised_total += 1;
        }
        activity.escalations += escalations;
        if let Some(resolved) = resolved_at.filter(|at| *at >= from_ms && *at < to_ms) {
            activity.resolved += 1;
            handling
                .entry(kind.clone())
                .or_default()
                .push(((resolved - raised_at) / 1_000).max(0));
        }
        if resolved_at.is_none_or(|at| at > now_ms) && raised_at <= now_ms {
            activity.open += 1;
            let at_level_secs = (now_ms - level_since).max(0) / 1_000;
            let sla_minutes = kind_of(&kind).and_then(|k| sla.minutes(k, level_of(level)));
            let overdue = sla_minutes.is_some_and(|m| at_level_secs > i64::from(m) * 60);
            let cell = open
                .entry(owner.clone())
                .or_default()
                .entry(level_name(level).to_string())
                .or_default();
            cell.open += 1;
            cell.overdue += i64::from(overdue);
            cell.oldest_at_level_secs =
                Some(cell.oldest_at_level_secs.unwrap_or(0).max(at_level_secs));
            items.push(OpenItem {
                exception_id,
                order_id,
                kind,
                owner,
                level: level_name(level).to_string(),
                raised_ms: raised_at,
                at_level_secs,
                sla_minutes,
                overdue,
            });
        }
    }
    for (kind, activity) in by_kind.iter_mut() {
        activity.share = ratio(activity.raised as f64, raised_total as f64);
        if let Some(mut values) = handling.remove(kind) {
            values.sort_unstable();
            let n = values.len() as i64;
            activity.avg_handling_secs = (n > 0).then(|| values.iter().sum::<i64>() / n);
            activity.p90_handling_secs = quantile(&values, 0.9);
        }
    }
    items.sort_by(|a, b| {
        (b.at_level_secs, &a.exception_id).cmp(&(a.at_level_secs, &b.exception_id))
    });
    items.truncate(limit);
    let (condition, params) = placed_in(range, &Filter::default());
    let (orders, with_exceptions): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT COUNT(*), COALESCE(SUM(EXISTS (SELECT 1 FROM exceptions e WHERE e.order_id = o.order_id)), 0)
             FROM orders o WHERE {condition}"
        ))?
        .query_row(params_from_iter(params.iter()), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    Ok(Exceptions {
        from: range.from_text(),
        to: range.to_text(),
        now_ms,
        raised: raised_total,
        orders_with_exceptions_share: ratio(with_exceptions as f64, orders as f64),
        by_kind,
        open,
        oldest_open: items,
    })
}

fn kind_of(name: &str) -> Option<ExceptionKind> {
    ExceptionKind::ALL.into_iter().find(|k| k.as_str() == name)
}

fn level_of(level: i64) -> Level {
    match level {
        1 => Level::L1,
        2 => Level::L2,
        _ => Level::L3,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub n: i64,
    pub p50_ms: Option<i64>,
    pub p90_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

impl Latency {
    fn of(mut values: Vec<i64>) -> Latency {
        values.sort_unstable();
        Latency {
            n: values.len() as i64,
            p50_ms: quantile(&values, 0.5),
            p90_ms: quantile(&values, 0.9),
            max_ms: values.last().copied(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncLatency {
    pub from: String,
    pub to: String,
    /// Fact in the log → first `order-state` snapshot showing it, per channel and `all`.
    pub inbound: BTreeMap<String, Latency>,
    /// Fact in the log → the channel acknowledged the change, per channel and `all`.
    pub outbound: BTreeMap<String, Latency>,
}

pub fn sync_latency(conn: &Connection, range: &Range) -> Result<SyncLatency, AnalyticsError> {
    let (condition, params) = placed_in(range, &Filter::default());
    let mut inbound: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT o.channel, o.paid_state - o.paid_log, o.shipped_state - o.shipped_log,
                o.delivered_state - o.delivered_log, o.cancelled_state - o.cancelled_log
         FROM orders o WHERE {condition}"
    ))?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        for index in 1..=4 {
            if let Some(ms) = row.get::<_, Option<i64>>(index)?.filter(|ms| *ms >= 0) {
                inbound.entry(channel.clone()).or_default().push(ms);
                inbound.entry("all".into()).or_default().push(ms);
            }
        }
    }
    let mut outbound: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT o.channel, s.acked_ms - CASE s.change
                 WHEN 'shipped' THEN o.shipped_log WHEN 'delivered' THEN o.delivered_log
                 WHEN 'cancelled' THEN o.cancelled_log WHEN 'refunded' THEN o.refunded_log
                 WHEN 'accepted_by_warehouse' THEN o.accepted_log END
         FROM sync_acks s JOIN orders o ON o.order_id = s.order_id WHERE {condition}"
    ))?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let channel: String = row.get(0)?;
        if let Some(ms) = row.get::<_, Option<i64>>(1)?.filter(|ms| *ms >= 0) {
            outbound.entry(channel).or_default().push(ms);
            outbound.entry("all".into()).or_default().push(ms);
        }
    }
    Ok(SyncLatency {
        from: range.from_text(),
        to: range.to_text(),
        inbound: inbound
            .into_iter()
            .map(|(k, v)| (k, Latency::of(v)))
            .collect(),
        outbound: outbound
            .into_iter()
            .map(|(k, v)| (k, Latency::of(v)))
            .collect(),
    })
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkuReturns {
    pub sku: String,
    pub category: String,
    pub shipped_orders: i64,
    pub returned_orders: i64,
    pub return_rate: Option<f64>,
}

pub fn top_returns(
    conn: &Connection,
    range: &Range,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<SkuReturns>, AnalyticsError> {
    let (condition, mut params) = placed_in(range, filter);
    params.push(Value::Integer(i64::try_from(limit).unwrap_or(100)));
    let mut statement = conn.prepare_cached(&format!(
        "SELECT l.sku, MIN(l.category), COUNT(DISTINCT o.order_id),
                COUNT(DISTINCT CASE WHEN o.returned_at IS NOT NULL THEN o.order_id END) AS returned
         FROM orders o JOIN order_lines l ON l.order_id = o.order_id
         WHERE {condition} AND o.is_shipped
         GROUP BY l.sku HAVING returned > 0 ORDER BY returned DESC, l.sku LIMIT ?{}",
        params.len()
    ))?;
    let rows = statement.query_map(params_from_iter(params.iter()), |row| {
        let shipped: i64 = row.get(2)?;
        let returned: i64 = row.get(3)?;
        Ok(SkuReturns {
            sku: row.get(0)?,
            category: row.get(1)?,
            shipped_orders: shipped,
            returned_orders: returned,
            return_rate: ratio(returned as f64, shipped as f64),
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cover {
    pub sku: String,
    pub on_hand: i64,
    pub units_sold_28d: i64,
    pub avg_daily_units: f64,
    /// On hand / average daily units; `null` for a sku that sold nothing.
    pub days_of_cover: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inventory {
    pub to: String,
    pub skus: Vec<Cover>,
    pub total_days_of_cover: Option<f64>,
}

/// Days of cover of every sku with a reported stock level, lowest cover first.
pub fn inventory(conn: &Connection, range: &Range) -> Result<Inventory, AnalyticsError> {
    let window = Range::ending(range.to, 28);
    let mut statement = conn.prepare_cached(
        "SELECT s.sku, SUM(s.on_hand),
                COALESCE((SELECT SUM(l.qty) FROM order_lines l JOIN orders o ON o.order_id = l.order_id
                          WHERE l.sku = s.sku AND o.placed_day BETWEEN ?1 AND ?2
                            AND o.placed_ms IS NOT NULL AND NOT o.is_cancelled), 0)
         FROM stock s GROUP BY s.sku",
    )?;
    let rows = statement.query_map(params![window.from_text(), window.to_text()], |row| {
        let on_hand: i64 = row.get(1)?;
        let sold: i64 = row.get(2)?;
        let avg = sold as f64 / 28.0;
        Ok(Cover {
            sku: row.get(0)?,
            on_hand,
            units_sold_28d: sold,
            avg_daily_units: (avg * 100.0).round() / 100.0,
            days_of_cover: (sold > 0).then(|| (on_hand as f64 / avg * 10.0).round() / 10.0),
        })
    })?;
    let mut skus = rows.collect::<Result<Vec<_>, _>>()?;
    skus.sort_by(|a, b| {
        a.days_of_cover
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.days_of_cover.unwrap_or(f64::INFINITY))
            .then_with(|| a.sku.cmp(&b.sku))
    });
    let on_hand: i64 = skus.iter().map(|c| c.on_hand).sum();
    let sold: i64 = skus.iter().map(|c| c.units_sold_28d).sum();
    Ok(Inventory {
        to: range.to_text(),
        total_days_of_cover: (sold > 0)
            .then(|| (on_hand as f64 / (sold as f64 / 28.0) * 10.0).round() / 10.0),
        skus,
    })
}
