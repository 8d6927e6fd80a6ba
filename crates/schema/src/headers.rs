//! The names of every Kafka record header orderflow writes or reads, in one place: what a
//! downstream reader may rely on (documented in `docs/output-topics.md`).

/// The encoding of a record: [`JSON_CONTENT_TYPE`] or [`crate::PROTOBUF_CONTENT_TYPE`].
pub const CONTENT_TYPE: &str = "content-type";
/// The JSON content type (the default when a record has no `content-type`).
pub const JSON_CONTENT_TYPE: &str = "application/json";

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

/// Headers of a dead letter: Kafka Connect's names, so existing DLQ tooling reads them.
pub mod dlq {
    pub const TOPIC: &str = "__connect.errors.topic";
    pub const PARTITION: &str = "__connect.errors.partition";
    pub const OFFSET: &str = "__connect.errors.offset";
    pub const CLASS: &str = "__connect.errors.exception.class.name";
    pub const MESSAGE: &str = "__connect.errors.exception.message";
    pub const CONNECTOR: &str = "__connect.errors.connector.name";
    pub const ORIGINAL_KEY: &str = "__orderflow.errors.original.key";
    pub const FAILED_AT: &str = "__orderflow.errors.failed_at";
}
