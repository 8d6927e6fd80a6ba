//! The state store's entity values, JSON (layout 4) against MessagePack (layout 5): encoding
//! and decoding every entity a simulated run of 1 000 orders leaves, and their total size.
//!
//! Run: `cargo bench -p orderflow-store --bench entity_values`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orderflow_domain::Entity;
use std::hint::black_box;

/// The entities (orders, skus, buyers) a simulated run of `orders` orders folds to, as a store
/// holds them: without a sku's or buyer's event ids.
fn simulated_entities(orders: usize) -> Vec<Entity> {
    let start =
        chrono::DateTime::parse_from_rfc3339("2026-11-11T00:00:00+08:00").unwrap_or_default();
    let world = orderflow_sim::simulated_world(orders, start);
    let mut entities: Vec<Entity> = world.entities.into_values().collect();
    for entity in &mut entities {
        if let Some(ids) = entity.applied_kept_apart() {
            ids.clear();
        }
    }
    entities
}

fn values(c: &mut Criterion) {
    let entities = simulated_entities(1_000);
    let json: Vec<Vec<u8>> = entities
        .iter()
        .filter_map(|entity| serde_json::to_vec(entity).ok())
        .collect();
    let msgpack: Vec<Vec<u8>> = entities
        .iter()
        .filter_map(|entity| rmp_serde::to_vec_named(entity).ok())
        .collect();
    let size = |values: &[Vec<u8>]| values.iter().map(Vec::len).sum::<usize>();
    println!(
        "{} entities: JSON {} bytes, MessagePack {} bytes ({:.0} %)",
        entities.len(),
        size(&json),
        size(&msgpack),
        100.0 * size(&msgpack) as f64 / size(&json) as f64
    );
    let mut group = c.benchmark_group("entity values");
    group.throughput(Throughput::Elements(entities.len() as u64));
    group.sample_size(20);
    group.bench_function("encode json", |b| {
        b.iter(|| {
            entities
                .iter()
                .filter_map(|entity| serde_json::to_vec(black_box(entity)).ok())
                .count()
        })
    });
    group.bench_function("encode msgpack", |b| {
        b.iter(|| {
            entities
                .iter()
                .filter_map(|entity| rmp_serde::to_vec_named(black_box(entity)).ok())
                .count()
        })
    });
    group.bench_function("decode json", |b| {
        b.iter(|| {
            json.iter()
                .filter_map(|bytes| serde_json::from_slice::<Entity>(black_box(bytes)).ok())
                .count()
        })
    });
    group.bench_function("decode msgpack", |b| {
        b.iter(|| {
            msgpack
                .iter()
                .filter_map(|bytes| rmp_serde::from_slice::<Entity>(black_box(bytes)).ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(entity_values, values);
criterion_main!(entity_values);
