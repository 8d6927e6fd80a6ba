//! Given events folded, when one more is stepped (quietly or live), then these effects and
//! these decisions. The pure step the state consumer runs per log record, with no I/O.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;

use orderflow_domain::*;
use support::*;

const DECIDER: &str = "orderflow-state-test";

fn live(rules: &Rules, minute: u32) -> Mode<'_> {
    Mode::Live {
        rules,
        now: at(minute),
        decider: DECIDER,
    }
}

fn order_entity() -> Entity {
    Entity::empty(&EntityKey::Order(order_id()))
}

fn given(events: &[Event]) -> Entity {
    let mut entity = order_entity();
    for event in events {
        step(&mut entity, event, Mode::Quiet).expect("a new event for the order");
    }
    entity
}

fn screened(minute: u32) -> Event {
    Event::decision(
        &order_id(),
        at(minute),
        DECIDER,
        None,
        EventBody::OrderScreened(Screening {
            rule_version: "builtin-1".into(),
            findings: Vec::new(),
            duplicate_window_secs: 600,
            purchase_limits: Vec::new(),
        }),
    )
}

fn buyer_checked(screened: &Event) -> Event {
    Event::message(
        EntityKey::Order(order_id()),
        screened,
        EventBody::BuyerChecked {
            findings: Vec::new(),
        },
    )
}

fn payment_failed(minute: u32) -> Event {
    fact(
        minute,
        EventBody::PaymentFailed {
            payment_id: "P0".into(),
            reason: "card declined".into(),
        },
    )
}

/// Placed, screened at minute 1 and checked against the buyer's other orders: ready to be
/// approved once paid. Its payment timeout is due at minute 31.
fn ready_for_payment(total_fen: Fen) -> Vec<Event> {
    let screened = screened(1);
    let checked = buyer_checked(&screened);
    vec![placed(total_fen), screened, checked]
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|event| event.body.kind()).collect()
}

#[test]
fn quiet_mode_yields_the_effects_of_the_fold_and_no_decisions() {
    let mut entity = given(&[placed(10_000)]);
    let step = step(&mut entity, &screened(1), Mode::Quiet).expect("new");
    let appended: Vec<_> = step
        .effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Append(message) => Some((message.key.to_string(), message.body.kind())),
            _ => None,
        })
        .collect();
    assert_eq!(
        appended,
        [("buyer:buyer-1".to_string(), "buyer_check_requested")]
    );
    assert!(step.decisions.is_empty());
}

#[test]
fn live_mode_on_a_paid_order_under_the_threshold_decides_auto_approval_caused_by_the_payment() {
    let rules = Rules::default();
    let mut entity = given(&ready_for_payment(49_900));
    let payment = captured(5, "P1", 49_900);
    let step = step(&mut entity, &payment, live(&rules, 6)).expect("new");
    assert!(step.effects.is_empty(), "{:?}", step.effects);
    assert_eq!(kinds(&step.decisions), ["order_auto_approved"]);
    let decision = &step.decisions[0];
    assert_eq!(decision.source.caused_by.as_ref(), Some(&payment.event_id));
    assert_eq!(decision.source.origin, DECIDER);
    assert_eq!(decision.occurred_at, at(6));
    assert_eq!(decision.key, EntityKey::Order(order_id()));
    assert_eq!(decision.body.rule_version(), Some("builtin-1"));
}

#[test]
fn live_mode_at_or_over_the_threshold_decides_manual_review() {
    let rules = Rules::default();
    let mut entity = given(&ready_for_payment(50_000));
    let step = step(&mut entity, &captured(5, "P1", 50_000), live(&rules, 6)).expect("new");
    assert_eq!(kinds(&step.decisions), ["manual_review_required"]);
}

#[test]
fn the_same_payment_stepped_quietly_decides_nothing_and_folds_the_same() {
    let rules = Rules::default();
    let mut quiet = given(&ready_for_payment(49_900));
    let mut live_entity = quiet.clone();
    let payment = captured(5, "P1", 49_900);
    let quiet_step = step(&mut quiet, &payment, Mode::Quiet).expect("new");
    let live_step = step(&mut live_entity, &payment, live(&rules, 6)).expect("new");
    assert!(quiet_step.decisions.is_empty());
    assert_eq!(quiet_step.effects, live_step.effects);
    assert_eq!(
        quiet, live_entity,
        "deciding changes nothing until folded back"
    );
}

#[test]
fn a_duplicate_yields_none_and_changes_nothing() {
    let rules = Rules::default();
    let mut entity = given(&ready_for_payment(49_900));
    step(&mut entity, &captured(5, "P1", 49_900), live(&rules, 6)).expect("new");
    let before = entity.clone();
    assert!(step(&mut entity, &captured(5, "P1", 49_900), live(&rules, 7)).is_none());
    assert_eq!(entity, before);
}

#[test]
fn an_event_for_another_entity_yields_none() {
    let rules = Rules::default();
    let mut entity = given(&[placed(100)]);
    let stock = Event::stock_level("SKU-1", "WH-HZ", 3, at(1), Source::origin("in.inventory"));
    assert!(step(&mut entity, &stock, live(&rules, 2)).is_none());
    let mut other = Entity::empty(&EntityKey::Order("jd:OTHER".parse().unwrap()));
    assert!(step(&mut other, &placed(100), live(&rules, 2)).is_none());
}

#[test]
fn a_live_step_on_a_sku_replies_to_the_order_and_decides_nothing() {
    let rules = Rules::default();
    let mut sku = Entity::empty(&EntityKey::Stock("SKU-1".into()));
    let request = Event::message(
        EntityKey::Stock("SKU-1".into()),
        &placed(100),
        EventBody::StockReservationRequested {
            order_id: order_id(),
            qty: 1,
            preferred_warehouse: "WH-HZ".into(),
            wait: false,
        },
    );
    let step = step(&mut sku, &request, live(&rules, 2)).expect("new");
    assert!(step.decisions.is_empty());
    assert!(matches!(
        &step.effects[..],
        [Effect::Append(reply)] if reply.body.kind() == "stock_reserved"
    ));
}

#[test]
fn a_live_step_takes_no_timer_even_past_its_deadline_the_tick_does() {
    let rules = Rules::default();
    let mut entity = given(&ready_for_payment(10_000));
    let step = step(&mut entity, &payment_failed(35), live(&rules, 40)).expect("new");
    assert!(step.decisions.is_empty(), "{:?}", kinds(&step.decisions));
    let Entity::Order(order) = &entity else {
        unreachable!("an order key")
    };
    assert!(fire_timers(order, &rules, at(30), DECIDER).is_empty());
    let fired = fire_timers(order, &rules, at(40), DECIDER);
    assert_eq!(kinds(&fired), ["payment_timed_out"]);
    assert_eq!(fired[0].source.caused_by, None);
    assert_eq!(fired[0].occurred_at, at(40));
}

/// One partition of the order event log and the live state consumer reading it, as with
/// Kafka: each record is stepped in log order, and what it appends (messages, decisions) goes
/// to the end of the log, behind records already there.
struct Partition {
    rules: Rules,
    log: Vec<Event>,
    read: usize,
    entities: BTreeMap<EntityKey, Entity>,
}

impl Partition {
    fn new() -> Partition {
        Partition {
            rules: Rules::default(),
            log: Vec::new(),
            read: 0,
            entities: BTreeMap::new(),
        }
    }

    /// Intake consumers append facts.
    fn append(&mut self, events: impl IntoIterator<Item = Event>) {
        self.log.extend(events);
    }

    /// Reads to the end of the log with the clock at `minute`.
    fn consume(&mut self, minute: u32) {
        while let Some(event) = self.log.get(self.read).cloned() {
            self.read += 1;
            let entity = self
                .entities
                .entry(event.key.clone())
                .or_insert_with(|| Entity::empty(&event.key));
            let Some(step) = step(entity, &event, live(&self.rules, minute)) else {
                continue;
            };
            for effect in step.effects {
                if let Effect::Append(message) = effect {
                    self.log.push(message);
                }
            }
            self.log.extend(step.decisions);
        }
    }

    /// The timer tick, on state folded to the end of the log.
    fn tick(&mut self, minute: u32) {
        assert_eq!(
            self.read,
            self.log.len(),
            "timers fire on state folded to the end"
        );
        let order = self.order().clone();
        let fired = fire_timers(&order, &self.rules, at(minute), DECIDER);
        self.log.extend(fired);
        self.consume(minute);
    }

    fn order(&self) -> &OrderState {
        match self.entities.get(&EntityKey::Order(order_id())) {
            Some(Entity::Order(order)) => order,
            _ => panic!("no order folded"),
        }
    }

    fn logged(&self, kind: &str) -> usize {
        self.log.iter().filter(|e| e.body.kind() == kind).count()
    }
}

/// Issue 11, item 8: a declined attempt read after the deadline used to fire the timeout from
/// the step, appended behind the capture already in the log; the fold then ignored it, and the
/// log showed a timeout on a paid order.
#[test]
fn a_declined_attempt_then_a_capture_read_after_the_deadline_never_times_out() {
    let mut partition = Partition::new();
    partition.append([placed(10_000)]);
    partition.consume(1);
    assert_eq!(
        partition.order().screened_at,
        Some(at(1)),
        "due at minute 31"
    );

    partition.append([payment_failed(35), captured(36, "P1", 10_000)]);
    partition.consume(40);
    partition.tick(41);

    assert_eq!(partition.logged("payment_timed_out"), 0);
    let order = partition.order();
    assert_eq!(order.timed_out, None);
    assert_eq!(order.failed_payments.len(), 1);
    assert!(order.open_exceptions().next().is_none());
    assert_eq!(order.status, Status::Routed);
}

#[test]
fn a_timeout_in_the_log_before_a_late_payment_still_raises_paid_after_timeout() {
    let mut partition = Partition::new();
    partition.append([placed(10_000)]);
    partition.consume(1);
    partition.append([payment_failed(20)]);
    partition.consume(20);
    partition.tick(31);
    assert_eq!(partition.logged("payment_timed_out"), 1);
    assert_eq!(partition.order().status, Status::Cancelled);

    partition.append([captured(36, "P1", 10_000)]);
    partition.consume(40);
    let order = partition.order();
    let codes: Vec<_> = order.open_exceptions().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["paid_after_timeout"]);
    assert_eq!(order.refund_request.as_ref().unwrap().amount_fen, 10_000);
}
