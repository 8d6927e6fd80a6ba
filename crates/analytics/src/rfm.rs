//! Customer segments (客户分层): RFM scores and the eight usual labels, and each customer's
//! preferred category, for marketing (exportable as CSV).
//!
//! Over the valid orders (not cancelled) placed up to the day asked about, per customer (one
//! person across channels where the phone links them, see `project`):
//!
//! - **R**ecency: days from the last order to that day; **F**requency: valid orders;
//!   **M**onetary: their totals in fen.
//! - Each becomes a score 1–5 by quintile: a value's score is 1 + how many of the 20th, 40th,
//!   60th and 80th percentiles (nearest rank) of all customers' values it is above — so equal
//!   values share a score, and a skewed measure (most customers order once) uses fewer scores.
//!   For recency, fewer days is better: the score is taken on the negated days.
//! - A score is *high* when it is above the mean of that score over all customers. The label
//!   follows the usual table:
//!
//! | R | F | M | label | code |
//! |---|---|---|---|---|
//! | high | high | high | 重要价值客户 | important_value |
//! | high | low | high | 重要发展客户 | important_develop |
//! | low | high | high | 重要保持客户 | important_keep |
//! | low | low | high | 重要挽留客户 | important_retain |
//! | high | high | low | 一般价值客户 | general_value |
//! | high | low | low | 一般发展客户 | general_develop |
//! | low | high | low | 一般保持客户 | general_keep |
//! | low | low | low | 一般挽留客户 | general_retain |
//!
//! - **Preferred category**: the category of most spend (ties: the first by name).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::AnalyticsError;

/// The labels in the table's order: (code, Chinese, English).
pub const SEGMENTS: [(&str, &str, &str); 8] = [
    ("important_value", "重要价值客户", "Important value"),
    ("important_develop", "重要发展客户", "Important to develop"),
    ("important_keep", "重要保持客户", "Important to keep"),
    ("important_retain", "重要挽留客户", "Important to win back"),
    ("general_value", "一般价值客户", "General value"),
    ("general_develop", "一般发展客户", "General to develop"),
    ("general_keep", "一般保持客户", "General to keep"),
    ("general_retain", "一般挽留客户", "General to win back"),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub customer_key: String,
    /// The channels and their buyer ids: `tmall:tb-1`.
    pub buyer_ids: Vec<String>,
    pub phone_masked: String,
    pub last_order_day: String,
    pub recency_days: i64,
    pub frequency: i64,
    pub monetary_fen: i64,
    pub r: u8,
    pub f: u8,
    pub m: u8,
    pub segment: &'static str,
    pub segment_zh: &'static str,
    pub preferred_category: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentCount {
    pub code: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
    pub customers: i64,
    pub monetary_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rfm {
    pub as_of: String,
    pub customers: i64,
    /// The cut points (20/40/60/80 %) of recency days, frequency and monetary fen.
    pub cuts: BTreeMap<String, [i64; 4]>,
    pub mean_scores: [f64; 3],
    pub segments: Vec<SegmentCount>,
    /// Customers linked across two or more channels by their phone.
    pub cross_channel_customers: i64,
}

struct Raw {
    customer_key: String,
    last_day: String,
    frequency: i64,
    monetary: i64,
    buyer_ids: BTreeSet<String>,
    phone_masked: String,
}

/// Every customer's scores and label as of `as_of` (orders placed on or before it).
pub fn customers(
    conn: &Connection,
    as_of: NaiveDate,
) -> Result<(Rfm, Vec<Customer>), AnalyticsError> {
    let day = as_of.format("%Y-%m-%d").to_string();
    let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
    {
        let mut statement = conn.prepare_cached(
            "SELECT customer_key, channel, buyer_id, phone_masked, placed_day, total_fen
             FROM orders WHERE placed_ms IS NOT NULL AND NOT is_cancelled AND placed_day <= ?1
             ORDER BY customer_key, placed_ms",
        )?;
        let mut rows = statement.query(params![day])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
            let channel: String = row.get(1)?;
            let buyer: String = row.get::<_, Option<String>>(2)?.unwrap_or_default();
            let phone: String = row.get::<_, Option<String>>(3)?.unwrap_or_default();
            let placed_day: String = row.get(4)?;
            let total: i64 = row.get::<_, Option<i64>>(5)?.unwrap_or(0);
            let entry = raw.entry(key.clone()).or_insert_with(|| Raw {
                customer_key: key,
                last_day: placed_day.clone(),
                frequency: 0,
                monetary: 0,
                buyer_ids: BTreeSet::new(),
                phone_masked: phone,
            });
            entry.frequency += 1;
            entry.monetary += total;
            entry.last_day = entry.last_day.clone().max(placed_day);
            entry.buyer_ids.insert(format!("{channel}:{buyer}"));
        }
    }
    let mut preferred: BTreeMap<String, (i64, String)> = BTreeMap::new();
    {
        let mut statement = conn.prepare_cached(
            "SELECT o.customer_key, l.category, SUM(l.qty * l.unit_price_fen)
             FROM orders o JOIN order_lines l ON l.order_id = o.order_id
             WHERE o.placed_ms IS NOT NULL AND NOT o.is_cancelled AND o.placed_day <= ?1
             GROUP BY 1, 2 ORDER BY 1, 2",
        )?;
        let mut rows = statement.query(params![day])?;
        while let Some(row) = rows.next()? {
            let key: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
            let category: String = row.get(1)?;
            let spend: i64 = row.get(2)?;
            let best = preferred.entry(key).or_insert((i64::MIN, String::new()));
            if spend > best.0 {
                *best = (spend, category);
            }
        }
    }
    let recency = |raw: &Raw| {
        NaiveDate::parse_from_str(&raw.last_day, "%Y-%m-%d")
            .map(|last| (as_of - last).num_days())
            .unwrap_or(0)
    };
    let all: Vec<&Raw> = raw.values().collect();
    // Recency is scored on negated days: fewer days since the last order is better.
    let r_values: Vec<i64> = all.iter().map(|r| -recency(r)).collect();
    let f_values: Vec<i64> = all.iter().map(|r| r.frequency).collect();
    let m_values: Vec<i64> = all.iter().map(|r| r.monetary).collect();
    let (r_cuts, f_cuts, m_cuts) = (cuts(&r_values), cuts(&f_values), cuts(&m_values));
    let scores: Vec<[u8; 3]> = (0..all.len())
        .map(|i| {
            [
                score(r_values[i], &r_cuts),
                score(f_values[i], &f_cuts),
                score(m_values[i], &m_cuts),
            ]
        })
        .collect();
    let n = scores.len().max(1) as f64;
    let mean = |k: usize| scores.iter().map(|s| f64::from(s[k])).sum::<f64>() / n;
    let means = [mean(0), mean(1), mean(2)];
    let mut counts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut list = Vec::with_capacity(all.len());
    for (raw, s) in all.iter().zip(&scores) {
        let high = |k: usize| f64::from(s[k]) > means[k];
        let index = match (high(0), high(1), high(2)) {
            (true, true, true) => 0,
            (true, false, true) => 1,
            (false, true, true) => 2,
            (false, false, true) => 3,
            (true, true, false) => 4,
            (true, false, false) => 5,
            (false, true, false) => 6,
            (false, false, false) => 7,
        };
        let (code, zh, _) = SEGMENTS[index];
        let count = counts.entry(code).or_default();
        count.0 += 1;
        count.1 += raw.monetary;
        list.push(Customer {
            customer_key: raw.customer_key.clone(),
            buyer_ids: raw.buyer_ids.iter().cloned().collect(),
            phone_masked: raw.phone_masked.clone(),
            last_order_day: raw.last_day.clone(),
            recency_days: recency(raw),
            frequency: raw.frequency,
            monetary_fen: raw.monetary,
            r: s[0],
            f: s[1],
            m: s[2],
            segment: code,
            segment_zh: zh,
            preferred_category: preferred
                .get(&raw.customer_key)
                .map(|(_, c)| c.clone())
                .unwrap_or_default(),
        });
    }
    let cross_channel = list
        .iter()
        .filter(|c| {
            c.buyer_ids
                .iter()
                .map(|b| b.split(':').next().unwrap_or_default())
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .count() as i64;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let rfm = Rfm {
        as_of: day,
        customers: list.len() as i64,
        cuts: BTreeMap::from([
            ("recency_days".to_string(), r_cuts.map(|c| -c)),
            ("frequency".to_string(), f_cuts),
            ("monetary_fen".to_string(), m_cuts),
        ]),
        mean_scores: means.map(round),
        segments: SEGMENTS
            .iter()
            .map(|(code, zh, en)| {
                let (customers, monetary_fen) = counts.get(code).copied().unwrap_or_default();
                SegmentCount {
                    code,
                    zh,
                    en,
                    customers,
                    monetary_fen,
                }
            })
            .collect(),
        cross_channel_customers: cross_channel,
    };
    Ok((rfm, list))
}

/// The 20/40/60/80 % cut points of `values` (nearest rank).
fn cuts(values: &[i64]) -> [i64; 4] {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    [0.2, 0.4, 0.6, 0.8].map(|q| crate::query::quantile(&sorted, q).unwrap_or(0))
}

/// 1 + the number of cut points `value` is above.
fn score(value: i64, cuts: &[i64; 4]) -> u8 {
    1 + cuts.iter().filter(|cut| value > **cut).count() as u8
}

/// The customers as CSV for marketing: a header, then one line per customer (a UTF-8 BOM first,
/// so spreadsheet programs read the Chinese labels).
pub fn csv(customers: &[Customer]) -> String {
    let mut out = String::from(
        "\u{feff}customer_key,buyer_ids,phone_masked,last_order_day,recency_days,frequency,monetary_yuan,r,f,m,segment,segment_zh,preferred_category\n",
    );
    for c in customers {
        let fields = [
            c.customer_key.clone(),
            c.buyer_ids.join(" "),
            c.phone_masked.clone(),
            c.last_order_day.clone(),
            c.recency_days.to_string(),
            c.frequency.to_string(),
            format!("{}.{:02}", c.monetary_fen / 100, c.monetary_fen % 100),
            c.r.to_string(),
            c.f.to_string(),
            c.m.to_string(),
            c.segment.to_string(),
            c.segment_zh.to_string(),
            c.preferred_category.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a field that holds a comma, quote or line break; defuses a leading formula sign.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_a_score_and_scores_follow_quintiles() {
        let values: Vec<i64> = (1..=10).collect();
        let c = cuts(&values);
        assert_eq!(c, [2, 4, 6, 8]);
        assert_eq!(score(1, &c), 1);
        assert_eq!(score(3, &c), 2);
        assert_eq!(score(10, &c), 5);
        let skewed = [1, 1, 1, 1, 1, 1, 1, 1, 2, 5];
        // Most customers order once: every cut is 1, and any repeat is in the top score.
        let c = cuts(&skewed);
        assert_eq!(c, [1, 1, 1, 1]);
        assert_eq!(score(1, &c), 1);
        assert_eq!(score(2, &c), 5);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-3"), "-3");
    }
}
