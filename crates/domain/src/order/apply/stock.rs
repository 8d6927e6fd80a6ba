//! Stock: the order asks its skus to reserve its lines, hears back that stock is held or
//! short, lets the customer choose to wait or take a refund when it is short, and lets go of
//! what it holds or waits for once it is cancelled or has shipped.

use std::collections::BTreeSet;

use crate::effect::{Effect, Notification};
use crate::event::{Action, Choice, Event, EventBody, SkuQty, StockRequest};
use crate::ids::EntityKey;
use crate::order::state::{CustomerDecision, Held, OrderState, Shortage};

impl OrderState {
    pub(super) fn record_stock(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        match &event.body {
            EventBody::StockRequested(request) => {
                self.record_stock_request(event, request, effects)
            }
            EventBody::StockReserved {
                sku,
                warehouse,
                qty,
            } => self.record_reserved(event, sku, warehouse, *qty, effects),
            EventBody::StockShortage {
                sku,
                qty,
                available,
            } => self.record_shortage(event, sku, *qty, *available, effects),
            EventBody::CustomerChoice { action, choice } => {
                self.record_choice(event, action, *choice, effects)
            }
            // `apply` sends only stock events here.
            _ => {}
        }
    }

    /// Asks each sku for its lines: all of them the first time, the ones still short when the
    /// customer chose to wait.
    fn record_stock_request(
        &mut self,
        event: &Event,
        request: &StockRequest,
        effects: &mut Vec<Effect>,
    ) {
        let first = self.stock_requests.is_empty();
        self.stock_requests.push(request.clone());
        let wanted: Vec<SkuQty> = if first {
            self.lines_by_sku()
        } else {
            let short: BTreeSet<String> = self.unreserved_shortages().map(str::to_string).collect();
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

    fn record_reserved(
        &mut self,
        event: &Event,
        sku: &str,
        warehouse: &str,
        qty: u64,
        effects: &mut Vec<Effect>,
    ) {
        let held = Held {
            warehouse: warehouse.to_string(),
            qty,
        };
        self.reservations.insert(sku.to_string(), held);
        // Held after the order let go (a waiting order served as it was cancelled).
        if self.released.contains(sku) {
            effects.push(self.release(sku, event, "held after the order let go"));
        }
    }

    /// The first shortage asks the customer to choose: wait for new stock, or a refund and a
    /// coupon.
    fn record_shortage(
        &mut self,
        event: &Event,
        sku: &str,
        qty: u64,
        available: u64,
        effects: &mut Vec<Effect>,
    ) {
        let first = self.shortages.is_empty();
        let shortage = Shortage {
            qty,
            available,
            at: event.occurred_at,
        };
        self.shortages.insert(sku.to_string(), shortage);
        if !first || self.is_cancelled() {
            return;
        }
        let message =
            format!("{sku} is out of stock: wait for new stock, or take a refund and a coupon");
        effects.push(Effect::Notify(Notification {
            choices: vec![Choice::Wait.as_str().into(), Choice::Refund.as_str().into()],
            ..self.notification(event, "out_of_stock_choice", self.customer(), message)
        }));
    }

    /// The customer's first answer counts, if they were asked.
    fn record_choice(
        &mut self,
        event: &Event,
        action: &Action,
        choice: Choice,
        effects: &mut Vec<Effect>,
    ) {
        let asked = self.unreserved_shortages().next().is_some() && !self.is_cancelled();
        if asked && self.choice.is_none() {
            self.choice = Some(CustomerDecision {
                choice,
                action: action.clone(),
                at: event.occurred_at,
            });
        } else {
            self.ignore(event, "the customer was not asked to choose", effects);
        }
    }

    /// Once the order is cancelled or has left the warehouse, every sku it asked for lets go.
    pub(super) fn release_stock(&mut self, cause: &Event, effects: &mut Vec<Effect>) {
        let done = self.is_cancelled() || self.has_left_warehouse();
        if !done || self.stock_requests.is_empty() {
            return;
        }
        let mut lines = self.placed.iter().flat_map(|p| &p.order.lines);
        if lines.all(|line| self.released.contains(&line.sku)) {
            // Every later event of a closed order gets here: nothing left to let go.
            return;
        }
        let reason = if self.has_left_warehouse() {
            "shipped"
        } else {
            "cancelled"
        };
        for line in self.lines_by_sku() {
            if self.released.insert(line.sku.clone()) {
                effects.push(self.release(&line.sku, cause, reason));
            }
        }
    }

    fn release(&self, sku: &str, cause: &Event, reason: &str) -> Effect {
        Effect::Append(Event::message(
            EntityKey::Stock(sku.to_string()),
            cause,
            EventBody::StockReleaseRequested {
                order_id: self.order_id.clone(),
                reason: reason.to_string(),
            },
        ))
    }
}
