//! The pure fold of the analytics projection: one record of `order-events`, `exceptions` or
//! `order-state` in, the row changes it makes out. No I/O; [`crate::store`] applies them.
//!
//! Every change is idempotent and commutes with every other: a stage keeps its earliest time, a
//! payment or refund is a row keyed by its own id (so a copy adds nothing), an exception's
//! level only rises and its resolution is the first one. A record folded twice, or the three
//! topics read in another interleaving, gives the same rows — which is why a rebuild from
//! offset 0 equals the live store (see `store::Store::digest`).
//!
//! **Linking a buyer across channels.** A platform's buyer id means nothing on another platform,
//! but the phone number on the order does: an order with a mainland mobile number belongs to
//! the customer `p:` + HMAC-SHA256(key, phone) (first 16 bytes, hex); one without belongs to
//! `b:{channel}:{buyer_id}`. The key is the first line of `analytics.customer-key-file`
//! (set one in production: without it the built-in key is public, and a phone number could be
//! found from its hash by trying every number). The phone itself is never stored, only its
//! masked form (`138****8000`).

use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use orderflow_domain::{
    is_mainland_mobile, mask_phone, EntityKey, Event, EventBody, ExceptionChange, Level,
    OrderSnapshot, Status, SyncOutcome,
};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The stages of an order the projection keeps a time for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Paid,
    /// Waiting for a person's review (`manual_review_required`).
    Review,
    Approved,
    Routed,
    /// The WMS took it (`warehouse_accepted`).
    Accepted,
    Shipped,
    Delivered,
    Completed,
    /// Cancelled by the platform, timed out unpaid, refused at review, or refunded by decision.
    Cancelled,
    Returned,
    Refunded,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::Paid,
        Stage::Review,
        Stage::Approved,
        Stage::Routed,
        Stage::Accepted,
        Stage::Shipped,
        Stage::Delivered,
        Stage::Completed,
        Stage::Cancelled,
        Stage::Returned,
        Stage::Refunded,
    ];

    /// The column prefix in `orders`: `{name}_at` (when it happened at the source) and
    /// `{name}_log` (when its fact reached the log).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Paid => "paid",
            Stage::Review => "review",
            Stage::Approved => "approved",
            Stage::Routed => "routed",
            Stage::Accepted => "accepted",
            Stage::Shipped => "shipped",
            Stage::Delivered => "delivered",
            Stage::Completed => "completed",
            Stage::Cancelled => "cancelled",
            Stage::Returned => "returned",
            Stage::Refunded => "refunded",
        }
    }
}

/// The stages an `order-state` snapshot can show, for the fact-to-state latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

impl Shown {
    pub const ALL: [Shown; 4] = [
        Shown::Paid,
        Shown::Shipped,
        Shown::Delivered,
        Shown::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Paid => "paid",
            Shown::Shipped => "shipped",
            Shown::Delivered => "delivered",
            Shown::Cancelled => "cancelled",
        }
    }
}

/// What an `order-state` snapshot shows, and when it was published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateView {
    pub order_id: String,
    pub state_ms: i64,
    pub paid: bool,
    pub shipped: bool,
    pub delivered: bool,
    pub cancelled: bool,
}

impl StateView {
    pub fn of(snapshot: &OrderSnapshot, state_ms: i64) -> StateView {
        StateView {
            order_id: snapshot.order_id.to_string(),
            state_ms,
            paid: snapshot.paid_fen > 0,
            shipped: snapshot
                .shipments
                .iter()
                .any(|s| s.dispatched_at.is_some() || s.delivered_at.is_some()),
            delivered: snapshot.shipments.iter().any(|s| s.delivered_at.is_some()),
            cancelled: matches!(snapshot.status, Status::Cancelled | Status::Refunded),
        }
    }
}

/// One record of a topic the projection reads.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// `order-events`, with its position and the record's timestamp (when it was appended).
    Event {
        event: &'a Event,
        partition: i32,
        offset: i64,
        log_ms: i64,
    },
    Exception(&'a ExceptionChange),
    State(&'a StateView),
}

/// A line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub category: String,
    pub qty: i64,
    pub unit_price_fen: i64,
}

/// What `order_placed` says about an order, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order_id: String,
    pub channel: String,
    pub placed_ms: i64,
    /// The day it was placed in the display zone, `YYYY-MM-DD`.
    pub placed_day: String,
    pub buyer_id: String,
    pub customer_key: String,
    pub phone_masked: String,
    pub province: String,
    pub city: String,
    pub payment_method: String,
    pub coupon_type: Option<String>,
    pub total_fen: i64,
    pub discount_fen: i64,
    pub shipping_fen: i64,
    pub lines: Vec<Line>,
}

/// One row change. Applying any of them twice, or in another order, gives the same rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Placed(Placed),
    /// The order reached `stage` at `at_ms` (source time); its fact was logged at `log_ms`.
    Stage {
        order_id: String,
        channel: String,
        stage: Stage,
        at_ms: i64,
        log_ms: i64,
    },
    Payment {
        order_id: String,
        channel: String,
        payment_id: String,
        amount_fen: i64,
    },
    Refund {
        order_id: String,
        channel: String,
        refund_id: String,
        amount_fen: i64,
    },
    /// The order's latest position in `order-events`: the version of its `order-facts` row.
    Position {
        order_id: String,
        partition: i32,
        offset: i64,
    },
    Stock {
        sku: String,
        warehouse: String,
        on_hand: i64,
        at_ms: i64,
    },
    Exception {
        exception_id: String,
        order_id: String,
        channel: String,
        kind: String,
        owner: String,
        level: i64,
        level_since_ms: i64,
        raised_ms: i64,
        raised_day: String,
        resolved_ms: Option<i64>,
    },
    /// The first `order-state` snapshot showing `shown` was published at `state_ms`.
    StateShown {
        order_id: String,
        channel: String,
        shown: Shown,
        state_ms: i64,
    },
    /// The order's channel acknowledged a change (`orderflow-sync`).
    SyncAcknowledged {
        order_id: String,
        change_id: String,
        change: String,
        acked_ms: i64,
    },
}

impl Change {
    /// The order whose `orders` row (and `order-facts` record) this changes, if any.
    pub fn order_row(&self) -> Option<&str> {
        match self {
            Change::Placed(placed) => Some(&placed.order_id),
            Change::Stage { order_id, .. }
            | Change::Payment { order_id, .. }
            | Change::Refund { order_id, .. } => Some(order_id),
            _ => None,
        }
    }
}

/// The fold: what each record changes.
pub struct Projection {
    key: Vec<u8>,
    zone: Tz,
}

/// The built-in key of the phone hash; public, so set `analytics.customer-key-file`.
const BUILTIN_CUSTOMER_KEY: &[u8] = b"orderflow-analytics-customer-link-v1";

impl Projection {
    /// `customer_key`: the key of the phone hash (`None`: the built-in one); `zone`: the zone
    /// days are counted in.
    pub fn new(customer_key: Option<&[u8]>, zone: Tz) -> Projection {
        Projection {
            key: customer_key.unwrap_or(BUILTIN_CUSTOMER_KEY).to_vec(),
            zone,
        }
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The day `ms` falls on in the display zone, `YYYY-MM-DD`.
    pub fn day_of(&self, ms: i64) -> String {
        day_of(ms, self.zone)
    }

    /// Who placed an order: linked by phone across channels where the phone allows.
    pub fn customer_key(&self, channel: &str, buyer_id: &str, phone: &str) -> String {
        let phone: String = phone.chars().filter(char::is_ascii_digit).collect();
        let phone = phone
            .strip_prefix("86")
            .filter(|p| p.len() == 11)
            .unwrap_or(&phone);
        if is_mainland_mobile(phone) {
            // (HMAC takes a key of any length.)
            let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
                Ok(mac) => mac,
                Err(_) => return format!("b:{channel}:{buyer_id}"),
            };
            mac.update(phone.as_bytes());
            let digest = mac.finalize().into_bytes();
            format!("p:{}", hex::encode(&digest[..16]))
        } else {
            format!("b:{channel}:{buyer_id}")
        }
    }

    /// The changes one record makes.
    pub fn changes(&self, input: Input<'_>) -> Vec<Change> {
        match input {
            Input::Event {
                event,
                partition,
                offset,
                log_ms,
            } => {
                let mut changes = self.event_changes(event, log_ms);
                if let Some(order_id) = changes.iter().find_map(Change::order_row) {
                    let order_id = order_id.to_string();
                    changes.push(Change::Position {
                        order_id,
                        partition,
                        offset,
                    });
                }
                changes
            }
            Input::Exception(change) => {
                let record = &change.exception;
                let raised_ms = record.raised_at.timestamp_millis();
                vec![Change::Exception {
                    exception_id: record.exception_id.to_string(),
                    order_id: change.order_id.to_string(),
                    channel: change.order_id.channel().as_str().to_string(),
                    kind: record.kind.as_str().to_string(),
                    owner: record.owner.as_str().to_string(),
                    level: level_number(record.level),
                    level_since_ms: record.level_since.timestamp_millis(),
                    raised_ms,
                    raised_day: self.day_of(raised_ms),
                    resolved_ms: record
                        .resolution
                        .as_ref()
                        .map(|r| r.resolved_at.timestamp_millis()),
                }]
            }
            Input::State(view) => {
                let channel = channel_of(&view.order_id);
                let shown = [
                    (view.paid, Shown::Paid),
                    (view.shipped, Shown::Shipped),
                    (view.delivered, Shown::Delivered),
                    (view.cancelled, Shown::Cancelled),
                ];
                shown
                    .into_iter()
                    .filter(|(yes, _)| *yes)
                    .map(|(_, shown)| Change::StateShown {
                        order_id: view.order_id.clone(),
                        channel: channel.clone(),
                        shown,
                        state_ms: view.state_ms,
                    })
                    .collect()
            }
        }
    }

    fn event_changes(&self, event: &Event, log_ms: i64) -> Vec<Change> {
        let order_id = match &event.key {
            EntityKey::Order(order_id) => order_id,
            EntityKey::Stock(sku) => {
                return match &event.body {
                    EventBody::StockLevelChanged {
                        warehouse, on_hand, ..
                    } => vec![Change::Stock {
                        sku: sku.clone(),
                        warehouse: warehouse.clone(),
                        on_hand: i64::try_from(*on_hand).unwrap_or(i64::MAX),
                        at_ms: event.occurred_at.timestamp_millis(),
                    }],
                    _ => Vec::new(),
                }
            }
            EntityKey::Buyer(_) => return Vec::new(),
        };
        let id = order_id.to_string();
        let channel = order_id.channel().as_str().to_string();
        let at_ms = event.occurred_at.timestamp_millis();
        let stage = |stage: Stage| Change::Stage {
            order_id: id.clone(),
            channel: channel.clone(),
            stage,
            at_ms,
            log_ms,
        };
        let fen = |amount: u64| i64::try_from(amount).unwrap_or(i64::MAX);
        match &event.body {
            EventBody::OrderPlaced(placed) => {
                vec![Change::Placed(Placed {
                    order_id: id.clone(),
                    channel: channel.clone(),
                    placed_ms: at_ms,
                    placed_day: self.day_of(at_ms),
                    buyer_id: placed.buyer_id.clone(),
                    customer_key: self.customer_key(&channel, &placed.buyer_id, &placed.phone),
                    phone_masked: mask_phone(&placed.phone),
                    province: placed.address.province.clone(),
                    city: placed.address.city.clone(),
                    payment_method: placed.payment_method.clone(),
                    coupon_type: placed.coupon_type.clone(),
                    total_fen: fen(placed.total_fen),
                    discount_fen: fen(placed.discount_fen),
                    shipping_fen: fen(placed.shipping_fen),
                    lines: placed
                        .lines
                        .iter()
                        .map(|line| Line {
                            sku: line.sku.clone(),
                            category: line.category.clone(),
                            qty: i64::from(line.qty),
                            unit_price_fen: fen(line.unit_price_fen),
                        })
                        .collect(),
                })]
            }
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                ..
            } => vec![
                stage(Stage::Paid),
                Change::Payment {
                    order_id: id.clone(),
                    channel: channel.clone(),
                    payment_id: payment_id.clone(),
                    amount_fen: fen(*amount_fen),
                },
            ],
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                ..
            } => vec![
                stage(Stage::Refunded),
                Change::Refund {
                    order_id: id.clone(),
                    channel: channel.clone(),
                    refund_id: refund_id.clone(),
                    amount_fen: fen(*amount_fen),
                },
            ],
            EventBody::OrderCancelled { .. }
            | EventBody::PaymentTimedOut { .. }
            | EventBody::RefundRequested { .. }
            | EventBody::ReviewRejected { .. } => vec![stage(Stage::Cancelled)],
            EventBody::OrderCompleted => vec![stage(Stage::Completed)],
            EventBody::ShipmentDispatched { .. } => vec![stage(Stage::Shipped)],
            EventBody::ShipmentDelivered { .. } => vec![stage(Stage::Delivered)],
            EventBody::ShipmentReturned { .. } => vec![stage(Stage::Returned)],
            EventBody::WarehouseAccepted { .. } => vec![stage(Stage::Accepted)],
            EventBody::OrderAutoApproved(_) | EventBody::ReviewApproved { .. } => {
                vec![stage(Stage::Approved)]
            }
            EventBody::ManualReviewRequired(_) => vec![stage(Stage::Review)],
            EventBody::OrderRouted(_) => vec![stage(Stage::Routed)],
            EventBody::ChannelSyncAttempted(attempt)
                if attempt.outcome == SyncOutcome::Acknowledged =>
            {
                let change = attempt
                    .change_id
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                vec![Change::SyncAcknowledged {
                    order_id: id.clone(),
                    change_id: attempt.change_id.clone(),
                    change,
                    acked_ms: at_ms,
                }]
            }
            _ => Vec::new(),
        }
    }
}

/// The day `ms` falls on in `zone`, `YYYY-MM-DD`.
pub fn day_of(ms: i64, zone: Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .format("%Y-%m-%d")
        .to_string()
}

fn level_number(level: Level) -> i64 {
    match level {
        Level::L1 => 1,
        Level::L2 => 2,
        Level::L3 => 3,
    }
}

/// `L1`, `L2`, `L3` for a stored level number.
pub fn level_name(level: i64) -> &'static str {
    match level {
        1 => "L1",
        2 => "L2",
        _ => "L3",
    }
}

/// The channel part of an order id (`tmall:123` → `tmall`).
pub fn channel_of(order_id: &str) -> String {
    order_id.split(':').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_phone_is_one_customer_on_every_channel_and_the_phone_is_not_kept() {
        let projection = Projection::new(Some(b"test-key"), chrono_tz::Asia::Shanghai);
        let tmall = projection.customer_key("tmall", "tb-1", "13800138000");
        let jd = projection.customer_key("jd", "jd-9", "+86 138-0013-8000");
        assert_eq!(tmall, jd);
        assert!(tmall.starts_with("p:") && !tmall.contains("138"));
        let other_key = Projection::new(Some(b"another"), chrono_tz::Asia::Shanghai);
        assert_ne!(
            other_key.customer_key("tmall", "tb-1", "13800138000"),
            tmall
        );
        // No usable phone: the buyer id on its channel.
        assert_eq!(
            projection.customer_key("store", "walk-in-7", ""),
            "b:store:walk-in-7"
        );
    }

    #[test]
    fn days_are_counted_in_the_display_zone() {
        // 2026-11-24T16:30Z is 00:30 on the 25th in Shanghai.
        let ms = chrono::DateTime::parse_from_rfc3339("2026-11-24T16:30:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(day_of(ms, chrono_tz::Asia::Shanghai), "2026-11-25");
        assert_eq!(day_of(ms, chrono_tz::UTC), "2026-11-24");
    }
}
