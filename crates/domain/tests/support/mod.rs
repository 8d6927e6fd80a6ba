//! Builders for order journeys used by the given/when/then tests and the properties.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use orderflow_domain::*;

pub fn at(minute: u32) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, minute, 0).unwrap()
}

pub fn order_id() -> OrderId {
    "tmall:TM1001".parse().unwrap()
}

pub fn fact(minute: u32, body: EventBody) -> Event {
    Event::fact(
        EntityKey::Order(order_id()),
        at(minute),
        Source {
            origin: "orderflow.in.test".into(),
            partition: Some(0),
            offset: Some(i64::from(minute)),
            channel: Some(Channel::Tmall),
            caused_by: None,
        },
        body,
    )
}

pub fn placed(total_fen: Fen) -> Event {
    fact(
        0,
        EventBody::OrderPlaced(OrderPlaced {
            buyer_id: "buyer-1".into(),
            phone: "13800138000".into(),
            address: Address {
                province: "浙江省".into(),
                city: "杭州市".into(),
                district: "西湖区".into(),
                detail: "文三路 1 号".into(),
            },
            lines: vec![OrderLine {
                sku: "SKU-1".into(),
                category: "baby".into(),
                qty: 1,
                unit_price_fen: total_fen,
            }],
            discount_fen: 0,
            shipping_fen: 0,
            total_fen,
            payment_method: "alipay".into(),
            coupon_type: None,
            invoice: None,
        }),
    )
}

pub fn captured(minute: u32, payment_id: &str, amount_fen: Fen) -> Event {
    fact(
        minute,
        EventBody::PaymentCaptured {
            payment_id: payment_id.into(),
            amount_fen,
            method: "alipay".into(),
        },
    )
}

pub fn refunded(minute: u32, refund_id: &str, amount_fen: Fen) -> Event {
    fact(
        minute,
        EventBody::PaymentRefunded {
            refund_id: refund_id.into(),
            amount_fen,
            reason: None,
        },
    )
}

pub fn dispatched(minute: u32) -> Event {
    fact(
        minute,
        EventBody::ShipmentDispatched {
            carrier: "SF".into(),
            tracking_no: "SF100".into(),
            warehouse: "WH-HZ".into(),
        },
    )
}

pub fn delivered(minute: u32) -> Event {
    fact(
        minute,
        EventBody::ShipmentDelivered {
            carrier: "SF".into(),
            tracking_no: "SF100".into(),
        },
    )
}

pub fn returned(minute: u32) -> Event {
    fact(
        minute,
        EventBody::ShipmentReturned {
            carrier: "SF".into(),
            tracking_no: "SF100".into(),
            warehouse: "WH-HZ".into(),
            reason: Some("size".into()),
        },
    )
}

pub fn cancelled(minute: u32) -> Event {
    fact(minute, EventBody::OrderCancelled { reason: None })
}

pub fn completed(minute: u32) -> Event {
    fact(minute, EventBody::OrderCompleted)
}

/// Runs events through the live loop the way the state consumer does (decisions appended
/// behind the event that called for them, messages to skus and buyers answered), with the
/// clock at minute 1 so no timer is due.
pub fn run_live(events: Vec<Event>, rules: &Rules) -> (OrderState, Vec<ExceptionChange>) {
    let world = world_of(events, rules);
    let state = world
        .order(&order_id())
        .cloned()
        .unwrap_or_else(|| OrderState::new(order_id()));
    (state, exception_changes(&world))
}

pub fn world_of(events: Vec<Event>, rules: &Rules) -> World {
    let mut world = World::new(rules.clone(), at(1));
    for event in events {
        world.submit(event);
    }
    world
}

pub fn exception_changes(world: &World) -> Vec<ExceptionChange> {
    world
        .published
        .iter()
        .filter_map(|effect| match effect {
            Effect::Exception(change) => Some(change.clone()),
            _ => None,
        })
        .collect()
}

pub fn fold(events: &[Event]) -> OrderState {
    let mut state = OrderState::new(order_id());
    for event in events {
        state.apply(event);
    }
    state
}

pub fn open_codes(state: &OrderState) -> Vec<String> {
    let mut codes: Vec<String> = state.open_exceptions().map(|e| e.code.clone()).collect();
    codes.sort();
    codes
}
