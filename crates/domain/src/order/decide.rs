//! The decisions an order calls for. They are recorded in the log as events (with
//! [`Event::decision`](crate::Event::decision)) and take effect only when folded back, so a
//! replay reads them instead of deciding again.
//!
//! Two kinds, taken at two moments:
//!
//! - What the facts call for ([`react`]): screening, approval, stock requests, routing,
//!   refunds. These follow from what the order has seen, whatever the time, so they are taken
//!   right after each live event ([`crate::step`]).
//! - What time calls for ([`timers`]): the payment timeout, the review SLA and exception
//!   escalation. These
//!   decide from something *not* having happened (no payment, nobody handled it), which only
//!   the end of the log can tell: a payment may be in the log right behind the event just
//!   folded. So they fire on the timer tick ([`decide`], [`crate::fire_timers`]), on state
//!   folded to the end of the log, never after a single event.

use std::collections::BTreeMap;

use super::state::{OrderState, Placed};
use crate::event::{Approval, Choice, EventBody, Parcel, Routing, Screening, SkuQty, StockRequest};
use crate::ids::Timestamp;
use crate::rules::Rules;
use crate::screening::screen;

fn minutes(minutes: u32) -> chrono::Duration {
    chrono::Duration::minutes(i64::from(minutes))
}

/// The timers pending on an order under `rules`: when each is due and the decision it takes
/// then. [`decide`] takes the ones due; the state consumer skips an order until the first.
pub fn timers(state: &OrderState, rules: &Rules) -> Vec<(Timestamp, EventBody)> {
    let mut timers = escalation_timers(state, rules);
    timers.extend(payment_timer(state, rules));
    timers.extend(review_timer(state, rules));
    timers
}

/// An order still waiting for a person's review when the review SLA runs out alerts the
/// reviewers (`review_overdue`, which then escalates like any exception).
fn review_timer(state: &OrderState, rules: &Rules) -> Option<(Timestamp, EventBody)> {
    let approval = state.approval.as_ref()?;
    if !state.awaiting_review() || state.review_overdue.is_some() {
        return None;
    }
    Some((
        approval.decided_at + minutes(rules.review.sla_minutes),
        EventBody::ReviewOverdue {
            sla_minutes: rules.review.sla_minutes,
            rule_version: rules.version.clone(),
        },
    ))
}

/// Each open exception below the top level escalates when its SLA runs out.
fn escalation_timers(state: &OrderState, rules: &Rules) -> Vec<(Timestamp, EventBody)> {
    let mut timers = Vec::new();
    for record in state.open_exceptions() {
        let (Some(next), Some(sla)) = (
            record.level.next(),
            rules.sla.minutes(record.kind, record.level),
        ) else {
            continue;
        };
        // An exception on an order orderflow learnt of late (a platform syncing hours after the
        // fact) gets its whole SLA from when the order became known, not from the old fact.
        let since = state
            .screened_at
            .map_or(record.level_since, |known| known.max(record.level_since));
        timers.push((
            since + minutes(sla),
            EventBody::ExceptionEscalated {
                exception_id: record.exception_id.clone(),
                to: next,
                sla_minutes: sla,
                rule_version: rules.version.clone(),
            },
        ));
    }
    timers
}

/// A screened order still awaiting payment times out its channel's minutes after it was
/// placed, or after it became known if that was later.
fn payment_timer(state: &OrderState, rules: &Rules) -> Option<(Timestamp, EventBody)> {
    let (Some(placed), Some(screened)) = (&state.placed, state.screened_at) else {
        return None;
    };
    if !state.awaiting_payment() {
        return None;
    }
    let timeout = rules.payment_timeout.minutes(state.order_id.channel());
    Some((
        screened.max(placed.placed_at) + minutes(timeout),
        EventBody::PaymentTimedOut {
            timeout_minutes: timeout,
            rule_version: rules.version.clone(),
        },
    ))
}

impl OrderState {
    /// A timer may still fire: payment timeout while unpaid, escalation below L3.
    pub fn has_timers(&self) -> bool {
        let awaiting_payment = self.placed.is_some() && self.awaiting_payment();
        let review_due = self.awaiting_review() && self.review_overdue.is_none();
        awaiting_payment || review_due || self.open_exceptions().any(|e| e.level.next().is_some())
    }
}

/// The decisions an order calls for at `now`, under `rules`: the timers due, then what its
/// facts call for. Take it on state folded to the end of its log (the timer tick,
/// [`crate::fire_timers`]); after a single event take [`crate::step`], which leaves the timers
/// out. Live consumers append the decisions to the log (with
/// [`Event::decision`](crate::Event::decision)) and only folding them back takes effect; a
/// replay never calls this. Calling it again before a decision is read back yields the same
/// decision (with the same id), which the fold keeps once.
pub fn decide(state: &OrderState, rules: &Rules, now: Timestamp) -> Vec<EventBody> {
    let mut decisions: Vec<EventBody> = timers(state, rules)
        .into_iter()
        .filter(|(due, _)| now >= *due)
        .map(|(_, decision)| decision)
        .collect();
    decisions.extend(react(state, rules));
    decisions
}

/// What the facts the order has seen call for under `rules`, whatever the time: screen it,
/// refund it, approve it, reserve its stock, route it. Nothing once it is closed (cancelled or
/// shipped) but the refund of money still held.
pub(crate) fn react(state: &OrderState, rules: &Rules) -> Vec<EventBody> {
    let Some(placed) = &state.placed else {
        return Vec::new();
    };
    let closed = state.is_cancelled() || state.has_left_warehouse();
    let mut decisions = Vec::new();
    if state.screening.is_none() && !closed {
        decisions.push(screening(placed, rules));
    }
    decisions.extend(refund(state, rules));
    if closed {
        return decisions;
    }
    let blocked = state.blocked();
    if !blocked {
        decisions.extend(approval(state, placed, rules));
    }
    decisions.extend(stock_request(state, placed, rules, blocked));
    if !blocked {
        decisions.extend(routing(state, rules));
    }
    decisions
}

fn screening(placed: &Placed, rules: &Rules) -> EventBody {
    EventBody::OrderScreened(Screening {
        rule_version: rules.version.clone(),
        findings: screen(&placed.order, rules),
        duplicate_window_secs: rules.duplicate.window_secs,
        purchase_limits: rules.purchase_limits.clone(),
    })
}

/// Money held for an order that won't ship goes back: the customer chose a refund when stock
/// ran out (with a coupon for the trouble), a person rejected the order, or it was paid after
/// it timed out.
fn refund(state: &OrderState, rules: &Rules) -> Option<EventBody> {
    let outstanding = state.outstanding_fen();
    if state.refund_request.is_some() || state.has_left_warehouse() || outstanding == 0 {
        return None;
    }
    let customer_chose_refund = state
        .choice
        .as_ref()
        .is_some_and(|c| c.choice == Choice::Refund);
    let (coupon_fen, reason) = if customer_chose_refund {
        (
            rules.compensation.out_of_stock_coupon_fen,
            "the customer chose a refund: out of stock",
        )
    } else if state.review.as_ref().is_some_and(|r| !r.approved) {
        (0, "rejected at review")
    } else if state.timed_out.is_some() {
        (0, "paid after the payment timeout")
    } else {
        return None;
    };
    Some(EventBody::RefundRequested {
        amount_fen: outstanding,
        coupon_fen,
        reason: reason.to_string(),
        rule_version: rules.version.clone(),
    })
}

/// A screened, buyer-checked, paid order is approved below the threshold and goes to a person
/// at or above it.
fn approval(state: &OrderState, placed: &Placed, rules: &Rules) -> Option<EventBody> {
    let ready = state.approval.is_none()
        && state.screening.is_some()
        && state.buyer_findings.is_some()
        && !state.payments.is_empty()
        && state.outstanding_fen() > 0;
    if !ready {
        return None;
    }
    let rule = Approval {
        rule_version: rules.version.clone(),
        threshold_fen: rules.auto_approve_below_fen,
    };
    Some(if placed.order.total_fen < rules.auto_approve_below_fen {
        EventBody::OrderAutoApproved(rule)
    } else {
        EventBody::ManualReviewRequired(rule)
    })
}

/// The first stock request once approved; a second, to wait, once the customer chose to wait
/// for what was short.
fn stock_request(
    state: &OrderState,
    placed: &Placed,
    rules: &Rules,
    blocked: bool,
) -> Option<EventBody> {
    let waits = state
        .choice
        .as_ref()
        .is_some_and(|c| c.choice == Choice::Wait);
    let wait = if state.is_approved() && state.stock_requests.is_empty() && !blocked {
        false
    } else if waits && state.stock_requests.len() == 1 {
        true
    } else {
        return None;
    };
    let categories = placed.order.lines.iter().map(|line| line.category.as_str());
    let preferred = rules
        .routing
        .warehouse_for(categories, &placed.order.address.province);
    Some(EventBody::StockRequested(StockRequest {
        rule_version: rules.version.clone(),
        preferred_warehouse: preferred.to_string(),
        wait,
    }))
}

/// Once every line has stock held, one parcel per warehouse holding some of it.
fn routing(state: &OrderState, rules: &Rules) -> Option<EventBody> {
    if !state.is_allocated() || state.routing.is_some() {
        return None;
    }
    let mut parcels: BTreeMap<&str, Vec<SkuQty>> = BTreeMap::new();
    for (sku, held) in &state.reservations {
        parcels.entry(&held.warehouse).or_default().push(SkuQty {
            sku: sku.clone(),
            qty: held.qty,
        });
    }
    Some(EventBody::OrderRouted(Routing {
        rule_version: rules.version.clone(),
        parcels: parcels
            .into_iter()
            .map(|(warehouse, lines)| Parcel {
                routing_id: format!("{}@{warehouse}", state.order_id),
                warehouse: warehouse.to_string(),
                lines,
            })
            .collect(),
    }))
}
