//! The HTTP surface: routes, the read handlers of the order API, health, and [`run`].
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/inputs/{topic}`, `POST /v1/inputs/{topic}/batch` | ingestion ([`crate::ingest`]) |
//! | `GET /v1/orders`, `GET /v1/orders/{order_id}`, `GET /v1/orders/{order_id}/timeline` | orders from the view |
//! | `GET /v1/exceptions` | open exceptions by owner and level |
//! | `POST /v1/orders/{order_id}/review/approve` (`reject`), `.../exceptions/{exception_id}/resolve` (`assign`), `.../choice` | actions through `in.actions` |
//! | `GET /healthz`, `GET /readyz`, `GET /openapi.json`, `GET /schemas/{file}` | operations |

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use orderflow_domain::{Channel, Level, OrderId, OrderSnapshot, Owner, Status};
use orderflow_runtime::config::Config;
use orderflow_runtime::kafka::Topics;
use orderflow_runtime::{telemetry, RuntimeError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::info;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Credentials, ReadScope};
use crate::idempotency::KeyStore;
use crate::ingest::{self, topic_named, RequestParts};
use crate::problem::Problem;
use crate::produce::Producer;
use crate::view::{Cursor, ExceptionFilter, OrderFilter, View, ViewLag};

/// The header every order-API answer carries: records the view has not read yet.
pub const VIEW_LAG_HEADER: &str = "orderflow-view-lag";

/// Largest request body: a full batch of large orders fits.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Everything a request needs, shared by every handler.
pub struct Gateway {
    pub config: Config,
    pub topics: Topics,
    pub credentials: Credentials,
    pub producer: Arc<Producer>,
    pub keys: Arc<KeyStore>,
    pub view: Arc<View>,
}

type Shared = State<Arc<Gateway>>;

/// Serves until `shutdown`, then finishes the requests in hand.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RuntimeError> {
    let Some(path) = config.gateway.credentials.clone() else {
        return Err(RuntimeError::Config(
            "gateway.credentials must name the credentials file (ORDERFLOW_GATEWAY_CREDENTIALS)"
                .into(),
        ));
    };
    let credentials = Credentials::load(&path, |name| std::env::var(name).ok())?;
    if credentials.is_empty() {
        return Err(RuntimeError::Config(format!(
            "gateway.credentials {} lists no [[source]]: nobody could call the gateway",
            path.display()
        )));
    }
    let topics = Topics::new(&config.kafka.topic_prefix);
    let producer = Arc::new(Producer::new(&config)?);
    let keys = Arc::new(KeyStore::new(
        topics.gateway_idempotency(),
        Duration::from_millis(config.gateway.idempotency_lease_ms),
        Duration::from_secs(config.gateway.idempotency_ttl_secs),
        Duration::from_millis(u64::from(config.gateway.produce_timeout_ms)),
    ));
    let view = Arc::new(View::default());
    let listen = config.gateway.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| {
            RuntimeError::Config(format!(
                "gateway.listen {listen} could not be bound: {error}"
            ))
        })?;
    let local = listener
        .local_addr()
        .map_err(|error| RuntimeError::Fatal(format!("reading the bound address: {error}")))?;
    let mut keys_task = tokio::spawn(keys.clone().follow(config.kafka.clone()));
    let mut view_task = tokio::spawn(view.clone().follow(config.kafka.clone()));
    let watcher = tokio::spawn(
        producer
            .clone()
            .watch_broker(topics.name("in.orders"), Duration::from_secs(1)),
    );
    let gateway = Arc::new(Gateway {
        config,
        topics,
        credentials,
        producer,
        keys,
        view,
    });
    info!(address = %local, "gateway listening on http://{local}");
    let server = axum::serve(listener, router(gateway)).with_graceful_shutdown(shutdown);
    let ended =
        |task: Result<Result<(), RuntimeError>, tokio::task::JoinError>, what: &str| match task {
            Ok(Ok(())) => Err(RuntimeError::Fatal(format!("{what} stopped"))),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(RuntimeError::Fatal(format!("{what} failed: {error}"))),
        };
    let outcome = tokio::select! {
        served = server => served.map_err(|error| RuntimeError::Fatal(format!("serving HTTP: {error}"))),
        task = &mut keys_task => ended(task, "the idempotency key reader"),
        task = &mut view_task => ended(task, "the order view reader"),
    };
    keys_task.abort();
    view_task.abort();
    watcher.abort();
    info!("gateway stopped");
    outcome
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/schemas/{file}", get(contract_schema))
        .route("/v1/inputs/{topic}", post(post_input))
        .route("/v1/inputs/{topic}/batch", post(post_input_batch))
        .route("/v1/orders", get(list_orders))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/v1/orders/{order_id}/timeline", get(get_timeline))
        .route("/v1/exceptions", get(list_exceptions))
        .route("/v1/orders/{order_id}/review/approve", post(approve))
        .route("/v1/orders/{order_id}/review/reject", post(reject))
        .route(
            "/v1/orders/{order_id}/exceptions/{exception_id}/resolve",
            post(resolve),
        )
        .route(
            "/v1/orders/{order_id}/exceptions/{exception_id}/assign",
            post(assign),
        )
        .route("/v1/orders/{order_id}/choice", post(choice))
        .fallback(|| async {
            Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(gateway)
}

/// Counts and times every request by its route template.
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::counter!(telemetry::GATEWAY_REQUESTS.name,
        "route" => route.clone(), "status" => response.status().as_u16().to_string())
    .increment(1);
    metrics::histogram!(telemetry::GATEWAY_REQUEST_DURATION.name, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn parts(
    method: Method,
    uri: &OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<RequestParts, Problem> {
    let body = body.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            "request_body",
            format!(
                "the request body could not be read: {}",
                rejection.body_text()
            ),
        )
    })?;
    Ok(RequestParts {
        method,
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
        headers,
        body,
    })
}

/// The liveness probe: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "alive".into(),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// What readiness depends on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    /// The broker answered a metadata request within the last second or so.
    pub broker: bool,
    /// The idempotency keys were read to the end once since start.
    pub idempotency_keys: bool,
    pub view: ViewLag,
}

/// The readiness probe: 503 while the broker is away or the local views are still loading.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready to take requests", body = Readiness),
    (status = 503, description = "not ready: the broker is unreachable, or the views are loading", body = Readiness)))]
async fn readyz(State(gateway): Shared) -> Response {
    let readiness = Readiness {
        broker: gateway.producer.broker_up(),
        idempotency_keys: gateway.keys.caught_up(),
        view: gateway.view.lag(),
        ready: false,
    };
    let ready = readiness.broker && readiness.idempotency_keys && readiness.view.caught_up;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = (status, Json(Readiness { ready, ..readiness })).into_response();
    if !ready {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(gateway.config.gateway.retry_after_secs),
        );
    }
    response
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

/// The JSON Schemas of the input contract, which the OpenAPI document refers to.
async fn contract_schema(Path(file): Path<String>) -> Response {
    match crate::openapi::contract_schema(&file) {
        Some(text) => ([(header::CONTENT_TYPE, "application/schema+json")], text).into_response(),
        None => Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no schema {file}"),
        )
        .into_response(),
    }
}

async fn post_input(
    State(gateway): Shared,
    Path(topic): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    input(&gateway, &topic, false, method, &uri, headers, body).await
}

async fn post_input_batch(
    State(gateway): Shared,
    Path(topic): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    input(&gateway, &topic, true, method, &uri, headers, body).await
}

async fn input(
    gateway: &Gateway,
    topic: &str,
    batch: bool,
    method: Method,
    uri: &OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(topic) = topic_named(topic) else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no input topic in.{topic}: orders, payments, shipments, inventory or actions"),
        )
        .into_response();
    };
    match parts(method, uri, headers, body) {
        Ok(request) => ingest::ingest(gateway, topic, batch, request).await,
        Err(problem) => problem.into_response(),
    }
}

/// Authenticates a read and checks the credential may read orders; says whether to mask.
fn reader(
    gateway: &Gateway,
    method: Method,
    uri: &OriginalUri,
    headers: HeaderMap,
) -> Result<bool, Problem> {
    let request = parts(method, uri, headers, Ok(Bytes::new()))?;
    let credential = gateway.authenticate(&request)?;
    if !credential.may_read(ReadScope::Orders) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("credential {} may not read orders", credential.id),
        ));
    }
    Ok(!credential.may_read(ReadScope::Pii))
}

/// A JSON answer of the order API, with the view's lag in a header too.
fn with_lag<T: Serialize>(lag: ViewLag, body: &T) -> Response {
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert(VIEW_LAG_HEADER, HeaderValue::from(lag.lag_records));
    response
}

fn order_id(raw: &str) -> Result<OrderId, Problem> {
    raw.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "{raw:?} is no order id: channel:platform_order_id, e.g. tmall:3921847562019384756"
            ),
        )
    })
}

fn not_in_view(order_id: &OrderId, lag: ViewLag) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "order {order_id} is not in the view ({} records not read yet)",
            lag.lag_records
        ),
    )
}

/// One order's latest state.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    /// The latest `order-state` snapshot (docs/output-topics.md#order-state).
    #[schema(value_type = Object)]
    pub order: OrderSnapshot,
    pub view: ViewLag,
}

/// An order's current state, from the view.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "orders",
    params(("order_id" = String, Path, description = "channel:platform_order_id")),
    security(("bearer" = []), ("hmac" = [])),
    responses(
        (status = 200, description = "the latest snapshot", body = OrderResponse,
            headers(("orderflow-view-lag" = u64, description = "records the view has not read yet"))),
        (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the credential may not read orders", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no such order in the view", body = Problem, content_type = "application/problem+json")))]
async fn get_order(
    State(gateway): Shared,
    Path(raw): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    reader(&gateway, method, &uri, headers)?;
    let order_id = order_id(&raw)?;
    let lag = gateway.view.lag();
    let order = gateway
        .view
        .order(&order_id)
        .ok_or_else(|| not_in_view(&order_id, lag))?;
    Ok(with_lag(lag, &OrderResponse { order, view: lag }))
}

/// An order's timeline: what `orderflow inspect --json` prints.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineResponse {
    pub order_id: String,
    /// Every record of the order on `order-events`, in log order, with whether it counted.
    #[schema(value_type = Vec<Object>)]
    pub timeline: Vec<orderflow_runtime::inspect::TimelineEntry>,
    /// The whole folded state (docs/output-topics.md#orderflow-inspect-order_id---json).
    #[schema(value_type = Object)]
    pub state: Option<orderflow_domain::OrderState>,
    pub view: ViewLag,
}

/// An order's timeline and folded state; phone and address masked unless the credential's
/// `read` scope is `pii`.
#[utoipa::path(get, path = "/v1/orders/{order_id}/timeline", tag = "orders",
    params(("order_id" = String, Path, description = "channel:platform_order_id")),
    security(("bearer" = []), ("hmac" = [])),
    responses(
        (status = 200, description = "the timeline", body = TimelineResponse,
            headers(("orderflow-view-lag" = u64, description = "records the view has not read yet"))),
        (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the credential may not read orders", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "no record of the order in the view", body = Problem, content_type = "application/problem+json")))]
async fn get_timeline(
    State(gateway): Shared,
    Path(raw): Path<String>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let mask = reader(&gateway, method, &uri, headers)?;
    let order_id = order_id(&raw)?;
    let lag = gateway.view.lag();
    let inspection = gateway
        .view
        .timeline(&order_id, mask)
        .ok_or_else(|| not_in_view(&order_id, lag))?;
    Ok(with_lag(
        lag,
        &TimelineResponse {
            order_id: inspection.order_id,
            timeline: inspection.timeline,
            state: inspection.state,
            view: lag,
        },
    ))
}

/// Filters and paging of `GET /v1/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    /// Only orders with this status (`paid`, `on_hold`, ...).
    pub status: Option<String>,
    /// Only orders of this channel (`tmall`, `jd`, `douyin`, `web`, `miniapp`, `store`).
    pub channel: Option<String>,
    /// Only orders placed at or after this time (RFC 3339).
    pub placed_from: Option<String>,
    /// Only orders placed before this time (RFC 3339).
    pub placed_before: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Latest snapshots, by placement time then order id.
    #[schema(value_type = Vec<Object>)]
    pub orders: Vec<OrderSnapshot>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    pub view: ViewLag,
}

fn filter_value<T: DeserializeOwned>(field: &str, raw: Option<&str>) -> Result<Option<T>, Problem> {
    raw.map(|raw| {
        serde_json::from_value(serde_json::Value::String(raw.to_string())).map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{field} {raw:?} is not one of its values"),
            )
        })
    })
    .transpose()
}

fn time_value(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<orderflow_domain::Timestamp>, Problem> {
    raw.map(|raw| {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|time| time.with_timezone(&chrono::Utc))
            .map_err(|_| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!("{field} must be an RFC 3339 time with offset, got {raw:?}"),
                )
            })
    })
    .transpose()
}

fn page_size(limit: Option<usize>) -> Result<usize, Problem> {
    match limit.unwrap_or(50) {
        size @ 1..=500 => Ok(size),
        other => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit must be 1 to 500, got {other}"),
        )),
    }
}

/// A cursor is opaque to callers: the hex of `{time}␟{id}`.
fn encode_cursor((time, id): &Cursor) -> String {
    hex::encode(format!("{}\u{1f}{id}", time.to_rfc3339()))
}

fn decode_cursor(raw: Option<&str>) -> Result<Option<Cursor>, Problem> {
    let Some(raw) = raw else { return Ok(None) };
    let invalid = || {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "cursor is not one this API returned",
        )
    };
    let text = hex::decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (time, id) = text.split_once('\u{1f}').ok_or_else(invalid)?;
    let time = chrono::DateTime::parse_from_rfc3339(time).map_err(|_| invalid())?;
    Ok(Some((time.with_timezone(&chrono::Utc), id.to_string())))
}

/// Orders by status, channel and placement time, a page at a time. The cursor is a position in
/// the list, so orders inserted meanwhile don't shift later pages.
#[utoipa::path(get, path = "/v1/orders", tag = "orders", params(OrderQuery),
    security(("bearer" = []), ("hmac" = [])),
    responses(
        (status = 200, description = "a page of orders", body = OrderPage,
            headers(("orderflow-view-lag" = u64, description = "records the view has not read yet"))),
        (status = 400, description = "a filter or the cursor is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the credential may not read orders", body = Problem, content_type = "application/problem+json")))]
async fn list_orders(
    State(gateway): Shared,
    Query(query): Query<OrderQuery>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    reader(&gateway, method, &uri, headers)?;
    let filter = OrderFilter {
        status: filter_value::<Status>("status", query.status.as_deref())?,
        channel: query
            .channel
            .as_deref()
            .map(|raw| {
                raw.parse::<Channel>().map_err(|error| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!("channel: {error}"),
                    )
                })
            })
            .transpose()?,
        placed_from: time_value("placed_from", query.placed_from.as_deref())?,
        placed_before: time_value("placed_before", query.placed_before.as_deref())?,
    };
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let lag = gateway.view.lag();
    let (orders, next) = gateway.view.list(&filter, after.as_ref(), limit);
    Ok(with_lag(
        lag,
        &OrderPage {
            orders,
            next_cursor: next.as_ref().map(encode_cursor),
            view: lag,
        },
    ))
}

/// Filters and paging of `GET /v1/exceptions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExceptionQuery {
    /// Only exceptions of this owner (`customer_service`, `warehouse`, `risk`, `finance`,
    /// `operations`).
    pub owner: Option<String>,
    /// Only exceptions at this level (`L1`, `L2`, `L3`).
    pub level: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of open exceptions, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionPage {
    /// Each exception record (docs/output-topics.md#exceptions) with its `order_id` and the
    /// order's `status`.
    #[schema(value_type = Vec<Object>)]
    pub exceptions: Vec<crate::view::OpenException>,
    pub next_cursor: Option<String>,
    pub view: ViewLag,
}

/// Open exceptions, by owner and level, oldest first.
#[utoipa::path(get, path = "/v1/exceptions", tag = "orders", params(ExceptionQuery),
    security(("bearer" = []), ("hmac" = [])),
    responses(
        (status = 200, description = "a page of open exceptions", body = ExceptionPage,
            headers(("orderflow-view-lag" = u64, description = "records the view has not read yet"))),
        (status = 400, description = "a filter or the cursor is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "the credential may not read orders", body = Problem, content_type = "application/problem+json")))]
async fn list_exceptions(
    State(gateway): Shared,
    Query(query): Query<ExceptionQuery>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    reader(&gateway, method, &uri, headers)?;
    let filter = ExceptionFilter {
        owner: filter_value::<Owner>("owner", query.owner.as_deref())?,
        level: filter_value::<Level>("level", query.level.as_deref())?,
    };
    let limit = page_size(query.limit)?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let lag = gateway.view.lag();
    let (exceptions, next) = gateway.view.open_exceptions(&filter, after.as_ref(), limit);
    Ok(with_lag(
        lag,
        &ExceptionPage {
            exceptions,
            next_cursor: next.as_ref().map(encode_cursor),
            view: lag,
        },
    ))
}

macro_rules! action_handler {
    ($name:ident, $kind:literal, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "actions",
            params(("order_id" = String, Path, description = "channel:platform_order_id"),
                   ("Idempotency-Key" = Option<String>, Header, description = "names the action when the body has no action_id")),
            request_body(content = Option<ActionRequest>, content_type = "application/json"),
            security(("bearer" = []), ("hmac" = [])),
            responses(
                (status = 202, description = "the action is on in.actions", body = crate::ingest::Accepted),
                (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "the credential may not send this action", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "a request with this Idempotency-Key is in flight", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "not a valid action, or the Idempotency-Key was used for another request", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "the broker can't take it now; send again after Retry-After", body = Problem, content_type = "application/problem+json")))]
        async fn $name(
            State(gateway): Shared,
            Path(order_id): Path<String>,
            method: Method,
            uri: OriginalUri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            match parts(method, &uri, headers, body) {
                Ok(request) => ingest::act(&gateway, &order_id, $kind, None, request).await,
                Err(problem) => problem.into_response(),
            }
        }
    };
}

macro_rules! exception_action_handler {
    ($name:ident, $kind:literal, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "actions",
            params(("order_id" = String, Path, description = "channel:platform_order_id"),
                   ("exception_id" = String, Path, description = "the exception_id, 32 lowercase hex characters"),
                   ("Idempotency-Key" = Option<String>, Header, description = "names the action when the body has no action_id")),
            request_body(content = Option<ActionRequest>, content_type = "application/json"),
            security(("bearer" = []), ("hmac" = [])),
            responses(
                (status = 202, description = "the action is on in.actions", body = crate::ingest::Accepted),
                (status = 401, description = "not authenticated", body = Problem, content_type = "application/problem+json"),
                (status = 403, description = "the credential may not send this action", body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "a request with this Idempotency-Key is in flight", body = Problem, content_type = "application/problem+json"),
                (status = 422, description = "not a valid action, or the Idempotency-Key was used for another request", body = Problem, content_type = "application/problem+json"),
                (status = 503, description = "the broker can't take it now; send again after Retry-After", body = Problem, content_type = "application/problem+json")))]
        async fn $name(
            State(gateway): Shared,
            Path((order_id, exception_id)): Path<(String, String)>,
            method: Method,
            uri: OriginalUri,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            match parts(method, &uri, headers, body) {
                Ok(request) => {
                    ingest::act(&gateway, &order_id, $kind, Some(&exception_id), request).await
                }
                Err(problem) => problem.into_response(),
            }
        }
    };
}

use crate::ingest::ActionRequest;

action_handler!(
    approve,
    "review_approved",
    "/v1/orders/{order_id}/review/approve",
    "An operator approves an order waiting for manual review (`review_approved`)."
);
action_handler!(
    reject,
    "review_rejected",
    "/v1/orders/{order_id}/review/reject",
    "An operator rejects an order waiting for manual review (`review_rejected`); say why in `note`."
);
action_handler!(
    choice,
    "customer_choice",
    "/v1/orders/{order_id}/choice",
    "The customer answers the out-of-stock question (`customer_choice`: `wait` or `refund`)."
);
exception_action_handler!(
    resolve,
    "exception_resolved",
    "/v1/orders/{order_id}/exceptions/{exception_id}/resolve",
    "An operator resolves an open exception of the order (`exception_resolved`)."
);
exception_action_handler!(
    assign,
    "exception_assigned",
    "/v1/orders/{order_id}/exceptions/{exception_id}/assign",
    "An operator hands an open exception to a person (`exception_assigned`, `assignee`)."
);

/// The handlers' part of the OpenAPI document; [`crate::openapi`] adds the ingestion routes,
/// one per input topic.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "orderflow gateway",
        description = "HTTP intake of the orderflow input contract and the order API. Records are checked by the intake's own rules and produced with acks=all before the answer; errors are RFC 9457 problem details."
    ),
    paths(healthz, readyz, get_order, get_timeline, list_orders, list_exceptions, approve, reject, choice, resolve, assign),
    components(schemas(
        Problem,
        crate::problem::RecordError,
        crate::ingest::Accepted,
        crate::ingest::AcceptedRecord,
        ActionRequest,
        ViewLag,
        Health,
        Readiness,
        OrderResponse,
        TimelineResponse,
        OrderPage,
        ExceptionPage
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "inputs", description = "Records of the input contract (docs/input-contract.md), one route per input topic"),
        (name = "orders", description = "What orderflow knows, from the gateway's view of order-state and order-events"),
        (name = "actions", description = "Operator actions and customer choices, through in.actions; the actor is the credential"),
        (name = "operations", description = "Probes")
    )
)]
pub(crate) struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A bearer token of a credential with auth = \"bearer\".",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "hmac",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::SIGNATURE_HEADER,
                "v1=<hex HMAC-SHA256 of \"{timestamp}.{METHOD}.{path and query}.{body}\">, with \
                 X-Orderflow-Key (the credential id) and X-Orderflow-Timestamp (Unix seconds, within \
                 gateway.signature-window-secs of the gateway's clock).",
            ))),
        );
    }
}
