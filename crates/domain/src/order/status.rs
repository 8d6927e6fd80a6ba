//! The status of an order, derived from the whole set of its facts (never from the order they
//! arrived in), so a late fact moves it to where it would have been.

use serde::{Deserialize, Serialize};

use super::state::OrderState;

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
    /// A blocking exception is open on an order not yet routed (pending payment up to allocated).
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

impl OrderState {
    pub(super) fn derive_status(&self) -> Status {
        let shipped = self.has_left_warehouse();
        let paid = self.paid_fen();
        if self.shipments.iter().any(|s| s.returned_at.is_some()) {
            return Status::Returned;
        }
        if !shipped && paid > 0 && self.refunded_fen() >= paid {
            return Status::Refunded;
        }
        if !shipped && self.is_cancelled() {
            return Status::Cancelled;
        }
        let main_line = if self.completed_at.is_some() {
            Status::Completed
        } else if self.shipments.iter().any(|s| s.delivered_at.is_some()) {
            Status::Delivered
        } else if shipped {
            Status::Shipped
        } else if self.all_parcels_accepted() {
            Status::AcceptedByWarehouse
        } else if self.routing.is_some() {
            Status::Routed
        } else if self.is_allocated() {
            Status::Allocated
        } else if self.is_approved() {
            Status::Approved
        } else if self.approval.is_some() {
            Status::UnderReview
        } else if paid > 0 {
            Status::Paid
        } else {
            Status::PendingPayment
        };
        let holdable = matches!(
            main_line,
            Status::PendingPayment
                | Status::Paid
                | Status::UnderReview
                | Status::Approved
                | Status::Allocated
        );
        if holdable && self.blocked() {
            Status::OnHold
        } else {
            main_line
        }
    }
}
