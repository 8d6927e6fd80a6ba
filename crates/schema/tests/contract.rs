//! The documented contract (docs/examples) is exactly what the intake accepts and rejects.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use orderflow_domain::{Action, Actor, ActorRole, Choice, EntityKey, EventBody};
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
    let kinds: usize = InputTopic::ALL
        .iter()
        .map(|topic| topic.kinds().len())
        .sum();
    assert_eq!(kinds, 16);
    assert_eq!(files.len(), kinds, "one example per kind");
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
            "approved_by_customer",
            RejectionKind::InvalidField,
            "actor.role must be \"operator\" for review_approved",
        ),
        (
            "bad_exception_id",
            RejectionKind::InvalidField,
            "exception_id must be 32 lowercase hex characters",
        ),
        (
            "bad_platform_order_id",
            RejectionKind::InvalidField,
            "platform_order_id",
        ),
        (
            "choice_by_operator",
            RejectionKind::InvalidField,
            "actor.role must be \"customer\" for customer_choice",
        ),
        ("empty_lines", RejectionKind::InvalidField, "lines"),
        (
            "fractional_amount",
            RejectionKind::InvalidField,
            "amount_fen must be an integer of at least 1, got a fractional number",
        ),
        (
            "missing_buyer_id",
            RejectionKind::InvalidField,
            "buyer_id is required",
        ),
        (
            "missing_routing_id",
            RejectionKind::InvalidField,
            "routing_id is required",
        ),
        ("negative_amount", RejectionKind::InvalidField, "amount_fen"),
        ("not_json", RejectionKind::MalformedJson, "not valid JSON"),
        (
            "note_too_long",
            RejectionKind::TextTooLong,
            "note must be at most 500 characters, got 512",
        ),
        (
            "occurred_at_without_offset",
            RejectionKind::InvalidField,
            "occurred_at",
        ),
        ("total_mismatch", RejectionKind::InvalidField, "total_fen"),
        (
            "unknown_channel",
            RejectionKind::InvalidField,
            "channel must be one of",
        ),
        (
            "unknown_choice",
            RejectionKind::InvalidField,
            "choice must be \"wait\" or \"refund\"",
        ),
        (
            "unknown_kind",
            RejectionKind::InvalidField,
            "kind must be one of",
        ),
        (
            "unknown_role",
            RejectionKind::InvalidField,
            "actor.role must be \"operator\" or \"customer\"",
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

/// The parts `docs/input-contract.md` (section 6) says each kind's event id hashes, in order.
fn documented_identity(record: &serde_json::Value) -> Vec<String> {
    let field = |name: &str| record[name].as_str().unwrap().trim().to_string();
    let kind = field("kind");
    if kind == "stock_level_changed" {
        let at = chrono::DateTime::parse_from_rfc3339(&field("occurred_at"))
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        let sku = field("sku");
        return vec![kind, format!("sku:{sku}"), field("warehouse"), sku, at];
    }
    let order_id = format!(
        "{}:{}",
        field("channel").to_lowercase(),
        field("platform_order_id")
    );
    let identity: &[&str] = match kind.as_str() {
        "order_placed" | "order_cancelled" | "order_completed" => &[],
        "payment_captured" | "payment_failed" => &["payment_id"],
        "payment_refunded" => &["refund_id"],
        "shipment_dispatched" | "shipment_delivered" | "shipment_returned" => {
            &["carrier", "tracking_no"]
        }
        "warehouse_accepted" => &["routing_id"],
        "review_approved" | "review_rejected" | "exception_resolved" | "exception_assigned"
        | "customer_choice" => &["action_id"],
        other => panic!("the contract documents no identity for {other}"),
    };
    let mut parts = vec![kind.clone(), order_id];
    parts.extend(identity.iter().map(|name| field(name)));
    parts
}

#[test]
fn every_event_id_is_the_documented_hash() {
    use sha2::{Digest, Sha256};
    let hash = |parts: &[String]| {
        let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
        hex::encode(&digest[..16])
    };
    for path in examples("") {
        let bytes = fs::read(&path).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let topic = topic_of(&bytes);
        let event = decode(topic, &provenance(topic), None, &bytes).unwrap();
        let parts = documented_identity(&record);
        assert_eq!(
            event.event_id.as_str(),
            hash(&parts),
            "{}: {parts:?}",
            path.display()
        );
    }
    // The worked example of the contract.
    assert_eq!(
        hash(&documented_identity(&example("payment_captured"))),
        "4166ef899a952f49589c53d6444296d7"
    );
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

fn decode_json(
    topic: InputTopic,
    value: &serde_json::Value,
) -> Result<orderflow_domain::Event, orderflow_schema::Rejection> {
    decode(
        topic,
        &provenance(topic),
        None,
        value.to_string().as_bytes(),
    )
}

fn example(name: &str) -> serde_json::Value {
    let path = examples("")
        .into_iter()
        .find(|path| path.file_stem().unwrap() == name)
        .unwrap();
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn rejection(topic: InputTopic, value: &serde_json::Value) -> String {
    let rejection = decode_json(topic, value).unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::InvalidField, "{rejection}");
    rejection.message
}

fn order_placed(event: &orderflow_domain::Event) -> &orderflow_domain::OrderPlaced {
    match &event.body {
        EventBody::OrderPlaced(order) => order,
        other => panic!("expected order_placed, got {other:?}"),
    }
}

#[test]
fn screened_examples_are_accepted_for_the_state_consumer_to_screen() {
    let files = examples("screened");
    assert_eq!(files.len(), 2);
    for path in &files {
        let bytes = fs::read(path).unwrap();
        decode(
            InputTopic::Orders,
            &provenance(InputTopic::Orders),
            None,
            &bytes,
        )
        .unwrap_or_else(|rejection| panic!("{}: {rejection}", path.display()));
    }
    let incomplete = decode_json(
        InputTopic::Orders,
        &serde_json::from_slice(&fs::read(&files[0]).unwrap()).unwrap(),
    )
    .unwrap();
    let address = &order_placed(&incomplete).address;
    assert_eq!(
        (address.province.as_str(), address.city.as_str()),
        ("浙江省", "杭州市")
    );
    assert_eq!(
        (address.district.as_str(), address.detail.as_str()),
        ("", "")
    );
    let landline = decode_json(
        InputTopic::Orders,
        &serde_json::from_slice(&fs::read(&files[1]).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(order_placed(&landline).phone, "057188886666");
}

#[test]
fn an_order_without_address_or_phone_is_accepted_but_a_mistyped_one_is_not() {
    let mut order = example("order_placed");
    let object = order.as_object_mut().unwrap();
    object.remove("address");
    object.remove("phone");
    let event = decode_json(InputTopic::Orders, &order).unwrap();
    let placed = order_placed(&event);
    assert_eq!(placed.phone, "");
    assert!([
        &placed.address.province,
        &placed.address.city,
        &placed.address.district,
        &placed.address.detail
    ]
    .iter()
    .all(|part| part.is_empty()));

    for part in ["province", "city", "district", "detail"] {
        let mut order = example("order_placed");
        order["address"].as_object_mut().unwrap().remove(part);
        let event = decode_json(InputTopic::Orders, &order)
            .unwrap_or_else(|rejection| panic!("address without {part}: {rejection}"));
        let address = &order_placed(&event).address;
        let parts = [
            &address.province,
            &address.city,
            &address.district,
            &address.detail,
        ];
        assert_eq!(
            parts.iter().filter(|part| part.is_empty()).count(),
            1,
            "{part}"
        );
    }

    let mut order = example("order_placed");
    order["address"]["city"] = serde_json::Value::Null;
    order["phone"] = "not a phone".into();
    let event = decode_json(InputTopic::Orders, &order).unwrap();
    assert_eq!(order_placed(&event).address.city, "");
    assert_eq!(order_placed(&event).phone, "");

    let mut order = example("order_placed");
    order["address"] = "浙江省杭州市西湖区文三路 478 号".into();
    assert!(rejection(InputTopic::Orders, &order).starts_with("address must be an object, got"));
    let mut order = example("order_placed");
    order["address"]["district"] = 3.into();
    assert_eq!(
        rejection(InputTopic::Orders, &order),
        "address.district must be a string, got an integer"
    );
    let mut order = example("order_placed");
    order["phone"] = 13800138000u64.into();
    assert_eq!(
        rejection(InputTopic::Orders, &order),
        "phone must be a string, got an integer"
    );
}

#[test]
fn actions_decode_to_the_domain_action_keyed_by_order() {
    let event = decode_json(InputTopic::Actions, &example("exception_assigned")).unwrap();
    assert_eq!(
        event.key,
        EntityKey::Order("tmall:3921847562019384756".parse().unwrap())
    );
    assert_eq!(event.source.origin, "orderflow.in.actions");
    let exception_id =
        serde_json::from_value(serde_json::json!("5be1c0a4d2f94e1b8a7c3d6e9f012345")).unwrap();
    assert_eq!(
        event.body,
        EventBody::ExceptionAssigned {
            action: Action {
                action_id: "act-20261125-000219".into(),
                actor: Actor {
                    id: "cs-lead.wang".into(),
                    role: ActorRole::Operator
                },
                note: None,
            },
            exception_id,
            assignee: "cs-zhang.wei".into(),
        }
    );
    let event = decode_json(InputTopic::Actions, &example("customer_choice")).unwrap();
    assert!(matches!(
        event.body,
        EventBody::CustomerChoice {
            choice: Choice::Wait,
            action: Action {
                actor: Actor {
                    role: ActorRole::Customer,
                    ..
                },
                ..
            }
        }
    ));
    let event = decode_json(InputTopic::Shipments, &example("warehouse_accepted")).unwrap();
    assert_eq!(
        event.body,
        EventBody::WarehouseAccepted {
            warehouse: "WH-HZ-01".into(),
            routing_id: "tmall:3921847562019384756@WH-HZ-01".into(),
        }
    );
}

#[test]
fn only_a_customer_chooses_and_only_an_operator_reviews_or_handles_exceptions() {
    for kind in InputTopic::Actions.kinds() {
        let mut action = example(kind);
        let own = action["actor"]["role"].as_str().unwrap().to_string();
        assert_eq!(
            own,
            if *kind == "customer_choice" {
                "customer"
            } else {
                "operator"
            }
        );
        let other = if own == "customer" {
            "operator"
        } else {
            "customer"
        };
        action["actor"]["role"] = other.into();
        assert_eq!(
            rejection(InputTopic::Actions, &action),
            format!("actor.role must be {own:?} for {kind}")
        );
    }
}

#[test]
fn action_fields_are_checked_field_by_field() {
    let base = example("exception_resolved");
    let with = |field: &str, value: serde_json::Value| {
        let mut action = base.clone();
        action[field] = value;
        action
    };
    let accepted =
        |action: &serde_json::Value| decode_json(InputTopic::Actions, action).unwrap().body;
    let note_of = |body: EventBody| body.action().unwrap().note.clone();

    assert!(accepted(&with("action_id", "a".repeat(128).into()))
        .action()
        .is_some());
    let too_long = decode_json(
        InputTopic::Actions,
        &with("action_id", "a".repeat(129).into()),
    )
    .unwrap_err();
    assert_eq!(too_long.kind, RejectionKind::TextTooLong);
    assert_eq!(
        too_long.message,
        "action_id must be at most 128 characters, got 129"
    );
    assert_eq!(
        rejection(InputTopic::Actions, &with("action_id", " ".into())),
        "action_id must not be empty"
    );
    assert_eq!(
        note_of(accepted(&with("note", "说".repeat(500).into())))
            .unwrap()
            .chars()
            .count(),
        500
    );
    let too_long =
        decode_json(InputTopic::Actions, &with("note", "说".repeat(501).into())).unwrap_err();
    assert_eq!(too_long.kind, RejectionKind::TextTooLong);
    assert_eq!(
        too_long.message,
        "note must be at most 500 characters, got 501"
    );
    assert_eq!(note_of(accepted(&with("note", "".into()))), None);
    assert_eq!(
        note_of(accepted(&with("note", serde_json::Value::Null))),
        None
    );
    assert_eq!(
        rejection(InputTopic::Actions, &with("actor", serde_json::Value::Null)),
        "actor is required"
    );
    assert_eq!(
        rejection(
            InputTopic::Actions,
            &with("actor", serde_json::json!({"id": "", "role": "operator"}))
        ),
        "actor.id must not be empty"
    );
    assert_eq!(
        rejection(
            InputTopic::Actions,
            &with("actor", serde_json::json!({"id": "cs-1"}))
        ),
        "actor.role is required"
    );
    assert!(rejection(
        InputTopic::Actions,
        &with("exception_id", "5BE1C0A4D2F94E1B8A7C3D6E9F012345".into())
    )
    .starts_with("exception_id must be 32 lowercase hex characters"));
    assert!(rejection(
        InputTopic::Actions,
        &with("exception_id", "5be1c0a4d2f94e1b8a7c3d6e9f01234".into())
    )
    .starts_with("exception_id must be 32 lowercase hex characters"));
    assert!(rejection(
        InputTopic::Actions,
        &with("exception_id", "5be1c0a4d2f94e1b8a7c3d6e9f01234g".into())
    )
    .starts_with("exception_id must be 32 lowercase hex characters"));

    let mut assigned = example("exception_assigned");
    assigned["assignee"] = "".into();
    assert_eq!(
        rejection(InputTopic::Actions, &assigned),
        "assignee must not be empty"
    );
    let mut accepted_by_wms = example("warehouse_accepted");
    accepted_by_wms["warehouse"] = " ".into();
    assert_eq!(
        rejection(InputTopic::Shipments, &accepted_by_wms),
        "warehouse must not be empty"
    );
    let mut action = example("review_approved");
    action.as_object_mut().unwrap().remove("platform_order_id");
    assert_eq!(
        rejection(InputTopic::Actions, &action),
        "platform_order_id is required"
    );
}

#[test]
fn a_resent_action_is_the_same_event_and_a_new_action_another() {
    let first = example("review_approved");
    let mut resent = first.clone();
    resent["occurred_at"] = "2026-11-25T10:25:00+08:00".into();
    resent["note"] = "重发".into();
    let mut another = first.clone();
    another["action_id"] = "act-20261125-000188".into();
    let id = |value: &serde_json::Value| decode_json(InputTopic::Actions, value).unwrap().event_id;
    assert_eq!(id(&first), id(&resent));
    assert_ne!(id(&first), id(&another));

    let accepted = example("warehouse_accepted");
    let mut again = accepted.clone();
    again["occurred_at"] = "2026-11-25T15:30:00+08:00".into();
    let mut other_parcel = accepted.clone();
    other_parcel["routing_id"] = "tmall:3921847562019384756@WH-CENTRAL".into();
    let id =
        |value: &serde_json::Value| decode_json(InputTopic::Shipments, value).unwrap().event_id;
    assert_eq!(id(&accepted), id(&again));
    assert_ne!(id(&accepted), id(&other_parcel));
}

#[test]
fn actions_and_warehouse_acceptances_belong_on_their_own_topics() {
    let rejection = decode_json(InputTopic::Shipments, &example("customer_choice")).unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::WrongTopic);
    assert_eq!(
        rejection.message,
        "kind \"customer_choice\" belongs on in.actions, not on in.shipments"
    );
    let rejection = decode_json(InputTopic::Actions, &example("warehouse_accepted")).unwrap_err();
    assert_eq!(rejection.kind, RejectionKind::WrongTopic);
    assert_eq!(InputTopic::Actions.name(), "in.actions");
    assert_eq!(InputTopic::Actions.domain(), "actions");
}

fn proto_event(kind: v1::input_event::Kind) -> Vec<u8> {
    v1::InputEvent {
        schema_version: 1,
        channel: "tmall".into(),
        platform_order_id: "3921847562019384756".into(),
        occurred_at: "2026-11-25T02:20:00Z".into(),
        kind: Some(kind),
    }
    .encode_to_vec()
}

fn decode_proto(
    topic: InputTopic,
    bytes: &[u8],
) -> Result<orderflow_domain::Event, orderflow_schema::Rejection> {
    decode(
        topic,
        &provenance(topic),
        Some(PROTOBUF_CONTENT_TYPE.as_bytes()),
        bytes,
    )
}

#[test]
fn protobuf_and_json_forms_of_actions_give_the_same_event() {
    use v1::input_event::Kind;
    let operator = || {
        Some(v1::Actor {
            id: "cs-zhang.wei".into(),
            role: "operator".into(),
        })
    };
    let exception_id = "5be1c0a4d2f94e1b8a7c3d6e9f012345";
    let json_base = serde_json::json!({
        "channel": "tmall", "platform_order_id": "3921847562019384756",
        "occurred_at": "2026-11-25T10:20:00+08:00", "action_id": "A-1",
        "actor": {"id": "cs-zhang.wei", "role": "operator"}, "note": "ok"
    });
    let json = |kind: &str, extra: serde_json::Value| {
        let mut value = json_base.clone();
        value["kind"] = kind.into();
        for (field, fields_value) in extra.as_object().unwrap() {
            value[field] = fields_value.clone();
        }
        value
    };
    let cases = vec![
        (
            Kind::ReviewApproved(v1::ReviewApproved {
                action_id: "A-1".into(),
                actor: operator(),
                note: Some("ok".into()),
            }),
            json("review_approved", serde_json::json!({})),
        ),
        (
            Kind::ReviewRejected(v1::ReviewRejected {
                action_id: "A-1".into(),
                actor: operator(),
                note: Some("ok".into()),
            }),
            json("review_rejected", serde_json::json!({})),
        ),
        (
            Kind::ExceptionResolved(v1::ExceptionResolved {
                action_id: "A-1".into(),
                actor: operator(),
                note: Some("ok".into()),
                exception_id: exception_id.into(),
            }),
            json(
                "exception_resolved",
                serde_json::json!({"exception_id": exception_id}),
            ),
        ),
        (
            Kind::ExceptionAssigned(v1::ExceptionAssigned {
                action_id: "A-1".into(),
                actor: operator(),
                note: Some("ok".into()),
                exception_id: exception_id.into(),
                assignee: "cs-li".into(),
            }),
            json(
                "exception_assigned",
                serde_json::json!({"exception_id": exception_id, "assignee": "cs-li"}),
            ),
        ),
        (
            Kind::CustomerChoice(v1::CustomerChoice {
                action_id: "A-1".into(),
                actor: Some(v1::Actor {
                    id: "tb_8a41f2c07e".into(),
                    role: "customer".into(),
                }),
                note: Some("ok".into()),
                choice: "refund".into(),
            }),
            json(
                "customer_choice",
                serde_json::json!({"choice": "refund", "actor": {"id": "tb_8a41f2c07e", "role": "customer"}}),
            ),
        ),
    ];
    for (proto, json) in cases {
        let from_proto = decode_proto(InputTopic::Actions, &proto_event(proto)).unwrap();
        let from_json = decode_json(InputTopic::Actions, &json).unwrap();
        assert_eq!(from_proto, from_json);
    }

    let from_proto = decode_proto(
        InputTopic::Shipments,
        &proto_event(Kind::WarehouseAccepted(v1::WarehouseAccepted {
            warehouse: "WH-HZ-01".into(),
            routing_id: "tmall:3921847562019384756@WH-HZ-01".into(),
        })),
    )
    .unwrap();
    let mut json = example("warehouse_accepted");
    json["occurred_at"] = "2026-11-25T02:20:00Z".into();
    assert_eq!(
        from_proto,
        decode_json(InputTopic::Shipments, &json).unwrap()
    );
}

#[test]
fn a_protobuf_action_without_actor_or_with_a_bad_choice_is_rejected_by_the_same_rules() {
    use v1::input_event::Kind;
    let no_actor = proto_event(Kind::ReviewApproved(v1::ReviewApproved {
        action_id: "A-1".into(),
        actor: None,
        note: None,
    }));
    let rejection = decode_proto(InputTopic::Actions, &no_actor).unwrap_err();
    assert_eq!(
        (rejection.kind, rejection.message.as_str()),
        (RejectionKind::InvalidField, "actor is required")
    );
    let bad_choice = proto_event(Kind::CustomerChoice(v1::CustomerChoice {
        action_id: "A-2".into(),
        actor: Some(v1::Actor {
            id: "tb_1".into(),
            role: "customer".into(),
        }),
        note: None,
        choice: "".into(),
    }));
    let rejection = decode_proto(InputTopic::Actions, &bad_choice).unwrap_err();
    assert_eq!(rejection.message, "choice must not be empty");
}
