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
            Some(*order)
        }
        _ => None,
    };
    Inspection {
        order_id: order_id.to_string(),
        timeline,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_schema::{decode, InputTopic, Provenance};

    /// A documented example, edited by `edit`.
    fn example(topic: InputTopic, kind: &str, edit: impl Fn(&mut serde_json::Value)) -> Event {
        let path = format!(
            "{}/../../docs/examples/{kind}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut document: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("the example")).expect("JSON");
        edit(&mut document);
        let provenance = Provenance {
            topic: format!("orderflow.{}", topic.name()),
            partition: 0,
            offset: 0,
        };
        decode(topic, &provenance, None, document.to_string().as_bytes())
            .expect("the example is valid")
    }

    #[test]
    fn masked_inspection_shows_no_personal_data() {
        // With a personal invoice, and the buyer's choice (the buyer is its actor).
        let placed = example(InputTopic::Orders, "order_placed", |order| {
            order["invoice"] = serde_json::json!(
                {"kind": "personal", "title": "张伟伟", "tax_id": "91330106MA27XK3F5B"});
        });
        let choice = example(InputTopic::Actions, "customer_choice", |_| {});
        let EntityKey::Order(order_id) = placed.key.clone() else {
            panic!("an order event")
        };
        let records = || [(0, 0, &placed), (0, 1, &choice)];
        let personal = [
            "tb_8a41f2c07e",
            "13800138000",
            "文三路 478 号",
            "张伟伟",
            "91330106MA27XK3F5B",
        ];
        let masked = inspection(&order_id, records(), true);
        let json = serde_json::to_string(&masked).expect("JSON");
        let text: Vec<String> = masked
            .timeline
            .iter()
            .map(|entry| entry.event.body.describe())
            .collect();
        let text = text.join("\n");
        assert!(text.contains("by tb_****7e (customer)"), "{text}");
        for value in personal {
            assert!(!json.contains(value), "{value} in {json}");
            assert!(!text.contains(value), "{value} in {text}");
        }
        for shown in ["tb_****7e", "138****8000", "张***", "91****5B"] {
            assert!(json.contains(shown), "{shown} not in {json}");
        }
        // Unmasked (the gateway's privileged view) everything is there.
        let plain = serde_json::to_string(&inspection(&order_id, records(), false)).expect("JSON");
        for value in personal {
            assert!(plain.contains(value), "{value} not in {plain}");
        }
    }
}
