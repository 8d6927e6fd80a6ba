//! What an operator (or Kubernetes) sees of a running consumer: `/healthz` and `/readyz` on the
//! metrics listener, the metrics they are exported as, and `orderflow topics check`.
//!
//! `/readyz` is documented (README, "Health and readiness") to answer 503 while the consumer
//! joins its group, while a partition's state is being rebuilt and while no broker is
//! reachable, and 200 once every assigned partition is live; `/healthz` answers 200 while the
//! consumer loop turns.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Minutes};
use futures::future::try_join_all;
use orderflow_domain::{Event, Source};
use orderflow_runtime::kafka::Topics;
use orderflow_runtime::state::log_record;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::Harness;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` on the metrics listener: status and body, or None while nothing listens.
fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Appends `count` stock levels (over 40 skus) to the log and commits the state consumer's
/// group at the end of it, as a previous owner that published them would have: a new copy
/// with an empty store must rebuild them quietly before it is live.
async fn a_log_already_published(harness: &Harness, count: u32) {
    let topics = Topics::new(&harness.prefix);
    let producer: FutureProducer = harness
        .client_config()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let start = DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
        .unwrap()
        .to_utc();
    let records: Vec<_> = (0..count)
        .map(|i| {
            let event = Event::stock_level(
                &format!("SKU-{}", i % 40),
                "WH-HZ",
                u64::from(i),
                start + Minutes::minutes(i64::from(i)),
                Source::origin("in.inventory"),
            );
            log_record(&topics, std::slice::from_ref(&event)).unwrap()
        })
        .collect();
    for chunk in records.chunks(2_000) {
        let sends = chunk.iter().map(|record| {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            producer.send(
                FutureRecord::to(&record.topic)
                    .key(&record.key)
                    .payload(&record.payload)
                    .headers(headers),
                Duration::from_secs(30),
            )
        });
        try_join_all(sends)
            .await
            .map_err(|(error, _)| error)
            .unwrap();
    }
    let group: BaseConsumer = harness
        .client_config()
        .set("group.id", format!("{}orderflow-state", harness.prefix))
        .create()
        .unwrap();
    let log = topics.order_events();
    let mut committed = TopicPartitionList::new();
    for partition in 0..support::PARTITIONS {
        let (_, high) = group
            .fetch_watermarks(&log, partition, Duration::from_secs(10))
            .unwrap();
        committed
            .add_partition_offset(&log, partition, Offset::Offset(high))
            .unwrap();
    }
    group.commit(&committed, CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_waits_for_the_group_and_the_rebuild_and_healthz_for_the_loop() {
    let harness = Harness::new("ready");
    a_log_already_published(&harness, 30_000).await;
    let address = free_port();
    let listen = address.to_string();
    let mut state = harness.spawn_with(
        "orderflow-state",
        "0",
        &[("ORDERFLOW_METRICS_LISTEN", &listen)],
    );

    // Every answer of /readyz until it is 200, in order, without repeats.
    let mut answers: Vec<(u16, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some((status, body)) = get(address, "/readyz") {
            let (alive, liveness) = get(address, "/healthz").unwrap();
            assert_eq!(alive, 200, "healthz: {liveness}");
            let body = body.trim().to_string();
            if answers.last() != Some(&(status, body.clone())) {
                answers.push((status, body));
            }
            if status == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline && state.is_running(),
            "readyz never became 200: {answers:?}\n{}",
            harness.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (first_status, first) = &answers[0];
    assert_eq!(*first_status, 503, "{answers:?}");
    assert!(first.starts_with("not ready: "), "{answers:?}");
    assert!(
        answers
            .iter()
            .any(|(status, body)| *status == 503 && body.starts_with("not ready: rebuilding ")),
        "the rebuild of 30 000 records was never seen: {answers:?}"
    );
    assert_eq!(
        answers.last().unwrap(),
        &(
            200,
            format!("ready: {} partitions live", support::PARTITIONS)
        ),
        "{answers:?}"
    );
    assert!(
        harness
            .log_of("orderflow-state-0")
            .lines()
            .any(|line| line.contains("partitions assigned") && line.contains("@0")),
        "the partitions were rebuilt from offset 0"
    );

    // The same state as metrics, with HELP and histogram buckets.
    let metrics = harness
        .wait_for(
            "orderflow_ready 1 and the lag (librdkafka statistics) on /metrics",
            Duration::from_secs(30),
            || async {
                let (_, text) = get(address, "/metrics")?;
                (text.contains("orderflow_ready{consumer=\"orderflow-state\"} 1")
                    && text.contains("orderflow_consumer_lag_records{"))
                .then_some(text)
            },
        )
        .await;
    for needle in [
        "# HELP orderflow_consumer_lag_records ",
        "orderflow_consumer_lag_records{consumer=\"orderflow-state\"",
        "orderflow_assigned_partitions{consumer=\"orderflow-state\"} 3",
        "orderflow_partition_live{consumer=\"orderflow-state\"",
        "# TYPE orderflow_rebalances_total counter",
        "orderflow_timers_scheduled ",
        "# TYPE orderflow_record_latency_seconds histogram",
        "orderflow_record_latency_seconds_bucket{consumer=\"orderflow-state\",le=\"0.1\"}",
    ] {
        assert!(metrics.contains(needle), "{needle} not in:\n{metrics}");
    }
    for line in metrics.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }

    assert!(state.terminate().success());
}

#[test]
fn without_a_broker_healthz_is_up_and_readyz_says_why() {
    let address = free_port();
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow-orders"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDERFLOW_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .env("ORDERFLOW_BROKERS", "127.0.0.1:1")
        .env("ORDERFLOW_DATA_DIR", data.path())
        .env("ORDERFLOW_METRICS_LISTEN", address.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if let Some(answer) = get(address, "/readyz") {
            break answer;
        }
        assert!(Instant::now() < deadline, "the listener never answered");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        answer,
        (503, "not ready: no broker reachable\n".to_string())
    );
    assert_eq!(
        get(address, "/healthz").unwrap(),
        (200, "alive: starting\n".to_string())
    );
    assert_eq!(
        get(address, "/nothing").map(|(status, _)| status),
        Some(404)
    );

    // Still waiting for a broker, it stops at once on SIGTERM.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "it did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_check_says_what_differs_from_the_configuration() {
    let harness = Harness::new("topics");
    let check = |extra: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow"));
        command
            .args(["topics", "check"])
            .env("ORDERFLOW_BROKERS", &harness.brokers)
            .env("ORDERFLOW_TOPIC_PREFIX", &harness.prefix)
            .env("ORDERFLOW_PARTITIONS", support::PARTITIONS.to_string())
            .env_remove("ORDERFLOW_CONFIG");
        command.envs(extra.iter().copied());
        command.output().unwrap()
    };
    let same = check(&[]);
    let stdout = String::from_utf8_lossy(&same.stdout);
    assert!(
        same.status.success() && stdout.contains("topics as configured"),
        "{stdout}{}",
        String::from_utf8_lossy(&same.stderr)
    );

    let differs = check(&[
        ("ORDERFLOW_PARTITIONS", "4"),
        ("ORDERFLOW_RETENTION_MS", "86400000"),
    ]);
    let stdout = String::from_utf8_lossy(&differs.stdout);
    assert_eq!(differs.status.code(), Some(1), "{stdout}");
    let in_orders = harness.topic("in.orders");
    assert!(
        stdout.contains(&format!(
            "{in_orders}: has 3 partitions, the configuration says 4"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{in_orders}: has retention.ms=604800000, the configuration says 86400000"
        )),
        "{stdout}"
    );
    // The log and the exception history are kept forever whatever retention-ms says.
    assert!(
        !stdout.contains(&format!("{}: has retention", harness.topic("order-events"))),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&format!("{}: has retention", harness.topic("exceptions"))),
        "{stdout}"
    );
}
