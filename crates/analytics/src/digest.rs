//! The daily KPI digest (the seed: KPI cards pushed to managers' phones every morning), a
//! `notifications` record that `orderflow-notify` delivers to the managers' robot.
//!
//! The digest of a day is published once (`analytics.digest-at`, local time, for the day
//! before); its notification id is derived from the day, so publishing it again after a crash
//! is a copy the sender drops. The audience is the operations owner at L2 (the supervisors'
//! group in the rules' alert routing); the record names the order id `store:KPI-DIGEST-{day}`
//! because a notification is keyed by an order — it names no real order.

use chrono::NaiveDate;
use orderflow_domain::{Audience, Channel, EventId, Level, Notification, OrderId, Owner};
use rusqlite::Connection;
use serde::Serialize;

use crate::kpi::{kpis, Kpis};
use crate::query::{Filter, Range};
use crate::AnalyticsError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub day: String,
    pub kpis: Kpis,
    pub previous: Kpis,
    pub message: String,
}

/// Money for people: `¥1,234.50`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let whole = (fen / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}¥{grouped}.{:02}", fen % 100)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn change(now: i64, before: i64) -> String {
    if before == 0 {
        return String::new();
    }
    let delta = (now - before) as f64 / before as f64 * 100.0;
    format!("（环比 {delta:+.1}%）")
}

/// The digest of `day`, compared with the day before.
pub fn digest(conn: &Connection, day: NaiveDate) -> Result<Digest, AnalyticsError> {
    let range = Range::new(day, day)?;
    let today = kpis(conn, &range, &Filter::default())?;
    let previous = kpis(conn, &range.previous(), &Filter::default())?;
    let message = format!(
        "【订单日报 {day}】有效订单 {} 单{}；成交额 {}{}；客单价 {}；退货率 {}；复购率 {}；新增客户 {} 人；支付转化率 {}。",
        today.valid_orders,
        change(today.valid_orders, previous.valid_orders),
        yuan(today.gmv_fen),
        change(today.gmv_fen, previous.gmv_fen),
        today.aov_fen.map_or_else(|| "-".to_string(), yuan),
        percent(today.return_rate),
        percent(today.repurchase_rate),
        today.new_customers,
        percent(today.payment_conversion),
    );
    Ok(Digest {
        day: day.format("%Y-%m-%d").to_string(),
        kpis: today,
        previous,
        message,
    })
}

/// The `notifications` record of a digest.
pub fn notification(
    digest: &Digest,
    at: orderflow_domain::Timestamp,
) -> Result<Notification, AnalyticsError> {
    let compact: String = digest.day.chars().filter(char::is_ascii_digit).collect();
    let order_id = OrderId::new(Channel::Store, &format!("KPI-DIGEST-{compact}"))
        .map_err(|error| AnalyticsError::Fatal(format!("digest order id: {error}")))?;
    Ok(Notification {
        notification_id: EventId::derive(&["kpi_digest", &digest.day]),
        order_id,
        audience: Audience::Owner {
            owner: Owner::Operations,
            level: Level::L2,
        },
        kind: orderflow_domain::KPI_DIGEST_KIND.into(),
        message: digest.message.clone(),
        choices: Vec::new(),
        amount_fen: u64::try_from(digest.kpis.gmv_fen).ok(),
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::yuan;

    #[test]
    fn money_reads_as_yuan_with_two_decimals() {
        assert_eq!(yuan(0), "¥0.00");
        assert_eq!(yuan(12_345_678), "¥123,456.78");
        assert_eq!(yuan(-5), "-¥0.05");
        assert_eq!(yuan(100_000), "¥1,000.00");
    }
}
