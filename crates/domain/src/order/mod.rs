//! One order: its state, how each event changes it, and the decisions it calls for.
//!
//! The state records *facts* (placed, payments, shipments, cancel, ...) and derives the status
//! and the open exceptions from the set of facts, not from the order they arrived in. That is
//! what makes out-of-order arrival (a shipment seen before its payment) safe: the late fact
//! fills its place and the status follows. An exception raised by an arrival order (shipped
//! before paid) is resolved by the fact that was late.
//!
//! # Where to read what
//!
//! Every event goes through [`OrderState::apply`] (`apply/mod.rs`): it drops an event already
//! seen, records the event in the file of its family (`apply/*.rs`), derives the open
//! exceptions again (`exceptions.rs`: `reconcile_exceptions`, `*_conditions`) and the status
//! (`status.rs`: `derive_status`), and once the order is cancelled or has shipped lets go of its
//! stock (`apply/stock.rs`: `release_stock`). Live, [`crate::step`] then asks `decide.rs`
//! (`react`) what the facts now call for, as decisions for the consumer to append to the log;
//! the timer tick asks [`decide`] ([`crate::fire_timers`]) what time calls for too (`timers`).
//! A decision counts only when it is folded back, like any other event.
//!
//! By what arrives (files under `order/`; `decide.rs` names the function that takes each
//! decision):
//!
//! - **Order placed**: `apply/placement.rs`. Leads to screening (`decide.rs`: `screening`);
//!   once screened, the payment timer runs (`decide.rs`: `payment_timer`).
//! - **Payment captured**: `apply/payment.rs`. Checked by `exceptions.rs`:
//!   `payment_conditions` (amount differs, paid twice, paid after the timeout); leads to
//!   `approval`, or to a `refund` when it came after the timeout.
//! - **Payment failed**: `apply/payment.rs`. Kept for the record; the order still waits for a
//!   payment and its timeout still runs.
//! - **Payment refunded**: `apply/payment.rs`. `payment_conditions` (refund exceeds payment;
//!   clears paid twice); the status becomes `refunded` (`status.rs`).
//! - **Warehouse accepted**: `apply/shipment.rs`. The status becomes `accepted_by_warehouse`
//!   once every parcel of the routing is accepted (`state.rs`: `all_parcels_accepted`).
//! - **What the channel must hear**: after every event `apply/sync.rs` (`reconcile_syncs`)
//!   adds the changes the facts now show (accepted by the warehouse, shipped, delivered,
//!   cancelled, refunded); `channel_sync_attempted` (recorded by `orderflow-sync`) is folded
//!   there too, and a change the channel never took is `exceptions.rs`: `sync_conditions`
//!   (`sync_failure`, which alerts its owner when raised). `notification_delivered` changes
//!   nothing but the trail.
//! - **Shipment dispatched, delivered, returned**: `apply/shipment.rs`. `exceptions.rs`:
//!   `shipment_conditions` (shipped before paid, after cancel); the stock is let go
//!   (`release_stock`).
//! - **Order cancelled, completed**: `apply/shipment.rs`. A cancelled order lets go of its
//!   stock.
//! - **Stock level**: not an order's event: `crate::stock` folds it and serves the orders
//!   waiting for the sku; each gets a `stock_reserved` reply (`apply/stock.rs`).
//! - **Operator action**: a review verdict in `apply/placement.rs` (`record_review`; leads to
//!   a `stock_request`, or a `refund` of a rejected order); an exception resolved or assigned
//!   in `apply/action.rs`. An action that doesn't apply is kept in `ignored` (`ignore` in
//!   `apply/mod.rs`).
//! - **Customer choice**: `apply/stock.rs` (`record_choice`). Leads to a `stock_request` to
//!   wait, or a `refund` with a coupon.
//! - **Decisions**, folded back like any event: `order_screened` in `apply/placement.rs` (asks
//!   `crate::buyer` for the buyer check; its `buyer_checked` reply is folded there too);
//!   `order_auto_approved` and `manual_review_required` in `apply/placement.rs`;
//!   `stock_requested` in `apply/stock.rs` (asks `crate::stock` for each sku; the
//!   `stock_reserved` and `stock_shortage` replies are folded there too); `order_routed` in
//!   `apply/shipment.rs` (one routing instruction per warehouse); `payment_timed_out` and
//!   `refund_requested` in `apply/payment.rs` (both cancel the order); `exception_escalated`
//!   in `apply/action.rs` (`escalate`: alerts the owner at the next level).
//!
//! What each decision is taken on is in `decide.rs`: `timers` (payment timeout, escalation)
//! and `react` (`screening`, `refund`, `approval`, `stock_request`, `routing`); the review SLA
//! is a timer too (`review_timer`: `review_overdue`, folded in `apply/placement.rs`).

mod apply;
mod decide;
mod exceptions;
mod snapshot;
mod state;
mod status;

pub(crate) use decide::react;
pub use decide::{decide, timers};
pub use snapshot::OrderSnapshot;
pub use state::{
    Accepted, ApprovalDecision, ApprovalOutcome, Cancellation, CustomerDecision, FailedPayment,
    Held, Ignored, OrderState, Payment, Placed, Refund, RefundRequest, Review, Shipment, Shortage,
};
pub use status::Status;
