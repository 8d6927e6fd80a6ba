//! Realistic multi-channel order journeys, with the mess real platforms send, and the state
//! each order must end in.
//!
//! [`plan`] is pure and seeded: the same [`Mix`] gives the same records. The expected states
//! come from folding the valid records through the same contract decoder and domain the
//! pipeline uses, in send order, with decisions taken as the live state consumer takes them.
//! The pipeline is right when it reaches them despite duplicates, reordering, late facts,
//! malformed records and crashes.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, FixedOffset, TimeZone};
use orderflow_domain::{Channel, Entity, EntityKey, EventId, OrderSnapshot, Rules, World};
use orderflow_schema::{decode, InputTopic, Provenance};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What to generate. Shares are probabilities in `[0, 1]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Mix {
    pub seed: u64,
    pub orders: usize,
    /// Prefix of the platform order ids, so runs on the same topics don't collide.
    pub tag: String,
    /// Journeys in flight at once: an order's events are spread over about this many others.
    pub concurrent_journeys: usize,
    /// Relative weights of tmall, jd, douyin, web, miniapp, store.
    pub channel_weights: [u32; 6],
    pub max_lines: u32,
    pub max_qty: u32,
    /// Unit prices are log-uniform between these.
    pub price_min_fen: u64,
    pub price_max_fen: u64,
    pub cancel_share: f64,
    pub payment_failure_share: f64,
    pub return_share: f64,
    /// Placed and never paid (what a payment timeout will catch).
    pub abandon_share: f64,
    /// Paid but not shipped yet when the run ends.
    pub in_flight_share: f64,
    pub duplicate_share: f64,
    pub out_of_order_share: f64,
    pub late_share: f64,
    pub malformed_share: f64,
    /// When the first order is placed; a fixed day when unset, so a plan is reproducible.
    /// A run against a live pipeline starts now, or its payment timeouts would all be due.
    pub start: Option<DateTime<FixedOffset>>,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            seed: 1,
            orders: 1_000,
            tag: "SIM".into(),
            concurrent_journeys: 200,
            channel_weights: [30, 25, 20, 10, 10, 5],
            max_lines: 4,
            max_qty: 3,
            price_min_fen: 990,
            price_max_fen: 39_900,
            cancel_share: 0.05,
            payment_failure_share: 0.04,
            return_share: 0.03,
            abandon_share: 0.03,
            in_flight_share: 0.10,
            duplicate_share: 0.05,
            out_of_order_share: 0.05,
            late_share: 0.01,
            malformed_share: 0.005,
            start: None,
        }
    }
}

impl Mix {
    /// One plain sentence per bad field.
    pub fn check(&self) -> Result<(), String> {
        let shares = [
            ("cancel-share", self.cancel_share),
            ("payment-failure-share", self.payment_failure_share),
            ("return-share", self.return_share),
            ("abandon-share", self.abandon_share),
            ("in-flight-share", self.in_flight_share),
            ("duplicate-share", self.duplicate_share),
            ("out-of-order-share", self.out_of_order_share),
            ("late-share", self.late_share),
            ("malformed-share", self.malformed_share),
        ];
        for (name, share) in shares {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("{name} must be between 0 and 1, got {share}"));
            }
        }
        if self.cancel_share + self.payment_failure_share + self.abandon_share > 1.0 {
            return Err(
                "cancel-share + payment-failure-share + abandon-share must not exceed 1".into(),
            );
        }
        if self.orders == 0
            || self.concurrent_journeys == 0
            || self.max_lines == 0
            || self.max_qty == 0
        {
            return Err(
                "orders, concurrent-journeys, max-lines and max-qty must be at least 1".into(),
            );
        }
        if self.price_min_fen == 0 || self.price_min_fen > self.price_max_fen {
            return Err("price-min-fen must be at least 1 and not above price-max-fen".into());
        }
        if self.channel_weights.iter().all(|w| *w == 0) {
            return Err("channel-weights must not all be 0".into());
        }
        if !self
            .tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || self.tag.is_empty()
        {
            return Err(format!(
                "tag must be letters, digits, '-' or '_', got {:?}",
                self.tag
            ));
        }
        Ok(())
    }
}

/// One record to send.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: InputTopic,
    pub key: String,
    pub payload: Vec<u8>,
    /// The fact it states; `None` for a malformed record.
    pub fact: Option<Fact>,
}

#[derive(Debug, Clone)]
pub struct Fact {
    pub event_id: EventId,
    pub order_id: String,
    pub channel: Channel,
}

/// What an order must end as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub status: String,
    /// Distinct facts folded in (the version without decisions).
    pub facts: u64,
    /// Whether an approval decision must exist; `None` where it depends on arrival order across
    /// topics (a refund or cancel folded before the payment's approval was asked for).
    pub approved: Option<bool>,
    pub paid_fen: u64,
    pub refunded_fen: u64,
}

#[derive(Debug)]
pub struct Plan {
    pub records: Vec<Record>,
    pub expected: BTreeMap<String, Expected>,
    pub malformed: usize,
    pub duplicates: usize,
}

const CATEGORIES: [&str; 6] = ["tea", "baby", "beauty", "apparel", "electronics", "food"];
const PROVINCES: [(&str, &str, &str); 5] = [
    ("浙江省", "杭州市", "西湖区"),
    ("广东省", "深圳市", "南山区"),
    ("北京市", "北京市", "朝阳区"),
    ("四川省", "成都市", "武侯区"),
    ("上海市", "上海市", "浦东新区"),
];

struct Journey {
    steps: VecDeque<(InputTopic, Value)>,
}

fn base_time() -> DateTime<FixedOffset> {
    FixedOffset::east_opt(8 * 3600)
        .and_then(|tz| tz.with_ymd_and_hms(2026, 11, 25, 8, 0, 0).single())
        .unwrap_or_else(|| DateTime::<FixedOffset>::MIN_UTC.fixed_offset())
}

fn journey(mix: &Mix, index: usize, rng: &mut StdRng) -> Journey {
    let channel = weighted_channel(mix, rng);
    let order = format!("{}-{index:07}", mix.tag);
    let start = mix.start.unwrap_or_else(base_time) + Duration::seconds(index as i64);
    let at = |minute: i64| (start + Duration::minutes(minute)).to_rfc3339();
    let fact = |kind: &str, minute: i64, extra: Value| {
        let mut document = json!({"kind": kind, "channel": channel.as_str(), "platform_order_id": order, "occurred_at": at(minute)});
        if let (Some(map), Value::Object(more)) = (document.as_object_mut(), extra) {
            map.extend(more);
        }
        document
    };
    let lines: Vec<Value> = (0..rng.gen_range(1..=mix.max_lines))
        .map(|_| {
            let sku = rng.gen_range(0..60u32);
            let low = (mix.price_min_fen as f64).ln();
            let high = (mix.price_max_fen as f64).ln();
            let price = rng.gen_range(low..=high).exp().round() as u64;
            json!({"sku": format!("SKU-{sku:03}"), "category": CATEGORIES[sku as usize % CATEGORIES.len()],
                   "qty": rng.gen_range(1..=mix.max_qty), "unit_price_fen": price})
        })
        .collect();
    let goods: u64 = lines
        .iter()
        .map(|l| l["qty"].as_u64().unwrap_or(0) * l["unit_price_fen"].as_u64().unwrap_or(0))
        .sum();
    let discount = if rng.gen_bool(0.2) {
        (goods / 10).min(2_000)
    } else {
        0
    };
    let shipping = if rng.gen_bool(0.3) { 800 } else { 0 };
    let total = goods - discount + shipping;
    let (province, city, district) = PROVINCES[rng.gen_range(0..PROVINCES.len())];
    let method = ["alipay", "wechat_pay", "unionpay"][rng.gen_range(0..3)];
    let mut steps = vec![(
        InputTopic::Orders,
        fact(
            "order_placed",
            0,
            json!({
                // One buyer per order: two orders of one buyer with the same basket within the
                // duplicate window would make which one proceeds depend on arrival.
                "buyer_id": format!("buyer-{}-{index}", mix.tag),
                "phone": format!("1{}{:09}", rng.gen_range(3..=9), rng.gen_range(0..1_000_000_000u64)),
                "address": {"province": province, "city": city, "district": district, "detail": format!("{} 号", rng.gen_range(1..999))},
                "lines": lines, "discount_fen": discount, "shipping_fen": shipping, "total_fen": total,
                "payment_method": method,
            }),
        ),
    )];
    let captured = |id: &str| {
        (
            InputTopic::Payments,
            fact(
                "payment_captured",
                2,
                json!({"payment_id": id, "amount_fen": total, "method": "alipay"}),
            ),
        )
    };
    let tracking = json!({"carrier": "SF", "tracking_no": format!("SF{order}")});
    let shipment = |kind: &str, minute: i64, extra: Value| {
        let mut fields = tracking.clone();
        if let (Some(map), Value::Object(more)) = (fields.as_object_mut(), extra) {
            map.extend(more);
        }
        (InputTopic::Shipments, fact(kind, minute, fields))
    };
    let fulfil = |steps: &mut Vec<(InputTopic, Value)>, rng: &mut StdRng| {
        if rng.gen_bool(mix.in_flight_share) {
            return;
        }
        steps.push(shipment(
            "shipment_dispatched",
            30,
            json!({"warehouse": "WH-HZ"}),
        ));
        steps.push(shipment("shipment_delivered", 2_000, json!({})));
        if rng.gen_bool(mix.return_share) {
            steps.push(shipment(
                "shipment_returned",
                5_000,
                json!({"warehouse": "WH-HZ", "reason": "size"}),
            ));
            steps.push((
                InputTopic::Payments,
                fact(
                    "payment_refunded",
                    5_100,
                    json!({"refund_id": format!("R-{order}"), "amount_fen": total}),
                ),
            ));
        } else {
            steps.push((
                InputTopic::Orders,
                fact("order_completed", 10_000, json!({})),
            ));
        }
    };
    let roll: f64 = rng.gen();
    if roll < mix.cancel_share {
        steps.push((
            InputTopic::Orders,
            fact("order_cancelled", 10, json!({"reason": "buyer cancelled"})),
        ));
    } else if roll < mix.cancel_share + mix.abandon_share {
        // Abandoned at the cashier.
    } else if roll < mix.cancel_share + mix.abandon_share + mix.payment_failure_share {
        steps.push((
            InputTopic::Payments,
            fact(
                "payment_failed",
                1,
                json!({"payment_id": format!("PF-{order}"), "reason": "insufficient balance"}),
            ),
        ));
        if rng.gen_bool(0.5) {
            steps.push(captured(&format!("P-{order}")));
            fulfil(&mut steps, rng);
        } else {
            steps.push((
                InputTopic::Orders,
                fact("order_cancelled", 30, json!({"reason": "payment failed"})),
            ));
        }
    } else {
        steps.push(captured(&format!("P-{order}")));
        fulfil(&mut steps, rng);
    }
    // Shipment seen before its payment: the platform's and the gateway's callbacks race.
    if rng.gen_bool(mix.out_of_order_share) {
        if let Some(i) = steps
            .iter()
            .position(|(_, d)| d["kind"] == "payment_captured")
        {
            if steps
                .get(i + 1)
                .is_some_and(|(_, d)| d["kind"] == "shipment_dispatched")
            {
                steps.swap(i, i + 1);
            }
        }
    }
    Journey {
        steps: steps.into(),
    }
}

fn weighted_channel(mix: &Mix, rng: &mut StdRng) -> Channel {
    let total: u32 = mix.channel_weights.iter().sum();
    let mut pick = rng.gen_range(0..total.max(1));
    for (channel, weight) in Channel::ALL.into_iter().zip(mix.channel_weights) {
        if pick < weight {
            return channel;
        }
        pick -= weight;
    }
    Channel::Tmall
}

fn malformed(rng: &mut StdRng, serial: usize) -> (InputTopic, Vec<u8>) {
    match rng.gen_range(0..4) {
        0 => (InputTopic::Orders, format!("{{\"kind\": \"order_placed\", \"platform_order_id\": \"BROKEN-{serial}\"").into_bytes()),
        1 => (InputTopic::Payments, json!({"kind": "payment_captured", "channel": "tmall", "platform_order_id": format!("BAD-{serial}"),
            "occurred_at": "2026-11-25T08:00:00+08:00", "payment_id": "P", "amount_fen": -100, "method": "alipay"}).to_string().into_bytes()),
        2 => (InputTopic::Orders, json!({"kind": "order_cancelled", "channel": "amazon", "platform_order_id": format!("BAD-{serial}"),
            "occurred_at": "2026-11-25T08:00:00+08:00"}).to_string().into_bytes()),
        _ => (InputTopic::Shipments, json!({"kind": "shipment_delivered", "channel": "jd", "platform_order_id": format!("BAD-{serial}"),
            "occurred_at": "yesterday", "carrier": "SF", "tracking_no": "X"}).to_string().into_bytes()),
    }
}

fn record(topic: InputTopic, document: &Value) -> Record {
    let payload = document.to_string().into_bytes();
    let provenance = Provenance {
        topic: topic.name().into(),
        partition: 0,
        offset: 0,
    };
    let fact = decode(topic, &provenance, None, &payload)
        .ok()
        .map(|event| Fact {
            event_id: event.event_id,
            order_id: event.key.to_string(),
            channel: match &event.key {
                EntityKey::Order(order_id) => order_id.channel(),
                EntityKey::Stock(_) | EntityKey::Buyer(_) => Channel::Tmall,
            },
        });
    Record {
        topic,
        key: document["platform_order_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        payload,
        fact,
    }
}

/// The records of a run, in send order, and what every order must end as.
pub fn plan(mix: &Mix) -> Plan {
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let mut records = Vec::new();
    let mut late = Vec::new();
    let mut malformed_count = 0;
    let mut duplicates = 0;
    let mut next_journey = 0;
    let mut active: Vec<Journey> = Vec::new();
    loop {
        while active.len() < mix.concurrent_journeys && next_journey < mix.orders {
            active.push(journey(mix, next_journey, &mut rng));
            next_journey += 1;
        }
        if active.is_empty() {
            break;
        }
        let pick = rng.gen_range(0..active.len());
        let Some((topic, document)) = active[pick].steps.pop_front() else {
            active.swap_remove(pick);
            continue;
        };
        let record = record(topic, &document);
        if document["kind"] == "shipment_delivered" && rng.gen_bool(mix.late_share) {
            late.push(record);
            continue;
        }
        if rng.gen_bool(mix.duplicate_share) {
            // A callback retry: the same fact again, a little later.
            duplicates += 1;
            active[pick].steps.push_back((topic, document));
        }
        records.push(record);
        if rng.gen_bool(mix.malformed_share) {
            let (topic, payload) = malformed(&mut rng, malformed_count);
            malformed_count += 1;
            records.push(Record {
                topic,
                key: "broken".into(),
                payload,
                fact: None,
            });
        }
    }
    records.extend(late);
    let expected = expected_states(&records, mix.start.unwrap_or_else(base_time));
    Plan {
        records,
        expected,
        malformed: malformed_count,
        duplicates,
    }
}

/// Runs the valid records, in order, through the live loop of the state consumer in memory.
pub fn world_of(records: &[Record], start: DateTime<FixedOffset>) -> World {
    let mut world = World::new(Rules::default(), start.with_timezone(&chrono::Utc));
    for record in records.iter().filter(|r| r.fact.is_some()) {
        let provenance = Provenance {
            topic: record.topic.name().into(),
            partition: 0,
            offset: 0,
        };
        if let Ok(event) = decode(record.topic, &provenance, None, &record.payload) {
            world.submit(event);
        }
    }
    world
}

/// The [`World`] a simulated run of `orders` well-formed orders from `start` (the default mix
/// otherwise) ends in: its log and entities, for benchmarks and tests of what a fold leaves.
pub fn simulated_world(orders: usize, start: DateTime<FixedOffset>) -> World {
    let plan = plan(&Mix {
        orders,
        malformed_share: 0.0,
        start: Some(start),
        ..Mix::default()
    });
    world_of(&plan.records, start)
}

/// Runs the valid records, in order, through the live loop of the state consumer in memory
/// ([`World`]): the states the pipeline must end in.
pub fn expected_states(
    records: &[Record],
    start: DateTime<FixedOffset>,
) -> BTreeMap<String, Expected> {
    world_of(records, start)
        .entities
        .values()
        .filter_map(|entity| match entity {
            Entity::Order(order) => Some(order),
            _ => None,
        })
        .map(|order| {
            // Whether a payment was seen before a cancel, refund or shipment decides whether
            // approval was asked for at all: compared only where arrival can't change it.
            let arrival_dependent = order.cancelled.is_some()
                || !order.refunds.is_empty()
                || !order.shipments.is_empty();
            (
                order.order_id.to_string(),
                Expected {
                    status: order.status.as_str().to_string(),
                    facts: order.facts,
                    approved: (!arrival_dependent).then_some(order.approval.is_some()),
                    paid_fen: order.paid_fen(),
                    refunded_fen: order.refunded_fen(),
                },
            )
        })
        .collect()
}

/// How the published states compare with the expected ones.
#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub orders: usize,
    /// Expected orders with no state at all.
    pub lost: usize,
    /// Orders that counted more than they should (version or money above expected).
    pub duplicated: usize,
    /// Orders with any other difference.
    pub wrong: usize,
    /// The first few differences, for people.
    pub examples: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.wrong == 0
    }
}

/// Compares the latest snapshot per order (`order-state` values) with the expected states.
pub fn verify(
    expected: &BTreeMap<String, Expected>,
    actual: &BTreeMap<String, OrderSnapshot>,
) -> Verdict {
    let mut verdict = Verdict {
        orders: expected.len(),
        ..Verdict::default()
    };
    for (order, want) in expected {
        let Some(state) = actual.get(order) else {
            verdict.lost += 1;
            if verdict.examples.len() < 10 {
                verdict
                    .examples
                    .push(format!("{order}: no state published"));
            }
            continue;
        };
        let got = Expected {
            status: state.status.as_str().to_string(),
            facts: state.facts,
            approved: want.approved.map(|_| state.approval.is_some()),
            paid_fen: state.paid_fen,
            refunded_fen: state.refunded_fen,
        };
        if got == *want {
            continue;
        }
        if got.facts > want.facts
            || got.paid_fen > want.paid_fen
            || got.refunded_fen > want.refunded_fen
        {
            verdict.duplicated += 1;
        } else {
            verdict.wrong += 1;
        }
        if verdict.examples.len() < 10 {
            verdict
                .examples
                .push(format!("{order}: expected {want:?}, got {got:?}"));
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use orderflow_domain::{Approval, ApprovalDecision, ApprovalOutcome, OrderState, Status};

    #[test]
    fn a_plan_is_reproducible_and_has_every_kind_of_mess() {
        let mix = Mix {
            orders: 2_000,
            malformed_share: 0.02,
            ..Mix::default()
        };
        let first = plan(&mix);
        let second = plan(&mix);
        assert_eq!(first.records.len(), second.records.len());
        assert!(first
            .records
            .iter()
            .zip(&second.records)
            .all(|(a, b)| a.payload == b.payload));
        assert_eq!(first.expected, second.expected);
        assert!(first.malformed > 0 && first.duplicates > 0);
        assert_eq!(
            first.records.iter().filter(|r| r.fact.is_none()).count(),
            first.malformed
        );
        assert_eq!(first.expected.len(), 2_000);
        let statuses: std::collections::BTreeSet<&str> =
            first.expected.values().map(|e| e.status.as_str()).collect();
        for status in [
            "completed",
            "cancelled",
            "returned",
            "under_review",
            "routed",
            "pending_payment",
        ] {
            assert!(
                statuses.contains(status),
                "{status} missing from {statuses:?}"
            );
        }
    }

    #[test]
    fn verification_tells_lost_from_duplicated_from_wrong() {
        let plan = plan(&Mix {
            orders: 20,
            ..Mix::default()
        });
        let mut actual: BTreeMap<String, OrderSnapshot> = plan
            .expected
            .iter()
            .map(|(order, e)| {
                let mut snapshot = OrderState::new(order.parse().unwrap()).snapshot();
                snapshot.status = serde_json::from_value(json!(e.status)).unwrap();
                snapshot.facts = e.facts;
                snapshot.paid_fen = e.paid_fen;
                snapshot.refunded_fen = e.refunded_fen;
                if e.approved == Some(true) {
                    snapshot.approval = Some(ApprovalDecision {
                        outcome: ApprovalOutcome::AutoApproved,
                        rule: Approval {
                            rule_version: "test".into(),
                            threshold_fen: 50_000,
                        },
                        decided_at: base_time().with_timezone(&chrono::Utc),
                    });
                }
                (order.clone(), snapshot)
            })
            .collect();
        assert!(verify(&plan.expected, &actual).passed());
        let mut keys = actual.keys().cloned().collect::<Vec<_>>().into_iter();
        actual.remove(&keys.next().unwrap());
        let twice = keys.next().unwrap();
        actual.get_mut(&twice).unwrap().facts = 99;
        let wrong = keys.next().unwrap();
        actual.get_mut(&wrong).unwrap().status = Status::OnHold;
        let verdict = verify(&plan.expected, &actual);
        assert_eq!((verdict.lost, verdict.duplicated, verdict.wrong), (1, 1, 1));
    }
}
