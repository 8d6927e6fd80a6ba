//! Crash safety: `kill -9` the intake and state consumers at random moments while a few
//! thousand events flow, restart them, and check that every order ends exactly where its
//! input alone says — nothing lost, nothing counted twice — and that a replay of the log
//! equals the live store.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use orderflow_domain::EventId;
use orderflow_sim::{plan, verify, Mix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Harness, Proc};

/// A few thousand records of realistic journeys with retries and races, no malformed ones.
fn mix() -> Mix {
    Mix {
        seed: 20_261_125,
        orders: 600,
        tag: "CRASH".into(),
        malformed_share: 0.0,
        ..Mix::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing_and_counts_nothing_twice() {
    let mut rng = StdRng::seed_from_u64(7);
    let plan = plan(&mix());
    let harness = Harness::new("crash");
    let names = [
        "orderflow-orders",
        "orderflow-payments",
        "orderflow-shipments",
        "orderflow-state",
    ];
    let mut procs: Vec<Proc> = names.iter().map(|name| harness.spawn(name, "0")).collect();

    let feeder = {
        let harness_topics: Vec<(String, String, Vec<u8>)> = plan
            .records
            .iter()
            .map(|r| (r.topic.name().to_string(), r.key.clone(), r.payload.clone()))
            .collect();
        let mut settings = harness.client_config();
        let prefix = harness.prefix.clone();
        tokio::spawn(async move {
            let producer: rdkafka::producer::FutureProducer = settings
                .set("partitioner", "murmur2_random")
                .create()
                .unwrap();
            // A steady flow over several seconds, so the kills land mid-stream.
            let mut pace = tokio::time::interval(Duration::from_millis(50));
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
            harness_topics.len()
        })
    };

    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    while !feeder.is_finished() || kills.values().sum::<u32>() < 8 {
        // A random moment: pacing the chaos, not waiting for readiness.
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..900))).await;
        // Round-robin victims at random moments: every consumer dies several times.
        let victim = kills.values().sum::<u32>() as usize % procs.len();
        procs[victim].kill();
        *kills.entry(names[victim]).or_default() += 1;
        procs[victim] = harness.spawn(names[victim], "0");
        if kills.values().sum::<u32>() >= 16 && feeder.is_finished() {
            break;
        }
    }
    let sent = feeder.await.unwrap();

    let expected = &plan.expected;
    let harness_ref = &harness;
    let states = harness
        .wait_for(
            "every order at its expected state",
            Duration::from_secs(180),
            || async move {
                let states = harness_ref.order_states().await;
                verify(expected, &states).passed().then_some(states)
            },
        )
        .await;
    let verdict = verify(expected, &states);
    let (lost, double_counted) = (verdict.lost, verdict.duplicated);
    // No snapshot ever published may show more money than was paid.
    let overpaid = harness
        .read("order-state")
        .await
        .iter()
        .filter(|record| {
            let state = record.order_state();
            // A snapshot of an order the plan never placed counts too.
            Some(state.paid_fen)
                > expected
                    .get(&state.order_id.to_string())
                    .map(|e| e.paid_fen)
        })
        .count();
    let log = harness.read("order-events").await;
    let events: Vec<EventId> = log
        .iter()
        .flat_map(|r| r.log_events())
        .map(|event| event.event_id)
        .collect();
    let distinct: HashSet<&EventId> = events.iter().collect();
    let dead_letters = harness.read("dlq").await.len();
    eprintln!(
        "crash test: {sent} input records ({} orders), kills {kills:?}, log records {} ({} events, {} distinct, {} duplicates absorbed by the fold), lost {lost}, double-counted {double_counted}, overpaid snapshots {overpaid}, dead letters {dead_letters}",
        expected.len(),
        log.len(),
        events.len(),
        distinct.len(),
        events.len() - distinct.len()
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
    harness.assert_replay_verifies("0");
}
