//! The documented contract (docs/examples) is exactly what the intake accepts and rejects.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use orderflow_domain::{EntityKey, EventBody};
use orderflow_schema::{decode, v1, InputTopic, Provenance, RejectionKind, PROTOBUF_CONTENT_TYPE};
use prost::Message;

fn examples(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/examples")
        .join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

fn provenance(topic: InputTopic) -> Provenance {
    Provenance {
        topic: format!("orderflow.{}", topic.name()),
        partition: 3,
        offset: 42,
    }
}

fn topic_of(bytes: &[u8]) -> InputTopic {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value["kind"]
        .as_str()
        .and_then(InputTopic::of_kind)
        .unwrap_or(InputTopic::Payments)
}

#[test]
fn every_documented_example_is_accepted_on_its_topic() {
    let files = examples("");
    assert_eq!(files.len(), 10, "one example per kind");
    for path in files {
        let bytes = fs::read(&path).unwrap();
        let topic = topic_of(&bytes);
        let event = decode(topic, &provenance(topic), None, &bytes)
            .unwrap_or_else(|rejection| panic!("{}: {rejection}", path.display()));
        assert_eq!(event.source.partition, Some(3));
        assert_eq!(event.source.offset, Some(42));
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(event.body.kind(), stem);
    }
}

#[test]
fn every_documented_invalid_example_is_rejected_with_a_reason() {
    let expected = [
        (
            "bad_platform_order_id",
            RejectionKind::InvalidField,
            "platform_order_id",
        ),
        ("empty_lines", RejectionKind::InvalidField, "lines"),
        (
            "fractional_amount",
            RejectionKind::InvalidField,
            "amount_fen must be an integer of at least 1, got 12.5",
        ),
        (
            "missing_buyer_id",
            RejectionKind::InvalidField,
            "buyer_id is required",
        ),
        ("negative_amount", RejectionKind::InvalidField, "amount_fen"),
        ("not_json", RejectionKind::MalformedJson, "not valid JSON"),
        (
            "occurred_at_without_offset",
            RejectionKind::InvalidField,
            "occurred_at",
        ),
        ("total_mismatch", RejectionKind::InvalidField, "total_fen"),
        (
            "unknown_channel",
            RejectionKind::InvalidField,
            "unknown channel",
        ),
        (
            "unknown_kind",
            RejectionKind::InvalidField,
            "kind must be one of",
        ),
        (
            "unsupported_version",
            RejectionKind::UnsupportedVersion,
            "schema_version",
        ),
        ("wrong_type_qty", RejectionKind::InvalidField, "qty"),
    ];
    let files = examples("invalid");
    assert_eq!(files.len(), expected.len());
    for (path, (name, kind, fragment)) in files.iter().zip(expected) {
        assert_eq!(path.file_stem().unwrap(), name);
        let bytes = fs::read(path).unwrap();
        let topic = topic_of(&bytes);
        let rejection = decode(topic, &provenance(topic), None, &bytes).unwrap_err();
        assert_eq!(rejection.kind, kind, "{name}: {rejection}");
        assert!(rejection.message.contains(fragment), "{name}: {rejection}");
    }
}

#[test]
fn a_kind_on_the_wrong_topic_is_rejected() {
    let bytes = fs::read(
        examples("")
            .into_iter()
            .find(|p| p.ends_with("payment_captured.json"))
            .unwrap(),
    )
    .unwrap();
    let rejection = decode(
        InputTopic::Orders,
        &provenance(InputTopic::Orders),
        None,
        &bytes,
    )
    .unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::WrongTopic);
    assert_eq!(
        rejection.message,
        "kind \"payment_captured\" belongs on in.payments, not on in.orders"
    );
}

#[test]
fn a_retried_callback_has_the_same_event_id_and_a_new_fact_another() {
    let base = serde_json::json!({
        "kind": "payment_captured", "channel": "JD ", "platform_order_id": "J1",
        "occurred_at": "2026-11-25T10:00:00+08:00", "payment_id": "P1", "amount_fen": 100, "method": "wechat_pay"
    });
    let mut retry = base.clone();
    retry["occurred_at"] = "2026-11-25T10:00:09+08:00".into();
    let mut other = base.clone();
    other["payment_id"] = "P2".into();
    let id = |value: &serde_json::Value| {
        decode(
            InputTopic::Payments,
            &provenance(InputTopic::Payments),
            None,
            value.to_string().as_bytes(),
        )
        .unwrap()
        .event_id
    };
    assert_eq!(id(&base), id(&retry));
    assert_ne!(id(&base), id(&other));
}

#[test]
fn protobuf_and_json_forms_give_the_same_event() {
    let proto = v1::InputEvent {
        schema_version: 1,
        channel: "douyin".into(),
        platform_order_id: "DY-77".into(),
        occurred_at: "2026-11-25T02:00:00Z".into(),
        kind: Some(v1::input_event::Kind::ShipmentDispatched(
            v1::ShipmentDispatched {
                carrier: "SF".into(),
                tracking_no: "SF123".into(),
                warehouse: "WH-HZ".into(),
            },
        )),
    };
    let json = serde_json::json!({
        "kind": "shipment_dispatched", "channel": "douyin", "platform_order_id": "DY-77",
        "occurred_at": "2026-11-25T10:00:00+08:00", "carrier": "SF", "tracking_no": "SF123", "warehouse": "WH-HZ"
    });
    let from_proto = decode(
        InputTopic::Shipments,
        &provenance(InputTopic::Shipments),
        Some(PROTOBUF_CONTENT_TYPE.as_bytes()),
        &proto.encode_to_vec(),
    )
    .unwrap();
    let from_json = decode(
        InputTopic::Shipments,
        &provenance(InputTopic::Shipments),
        None,
        json.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(from_proto, from_json);
    assert_eq!(
        from_proto.key,
        EntityKey::Order("douyin:DY-77".parse().unwrap())
    );
    assert!(matches!(
        from_proto.body,
        EventBody::ShipmentDispatched { .. }
    ));
}

#[test]
fn garbage_protobuf_is_rejected_not_panicked_on() {
    let rejection = decode(
        InputTopic::Orders,
        &provenance(InputTopic::Orders),
        Some(PROTOBUF_CONTENT_TYPE.as_bytes()),
        &[0xff, 0xff, 0xff, 0x01],
    )
    .unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::MalformedProtobuf);
}
