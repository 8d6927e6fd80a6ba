//! The order as folded so far: the facts it has seen, the decisions read back, and the small
//! questions every other part asks of them (paid? cancelled? approved? what is short?).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::status::Status;
use crate::event::{
    Action, Approval, Choice, Finding, OrderPlaced, Routing, Screening, SkuQty, StockRequest,
};
use crate::exception::ExceptionRecord;
use crate::ids::{EventId, Fen, OrderId, Timestamp};
use crate::sync::ChannelSync;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    pub order_id: OrderId,
    /// Number of distinct events folded in; grows by one per event that counted.
    pub version: u64,
    /// How many of them came from outside (facts and actions), not from orderflow's own
    /// decisions and messages.
    pub facts: u64,
    pub status: Status,
    pub placed: Option<Placed>,
    pub payments: Vec<Payment>,
    pub failed_payments: Vec<FailedPayment>,
    pub refunds: Vec<Refund>,
    pub approval: Option<ApprovalDecision>,
    pub shipments: Vec<Shipment>,
    pub cancelled: Option<Cancellation>,
    pub completed_at: Option<Timestamp>,
    pub exceptions: Vec<ExceptionRecord>,
    pub updated_at: Option<Timestamp>,
    pub screening: Option<Screening>,
    /// When screening was decided: when orderflow first knew the order. The payment timeout
    /// runs from here if the order arrived late, so a platform that synced it hours after it
    /// was placed doesn't see it cancelled before its payment can arrive.
    pub screened_at: Option<Timestamp>,
    /// What the buyer check found (duplicates, purchase limits); `None` until it answered.
    pub buyer_findings: Option<Vec<Finding>>,
    pub review: Option<Review>,
    /// The stock requests decided: the first one at approval, then one to wait.
    pub stock_requests: Vec<StockRequest>,
    /// Per sku, what is held for this order and where.
    pub reservations: BTreeMap<String, Held>,
    /// Per sku, the shortage found at review.
    pub shortages: BTreeMap<String, Shortage>,
    /// Skus asked to let go of what they hold or queue for this order.
    pub released: BTreeSet<String>,
    pub choice: Option<CustomerDecision>,
    pub routing: Option<Routing>,
    pub accepted: Vec<Accepted>,
    pub timed_out: Option<Timestamp>,
    pub refund_request: Option<RefundRequest>,
    /// Actions that didn't apply to the order as it was (approving an order not under
    /// review, resolving an unknown exception), and amounts that can't be added to the order's
    /// sums ([`AMOUNT_OVERFLOW`]): kept for the audit trail.
    pub ignored: Vec<Ignored>,
    /// When the review SLA ran out with nobody having reviewed the order (a timer decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_overdue: Option<Timestamp>,
    /// The changes the order's channel must hear about, and every attempt to tell it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syncs: Vec<ChannelSync>,
    /// Ids of every event folded in: the second copy of a fact is recognised here.
    pub applied: BTreeSet<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub approved: bool,
    pub action: Action,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub warehouse: String,
    pub qty: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub qty: u64,
    pub available: u64,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDecision {
    pub choice: Choice,
    pub action: Action,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub warehouse: String,
    pub routing_id: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub amount_fen: Fen,
    pub coupon_fen: Fen,
    pub reason: String,
    pub at: Timestamp,
}

/// The reason of an [`Ignored`] capture or refund whose amount would take the order's sum of
/// captures (or refunds) past [`Fen::MAX`]: kept out of the sums, and an `amount_mismatch`
/// exception (`amount_overflow`) for finance.
pub(crate) const AMOUNT_OVERFLOW: &str = "amount_overflow";

/// The sum of `amounts`, `None` if it doesn't fit a [`Fen`]: money is never summed unchecked.
pub(crate) fn sum_fen(amounts: impl IntoIterator<Item = Fen>) -> Option<Fen> {
    amounts.into_iter().try_fold(0, Fen::checked_add)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub event_id: EventId,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    pub placed_at: Timestamp,
    #[serde(flatten)]
    pub order: OrderPlaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub amount_fen: Fen,
    pub method: String,
    pub captured_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPayment {
    pub payment_id: String,
    pub reason: String,
    pub failed_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub amount_fen: Fen,
    pub reason: Option<String>,
    pub refunded_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    AutoApproved,
    ManualReview,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub outcome: ApprovalOutcome,
    #[serde(flatten)]
    pub rule: Approval,
    pub decided_at: Timestamp,
}

/// One parcel, identified by carrier and tracking number; its facts may arrive in any order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_no: String,
    pub warehouse: Option<String>,
    pub dispatched_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub returned_at: Option<Timestamp>,
    pub return_warehouse: Option<String>,
    pub return_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub reason: Option<String>,
    pub cancelled_at: Timestamp,
}

impl OrderState {
    pub fn new(order_id: OrderId) -> OrderState {
        OrderState {
            order_id,
            version: 0,
            facts: 0,
            status: Status::PendingPayment,
            placed: None,
            payments: Vec::new(),
            failed_payments: Vec::new(),
            refunds: Vec::new(),
            approval: None,
            shipments: Vec::new(),
            cancelled: None,
            completed_at: None,
            exceptions: Vec::new(),
            updated_at: None,
            screening: None,
            screened_at: None,
            buyer_findings: None,
            review: None,
            stock_requests: Vec::new(),
            reservations: BTreeMap::new(),
            shortages: BTreeMap::new(),
            released: BTreeSet::new(),
            choice: None,
            routing: None,
            accepted: Vec::new(),
            timed_out: None,
            refund_request: None,
            ignored: Vec::new(),
            review_overdue: None,
            syncs: Vec::new(),
            applied: BTreeSet::new(),
        }
    }

    /// Everything captured. Never saturates in practice: a capture that would take the sum
    /// past [`Fen::MAX`] is not kept in `payments` (it is ignored as [`AMOUNT_OVERFLOW`]).
    pub fn paid_fen(&self) -> Fen {
        sum_fen(self.payments.iter().map(|payment| payment.amount_fen)).unwrap_or(Fen::MAX)
    }

    /// Everything refunded; like [`OrderState::paid_fen`], the sum always fits.
    pub fn refunded_fen(&self) -> Fen {
        sum_fen(self.refunds.iter().map(|refund| refund.amount_fen)).unwrap_or(Fen::MAX)
    }

    /// Whether an amount was left out of the sums because it would have overflowed them.
    pub(super) fn has_overflowing_amount(&self) -> bool {
        self.ignored
            .iter()
            .any(|ignored| ignored.reason == AMOUNT_OVERFLOW)
    }

    /// Captured and not given back: what a refund would return.
    pub(super) fn outstanding_fen(&self) -> Fen {
        self.paid_fen().saturating_sub(self.refunded_fen())
    }

    pub fn open_exceptions(&self) -> impl Iterator<Item = &ExceptionRecord> {
        self.exceptions.iter().filter(|record| record.is_open())
    }

    pub(super) fn has_left_warehouse(&self) -> bool {
        self.shipments
            .iter()
            .any(|shipment| shipment.dispatched_at.is_some() || shipment.delivered_at.is_some())
    }

    /// Cancelled by the platform, by the payment timeout, at review or by a refund request.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.is_some()
            || self.timed_out.is_some()
            || self.refund_request.is_some()
            || self.review.as_ref().is_some_and(|review| !review.approved)
    }

    /// No payment yet, and nothing has ended the wait for one (a cancel, a parcel sent).
    pub(super) fn awaiting_payment(&self) -> bool {
        self.payments.is_empty() && !self.is_cancelled() && !self.has_left_warehouse()
    }

    /// Approved automatically or by a person.
    pub fn is_approved(&self) -> bool {
        match self.approval.as_ref().map(|a| a.outcome) {
            Some(ApprovalOutcome::AutoApproved) => true,
            Some(ApprovalOutcome::ManualReview) => {
                self.review.as_ref().is_some_and(|review| review.approved)
            }
            None => false,
        }
    }

    /// Waiting for a person's verdict: sent to review, not reviewed, not cancelled meanwhile.
    pub fn awaiting_review(&self) -> bool {
        self.approval.as_ref().map(|a| a.outcome) == Some(ApprovalOutcome::ManualReview)
            && self.review.is_none()
            && !self.is_cancelled()
    }

    /// Every parcel of the routing was taken by its warehouse (a split order is accepted only
    /// when all its parcels are); without a routing, any acceptance counts.
    pub fn all_parcels_accepted(&self) -> bool {
        match &self.routing {
            Some(routing) if !routing.parcels.is_empty() => routing.parcels.iter().all(|parcel| {
                self.accepted
                    .iter()
                    .any(|accepted| accepted.routing_id == parcel.routing_id)
            }),
            _ => !self.accepted.is_empty(),
        }
    }

    /// Quantity per sku over all lines.
    pub fn lines_by_sku(&self) -> Vec<SkuQty> {
        let mut qty: BTreeMap<&str, u64> = BTreeMap::new();
        for line in self.placed.iter().flat_map(|p| &p.order.lines) {
            *qty.entry(&line.sku).or_default() += u64::from(line.qty);
        }
        qty.into_iter()
            .map(|(sku, qty)| SkuQty {
                sku: sku.to_string(),
                qty,
            })
            .collect()
    }

    /// Every line has stock held for it.
    pub fn is_allocated(&self) -> bool {
        self.is_approved()
            && !self.stock_requests.is_empty()
            && self
                .placed
                .iter()
                .flat_map(|p| &p.order.lines)
                .all(|line| self.reservations.contains_key(&line.sku))
    }

    /// An open exception stops fulfilment.
    pub(super) fn blocked(&self) -> bool {
        self.open_exceptions().any(|e| e.kind.blocks_fulfilment())
    }

    /// Skus found short that have no stock held yet.
    pub(super) fn unreserved_shortages(&self) -> impl Iterator<Item = &str> {
        self.shortages
            .keys()
            .filter(|sku| !self.reservations.contains_key(*sku))
            .map(String::as_str)
    }
}
