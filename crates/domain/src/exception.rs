//! The exception taxonomy (DESIGN.md, seed §3): what can go wrong with an order, who owns it
//! and at which level it starts.

use serde::{Deserialize, Serialize};

use crate::ids::{Actor, EventId, OrderId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    PaymentTimeout,
    InvalidAddress,
    InvalidPhone,
    BlacklistedPhone,
    OutOfStockAtReview,
    SuspectedFraud,
    InvoiceInvalid,
    DuplicateOrder,
    AmountMismatch,
    /// Two different successful payments for one order: money to give back.
    DuplicatePayment,
    IllegalTransition,
    SyncFailure,
    /// An order waited for a person's review longer than the review SLA.
    ReviewOverdue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    CustomerService,
    Warehouse,
    Risk,
    Finance,
    Operations,
}

/// L1 frontline, L2 supervisor, L3 risk committee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    L1,
    L2,
    L3,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::L1 => "L1",
            Level::L2 => "L2",
            Level::L3 => "L3",
        }
    }

    /// Where it escalates to; `None` at the top.
    pub fn next(self) -> Option<Level> {
        match self {
            Level::L1 => Some(Level::L2),
            Level::L2 => Some(Level::L3),
            Level::L3 => None,
        }
    }
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::CustomerService => "customer_service",
            Owner::Warehouse => "warehouse",
            Owner::Risk => "risk",
            Owner::Finance => "finance",
            Owner::Operations => "operations",
        }
    }
}

impl ExceptionKind {
    pub const ALL: [ExceptionKind; 13] = [
        ExceptionKind::PaymentTimeout,
        ExceptionKind::InvalidAddress,
        ExceptionKind::InvalidPhone,
        ExceptionKind::BlacklistedPhone,
        ExceptionKind::OutOfStockAtReview,
        ExceptionKind::SuspectedFraud,
        ExceptionKind::InvoiceInvalid,
        ExceptionKind::DuplicateOrder,
        ExceptionKind::AmountMismatch,
        ExceptionKind::DuplicatePayment,
        ExceptionKind::IllegalTransition,
        ExceptionKind::SyncFailure,
        ExceptionKind::ReviewOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::PaymentTimeout => "payment_timeout",
            ExceptionKind::InvalidAddress => "invalid_address",
            ExceptionKind::InvalidPhone => "invalid_phone",
            ExceptionKind::BlacklistedPhone => "blacklisted_phone",
            ExceptionKind::OutOfStockAtReview => "out_of_stock_at_review",
            ExceptionKind::SuspectedFraud => "suspected_fraud",
            ExceptionKind::InvoiceInvalid => "invoice_invalid",
            ExceptionKind::DuplicateOrder => "duplicate_order",
            ExceptionKind::AmountMismatch => "amount_mismatch",
            ExceptionKind::DuplicatePayment => "duplicate_payment",
            ExceptionKind::IllegalTransition => "illegal_transition",
            ExceptionKind::SyncFailure => "sync_failure",
            ExceptionKind::ReviewOverdue => "review_overdue",
        }
    }

    /// Who handles it first.
    pub fn owner(self) -> Owner {
        match self {
            ExceptionKind::PaymentTimeout
            | ExceptionKind::InvalidAddress
            | ExceptionKind::InvalidPhone
            | ExceptionKind::DuplicateOrder
            | ExceptionKind::ReviewOverdue => Owner::CustomerService,
            ExceptionKind::OutOfStockAtReview => Owner::Warehouse,
            ExceptionKind::BlacklistedPhone | ExceptionKind::SuspectedFraud => Owner::Risk,
            ExceptionKind::InvoiceInvalid
            | ExceptionKind::AmountMismatch
            | ExceptionKind::DuplicatePayment => Owner::Finance,
            ExceptionKind::IllegalTransition | ExceptionKind::SyncFailure => Owner::Operations,
        }
    }

    /// The level it is raised at; fraud starts with a supervisor.
    pub fn initial_level(self) -> Level {
        match self {
            ExceptionKind::BlacklistedPhone | ExceptionKind::SuspectedFraud => Level::L2,
            _ => Level::L1,
        }
    }

    /// Whether an open exception of this kind stops fulfilment (the order goes `on_hold`).
    pub fn blocks_fulfilment(self) -> bool {
        match self {
            ExceptionKind::InvalidAddress
            | ExceptionKind::InvalidPhone
            | ExceptionKind::BlacklistedPhone
            | ExceptionKind::OutOfStockAtReview
            | ExceptionKind::SuspectedFraud
            | ExceptionKind::DuplicateOrder
            | ExceptionKind::AmountMismatch => true,
            ExceptionKind::PaymentTimeout
            | ExceptionKind::InvoiceInvalid
            | ExceptionKind::DuplicatePayment
            | ExceptionKind::IllegalTransition
            | ExceptionKind::SyncFailure
            | ExceptionKind::ReviewOverdue => false,
        }
    }

    /// Whether raising it alerts its owner at once (not only when it escalates): nothing else
    /// tells anyone that a channel never heard of a change, or that an order waits for review.
    pub fn alerts_when_raised(self) -> bool {
        matches!(
            self,
            ExceptionKind::SyncFailure | ExceptionKind::ReviewOverdue
        )
    }
}

/// One exception on an order, from raise to resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRecord {
    /// Deterministic: the same condition on the same order always has the same id.
    pub exception_id: EventId,
    pub kind: ExceptionKind,
    /// The precise condition, e.g. `shipped_before_paid` for an illegal transition.
    pub code: String,
    pub owner: Owner,
    pub level: Level,
    pub detail: String,
    pub raised_at: Timestamp,
    pub raised_by: EventId,
    /// When it reached its current level: its SLA clock runs from here.
    pub level_since: Timestamp,
    /// The person an operator assigned it to.
    pub assignee: Option<String>,
    pub resolution: Option<Resolution>,
}

impl ExceptionRecord {
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub resolved_at: Timestamp,
    pub resolved_by: EventId,
    pub note: String,
    /// The operator who resolved it; `None` when the condition cleared by itself.
    pub actor: Option<Actor>,
}

/// What the `exceptions` topic carries: an exception was raised or resolved on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionChange {
    pub order_id: OrderId,
    pub action: ExceptionAction,
    pub exception: ExceptionRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionAction {
    Raised,
    Escalated,
    Assigned,
    Resolved,
}

impl ExceptionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionAction::Raised => "raised",
            ExceptionAction::Escalated => "escalated",
            ExceptionAction::Assigned => "assigned",
            ExceptionAction::Resolved => "resolved",
        }
    }
}

impl ExceptionChange {
    /// A stable id for this change, for downstream consumers to drop re-deliveries.
    pub fn change_id(&self) -> String {
        let exception = &self.exception;
        match self.action {
            ExceptionAction::Escalated => format!(
                "{}:escalated:{}",
                exception.exception_id,
                exception.level.as_str()
            ),
            // Reassigning is a new change each time: the id of the action that did it.
            ExceptionAction::Assigned => format!(
                "{}:assigned:{}",
                exception.exception_id,
                exception.assignee.as_deref().unwrap_or("-")
            ),
            action => format!("{}:{}", exception.exception_id, action.as_str()),
        }
    }
}
