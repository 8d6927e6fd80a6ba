//! Telling the outside (issue 15), in memory: the changes a channel must hear about, the
//! attempts `orderflow-sync` records and what they lead to (`sync_failure`), the review SLA, and
//! a split order accepted only when every parcel is. Given events, when one more, then this.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::Duration;
use orderflow_domain::*;
use support::at;

const SYNC: &str = "orderflow-sync";

fn source(origin: &str) -> Source {
    Source {
        origin: origin.into(),
        partition: Some(0),
        offset: Some(0),
        channel: None,
        caused_by: None,
    }
}

fn key(order: &str) -> EntityKey {
    EntityKey::Order(order.parse().unwrap())
}

fn placed(order: &str, lines: &[(&str, Fen)]) -> Event {
    let total: Fen = lines.iter().map(|(_, price)| price).sum();
    Event::fact(
        key(order),
        at(0),
        source("in.orders"),
        EventBody::OrderPlaced(OrderPlaced {
            buyer_id: format!("buyer-{order}"),
            phone: "13912345678".into(),
            address: Address {
                province: "浙江省".into(),
                city: "杭州市".into(),
                district: "西湖区".into(),
                detail: "文三路 100 号".into(),
            },
            lines: lines
                .iter()
                .map(|(sku, price)| OrderLine {
                    sku: (*sku).into(),
                    category: "baby".into(),
                    qty: 1,
                    unit_price_fen: *price,
                })
                .collect(),
            discount_fen: 0,
            shipping_fen: 0,
            total_fen: total,
            payment_method: "alipay".into(),
            coupon_type: None,
            invoice: None,
        }),
    )
}

fn paid(order: &str, amount_fen: Fen) -> Event {
    Event::fact(
        key(order),
        at(1),
        source("in.payments"),
        EventBody::PaymentCaptured {
            payment_id: format!("P-{order}"),
            amount_fen,
            method: "alipay".into(),
        },
    )
}

fn accepted(order: &str, warehouse: &str, minute: u32) -> Event {
    Event::fact(
        key(order),
        at(minute),
        source("in.shipments"),
        EventBody::WarehouseAccepted {
            warehouse: warehouse.into(),
            routing_id: format!("{order}@{warehouse}"),
        },
    )
}

fn dispatched(order: &str, tracking_no: &str, minute: u32) -> Event {
    Event::fact(
        key(order),
        at(minute),
        source("in.shipments"),
        EventBody::ShipmentDispatched {
            carrier: "SF".into(),
            tracking_no: tracking_no.into(),
            warehouse: "WH-A".into(),
        },
    )
}

fn delivered(order: &str, tracking_no: &str, minute: u32) -> Event {
    Event::fact(
        key(order),
        at(minute),
        source("in.shipments"),
        EventBody::ShipmentDelivered {
            carrier: "SF".into(),
            tracking_no: tracking_no.into(),
        },
    )
}

fn state<'w>(world: &'w World, order: &str) -> &'w OrderState {
    world.order(&order.parse().unwrap()).expect("order exists")
}

fn sync<'w>(world: &'w World, order: &str, change_id: &str) -> &'w ChannelSync {
    state(world, order)
        .syncs
        .iter()
        .find(|sync| sync.change_id == change_id)
        .unwrap_or_else(|| panic!("{order} has no change {change_id}"))
}

/// What `orderflow-sync` records after a call: the decision on the answer included.
fn attempt(
    world: &World,
    order: &str,
    change_id: &str,
    number: u32,
    outcome: SyncOutcome,
    minute: u32,
) -> Event {
    let rules = RetryRules::default();
    let key = sync(world, order, change_id).idempotency_key.clone();
    let now = at(minute);
    Event::sync_attempt(
        &order.parse().unwrap(),
        SYNC,
        SyncAttempt {
            change_id: change_id.into(),
            idempotency_key: key.clone(),
            attempt: number,
            connector: "webhook".into(),
            sent_at: now,
            outcome,
            http_status: Some(match outcome {
                SyncOutcome::Acknowledged => 200,
                SyncOutcome::Failed => 503,
                SyncOutcome::Rejected => 400,
            }),
            answer: format!("{outcome:?}"),
            next_attempt_at: next_attempt_at(&key, number, outcome, None, now, &rules),
            max_attempts: rules.max_attempts,
            rule_version: "builtin-1".into(),
        },
    )
}

fn exception_changes(world: &World, order: &str) -> Vec<(ExceptionKind, ExceptionAction)> {
    world
        .published
        .iter()
        .filter_map(|effect| match effect {
            Effect::Exception(c) if c.order_id.to_string() == order => {
                Some((c.exception.kind, c.action))
            }
            _ => None,
        })
        .collect()
}

fn alerts(world: &World, order: &str) -> Vec<(String, Audience)> {
    world
        .published
        .iter()
        .filter_map(|effect| match effect {
            Effect::Notify(n) if n.order_id.to_string() == order => {
                Some((n.kind.clone(), n.audience.clone()))
            }
            _ => None,
        })
        .filter(|(_, audience)| matches!(audience, Audience::Owner { .. }))
        .collect()
}

/// A paid order of two skus held in two warehouses: routed as two parcels.
fn split_order(world: &mut World, order: &str) {
    world.submit(Event::stock_level(
        "SKU-A",
        "WH-A",
        5,
        at(0),
        source("in.inventory"),
    ));
    world.submit(Event::stock_level(
        "SKU-B",
        "WH-B",
        5,
        at(0),
        source("in.inventory"),
    ));
    world.submit(placed(order, &[("SKU-A", 1_000), ("SKU-B", 2_000)]));
    world.submit(paid(order, 3_000));
}

#[test]
fn a_split_order_is_accepted_by_the_warehouse_only_when_every_parcel_is() {
    let mut w = World::new(Rules::default(), at(2));
    split_order(&mut w, "jd:SPLIT");
    assert_eq!(state(&w, "jd:SPLIT").status, Status::Routed);
    assert_eq!(
        state(&w, "jd:SPLIT")
            .routing
            .as_ref()
            .unwrap()
            .parcels
            .len(),
        2
    );

    w.submit(accepted("jd:SPLIT", "WH-A", 5));
    assert_eq!(
        state(&w, "jd:SPLIT").status,
        Status::Routed,
        "one parcel of two"
    );
    assert!(
        state(&w, "jd:SPLIT").syncs.is_empty(),
        "the channel hears nothing yet"
    );

    w.submit(accepted("jd:SPLIT", "WH-B", 6));
    assert_eq!(state(&w, "jd:SPLIT").status, Status::AcceptedByWarehouse);
    let accepted = sync(&w, "jd:SPLIT", "accepted_by_warehouse");
    assert_eq!(accepted.change, SyncChange::AcceptedByWarehouse);
    assert_eq!(accepted.happened_at, at(6));
    assert_eq!(accepted.next_attempt_at(), Some(at(6)), "due at once");
}

#[test]
fn each_parcel_shipped_and_delivered_is_a_change_with_its_carrier_and_a_stable_key() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("tmall:SHIP", &[("SKU-A", 1_000)]));
    w.submit(paid("tmall:SHIP", 1_000));
    w.submit(dispatched("tmall:SHIP", "SF1", 10));
    w.submit(dispatched("tmall:SHIP", "SF1", 10));
    w.submit(delivered("tmall:SHIP", "SF1", 20));
    let ids: Vec<&str> = state(&w, "tmall:SHIP")
        .syncs
        .iter()
        .map(|s| s.change_id.as_str())
        .collect();
    assert_eq!(ids, ["shipped:SF:SF1", "delivered:SF:SF1"]);
    let shipped = sync(&w, "tmall:SHIP", "shipped:SF:SF1");
    assert_eq!(shipped.details["carrier"], "SF");
    assert_eq!(shipped.details["tracking_no"], "SF1");
    assert_eq!(
        shipped.idempotency_key,
        ChannelSync::key_of(&"tmall:SHIP".parse().unwrap(), "shipped:SF:SF1")
    );
    assert_eq!(
        state(&w, "tmall:SHIP").snapshot().sync.len(),
        2,
        "published on order-state"
    );
}

#[test]
fn two_failures_then_an_acknowledgement_raise_nothing() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("web:OK3", &[("SKU-A", 1_000)]));
    w.submit(paid("web:OK3", 1_000));
    w.submit(dispatched("web:OK3", "SF3", 10));
    for (number, outcome, minute) in [
        (1, SyncOutcome::Failed, 10),
        (2, SyncOutcome::Failed, 11),
        (3, SyncOutcome::Acknowledged, 14),
    ] {
        let event = attempt(&w, "web:OK3", "shipped:SF:SF3", number, outcome, minute);
        w.submit(event.clone());
        w.submit(event); // recorded again after a crash: a copy
    }
    let shipped = sync(&w, "web:OK3", "shipped:SF:SF3");
    assert_eq!(shipped.attempts.len(), 3);
    assert!(shipped.acknowledged());
    assert_eq!(shipped.next_attempt_at(), None);
    assert!(exception_changes(&w, "web:OK3").is_empty());
}

#[test]
fn the_last_failed_attempt_raises_sync_failure_and_alerts_operations_until_a_later_change_is_taken()
{
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("douyin:DOWN", &[("SKU-A", 1_000)]));
    w.submit(paid("douyin:DOWN", 1_000));
    w.submit(dispatched("douyin:DOWN", "SF9", 10));
    for number in 1..=2 {
        let event = attempt(
            &w,
            "douyin:DOWN",
            "shipped:SF:SF9",
            number,
            SyncOutcome::Failed,
            10,
        );
        w.submit(event);
    }
    assert!(
        exception_changes(&w, "douyin:DOWN").is_empty(),
        "a third attempt is due"
    );
    let due = sync(&w, "douyin:DOWN", "shipped:SF:SF9")
        .next_attempt_at()
        .unwrap();
    assert!(
        due > at(10),
        "the interval after the second failure is in the event: {due}"
    );

    let last = attempt(
        &w,
        "douyin:DOWN",
        "shipped:SF:SF9",
        3,
        SyncOutcome::Failed,
        20,
    );
    w.submit(last);
    assert!(sync(&w, "douyin:DOWN", "shipped:SF:SF9").gave_up());
    assert_eq!(
        exception_changes(&w, "douyin:DOWN"),
        [(ExceptionKind::SyncFailure, ExceptionAction::Raised)]
    );
    let exception = state(&w, "douyin:DOWN")
        .open_exceptions()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        (exception.owner, exception.level),
        (Owner::Operations, Level::L1)
    );
    assert_eq!(exception.code, "sync_failed:shipped:SF:SF9");
    assert_eq!(
        alerts(&w, "douyin:DOWN"),
        [(
            "exception_raised".to_string(),
            Audience::Owner {
                owner: Owner::Operations,
                level: Level::L1
            }
        )]
    );

    // The parcel is delivered and the channel takes that: it holds the newer state anyway.
    w.submit(delivered("douyin:DOWN", "SF9", 50));
    let taken = attempt(
        &w,
        "douyin:DOWN",
        "delivered:SF:SF9",
        1,
        SyncOutcome::Acknowledged,
        50,
    );
    w.submit(taken);
    assert_eq!(state(&w, "douyin:DOWN").open_exceptions().count(), 0);
    assert_eq!(
        exception_changes(&w, "douyin:DOWN").last(),
        Some(&(ExceptionKind::SyncFailure, ExceptionAction::Resolved))
    );
}

#[test]
fn a_refusal_for_good_is_not_retried_and_raises_sync_failure_at_once() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("jd:BAD", &[("SKU-A", 1_000)]));
    w.submit(paid("jd:BAD", 1_000));
    w.submit(dispatched("jd:BAD", "SF4", 10));
    let refused = attempt(&w, "jd:BAD", "shipped:SF:SF4", 1, SyncOutcome::Rejected, 10);
    w.submit(refused);
    let shipped = sync(&w, "jd:BAD", "shipped:SF:SF4");
    assert_eq!(
        (shipped.attempts_made(), shipped.next_attempt_at()),
        (1, None)
    );
    assert_eq!(
        exception_changes(&w, "jd:BAD"),
        [(ExceptionKind::SyncFailure, ExceptionAction::Raised)]
    );
}

#[test]
fn an_attempt_for_a_change_the_order_never_had_is_kept_in_the_trail() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("web:NONE", &[("SKU-A", 1_000)]));
    let stray = Event::sync_attempt(
        &"web:NONE".parse().unwrap(),
        SYNC,
        SyncAttempt {
            change_id: "shipped:SF:NOPE".into(),
            idempotency_key: "k".into(),
            attempt: 1,
            connector: "webhook".into(),
            sent_at: at(3),
            outcome: SyncOutcome::Acknowledged,
            http_status: Some(200),
            answer: "HTTP 200".into(),
            next_attempt_at: None,
            max_attempts: 3,
            rule_version: "builtin-1".into(),
        },
    );
    w.submit(stray);
    assert_eq!(state(&w, "web:NONE").ignored.len(), 1);
}

#[test]
fn an_order_waiting_for_review_past_its_sla_alerts_the_reviewers_and_escalates() {
    let mut rules = Rules::default();
    rules.review.sla_minutes = 60;
    let mut w = World::new(rules, at(2));
    w.submit(placed("tmall:BIG", &[("SKU-A", 90_000)]));
    w.submit(paid("tmall:BIG", 90_000));
    assert_eq!(state(&w, "tmall:BIG").status, Status::UnderReview);
    let decided = state(&w, "tmall:BIG").approval.as_ref().unwrap().decided_at;
    assert!(state(&w, "tmall:BIG").has_timers());

    w.tick(decided + Duration::minutes(59));
    assert!(exception_changes(&w, "tmall:BIG").is_empty());
    w.tick(decided + Duration::minutes(60));
    assert_eq!(
        exception_changes(&w, "tmall:BIG"),
        [(ExceptionKind::ReviewOverdue, ExceptionAction::Raised)]
    );
    assert_eq!(
        state(&w, "tmall:BIG").status,
        Status::UnderReview,
        "it blocks nothing"
    );
    assert_eq!(
        alerts(&w, "tmall:BIG"),
        [(
            "exception_raised".to_string(),
            Audience::Owner {
                owner: Owner::CustomerService,
                level: Level::L1
            }
        )]
    );
    // Nobody acts: it escalates like any exception.
    w.tick(decided + Duration::minutes(60 + 240));
    assert_eq!(
        exception_changes(&w, "tmall:BIG").last(),
        Some(&(ExceptionKind::ReviewOverdue, ExceptionAction::Escalated))
    );
    w.tick(decided + Duration::minutes(10_000));
    assert_eq!(
        w.log
            .iter()
            .filter(|e| e.body.kind() == "review_overdue")
            .count(),
        1,
        "decided once"
    );

    // A person approves: the condition is gone.
    let approve = Event::fact(
        key("tmall:BIG"),
        at(50),
        source("in.actions"),
        EventBody::ReviewApproved {
            action: Action {
                action_id: "R1".into(),
                actor: Actor {
                    id: "ops-li".into(),
                    role: ActorRole::Operator,
                },
                note: None,
            },
        },
    );
    w.submit(approve);
    assert_eq!(state(&w, "tmall:BIG").open_exceptions().count(), 0);
    assert_eq!(state(&w, "tmall:BIG").status, Status::Routed);
}

#[test]
fn the_customer_audience_carries_the_phone_for_the_sms() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(Event::stock_level(
        "SKU-Z",
        "WH-A",
        0,
        at(0),
        source("in.inventory"),
    ));
    w.submit(placed("jd:OOS", &[("SKU-Z", 1_000)]));
    w.submit(paid("jd:OOS", 1_000));
    let asked = w
        .published
        .iter()
        .find_map(|effect| match effect {
            Effect::Notify(n) if n.kind == "out_of_stock_choice" => Some(n.audience.clone()),
            _ => None,
        })
        .expect("the customer is asked");
    assert_eq!(
        asked,
        Audience::Customer {
            buyer_id: "buyer-jd:OOS".into(),
            phone: Some("13912345678".into())
        }
    );
}

#[test]
fn a_log_with_sync_attempts_and_deliveries_replays_to_the_same_bytes() {
    let mut w = World::new(Rules::default(), at(2));
    w.submit(placed("tmall:R1", &[("SKU-A", 1_000)]));
    w.submit(paid("tmall:R1", 1_000));
    w.submit(dispatched("tmall:R1", "SF7", 10));
    for number in 1..=3 {
        let event = attempt(
            &w,
            "tmall:R1",
            "shipped:SF:SF7",
            number,
            SyncOutcome::Failed,
            10 + number,
        );
        w.submit(event);
    }
    let alert = w
        .published
        .iter()
        .find_map(|effect| match effect {
            Effect::Notify(n) if n.kind == "exception_raised" => Some(n.clone()),
            _ => None,
        })
        .unwrap();
    w.submit(Event::notice_delivery(
        &alert.order_id,
        "orderflow-notify",
        NoticeDelivery {
            notification_id: alert.notification_id.clone(),
            notification_kind: alert.kind.clone(),
            target: "dingtalk:ops".into(),
            idempotency_key: "m-1".into(),
            sent_at: at(30),
            outcome: SyncOutcome::Acknowledged,
            http_status: Some(200),
            answer: "errcode 0".into(),
            attempts: 1,
            batched: 1,
        },
    ));
    let mut replayed = std::collections::BTreeMap::new();
    for event in &w.log {
        replayed
            .entry(event.key.clone())
            .or_insert_with(|| Entity::empty(&event.key))
            .apply(event)
            .expect("every logged event counts once");
    }
    assert_eq!(
        serde_json::to_vec(&replayed).unwrap(),
        serde_json::to_vec(&w.entities).unwrap()
    );
}
