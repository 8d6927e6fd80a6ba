//! The contract's limits (`[limits]`) and the clock bound, and rejection messages that name the
//! field and the rule but never the value.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use orderflow_schema::{
    decode, decode_within, v1, InputTopic, Limits, Provenance, Rejection, RejectionKind,
    PROTOBUF_CONTENT_TYPE,
};
use prost::Message;
use serde_json::{json, Value};

fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples")
        .join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn provenance(topic: InputTopic) -> Provenance {
    Provenance {
        topic: format!("orderflow.{}", topic.name()),
        partition: 0,
        offset: 7,
    }
}

/// The reader's clock: a few days after the examples' `occurred_at`.
fn clock() -> DateTime<Utc> {
    "2026-12-01T04:00:00Z".parse().unwrap()
}

fn within(topic: InputTopic, value: &Value, limits: &Limits) -> Result<(), Rejection> {
    decode_within(
        topic,
        &provenance(topic),
        None,
        value.to_string().as_bytes(),
        limits,
        Some(clock()),
    )
    .map(|_| ())
}

fn rejected(topic: InputTopic, value: &Value, limits: &Limits) -> Rejection {
    within(topic, value, limits).unwrap_err()
}

#[test]
fn the_examples_pass_the_default_limits() {
    for (name, topic) in [
        ("order_placed", InputTopic::Orders),
        ("payment_captured", InputTopic::Payments),
        ("stock_level_changed", InputTopic::Inventory),
        ("exception_assigned", InputTopic::Actions),
    ] {
        within(topic, &example(name), &Limits::default()).unwrap();
    }
}

#[test]
fn a_string_over_max_text_bytes_is_rejected_naming_the_field() {
    let limits = Limits {
        max_text_bytes: 64,
        ..Limits::default()
    };
    let mut order = example("order_placed");
    order["lines"][1]["sku"] = "S".repeat(65).into();
    let rejection = rejected(InputTopic::Orders, &order, &limits);
    assert_eq!(rejection.kind, RejectionKind::TextTooLong);
    assert_eq!(
        rejection.message,
        "lines[1].sku must be at most 64 bytes, got 65"
    );
    // Bytes, not characters: 24 Chinese characters are 72 bytes.
    let mut order = example("order_placed");
    order["address"]["province"] = "浙江省".repeat(8).into();
    let rejection = rejected(InputTopic::Orders, &order, &limits);
    assert_eq!(
        rejection.message,
        "address.province must be at most 64 bytes, got 72"
    );
    // Exactly at the limit, after trimming, is fine.
    let mut order = example("order_placed");
    order["lines"][1]["sku"] = format!("  {}  ", "S".repeat(64)).into();
    within(InputTopic::Orders, &order, &limits).unwrap();
}

#[test]
fn lists_and_objects_are_bounded_everywhere_ignored_fields_too() {
    let limits = Limits {
        max_lines: 3,
        max_collection: 20,
        ..Limits::default()
    };
    let line = json!({"sku": "S", "category": "c", "qty": 1, "unit_price_fen": 100});
    let mut order = example("order_placed");
    order["lines"] = json!([line, line, line, line]);
    order["discount_fen"] = 0.into();
    order["shipping_fen"] = 0.into();
    order["total_fen"] = 400.into();
    let rejection = rejected(InputTopic::Orders, &order, &limits);
    assert_eq!(rejection.kind, RejectionKind::TooManyItems);
    assert_eq!(rejection.message, "lines must have at most 3 items, got 4");

    // A passed-through platform field the contract ignores is bounded all the same, and the
    // top level is an object too (the payment example has 8 fields, with `platform` 9).
    let mut payment = example("payment_captured");
    payment["platform"] = json!({"items": [1, 2, 3, 4, 5]});
    let tight = Limits {
        max_collection: 4,
        ..Limits::default()
    };
    let rejection = rejected(InputTopic::Payments, &payment, &tight);
    assert_eq!(rejection.kind, RejectionKind::TooManyItems);
    assert_eq!(rejection.message, "value must have at most 4 items, got 9");
    let roomy = Limits {
        max_collection: 9,
        ..Limits::default()
    };
    payment["platform"]["items"] = json!((0..9).collect::<Vec<_>>());
    within(InputTopic::Payments, &payment, &roomy).unwrap();
    payment["platform"]["items"] = json!((0..10).collect::<Vec<_>>());
    assert_eq!(
        rejected(InputTopic::Payments, &payment, &roomy).message,
        "platform.items must have at most 9 items, got 10"
    );
}

#[test]
fn an_amount_over_max_amount_fen_is_rejected_naming_the_field() {
    let limits = Limits::default();
    let max = limits.max_amount_fen;
    let mut payment = example("payment_captured");
    payment["amount_fen"] = (max + 1).into();
    let rejection = rejected(InputTopic::Payments, &payment, &limits);
    assert_eq!(rejection.kind, RejectionKind::AmountTooLarge);
    assert_eq!(
        rejection.message,
        format!("amount_fen must be at most {max} fen")
    );
    payment["amount_fen"] = u64::MAX.into();
    assert_eq!(
        rejected(InputTopic::Payments, &payment, &limits).kind,
        RejectionKind::AmountTooLarge
    );
    payment["amount_fen"] = max.into();
    within(InputTopic::Payments, &payment, &limits).unwrap();

    for field in ["discount_fen", "shipping_fen", "total_fen"] {
        let mut order = example("order_placed");
        order[field] = (max + 1).into();
        let rejection = rejected(InputTopic::Orders, &order, &limits);
        assert_eq!(rejection.kind, RejectionKind::AmountTooLarge, "{field}");
        assert!(rejection.message.starts_with(field), "{rejection}");
    }
    let mut order = example("order_placed");
    order["lines"][0]["unit_price_fen"] = u64::MAX.into();
    assert_eq!(
        rejected(InputTopic::Orders, &order, &limits).message,
        format!("lines[0].unit_price_fen must be at most {max} fen")
    );
    let mut refund = example("payment_refunded");
    refund["amount_fen"] = (max + 1).into();
    assert_eq!(
        rejected(InputTopic::Payments, &refund, &limits).kind,
        RejectionKind::AmountTooLarge
    );
}

#[test]
fn a_record_over_max_record_bytes_is_rejected_before_parsing() {
    let limits = Limits {
        max_record_bytes: 500,
        ..Limits::default()
    };
    let order = example("order_placed").to_string();
    assert!(order.len() > 500);
    let rejection = decode_within(
        InputTopic::Orders,
        &provenance(InputTopic::Orders),
        None,
        order.as_bytes(),
        &limits,
        None,
    )
    .unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::RecordTooLarge);
    assert_eq!(
        rejection.message,
        format!("value must be at most 500 bytes, got {}", order.len())
    );
}

#[test]
fn occurred_at_further_ahead_than_the_skew_is_rejected_naming_the_field() {
    let limits = Limits::default();
    let mut stock = example("stock_level_changed");
    let at = |time: DateTime<Utc>| Value::from(time.to_rfc3339());
    stock["occurred_at"] = at(clock() + Duration::seconds(300));
    within(InputTopic::Inventory, &stock, &limits).unwrap();
    stock["occurred_at"] = at(clock() + Duration::seconds(301));
    let rejection = rejected(InputTopic::Inventory, &stock, &limits);
    assert_eq!(rejection.kind, RejectionKind::OccurredInFuture);
    assert_eq!(
        rejection.message,
        "occurred_at must not be more than 300 seconds ahead of the intake's clock"
    );
    stock["occurred_at"] = "2099-01-01T00:00:00+08:00".into();
    let rejection = rejected(InputTopic::Inventory, &stock, &limits);
    assert_eq!(rejection.kind, RejectionKind::OccurredInFuture);
    assert!(!rejection.message.contains("2099"), "{rejection}");
    // The past is never bounded, and a decode without a clock (tools) bounds nothing.
    stock["occurred_at"] = "2001-01-01T00:00:00Z".into();
    within(InputTopic::Inventory, &stock, &limits).unwrap();
    stock["occurred_at"] = "2099-01-01T00:00:00+08:00".into();
    let bytes = stock.to_string();
    decode(
        InputTopic::Inventory,
        &provenance(InputTopic::Inventory),
        None,
        bytes.as_bytes(),
    )
    .unwrap();
}

/// Values that look like personal data, each put where the contract wants something else.
#[test]
fn no_rejection_message_contains_the_value_it_rejects() {
    const PHONE: &str = "13912345678";
    const ADDRESS: &str = "浙江省杭州市西湖区文三路 478 号 1203 室";
    const NAME: &str = "张伟";
    const TAX_ID: &str = "91330106MA27XK3F5B";
    let secrets = [PHONE, ADDRESS, NAME, TAX_ID, "13912", "文三路", "MA27XK"];
    let order = example("order_placed");
    let mut cases: Vec<(InputTopic, Value)> = Vec::new();
    let mut with = |topic: InputTopic, base: &Value, edit: &dyn Fn(&mut Value)| {
        let mut value = base.clone();
        edit(&mut value);
        cases.push((topic, value));
    };
    let orders = InputTopic::Orders;
    with(orders, &order, &|o| o["address"] = ADDRESS.into());
    with(orders, &order, &|o| {
        o["address"]["detail"] = json!([ADDRESS])
    });
    with(orders, &order, &|o| {
        o["address"]["city"] = json!({"name": NAME})
    });
    with(orders, &order, &|o| o["phone"] = json!({"mobile": PHONE}));
    with(orders, &order, &|o| o["phone"] = json!([PHONE]));
    with(orders, &order, &|o| {
        o["buyer_id"] = json!({"name": NAME, "phone": PHONE})
    });
    with(orders, &order, &|o| o["channel"] = PHONE.into());
    with(orders, &order, &|o| o["platform_order_id"] = ADDRESS.into());
    with(orders, &order, &|o| o["kind"] = NAME.into());
    with(orders, &order, &|o| o["occurred_at"] = ADDRESS.into());
    with(orders, &order, &|o| o["schema_version"] = PHONE.into());
    with(orders, &order, &|o| o["invoice"] = TAX_ID.into());
    with(orders, &order, &|o| o["invoice"]["kind"] = NAME.into());
    with(orders, &order, &|o| o["invoice"]["title"] = json!([NAME]));
    with(orders, &order, &|o| {
        o["invoice"]["tax_id"] = json!({"id": TAX_ID})
    });
    with(orders, &order, &|o| o["lines"] = ADDRESS.into());
    with(orders, &order, &|o| o["lines"][0] = PHONE.into());
    with(orders, &order, &|o| o["lines"][0]["qty"] = PHONE.into());
    with(orders, &order, &|o| o["total_fen"] = PHONE.into());
    with(orders, &order, &|o| o["total_fen"] = 13912345678u64.into());
    with(orders, &order, &|o| {
        o["discount_fen"] = (-13912345678i64).into()
    });
    with(orders, &order, &|o| {
        o["lines"][0]["sku"] = ADDRESS.repeat(100).into()
    });
    let action = example("customer_choice");
    let actions = InputTopic::Actions;
    with(actions, &action, &|a| a["choice"] = ADDRESS.into());
    with(actions, &action, &|a| a["actor"]["role"] = NAME.into());
    with(actions, &action, &|a| a["actor"] = PHONE.into());
    let resolved = example("exception_resolved");
    with(actions, &resolved, &|a| a["exception_id"] = TAX_ID.into());
    with(actions, &resolved, &|a| {
        a["note"] = ADDRESS.repeat(100).into()
    });
    let payment = example("payment_captured");
    with(InputTopic::Payments, &payment, &|p| {
        p["amount_fen"] = PHONE.into()
    });
    with(InputTopic::Payments, &payment, &|p| {
        p["amount_fen"] = 139.12345678.into()
    });
    with(InputTopic::Payments, &payment, &|p| {
        p["method"] = json!({"card": TAX_ID})
    });
    with(InputTopic::Payments, &Value::from(ADDRESS), &|_| {});
    with(InputTopic::Payments, &json!([PHONE, NAME]), &|_| {});

    assert!(cases.len() > 30);
    for (topic, value) in &cases {
        let Err(rejection) = within(*topic, value, &Limits::default()) else {
            panic!("{value} is accepted")
        };
        for secret in secrets {
            assert!(
                !rejection.message.contains(secret),
                "{value}: the rejection shows {secret:?}: {rejection}"
            );
        }
    }

    // Protobuf: the mapped fields get the same messages.
    let input = v1::InputEvent {
        schema_version: 1,
        channel: PHONE.into(),
        platform_order_id: ADDRESS.into(),
        occurred_at: NAME.into(),
        kind: Some(v1::input_event::Kind::PaymentCaptured(
            v1::PaymentCaptured {
                payment_id: "P".into(),
                amount_fen: 1,
                method: "alipay".into(),
            },
        )),
    };
    let rejection = decode_within(
        InputTopic::Payments,
        &provenance(InputTopic::Payments),
        Some(PROTOBUF_CONTENT_TYPE.as_bytes()),
        &input.encode_to_vec(),
        &Limits::default(),
        Some(clock()),
    )
    .unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::InvalidField);
    for secret in secrets {
        assert!(!rejection.message.contains(secret), "{rejection}");
    }
}
