//! The order domain of orderflow, free of I/O.
//!
//! Everything that decides what an order *is* lives here: the canonical events that make up
//! the order event log, the per-order state and how an event changes it ([`apply`]), the
//! decisions the live state consumer records in the log ([`decide`]), the exception taxonomy
//! and the deterministic ids that make re-delivery harmless.
//!
//! The runtime feeds this crate events and writes out what it returns; a replay of the log
//! through [`apply`] rebuilds the same state byte for byte because nothing in here reads a
//! clock, a random number or a rule that is not carried by the event itself.

mod entity;
mod event;
mod exception;
mod ids;
mod mask;
mod order;
mod rules;
mod stock;

pub use entity::{Entity, EntityKey};
pub use event::{
    Address, Approval, Event, EventBody, Invoice, InvoiceKind, OrderLine, OrderPlaced, Source,
    LOG_SCHEMA_VERSION,
};
pub use exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Level, Owner, Resolution,
};
pub use ids::{Channel, EventId, OrderId, ParseChannelError, ParseOrderIdError};
pub use mask::{mask_detail, mask_phone};
pub use order::{
    decide, ApprovalDecision, ApprovalOutcome, Cancellation, FailedPayment, OrderSnapshot,
    OrderState, Payment, Placed, Refund, Shipment, Status,
};
pub use rules::Rules;
pub use stock::{StockLevel, StockState};

/// Money in integer fen (CNY cents). Never a float.
pub type Fen = u64;

/// Timestamps are UTC instants from the source (or, for decisions, from the decider's clock).
pub type Timestamp = chrono::DateTime<chrono::Utc>;
