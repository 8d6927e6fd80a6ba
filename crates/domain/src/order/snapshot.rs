//! The published view of an order: the value on `order-state`, what a dashboard or a WMS
//! reads. Borrowed from the state, so publishing it copies nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::state::{ApprovalDecision, Held, OrderState, RefundRequest, Review, Shipment};
use super::status::Status;
use crate::event::Routing;
use crate::exception::ExceptionRecord;
use crate::ids::{Fen, OrderId, Timestamp};

impl OrderState {
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
