//! The analytics projection end to end (issue 16) on a real broker with the real binaries: a
//! simulated shop history goes through the whole pipeline into `orderflow-analytics`, whose
//! KPIs must equal the ones computed from the simulation's own bookkeeping; `orderflow report`
//! says the same; the flat `order-facts` topic and the daily digest are published; and a
//! rebuild of the store from offset 0 has the live store's digest.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use orderflow_analytics::synth::{self, expected_kpis, HistoryMix};
use serde_json::Value;
use support::Harness;

fn mix() -> HistoryMix {
    HistoryMix {
        days: 10,
        orders_per_day: 14,
        customers: 60,
        stock_levels: false,
        exception_share: 0.0,
        // The harness's clock starts on 2026-11-25T00:00Z, 08:00 in Shanghai: every payment
        // timeout of the history is due.
        end_day: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
        tag: "AN".into(),
        ..HistoryMix::default()
    }
}

fn analytics_command(harness: &Harness, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow-analytics"));
    command
        .args(args)
        .env("ORDERFLOW_BROKERS", &harness.brokers)
        .env("ORDERFLOW_TOPIC_PREFIX", &harness.prefix)
        .env("ORDERFLOW_PARTITIONS", support::PARTITIONS.to_string())
        .env("ORDERFLOW_DATA_DIR", harness.data_dir())
        .env("ORDERFLOW_CLOCK_FILE", harness.clock_file())
        .env(
            "ORDERFLOW_CONFIG",
            harness.data_dir().join("analytics.toml"),
        )
        .env_remove("ORDERFLOW_RULES")
        .env("RUST_LOG", "info");
    command
}

/// `orderflow-analytics` as a child process, killed if the test fails.
struct Proc(std::process::Child);

impl Proc {
    /// SIGTERM, then its exit status (a drain and a commit take a few seconds at most).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "orderflow-analytics did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `orderflow-analytics` and returns it with its dashboard's base URL.
async fn start_analytics(harness: &Harness) -> (Proc, String) {
    std::fs::write(
        harness.data_dir().join("analytics.toml"),
        "[analytics]\nlisten = \"127.0.0.1:0\"\norder-facts = true\ndigest-at = \"00:00\"\nweb-dir = \"web/dashboard\"\n",
    )
    .unwrap();
    let logs = harness.data_dir().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = std::fs::File::create(logs.join("orderflow-analytics-0.log")).unwrap();
    let child = analytics_command(harness, &[])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let process = Proc(child);
    let url = harness
        .wait_for(
            "the dashboard's address in the log",
            Duration::from_secs(30),
            || async {
                harness
                    .log_of("orderflow-analytics-0")
                    .lines()
                    .find_map(|line| {
                        line.strip_prefix("dashboard: ")
                            .map(|u| u.trim().to_string())
                    })
            },
        )
        .await;
    (process, url)
}

async fn get_json(url: &str) -> Option<Value> {
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_str(&response.text().await.ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kpis_of_a_history_fed_through_the_pipeline_equal_the_simulations_own() {
    let harness = Harness::new("analytics");
    let mix = mix();
    let history = synth::history(&mix);
    let mut pipeline = harness.start_pipeline();
    let (mut analytics, url) = start_analytics(&harness).await;

    for record in &history.inputs {
        harness
            .produce(
                record.topic.name(),
                &record.key,
                record.value.to_string().as_bytes(),
            )
            .await;
    }

    let last = mix.end_day - chrono::Duration::days(1);
    let first = mix.end_day - chrono::Duration::days(i64::from(mix.days));
    let want = expected_kpis(&history.truth, first, last);
    let query = format!("{url}api/overview?from={first}&to={last}");
    // An order the pipeline learns of late times out 30 minutes after it became known (the
    // clock's time): once every order is in, move the clock past that.
    harness
        .wait_for(
            "every order on the dashboard",
            Duration::from_secs(120),
            || async {
                let overview = get_json(&query).await?;
                (overview["kpis"]["orders"] == want.orders
                    && overview["kpis"]["paid_orders"] == want.paid_orders)
                    .then_some(())
            },
        )
        .await;
    harness.set_clock("2026-11-25T02:00:00Z");
    let fields = [
        "orders",
        "cancelled",
        "valid_orders",
        "gmv_fen",
        "aov_fen",
        "paid_orders",
        "shipped",
        "returned",
        "buyers",
        "repeat_buyers",
        "new_customers",
    ];
    let expected: BTreeMap<&str, Value> = {
        let value = serde_json::to_value(&want).unwrap();
        fields.iter().map(|f| (*f, value[*f].clone())).collect()
    };
    let last_seen = std::sync::Mutex::new(String::new());
    let got = harness
        .wait_for(
            &format!("the dashboard's KPIs to equal {expected:?}"),
            Duration::from_secs(180),
            || async {
                let overview = get_json(&query).await?;
                let got: BTreeMap<&str, Value> = fields
                    .iter()
                    .map(|f| (*f, overview["kpis"][*f].clone()))
                    .collect();
                let shown = format!("{got:?}");
                let mut last = last_seen.lock().unwrap();
                if *last != shown {
                    // Printed with the failure: how far the dashboard got.
                    eprintln!("dashboard KPIs: {shown}");
                    *last = shown;
                }
                (got == expected).then_some(overview)
            },
        )
        .await;
    assert!(
        want.cancelled > 0 && want.returned > 0 && want.repeat_buyers > 0,
        "{want:?}"
    );
    assert_eq!(got["zone"], "Asia/Shanghai");

    // The page and the cards' endpoints answer.
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(page.contains("订单分析看板"));
    for endpoint in [
        "funnel",
        "stuck",
        "exceptions",
        "sync-latency",
        "returns",
        "rfm",
        "forecast",
        "trend?by=channel",
    ] {
        let answer = get_json(&format!("{url}api/{endpoint}")).await;
        assert!(answer.is_some(), "/api/{endpoint} did not answer");
    }
    let csv = reqwest::get(format!("{url}api/rfm/customers.csv"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.lines().count() as i64 > want.buyers / 2, "{csv}");

    // The daily digest (digest-at 00:00, the clock is past it) is published for 2026-11-24.
    let digest = harness
        .wait_for(
            "the KPI digest on notifications",
            Duration::from_secs(60),
            || async {
                harness
                    .read("notifications")
                    .await
                    .into_iter()
                    .map(|r| r.notification())
                    .find(|n| n.kind == "kpi_digest")
            },
        )
        .await;
    assert!(digest.message.contains("2026-11-24"), "{}", digest.message);

    // Stop feeding the topics, let the projection read to their end, then stop it.
    for process in &mut pipeline {
        process.terminate();
    }
    let mut ends: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for topic in ["order-events", "exceptions", "order-state"] {
        let full = harness.topic(topic);
        for record in harness.read(topic).await {
            let next = ends
                .entry(full.clone())
                .or_default()
                .entry(record.partition.to_string())
                .or_default();
            *next = (*next).max(record.offset + 1);
        }
    }
    let expected_checkpoints = serde_json::to_value(&ends).unwrap();
    harness
        .wait_for(
            "the projection to have folded every topic to its end",
            Duration::from_secs(60),
            || async {
                let status = get_json(&format!("{url}api/status")).await?;
                (status["checkpoints"] == expected_checkpoints).then_some(())
            },
        )
        .await;
    assert!(analytics.terminate().success());

    // The rebuild from offset 0 equals the live store.
    let store = harness.data_dir().join("orderflow-analytics-0");
    let live = analytics_command(
        &harness,
        &["digest", "--store", store.to_str().unwrap(), "--json"],
    )
    .output()
    .unwrap();
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    let replayed = analytics_command(&harness, &["replay", "--json"])
        .output()
        .unwrap();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let live: Value = serde_json::from_slice(&live.stdout).unwrap();
    let replayed: Value = serde_json::from_slice(&replayed.stdout).unwrap();
    assert_eq!(
        live["digest"], replayed["digest"],
        "live {live}\nreplayed {replayed}"
    );

    // `orderflow report` folds the topics itself and says the same.
    let report = harness.cli(&[
        "report",
        "--from",
        &first.to_string(),
        "--to",
        &last.to_string(),
        "--format",
        "json",
    ]);
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    for field in fields {
        assert_eq!(report["kpis"][field], expected[field], "report {field}");
    }
    assert!(report["exceptions"]["by_kind"].is_object());

    // order-facts: the latest version of every placed order, in the shape ClickHouse reads.
    let mut facts: BTreeMap<String, Value> = BTreeMap::new();
    for record in harness.read("order-facts").await {
        let fact: Value = serde_json::from_slice(&record.payload).unwrap();
        let id = fact["order_id"].as_str().unwrap().to_string();
        let newer = facts
            .get(&id)
            .is_none_or(|held| held["version"].as_i64() <= fact["version"].as_i64());
        if newer {
            facts.insert(id, fact);
        }
    }
    assert_eq!(facts.len(), history.truth.len());
    let gmv: i64 = facts
        .values()
        .filter(|f| f["is_cancelled"] == 0)
        .map(|f| f["total_fen"].as_i64().unwrap())
        .sum();
    assert_eq!(Value::from(gmv), expected["gmv_fen"]);
}
