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

mod buyer;
mod effect;
mod entity;
mod event;
mod exception;
mod ids;
mod mask;
mod order;
mod rules;
mod screening;
mod stock;
mod world;

pub use buyer::{BuyerState, Claim};
pub use effect::{Audience, Effect, Notification, RoutingInstruction, ShipTo};
pub use entity::{Entity, EntityKey};
pub use event::{
    Action, Actor, ActorRole, Address, Approval, BuyerCheck, Choice, Event, EventBody, Finding,
    Invoice, InvoiceKind, OrderLine, OrderPlaced, Parcel, Routing, Screening, SkuQty, Source,
    StockRequest, DERIVED_ORIGIN, LOG_SCHEMA_VERSION,
};
pub use exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Level, Owner, Resolution,
};
pub use ids::{Channel, EventId, OrderId, ParseChannelError, ParseOrderIdError};
pub use mask::{mask_detail, mask_phone};
pub use order::{
    decide, timers, Accepted, ApprovalDecision, ApprovalOutcome, Cancellation, CustomerDecision,
    FailedPayment, Held, Ignored, OrderSnapshot, OrderState, Payment, Placed, Refund,
    RefundRequest, Review, Shipment, Shortage, Status,
};
pub use rules::{
    AddressRules, Compensation, DuplicateRule, LevelSla, PaymentTimeout, PhoneRules, PurchaseLimit,
    RouteRule, RoutingRules, Rules, RulesError, SlaRules,
};
pub use screening::{is_mainland_mobile, screen};
pub use stock::{Reservation, StockLevel, StockState, Waiting};
pub use world::World;

/// Money in integer fen (CNY cents). Never a float.
pub type Fen = u64;

/// Timestamps are UTC instants from the source (or, for decisions, from the decider's clock).
pub type Timestamp = chrono::DateTime<chrono::Utc>;
