//! The canonical events of the order event log.
//!
//! Events are facts in the past tense. Intake consumers turn input records into these; the
//! state consumer appends its own decisions (`OrderAutoApproved`, `ManualReviewRequired`) so a
//! replay reads a decision instead of making it again.

use serde::{Deserialize, Serialize};

use crate::{Channel, EntityKey, EventId, Fen, OrderId, Timestamp};

/// Version of the log record layout; an older version is upcast on read, never rewritten.
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// One record of the order event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    pub event_id: EventId,
    /// The log key: the order id, or `sku:{sku}` for stock facts.
    pub key: EntityKey,
    /// When it happened at the source (for decisions: when it was decided).
    pub occurred_at: Timestamp,
    pub source: Source,
    pub body: EventBody,
}

/// Where an event came from: an input topic position, or the consumer that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Input topic name, or the deciding consumer (e.g. `orderflow-state`).
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// For decisions: the event that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    OrderPlaced(OrderPlaced),
    OrderCancelled {
        reason: Option<String>,
    },
    OrderCompleted,
    PaymentCaptured {
        payment_id: String,
        amount_fen: Fen,
        method: String,
    },
    PaymentFailed {
        payment_id: String,
        reason: String,
    },
    PaymentRefunded {
        refund_id: String,
        amount_fen: Fen,
        reason: Option<String>,
    },
    ShipmentDispatched {
        carrier: String,
        tracking_no: String,
        warehouse: String,
    },
    ShipmentDelivered {
        carrier: String,
        tracking_no: String,
    },
    ShipmentReturned {
        carrier: String,
        tracking_no: String,
        warehouse: String,
        reason: Option<String>,
    },
    StockLevelChanged {
        sku: String,
        warehouse: String,
        on_hand: u64,
    },
    /// Decision: the order passed automatic approval under `rule_version`.
    OrderAutoApproved(Approval),
    /// Decision: the order needs a person to approve it under `rule_version`.
    ManualReviewRequired(Approval),
}

impl EventBody {
    /// The snake_case name used on the wire, in logs and in metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::OrderPlaced(_) => "order_placed",
            EventBody::OrderCancelled { .. } => "order_cancelled",
            EventBody::OrderCompleted => "order_completed",
            EventBody::PaymentCaptured { .. } => "payment_captured",
            EventBody::PaymentFailed { .. } => "payment_failed",
            EventBody::PaymentRefunded { .. } => "payment_refunded",
            EventBody::ShipmentDispatched { .. } => "shipment_dispatched",
            EventBody::ShipmentDelivered { .. } => "shipment_delivered",
            EventBody::ShipmentReturned { .. } => "shipment_returned",
            EventBody::StockLevelChanged { .. } => "stock_level_changed",
            EventBody::OrderAutoApproved(_) => "order_auto_approved",
            EventBody::ManualReviewRequired(_) => "manual_review_required",
        }
    }

    /// One line for people: what the fact says, personal data masked.
    pub fn describe(&self) -> String {
        match self {
            EventBody::OrderPlaced(order) => format!(
                "buyer {} phone {} {}{}{} {} lines total {} fen via {}",
                order.buyer_id,
                crate::mask_phone(&order.phone),
                order.address.province,
                order.address.city,
                order.address.district,
                order.lines.len(),
                order.total_fen,
                order.payment_method
            ),
            EventBody::OrderCancelled { reason } => {
                format!("reason {}", reason.as_deref().unwrap_or("-"))
            }
            EventBody::OrderCompleted => String::new(),
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            } => format!("{payment_id} {amount_fen} fen via {method}"),
            EventBody::PaymentFailed { payment_id, reason } => format!("{payment_id}: {reason}"),
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                ..
            } => format!("{refund_id} {amount_fen} fen"),
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            } => format!("{carrier} {tracking_no} from {warehouse}"),
            EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            } => format!("{carrier} {tracking_no}"),
            EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                ..
            } => format!("{carrier} {tracking_no} back to {warehouse}"),
            EventBody::StockLevelChanged {
                warehouse, on_hand, ..
            } => format!("{on_hand} on hand in {warehouse}"),
            EventBody::OrderAutoApproved(rule) | EventBody::ManualReviewRequired(rule) => format!(
                "rule {} (auto-approve below {} fen)",
                rule.rule_version, rule.threshold_fen
            ),
        }
    }

    /// The fields beyond the order that identify this fact: a retry of the same fact repeats
    /// them, a different fact differs in at least one.
    fn identity(&self) -> Vec<&str> {
        match self {
            EventBody::OrderPlaced(_)
            | EventBody::OrderCancelled { .. }
            | EventBody::OrderCompleted
            | EventBody::OrderAutoApproved(_)
            | EventBody::ManualReviewRequired(_) => vec![],
            EventBody::PaymentCaptured { payment_id, .. }
            | EventBody::PaymentFailed { payment_id, .. } => vec![payment_id],
            EventBody::PaymentRefunded { refund_id, .. } => vec![refund_id],
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                ..
            }
            | EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            }
            | EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                ..
            } => vec![carrier, tracking_no],
            EventBody::StockLevelChanged { sku, warehouse, .. } => vec![warehouse, sku],
        }
    }
}

impl Event {
    /// The event with personal data masked, for logs and operator output.
    pub fn masked(&self) -> Event {
        let mut event = self.clone();
        if let EventBody::OrderPlaced(order) = &mut event.body {
            order.mask();
        }
        event
    }

    /// Builds a fact from a source with its deterministic id (see `docs/input-contract.md`).
    pub fn fact(key: EntityKey, occurred_at: Timestamp, source: Source, body: EventBody) -> Event {
        let key_text = key.to_string();
        let occurred = occurred_at.to_rfc3339();
        let mut parts = vec![body.kind(), key_text.as_str()];
        parts.extend(body.identity());
        if matches!(body, EventBody::StockLevelChanged { .. }) {
            // Stock levels are snapshots: the same sku and warehouse at another time is news.
            parts.push(&occurred);
        }
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&parts),
            key,
            occurred_at,
            source,
            body,
        }
    }

    /// Builds a decision about an order. Its id depends only on the order and the kind of
    /// decision, so deciding twice (after a crash, or before the first decision is read back)
    /// yields the same id and the fold keeps only the first.
    pub fn decision(
        order_id: &OrderId,
        decided_at: Timestamp,
        decider: &str,
        caused_by: &EventId,
        body: EventBody,
    ) -> Event {
        let order_text = order_id.to_string();
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&["decision", decision_slot(&body), &order_text]),
            key: EntityKey::Order(order_id.clone()),
            occurred_at: decided_at,
            source: Source {
                origin: decider.to_string(),
                partition: None,
                offset: None,
                channel: Some(order_id.channel()),
                caused_by: Some(caused_by.clone()),
            },
            body,
        }
    }
}

/// Decisions that exclude each other share a slot, so only one of them can ever count.
fn decision_slot(body: &EventBody) -> &'static str {
    match body {
        EventBody::OrderAutoApproved(_) | EventBody::ManualReviewRequired(_) => "approval",
        other => other.kind(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub buyer_id: String,
    pub phone: String,
    pub address: Address,
    pub lines: Vec<OrderLine>,
    pub discount_fen: Fen,
    pub shipping_fen: Fen,
    pub total_fen: Fen,
    pub payment_method: String,
    pub coupon_type: Option<String>,
    pub invoice: Option<Invoice>,
}

impl OrderPlaced {
    /// Masks the phone and the street address in place.
    pub fn mask(&mut self) {
        self.phone = crate::mask_phone(&self.phone);
        self.address.detail = crate::mask_detail(&self.address.detail);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub category: String,
    pub qty: u32,
    pub unit_price_fen: Fen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    Personal,
    Company,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub kind: InvoiceKind,
    pub title: String,
    pub tax_id: Option<String>,
}

/// The rule under which an approval decision was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub rule_version: String,
    pub threshold_fen: Fen,
}
