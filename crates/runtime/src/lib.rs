//! The consumer runtime of orderflow: the consumer loop, the intake and state consumers, the
//! outputs and the dead-letter queue, the Kafka clients and the log reader, config and
//! telemetry, and the `main` the consumer binaries share ([`app`]). The domain decides; this
//! crate moves bytes, makes effects durable, and commits only after they are.
//!
//! The operator CLI lives in `orderflow-ops`; no consumer links it.

pub mod app;
pub mod config;
pub mod consumer;
mod error;
pub mod fold;
pub mod inspect;
pub mod intake;
pub mod kafka;
pub mod logread;
pub mod output;
pub mod rules;
pub mod state;
pub mod telemetry;
mod writer;

pub use error::RuntimeError;
