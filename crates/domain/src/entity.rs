//! What the log is keyed by: an order, or the stock of one sku.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{
    BuyerState, Effect, Event, EventId, OrderId, OrderState, ParseOrderIdError, StockState,
};

const STOCK_PREFIX: &str = "sku:";
const BUYER_PREFIX: &str = "buyer:";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EntityKey {
    Order(OrderId),
    /// All warehouses' stock of one sku; `sku` is never a channel name, so keys can't clash.
    Stock(String),
    /// One buyer's recent orders, for the checks across orders.
    Buyer(String),
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntityKey::Order(order_id) => order_id.fmt(f),
            EntityKey::Stock(sku) => write!(f, "{STOCK_PREFIX}{sku}"),
            EntityKey::Buyer(buyer_id) => write!(f, "{BUYER_PREFIX}{buyer_id}"),
        }
    }
}

impl FromStr for EntityKey {
    type Err = ParseOrderIdError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if let Some(sku) = raw.strip_prefix(STOCK_PREFIX).filter(|s| !s.is_empty()) {
            return Ok(EntityKey::Stock(sku.to_string()));
        }
        if let Some(buyer) = raw.strip_prefix(BUYER_PREFIX).filter(|s| !s.is_empty()) {
            return Ok(EntityKey::Buyer(buyer.to_string()));
        }
        raw.parse().map(EntityKey::Order)
    }
}

impl TryFrom<String> for EntityKey {
    type Error = ParseOrderIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl From<EntityKey> for String {
    fn from(key: EntityKey) -> String {
        key.to_string()
    }
}

/// The folded state behind one log key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entity", rename_all = "snake_case")]
// Entities are few and short-lived per batch; boxing the order would cost more than it saves.
#[allow(clippy::large_enum_variant)]
pub enum Entity {
    Order(OrderState),
    Stock(StockState),
    Buyer(BuyerState),
}

impl Entity {
    /// The state of a key that has seen no event yet.
    pub fn empty(key: &EntityKey) -> Entity {
        match key {
            EntityKey::Order(order_id) => Entity::Order(OrderState::new(order_id.clone())),
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
    pub fn applied_kept_apart(&mut self) -> Option<&mut std::collections::BTreeSet<EventId>> {
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

    /// Whether a timer may fire on it later (an unpaid order, an exception below L3): the
    /// state consumer keeps these in its schedule.
    pub fn has_timers(&self) -> bool {
        match self {
            Entity::Order(order) => order.has_timers(),
            Entity::Stock(_) | Entity::Buyer(_) => false,
        }
    }
}
