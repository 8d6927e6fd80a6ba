//! Checked money and bounded time on a real broker: an amount over the bound and captures that
//! sum past `u64` neither stop nor wrap anything; a stock level dated 2099 pins no warehouse;
//! a record from the future is dead-lettered naming the field, never showing the value.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use orderflow_domain::{EventBody, Status};
use support::{input, Harness, Record};

const KIND_HEADER: &str = "__connect.errors.exception.class.name";
const MESSAGE_HEADER: &str = "__connect.errors.exception.message";

/// The dead letters from `topic` once there are `count` of them.
async fn letters_from(harness: &Harness, topic: &str, count: usize) -> Vec<Record> {
    let source = harness.topic(topic);
    harness
        .wait_for(
            &format!("{count} dead letters from {source}"),
            Duration::from_secs(60),
            || async {
                let letters: Vec<Record> = harness
                    .read("dlq")
                    .await
                    .into_iter()
                    .filter(|letter| letter.headers.get("__connect.errors.topic") == Some(&source))
                    .collect();
                (letters.len() >= count).then_some(letters)
            },
        )
        .await
}

/// Three captures of 9·10^18 fen (allowed by a raised `limits.max-amount-fen`) sum past
/// `u64::MAX`: the third is an `amount_overflow` exception, not a panic or a wrapped sum. An
/// amount over the default bound is dead-lettered. Another order still completes.
#[tokio::test(flavor = "multi_thread")]
async fn money_that_overflows_is_an_exception_or_a_dead_letter_and_the_pipeline_goes_on() {
    let harness = Harness::new("bounds-money");
    let huge: u64 = 9_000_000_000_000_000_000;
    std::fs::write(
        harness.data_dir().join("orderflow-payments.toml"),
        format!("[limits]\nmax-amount-fen = {huge}\n"),
    )
    .unwrap();
    let mut pipeline = harness.start_pipeline();

    harness
        .produce_json("in.orders", &input::placed("tmall", "OVER1", 100))
        .await;
    for payment in ["P1", "P2", "P3"] {
        harness
            .produce_json("in.payments", &input::paid("tmall", "OVER1", payment, huge))
            .await;
    }
    // Over the default bound of the orders intake: dead-lettered.
    let mut too_big = input::placed("tmall", "BIG1", 2_000_000_000_000);
    too_big["buyer_id"] = "buyer-big".into();
    harness.produce_json("in.orders", &too_big).await;
    // An ordinary order after both.
    for (topic, document) in [
        ("in.orders", input::placed("tmall", "FINE1", 100)),
        ("in.payments", input::paid("tmall", "FINE1", "PF1", 100)),
        ("in.shipments", input::dispatched("tmall", "FINE1")),
        ("in.shipments", input::delivered("tmall", "FINE1")),
        ("in.orders", input::completed("tmall", "FINE1")),
    ] {
        harness.produce_json(topic, &document).await;
    }
    let states = harness
        .wait_for_statuses(&[("tmall:FINE1", Status::Completed)])
        .await;
    assert!(
        !states.contains_key("tmall:BIG1"),
        "BIG1 never entered the log"
    );

    let overflow = harness
        .wait_for(
            "the amount_overflow exception of tmall:OVER1",
            Duration::from_secs(60),
            || async {
                harness
                    .read("exceptions")
                    .await
                    .iter()
                    .map(Record::exception_change)
                    .find(|change| {
                        change.order_id.to_string() == "tmall:OVER1"
                            && change.exception.code == "amount_overflow"
                    })
            },
        )
        .await;
    assert_eq!(overflow.exception.owner.as_str(), "finance");
    let over = harness
        .wait_for(
            "tmall:OVER1 with two captures",
            Duration::from_secs(30),
            || async {
                harness
                    .order_states()
                    .await
                    .remove("tmall:OVER1")
                    .filter(|state| state.facts == 4)
            },
        )
        .await;
    assert_eq!(
        over.paid_fen,
        2 * huge,
        "the third capture is not summed, nothing wrapped"
    );

    let letters = letters_from(&harness, "in.orders", 1).await;
    assert_eq!(letters.len(), 1, "only BIG1 is dead-lettered");
    assert_eq!(letters[0].headers[KIND_HEADER], "amount_too_large");
    assert!(
        letters[0].headers[MESSAGE_HEADER].starts_with("lines[0].unit_price_fen must be at most"),
        "{:?}",
        letters[0].headers
    );
    for process in &mut pipeline {
        assert!(
            process.is_running(),
            "{} stopped\n{}",
            process.name,
            harness.logs_tail()
        );
    }
}

/// A stock level dated 2099 that got into the log (an intake with a huge skew, or an old log
/// caught up) ranks as if taken an hour after the sku's newest time: a later real level still
/// replaces it, and an order allocates from it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stock_level_dated_2099_pins_no_warehouse() {
    let harness = Harness::new("bounds-2099");
    // This intake lets anything through: the state consumer's own bound is what is tested.
    let _pipeline: Vec<_> = [
        "orderflow-orders",
        "orderflow-payments",
        "orderflow-shipments",
        "orderflow-state",
    ]
    .iter()
    .map(|name| harness.spawn(name, "0"))
    .chain([harness.spawn_with(
        "orderflow-inventory",
        "0",
        &[("ORDERFLOW_MAX_FUTURE_SKEW_SECS", "3153600000")],
    )])
    .collect();

    let at = |time: &str| {
        let mut level = input::stock("SKU-TEA", "WH-HZ", 0, 0);
        level["occurred_at"] = time.into();
        level
    };
    let mut far = at("2099-01-01T00:00:00+08:00");
    far["on_hand"] = 0.into();
    let mut later = at("2026-11-25T10:30:00+08:00");
    later["on_hand"] = 5.into();
    for level in [at("2026-11-25T09:00:00+08:00"), far, later] {
        harness.produce_json("in.inventory", &level).await;
    }
    // All three levels are in the log before the order asks for stock.
    harness
        .wait_for(
            "three stock levels on order-events",
            Duration::from_secs(60),
            || async {
                let levels = harness
                    .read("order-events")
                    .await
                    .iter()
                    .flat_map(|record| record.log_events())
                    .filter(|event| matches!(event.body, EventBody::StockLevelChanged { .. }))
                    .count();
                (levels == 3).then_some(())
            },
        )
        .await;

    harness
        .produce_json("in.orders", &input::placed("tmall", "TEA1", 100))
        .await;
    harness
        .produce_json("in.payments", &input::paid("tmall", "TEA1", "PT1", 100))
        .await;
    let states = harness
        .wait_for_statuses(&[("tmall:TEA1", Status::Routed)])
        .await;
    assert!(states["tmall:TEA1"].open_exceptions.is_empty());
}

/// An `occurred_at` far ahead of the intake's clock is dead-lettered as
/// `occurred_in_future`, naming the field; no header shows the value; the intake goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_from_the_future_is_dead_lettered_naming_the_field_not_the_value() {
    let harness = Harness::new("bounds-future");
    // The default skew (the harness allows the simulator's more).
    let mut intake = harness.spawn_with(
        "orderflow-orders",
        "0",
        &[("ORDERFLOW_MAX_FUTURE_SKEW_SECS", "300")],
    );

    let mut future = input::placed("tmall", "FUT1", 100);
    future["occurred_at"] = "2099-12-31T23:59:59+08:00".into();
    // Personal data in a record rejected for its time: not in any header either.
    future["buyer_id"] = "buyer-13912345678".into();
    harness.produce_json("in.orders", &future).await;
    let now = chrono::Utc::now().to_rfc3339();
    let mut today = input::placed("tmall", "NOW1", 100);
    today["occurred_at"] = now.into();
    harness.produce_json("in.orders", &today).await;

    let letters = letters_from(&harness, "in.orders", 1).await;
    let letter = &letters[0];
    assert_eq!(letter.headers[KIND_HEADER], "occurred_in_future");
    assert!(
        letter.headers[MESSAGE_HEADER].starts_with("occurred_at must not be more than 300 seconds"),
        "{:?}",
        letter.headers
    );
    for (name, value) in &letter.headers {
        for secret in ["2099-12-31", "13912345678"] {
            assert!(
                !value.contains(secret),
                "header {name} shows {secret}: {value}"
            );
        }
    }
    assert_eq!(
        letter.payload,
        future.to_string().into_bytes(),
        "the value is kept as sent"
    );

    // The record of today went through.
    harness
        .wait_for("NOW1 on order-events", Duration::from_secs(60), || async {
            harness
                .read("order-events")
                .await
                .iter()
                .flat_map(|record| record.log_events())
                .any(|event| event.key.to_string() == "tmall:NOW1")
                .then_some(())
        })
        .await;
    assert!(intake.is_running(), "{}", harness.logs_tail());
    assert_eq!(
        letters_from(&harness, "in.orders", 1).await.len(),
        1,
        "only the future record is dead-lettered"
    );
}
