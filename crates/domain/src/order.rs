//! One order: its state, how each event changes it, and the decisions it calls for.
//!
//! The state records *facts* (placed, payments, shipments, cancel, ...) and derives the status
//! and the open exceptions from the set of facts, not from the order they arrived in. That is
//! what makes out-of-order arrival (a shipment seen before its payment) safe: the late fact
//! fills its place and the status follows. An exception raised by an arrival order (shipped
//! before paid) is resolved by the fact that was late.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::effect::{Audience, Notification, RoutingInstruction, ShipTo};
use crate::event::{
    Action, Approval, BuyerCheck, Choice, Event, EventBody, Finding, OrderPlaced, Parcel, Routing,
    Screening, SkuQty, StockRequest,
};
use crate::exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Resolution,
};
use crate::{Effect, EntityKey, EventId, Fen, OrderId, Rules, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    PendingPayment,
    Paid,
    UnderReview,
    Approved,
    Allocated,
    Routed,
    AcceptedByWarehouse,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
    Refunded,
    Returned,
    /// A blocking exception is open on an order that hasn't shipped.
    OnHold,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::PendingPayment => "pending_payment",
            Status::Paid => "paid",
            Status::UnderReview => "under_review",
            Status::Approved => "approved",
            Status::Allocated => "allocated",
            Status::Routed => "routed",
            Status::AcceptedByWarehouse => "accepted_by_warehouse",
            Status::Shipped => "shipped",
            Status::Delivered => "delivered",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
            Status::Returned => "returned",
            Status::OnHold => "on_hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub order_id: OrderId,
    /// Number of distinct events folded in; grows by one per event that counted.
    pub version: u64,
    /// How many of them came from outside (facts and actions), not from orderflow's own
    /// decisions and messages.
    pub facts: u64,
    pub status: Status,
    pub placed: Option<Placed>,
    pub payments: Vec<Payment>,
    pub failed_payments: Vec<FailedPayment>,
    pub refunds: Vec<Refund>,
    pub approval: Option<ApprovalDecision>,
    pub shipments: Vec<Shipment>,
    pub cancelled: Option<Cancellation>,
    pub completed_at: Option<Timestamp>,
    pub exceptions: Vec<ExceptionRecord>,
    pub updated_at: Option<Timestamp>,
    pub screening: Option<Screening>,
    /// When screening was decided: when orderflow first knew the order. The payment timeout
    /// runs from here if the order arrived late, so a platform that synced it hours after it
    /// was placed doesn't see it cancelled before its payment can arrive.
    pub screened_at: Option<Timestamp>,
    /// What the buyer check found (duplicates, purchase limits); `None` until it answered.
    pub buyer_findings: Option<Vec<Finding>>,
    pub review: Option<Review>,
    /// The stock requests decided: the first one at approval, then one to wait.
    pub stock_requests: Vec<StockRequest>,
    /// Per sku, what is held for this order and where.
    pub reservations: BTreeMap<String, Held>,
    /// Per sku, the shortage found at review.
    pub shortages: BTreeMap<String, Shortage>,
    /// Skus asked to let go of what they hold or queue for this order.
    pub released: BTreeSet<String>,
    pub choice: Option<CustomerDecision>,
    pub routing: Option<Routing>,
    pub accepted: Vec<Accepted>,
    pub timed_out: Option<Timestamp>,
    pub refund_request: Option<RefundRequest>,
    /// Actions that didn't apply to the order as it was (approving an order not under
    /// review, resolving an unknown exception): kept for the audit trail.
    pub ignored: Vec<Ignored>,
    /// Ids of every event folded in: the second copy of a fact is recognised here.
    pub applied: BTreeSet<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub approved: bool,
    pub action: Action,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub warehouse: String,
    pub qty: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub qty: u64,
    pub available: u64,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDecision {
    pub choice: Choice,
    pub action: Action,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub warehouse: String,
    pub routing_id: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub amount_fen: Fen,
    pub coupon_fen: Fen,
    pub reason: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub event_id: EventId,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub placed_at: Timestamp,
    #[serde(flatten)]
    pub order: OrderPlaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub amount_fen: Fen,
    pub method: String,
    pub captured_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPayment {
    pub payment_id: String,
    pub reason: String,
    pub failed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub amount_fen: Fen,
    pub reason: Option<String>,
    pub refunded_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    AutoApproved,
    ManualReview,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub outcome: ApprovalOutcome,
    #[serde(flatten)]
    pub rule: Approval,
    pub decided_at: Timestamp,
}

/// One parcel, identified by carrier and tracking number; its facts may arrive in any order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_no: String,
    pub warehouse: Option<String>,
    pub dispatched_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub returned_at: Option<Timestamp>,
    pub return_warehouse: Option<String>,
    pub return_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub reason: Option<String>,
    pub cancelled_at: Timestamp,
}

impl OrderState {
    pub fn new(order_id: OrderId) -> OrderState {
        OrderState {
            order_id,
            version: 0,
            facts: 0,
            status: Status::PendingPayment,
            placed: None,
            payments: Vec::new(),
            failed_payments: Vec::new(),
            refunds: Vec::new(),
            approval: None,
            shipments: Vec::new(),
            cancelled: None,
            completed_at: None,
            exceptions: Vec::new(),
            updated_at: None,
            screening: None,
            screened_at: None,
            buyer_findings: None,
            review: None,
            stock_requests: Vec::new(),
            reservations: BTreeMap::new(),
            shortages: BTreeMap::new(),
            released: BTreeSet::new(),
            choice: None,
            routing: None,
            accepted: Vec::new(),
            timed_out: None,
            refund_request: None,
            ignored: Vec::new(),
            applied: BTreeSet::new(),
        }
    }

    pub fn paid_fen(&self) -> Fen {
        self.payments.iter().map(|payment| payment.amount_fen).sum()
    }

    pub fn refunded_fen(&self) -> Fen {
        self.refunds.iter().map(|refund| refund.amount_fen).sum()
    }

    pub fn open_exceptions(&self) -> impl Iterator<Item = &ExceptionRecord> {
        self.exceptions.iter().filter(|record| record.is_open())
    }

    fn has_left_warehouse(&self) -> bool {
        self.shipments
            .iter()
            .any(|shipment| shipment.dispatched_at.is_some() || shipment.delivered_at.is_some())
    }

    /// Cancelled by the platform, by the payment timeout, at review or by a refund request.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_some()
            || self.timed_out.is_some()
            || self.refund_request.is_some()
            || self.review.as_ref().is_some_and(|review| !review.approved)
    }

    /// Approved automatically or by a person.
    pub fn is_approved(&self) -> bool {
        match self.approval.as_ref().map(|a| a.outcome) {
            Some(ApprovalOutcome::AutoApproved) => true,
            Some(ApprovalOutcome::ManualReview) => {
                self.review.as_ref().is_some_and(|review| review.approved)
            }
            None => false,
        }
    }

    /// Quantity per sku over all lines.
    pub fn lines_by_sku(&self) -> Vec<SkuQty> {
        let mut qty: BTreeMap<&str, u64> = BTreeMap::new();
        for line in self.placed.iter().flat_map(|p| &p.order.lines) {
            *qty.entry(&line.sku).or_default() += u64::from(line.qty);
        }
        qty.into_iter()
            .map(|(sku, qty)| SkuQty {
                sku: sku.to_string(),
                qty,
            })
            .collect()
    }

    /// Every line has stock held for it.
    pub fn is_allocated(&self) -> bool {
        self.is_approved()
            && !self.stock_requests.is_empty()
            && self
                .lines_by_sku()
                .iter()
                .all(|line| self.reservations.contains_key(&line.sku))
    }

    fn blocked(&self) -> bool {
        self.open_exceptions().any(|e| e.kind.blocks_fulfilment())
    }

    /// A timer may still fire: payment timeout while unpaid, escalation below L3.
    pub fn has_timers(&self) -> bool {
        let awaiting_payment = self.placed.is_some()
            && self.payments.is_empty()
            && !self.is_cancelled()
            && !self.has_left_warehouse();
        awaiting_payment || self.open_exceptions().any(|e| e.level.next().is_some())
    }

    /// Folds one event in. `None` if it was already applied or isn't an order event; else what
    /// folding it produced: exception changes, messages to skus and buyers, notifications,
    /// routing instructions.
    pub fn apply(&mut self, event: &Event) -> Option<Vec<Effect>> {
        let for_orders = !matches!(
            event.body,
            EventBody::StockLevelChanged { .. }
                | EventBody::BuyerCheckRequested(_)
                | EventBody::StockReservationRequested { .. }
                | EventBody::StockReleaseRequested { .. }
        );
        if event.key != EntityKey::Order(self.order_id.clone())
            || !for_orders
            || !self.applied.insert(event.event_id.clone())
        {
            return None;
        }
        self.version += 1;
        self.facts += u64::from(!event.body.is_derived());
        self.updated_at = self.updated_at.max(Some(event.occurred_at));
        let mut effects = Vec::new();
        self.record_fact(event, &mut effects);
        effects.extend(
            self.reconcile_exceptions(event)
                .into_iter()
                .map(Effect::Exception),
        );
        self.status = self.derive_status();
        self.release_stock(event, &mut effects);
        Some(effects)
    }

    /// Once the order is cancelled or has left the warehouse, every sku it asked for lets go.
    fn release_stock(&mut self, cause: &Event, effects: &mut Vec<Effect>) {
        let done = self.is_cancelled() || self.has_left_warehouse();
        if !done || self.stock_requests.is_empty() {
            return;
        }
        let reason = if self.has_left_warehouse() {
            "shipped"
        } else {
            "cancelled"
        };
        for line in self.lines_by_sku() {
            if self.released.insert(line.sku.clone()) {
                effects.push(Effect::Append(Event::message(
                    EntityKey::Stock(line.sku),
                    cause,
                    EventBody::StockReleaseRequested {
                        order_id: self.order_id.clone(),
                        reason: reason.to_string(),
                    },
                )));
            }
        }
    }

    fn ignore(&mut self, event: &Event, reason: &str, effects: &mut Vec<Effect>) {
        self.ignored.push(Ignored {
            event_id: event.event_id.clone(),
            kind: event.body.kind().to_string(),
            reason: reason.to_string(),
        });
        if let Some(action) = event.body.action() {
            effects.push(self.notify(
                event,
                "action_ignored",
                Audience::Operator {
                    actor_id: action.actor.id.clone(),
                },
                format!("{} ignored: {reason}", event.body.kind()),
            ));
        }
    }

    fn notify(&self, cause: &Event, kind: &str, audience: Audience, message: String) -> Effect {
        Effect::Notify(Notification {
            notification_id: EventId::derive(&["notification", kind, cause.event_id.as_str()]),
            order_id: self.order_id.clone(),
            audience,
            kind: kind.to_string(),
            message,
            choices: Vec::new(),
            amount_fen: None,
            at: cause.occurred_at,
        })
    }

    fn customer(&self) -> Audience {
        Audience::Customer {
            buyer_id: self
                .placed
                .as_ref()
                .map(|p| p.order.buyer_id.clone())
                .unwrap_or_default(),
        }
    }

    fn open_exception_mut(&mut self, exception_id: &EventId) -> Option<&mut ExceptionRecord> {
        self.exceptions
            .iter_mut()
            .find(|e| e.exception_id == *exception_id && e.is_open())
    }

    fn record_fact(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let at = event.occurred_at;
        match &event.body {
            EventBody::OrderPlaced(order) => {
                self.placed.get_or_insert_with(|| Placed {
                    placed_at: at,
                    order: order.clone(),
                });
            }
            EventBody::OrderCancelled { reason } => {
                self.cancelled.get_or_insert_with(|| Cancellation {
                    reason: reason.clone(),
                    cancelled_at: at,
                });
            }
            EventBody::OrderCompleted => {
                self.completed_at.get_or_insert(at);
            }
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            } => self.payments.push(Payment {
                payment_id: payment_id.clone(),
                amount_fen: *amount_fen,
                method: method.clone(),
                captured_at: at,
            }),
            EventBody::PaymentFailed { payment_id, reason } => {
                self.failed_payments.push(FailedPayment {
                    payment_id: payment_id.clone(),
                    reason: reason.clone(),
                    failed_at: at,
                })
            }
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            } => self.refunds.push(Refund {
                refund_id: refund_id.clone(),
                amount_fen: *amount_fen,
                reason: reason.clone(),
                refunded_at: at,
            }),
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            } => {
                let shipment = self.shipment(carrier, tracking_no);
                shipment.warehouse = Some(warehouse.clone());
                shipment.dispatched_at = Some(at);
            }
            EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            } => self.shipment(carrier, tracking_no).delivered_at = Some(at),
            EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            } => {
                let shipment = self.shipment(carrier, tracking_no);
                shipment.returned_at = Some(at);
                shipment.return_warehouse = Some(warehouse.clone());
                shipment.return_reason = reason.clone();
            }
            EventBody::OrderAutoApproved(rule) => {
                self.decide_approval(ApprovalOutcome::AutoApproved, rule, at)
            }
            EventBody::ManualReviewRequired(rule) => {
                self.decide_approval(ApprovalOutcome::ManualReview, rule, at)
            }
            EventBody::WarehouseAccepted {
                warehouse,
                routing_id,
            } => self.accepted.push(Accepted {
                warehouse: warehouse.clone(),
                routing_id: routing_id.clone(),
                at,
            }),
            EventBody::ReviewApproved { action } | EventBody::ReviewRejected { action } => {
                let awaiting = self.approval.as_ref().map(|a| a.outcome)
                    == Some(ApprovalOutcome::ManualReview)
                    && self.review.is_none()
                    && !self.is_cancelled();
                if awaiting {
                    self.review = Some(Review {
                        approved: matches!(event.body, EventBody::ReviewApproved { .. }),
                        action: action.clone(),
                        at,
                    });
                } else {
                    self.ignore(event, "the order is not waiting for a review", effects);
                }
            }
            EventBody::ExceptionResolved {
                action,
                exception_id,
            } => match self.open_exception_mut(exception_id) {
                Some(record) => {
                    record.resolution = Some(Resolution {
                        resolved_at: at,
                        resolved_by: event.event_id.clone(),
                        note: action.note.clone().unwrap_or_default(),
                        actor: Some(action.actor.clone()),
                    });
                    let record = record.clone();
                    effects.push(Effect::Exception(
                        self.change(ExceptionAction::Resolved, &record),
                    ));
                }
                None => self.ignore(event, "no open exception has this id", effects),
            },
            EventBody::ExceptionAssigned {
                exception_id,
                assignee,
                ..
            } => match self.open_exception_mut(exception_id) {
                Some(record) => {
                    record.assignee = Some(assignee.clone());
                    let record = record.clone();
                    effects.push(Effect::Exception(
                        self.change(ExceptionAction::Assigned, &record),
                    ));
                }
                None => self.ignore(event, "no open exception has this id", effects),
            },
            EventBody::CustomerChoice { action, choice } => {
                let asked = self.unreserved_shortages().next().is_some() && !self.is_cancelled();
                if asked && self.choice.is_none() {
                    self.choice = Some(CustomerDecision {
                        choice: *choice,
                        action: action.clone(),
                        at,
                    });
                } else {
                    self.ignore(event, "the customer was not asked to choose", effects);
                }
            }
            EventBody::OrderScreened(screening) => {
                if self.screening.is_none() {
                    self.screening = Some(screening.clone());
                    self.screened_at = Some(at);
                    if let Some(check) = self.buyer_check(screening) {
                        let buyer = EntityKey::Buyer(check.0);
                        let body = EventBody::BuyerCheckRequested(check.1);
                        effects.push(Effect::Append(Event::message(buyer, event, body)));
                    }
                }
            }
            EventBody::BuyerChecked { findings } => {
                self.buyer_findings.get_or_insert_with(|| findings.clone());
            }
            EventBody::StockRequested(request) => {
                let first = self.stock_requests.is_empty();
                self.stock_requests.push(request.clone());
                let wanted: Vec<SkuQty> = if first {
                    self.lines_by_sku()
                } else {
                    let short: BTreeSet<String> =
                        self.unreserved_shortages().map(str::to_string).collect();
                    self.lines_by_sku()
                        .into_iter()
                        .filter(|line| short.contains(&line.sku))
                        .collect()
                };
                for line in wanted {
                    effects.push(Effect::Append(Event::message(
                        EntityKey::Stock(line.sku),
                        event,
                        EventBody::StockReservationRequested {
                            order_id: self.order_id.clone(),
                            qty: line.qty,
                            preferred_warehouse: request.preferred_warehouse.clone(),
                            wait: request.wait,
                        },
                    )));
                }
            }
            EventBody::StockReserved {
                sku,
                warehouse,
                qty,
            } => {
                self.reservations.insert(
                    sku.clone(),
                    Held {
                        warehouse: warehouse.clone(),
                        qty: *qty,
                    },
                );
                // Held after the order let go (a waiting order served as it was cancelled).
                if self.released.remove(sku) {
                    self.released.insert(sku.clone());
                    effects.push(Effect::Append(Event::message(
                        EntityKey::Stock(sku.clone()),
                        event,
                        EventBody::StockReleaseRequested {
                            order_id: self.order_id.clone(),
                            reason: "held after the order let go".into(),
                        },
                    )));
                }
            }
            EventBody::StockShortage {
                sku,
                qty,
                available,
            } => {
                let first = self.shortages.is_empty();
                self.shortages.insert(
                    sku.clone(),
                    Shortage {
                        qty: *qty,
                        available: *available,
                        at,
                    },
                );
                if first && !self.is_cancelled() {
                    let mut notification = self.notify(
                        event,
                        "out_of_stock_choice",
                        self.customer(),
                        format!(
                            "{sku} is out of stock: wait for new stock, or take a refund and a coupon"
                        ),
                    );
                    if let Effect::Notify(n) = &mut notification {
                        n.choices =
                            vec![Choice::Wait.as_str().into(), Choice::Refund.as_str().into()];
                    }
                    effects.push(notification);
                }
            }
            EventBody::OrderRouted(routing) => {
                if self.routing.is_none() {
                    self.routing = Some(routing.clone());
                    if let Some(placed) = &self.placed {
                        for parcel in &routing.parcels {
                            effects.push(Effect::Route(RoutingInstruction {
                                routing_id: parcel.routing_id.clone(),
                                order_id: self.order_id.clone(),
                                channel: self.order_id.channel(),
                                warehouse: parcel.warehouse.clone(),
                                lines: parcel.lines.clone(),
                                ship_to: ShipTo {
                                    phone: placed.order.phone.clone(),
                                    address: placed.order.address.clone(),
                                },
                                rule_version: routing.rule_version.clone(),
                                routed_at: at,
                            }));
                        }
                    }
                }
            }
            EventBody::PaymentTimedOut {
                timeout_minutes, ..
            } => {
                // A payment folded before the timer's decision wins: the order stays.
                if self.payments.is_empty() && self.timed_out.is_none() {
                    self.timed_out = Some(at);
                    effects.push(self.notify(
                        event,
                        "payment_timed_out",
                        self.customer(),
                        format!(
                            "not paid within {timeout_minutes} minutes: the order is cancelled"
                        ),
                    ));
                }
            }
            EventBody::ExceptionEscalated {
                exception_id, to, ..
            } => {
                if let Some(record) = self.open_exception_mut(exception_id) {
                    if record.level < *to {
                        record.level = *to;
                        record.level_since = at;
                        let record = record.clone();
                        effects.push(Effect::Exception(
                            self.change(ExceptionAction::Escalated, &record),
                        ));
                        effects.push(self.notify(
                            event,
                            "exception_escalated",
                            Audience::Owner {
                                owner: record.owner,
                                level: record.level,
                            },
                            format!(
                                "{} ({}) not handled in time, now at {}",
                                record.kind.as_str(),
                                record.code,
                                record.level.as_str()
                            ),
                        ));
                    }
                }
            }
            EventBody::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                ..
            } => {
                if self.refund_request.is_none() {
                    self.refund_request = Some(RefundRequest {
                        amount_fen: *amount_fen,
                        coupon_fen: *coupon_fen,
                        reason: reason.clone(),
                        at,
                    });
                    let mut refund = self.notify(
                        event,
                        "refund_requested",
                        self.customer(),
                        format!("{amount_fen} fen will be refunded: {reason}"),
                    );
                    if let Effect::Notify(n) = &mut refund {
                        n.amount_fen = Some(*amount_fen);
                    }
                    effects.push(refund);
                    if *coupon_fen > 0 {
                        let mut coupon = self.notify(
                            event,
                            "compensation_coupon",
                            self.customer(),
                            format!("a {coupon_fen} fen coupon for the trouble"),
                        );
                        if let Effect::Notify(n) = &mut coupon {
                            n.amount_fen = Some(*coupon_fen);
                        }
                        effects.push(coupon);
                    }
                }
            }
            EventBody::StockLevelChanged { .. }
            | EventBody::BuyerCheckRequested(_)
            | EventBody::StockReservationRequested { .. }
            | EventBody::StockReleaseRequested { .. } => {}
        }
    }

    /// The buyer and the request for the buyer check screening asks for.
    fn buyer_check(&self, screening: &Screening) -> Option<(String, BuyerCheck)> {
        let placed = self.placed.as_ref()?;
        let lines = self.lines_by_sku();
        let basket = lines
            .iter()
            .map(|line| format!("{}x{}", line.sku, line.qty))
            .collect::<Vec<_>>()
            .join(",");
        Some((
            placed.order.buyer_id.clone(),
            BuyerCheck {
                order_id: self.order_id.clone(),
                basket,
                placed_at: placed.placed_at,
                lines,
                rule_version: screening.rule_version.clone(),
                duplicate_window_secs: screening.duplicate_window_secs,
                purchase_limits: screening.purchase_limits.clone(),
            },
        ))
    }

    /// Skus found short that have no stock held yet.
    fn unreserved_shortages(&self) -> impl Iterator<Item = &str> {
        self.shortages
            .keys()
            .filter(|sku| !self.reservations.contains_key(*sku))
            .map(String::as_str)
    }

    fn decide_approval(&mut self, outcome: ApprovalOutcome, rule: &Approval, at: Timestamp) {
        self.approval.get_or_insert_with(|| ApprovalDecision {
            outcome,
            rule: rule.clone(),
            decided_at: at,
        });
    }

    fn shipment(&mut self, carrier: &str, tracking_no: &str) -> &mut Shipment {
        let index = match self
            .shipments
            .iter()
            .position(|s| s.carrier == carrier && s.tracking_no == tracking_no)
        {
            Some(index) => index,
            None => {
                self.shipments.push(Shipment {
                    carrier: carrier.to_string(),
                    tracking_no: tracking_no.to_string(),
                    warehouse: None,
                    dispatched_at: None,
                    delivered_at: None,
                    returned_at: None,
                    return_warehouse: None,
                    return_reason: None,
                });
                self.shipments.len() - 1
            }
        };
        &mut self.shipments[index]
    }

    /// The conditions on the current set of facts that call for a person, by code.
    fn conditions(&self) -> Vec<(ExceptionKind, String, String)> {
        let mut found: Vec<(ExceptionKind, String, String)> = self
            .screening
            .iter()
            .flat_map(|screening| &screening.findings)
            .chain(self.buyer_findings.iter().flatten())
            .map(|finding| (finding.kind, finding.code.clone(), finding.detail.clone()))
            .collect();
        let short: Vec<&str> = self.unreserved_shortages().collect();
        if !short.is_empty() && !self.is_cancelled() {
            found.push((
                ExceptionKind::OutOfStockAtReview,
                "out_of_stock".into(),
                format!("no stock at review for {}", short.join(", ")),
            ));
        }
        if self.timed_out.is_some() && !self.payments.is_empty() {
            found.push((
                ExceptionKind::PaymentTimeout,
                "paid_after_timeout".into(),
                "paid after the order was cancelled for the payment timeout".into(),
            ));
        }
        let mut push =
            |kind, code: &str, detail: String| found.push((kind, code.to_string(), detail));
        let paid = self.paid_fen();
        let refunded = self.refunded_fen();
        let shipped = self.has_left_warehouse();
        if let Some(placed) = &self.placed {
            let total = placed.order.total_fen;
            if !self.payments.is_empty() && !self.payments.iter().any(|p| p.amount_fen == total) {
                push(
                    ExceptionKind::AmountMismatch,
                    "paid_amount_differs",
                    format!("paid {paid} fen in total, order total is {total} fen"),
                );
            }
            if self.payments.len() > 1 && paid.saturating_sub(refunded) > total {
                push(
                    ExceptionKind::DuplicatePayment,
                    "paid_twice",
                    format!(
                        "{} payments captured ({paid} fen) for an order of {total} fen",
                        self.payments.len()
                    ),
                );
            }
        }
        if refunded > paid {
            push(
                ExceptionKind::AmountMismatch,
                "refund_exceeds_payment",
                format!("refunded {refunded} fen, captured {paid} fen"),
            );
        }
        if shipped && self.payments.is_empty() && self.cancelled.is_none() {
            push(
                ExceptionKind::IllegalTransition,
                "shipped_before_paid",
                "a shipment left the warehouse for an order with no payment".to_string(),
            );
        }
        if self.cancelled.is_some() && shipped {
            push(
                ExceptionKind::IllegalTransition,
                "shipped_after_cancel",
                "a shipment left the warehouse for a cancelled order".to_string(),
            );
        }
        if self.cancelled.is_some() && self.shipments.iter().any(|s| s.delivered_at.is_some()) {
            push(
                ExceptionKind::IllegalTransition,
                "delivered_after_cancel",
                "a parcel was delivered for a cancelled order".to_string(),
            );
        }
        found
    }

    /// Raises exceptions whose condition now holds and resolves the ones whose condition is
    /// gone. Each condition has one deterministic id per order, so it is raised at most once.
    fn reconcile_exceptions(&mut self, event: &Event) -> Vec<ExceptionChange> {
        let order_text = self.order_id.to_string();
        let holding = self.conditions();
        let mut changes = Vec::new();
        for (kind, code, detail) in &holding {
            let exception_id = EventId::derive(&["exception", &order_text, code.as_str()]);
            if self
                .exceptions
                .iter()
                .any(|e| e.exception_id == exception_id)
            {
                continue;
            }
            let record = ExceptionRecord {
                exception_id,
                kind: *kind,
                code: code.clone(),
                owner: kind.owner(),
                level: kind.initial_level(),
                detail: detail.clone(),
                raised_at: event.occurred_at,
                raised_by: event.event_id.clone(),
                level_since: event.occurred_at,
                assignee: None,
                resolution: None,
            };
            changes.push(self.change(ExceptionAction::Raised, &record));
            self.exceptions.push(record);
        }
        let order_id = self.order_id.clone();
        for record in self.exceptions.iter_mut().filter(|e| e.is_open()) {
            if holding.iter().any(|(_, code, _)| *code == record.code) {
                continue;
            }
            record.resolution = Some(Resolution {
                resolved_at: event.occurred_at,
                resolved_by: event.event_id.clone(),
                note: format!("condition cleared by {}", event.body.kind()),
                actor: None,
            });
            changes.push(ExceptionChange {
                order_id: order_id.clone(),
                action: ExceptionAction::Resolved,
                exception: record.clone(),
            });
        }
        changes
    }

    fn change(&self, action: ExceptionAction, record: &ExceptionRecord) -> ExceptionChange {
        ExceptionChange {
            order_id: self.order_id.clone(),
            action,
            exception: record.clone(),
        }
    }

    fn derive_status(&self) -> Status {
        let shipped = self.has_left_warehouse();
        let paid = self.paid_fen();
        if self.shipments.iter().any(|s| s.returned_at.is_some()) {
            return Status::Returned;
        }
        if !shipped && paid > 0 && self.refunded_fen() >= paid {
            return Status::Refunded;
        }
        if !shipped && self.is_cancelled() {
            return Status::Cancelled;
        }
        let main_line = if self.completed_at.is_some() {
            Status::Completed
        } else if self.shipments.iter().any(|s| s.delivered_at.is_some()) {
            Status::Delivered
        } else if shipped {
            Status::Shipped
        } else if !self.accepted.is_empty() {
            Status::AcceptedByWarehouse
        } else if self.routing.is_some() {
            Status::Routed
        } else if self.is_allocated() {
            Status::Allocated
        } else if self.is_approved() {
            Status::Approved
        } else if self.approval.is_some() {
            Status::UnderReview
        } else if paid > 0 {
            Status::Paid
        } else {
            Status::PendingPayment
        };
        let holdable = matches!(
            main_line,
            Status::PendingPayment
                | Status::Paid
                | Status::UnderReview
                | Status::Approved
                | Status::Allocated
        );
        if holdable && self.blocked() {
            Status::OnHold
        } else {
            main_line
        }
    }

    /// What `order-state` carries: the order as a dashboard or WMS needs it.
    pub fn snapshot(&self) -> OrderSnapshot<'_> {
        OrderSnapshot {
            order_id: &self.order_id,
            channel: self.order_id.channel().as_str(),
            version: self.version,
            facts: self.facts,
            status: self.status,
            total_fen: self.placed.as_ref().map(|p| p.order.total_fen),
            paid_fen: self.paid_fen(),
            refunded_fen: self.refunded_fen(),
            placed_at: self.placed.as_ref().map(|p| p.placed_at),
            updated_at: self.updated_at,
            approval: self.approval.as_ref(),
            review: self.review.as_ref(),
            reservations: &self.reservations,
            routing: self.routing.as_ref(),
            refund_request: self.refund_request.as_ref(),
            shipments: &self.shipments,
            open_exceptions: self.open_exceptions().collect(),
        }
    }
}

/// The published view of an order (the value on `order-state`).
#[derive(Debug, Serialize)]
pub struct OrderSnapshot<'a> {
    pub order_id: &'a OrderId,
    pub channel: &'static str,
    pub version: u64,
    pub facts: u64,
    pub status: Status,
    pub total_fen: Option<Fen>,
    pub paid_fen: Fen,
    pub refunded_fen: Fen,
    pub placed_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub approval: Option<&'a ApprovalDecision>,
    pub review: Option<&'a Review>,
    pub reservations: &'a BTreeMap<String, Held>,
    pub routing: Option<&'a Routing>,
    pub refund_request: Option<&'a RefundRequest>,
    pub shipments: &'a [Shipment],
    pub open_exceptions: Vec<&'a ExceptionRecord>,
}

/// The timers pending on an order under `rules`: when each is due and the decision it takes
/// then. [`decide`] takes the ones due; the state consumer skips an order until the first.
pub fn timers(state: &OrderState, rules: &Rules) -> Vec<(Timestamp, EventBody)> {
    let minutes = |m: u32| chrono::Duration::minutes(i64::from(m));
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
    let awaiting_payment =
        state.payments.is_empty() && !state.is_cancelled() && !state.has_left_warehouse();
    if let (Some(placed), Some(screened), true) =
        (&state.placed, state.screened_at, awaiting_payment)
    {
        let timeout = rules.payment_timeout.minutes(state.order_id.channel());
        timers.push((
            screened.max(placed.placed_at) + minutes(timeout),
            EventBody::PaymentTimedOut {
                timeout_minutes: timeout,
                rule_version: rules.version.clone(),
            },
        ));
    }
    timers
}

/// The decisions an order calls for at `now`, under `rules`. Live consumers append them to
/// the log (with [`Event::decision`]) and only folding them back takes effect; a replay never
/// calls this. Calling it again before a decision is read back yields the same decision (with
/// the same id), which the fold keeps once.
pub fn decide(state: &OrderState, rules: &Rules, now: Timestamp) -> Vec<EventBody> {
    let mut decisions: Vec<EventBody> = timers(state, rules)
        .into_iter()
        .filter(|(due, _)| now >= *due)
        .map(|(_, decision)| decision)
        .collect();
    let Some(placed) = &state.placed else {
        return decisions;
    };
    let shipped = state.has_left_warehouse();
    let closed = state.is_cancelled() || shipped;
    let version = || rules.version.clone();
    if state.screening.is_none() && !closed {
        decisions.push(EventBody::OrderScreened(Screening {
            rule_version: version(),
            findings: crate::screening::screen(&placed.order, rules),
            duplicate_window_secs: rules.duplicate.window_secs,
            purchase_limits: rules.purchase_limits.clone(),
        }));
    }
    let outstanding = state.paid_fen().saturating_sub(state.refunded_fen());
    if state.refund_request.is_none() && !shipped && outstanding > 0 {
        let customer_chose_refund = state
            .choice
            .as_ref()
            .is_some_and(|c| c.choice == Choice::Refund);
        let refund = if customer_chose_refund {
            Some((
                rules.compensation.out_of_stock_coupon_fen,
                "the customer chose a refund: out of stock",
            ))
        } else if state.review.as_ref().is_some_and(|r| !r.approved) {
            Some((0, "rejected at review"))
        } else if state.timed_out.is_some() {
            Some((0, "paid after the payment timeout"))
        } else {
            None
        };
        if let Some((coupon_fen, reason)) = refund {
            decisions.push(EventBody::RefundRequested {
                amount_fen: outstanding,
                coupon_fen,
                reason: reason.to_string(),
                rule_version: version(),
            });
        }
    }
    if closed {
        return decisions;
    }
    let blocked = state.blocked();
    let awaiting_approval = !blocked
        && state.approval.is_none()
        && state.screening.is_some()
        && state.buyer_findings.is_some()
        && !state.payments.is_empty()
        && outstanding > 0;
    if awaiting_approval {
        let rule = Approval {
            rule_version: version(),
            threshold_fen: rules.auto_approve_below_fen,
        };
        decisions.push(if placed.order.total_fen < rules.auto_approve_below_fen {
            EventBody::OrderAutoApproved(rule)
        } else {
            EventBody::ManualReviewRequired(rule)
        });
    }
    let preferred = || {
        let categories = placed.order.lines.iter().map(|line| line.category.as_str());
        rules
            .routing
            .warehouse_for(categories, &placed.order.address.province)
            .to_string()
    };
    let waits = state
        .choice
        .as_ref()
        .is_some_and(|c| c.choice == Choice::Wait);
    if state.is_approved() && state.stock_requests.is_empty() && !blocked {
        decisions.push(EventBody::StockRequested(StockRequest {
            rule_version: version(),
            preferred_warehouse: preferred(),
            wait: false,
        }));
    } else if waits && state.stock_requests.len() == 1 {
        decisions.push(EventBody::StockRequested(StockRequest {
            rule_version: version(),
            preferred_warehouse: preferred(),
            wait: true,
        }));
    }
    if state.is_allocated() && state.routing.is_none() && !blocked {
        let mut parcels: BTreeMap<&str, Vec<SkuQty>> = BTreeMap::new();
        for (sku, held) in &state.reservations {
            parcels.entry(&held.warehouse).or_default().push(SkuQty {
                sku: sku.clone(),
                qty: held.qty,
            });
        }
        decisions.push(EventBody::OrderRouted(Routing {
            rule_version: version(),
            parcels: parcels
                .into_iter()
                .map(|(warehouse, lines)| Parcel {
                    routing_id: format!("{}@{warehouse}", state.order_id),
                    warehouse: warehouse.to_string(),
                    lines,
                })
                .collect(),
        }));
    }
    decisions
}
