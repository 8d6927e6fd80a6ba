//! The live loop of the state consumer, in memory: step an event, append the messages and
//! decisions it produced, until nothing is left to do; fire the timers on a tick. No
//! partitions, no broker, no store; the domain tests and the simulator's expected outcomes run
//! on it, so what they check is the same [`step`] and [`fire_timers`] the consumer runs.

use std::collections::{BTreeMap, VecDeque};

use crate::effect::Effect;
use crate::entity::Entity;
use crate::event::{Event, DERIVED_ORIGIN};
use crate::ids::{EntityKey, OrderId, Timestamp};
use crate::order::OrderState;
use crate::rules::Rules;
use crate::step::{fire_timers, step, Mode};
use crate::stock::StockState;

pub struct World {
    pub rules: Rules,
    pub now: Timestamp,
    pub entities: BTreeMap<EntityKey, Entity>,
    /// Every event that counted, in the order it was folded: the log.
    pub log: Vec<Event>,
    /// What would be published: exceptions, notifications, routing.
    pub published: Vec<Effect>,
}

impl World {
    pub fn new(rules: Rules, now: Timestamp) -> World {
        World {
            rules,
            now,
            entities: BTreeMap::new(),
            log: Vec::new(),
            published: Vec::new(),
        }
    }

    /// Appends `event` and runs everything it leads to.
    pub fn submit(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let entity = self
                .entities
                .entry(event.key.clone())
                .or_insert_with(|| Entity::empty(&event.key));
            let mode = Mode::Live {
                rules: &self.rules,
                now: self.now,
                decider: DERIVED_ORIGIN,
            };
            let Some(step) = step(entity, &event, mode) else {
                continue;
            };
            for effect in step.effects {
                match effect {
                    Effect::Append(message) => queue.push_back(message),
                    other => self.published.push(other),
                }
            }
            queue.extend(step.decisions);
            self.log.push(event);
        }
    }

    /// Moves the clock to `now` and fires the timers that are due, as the consumer's tick does.
    pub fn tick(&mut self, now: Timestamp) {
        self.now = now;
        let due: Vec<Event> = self
            .entities
            .values()
            .filter_map(|entity| match entity {
                Entity::Order(order) if order.has_timers() => Some(order),
                _ => None,
            })
            .flat_map(|order| fire_timers(order, &self.rules, now, DERIVED_ORIGIN))
            .collect();
        for decision in due {
            self.submit(decision);
        }
    }

    pub fn order(&self, order_id: &OrderId) -> Option<&OrderState> {
        match self.entities.get(&EntityKey::Order(order_id.clone())) {
            Some(Entity::Order(order)) => Some(order),
            _ => None,
        }
    }

    pub fn stock(&self, sku: &str) -> Option<&StockState> {
        match self.entities.get(&EntityKey::Stock(sku.to_string())) {
            Some(Entity::Stock(stock)) => Some(stock),
            _ => None,
        }
    }
}
