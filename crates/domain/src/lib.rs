//! The order domain of orderflow, free of I/O.
//!
//! Everything that decides what an order *is* lives here: the canonical events that make up
//! the order event log, the per-order state and how an event changes it
//! ([`OrderState::apply`]), the decisions the live state consumer records in the log
//! ([`step`] after each event, [`fire_timers`] on a tick), the exception taxonomy and the
//! deterministic ids that make re-delivery harmless. `order/mod.rs` says where to read what
//! happens when a payment (or anything else) arrives.
//!
//! The runtime feeds this crate events and writes out what it returns; a replay of the log
//! through [`Entity::apply`] rebuilds the same state byte for byte because nothing in here
//! reads a clock, a random number or a rule that is not carried by the event itself.
//!
//! Modules depend one way: `ids` ← `exception` ← `rules` ← `sync` ← `event` ← `effect`, `screening` ←
//! `order`, `stock`, `buyer` ← `entity` ← `step` ← `world` (`personal` is used by `rules`,
//! `screening` and `event`). Inside the crate an item is imported from the module that
//! defines it; the re-exports below are for callers.

mod buyer;
mod effect;
mod entity;
mod event;
mod exception;
mod ids;
mod order;
mod personal;
mod rules;
mod screening;
mod step;
mod stock;
mod sync;
mod world;

pub use buyer::{BuyerState, Claim};
pub use effect::{Audience, Effect, Notification, RoutingInstruction, ShipTo, KPI_DIGEST_KIND};
pub use entity::Entity;
pub use event::{
    Action, Address, Approval, BuyerCheck, Choice, Event, EventBody, Finding, Invoice, InvoiceKind,
    OrderLine, OrderPlaced, Parcel, Routing, Screening, SkuQty, Source, StockRequest,
    DERIVED_ORIGIN, LOG_SCHEMA_VERSION,
};
pub use exception::{
    ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Level, Owner, Resolution,
};
pub use ids::{
    Actor, ActorRole, Channel, EntityKey, EventId, Fen, OrderId, ParseChannelError,
    ParseOrderIdError, Timestamp,
};
pub use order::{
    decide, timers, Accepted, ApprovalDecision, ApprovalOutcome, Cancellation, CustomerDecision,
    FailedPayment, Held, Ignored, OrderSnapshot, OrderState, Payment, Placed, Refund,
    RefundRequest, Review, Shipment, Shortage, Status,
};
pub use personal::{
    is_mainland_mobile, mask_buyer_id, mask_detail, mask_invoice_title, mask_phone, mask_tax_id,
};
pub use rules::{
    AddressRules, AlertRoute, AlertRules, Compensation, DuplicateRule, LevelSla, PaymentTimeout,
    PhoneRules, PurchaseLimit, RetryRules, ReviewRules, RouteRule, RoutingRules, Rules, RulesError,
    SlaRules,
};
pub use screening::screen;
pub use step::{fire_timers, step, Mode, Step};
pub use stock::{Reservation, StockLevel, StockState, Waiting, HORIZON_SKEW_SECS};
pub use sync::{
    backoff_interval_ms, next_attempt_at, ChannelSync, NoticeDelivery, SyncAttempt, SyncChange,
    SyncOutcome,
};
pub use world::World;
