//! The `orderflow` operator CLI: parse arguments, load config, run the command, and turn any
//! error into one plain sentence on stderr and a non-zero exit code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orderflow_domain::OrderId;

use orderflow_runtime::app::fail;
use orderflow_runtime::config::Config;
use orderflow_runtime::logread::Until;
use orderflow_runtime::rules::Clock;
use orderflow_runtime::{state, telemetry, RuntimeError};

use crate::{commands, display, OpsError};

#[derive(Debug, Parser)]
#[command(version, about = "Operate an orderflow deployment")]
struct OperatorArgs {
    /// Config file (TOML); environment variables override it.
    #[arg(long, global = true, env = "ORDERFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Log what the Kafka clients do (otherwise only the outcome; `RUST_LOG` overrides both).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Rebuild the state store from `order-events` offset 0 into a fresh store and print its digest.
    Replay {
        /// Directory of the fresh store (must not exist or be empty); a temporary one if omitted.
        #[arg(long)]
        into: Option<PathBuf>,
        /// Compare with the live store (replayed up to its checkpoints); exit 1 on any difference.
        #[arg(long)]
        verify: bool,
        /// The live store to verify against; the state consumer owning it must be stopped.
        #[arg(long, requires = "verify")]
        store: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Produce JSON-lines records (`{"topic":"in.orders","key":..,"value":{..}}`) to the input topics.
    Feed {
        /// The file to read; `-` for stdin.
        file: PathBuf,
    },
    /// Print the latest state of every order and the exception and dead-letter counts.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Baselines for benchmarks (a plain relay of the input topics, a raw read of the log) and
    /// the latency of each hop.
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
    /// Play seeded multi-channel order journeys into the input topics, measure end-to-end
    /// latency and verify every order's final state (exit 1 on any mismatch).
    Simulate(SimulateArgs),
    /// Print an order's full timeline (every event, its source and time) and current state.
    Inspect {
        /// The order id, `channel:platform_order_id`, e.g. `tmall:3921847562019384756`.
        order_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the order event log as JSON lines, one event a line with its partition and
    /// offset (personal data masked unless `--unmasked`), for people and `jq`.
    Tail(crate::tail::TailArgs),
    /// The exception report: open exceptions oldest first, and per kind and channel what was
    /// raised, resolved and escalated, the average handling time and the recurrence.
    Exceptions {
        /// Count activity from this time on: RFC 3339, or a duration back from now (`7d`, `36h`).
        #[arg(long)]
        since: Option<String>,
        /// The time to report at (RFC 3339); if omitted, the state consumer's clock: the time in
        /// `timers.clock-file` when one is configured, else the system clock.
        #[arg(long)]
        now: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Answer an SMS's out-of-stock question for the customer: checks the link's token against
    /// `notify.sms.link-secret` and sends `customer_choice` to `in.actions` (what the answer
    /// page does).
    Choose {
        /// The token at the end of the SMS's link.
        token: String,
        /// `refund` or `wait`.
        choice: String,
    },
    /// The KPIs of a range of days (the seed's table: valid orders, GMV, AOV, return and
    /// repurchase rates, new customers) with the exception report, as a table, CSV or JSON; or
    /// the daily KPI digest (`--digest`, `--send` to publish it on notifications).
    Report(crate::kpi_report::ReportArgs),
    /// Print every metric the consumers export (name, type, labels, help) as a Markdown table.
    Metrics,
    /// The dead-letter queue: list, show (personal data masked) and redrive dead letters.
    Dlq {
        #[command(subcommand)]
        action: crate::dlq::Action,
    },
    /// The configuration in effect.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the effective configuration (file, then environment, then defaults) as TOML, with
    /// every secret shown as `<redacted>`.
    Show,
}

#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// Journeys to play (each is 2 to 7 facts, plus the mess).
    #[arg(long, default_value_t = 1_000)]
    orders: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Events per second to send at; 0 sends as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Prefix of the generated order ids (default: SIM plus the current time, so runs don't collide).
    #[arg(long)]
    tag: Option<String>,
    /// A TOML file with any field of the mix (channel-weights, price-min-fen, shares, ...).
    #[arg(long)]
    mix: Option<PathBuf>,
    #[arg(long)]
    duplicate_share: Option<f64>,
    #[arg(long)]
    out_of_order_share: Option<f64>,
    #[arg(long)]
    late_share: Option<f64>,
    #[arg(long)]
    malformed_share: Option<f64>,
    /// Seconds to wait after the last send for every fact to show on order-state.
    #[arg(long, default_value_t = 120)]
    settle_timeout: u64,
    /// Seconds at the start whose facts are timed apart (reported as the warm-up), so the
    /// latency figures are of the steady state.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Serve a fake sales platform at this address for `orderflow-sync` to call back (point
    /// its `[sync.channel.*] url`s here) and report the sync latency: fact sent → platform
    /// acknowledged.
    #[arg(long)]
    platform_listen: Option<std::net::SocketAddr>,
    /// Print JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum BenchAction {
    /// Consume the input topics and produce every record to `bench.relay` until COUNT went through.
    Relay {
        #[arg(long)]
        count: usize,
    },
    /// Read `order-events` from the beginning to the end, doing nothing else.
    ReadLog,
    /// Where the facts' latency went, hop by hop (input → log → order-state), from the create
    /// times of the records on the topics.
    Hops {
        /// Leave out the facts sent in the first SECONDS (a run's warm-up).
        #[arg(long, default_value_t = 0)]
        skip_seconds: u64,
    },
    /// What the deployment's topics hold per input record: records written to each output
    /// topic and read by the consumers (from the watermarks; meant for a run's fresh prefix).
    Records,
}

#[derive(Debug, Subcommand)]
enum TopicsAction {
    /// Create every topic with the configured partitions, replication and configs; existing
    /// ones are kept, and what differs in them is printed.
    Create,
    /// Compare every topic with the configuration (partitions, replication factor, configs);
    /// exit 1 if one is missing or differs.
    Check,
}

/// `main` of the `orderflow` operator CLI.
pub fn operator_main() -> ExitCode {
    let args = OperatorArgs::parse();
    if let Command::Metrics = args.command {
        // Needs no config and no broker.
        crate::out!("{}", telemetry::markdown_table());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => return fail(&error),
    };
    telemetry::init_logs_with(
        config.telemetry.log_format,
        if args.verbose {
            "info"
        } else {
            // A broker that doesn't answer is one line, the command's own error.
            "warn,librdkafka=off,rdkafka=off,orderflow_runtime::kafka=error"
        },
    );
    if let Command::Config {
        action: ConfigAction::Show,
    } = args.command
    {
        // Needs no broker.
        return match config.to_redacted_toml() {
            Ok(text) => {
                crate::out!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        };
    }
    // The command runs on a runtime and thread of its own: its clients' blocking calls (a
    // metadata request waits seconds for a broker that isn't there) can't hold up the
    // connection check, and once the check has given the answer nothing waits for them.
    let (done, outcome) = tokio::sync::oneshot::channel();
    let command_config = config.clone();
    std::thread::spawn(move || {
        let outcome = match runtime() {
            Ok(runtime) => runtime.block_on(run_command(&command_config, args.command)),
            Err(error) => Err(error.into()),
        };
        let _ = done.send(outcome);
    });
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&error),
    };
    let outcome = runtime.block_on(async {
        // A refused login, an untrusted certificate or no broker answering within
        // `kafka.connect-timeout-secs` ends the command in one sentence naming the brokers,
        // instead of its own retries running out; a command that needs no broker isn't held
        // up by one that doesn't answer.
        let refused = async {
            match orderflow_runtime::kafka::check_connection_within(&config.kafka).await {
                Err(error) => error,
                Ok(()) => std::future::pending().await,
            }
        };
        tokio::select! {
            outcome = outcome => outcome.unwrap_or_else(|_| {
                Err(RuntimeError::Fatal("the command stopped without an outcome".into()).into())
            }),
            error = refused => Err(error.into()),
        }
    });
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| RuntimeError::Fatal(format!("starting the async runtime: {error}")))
}

async fn run_command(config: &Config, command: Command) -> Result<(), OpsError> {
    let config = config.clone();
    let zone = config.display.time_zone;
    {
        match command {
            Command::Topics {
                action: TopicsAction::Create,
            } => Ok(commands::topics_create(&config).await?),
            Command::Topics {
                action: TopicsAction::Check,
            } => commands::topics_check(&config).await,
            Command::Replay {
                into,
                verify,
                store,
                json,
            } => replay(&config, into, verify, store, json).await,
            Command::Feed { file } => {
                let text = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())
                } else {
                    std::fs::read_to_string(&file)
                }
                .map_err(|error| {
                    OpsError::Usage(format!("feed file {}: {error}", file.display()))
                })?;
                let sent = commands::feed(&config, &text).await?;
                crate::outln!("fed {sent} records");
                Ok(())
            }
            Command::Status { json } => {
                let summary = commands::summary(&config).await?;
                if json {
                    print_json(&summary, zone)
                } else {
                    print_summary(&summary);
                    Ok(())
                }
            }
            Command::Simulate(args) => simulate(&config, args).await,
            Command::Bench {
                action: BenchAction::Relay { count },
            } => print_json(&crate::bench::relay(&config, count).await?, zone),
            Command::Bench {
                action: BenchAction::ReadLog,
            } => print_json(&crate::bench::read_log(&config).await?, zone),
            Command::Bench {
                action: BenchAction::Hops { skip_seconds },
            } => print_json(
                &crate::bench::hops(&config, std::time::Duration::from_secs(skip_seconds)).await?,
                zone,
            ),
            Command::Bench {
                action: BenchAction::Records,
            } => print_json(&crate::bench::records(&config).await?, zone),
            Command::Choose { token, choice } => choose(&config, &token, &choice).await,
            Command::Exceptions { since, now, json } => {
                exceptions(&config, since.as_deref(), now.as_deref(), json).await
            }
            Command::Report(args) => crate::kpi_report::run(&config, args).await,
            Command::Dlq { action } => crate::dlq::run(&config, action).await,
            Command::Tail(args) => crate::tail::run(&config, args).await,
            // Printed above, before the broker is reached.
            Command::Metrics | Command::Config { .. } => Ok(()),
            Command::Inspect { order_id, json } => {
                let order_id: OrderId = order_id
                    .parse()
                    .map_err(|error| OpsError::Usage(format!("order id: {error}")))?;
                let inspection = commands::inspect(&config, &order_id).await?;
                if inspection.timeline.is_empty() {
                    return Err(OpsError::NotFound(format!(
                        "order {order_id} has no events in the log"
                    )));
                }
                print_inspection(&inspection, json, zone)
            }
        }
    }
}

async fn replay(
    config: &Config,
    into: Option<PathBuf>,
    verify: bool,
    store: Option<PathBuf>,
    json: bool,
) -> Result<(), OpsError> {
    let scratch = tempdir_or(into)?;
    if verify {
        let live_dir = store.unwrap_or_else(|| state::store_dir(config, "0"));
        let (replayed, live) = commands::verify(config, &live_dir, scratch.path()).await?;
        let differing: Vec<i32> = live
            .iter()
            .zip(&replayed.partitions)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.partition)
            .collect();
        if json {
            print_json(
                &serde_json::json!({"replay": replayed, "live": live, "differing_partitions": differing}),
                config.display.time_zone,
            )?;
        } else {
            print_digests("replayed", &replayed.partitions);
            print_digests("live", &live);
            crate::outln!(
                "replayed {} events in {:.2}s",
                replayed.events,
                replayed.seconds
            );
        }
        // With --json the verdict goes to stderr, so stdout stays one JSON document.
        let verdict = |line: String| {
            if json {
                eprintln!("{line}");
            } else {
                crate::outln!("{line}");
            }
        };
        if live.is_empty() {
            // A state consumer that never folded an event has no partition to compare.
            verdict(format!(
                "verify: OK, nothing to compare: {} holds no partition yet (its state consumer \
                 has folded no event); 0 partitions, equal",
                live_dir.display()
            ));
            Ok(())
        } else if differing.is_empty() && live.len() == replayed.partitions.len() {
            verdict(format!(
                "verify: OK, live store equals the replay of the log ({})",
                replayed.digest
            ));
            Ok(())
        } else {
            Err(OpsError::VerificationFailed(format!(
                "verify: live store differs from the replay of the log in partitions {differing:?}"
            )))
        }
    } else {
        let report = commands::replay(
            config,
            scratch.path(),
            Until::End {
                quiet: commands::END_QUIET,
            },
        )
        .await?;
        if json {
            print_json(&report, config.display.time_zone)?;
        } else {
            print_digests("replayed", &report.partitions);
            crate::outln!(
                "replayed {} events in {:.2}s ({:.0} events/s) into {}",
                report.events,
                report.seconds,
                report.events as f64 / report.seconds.max(1e-9),
                scratch.path().display()
            );
            crate::outln!("digest {}", report.digest);
        }
        Ok(())
    }
}

/// A fresh directory: the one given, or a temporary one that is removed afterwards.
enum Scratch {
    Given(PathBuf),
    Temporary(tempfile::TempDir),
}

impl Scratch {
    fn path(&self) -> &std::path::Path {
        match self {
            Scratch::Given(path) => path,
            Scratch::Temporary(dir) => dir.path(),
        }
    }
}

fn tempdir_or(into: Option<PathBuf>) -> Result<Scratch, RuntimeError> {
    match into {
        Some(path) => Ok(Scratch::Given(path)),
        None => tempfile::tempdir()
            .map(Scratch::Temporary)
            .map_err(|error| {
                RuntimeError::Fatal(format!("creating a temporary directory: {error}"))
            }),
    }
}

fn print_digests(label: &str, lines: &[commands::DigestLine]) {
    for line in lines {
        crate::outln!(
            "{label:>8} partition {:>3}  offset {:>9}  entities {:>7}  sha256 {}",
            line.partition,
            line.checkpoint,
            line.entities,
            line.sha256
        );
    }
}

async fn simulate(config: &Config, args: SimulateArgs) -> Result<(), OpsError> {
    let mut mix: orderflow_sim::Mix = match &args.mix {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                OpsError::Usage(format!("mix file {}: {error}", path.display()))
            })?;
            toml::from_str(&text).map_err(|error: toml::de::Error| {
                OpsError::Usage(format!(
                    "mix file {}: {}",
                    path.display(),
                    error.message().trim_end()
                ))
            })?
        }
        None => orderflow_sim::Mix::default(),
    };
    mix.orders = args.orders;
    mix.seed = args.seed;
    mix.tag = args
        .tag
        .unwrap_or_else(|| format!("SIM{}", chrono::Utc::now().timestamp()));
    let overrides = [
        (args.duplicate_share, &mut mix.duplicate_share),
        (args.out_of_order_share, &mut mix.out_of_order_share),
        (args.late_share, &mut mix.late_share),
        (args.malformed_share, &mut mix.malformed_share),
    ];
    for (given, field) in overrides {
        if let Some(share) = given {
            *field = share;
        }
    }
    let report = crate::simulate::simulate(
        config,
        crate::simulate::Options {
            mix,
            rate: Some(args.rate).filter(|rate| *rate > 0),
            settle_timeout: std::time::Duration::from_secs(args.settle_timeout),
            warmup: std::time::Duration::try_from_secs_f64(args.warmup).map_err(|_| {
                OpsError::Usage(format!(
                    "--warmup {} is not a number of seconds; expected 0 or more",
                    args.warmup
                ))
            })?,
            platform_listen: args.platform_listen,
        },
    )
    .await?;
    if args.json {
        print_json(&report, config.display.time_zone)?;
    } else {
        let l = &report.latency_ms;
        crate::outln!(
            "simulated {} orders (seed {}, tag {}): {} records sent in {:.1}s ({} duplicates, {} malformed)",
            report.orders, report.seed, report.tag, report.records_sent, report.send_seconds,
            report.duplicates_sent, report.malformed_sent
        );
        crate::outln!(
            "pipeline: {} facts reflected on order-state at {:.0} events/s; {} not reflected",
            report.facts - report.facts_not_reflected,
            report.pipeline_events_per_second,
            report.facts_not_reflected
        );
        crate::outln!(
            "end-to-end latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (n={})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.count
        );
        for (channel, l) in &report.latency_ms_by_channel {
            crate::outln!(
                "  {channel:<8} p50 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                l.p50,
                l.p99,
                l.max,
                l.count
            );
        }
        if report.warmup_seconds > 0.0 {
            let l = &report.warmup_latency_ms;
            crate::outln!(
                "  warm-up, the first {:.1}s (not in the figures above): p50 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                report.warmup_seconds, l.p50, l.p99, l.max, l.count
            );
        }
        if let Some(sync) = &report.sync {
            let l = &sync.latency_ms;
            crate::outln!(
                "sync latency ms (fact sent -> platform acknowledged): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (n={}; {} calls, {} repeated keys, {} not from this run's facts)",
                l.p50, l.p90, l.p99, l.max, l.count, sync.calls, sync.duplicates, sync.unmatched
            );
            for (channel, l) in &sync.latency_ms_by_channel {
                crate::outln!(
                    "  {channel:<8} p50 {:.1}  p99 {:.1}  max {:.1}  (n={})",
                    l.p50,
                    l.p99,
                    l.max,
                    l.count
                );
            }
        }
        let v = &report.verdict;
        crate::outln!(
            "verification: {} orders, {} lost, {} duplicated, {} wrong; dead letters {} of {} malformed sent",
            v.orders, v.lost, v.duplicated, v.wrong, report.dead_letters, report.malformed_sent
        );
        for example in &v.examples {
            crate::outln!("  {example}");
        }
    }
    report.verified()
}

async fn choose(config: &Config, token: &str, choice: &str) -> Result<(), OpsError> {
    let settings = orderflow_outbound::config::NotifySettings::from_config(config)?;
    let Some(sms) = settings.sms else {
        return Err(OpsError::Usage(
            "notify.sms is not configured: there is no link secret to check the token with".into(),
        ));
    };
    let now = Clock::from_config(config).now()?;
    let (key, record) =
        orderflow_outbound::sms::choice_record(&sms.link_secret, token, choice, now)
            .map_err(|error| OpsError::Usage(format!("token: {error}")))?;
    let topics = orderflow_runtime::kafka::Topics::new(&config.kafka.topic_prefix);
    let producer = orderflow_runtime::kafka::producer(&config.kafka)?;
    let output = orderflow_runtime::output::Output {
        topic: topics.name("in.actions"),
        key: key.into_bytes(),
        payload: record.to_string().into_bytes(),
        headers: Vec::new(),
    };
    orderflow_runtime::output::deliver(&producer, &[output]).await?;
    crate::outln!(
        "customer_choice {choice} sent for {}:{}",
        record["channel"].as_str().unwrap_or_default(),
        record["platform_order_id"].as_str().unwrap_or_default()
    );
    Ok(())
}

async fn exceptions(
    config: &Config,
    since: Option<&str>,
    now: Option<&str>,
    json: bool,
) -> Result<(), OpsError> {
    use crate::report::{parse_instant, parse_since, render_text, ExceptionLedger};
    use rdkafka::Message;
    let now = match now {
        Some(text) => parse_instant(text).map_err(|e| OpsError::Usage(format!("--now: {e}")))?,
        // The state consumer's time, so a drill that moved the clock file forward sees the
        // ages and escalations the consumer acted on.
        None => Clock::from_config(config).now()?,
    };
    let since = since
        .map(|text| parse_since(text, now))
        .transpose()
        .map_err(|error| OpsError::Usage(format!("--since: {error}")))?;
    let topic = orderflow_runtime::kafka::Topics::new(&config.kafka.topic_prefix).exceptions();
    let mut ledger = ExceptionLedger::default();
    let until = Until::End {
        quiet: commands::END_QUIET,
    };
    orderflow_runtime::logread::read_topic(&config.kafka, &topic, until, |message| {
        ledger.apply_payload(message.payload());
        Ok(())
    })
    .await?;
    let report = ledger.report(now, since);
    if report.unreadable_records > 0 {
        eprintln!(
            "warning: {} records on {topic} are not exception changes and were left out",
            report.unreadable_records
        );
    }
    if json {
        print_json(&report, config.display.time_zone)
    } else {
        crate::out!("{}", render_text(&report, config.display.time_zone));
        Ok(())
    }
}

fn print_summary(summary: &commands::Summary) {
    crate::outln!(
        "{:<34} {:<22} {:>8} {:>10} {:>10}  open exceptions",
        "order",
        "status",
        "version",
        "total_fen",
        "paid_fen"
    );
    for (order_id, state) in &summary.orders {
        let open: Vec<&str> = state
            .open_exceptions
            .iter()
            .map(|e| e.code.as_str())
            .collect();
        let total = state
            .total_fen
            .map_or_else(|| "-".to_string(), |n| n.to_string());
        crate::outln!(
            "{:<34} {:<22} {:>8} {:>10} {:>10}  {}",
            order_id,
            state.status.as_str(),
            state.version,
            total,
            state.paid_fen,
            open.join(", ")
        );
    }
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for state in summary.orders.values() {
        *by_status.entry(state.status.as_str()).or_insert(0) += 1;
    }
    crate::outln!("orders by status: {by_status:?}");
    crate::outln!(
        "exceptions raised: {:?} ({} still open)",
        summary.exceptions_raised,
        summary.exceptions_open
    );
    crate::outln!(
        "dead letters: {} {:?}",
        summary.dead_letters.values().sum::<u64>(),
        summary.dead_letters
    );
}

/// Prints `value` as pretty JSON, its times in the display zone.
fn print_json(value: &impl serde::Serialize, zone: chrono_tz::Tz) -> Result<(), OpsError> {
    crate::outln!("{}", local_json(value, zone)?);
    Ok(())
}

fn local_json(value: &impl serde::Serialize, zone: chrono_tz::Tz) -> Result<String, RuntimeError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| RuntimeError::Fatal(format!("encoding output: {error}")))?;
    Ok(display::localize_json(&text, zone))
}

fn print_inspection(
    inspection: &commands::Inspection,
    json: bool,
    zone: chrono_tz::Tz,
) -> Result<(), OpsError> {
    if json {
        return print_json(inspection, zone);
    }
    crate::outln!("order {}", inspection.order_id);
    crate::outln!(
        "timeline ({} events in the log):",
        inspection.timeline.len()
    );
    let ignored = |event: &orderflow_domain::Event| {
        inspection
            .state
            .iter()
            .flat_map(|state| &state.ignored)
            .find(|ignored| ignored.event_id == event.event_id)
            .map(|ignored| format!("  (did not apply: {})", ignored.reason))
    };
    for entry in &inspection.timeline {
        let event = &entry.event;
        let source = match (event.source.partition, event.source.offset) {
            (Some(p), Some(o)) => format!("{}[{p}]@{o}", event.source.origin),
            _ => event.source.origin.clone(),
        };
        let note = if entry.counted {
            ignored(event).unwrap_or_default()
        } else {
            "  (duplicate, ignored)".to_string()
        };
        crate::outln!(
            "  {}  {:<28} {}{}\n      source {}  log[{}]@{}  id {}",
            display::local(event.occurred_at, zone),
            event.body.kind(),
            event.body.describe(),
            note,
            source,
            entry.partition,
            entry.offset,
            event.event_id
        );
    }
    if let Some(state) = &inspection.state {
        crate::outln!("current state:");
        crate::outln!("{}", local_json(&state.snapshot(), zone)?);
    }
    Ok(())
}
