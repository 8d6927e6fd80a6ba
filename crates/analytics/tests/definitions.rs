//! The KPI definitions checked against values computed independently: a simulated shop history
//! (cancellations, unpaid orders, returns, repeat buyers across channels) is folded into a
//! store, and every answer is compared with what the generator's own bookkeeping says —
//! plain Rust over its truth, no SQL. And the fold is a fold: the same records shuffled and
//! delivered twice give a byte-identical store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, NaiveDate};
use orderflow_analytics::consumer::Shared;
use orderflow_analytics::project::{Input, Projection};
use orderflow_analytics::query::{Dimension, Filter, Range};
use orderflow_analytics::store::Store;
use orderflow_analytics::synth::{self, expected_kpis, History, HistoryMix, LogRecord};
use orderflow_analytics::{board, forecast, kpi, rfm};
use rand::seq::SliceRandom;
use rand::SeedableRng;

const ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

fn mix() -> HistoryMix {
    HistoryMix {
        days: 42,
        orders_per_day: 40,
        customers: 500,
        ..HistoryMix::default()
    }
}

fn fold(history: &History) -> Shared {
    let mut store = Store::in_memory().unwrap();
    store.use_zone(ZONE).unwrap();
    let shared = Shared::new(store, Projection::new(None, ZONE), None, None);
    history.fold_into(&shared).unwrap();
    shared
}

fn last_day(mix: &HistoryMix) -> NaiveDate {
    mix.end_day - Duration::days(1)
}

#[test]
fn kpis_equal_the_ones_computed_from_the_simulation_itself() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let last = last_day(&mix);
    let ranges = [
        Range::ending(last, i64::from(mix.days)),
        Range::ending(last, 7),
        Range::ending(last - Duration::days(10), 14),
        Range::ending(last, 1),
    ];
    for range in ranges {
        let got = kpi::kpis(store.conn(), &range, &Filter::default()).unwrap();
        let want = expected_kpis(&history.truth, range.from, range.to);
        let context = format!("{range:?}: got {got:?}\nwant {want:?}");
        assert_eq!(got.orders, want.orders, "{context}");
        assert_eq!(got.cancelled, want.cancelled, "{context}");
        assert_eq!(got.valid_orders, want.valid_orders, "{context}");
        assert_eq!(got.gmv_fen, want.gmv_fen, "{context}");
        assert_eq!(got.aov_fen, want.aov_fen, "{context}");
        assert_eq!(got.paid_orders, want.paid_orders, "{context}");
        assert_eq!(got.shipped, want.shipped, "{context}");
        assert_eq!(got.returned, want.returned, "{context}");
        assert_eq!(got.buyers, want.buyers, "{context}");
        assert_eq!(got.repeat_buyers, want.repeat_buyers, "{context}");
        assert_eq!(got.new_customers, want.new_customers, "{context}");
        let days = range.days() as f64;
        assert!((got.daily_valid_orders - want.valid_orders as f64 / days).abs() < 0.006);
    }
    // The history has what the definitions are about.
    let whole = expected_kpis(&history.truth, ranges[0].from, ranges[0].to);
    assert!(
        whole.cancelled > 20 && whole.returned > 10 && whole.repeat_buyers > 50,
        "{whole:?}"
    );
}

#[test]
fn a_slice_by_channel_or_province_adds_up_to_the_whole() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let range = Range::ending(last_day(&mix), 28);
    for dimension in [Dimension::Channel, Dimension::Province] {
        let breakdown =
            kpi::breakdown(store.conn(), &range, &Filter::default(), dimension).unwrap();
        let sum = |f: fn(&kpi::Kpis) -> i64| breakdown.groups.values().map(f).sum::<i64>();
        assert_eq!(sum(|k| k.orders), breakdown.total.orders);
        assert_eq!(sum(|k| k.gmv_fen), breakdown.total.gmv_fen);
        assert_eq!(sum(|k| k.returned), breakdown.total.returned);
    }
    // Per channel, against the truth.
    let breakdown =
        kpi::breakdown(store.conn(), &range, &Filter::default(), Dimension::Channel).unwrap();
    for (channel, got) in &breakdown.groups {
        let truth: Vec<_> = history
            .truth
            .iter()
            .filter(|t| t.channel.as_str() == channel && t.day >= range.from && t.day <= range.to)
            .collect();
        let valid: Vec<_> = truth.iter().filter(|t| !t.cancelled).collect();
        assert_eq!(got.valid_orders, valid.len() as i64, "{channel}");
        assert_eq!(
            got.gmv_fen,
            valid.iter().map(|t| t.total_fen as i64).sum::<i64>(),
            "{channel}"
        );
    }
    // A category's GMV is its lines' amounts.
    let tea = kpi::kpis(
        store.conn(),
        &range,
        &Filter {
            category: Some("tea".into()),
            ..Filter::default()
        },
    )
    .unwrap();
    let want: u64 = history
        .truth
        .iter()
        .filter(|t| !t.cancelled && t.day >= range.from && t.day <= range.to)
        .flat_map(|t| &t.lines)
        .filter(|(_, category, _, _)| category == "tea")
        .map(|(_, _, qty, price)| u64::from(*qty) * price)
        .sum();
    assert_eq!(tea.gmv_fen, want as i64);
}

#[test]
fn the_trend_has_every_day_and_sums_to_the_range() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let range = Range::ending(last_day(&mix), 14);
    let trend = kpi::trend(store.conn(), &range, &Filter::default(), None).unwrap();
    let all = &trend.series["all"];
    assert_eq!(all.len(), 14);
    let total = kpi::kpis(store.conn(), &range, &Filter::default()).unwrap();
    assert_eq!(
        all.iter().map(|p| p.valid_orders).sum::<i64>(),
        total.valid_orders
    );
    assert_eq!(all.iter().map(|p| p.gmv_fen).sum::<i64>(), total.gmv_fen);
    // Weekends sell more in the simulation, and the trend shows it.
    let by_channel = kpi::trend(
        store.conn(),
        &range,
        &Filter::default(),
        Some(Dimension::Channel),
    )
    .unwrap();
    assert!(by_channel.series.len() >= 5);
}

#[test]
fn the_same_records_shuffled_and_delivered_twice_make_the_same_store() {
    let mix = HistoryMix {
        days: 21,
        orders_per_day: 30,
        ..HistoryMix::default()
    };
    let history = synth::history(&mix);
    let first = fold(&history);
    // Every record keeps its position in its topic; the order of reading them and the copies
    // change.
    let mut records: Vec<(i64, &LogRecord)> = history
        .log
        .iter()
        .enumerate()
        .map(|(i, r)| (i as i64, r))
        .collect();
    records.extend(records.clone());
    records.shuffle(&mut rand::rngs::StdRng::seed_from_u64(99));
    let mut store = Store::in_memory().unwrap();
    store.use_zone(ZONE).unwrap();
    let second = Shared::new(store, Projection::new(None, ZONE), None, None);
    for chunk in records.chunks(777) {
        let mut changes = Vec::new();
        for (offset, record) in chunk {
            let input = match record {
                LogRecord::Event { event, log_ms } => Input::Event {
                    event,
                    partition: 0,
                    offset: *offset,
                    log_ms: *log_ms,
                },
                LogRecord::Exception(change) => Input::Exception(change),
                LogRecord::State(view) => Input::State(view),
            };
            changes.extend(second.projection.changes(input));
        }
        second.store().apply(&changes, &[]).unwrap();
    }
    assert_eq!(
        first.store().digest().unwrap(),
        second.store().digest().unwrap()
    );
    let range = Range::ending(last_day(&mix), 21);
    let (a, b) = (first.store(), second.store());
    assert_eq!(
        serde_json::to_value(kpi::kpis(a.conn(), &range, &Filter::default()).unwrap()).unwrap(),
        serde_json::to_value(kpi::kpis(b.conn(), &range, &Filter::default()).unwrap()).unwrap()
    );
    assert_eq!(
        serde_json::to_value(board::funnel(a.conn(), &range, &Filter::default()).unwrap()).unwrap(),
        serde_json::to_value(board::funnel(b.conn(), &range, &Filter::default()).unwrap()).unwrap()
    );
}

#[test]
fn the_funnel_counts_the_stages_each_order_reached() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let range = Range::ending(last_day(&mix), 28);
    let funnel = board::funnel(store.conn(), &range, &Filter::default()).unwrap();
    let all = &funnel.channels["all"];
    let inside: Vec<_> = history
        .truth
        .iter()
        .filter(|t| t.day >= range.from && t.day <= range.to)
        .collect();
    assert_eq!(all.reached["placed"], inside.len() as i64);
    assert_eq!(
        all.reached["paid"],
        inside.iter().filter(|t| t.paid).count() as i64
    );
    assert_eq!(
        all.reached["shipped"],
        inside.iter().filter(|t| t.shipped).count() as i64
    );
    assert_eq!(
        all.reached["completed"],
        inside.iter().filter(|t| t.completed).count() as i64
    );
    let stages: Vec<i64> = funnel.stages.iter().map(|s| all.reached[s]).collect();
    assert!(stages.windows(2).all(|w| w[0] >= w[1]), "{stages:?}");
    // The simulation pays within 15 minutes and ships 2 to 30 hours after the warehouse took it.
    let paid = &all.durations["placed→paid"];
    assert!(paid.p50_secs.unwrap() <= 900 && paid.p90_secs.unwrap() <= 900);
    let shipping = &all.durations["routed→shipped"];
    assert!(shipping.p50_secs.unwrap() > 2 * 3600 && shipping.p90_secs.unwrap() < 32 * 3600);
    // Orders placed in the last hours of the history are still on their way: stuck after 4 h.
    let end = history.end.timestamp_millis();
    let stuck = board::stuck(store.conn(), end, 240, 10).unwrap();
    assert!(stuck.oldest.iter().all(|o| end - o.since_ms > 240 * 60_000));
}

#[test]
fn exceptions_and_sync_latency_match_the_log() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let last = last_day(&mix);
    let range = Range::ending(last, i64::from(mix.days));
    let now = history.end.timestamp_millis();
    let sla = orderflow_domain::Rules::default().sla;
    let report = board::exceptions(store.conn(), &range, ZONE, now, &sla, 50).unwrap();
    // Independently: the last change of every exception in the log.
    let mut last_change: BTreeMap<String, orderflow_domain::ExceptionRecord> = BTreeMap::new();
    for record in &history.log {
        if let LogRecord::Exception(change) = record {
            last_change.insert(
                change.exception.exception_id.to_string(),
                change.exception.clone(),
            );
        }
    }
    assert_eq!(report.raised, last_change.len() as i64);
    let open = last_change
        .values()
        .filter(|e| e.resolution.is_none())
        .count() as i64;
    let reported_open: i64 = report.by_kind.values().map(|k| k.open).sum();
    assert_eq!(reported_open, open);
    let resolved: Vec<i64> = last_change
        .values()
        .filter_map(|e| {
            e.resolution
                .as_ref()
                .map(|r| (r.resolved_at - e.raised_at).num_seconds())
        })
        .collect();
    let reported_resolved: i64 = report.by_kind.values().map(|k| k.resolved).sum();
    assert_eq!(reported_resolved, resolved.len() as i64);
    let shares: f64 = report.by_kind.values().filter_map(|k| k.share).sum();
    assert!((shares - 1.0).abs() < 0.001, "{shares}");
    for (kind, activity) in &report.by_kind {
        let mine: Vec<i64> = last_change
            .values()
            .filter(|e| e.kind.as_str() == kind)
            .filter_map(|e| {
                e.resolution
                    .as_ref()
                    .map(|r| (r.resolved_at - e.raised_at).num_seconds())
            })
            .collect();
        if !mine.is_empty() {
            assert_eq!(
                activity.avg_handling_secs,
                Some(mine.iter().sum::<i64>() / mine.len() as i64),
                "{kind}"
            );
        }
    }
    let latency = board::sync_latency(store.conn(), &range).unwrap();
    // The simulated pipeline takes 90 ms from log to state, and channels answer in 0.3–2.5 s.
    assert_eq!(latency.inbound["all"].p50_ms, Some(90));
    let outbound = &latency.outbound["all"];
    assert!(
        outbound.n > 100 && outbound.p50_ms.unwrap() >= 300 && outbound.max_ms.unwrap() <= 2_500
    );
}

#[test]
fn customers_are_segmented_once_each_across_channels() {
    let mix = mix();
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let last = last_day(&mix);
    let (summary, customers) = rfm::customers(store.conn(), last).unwrap();
    // One customer per person with a valid order: the phone links their channels.
    let persons: BTreeSet<u32> = history
        .truth
        .iter()
        .filter(|t| !t.cancelled)
        .map(|t| t.person)
        .collect();
    assert_eq!(summary.customers, persons.len() as i64);
    assert_eq!(
        summary.segments.iter().map(|s| s.customers).sum::<i64>(),
        summary.customers
    );
    assert!(summary.cross_channel_customers > 10, "{summary:?}");
    let orders: i64 = customers.iter().map(|c| c.frequency).sum();
    assert_eq!(
        orders,
        history.truth.iter().filter(|t| !t.cancelled).count() as i64
    );
    // The best customers (top R, F, M) are important value customers.
    assert!(customers
        .iter()
        .filter(|c| c.r == 5 && c.f == 5 && c.m == 5)
        .all(|c| c.segment == "important_value"));
    let csv = rfm::csv(&customers);
    assert_eq!(csv.lines().count(), customers.len() + 1);
    assert!(csv.contains("重要价值客户"));
    assert!(!csv.contains("138") || !csv.contains("13800138000"));
}

#[test]
fn the_forecast_backtest_is_reported_against_the_seasonal_naive_baseline() {
    let mix = HistoryMix {
        days: 84,
        orders_per_day: 120,
        customers: 2_000,
        ..HistoryMix::default()
    };
    let history = synth::history(&mix);
    let shared = fold(&history);
    let store = shared.store();
    let last = last_day(&mix);
    let skus = forecast::top_skus(store.conn(), last, 5).unwrap();
    assert_eq!(skus.len(), 5);
    let forecasts: Vec<_> = skus
        .iter()
        .map(|sku| forecast::sku_forecast(store.conn(), sku, last, 84, 14).unwrap())
        .collect();
    for f in &forecasts {
        assert_eq!(f.model, "mstl_ets", "{}", f.sku);
        assert_eq!(f.point.len(), 14);
        assert!(f.point.iter().all(|x| x.is_finite() && *x >= 0.0));
    }
    let summary = forecast::summarize(&forecasts);
    eprintln!(
        "backtest over {} skus: model MAPE {:?}%, seasonal naive MAPE {:?}%",
        summary.skus, summary.model_mape, summary.naive_mape
    );
    let (model, naive) = (summary.model_mape.unwrap(), summary.naive_mape.unwrap());
    assert!(model.is_finite() && naive.is_finite());
    assert!(
        model <= naive * 1.1,
        "the model ({model}%) should not do worse than the naive baseline ({naive}%)"
    );
}
