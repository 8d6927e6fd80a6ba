//! One order's timeline and the state it folds to: what `orderflow inspect` prints and what the
//! gateway's order API serves. One implementation, fed the order's log records by whoever read
//! them (the CLI reads `order-events` to its end, the gateway keeps them in its view).

use orderflow_domain::{step, Entity, EntityKey, Event, Mode, OrderId, OrderState};
use serde::Serialize;

/// One line of an order's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub partition: i32,
    pub offset: i64,
    /// `false` for a copy of an event already folded (same `event_id`), which changed nothing.
    pub counted: bool,
    pub event: Event,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub order_id: String,
    pub timeline: Vec<TimelineEntry>,
    pub state: Option<OrderState>,
}

/// Folds one order's log records (partition, offset, event), in log order, with the domain's
/// own step. With `mask`, the phone and address of the order are masked in the timeline and
/// the state, as operators see them.
pub fn inspection<'a>(
    order_id: &OrderId,
    records: impl IntoIterator<Item = (i32, i64, &'a Event)>,
    mask: bool,
) -> Inspection {
    let key = EntityKey::Order(order_id.clone());
    let mut state = Entity::empty(&key);
    let mut timeline = Vec::new();
    for (partition, offset, event) in records {
        let counted = step(&mut state, event, Mode::Quiet).is_some();
        timeline.push(TimelineEntry {
            partition,
            offset,
            counted,
            event: if mask { event.masked() } else { event.clone() },
        });
    }
    let state = match state {
        Entity::Order(mut order) if order.version > 0 => {
            if let Some(placed) = order.placed.as_mut().filter(|_| mask) {
                placed.order.mask();
            }
            Some(order)
        }
        _ => None,
    };
    Inspection {
        order_id: order_id.to_string(),
        timeline,
        state,
    }
}
