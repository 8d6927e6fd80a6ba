//! Any bytes on any input topic, as JSON or protobuf, decode to an event or to a rejection:
//! never a panic. And a rejection names the field and the rule, never the value (values can be
//! personal data, and rejections go to logs and dead-letter headers). fuzz/ explores the same
//! decoders guided by coverage; these run with every `cargo test`.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use chrono::{DateTime, Utc};
use orderflow_schema::{
    decode_within, InputTopic, Limits, Provenance, Rejection, PROTOBUF_CONTENT_TYPE,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Number, Value};

/// Every topic's verdict on `payload`, as an intake decides it (default limits, a clock a few
/// days after the examples): `Ok`, or a rejection with a message.
fn verdicts(content_type: Option<&[u8]>, payload: &[u8]) -> Vec<Result<(), Rejection>> {
    let now: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
    InputTopic::ALL
        .into_iter()
        .map(|topic| {
            let provenance = Provenance {
                topic: topic.name().to_string(),
                partition: 0,
                offset: 0,
            };
            decode_within(
                topic,
                &provenance,
                content_type,
                payload,
                &Limits::default(),
                Some(now),
            )
        })
        .zip(InputTopic::ALL)
        .map(|(verdict, topic)| match verdict {
            Ok(event) => {
                assert!(topic.kinds().contains(&event.body.kind()));
                Ok(())
            }
            Err(rejection) => {
                assert!(!rejection.message.trim().is_empty(), "{rejection:?}");
                Err(rejection)
            }
        })
        .collect()
}

fn json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// The documented examples, valid and invalid: the shapes the decoders are meant for.
fn examples() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples");
    let mut examples = Vec::new();
    for dir in [root.clone(), root.join("invalid"), root.join("screened")] {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|extension| extension == "json")
            {
                if let Ok(value) = serde_json::from_slice(&fs::read(&path).unwrap()) {
                    examples.push(value);
                }
            }
        }
    }
    assert!(examples.len() >= 16, "the examples are in docs/examples");
    examples
}

/// Every field name the examples use, so arbitrary objects hit real fields.
fn field_names() -> Vec<String> {
    fn collect(value: &Value, names: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (name, inner) in map {
                    names.push(name.clone());
                    collect(inner, names);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, names)),
            _ => {}
        }
    }
    let mut names = Vec::new();
    examples()
        .iter()
        .for_each(|example| collect(example, &mut names));
    names.sort();
    names.dedup();
    names
}

/// Any JSON value, from scalars of every type to nested arrays and objects; `text` makes the
/// strings.
fn any_json(text: BoxedStrategy<String>) -> impl Strategy<Value = Value> {
    let names = field_names();
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        let key = prop_oneof![
            prop::sample::select(names.clone()),
            "[a-z_]{1,12}".prop_map(String::from),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The paths (object keys and array indexes) of every value inside `value`.
fn paths(value: &Value) -> Vec<Vec<Value>> {
    let mut found = Vec::new();
    let children: Vec<(Value, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), v))
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i), v))
            .collect(),
        _ => Vec::new(),
    };
    for (step, child) in children {
        found.push(vec![step.clone()]);
        for mut path in paths(child) {
            path.insert(0, step.clone());
            found.push(path);
        }
    }
    found
}

fn slot<'a>(value: &'a mut Value, path: &[Value]) -> &'a mut Value {
    path.iter().fold(value, |value, step| match step {
        Value::String(key) => &mut value[key.as_str()],
        _ => &mut value[step.as_u64().unwrap() as usize],
    })
}

/// `example` with the values at up to four of its paths replaced by `replacements` (or
/// removed, for a null): the right shape with wrong parts.
fn mutate(mut example: Value, picks: &[(Index, Value)]) -> Value {
    for (pick, replacement) in picks {
        let paths = paths(&example);
        if paths.is_empty() {
            break;
        }
        *slot(&mut example, &paths[pick.index(paths.len())]) = replacement.clone();
    }
    example
}

/// Text that is not in any message unless it was copied from the input.
const MARK: &str = "Zq7Xv";
/// The digits of every number [`marked_json`] makes, in any notation.
const MARK_DIGITS: &str = "391846";

/// Any JSON value whose every string and number carries a mark.
fn marked_json() -> impl Strategy<Value = Value> {
    let text = "[ -~一-龥]{0,6}"
        .prop_map(|around| format!("{around}{MARK}{around}"))
        .boxed();
    any_json(text).prop_map(mark_numbers)
}

fn mark_numbers(value: Value) -> Value {
    match value {
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(i), _) if i < 0 => Value::from(-7_391_846_i64),
            (Some(_), _) => Value::from(7_391_846_u64),
            (None, Some(f)) if f.abs() > 1e15 => Value::from(7.391_846e30),
            _ => Value::from(7_391_846.5),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(mark_numbers).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, mark_numbers(v))).collect())
        }
        other => other,
    }
}

fn example() -> impl Strategy<Value = Value> {
    prop::sample::select(examples())
}

#[test]
fn the_marks_are_rejected_without_being_shown() {
    // The property below, on inputs a reader can check: each is rejected, and shown nowhere.
    let placed = examples()
        .into_iter()
        .find(|example| example["kind"] == "order_placed" && example["invoice"].is_object())
        .unwrap();
    for (path, mark) in [
        (&["buyer_id"][..], serde_json::json!({ "name": MARK })),
        (&["total_fen"][..], Value::from(-7_391_846)),
        (&["lines", "0"][..], Value::from(vec![MARK])),
    ] {
        let mut record = placed.clone();
        let path: Vec<Value> = path
            .iter()
            .map(|step| step.parse::<u64>().map_or(Value::from(*step), Value::from))
            .collect();
        *slot(&mut record, &path) = mark;
        let rejection = verdicts(None, &json(&record))[0].clone().unwrap_err();
        assert!(!rejection.message.contains(MARK), "{}", rejection.message);
        assert!(
            !rejection.message.contains(MARK_DIGITS),
            "{}",
            rejection.message
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_as_json_are_an_event_or_a_rejection(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        for verdict in verdicts(None, &payload) {
            // Only JSON objects can be events: random bytes almost never are.
            if let Err(rejection) = verdict {
                prop_assert!(!rejection.message.is_empty());
            }
        }
    }

    #[test]
    fn any_bytes_as_protobuf_are_an_event_or_a_rejection(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        verdicts(Some(PROTOBUF_CONTENT_TYPE.as_bytes()), &payload);
    }

    #[test]
    fn any_text_is_an_event_or_a_rejection(text in any::<String>()) {
        verdicts(None, text.as_bytes());
    }

    #[test]
    fn any_json_value_is_an_event_or_a_rejection(value in any_json(any::<String>().boxed())) {
        verdicts(None, &json(&value));
    }

    #[test]
    fn an_example_with_wrong_parts_is_an_event_or_a_rejection(
        example in example(),
        picks in prop::collection::vec((any::<Index>(), any_json(any::<String>().boxed())), 1..4),
    ) {
        verdicts(None, &json(&mutate(example, &picks)));
    }

    #[test]
    fn an_example_cut_short_is_a_rejection(example in example(), cut in any::<Index>()) {
        let bytes = json(&example);
        let cut = cut.index(bytes.len());
        for verdict in verdicts(None, &bytes[..cut]) {
            prop_assert!(verdict.is_err());
        }
    }

    #[test]
    fn a_rejection_names_the_field_never_the_value(
        example in example(),
        picks in prop::collection::vec((any::<Index>(), marked_json()), 1..4),
    ) {
        let payload = json(&mutate(example, &picks));
        for rejection in verdicts(None, &payload).into_iter().filter_map(Result::err) {
            prop_assert!(
                !rejection.message.contains(MARK) && !rejection.message.contains(MARK_DIGITS),
                "the rejection shows a value: {}\ninput: {}",
                rejection.message,
                String::from_utf8_lossy(&payload)
            );
        }
    }
}
