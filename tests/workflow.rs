//! The exception workflow end to end (issue 5) on a real broker with the real binaries:
//! screening at intake, checks across orders, stock and the out-of-stock choice, warehouse
//! routing, operator actions, timers on an injected clock, rules reloads, and replay.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use orderflow_domain::{
    ApprovalOutcome, ExceptionAction, ExceptionKind, Level, Notification, OrderSnapshot, Owner,
    Status,
};
use serde_json::{json, Value};
use support::{input, Harness};

const RULES_V1: &str = r#"
version = "test-v1"
auto-approve-below-fen = 50000
[duplicate]
window-secs = 600
[phone]
blacklist = ["13700000000"]
"#;

fn placed_with(
    channel: &str,
    order: &str,
    total_fen: u64,
    change: impl FnOnce(&mut Value),
) -> Value {
    let mut document = input::placed(channel, order, total_fen);
    change(&mut document);
    document
}

fn open_kinds(state: &OrderSnapshot) -> Vec<(ExceptionKind, Owner, Level)> {
    state
        .open_exceptions
        .iter()
        .map(|e| (e.kind, e.owner, e.level))
        .collect()
}

/// Distinct events of `kind` on `order` in the log. A decision taken again after a crash, before
/// its first copy was read back, is a second record with the same id that the fold drops; what
/// counts is how many different decisions there are.
fn kinds(records: &[support::Record], kind: &str, order: &str) -> usize {
    records
        .iter()
        .flat_map(|r| r.log_events())
        .filter(|event| event.body.kind() == kind && event.key.to_string() == order)
        .map(|event| event.event_id)
        .collect::<BTreeSet<_>>()
        .len()
}

fn notifications(records: &[support::Record]) -> Vec<Notification> {
    records.iter().map(|r| r.notification()).collect()
}

async fn log_records(harness: &Harness) -> Vec<support::Record> {
    harness.read("order-events").await
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_threshold_screening_duplicates_operator_actions_and_rules_reloads() {
    let harness = Harness::new("seed");
    harness.write_rules(RULES_V1);
    let _pipeline = harness.start_pipeline();
    let send = |channel: &'static str, order: &'static str, document: Value| {
        let harness = &harness;
        async move {
            harness.produce_json("in.orders", &document).await;
            let total = document["total_fen"].as_u64().unwrap();
            harness
                .produce_json(
                    "in.payments",
                    &input::paid(channel, order, &format!("PAY-{order}"), total),
                )
                .await;
        }
    };
    send("tmall", "T499", input::placed("tmall", "T499", 49_900)).await;
    send("tmall", "T501", input::placed("tmall", "T501", 50_100)).await;
    send(
        "jd",
        "BLACK",
        placed_with("jd", "BLACK", 1_000, |d| d["phone"] = json!("13700000000")),
    )
    .await;
    send(
        "jd",
        "BADPHONE",
        placed_with("jd", "BADPHONE", 1_000, |d| {
            d["phone"] = json!("021-5555666")
        }),
    )
    .await;
    send(
        "web",
        "NODISTRICT",
        placed_with("web", "NODISTRICT", 1_000, |d| {
            d["address"]["district"] = json!("")
        }),
    )
    .await;
    // The seed's double submission: the same buyer sends the same basket twice.
    let same_buyer = |d: &mut Value| d["buyer_id"] = json!("buyer-double");
    send(
        "miniapp",
        "DUP1",
        placed_with("miniapp", "DUP1", 2_000, same_buyer),
    )
    .await;
    send(
        "miniapp",
        "DUP2",
        placed_with("miniapp", "DUP2", 2_000, same_buyer),
    )
    .await;

    let states = harness
        .wait_for_statuses(&[
            ("tmall:T499", Status::Routed),
            ("tmall:T501", Status::UnderReview),
            ("jd:BLACK", Status::OnHold),
            ("jd:BADPHONE", Status::OnHold),
            ("web:NODISTRICT", Status::OnHold),
        ])
        .await;
    let outcome = |order: &str| states[order].approval.as_ref().map(|a| a.outcome);
    assert_eq!(outcome("tmall:T499"), Some(ApprovalOutcome::AutoApproved));
    assert_eq!(outcome("tmall:T501"), Some(ApprovalOutcome::ManualReview));
    assert_eq!(
        states["tmall:T501"]
            .approval
            .as_ref()
            .map(|a| a.rule.rule_version.as_str()),
        Some("test-v1")
    );
    let own = |order: &str| open_kinds(&states[order]);
    assert_eq!(
        own("jd:BLACK"),
        [(ExceptionKind::BlacklistedPhone, Owner::Risk, Level::L2)]
    );
    assert_eq!(
        own("jd:BADPHONE"),
        [(
            ExceptionKind::InvalidPhone,
            Owner::CustomerService,
            Level::L1
        )]
    );
    assert_eq!(
        own("web:NODISTRICT"),
        [(
            ExceptionKind::InvalidAddress,
            Owner::CustomerService,
            Level::L1
        )]
    );
    let duplicates = harness
        .wait_for(
            "one of the double submission flagged",
            Duration::from_secs(60),
            || async {
                let states = harness.order_states().await;
                let statuses: BTreeSet<Status> = ["miniapp:DUP1", "miniapp:DUP2"]
                    .iter()
                    .filter_map(|o| states.get(*o).map(|s| s.status))
                    .collect();
                (statuses == BTreeSet::from([Status::OnHold, Status::Routed])).then_some(states)
            },
        )
        .await;
    let flagged = if duplicates["miniapp:DUP1"].status == Status::OnHold {
        "miniapp:DUP1"
    } else {
        "miniapp:DUP2"
    };
    assert_eq!(
        open_kinds(&duplicates[flagged]),
        [(
            ExceptionKind::DuplicateOrder,
            Owner::CustomerService,
            Level::L1
        )]
    );

    // Operators act: approve the 501 order, fix and resolve the address with a note.
    let exception_id = states["web:NODISTRICT"].open_exceptions[0]
        .exception_id
        .to_string();
    harness
        .act(
            "review_approved",
            "tmall",
            "T501",
            "act-1",
            "operator",
            json!({"note": "called the buyer"}),
        )
        .await;
    harness
        .act(
            "exception_resolved",
            "web",
            "NODISTRICT",
            "act-2",
            "operator",
            json!({"exception_id": exception_id, "note": "district is 西湖区"}),
        )
        .await;
    harness
        .wait_for_statuses(&[
            ("tmall:T501", Status::Routed),
            ("web:NODISTRICT", Status::Routed),
        ])
        .await;
    // Approving an order nobody asked to review changes nothing and stays in the trail.
    harness
        .act(
            "review_approved",
            "tmall",
            "T499",
            "act-0",
            "operator",
            json!({}),
        )
        .await;
    harness
        .wait_for(
            "the stray approval in the trail",
            Duration::from_secs(60),
            || async {
                let text =
                    String::from_utf8(harness.cli(&["inspect", "tmall:T499"]).stdout).unwrap();
                text.contains("(did not apply: the order is not waiting for a review)")
                    .then_some(())
            },
        )
        .await;
    let inspected = harness.cli(&["inspect", "tmall:T501"]);
    let text = String::from_utf8(inspected.stdout).unwrap();
    for needle in [
        "review_approved",
        "ops-wang (operator): called the buyer",
        "rule test-v1",
        "order_routed",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
    let resolved: Vec<_> = harness
        .read("exceptions")
        .await
        .iter()
        .map(|r| r.exception_change())
        .filter(|c| {
            c.action == ExceptionAction::Resolved && c.order_id.to_string() == "web:NODISTRICT"
        })
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(
        resolved[0]
            .exception
            .resolution
            .as_ref()
            .and_then(|r| r.actor.as_ref())
            .map(|actor| actor.id.as_str()),
        Some("ops-wang")
    );

    // A bad rules file is refused; the rules in force keep deciding.
    harness.write_rules(
        &RULES_V1
            .replace("test-v1", "test-v2")
            .replace("50000", "\"lots\""),
    );
    harness
        .wait_for_log_line(
            "orderflow-state-0",
            &["rules file refused", "auto-approve-below-fen"],
        )
        .await;
    // ¥600 under the rules in force: manual review.
    let decided = |order: &'static str, status: Status| {
        let (send, harness) = (&send, &harness);
        async move {
            send("douyin", order, input::placed("douyin", order, 60_000)).await;
            let key = format!("douyin:{order}");
            let states = harness.wait_for_statuses(&[(key.as_str(), status)]).await;
            let approval = states[&key].approval.clone();
            approval
                .unwrap_or_else(|| panic!("{key} has no approval decision"))
                .rule
                .rule_version
        }
    };
    assert_eq!(decided("AFTERBAD", Status::UnderReview).await, "test-v1");
    // A good one takes over without a restart: ¥600 is now below the threshold.
    harness.write_rules(
        &RULES_V1
            .replace("test-v1", "test-v3")
            .replace("50000", "100000"),
    );
    harness
        .wait_for_log_line("orderflow-state-0", &["rules reloaded", "test-v3"])
        .await;
    assert_eq!(decided("AFTERGOOD", Status::Routed).await, "test-v3");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_submissions_of_a_hundred_baskets_proceed_exactly_a_hundred_times() {
    let harness = Harness::new("dup1000");
    let _pipeline = harness.start_pipeline();
    // Basket b is submitted as (b % 10) + 1 orders... plus re-sends of the same order, so
    // 1 000 submissions in all; every basket has its own buyer.
    let mut submissions = 0;
    let mut orders = Vec::new();
    for basket in 0..100u64 {
        for copy in 0..=(basket % 10) {
            let order = format!("B{basket:03}-{copy}");
            let document = placed_with("web", &order, 1_000 + basket, |d| {
                d["buyer_id"] = json!(format!("buyer-{basket}"))
            });
            orders.push((order, document));
        }
    }
    while submissions < 1_000 {
        let (order, document) = &orders[submissions % orders.len()];
        harness.produce_json("in.orders", document).await;
        if submissions < orders.len() {
            let total = document["total_fen"].as_u64().unwrap();
            harness
                .produce_json(
                    "in.payments",
                    &input::paid("web", order, &format!("P-{order}"), total),
                )
                .await;
        }
        submissions += 1;
    }
    let states = harness
        .wait_for("every order decided", Duration::from_secs(120), || async {
            let states = harness.order_states().await;
            let decided = orders
                .iter()
                .filter(|(order, _)| {
                    states
                        .get(&format!("web:{order}"))
                        .is_some_and(|s| matches!(s.status, Status::Routed | Status::OnHold))
                })
                .count();
            (decided == orders.len()).then_some(states)
        })
        .await;
    let mut per_status: BTreeMap<Status, usize> = BTreeMap::new();
    for (order, _) in &orders {
        *per_status
            .entry(states[&format!("web:{order}")].status)
            .or_default() += 1;
    }
    assert_eq!(
        per_status.get(&Status::Routed),
        Some(&100),
        "{per_status:?}"
    );
    assert_eq!(
        per_status.get(&Status::OnHold),
        Some(&(orders.len() - 100)),
        "{per_status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_unit_goes_to_one_order_the_other_chooses_refund_or_wait() {
    let harness = Harness::new("stock");
    let _pipeline = harness.start_pipeline();
    for sku in ["SKU-R", "SKU-W"] {
        harness
            .produce_json("in.inventory", &input::stock(sku, "WH-CENTRAL", 1, 0))
            .await;
    }
    harness
        .wait_for("stock known", Duration::from_secs(60), || async {
            let log = harness.read("order-events").await;
            (log.iter()
                .flat_map(|r| r.log_events())
                .filter(|event| event.body.kind() == "stock_level_changed")
                .count()
                == 2)
                .then_some(())
        })
        .await;
    let sku = |sku: &'static str| move |d: &mut Value| d["lines"][0]["sku"] = json!(sku);
    for (order, stock) in [
        ("R1", "SKU-R"),
        ("R2", "SKU-R"),
        ("W1", "SKU-W"),
        ("W2", "SKU-W"),
    ] {
        harness
            .produce_json("in.orders", &placed_with("jd", order, 10_000, sku(stock)))
            .await;
        harness
            .produce_json(
                "in.payments",
                &input::paid("jd", order, &format!("P-{order}"), 10_000),
            )
            .await;
    }
    let settled = |a: &'static str, b: &'static str| {
        let harness = &harness;
        async move {
            harness
                .wait_for(
                    "one routed, one on hold",
                    Duration::from_secs(90),
                    || async {
                        let states = harness.order_states().await;
                        let status = |o: &str| states.get(o).map(|s| s.status);
                        match (status(a), status(b)) {
                            (Some(Status::Routed), Some(Status::OnHold)) => Some((a, b, states)),
                            (Some(Status::OnHold), Some(Status::Routed)) => Some((b, a, states)),
                            _ => None,
                        }
                    },
                )
                .await
        }
    };
    let (_, short_r, states) = settled("jd:R1", "jd:R2").await;
    assert_eq!(
        open_kinds(&states[short_r]),
        [(
            ExceptionKind::OutOfStockAtReview,
            Owner::Warehouse,
            Level::L1
        )]
    );
    let (got_w, short_w, _) = settled("jd:W1", "jd:W2").await;
    let notified = notifications(&harness.read("notifications").await);
    for short in [short_r, short_w] {
        assert!(
            notified.iter().any(|n| n.order_id.to_string() == short
                && n.kind == "out_of_stock_choice"
                && n.choices == ["wait", "refund"]),
            "{short} asked to choose: {notified:?}"
        );
    }
    let routing: Vec<_> = harness
        .read("warehouse-routing")
        .await
        .iter()
        .map(|r| r.routing())
        .collect();
    assert_eq!(
        routing.len(),
        2,
        "only the orders with stock are routed: {routing:?}"
    );

    // The customer takes the refund: a refund request and a 10 CNY coupon.
    let platform = |order: &str| order.trim_start_matches("jd:").to_string();
    let choose = |order: &str, action_id: &str, choice: &str| {
        let (order, action_id, choice) =
            (platform(order), action_id.to_string(), choice.to_string());
        let harness = &harness;
        async move {
            let extra = json!({"choice": choice});
            harness
                .act(
                    "customer_choice",
                    "jd",
                    &order,
                    &action_id,
                    "customer",
                    extra,
                )
                .await;
        }
    };
    choose(short_r, "c-1", "refund").await;
    harness
        .wait_for_statuses(&[(short_r, Status::Cancelled)])
        .await;
    let notified = harness
        .wait_for(
            "refund and coupon notified",
            Duration::from_secs(60),
            || async {
                let mine: Vec<Notification> = notifications(&harness.read("notifications").await)
                    .into_iter()
                    .filter(|n| n.order_id.to_string() == short_r)
                    .collect();
                (mine.iter().any(|n| n.kind == "compensation_coupon")).then_some(mine)
            },
        )
        .await;
    assert!(
        notified
            .iter()
            .any(|n| n.kind == "refund_requested" && n.amount_fen == Some(10_000)),
        "{notified:?}"
    );
    assert!(
        notified
            .iter()
            .any(|n| n.kind == "compensation_coupon" && n.amount_fen == Some(1_000)),
        "{notified:?}"
    );
    assert_eq!(
        kinds(&log_records(&harness).await, "refund_requested", short_r),
        1
    );

    // The other customer waits: on hold until stock arrives, then on its way; the WMS takes it.
    choose(short_w, "c-2", "wait").await;
    harness
        .wait_for("the wait recorded", Duration::from_secs(60), || async {
            let log = log_records(&harness).await;
            (kinds(&log, "stock_requested", short_w) == 2).then_some(())
        })
        .await;
    assert_eq!(harness.order_states().await[short_w].status, Status::OnHold);
    harness
        .produce_json("in.inventory", &input::stock("SKU-W", "WH-CENTRAL", 4, 30))
        .await;
    harness
        .wait_for_statuses(&[(short_w, Status::Routed)])
        .await;
    let routing_id = format!("{short_w}@WH-CENTRAL");
    harness
        .produce_json(
            "in.shipments",
            &json!({"kind": "warehouse_accepted", "channel": "jd", "platform_order_id": platform(short_w),
                "occurred_at": "2026-11-25T11:00:00+08:00", "warehouse": "WH-CENTRAL", "routing_id": routing_id}),
        )
        .await;
    harness
        .wait_for_statuses(&[
            (short_w, Status::AcceptedByWarehouse),
            (got_w, Status::Routed),
        ])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timers_fire_once_across_restarts_and_a_replay_fires_none() {
    let harness = Harness::new("timers");
    let mut pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("store", "UNPAID", 5_000))
        .await;
    harness
        .produce_json(
            "in.orders",
            &placed_with("web", "SLA", 5_000, |d| {
                d["address"]["district"] = json!("")
            }),
        )
        .await;
    harness
        .produce_json("in.payments", &input::paid("web", "SLA", "P-SLA", 5_000))
        .await;
    let states = harness
        .wait_for_statuses(&[
            ("store:UNPAID", Status::PendingPayment),
            ("web:SLA", Status::OnHold),
        ])
        .await;
    let raised = states["web:SLA"].open_exceptions[0].level_since;
    let at = |minutes: i64| (raised + chrono::Duration::minutes(minutes)).to_rfc3339();

    // Placed 02:00Z, 30 minutes to pay.
    harness.set_clock("2026-11-25T02:31:00Z");
    harness
        .wait_for_statuses(&[("store:UNPAID", Status::Cancelled)])
        .await;
    // Restart the state consumer mid-way: the schedule is in its store, nothing fires twice.
    let state = pipeline
        .iter_mut()
        .find(|p| p.name == "orderflow-state")
        .unwrap();
    state.kill();
    *state = harness.spawn("orderflow-state", "0");
    harness.set_clock(&at(240).max("2026-11-25T03:00:00Z".into()));
    let level = |level: Level| {
        let harness = &harness;
        async move {
            harness
                .wait_for(
                    &format!("the exception at {level:?}"),
                    Duration::from_secs(60),
                    || async {
                        let states = harness.order_states().await;
                        (states["web:SLA"]
                            .open_exceptions
                            .first()
                            .is_some_and(|e| e.level == level))
                        .then_some(())
                    },
                )
                .await
        }
    };
    level(Level::L2).await;
    harness.set_clock(&at(240 + 480));
    level(Level::L3).await;
    let escalations: Vec<_> = harness
        .read("exceptions")
        .await
        .iter()
        .map(|r| r.exception_change())
        .filter(|c| c.action == ExceptionAction::Escalated)
        .collect();
    assert_eq!(escalations.len(), 2, "{escalations:?}");
    let notified = notifications(&harness.read("notifications").await)
        .iter()
        .filter(|n| n.kind == "exception_escalated")
        .count();
    assert_eq!(notified, 2);

    // Stop, verify the store against a replay of the log, restart much later: nothing fires
    // again.
    for process in &mut pipeline {
        assert!(process.terminate().success());
    }
    harness.assert_replay_verifies("0");
    harness.set_clock("2026-12-31T00:00:00Z");
    let _pipeline = harness.start_pipeline();
    harness
        .produce_json("in.orders", &input::placed("tmall", "LATER", 1_000))
        .await;
    harness
        .wait_for("a later order folded", Duration::from_secs(60), || async {
            harness
                .order_states()
                .await
                .contains_key("tmall:LATER")
                .then_some(())
        })
        .await;
    let log = log_records(&harness).await;
    assert_eq!(kinds(&log, "payment_timed_out", "store:UNPAID"), 1);
    assert_eq!(kinds(&log, "exception_escalated", "web:SLA"), 2);
    // And their effects happened once: one cancellation notice, two escalation changes.
    let timed_out = notifications(&harness.read("notifications").await)
        .into_iter()
        .filter(|n| n.kind == "payment_timed_out" && n.order_id.to_string() == "store:UNPAID")
        .map(|n| n.notification_id)
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(timed_out, 1);
}
