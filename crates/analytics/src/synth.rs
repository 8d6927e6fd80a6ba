//! A shop's order history, simulated: weeks of orders over the six channels with a weekly
//! rhythm, a catalogue whose skus sell at their own pace, customers who come back (some on a
//! second channel with the same phone), cancellations, unpaid orders, returns, exceptions and
//! channel acknowledgements.
//!
//! It gives the same history three ways, from one seed:
//!
//! - [`History::inputs`]: the records the platforms would send (the input contract, JSON), for
//!   feeding a real pipeline;
//! - [`History::log`]: what the pipeline would write to `order-events`, `exceptions` and
//!   `order-state` for them (facts decoded by the real contract decoder, plus the decisions the
//!   state consumer takes), for folding without a broker;
//! - [`History::truth`]: what each order *is* (its buyer, amount, whether it was cancelled,
//!   shipped or returned), kept apart from both, so tests compute the KPIs independently of the
//!   store and its SQL.
//!
//! The simulator of `orderflow simulate` (`orderflow-sim`) plays one short burst of journeys,
//! one buyer per order, to measure the pipeline; this one plays a shop's months, which is what
//! KPIs, segments and a forecast need.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use orderflow_domain::{
    Approval, Channel, EntityKey, Event, EventBody, EventId, ExceptionAction, ExceptionChange,
    ExceptionKind, ExceptionRecord, Level, OrderId, Parcel, Resolution, Routing, SkuQty, Source,
    SyncAttempt, SyncOutcome, Timestamp, LOG_SCHEMA_VERSION,
};
use orderflow_schema::{decode, InputTopic, Provenance};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::project::StateView;

/// What to simulate.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HistoryMix {
    pub seed: u64,
    /// Days of history, ending the day before [`HistoryMix::end_day`].
    pub days: u32,
    /// Orders on an average day; weekends sell more (see [`WEEKDAY_FACTOR`]).
    pub orders_per_day: u32,
    /// The first day after the history (the simulation's "today"), in the shop's zone (UTC+8).
    pub end_day: NaiveDate,
    /// Distinct customers the orders are drawn from; fewer means more repeat buyers.
    pub customers: u32,
    pub skus: u32,
    pub cancel_share: f64,
    /// Placed and never paid: the payment timeout cancels them.
    pub abandon_share: f64,
    /// Of the shipped orders.
    pub return_share: f64,
    /// Customers who also buy on a second channel, with the same phone and another buyer id.
    pub cross_channel_share: f64,
    /// Orders with an exception raised (and, mostly, resolved).
    pub exception_share: f64,
    /// Report each sku's stock level once a week (what `in.inventory` carries), for days of
    /// cover. Makes the skus stock-managed in a real pipeline.
    pub stock_levels: bool,
    /// Prefix of the platform order ids.
    pub tag: String,
}

impl Default for HistoryMix {
    fn default() -> HistoryMix {
        HistoryMix {
            seed: 7,
            days: 56,
            orders_per_day: 60,
            end_day: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap_or_default(),
            customers: 1_200,
            skus: 24,
            cancel_share: 0.06,
            abandon_share: 0.03,
            return_share: 0.05,
            cross_channel_share: 0.2,
            exception_share: 0.04,
            stock_levels: true,
            tag: "H".into(),
        }
    }
}

/// Monday first: the weekly rhythm of demand.
pub const WEEKDAY_FACTOR: [f64; 7] = [0.85, 0.85, 0.9, 0.95, 1.05, 1.25, 1.15];

pub const CATEGORIES: [&str; 6] = ["baby", "beauty", "tea", "apparel", "electronics", "food"];

const PROVINCES: [(&str, &str, &str); 6] = [
    ("浙江省", "杭州市", "西湖区"),
    ("广东省", "深圳市", "南山区"),
    ("北京市", "北京市", "朝阳区"),
    ("四川省", "成都市", "武侯区"),
    ("上海市", "上海市", "浦东新区"),
    ("江苏省", "南京市", "鼓楼区"),
];

/// What an order is, from the generator's own bookkeeping (not from the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Truth {
    pub order_id: String,
    pub channel: Channel,
    /// The person behind the order: the same across channels.
    pub person: u32,
    pub province: String,
    /// The day it was placed in the shop's zone.
    pub day: NaiveDate,
    pub placed_at: Timestamp,
    pub total_fen: u64,
    /// (sku, category, qty, unit price)
    pub lines: Vec<(String, String, u32, u64)>,
    pub paid: bool,
    pub cancelled: bool,
    pub shipped: bool,
    pub returned: bool,
    pub completed: bool,
}

/// One input record (the input contract): topic, key, JSON value.
#[derive(Debug, Clone)]
pub struct InputRecord {
    pub topic: InputTopic,
    pub key: String,
    pub value: Value,
    pub at: Timestamp,
}

/// One record as the pipeline would write it.
#[derive(Debug, Clone)]
pub enum LogRecord {
    /// `order-events`: the event and when it was appended.
    Event { event: Event, log_ms: i64 },
    /// `exceptions`.
    Exception(ExceptionChange),
    /// `order-state` (what a snapshot says, and when it was published).
    State(StateView),
}

#[derive(Debug, Clone, Default)]
pub struct History {
    pub inputs: Vec<InputRecord>,
    pub log: Vec<LogRecord>,
    pub truth: Vec<Truth>,
    /// The end of the history: midnight starting [`HistoryMix::end_day`].
    pub end: Timestamp,
    keep_inputs: bool,
}

struct Customer {
    phone: String,
    channels: Vec<Channel>,
    province: usize,
    /// How often this customer buys, relative to others.
    appetite: f64,
}

struct Sku {
    code: String,
    category: &'static str,
    price_fen: u64,
    popularity: f64,
}

/// Midnight starting `day` in the shop's zone (UTC+8), as UTC.
pub fn shop_midnight(day: NaiveDate) -> Timestamp {
    let local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    Utc.from_utc_datetime(&(local - Duration::hours(8)))
}

/// Generates the history of `mix`.
pub fn history(mix: &HistoryMix) -> History {
    let mut whole = History {
        end: shop_midnight(mix.end_day),
        ..History::default()
    };
    generate(mix, true, |day| {
        whole.inputs.extend(day.inputs);
        whole.log.extend(day.log);
        whole.truth.extend(day.truth);
    });
    whole.inputs.sort_by_key(|record| record.at);
    whole
}

/// Generates the history of `mix` a day at a time (the orders placed that day, with everything
/// that happens to them later), so a history of millions of orders needs the memory of one
/// day. Without `keep_inputs`, only the log and the truth are kept.
pub fn generate(mix: &HistoryMix, keep_inputs: bool, mut each_day: impl FnMut(History)) {
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let skus: Vec<Sku> = (0..mix.skus.max(1))
        .map(|index| Sku {
            code: format!("SKU-{index:03}"),
            category: CATEGORIES[index as usize % CATEGORIES.len()],
            price_fen: (990.0 * (rng.gen_range(0.0..3.2_f64)).exp()).round() as u64,
            // A long tail: a few skus sell most.
            popularity: 1.0 / f64::from(index + 1).powf(0.8),
        })
        .collect();
    let customers: Vec<Customer> = (0..mix.customers.max(1))
        .map(|_| {
            let first = pick_channel(&mut rng);
            let mut channels = vec![first];
            if rng.gen_bool(mix.cross_channel_share) {
                let second = pick_channel(&mut rng);
                if second != first {
                    channels.push(second);
                }
            }
            Customer {
                phone: format!(
                    "1{}{:09}",
                    rng.gen_range(3..=9),
                    rng.gen_range(0..1_000_000_000_u64)
                ),
                channels,
                province: rng.gen_range(0..PROVINCES.len()),
                appetite: rng.gen_range(0.2..3.0),
            }
        })
        .collect();
    let appetite_total: f64 = customers.iter().map(|c| c.appetite).sum();
    let popularity_total: f64 = skus.iter().map(|s| s.popularity).sum();
    let end = shop_midnight(mix.end_day);
    let mut serial = 0_u32;
    for day_index in 0..mix.days {
        let mut history = History {
            end,
            keep_inputs,
            ..History::default()
        };
        let day = mix.end_day - Duration::days(i64::from(mix.days - day_index));
        let weekday = day.weekday().num_days_from_monday() as usize;
        // A gentle trend upwards over the history, and the week's rhythm.
        let trend = 0.9 + 0.2 * f64::from(day_index) / f64::from(mix.days.max(1));
        let expected = f64::from(mix.orders_per_day) * WEEKDAY_FACTOR[weekday] * trend;
        let count = (expected + rng.gen_range(-0.1..0.1) * expected)
            .round()
            .max(0.0) as u32;
        let midnight = shop_midnight(day);
        if mix.stock_levels && day_index % 7 == 0 {
            for sku in &skus {
                // Two to five weeks of its average sales, counted at 06:00.
                let weekly =
                    f64::from(mix.orders_per_day) * 7.0 * 2.0 * sku.popularity / popularity_total;
                let on_hand = (weekly * rng.gen_range(2.0..5.0)).round() as u64;
                stock_level(
                    &mut history,
                    &sku.code,
                    on_hand,
                    midnight + Duration::hours(6),
                );
            }
        }
        let mut seconds: Vec<i64> = (0..count)
            .map(|_| {
                // Most orders in the day and evening.
                let hour = if rng.gen_bool(0.8) {
                    rng.gen_range(9..23)
                } else {
                    rng.gen_range(0..24)
                };
                hour * 3600 + rng.gen_range(0..3600)
            })
            .collect();
        seconds.sort_unstable();
        for second in seconds {
            let placed_at = midnight + Duration::seconds(second);
            let person = weighted(
                &mut rng,
                customers.iter().map(|c| c.appetite),
                appetite_total,
            );
            let customer = &customers[person];
            let channel = customer.channels[rng.gen_range(0..customer.channels.len())];
            let lines = basket(&mut rng, &skus, popularity_total);
            serial += 1;
            let journey = Journey {
                mix,
                order: format!("{}{:07}", mix.tag, serial),
                channel,
                person: person as u32,
                customer,
                lines,
                placed_at,
                day,
            };
            journey.play(&mut rng, &mut history);
        }
        each_day(history);
    }
}

fn pick_channel(rng: &mut StdRng) -> Channel {
    const WEIGHTS: [u32; 6] = [30, 25, 20, 10, 10, 5];
    let mut pick = rng.gen_range(0..WEIGHTS.iter().sum::<u32>());
    for (channel, weight) in Channel::ALL.into_iter().zip(WEIGHTS) {
        if pick < weight {
            return channel;
        }
        pick -= weight;
    }
    Channel::Tmall
}

fn weighted(rng: &mut StdRng, weights: impl Iterator<Item = f64>, total: f64) -> usize {
    let mut pick = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
    let mut last = 0;
    for (index, weight) in weights.enumerate() {
        last = index;
        if pick < weight {
            return index;
        }
        pick -= weight;
    }
    last
}

fn basket(
    rng: &mut StdRng,
    skus: &[Sku],
    popularity_total: f64,
) -> Vec<(String, String, u32, u64)> {
    let mut lines: BTreeMap<usize, u32> = BTreeMap::new();
    for _ in 0..rng.gen_range(1..=3) {
        let sku = weighted(rng, skus.iter().map(|s| s.popularity), popularity_total);
        *lines.entry(sku).or_default() += rng.gen_range(1..=2);
    }
    lines
        .into_iter()
        .map(|(index, qty)| {
            let sku = &skus[index];
            (
                sku.code.clone(),
                sku.category.to_string(),
                qty,
                sku.price_fen,
            )
        })
        .collect()
}

struct Journey<'a> {
    mix: &'a HistoryMix,
    order: String,
    channel: Channel,
    person: u32,
    customer: &'a Customer,
    lines: Vec<(String, String, u32, u64)>,
    placed_at: Timestamp,
    day: NaiveDate,
}

/// Delay between a fact happening and the pipeline having it in the log and in the state, as
/// the pipeline measures it on this machine: a few hundred milliseconds.
const LOG_DELAY_MS: i64 = 150;
const STATE_DELAY_MS: i64 = 90;

impl Journey<'_> {
    fn play(&self, rng: &mut StdRng, history: &mut History) {
        let end = history.end;
        let total: u64 = self
            .lines
            .iter()
            .map(|(_, _, qty, price)| u64::from(*qty) * price)
            .sum();
        let (province, city, district) = PROVINCES[self.customer.province];
        let order_id = match OrderId::new(self.channel, &self.order) {
            Ok(order_id) => order_id,
            Err(_) => return,
        };
        let mut truth = Truth {
            order_id: order_id.to_string(),
            channel: self.channel,
            person: self.person,
            province: province.to_string(),
            day: self.day,
            placed_at: self.placed_at,
            total_fen: total,
            lines: self.lines.clone(),
            paid: false,
            cancelled: false,
            shipped: false,
            returned: false,
            completed: false,
        };
        let mut out = Out {
            history,
            order_id: &order_id,
            channel: self.channel,
            order: &self.order,
            end,
        };
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|(sku, category, qty, price)| {
                json!({"sku": sku, "category": category, "qty": qty, "unit_price_fen": price})
            })
            .collect();
        out.fact(
            InputTopic::Orders,
            "order_placed",
            self.placed_at,
            json!({
                "buyer_id": format!("{}-{}", self.channel.as_str(), self.person),
                "phone": self.customer.phone,
                "address": {"province": province, "city": city, "district": district, "detail": "文三路 478 号"},
                "lines": lines, "discount_fen": 0, "shipping_fen": 0, "total_fen": total,
                "payment_method": "alipay",
            }),
        );
        let roll: f64 = rng.gen();
        if roll < self.mix.abandon_share {
            // Unpaid: the state consumer's payment timeout (30 min by default) cancels it.
            let at = self.placed_at + Duration::minutes(30);
            out.decision(
                at,
                EventBody::PaymentTimedOut {
                    timeout_minutes: 30,
                    rule_version: "builtin-1".into(),
                },
            );
            truth.cancelled = at < end;
            history_push(out.history, truth);
            return;
        }
        if roll < self.mix.abandon_share + self.mix.cancel_share {
            let at = self.placed_at + Duration::minutes(rng.gen_range(1..20));
            out.fact(
                InputTopic::Orders,
                "order_cancelled",
                at,
                json!({"reason": "buyer cancelled"}),
            );
            out.state(at, StateStage::Cancelled);
            truth.cancelled = at < end;
            history_push(out.history, truth);
            return;
        }
        let paid_at = self.placed_at + Duration::seconds(rng.gen_range(20..900));
        out.fact(
            InputTopic::Payments,
            "payment_captured",
            paid_at,
            json!({"payment_id": format!("P-{}", self.order), "amount_fen": total, "method": "alipay"}),
        );
        out.state(paid_at, StateStage::Paid);
        truth.paid = paid_at < end;
        let approved_at = paid_at + Duration::seconds(1);
        out.decision(
            approved_at,
            EventBody::OrderAutoApproved(Approval {
                rule_version: "builtin-1".into(),
                threshold_fen: 50_000,
            }),
        );
        let routed_at = approved_at + Duration::seconds(1);
        out.decision(
            routed_at,
            EventBody::OrderRouted(Routing {
                rule_version: "builtin-1".into(),
                parcels: vec![Parcel {
                    routing_id: format!("{order_id}@WH-HZ"),
                    warehouse: "WH-HZ".into(),
                    lines: self
                        .lines
                        .iter()
                        .map(|(sku, _, qty, _)| SkuQty {
                            sku: sku.clone(),
                            qty: u64::from(*qty),
                        })
                        .collect(),
                }],
            }),
        );
        if rng.gen_bool(self.mix.exception_share) {
            self.exception(rng, &mut out, paid_at);
        }
        let tracking = json!({"carrier": "SF", "tracking_no": format!("SF{}", self.order)});
        let with = |extra: Value| {
            let mut fields = tracking.clone();
            if let (Some(map), Value::Object(more)) = (fields.as_object_mut(), extra) {
                map.extend(more);
            }
            fields
        };
        let accepted_at = routed_at + Duration::minutes(rng.gen_range(5..60));
        out.fact(
            InputTopic::Shipments,
            "warehouse_accepted",
            accepted_at,
            json!({"warehouse": "WH-HZ", "routing_id": format!("{order_id}@WH-HZ")}),
        );
        let shipped_at = accepted_at + Duration::minutes(rng.gen_range(120..1_800));
        out.fact(
            InputTopic::Shipments,
            "shipment_dispatched",
            shipped_at,
            with(json!({"warehouse": "WH-HZ"})),
        );
        out.state(shipped_at, StateStage::Shipped);
        out.acknowledged(shipped_at, "shipped:SF", rng);
        truth.shipped = shipped_at < end;
        let delivered_at = shipped_at + Duration::minutes(rng.gen_range(1_000..4_000));
        out.fact(
            InputTopic::Shipments,
            "shipment_delivered",
            delivered_at,
            with(json!({})),
        );
        out.state(delivered_at, StateStage::Delivered);
        if rng.gen_bool(self.mix.return_share) {
            let returned_at = delivered_at + Duration::hours(rng.gen_range(24..96));
            out.fact(
                InputTopic::Shipments,
                "shipment_returned",
                returned_at,
                with(json!({"warehouse": "WH-HZ", "reason": "size"})),
            );
            truth.returned = returned_at < end;
            out.fact(
                InputTopic::Payments,
                "payment_refunded",
                returned_at + Duration::hours(2),
                json!({"refund_id": format!("R-{}", self.order), "amount_fen": total}),
            );
        } else {
            let completed_at = delivered_at + Duration::days(7);
            out.fact(
                InputTopic::Orders,
                "order_completed",
                completed_at,
                json!({}),
            );
            truth.completed = completed_at < end;
        }
        history_push(out.history, truth);
    }

    /// An exception on the order, raised after payment and (mostly) resolved within hours.
    fn exception(&self, rng: &mut StdRng, out: &mut Out<'_>, at: Timestamp) {
        const KINDS: [ExceptionKind; 5] = [
            ExceptionKind::InvalidAddress,
            ExceptionKind::InvalidPhone,
            ExceptionKind::InvoiceInvalid,
            ExceptionKind::OutOfStockAtReview,
            ExceptionKind::SuspectedFraud,
        ];
        let kind = KINDS[rng.gen_range(0..KINDS.len())];
        let raised_at = at + Duration::seconds(2);
        if raised_at > out.end {
            return;
        }
        let exception_id = EventId::derive(&["synth-exception", &out.order_id.to_string()]);
        let mut record = ExceptionRecord {
            exception_id,
            kind,
            code: kind.as_str().to_string(),
            owner: kind.owner(),
            level: kind.initial_level(),
            detail: "simulated".into(),
            raised_at,
            raised_by: EventId::derive(&["synth-raise", &out.order_id.to_string()]),
            level_since: raised_at,
            assignee: None,
            resolution: None,
        };
        let change = |action, record: &ExceptionRecord| ExceptionChange {
            order_id: out.order_id.clone(),
            action,
            exception: record.clone(),
        };
        out.history.log.push(LogRecord::Exception(change(
            ExceptionAction::Raised,
            &record,
        )));
        if rng.gen_bool(0.3) && record.level < Level::L2 {
            let since = raised_at + Duration::minutes(rng.gen_range(60..300));
            if since <= out.end {
                record.level = Level::L2;
                record.level_since = since;
                out.history.log.push(LogRecord::Exception(change(
                    ExceptionAction::Escalated,
                    &record,
                )));
            }
        }
        if rng.gen_bool(0.85) {
            let resolved_at = raised_at + Duration::minutes(rng.gen_range(20..600));
            if resolved_at <= out.end {
                record.resolution = Some(Resolution {
                    resolved_at,
                    resolved_by: EventId::derive(&["synth-resolve", &out.order_id.to_string()]),
                    note: "handled".into(),
                    actor: None,
                });
                out.history.log.push(LogRecord::Exception(change(
                    ExceptionAction::Resolved,
                    &record,
                )));
            }
        }
    }
}

/// A stock count from the WMS: an input record and its event in the log.
fn stock_level(history: &mut History, sku: &str, on_hand: u64, at: Timestamp) {
    if at >= history.end {
        return;
    }
    let value = json!({"kind": "stock_level_changed", "sku": sku, "warehouse": "WH-HZ",
        "on_hand": on_hand, "occurred_at": at.to_rfc3339()});
    let provenance = Provenance {
        topic: InputTopic::Inventory.name().into(),
        partition: 0,
        offset: 0,
    };
    if let Ok(event) = decode(
        InputTopic::Inventory,
        &provenance,
        None,
        value.to_string().as_bytes(),
    ) {
        history.log.push(LogRecord::Event {
            event,
            log_ms: at.timestamp_millis() + LOG_DELAY_MS,
        });
    }
    if history.keep_inputs {
        history.inputs.push(InputRecord {
            topic: InputTopic::Inventory,
            key: sku.to_string(),
            value,
            at,
        });
    }
}

fn history_push(history: &mut History, truth: Truth) {
    if truth.placed_at < history.end {
        history.truth.push(truth);
    }
}

#[derive(Debug, Clone, Copy)]
enum StateStage {
    Paid,
    Shipped,
    Delivered,
    Cancelled,
}

struct Out<'a> {
    history: &'a mut History,
    order_id: &'a OrderId,
    channel: Channel,
    order: &'a str,
    end: Timestamp,
}

impl Out<'_> {
    /// A fact from a platform: an input record, and its event in the log (decoded by the real
    /// contract decoder, so its id is the one the pipeline gives it).
    fn fact(&mut self, topic: InputTopic, kind: &str, at: Timestamp, fields: Value) {
        if at >= self.end {
            return;
        }
        let mut value = json!({"kind": kind, "channel": self.channel.as_str(),
            "platform_order_id": self.order, "occurred_at": at.to_rfc3339()});
        if let (Some(map), Value::Object(more)) = (value.as_object_mut(), fields) {
            map.extend(more);
        }
        let provenance = Provenance {
            topic: topic.name().into(),
            partition: 0,
            offset: 0,
        };
        if let Ok(event) = decode(topic, &provenance, None, value.to_string().as_bytes()) {
            self.history.log.push(LogRecord::Event {
                event,
                log_ms: at.timestamp_millis() + LOG_DELAY_MS,
            });
        }
        if self.history.keep_inputs {
            self.history.inputs.push(InputRecord {
                topic,
                key: self.order.to_string(),
                value,
                at,
            });
        }
    }

    /// A decision of the state consumer: only in the log.
    fn decision(&mut self, at: Timestamp, body: EventBody) {
        if at >= self.end {
            return;
        }
        let event = Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&["synth", body.kind(), &self.order_id.to_string()]),
            key: EntityKey::Order(self.order_id.clone()),
            occurred_at: at,
            source: Source::origin("orderflow-state"),
            body,
        };
        self.history.log.push(LogRecord::Event {
            event,
            log_ms: at.timestamp_millis() + LOG_DELAY_MS,
        });
    }

    /// The first `order-state` snapshot that shows the stage.
    fn state(&mut self, at: Timestamp, stage: StateStage) {
        if at >= self.end {
            return;
        }
        let mut view = StateView {
            order_id: self.order_id.to_string(),
            state_ms: at.timestamp_millis() + LOG_DELAY_MS + STATE_DELAY_MS,
            paid: false,
            shipped: false,
            delivered: false,
            cancelled: false,
        };
        match stage {
            StateStage::Paid => view.paid = true,
            StateStage::Shipped => {
                view.paid = true;
                view.shipped = true;
            }
            StateStage::Delivered => {
                view.paid = true;
                view.shipped = true;
                view.delivered = true;
            }
            StateStage::Cancelled => view.cancelled = true,
        }
        self.history.log.push(LogRecord::State(view));
    }

    /// `orderflow-sync` told the channel, which acknowledged within a second or two.
    fn acknowledged(&mut self, at: Timestamp, change_id: &str, rng: &mut StdRng) {
        let answered = at + Duration::milliseconds(LOG_DELAY_MS + rng.gen_range(300..2_500));
        if answered >= self.end {
            return;
        }
        let key = EventId::derive(&["channel_sync", &self.order_id.to_string(), change_id]);
        self.decision(
            answered,
            EventBody::ChannelSyncAttempted(SyncAttempt {
                change_id: change_id.to_string(),
                idempotency_key: key.to_string(),
                attempt: 1,
                connector: "webhook".into(),
                sent_at: answered - Duration::milliseconds(200),
                outcome: SyncOutcome::Acknowledged,
                http_status: Some(200),
                answer: "HTTP 200".into(),
                next_attempt_at: None,
                max_attempts: 3,
                rule_version: "builtin-1".into(),
            }),
        );
    }
}

impl History {
    /// The input records as `orderflow feed` lines (`{"topic","key","value"}`), in time order.
    pub fn feed_lines(&self) -> String {
        self.inputs
            .iter()
            .map(|record| {
                json!({"topic": record.topic.name(), "key": record.key, "value": record.value})
                    .to_string()
                    + "\n"
            })
            .collect()
    }
}

/// The KPIs of the orders placed from `from` to `to`, computed from the generator's truth
/// alone (no store, no SQL): what the store's answers are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedKpis {
    pub orders: i64,
    pub cancelled: i64,
    pub valid_orders: i64,
    pub gmv_fen: i64,
    pub aov_fen: Option<i64>,
    pub paid_orders: i64,
    pub shipped: i64,
    pub returned: i64,
    pub buyers: i64,
    pub repeat_buyers: i64,
    pub new_customers: i64,
}

pub fn expected_kpis(truth: &[Truth], from: NaiveDate, to: NaiveDate) -> ExpectedKpis {
    let inside: Vec<&Truth> = truth
        .iter()
        .filter(|t| t.day >= from && t.day <= to)
        .collect();
    let valid: Vec<&&Truth> = inside.iter().filter(|t| !t.cancelled).collect();
    let gmv: u64 = valid.iter().map(|t| t.total_fen).sum();
    let gmv = i64::try_from(gmv).unwrap_or(i64::MAX);
    let mut per_person: BTreeMap<u32, i64> = BTreeMap::new();
    for t in &valid {
        *per_person.entry(t.person).or_default() += 1;
    }
    let mut first: BTreeMap<u32, Timestamp> = BTreeMap::new();
    for t in truth.iter().filter(|t| !t.cancelled) {
        let at = first.entry(t.person).or_insert(t.placed_at);
        *at = (*at).min(t.placed_at);
    }
    let new_customers = valid
        .iter()
        .filter(|t| first.get(&t.person) == Some(&t.placed_at))
        .map(|t| t.person)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let count = |f: &dyn Fn(&Truth) -> bool| inside.iter().filter(|t| f(t)).count() as i64;
    let valid_orders = valid.len() as i64;
    ExpectedKpis {
        orders: inside.len() as i64,
        cancelled: count(&|t| t.cancelled),
        valid_orders,
        gmv_fen: gmv,
        aov_fen: (valid_orders > 0).then(|| (gmv * 2 + valid_orders) / (valid_orders * 2)),
        paid_orders: count(&|t| t.paid),
        shipped: count(&|t| t.shipped),
        returned: count(&|t| t.returned),
        buyers: per_person.len() as i64,
        repeat_buyers: per_person.values().filter(|n| **n >= 2).count() as i64,
        new_customers: new_customers as i64,
    }
}

impl History {
    /// The log records of `order-events` and `exceptions` as `orderflow feed` lines: a history
    /// fed straight into the topics the projection reads, without the pipeline before them.
    pub fn log_feed_lines(&self) -> String {
        let mut out = String::new();
        for record in &self.log {
            let line = match record {
                LogRecord::Event { event, .. } => json!({"topic": "order-events",
                    "key": event.key.to_string(), "value": event}),
                LogRecord::Exception(change) => json!({"topic": "exceptions",
                    "key": change.order_id.to_string(),
                    "value": orderflow_schema::output::ExceptionChangeRecord::new(change.clone())}),
                LogRecord::State(_) => continue,
            };
            out.push_str(&line.to_string());
            out.push('\n');
        }
        out
    }

    /// Folds the history into `shared`'s store, as the consumers would (positions made up:
    /// one partition, offsets in order).
    pub fn fold_into(&self, shared: &crate::consumer::Shared) -> Result<(), crate::AnalyticsError> {
        use crate::project::Input;
        let mut changes = Vec::new();
        for (offset, record) in self.log.iter().enumerate() {
            let input = match record {
                LogRecord::Event { event, log_ms } => Input::Event {
                    event,
                    partition: 0,
                    offset: offset as i64,
                    log_ms: *log_ms,
                },
                LogRecord::Exception(change) => Input::Exception(change),
                LogRecord::State(view) => Input::State(view),
            };
            changes.extend(shared.projection.changes(input));
        }
        shared.store().apply(&changes, &[])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_history_is_reproducible_and_has_repeat_buyers_cancellations_and_returns() {
        let mix = HistoryMix {
            days: 21,
            orders_per_day: 30,
            ..HistoryMix::default()
        };
        let first = history(&mix);
        let second = history(&mix);
        assert_eq!(first.truth, second.truth);
        assert_eq!(first.inputs.len(), second.inputs.len());
        assert!(first.truth.len() > 500, "{}", first.truth.len());
        assert!(first.truth.iter().any(|t| t.cancelled));
        assert!(first.truth.iter().any(|t| t.returned));
        let mut orders_per_person: BTreeMap<u32, usize> = BTreeMap::new();
        for truth in &first.truth {
            *orders_per_person.entry(truth.person).or_default() += 1;
        }
        assert!(orders_per_person.values().any(|n| *n > 1));
        // Every fact decodes under the contract, and every fact is in the log.
        let facts = first
            .log
            .iter()
            .filter(|r| matches!(r, LogRecord::Event { event, .. } if !event.body.is_derived()))
            .count();
        assert_eq!(facts, first.inputs.len());
    }
}
