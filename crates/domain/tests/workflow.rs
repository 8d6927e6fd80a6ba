//! The exception workflow in memory (issue 5): screening, checks across orders, stock,
//! timers and operator actions, run through the same live loop as the state consumer.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::Duration;
use orderflow_domain::*;
use support::at;

fn source(origin: &str) -> Source {
    Source {
        origin: origin.into(),
        partition: Some(0),
        offset: Some(0),
        channel: None,
        caused_by: None,
    }
}

fn order_key(id: &str) -> EntityKey {
    EntityKey::Order(id.parse().unwrap())
}

struct Order {
    id: &'static str,
    buyer: String,
    phone: String,
    district: String,
    lines: Vec<(&'static str, u32, Fen)>,
    minute: u32,
}

impl Order {
    fn new(id: &'static str) -> Order {
        Order {
            id,
            buyer: "buyer-1".into(),
            phone: "13912345678".into(),
            district: "西湖区".into(),
            lines: vec![("SKU-1", 1, 10_000)],
            minute: 0,
        }
    }

    fn total(&self) -> Fen {
        self.lines
            .iter()
            .map(|(_, qty, price)| Fen::from(*qty) * price)
            .sum()
    }

    fn placed(&self) -> Event {
        Event::fact(
            order_key(self.id),
            at(self.minute),
            source("in.orders"),
            EventBody::OrderPlaced(OrderPlaced {
                buyer_id: self.buyer.clone(),
                phone: self.phone.clone(),
                address: Address {
                    province: "浙江省".into(),
                    city: "杭州市".into(),
                    district: self.district.clone(),
                    detail: "文三路 100 号".into(),
                },
                lines: self
                    .lines
                    .iter()
                    .map(|(sku, qty, price)| OrderLine {
                        sku: (*sku).into(),
                        category: "baby".into(),
                        qty: *qty,
                        unit_price_fen: *price,
                    })
                    .collect(),
                discount_fen: 0,
                shipping_fen: 0,
                total_fen: self.total(),
                payment_method: "alipay".into(),
                coupon_type: None,
                invoice: None,
            }),
        )
    }

    fn paid(&self) -> Event {
        Event::fact(
            order_key(self.id),
            at(self.minute + 1),
            source("in.payments"),
            EventBody::PaymentCaptured {
                payment_id: format!("P-{}", self.id),
                amount_fen: self.total(),
                method: "alipay".into(),
            },
        )
    }
}

fn stock(sku: &str, warehouse: &str, on_hand: u64, minute: u32) -> Event {
    Event::stock_level(sku, warehouse, on_hand, at(minute), source("in.inventory"))
}

fn action(
    order: &str,
    id: &str,
    role: ActorRole,
    minute: u32,
    body: impl FnOnce(Action) -> EventBody,
) -> Event {
    let action = Action {
        action_id: id.into(),
        actor: Actor {
            id: if role == ActorRole::Customer {
                "buyer-1".into()
            } else {
                "ops-li".into()
            },
            role,
        },
        note: Some("checked with the customer".into()),
    };
    Event::fact(
        order_key(order),
        at(minute),
        source("in.actions"),
        body(action),
    )
}

/// The customer's answer to "wait or refund?".
fn choice(order: &str, id: &str, minute: u32, choice: Choice) -> Event {
    action(order, id, ActorRole::Customer, minute, |action| {
        EventBody::CustomerChoice { action, choice }
    })
}

fn state<'w>(world: &'w World, id: &str) -> &'w OrderState {
    world.order(&id.parse().unwrap()).expect("order exists")
}

fn open(world: &World, id: &str) -> Vec<(ExceptionKind, Owner, Level)> {
    state(world, id)
        .open_exceptions()
        .map(|e| (e.kind, e.owner, e.level))
        .collect()
}

fn notifications<'w>(world: &'w World, id: &str) -> Vec<&'w Notification> {
    world
        .published
        .iter()
        .filter_map(|effect| match effect {
            Effect::Notify(n) if n.order_id.to_string() == id => Some(n),
            _ => None,
        })
        .collect()
}

fn world() -> World {
    World::new(Rules::default(), at(2))
}

fn run(world: &mut World, events: impl IntoIterator<Item = Event>) {
    for event in events {
        world.submit(event);
    }
}

fn kinds_in_log(world: &World, kind: &str) -> usize {
    world.log.iter().filter(|e| e.body.kind() == kind).count()
}

#[test]
fn seed_threshold_499_is_auto_approved_and_501_goes_to_review() {
    let mut w = world();
    let mut cheap = Order::new("tmall:T499");
    cheap.lines = vec![("SKU-1", 1, 49_900)];
    let mut dear = Order::new("tmall:T501");
    dear.lines = vec![("SKU-2", 1, 50_100)];
    dear.buyer = "buyer-2".into();
    run(
        &mut w,
        [cheap.placed(), cheap.paid(), dear.placed(), dear.paid()],
    );
    let cheap = state(&w, "tmall:T499");
    assert_eq!(
        cheap.approval.as_ref().unwrap().outcome,
        ApprovalOutcome::AutoApproved
    );
    assert_eq!(cheap.status, Status::Routed);
    let dear_state = state(&w, "tmall:T501");
    assert_eq!(
        dear_state.approval.as_ref().unwrap().outcome,
        ApprovalOutcome::ManualReview
    );
    assert_eq!(
        dear_state.approval.as_ref().unwrap().rule.rule_version,
        "builtin-1"
    );
    assert_eq!(dear_state.status, Status::UnderReview);

    // An operator approves it: recorded with who and why, then it goes on.
    run(
        &mut w,
        [action(
            "tmall:T501",
            "A1",
            ActorRole::Operator,
            5,
            |action| EventBody::ReviewApproved { action },
        )],
    );
    let dear_state = state(&w, "tmall:T501");
    assert_eq!(dear_state.status, Status::Routed);
    assert_eq!(
        dear_state.review.as_ref().unwrap().action.actor.id,
        "ops-li"
    );
}

#[test]
fn a_rejected_review_cancels_and_refunds_without_a_coupon() {
    let mut w = world();
    let mut dear = Order::new("jd:J1");
    dear.lines = vec![("SKU-1", 1, 80_000)];
    run(&mut w, [dear.placed(), dear.paid()]);
    run(
        &mut w,
        [action("jd:J1", "A1", ActorRole::Operator, 5, |action| {
            EventBody::ReviewRejected { action }
        })],
    );
    let s = state(&w, "jd:J1");
    assert_eq!(s.status, Status::Cancelled);
    let refund = s.refund_request.as_ref().unwrap();
    assert_eq!((refund.amount_fen, refund.coupon_fen), (80_000, 0));
}

#[test]
fn the_same_basket_twice_within_the_window_proceeds_once() {
    let mut w = world();
    let first = Order::new("web:W1");
    let mut second = Order::new("web:W2");
    second.minute = 3; // 3 minutes later, window is 10
    let mut later = Order::new("web:W3");
    later.minute = 20; // outside the window
    run(
        &mut w,
        [
            first.placed(),
            second.placed(),
            later.placed(),
            first.paid(),
            second.paid(),
            later.paid(),
        ],
    );
    assert_eq!(state(&w, "web:W1").status, Status::Routed);
    assert_eq!(state(&w, "web:W3").status, Status::Routed);
    let dup = state(&w, "web:W2");
    assert_eq!(dup.status, Status::OnHold);
    assert_eq!(
        open(&w, "web:W2"),
        [(
            ExceptionKind::DuplicateOrder,
            Owner::CustomerService,
            Level::L1
        )]
    );
    assert!(dup.approval.is_none(), "a duplicate is never approved");
}

#[test]
fn a_thousand_submissions_of_a_hundred_baskets_give_exactly_a_hundred_orders() {
    use rand::{seq::SliceRandom, Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ids: Vec<&'static str> = (0..1000)
        .map(|i| &*Box::leak(format!("miniapp:M{i}").into_boxed_str()))
        .collect();
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let basket = i % 100;
        let mut order = Order::new(id);
        order.buyer = format!("buyer-{}", basket % 37);
        order.lines = vec![
            ("SKU-A", u32::try_from(basket / 37 + 1).unwrap(), 1_000),
            ("SKU-B", u32::try_from(basket).unwrap() + 1, 100),
        ];
        order.minute = rng.gen_range(0..3);
        let copies = rng.gen_range(1..=3); // platform callback retries of the same order
        for _ in 0..copies {
            events.push(order.placed());
        }
        events.push(order.paid());
    }
    events.shuffle(&mut rng);
    let mut w = world();
    run(&mut w, events);
    let proceeding = ids
        .iter()
        .filter(|id| state(&w, id).status == Status::Routed)
        .count();
    let duplicates = ids
        .iter()
        .filter(|id| {
            open(&w, id)
                .iter()
                .any(|(kind, ..)| *kind == ExceptionKind::DuplicateOrder)
        })
        .count();
    assert_eq!((proceeding, duplicates), (100, 900));
}

#[test]
fn purchase_limit_per_buyer_and_sku_is_suspected_fraud_for_risk() {
    let mut rules = Rules::default();
    rules.purchase_limits.push(PurchaseLimit {
        sku: Some("SKU-1".into()),
        max_qty: 3,
        window_secs: 86_400,
    });
    let mut w = World::new(rules, at(2));
    let mut first = Order::new("douyin:D1");
    first.lines = vec![("SKU-1", 2, 100)];
    let mut second = Order::new("douyin:D2");
    second.lines = vec![("SKU-1", 2, 100), ("SKU-9", 1, 100)];
    run(&mut w, [first.placed(), second.placed()]);
    assert!(open(&w, "douyin:D1").is_empty());
    assert_eq!(
        open(&w, "douyin:D2"),
        [(ExceptionKind::SuspectedFraud, Owner::Risk, Level::L2)]
    );
    assert_eq!(state(&w, "douyin:D2").status, Status::OnHold);
}

#[test]
fn bad_phone_blacklisted_phone_and_missing_district_are_typed_holds() {
    let mut rules = Rules::default();
    rules.phone.blacklist.insert("13700000000".into());
    let mut w = World::new(rules, at(2));
    let mut blacklisted = Order::new("tmall:B1");
    blacklisted.phone = "13700000000".into();
    blacklisted.buyer = "b1".into();
    let mut malformed = Order::new("tmall:B2");
    malformed.phone = "12345".into();
    malformed.buyer = "b2".into();
    let mut no_district = Order::new("tmall:B3");
    no_district.district = String::new();
    no_district.buyer = "b3".into();
    for order in [&blacklisted, &malformed, &no_district] {
        run(&mut w, [order.placed(), order.paid()]);
    }
    assert_eq!(
        open(&w, "tmall:B1"),
        [(ExceptionKind::BlacklistedPhone, Owner::Risk, Level::L2)]
    );
    assert_eq!(
        open(&w, "tmall:B2"),
        [(
            ExceptionKind::InvalidPhone,
            Owner::CustomerService,
            Level::L1
        )]
    );
    assert_eq!(
        open(&w, "tmall:B3"),
        [(
            ExceptionKind::InvalidAddress,
            Owner::CustomerService,
            Level::L1
        )]
    );
    for id in ["tmall:B1", "tmall:B2", "tmall:B3"] {
        let s = state(&w, id);
        assert_eq!(s.status, Status::OnHold, "{id}");
        assert!(s.approval.is_none(), "{id} held before approval");
    }
    let detail = &state(&w, "tmall:B3")
        .open_exceptions()
        .next()
        .unwrap()
        .detail;
    assert!(detail.contains("district"), "{detail}");
    let detail = &state(&w, "tmall:B1")
        .open_exceptions()
        .next()
        .unwrap()
        .detail;
    assert!(detail.contains("137****0000"), "masked: {detail}");

    // An operator fixes the address with the customer and resolves it: the order goes on.
    let exception_id = state(&w, "tmall:B3")
        .open_exceptions()
        .next()
        .unwrap()
        .exception_id
        .clone();
    run(
        &mut w,
        [action("tmall:B3", "A9", ActorRole::Operator, 9, |action| {
            EventBody::ExceptionResolved {
                action,
                exception_id,
            }
        })],
    );
    let s = state(&w, "tmall:B3");
    assert_eq!(s.status, Status::Routed);
    let resolution = s.exceptions[0].resolution.as_ref().unwrap();
    assert_eq!(resolution.actor.as_ref().unwrap().id, "ops-li");
    assert_eq!(resolution.note, "checked with the customer");
}

fn two_orders_for_the_last_unit() -> World {
    let mut w = world();
    let first = Order::new("tmall:S1");
    let mut second = Order::new("jd:S2");
    second.buyer = "buyer-2".into();
    run(
        &mut w,
        [
            stock("SKU-1", "WH-CENTRAL", 1, 0),
            first.placed(),
            second.placed(),
            first.paid(),
            second.paid(),
        ],
    );
    w
}

#[test]
fn two_orders_racing_for_the_last_unit_one_gets_it_the_other_is_asked() {
    let w = two_orders_for_the_last_unit();
    assert_eq!(state(&w, "tmall:S1").status, Status::Routed);
    assert_eq!(state(&w, "jd:S2").status, Status::OnHold);
    assert_eq!(
        open(&w, "jd:S2"),
        [(
            ExceptionKind::OutOfStockAtReview,
            Owner::Warehouse,
            Level::L1
        )]
    );
    let asked = notifications(&w, "jd:S2");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].kind, "out_of_stock_choice");
    assert_eq!(asked[0].choices, ["wait", "refund"]);
    assert_eq!(w.stock("SKU-1").unwrap().available("WH-CENTRAL"), 0);
    let routes: Vec<_> = w
        .published
        .iter()
        .filter(|e| matches!(e, Effect::Route(_)))
        .collect();
    assert_eq!(
        routes.len(),
        1,
        "only the order with stock goes to the warehouse"
    );
}

#[test]
fn choosing_a_refund_gives_the_money_back_and_a_ten_yuan_coupon() {
    let mut w = two_orders_for_the_last_unit();
    run(&mut w, [choice("jd:S2", "C1", 10, Choice::Refund)]);
    let s = state(&w, "jd:S2");
    assert_eq!(s.status, Status::Cancelled);
    let refund = s.refund_request.as_ref().unwrap();
    assert_eq!((refund.amount_fen, refund.coupon_fen), (10_000, 1_000));
    let kinds: Vec<_> = notifications(&w, "jd:S2")
        .iter()
        .map(|n| (n.kind.clone(), n.amount_fen))
        .collect();
    assert!(
        kinds.contains(&("refund_requested".into(), Some(10_000))),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("compensation_coupon".into(), Some(1_000))),
        "{kinds:?}"
    );
    assert!(
        open(&w, "jd:S2").is_empty(),
        "the exception is resolved by the refund"
    );
    // The gateway confirms the refund later: the order is refunded.
    run(
        &mut w,
        [Event::fact(
            order_key("jd:S2"),
            at(20),
            source("in.payments"),
            EventBody::PaymentRefunded {
                refund_id: "R1".into(),
                amount_fen: 10_000,
                reason: None,
            },
        )],
    );
    assert_eq!(state(&w, "jd:S2").status, Status::Refunded);
}

#[test]
fn choosing_to_wait_holds_the_order_until_stock_arrives() {
    let mut w = two_orders_for_the_last_unit();
    run(&mut w, [choice("jd:S2", "C1", 10, Choice::Wait)]);
    assert_eq!(state(&w, "jd:S2").status, Status::OnHold);
    assert_eq!(w.stock("SKU-1").unwrap().waiting.len(), 1);
    run(&mut w, [stock("SKU-1", "WH-CENTRAL", 3, 30)]);
    let s = state(&w, "jd:S2");
    assert_eq!(s.status, Status::Routed);
    assert!(open(&w, "jd:S2").is_empty());
    assert_eq!(w.stock("SKU-1").unwrap().available("WH-CENTRAL"), 1);
}

#[test]
fn a_cancelled_order_gives_its_stock_back() {
    let mut w = two_orders_for_the_last_unit();
    run(
        &mut w,
        [Event::fact(
            order_key("tmall:S1"),
            at(15),
            source("in.orders"),
            EventBody::OrderCancelled { reason: None },
        )],
    );
    assert_eq!(w.stock("SKU-1").unwrap().available("WH-CENTRAL"), 1);
}

#[test]
fn an_unpaid_order_times_out_once_and_releases_nothing_it_never_held() {
    let mut w = world();
    let order = Order::new("store:P1");
    run(&mut w, [order.placed()]);
    // Placed at 10:00, known (screened) at 10:02: 30 minutes from 10:02.
    w.tick(at(31));
    assert_eq!(state(&w, "store:P1").status, Status::PendingPayment);
    w.tick(at(32));
    w.tick(at(45));
    let s = state(&w, "store:P1");
    assert_eq!(s.status, Status::Cancelled);
    assert_eq!(kinds_in_log(&w, "payment_timed_out"), 1);
    assert!(!s.has_timers(), "nothing left to fire");
    // The customer pays anyway: an exception to refund, and the refund is requested.
    run(&mut w, [order.paid()]);
    let s = state(&w, "store:P1");
    assert!(s.exceptions.iter().any(|e| e.code == "paid_after_timeout"));
    assert_eq!(s.refund_request.as_ref().unwrap().amount_fen, 10_000);
}

#[test]
fn a_payment_timeout_per_channel_comes_from_the_rules() {
    let mut rules = Rules::default();
    rules.payment_timeout.channels.insert(Channel::Store, 5);
    let mut w = World::new(rules, at(1));
    let mut other = Order::new("tmall:P2");
    other.buyer = "buyer-2".into();
    run(&mut w, [Order::new("store:P1").placed(), other.placed()]);
    w.tick(at(6));
    assert_eq!(state(&w, "store:P1").status, Status::Cancelled);
    assert_eq!(state(&w, "tmall:P2").status, Status::PendingPayment);
}

#[test]
fn an_order_synced_late_gets_its_whole_payment_window() {
    let mut w = World::new(Rules::default(), at(0) + Duration::hours(5));
    let late = Order::new("jd:LATE");
    run(&mut w, [late.placed()]);
    assert_eq!(
        state(&w, "jd:LATE").status,
        Status::PendingPayment,
        "not timed out on arrival"
    );
    w.tick(at(0) + Duration::hours(5) + Duration::minutes(30));
    assert_eq!(state(&w, "jd:LATE").status, Status::Cancelled);
}

#[test]
fn an_unhandled_exception_escalates_l1_l2_l3_on_its_sla() {
    let mut w = world();
    let mut order = Order::new("web:E1");
    order.district = String::new();
    run(&mut w, [order.placed(), order.paid()]);
    let level = |w: &World| state(w, "web:E1").open_exceptions().next().unwrap().level;
    let raised = state(&w, "web:E1")
        .open_exceptions()
        .next()
        .unwrap()
        .raised_at;
    let first_due = timers(state(&w, "web:E1"), &w.rules)
        .iter()
        .map(|(due, _)| *due)
        .min();
    assert_eq!(
        first_due,
        Some(raised + Duration::minutes(240)),
        "a tick may skip it until then"
    );
    w.tick(raised + Duration::minutes(239));
    assert_eq!(level(&w), Level::L1);
    w.tick(raised + Duration::minutes(240));
    assert_eq!(level(&w), Level::L2);
    w.tick(raised + Duration::minutes(240 + 479));
    assert_eq!(level(&w), Level::L2);
    w.tick(raised + Duration::minutes(240 + 480));
    assert_eq!(level(&w), Level::L3);
    w.tick(raised + Duration::minutes(10_000));
    assert_eq!(kinds_in_log(&w, "exception_escalated"), 2);
    let alerts: Vec<_> = notifications(&w, "web:E1")
        .iter()
        .filter(|n| n.kind == "exception_escalated")
        .map(|n| n.audience.clone())
        .collect();
    assert_eq!(
        alerts,
        [
            Audience::Owner {
                owner: Owner::CustomerService,
                level: Level::L2
            },
            Audience::Owner {
                owner: Owner::CustomerService,
                level: Level::L3
            }
        ]
    );
}

#[test]
fn an_exception_on_an_order_synced_late_gets_its_whole_sla() {
    // The platform syncs a mismatched payment five hours after it happened.
    let mut w = World::new(Rules::default(), at(0) + Duration::hours(5));
    let order = Order::new("jd:OLD");
    let short_payment = Event::fact(
        order_key("jd:OLD"),
        at(1),
        source("in.payments"),
        EventBody::PaymentCaptured {
            payment_id: "P".into(),
            amount_fen: 1,
            method: "alipay".into(),
        },
    );
    run(&mut w, [order.placed(), short_payment]);
    let level = |w: &World| state(w, "jd:OLD").open_exceptions().next().unwrap().level;
    w.tick(at(0) + Duration::hours(5) + Duration::minutes(239));
    assert_eq!(level(&w), Level::L1, "4 hours from when it became known");
    w.tick(at(0) + Duration::hours(9));
    assert_eq!(level(&w), Level::L2);
}

#[test]
fn actions_that_do_not_apply_are_kept_in_the_trail_and_change_nothing() {
    let mut w = world();
    let order = Order::new("tmall:X1");
    run(&mut w, [order.placed(), order.paid()]);
    let before = state(&w, "tmall:X1").status;
    run(
        &mut w,
        [action("tmall:X1", "A1", ActorRole::Operator, 5, |action| {
            EventBody::ReviewApproved { action }
        })],
    );
    let s = state(&w, "tmall:X1");
    assert_eq!(s.status, before);
    assert_eq!(s.ignored.len(), 1);
    assert_eq!(
        notifications(&w, "tmall:X1").last().unwrap().kind,
        "action_ignored"
    );
}

#[test]
fn replaying_the_log_of_all_of_it_fires_nothing_and_folds_to_the_same_bytes() {
    let mut w = two_orders_for_the_last_unit();
    run(&mut w, [choice("jd:S2", "C1", 10, Choice::Wait)]);
    let mut unpaid = Order::new("store:P9");
    unpaid.buyer = "b9".into();
    run(&mut w, [unpaid.placed()]);
    w.tick(at(50));
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

#[test]
fn a_bad_rules_file_names_the_key() {
    let error =
        Rules::from_toml("version = \"v2\"\nauto-approve-below-fen = \"lots\"\n").unwrap_err();
    assert!(error.0.contains("auto-approve-below-fen"), "{error}");
    let error = Rules::from_toml(
        "version = \"v2\"\nauto-approve-below-fen = 1\n[phone]\nblacklist = [\"123\"]\n",
    )
    .unwrap_err();
    assert!(error.0.starts_with("phone.blacklist"), "{error}");
    let error = Rules::from_toml("version = \"v2\"\nauto-approve-below-fen = 1\n[sla.kind.no_such_kind]\nl1-minutes = 1\nl2-minutes = 1\n").unwrap_err();
    assert!(error.0.contains("sla.kind"), "{error}");
    let rules = Rules::from_toml(
        "version = \"v2\"\nauto-approve-below-fen = 1\n[payment-timeout]\ndefault-minutes = 20\nchannels = { store = 5 }\n[routing]\ndefault-warehouse = \"WH-EAST\"\n[[routing.rule]]\nprovinces = [\"广东\"]\nwarehouse = \"WH-SOUTH\"\n",
    )
    .unwrap();
    assert_eq!(rules.payment_timeout.minutes(Channel::Store), 5);
    assert_eq!(rules.payment_timeout.minutes(Channel::Jd), 20);
    assert_eq!(
        rules.routing.warehouse_for(["baby"].into_iter(), "广东省"),
        "WH-SOUTH"
    );
    assert_eq!(
        rules.routing.warehouse_for(["baby"].into_iter(), "浙江省"),
        "WH-EAST"
    );
}
