//! The names of every Kafka record header orderflow writes or reads, in one place: what a
//! downstream reader may rely on (documented in `docs/output-topics.md`).

/// The encoding of a record: [`JSON_CONTENT_TYPE`] or [`crate::PROTOBUF_CONTENT_TYPE`].
pub const CONTENT_TYPE: &str = "content-type";
/// The JSON content type (the default when a record has no `content-type`).
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The content type of an `order-events` record: protobuf `orderflow.log.v1.LogRecord`
/// (`proto/orderflow/log/v1/log.proto`). Log records without it are JSON-era records.
pub const LOG_CONTENT_TYPE: &str = "application/x-protobuf; messageType=orderflow.log.v1.LogRecord";

/// `order-state`: the snapshot's `version` (number of events folded into the order).
pub const VERSION: &str = "orderflow.version";
/// `order-state`: the ids of the events this snapshot is the first to reflect, comma-separated.
pub const EVENT_IDS: &str = "orderflow.event-ids";
/// `order-state`: for each id of [`EVENT_IDS`], in the same order, when its record was
/// appended to `order-events` (milliseconds since the epoch, the log record's timestamp).
pub const EVENT_TIMES: &str = "orderflow.event-times";
/// `exceptions`: the change's deterministic id; a re-delivery carries the same one.
pub const CHANGE_ID: &str = "orderflow.change-id";
/// `notifications`: the notification's deterministic id.
pub const NOTIFICATION_ID: &str = "orderflow.notification-id";
/// `warehouse-routing`: the routing id a WMS echoes in `warehouse_accepted`.
pub const ROUTING_ID: &str = "orderflow.routing-id";

/// Headers of a dead letter: Kafka Connect's names, so existing DLQ tooling reads them, and
/// orderflow's own under `__orderflow.errors.`. The record's key is the original record's key.
pub mod dlq {
    /// The topic the failed record was read from (full name, prefix included).
    pub const TOPIC: &str = "__connect.errors.topic";
    pub const PARTITION: &str = "__connect.errors.partition";
    pub const OFFSET: &str = "__connect.errors.offset";
    /// The error kind (`invalid_field`, `record_too_large`, ...).
    pub const CLASS: &str = "__connect.errors.exception.class.name";
    /// One sentence: what is wrong.
    pub const MESSAGE: &str = "__connect.errors.exception.message";
    /// The consumer that dead-lettered it.
    pub const CONNECTOR: &str = "__connect.errors.connector.name";
    /// The original key bytes (also the dead letter's own key); absent without one.
    pub const ORIGINAL_KEY: &str = "__orderflow.errors.original.key";
    pub const FAILED_AT: &str = "__orderflow.errors.failed_at";
    /// The original value's size in bytes, as a decimal string.
    pub const ORIGINAL_SIZE: &str = "__orderflow.errors.original.size";
    /// SHA-256 of the original value, 64 lowercase hex digits.
    pub const ORIGINAL_SHA256: &str = "__orderflow.errors.original.sha256";
    /// The original record's `content-type`, when it had one (a redrive sends it back).
    pub const ORIGINAL_CONTENT_TYPE: &str = "__orderflow.errors.original.content-type";
    /// `true` when the value (or a key over 1 KiB) was cut to fit the DLQ, else `false`.
    pub const TRUNCATED: &str = "__orderflow.errors.truncated";
    /// `output_refused` only: the topic the refused record was meant for.
    pub const OUTPUT_TOPIC: &str = "__orderflow.errors.output.topic";
    /// On a redriven record: the dead letter it came from, `{dlq topic}/{partition}/{offset}`.
    pub const REDRIVEN_FROM: &str = "__orderflow.redriven.from";
}
