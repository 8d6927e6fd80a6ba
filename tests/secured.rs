//! A broker that wants a login over TLS (SASL_SSL with SCRAM-SHA-512, a CA of its own), as a
//! managed Kafka does: the right settings connect; a wrong password or a certificate the client
//! doesn't trust ends a binary within seconds, with one line on stderr and the configuration
//! exit status (2), instead of librdkafka retrying and logging forever.
//!
//! The broker is the test run's when it is a secured one (scripts/test.sh's SASL_SSL pass sets
//! `ORDERFLOW_BROKERS` and the `ORDERFLOW_KAFKA_*` client settings), else the local one that
//! `scripts/kafka-sasl.sh ensure` starts once. The journeys and the crash test run on it in that
//! pass too (tests/pipeline.rs, tests/crash.rs).

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The secured broker: its address and the client settings (`NAME=value` environment lines).
fn secured_broker() -> (String, Vec<(String, String)>) {
    let from_run = std::env::var("ORDERFLOW_KAFKA_CLIENT__SECURITY_PROTOCOL")
        .is_ok_and(|protocol| protocol.eq_ignore_ascii_case("SASL_SSL"));
    if from_run {
        let settings = std::env::vars()
            .filter(|(name, _)| name.starts_with("ORDERFLOW_KAFKA_"))
            .collect();
        return (std::env::var("ORDERFLOW_BROKERS").unwrap(), settings);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("scripts/kafka-sasl.sh"))
        .arg("ensure")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/kafka-sasl.sh ensure runs");
    assert!(
        output.status.success(),
        "scripts/kafka-sasl.sh ensure failed"
    );
    let brokers = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let env = std::fs::read_to_string(root.join(".tools/kafka-sasl-run/client.env")).unwrap();
    let settings = env
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    (brokers, settings)
}

/// Runs `binary` with the broker's settings, `change` applied to them, until it exits or
/// `limit` passes (then it is killed and the test fails).
fn run(
    binary: &str,
    args: &[&str],
    change: impl FnOnce(&mut Vec<(String, String)>),
    limit: Duration,
) -> (Output, Duration) {
    let (brokers, mut settings) = secured_broker();
    change(&mut settings);
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars() {
        if name.starts_with("ORDERFLOW_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("ORDERFLOW_BROKERS", brokers)
        .env(
            "ORDERFLOW_TOPIC_PREFIX",
            format!("t.secured.{}.", std::process::id()),
        )
        .env("ORDERFLOW_DATA_DIR", data.path())
        .env("RUST_LOG", "info")
        .envs(settings)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{binary} {args:?} still ran after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn set(settings: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    settings.retain(|(existing, _)| existing != name);
    if let Some(value) = value {
        settings.push((name.to_string(), value.to_string()));
    }
}

/// The one line a refused binary prints, after checking that it is the only one and that the
/// binary stopped in time with the configuration exit status.
fn one_error_line(output: &Output, took: Duration) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status; stderr:\n{stderr}"
    );
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{stderr}");
    assert!(
        took < Duration::from_secs(15),
        "took {took:?} to give up; stderr:\n{stderr}"
    );
    lines[0].to_string()
}

const BINARIES: [&str; 3] = [
    env!("CARGO_BIN_EXE_orderflow"),
    env!("CARGO_BIN_EXE_orderflow-state"),
    env!("CARGO_BIN_EXE_orderflow-payments"),
];

fn args_of(binary: &str) -> &'static [&'static str] {
    if binary.ends_with("/orderflow") {
        &["topics", "create"]
    } else {
        &[]
    }
}

#[test]
fn the_right_login_creates_the_topics_and_config_show_hides_the_password() {
    let (created, _) = run(
        env!("CARGO_BIN_EXE_orderflow"),
        &["topics", "create"],
        |_| {},
        Duration::from_secs(90),
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        created.status.success() && stdout.contains("topics ready"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let (_, settings) = secured_broker();
    let password_file = settings
        .iter()
        .find(|(name, _)| name == "ORDERFLOW_KAFKA_SASL_PASSWORD_FILE")
        .map(|(_, path)| path.clone())
        .expect("the broker's settings name a password file");
    let password = std::fs::read_to_string(password_file).unwrap();
    let (shown, _) = run(
        env!("CARGO_BIN_EXE_orderflow"),
        &["config", "show"],
        |_| {},
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text}");
    assert!(
        text.contains("\"sasl.password\" = \"<redacted>\""),
        "config show:\n{text}"
    );
    assert!(
        text.contains("\"security.protocol\" = \"SASL_SSL\""),
        "{text}"
    );
    assert!(
        !text.contains(password.trim()),
        "the password is shown:\n{text}"
    );
}

#[test]
fn a_wrong_password_is_one_line_and_exit_2_within_seconds() {
    for binary in BINARIES {
        let (output, took) = run(
            binary,
            args_of(binary),
            |settings| {
                set(settings, "ORDERFLOW_KAFKA_SASL_PASSWORD_FILE", None);
                set(
                    settings,
                    "ORDERFLOW_KAFKA_CLIENT__SASL_PASSWORD",
                    Some("not-the-password"),
                );
            },
            Duration::from_secs(60),
        );
        let line = one_error_line(&output, took);
        assert!(
            line.starts_with("error: kafka at ") && line.contains("refused the login"),
            "{binary}: {line}"
        );
        assert!(!line.contains("not-the-password"), "{line}");
    }
}

#[test]
fn an_untrusted_certificate_is_one_line_and_exit_2_within_seconds() {
    // Without the broker's CA the client has only the default trust store, which doesn't hold it.
    for binary in BINARIES {
        let (output, took) = run(
            binary,
            args_of(binary),
            |settings| set(settings, "ORDERFLOW_KAFKA_CLIENT__SSL_CA_LOCATION", None),
            Duration::from_secs(60),
        );
        let line = one_error_line(&output, took);
        assert!(
            line.starts_with("error: kafka at ")
                && line.contains("TLS connection failed")
                && line.contains("certificate verify failed"),
            "{binary}: {line}"
        );
    }
}
