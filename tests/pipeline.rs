//! The pipeline end to end on a real broker: real binaries, a unique topic prefix per test.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_domain::{ApprovalOutcome, ExceptionAction, ExceptionKind, Level, Owner, Status};
use serde_json::json;
use support::{input, Harness};

const CHANNELS: [&str; 6] = ["tmall", "jd", "douyin", "web", "miniapp", "store"];

#[tokio::test(flavor = "multi_thread")]
async fn journey_per_channel_ends_completed_and_inspect_shows_every_step() {
    let harness = Harness::new("journey");
    let _pipeline = harness.start_pipeline();
    for channel in CHANNELS {
        let order = format!("J-{channel}");
        harness
            .produce_json("in.orders", &input::placed(channel, &order, 12_800))
            .await;
        harness
            .produce_json(
                "in.payments",
                &input::paid(channel, &order, &format!("PAY-{channel}"), 12_800),
            )
            .await;
    }
    // The warehouse ships what it was sent: every order is routed before its parcel leaves.
    let order_ids: Vec<String> = CHANNELS.iter().map(|c| format!("{c}:J-{c}")).collect();
    let routed: Vec<(&str, Status)> = order_ids
        .iter()
        .map(|order_id| (order_id.as_str(), Status::Routed))
        .collect();
    harness.wait_for_statuses(&routed).await;
    for channel in CHANNELS {
        let order = format!("J-{channel}");
        harness
            .produce_json("in.shipments", &input::dispatched(channel, &order))
            .await;
        harness
            .produce_json("in.shipments", &input::delivered(channel, &order))
            .await;
        harness
            .produce_json("in.orders", &input::completed(channel, &order))
            .await;
    }
    // `completed` can be reached before the payment is folded (the intakes run independently),
    // so wait for the whole journey, not the status alone.
    let states = harness
        .wait_for("every journey folded", Duration::from_secs(90), || async {
            let states = harness.order_states().await;
            order_ids
                .iter()
                .all(|order_id| {
                    states
                        .get(order_id)
                        .is_some_and(|s| s.status == Status::Completed && s.facts == 5)
                })
                .then_some(states)
        })
        .await;
    for order_id in &order_ids {
        let state = &states[order_id];
        assert_eq!(state.paid_fen, 12_800);
        assert_eq!(
            state.facts, 5,
            "placed, paid, dispatched, delivered, completed: {state:?}"
        );
        assert_eq!(
            state.approval.as_ref().map(|a| a.outcome),
            Some(ApprovalOutcome::AutoApproved)
        );
        assert_eq!(state.open_exceptions, []);
    }

    let inspected = harness.cli(&["inspect", "douyin:J-douyin"]);
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let text = String::from_utf8(inspected.stdout).unwrap();
    for step in [
        "order_placed",
        "payment_captured",
        "order_screened",
        "order_auto_approved",
        "order_routed",
        "shipment_dispatched",
        "shipment_delivered",
        "order_completed",
    ] {
        assert!(text.contains(step), "inspect lacks {step}:\n{text}");
    }
    assert!(text.contains("\"status\": \"completed\""), "{text}");
    assert!(
        text.contains("138****8000"),
        "phone masked in the timeline:\n{text}"
    );
    assert!(
        !text.contains("13800138000"),
        "phone must not appear unmasked:\n{text}"
    );

    // An order the log doesn't know: the command worked, the answer is "not there" (exit 1,
    // not the usage exit 2).
    let unknown = harness.cli(&["inspect", "douyin:J-NEVER-PLACED"]);
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("order douyin:J-NEVER-PLACED has no events in the log"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_callback_delivered_three_times_counts_once() {
    let harness = Harness::new("dup");
    let _pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("jd", "D1", 9_900))
        .await;
    for _ in 0..3 {
        harness
            .produce_json("in.payments", &input::paid("jd", "D1", "PAY-D1", 9_900))
            .await;
    }
    let states = harness
        .wait_for_statuses(&[("jd:D1", Status::Routed)])
        .await;
    assert_eq!(states["jd:D1"].paid_fen, 9_900);
    assert_eq!(states["jd:D1"].facts, 2, "placed, one payment");

    let payments_in_log = harness
        .read("order-events")
        .await
        .iter()
        .flat_map(|record| record.log_events())
        .filter(|event| event.body.kind() == "payment_captured")
        .count();
    assert_eq!(
        payments_in_log, 1,
        "the intake dedupes the retried callback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shipment_before_its_payment_loses_nothing() {
    let harness = Harness::new("ooo");
    let _pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("web", "W1", 5_000))
        .await;
    harness
        .produce_json("in.shipments", &input::dispatched("web", "W1"))
        .await;
    harness
        .wait_for(
            "shipped_before_paid raised",
            Duration::from_secs(60),
            || async {
                let exceptions = harness.read("exceptions").await;
                exceptions
                    .iter()
                    .any(|r| r.exception_change().exception.code == "shipped_before_paid")
                    .then_some(())
            },
        )
        .await;
    harness
        .produce_json("in.payments", &input::paid("web", "W1", "PAY-W1", 5_000))
        .await;
    harness
        .produce_json("in.shipments", &input::delivered("web", "W1"))
        .await;

    let states = harness
        .wait_for(
            "W1 delivered with no open exception",
            Duration::from_secs(60),
            || async {
                let states = harness.order_states().await;
                let state = states.get("web:W1")?;
                (state.status == Status::Delivered && state.open_exceptions.is_empty())
                    .then_some(states)
            },
        )
        .await;
    let state = &states["web:W1"];
    assert_eq!(state.paid_fen, 5_000);
    assert_eq!(state.shipments.len(), 1);
    assert!(
        state.shipments[0].dispatched_at.is_some(),
        "the early dispatch is kept: {state:?}"
    );
    let actions: Vec<ExceptionAction> = harness
        .read("exceptions")
        .await
        .iter()
        .map(|r| r.exception_change().action)
        .collect();
    assert_eq!(
        actions,
        [ExceptionAction::Raised, ExceptionAction::Resolved]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn illegal_transitions_and_amount_mismatch_raise_exceptions_and_the_consumer_goes_on() {
    let harness = Harness::new("exc");
    let mut pipeline = harness.start_pipeline();
    // Delivered after cancel.
    harness
        .produce_json("in.orders", &input::placed("tmall", "X1", 3_000))
        .await;
    harness
        .produce_json("in.orders", &input::cancelled("tmall", "X1"))
        .await;
    harness
        .produce_json("in.shipments", &input::delivered("tmall", "X1"))
        .await;
    // Paid less than the total.
    harness
        .produce_json("in.orders", &input::placed("douyin", "X2", 8_000))
        .await;
    harness
        .produce_json("in.payments", &input::paid("douyin", "X2", "PAY-X2", 7_000))
        .await;
    // And an ordinary order afterwards still flows.
    harness
        .produce_json("in.orders", &input::placed("web", "X3", 1_000))
        .await;
    harness
        .produce_json("in.payments", &input::paid("web", "X3", "PAY-X3", 1_000))
        .await;

    let states = harness
        .wait_for_statuses(&[
            ("douyin:X2", Status::OnHold),
            ("web:X3", Status::Routed),
            ("tmall:X1", Status::Delivered),
        ])
        .await;
    let codes = |order: &str| -> Vec<&str> {
        states[order]
            .open_exceptions
            .iter()
            .map(|e| e.code.as_str())
            .collect()
    };
    assert_eq!(
        codes("tmall:X1"),
        ["shipped_after_cancel", "delivered_after_cancel"]
    );
    assert_eq!(codes("douyin:X2"), ["paid_amount_differs"]);

    let exceptions = harness
        .wait_for("exceptions published", Duration::from_secs(30), || async {
            let records = harness.read("exceptions").await;
            let has = |code: &str| {
                records
                    .iter()
                    .any(|r| r.exception_change().exception.code == code)
            };
            (has("delivered_after_cancel") && has("paid_amount_differs")).then_some(records)
        })
        .await;
    let by_code: BTreeMap<String, (ExceptionKind, Owner, Level)> = exceptions
        .iter()
        .map(|r| {
            let exception = r.exception_change().exception;
            (
                exception.code,
                (exception.kind, exception.owner, exception.level),
            )
        })
        .collect();
    assert_eq!(
        by_code["delivered_after_cancel"],
        (
            ExceptionKind::IllegalTransition,
            Owner::Operations,
            Level::L1
        )
    );
    assert_eq!(
        by_code["paid_amount_differs"],
        (ExceptionKind::AmountMismatch, Owner::Finance, Level::L1)
    );
    assert!(
        exceptions
            .iter()
            .all(|r| r.key.as_deref().is_some_and(|k| k.contains(':'))),
        "keyed by order id"
    );
    for process in &mut pipeline {
        assert!(process.is_running(), "{} died", process.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_records_go_to_the_dlq_with_reason_and_provenance() {
    let harness = Harness::new("dlq");
    let mut pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("tmall", "OK1", 2_000))
        .await;
    let mut wrong_type = input::placed("tmall", "BAD2", 2_000);
    wrong_type["lines"][0]["qty"] = json!("two");
    let mut unknown_channel = input::placed("amazon", "BAD3", 2_000);
    unknown_channel["channel"] = json!("amazon");
    let mut negative = input::paid("tmall", "OK1", "PAY-NEG", 2_000);
    negative["amount_fen"] = json!(-500);
    let bad: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "in.orders",
            b"{not json".to_vec(),
            "malformed_json",
            "not valid JSON",
        ),
        (
            "in.orders",
            wrong_type.to_string().into_bytes(),
            "invalid_field",
            "lines[0].qty must be an integer of at least 1, got a string",
        ),
        (
            "in.orders",
            unknown_channel.to_string().into_bytes(),
            "invalid_field",
            "channel must be one of tmall, jd, douyin, web, miniapp, store",
        ),
        (
            "in.payments",
            negative.to_string().into_bytes(),
            "invalid_field",
            "amount_fen must be an integer of at least 1, got a negative integer",
        ),
        // (A record on the log the state consumer can't read stops its partition instead:
        // tests/evolution.rs.)
    ];
    let mut sent = Vec::new();
    for (topic, payload, _, _) in &bad {
        sent.push(harness.produce_with(topic, "k", payload, None).await);
    }
    harness
        .produce_json(
            "in.payments",
            &input::paid("tmall", "OK1", "PAY-OK1", 2_000),
        )
        .await;

    harness
        .wait_for_statuses(&[("tmall:OK1", Status::Routed)])
        .await;
    let letters = harness
        .wait_for("4 dead letters", Duration::from_secs(30), || async {
            let records = harness.read("dlq").await;
            (records.len() >= bad.len()).then_some(records)
        })
        .await;
    assert_eq!(letters.len(), bad.len());
    for ((topic, payload, class, reason), (partition, offset)) in bad.iter().zip(&sent) {
        let letter = letters
            .iter()
            .find(|l| l.payload == *payload)
            .unwrap_or_else(|| panic!("no dead letter for {reason}"));
        assert_eq!(
            letter.headers["__connect.errors.topic"],
            harness.topic(topic)
        );
        assert_eq!(
            letter.headers["__connect.errors.partition"],
            partition.to_string()
        );
        assert_eq!(
            letter.headers["__connect.errors.offset"],
            offset.to_string()
        );
        assert_eq!(
            letter.headers["__connect.errors.exception.class.name"],
            *class
        );
        assert!(
            letter.headers["__connect.errors.exception.message"].contains(reason),
            "{:?}",
            letter.headers
        );
        assert_eq!(letter.key.as_deref(), Some("k"), "the original key");
        assert_eq!(letter.headers["__orderflow.errors.original.key"], "k");
    }
    for process in &mut pipeline {
        assert!(process.is_running(), "{} died", process.name);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_input_is_accepted_like_json() {
    use prost::Message as _;
    let harness = Harness::new("proto");
    let _pipeline = harness.start_pipeline();
    let placed = orderflow_schema::v1::InputEvent {
        schema_version: 1,
        channel: "miniapp".into(),
        platform_order_id: "P1".into(),
        occurred_at: "2026-11-25T10:00:00+08:00".into(),
        kind: Some(orderflow_schema::v1::input_event::Kind::OrderPlaced(
            orderflow_schema::v1::OrderPlaced {
                buyer_id: "b1".into(),
                phone: "13900139000".into(),
                address: Some(orderflow_schema::v1::Address {
                    province: "广东省".into(),
                    city: "深圳市".into(),
                    district: "南山区".into(),
                    detail: "科技园 2 栋".into(),
                }),
                lines: vec![orderflow_schema::v1::OrderLine {
                    sku: "S".into(),
                    category: "c".into(),
                    qty: 2,
                    unit_price_fen: 1_500,
                }],
                total_fen: 3_000,
                payment_method: "wechat_pay".into(),
                ..Default::default()
            },
        )),
    };
    harness
        .produce_with(
            "in.orders",
            "P1",
            &placed.encode_to_vec(),
            Some(orderflow_schema::PROTOBUF_CONTENT_TYPE),
        )
        .await;
    let states = harness
        .wait_for(
            "miniapp:P1 on order-state",
            Duration::from_secs(60),
            || async {
                let states = harness.order_states().await;
                states.contains_key("miniapp:P1").then_some(states)
            },
        )
        .await;
    assert_eq!(states["miniapp:P1"].status, Status::PendingPayment);
    assert_eq!(states["miniapp:P1"].total_fen, Some(3_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_a_restart_resumes_without_repeating_effects() {
    let harness = Harness::new("term");
    let mut pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("store", "T1", 700))
        .await;
    harness
        .produce_json("in.payments", &input::paid("store", "T1", "PAY-T1", 700))
        .await;
    harness
        .wait_for_statuses(&[("store:T1", Status::Routed)])
        .await;
    for process in &mut pipeline {
        assert!(
            process.terminate().success(),
            "{} exits cleanly on SIGTERM",
            process.name
        );
    }
    let snapshots_before = harness.read("order-state").await.len();
    let _pipeline = harness.start_pipeline();
    harness
        .produce_json("in.shipments", &input::dispatched("store", "T1"))
        .await;
    harness
        .wait_for_statuses(&[("store:T1", Status::Shipped)])
        .await;
    let snapshots: Vec<u64> = harness
        .read("order-state")
        .await
        .iter()
        .map(|r| r.order_state().version)
        .collect();
    assert_eq!(
        snapshots.len(),
        snapshots_before + 1,
        "only the new fact is published after the restart: {snapshots:?}"
    );
}

#[test]
fn a_bad_config_is_one_plain_sentence_and_a_usage_exit() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[kafka]\nbrokerz = \"x:1\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderflow-state"))
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("unknown field `brokerz`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn operator_argument_errors_are_usage_exits_and_the_metrics_table_needs_no_broker() {
    let orderflow = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .args(args)
            // Nothing listens here: none of these commands may reach for a broker.
            .env("ORDERFLOW_BROKERS", "127.0.0.1:9")
            .output()
            .unwrap()
    };
    for (args, needle) in [
        (&["inspect", "no-channel"][..], "order id: "),
        (&["exceptions", "--now", "yesterday"][..], "--now: "),
        (&["exceptions", "--since", "last week"][..], "--since: "),
    ] {
        let output = orderflow(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
    let metrics = orderflow(&["metrics"]);
    assert!(metrics.status.success());
    assert_eq!(
        String::from_utf8(metrics.stdout).unwrap(),
        orderflow_runtime::telemetry::markdown_table()
    );
}

/// The JSON report of `orderflow simulate --json` that ended with `output`, which must have
/// succeeded (else its output and the consumers' logs are the failure).
fn simulation_report(harness: &Harness, output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        harness.logs_tail()
    );
    serde_json::from_str(&stdout).unwrap()
}

/// A second state consumer joins while a simulation flows, so partitions change hands between
/// batches with facts folded and their snapshots on the way: every fact sent still shows on
/// `order-state` (a snapshot names it) and every order ends where its input says. A snapshot
/// held back across such a hand-over once lost its facts for good (issue 17).
#[tokio::test(flavor = "multi_thread")]
async fn a_state_consumer_joining_mid_flow_leaves_no_fact_unreflected() {
    let harness = Harness::new("join");
    let _pipeline = harness.start_pipeline();
    let mut simulation = harness.cli_spawn(&[
        "simulate",
        "--orders",
        "1500",
        "--seed",
        "11",
        "--tag",
        "J11",
        "--rate",
        "1000",
        "--malformed-share",
        "0",
        "--settle-timeout",
        "180",
        "--json",
    ]);
    let harness_ref = &harness;
    harness
        .wait_for(
            "a hundred orders on order-state",
            Duration::from_secs(120),
            || async move { (harness_ref.order_states().await.len() >= 100).then_some(()) },
        )
        .await;
    assert!(
        simulation.try_wait().unwrap().is_none(),
        "the simulation ended before the second state consumer joined: nothing was handed over mid-flow"
    );
    let _second = harness.spawn("orderflow-state", "1");
    harness
        .wait_for_log_line("orderflow-state-1", &["partitions assigned"])
        .await;
    let output = tokio::task::spawn_blocking(move || simulation.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let report = simulation_report(&harness, &output);
    assert_eq!(report["verdict"]["orders"], 1500, "{report}");
    for count in ["lost", "duplicated", "wrong"] {
        assert_eq!(report["verdict"][count], 0, "{count}: {report}");
    }
    assert_eq!(report["facts_not_reflected"], 0, "{report}");
    assert!(report["facts"].as_u64().unwrap() > 5_000, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_state_consumer_rebuilds_the_partitions_it_is_given() {
    let harness = Harness::new("scale");
    let _intake: Vec<_> = [
        "orderflow-orders",
        "orderflow-payments",
        "orderflow-shipments",
    ]
    .iter()
    .map(|name| harness.spawn(name, "0"))
    .collect();
    let mut first = harness.spawn("orderflow-state", "0");
    let orders: Vec<String> = (0..30).map(|i| format!("S{i:03}")).collect();
    for order in &orders {
        harness
            .produce_json("in.orders", &input::placed("tmall", order, 1_000))
            .await;
        harness
            .produce_json(
                "in.payments",
                &input::paid("tmall", order, &format!("PAY-{order}"), 1_000),
            )
            .await;
    }
    let ids: Vec<String> = orders.iter().map(|o| format!("tmall:{o}")).collect();
    let expect = |status: Status| -> Vec<(&str, Status)> {
        ids.iter().map(|id| (id.as_str(), status)).collect()
    };
    harness.wait_for_statuses(&expect(Status::Routed)).await;

    // A second copy joins: it gets partitions it has no local state for and must rebuild them
    // from the log before it can fold the next facts correctly.
    let mut second = harness.spawn("orderflow-state", "1");
    harness
        .wait_for(
            "the second copy to own partitions",
            Duration::from_secs(60),
            || async {
                let log =
                    std::fs::read_to_string(harness.data_dir().join("logs/orderflow-state-1.log"))
                        .unwrap_or_default();
                log.lines()
                    .any(|line| {
                        line.contains("partitions assigned") && !line.contains("partitions=[]")
                    })
                    .then_some(())
            },
        )
        .await;
    for order in &orders {
        harness
            .produce_json("in.shipments", &input::dispatched("tmall", order))
            .await;
    }
    let states = harness.wait_for_statuses(&expect(Status::Shipped)).await;
    for id in &ids {
        assert_eq!(
            states[id].facts, 3,
            "placed, paid, dispatched: {:?}",
            states[id]
        );
    }

    // The first copy leaves: the second takes everything over.
    assert!(first.terminate().success());
    for order in &orders {
        harness
            .produce_json("in.shipments", &input::delivered("tmall", order))
            .await;
    }
    let states = harness.wait_for_statuses(&expect(Status::Delivered)).await;
    for id in &ids {
        assert_eq!(states[id].facts, 4, "{:?}", states[id]);
        assert_eq!(states[id].paid_fen, 1_000);
    }
    assert!(second.terminate().success());
    harness.assert_replay_verifies("1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_simulation_with_every_kind_of_mess_verifies_with_no_mismatch() {
    let harness = Harness::new("sim");
    let _pipeline = harness.start_pipeline();
    let output = harness.cli(&[
        "simulate",
        "--orders",
        "700",
        "--seed",
        "7",
        "--tag",
        "T7",
        "--rate",
        "2000",
        "--duplicate-share",
        "0.05",
        "--out-of-order-share",
        "0.05",
        "--late-share",
        "0.02",
        "--malformed-share",
        "0.01",
        "--settle-timeout",
        "120",
        "--warmup",
        "0.5",
        "--json",
    ]);
    let report = simulation_report(&harness, &output);
    assert_eq!(report["verdict"]["orders"], 700);
    assert_eq!(report["verdict"]["lost"], 0);
    assert_eq!(report["verdict"]["duplicated"], 0);
    assert_eq!(report["verdict"]["wrong"], 0);
    assert!(report["records_sent"].as_u64().unwrap() > 2_500, "{report}");
    assert!(report["duplicates_sent"].as_u64().unwrap() > 0);
    let malformed = report["malformed_sent"].as_u64().unwrap();
    assert!(malformed > 0);
    assert_eq!(report["dead_letters"].as_u64(), Some(malformed));
    assert_eq!(report["facts_not_reflected"], 0);
    // Every fact is timed once: in the warm-up (the first half second) or after it.
    let (steady, warmup) = (
        report["latency_ms"]["count"].as_u64().unwrap(),
        report["warmup_latency_ms"]["count"].as_u64().unwrap(),
    );
    assert!(steady > 0 && warmup > 0, "{report}");
    assert_eq!(Some(steady + warmup), report["facts"].as_u64());

    // Every fact is found again hop by hop: its input record, its log record, its snapshot.
    let output = harness.cli(&["bench", "hops", "--skip-seconds", "0"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hops: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(hops["facts"], report["facts"], "{hops}");
    assert_eq!(hops["skipped"], 0);
    for hop in ["intake_ms", "state_ms"] {
        assert!(
            hops[hop]["p50"].as_f64().unwrap() <= hops["total_ms"]["p50"].as_f64().unwrap(),
            "{hops}"
        );
    }
}
