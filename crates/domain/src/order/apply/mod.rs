//! How one event changes an order: [`OrderState::apply`] drops what it has seen, records the
//! event in the file of its family, then derives the exceptions and the status again from the
//! whole set of facts and lets go of stock the order no longer needs.

mod action;
mod payment;
mod placement;
mod shipment;
mod stock;
mod sync;

use super::state::{Ignored, OrderState};
use crate::effect::{Audience, Effect, Notification};
use crate::event::{Event, EventBody};
use crate::ids::{EntityKey, EventId};

impl OrderState {
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
        if !matches!(&event.key, EntityKey::Order(order_id) if *order_id == self.order_id)
            || !for_orders
            || !self.applied.insert(event.event_id.clone())
        {
            return None;
        }
        self.version += 1;
        self.facts += u64::from(!event.body.is_derived());
        self.updated_at = self.updated_at.max(Some(event.occurred_at));
        let mut effects = Vec::new();
        self.record(event, &mut effects);
        let changes = self.reconcile_exceptions(event);
        for change in changes {
            if let Some(alert) = self.alert_when_raised(event, &change) {
                effects.push(Effect::Exception(change));
                effects.push(Effect::Notify(alert));
            } else {
                effects.push(Effect::Exception(change));
            }
        }
        self.status = self.derive_status();
        self.reconcile_syncs(event);
        self.release_stock(event, &mut effects);
        Some(effects)
    }

    /// Records the event by its family, each in its own file.
    fn record(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        match &event.body {
            EventBody::OrderPlaced(_)
            | EventBody::OrderScreened(_)
            | EventBody::BuyerChecked { .. }
            | EventBody::OrderAutoApproved(_)
            | EventBody::ManualReviewRequired(_)
            | EventBody::ReviewApproved { .. }
            | EventBody::ReviewRejected { .. }
            | EventBody::ReviewOverdue { .. } => self.record_placement(event, effects),
            EventBody::PaymentCaptured { .. }
            | EventBody::PaymentFailed { .. }
            | EventBody::PaymentRefunded { .. }
            | EventBody::PaymentTimedOut { .. }
            | EventBody::RefundRequested { .. } => self.record_payment(event, effects),
            EventBody::StockRequested(_)
            | EventBody::StockReserved { .. }
            | EventBody::StockShortage { .. }
            | EventBody::CustomerChoice { .. } => self.record_stock(event, effects),
            EventBody::OrderRouted(_)
            | EventBody::WarehouseAccepted { .. }
            | EventBody::ShipmentDispatched { .. }
            | EventBody::ShipmentDelivered { .. }
            | EventBody::ShipmentReturned { .. }
            | EventBody::OrderCompleted
            | EventBody::OrderCancelled { .. } => self.record_shipment(event, effects),
            EventBody::ExceptionResolved { .. }
            | EventBody::ExceptionAssigned { .. }
            | EventBody::ExceptionEscalated { .. } => self.record_action(event, effects),
            EventBody::ChannelSyncAttempted(_) | EventBody::NotificationDelivered(_) => {
                self.record_sync(event, effects)
            }
            // For skus and buyers: `apply` refused them.
            EventBody::StockLevelChanged { .. }
            | EventBody::BuyerCheckRequested(_)
            | EventBody::StockReservationRequested { .. }
            | EventBody::StockReleaseRequested { .. } => {}
        }
    }

    /// Keeps an action that doesn't apply to the order as it is, and tells its actor.
    fn ignore(&mut self, event: &Event, reason: &str, effects: &mut Vec<Effect>) {
        self.ignored.push(Ignored {
            event_id: event.event_id.clone(),
            kind: event.body.kind().to_string(),
            reason: reason.to_string(),
        });
        if let Some(action) = event.body.action() {
            let audience = Audience::Operator {
                actor_id: action.actor.id.clone(),
            };
            let message = format!("{} ignored: {reason}", event.body.kind());
            let notice = self.notification(event, "action_ignored", audience, message);
            effects.push(Effect::Notify(notice));
        }
    }

    /// A notification caused by `cause`: one id per kind and cause, so a re-delivery of it
    /// is recognised downstream.
    fn notification(
        &self,
        cause: &Event,
        kind: &str,
        audience: Audience,
        message: String,
    ) -> Notification {
        Notification {
            notification_id: EventId::derive(&["notification", kind, cause.event_id.as_str()]),
            order_id: self.order_id.clone(),
            audience,
            kind: kind.to_string(),
            message,
            choices: Vec::new(),
            amount_fen: None,
            at: cause.occurred_at,
        }
    }

    fn customer(&self) -> Audience {
        Audience::Customer {
            buyer_id: self
                .placed
                .as_ref()
                .map(|p| p.order.buyer_id.clone())
                .unwrap_or_default(),
            phone: self.placed.as_ref().map(|p| p.order.phone.clone()),
        }
    }

    /// The alert to the owner of an exception of a kind that alerts when raised (a channel
    /// that never heard of a change, an order waiting too long for review).
    fn alert_when_raised(
        &self,
        cause: &Event,
        change: &crate::exception::ExceptionChange,
    ) -> Option<Notification> {
        let record = &change.exception;
        let raised = change.action == crate::exception::ExceptionAction::Raised;
        if !raised || !record.kind.alerts_when_raised() {
            return None;
        }
        let audience = Audience::Owner {
            owner: record.owner,
            level: record.level,
        };
        let message = format!(
            "{} ({}) on {}: {}",
            record.kind.as_str(),
            record.code,
            self.order_id,
            record.detail
        );
        Some(Notification {
            notification_id: EventId::derive(&[
                "notification",
                "exception_raised",
                record.exception_id.as_str(),
            ]),
            ..self.notification(cause, "exception_raised", audience, message)
        })
    }
}
