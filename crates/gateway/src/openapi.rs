//! The OpenAPI 3.1 document, generated from the code: the handlers' annotations (utoipa) plus
//! one ingestion route per input topic, whose request bodies refer to the input contract's
//! JSON Schemas (`docs/schemas/`, served at `/schemas/{file}`), so the contract is described
//! once. `docs/openapi.json` is this document; `crates/gateway/tests/openapi.rs` fails when the
//! two differ (`orderflow-gateway openapi > docs/openapi.json` regenerates it).

use orderflow_schema::InputTopic;
use serde_json::{json, Value};
use utoipa::OpenApi;

use crate::api::ApiDoc;

/// The contract's JSON Schema of an input topic, by file name (`in.orders.schema.json`).
pub fn contract_schema(file: &str) -> Option<&'static str> {
    Some(match file {
        "in.orders.schema.json" => include_str!("../../../docs/schemas/in.orders.schema.json"),
        "in.payments.schema.json" => include_str!("../../../docs/schemas/in.payments.schema.json"),
        "in.shipments.schema.json" => {
            include_str!("../../../docs/schemas/in.shipments.schema.json")
        }
        "in.inventory.schema.json" => {
            include_str!("../../../docs/schemas/in.inventory.schema.json")
        }
        "in.actions.schema.json" => include_str!("../../../docs/schemas/in.actions.schema.json"),
        _ => return None,
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn ingestion(topic: InputTopic, batch: bool) -> Value {
    let name = topic.name();
    let schema = json!({"$ref": format!("schemas/{name}.schema.json")});
    let kinds = topic.kinds().join(", ");
    let mut content = serde_json::Map::new();
    if batch {
        content.insert(
            "application/json".into(),
            json!({"schema": {"type": "array", "minItems": 1, "items": schema}}),
        );
    } else {
        content.insert("application/json".into(), json!({ "schema": schema }));
        if topic != InputTopic::Actions {
            content.insert(
                "application/x-protobuf".into(),
                json!({"schema": {"description": "orderflow.v1.InputEvent (proto/orderflow/v1/input.proto)"}}),
            );
        }
    }
    let actor = if topic == InputTopic::Actions {
        " The actor of an action is the credential ({id, role}), whatever the body says."
    } else {
        ""
    };
    let (summary, description) = if batch {
        (
            format!("Several records of {name}"),
            format!(
                "A JSON array of 1 to gateway.max-batch (500) records of {name} ({kinds}). All or nothing: \
                 if any record is refused, the answer lists each refused record by index and nothing is produced.{actor}"
            ),
        )
    } else {
        (
            format!("One record of {name}"),
            format!(
                "One record of {name} ({kinds}), checked with the intake's rules and produced with acks=all \
                 before the answer.{actor}"
            ),
        )
    };
    json!({
        "post": {
            "tags": ["inputs"],
            "operationId": format!("post_{}{}", topic.domain(), if batch { "_batch" } else { "" }),
            "summary": summary,
            "description": description,
            "parameters": [{
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "Same key and payload: the stored answer (Idempotent-Replayed: true); same key, other payload: 422; while the first is running: 409.",
                "schema": {"type": "string", "minLength": 1, "maxLength": crate::idempotency::MAX_KEY_CHARS}
            }],
            "requestBody": {"required": true, "content": content},
            "security": [{"bearer": []}, {"hmac": []}],
            "responses": {
                "202": {
                    "description": "Every record is on the topic (acknowledged by the broker).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}
                },
                "400": problem("The body is not JSON (or protobuf), or a header is malformed."),
                "401": problem("Not signed, signed wrongly, outside the timestamp window, or an unknown token."),
                "403": problem("The credential may not send a kind in the request."),
                "409": problem("A request with this Idempotency-Key is still running; send again later."),
                "413": problem("The body is too large."),
                "415": problem("Neither JSON nor protobuf."),
                "422": problem("A record breaks the input contract (the detail is the intake's reason), or the Idempotency-Key was used for another request."),
                "503": problem("The broker is slow or down, or too much is in flight: nothing is known to be accepted; send again after Retry-After.")
            }
        }
    })
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn document() -> String {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for topic in InputTopic::ALL {
            paths.insert(
                format!("/v1/inputs/{}", topic.domain()),
                ingestion(topic, false),
            );
            paths.insert(
                format!("/v1/inputs/{}/batch", topic.domain()),
                ingestion(topic, true),
            );
        }
    }
    let mut text = serde_json::to_string_pretty(&sorted(document)).unwrap_or_default();
    text.push('\n');
    text
}

/// Object keys in order, so the text is the same whatever map type serde_json was built with.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}
