//! One step of the state consumer, pure: fold one event into its entity and, when live, take
//! the decisions the event calls for. A Kafka consumer calls [`step`] per log record, publishes
//! the effects and appends the decisions (and the effects that are messages) to the log; the
//! in-memory [`crate::World`] runs the same function, so what the domain tests check is what
//! the consumer does.
//!
//! Time-driven decisions (payment timeout, escalation) are not taken here: they decide from a
//! fact *not* having arrived, and a step sees one record, not the end of the log. The timer
//! tick takes them with [`fire_timers`] on state folded to the end of the log.

use crate::effect::Effect;
use crate::entity::Entity;
use crate::event::{Event, EventBody};
use crate::ids::{EventId, Timestamp};
use crate::order::{decide, react, OrderState};
use crate::rules::Rules;

/// How a step runs: quietly (replay, catch-up: fold only) or live (fold, then decide under
/// `rules` at `now`, recording `decider` as the decisions' origin).
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    Quiet,
    Live {
        rules: &'a Rules,
        now: Timestamp,
        decider: &'a str,
    },
}

/// What a step produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// What folding the event produced, in either mode: exception changes, notifications and
    /// routing to publish, and messages to other entities to append to the log
    /// ([`Effect::Append`]). A quiet step computes them too; its caller drops what was already
    /// published.
    pub effects: Vec<Effect>,
    /// Live steps on an order only: the decisions the event led to, as log records caused by
    /// it, to append to the log. Empty in quiet mode.
    pub decisions: Vec<Event>,
}

/// Folds `event` into `entity` and, in [`Mode::Live`], decides what the event calls for.
/// `None` when the event was a duplicate or not for this entity: nothing to publish or append.
pub fn step(entity: &mut Entity, event: &Event, mode: Mode<'_>) -> Option<Step> {
    let effects = entity.apply(event)?;
    let decisions = match (mode, entity) {
        (
            Mode::Live {
                rules,
                now,
                decider,
            },
            Entity::Order(order),
        ) => {
            let decided = react(order, rules);
            as_records(order, decided, now, decider, Some(&event.event_id))
        }
        _ => Vec::new(),
    };
    Some(Step { effects, decisions })
}

/// The decisions a timer tick takes on `order` at `now` ([`decide`]), as log records caused by
/// no event. Call it on state folded to the end of the order's log: a payment already appended
/// but not folded yet must win over the timeout.
pub fn fire_timers(order: &OrderState, rules: &Rules, now: Timestamp, decider: &str) -> Vec<Event> {
    as_records(order, decide(order, rules, now), now, decider, None)
}

fn as_records(
    order: &OrderState,
    decisions: Vec<EventBody>,
    now: Timestamp,
    decider: &str,
    caused_by: Option<&EventId>,
) -> Vec<Event> {
    decisions
        .into_iter()
        .map(|body| Event::decision(&order.order_id, now, decider, caused_by, body))
        .collect()
}
