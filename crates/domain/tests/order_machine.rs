//! Given events, when one more arrives, then the order is in this state with these exceptions.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use orderflow_domain::*;
use support::*;

fn live(events: Vec<Event>) -> (OrderState, Vec<ExceptionChange>) {
    run_live(events, &Rules::default())
}

#[test]
fn a_placed_order_waits_for_payment() {
    let (state, changes) = live(vec![placed(10_000)]);
    assert_eq!(state.status, Status::PendingPayment);
    assert!(changes.is_empty());
}

#[test]
fn payment_under_threshold_is_auto_approved_with_its_rule_version() {
    let (state, _) = live(vec![placed(49_900), captured(1, "P1", 49_900)]);
    // Approved, then stock held (the sku isn't stock-managed) and routed.
    assert_eq!(state.status, Status::Routed);
    let approval = state.approval.expect("approved");
    assert_eq!(approval.outcome, ApprovalOutcome::AutoApproved);
    assert_eq!(approval.rule.rule_version, "builtin-1");
}

#[test]
fn payment_at_or_over_threshold_goes_to_manual_review() {
    let (state, _) = live(vec![placed(50_100), captured(1, "P1", 50_100)]);
    assert_eq!(state.status, Status::UnderReview);
    let (state, _) = live(vec![placed(50_000), captured(1, "P1", 50_000)]);
    assert_eq!(state.status, Status::UnderReview);
}

#[test]
fn without_decisions_a_paid_order_is_paid() {
    let state = fold(&[placed(100), captured(1, "P1", 100)]);
    assert_eq!(state.status, Status::Paid);
}

#[test]
fn full_journey_ends_completed() {
    let (state, changes) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        dispatched(2),
        delivered(3),
        completed(4),
    ]);
    assert_eq!(state.status, Status::Completed);
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(
        state.version, 11,
        "5 facts; screening, buyer check, approval, stock request, stock held, routing"
    );
}

#[test]
fn each_main_line_step_moves_the_status() {
    let mut state = fold(&[placed(100)]);
    let steps = [
        (captured(1, "P1", 100), Status::Paid),
        (dispatched(2), Status::Shipped),
        (delivered(3), Status::Delivered),
        (completed(4), Status::Completed),
    ];
    for (event, expected) in steps {
        state.apply(&event).expect("new event");
        assert_eq!(state.status, expected, "after {}", event.body.kind());
    }
}

#[test]
fn a_duplicate_event_changes_nothing() {
    let mut state = fold(&[placed(100), captured(1, "P1", 100)]);
    let before = state.clone();
    assert!(state.apply(&captured(1, "P1", 100)).is_none());
    // A retried callback with other details is still the same fact: the first one wins.
    assert!(state.apply(&captured(7, "P1", 999)).is_none());
    assert_eq!(state, before);
}

#[test]
fn cancel_before_payment_cancels() {
    let (state, changes) = live(vec![placed(100), cancelled(1)]);
    assert_eq!(state.status, Status::Cancelled);
    assert!(changes.is_empty());
}

#[test]
fn full_refund_before_shipment_refunds() {
    let (state, _) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        cancelled(2),
        refunded(3, "R1", 100),
    ]);
    assert_eq!(state.status, Status::Refunded);
}

#[test]
fn a_return_after_delivery_is_returned() {
    let (state, _) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        dispatched(2),
        delivered(3),
        returned(4),
    ]);
    assert_eq!(state.status, Status::Returned);
}

#[test]
fn shipment_before_payment_is_flagged_then_cleared_by_the_payment() {
    let (state, changes) = live(vec![placed(100), dispatched(1)]);
    assert_eq!(state.status, Status::Shipped);
    assert_eq!(open_codes(&state), ["shipped_before_paid"]);
    assert_eq!(changes[0].exception.kind, ExceptionKind::IllegalTransition);
    assert_eq!(changes[0].exception.owner, Owner::Operations);

    let (state, changes) = live(vec![placed(100), dispatched(1), captured(2, "P1", 100)]);
    assert_eq!(state.status, Status::Shipped);
    assert!(open_codes(&state).is_empty());
    assert_eq!(changes.len(), 2, "raised then resolved: {changes:?}");
    assert_eq!(changes[1].action, ExceptionAction::Resolved);
    assert_eq!(state.shipments.len(), 1, "the early shipment is kept");
}

#[test]
fn delivery_after_cancel_is_an_illegal_transition() {
    let (state, changes) = live(vec![placed(100), cancelled(1), delivered(2)]);
    assert_eq!(
        open_codes(&state),
        ["delivered_after_cancel", "shipped_after_cancel"]
    );
    assert!(changes
        .iter()
        .all(|c| c.exception.kind == ExceptionKind::IllegalTransition));
    assert_eq!(state.status, Status::Delivered, "the parcel did arrive");
}

#[test]
fn amount_mismatch_holds_the_order_and_blocks_approval() {
    let (state, changes) = live(vec![placed(10_000), captured(1, "P1", 9_000)]);
    assert_eq!(state.status, Status::OnHold);
    assert!(state.approval.is_none());
    assert_eq!(changes[0].exception.kind, ExceptionKind::AmountMismatch);
    assert_eq!(changes[0].exception.owner, Owner::Finance);
}

#[test]
fn payment_before_the_order_is_checked_when_the_order_arrives() {
    let (state, changes) = live(vec![captured(1, "P1", 9_000), placed(10_000)]);
    assert_eq!(state.status, Status::OnHold);
    assert_eq!(changes.len(), 1);
    let (state, _) = live(vec![captured(1, "P1", 10_000), placed(10_000)]);
    assert_eq!(state.status, Status::Routed);
}

#[test]
fn paid_twice_with_different_ids_is_raised_until_refunded() {
    let (state, changes) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        captured(2, "P2", 100),
    ]);
    assert_eq!(open_codes(&state), ["paid_twice"]);
    assert_eq!(changes.len(), 1);
    assert_eq!(
        state.status,
        Status::Routed,
        "a double payment doesn't block"
    );
    let (state, _) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        captured(2, "P2", 100),
        refunded(3, "R2", 100),
    ]);
    assert!(open_codes(&state).is_empty());
}

#[test]
fn refund_beyond_payment_is_an_amount_mismatch() {
    let (state, _) = live(vec![
        placed(100),
        captured(1, "P1", 100),
        refunded(2, "R1", 150),
    ]);
    assert_eq!(open_codes(&state), ["refund_exceeds_payment"]);
}

#[test]
fn a_second_approval_decision_is_ignored() {
    let mut state = fold(&[placed(100), captured(1, "P1", 100)]);
    let order_id = state.order_id.clone();
    let cause = EventId::derive(&["cause"]);
    let rule = |version: &str| Approval {
        rule_version: version.into(),
        threshold_fen: 1,
    };
    let first = Event::decision(
        &order_id,
        at(2),
        "state",
        Some(&cause),
        EventBody::OrderAutoApproved(rule("v1")),
    );
    let second = Event::decision(
        &order_id,
        at(3),
        "state",
        Some(&cause),
        EventBody::ManualReviewRequired(rule("v2")),
    );
    assert_eq!(
        first.event_id, second.event_id,
        "one approval slot per order"
    );
    state.apply(&first).unwrap();
    assert!(state.apply(&second).is_none());
    assert_eq!(state.status, Status::Approved);
}

#[test]
fn events_for_another_key_are_refused() {
    let mut state = OrderState::new("jd:OTHER".parse().unwrap());
    assert!(state.apply(&placed(100)).is_none());
    assert_eq!(state.version, 0);
}

#[test]
fn stock_keeps_the_latest_snapshot_per_warehouse() {
    let snapshot = |minute, on_hand| {
        Event::stock_level(
            "SKU-1",
            "WH-HZ",
            on_hand,
            at(minute),
            Source::origin("in.inventory"),
        )
    };
    let mut in_order = StockState::new("SKU-1".into());
    let mut reversed = StockState::new("SKU-1".into());
    for event in [snapshot(1, 5), snapshot(2, 3)] {
        assert!(in_order.apply(&event).is_some());
    }
    for event in [snapshot(2, 3), snapshot(1, 5)] {
        assert!(reversed.apply(&event).is_some());
    }
    assert!(reversed.apply(&snapshot(1, 5)).is_none(), "duplicate");
    assert_eq!(in_order.warehouses, reversed.warehouses);
    assert_eq!(in_order.warehouses["WH-HZ"].on_hand, 3);
}
