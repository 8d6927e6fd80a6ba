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
/// The decisions on an order that was also cancelled, refunded or shipped are the one part
/// that does depend on arrival: whether the payment was seen before the cancel, refund or
/// shipment decides whether approval (and what follows it) was ever asked for. That is why
/// decisions are recorded in the log; for those orders they are left out here.
fn business_view(state: &OrderState, journey: &[Event]) -> String {
    let approval =
        if state.cancelled.is_some() || !state.refunds.is_empty() || !state.shipments.is_empty() {
            None
        } else {
            state.approval.as_ref().map(|a| (a.outcome, &a.rule))
        };
    let facts = journey
        .iter()
        .map(|event| &event.event_id)
        .collect::<std::collections::BTreeSet<_>>();
    let facts_folded = state.applied.iter().filter(|id| facts.contains(id)).count();
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
        facts_folded,
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
        let (expected, _) = run_live(journey.clone(), &rules);
        let (actual, _) = run_live(messy, &rules);
        prop_assert_eq!(business_view(&expected, &journey), business_view(&actual, &journey));
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
        let live = world_of(journey, &Rules::default());
        // Replay: fold the live run's log (facts, decisions, messages) with no deciding.
        let mut replayed: std::collections::BTreeMap<EntityKey, Entity> = Default::default();
        for event in &live.log {
            replayed.entry(event.key.clone()).or_insert_with(|| Entity::empty(&event.key)).apply(event);
        }
        prop_assert_eq!(serde_json::to_vec(&replayed).unwrap(), serde_json::to_vec(&live.entities).unwrap());
    }
}
