//! The properties the fuzz targets check, shared by the targets that read the same kind of
//! bytes, and the fold that `examples/seeds.rs` also uses to write the seed corpora. A broken
//! property panics: libFuzzer saves the input as a crash.

use std::collections::{BTreeMap, VecDeque};

use orderflow_domain::{
    fire_timers, step, Effect, Entity, EntityKey, Event, Mode, Rules, Timestamp, LOG_SCHEMA_VERSION,
};
use orderflow_schema::headers::{JSON_CONTENT_TYPE, LOG_CONTENT_TYPE};
use orderflow_schema::log::{decode_log_record, encode_log_record};
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
    let mut events = read_back_record(std::slice::from_ref(event));
    assert_eq!(events.len(), 1, "a record of one event reads back as one");
    events.remove(0)
}

/// The events of one log record as the state consumer reads them back from `order-events`.
pub fn read_back_record(events: &[Event]) -> Vec<Event> {
    let bytes = encode_log_record(events);
    decode_log_record(&bytes, Some(LOG_CONTENT_TYPE.as_bytes()))
        .expect("a record orderflow wrote reads back")
}

/// The `content-type` a frame of [`log`] is read with, chosen by its first byte.
const FRAME_CONTENT_TYPES: [Option<&str>; 3] =
    [None, Some(JSON_CONTENT_TYPE), Some(LOG_CONTENT_TYPE)];

/// The records of [`log`]'s bytes: JSON-era records one a line when the bytes start with
/// `{`; else frames of one selector byte (the record's `content-type`, modulo
/// [`FRAME_CONTENT_TYPES`]), a 2-byte big-endian length and the record's value (cut short at
/// the end of the bytes).
pub fn log_records(bytes: &[u8]) -> Vec<(Option<&'static str>, &[u8])> {
    if bytes.first() == Some(&b'{') {
        return bytes
            .split(|byte| *byte == b'\n')
            .map(|line| (None, line))
            .collect();
    }
    let mut records = Vec::new();
    let mut rest = bytes;
    while let [selector, high, low, tail @ ..] = rest {
        let length = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (value, after) = tail.split_at(length);
        records.push((FRAME_CONTENT_TYPES[usize::from(*selector) % 3], value));
        rest = after;
    }
    records
}

/// One record of [`log`]'s framing, the inverse of [`log_records`] (for the seed corpus).
pub fn log_frame(content_type: Option<&str>, value: &[u8]) -> Vec<u8> {
    let selector = FRAME_CONTENT_TYPES
        .iter()
        .position(|known| *known == content_type)
        .expect("a content type of FRAME_CONTENT_TYPES");
    let length = u16::try_from(value.len()).expect("a record of at most 64 KiB");
    let mut frame = vec![selector as u8];
    frame.extend(length.to_be_bytes());
    frame.extend(value);
    frame
}

/// Any bytes as `order-events` records ([`log_records`]), read by the decoder the state
/// consumer uses: each record reads as events that read back as they were, or is refused with
/// a reason; folding the events ([`fold`]) ends without a panic. (A refused record stops the
/// state consumer's partition; here it is left out, as an operator's skip would.)
pub fn log(bytes: &[u8]) {
    let mut events: Vec<Event> = Vec::new();
    for (content_type, value) in log_records(bytes) {
        match decode_log_record(value, content_type.map(str::as_bytes)) {
            Ok(record) => {
                assert!(!record.is_empty(), "a record read as no event");
                assert_eq!(
                    read_back_record(&record),
                    record,
                    "a log record changes on a round trip"
                );
                events.extend(record);
            }
            Err(refused) => {
                assert!(
                    !refused.to_string().is_empty(),
                    "a refusal without a reason"
                );
            }
        }
    }
    fold(events);
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
