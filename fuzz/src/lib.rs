//! The properties the fuzz targets check, shared by the targets that read the same kind of
//! bytes, and the fold that `examples/seeds.rs` also uses to write the seed corpora. A broken
//! property panics: libFuzzer saves the input as a crash.

use std::collections::{BTreeMap, VecDeque};

use orderflow_domain::{
    fire_timers, step, Effect, Entity, EntityKey, Event, Mode, Rules, Timestamp, LOG_SCHEMA_VERSION,
};
use orderflow_schema::log::decode_log_record;
use orderflow_schema::{decode_within, InputTopic, Limits, Provenance};

/// One input record, offered to every input topic as its intake decodes it (default limits, a
/// clock a month after the documented examples): each topic accepts it as one of its own
/// kinds, or rejects it with a sentence. What an intake accepts, the state consumer can read
/// back from the log as the same event.
pub fn input_record(content_type: Option<&[u8]>, payload: &[u8]) {
    let limits = Limits::default();
    let now: Timestamp = "2027-01-01T00:00:00Z".parse().expect("a timestamp");
    for topic in InputTopic::ALL {
        let provenance = Provenance {
            topic: format!("fuzz.{}", topic.name()),
            partition: 0,
            offset: 0,
        };
        match decode_within(
            topic,
            &provenance,
            content_type,
            payload,
            &limits,
            Some(now),
        ) {
            Ok(event) => {
                assert!(
                    topic.kinds().contains(&event.body.kind()),
                    "{} accepted a {}",
                    topic.name(),
                    event.body.kind()
                );
                assert_eq!(event.schema_version, LOG_SCHEMA_VERSION);
                assert_eq!(
                    read_back(&event),
                    event,
                    "the log changes an accepted event"
                );
            }
            Err(rejection) => assert!(!rejection.message.trim().is_empty()),
        }
    }
}

/// `event` as the state consumer reads it back from `order-events`.
pub fn read_back(event: &Event) -> Event {
    let bytes = serde_json::to_vec(event).expect("an event serializes");
    serde_json::from_slice(&bytes).expect("a serialized event reads back")
}

/// Any bytes as `order-events` records, one a line, read by the decoder the state consumer
/// uses: each record reads as an event that reads back as it was written, or is refused with
/// a reason; folding the events ([`fold`]) ends without a panic. (A refused record stops the
/// state consumer's partition; here it is left out, as an operator's skip would.)
pub fn log(bytes: &[u8]) {
    let records: Vec<Event> = bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| match decode_log_record(line) {
            Ok(event) => Some(event),
            Err(refused) => {
                assert!(!refused.to_string().is_empty(), "a refusal without a reason");
                None
            }
        })
        .collect();
    for event in &records {
        assert_eq!(
            &read_back(event),
            event,
            "a log record changes on a round trip"
        );
    }
    fold(records);
}

/// What folding a log produced.
#[derive(Default)]
pub struct Folded {
    /// The records in the order they were folded: the log's, then the decisions and messages
    /// they led to.
    pub log: Vec<Event>,
    pub effects: Vec<Effect>,
    pub entities: BTreeMap<EntityKey, Entity>,
}

/// Folds `records` the way the state consumer does, live with the built-in rules: each record
/// into its entity, then the decisions and messages it led to, then every order's timers a
/// month after the latest record.
pub fn fold(records: Vec<Event>) -> Folded {
    // A message loop would append to the log forever; far more steps than any journey takes.
    const MAX_STEPS: usize = 10_000;
    let rules = Rules::default();
    let mut queue = VecDeque::from(records);
    let mut folded = Folded::default();
    while let Some(event) = queue.pop_front() {
        assert!(folded.log.len() < MAX_STEPS, "folding the log never ends");
        let entity = folded
            .entities
            .entry(event.key.clone())
            .or_insert_with(|| Entity::empty(&event.key));
        let mode = Mode::Live {
            rules: &rules,
            now: event.occurred_at,
            decider: "orderflow-fuzz",
        };
        if let Some(step) = step(entity, &event, mode) {
            queue.extend(step.decisions);
            for effect in step.effects {
                match effect {
                    Effect::Append(message) => queue.push_back(message),
                    other => folded.effects.push(other),
                }
            }
        }
        folded.log.push(event);
    }
    let latest = folded.log.iter().map(|event| event.occurred_at).max();
    if let Some(later) = latest.and_then(|at| at.checked_add_signed(chrono::Duration::days(30))) {
        for entity in folded.entities.values() {
            if let Entity::Order(order) = entity {
                fire_timers(order, &rules, later, "orderflow-fuzz");
            }
        }
    }
    folded
}
