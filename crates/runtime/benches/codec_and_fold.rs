//! Micro-benchmarks of the per-record work: decoding an input record (JSON and protobuf),
//! encoding and decoding a log record, and folding an order's events.
//!
//! Run: `cargo bench -p orderflow-runtime`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orderflow_domain::{Entity, Event, Mode};
use orderflow_runtime::fold::Fold;
use orderflow_schema::{decode, v1, InputTopic, Provenance, PROTOBUF_CONTENT_TYPE};
use orderflow_sim::{plan, Mix};
use orderflow_store::{Retention, SledStore};
use prost::Message;
use std::borrow::Borrow;
use std::hint::black_box;

// The allocator the binaries run with: the fold allocates per event, and what it costs is theirs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The log a simulated run of `orders` orders folds to: its facts, decisions and messages, in
/// the order the live loop folded them (the domain's in-memory [`World`]).
fn simulated_log(orders: usize) -> Vec<Event> {
    let start =
        chrono::DateTime::parse_from_rfc3339("2026-11-11T00:00:00+08:00").unwrap_or_default();
    orderflow_sim::simulated_world(orders, start).log
}

/// Folds `events` quietly into partition 0 of `store` from an empty cache that holds them all,
/// writing nothing: the fold's own work per record.
fn fold_quietly<E: Borrow<Event>>(store: &SledStore, events: impl Iterator<Item = E>) -> usize {
    let mut fold = Fold::new(1 << 30, Retention::default());
    for (offset, event) in events.enumerate() {
        black_box(
            fold.apply(store, 0, offset as i64, event.borrow(), Mode::Quiet)
                .is_ok(),
        );
    }
    fold.unwritten()
}

/// What a replay (or the state consumer catching up) does per log record on one core: decode
/// it (protobuf, `orderflow.log.v1`, one event a record as the intakes write), and fold it
/// with [`Fold::apply`] over a store whose entities all fit in the cache.
fn replay_benches(c: &mut Criterion) {
    use orderflow_schema::headers::LOG_CONTENT_TYPE;
    use orderflow_schema::log::{decode_log_record, encode_log_record};

    let log = simulated_log(1_000);
    let records: Vec<Vec<u8>> = log
        .iter()
        .map(|event| encode_log_record(std::slice::from_ref(event)))
        .collect();
    let decoded = || {
        records.iter().flat_map(|record| {
            decode_log_record(record, Some(LOG_CONTENT_TYPE.as_bytes())).unwrap_or_default()
        })
    };
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(store) = SledStore::open(dir.path()) else {
        return;
    };
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(log.len() as u64));
    group.sample_size(10);
    group.bench_function("fold cached", |b| {
        b.iter(|| fold_quietly(&store, log.iter()))
    });
    group.bench_function("decode protobuf and fold cached", |b| {
        b.iter(|| fold_quietly(&store, decoded()))
    });
    group.finish();
}

/// The order event log's encodings side by side over a simulated run's log: the JSON of
/// JSON-era records and the protobuf of `orderflow.log.v1`, one event a record (as the intakes
/// write), and protobuf with the events of one key in a row sharing a record. Prints the sizes.
fn log_codec_benches(c: &mut Criterion) {
    use orderflow_schema::headers::{JSON_CONTENT_TYPE, LOG_CONTENT_TYPE};
    use orderflow_schema::log::{decode_log_record, encode_log_record};

    let log = simulated_log(1_000);
    let json: Vec<Vec<u8>> = log
        .iter()
        .filter_map(|event| serde_json::to_vec(event).ok())
        .collect();
    let protobuf: Vec<Vec<u8>> = log
        .iter()
        .map(|event| encode_log_record(std::slice::from_ref(event)))
        .collect();
    let grouped: Vec<Vec<u8>> = log
        .chunk_by(|a, b| a.key == b.key)
        .map(encode_log_record)
        .collect();
    let bytes = |records: &[Vec<u8>]| records.iter().map(Vec::len).sum::<usize>();
    println!(
        "log of {} events: json {} bytes ({:.0} per event), protobuf {} bytes ({:.0} per event), \
         protobuf grouped by key {} bytes in {} records",
        log.len(),
        bytes(&json),
        bytes(&json) as f64 / log.len() as f64,
        bytes(&protobuf),
        bytes(&protobuf) as f64 / log.len() as f64,
        bytes(&grouped),
        grouped.len()
    );
    let decode_all = |records: &[Vec<u8>], content_type: &str| {
        records
            .iter()
            .filter_map(|record| decode_log_record(record, Some(content_type.as_bytes())).ok())
            .map(|events| events.len())
            .sum::<usize>()
    };
    let mut group = c.benchmark_group("log codec");
    group.throughput(Throughput::Elements(log.len() as u64));
    group.sample_size(10);
    group.bench_function("decode json log records (upcast path)", |b| {
        b.iter(|| decode_all(black_box(&json), JSON_CONTENT_TYPE))
    });
    group.bench_function("decode protobuf log records", |b| {
        b.iter(|| decode_all(black_box(&protobuf), LOG_CONTENT_TYPE))
    });
    group.bench_function("decode protobuf log records grouped by key", |b| {
        b.iter(|| decode_all(black_box(&grouped), LOG_CONTENT_TYPE))
    });
    group.bench_function("encode json log records", |b| {
        b.iter(|| {
            log.iter()
                .filter_map(|event| serde_json::to_vec(black_box(event)).ok())
                .count()
        })
    });
    group.bench_function("encode protobuf log records", |b| {
        b.iter(|| {
            log.iter()
                .map(|event| encode_log_record(std::slice::from_ref(black_box(event))).len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(codec_and_fold, benches, replay_benches, log_codec_benches);
criterion_main!(codec_and_fold);
