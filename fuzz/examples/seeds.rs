//! Writes the seed corpora of the targets whose inputs docs/examples doesn't hold as they are:
//! protobuf records, `order-events` records (JSON-era and protobuf) and output records, made
//! from the documented examples. scripts/fuzz.sh gives libFuzzer these seeds, docs/examples and the rules files.
//!
//! usage: cargo run --manifest-path fuzz/Cargo.toml --example seeds (writes fuzz/seeds/)

use std::fs;
use std::path::Path;

use orderflow_domain::{Effect, Entity, Event};
use orderflow_fuzz::log_frame;
use orderflow_schema::headers::LOG_CONTENT_TYPE;
use orderflow_schema::log::encode_log_record;
use orderflow_schema::output::Versioned;
use orderflow_schema::v1::{self, input_event::Kind};
use orderflow_schema::{decode, InputTopic, Provenance};
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = fuzz.join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        fs::create_dir_all(seeds.join(target))?;
        fs::write(seeds.join(target).join(name), bytes)
    };

    for (name, kind) in protobuf_kinds() {
        let record = v1::InputEvent {
            schema_version: 1,
            channel: "tmall".into(),
            platform_order_id: "3921847562019384756".into(),
            occurred_at: "2026-11-25T10:00:00+08:00".into(),
            kind: Some(kind),
        };
        write(
            "input_protobuf",
            &format!("{name}.pb"),
            &record.encode_to_vec(),
        )?;
    }

    // Every documented example as the intake appends it to the log, one a file, and all of
    // them folded as one log with the decisions and messages they led to.
    let mut events: Vec<Event> = Vec::new();
    let mut examples: Vec<_> = fs::read_dir(fuzz.join("../docs/examples"))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()?;
    examples.sort();
    for path in examples.iter().filter(|path| path.is_file()) {
        let payload = fs::read(path)?;
        let value: serde_json::Value = serde_json::from_slice(&payload)?;
        let topic = value["kind"]
            .as_str()
            .and_then(InputTopic::of_kind)
            .ok_or("an example without a known kind")?;
        let provenance = Provenance {
            topic: topic.name().into(),
            partition: 0,
            offset: events.len() as i64,
        };
        let event = decode(topic, &provenance, None, &payload)?;
        write(
            "log_record",
            &format!("{}.json", event.body.kind()),
            &serde_json::to_vec(&event)?,
        )?;
        write(
            "log_record",
            &format!("{}.pb", event.body.kind()),
            &log_frame(
                Some(LOG_CONTENT_TYPE),
                &encode_log_record(std::slice::from_ref(&event)),
            ),
        )?;
        events.push(event);
    }
    events.sort_by_key(|event| event.occurred_at);
    let folded = orderflow_fuzz::fold(events);
    let mut log = Vec::new();
    for event in &folded.log {
        log.extend(serde_json::to_vec(event)?);
        log.push(b'\n');
    }
    write("log_record", "journeys.jsonl", &log)?;
    // The same log as protobuf records, the events of one key in a row sharing a record.
    let mut framed = Vec::new();
    for record in folded.log.chunk_by(|a, b| a.key == b.key) {
        framed.extend(log_frame(
            Some(LOG_CONTENT_TYPE),
            &encode_log_record(record),
        ));
    }
    write("log_record", "journeys.pb", &framed)?;
    // The same log at the edges a sum or a clock can break on: every amount, quantity and
    // level at u64::MAX, and every time at the end of the calendar.
    let edges = |edge: &dyn Fn(&str, &mut serde_json::Value)| -> serde_json::Result<Vec<u8>> {
        let mut log = Vec::new();
        for event in &folded.log {
            let mut value = serde_json::to_value(event)?;
            visit(&mut value, edge);
            log.extend(serde_json::to_vec(&value)?);
            log.push(b'\n');
        }
        Ok(log)
    };
    let huge = edges(&|name, value| {
        if value.is_u64() && (name.ends_with("_fen") || name == "qty" || name == "on_hand") {
            *value = u64::MAX.into();
        }
    })?;
    write("log_record", "journeys-huge-amounts.jsonl", &huge)?;
    let late = edges(&|name, value| {
        if value.is_string() && name.ends_with("_at") {
            *value = "9999-12-31T23:59:59Z".into();
        }
    })?;
    write("log_record", "journeys-late.jsonl", &late)?;

    for (key, entity) in &folded.entities {
        if let Entity::Order(order) = entity {
            let record = Versioned::new(order.snapshot()).to_json()?;
            write(
                "output_record",
                &format!("order-state-{}.json", key_name(&key.to_string())),
                &record,
            )?;
        }
    }
    for (index, effect) in folded.effects.iter().enumerate() {
        let (topic, record) = match effect {
            Effect::Exception(change) => ("exceptions", Versioned::new(change).to_json()?),
            Effect::Notify(notification) => {
                ("notifications", Versioned::new(notification).to_json()?)
            }
            Effect::Route(routing) => ("warehouse-routing", Versioned::new(routing).to_json()?),
            Effect::Append(_) => continue,
        };
        write("output_record", &format!("{topic}-{index}.json"), &record)?;
    }
    Ok(())
}

/// Calls `edit` with every named value inside `value`, depth first.
fn visit(value: &mut serde_json::Value, edit: &dyn Fn(&str, &mut serde_json::Value)) {
    match value {
        serde_json::Value::Object(map) => {
            for (name, inner) in map.iter_mut() {
                visit(inner, edit);
                edit(name, inner);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| visit(item, edit)),
        _ => {}
    }
}

/// A key as a file name.
fn key_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// One record of each message shape of `proto/orderflow/v1/input.proto`.
fn protobuf_kinds() -> Vec<(&'static str, Kind)> {
    let operator = || {
        Some(v1::Actor {
            id: "op-7".into(),
            role: "operator".into(),
        })
    };
    vec![
        (
            "order_placed",
            Kind::OrderPlaced(v1::OrderPlaced {
                buyer_id: "tb_8a41f2c07e".into(),
                phone: "13800138000".into(),
                address: Some(v1::Address {
                    province: "浙江省".into(),
                    city: "杭州市".into(),
                    district: "西湖区".into(),
                    detail: "文三路 478 号华星时代广场 A 座 1203 室".into(),
                }),
                lines: vec![
                    v1::OrderLine {
                        sku: "TEA-LJ-250G".into(),
                        category: "tea".into(),
                        qty: 2,
                        unit_price_fen: 16800,
                    },
                    v1::OrderLine {
                        sku: "CUP-GLASS-350".into(),
                        category: "kitchenware".into(),
                        qty: 1,
                        unit_price_fen: 5900,
                    },
                ],
                discount_fen: 2000,
                shipping_fen: 800,
                total_fen: 38300,
                payment_method: "alipay".into(),
                coupon_type: Some("store_coupon".into()),
                invoice: Some(v1::Invoice {
                    kind: "company".into(),
                    title: "杭州西湖龙井茶业有限公司".into(),
                    tax_id: Some("91330106MA27XK3F5B".into()),
                }),
            }),
        ),
        (
            "order_cancelled",
            Kind::OrderCancelled(v1::OrderCancelled {
                reason: Some("buyer asked".into()),
            }),
        ),
        (
            "order_completed",
            Kind::OrderCompleted(v1::OrderCompleted {}),
        ),
        (
            "payment_captured",
            Kind::PaymentCaptured(v1::PaymentCaptured {
                payment_id: "2026112522001".into(),
                amount_fen: 38300,
                method: "alipay".into(),
            }),
        ),
        (
            "payment_refunded",
            Kind::PaymentRefunded(v1::PaymentRefunded {
                refund_id: "RF-1".into(),
                amount_fen: 5900,
                reason: None,
            }),
        ),
        (
            "shipment_returned",
            Kind::ShipmentReturned(v1::ShipmentReturned {
                carrier: "SF".into(),
                tracking_no: "SF1234567890".into(),
                warehouse: "WH-HZ".into(),
                reason: Some("refused".into()),
            }),
        ),
        (
            "stock_level_changed",
            Kind::StockLevelChanged(v1::StockLevelChanged {
                sku: "TEA-LJ-250G".into(),
                warehouse: "WH-HZ".into(),
                on_hand: 120,
            }),
        ),
        (
            "exception_assigned",
            Kind::ExceptionAssigned(v1::ExceptionAssigned {
                action_id: "act-1".into(),
                actor: operator(),
                note: Some("taking it".into()),
                exception_id: "0123456789abcdef0123456789abcdef".into(),
                assignee: "op-9".into(),
            }),
        ),
        (
            "customer_choice",
            Kind::CustomerChoice(v1::CustomerChoice {
                action_id: "act-2".into(),
                actor: Some(v1::Actor {
                    id: "tb_8a41f2c07e".into(),
                    role: "customer".into(),
                }),
                note: None,
                choice: "refund".into(),
            }),
        ),
    ]
}
