//! The operator CLI where it needs no broker: configuration errors, the clock it reports at,
//! and `replay --verify` of a store with nothing to compare. The broker address points at a
//! closed port, so a command that tried to reach Kafka would fail instead of passing. And
//! `orderflow tail` on the real broker.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Output};

use orderflow_store::{Retention, SledStore, StateStore};

const PREFIX: &str = "clitest.";

fn orderflow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    command
        .args(args)
        .env("ORDERFLOW_BROKERS", "127.0.0.1:1")
        .env("ORDERFLOW_TOPIC_PREFIX", PREFIX)
        .env_remove("ORDERFLOW_CONFIG")
        .env_remove("ORDERFLOW_CLOCK_FILE")
        .env_remove("ORDERFLOW_DISPLAY_TIME_ZONE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_unknown_display_zone_is_a_usage_error_naming_the_key() {
    let output = orderflow(&["status"], &[("ORDERFLOW_DISPLAY_TIME_ZONE", "Mars/Base")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr).trim_end(),
        "error: configuration: display.time-zone: \"Mars/Base\" is not an IANA time zone \
         (e.g. Asia/Shanghai)"
    );
}

#[test]
fn the_exception_report_takes_its_time_from_the_clock_file() {
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("now");
    std::fs::write(&clock, "half past ten").unwrap();
    // Without --now the report reads the state consumer's clock, before it reads any topic.
    let output = orderflow(
        &["exceptions"],
        &[("ORDERFLOW_CLOCK_FILE", clock.to_str().unwrap())],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("timers.clock-file") && stderr.contains("half past ten"),
        "{stderr}"
    );
}

#[test]
fn verify_of_a_state_store_that_folded_nothing_has_nothing_to_compare() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("orderflow-state-0");
    // What a state consumer leaves when it stops before the first event reached it.
    SledStore::open(&store)
        .unwrap()
        .bind(&format!("{PREFIX}order-events"), Retention::default())
        .unwrap();
    let store_arg = store.to_str().unwrap();

    let output = orderflow(&["replay", "--verify", "--store", store_arg], &[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("verify: OK, nothing to compare") && stdout.contains("0 partitions"),
        "{stdout}"
    );

    let missing = dir.path().join("orderflow-state-9");
    let output = orderflow(
        &["replay", "--verify", "--store", missing.to_str().unwrap()],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(!missing.exists(), "verify made a store at a mistyped path");
}

/// Runs `args` with stdin from `input` and the broker at the closed port, each command in its
/// own thread (they wait for the broker at the same time); returns the outputs and how long
/// the slowest took.
fn with_no_broker(commands: &[&[&str]], env: &[(&str, &str)]) -> Vec<(String, Output)> {
    std::thread::scope(|scope| {
        let running: Vec<_> = commands
            .iter()
            .map(|args| {
                scope.spawn(move || {
                    let started = std::time::Instant::now();
                    let output = orderflow(args, env);
                    (args.join(" "), output, started.elapsed())
                })
            })
            .collect();
        running
            .into_iter()
            .map(|thread| {
                let (command, output, took) = thread.join().unwrap();
                assert!(
                    took < std::time::Duration::from_secs(12),
                    "{command} took {took:?}: {}",
                    text(&output.stderr)
                );
                (command, output)
            })
            .collect()
    })
}

#[test]
fn a_broker_that_does_not_answer_is_one_line_naming_it_within_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let feed = dir.path().join("feed.jsonl");
    std::fs::write(
        &feed,
        r#"{"topic":"in.orders","key":"k","value":{"kind":"x"}}"#,
    )
    .unwrap();
    let commands: &[&[&str]] = &[
        &["status"],
        &["inspect", "tmall:1001"],
        &["exceptions", "--now", "2026-11-25T00:00:00Z"],
        &["topics", "check"],
        &["topics", "create"],
        &["replay"],
        &["report", "--format", "json"],
        &["feed", feed.to_str().unwrap()],
    ];
    // (the default, 10 s, is for people; a test need not wait that long)
    for (command, output) in with_no_broker(commands, &[("ORDERFLOW_CONNECT_TIMEOUT_SECS", "4")]) {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("error: no Kafka broker answered at 127.0.0.1:1 within 4 s")
                && stderr.contains("ORDERFLOW_BROKERS"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn the_connect_timeout_is_ten_seconds_unless_configured() {
    let [(_, output)]: [(String, Output); 1] =
        with_no_broker(&[&["status"]], &[]).try_into().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("within 10 s (kafka.connect-timeout-secs)"),
        "{stderr}"
    );
    for value in ["soon", "0"] {
        let bad = orderflow(&["status"], &[("ORDERFLOW_CONNECT_TIMEOUT_SECS", value)]);
        assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
        assert!(text(&bad.stderr).contains("kafka.connect-timeout-secs"));
    }
}

#[test]
fn output_to_a_closed_pipe_ends_quietly_and_successfully() {
    // `orderflow metrics | head -0`: the reader is gone before the first line is written.
    for args in [&["metrics"][..], &["config", "show"][..]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .args(args)
            .env("ORDERFLOW_BROKERS", "127.0.0.1:1")
            .env_remove("ORDERFLOW_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// `orderflow tail`: the log as JSON lines, one per event with its record's partition and
/// offset, from a protobuf record of two events and a JSON-era record alike; personal data
/// masked unless `--unmasked`; `--limit` and `--partition` narrow it; from the end without
/// `--follow` there is nothing to print.
#[tokio::test(flavor = "multi_thread")]
async fn tail_prints_every_event_of_the_log_as_a_json_line() {
    use orderflow_runtime::kafka::Topics;
    use orderflow_schema::headers::LOG_CONTENT_TYPE;
    use orderflow_schema::{decode, InputTopic, Provenance};
    use support::{input, Harness};

    let harness = Harness::new("tail");
    let fact = |topic: InputTopic, document: serde_json::Value| {
        let provenance = Provenance {
            topic: harness.topic(topic.name()),
            partition: 0,
            offset: 7,
        };
        decode(topic, &provenance, None, document.to_string().as_bytes()).unwrap()
    };
    let placed = fact(InputTopic::Orders, input::placed("jd", "T1", 9_900));
    let paid = fact(
        InputTopic::Payments,
        input::paid("jd", "T1", "PAY-T1", 9_900),
    );
    let record = orderflow_runtime::state::log_record(
        &Topics::new(&harness.prefix),
        &[placed.clone(), paid.clone()],
    )
    .unwrap();
    let (t1_partition, t1_offset) = harness
        .produce_with(
            "order-events",
            "jd:T1",
            &record.payload,
            Some(LOG_CONTENT_TYPE),
        )
        .await;
    let old = fact(InputTopic::Orders, input::placed("web", "T2", 100));
    harness
        .produce_with(
            "order-events",
            "web:T2",
            &serde_json::to_vec(&old).unwrap(),
            None,
        )
        .await;

    let tail = |args: &[&str]| -> Vec<serde_json::Value> {
        let output = harness.cli(&[&["tail"], args].concat());
        let stdout = text(&output.stdout);
        assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let lines = tail(&["--from-beginning"]);
    let ids: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|line| line["event_id"].as_str().unwrap())
        .collect();
    let expected = [&placed, &paid, &old].map(|event| event.event_id.as_str());
    assert_eq!(ids, expected.into_iter().collect(), "{lines:?}");
    for line in lines.iter().filter(|line| line["key"] == "jd:T1") {
        assert_eq!(line["partition"], t1_partition);
        assert_eq!(line["offset"], t1_offset);
    }
    let masked = serde_json::to_string(&lines).unwrap();
    assert!(
        !masked.contains("13800138000") && masked.contains("order_placed"),
        "{masked}"
    );
    let unmasked = serde_json::to_string(&tail(&["--from-beginning", "--unmasked"])).unwrap();
    assert!(unmasked.contains("13800138000"), "{unmasked}");

    assert_eq!(tail(&["--from-beginning", "--limit", "2"]).len(), 2);
    let partition = t1_partition.to_string();
    let one_partition = tail(&["--from-beginning", "--partition", &partition]);
    assert!(one_partition.len() >= 2, "{one_partition:?}");
    assert!(one_partition
        .iter()
        .all(|line| line["partition"] == t1_partition));
    assert_eq!(tail(&[]), Vec::<serde_json::Value>::new());
}
