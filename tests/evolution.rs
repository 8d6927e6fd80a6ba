//! Log evolution against a real broker: a record of `order-events` this build can't read
//! (a newer writer's layout) stops its partition loudly — no checkpoint or committed offset
//! past it, the stall metric, `/readyz` and a log line naming it — while the other partitions
//! go on; replay and inspect refuse it by partition and offset; once an operator passes over
//! it (`consumer.skip-log-records`) the partition resumes and nothing after it is lost.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;

use orderflow_domain::Status;
use orderflow_store::{SledStore, StateStore};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use support::{input, Harness, PARTITIONS};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The operator CLI on the harness's namespace, with more environment.
fn cli_with(harness: &Harness, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .args(args)
        .env("ORDERFLOW_BROKERS", &harness.brokers)
        .env("ORDERFLOW_TOPIC_PREFIX", &harness.prefix)
        .env("ORDERFLOW_PARTITIONS", PARTITIONS.to_string())
        .env("ORDERFLOW_DATA_DIR", harness.data_dir())
        .env("ORDERFLOW_CLOCK_FILE", harness.clock_file())
        .env_remove("ORDERFLOW_CONFIG")
        .env_remove("ORDERFLOW_RULES")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `/readyz` and the stall gauge's line for `partition`, from the state consumer's endpoint.
async fn health(port: u16, partition: i32) -> Option<(u16, String, Option<String>)> {
    let base = format!("http://127.0.0.1:{port}");
    let ready = reqwest::get(format!("{base}/readyz")).await.ok()?;
    let code = ready.status().as_u16();
    let why = ready.text().await.ok()?;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let gauge = metrics
        .lines()
        .find(|line| {
            line.starts_with("orderflow_log_partition_stalled{")
                && line.contains(&format!("partition=\"{partition}\""))
        })
        .map(str::to_string);
    Some((code, why, gauge))
}

/// The state consumer group's committed offset of a log partition, if it has one.
fn committed(harness: &Harness, partition: i32) -> Option<i64> {
    let consumer: BaseConsumer = harness
        .client_config()
        .set("group.id", format!("{}orderflow-state", harness.prefix))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&harness.topic("order-events"), partition);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    match offsets.elements()[0].offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_of_a_newer_layout_stops_its_partition_and_nothing_after_it_is_lost() {
    let harness = Harness::new("evolution");
    // What a newer intake would append for EVO-A: layout 2, of which this build knows nothing.
    let newer = json!({
        "schema_version": 2,
        "event_id": "evo-newer-1",
        "key": "tmall:EVO-A",
        "body": {"type": "order_placed", "shape": "of layout 2"}
    });
    let (stalled, at) = harness
        .produce_with(
            "order-events",
            "tmall:EVO-A",
            newer.to_string().as_bytes(),
            None,
        )
        .await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let metrics = [("ORDERFLOW_METRICS_LISTEN", listen.as_str())];
    let _intake = ["orderflow-orders", "orderflow-payments"].map(|name| harness.spawn(name, "0"));
    let mut state = harness.spawn_with("orderflow-state", "0", &metrics);

    // EVO-A's own facts come after the newer record on its partition; the others spread.
    let orders: Vec<String> = (0..9)
        .map(|n| format!("EVO-{n}"))
        .chain(["EVO-A".to_string()])
        .collect();
    for order in &orders {
        harness
            .produce_json("in.orders", &input::placed("tmall", order, 3_000))
            .await;
        harness
            .produce_json(
                "in.payments",
                &input::paid("tmall", order, &format!("PAY-{order}"), 3_000),
            )
            .await;
    }
    // Which log partition each order is on, from its appended events.
    let partition_of: BTreeMap<String, i32> = harness
        .wait_for(
            "every order's events on the log",
            Duration::from_secs(60),
            || async {
                let found: BTreeMap<String, i32> = harness
                    .read("order-events")
                    .await
                    .into_iter()
                    .filter_map(|record| Some((record.key?, record.partition)))
                    .filter(|(key, _)| key.starts_with("tmall:EVO-"))
                    .collect();
                (found.len() == orders.len()).then_some(found)
            },
        )
        .await;
    assert_eq!(partition_of["tmall:EVO-A"], stalled);
    let elsewhere: Vec<&str> = partition_of
        .iter()
        .filter(|(_, partition)| **partition != stalled)
        .map(|(order, _)| order.as_str())
        .collect();
    assert!(
        !elsewhere.is_empty(),
        "no order landed on another partition"
    );
    // Paid at least: both facts folded. (How far each goes may depend on a sku or buyer
    // entity on the stopped partition.)
    harness
        .wait_for(
            "the other partitions' orders paid",
            Duration::from_secs(60),
            || async {
                let states = harness.order_states().await;
                elsewhere
                    .iter()
                    .all(|order| {
                        states
                            .get(*order)
                            .is_some_and(|state| state.status != Status::PendingPayment)
                    })
                    .then_some(())
            },
        )
        .await;

    // The stopped partition: the metric, /readyz and the log say where and why.
    let (code, why, gauge) = harness
        .wait_for(
            "the stall on /readyz and /metrics",
            Duration::from_secs(30),
            || async {
                health(port, stalled)
                    .await
                    .filter(|(code, _, gauge)| *code == 503 && gauge.is_some())
            },
        )
        .await;
    assert_eq!(code, 503);
    assert!(
        why.contains(&format!("order-events[{stalled}] at offset {at}"))
            && why.contains("schema_version 2"),
        "{why}"
    );
    assert!(gauge.as_deref().unwrap().ends_with(" 1"), "{gauge:?}");
    let line = harness
        .wait_for_log_line(
            "orderflow-state-0",
            &[
                "stops at a record",
                &format!("partition={stalled}"),
                &format!("offset={at}"),
            ],
        )
        .await;
    assert!(
        line.contains("schema_version 2") && line.contains("ERROR"),
        "{line}"
    );
    // Nothing of the partition was folded past it, other partitions or not.
    let states = harness.order_states().await;
    for (order, partition) in &partition_of {
        assert_eq!(
            states.contains_key(order),
            *partition != stalled,
            "{order} on partition {partition}"
        );
    }

    // Replay and inspect refuse the record by partition and offset; they don't skip it.
    let named = format!("partition {stalled} offset {at}");
    for args in [&["replay"][..], &["inspect", "tmall:EVO-A"][..]] {
        let output = cli_with(&harness, args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&named) && stderr.contains("schema_version 2"),
            "{args:?}: {stderr}"
        );
    }

    // Stopped, neither its checkpoint nor its committed offset is past the record.
    assert!(state.terminate().success());
    {
        let store = SledStore::open(&harness.data_dir().join("orderflow-state-0")).unwrap();
        assert_eq!(store.checkpoint(stalled).unwrap().unwrap_or(0), at);
        for (order, partition) in partition_of.iter().filter(|(_, p)| **p != stalled) {
            let checkpoint = store.checkpoint(*partition).unwrap().unwrap_or(0);
            assert!(
                checkpoint > 0,
                "{order}: partition {partition} at {checkpoint}"
            );
        }
    }
    assert!(committed(&harness, stalled).unwrap_or(0) <= at);

    // The operator passes over it: dead-lettered with its provenance, the partition resumes.
    let skip = format!("{stalled}@{at}");
    let skips = [
        ("ORDERFLOW_METRICS_LISTEN", listen.as_str()),
        ("ORDERFLOW_SKIP_LOG_RECORDS", skip.as_str()),
    ];
    let mut state = harness.spawn_with("orderflow-state", "0", &skips);
    let all: Vec<(&str, Status)> = partition_of
        .keys()
        .map(|order| (order.as_str(), Status::Routed))
        .collect();
    harness.wait_for_statuses(&all).await;
    let letters = harness
        .wait_for(
            "the skipped record in the dlq",
            Duration::from_secs(30),
            || async {
                let letters = harness.read("dlq").await;
                (!letters.is_empty()).then_some(letters)
            },
        )
        .await;
    assert_eq!(letters.len(), 1);
    let headers: BTreeMap<&str, &str> = letters[0]
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(
        headers[orderflow_schema::headers::dlq::CLASS],
        "unreadable_log_record"
    );
    assert_eq!(
        headers[orderflow_schema::headers::dlq::PARTITION],
        stalled.to_string()
    );
    assert_eq!(
        headers[orderflow_schema::headers::dlq::OFFSET],
        at.to_string()
    );
    assert_eq!(letters[0].payload, newer.to_string().into_bytes());
    harness
        .wait_for("/readyz ready again", Duration::from_secs(30), || async {
            health(port, stalled).await.filter(|(code, _, gauge)| {
                *code == 200 && gauge.as_deref().is_some_and(|g| g.ends_with(" 0"))
            })
        })
        .await;
    assert!(state.terminate().success());
    let verify = cli_with(
        &harness,
        &[
            "replay",
            "--verify",
            "--store",
            harness
                .data_dir()
                .join("orderflow-state-0")
                .to_str()
                .unwrap(),
        ],
        &[("ORDERFLOW_SKIP_LOG_RECORDS", skip.as_str())],
    );
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_event_type_and_garbage_each_stop_the_partition_until_skipped() {
    let harness = Harness::new("evolution-kinds");
    let unknown = json!({
        "schema_version": 1,
        "event_id": "evo-unknown-1",
        "key": "tmall:EVK-A",
        "occurred_at": "2026-11-25T02:00:00Z",
        "source": {"origin": "in.orders"},
        "body": {"type": "order_teleported", "to": "the moon"}
    });
    let (stalled, first) = harness
        .produce_with(
            "order-events",
            "tmall:EVK-A",
            unknown.to_string().as_bytes(),
            None,
        )
        .await;
    // Same key, same partition: bytes no orderflow writes.
    let (partition, second) = harness
        .produce_with(
            "order-events",
            "tmall:EVK-A",
            b"\x00\x01 not an event",
            None,
        )
        .await;
    assert_eq!(partition, stalled);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _intake = ["orderflow-orders", "orderflow-payments"].map(|name| harness.spawn(name, "0"));
    harness
        .produce_json("in.orders", &input::placed("tmall", "EVK-A", 3_000))
        .await;
    harness
        .produce_json(
            "in.payments",
            &input::paid("tmall", "EVK-A", "PAY-EVK-A", 3_000),
        )
        .await;

    // Each run stops at the first record it can't read and isn't told to skip, and says why.
    let runs = [
        (String::new(), first, "order_teleported"),
        (
            format!("{stalled}@{first}"),
            second,
            "no orderflow writes such a record",
        ),
    ];
    for (skip, at, why) in &runs {
        let env = [
            ("ORDERFLOW_METRICS_LISTEN", listen.as_str()),
            ("ORDERFLOW_SKIP_LOG_RECORDS", skip.as_str()),
        ];
        let mut state = harness.spawn_with("orderflow-state", "0", &env);
        let (_, reason, _) = harness
            .wait_for("the stall on /readyz", Duration::from_secs(60), || async {
                health(port, stalled).await.filter(|(code, reason, _)| {
                    *code == 503 && reason.contains(&format!("[{stalled}] at offset {at}"))
                })
            })
            .await;
        assert!(reason.contains(why), "{reason}");
        assert!(
            !harness.order_states().await.contains_key("tmall:EVK-A"),
            "folded past offset {at}"
        );
        assert!(state.terminate().success());
    }

    // Both passed over (the variable takes them comma separated): the order goes on.
    let both = format!("{stalled}@{first},{stalled}@{second}");
    let env = [
        ("ORDERFLOW_METRICS_LISTEN", listen.as_str()),
        ("ORDERFLOW_SKIP_LOG_RECORDS", both.as_str()),
    ];
    let _state = harness.spawn_with("orderflow-state", "0", &env);
    harness
        .wait_for("EVK-A paid", Duration::from_secs(60), || async {
            harness
                .order_states()
                .await
                .get("tmall:EVK-A")
                .is_some_and(|state| state.status != Status::PendingPayment)
                .then_some(())
        })
        .await;
    let letters = harness
        .wait_for(
            "both records in the dlq",
            Duration::from_secs(30),
            || async {
                let letters = harness.read("dlq").await;
                (letters.len() >= 2).then_some(letters)
            },
        )
        .await;
    let offsets: Vec<&str> = letters
        .iter()
        .map(|letter| letter.headers[orderflow_schema::headers::dlq::OFFSET].as_str())
        .collect();
    assert_eq!(offsets, [first.to_string(), second.to_string()]);
}

/// A log written before the log was binary: the facts of three orders as JSON records, one
/// event each, as an older orderflow's intakes wrote them (`content-type: application/json`,
/// or no header at all). The pipeline folds them with the protobuf records it appends itself
/// (its decisions, and a new fact for an old order), replay rebuilds the same state and counts
/// every event, and `inspect` reads both encodings.
#[tokio::test(flavor = "multi_thread")]
async fn a_json_era_log_is_still_read_and_replayed() {
    use orderflow_schema::headers::{JSON_CONTENT_TYPE, LOG_CONTENT_TYPE};
    use orderflow_schema::{decode, InputTopic, Provenance};

    let harness = Harness::new("jsonera");
    let old_orders = [("tmall", "OLD0"), ("jd", "OLD1"), ("web", "OLD2")];
    for (index, (channel, order)) in old_orders.iter().enumerate() {
        let facts = [
            (InputTopic::Orders, input::placed(channel, order, 12_800)),
            (
                InputTopic::Payments,
                input::paid(channel, order, &format!("PAY-{order}"), 12_800),
            ),
        ];
        for (topic, document) in facts {
            let provenance = Provenance {
                topic: harness.topic(topic.name()),
                partition: 0,
                offset: index as i64,
            };
            let event = decode(topic, &provenance, None, document.to_string().as_bytes()).unwrap();
            // The oldest records carried no content-type at all.
            let content_type = (index != 1).then_some(JSON_CONTENT_TYPE);
            harness
                .produce_with(
                    "order-events",
                    &event.key.to_string(),
                    &serde_json::to_vec(&event).unwrap(),
                    content_type,
                )
                .await;
        }
    }
    let mut pipeline = harness.start_pipeline();
    // Written by this build: a new fact of an old order, and a new order.
    harness
        .produce_json("in.orders", &input::placed("store", "NEW1", 9_900))
        .await;
    harness
        .produce_json(
            "in.payments",
            &input::paid("store", "NEW1", "PAY-NEW1", 9_900),
        )
        .await;
    harness
        .wait_for_statuses(&[("tmall:OLD0", Status::Routed)])
        .await;
    harness
        .produce_json("in.shipments", &input::dispatched("tmall", "OLD0"))
        .await;
    let states = harness
        .wait_for_statuses(&[
            ("tmall:OLD0", Status::Shipped),
            ("jd:OLD1", Status::Routed),
            ("web:OLD2", Status::Routed),
            ("store:NEW1", Status::Routed),
        ])
        .await;
    assert_eq!(states["jd:OLD1"].paid_fen, 12_800);

    let log = harness.read("order-events").await;
    let encoded_as = |content_type: Option<&str>| {
        log.iter()
            .filter(|record| record.headers.get("content-type").map(String::as_str) == content_type)
            .count()
    };
    assert_eq!(
        encoded_as(Some(JSON_CONTENT_TYPE)),
        4,
        "the JSON-era records"
    );
    assert_eq!(encoded_as(None), 2, "the JSON-era records without a header");
    assert!(
        encoded_as(Some(LOG_CONTENT_TYPE)) > 0,
        "this build's records"
    );
    let events: usize = log.iter().map(|record| record.log_events().len()).sum();

    for process in &mut pipeline {
        process.terminate();
    }
    harness.assert_replay_verifies("0");
    let replay = harness.cli(&["replay", "--json"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(report["events"], json!(events), "{report}");

    let inspect = harness.cli(&["inspect", "tmall:OLD0", "--json"]);
    let timeline = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{timeline}");
    for kind in [
        "order_placed",
        "payment_captured",
        "order_routed",
        "shipment_dispatched",
    ] {
        assert!(timeline.contains(kind), "{kind} missing from {timeline}");
    }
}
