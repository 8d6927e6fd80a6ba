//! `orderflow report`: the seed's KPIs for a range of days (table, CSV or JSON), with the
//! weekly exception report beside them, and the daily digest.
//!
//! The KPIs are the analytics projection's (`orderflow-analytics`, definitions in
//! `crates/analytics/src/kpi.rs`): from its store with `--store`, else folded here from the
//! topics into a store in memory — the same code, so the same numbers. The exception report is
//! `orderflow exceptions` over the same days (`report.rs`).

use std::path::PathBuf;

use chrono::{Duration, NaiveDate};
use orderflow_analytics::app::Settings;
use orderflow_analytics::consumer::{self, Shared};
use orderflow_analytics::digest;
use orderflow_analytics::kpi::{self, Kpis};
use orderflow_analytics::query::{latest_day, midnight_ms, Dimension, Filter, Range};
use orderflow_analytics::store::Store;
use orderflow_analytics::AnalyticsError;
use orderflow_runtime::config::Config;
use orderflow_runtime::kafka::Topics;
use orderflow_runtime::logread::{read_topic, Until};
use orderflow_runtime::output::Output;
use orderflow_runtime::rules::Clock;
use orderflow_schema::headers;
use orderflow_schema::output::NotificationRecord;
use rdkafka::Message;
use serde_json::json;

use crate::report::{render_text, ExceptionLedger, ExceptionReport};
use crate::{commands, display, OpsError};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// First day (YYYY-MM-DD, display zone); default: 6 days before --to.
    #[arg(long)]
    from: Option<String>,
    /// Last day, included; default: the latest day with orders.
    #[arg(long)]
    to: Option<String>,
    /// Also cut the KPIs by channel, category or province.
    #[arg(long)]
    by: Option<String>,
    /// Only orders of this channel.
    #[arg(long)]
    channel: Option<String>,
    /// table, csv or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Read the KPIs from this analytics store (a directory or its analytics.sqlite) instead of
    /// folding the topics.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Print the daily KPI digest of --to instead.
    #[arg(long)]
    digest: bool,
    /// With --digest: publish it on `notifications` for the alert sender to deliver.
    #[arg(long, requires = "digest")]
    send: bool,
}

impl From<AnalyticsError> for OpsError {
    fn from(error: AnalyticsError) -> OpsError {
        match error {
            AnalyticsError::Usage(message) => OpsError::Usage(message),
            AnalyticsError::Runtime(error) => OpsError::Runtime(error),
            other => OpsError::Runtime(orderflow_runtime::RuntimeError::Fatal(other.to_string())),
        }
    }
}

fn day(flag: &str, text: &str) -> Result<NaiveDate, OpsError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| OpsError::Usage(format!("{flag} {text:?}: expected a day, YYYY-MM-DD")))
}

/// Runs `orderflow report`.
pub async fn run(config: &Config, args: ReportArgs) -> Result<(), OpsError> {
    let format = args.format.as_str();
    if !["table", "csv", "json"].contains(&format) {
        return Err(OpsError::Usage(format!(
            "--format {format:?}: expected table, csv or json"
        )));
    }
    let by = args.by.as_deref().map(Dimension::parse).transpose()?;
    let settings = Settings::from_config(config)?;
    let zone = settings.zone;
    let store = match &args.store {
        Some(path) => {
            let file = if path.is_dir() {
                path.join("analytics.sqlite")
            } else {
                path.clone()
            };
            if !file.exists() {
                return Err(OpsError::Usage(format!(
                    "no analytics store at {}",
                    file.display()
                )));
            }
            Store::open(&file)?
        }
        None => Store::in_memory()?,
    };
    let shared = Shared::new(store, settings.projection(), None, None);
    shared.store().use_zone(zone)?;
    if args.store.is_none() {
        consumer::replay(config, &shared).await?;
    }
    let filter = Filter {
        channel: args.channel.clone(),
        ..Filter::default()
    };
    // Everything read from the store, before anything is awaited.
    let (range, digest, total, groups) = {
        let store = shared.store();
        let conn = store.conn();
        let to = match &args.to {
            Some(text) => day("--to", text)?,
            None => match latest_day(conn)? {
                Some(latest) => latest,
                None => Clock::from_config(config)
                    .now()?
                    .with_timezone(&zone)
                    .date_naive(),
            },
        };
        let from = match &args.from {
            Some(text) => day("--from", text)?,
            None => to - Duration::days(6),
        };
        let range = Range::new(from, to)?;
        if args.digest {
            (range, Some(digest::digest(conn, to)?), None, None)
        } else {
            let total = kpi::kpis(conn, &range, &filter)?;
            let groups = match by {
                Some(dimension) => Some(kpi::breakdown(conn, &range, &filter, dimension)?.groups),
                None => None,
            };
            (range, None, Some(total), groups)
        }
    };
    if let Some(digest) = digest {
        if args.send {
            let now = Clock::from_config(config).now()?;
            let notification = digest::notification(&digest, now)?;
            let output = Output {
                topic: Topics::new(&config.kafka.topic_prefix).notifications(),
                key: notification.order_id.to_string().into_bytes(),
                payload: NotificationRecord::new(notification.clone())
                    .to_json()
                    .map_err(|e| {
                        OpsError::Runtime(orderflow_runtime::RuntimeError::Fatal(e.to_string()))
                    })?,
                headers: vec![(
                    headers::NOTIFICATION_ID,
                    notification.notification_id.to_string().into_bytes(),
                )],
            };
            let producer = orderflow_runtime::kafka::producer(&config.kafka)?;
            orderflow_runtime::output::deliver(&producer, std::slice::from_ref(&output)).await?;
            eprintln!(
                "published the digest of {} on {} ({})",
                digest.day, output.topic, notification.notification_id
            );
        }
        match format {
            "json" => crate::outln!("{}", json_text(&digest, zone)?),
            _ => crate::outln!("{}", digest.message),
        }
        return Ok(());
    }
    let Some(total) = total else {
        return Ok(());
    };
    let exceptions = exception_report(config, &range, zone).await?;
    match format {
        "json" => {
            let document = json!({"from": range.from_text(), "to": range.to_text(),
                "zone": zone.name(), "kpis": total, "by": by, "groups": groups,
                "exceptions": exceptions});
            crate::outln!("{}", json_text(&document, zone)?);
        }
        "csv" => crate::out!("{}", csv(&total, groups.as_ref(), &exceptions)),
        _ => {
            crate::out!("{}", table(&total, groups.as_ref()));
            crate::outln!();
            crate::out!("{}", render_text(&exceptions, zone));
        }
    }
    Ok(())
}

fn json_text(value: &impl serde::Serialize, zone: chrono_tz::Tz) -> Result<String, OpsError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| OpsError::Runtime(orderflow_runtime::RuntimeError::Fatal(e.to_string())))?;
    Ok(display::localize_json(&text, zone))
}

/// The exception report over the range's days: activity within them, open at its end (or now).
async fn exception_report(
    config: &Config,
    range: &Range,
    zone: chrono_tz::Tz,
) -> Result<ExceptionReport, OpsError> {
    let since =
        chrono::DateTime::from_timestamp_millis(midnight_ms(range.from, zone)).unwrap_or_default();
    let end =
        chrono::DateTime::from_timestamp_millis(midnight_ms(range.to + Duration::days(1), zone))
            .unwrap_or_default()
            - Duration::milliseconds(1);
    let now = Clock::from_config(config).now()?.min(end);
    let topic = Topics::new(&config.kafka.topic_prefix).exceptions();
    let mut ledger = ExceptionLedger::default();
    read_topic(
        &config.kafka,
        &topic,
        Until::End {
            quiet: commands::END_QUIET,
        },
        |message| {
            ledger.apply_payload(message.payload());
            Ok(())
        },
    )
    .await?;
    Ok(ledger.report(now, Some(since)))
}

fn yuan(fen: Option<i64>) -> String {
    fen.map_or_else(|| "-".into(), digest::yuan)
}

fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".into(), |r| format!("{:.2}%", r * 100.0))
}

/// The rows of the KPI table: (label, value).
fn rows(k: &Kpis) -> Vec<(&'static str, String)> {
    vec![
        ("orders placed (下单数)", k.orders.to_string()),
        ("cancelled (取消)", k.cancelled.to_string()),
        ("valid orders (有效订单数)", k.valid_orders.to_string()),
        (
            "daily valid orders (日均有效订单数)",
            format!("{:.2}", k.daily_valid_orders),
        ),
        ("GMV (成交额)", yuan(Some(k.gmv_fen))),
        ("AOV (客单价)", yuan(k.aov_fen)),
        (
            "payment conversion (支付转化率)",
            percent(k.payment_conversion),
        ),
        ("shipped (发货)", k.shipped.to_string()),
        ("returned (退货)", k.returned.to_string()),
        ("return rate (退货率)", percent(k.return_rate)),
        ("buyers (购买客户)", k.buyers.to_string()),
        ("repeat buyers (复购客户)", k.repeat_buyers.to_string()),
        ("repurchase rate (复购率)", percent(k.repurchase_rate)),
        ("new customers (新增客户数)", k.new_customers.to_string()),
    ]
}

fn table(total: &Kpis, groups: Option<&std::collections::BTreeMap<String, Kpis>>) -> String {
    let mut out = format!(
        "KPIs {} to {} ({} days)\n",
        total.from, total.to, total.days
    );
    let mut columns: Vec<(String, &Kpis)> = vec![("total".into(), total)];
    if let Some(groups) = groups {
        columns.extend(groups.iter().map(|(key, k)| (key.clone(), k)));
    }
    let labels = rows(total);
    let width = labels
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(10)
        + 2;
    out.push_str(&format!("{:width$}", "", width = width));
    for (name, _) in &columns {
        out.push_str(&format!("{name:>16}"));
    }
    out.push('\n');
    let values: Vec<Vec<(&str, String)>> = columns.iter().map(|(_, k)| rows(k)).collect();
    for (index, (label, _)) in labels.iter().enumerate() {
        let pad = width.saturating_sub(label.chars().count());
        out.push_str(label);
        out.push_str(&" ".repeat(pad));
        for column in &values {
            out.push_str(&format!("{:>16}", column[index].1));
        }
        out.push('\n');
    }
    out
}

fn csv(
    total: &Kpis,
    groups: Option<&std::collections::BTreeMap<String, Kpis>>,
    exceptions: &ExceptionReport,
) -> String {
    let mut out = String::from(
        "group,from,to,days,orders,cancelled,valid_orders,daily_valid_orders,gmv_yuan,aov_yuan,paid_orders,payment_conversion,shipped,returned,return_rate,buyers,repeat_buyers,repurchase_rate,new_customers\n",
    );
    let money =
        |fen: Option<i64>| fen.map_or_else(String::new, |f| format!("{}.{:02}", f / 100, f % 100));
    let rate = |r: Option<f64>| r.map_or_else(String::new, |r| format!("{r}"));
    let mut line = |group: &str, k: &Kpis| {
        out.push_str(&format!(
            "{group},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            k.from,
            k.to,
            k.days,
            k.orders,
            k.cancelled,
            k.valid_orders,
            k.daily_valid_orders,
            money(Some(k.gmv_fen)),
            money(k.aov_fen),
            k.paid_orders,
            rate(k.payment_conversion),
            k.shipped,
            k.returned,
            rate(k.return_rate),
            k.buyers,
            k.repeat_buyers,
            rate(k.repurchase_rate),
            k.new_customers
        ));
    };
    line("total", total);
    for (group, k) in groups.into_iter().flatten() {
        line(&group.replace(',', " "), k);
    }
    out.push_str("\nexception_kind,raised,share_of_raised,resolved,avg_handling_secs,escalations,recurrences,recurrence_rate,open\n");
    for (kind, activity) in &exceptions.by_kind {
        out.push_str(&format!(
            "{kind},{},{},{},{},{},{},{},{}\n",
            activity.raised,
            rate(activity.share_of_raised),
            activity.resolved,
            activity
                .avg_handling_secs
                .map_or_else(String::new, |s| s.to_string()),
            activity.escalations,
            activity.recurrences,
            rate(activity.recurrence_rate),
            exceptions.open_by_kind.get(kind).copied().unwrap_or(0)
        ));
    }
    out
}
