//! Placement: the order arrives, is screened, is checked against the buyer's other orders, and
//! is approved automatically or goes to a person who approves or rejects it.

use crate::effect::Effect;
use crate::event::{Action, Approval, BuyerCheck, Event, EventBody, Screening};
use crate::ids::{EntityKey, Timestamp};
use crate::order::state::{ApprovalDecision, ApprovalOutcome, OrderState, Placed, Review};

impl OrderState {
    pub(super) fn record_placement(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let at = event.occurred_at;
        match &event.body {
            EventBody::OrderPlaced(order) => {
                self.placed.get_or_insert_with(|| Placed {
                    placed_at: at,
                    order: order.clone(),
                });
            }
            EventBody::OrderScreened(screening) => self.record_screening(event, screening, effects),
            EventBody::BuyerChecked { findings } => {
                self.buyer_findings.get_or_insert_with(|| findings.clone());
            }
            EventBody::OrderAutoApproved(rule) => {
                self.record_approval(ApprovalOutcome::AutoApproved, rule, at)
            }
            EventBody::ManualReviewRequired(rule) => {
                self.record_approval(ApprovalOutcome::ManualReview, rule, at)
            }
            EventBody::ReviewApproved { action } => {
                self.record_review(event, action, true, effects)
            }
            EventBody::ReviewRejected { action } => {
                self.record_review(event, action, false, effects)
            }
            // The first counts; `review_overdue` is raised from it (`exceptions.rs`).
            EventBody::ReviewOverdue { .. } => {
                self.review_overdue.get_or_insert(at);
            }
            // `apply` sends only placement events here.
            _ => {}
        }
    }

    /// The first screening counts; it asks the buyer to check the order against the buyer's
    /// other orders.
    fn record_screening(
        &mut self,
        event: &Event,
        screening: &Screening,
        effects: &mut Vec<Effect>,
    ) {
        if self.screening.is_some() {
            return;
        }
        self.screening = Some(screening.clone());
        self.screened_at = Some(event.occurred_at);
        if let Some((buyer_id, check)) = self.buyer_check(screening) {
            let body = EventBody::BuyerCheckRequested(check);
            effects.push(Effect::Append(Event::message(
                EntityKey::Buyer(buyer_id),
                event,
                body,
            )));
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

    fn record_approval(&mut self, outcome: ApprovalOutcome, rule: &Approval, at: Timestamp) {
        self.approval.get_or_insert_with(|| ApprovalDecision {
            outcome,
            rule: rule.clone(),
            decided_at: at,
        });
    }

    /// A person's verdict counts only on an order waiting for one; otherwise it is kept in
    /// the trail and its actor is told.
    fn record_review(
        &mut self,
        event: &Event,
        action: &Action,
        approved: bool,
        effects: &mut Vec<Effect>,
    ) {
        if self.awaiting_review() {
            self.review = Some(Review {
                approved,
                action: action.clone(),
                at: event.occurred_at,
            });
        } else {
            self.ignore(event, "the order is not waiting for a review", effects);
        }
    }
}
