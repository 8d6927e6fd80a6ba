//! Protobuf records are mapped onto the JSON document shape so one validator serves both.

use prost::Message;
use serde_json::{json, Map, Value};

use crate::v1::{input_event::Kind, Actor, InputEvent};
use crate::{Rejection, RejectionKind};

pub(crate) fn to_json(payload: &[u8]) -> Result<Value, Rejection> {
    let input = InputEvent::decode(payload).map_err(|error| {
        Rejection::new(
            RejectionKind::MalformedProtobuf,
            format!("value is not a valid orderflow.v1.InputEvent: {error}"),
        )
    })?;
    let kind = input.kind.ok_or_else(|| {
        Rejection::new(
            RejectionKind::InvalidField,
            "kind is required: the InputEvent has no kind set",
        )
    })?;
    let (name, body) = body(kind);
    let mut document = Map::new();
    document.insert("kind".into(), json!(name));
    document.insert("schema_version".into(), json!(input.schema_version.max(1)));
    if !input.channel.is_empty() {
        document.insert("channel".into(), json!(input.channel));
    }
    if !input.platform_order_id.is_empty() {
        document.insert("platform_order_id".into(), json!(input.platform_order_id));
    }
    document.insert("occurred_at".into(), json!(input.occurred_at));
    document.extend(body);
    Ok(Value::Object(document))
}

fn body(kind: Kind) -> (&'static str, Map<String, Value>) {
    let (name, value) = match kind {
        Kind::OrderPlaced(order) => {
            let address = order.address.unwrap_or_default();
            let lines: Vec<Value> = order
                .lines
                .into_iter()
                .map(|line| {
                    json!({"sku": line.sku, "category": line.category, "qty": line.qty,
                           "unit_price_fen": line.unit_price_fen})
                })
                .collect();
            let invoice = order.invoice.map(|invoice| {
                json!({"kind": invoice.kind, "title": invoice.title, "tax_id": invoice.tax_id})
            });
            (
                "order_placed",
                json!({
                    "buyer_id": order.buyer_id, "phone": order.phone,
                    "address": {"province": address.province, "city": address.city,
                                "district": address.district, "detail": address.detail},
                    "lines": lines, "discount_fen": order.discount_fen,
                    "shipping_fen": order.shipping_fen, "total_fen": order.total_fen,
                    "payment_method": order.payment_method, "coupon_type": order.coupon_type,
                    "invoice": invoice,
                }),
            )
        }
        Kind::OrderCancelled(cancel) => ("order_cancelled", json!({"reason": cancel.reason})),
        Kind::OrderCompleted(_) => ("order_completed", json!({})),
        Kind::PaymentCaptured(p) => (
            "payment_captured",
            json!({"payment_id": p.payment_id, "amount_fen": p.amount_fen, "method": p.method}),
        ),
        Kind::PaymentFailed(p) => (
            "payment_failed",
            json!({"payment_id": p.payment_id, "reason": p.reason}),
        ),
        Kind::PaymentRefunded(r) => (
            "payment_refunded",
            json!({"refund_id": r.refund_id, "amount_fen": r.amount_fen, "reason": r.reason}),
        ),
        Kind::ShipmentDispatched(s) => (
            "shipment_dispatched",
            json!({"carrier": s.carrier, "tracking_no": s.tracking_no, "warehouse": s.warehouse}),
        ),
        Kind::ShipmentDelivered(s) => (
            "shipment_delivered",
            json!({"carrier": s.carrier, "tracking_no": s.tracking_no}),
        ),
        Kind::ShipmentReturned(s) => (
            "shipment_returned",
            json!({"carrier": s.carrier, "tracking_no": s.tracking_no,
                   "warehouse": s.warehouse, "reason": s.reason}),
        ),
        Kind::WarehouseAccepted(w) => (
            "warehouse_accepted",
            json!({"warehouse": w.warehouse, "routing_id": w.routing_id}),
        ),
        Kind::ReviewApproved(a) => (
            "review_approved",
            action(a.action_id, a.actor, a.note, json!({})),
        ),
        Kind::ReviewRejected(a) => (
            "review_rejected",
            action(a.action_id, a.actor, a.note, json!({})),
        ),
        Kind::ExceptionResolved(a) => (
            "exception_resolved",
            action(
                a.action_id,
                a.actor,
                a.note,
                json!({"exception_id": a.exception_id}),
            ),
        ),
        Kind::ExceptionAssigned(a) => (
            "exception_assigned",
            action(
                a.action_id,
                a.actor,
                a.note,
                json!({"exception_id": a.exception_id, "assignee": a.assignee}),
            ),
        ),
        Kind::CustomerChoice(a) => (
            "customer_choice",
            action(a.action_id, a.actor, a.note, json!({"choice": a.choice})),
        ),
        Kind::StockLevelChanged(s) => (
            "stock_level_changed",
            json!({"sku": s.sku, "warehouse": s.warehouse, "on_hand": s.on_hand}),
        ),
    };
    match value {
        Value::Object(map) => (name, map),
        _ => (name, Map::new()),
    }
}

/// The fields every action kind shares, plus its own. A missing `actor` message stays absent
/// (null), so the validator says `actor is required` as it does for JSON.
fn action(action_id: String, actor: Option<Actor>, note: Option<String>, own: Value) -> Value {
    let mut fields = json!({
        "action_id": action_id,
        "actor": actor.map(|actor| json!({"id": actor.id, "role": actor.role})),
        "note": note,
    });
    if let (Value::Object(fields), Value::Object(own)) = (&mut fields, own) {
        fields.extend(own);
    }
    fields
}
