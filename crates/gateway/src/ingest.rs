//! Ingestion: HTTP requests into records of the input contract.
//!
//! Every record is checked by `orderflow_schema::check`, the intake's own decoding and
//! validation, so a record the gateway accepts is one the intake accepts, and a refusal carries
//! the sentence the intake would have dead-lettered it with. The order is: who is calling
//! (401), is the request well formed and every record valid (400/413/415/422; nothing is stored
//! under the idempotency key), may this caller send these kinds (403), the idempotency key
//! (409/422 or the stored answer), then produce with `acks=all` and answer 202 — or 503 if the
//! broker can't take it now. A batch is one unit: all of its records are produced or none.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use orderflow_domain::{EntityKey, OrderId};
use orderflow_runtime::output::Output;
use orderflow_runtime::telemetry;
use orderflow_schema::{
    check, headers, InputTopic, Rejection, RejectionKind, PROTOBUF_CONTENT_TYPE,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tracing::{info, info_span, Instrument};
use utoipa::ToSchema;

use crate::api::Gateway;
use crate::auth::{Credential, Refusal};
use crate::idempotency::{Claim, Stored, MAX_KEY_CHARS};
use crate::problem::{Problem, RecordError};

/// The request header naming a request's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response replayed from the idempotency store.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// One record the broker acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AcceptedRecord {
    /// The record's kind, e.g. `payment_captured`.
    pub kind: String,
    /// The deterministic id the intake gives the fact: a record sent again has the same one and
    /// is folded once.
    pub event_id: String,
    /// The order id (`tmall:3921847562019384756`) or, for a stock level, `sku:{sku}`.
    pub entity: String,
    /// The input topic, without the deployment's prefix.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The answer to an accepted request: every record, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub records: Vec<AcceptedRecord>,
}

/// A record ready to produce.
struct Prepared {
    output: Output,
    kind: String,
    event_id: String,
    entity: String,
    topic: InputTopic,
}

/// What arrived: everything authentication and the idempotency fingerprint look at.
pub struct RequestParts {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The input topic a path segment names: `orders` → `in.orders`.
pub fn topic_named(segment: &str) -> Option<InputTopic> {
    InputTopic::ALL
        .into_iter()
        .find(|topic| topic.domain() == segment)
}

impl Gateway {
    /// Who sent the request; 401 if nobody we know.
    pub fn authenticate(&self, request: &RequestParts) -> Result<Arc<Credential>, Problem> {
        self.credentials
            .authenticate(
                &request.method,
                &request.path_and_query,
                &request.headers,
                &request.body,
                chrono::Utc::now().timestamp(),
                self.config.gateway.signature_window_secs,
            )
            .map_err(refusal)
    }
}

pub fn refusal(refusal: Refusal) -> Problem {
    match refusal {
        Refusal::Unauthenticated(detail) => {
            Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
        }
        Refusal::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
    }
}

/// `POST /v1/inputs/{topic}` and `.../batch`.
pub async fn ingest(
    gateway: &Gateway,
    topic: InputTopic,
    batch: bool,
    request: RequestParts,
) -> Response {
    let credential = match gateway.authenticate(&request) {
        Ok(credential) => credential,
        Err(problem) => return problem.into_response(),
    };
    let content_type = request
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let prepared = if batch {
        prepare_batch(
            gateway,
            topic,
            &credential,
            content_type.as_deref(),
            &request.body,
        )
    } else {
        prepare_one(
            gateway,
            topic,
            &credential,
            content_type.as_deref(),
            &request.body,
        )
        .map(|prepared| vec![prepared])
        .map_err(|failure| failure.problem())
    };
    match prepared {
        Ok(prepared) => submit(gateway, &credential, &request, prepared).await,
        Err(problem) => problem.into_response(),
    }
}

/// Why one record can't be taken.
enum Refused {
    Invalid(Rejection),
    Forbidden(String),
    Unsupported(String),
}

impl Refused {
    fn problem(self) -> Problem {
        match self {
            Refused::Invalid(rejection) => Problem::rejected(&rejection),
            Refused::Forbidden(detail) => Problem::new(StatusCode::FORBIDDEN, "forbidden", detail),
            Refused::Unsupported(detail) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                detail,
            ),
        }
    }

    fn rule_and_detail(&self) -> (String, String) {
        match self {
            Refused::Invalid(rejection) => (
                rejection.kind.as_str().to_string(),
                rejection.message.clone(),
            ),
            Refused::Forbidden(detail) => ("forbidden".into(), detail.clone()),
            Refused::Unsupported(detail) => ("unsupported_media_type".into(), detail.clone()),
        }
    }
}

fn prepare_batch(
    gateway: &Gateway,
    topic: InputTopic,
    credential: &Credential,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Prepared>, Problem> {
    if content_type.is_some_and(|ct| ct != "application/json") {
        return Err(Refused::Unsupported(
            "a batch is a JSON array: send Content-Type application/json".into(),
        )
        .problem());
    }
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            RejectionKind::MalformedJson.as_str(),
            format!("a batch must be a JSON array of records: {error}"),
        )
    })?;
    let max = gateway.config.gateway.max_batch;
    if items.is_empty() || items.len() > max {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_size",
            format!("a batch holds 1 to {max} records, got {}", items.len()),
        ));
    }
    let mut prepared = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut forbidden = false;
    for (index, item) in items.iter().enumerate() {
        let bytes = serde_json::to_vec(item).unwrap_or_default();
        match prepare_one(gateway, topic, credential, None, &bytes) {
            Ok(record) => prepared.push(record),
            Err(refused) => {
                forbidden |= matches!(refused, Refused::Forbidden(_));
                let (rule, detail) = refused.rule_and_detail();
                errors.push(RecordError {
                    index,
                    rule,
                    detail,
                });
            }
        }
    }
    if errors.is_empty() {
        return Ok(prepared);
    }
    let (status, rule) = if forbidden {
        (StatusCode::FORBIDDEN, "forbidden")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch")
    };
    let mut problem = Problem::new(
        status,
        rule,
        format!(
            "{} of {} records refused (first: record {}: {}); nothing was produced",
            errors.len(),
            items.len(),
            errors[0].index,
            errors[0].detail
        ),
    );
    problem.errors = errors;
    Err(problem)
}

fn prepare_one(
    gateway: &Gateway,
    topic: InputTopic,
    credential: &Credential,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Prepared, Refused> {
    let protobuf = content_type == Some(PROTOBUF_CONTENT_TYPE);
    if let Some(other) = content_type.filter(|ct| !protobuf && *ct != "application/json") {
        return Err(Refused::Unsupported(format!(
            "Content-Type {other} is neither application/json nor {PROTOBUF_CONTENT_TYPE}"
        )));
    }
    let mut payload = body.to_vec();
    if topic == InputTopic::Actions {
        if protobuf {
            return Err(Refused::Unsupported("actions are sent as JSON".into()));
        }
        payload = with_actor(credential, &payload)?;
    }
    let event = check(
        topic,
        protobuf.then_some(PROTOBUF_CONTENT_TYPE.as_bytes()),
        &payload,
        &gateway.config.limits,
        chrono::Utc::now(),
    )
    .map_err(Refused::Invalid)?;
    let kind = event.body.kind().to_string();
    if !credential.may_send(&kind) {
        return Err(Refused::Forbidden(format!(
            "credential {} may not send {kind}",
            credential.id
        )));
    }
    // The record key the contract asks for: the platform order id, or the sku.
    let key = match &event.key {
        EntityKey::Order(order_id) => order_id.platform_order_id().to_string(),
        EntityKey::Stock(sku) => sku.clone(),
        EntityKey::Buyer(buyer) => buyer.clone(),
    };
    let content_type = if protobuf {
        PROTOBUF_CONTENT_TYPE
    } else {
        headers::JSON_CONTENT_TYPE
    };
    Ok(Prepared {
        output: Output {
            topic: gateway.topics.name(topic.name()),
            key: key.into_bytes(),
            payload,
            headers: vec![(headers::CONTENT_TYPE, content_type.as_bytes().to_vec())],
        },
        kind,
        event_id: event.event_id.to_string(),
        entity: event.key.to_string(),
        topic,
    })
}

/// An action's actor is the credential that sent it, whatever the body says.
fn with_actor(credential: &Credential, body: &[u8]) -> Result<Vec<u8>, Refused> {
    let Some(role) = credential.role else {
        return Err(Refused::Forbidden(format!(
            "credential {} has no role and may not send actions",
            credential.id
        )));
    };
    let mut document: Value = match serde_json::from_slice(body) {
        Ok(document) => document,
        // Not JSON: the contract's check says so in its words.
        Err(_) => return Ok(body.to_vec()),
    };
    if let Some(object) = document.as_object_mut() {
        object.insert(
            "actor".into(),
            json!({"id": credential.id, "role": role.as_str()}),
        );
    }
    Ok(serde_json::to_vec(&document).unwrap_or_else(|_| body.to_vec()))
}

/// The request's payload identity for its idempotency key: method, path and the body, JSON
/// read and written back (so key order and spacing don't make a different payload).
fn fingerprint(request: &RequestParts) -> String {
    let mut hasher = Sha256::new();
    hasher.update(request.method.as_str());
    hasher.update(b"\x1f");
    hasher.update(request.path_and_query.as_bytes());
    hasher.update(b"\x1f");
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(document) => hasher.update(document.to_string()),
        Err(_) => hasher.update(&request.body),
    }
    hex::encode(hasher.finalize())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| !key.is_empty() && key.chars().count() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_string()))
}

/// Produces prepared records under the request's idempotency key, if any, and answers.
async fn submit(
    gateway: &Gateway,
    credential: &Credential,
    request: &RequestParts,
    prepared: Vec<Prepared>,
) -> Response {
    let key = match idempotency_key(&request.headers) {
        Ok(key) => key,
        Err(problem) => return problem.into_response(),
    };
    let first = prepared
        .first()
        .map(|p| p.entity.clone())
        .unwrap_or_default();
    let span = info_span!("ingest", credential = %credential.id, order_id = %first,
        records = prepared.len(), idempotency_key = key.as_deref().unwrap_or(""));
    async move {
        let Some(key) = key else {
            return match produce(gateway, &prepared).await {
                Ok(accepted) => accepted_response(&accepted),
                Err(problem) => problem.into_response(),
            };
        };
        let store_key = format!("{}:{key}", credential.id);
        let fingerprint = fingerprint(request);
        let outcome = gateway
            .keys
            .begin(&gateway.producer, &store_key, &fingerprint)
            .await;
        let counted = |outcome: &'static str| {
            metrics::counter!(telemetry::GATEWAY_IDEMPOTENCY.name, "outcome" => outcome).increment(1);
        };
        match outcome {
            Err(problem) => problem.into_response(),
            Ok(Claim::Replay(stored)) => {
                counted("replayed");
                replayed(stored)
            }
            Ok(Claim::InFlight) => {
                counted("in_flight");
                let mut problem = Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency_in_flight",
                    format!("a request with Idempotency-Key {key:?} is still being processed; send again later"),
                );
                problem.retry_after = Some(gateway.config.gateway.retry_after_secs);
                problem.into_response()
            }
            Ok(Claim::Mismatch) => {
                counted("mismatch");
                Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    format!("Idempotency-Key {key:?} was used for a different request; use a new key for a new request"),
                )
                .into_response()
            }
            Ok(Claim::Won(claim)) => {
                counted("claimed");
                match produce(gateway, &prepared).await {
                    Ok(accepted) => {
                        let body = serde_json::to_string(&accepted).unwrap_or_default();
                        let stored = Stored { status: StatusCode::ACCEPTED.as_u16(), body };
                        if let Err(problem) = gateway
                            .keys
                            .finish(&gateway.producer, &store_key, claim, &fingerprint, stored)
                            .await
                        {
                            // The records are on the topic; a request sent again after the
                            // lease runs out produces them again and the intake drops the copies.
                            tracing::warn!(detail = %problem.detail, "the response could not be stored under its idempotency key");
                        }
                        accepted_response(&accepted)
                    }
                    Err(problem) => {
                        gateway.keys.release(&gateway.producer, &store_key, claim).await;
                        problem.into_response()
                    }
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn produce(gateway: &Gateway, prepared: &[Prepared]) -> Result<Accepted, Problem> {
    let started = Instant::now();
    let outputs: Vec<Output> = prepared.iter().map(|p| p.output.clone()).collect();
    let placed = gateway.producer.produce(&outputs).await?;
    let records: Vec<AcceptedRecord> = prepared
        .iter()
        .zip(placed)
        .map(|(prepared, placed)| {
            metrics::counter!(telemetry::GATEWAY_RECORDS_PRODUCED.name,
                "topic" => prepared.topic.name())
            .increment(1);
            AcceptedRecord {
                kind: prepared.kind.clone(),
                event_id: prepared.event_id.clone(),
                entity: prepared.entity.clone(),
                topic: prepared.topic.name().to_string(),
                partition: placed.partition,
                offset: placed.offset,
            }
        })
        .collect();
    info!(
        records = records.len(),
        ms = started.elapsed().as_millis() as u64,
        "accepted"
    );
    Ok(Accepted { records })
}

fn accepted_response(accepted: &Accepted) -> Response {
    (StatusCode::ACCEPTED, axum::Json(accepted)).into_response()
}

fn replayed(stored: Stored) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::ACCEPTED);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The body of an operator action or a customer choice (`POST /v1/orders/{order_id}/...`). The
/// actor is the credential; `action_id` defaults to the `Idempotency-Key`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The action's identity: sending it again counts once. Defaults to the request's
    /// `Idempotency-Key`; one of the two is required.
    pub action_id: Option<String>,
    /// Free text for the timeline and the audit trail, at most 500 characters.
    pub note: Option<String>,
    /// When the person acted (RFC 3339 with offset); defaults to the gateway's clock.
    pub occurred_at: Option<String>,
    /// `assign` only: who takes the exception over.
    pub assignee: Option<String>,
    /// `choice` only: `wait` or `refund`.
    pub choice: Option<String>,
}

/// An operator action or customer choice on one order, as an `in.actions` record.
pub async fn act(
    gateway: &Gateway,
    order_id: &str,
    kind: &str,
    exception_id: Option<&str>,
    request: RequestParts,
) -> Response {
    let credential = match gateway.authenticate(&request) {
        Ok(credential) => credential,
        Err(problem) => return problem.into_response(),
    };
    let document = match action_document(order_id, kind, exception_id, &request) {
        Ok(document) => document,
        Err(problem) => return problem.into_response(),
    };
    let bytes = serde_json::to_vec(&document).unwrap_or_default();
    match prepare_one(gateway, InputTopic::Actions, &credential, None, &bytes) {
        Ok(prepared) => submit(gateway, &credential, &request, vec![prepared]).await,
        Err(refused) => refused.problem().into_response(),
    }
}

fn action_document(
    order_id: &str,
    kind: &str,
    exception_id: Option<&str>,
    request: &RequestParts,
) -> Result<Value, Problem> {
    let invalid =
        |detail: String| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail);
    let order_id: OrderId = order_id.parse().map_err(|_| {
        invalid(format!(
            "the order id must be channel:platform_order_id (e.g. tmall:3921847562019384756), got {order_id:?}"
        ))
    })?;
    let body: ActionRequest = if request.body.is_empty() {
        ActionRequest::default()
    } else {
        serde_json::from_slice(&request.body).map_err(|error| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the action is not valid: {error}"),
            )
        })?
    };
    let action_id =
        match (body.action_id, idempotency_key(&request.headers)?) {
            (Some(action_id), _) | (None, Some(action_id)) => action_id,
            (None, None) => return Err(invalid(
                "action_id is required (or send an Idempotency-Key, which then names the action)"
                    .into(),
            )),
        };
    let mut document = json!({
        "kind": kind,
        "channel": order_id.channel().as_str(),
        "platform_order_id": order_id.platform_order_id(),
        "occurred_at": body.occurred_at.unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
        "action_id": action_id,
    });
    let extra = [
        ("note", body.note),
        ("exception_id", exception_id.map(str::to_string)),
        ("assignee", body.assignee),
        ("choice", body.choice),
    ];
    if let Some(object) = document.as_object_mut() {
        for (field, value) in extra {
            if let Some(value) = value {
                object.insert(field.into(), Value::String(value));
            }
        }
    }
    Ok(document)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn path_segments_name_the_input_topics() {
        assert_eq!(topic_named("payments"), Some(InputTopic::Payments));
        assert_eq!(topic_named("actions"), Some(InputTopic::Actions));
        assert_eq!(topic_named("in.payments"), None);
    }

    #[test]
    fn the_fingerprint_ignores_json_spacing_and_key_order() {
        let request = |body: &'static str| RequestParts {
            method: Method::POST,
            path_and_query: "/v1/inputs/orders".into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        };
        assert_eq!(
            fingerprint(&request(r#"{"a":1,"b":2}"#)),
            fingerprint(&request(r#"{ "b": 2, "a": 1 }"#))
        );
        assert_ne!(
            fingerprint(&request(r#"{"a":1}"#)),
            fingerprint(&request(r#"{"a":2}"#))
        );
    }
}
