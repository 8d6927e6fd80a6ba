//! The checked-in OpenAPI document is the one the code generates; regenerate it with
//! `cargo run --bin orderflow-gateway -- openapi > docs/openapi.json`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn docs_openapi_json_is_the_generated_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = orderflow_gateway::openapi::document();
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json differs from the document the code generates; regenerate it with \
         `cargo run --bin orderflow-gateway -- openapi > docs/openapi.json`"
    );
    let document: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for topic in ["orders", "payments", "shipments", "inventory", "actions"] {
        assert!(document["paths"][format!("/v1/inputs/{topic}")]["post"].is_object());
        assert!(document["paths"][format!("/v1/inputs/{topic}/batch")]["post"].is_object());
    }
}
