//! Crash safety: `kill -9` the intake and state consumers at random moments while a few
//! thousand events flow, restart them, and check that every order ends exactly where its
//! input alone says — nothing lost, nothing counted twice — and that a replay of the log
//! equals the live store.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use orderflow_domain::{decide, Entity, EntityKey, Event, Rules};
use orderflow_schema::{decode, InputTopic, Provenance};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use support::{input, Harness, Proc};

const ORDERS: usize = 600;
const SEED: u64 = 20_261_125;

/// The input of the run: (topic, document) in send order.
fn journeys(rng: &mut StdRng) -> Vec<(&'static str, Value)> {
    let channels = ["tmall", "jd", "douyin", "web", "miniapp", "store"];
    let mut per_order = Vec::new();
    for index in 0..ORDERS {
        let channel = channels[index % channels.len()];
        let order = format!("C{index:05}");
        let total = rng.gen_range(100..49_000);
        let mut steps = vec![("in.orders", input::placed(channel, &order, total))];
        match rng.gen_range(0..10) {
            0 => steps.push(("in.orders", input::cancelled(channel, &order))),
            1 => {}
            _ => {
                steps.push((
                    "in.payments",
                    input::paid(channel, &order, &format!("PAY-{order}"), total),
                ));
                steps.push(("in.shipments", input::dispatched(channel, &order)));
                steps.push(("in.shipments", input::delivered(channel, &order)));
                steps.push(("in.orders", input::completed(channel, &order)));
            }
        }
        per_order.push(steps);
    }
    // Interleave orders the way concurrent traffic does, keep each order's own sequence, and
    // repeat 5% of the records as platform retries do.
    let mut feed = Vec::new();
    let mut cursors: Vec<std::collections::VecDeque<_>> =
        per_order.into_iter().map(Into::into).collect();
    while !cursors.is_empty() {
        let pick = rng.gen_range(0..cursors.len());
        let Some(step) = cursors[pick].pop_front() else {
            cursors.swap_remove(pick);
            continue;
        };
        if rng.gen_bool(0.05) {
            feed.push(step.clone());
        }
        feed.push(step);
    }
    feed
}

/// What each order must end as, computed from the input alone with the pure domain.
fn expected_states(feed: &[(&'static str, Value)]) -> BTreeMap<String, (String, u64, u64)> {
    let mut logs: BTreeMap<EntityKey, Vec<Event>> = BTreeMap::new();
    for (offset, (topic, document)) in feed.iter().enumerate() {
        let input_topic = InputTopic::ALL
            .into_iter()
            .find(|t| t.name() == *topic)
            .unwrap();
        let provenance = Provenance {
            topic: topic.to_string(),
            partition: 0,
            offset: offset as i64,
        };
        let event = decode(
            input_topic,
            &provenance,
            None,
            document.to_string().as_bytes(),
        )
        .unwrap();
        logs.entry(event.key.clone()).or_default().push(event);
    }
    let rules = Rules::default();
    logs.into_iter()
        .map(|(key, events)| {
            let mut entity = Entity::empty(&key);
            let mut queue: std::collections::VecDeque<Event> = events.into();
            while let Some(event) = queue.pop_front() {
                if entity.apply(&event).is_some() {
                    if let Entity::Order(order) = &entity {
                        for body in decide(order, &rules) {
                            queue.push_back(Event::decision(
                                &order.order_id,
                                event.occurred_at,
                                "test",
                                &event.event_id,
                                body,
                            ));
                        }
                    }
                }
            }
            let Entity::Order(order) = entity else {
                unreachable!()
            };
            (
                key.to_string(),
                (
                    order.status.as_str().to_string(),
                    order.version,
                    order.paid_fen(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let feed = journeys(&mut rng);
    let expected = expected_states(&feed);
    let harness = Harness::new("crash");
    let names = [
        "orderflow-orders",
        "orderflow-payments",
        "orderflow-shipments",
        "orderflow-state",
    ];
    let mut procs: Vec<Proc> = names.iter().map(|name| harness.spawn(name, "0")).collect();

    let feeder = {
        let feed = feed.clone();
        let harness_topics: Vec<(String, String, Vec<u8>)> = feed
            .iter()
            .map(|(topic, doc)| {
                (
                    topic.to_string(),
                    doc["platform_order_id"].as_str().unwrap().to_string(),
                    doc.to_string().into_bytes(),
                )
            })
            .collect();
        let brokers = harness.brokers.clone();
        let prefix = harness.prefix.clone();
        tokio::spawn(async move {
            let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .set("partitioner", "murmur2_random")
                .create()
                .unwrap();
            // A steady flow over several seconds, so the kills land mid-stream.
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for chunk in harness_topics.chunks(20) {
                pace.tick().await;
                let sends = chunk.iter().map(|(topic, key, payload)| {
                    let topic = format!("{prefix}{topic}");
                    let producer = producer.clone();
                    async move {
                        producer
                            .send(
                                rdkafka::producer::FutureRecord::to(&topic)
                                    .key(key)
                                    .payload(payload),
                                Duration::from_secs(30),
                            )
                            .await
                            .map_err(|(error, _)| error)
                    }
                });
                futures::future::try_join_all(sends).await.unwrap();
            }
            feed.len()
        })
    };

    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    let mut moment = tokio::time::interval(Duration::from_millis(rng.gen_range(400..900)));
    moment.tick().await;
    while !feeder.is_finished() || kills.values().sum::<u32>() < 8 {
        moment.tick().await;
        let victim = rng.gen_range(0..procs.len());
        procs[victim].kill();
        *kills.entry(names[victim]).or_default() += 1;
        procs[victim] = harness.spawn(names[victim], "0");
        if kills.values().sum::<u32>() >= 16 && feeder.is_finished() {
            break;
        }
    }
    let sent = feeder.await.unwrap();

    let expected_ref = &expected;
    let harness_ref = &harness;
    let states = harness
        .wait_for(
            "every order at its expected state",
            Duration::from_secs(180),
            || async move {
                let states = harness_ref.order_states().await;
                let settled = expected_ref.iter().all(|(order, (status, version, _))| {
                    states
                        .get(order)
                        .is_some_and(|s| s["status"] == status.as_str() && s["version"] == *version)
                });
                settled.then_some(states)
            },
        )
        .await;
    let mut lost = 0;
    let mut double_counted = 0;
    for (order, (status, version, paid)) in &expected {
        let state = &states[order];
        if state["status"] != status.as_str() {
            lost += 1;
        }
        if state["version"].as_u64() != Some(*version) || state["paid_fen"].as_u64() != Some(*paid)
        {
            double_counted += 1;
        }
    }
    // No snapshot ever published may show more money than was paid.
    let overpaid = harness
        .read("order-state")
        .await
        .iter()
        .filter(|record| {
            let state = record.json();
            let order = record.key.clone().unwrap_or_default();
            state["paid_fen"].as_u64() > expected.get(&order).map(|e| e.2)
        })
        .count();
    let log = harness.read("order-events").await;
    let distinct: HashSet<String> = log
        .iter()
        .map(|r| {
            r.json()["event_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let dead_letters = harness.read("dlq").await.len();
    eprintln!(
        "crash test: {sent} input records ({} orders), kills {kills:?}, log records {} ({} distinct, {} duplicates absorbed by the fold), lost {lost}, double-counted {double_counted}, overpaid snapshots {overpaid}, dead letters {dead_letters}",
        expected.len(),
        log.len(),
        distinct.len(),
        log.len() - distinct.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(double_counted, 0);
    assert_eq!(overpaid, 0);
    assert_eq!(dead_letters, 0);
    assert!(
        kills.get("orderflow-state").copied().unwrap_or(0) >= 1,
        "the state consumer was killed: {kills:?}"
    );

    // The live store equals a replay of the log, partition by partition.
    let state_index = names.iter().position(|n| *n == "orderflow-state").unwrap();
    assert!(procs[state_index].terminate().success());
    let store = harness.data_dir().join("orderflow-state-0");
    let verify = harness.cli(&["replay", "--verify", "--store", store.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "replay --verify failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.contains("verify: OK"), "{stdout}");
}
