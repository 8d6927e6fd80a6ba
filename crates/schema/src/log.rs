//! Reading and writing the order event log. A record is protobuf (`orderflow.log.v1.LogRecord`,
//! `proto/orderflow/log/v1/log.proto`): one or more events of one key. Records written before
//! the log was binary are JSON, one event each, and are upcast on read, never rewritten.
//! [`decode_log_record`] is the one decoder the state consumer, replay, inspect, tail, the
//! gateway's view and the analytics projection share, so each of them stops on the same
//! records (README "Log evolution").

mod convert;

use orderflow_domain::{Event, EventBody, LOG_SCHEMA_VERSION};
use prost::Message;

use crate::headers::{JSON_CONTENT_TYPE, LOG_CONTENT_TYPE};
pub use convert::{FieldError, FieldProblem};

/// Generated protobuf types of `proto/orderflow/log/v1/log.proto`.
pub mod v1 {
    #![allow(clippy::all, unreachable_pub, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/orderflow.log.v1.rs"));
}

/// The protobuf message of a record, as named in [`LOG_CONTENT_TYPE`].
const LOG_MESSAGE_TYPE: &str = "orderflow.log.v1.LogRecord";

/// Why a record of the order event log could not be read. Either way the state consumer stops
/// that partition at the record (see README "Log evolution"): neither is ever passed silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogRecordError {
    /// A layout (`schema_version`), an event type, an enum value or an encoding this build
    /// doesn't know: a fact written by a newer writer. Upgrade the reader; the partition
    /// resumes at this record.
    #[error("{0}: a newer writer's fact this build can't read; upgrade this reader (readers are deployed before writers)")]
    NotUnderstood(String),
    /// Bytes that were never a log record of any layout (only a buggy or rogue producer writes
    /// those): it stays stopped until an operator skips it (`consumer.skip-log-records`).
    #[error("{0}; no orderflow writes such a record: once you have seen it is no fact, pass over it with consumer.skip-log-records = [\"PARTITION@OFFSET\"]")]
    Invalid(String),
}

impl From<LogRecordError> for String {
    fn from(error: LogRecordError) -> String {
        error.to_string()
    }
}

/// Encodes the events of one record of the order event log: protobuf, to be written with
/// `content-type` [`LOG_CONTENT_TYPE`]. The caller passes at least one event, all of one key
/// (the record's Kafka key).
pub fn encode_log_record(events: &[Event]) -> Vec<u8> {
    debug_assert!(
        events
            .first()
            .is_some_and(|first| events.iter().all(|event| event.key == first.key)),
        "a log record holds at least one event, all of one key"
    );
    v1::LogRecord {
        events: events.iter().map(v1::Event::from).collect(),
    }
    .encode_to_vec()
}

/// Reads one record of the order event log into its events, in order. `content_type` is the
/// record's `content-type` header: protobuf records ([`LOG_CONTENT_TYPE`]) hold one or more
/// events; a JSON-era record (`application/json`, or no header and a JSON object) is upcast to
/// its one event.
pub fn decode_log_record(
    payload: &[u8],
    content_type: Option<&[u8]>,
) -> Result<Vec<Event>, LogRecordError> {
    match Encoding::of(payload, content_type)? {
        Encoding::Json => decode_json(payload).map(|event| vec![event]),
        Encoding::Protobuf => decode_protobuf(payload),
    }
}

/// How a record is encoded, told by its `content-type`.
enum Encoding {
    Json,
    Protobuf,
}

impl Encoding {
    fn of(payload: &[u8], content_type: Option<&[u8]>) -> Result<Encoding, LogRecordError> {
        let Some(content_type) = content_type else {
            // Records copied without their headers: JSON-era records are objects, protobuf
            // ones start with the tag of field 1.
            return Ok(if payload.first() == Some(&b'{') {
                Encoding::Json
            } else {
                Encoding::Protobuf
            });
        };
        let text = std::str::from_utf8(content_type).unwrap_or_default();
        let mut parts = text.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default();
        if media_type.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
            return Ok(Encoding::Json);
        }
        let protobuf = media_type.eq_ignore_ascii_case(crate::PROTOBUF_CONTENT_TYPE);
        let message_type = parts
            .filter_map(|parameter| parameter.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("messageType"))
            .map(|(_, value)| value.trim());
        match message_type {
            _ if !protobuf => {}
            None => return Ok(Encoding::Protobuf),
            Some(LOG_MESSAGE_TYPE) => return Ok(Encoding::Protobuf),
            Some(_) => {}
        }
        // An encoding or message type of a newer writer. The header is shown only when it is
        // short printable text: it is no personal data, but it may be any bytes.
        let shown = if text.len() <= 100 && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            format!("{text:?}")
        } else {
            "that is not short text".to_string()
        };
        Err(LogRecordError::NotUnderstood(format!(
            "log record content-type {shown} is not {LOG_CONTENT_TYPE:?} or {JSON_CONTENT_TYPE:?}"
        )))
    }
}

/// Refuses a layout this build can't read, before any other field of the event is looked at.
fn check_layout(version: u32) -> Result<(), LogRecordError> {
    if version > LOG_SCHEMA_VERSION {
        return Err(LogRecordError::NotUnderstood(format!(
            "order event schema_version {version} is newer than this build reads ({LOG_SCHEMA_VERSION})"
        )));
    }
    // The upcast hook: an event of an older layout is read in its own layout and upcast to
    // the current one here, never rewritten in the log. Layout 1 is the only one written so
    // far, so there is nothing older to upcast (and 0 was never a layout).
    if version != LOG_SCHEMA_VERSION {
        return Err(LogRecordError::Invalid(format!(
            "order event schema_version {version} was never written"
        )));
    }
    Ok(())
}

fn decode_protobuf(payload: &[u8]) -> Result<Vec<Event>, LogRecordError> {
    // prost's errors name the message and field, never a value.
    let record = v1::LogRecord::decode(payload).map_err(|error| {
        LogRecordError::Invalid(format!(
            "log record is not a valid {LOG_MESSAGE_TYPE}: {error}"
        ))
    })?;
    if record.events.is_empty() {
        return Err(LogRecordError::Invalid(
            "log record holds no event".to_string(),
        ));
    }
    let mut events = Vec::with_capacity(record.events.len());
    for (index, wire) in record.events.into_iter().enumerate() {
        check_layout(wire.schema_version)?;
        let event = Event::try_from(wire).map_err(|error| {
            let error = error.within(&format!("events[{index}]"));
            let reason = format!("order event is not valid: {error}");
            match error.problem {
                // A body this build doesn't know is left unset by prost: a newer event type.
                FieldProblem::Unknown => LogRecordError::NotUnderstood(reason),
                FieldProblem::Missing if error.field.ends_with("].body") => {
                    LogRecordError::NotUnderstood(format!(
                        "{} has an order event type this build doesn't know",
                        error.field
                    ))
                }
                _ => LogRecordError::Invalid(reason),
            }
        })?;
        if events
            .first()
            .is_some_and(|first: &Event| first.key != event.key)
        {
            return Err(LogRecordError::Invalid(format!(
                "order event events[{index}] has another key than events[0]: a record holds events of one key"
            )));
        }
        events.push(event);
    }
    Ok(events)
}

/// What is read of a record before its layout is known.
#[derive(serde::Deserialize)]
struct Layout {
    schema_version: u32,
}

/// The event type of a layout-1 record that doesn't read as an event.
#[derive(serde::Deserialize)]
struct Kind {
    body: Tagged,
}

#[derive(serde::Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads a JSON-era record: its layout first, then the event.
fn decode_json(payload: &[u8]) -> Result<Event, LogRecordError> {
    let layout: Layout = serde_json::from_slice(payload)
        .map_err(|error| LogRecordError::Invalid(not_valid(&error)))?;
    check_layout(layout.schema_version)?;
    serde_json::from_slice(payload).map_err(|error| match serde_json::from_slice::<Kind>(payload) {
        Ok(Kind { body }) if is_unknown_kind(&body.kind) => LogRecordError::NotUnderstood(format!(
            "order event type {:?} is not one this build knows",
            body.kind
        )),
        _ => LogRecordError::Invalid(not_valid(&error)),
    })
}

/// What is wrong with a record, without its values (they may be personal data).
fn not_valid(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Data => "does not fit the order event layout",
        _ => "is not JSON",
    };
    format!(
        "order event is not valid: it {what} (line {} column {})",
        error.line(),
        error.column()
    )
}

/// Whether `kind` could name an event type (snake_case, as orderflow writes them) but names no
/// [`EventBody`] variant: not one with wrong fields, nor text that is no type name at all
/// (which is not echoed into a log line).
fn is_unknown_kind(kind: &str) -> bool {
    let type_name = (1..=64).contains(&kind.len())
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !type_name {
        return false;
    }
    let probe = serde_json::json!({ "type": kind });
    matches!(serde_json::from_value::<EventBody>(probe),
        Err(error) if error.to_string().starts_with("unknown variant"))
}

#[cfg(test)]
mod tests {
    use orderflow_domain::Source;

    use super::*;

    fn level() -> Event {
        Event::stock_level(
            "S-1",
            "WH-HZ",
            5,
            chrono::DateTime::UNIX_EPOCH,
            Source::origin("in.inventory"),
        )
    }

    /// A valid record as JSON, changed by `edit`.
    fn record(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(level()).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    /// A JSON-era record as an older orderflow wrote it (with its header, or none).
    fn decode_json_era(payload: &[u8]) -> Result<Event, LogRecordError> {
        let with_header = decode_log_record(payload, Some(JSON_CONTENT_TYPE.as_bytes()));
        if payload.first() == Some(&b'{') {
            assert_eq!(decode_log_record(payload, None), with_header);
        }
        with_header.map(|mut events| {
            assert_eq!(events.len(), 1, "a JSON-era record holds one event");
            events.remove(0)
        })
    }

    #[test]
    fn a_newer_layout_or_event_type_is_not_understood_and_garbage_is_invalid() {
        assert_eq!(decode_json_era(&record(|_| {})).unwrap(), level());
        let newer = decode_json_era(&record(|v| v["schema_version"] = 2.into()));
        assert!(
            matches!(&newer, Err(LogRecordError::NotUnderstood(why)) if why.contains("schema_version 2")),
            "{newer:?}"
        );
        // A newer layout is not read further: its body may be anything.
        let newer_body = decode_json_era(&record(|v| {
            v["schema_version"] = 7.into();
            v["body"] = serde_json::json!({"shape": "new"});
        }));
        assert!(matches!(newer_body, Err(LogRecordError::NotUnderstood(_))));
        let kind = decode_json_era(&record(|v| v["body"]["type"] = "order_teleported".into()));
        let not_a_type = decode_json_era(&record(|v| v["body"]["type"] = "13800138000".into()));
        assert!(
            matches!(not_a_type, Err(LogRecordError::Invalid(_))),
            "{not_a_type:?}"
        );
        assert!(
            matches!(&kind, Err(LogRecordError::NotUnderstood(why)) if why.contains("order_teleported")),
            "{kind:?}"
        );
        // A known type with a wrong field, bytes that are no JSON, a layout never written.
        let phone = "13800138000";
        let wrong_field = decode_json_era(&record(|v| v["body"]["on_hand"] = phone.into()));
        let garbage = decode_json_era(b"{not an event");
        let zero = decode_json_era(&record(|v| v["schema_version"] = 0.into()));
        for invalid in [&wrong_field, &garbage, &zero] {
            assert!(
                matches!(invalid, Err(LogRecordError::Invalid(_))),
                "{invalid:?}"
            );
        }
        // The reason says what is wrong, never a value (it may be personal data).
        let reason = wrong_field.unwrap_err().to_string();
        assert!(
            reason.contains("does not fit") && !reason.contains(phone),
            "{reason}"
        );
    }

    /// An event of `key` with `body`, its id told apart by `id`.
    fn event_of(key: &str, id: &str, body: EventBody) -> Event {
        Event {
            event_id: orderflow_domain::EventId::derive(&[id]),
            key: key.parse().unwrap(),
            body,
            ..level()
        }
    }

    fn protobuf(payload: &[u8]) -> Result<Vec<Event>, LogRecordError> {
        decode_log_record(payload, Some(LOG_CONTENT_TYPE.as_bytes()))
    }

    /// `level()` on the wire, changed by `edit`.
    fn wire_record(edit: impl FnOnce(&mut v1::Event)) -> Vec<u8> {
        let mut event = v1::Event::from(&level());
        edit(&mut event);
        v1::LogRecord {
            events: vec![event],
        }
        .encode_to_vec()
    }

    #[test]
    fn a_protobuf_record_holds_several_events_of_one_key_read_with_or_without_its_header() {
        let events = vec![
            event_of("jd:JD-1", "a", EventBody::OrderCompleted),
            event_of(
                "jd:JD-1",
                "b",
                EventBody::OrderCancelled {
                    reason: Some(String::new()),
                },
            ),
            event_of("jd:JD-1", "c", EventBody::OrderCancelled { reason: None }),
        ];
        let payload = encode_log_record(&events);
        assert_eq!(protobuf(&payload).unwrap(), events);
        assert_eq!(decode_log_record(&payload, None).unwrap(), events);
        let plain = decode_log_record(&payload, Some(b"application/x-protobuf")).unwrap();
        assert_eq!(plain, events);
    }

    #[test]
    fn a_newer_protobuf_layout_type_or_value_is_not_understood() {
        let newer = protobuf(&wire_record(|e| e.schema_version = 2));
        assert!(
            matches!(&newer, Err(LogRecordError::NotUnderstood(why)) if why.contains("schema_version 2")),
            "{newer:?}"
        );
        // An event type of a newer writer: a body field number this build doesn't know, which
        // prost skips, leaving the body unset.
        let mut unknown_body = v1::Event::from(&level());
        unknown_body.body = None;
        let mut event = unknown_body.encode_to_vec();
        event.extend([0x9a, 0x06, 0x01, 0x08]); // field 99, 1 byte: a message of its own
        let mut record = vec![0x0a, u8::try_from(event.len()).unwrap()];
        record.extend(event);
        let kind = protobuf(&record);
        assert!(
            matches!(&kind, Err(LogRecordError::NotUnderstood(why)) if why.contains("events[0].body")),
            "{kind:?}"
        );
        let channel = protobuf(&wire_record(|e| {
            e.source.as_mut().unwrap().channel = 99;
        }));
        assert!(
            matches!(&channel, Err(LogRecordError::NotUnderstood(why)) if why.contains("events[0].source.channel")),
            "{channel:?}"
        );
        let encoding = decode_log_record(
            &wire_record(|_| {}),
            Some(b"application/x-protobuf; messageType=orderflow.log.v2.LogRecord"),
        );
        assert!(
            matches!(&encoding, Err(LogRecordError::NotUnderstood(why)) if why.contains("orderflow.log.v2")),
            "{encoding:?}"
        );
        let avro = decode_log_record(b"\x00\x01", Some(b"application/avro"));
        assert!(matches!(avro, Err(LogRecordError::NotUnderstood(_))));
    }

    #[test]
    fn protobuf_bytes_that_are_no_record_are_invalid_and_named_by_field_not_value() {
        let phone = "13800138000";
        let cases = [
            ("no event", Vec::new()),
            ("garbage", b"\xff\xff\xff\xff".to_vec()),
            ("key", wire_record(|e| e.key = phone.into())),
            ("occurred_at", wire_record(|e| e.occurred_at = None)),
            (
                "occurred_at",
                wire_record(|e| e.occurred_at.as_mut().unwrap().nanos = -1),
            ),
            ("source", wire_record(|e| e.source = None)),
            ("schema_version", wire_record(|e| e.schema_version = 0)),
            (
                "another key",
                encode_log_record(&[level()])
                    .into_iter()
                    .chain(encode_log_record(&[event_of(
                        &format!("jd:{phone}"),
                        "x",
                        EventBody::OrderCompleted,
                    )]))
                    .collect(),
            ),
        ];
        for (what, payload) in cases {
            let error = protobuf(&payload);
            assert!(
                matches!(&error, Err(LogRecordError::Invalid(why)) if why.contains(what) || what == "garbage"),
                "{what}: {error:?}"
            );
            assert!(!format!("{error:?}").contains(phone), "{error:?}");
        }
        let unspecified = protobuf(&wire_record(|e| {
            e.body = Some(v1::event::Body::CustomerChoice(v1::CustomerChoice {
                action: None,
                choice: 1,
            }))
        }));
        assert!(
            matches!(&unspecified, Err(LogRecordError::Invalid(why)) if why.contains("events[0].body.customer_choice.action is missing")),
            "{unspecified:?}"
        );
    }

    mod every_variant {
        use chrono::DateTime;
        use orderflow_domain::EntityKey;
        use orderflow_domain::{
            Action, Actor, ActorRole, Address, Approval, BuyerCheck, Channel, Choice, EventId,
            ExceptionKind, Finding, Invoice, InvoiceKind, Level, NoticeDelivery, OrderId,
            OrderLine, OrderPlaced, Parcel, PurchaseLimit, Routing, Screening, SkuQty,
            StockRequest, SyncAttempt, SyncOutcome, Timestamp,
        };
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;

        use super::super::*;
        use super::protobuf;

        /// Random values every variant takes its fields from.
        #[derive(Debug, Clone)]
        struct Fields {
            text: [String; 4],
            big: [u64; 3],
            small: [u32; 2],
            flag: bool,
            maybe: Option<String>,
            status: Option<u16>,
            at: Timestamp,
            later: Option<Timestamp>,
            order_id: OrderId,
            partition: Option<i32>,
            offset: Option<i64>,
        }

        fn instant() -> impl Strategy<Value = Timestamp> {
            // chrono's range is ±262 000 years; nanoseconds up to a leap second's.
            (
                -8_000_000_000_000_i64..8_000_000_000_000,
                0_u32..2_000_000_000,
            )
                .prop_filter_map("a representable instant", |(seconds, nanos)| {
                    DateTime::from_timestamp(seconds, nanos)
                })
        }

        fn fields() -> impl Strategy<Value = Fields> {
            (
                (".{0,12}", ".{0,12}", ".{0,12}", ".{0,12}"),
                any::<[u64; 3]>(),
                any::<[u32; 2]>(),
                (
                    any::<bool>(),
                    proptest::option::of(".{0,8}"),
                    any::<Option<u16>>(),
                ),
                (instant(), proptest::option::of(instant())),
                (0_usize..6, "[A-Za-z0-9_.-]{1,64}"),
                (any::<Option<i32>>(), any::<Option<i64>>()),
            )
                .prop_map(
                    |(
                        text,
                        big,
                        small,
                        (flag, maybe, status),
                        (at, later),
                        (channel, id),
                        (partition, offset),
                    )| Fields {
                        text: [text.0, text.1, text.2, text.3],
                        big,
                        small,
                        flag,
                        maybe,
                        status,
                        at,
                        later,
                        order_id: OrderId::new(Channel::ALL[channel], &id).unwrap(),
                        partition,
                        offset,
                    },
                )
        }

        /// The number of `EventBody` variants: [`body`] builds one of each.
        const VARIANTS: usize = 33;

        /// The `index`th variant of `EventBody`, its fields taken from `f`.
        fn body(index: usize, f: &Fields) -> EventBody {
            let [a, b, c, d] = f.text.clone();
            let [x, y, z] = f.big;
            let [m, n] = f.small;
            let pick = |count: u32| (m % count) as usize;
            let action = Action {
                action_id: a.clone(),
                actor: Actor {
                    id: b.clone(),
                    role: [ActorRole::Operator, ActorRole::Customer][pick(2)],
                },
                note: f.maybe.clone(),
            };
            let kinds = ExceptionKind::ALL;
            let findings = (0..pick(3))
                .map(|i| Finding {
                    kind: kinds[(i + pick(13)) % kinds.len()],
                    code: c.clone(),
                    detail: d.clone(),
                })
                .collect::<Vec<_>>();
            let limits = vec![PurchaseLimit {
                sku: f.maybe.clone(),
                max_qty: n,
                window_secs: z,
            }];
            let lines = vec![SkuQty {
                sku: c.clone(),
                qty: y,
            }];
            let outcome = [
                SyncOutcome::Acknowledged,
                SyncOutcome::Failed,
                SyncOutcome::Rejected,
            ][pick(3)];
            match index {
                0 => EventBody::OrderPlaced(OrderPlaced {
                    buyer_id: a.clone(),
                    phone: b.clone(),
                    address: Address {
                        province: a,
                        city: b,
                        district: c.clone(),
                        detail: d.clone(),
                    },
                    lines: vec![OrderLine {
                        sku: c.clone(),
                        category: d.clone(),
                        qty: n,
                        unit_price_fen: x,
                    }],
                    discount_fen: x,
                    shipping_fen: y,
                    total_fen: z,
                    payment_method: c.clone(),
                    coupon_type: f.maybe.clone(),
                    invoice: f.flag.then(|| Invoice {
                        kind: [InvoiceKind::Personal, InvoiceKind::Company][pick(2)],
                        title: d,
                        tax_id: f.maybe.clone(),
                    }),
                }),
                1 => EventBody::OrderCancelled {
                    reason: f.maybe.clone(),
                },
                2 => EventBody::OrderCompleted,
                3 => EventBody::PaymentCaptured {
                    payment_id: a,
                    amount_fen: x,
                    method: b,
                },
                4 => EventBody::PaymentFailed {
                    payment_id: a,
                    reason: b,
                },
                5 => EventBody::PaymentRefunded {
                    refund_id: a,
                    amount_fen: x,
                    reason: f.maybe.clone(),
                },
                6 => EventBody::ShipmentDispatched {
                    carrier: a,
                    tracking_no: b,
                    warehouse: c,
                },
                7 => EventBody::ShipmentDelivered {
                    carrier: a,
                    tracking_no: b,
                },
                8 => EventBody::ShipmentReturned {
                    carrier: a,
                    tracking_no: b,
                    warehouse: c,
                    reason: f.maybe.clone(),
                },
                9 => EventBody::StockLevelChanged {
                    sku: a,
                    warehouse: b,
                    on_hand: x,
                },
                10 => EventBody::WarehouseAccepted {
                    warehouse: a,
                    routing_id: b,
                },
                11 => EventBody::ReviewApproved { action },
                12 => EventBody::ReviewRejected { action },
                13 => EventBody::ExceptionResolved {
                    action,
                    exception_id: EventId::from(c),
                },
                14 => EventBody::ExceptionAssigned {
                    action,
                    exception_id: EventId::from(c),
                    assignee: d,
                },
                15 => EventBody::CustomerChoice {
                    action,
                    choice: [Choice::Wait, Choice::Refund][pick(2)],
                },
                16 => EventBody::OrderScreened(Screening {
                    rule_version: a,
                    findings,
                    duplicate_window_secs: x,
                    purchase_limits: limits,
                }),
                17 => EventBody::OrderAutoApproved(Approval {
                    rule_version: a,
                    threshold_fen: x,
                }),
                18 => EventBody::ManualReviewRequired(Approval {
                    rule_version: a,
                    threshold_fen: x,
                }),
                19 => EventBody::StockRequested(StockRequest {
                    rule_version: a,
                    preferred_warehouse: b,
                    wait: f.flag,
                }),
                20 => EventBody::OrderRouted(Routing {
                    rule_version: a,
                    parcels: vec![Parcel {
                        routing_id: b,
                        warehouse: c,
                        lines,
                    }],
                }),
                21 => EventBody::PaymentTimedOut {
                    timeout_minutes: m,
                    rule_version: a,
                },
                22 => EventBody::ExceptionEscalated {
                    exception_id: EventId::from(a),
                    to: [Level::L1, Level::L2, Level::L3][pick(3)],
                    sla_minutes: n,
                    rule_version: b,
                },
                23 => EventBody::RefundRequested {
                    amount_fen: x,
                    coupon_fen: y,
                    reason: a,
                    rule_version: b,
                },
                24 => EventBody::BuyerCheckRequested(BuyerCheck {
                    order_id: f.order_id.clone(),
                    basket: a,
                    placed_at: f.at,
                    lines,
                    rule_version: b,
                    duplicate_window_secs: x,
                    purchase_limits: limits,
                }),
                25 => EventBody::BuyerChecked { findings },
                26 => EventBody::StockReservationRequested {
                    order_id: f.order_id.clone(),
                    qty: x,
                    preferred_warehouse: a,
                    wait: f.flag,
                },
                27 => EventBody::StockReleaseRequested {
                    order_id: f.order_id.clone(),
                    reason: a,
                },
                28 => EventBody::StockReserved {
                    sku: a,
                    warehouse: b,
                    qty: x,
                },
                29 => EventBody::StockShortage {
                    sku: a,
                    qty: x,
                    available: y,
                },
                30 => EventBody::ReviewOverdue {
                    sla_minutes: m,
                    rule_version: a,
                },
                31 => EventBody::ChannelSyncAttempted(SyncAttempt {
                    change_id: a,
                    idempotency_key: b,
                    attempt: m,
                    connector: c,
                    sent_at: f.at,
                    outcome,
                    http_status: f.status,
                    answer: d,
                    next_attempt_at: f.later,
                    max_attempts: n,
                    rule_version: f.maybe.clone().unwrap_or_default(),
                }),
                _ => EventBody::NotificationDelivered(NoticeDelivery {
                    notification_id: EventId::from(a),
                    notification_kind: b,
                    target: c,
                    idempotency_key: d,
                    sent_at: f.at,
                    outcome,
                    http_status: f.status,
                    answer: f.maybe.clone().unwrap_or_default(),
                    attempts: m,
                    batched: n,
                }),
            }
        }

        #[test]
        fn the_variants_built_are_every_variant() {
            let fields = fields()
                .new_tree(&mut proptest::test_runner::TestRunner::deterministic())
                .unwrap()
                .current();
            let kinds: std::collections::BTreeSet<&str> = (0..VARIANTS)
                .map(|index| body(index, &fields).kind())
                .collect();
            assert_eq!(kinds.len(), VARIANTS);
        }

        proptest! {
            #[test]
            fn every_variant_reads_back_exactly_as_written(f in fields()) {
                let key = EntityKey::Order(f.order_id.clone());
                let events: Vec<Event> = (0..VARIANTS)
                    .map(|index| Event {
                        schema_version: LOG_SCHEMA_VERSION,
                        event_id: EventId::derive(&[&index.to_string()]),
                        key: key.clone(),
                        occurred_at: f.at,
                        source: orderflow_domain::Source {
                            origin: f.text[0].clone(),
                            partition: f.partition,
                            offset: f.offset,
                            channel: f.flag.then(|| f.order_id.channel()),
                            caused_by: f.maybe.clone().map(EventId::from),
                        },
                        body: body(index, &f),
                    })
                    .collect();
                prop_assert_eq!(protobuf(&encode_log_record(&events)).unwrap(), events.clone());
                for event in &events {
                    let one = encode_log_record(std::slice::from_ref(event));
                    prop_assert_eq!(&protobuf(&one).unwrap()[0], event);
                }
            }
        }
    }
}
