//! Micro-benchmarks of the per-record work: decoding an input record (JSON and protobuf),
//! encoding and decoding a log record, and folding an order's events.
//!
//! Run: `cargo bench -p orderflow-runtime`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orderflow_domain::{Entity, Event};
use orderflow_schema::{decode, v1, InputTopic, Provenance, PROTOBUF_CONTENT_TYPE};
use orderflow_sim::{plan, Mix};
use prost::Message;
use std::hint::black_box;

fn provenance() -> Provenance {
    Provenance {
        topic: "orderflow.in.orders".into(),
        partition: 0,
        offset: 0,
    }
}

fn benches(c: &mut Criterion) {
    let plan = plan(&Mix {
        orders: 500,
        malformed_share: 0.0,
        duplicate_share: 0.0,
        ..Mix::default()
    });
    let placed = plan
        .records
        .iter()
        .find(|r| {
            r.topic == InputTopic::Orders
                && String::from_utf8_lossy(&r.payload).contains("order_placed")
        })
        .map(|r| r.payload.clone())
        .unwrap_or_default();
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode order_placed json", |b| {
        b.iter(|| decode(InputTopic::Orders, &provenance(), None, black_box(&placed)))
    });
    let proto = v1::InputEvent {
        schema_version: 1,
        channel: "tmall".into(),
        platform_order_id: "TM1".into(),
        occurred_at: "2026-11-25T10:00:00+08:00".into(),
        kind: Some(v1::input_event::Kind::PaymentCaptured(
            v1::PaymentCaptured {
                payment_id: "P1".into(),
                amount_fen: 12_800,
                method: "alipay".into(),
            },
        )),
    }
    .encode_to_vec();
    group.bench_function("decode payment_captured protobuf", |b| {
        b.iter(|| {
            decode(
                InputTopic::Payments,
                &provenance(),
                Some(PROTOBUF_CONTENT_TYPE.as_bytes()),
                black_box(&proto),
            )
        })
    });
    let events: Vec<Event> = plan
        .records
        .iter()
        .filter_map(|r| decode(r.topic, &provenance(), None, &r.payload).ok())
        .collect();
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .filter_map(|e| serde_json::to_vec(e).ok())
        .collect();
    group.bench_function("encode log record", |b| {
        b.iter(|| serde_json::to_vec(black_box(&events[0])))
    });
    group.bench_function("decode log record", |b| {
        b.iter(|| serde_json::from_slice::<Event>(black_box(&encoded[0])))
    });
    group.finish();

    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("fold 500 journeys", |b| {
        b.iter(|| {
            let mut entities = std::collections::BTreeMap::new();
            for event in &events {
                let entity = entities
                    .entry(event.key.clone())
                    .or_insert_with(|| Entity::empty(&event.key));
                black_box(entity.apply(event));
            }
            entities.len()
        })
    });
    group.finish();
}

criterion_group!(codec_and_fold, benches);
criterion_main!(codec_and_fold);
