//! The operator CLI where it needs no broker: configuration errors, the clock it reports at,
//! and `replay --verify` of a store with nothing to compare. The broker address points at a
//! closed port, so a command that tried to reach Kafka would fail instead of passing.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use orderflow_store::{SledStore, StateStore};

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
        .bind(&format!("{PREFIX}order-events"))
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
