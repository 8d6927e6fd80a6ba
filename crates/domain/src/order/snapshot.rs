//! The published view of an order: the value on `order-state`, what a dashboard or a WMS
//! reads. Owned and deserialisable, so every reader in the repository (the CLI, the simulator,
//! the tests) reads the same type the state consumer writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{ApprovalDecision, Held, OrderState, RefundRequest, Review, Shipment};
use super::status::Status;
use crate::event::Routing;
use crate::exception::ExceptionRecord;
use crate::ids::{Channel, Fen, OrderId, Timestamp};
use crate::sync::ChannelSync;

impl OrderState {
    /// What `order-state` carries: the order as a dashboard or WMS needs it.
    pub fn snapshot(&self) -> OrderSnapshot {
        OrderSnapshot {
            order_id: self.order_id.clone(),
            channel: self.order_id.channel(),
            version: self.version,
            facts: self.facts,
            status: self.status,
            total_fen: self.placed.as_ref().map(|p| p.order.total_fen),
            paid_fen: self.paid_fen(),
            refunded_fen: self.refunded_fen(),
            placed_at: self.placed.as_ref().map(|p| p.placed_at),
            updated_at: self.updated_at,
            approval: self.approval.clone(),
            review: self.review.clone(),
            reservations: self.reservations.clone(),
            routing: self.routing.clone(),
            refund_request: self.refund_request.clone(),
            shipments: self.shipments.clone(),
            open_exceptions: self.open_exceptions().cloned().collect(),
            sync: self.syncs.clone(),
        }
    }
}

/// The published view of an order (the value on `order-state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order_id: OrderId,
    pub channel: Channel,
    pub version: u64,
    pub facts: u64,
    pub status: Status,
    pub total_fen: Option<Fen>,
    pub paid_fen: Fen,
    pub refunded_fen: Fen,
    pub placed_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub approval: Option<ApprovalDecision>,
    pub review: Option<Review>,
    pub reservations: BTreeMap<String, Held>,
    pub routing: Option<Routing>,
    pub refund_request: Option<RefundRequest>,
    pub shipments: Vec<Shipment>,
    pub open_exceptions: Vec<ExceptionRecord>,
    /// The changes the order's channel must hear about and the attempts to tell it; what
    /// `orderflow-sync` acts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync: Vec<ChannelSync>,
}
