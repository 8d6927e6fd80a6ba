//! The doors out of orderflow (issue 15): the consumers that tell the outside what happened.
//!
//! - [`sync`] (`orderflow-sync`): each sales channel hears the changes of its orders it asked
//!   for (accepted by the warehouse, shipped, delivered, cancelled, refunded), through a
//!   [`connector::Connector`] (the generic signed webhook, or a platform's own client), with
//!   retries scheduled as events in the log, a rate limit and a circuit breaker per channel.
//! - [`notify`] (`orderflow-notify`): alerts go to DingTalk and WeCom group robots as the rules
//!   route them, within the robots' rate limits; customer messages go to an SMS gateway, with a
//!   signed link that brings the customer's answer back ([`sign::verify_choice_token`]).
//!
//! Both record what they sent, when and the answer in the order's log, so `orderflow inspect`
//! shows it and a replay reads it instead of deciding again.

pub mod app;
pub mod config;
pub mod connector;
pub mod limits;
pub mod notify;
pub mod robot;
pub mod sign;
pub mod sms;
pub mod sync;
