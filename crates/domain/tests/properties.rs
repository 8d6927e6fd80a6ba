//! Any duplication and reordering of a journey's events that the contract allows folds to the
//! same order: same status, same facts, same open exceptions, same approval.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use orderflow_domain::*;
use proptest::prelude::*;
use support::*;

/// The business view of an order, independent of arrival order: what was said, not when.
///
/// An approval decision on an order that was also cancelled or refunded is the one part that
/// does depend on arrival: whether the payment was seen before the cancel or refund decides
/// whether approval was ever asked for. That is why decisions are recorded in the log; for
/// those orders it is left out here.
fn business_view(state: &OrderState) -> String {
    let approval = if state.cancelled.is_some() || !state.refunds.is_empty() {
        None
    } else {
        state.approval.as_ref().map(|a| (a.outcome, &a.rule))
    };
    let decisions = usize::from(state.approval.is_some());
    let mut payments: Vec<_> = state
        .payments
        .iter()
        .map(|p| (&p.payment_id, p.amount_fen))
        .collect();
    payments.sort();
    let mut refunds: Vec<_> = state
        .refunds
        .iter()
        .map(|r| (&r.refund_id, r.amount_fen))
        .collect();
    refunds.sort();
    let mut shipments = state.shipments.clone();
    shipments.sort_by(|a, b| a.tracking_no.cmp(&b.tracking_no));
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}",
        state.status,
        state.placed,
        payments,
        refunds,
        shipments,
        state.cancelled,
        state.completed_at,
        approval,
        state.applied.len() - decisions,
        open_codes(state),
    )
}

fn journeys() -> impl Strategy<Value = Vec<Event>> {
    prop_oneof![
        Just(vec![
            placed(100),
            captured(1, "P1", 100),
            dispatched(2),
            delivered(3),
            completed(4)
        ]),
        Just(vec![
            placed(90_000),
            captured(1, "P1", 90_000),
            dispatched(2),
            delivered(3)
        ]),
        Just(vec![
            placed(100),
            captured(1, "P1", 100),
            cancelled(2),
            refunded(3, "R1", 100)
        ]),
        Just(vec![
            placed(100),
            captured(1, "P1", 100),
            dispatched(2),
            delivered(3),
            returned(4),
            refunded(5, "R1", 100)
        ]),
        Just(vec![placed(100), captured(1, "P1", 80), dispatched(2)]),
        Just(vec![
            placed(100),
            captured(1, "P1", 100),
            captured(2, "P2", 100)
        ]),
        Just(vec![placed(100), cancelled(1), delivered(2)]),
    ]
}

/// A journey with some events repeated and everything shuffled.
fn messed_up() -> impl Strategy<Value = (Vec<Event>, Vec<Event>)> {
    journeys().prop_flat_map(|journey| {
        let len = journey.len();
        (Just(journey), proptest::collection::vec(0..len, 0..6)).prop_flat_map(
            |(journey, repeats)| {
                let mut messy = journey.clone();
                messy.extend(repeats.into_iter().map(|i| journey[i].clone()));
                (Just(journey), Just(messy).prop_shuffle())
            },
        )
    })
}

proptest! {
    #[test]
    fn duplication_and_reordering_fold_to_the_same_order((journey, messy) in messed_up()) {
        let rules = Rules::default();
        let (expected, _) = run_live(journey, &rules);
        let (actual, _) = run_live(messy, &rules);
        prop_assert_eq!(business_view(&expected), business_view(&actual));
    }

    #[test]
    fn duplicates_alone_change_not_a_byte((journey, repeats) in journeys().prop_flat_map(|j| {
        let len = j.len();
        (Just(j), proptest::collection::vec(0..len, 1..8))
    })) {
        let mut with_duplicates = Vec::new();
        for (index, event) in journey.iter().enumerate() {
            with_duplicates.push(event.clone());
            for _ in repeats.iter().filter(|&&r| r == index) {
                with_duplicates.push(event.clone());
            }
        }
        let clean = serde_json::to_vec(&fold(&journey)).unwrap();
        let messy = serde_json::to_vec(&fold(&with_duplicates)).unwrap();
        prop_assert_eq!(clean, messy);
    }

    #[test]
    fn a_log_replayed_folds_to_identical_bytes(journey in journeys()) {
        let (live, _) = run_live(journey.clone(), &Rules::default());
        // The live run's log is the journey plus its decisions, in the order they were applied.
        let mut log = journey;
        log.extend(live.approval.iter().map(|approval| {
            let body = match approval.outcome {
                ApprovalOutcome::AutoApproved => EventBody::OrderAutoApproved(approval.rule.clone()),
                ApprovalOutcome::ManualReview => EventBody::ManualReviewRequired(approval.rule.clone()),
            };
            Event::decision(&live.order_id, approval.decided_at, "orderflow-state", &EventId::derive(&["x"]), body)
        }));
        let replayed = fold(&log);
        prop_assert_eq!(replayed.status, live.status);
        prop_assert_eq!(fold(&log), replayed);
    }
}
