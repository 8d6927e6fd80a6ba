//! Stock of one sku (`sku:{sku}`): levels per warehouse from `stock_level_changed`
//! snapshots, and the units reserved for orders.
//!
//! A snapshot is a level at a time: the latest one (by source time, then event id) wins, so
//! the result doesn't depend on the order snapshots arrive in. A source time can be wrong,
//! though: one snapshot dated 2099 would win against every later one. So every event's time
//! counts at most [`HORIZON_SKEW_SECS`] after the newest time the sku has seen before it (its
//! `horizon`, from the log alone, so replay gives the same levels): a far-future snapshot
//! ranks as if taken then, and a snapshot taken after that replaces it. Reservations are decided here,
//! in the sku's one partition, so two orders racing for the last unit are put in one order by
//! the log: the first gets it, the second is told there is none, never both.
//!
//! A sku that has never had a level reported is not stock-managed (made to order, drop
//! shipped): it is reserved from the preferred warehouse without a limit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::effect::Effect;
use crate::event::{Event, EventBody};
use crate::ids::{EntityKey, EventId, OrderId, Timestamp};

/// How far an event's time may run ahead of the newest time its sku has seen before: an hour,
/// far more than clocks drift and snapshots are reordered, far less than a pinned level costs.
pub const HORIZON_SKEW_SECS: i64 = 3_600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockState {
    pub sku: String,
    pub version: u64,
    pub warehouses: BTreeMap<String, StockLevel>,
    /// Units held for orders that haven't shipped, cancelled or given up.
    pub reservations: BTreeMap<OrderId, Reservation>,
    /// Orders whose customer chose to wait, first come first served.
    pub waiting: Vec<Waiting>,
    /// Ids of the events folded in: one or two per order that ever wanted the sku, so the
    /// serialized state leaves them out and a store keeps them apart
    /// ([`crate::Entity::applied_kept_apart`]).
    #[serde(skip)]
    pub applied: BTreeSet<EventId>,
    /// The newest event time the sku has seen, each event's counted at most
    /// [`HORIZON_SKEW_SECS`] after the horizon before it; none before the first event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub on_hand: u64,
    /// When the snapshot was taken, at most [`HORIZON_SKEW_SECS`] after the sku's horizon.
    pub as_of: Timestamp,
    pub event_id: EventId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub warehouse: String,
    pub qty: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub order_id: OrderId,
    pub qty: u64,
    pub preferred_warehouse: String,
    /// The request it answers: the reply's id derives from it.
    pub request: Event,
}

impl StockState {
    pub fn new(sku: String) -> StockState {
        StockState {
            sku,
            version: 0,
            warehouses: BTreeMap::new(),
            reservations: BTreeMap::new(),
            waiting: Vec::new(),
            applied: BTreeSet::new(),
            horizon: None,
        }
    }

    /// `event`'s time as the sku counts it (at most the horizon + skew), moving the horizon.
    fn bounded_time(&mut self, event: &Event) -> Timestamp {
        let skew = chrono::Duration::seconds(HORIZON_SKEW_SECS);
        let time = match self
            .horizon
            .and_then(|horizon| horizon.checked_add_signed(skew))
        {
            Some(latest) => event.occurred_at.min(latest),
            None => event.occurred_at,
        };
        self.horizon = self.horizon.max(Some(time));
        time
    }

    /// Units free in `warehouse`: on hand minus held.
    pub fn available(&self, warehouse: &str) -> u64 {
        let on_hand = self
            .warehouses
            .get(warehouse)
            .map_or(0, |level| level.on_hand);
        let held: u64 = self
            .reservations
            .values()
            .filter(|reservation| reservation.warehouse == warehouse)
            .map(|reservation| reservation.qty)
            .fold(0, u64::saturating_add);
        on_hand.saturating_sub(held)
    }

    fn managed(&self) -> bool {
        !self.warehouses.is_empty()
    }

    /// Folds one stock event in; `None` if it was a duplicate or not for this sku.
    pub fn apply(&mut self, event: &Event) -> Option<Vec<Effect>> {
        if !matches!(&event.key, EntityKey::Stock(sku) if *sku == self.sku) {
            return None;
        }
        let relevant = match &event.body {
            EventBody::StockLevelChanged { sku, .. } => *sku == self.sku,
            EventBody::StockReservationRequested { .. }
            | EventBody::StockReleaseRequested { .. } => true,
            _ => false,
        };
        if !relevant || !self.applied.insert(event.event_id.clone()) {
            return None;
        }
        self.version += 1;
        let at = self.bounded_time(event);
        let mut effects = Vec::new();
        match &event.body {
            EventBody::StockLevelChanged {
                warehouse, on_hand, ..
            } => {
                self.record_level(event, at, warehouse, *on_hand);
                self.serve_waiting(&mut effects);
            }
            EventBody::StockReservationRequested {
                order_id,
                qty,
                preferred_warehouse,
                wait,
            } => effects.extend(self.request(event, order_id, *qty, preferred_warehouse, *wait)),
            EventBody::StockReleaseRequested { order_id, .. } => {
                self.reservations.remove(order_id);
                self.waiting.retain(|waiting| waiting.order_id != *order_id);
                self.serve_waiting(&mut effects);
            }
            _ => {}
        }
        Some(effects)
    }

    /// Reserves `qty` for `order_id` if there is enough, else queues it (`wait`) or replies
    /// that there is none. A repeated request of an order that holds or waits changes nothing.
    fn request(
        &mut self,
        event: &Event,
        order_id: &OrderId,
        qty: u64,
        preferred_warehouse: &str,
        wait: bool,
    ) -> Option<Effect> {
        if self.reservations.contains_key(order_id)
            || self.waiting.iter().any(|w| w.order_id == *order_id)
        {
            return None;
        }
        match self.pick(qty, preferred_warehouse) {
            Some(warehouse) => Some(self.reserve(order_id, warehouse, qty, event)),
            None if wait => {
                self.waiting.push(Waiting {
                    order_id: order_id.clone(),
                    qty,
                    preferred_warehouse: preferred_warehouse.to_string(),
                    request: event.clone(),
                });
                None
            }
            None => Some(Effect::Append(Event::message(
                EntityKey::Order(order_id.clone()),
                event,
                EventBody::StockShortage {
                    sku: self.sku.clone(),
                    qty,
                    available: self
                        .warehouses
                        .keys()
                        .map(|warehouse| self.available(warehouse))
                        .fold(0, u64::saturating_add),
                },
            ))),
        }
    }

    fn record_level(&mut self, event: &Event, at: Timestamp, warehouse: &str, on_hand: u64) {
        let incoming = StockLevel {
            on_hand,
            as_of: at,
            event_id: event.event_id.clone(),
        };
        let newer = |current: &StockLevel| {
            (incoming.as_of, &incoming.event_id) > (current.as_of, &current.event_id)
        };
        match self.warehouses.get(warehouse) {
            Some(current) if !newer(current) => {}
            _ => {
                self.warehouses.insert(warehouse.to_string(), incoming);
            }
        }
    }

    /// The warehouse to take `qty` from: the preferred one if it has them, else the one with
    /// the most free (then by name); any preferred warehouse for a sku that isn't managed.
    fn pick(&self, qty: u64, preferred: &str) -> Option<String> {
        if !self.managed() || self.available(preferred) >= qty {
            return Some(preferred.to_string());
        }
        self.warehouses
            .keys()
            .map(|warehouse| (self.available(warehouse), warehouse))
            .filter(|(free, _)| *free >= qty)
            .max_by(|(a, wa), (b, wb)| a.cmp(b).then(wb.cmp(wa)))
            .map(|(_, warehouse)| warehouse.clone())
    }

    fn reserve(
        &mut self,
        order_id: &OrderId,
        warehouse: String,
        qty: u64,
        cause: &Event,
    ) -> Effect {
        self.reservations.insert(
            order_id.clone(),
            Reservation {
                warehouse: warehouse.clone(),
                qty,
            },
        );
        Effect::Append(Event::message(
            EntityKey::Order(order_id.clone()),
            cause,
            EventBody::StockReserved {
                sku: self.sku.clone(),
                warehouse,
                qty,
            },
        ))
    }

    /// Gives freed or newly arrived units to waiting orders, first come first served; an
    /// order that doesn't fit yet keeps its place and doesn't block smaller ones behind it.
    fn serve_waiting(&mut self, effects: &mut Vec<Effect>) {
        let waiting = std::mem::take(&mut self.waiting);
        for entry in waiting {
            match self.pick(entry.qty, &entry.preferred_warehouse) {
                Some(warehouse) => {
                    let reply = self.reserve(&entry.order_id, warehouse, entry.qty, &entry.request);
                    effects.push(reply);
                }
                None => self.waiting.push(entry),
            }
        }
    }
}
