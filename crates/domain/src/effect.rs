//! What folding an event produces besides the new state: the records the live state consumer
//! publishes. Effects are pure consequences of the log (no clock, no rules), so a replay
//! computes the same ones; it just doesn't publish them.

use serde::{Deserialize, Serialize};

use crate::event::{Address, Event, SkuQty};
use crate::exception::{ExceptionChange, Level, Owner};
use crate::ids::{Channel, EventId, Fen, OrderId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// An exception was raised, escalated, assigned or resolved: goes to `exceptions`.
    Exception(ExceptionChange),
    /// A message to another entity (a request to a sku or buyer, or a reply to an order):
    /// appended to the log.
    Append(Event),
    /// Goes to `notifications`.
    Notify(Notification),
    /// Goes to `warehouse-routing`, keyed by warehouse.
    Route(RoutingInstruction),
}

/// The kind of the daily KPI digest (analytics): a notification about the shop, not about an
/// order. Its order id only keys the record; its deliveries are not recorded in any order's log.
pub const KPI_DIGEST_KIND: &str = "kpi_digest";

/// A message for a customer, an exception owner or an operator (`notifications`, key = order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Deterministic: a re-delivery has the same id.
    pub notification_id: EventId,
    pub order_id: OrderId,
    pub audience: Audience,
    /// `out_of_stock_choice`, `refund_requested`, `compensation_coupon`, `payment_timed_out`,
    /// `exception_raised` (kinds that alert when raised), `exception_escalated`,
    /// `action_ignored`.
    pub kind: String,
    pub message: String,
    /// The answers the customer may send back on `in.actions` (`customer_choice`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_fen: Option<Fen>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Audience {
    /// The buyer, reached by SMS at the order's phone (personal data: mask it in any log).
    Customer {
        buyer_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phone: Option<String>,
    },
    Owner {
        owner: Owner,
        level: Level,
    },
    Operator {
        actor_id: String,
    },
}

/// What a WMS consumes from `warehouse-routing` (key = warehouse); documented in
/// `docs/output-topics.md`. The WMS answers with `warehouse_accepted` on `in.shipments`,
/// echoing `routing_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingInstruction {
    pub routing_id: String,
    pub order_id: OrderId,
    pub channel: Channel,
    pub warehouse: String,
    pub lines: Vec<SkuQty>,
    pub ship_to: ShipTo,
    pub rule_version: String,
    pub routed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipTo {
    pub phone: String,
    pub address: Address,
}

impl Notification {
    /// Whether the notification is about its order, so that what its sending came to belongs in
    /// the order's log (every kind but the KPI digest).
    pub fn is_about_its_order(&self) -> bool {
        self.kind != KPI_DIGEST_KIND
    }
}
