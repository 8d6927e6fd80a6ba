//! What every question to the store is asked over: a range of days in the display zone and an
//! optional slice (one channel, category or province), read from query parameters
//! (`?from=2026-11-01&to=2026-11-30&channel=tmall`) or CLI flags.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rusqlite::types::Value;
use rusqlite::Connection;
use serde::Serialize;

use crate::AnalyticsError;

/// Days `from` to `to`, both included, in the display zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Range, AnalyticsError> {
        if from > to {
            return Err(AnalyticsError::Usage(format!(
                "the range starts ({from}) after it ends ({to})"
            )));
        }
        Ok(Range { from, to })
    }

    pub fn days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub fn from_text(&self) -> String {
        self.from.format("%Y-%m-%d").to_string()
    }

    pub fn to_text(&self) -> String {
        self.to.format("%Y-%m-%d").to_string()
    }

    /// The `days` days ending with `to`.
    pub fn ending(to: NaiveDate, days: i64) -> Range {
        Range {
            from: to - chrono::Duration::days(days.max(1) - 1),
            to,
        }
    }

    /// The same number of days just before this range.
    pub fn previous(&self) -> Range {
        let days = chrono::Duration::days(self.days());
        Range {
            from: self.from - days,
            to: self.to - days,
        }
    }
}

/// A dimension the KPIs are cut by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Channel,
    Category,
    Province,
}

impl Dimension {
    pub fn parse(text: &str) -> Result<Dimension, AnalyticsError> {
        match text {
            "channel" => Ok(Dimension::Channel),
            "category" => Ok(Dimension::Category),
            "province" => Ok(Dimension::Province),
            other => Err(AnalyticsError::Usage(format!(
                "by={other:?}: expected channel, category or province"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Channel => "channel",
            Dimension::Category => "category",
            Dimension::Province => "province",
        }
    }

    /// The values present in the store, sorted.
    pub fn values(self, conn: &Connection) -> Result<Vec<String>, AnalyticsError> {
        let sql = match self {
            Dimension::Channel => {
                "SELECT DISTINCT channel FROM orders WHERE placed_ms IS NOT NULL ORDER BY 1"
            }
            Dimension::Category => "SELECT DISTINCT category FROM order_lines ORDER BY 1",
            Dimension::Province => {
                "SELECT DISTINCT province FROM orders WHERE province IS NOT NULL ORDER BY 1"
            }
        };
        let mut statement = conn.prepare_cached(sql)?;
        let values = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(values)
    }
}

/// One slice of the orders: at most one value per dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    pub channel: Option<String>,
    pub category: Option<String>,
    pub province: Option<String>,
}

impl Filter {
    pub fn with(&self, dimension: Dimension, value: &str) -> Filter {
        let mut filter = self.clone();
        let slot = match dimension {
            Dimension::Channel => &mut filter.channel,
            Dimension::Category => &mut filter.category,
            Dimension::Province => &mut filter.province,
        };
        *slot = Some(value.to_string());
        filter
    }

    /// SQL conditions on `orders` aliased `o`, and their parameters (appended to `params`).
    pub fn sql(&self, params: &mut Vec<Value>) -> String {
        let mut conditions = String::new();
        if let Some(channel) = &self.channel {
            params.push(Value::Text(channel.clone()));
            conditions.push_str(&format!(" AND o.channel = ?{}", params.len()));
        }
        if let Some(province) = &self.province {
            params.push(Value::Text(province.clone()));
            conditions.push_str(&format!(" AND o.province = ?{}", params.len()));
        }
        if let Some(category) = &self.category {
            params.push(Value::Text(category.clone()));
            conditions.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.order_id AND l.category = ?{})",
                params.len()
            ));
        }
        conditions
    }
}

/// Conditions for orders placed in `range` and in `filter` (alias `o`), with their parameters.
pub fn placed_in(range: &Range, filter: &Filter) -> (String, Vec<Value>) {
    let mut params = vec![Value::Text(range.from_text()), Value::Text(range.to_text())];
    let sql = format!(
        "o.placed_ms IS NOT NULL AND o.placed_day BETWEEN ?1 AND ?2{}",
        filter.sql(&mut params)
    );
    (sql, params)
}

/// Reads a query string's parameters: `from`, `to`, `days`, `channel`, `category`, `province`.
pub struct Params<'a> {
    pub map: &'a BTreeMap<String, String>,
}

impl Params<'_> {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.map
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    pub fn day(&self, name: &str) -> Result<Option<NaiveDate>, AnalyticsError> {
        self.text(name)
            .map(|text| {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                    AnalyticsError::Usage(format!("{name}={text:?}: expected a day, YYYY-MM-DD"))
                })
            })
            .transpose()
    }

    pub fn number(&self, name: &str, default: i64, max: i64) -> Result<i64, AnalyticsError> {
        match self.text(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    AnalyticsError::Usage(format!(
                        "{name}={text:?}: expected a whole number from 1 to {max}"
                    ))
                }),
        }
    }

    /// The range asked for: `from`/`to`, or the `days` (default 30) ending `to`; `to` defaults
    /// to `latest` (the latest day with orders, or today).
    pub fn range(&self, latest: NaiveDate) -> Result<Range, AnalyticsError> {
        let to = self.day("to")?.unwrap_or(latest);
        match self.day("from")? {
            Some(from) => {
                let range = Range::new(from, to)?;
                if range.days() > 3_660 {
                    return Err(AnalyticsError::Usage(
                        "the range is longer than ten years".into(),
                    ));
                }
                Ok(range)
            }
            None => Ok(Range::ending(to, self.number("days", 30, 3_660)?)),
        }
    }

    pub fn filter(&self) -> Filter {
        Filter {
            channel: self.text("channel").map(str::to_string),
            category: self.text("category").map(str::to_string),
            province: self.text("province").map(str::to_string),
        }
    }

    pub fn dimension(&self) -> Result<Option<Dimension>, AnalyticsError> {
        self.text("by").map(Dimension::parse).transpose()
    }
}

/// The latest day any order was placed on; `None` for an empty store.
pub fn latest_day(conn: &Connection) -> Result<Option<NaiveDate>, AnalyticsError> {
    let text: Option<String> = conn.query_row(
        "SELECT MAX(placed_day) FROM orders WHERE placed_ms IS NOT NULL",
        [],
        |row| row.get(0),
    )?;
    Ok(text.and_then(|text| NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()))
}

/// `part / whole`, rounded to 4 decimals; `None` when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part / whole * 10_000.0).round() / 10_000.0)
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank; `None` when empty.
pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The first millisecond of `day` in `zone`.
pub fn midnight_ms(day: NaiveDate, zone: chrono_tz::Tz) -> i64 {
    use chrono::TimeZone;
    let local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    zone.from_local_datetime(&local).earliest().map_or_else(
        || local.and_utc().timestamp_millis(),
        |at| at.timestamp_millis(),
    )
}
