//! Money sums that would overflow, and source times far in the future: neither panics, wraps
//! or pins anything.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{Duration, TimeZone, Utc};
use orderflow_domain::*;
use support::*;

#[test]
fn captures_summing_past_u64_raise_an_exception_and_keep_the_sums_exact() {
    let big = u64::MAX / 2 + 1;
    let events = [placed(100), captured(1, "P1", big), captured(2, "P2", big)];
    let state = fold(&events);
    assert_eq!(
        state.paid_fen(),
        big,
        "the overflowing capture is not counted"
    );
    assert_eq!(state.payments.len(), 1);
    assert!(open_codes(&state).contains(&"amount_overflow".to_string()));
    let overflow = state
        .open_exceptions()
        .find(|e| e.code == "amount_overflow")
        .unwrap();
    assert_eq!(overflow.kind, ExceptionKind::AmountMismatch);
    assert_eq!(overflow.owner, Owner::Finance);
    assert_eq!(
        state.ignored.last().unwrap().event_id,
        events[2].event_id,
        "the capture is kept for the audit trail"
    );

    // The same through the live world: decisions run on the exact sums, nothing panics.
    let (live, changes) = run_live(events.to_vec(), &Rules::default());
    assert_eq!(live.paid_fen(), big);
    assert!(changes
        .iter()
        .any(|change| change.exception.code == "amount_overflow"));
    // Folding the same log again gives the same state.
    assert_eq!(fold(&events), state);
}

#[test]
fn refunds_summing_past_u64_raise_an_exception_too() {
    let state = fold(&[
        placed(100),
        captured(1, "P1", 100),
        refunded(2, "R1", u64::MAX),
        refunded(3, "R2", u64::MAX),
    ]);
    assert_eq!(state.refunded_fen(), u64::MAX);
    assert_eq!(state.refunds.len(), 1);
    let codes = open_codes(&state);
    assert!(codes.contains(&"amount_overflow".to_string()), "{codes:?}");
    assert!(
        codes.contains(&"refund_exceeds_payment".to_string()),
        "{codes:?}"
    );
}

#[test]
fn sums_that_fit_raise_nothing() {
    let state = fold(&[
        placed(u64::MAX),
        captured(1, "P1", u64::MAX - 1),
        captured(2, "P2", 1),
    ]);
    assert_eq!(state.paid_fen(), u64::MAX);
    assert!(!open_codes(&state).contains(&"amount_overflow".to_string()));
}

fn snapshot(at: Timestamp, on_hand: u64) -> Event {
    Event::stock_level(
        "SKU-1",
        "WH-HZ",
        on_hand,
        at,
        Source::origin("in.inventory"),
    )
}

fn fold_stock(events: &[Event]) -> StockState {
    let mut stock = StockState::new("SKU-1".into());
    for event in events {
        stock.apply(event);
    }
    stock
}

#[test]
fn a_snapshot_dated_2099_does_not_pin_the_level() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let far = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let skew = Duration::seconds(HORIZON_SKEW_SECS);
    let events = [
        snapshot(t0, 10),
        snapshot(far, 999),
        // Within the hour the far one ranks as if taken at t0 + 1 h: it still stands.
        snapshot(t0 + Duration::minutes(30), 7),
        // After it, a real snapshot replaces it.
        snapshot(t0 + skew + Duration::minutes(1), 4),
    ];
    let after_far = fold_stock(&events[..2]);
    assert_eq!(after_far.warehouses["WH-HZ"].on_hand, 999);
    assert_eq!(after_far.warehouses["WH-HZ"].as_of, t0 + skew);
    assert_eq!(fold_stock(&events[..3]).warehouses["WH-HZ"].on_hand, 999);
    let stock = fold_stock(&events);
    assert_eq!(stock.warehouses["WH-HZ"].on_hand, 4);
    assert_eq!(stock.available("WH-HZ"), 4);
    // From the log alone: the same log folds to the same state, byte for byte.
    assert_eq!(
        serde_json::to_vec(&fold_stock(&events)).unwrap(),
        serde_json::to_vec(&stock).unwrap()
    );
}

#[test]
fn far_future_snapshots_in_a_row_move_the_horizon_an_hour_each_at_most() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let far = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).unwrap();
    let mut events = vec![snapshot(t0, 10)];
    events.extend((1..=3).map(|n| snapshot(far + Duration::seconds(n), 900 + n as u64)));
    let stock = fold_stock(&events);
    assert_eq!(stock.horizon, Some(t0 + Duration::hours(3)));
    events.push(snapshot(t0 + Duration::hours(3) + Duration::seconds(1), 5));
    assert_eq!(fold_stock(&events).warehouses["WH-HZ"].on_hand, 5);
}

#[test]
fn snapshots_out_of_order_within_the_hour_still_keep_the_latest() {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let early = snapshot(t0, 10);
    let late = snapshot(t0 + Duration::minutes(20), 3);
    let in_order = fold_stock(&[early.clone(), late.clone()]);
    let reversed = fold_stock(&[late, early]);
    assert_eq!(in_order.warehouses, reversed.warehouses);
    assert_eq!(in_order.warehouses["WH-HZ"].on_hand, 3);
}
