//! `orderflow-gateway`: the HTTP door into orderflow.
//!
//! Platform callbacks, store POS systems, the mini-program and the operator console speak HTTP,
//! not Kafka. The gateway turns their requests into records of the input contract and serves
//! what orderflow knows about orders. It is stateless in the way that matters for scaling out:
//! run as many copies as needed behind any load balancer.
//!
//! - **Ingestion** ([`ingest`]): one `POST` per input topic (single record or batch), checked
//!   with the intake's own rules (`orderflow_schema::check`, the same code as the intake's
//!   `decode`), produced with `acks=all` before the answer. A batch is all or nothing: one bad
//!   record refuses the batch with every record's reason, and nothing is produced.
//! - **Who may call** ([`auth`]): per-source credentials (HMAC-SHA256 signatures with a
//!   timestamp window, or bearer tokens) with a scope of kinds; operator actions carry the
//!   credential's identity as their actor.
//! - **Idempotency** ([`idempotency`]): `Idempotency-Key` as payment APIs have it. Where the
//!   keys live and what is guaranteed is explained there: in a compacted Kafka topic, because
//!   the broker is the one thing every gateway copy already shares and trusts for durability.
//! - **Backpressure** ([`produce`]): a bounded number of records in flight; beyond it, or when
//!   the broker is slow or down, `503` with `Retry-After` instead of an unbounded queue.
//! - **The order API** ([`view`], [`api`]): state, timeline, lists with cursors and open
//!   exceptions, served from a local view of `order-state` and `order-events` that every copy
//!   keeps by reading those topics, with its lag in every answer.
//! - **OpenAPI** ([`openapi`]): generated from the handlers, served at `/openapi.json` and
//!   checked in at `docs/openapi.json`.

pub mod api;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod idempotency;
pub mod ingest;
pub mod openapi;
pub mod problem;
pub mod produce;
pub mod view;

pub use api::run;
