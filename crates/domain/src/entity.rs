//! The state behind one log key ([`EntityKey`]): an order, the stock of one sku, or a buyer;
//! one type the log's consumers fold every record into.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::buyer::BuyerState;
use crate::effect::Effect;
use crate::event::Event;
use crate::ids::{EntityKey, EventId, Timestamp};
use crate::order::{OrderState, Status};
use crate::stock::StockState;

/// The folded state behind one log key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
pub enum Entity {
    /// Boxed: an order is over a kilobyte, a sku or buyer a few dozen bytes, and the fold's
    /// maps and cache move entities as they insert and evict (measured: `cargo bench -p
    /// orderflow-runtime -- replay`).
    Order(Box<OrderState>),
    Stock(StockState),
    Buyer(BuyerState),
}

impl Entity {
    /// The state of a key that has seen no event yet.
    pub fn empty(key: &EntityKey) -> Entity {
        match key {
            EntityKey::Order(order_id) => {
                Entity::Order(Box::new(OrderState::new(order_id.clone())))
            }
            EntityKey::Stock(sku) => Entity::Stock(StockState::new(sku.clone())),
            EntityKey::Buyer(buyer_id) => Entity::Buyer(BuyerState::new(buyer_id.clone())),
        }
    }

    /// Folds one event in. Returns `None` when the event was already applied (a duplicate) or
    /// doesn't belong to this kind of entity; otherwise what folding it produced.
    pub fn apply(&mut self, event: &Event) -> Option<Vec<Effect>> {
        match self {
            Entity::Order(order) => order.apply(event),
            Entity::Stock(stock) => stock.apply(event),
            Entity::Buyer(buyer) => buyer.apply(event),
        }
    }

    /// For an entity every order may write to (a sku, a buyer), the ids of the events it
    /// folded: they grow with every order, so its serialized form leaves them out and a store
    /// keeps them apart, adding a batch's new ids instead of rewriting them all. `None` for an
    /// order, whose few ids are part of its serialized state.
    pub fn applied_kept_apart(&mut self) -> Option<&mut BTreeSet<EventId>> {
        match self {
            Entity::Order(_) => None,
            Entity::Stock(stock) => Some(&mut stock.applied),
            Entity::Buyer(buyer) => Some(&mut buyer.applied),
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Entity::Order(order) => order.version,
            Entity::Stock(stock) => stock.version,
            Entity::Buyer(buyer) => buyer.version,
        }
    }

    /// For an order that is closed — delivered, completed, cancelled, refunded or returned —
    /// with no timer left to fire, the time of its last event: a store may let it go some
    /// time after that. `None` for anything still open, and for skus and buyers, which every
    /// later order may need.
    pub fn closed_since(&self) -> Option<Timestamp> {
        let Entity::Order(order) = self else {
            return None;
        };
        let closed = matches!(
            order.status,
            Status::Delivered
                | Status::Completed
                | Status::Cancelled
                | Status::Refunded
                | Status::Returned
        );
        if closed && !order.has_timers() {
            order.updated_at
        } else {
            None
        }
    }

    /// Whether a timer may fire on it later (an unpaid order, an exception below L3): the
    /// state consumer keeps these in its schedule.
    pub fn has_timers(&self) -> bool {
        match self {
            Entity::Order(order) => order.has_timers(),
            Entity::Stock(_) | Entity::Buyer(_) => false,
        }
    }
}
