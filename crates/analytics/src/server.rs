//! The dashboard: one page (Chinese by default, English switchable) and the JSON endpoint
//! behind every card, served by the analytics binary itself.
//!
//! | path | what |
//! |---|---|
//! | `/` | the page (`web/dashboard/src/`, compiled in) |
//! | `/vendor/echarts.min.js` | Apache ECharts from `{analytics.web-dir}/node_modules` (`scripts/web.sh install`) |
//! | `/api/overview` | the KPI cards: `kpi::Kpis` of the range and of the range before |
//! | `/api/kpis?by=channel` | the KPIs per channel, category or province (`kpi::Breakdown`) |
//! | `/api/trend?by=` | daily valid orders, GMV, AOV, returns (`kpi::Trend`) |
//! | `/api/funnel`, `/api/stuck` | the lifecycle board (`board`) |
//! | `/api/exceptions` | exceptions by kind, open by owner and level against their SLA |
//! | `/api/sync-latency`, `/api/returns`, `/api/inventory` | the operational cards |
//! | `/api/rfm`, `/api/rfm/customers.csv` | customer segments, and the export for marketing |
//! | `/api/forecast?sku=` | the forecast of a sku, or of the best sellers, with the backtest |
//! | `/api/digest?day=` | the daily digest as it would be sent |
//! | `/api/status` | the store's generation and size |
//! | `/api/events` | server-sent events: a `change` whenever the store changed (live updates) |
//!
//! Every endpoint takes `from`, `to` (days, display zone) or `days` (default 30, ending on the
//! latest day with orders), and `channel`, `category`, `province` to slice. Times are epoch
//! milliseconds; the page shows them in the display zone (`zone` in `/api/status`), money in
//! fen as ¥ with two decimals.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use futures::Stream;
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::app::Settings;
use crate::consumer::Shared;
use crate::query::{latest_day, Params};
use crate::store::Store;
use crate::{board, digest, forecast, kpi, rfm, AnalyticsError};

const INDEX_HTML: &str = include_str!("../../../web/dashboard/src/index.html");
const APP_JS: &str = include_str!("../../../web/dashboard/src/app.js");
const STYLE_CSS: &str = include_str!("../../../web/dashboard/src/style.css");

/// Where the dashboard reads from.
pub enum Reader {
    /// The store's file, through read-only connections beside the writer.
    File {
        path: PathBuf,
        idle: Mutex<Vec<Connection>>,
    },
    /// The writer's own connection (an in-memory store).
    Shared,
}

/// An answer: the store generation it was computed at, when, and its JSON.
type Cached = (u64, Instant, Arc<String>);

pub struct Dashboard {
    pub shared: Arc<Shared>,
    pub reader: Reader,
    pub settings: Settings,
    cache: Mutex<BTreeMap<String, Cached>>,
}

impl Dashboard {
    pub fn new(shared: Arc<Shared>, reader: Reader, settings: Settings) -> Dashboard {
        Dashboard {
            shared,
            reader,
            settings,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    fn with_conn<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, AnalyticsError>,
    ) -> Result<T, AnalyticsError> {
        match &self.reader {
            Reader::Shared => read(self.shared.store().conn()),
            Reader::File { path, idle } => {
                let taken = idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
                let conn = match taken {
                    Some(conn) => conn,
                    None => Store::open_reader(path)?,
                };
                let result = read(&conn);
                idle.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
                result
            }
        }
    }

    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// Answers `endpoint` (cached while the store is unchanged; heavy ones for a few seconds
    /// more under a steady stream of changes).
    pub fn answer(
        &self,
        endpoint: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Arc<String>, AnalyticsError> {
        let key = format!("{endpoint}?{params:?}");
        let generation = self.generation();
        let stale_for = match endpoint {
            "rfm" | "forecast" | "inventory" => Duration::from_secs(15),
            _ => Duration::ZERO,
        };
        if let Some((at_generation, at, body)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            if *at_generation == generation || at.elapsed() < stale_for {
                return Ok(Arc::clone(body));
            }
        }
        let started = Instant::now();
        let value = self.with_conn(|conn| self.compute(conn, endpoint, &Params { map: params }))?;
        metrics::histogram!(orderflow_runtime::telemetry::ANALYTICS_QUERY_DURATION.name,
            "endpoint" => endpoint.to_string())
        .record(started.elapsed().as_secs_f64());
        let body = Arc::new(value.to_string());
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() > 500 {
            cache.clear();
        }
        cache.insert(key, (generation, Instant::now(), Arc::clone(&body)));
        Ok(body)
    }

    fn now_ms(&self) -> Result<i64, AnalyticsError> {
        Ok(self.settings.clock.now()?.timestamp_millis())
    }

    fn today(&self) -> Result<NaiveDate, AnalyticsError> {
        Ok(self
            .settings
            .clock
            .now()?
            .with_timezone(&self.settings.zone)
            .date_naive())
    }

    fn compute(
        &self,
        conn: &Connection,
        endpoint: &str,
        params: &Params<'_>,
    ) -> Result<Value, AnalyticsError> {
        let latest = match latest_day(conn)? {
            Some(day) => day,
            None => self.today()?,
        };
        let range = params.range(latest)?;
        let filter = params.filter();
        let to_json = |value: &dyn erased::Json| value.json();
        Ok(match endpoint {
            "overview" => {
                let current = kpi::kpis(conn, &range, &filter)?;
                let previous = kpi::kpis(conn, &range.previous(), &filter)?;
                json!({"range": range, "kpis": current, "previous": previous,
                       "generation": self.generation(), "zone": self.settings.zone.name()})
            }
            "kpis" => match params.dimension()? {
                Some(by) => to_json(&kpi::breakdown(conn, &range, &filter, by)?)?,
                None => to_json(&kpi::kpis(conn, &range, &filter)?)?,
            },
            "trend" => to_json(&kpi::trend(conn, &range, &filter, params.dimension()?)?)?,
            "funnel" => to_json(&board::funnel(conn, &range, &filter)?)?,
            "stuck" => to_json(&board::stuck(
                conn,
                self.now_ms()?,
                self.settings.stuck_after_minutes,
                usize::try_from(params.number("limit", 20, 500)?).unwrap_or(20),
            )?)?,
            "exceptions" => to_json(&board::exceptions(
                conn,
                &range,
                self.settings.zone,
                self.now_ms()?,
                &self.settings.sla,
                usize::try_from(params.number("limit", 20, 500)?).unwrap_or(20),
            )?)?,
            "sync-latency" => to_json(&board::sync_latency(conn, &range)?)?,
            "returns" => to_json(&board::top_returns(
                conn,
                &range,
                &filter,
                usize::try_from(params.number("limit", 10, 200)?).unwrap_or(10),
            )?)?,
            "inventory" => to_json(&board::inventory(conn, &range)?)?,
            "rfm" => {
                let (summary, mut customers) = rfm::customers(conn, range.to)?;
                customers.sort_by(|a, b| {
                    b.monetary_fen
                        .cmp(&a.monetary_fen)
                        .then_with(|| a.customer_key.cmp(&b.customer_key))
                });
                customers
                    .truncate(usize::try_from(params.number("limit", 10, 1_000)?).unwrap_or(10));
                json!({"summary": summary, "top_customers": customers})
            }
            "forecast" => {
                let horizon = usize::try_from(self.settings.forecast_horizon_days).unwrap_or(14);
                let skus = match params.text("sku") {
                    Some(sku) => vec![sku.to_string()],
                    None => forecast::top_skus(
                        conn,
                        range.to,
                        usize::try_from(params.number("limit", 5, 50)?).unwrap_or(5),
                    )?,
                };
                let forecasts = skus
                    .iter()
                    .map(|sku| forecast::sku_forecast(conn, sku, range.to, 84, horizon))
                    .collect::<Result<Vec<_>, _>>()?;
                json!({"horizon_days": horizon, "backtest": forecast::summarize(&forecasts),
                       "forecasts": forecasts})
            }
            "digest" => {
                let day = params.day("day")?.unwrap_or(latest);
                to_json(&digest::digest(conn, day)?)?
            }
            "status" => {
                let orders: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM orders WHERE placed_ms IS NOT NULL",
                    [],
                    |row| row.get(0),
                )?;
                let mut checkpoints: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
                let mut statement =
                    conn.prepare_cached("SELECT topic, partition, next_offset FROM checkpoints")?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    checkpoints
                        .entry(row.get(0)?)
                        .or_default()
                        .insert(row.get::<_, i64>(1)?.to_string(), row.get(2)?);
                }
                json!({"generation": self.generation(), "orders": orders, "checkpoints": checkpoints,
                       "latest_day": latest.format("%Y-%m-%d").to_string(),
                       "zone": self.settings.zone.name(), "now_ms": self.now_ms()?,
                       "stuck_after_minutes": self.settings.stuck_after_minutes})
            }
            other => return Err(AnalyticsError::Usage(format!("no endpoint /api/{other}"))),
        })
    }
}

mod erased {
    use crate::AnalyticsError;

    /// Serialises any result to a JSON value.
    pub(super) trait Json {
        fn json(&self) -> Result<serde_json::Value, AnalyticsError>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<serde_json::Value, AnalyticsError> {
            serde_json::to_value(self)
                .map_err(|error| AnalyticsError::Fatal(format!("encoding an answer: {error}")))
        }
    }
}

/// The router of the dashboard.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(|| async { html(INDEX_HTML) }))
        .route("/index.html", get(|| async { html(INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/vendor/echarts.min.js", get(echarts))
        .route("/api/rfm/customers.csv", get(customers_csv))
        .route("/api/events", get(events))
        .route("/api/{endpoint}", get(api))
        .with_state(dashboard)
}

fn html(body: &'static str) -> Response {
    asset("text/html; charset=utf-8", body)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn echarts(State(dashboard): State<Arc<Dashboard>>) -> Response {
    let path = dashboard
        .settings
        .web_dir
        .join("node_modules/echarts/dist/echarts.min.js");
    let read = tokio::task::spawn_blocking(move || std::fs::read(&path).map_err(|_| path)).await;
    match read.unwrap_or_else(|_| Err(PathBuf::from("node_modules/echarts"))) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            bytes,
        )
            .into_response(),
        Err(path) => (
            StatusCode::NOT_FOUND,
            format!(
                "ECharts is not installed at {}: run scripts/web.sh install",
                path.display()
            ),
        )
            .into_response(),
    }
}

fn failure(error: &AnalyticsError) -> Response {
    let status = match error {
        AnalyticsError::Usage(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, axum::Json(json!({"error": error.to_string()}))).into_response()
}

async fn api(
    State(dashboard): State<Arc<Dashboard>>,
    Path(endpoint): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let answered = tokio::task::spawn_blocking(move || dashboard.answer(&endpoint, &params)).await;
    match answered {
        Ok(Ok(body)) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.as_str().to_string(),
        )
            .into_response(),
        Ok(Err(error)) => failure(&error),
        Err(error) => failure(&AnalyticsError::Fatal(format!("query task: {error}"))),
    }
}

async fn customers_csv(
    State(dashboard): State<Arc<Dashboard>>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Response {
    let answered = tokio::task::spawn_blocking(move || {
        dashboard.with_conn(|conn| {
            let latest = match latest_day(conn)? {
                Some(day) => day,
                None => dashboard.today()?,
            };
            let range = Params { map: &params }.range(latest)?;
            let (_, mut customers) = rfm::customers(conn, range.to)?;
            if let Some(segment) = params.get("segment").filter(|s| !s.is_empty()) {
                customers.retain(|c| c.segment == segment.as_str());
            }
            Ok((range.to, rfm::csv(&customers)))
        })
    })
    .await;
    match answered {
        Ok(Ok((day, csv))) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"customers-{day}.csv\""),
                ),
            ],
            csv,
        )
            .into_response(),
        Ok(Err(error)) => failure(&error),
        Err(error) => failure(&AnalyticsError::Fatal(format!("query task: {error}"))),
    }
}

/// A `change` event whenever the store's generation moves (checked every 250 ms), so the page
/// reloads its cards within a second of a new fact being folded.
async fn events(
    State(dashboard): State<Arc<Dashboard>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = dashboard.generation();
    let stream = futures::stream::unfold(
        (dashboard, first, true),
        |(dashboard, seen, first)| async move {
            let mut seen = seen;
            if !first {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let now = dashboard.generation();
                    if now != seen {
                        seen = now;
                        break;
                    }
                }
            }
            let event = Event::default()
                .event("change")
                .data(json!({"generation": seen}).to_string());
            Some((Ok(event), (dashboard, seen, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
