//! `orderflow-analytics`: the projection's consumers and the dashboard in one process, plus the
//! tools around its store (replay, digest, serve a store, generate a synthetic history).
//!
//! ```text
//! orderflow-analytics                         # consume, keep the store, serve the dashboard
//! orderflow-analytics replay [--into DIR]     # fold the topics from offset 0 into a fresh store; print its digest
//! orderflow-analytics digest --store DIR      # the digest of a store (equal to its replay's)
//! orderflow-analytics serve --store DIR       # only the dashboard, over a store (no broker)
//! orderflow-analytics generate --into DIR     # a simulated history folded straight into a store
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use futures::FutureExt;
use orderflow_domain::SlaRules;
use orderflow_runtime::app::{fail, run_async};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::shutdown_signal;
use orderflow_runtime::kafka::Topics;
use orderflow_runtime::output::Output;
use orderflow_runtime::rules::{Clock, RulesSource};
use orderflow_runtime::telemetry;
use orderflow_schema::headers;
use orderflow_schema::output::NotificationRecord;
use serde_json::json;
use tracing::{info, warn};

use crate::consumer::{self, Shared, Source};
use crate::project::Projection;
use crate::query::{latest_day, Filter, Range};
use crate::server::{self, Dashboard, Reader};
use crate::store::Store;
use crate::synth::{self, HistoryMix};
use crate::{digest, kpi, AnalyticsError};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "The orderflow analytics projection and its dashboard"
)]
struct Args {
    /// Config file (TOML); environment variables override it.
    #[arg(long, global = true, env = "ORDERFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Distinguishes copies on one host: each keeps its own store.
    #[arg(long, global = true, env = "ORDERFLOW_INSTANCE", default_value = "0")]
    instance: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume order-events, exceptions and order-state into the store and serve the dashboard
    /// (what runs without a subcommand).
    Run,
    /// Fold the three topics from offset 0 to their end into a fresh store and print its digest.
    Replay {
        /// Directory of the fresh store (must not hold one); in memory if omitted.
        #[arg(long)]
        into: Option<PathBuf>,
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
    /// Print the digest of a store (stop the consumer that writes it first).
    Digest {
        #[arg(long)]
        store: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Serve the dashboard over a store, without a broker.
    Serve {
        #[arg(long)]
        store: PathBuf,
    },
    /// Simulate a shop's history and fold it straight into a store (benchmarks), or write it
    /// as `orderflow feed` lines.
    Generate {
        /// Directory of the store to fold it into.
        #[arg(long)]
        into: Option<PathBuf>,
        /// Write the log records (order-events, exceptions) as feed lines to this file.
        #[arg(long)]
        log_feed: Option<PathBuf>,
        /// Write the platforms' input records as feed lines to this file.
        #[arg(long)]
        input_feed: Option<PathBuf>,
        /// Write the KPIs computed from the generator's own bookkeeping (not the store) here.
        #[arg(long)]
        expected: Option<PathBuf>,
        #[arg(long, default_value_t = 56)]
        days: u32,
        #[arg(long, default_value_t = 60)]
        orders_per_day: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Distinct customers (default: orders per day × 20).
        #[arg(long)]
        customers: Option<u32>,
        /// The day after the history, YYYY-MM-DD (default 2026-11-25).
        #[arg(long)]
        end_day: Option<String>,
        /// Prefix of the order ids.
        #[arg(long, default_value = "H")]
        tag: String,
    },
}

/// The `[analytics]` section, checked, with what it needs from the rest of the config.
pub struct Settings {
    pub listen: SocketAddr,
    pub web_dir: PathBuf,
    pub stuck_after_minutes: u64,
    pub forecast_horizon_days: u32,
    pub digest_at: Option<NaiveTime>,
    pub order_facts: bool,
    pub customer_key: Option<Vec<u8>>,
    pub zone: Tz,
    pub sla: SlaRules,
    pub clock: Clock,
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings, AnalyticsError> {
        let analytics = &config.analytics;
        let usage = |message: String| Err(AnalyticsError::Usage(message));
        if analytics.stuck_after_minutes == 0 {
            return usage("analytics.stuck-after-minutes must be at least 1".into());
        }
        if !(1..=90).contains(&analytics.forecast_horizon_days) {
            return usage("analytics.forecast-horizon-days must be 1 to 90".into());
        }
        let digest_at = match &analytics.digest_at {
            None => None,
            Some(text) => Some(NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
                AnalyticsError::Usage(format!(
                    "analytics.digest-at must be a local time HH:MM (e.g. \"09:00\"), got {text:?}"
                ))
            })?),
        };
        let customer_key = match &analytics.customer_key_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    AnalyticsError::Usage(format!(
                        "analytics.customer-key-file {} could not be read: {error}",
                        path.display()
                    ))
                })?;
                let key = text.lines().next().unwrap_or_default().trim().to_string();
                if key.len() < 16 {
                    return usage(format!(
                        "analytics.customer-key-file {} must hold a key of at least 16 characters on its first line",
                        path.display()
                    ));
                }
                Some(key.into_bytes())
            }
        };
        let rules = RulesSource::open(config)?;
        Ok(Settings {
            listen: analytics.listen,
            web_dir: analytics.web_dir.clone(),
            stuck_after_minutes: analytics.stuck_after_minutes,
            forecast_horizon_days: analytics.forecast_horizon_days,
            digest_at,
            order_facts: analytics.order_facts,
            customer_key,
            zone: config.display.time_zone,
            sla: rules.current().sla.clone(),
            clock: Clock::from_config(config),
        })
    }

    pub fn projection(&self) -> Projection {
        Projection::new(self.customer_key.as_deref(), self.zone)
    }
}

/// Where instance `instance` keeps its store.
pub fn store_path(config: &Config, instance: &str) -> PathBuf {
    config
        .store
        .data_dir
        .join(format!("{}-{instance}", consumer::NAME))
        .join("analytics.sqlite")
}

/// `main` of `orderflow-analytics`.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    telemetry::init_logs(config.telemetry.log_format);
    let settings = match Settings::from_config(&config) {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    run_async(async {
        match args.command.unwrap_or(Command::Run) {
            Command::Run => {
                telemetry::init_metrics(&config.telemetry)?;
                run(&config, settings, &args.instance, shutdown_signal()).await
            }
            Command::Replay { into, json } => replay(&config, &settings, into, json).await,
            Command::Digest { store, json } => {
                let store = Store::open(&store_file(&store))?;
                let orders: i64 = store.conn().query_row(
                    "SELECT COUNT(*) FROM orders WHERE placed_ms IS NOT NULL",
                    [],
                    |row| row.get(0),
                )?;
                let digest = store.digest()?;
                if json {
                    println!("{}", json!({"digest": digest, "orders": orders}));
                } else {
                    println!("digest {digest} ({orders} orders)");
                }
                Ok(())
            }
            Command::Serve { store } => {
                serve(settings, &store_file(&store), shutdown_signal()).await
            }
            Command::Generate {
                into,
                log_feed,
                input_feed,
                expected,
                days,
                orders_per_day,
                seed,
                customers,
                end_day,
                tag,
            } => {
                let mut mix = HistoryMix {
                    seed,
                    days,
                    orders_per_day,
                    customers: customers.unwrap_or(orders_per_day.saturating_mul(20)),
                    tag,
                    ..HistoryMix::default()
                };
                if let Some(text) = end_day {
                    mix.end_day = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                        AnalyticsError::Usage(format!("--end-day {text:?}: expected YYYY-MM-DD"))
                    })?;
                }
                generate(&settings, &mix, into, log_feed, input_feed, expected)
            }
        }
    })
}

/// A store given as its directory or as its file.
fn store_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("analytics.sqlite")
    } else {
        path.to_path_buf()
    }
}

/// Runs the consumers, the dashboard and the digest until `shutdown` resolves.
pub async fn run(
    config: &Config,
    settings: Settings,
    instance: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AnalyticsError> {
    let path = store_path(config, instance);
    let mut store = Store::open(&path)?;
    store.use_zone(settings.zone)?;
    let producer = orderflow_runtime::kafka::producer(&config.kafka)?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let facts_topic = settings.order_facts.then(|| topics.name("order-facts"));
    if let Some(topic) = &facts_topic {
        create_topic(config, topic).await?;
    }
    let shared = Arc::new(Shared::new(
        store,
        settings.projection(),
        Some(producer.clone()),
        facts_topic,
    ));
    let listener = bind(settings.listen).await?;
    let digest_at = settings.digest_at;
    let dashboard = Arc::new(Dashboard::new(
        Arc::clone(&shared),
        Reader::File {
            path: path.clone(),
            idle: std::sync::Mutex::new(Vec::new()),
        },
        settings,
    ));
    let shutdown = Box::pin(shutdown).shared();
    let serving = axum::serve(listener, server::router(Arc::clone(&dashboard)))
        .with_graceful_shutdown(shutdown.clone());
    let server = tokio::spawn(async move { serving.await });
    let digests = tokio::spawn(digest_loop(
        config.clone(),
        Arc::clone(&dashboard),
        producer,
        digest_at,
        shutdown.clone(),
    ));
    info!(store = %path.display(), "analytics projection started");
    let consumed = futures::future::try_join3(
        consumer::run_source(
            config,
            Arc::clone(&shared),
            Source::Events,
            shutdown.clone(),
        ),
        consumer::run_source(
            config,
            Arc::clone(&shared),
            Source::Exceptions,
            shutdown.clone(),
        ),
        consumer::run_source(config, Arc::clone(&shared), Source::State, shutdown.clone()),
    )
    .await;
    // However the consumers ended, the dashboard and the digest stop with them.
    server.abort();
    digests.abort();
    consumed?;
    Ok(())
}

async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, AnalyticsError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| {
            AnalyticsError::Usage(format!(
                "analytics.listen {listen} could not be served: {error}"
            ))
        })?;
    let address = listener.local_addr().unwrap_or(listen);
    // The line scripts and tests wait for.
    info!(url = %format!("http://{address}/"), "dashboard listening");
    eprintln!("dashboard: http://{address}/");
    Ok(listener)
}

/// Serves the dashboard over an existing store file until `shutdown`.
pub async fn serve(
    settings: Settings,
    path: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AnalyticsError> {
    let store = Store::open(path)?;
    let shared = Arc::new(Shared::new(store, settings.projection(), None, None));
    let listener = bind(settings.listen).await?;
    let dashboard = Arc::new(Dashboard::new(
        shared,
        Reader::File {
            path: path.to_path_buf(),
            idle: std::sync::Mutex::new(Vec::new()),
        },
        settings,
    ));
    axum::serve(listener, server::router(dashboard))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| AnalyticsError::Fatal(format!("serving the dashboard: {error}")))
}

async fn create_topic(config: &Config, topic: &str) -> Result<(), AnalyticsError> {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let admin = orderflow_runtime::kafka::admin(&config.kafka)?;
    let new = NewTopic::new(
        topic,
        config.kafka.partitions,
        TopicReplication::Fixed(config.kafka.replication_factor),
    );
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|error| AnalyticsError::Fatal(format!("creating {topic}: {error}")))?;
    for result in results {
        match result {
            Ok(_) => info!(topic, "created"),
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(AnalyticsError::Fatal(format!("creating {topic}: {code}")))
            }
        }
    }
    Ok(())
}

/// Publishes the digest of yesterday once local time passes `digest_at`.
async fn digest_loop(
    config: Config,
    dashboard: Arc<Dashboard>,
    producer: rdkafka::producer::FutureProducer,
    digest_at: Option<NaiveTime>,
    shutdown: impl Future<Output = ()>,
) {
    let Some(digest_at) = digest_at else {
        return;
    };
    let topic = Topics::new(&config.kafka.topic_prefix).notifications();
    let mut ticker = tokio::time::interval(Duration::from_secs(15));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        if let Err(error) = publish_due_digest(&dashboard, &producer, &topic, digest_at).await {
            warn!(%error, "the daily digest could not be published; trying again");
        }
    }
}

async fn publish_due_digest(
    dashboard: &Dashboard,
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    digest_at: NaiveTime,
) -> Result<(), AnalyticsError> {
    let now = dashboard.settings.clock.now()?;
    let local = now.with_timezone(&dashboard.settings.zone);
    if local.time() < digest_at {
        return Ok(());
    }
    let day = local.date_naive() - chrono::Duration::days(1);
    let marker = format!("digest-sent:{day}");
    let output = {
        let store = dashboard.shared.store();
        if store.meta(&marker)?.is_some() {
            return Ok(());
        }
        let digest = digest::digest(store.conn(), day)?;
        let notification = digest::notification(&digest, now)?;
        let record = NotificationRecord::new(notification.clone());
        Output {
            topic: topic.to_string(),
            key: notification.order_id.to_string().into_bytes(),
            payload: record
                .to_json()
                .map_err(|error| AnalyticsError::Fatal(error.to_string()))?,
            headers: vec![(
                headers::NOTIFICATION_ID,
                notification.notification_id.to_string().into_bytes(),
            )],
        }
    };
    orderflow_runtime::output::deliver(producer, std::slice::from_ref(&output)).await?;
    dashboard
        .shared
        .store()
        .set_meta(&marker, &now.to_rfc3339())?;
    metrics::counter!(telemetry::ANALYTICS_DIGESTS.name).increment(1);
    info!(%day, "daily KPI digest published");
    Ok(())
}

async fn replay(
    config: &Config,
    settings: &Settings,
    into: Option<PathBuf>,
    json: bool,
) -> Result<(), AnalyticsError> {
    let store = match &into {
        Some(dir) => {
            let file = dir.join("analytics.sqlite");
            if file.exists() {
                return Err(AnalyticsError::Usage(format!(
                    "{} holds a store already; replay builds a fresh one",
                    file.display()
                )));
            }
            Store::open(&file)?
        }
        None => Store::in_memory()?,
    };
    let shared = Shared::new(store, settings.projection(), None, None);
    shared.store().use_zone(settings.zone)?;
    let started = std::time::Instant::now();
    let records = consumer::replay(config, &shared).await?;
    let store = shared.store();
    let digest = store.digest()?;
    let latest = latest_day(store.conn())?;
    let overview = match latest {
        Some(day) => Some(kpi::kpis(
            store.conn(),
            &Range::ending(day, 30),
            &Filter::default(),
        )?),
        None => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            json!({"records": records, "seconds": seconds, "digest": digest, "last_30_days": overview})
        );
    } else {
        println!(
            "replayed {records} records in {seconds:.2}s ({:.0} records/s); digest {digest}",
            records as f64 / seconds.max(1e-9)
        );
    }
    Ok(())
}

fn generate(
    settings: &Settings,
    mix: &HistoryMix,
    into: Option<PathBuf>,
    log_feed: Option<PathBuf>,
    input_feed: Option<PathBuf>,
    expected: Option<PathBuf>,
) -> Result<(), AnalyticsError> {
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text)
            .map_err(|error| AnalyticsError::Usage(format!("writing {}: {error}", path.display())))
    };
    let keep = log_feed.is_some() || input_feed.is_some() || expected.is_some();
    if keep {
        let history = synth::history(mix);
        if let Some(path) = &log_feed {
            write(path, &history.log_feed_lines())?;
        }
        if let Some(path) = &input_feed {
            write(path, &history.feed_lines())?;
        }
        if let Some(path) = &expected {
            let last = mix.end_day - chrono::Duration::days(1);
            let all = synth::expected_kpis(
                &history.truth,
                mix.end_day - chrono::Duration::days(i64::from(mix.days)),
                last,
            );
            let last_30 =
                synth::expected_kpis(&history.truth, last - chrono::Duration::days(29), last);
            let text = serde_json::to_string_pretty(&json!({"all": all, "last_30_days": last_30,
                "last_day": last.format("%Y-%m-%d").to_string(), "orders": history.truth.len()}))
            .map_err(|error| AnalyticsError::Fatal(error.to_string()))?;
            write(path, &text)?;
        }
    }
    if let Some(dir) = into {
        let mut store = Store::open(&dir.join("analytics.sqlite"))?;
        store.use_zone(settings.zone)?;
        let shared = Shared::new(store, settings.projection(), None, None);
        let started = std::time::Instant::now();
        let mut orders = 0_usize;
        let mut records = 0_usize;
        let mut failure = None;
        synth::generate(mix, false, |day| {
            orders += day.truth.len();
            records += day.log.len();
            if failure.is_none() {
                if let Err(error) = day.fold_into(&shared) {
                    failure = Some(error);
                }
            }
        });
        if let Some(error) = failure {
            return Err(error);
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"orders": orders, "records": records, "seconds": seconds,
                   "records_per_second": records as f64 / seconds.max(1e-9),
                   "store": dir.join("analytics.sqlite")})
        );
    }
    Ok(())
}
