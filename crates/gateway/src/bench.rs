//! `orderflow-gateway bench`: ingestion latency and throughput through a running gateway, and
//! the same records produced directly to the broker (the runtime's producer, `acks=all`), so
//! the gateway's cost is the ratio of the two, measured in one run against one broker.
//!
//! Each request is one `order_placed` with a fresh order id, signed like an adapter signs it.
//! At a fixed `--rate`, latency runs from the moment a request was due, not when it went out,
//! so a stall shows in the figures instead of hiding (no coordinated omission); `--rate 0` is
//! flat out with `--concurrency` requests in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use orderflow_runtime::config::Config;
use orderflow_runtime::output::{deliver, Output};
use orderflow_runtime::RuntimeError;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Produce the records straight to `in.orders` instead (the baseline).
    #[arg(long)]
    pub direct: bool,
    /// The signing credential's id.
    #[arg(long, default_value = "bench")]
    pub credential: String,
    /// The environment variable holding its secret.
    #[arg(long, default_value = "ORDERFLOW_BENCH_SECRET")]
    pub secret_env: String,
    /// Requests to send.
    #[arg(long, default_value_t = 5_000)]
    pub requests: usize,
    /// Requests per second; 0 sends flat out.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub mode: &'static str,
    pub requests: usize,
    pub accepted: usize,
    pub failed: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rate: u64,
    pub concurrency: usize,
}

fn record(run: &str, index: usize) -> serde_json::Value {
    json!({
        "kind": "order_placed", "channel": "web", "platform_order_id": format!("BENCH-{run}-{index}"),
        "occurred_at": chrono::Utc::now().to_rfc3339(), "buyer_id": format!("bench-buyer-{}", index % 997),
        "phone": "13800138000",
        "address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "文三路 478 号"},
        "lines": [{"sku": "SKU-TEA", "category": "tea", "qty": 2, "unit_price_fen": 16800},
                  {"sku": "SKU-CUP", "category": "tableware", "qty": 1, "unit_price_fen": 5900}],
        "discount_fen": 2000, "shipping_fen": 800, "total_fen": 38300, "payment_method": "alipay"
    })
}

enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        credential: String,
        secret: Vec<u8>,
    },
    Direct {
        producer: rdkafka::producer::FutureProducer,
        topic: String,
    },
}

impl Sender {
    async fn send(&self, body: Vec<u8>, key: String) -> bool {
        match self {
            Sender::Http {
                client,
                url,
                credential,
                secret,
            } => {
                let path = "/v1/inputs/orders";
                let timestamp = chrono::Utc::now().timestamp();
                let signature = crate::auth::signature(secret, timestamp, "POST", path, &body);
                client
                    .post(format!("{url}{path}"))
                    .header("content-type", "application/json")
                    .header(crate::auth::KEY_HEADER, credential)
                    .header(crate::auth::TIMESTAMP_HEADER, timestamp.to_string())
                    .header(crate::auth::SIGNATURE_HEADER, signature)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|response| response.status() == reqwest::StatusCode::ACCEPTED)
            }
            Sender::Direct { producer, topic } => {
                let output = Output {
                    topic: topic.clone(),
                    key: key.into_bytes(),
                    payload: body,
                    headers: Vec::new(),
                };
                deliver(producer, std::slice::from_ref(&output))
                    .await
                    .is_ok()
            }
        }
    }
}

pub async fn run(config: &Config, args: BenchArgs) -> Result<(), RuntimeError> {
    let sender = if args.direct {
        Sender::Direct {
            producer: orderflow_runtime::kafka::producer(&config.kafka)?,
            topic: orderflow_runtime::kafka::Topics::new(&config.kafka.topic_prefix)
                .name("in.orders"),
        }
    } else {
        let secret = std::env::var(&args.secret_env).map_err(|_| {
            RuntimeError::Config(format!("--secret-env {} is not set", args.secret_env))
        })?;
        Sender::Http {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(args.concurrency)
                .build()
                .map_err(|error| {
                    RuntimeError::Fatal(format!("building the HTTP client: {error}"))
                })?,
            url: args.url.trim_end_matches('/').to_string(),
            credential: args.credential.clone(),
            secret: secret.trim().as_bytes().to_vec(),
        }
    };
    // One request before the clock starts: the producer's metadata and id, or the connection
    // to the gateway, are not what is measured.
    let warmup = serde_json::to_vec(&record("warmup", 0)).unwrap_or_default();
    if !sender.send(warmup, "BENCH-warmup-0".into()).await {
        return Err(RuntimeError::Fatal("the warm-up request failed".into()));
    }
    let report = measure(Arc::new(sender), &args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "{mode}: {accepted}/{requests} accepted in {seconds:.1} s = {rps:.0}/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms ({pace}, {concurrency} in flight)",
            mode = report.mode,
            accepted = report.accepted,
            requests = report.requests,
            seconds = report.seconds,
            rps = report.per_second,
            p50 = report.p50_ms,
            p99 = report.p99_ms,
            max = report.max_ms,
            pace = if report.rate == 0 { "flat out".to_string() } else { format!("{}/s", report.rate) },
            concurrency = report.concurrency,
        );
    }
    if report.failed > 0 {
        return Err(RuntimeError::Fatal(format!(
            "{} requests failed",
            report.failed
        )));
    }
    Ok(())
}

async fn measure(sender: Arc<Sender>, args: &BenchArgs) -> Result<BenchReport, RuntimeError> {
    let run = format!("{:08x}", rand::random::<u32>());
    let histogram = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
            .map_err(|error| RuntimeError::Fatal(format!("histogram: {error}")))?,
    ));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let interval = (args.rate > 0).then(|| Duration::from_secs_f64(1.0 / args.rate as f64));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (sender, histogram, next, failed, run) = (
            sender.clone(),
            histogram.clone(),
            next.clone(),
            failed.clone(),
            run.clone(),
        );
        let requests = args.requests;
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= requests {
                    return;
                }
                // When this request is due: at a fixed rate, its slot; flat out, now.
                let due = match interval {
                    Some(every) => {
                        let due = started + every.mul_f64(index as f64);
                        tokio::time::sleep_until(due.into()).await;
                        due
                    }
                    None => Instant::now(),
                };
                let body = serde_json::to_vec(&record(&run, index)).unwrap_or_default();
                let ok = sender.send(body, format!("BENCH-{run}-{index}")).await;
                let micros = u64::try_from(due.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                if ok {
                    let _ = histogram.lock().await.record(micros);
                } else {
                    failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let histogram = histogram.lock().await;
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1_000.0;
    let failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    let accepted = args.requests - failed;
    Ok(BenchReport {
        mode: if args.direct { "direct" } else { "gateway" },
        requests: args.requests,
        accepted,
        failed,
        seconds,
        per_second: accepted as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1_000.0,
        rate: args.rate,
        concurrency: args.concurrency,
    })
}
