//! Field-by-field validation and normalisation of an input document.
//!
//! Every message names the field and the rule it breaks, in the words of the contract —
//! `amount_fen must be an integer of at least 1, got a fractional number` — and never the
//! value: a rejection's message goes to logs and dead-letter headers, and a value in the wrong
//! place (an address sent as a string) is personal data.

use chrono::{DateTime, Duration, Utc};
use orderflow_domain::{
    Action, Actor, ActorRole, Address, Channel, Choice, EntityKey, Event, EventBody, EventId,
    Invoice, InvoiceKind, OrderId, OrderLine, OrderPlaced, Source,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{InputTopic, Limits, Provenance, Rejection, RejectionKind};

/// Longest `action_id` of an action, in characters.
pub const MAX_ACTION_ID_CHARS: usize = 128;

/// Longest `note` of an action, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

const SUPPORTED_SCHEMA_VERSION: u64 = 1;

fn invalid(message: String) -> Rejection {
    Rejection::new(RejectionKind::InvalidField, message)
}

/// What a value is, for a message that must not show the value itself.
fn shape(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_u64() => "an integer",
        Value::Number(number) if number.is_i64() => "a negative integer",
        Value::Number(_) => "a fractional number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Rejects a document with a list or object of more items than the limits allow, anywhere in
/// it (ignored fields too): `lines` may have `max_lines`, everything else `max_collection`.
pub(crate) fn collections(document: &Value, limits: &Limits) -> Result<(), Rejection> {
    fn walk(value: &Value, path: &str, limits: &Limits) -> Result<(), Rejection> {
        let (items, max) = match value {
            Value::Array(items) if path == "lines" => (items.len(), limits.max_lines),
            Value::Array(items) => (items.len(), limits.max_collection),
            Value::Object(map) => (map.len(), limits.max_collection),
            _ => return Ok(()),
        };
        if items > max {
            let name = if path.is_empty() { "value" } else { path };
            return Err(Rejection::new(
                RejectionKind::TooManyItems,
                format!("{name} must have at most {max} items, got {items}"),
            ));
        }
        match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(index, item)| walk(item, &format!("{path}[{index}]"), limits)),
            Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(item, &child, limits)
            }),
            _ => Ok(()),
        }
    }
    walk(document, "", limits)
}

/// A JSON object with the path to it, for messages like `lines[2].qty must be …`.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
    limits: &'a Limits,
}

impl<'a> Fields<'a> {
    fn root(value: &'a Value, limits: &'a Limits) -> Result<Fields<'a>, Rejection> {
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path: String::new(),
                limits,
            }),
            other => Err(invalid(format!(
                "value must be a JSON object, got {}",
                shape(other)
            ))),
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.path)
    }

    /// A present, non-null field.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    fn required(&self, field: &str) -> Result<&'a Value, Rejection> {
        self.get(field)
            .ok_or_else(|| invalid(format!("{} is required", self.name(field))))
    }

    fn string(&self, field: &str) -> Result<String, Rejection> {
        let text = self.text(field)?;
        if text.is_empty() {
            return Err(invalid(format!("{} must not be empty", self.name(field))));
        }
        Ok(text)
    }

    /// A string that may be empty (emptiness is screened later, not rejected here), of at most
    /// `max_text_bytes` after trimming.
    fn text(&self, field: &str) -> Result<String, Rejection> {
        let value = self.required(field)?;
        let text = value.as_str().map(str::trim).ok_or_else(|| {
            invalid(format!(
                "{} must be a string, got {}",
                self.name(field),
                shape(value)
            ))
        })?;
        let max = self.limits.max_text_bytes;
        if text.len() > max {
            return Err(Rejection::new(
                RejectionKind::TextTooLong,
                format!(
                    "{} must be at most {max} bytes, got {}",
                    self.name(field),
                    text.len()
                ),
            ));
        }
        Ok(text.to_string())
    }

    fn optional_string(&self, field: &str) -> Result<Option<String>, Rejection> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.text(field).map(Some),
        }
    }

    /// A string that may be empty or absent (absent reads as empty), but not of another type.
    fn text_or_empty(&self, field: &str) -> Result<String, Rejection> {
        Ok(self.optional_string(field)?.unwrap_or_default())
    }

    /// A string of at most `max` characters (after trimming).
    fn check_length(&self, field: &str, text: &str, max: usize) -> Result<(), Rejection> {
        let chars = text.chars().count();
        if chars > max {
            return Err(Rejection::new(
                RejectionKind::TextTooLong,
                format!(
                    "{} must be at most {max} characters, got {chars}",
                    self.name(field)
                ),
            ));
        }
        Ok(())
    }

    fn integer(&self, field: &str, min: u64) -> Result<u64, Rejection> {
        let value = self.required(field)?;
        match value.as_u64() {
            Some(number) if number >= min => Ok(number),
            _ => Err(invalid(format!(
                "{} must be {}, got {}",
                self.name(field),
                if min == 0 {
                    "a non-negative integer".to_string()
                } else {
                    format!("an integer of at least {min}")
                },
                match value.as_u64() {
                    Some(_) => "a smaller integer",
                    None => shape(value),
                }
            ))),
        }
    }

    /// An amount in fen: an integer of at least `min` and at most `max_amount_fen`.
    fn amount(&self, field: &str, min: u64) -> Result<u64, Rejection> {
        let amount = self.integer(field, min)?;
        let max = self.limits.max_amount_fen;
        if amount > max {
            return Err(Rejection::new(
                RejectionKind::AmountTooLarge,
                format!("{} must be at most {max} fen", self.name(field)),
            ));
        }
        Ok(amount)
    }

    fn amount_or_zero(&self, field: &str) -> Result<u64, Rejection> {
        match self.get(field) {
            None => Ok(0),
            Some(_) => self.amount(field, 0),
        }
    }

    fn integer_or(&self, field: &str, default: u64) -> Result<u64, Rejection> {
        match self.get(field) {
            None => Ok(default),
            Some(_) => self.integer(field, 0),
        }
    }

    fn object(&self, field: &str) -> Result<Fields<'a>, Rejection> {
        let value = self.required(field)?;
        match value {
            Value::Object(map) => Ok(Fields {
                map,
                path: format!("{}.", self.name(field)),
                limits: self.limits,
            }),
            other => Err(invalid(format!(
                "{} must be an object, got {}",
                self.name(field),
                shape(other)
            ))),
        }
    }

    fn timestamp(&self, field: &str) -> Result<DateTime<Utc>, Rejection> {
        let raw = self.string(field)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| {
                invalid(format!(
                    "{} must be an RFC 3339 timestamp with offset (e.g. 2026-11-25T10:00:00+08:00)",
                    self.name(field)
                ))
            })
    }
}

/// The event `document` states. With `now`, an `occurred_at` more than
/// `max_future_skew_secs` after it is rejected.
pub(crate) fn event(
    topic: InputTopic,
    provenance: &Provenance,
    document: &Value,
    limits: &Limits,
    now: Option<DateTime<Utc>>,
) -> Result<Event, Rejection> {
    let fields = Fields::root(document, limits)?;
    let version = fields.integer_or("schema_version", SUPPORTED_SCHEMA_VERSION)?;
    if version != SUPPORTED_SCHEMA_VERSION {
        return Err(Rejection::new(
            RejectionKind::UnsupportedVersion,
            format!("schema_version must be {SUPPORTED_SCHEMA_VERSION}"),
        ));
    }
    let kind = fields.string("kind")?;
    match InputTopic::of_kind(&kind) {
        Some(owner) if owner == topic => {}
        Some(owner) => {
            return Err(Rejection::new(
                RejectionKind::WrongTopic,
                format!(
                    "kind {kind:?} belongs on {}, not on {}",
                    owner.name(),
                    topic.name()
                ),
            ))
        }
        None => {
            return Err(invalid(format!(
                "kind must be one of {}",
                topic.kinds().join(", ")
            )))
        }
    }
    let occurred_at = fields.timestamp("occurred_at")?;
    let skew = limits.max_future_skew_secs;
    let latest = now.map(|now| now + Duration::seconds(i64::try_from(skew).unwrap_or(i64::MAX)));
    if latest.is_some_and(|latest| occurred_at > latest) {
        return Err(Rejection::new(
            RejectionKind::OccurredInFuture,
            format!("occurred_at must not be more than {skew} seconds ahead of the intake's clock"),
        ));
    }
    let mut source = Source {
        origin: provenance.topic.clone(),
        partition: Some(provenance.partition),
        offset: Some(provenance.offset),
        channel: None,
        caused_by: None,
    };
    if kind == "stock_level_changed" {
        return Ok(Event::stock_level(
            &fields.string("sku")?,
            &fields.string("warehouse")?,
            fields.integer("on_hand", 0)?,
            occurred_at,
            source,
        ));
    }
    let order_id = order_id(&fields)?;
    source.channel = Some(order_id.channel());
    let body = order_body(&kind, &fields)?;
    Ok(Event::fact(
        EntityKey::Order(order_id),
        occurred_at,
        source,
        body,
    ))
}

fn order_id(fields: &Fields<'_>) -> Result<OrderId, Rejection> {
    let channel: Channel = fields.string("channel")?.parse().map_err(|_| {
        invalid("channel must be one of tmall, jd, douyin, web, miniapp, store".into())
    })?;
    let platform_order_id = fields.string("platform_order_id")?;
    OrderId::new(channel, &platform_order_id).map_err(|_| {
        invalid(
            "platform_order_id must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'".into(),
        )
    })
}

fn order_body(kind: &str, fields: &Fields<'_>) -> Result<EventBody, Rejection> {
    Ok(match kind {
        "order_placed" => EventBody::OrderPlaced(order_placed(fields)?),
        "order_cancelled" => EventBody::OrderCancelled {
            reason: fields.optional_string("reason")?,
        },
        "order_completed" => EventBody::OrderCompleted,
        "payment_captured" => EventBody::PaymentCaptured {
            payment_id: fields.string("payment_id")?,
            amount_fen: fields.amount("amount_fen", 1)?,
            method: fields.string("method")?,
        },
        "payment_failed" => EventBody::PaymentFailed {
            payment_id: fields.string("payment_id")?,
            reason: fields.string("reason")?,
        },
        "payment_refunded" => EventBody::PaymentRefunded {
            refund_id: fields.string("refund_id")?,
            amount_fen: fields.amount("amount_fen", 1)?,
            reason: fields.optional_string("reason")?,
        },
        "shipment_dispatched" => EventBody::ShipmentDispatched {
            carrier: fields.string("carrier")?,
            tracking_no: fields.string("tracking_no")?,
            warehouse: fields.string("warehouse")?,
        },
        "shipment_delivered" => EventBody::ShipmentDelivered {
            carrier: fields.string("carrier")?,
            tracking_no: fields.string("tracking_no")?,
        },
        "shipment_returned" => EventBody::ShipmentReturned {
            carrier: fields.string("carrier")?,
            tracking_no: fields.string("tracking_no")?,
            warehouse: fields.string("warehouse")?,
            reason: fields.optional_string("reason")?,
        },
        "warehouse_accepted" => EventBody::WarehouseAccepted {
            warehouse: fields.string("warehouse")?,
            routing_id: fields.string("routing_id")?,
        },
        "review_approved" => EventBody::ReviewApproved {
            action: action(kind, fields)?,
        },
        "review_rejected" => EventBody::ReviewRejected {
            action: action(kind, fields)?,
        },
        "exception_resolved" => EventBody::ExceptionResolved {
            action: action(kind, fields)?,
            exception_id: exception_id(fields)?,
        },
        "exception_assigned" => EventBody::ExceptionAssigned {
            action: action(kind, fields)?,
            exception_id: exception_id(fields)?,
            assignee: fields.string("assignee")?,
        },
        "customer_choice" => EventBody::CustomerChoice {
            action: action(kind, fields)?,
            choice: match fields.string("choice")?.as_str() {
                "wait" => Choice::Wait,
                "refund" => Choice::Refund,
                _ => return Err(invalid("choice must be \"wait\" or \"refund\"".into())),
            },
        },
        _ => return Err(invalid("kind is not an order fact".into())),
    })
}

/// Who acted, and the role `kind` needs: a customer makes a `customer_choice`; reviews and
/// exceptions are an operator's business.
fn action(kind: &str, fields: &Fields<'_>) -> Result<Action, Rejection> {
    let action_id = fields.string("action_id")?;
    fields.check_length("action_id", &action_id, MAX_ACTION_ID_CHARS)?;
    let actor = fields.object("actor")?;
    let actor_id = actor.string("id")?;
    let role = match actor.string("role")?.as_str() {
        "operator" => ActorRole::Operator,
        "customer" => ActorRole::Customer,
        _ => {
            return Err(invalid(
                "actor.role must be \"operator\" or \"customer\"".into(),
            ))
        }
    };
    let needed = if kind == "customer_choice" {
        ActorRole::Customer
    } else {
        ActorRole::Operator
    };
    if role != needed {
        return Err(invalid(format!(
            "actor.role must be {:?} for {kind}",
            needed.as_str()
        )));
    }
    let note = fields
        .optional_string("note")?
        .filter(|note| !note.is_empty());
    if let Some(note) = &note {
        fields.check_length("note", note, MAX_NOTE_CHARS)?;
    }
    Ok(Action {
        action_id,
        actor: Actor { id: actor_id, role },
        note,
    })
}

/// The `event_id` of the exception event an action is about: 32 lowercase hex characters.
fn exception_id(fields: &Fields<'_>) -> Result<EventId, Rejection> {
    let raw = fields.string("exception_id")?;
    let well_formed = raw.len() == 32
        && raw
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(invalid(
            "exception_id must be 32 lowercase hex characters (the event id of the exception)"
                .into(),
        ));
    }
    EventId::deserialize(Value::String(raw)).map_err(|_| {
        invalid(
            "exception_id must be 32 lowercase hex characters (the event id of the exception)"
                .into(),
        )
    })
}

fn order_placed(fields: &Fields<'_>) -> Result<OrderPlaced, Rejection> {
    // An incomplete address is the state consumer's to screen (an `invalid_address`
    // exception with an owner), so absent parts read as empty; only a wrong type is rejected.
    let address = match fields.get("address") {
        None => Address {
            province: String::new(),
            city: String::new(),
            district: String::new(),
            detail: String::new(),
        },
        Some(_) => {
            let address = fields.object("address")?;
            Address {
                province: address.text_or_empty("province")?,
                city: address.text_or_empty("city")?,
                district: address.text_or_empty("district")?,
                detail: address.text_or_empty("detail")?,
            }
        }
    };
    let lines = order_lines(fields)?;
    let discount_fen = fields.amount_or_zero("discount_fen")?;
    let shipping_fen = fields.amount_or_zero("shipping_fen")?;
    let total_fen = fields.amount("total_fen", 0)?;
    let goods_fen = lines.iter().try_fold(0u64, |sum, line| {
        u64::from(line.qty)
            .checked_mul(line.unit_price_fen)
            .and_then(|amount| sum.checked_add(amount))
    });
    let expected = goods_fen
        .and_then(|goods| goods.checked_add(shipping_fen))
        .and_then(|gross| gross.checked_sub(discount_fen));
    if expected != Some(total_fen) {
        return Err(invalid(
            "total_fen must equal the sum of the lines' qty × unit_price_fen - discount_fen + shipping_fen"
                .into(),
        ));
    }
    let invoice = match fields.get("invoice") {
        None => None,
        Some(_) => {
            let invoice = fields.object("invoice")?;
            let kind = match invoice.string("kind")?.as_str() {
                "personal" => InvoiceKind::Personal,
                "company" => InvoiceKind::Company,
                _ => {
                    return Err(invalid(
                        "invoice.kind must be \"personal\" or \"company\"".into(),
                    ))
                }
            };
            Some(Invoice {
                kind,
                title: invoice.text("title")?,
                tax_id: invoice.optional_string("tax_id")?,
            })
        }
    };
    Ok(OrderPlaced {
        buyer_id: fields.string("buyer_id")?,
        // Likewise the phone: its format is screened (`invalid_phone`), never rejected here.
        phone: normalise_phone(&fields.text_or_empty("phone")?),
        address,
        lines,
        discount_fen,
        shipping_fen,
        total_fen,
        payment_method: fields.string("payment_method")?,
        coupon_type: fields.optional_string("coupon_type")?,
        invoice,
    })
}

fn order_lines(fields: &Fields<'_>) -> Result<Vec<OrderLine>, Rejection> {
    let value = fields.required("lines")?;
    let items = value
        .as_array()
        .ok_or_else(|| invalid(format!("lines must be an array, got {}", shape(value))))?;
    let max = fields.limits.max_lines;
    if items.is_empty() {
        return Err(invalid(format!("lines must have 1 to {max} items, got 0")));
    }
    if items.len() > max {
        return Err(Rejection::new(
            RejectionKind::TooManyItems,
            format!("lines must have at most {max} items, got {}", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let line = match item {
                Value::Object(map) => Fields {
                    map,
                    path: format!("lines[{index}]."),
                    limits: fields.limits,
                },
                other => {
                    return Err(invalid(format!(
                        "lines[{index}] must be an object, got {}",
                        shape(other)
                    )))
                }
            };
            let qty = line.integer("qty", 1)?;
            Ok(OrderLine {
                sku: line.string("sku")?,
                category: line.string("category")?,
                qty: u32::try_from(qty).map_err(|_| {
                    invalid(format!("lines[{index}].qty must be at most {}", u32::MAX))
                })?,
                unit_price_fen: line.amount("unit_price_fen", 0)?,
            })
        })
        .collect()
}

/// Keeps digits only and drops the mainland country code, so `+86 138-0013-8000` and
/// `13800138000` are the same phone.
fn normalise_phone(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let national = digits
        .strip_prefix("0086")
        .or_else(|| digits.strip_prefix("86").filter(|rest| rest.len() == 11))
        .unwrap_or(&digits);
    national.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_normalised() {
        assert_eq!(normalise_phone("+86 138-0013-8000"), "13800138000");
        assert_eq!(normalise_phone("0086 13800138000"), "13800138000");
        assert_eq!(normalise_phone("13800138000"), "13800138000");
        assert_eq!(normalise_phone("8613800138000"), "13800138000");
    }
}
