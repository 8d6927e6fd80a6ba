//! The analytics projection of orderflow: the seed's second pain ("the data can be seen but not
//! used"). It folds the order event log, the exception changes and the published order states
//! into an embedded SQLite store, and answers from it: the KPIs of the seed's table, customer
//! segments (RFM), the lifecycle board, a sales forecast per sku, the daily digest and the
//! dashboard that shows all of it.
//!
//! Where to read what:
//!
//! | module | what |
//! |---|---|
//! | [`project`] | the pure fold: one record of a topic → the row changes it makes (no I/O) |
//! | [`store`] | the SQLite schema, applying changes idempotently, checkpoints, the digest |
//! | [`kpi`] | the KPI definitions (the seed's table) as queries, per day / channel / category / province |
//! | [`board`] | the lifecycle board: funnel, stage durations, stuck orders; exceptions; sync latency |
//! | [`rfm`] | customer segments and the marketing export |
//! | [`forecast`] | sales forecast per sku (augurs MSTL + AutoETS) and its backtest |
//! | [`digest`] | the daily KPI digest for `notifications` |
//! | [`facts`] | the flat `order-facts` records for ClickHouse |
//! | [`consumer`], [`server`], [`app`] | the binary: consumers, the HTTP dashboard, `main` |
//! | [`synth`] | a shop's history, simulated: the data of the tests and benchmarks |
//!
//! Every change the fold makes is idempotent and commutative (a minimum, a set insert keyed by
//! the fact's own id, a monotone merge), so a redelivery changes nothing and a rebuild from
//! offset 0 in any interleaving of the three topics gives the same store: the digest compares.

pub mod app;
pub mod board;
pub mod consumer;
pub mod digest;
mod error;
pub mod facts;
pub mod forecast;
pub mod kpi;
pub mod project;
pub mod query;
pub mod rfm;
pub mod server;
pub mod store;
pub mod synth;

pub use error::AnalyticsError;
