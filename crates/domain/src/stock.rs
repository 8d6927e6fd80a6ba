//! Stock on hand per sku and warehouse, from `stock_level_changed` snapshots.
//!
//! A snapshot is a level at a time: the latest one (by source time, then event id) wins, so
//! the result doesn't depend on the order snapshots arrive in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{EntityKey, Event, EventBody, EventId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockState {
    pub sku: String,
    pub version: u64,
    pub warehouses: BTreeMap<String, StockLevel>,
    pub applied: BTreeSet<EventId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub on_hand: u64,
    pub as_of: Timestamp,
    pub event_id: EventId,
}

impl StockState {
    pub fn new(sku: String) -> StockState {
        StockState {
            sku,
            version: 0,
            warehouses: BTreeMap::new(),
            applied: BTreeSet::new(),
        }
    }

    /// Folds one stock snapshot in; false if it was a duplicate or not a stock event.
    pub fn apply(&mut self, event: &Event) -> bool {
        let EventBody::StockLevelChanged {
            sku,
            warehouse,
            on_hand,
        } = &event.body
        else {
            return false;
        };
        if event.key != EntityKey::Stock(self.sku.clone())
            || *sku != self.sku
            || !self.applied.insert(event.event_id.clone())
        {
            return false;
        }
        self.version += 1;
        let incoming = StockLevel {
            on_hand: *on_hand,
            as_of: event.occurred_at,
            event_id: event.event_id.clone(),
        };
        let newer = |current: &StockLevel| {
            (incoming.as_of, &incoming.event_id) > (current.as_of, &current.event_id)
        };
        match self.warehouses.get(warehouse) {
            Some(current) if !newer(current) => {}
            _ => {
                self.warehouses.insert(warehouse.clone(), incoming);
            }
        }
        true
    }
}
