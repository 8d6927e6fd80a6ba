//! One order: its state, how each event changes it, and the decisions it calls for.
//!
//! The state records *facts* (placed, payments, shipments, cancel, ...) and derives the status
//! and the open exceptions from the set of facts, not from the order they arrived in. That is
//! what makes out-of-order arrival (a shipment seen before its payment) safe: the late fact
//! fills its place and the status follows. An exception raised by an arrival order (shipped
//! before paid) is resolved by the fact that was late.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::event::{Approval, Event, EventBody, OrderPlaced};
use crate::exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Resolution,
};
use crate::{EntityKey, EventId, Fen, OrderId, Rules, Timestamp};

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
    /// Ids of every event folded in: the second copy of a fact is recognised here.
    pub applied: BTreeSet<EventId>,
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

    /// Folds one event in. `None` if it was already applied or isn't an order event; else the
    /// exceptions it raised or resolved.
    pub fn apply(&mut self, event: &Event) -> Option<Vec<ExceptionChange>> {
        if event.key != EntityKey::Order(self.order_id.clone())
            || matches!(event.body, EventBody::StockLevelChanged { .. })
            || !self.applied.insert(event.event_id.clone())
        {
            return None;
        }
        self.version += 1;
        self.updated_at = self.updated_at.max(Some(event.occurred_at));
        self.record_fact(event);
        let changes = self.reconcile_exceptions(event);
        self.status = self.derive_status();
        Some(changes)
    }

    fn record_fact(&mut self, event: &Event) {
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
            EventBody::StockLevelChanged { .. } => {}
        }
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
    fn conditions(&self) -> Vec<(ExceptionKind, &'static str, String)> {
        let mut found = Vec::new();
        let paid = self.paid_fen();
        let refunded = self.refunded_fen();
        let shipped = self.has_left_warehouse();
        if let Some(placed) = &self.placed {
            let total = placed.order.total_fen;
            if !self.payments.is_empty() && !self.payments.iter().any(|p| p.amount_fen == total) {
                found.push((
                    ExceptionKind::AmountMismatch,
                    "paid_amount_differs",
                    format!("paid {paid} fen in total, order total is {total} fen"),
                ));
            }
            if self.payments.len() > 1 && paid.saturating_sub(refunded) > total {
                found.push((
                    ExceptionKind::DuplicatePayment,
                    "paid_twice",
                    format!(
                        "{} payments captured ({paid} fen) for an order of {total} fen",
                        self.payments.len()
                    ),
                ));
            }
        }
        if refunded > paid {
            found.push((
                ExceptionKind::AmountMismatch,
                "refund_exceeds_payment",
                format!("refunded {refunded} fen, captured {paid} fen"),
            ));
        }
        if shipped && self.payments.is_empty() && self.cancelled.is_none() {
            found.push((
                ExceptionKind::IllegalTransition,
                "shipped_before_paid",
                "a shipment left the warehouse for an order with no payment".to_string(),
            ));
        }
        if self.cancelled.is_some() && shipped {
            found.push((
                ExceptionKind::IllegalTransition,
                "shipped_after_cancel",
                "a shipment left the warehouse for a cancelled order".to_string(),
            ));
        }
        if self.cancelled.is_some() && self.shipments.iter().any(|s| s.delivered_at.is_some()) {
            found.push((
                ExceptionKind::IllegalTransition,
                "delivered_after_cancel",
                "a parcel was delivered for a cancelled order".to_string(),
            ));
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
            let exception_id = EventId::derive(&["exception", &order_text, code]);
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
                code: code.to_string(),
                owner: kind.owner(),
                level: kind.initial_level(),
                detail: detail.clone(),
                raised_at: event.occurred_at,
                raised_by: event.event_id.clone(),
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
        if !shipped && self.cancelled.is_some() {
            return Status::Cancelled;
        }
        let main_line = if self.completed_at.is_some() {
            Status::Completed
        } else if self.shipments.iter().any(|s| s.delivered_at.is_some()) {
            Status::Delivered
        } else if shipped {
            Status::Shipped
        } else {
            match self.approval.as_ref().map(|a| a.outcome) {
                Some(ApprovalOutcome::AutoApproved) => Status::Approved,
                Some(ApprovalOutcome::ManualReview) => Status::UnderReview,
                None if paid > 0 => Status::Paid,
                None => Status::PendingPayment,
            }
        };
        let blocked = self.open_exceptions().any(|e| e.kind.blocks_fulfilment());
        if blocked
            && matches!(
                main_line,
                Status::Paid | Status::UnderReview | Status::Approved
            )
        {
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
            status: self.status,
            total_fen: self.placed.as_ref().map(|p| p.order.total_fen),
            paid_fen: self.paid_fen(),
            refunded_fen: self.refunded_fen(),
            placed_at: self.placed.as_ref().map(|p| p.placed_at),
            updated_at: self.updated_at,
            approval: self.approval.as_ref(),
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
    pub status: Status,
    pub total_fen: Option<Fen>,
    pub paid_fen: Fen,
    pub refunded_fen: Fen,
    pub placed_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub approval: Option<&'a ApprovalDecision>,
    pub shipments: &'a [Shipment],
    pub open_exceptions: Vec<&'a ExceptionRecord>,
}

/// The decisions an order calls for now, under `rules`. Live consumers append them to the log
/// (with [`Event::decision`]); a replay never calls this.
pub fn decide(state: &OrderState, rules: &Rules) -> Vec<EventBody> {
    let Some(placed) = &state.placed else {
        return Vec::new();
    };
    let awaiting_approval = state.approval.is_none()
        && !state.payments.is_empty()
        && state.cancelled.is_none()
        && state.refunded_fen() < state.paid_fen()
        && !state.open_exceptions().any(|e| e.kind.blocks_fulfilment());
    if !awaiting_approval {
        return Vec::new();
    }
    let rule = Approval {
        rule_version: rules.version.clone(),
        threshold_fen: rules.auto_approve_below_fen,
    };
    if placed.order.total_fen < rules.auto_approve_below_fen {
        vec![EventBody::OrderAutoApproved(rule)]
    } else {
        vec![EventBody::ManualReviewRequired(rule)]
    }
}
