//! The integration-test harness: a real Kafka-protocol broker (the one named by
//! `ORDERFLOW_BROKERS`, else the local Apache Kafka that `scripts/kafka.sh ensure` starts once
//! for the whole run), a unique topic prefix per test, and the real binaries as processes.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use orderflow_domain::{
    Event, ExceptionChange, Notification, OrderSnapshot, RoutingInstruction, Status,
};
use orderflow_runtime::config::KafkaConfig;
use orderflow_runtime::logread::{read_topic, Until};
use orderflow_schema::headers;
use orderflow_schema::log::decode_log_record;
use orderflow_schema::output::{
    ExceptionChangeRecord, NotificationRecord, OrderStateRecord, OutputError, RoutingRecord,
    Versioned,
};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde_json::Value;

pub const PARTITIONS: i32 = 3;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn brokers() -> String {
    if let Ok(brokers) = std::env::var("ORDERFLOW_BROKERS") {
        return brokers;
    }
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/kafka.sh"))
        .arg("ensure")
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/kafka.sh ensure runs");
    assert!(output.status.success(), "scripts/kafka.sh ensure failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The Kafka client settings of the environment the tests run in: the security settings of a
/// secured broker (`ORDERFLOW_KAFKA_CLIENT__SECURITY_PROTOCOL`, ...), which the spawned binaries
/// inherit too.
pub fn environment_kafka() -> KafkaConfig {
    orderflow_runtime::config::Config::load(None)
        .expect("the ORDERFLOW_ environment of the test run is a valid configuration")
        .kafka
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// The value read as the type its topic carries, the way every reader in the repository reads
/// it; a record that doesn't read fails the test with where it was and what it held.
impl Record {
    /// An `order-state` value.
    pub fn order_state(&self) -> OrderSnapshot {
        self.output("an order-state snapshot", OrderStateRecord::from_json)
    }

    /// An `exceptions` value.
    pub fn exception_change(&self) -> ExceptionChange {
        self.output("an exception change", ExceptionChangeRecord::from_json)
    }

    /// A `notifications` value.
    pub fn notification(&self) -> Notification {
        self.output("a notification", NotificationRecord::from_json)
    }

    /// A `warehouse-routing` value.
    pub fn routing(&self) -> RoutingInstruction {
        self.output("a routing instruction", RoutingRecord::from_json)
    }

    /// The events of an `order-events` record, read as the state consumer reads the log (by
    /// its `content-type`).
    pub fn log_events(&self) -> Vec<Event> {
        let content_type = self
            .headers
            .get(headers::CONTENT_TYPE)
            .map(String::as_bytes);
        decode_log_record(&self.payload, content_type)
            .unwrap_or_else(|error| self.unreadable("a log record", error))
    }

    fn output<T>(&self, what: &str, read: fn(&[u8]) -> Result<Versioned<T>, OutputError>) -> T {
        read(&self.payload)
            .map(|versioned| versioned.record)
            .unwrap_or_else(|error| self.unreadable(what, error))
    }

    fn unreadable(&self, what: &str, error: impl std::fmt::Display) -> ! {
        panic!(
            "{} partition {} offset {} is not {what}: {error}\n{}",
            self.topic,
            self.partition,
            self.offset,
            String::from_utf8_lossy(&self.payload)
        )
    }
}

pub struct Harness {
    pub brokers: String,
    pub prefix: String,
    pub dir: tempfile::TempDir,
    kafka: KafkaConfig,
    producer: FutureProducer,
}

/// Where every test's clock starts: the day the simulator's journeys and the input builders
/// are set on, so no payment timeout or SLA is due until a test moves the clock.
pub const CLOCK_START: &str = "2026-11-25T00:00:00Z";

impl Harness {
    /// A fresh namespace on the broker, with every topic created by the real CLI.
    pub fn new(test: &str) -> Harness {
        Harness::on(test, brokers())
    }

    /// [`Harness::new`] on the broker at `brokers` (a test's own broker).
    pub fn on(test: &str, brokers: String) -> Harness {
        let unique = format!(
            "{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            chrono::Utc::now().timestamp_millis() % 1_000_000
        );
        let prefix = format!("t.{test}.{unique}.");
        let dir = tempfile::tempdir().unwrap();
        let kafka = KafkaConfig {
            brokers: brokers.clone(),
            topic_prefix: prefix.clone(),
            partitions: PARTITIONS,
            ..environment_kafka()
        };
        let producer = orderflow_runtime::kafka::client_config(&kafka)
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap();
        let harness = Harness {
            brokers,
            prefix,
            dir,
            kafka,
            producer,
        };
        harness.set_clock(CLOCK_START);
        let created = harness.cli(&["topics", "create"]);
        assert!(
            created.status.success(),
            "topics create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        harness
    }

    /// The settings of a client of the test's broker (its security settings included), for a
    /// test's own producer or consumer.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        orderflow_runtime::kafka::client_config(&self.kafka)
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The state consumers' clock: a file the test moves forward instead of waiting.
    pub fn clock_file(&self) -> std::path::PathBuf {
        self.dir.path().join("clock")
    }

    /// Sets the consumers' clock (RFC 3339); it takes effect at their next tick.
    pub fn set_clock(&self, now: &str) {
        replace_file(&self.clock_file(), now);
    }

    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .env("ORDERFLOW_BROKERS", &self.brokers)
            .env("ORDERFLOW_TOPIC_PREFIX", &self.prefix)
            .env("ORDERFLOW_PARTITIONS", PARTITIONS.to_string())
            .env("ORDERFLOW_DATA_DIR", self.dir.path())
            .env("ORDERFLOW_CLOCK_FILE", self.clock_file())
            .env("ORDERFLOW_TICK_MS", "100")
            // The simulator sends whole journeys at once, dated up to a week and more ahead of
            // the clock, and the fixtures' journeys run into the days after 2026-11-25: the
            // intakes take them (tests/bounds.rs checks the 300 s default on its own).
            .env("ORDERFLOW_MAX_FUTURE_SKEW_SECS", "2592000")
            .env_remove("ORDERFLOW_RULES")
            .env_remove("ORDERFLOW_CONFIG")
            .env("RUST_LOG", "info");
        command
    }

    /// The rules file the state consumers read when a test has written one.
    pub fn rules_file(&self) -> std::path::PathBuf {
        self.dir.path().join("rules.toml")
    }

    /// Writes the rules file (replacing it in one step, as a deploy would); consumers started
    /// afterwards use it, running ones re-read it at their next tick.
    pub fn write_rules(&self, text: &str) {
        replace_file(&self.rules_file(), text);
    }

    /// Waits until a line of a consumer's log (`orderflow-state-0`) contains every needle.
    pub async fn wait_for_log_line(&self, process: &str, needles: &[&str]) -> String {
        self.wait_for(
            &format!("{needles:?} in the log of {process}"),
            Duration::from_secs(30),
            || async {
                self.log_of(process)
                    .lines()
                    .find(|line| needles.iter().all(|needle| line.contains(needle)))
                    .map(str::to_string)
            },
        )
        .await
    }

    /// Runs `orderflow replay --verify` against a stopped state consumer's store and fails the
    /// test unless the live state equals a replay of the log, partition by partition.
    pub fn assert_replay_verifies(&self, instance: &str) {
        let store = self.dir.path().join(format!("orderflow-state-{instance}"));
        let verify = self.cli(&["replay", "--verify", "--store", store.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&verify.stdout);
        assert!(
            verify.status.success() && stdout.contains("verify: OK"),
            "replay --verify failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }

    /// Lines of a consumer's log (`orderflow-state-0`).
    pub fn log_of(&self, process: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("logs/{process}.log")))
            .unwrap_or_default()
    }

    /// Runs the operator CLI to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_orderflow"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts the operator CLI in the background, its output piped (`wait_with_output`).
    pub fn cli_spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(env!("CARGO_BIN_EXE_orderflow"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Starts a consumer binary (`orderflow-state`, `orderflow-payments`, ...).
    pub fn spawn(&self, name: &str, instance: &str) -> Proc {
        self.spawn_with(name, instance, &[])
    }

    /// [`Harness::spawn`] with more environment variables (the gateway's listen address and
    /// credentials file, ...).
    pub fn spawn_with(&self, name: &str, instance: &str, env: &[(&str, &str)]) -> Proc {
        let binary = match name {
            "orderflow-gateway" => env!("CARGO_BIN_EXE_orderflow-gateway"),
            "orderflow-orders" => env!("CARGO_BIN_EXE_orderflow-orders"),
            "orderflow-payments" => env!("CARGO_BIN_EXE_orderflow-payments"),
            "orderflow-shipments" => env!("CARGO_BIN_EXE_orderflow-shipments"),
            "orderflow-inventory" => env!("CARGO_BIN_EXE_orderflow-inventory"),
            "orderflow-actions" => env!("CARGO_BIN_EXE_orderflow-actions"),
            "orderflow-state" => env!("CARGO_BIN_EXE_orderflow-state"),
            "orderflow-sync" => env!("CARGO_BIN_EXE_orderflow-sync"),
            "orderflow-notify" => env!("CARGO_BIN_EXE_orderflow-notify"),
            other => panic!("no binary {other}"),
        };
        let logs = self.dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{name}-{instance}.log")))
            .unwrap();
        let mut command = self.command(binary);
        // A door's endpoints (`[sync]`, `[notify]`) from the test's `{name}.toml`, if it wrote one.
        let door_config = self.dir.path().join(format!("{name}.toml"));
        if door_config.exists() {
            command.env("ORDERFLOW_CONFIG", door_config);
        }
        if self.rules_file().exists() {
            command.env("ORDERFLOW_RULES", self.rules_file());
        }
        command.envs(env.iter().copied());
        if name == "orderflow-gateway" {
            // One log per copy; the gateway itself takes no --instance.
            command.env("ORDERFLOW_INSTANCE", instance);
        }
        let args: &[&str] = if name == "orderflow-gateway" {
            &[]
        } else {
            &["--instance", instance]
        };
        let child = command
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc {
            name: name.to_string(),
            child,
        }
    }

    /// Every consumer of the pipeline, one copy each.
    pub fn start_pipeline(&self) -> Vec<Proc> {
        [
            "orderflow-orders",
            "orderflow-payments",
            "orderflow-shipments",
            "orderflow-inventory",
            "orderflow-actions",
            "orderflow-state",
        ]
        .iter()
        .map(|name| self.spawn(name, "0"))
        .collect()
    }

    pub async fn produce(&self, topic: &str, key: &str, payload: &[u8]) {
        self.produce_with(topic, key, payload, None).await;
    }

    pub async fn produce_with(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        content_type: Option<&str>,
    ) -> (i32, i64) {
        let topic = self.topic(topic);
        let mut record = FutureRecord::to(&topic).key(key).payload(payload);
        if let Some(content_type) = content_type {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: headers::CONTENT_TYPE,
                value: Some(content_type),
            }));
        }
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error)
            .unwrap();
        (delivery.partition, delivery.offset)
    }

    /// Produces an operator's or customer's action ([`input::action`]) to `in.actions`.
    pub async fn act(
        &self,
        kind: &str,
        channel: &str,
        order: &str,
        action_id: &str,
        role: &str,
        extra: Value,
    ) {
        let document = input::action(kind, channel, order, action_id, role, extra);
        self.produce_json("in.actions", &document).await;
    }

    pub async fn produce_json(&self, topic: &str, document: &Value) -> (i32, i64) {
        let key = document["platform_order_id"]
            .as_str()
            .or(document["sku"].as_str())
            .unwrap_or("");
        self.produce_with(topic, key, document.to_string().as_bytes(), None)
            .await
    }

    /// Everything on a topic now (waits out a short quiet period to be sure of the end).
    pub async fn read(&self, topic: &str) -> Vec<Record> {
        let mut records = Vec::new();
        read_topic(
            &self.kafka,
            &self.topic(topic),
            Until::End {
                quiet: Duration::from_millis(300),
            },
            |message| {
                records.push(Record {
                    topic: message.topic().to_string(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| {
                                    (
                                        h.key.to_string(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                });
                Ok(())
            },
        )
        .await
        .unwrap();
        records
    }

    /// The latest snapshot per order on `order-state`, by order id. The topic is compacted and
    /// a snapshot may be published again after a crash, so the latest is the highest `version`,
    /// not the last record read.
    pub async fn order_states(&self) -> BTreeMap<String, OrderSnapshot> {
        let mut states: BTreeMap<String, OrderSnapshot> = BTreeMap::new();
        for record in self.read("order-state").await {
            let snapshot = record.order_state();
            let order_id = snapshot.order_id.to_string();
            if states
                .get(&order_id)
                .is_none_or(|latest| latest.version < snapshot.version)
            {
                states.insert(order_id, snapshot);
            }
        }
        states
    }

    /// Polls `check` until it returns Some, or fails the test after `limit`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}\n{}",
                self.logs_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every listed order has the expected status on `order-state`.
    pub async fn wait_for_statuses(
        &self,
        expected: &[(&str, Status)],
    ) -> BTreeMap<String, OrderSnapshot> {
        self.wait_for(
            &format!("order statuses {expected:?}"),
            Duration::from_secs(90),
            || async {
                let states = self.order_states().await;
                expected
                    .iter()
                    .all(|(order, status)| states.get(*order).is_some_and(|s| s.status == *status))
                    .then_some(states)
            },
        )
        .await
    }

    /// The last lines of every consumer log, for failure messages.
    pub fn logs_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            for entry in entries.flatten() {
                let content = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let lines: Vec<&str> = content.lines().collect();
                text.push_str(&format!("--- {}\n", entry.path().display()));
                for line in &lines[lines.len().saturating_sub(15)..] {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

/// A running consumer process; killed if the test ends without stopping it.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `kill -9`: no drain, no commit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
    }
}

/// Builders for input documents.
pub mod input {
    use serde_json::{json, Value};

    pub fn placed(channel: &str, order: &str, total_fen: u64) -> Value {
        json!({
            "kind": "order_placed", "channel": channel, "platform_order_id": order,
            "occurred_at": "2026-11-25T10:00:00+08:00", "buyer_id": format!("buyer-{order}"),
            "phone": "13800138000",
            "address": {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "文三路 478 号"},
            "lines": [{"sku": "SKU-TEA", "category": "tea", "qty": 1, "unit_price_fen": total_fen}],
            "total_fen": total_fen, "payment_method": "alipay"
        })
    }

    fn order_fact(kind: &str, channel: &str, order: &str, minute: u32) -> Value {
        json!({
            "kind": kind, "channel": channel, "platform_order_id": order,
            "occurred_at": format!("2026-11-25T10:{minute:02}:00+08:00"),
        })
    }

    fn with(mut base: Value, extra: Value) -> Value {
        if let (Some(map), Value::Object(more)) = (base.as_object_mut(), extra) {
            map.extend(more);
        }
        base
    }

    pub fn paid(channel: &str, order: &str, payment_id: &str, amount_fen: u64) -> Value {
        with(
            order_fact("payment_captured", channel, order, 1),
            json!({"payment_id": payment_id, "amount_fen": amount_fen, "method": "alipay"}),
        )
    }

    pub fn refunded(channel: &str, order: &str, refund_id: &str, amount_fen: u64) -> Value {
        with(
            order_fact("payment_refunded", channel, order, 5),
            json!({"refund_id": refund_id, "amount_fen": amount_fen}),
        )
    }

    pub fn dispatched(channel: &str, order: &str) -> Value {
        with(
            order_fact("shipment_dispatched", channel, order, 2),
            json!({"carrier": "SF", "tracking_no": format!("SF-{order}"), "warehouse": "WH-HZ"}),
        )
    }

    pub fn delivered(channel: &str, order: &str) -> Value {
        with(
            order_fact("shipment_delivered", channel, order, 3),
            json!({"carrier": "SF", "tracking_no": format!("SF-{order}")}),
        )
    }

    pub fn completed(channel: &str, order: &str) -> Value {
        order_fact("order_completed", channel, order, 4)
    }

    /// A stock level from the WMS (`in.inventory`).
    pub fn stock(sku: &str, warehouse: &str, on_hand: u64, minute: u32) -> Value {
        json!({
            "kind": "stock_level_changed", "sku": sku, "warehouse": warehouse, "on_hand": on_hand,
            "occurred_at": format!("2026-11-25T10:{minute:02}:00+08:00"),
        })
    }

    /// An operator action or customer choice (`in.actions`); `extra` holds the kind's fields.
    pub fn action(
        kind: &str,
        channel: &str,
        order: &str,
        action_id: &str,
        role: &str,
        extra: Value,
    ) -> Value {
        let actor = if role == "customer" {
            format!("buyer-{order}")
        } else {
            "ops-wang".to_string()
        };
        with(
            order_fact(kind, channel, order, 20),
            with(
                json!({"action_id": action_id, "actor": {"id": actor, "role": role}}),
                extra,
            ),
        )
    }

    pub fn cancelled(channel: &str, order: &str) -> Value {
        with(
            order_fact("order_cancelled", channel, order, 2),
            json!({"reason": "buyer changed mind"}),
        )
    }
}

/// Replaces `path` in one step (write a sibling, rename it over), so a reader never sees half.
fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A Kafka broker of a test's own (`scripts/kafka.sh` in a run dir of its own), for tests that
/// stop or freeze the broker: the shared one is never touched. Stopped and deleted when dropped.
pub struct OwnBroker {
    pub bootstrap: String,
    dir: tempfile::TempDir,
}

impl OwnBroker {
    /// Starts a fresh, empty broker on free ports.
    pub fn start() -> OwnBroker {
        let dir = tempfile::tempdir().unwrap();
        let mut broker = OwnBroker {
            bootstrap: String::new(),
            dir,
        };
        broker.bootstrap = broker.script("start");
        broker
    }

    fn script(&self, subcommand: &str) -> String {
        let output = Command::new("bash")
            .arg(repo_root().join("scripts/kafka.sh"))
            .arg(subcommand)
            .env("KAFKA_RUN_DIR", self.dir.path().join("run"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/kafka.sh runs");
        assert!(
            output.status.success(),
            "scripts/kafka.sh {subcommand} failed"
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// SIGTERM, and waits until the broker process is gone; its data and port are kept.
    pub fn halt(&self) {
        self.script("halt");
    }

    /// Starts the halted broker again: same port, same data.
    pub fn relaunch(&self) {
        assert_eq!(self.script("relaunch"), self.bootstrap);
    }

    fn signal(&self, signal: &str) -> bool {
        let pid =
            std::fs::read_to_string(self.dir.path().join("run/broker.pid")).unwrap_or_default();
        Command::new("kill")
            .args([signal, pid.trim()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// SIGSTOP: the broker keeps its connections open and answers nothing.
    pub fn freeze(&self) {
        assert!(self.signal("-STOP"), "the broker could not be frozen");
    }

    /// SIGCONT after [`OwnBroker::freeze`].
    pub fn thaw(&self) {
        assert!(self.signal("-CONT"), "the broker could not be thawed");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // (a frozen broker would wait for SIGKILL)
        self.signal("-CONT");
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/kafka.sh"))
            .arg("stop")
            .env("KAFKA_RUN_DIR", self.dir.path().join("run"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Proc {
    /// Waits up to `limit` for the process to exit by itself; its status, or None if it runs on.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
