//! No record can stop a consumer, and the dead-letter queue is one people can work with: on a
//! real broker, records of 1 MB and 2 MB, a contract-valid order whose event the log refuses,
//! an order-state snapshot the broker refuses, each followed by an order that must complete;
//! then `orderflow dlq list / show / redrive` after a limit is raised.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use orderflow_domain::Status;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::{input, Harness, Record};

/// The default `limits.max-dead-letter-bytes`.
const MAX_DEAD_LETTER_BYTES: usize = 768 * 1024;

/// Lets `topic` take records of up to `bytes` (an operator's `kafka-configs.sh --alter`): the
/// broker's default refuses anything over about 1 MB before orderflow sees it.
async fn accept_records_up_to(harness: &Harness, topic: &str, bytes: usize) {
    let admin: AdminClient<DefaultClientContext> = harness.client_config().create().unwrap();
    let topic = harness.topic(topic);
    let bytes = bytes.to_string();
    let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("max.message.bytes", &bytes);
    let results = admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// A producer that sends records of up to 4 MB (the harness's keeps librdkafka's 1 MB).
fn large_producer(harness: &Harness) -> FutureProducer {
    harness
        .client_config()
        .set("message.max.bytes", "4000000")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap()
}

async fn produce_large(
    producer: &FutureProducer,
    harness: &Harness,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> (i32, i64) {
    let topic = harness.topic(topic);
    // A topic's new max.message.bytes reaches the broker's log a moment after the alter.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let sent = producer
            .send(
                FutureRecord::to(&topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await;
        match sent {
            Ok(delivery) => return (delivery.partition, delivery.offset),
            Err((error, _))
                if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((error, _)) => panic!("producing {} bytes to {topic}: {error}", payload.len()),
        }
    }
}

/// An `order_placed` of `lines` lines whose skus are `sku_bytes` long: valid under the
/// contract's shape, as large as asked.
fn order_with_lines(order: &str, lines: usize, sku_bytes: usize) -> Value {
    let mut document = input::placed("tmall", order, 100 * lines as u64);
    document["lines"] = (0..lines)
        .map(|line| {
            let sku = format!("SKU-{line:03}-{}", "K".repeat(sku_bytes.saturating_sub(8)));
            json!({"sku": sku, "category": "tea", "qty": 1, "unit_price_fen": 100})
        })
        .collect();
    document
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a dead letter costs on the wire, roughly: key, value and headers.
fn record_bytes(letter: &Record) -> usize {
    letter.key.as_ref().map_or(0, String::len)
        + letter.payload.len()
        + letter
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>()
}

/// The dead letter of the record at `at` on `topic`, once it is on `dlq`.
async fn letter_of(harness: &Harness, topic: &str, at: (i32, i64)) -> Record {
    let source = harness.topic(topic);
    harness
        .wait_for(
            &format!("the dead letter of {source}[{}]@{}", at.0, at.1),
            Duration::from_secs(60),
            || async {
                harness.read("dlq").await.into_iter().find(|letter| {
                    letter.headers.get("__connect.errors.topic") == Some(&source)
                        && letter.headers.get("__connect.errors.partition")
                            == Some(&at.0.to_string())
                        && letter.headers.get("__connect.errors.offset") == Some(&at.1.to_string())
                })
            },
        )
        .await
}

/// The dead letter keeps the original key, says how large the original was and what its
/// SHA-256 is, and holds as much of it as fits.
fn assert_truncated_copy(letter: &Record, key: &str, original: &[u8]) {
    assert_eq!(letter.key.as_deref(), Some(key), "the original key is kept");
    assert_eq!(
        letter.headers["__orderflow.errors.original.size"],
        original.len().to_string()
    );
    assert_eq!(
        letter.headers["__orderflow.errors.original.sha256"],
        sha256_hex(original)
    );
    assert_eq!(letter.headers["__orderflow.errors.truncated"], "true");
    assert!(
        original.starts_with(&letter.payload),
        "the value is the original's first bytes"
    );
    assert!(
        letter.payload.len() > MAX_DEAD_LETTER_BYTES - 8 * 1024,
        "as much as fits is kept: {} bytes",
        letter.payload.len()
    );
    assert!(
        record_bytes(letter) <= MAX_DEAD_LETTER_BYTES,
        "the dead letter fits: {} bytes",
        record_bytes(letter)
    );
}

/// An order placed and paid after the poison records: it must get through.
async fn a_normal_order_completes(harness: &Harness, order: &str) {
    harness
        .produce_json("in.orders", &input::placed("tmall", order, 2_000))
        .await;
    harness
        .produce_json(
            "in.payments",
            &input::paid("tmall", order, &format!("PAY-{order}"), 2_000),
        )
        .await;
    harness
        .wait_for_statuses(&[(&format!("tmall:{order}"), Status::Routed)])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_1_and_2_mb_are_dead_lettered_truncated_and_the_next_order_goes_through() {
    let harness = Harness::new("dlq-big");
    let producer = large_producer(&harness);
    // With the broker's default limit (about 1 MB) a 2 MB record never gets onto a topic: the
    // adapter is told, and orderflow has nothing to handle.
    let refused = producer
        .send(
            FutureRecord::to(&harness.topic("in.payments"))
                .key("BIG")
                .payload(&vec![b'x'; 2_000_000]),
            Duration::from_secs(30),
        )
        .await;
    assert!(
        matches!(&refused, Err((error, _)) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge)),
        "{refused:?}"
    );
    // A topic raised to take it is where orderflow must cope.
    accept_records_up_to(&harness, "in.orders", 3_000_000).await;
    let mut orders = harness.spawn("orderflow-orders", "0");
    let _payments = harness.spawn("orderflow-payments", "0");
    let _state = harness.spawn("orderflow-state", "0");

    // 1 000 000 bytes that aren't JSON, and a 2 MB order_placed: both over
    // limits.max-record-bytes (512 KiB), so neither is decoded.
    let malformed = [b"{".as_slice(), &vec![b'x'; 999_999]].concat();
    let huge_order = order_with_lines("BIG2", 200, 10_000)
        .to_string()
        .into_bytes();
    assert!(huge_order.len() > 2_000_000, "{}", huge_order.len());
    let malformed_at = produce_large(&producer, &harness, "in.orders", "BIG1", &malformed).await;
    let huge_at = produce_large(&producer, &harness, "in.orders", "BIG2", &huge_order).await;

    a_normal_order_completes(&harness, "AFTER-BIG").await;
    assert!(orders.is_running(), "the orders intake goes on");

    for (at, key, original) in [
        (malformed_at, "BIG1", &malformed),
        (huge_at, "BIG2", &huge_order),
    ] {
        let letter = letter_of(&harness, "in.orders", at).await;
        assert_eq!(
            letter.headers["__connect.errors.exception.class.name"],
            "record_too_large"
        );
        assert!(
            letter.headers["__connect.errors.exception.message"]
                .contains(&format!("value is {} bytes", original.len())),
            "{:?}",
            letter.headers
        );
        assert_eq!(
            letter.headers["__connect.errors.connector.name"],
            "orderflow-orders"
        );
        assert_truncated_copy(&letter, key, original);
    }
    assert!(
        !harness
            .read("order-events")
            .await
            .iter()
            .any(|record| record.key.as_deref() == Some("tmall:BIG2")),
        "nothing of the 2 MB order reached the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_order_whose_event_the_log_refuses_is_dead_lettered_and_the_intake_goes_on() {
    let harness = Harness::new("dlq-refused");
    accept_records_up_to(&harness, "in.orders", 3_000_000).await;
    // Limits raised so far that a 1.2 MB order is valid: its event is then too large for the
    // producer (1 MB), which refuses it for good.
    std::fs::write(
        harness.data_dir().join("orderflow-orders.toml"),
        "[limits]\nmax-record-bytes = 3000000\nmax-text-bytes = 8000\n",
    )
    .unwrap();
    let mut orders = harness.spawn("orderflow-orders", "0");
    let _payments = harness.spawn("orderflow-payments", "0");
    let _state = harness.spawn("orderflow-state", "0");
    let producer = large_producer(&harness);

    let valid = order_with_lines("HUGE", 200, 6_000)
        .to_string()
        .into_bytes();
    assert!(valid.len() > 1_100_000, "{}", valid.len());
    let at = produce_large(&producer, &harness, "in.orders", "HUGE", &valid).await;

    a_normal_order_completes(&harness, "AFTER-HUGE").await;
    assert!(orders.is_running(), "the orders intake goes on");

    let letter = letter_of(&harness, "in.orders", at).await;
    assert_eq!(
        letter.headers["__connect.errors.exception.class.name"],
        "output_refused"
    );
    assert_eq!(
        letter.headers["__orderflow.errors.output.topic"],
        harness.topic("order-events")
    );
    assert!(
        letter.headers["__connect.errors.exception.message"].contains("refused"),
        "{:?}",
        letter.headers
    );
    assert_truncated_copy(&letter, "HUGE", &valid);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_state_snapshot_the_broker_refuses_is_dead_lettered_and_the_partition_goes_on() {
    let harness = Harness::new("dlq-snapshot");
    // The state consumer's producer takes records of up to 20 000 bytes, its dead letters up
    // to 16 KiB. An order's snapshot lists every parcel (the contract bounds a tracking number,
    // not how many parcels an order has): 30 parcels with long tracking numbers make it
    // larger than that, and the broker refuses it for good.
    std::fs::write(
        harness.data_dir().join("orderflow-state.toml"),
        "[limits]\nmax-dead-letter-bytes = 16384\n",
    )
    .unwrap();
    let _orders = harness.spawn("orderflow-orders", "0");
    let _payments = harness.spawn("orderflow-payments", "0");
    let _shipments = harness.spawn("orderflow-shipments", "0");
    let mut state = harness.spawn_with(
        "orderflow-state",
        "0",
        &[("ORDERFLOW_KAFKA_PRODUCER__MESSAGE_MAX_BYTES", "20000")],
    );

    harness
        .produce_json("in.orders", &input::placed("tmall", "WIDE", 2_000))
        .await;
    for parcel in 0..30 {
        let mut shipment = input::dispatched("tmall", "WIDE");
        shipment["tracking_no"] = json!(format!("SF{parcel:03}{}", "7".repeat(900)));
        harness.produce_json("in.shipments", &shipment).await;
    }
    let letter = harness
        .wait_for(
            "the refused snapshot on dlq",
            Duration::from_secs(60),
            || async {
                harness.read("dlq").await.into_iter().find(|letter| {
                    letter.headers.get("__orderflow.errors.output.topic")
                        == Some(&harness.topic("order-state"))
                })
            },
        )
        .await;
    assert_eq!(
        letter.headers["__connect.errors.exception.class.name"],
        "output_refused"
    );
    assert_eq!(
        letter.headers["__connect.errors.connector.name"],
        "orderflow-state"
    );
    assert_eq!(
        letter.key.as_deref(),
        Some("tmall:WIDE"),
        "keyed by the order"
    );
    assert_eq!(
        letter.headers["__connect.errors.topic"],
        harness.topic("order-events"),
        "provenance: the log record whose fold made the snapshot"
    );
    let size: usize = letter.headers["__orderflow.errors.original.size"]
        .parse()
        .unwrap();
    assert!(size > 20_000, "{size}");
    assert_eq!(letter.headers["__orderflow.errors.truncated"], "true");
    assert!(record_bytes(&letter) <= 16_384, "{}", record_bytes(&letter));

    a_normal_order_completes(&harness, "AFTER-WIDE").await;
    assert!(state.is_running(), "the state consumer goes on");
}

/// `orderflow dlq ...` through the real CLI: its stdout, or the test fails with its stderr.
fn dlq(harness: &Harness, args: &[&str]) -> String {
    let mut all = vec!["dlq"];
    all.extend_from_slice(args);
    let output = harness.cli(&all);
    assert!(
        output.status.success(),
        "orderflow {all:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_redriven_after_the_limit_is_raised_completes_its_order_once() {
    let harness = Harness::new("dlq-redrive");
    let config = harness.data_dir().join("orderflow-orders.toml");
    std::fs::write(&config, "[limits]\nmax-record-bytes = 4096\n").unwrap();
    let mut orders = harness.spawn("orderflow-orders", "0");
    let _payments = harness.spawn("orderflow-payments", "0");
    let _state = harness.spawn("orderflow-state", "0");

    // About 6 KB: over the limit of 4 KiB.
    let order = order_with_lines("R1", 40, 100);
    let (partition, offset) = harness.produce_json("in.orders", &order).await;
    harness
        .produce_json("in.payments", &input::paid("tmall", "R1", "PAY-R1", 4_000))
        .await;
    let letter = letter_of(&harness, "in.orders", (partition, offset)).await;
    assert_eq!(
        letter.headers["__connect.errors.exception.class.name"],
        "record_too_large"
    );
    assert_eq!(letter.headers["__orderflow.errors.truncated"], "false");
    let id = format!("{}:{}", letter.partition, letter.offset);

    let listed: Value = serde_json::from_str(&dlq(&harness, &["list", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["class"], "record_too_large");
    assert_eq!(listed[0]["source_topic"], harness.topic("in.orders"));
    assert_eq!(listed[0]["source_offset"], offset);
    assert_eq!(listed[0]["size"], order.to_string().len());
    assert_eq!(listed[0]["redriven"], false);
    let table = dlq(&harness, &["list"]);
    assert!(
        table.contains(&id) && table.contains("record_too_large"),
        "{table}"
    );

    // Shown with its personal data masked.
    let shown = dlq(&harness, &["show", &id]);
    assert!(
        shown.contains("138****8000") && shown.contains("文三****"),
        "{shown}"
    );
    assert!(
        !shown.contains("13800138000") && !shown.contains("478"),
        "raw personal data shown:\n{shown}"
    );

    // The fix: the limit raised, the intake restarted with it.
    std::fs::write(&config, "[limits]\nmax-record-bytes = 65536\n").unwrap();
    assert!(orders.terminate().success());
    let _orders = harness.spawn("orderflow-orders", "0");

    let inputs_before = harness.read("in.orders").await.len();
    let dry = dlq(&harness, &["redrive", "--dry-run"]);
    assert!(dry.contains(&format!("would redrive {id}")), "{dry}");
    assert_eq!(
        harness.read("in.orders").await.len(),
        inputs_before,
        "a dry run sends nothing"
    );

    let redriven = dlq(&harness, &["redrive", "--class", "record_too_large"]);
    assert!(redriven.contains("redrove 1 dead letters"), "{redriven}");
    harness
        .wait_for_statuses(&[("tmall:R1", Status::Routed)])
        .await;
    let inputs_after = harness.read("in.orders").await;
    assert_eq!(inputs_after.len(), inputs_before + 1);
    let copy = inputs_after.last().unwrap();
    assert_eq!(copy.key.as_deref(), Some("R1"), "the original key");
    assert_eq!(
        copy.payload,
        order.to_string().into_bytes(),
        "the original bytes"
    );

    // Again: nothing more is sent.
    let again = dlq(&harness, &["redrive"]);
    assert!(
        again.contains("redrove 0 dead letters, skipped 1"),
        "{again}"
    );
    assert!(again.contains("already redriven"), "{again}");
    assert_eq!(harness.read("in.orders").await.len(), inputs_before + 1);
    let listed: Value = serde_json::from_str(&dlq(&harness, &["list", "--json"])).unwrap();
    assert_eq!(listed[0]["redriven"], true);
    let placed = harness
        .read("order-events")
        .await
        .iter()
        .flat_map(|record| record.log_events())
        .filter(|event| event.key.to_string() == "tmall:R1" && event.body.kind() == "order_placed")
        .count();
    assert_eq!(placed, 1, "the order was placed once");
}
