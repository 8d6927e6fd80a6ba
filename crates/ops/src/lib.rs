//! The operator side of orderflow: the `orderflow` CLI and what its commands do — create
//! topics, feed records, replay and verify the log, inspect an order, tail the log as JSON
//! lines, the status summary and the exception report, the simulator's runs and the benchmark
//! baselines.
//!
//! Nothing here runs in a consumer: the consumer binaries link `orderflow-runtime` only.

pub mod bench;
pub mod cli;
pub mod commands;
pub mod display;
pub mod dlq;
mod error;
pub mod kpi_report;
pub mod output;
pub mod platform;
pub mod report;
pub mod simulate;
pub mod tail;

pub use error::OpsError;
