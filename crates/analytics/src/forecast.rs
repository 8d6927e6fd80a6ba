//! Sales forecast per sku for replenishment (the seed: "train a sales forecast on order history
//! to stock ahead"), with Grafana's `augurs`: the daily units are decomposed by MSTL with a
//! weekly period, and the trend is forecast by AutoETS (the model and its parameters chosen
//! by AICc). Too short a history (under three weeks) gets the seasonal naive forecast.
//!
//! **Backtest**: the last `holdout` days are hidden, the model is fitted on the days before and
//! forecasts them; its MAPE (mean absolute percentage error over the hidden days that sold
//! something) is reported beside the MAPE of the *seasonal naive* baseline (each hidden day
//! forecast as the same weekday of the last week seen). A model worth running beats it.

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Predict};
use chrono::NaiveDate;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::query::Range;
use crate::AnalyticsError;

pub const WEEK: usize = 7;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkuForecast {
    pub sku: String,
    /// The history's days and units (oldest first), then the forecast's.
    pub history_days: Vec<String>,
    pub history: Vec<f64>,
    pub days: Vec<String>,
    pub point: Vec<f64>,
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
    /// `mstl_ets` or `seasonal_naive` (short history).
    pub model: &'static str,
    pub backtest: Option<Backtest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backtest {
    pub holdout_days: usize,
    pub model_mape: Option<f64>,
    pub naive_mape: Option<f64>,
}

/// Units of `sku` sold per day (valid orders) over `range`, zeros included.
pub fn daily_units(
    conn: &Connection,
    sku: &str,
    range: &Range,
) -> Result<Vec<f64>, AnalyticsError> {
    let mut units = vec![0.0; usize::try_from(range.days()).unwrap_or(0)];
    let mut statement = conn.prepare_cached(
        "SELECT o.placed_day, SUM(l.qty) FROM order_lines l JOIN orders o ON o.order_id = l.order_id
         WHERE l.sku = ?1 AND o.placed_ms IS NOT NULL AND NOT o.is_cancelled
           AND o.placed_day BETWEEN ?2 AND ?3 GROUP BY 1",
    )?;
    let mut rows = statement.query(params![sku, range.from_text(), range.to_text()])?;
    while let Some(row) = rows.next()? {
        let day: String = row.get(0)?;
        let qty: i64 = row.get(1)?;
        if let Ok(day) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") {
            if let Some(slot) = usize::try_from((day - range.from).num_days())
                .ok()
                .and_then(|i| units.get_mut(i))
            {
                *slot = qty as f64;
            }
        }
    }
    Ok(units)
}

/// A forecast of `horizon` days after `history`, with an 80 % interval.
pub fn forecast(history: &[f64], horizon: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>, &'static str) {
    if history.len() >= 3 * WEEK {
        let model = MSTLModel::new(vec![WEEK], AutoETS::non_seasonal().into_trend_model());
        let predicted = model
            .fit(history)
            .ok()
            .and_then(|fitted| fitted.predict(horizon, 0.8).ok());
        if let Some(forecast) = predicted {
            let clamp = |v: Vec<f64>| -> Vec<f64> {
                v.into_iter()
                    .map(|x| {
                        if x.is_finite() {
                            round2(x.max(0.0))
                        } else {
                            0.0
                        }
                    })
                    .collect()
            };
            let (lower, upper) = match forecast.intervals {
                Some(intervals) => (clamp(intervals.lower), clamp(intervals.upper)),
                None => (Vec::new(), Vec::new()),
            };
            if forecast.point.iter().all(|x| x.is_finite()) {
                return (clamp(forecast.point), lower, upper, "mstl_ets");
            }
        }
    }
    let point = seasonal_naive(history, horizon);
    (point.clone(), point.clone(), point, "seasonal_naive")
}

/// Each day forecast as the same weekday of the last week seen (the mean, without a week).
pub fn seasonal_naive(history: &[f64], horizon: usize) -> Vec<f64> {
    if history.len() >= WEEK {
        let last_week = &history[history.len() - WEEK..];
        (0..horizon).map(|i| last_week[i % WEEK]).collect()
    } else {
        let mean = history.iter().sum::<f64>() / history.len().max(1) as f64;
        vec![round2(mean); horizon]
    }
}

/// MAPE in percent over the days whose actual is above zero; `None` if there are none.
pub fn mape(actual: &[f64], predicted: &[f64]) -> Option<f64> {
    let errors: Vec<f64> = actual
        .iter()
        .zip(predicted)
        .filter(|(a, _)| **a > 0.0)
        .map(|(a, p)| ((a - p) / a).abs())
        .collect();
    (!errors.is_empty()).then(|| round2(errors.iter().sum::<f64>() / errors.len() as f64 * 100.0))
}

/// Hides the last `holdout` days, forecasts them, and compares with the seasonal naive forecast.
pub fn backtest(history: &[f64], holdout: usize) -> Option<Backtest> {
    if history.len() < holdout + 3 * WEEK {
        return None;
    }
    let (train, test) = history.split_at(history.len() - holdout);
    let (model, _, _, _) = forecast(train, holdout);
    let naive = seasonal_naive(train, holdout);
    Some(Backtest {
        holdout_days: holdout,
        model_mape: mape(test, &model),
        naive_mape: mape(test, &naive),
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The skus that sold most (units) in the 28 days ending `to`.
pub fn top_skus(
    conn: &Connection,
    to: NaiveDate,
    limit: usize,
) -> Result<Vec<String>, AnalyticsError> {
    let window = Range::ending(to, 28);
    let mut statement = conn.prepare_cached(
        "SELECT l.sku, SUM(l.qty) AS units FROM order_lines l JOIN orders o ON o.order_id = l.order_id
         WHERE o.placed_ms IS NOT NULL AND NOT o.is_cancelled AND o.placed_day BETWEEN ?1 AND ?2
         GROUP BY l.sku ORDER BY units DESC, l.sku LIMIT ?3",
    )?;
    let rows = statement.query_map(
        params![window.from_text(), window.to_text(), limit as i64],
        |row| row.get::<_, String>(0),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The forecast of `sku` from the `history_days` days ending `to`, and its backtest.
pub fn sku_forecast(
    conn: &Connection,
    sku: &str,
    to: NaiveDate,
    history_days: i64,
    horizon: usize,
) -> Result<SkuForecast, AnalyticsError> {
    let range = Range::ending(to, history_days);
    let history = daily_units(conn, sku, &range)?;
    let (point, lower, upper, model) = forecast(&history, horizon);
    let day = |offset: i64| {
        (range.from + chrono::Duration::days(offset))
            .format("%Y-%m-%d")
            .to_string()
    };
    Ok(SkuForecast {
        sku: sku.to_string(),
        history_days: (0..range.days()).map(day).collect(),
        days: (0..horizon as i64).map(|i| day(range.days() + i)).collect(),
        backtest: backtest(&history, 14),
        history,
        point,
        lower,
        upper,
        model,
    })
}

/// The backtest over several skus: the mean of their MAPEs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BacktestSummary {
    pub skus: usize,
    pub model_mape: Option<f64>,
    pub naive_mape: Option<f64>,
}

pub fn summarize(forecasts: &[SkuForecast]) -> BacktestSummary {
    let tests: Vec<&Backtest> = forecasts
        .iter()
        .filter_map(|f| f.backtest.as_ref())
        .collect();
    let mean = |values: Vec<f64>| {
        (!values.is_empty()).then(|| round2(values.iter().sum::<f64>() / values.len() as f64))
    };
    BacktestSummary {
        skus: tests.len(),
        model_mape: mean(tests.iter().filter_map(|t| t.model_mape).collect()),
        naive_mape: mean(tests.iter().filter_map(|t| t.naive_mape).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weekly_series_is_forecast_by_mstl_and_beats_naive_with_noise() {
        // A weekly rhythm with a trend: the model should follow both.
        let rhythm = [10.0, 11.0, 12.0, 13.0, 16.0, 22.0, 19.0];
        let history: Vec<f64> = (0..70)
            .map(|i| rhythm[i % 7] * (1.0 + i as f64 * 0.01) + if i % 3 == 0 { 1.5 } else { -1.0 })
            .collect();
        let (point, lower, upper, model) = forecast(&history, 14);
        assert_eq!(model, "mstl_ets");
        assert_eq!(point.len(), 14);
        assert!(lower.iter().zip(&upper).all(|(l, u)| l <= u));
        let test = backtest(&history, 14).unwrap();
        assert!(test.model_mape.unwrap() < 20.0, "{test:?}");
    }

    #[test]
    fn mape_skips_days_without_sales() {
        assert_eq!(mape(&[0.0, 10.0], &[5.0, 8.0]), Some(20.0));
        assert_eq!(mape(&[0.0], &[1.0]), None);
        assert_eq!(seasonal_naive(&[1.0, 2.0, 3.0], 2), vec![2.0, 2.0]);
    }
}
