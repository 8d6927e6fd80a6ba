//! The wire contract of the input topics and its translation into domain events.
//!
//! Adapters send JSON (or protobuf, with `content-type: application/x-protobuf`) as described
//! in `docs/input-contract.md`. [`decode`] turns one record into a canonical
//! [`orderflow_domain::Event`] with its deterministic id, or into a [`Rejection`] that says in
//! one sentence which field is wrong and why — the reason a dead letter carries.
//!
//! Protobuf records are mapped onto the JSON shape first so both forms go through the same
//! validation: one set of rules, one set of messages.

pub mod headers;
mod limits;
pub mod log;
pub mod output;
mod proto;
mod validate;

use std::fmt;

use chrono::{DateTime, Utc};
use orderflow_domain::Event;

pub use limits::Limits;
pub use validate::{MAX_ACTION_ID_CHARS, MAX_NOTE_CHARS};

/// The protobuf content type; anything else is read as JSON.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// Generated protobuf types of `proto/orderflow/v1/input.proto`.
pub mod v1 {
    #![allow(clippy::all, unreachable_pub, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/orderflow.v1.rs"));
}

/// The input topics, each accepting the kinds of one source domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputTopic {
    Orders,
    Payments,
    Shipments,
    Inventory,
    /// Operator actions and customer choices on an order (`orderflow-actions`).
    Actions,
}

impl InputTopic {
    pub const ALL: [InputTopic; 5] = [
        InputTopic::Orders,
        InputTopic::Payments,
        InputTopic::Shipments,
        InputTopic::Inventory,
        InputTopic::Actions,
    ];

    /// The topic name without the deployment's prefix.
    pub fn name(self) -> &'static str {
        match self {
            InputTopic::Orders => "in.orders",
            InputTopic::Payments => "in.payments",
            InputTopic::Shipments => "in.shipments",
            InputTopic::Inventory => "in.inventory",
            InputTopic::Actions => "in.actions",
        }
    }

    /// The short name of the domain, used for the consumer's name (`orderflow-payments`).
    pub fn domain(self) -> &'static str {
        &self.name()[3..]
    }

    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            InputTopic::Orders => &["order_placed", "order_cancelled", "order_completed"],
            InputTopic::Payments => &["payment_captured", "payment_failed", "payment_refunded"],
            InputTopic::Shipments => &[
                "shipment_dispatched",
                "shipment_delivered",
                "shipment_returned",
                "warehouse_accepted",
            ],
            InputTopic::Inventory => &["stock_level_changed"],
            InputTopic::Actions => &[
                "review_approved",
                "review_rejected",
                "exception_resolved",
                "exception_assigned",
                "customer_choice",
            ],
        }
    }

    /// The topic that accepts `kind`, if any.
    pub fn of_kind(kind: &str) -> Option<InputTopic> {
        InputTopic::ALL
            .into_iter()
            .find(|topic| topic.kinds().contains(&kind))
    }
}

/// Where a record was read: the provenance every event and dead letter carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The full topic name, prefix included.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why a record can't be accepted. Rejections are permanent: retrying the same bytes fails
/// the same way, so they go to the dead-letter topic at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub kind: RejectionKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    MalformedJson,
    MalformedProtobuf,
    InvalidField,
    WrongTopic,
    UnsupportedVersion,
    /// A string is longer than its limit.
    TextTooLong,
    /// A list or object has more items than its limit.
    TooManyItems,
    /// An amount is over `limits.max-amount-fen`.
    AmountTooLarge,
    /// `occurred_at` is further ahead of the reader's clock than `limits.max-future-skew-secs`.
    OccurredInFuture,
    /// A record of `order-events` the state consumer can't read back as an event: not an
    /// input record, so none of the input kinds above fits.
    UnreadableLogRecord,
    /// An input record larger than `limits.max-record-bytes`: dead-lettered without decoding.
    RecordTooLarge,
    /// A record the consumer made (an event, a snapshot) that the broker refused for good
    /// (too large, invalid): the dead letter carries the input it came from (an intake) or
    /// the refused record itself (the state consumer).
    OutputRefused,
}

impl RejectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionKind::MalformedJson => "malformed_json",
            RejectionKind::MalformedProtobuf => "malformed_protobuf",
            RejectionKind::InvalidField => "invalid_field",
            RejectionKind::WrongTopic => "wrong_topic",
            RejectionKind::UnsupportedVersion => "unsupported_version",
            RejectionKind::TextTooLong => "text_too_long",
            RejectionKind::TooManyItems => "too_many_items",
            RejectionKind::AmountTooLarge => "amount_too_large",
            RejectionKind::OccurredInFuture => "occurred_in_future",
            RejectionKind::UnreadableLogRecord => "unreadable_log_record",
            RejectionKind::RecordTooLarge => "record_too_large",
            RejectionKind::OutputRefused => "output_refused",
        }
    }
}

impl fmt::Display for RejectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, message: impl Into<String>) -> Rejection {
        Rejection {
            kind,
            message: message.into(),
        }
    }
}

/// Decodes, validates and normalises one input record into a canonical event, within the
/// default [`Limits`] and without a clock: for records that are not live input (the simulator's
/// and the analytics synthesiser's). The intake uses [`decode_within`].
pub fn decode(
    topic: InputTopic,
    provenance: &Provenance,
    content_type: Option<&[u8]>,
    payload: &[u8],
) -> Result<Event, Rejection> {
    decode_within(
        topic,
        provenance,
        content_type,
        payload,
        &Limits::default(),
        None,
    )
}

/// Decodes, validates and normalises one input record into a canonical event. A record over
/// one of `limits` is rejected, and so, given the reader's clock `now`, is one whose
/// `occurred_at` is more than `limits.max_future_skew_secs` after it.
pub fn decode_within(
    topic: InputTopic,
    provenance: &Provenance,
    content_type: Option<&[u8]>,
    payload: &[u8],
    limits: &Limits,
    now: Option<DateTime<Utc>>,
) -> Result<Event, Rejection> {
    if payload.len() > limits.max_record_bytes {
        return Err(Rejection::new(
            RejectionKind::RecordTooLarge,
            format!(
                "value must be at most {} bytes, got {}",
                limits.max_record_bytes,
                payload.len()
            ),
        ));
    }
    let document = if content_type == Some(PROTOBUF_CONTENT_TYPE.as_bytes()) {
        proto::to_json(payload)?
    } else {
        serde_json::from_slice(payload).map_err(|error| {
            Rejection::new(
                RejectionKind::MalformedJson,
                format!("value is not valid JSON: {error}"),
            )
        })?
    };
    validate::collections(&document, limits)?;
    validate::event(topic, provenance, &document, limits, now)
}

/// [`decode`] for a record that is not on a topic yet: the gateway checks what it is about to
/// produce with the intake's own rules, so a record it accepts is one the intake accepts. The
/// event's source names the topic only; its `event_id` is the one the intake will compute.
pub fn check(
    topic: InputTopic,
    content_type: Option<&[u8]>,
    payload: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Event, Rejection> {
    let provenance = Provenance {
        topic: topic.name().to_string(),
        partition: -1,
        offset: -1,
    };
    let mut event = decode_within(topic, &provenance, content_type, payload, limits, Some(now))?;
    event.source.partition = None;
    event.source.offset = None;
    Ok(event)
}
