//! The open exceptions of an order, derived from its facts: every condition that calls for a
//! person is raised once (one deterministic id per order and code) and resolved by itself as
//! soon as the facts no longer show it. Exceptions an operator resolves, assigns or that
//! escalate on their SLA are folded in `apply/action.rs`.

use super::state::OrderState;
use crate::event::Event;
use crate::exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Resolution,
};
use crate::ids::EventId;

/// A condition on the facts that calls for a person; `code` names it precisely.
struct Condition {
    kind: ExceptionKind,
    code: String,
    detail: String,
}

impl Condition {
    fn new(kind: ExceptionKind, code: &str, detail: String) -> Condition {
        Condition {
            kind,
            code: code.to_string(),
            detail,
        }
    }
}

impl OrderState {
    /// Raises exceptions whose condition now holds and resolves the ones whose condition is
    /// gone. Each condition has one deterministic id per order, so it is raised at most once.
    pub(super) fn reconcile_exceptions(&mut self, event: &Event) -> Vec<ExceptionChange> {
        let holding = self.conditions();
        let mut changes = self.raise(&holding, event);
        let order_id = self.order_id.clone();
        for record in self.exceptions.iter_mut().filter(|e| e.is_open()) {
            if holding
                .iter()
                .any(|condition| condition.code == record.code)
            {
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

    /// Raises the conditions never raised on this order before.
    fn raise(&mut self, holding: &[Condition], event: &Event) -> Vec<ExceptionChange> {
        let mut changes = Vec::new();
        for condition in holding {
            // Every record was raised here, its id derived from the order and its code: a
            // record of the code is the record of that id, found without hashing per event.
            if self.exceptions.iter().any(|e| e.code == condition.code) {
                continue;
            }
            let order_text = self.order_id.to_string();
            let exception_id = EventId::derive(&["exception", &order_text, &condition.code]);
            let record = ExceptionRecord {
                exception_id,
                kind: condition.kind,
                code: condition.code.clone(),
                owner: condition.kind.owner(),
                level: condition.kind.initial_level(),
                detail: condition.detail.clone(),
                raised_at: event.occurred_at,
                raised_by: event.event_id.clone(),
                level_since: event.occurred_at,
                assignee: None,
                resolution: None,
            };
            changes.push(self.change(ExceptionAction::Raised, &record));
            self.exceptions.push(record);
        }
        changes
    }

    pub(super) fn change(
        &self,
        action: ExceptionAction,
        record: &ExceptionRecord,
    ) -> ExceptionChange {
        ExceptionChange {
            order_id: self.order_id.clone(),
            action,
            exception: record.clone(),
        }
    }

    /// The conditions on the current set of facts that call for a person, in the order they
    /// are raised in.
    fn conditions(&self) -> Vec<Condition> {
        let mut found = self.review_conditions();
        found.extend(self.payment_conditions());
        found.extend(self.shipment_conditions());
        found.extend(self.sync_conditions());
        found
    }

    /// A change the channel never heard of after the last attempt the rules allowed (or a
    /// refusal for good), until the channel acknowledges it or a later change of the order:
    /// then it holds the order's newer state anyway.
    fn sync_conditions(&self) -> Vec<Condition> {
        let mut found = Vec::new();
        for (index, sync) in self.syncs.iter().enumerate() {
            let superseded = self.syncs[index + 1..]
                .iter()
                .any(|later| later.acknowledged());
            if !sync.gave_up() || superseded {
                continue;
            }
            let last = sync
                .attempts
                .last()
                .map(|a| a.answer.as_str())
                .unwrap_or("-");
            found.push(Condition::new(
                ExceptionKind::SyncFailure,
                &format!("sync_failed:{}", sync.change_id),
                format!(
                    "the channel did not take {} after {} attempts; last answer: {last}",
                    sync.change_id,
                    sync.attempts_made()
                ),
            ));
        }
        found
    }

    /// What screening and the buyer check found, and stock found short at review.
    fn review_conditions(&self) -> Vec<Condition> {
        let mut found: Vec<Condition> = self
            .screening
            .iter()
            .flat_map(|screening| &screening.findings)
            .chain(self.buyer_findings.iter().flatten())
            .map(|finding| Condition::new(finding.kind, &finding.code, finding.detail.clone()))
            .collect();
        if self.review_overdue.is_some() && self.awaiting_review() {
            found.push(Condition::new(
                ExceptionKind::ReviewOverdue,
                "review_overdue",
                "the order waits for a person's review past the review SLA".into(),
            ));
        }
        let short: Vec<&str> = self.unreserved_shortages().collect();
        if !short.is_empty() && !self.is_cancelled() {
            found.push(Condition::new(
                ExceptionKind::OutOfStockAtReview,
                "out_of_stock",
                format!("no stock at review for {}", short.join(", ")),
            ));
        }
        found
    }

    /// Money that doesn't add up: paid late, paid the wrong amount, paid twice, refunded more.
    fn payment_conditions(&self) -> Vec<Condition> {
        let mut found = Vec::new();
        if self.timed_out.is_some() && !self.payments.is_empty() {
            found.push(Condition::new(
                ExceptionKind::PaymentTimeout,
                "paid_after_timeout",
                "paid after the order was cancelled for the payment timeout".into(),
            ));
        }
        let paid = self.paid_fen();
        let refunded = self.refunded_fen();
        if let Some(placed) = &self.placed {
            let total = placed.order.total_fen;
            if !self.payments.is_empty() && !self.payments.iter().any(|p| p.amount_fen == total) {
                found.push(Condition::new(
                    ExceptionKind::AmountMismatch,
                    "paid_amount_differs",
                    format!("paid {paid} fen in total, order total is {total} fen"),
                ));
            }
            if self.payments.len() > 1 && paid.saturating_sub(refunded) > total {
                found.push(Condition::new(
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
            found.push(Condition::new(
                ExceptionKind::AmountMismatch,
                "refund_exceeds_payment",
                format!("refunded {refunded} fen, captured {paid} fen"),
            ));
        }
        if self.has_overflowing_amount() {
            found.push(Condition::new(
                ExceptionKind::AmountMismatch,
                "amount_overflow",
                "a capture or refund would take the order's sum past what fen can count: it is not counted"
                    .into(),
            ));
        }
        found
    }

    /// Parcels that moved when the order said they shouldn't.
    fn shipment_conditions(&self) -> Vec<Condition> {
        let shipped = self.has_left_warehouse();
        let cancelled = self.cancelled.is_some();
        let delivered = self.shipments.iter().any(|s| s.delivered_at.is_some());
        [
            (
                shipped && self.payments.is_empty() && !cancelled,
                "shipped_before_paid",
                "a shipment left the warehouse for an order with no payment",
            ),
            (
                cancelled && shipped,
                "shipped_after_cancel",
                "a shipment left the warehouse for a cancelled order",
            ),
            (
                cancelled && delivered,
                "delivered_after_cancel",
                "a parcel was delivered for a cancelled order",
            ),
        ]
        .into_iter()
        .filter(|(holds, ..)| *holds)
        .map(|(_, code, detail)| {
            Condition::new(ExceptionKind::IllegalTransition, code, detail.to_string())
        })
        .collect()
    }
}
