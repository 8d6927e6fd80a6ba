//! The live loop of the state consumer, in memory: fold an event, append the messages it
//! sends, decide, append the decisions, until nothing is left to do. No partitions, no
//! broker, no store; the domain tests and the simulator's expected outcomes run on it, so
//! what they check is the same code the consumer runs.

use std::collections::{BTreeMap, VecDeque};

use crate::{decide, Effect, Entity, EntityKey, Event, Rules, Timestamp, DERIVED_ORIGIN};

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
            let Some(effects) = entity.apply(&event) else {
                continue;
            };
            for effect in effects {
                match effect {
                    Effect::Append(message) => queue.push_back(message),
                    other => self.published.push(other),
                }
            }
            if let Entity::Order(order) = entity {
                for body in decide(order, &self.rules, self.now) {
                    let decision = Event::decision(
                        &order.order_id,
                        self.now,
                        DERIVED_ORIGIN,
                        Some(&event.event_id),
                        body,
                    );
                    queue.push_back(decision);
                }
            }
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
            .flat_map(|order| {
                decide(order, &self.rules, now)
                    .into_iter()
                    .map(|body| Event::decision(&order.order_id, now, DERIVED_ORIGIN, None, body))
            })
            .collect();
        for decision in due {
            self.submit(decision);
        }
    }

    pub fn order(&self, order_id: &crate::OrderId) -> Option<&crate::OrderState> {
        match self.entities.get(&EntityKey::Order(order_id.clone())) {
            Some(Entity::Order(order)) => Some(order),
            _ => None,
        }
    }

    pub fn stock(&self, sku: &str) -> Option<&crate::StockState> {
        match self.entities.get(&EntityKey::Stock(sku.to_string())) {
            Some(Entity::Stock(stock)) => Some(stock),
            _ => None,
        }
    }
}
