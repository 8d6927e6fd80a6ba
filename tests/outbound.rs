//! The doors out (issue 15) end to end on a real broker with the real binaries: the channel
//! sync against a fake platform, alerts to a fake DingTalk robot, customer SMS through a fake
//! gateway and the customer's answer coming back. The fakes run in the test on 127.0.0.1:0;
//! time moves on the consumers' clock file, never by sleeping.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use orderflow_domain::{
    ChannelSync, Event, EventBody, ExceptionKind, NoticeDelivery, SyncAttempt, SyncOutcome,
};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{input, Harness, Proc};

const PLATFORM_SECRET: &str = "platform-secret";
const ROBOT_SECRET: &str = "SECrobot-secret";

/// A request a fake received.
#[derive(Debug, Clone)]
struct Seen {
    path_and_query: String,
    headers: BTreeMap<String, String>,
    body: Value,
    /// The idempotency key it carried.
    key: String,
    signature_ok: bool,
    /// What the fake answered.
    status: u16,
    /// A key already taken: answered 200, not processed again.
    duplicate: bool,
    /// When it arrived.
    at: std::time::Instant,
}

/// What the fake answers the `nth` (0-based) request of a key.
struct Reply {
    status: u16,
    retry_after: Option<u64>,
    /// Taken (processed) first, answered after this long: a sender killed meanwhile never hears.
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

type Script = Box<dyn Fn(&Value, usize) -> Reply + Send + Sync>;

/// A fake platform, robot or SMS gateway: records every request and dedupes by idempotency
/// key like a well-behaved receiver.
struct Fake {
    script: Script,
    verify: fn(&str, &BTreeMap<String, String>, &[u8]) -> bool,
    seen: Mutex<Vec<Seen>>,
    taken: Mutex<BTreeSet<String>>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_for(&self, platform_order_id: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.body["platform_order_id"] == platform_order_id)
            .collect()
    }
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let document: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = headers
        .get("idempotency-key")
        .or_else(|| headers.get("x-orderflow-idempotency-key"))
        .cloned()
        .unwrap_or_default();
    let signature_ok = (fake.verify)(&path_and_query, &headers, &body);
    let (reply, duplicate) = {
        let mut seen = fake.seen.lock().unwrap();
        let nth = seen.iter().filter(|s| s.key == key).count();
        let duplicate = fake.taken.lock().unwrap().contains(&key);
        let reply = if duplicate {
            Reply::status(200)
        } else {
            (fake.script)(&document, nth)
        };
        if (200..300).contains(&reply.status) {
            fake.taken.lock().unwrap().insert(key.clone());
        }
        seen.push(Seen {
            path_and_query,
            headers,
            body: document,
            key,
            signature_ok,
            status: reply.status,
            duplicate,
            at: std::time::Instant::now(),
        });
        (reply, duplicate)
    };
    tokio::time::sleep(reply.delay).await;
    let mut response_headers = HeaderMap::new();
    if let Some(seconds) = reply.retry_after {
        response_headers.insert("retry-after", seconds.to_string().parse().unwrap());
    }
    let body = if duplicate {
        json!({"errcode": 0, "errmsg": "ok", "duplicate": true})
    } else {
        json!({"errcode": if reply.status < 300 { 0 } else { 1 }, "errmsg": "fake"})
    };
    (
        StatusCode::from_u16(reply.status).unwrap(),
        response_headers,
        body.to_string(),
    )
}

async fn start_fake(
    script: Script,
    verify: fn(&str, &BTreeMap<String, String>, &[u8]) -> bool,
) -> (Arc<Fake>, SocketAddr) {
    let fake = Arc::new(Fake {
        script,
        verify,
        seen: Mutex::default(),
        taken: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&fake));
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (fake, address)
}

fn hmac_sha256(secret: &str, message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The signed webhook, checked the way a platform would: HMAC-SHA256 of `{timestamp}.{body}`.
fn webhook_signed(_path: &str, headers: &BTreeMap<String, String>, body: &[u8]) -> bool {
    let (Some(timestamp), Some(signature)) = (
        headers.get("x-orderflow-timestamp"),
        headers.get("x-orderflow-signature"),
    ) else {
        return false;
    };
    let mut message = timestamp.as_bytes().to_vec();
    message.push(b'.');
    message.extend_from_slice(body);
    *signature
        == format!(
            "sha256={}",
            hex::encode(hmac_sha256(PLATFORM_SECRET, &message))
        )
}

/// DingTalk's check: `sign` = urlencode(base64(HmacSHA256(secret, timestamp + "\n" + secret))).
fn dingtalk_signed(path: &str, _headers: &BTreeMap<String, String>, _body: &[u8]) -> bool {
    let query: BTreeMap<&str, &str> = path
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    let (Some(timestamp), Some(sign)) = (query.get("timestamp"), query.get("sign")) else {
        return false;
    };
    let digest = hmac_sha256(
        ROBOT_SECRET,
        format!("{timestamp}\n{ROBOT_SECRET}").as_bytes(),
    );
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(digest)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    query.get("access_token") == Some(&"robot-token") && *sign == encoded
}

fn anything(_: &str, _: &BTreeMap<String, String>, _: &[u8]) -> bool {
    true
}

/// The sync's endpoints: every channel the test uses goes to the fake platform.
fn write_sync_config(harness: &Harness, platform: SocketAddr) {
    let text = format!(
        "[sync]\nbreaker-failures = 50\n\n[sync.channel.tmall]\nurl = \"http://{platform}/orders/status\"\nsecret = \"{PLATFORM_SECRET}\"\ntimeout-ms = 10000\nchanges = [\"shipped\"]\n"
    );
    std::fs::write(harness.data_dir().join("orderflow-sync.toml"), text).unwrap();
}

fn write_notify_config(harness: &Harness, robot: Option<SocketAddr>, sms: Option<SocketAddr>) {
    let mut text = String::new();
    if let Some(robot) = robot {
        text.push_str(&format!(
            "[notify.robot.ops]\nkind = \"dingtalk\"\nurl = \"http://{robot}/robot/send?access_token=robot-token\"\nsecret = \"{ROBOT_SECRET}\"\n\n"
        ));
    }
    if let Some(sms) = sms {
        text.push_str(&format!(
            "[notify.sms]\nurl = \"http://{sms}/sms/send\"\nsecret = \"sms-secret\"\nsign-name = \"母婴旗舰店\"\nlink-base = \"https://m.shop.example/c/\"\nlink-secret = \"link-secret\"\n"
        ));
    }
    std::fs::write(harness.data_dir().join("orderflow-notify.toml"), text).unwrap();
}

const RULES_WITH_ALERTS: &str = r#"
version = "outbound-v1"
auto-approve-below-fen = 50000
[[alerts.route]]
owner = "operations"
robots = ["ops"]
"#;

async fn ship(harness: &Harness, order: &str) {
    harness
        .produce_json("in.orders", &input::placed("tmall", order, 5_000))
        .await;
    harness
        .produce_json(
            "in.payments",
            &input::paid("tmall", order, &format!("P-{order}"), 5_000),
        )
        .await;
    harness
        .produce_json("in.shipments", &input::dispatched("tmall", order))
        .await;
}

/// The attempts recorded in the log for `order`, by number (a copy written twice counts once).
async fn attempts(harness: &Harness, order: &str) -> BTreeMap<u32, SyncAttempt> {
    harness
        .read("order-events")
        .await
        .iter()
        .flat_map(|r| r.log_events())
        .filter(|event| event.key.to_string() == format!("tmall:{order}"))
        .filter_map(|event: Event| match event.body {
            EventBody::ChannelSyncAttempted(attempt) => Some((attempt.attempt, attempt)),
            _ => None,
        })
        .collect()
}

async fn wait_attempts(harness: &Harness, order: &str, count: u32) -> BTreeMap<u32, SyncAttempt> {
    harness
        .wait_for(
            &format!("{count} attempts of {order} in the log"),
            Duration::from_secs(90),
            || async {
                let found = attempts(harness, order).await;
                (found.len() as u32 >= count).then_some(found)
            },
        )
        .await
}

async fn wait_requests(harness: &Harness, fake: &Fake, order: &str, count: usize) -> Vec<Seen> {
    harness
        .wait_for(
            &format!("{count} requests for {order} at the fake"),
            Duration::from_secs(90),
            || async {
                let seen = fake.seen_for(order);
                (seen.len() >= count).then_some(seen)
            },
        )
        .await
}

fn interval(attempt: &SyncAttempt) -> chrono::Duration {
    attempt.next_attempt_at.expect("a next attempt") - attempt.sent_at
}

fn open_kinds(
    states: &BTreeMap<String, orderflow_domain::OrderSnapshot>,
    order: &str,
) -> Vec<ExceptionKind> {
    states
        .get(order)
        .map(|s| s.open_exceptions.iter().map(|e| e.kind).collect())
        .unwrap_or_default()
}

fn start(harness: &Harness, extra: &[&str]) -> Vec<Proc> {
    let mut processes = harness.start_pipeline();
    for name in extra {
        processes.push(harness.spawn(name, "0"));
    }
    processes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shipped_order_reaches_its_platform_once_and_retries_follow_the_answers() {
    let harness = Harness::new("sync");
    let script: Script =
        Box::new(
            |body, nth| match (body["platform_order_id"].as_str().unwrap_or_default(), nth) {
                ("FLAKY", 0 | 1) => Reply::status(503),
                ("SLOW", 0) => Reply {
                    retry_after: Some(600),
                    ..Reply::status(429)
                },
                ("BAD", _) => Reply::status(400),
                _ => Reply::status(200),
            },
        );
    let (platform, address) = start_fake(script, webhook_signed).await;
    write_sync_config(&harness, address);
    let _processes = start(&harness, &["orderflow-sync"]);
    for order in ["OK1", "FLAKY", "SLOW", "BAD"] {
        ship(&harness, order).await;
    }

    // Once, with the right payload and signature.
    let ok = wait_requests(&harness, &platform, "OK1", 1).await;
    let first = &ok[0];
    assert!(first.signature_ok, "{first:?}");
    assert_eq!(first.path_and_query, "/orders/status");
    let key = ChannelSync::key_of(&"tmall:OK1".parse().unwrap(), "shipped:SF:SF-OK1");
    assert_eq!(first.key, key);
    assert_eq!(first.headers["x-orderflow-attempt"], "1");
    assert_eq!(first.body["order_id"], "tmall:OK1");
    assert_eq!(first.body["change"], "shipped");
    assert_eq!(first.body["details"]["carrier"], "SF");
    assert_eq!(first.body["details"]["tracking_no"], "SF-OK1");
    assert_eq!(first.body["idempotency_key"], key.as_str());

    // Fails twice, then taken: three attempts, each interval longer than the last.
    let flaky = wait_attempts(&harness, "FLAKY", 1).await;
    let slow = wait_attempts(&harness, "SLOW", 1).await;
    let slow_due = slow[&1].next_attempt_at.unwrap();
    assert_eq!(
        slow_due - slow[&1].sent_at,
        chrono::Duration::seconds(600),
        "429 with Retry-After 600"
    );
    harness.set_clock(&flaky[&1].next_attempt_at.unwrap().to_rfc3339());
    let flaky = wait_attempts(&harness, "FLAKY", 2).await;
    assert!(interval(&flaky[&2]) > interval(&flaky[&1]), "{flaky:?}");
    harness.set_clock(&flaky[&2].next_attempt_at.unwrap().to_rfc3339());
    let flaky = wait_attempts(&harness, "FLAKY", 3).await;
    assert_eq!(flaky[&3].outcome, SyncOutcome::Acknowledged);
    assert_eq!(platform.seen_for("FLAKY").len(), 3);
    assert!(platform.seen_for("FLAKY").iter().all(|s| s.signature_ok));

    // The clock passed two retries of FLAKY, not the Retry-After of SLOW: it waited.
    assert!(flaky[&3].sent_at < slow_due);
    assert_eq!(platform.seen_for("SLOW").len(), 1, "Retry-After respected");
    harness.set_clock(&slow_due.to_rfc3339());
    let slow = wait_attempts(&harness, "SLOW", 2).await;
    assert!(slow[&2].sent_at >= slow_due);
    assert_eq!(slow[&2].outcome, SyncOutcome::Acknowledged);

    // 400 is a refusal for good: one call, no retry, sync_failure at once.
    let bad = attempts(&harness, "BAD").await;
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[&1].outcome, bad[&1].next_attempt_at),
        (SyncOutcome::Rejected, None)
    );
    assert_eq!(platform.seen_for("BAD").len(), 1);
    let states = harness
        .wait_for("sync_failure on BAD", Duration::from_secs(60), || async {
            let states = harness.order_states().await;
            (open_kinds(&states, "tmall:BAD") == [ExceptionKind::SyncFailure]).then_some(states)
        })
        .await;
    for order in ["tmall:OK1", "tmall:FLAKY", "tmall:SLOW"] {
        assert!(
            open_kinds(&states, order).is_empty(),
            "{order}: {:?}",
            states[order]
        );
    }
    assert_eq!(platform.seen_for("OK1").len(), 1, "once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_channel_that_never_takes_it_raises_sync_failure_and_a_signed_dingtalk_alert() {
    let harness = Harness::new("syncfail");
    harness.write_rules(RULES_WITH_ALERTS);
    let (platform, platform_address) =
        start_fake(Box::new(|_, _| Reply::status(503)), webhook_signed).await;
    let (robot, robot_address) =
        start_fake(Box::new(|_, _| Reply::status(200)), dingtalk_signed).await;
    write_sync_config(&harness, platform_address);
    write_notify_config(&harness, Some(robot_address), None);
    let _processes = start(&harness, &["orderflow-sync", "orderflow-notify"]);
    ship(&harness, "DOWN").await;
    for count in 1..=2 {
        let found = wait_attempts(&harness, "DOWN", count).await;
        harness.set_clock(&found[&count].next_attempt_at.unwrap().to_rfc3339());
    }
    let found = wait_attempts(&harness, "DOWN", 3).await;
    assert_eq!(
        (found[&3].outcome, found[&3].next_attempt_at),
        (SyncOutcome::Failed, None)
    );
    assert_eq!(platform.seen_for("DOWN").len(), 3);

    let alert = harness
        .wait_for("the DingTalk alert", Duration::from_secs(60), || async {
            robot.seen().into_iter().next()
        })
        .await;
    assert!(alert.signature_ok, "timestamp + sign verified: {alert:?}");
    assert_eq!(alert.body["msgtype"], "markdown");
    let text = alert.body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("sync_failure") && text.contains("tmall:DOWN"),
        "{text}"
    );
    assert!(text.contains("operations L1"), "{text}");

    let inspected = harness
        .wait_for(
            "the delivery in the trail",
            Duration::from_secs(60),
            || async {
                let text =
                    String::from_utf8(harness.cli(&["inspect", "tmall:DOWN"]).stdout).unwrap();
                text.contains("notification_delivered").then_some(text)
            },
        )
        .await;
    for needle in [
        "channel_sync_attempted",
        "attempt 3/3 via webhook: failed (HTTP 503",
        "no more attempts",
        "to dingtalk:ops: acknowledged",
    ] {
        assert!(
            inspected.contains(needle),
            "inspect lacks {needle:?}:\n{inspected}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_sender_mid_call_loses_no_call_and_the_receiver_takes_it_once() {
    let harness = Harness::new("synckill");
    let script: Script = Box::new(|_, nth| match nth {
        0 => Reply::status(503),
        // Taken, then answered slowly: the sender is killed before it hears.
        _ => Reply {
            delay: Duration::from_secs(5),
            ..Reply::status(200)
        },
    });
    let (platform, address) = start_fake(script, webhook_signed).await;
    write_sync_config(&harness, address);
    let mut processes = start(&harness, &["orderflow-sync"]);
    ship(&harness, "KILL").await;
    let found = wait_attempts(&harness, "KILL", 1).await;
    harness.set_clock(&found[&1].next_attempt_at.unwrap().to_rfc3339());
    wait_requests(&harness, &platform, "KILL", 2).await;
    let sync = processes
        .iter_mut()
        .find(|p| p.name == "orderflow-sync")
        .unwrap();
    sync.kill();
    assert_eq!(
        attempts(&harness, "KILL").await.len(),
        1,
        "the second was never recorded"
    );

    *sync = harness.spawn("orderflow-sync", "0");
    let found = wait_attempts(&harness, "KILL", 2).await;
    assert_eq!(found[&2].outcome, SyncOutcome::Acknowledged);
    let seen = platform.seen_for("KILL");
    let taken: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.status == 200 && !s.duplicate)
        .collect();
    assert_eq!(
        taken.len(),
        1,
        "processed once from the receiver's view: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.key == seen[0].key),
        "one key throughout"
    );
    assert!(
        seen.len() >= 3 && seen.last().unwrap().duplicate,
        "{seen:?}"
    );
    let states = harness.order_states().await;
    assert!(open_kinds(&states, "tmall:KILL").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_a_hundred_alerts_reaches_the_robot_whole_within_its_rate_limit() {
    let harness = Harness::new("burst");
    harness.write_rules(RULES_WITH_ALERTS);
    let (robot, robot_address) =
        start_fake(Box::new(|_, _| Reply::status(200)), dingtalk_signed).await;
    write_notify_config(&harness, Some(robot_address), None);
    let _notify = harness.spawn("orderflow-notify", "0");
    let mut ids = BTreeSet::new();
    for n in 0..100 {
        let id = format!("burst-{n:03}");
        ids.insert(id.clone());
        let record = json!({
            "schema_version": 1, "notification_id": id, "order_id": format!("tmall:B{n}"),
            "audience": {"to": "owner", "owner": "operations", "level": "L2"},
            "kind": "exception_escalated",
            "message": "sync_failure (sync_failed:shipped:SF:1) not handled in time, now at L2",
            "at": "2026-11-25T02:00:00Z"
        });
        harness
            .produce(
                "notifications",
                &format!("tmall:B{n}"),
                record.to_string().as_bytes(),
            )
            .await;
    }
    let requests = harness
        .wait_for(
            "all 100 alerts at the robot",
            Duration::from_secs(150),
            || async {
                let seen = robot.seen();
                let text: String = seen
                    .iter()
                    .map(|s| {
                        s.body["markdown"]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect();
                ids.iter()
                    .all(|id| text.contains(id.as_str()))
                    .then_some(seen)
            },
        )
        .await;
    // DingTalk's limit is 20 messages in any minute: delivering the burst may take longer than
    // a minute (the sender waits for the window), so the rate is checked over every window.
    let busiest = requests
        .iter()
        .map(|first| {
            requests
                .iter()
                .filter(|r| r.at >= first.at && r.at < first.at + Duration::from_secs(60))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= 20,
        "{busiest} requests within one minute ({} in all)",
        requests.len()
    );
    assert!(
        requests.len() < 100,
        "the burst must be batched into fewer messages than alerts"
    );
    assert!(requests.iter().all(|s| s.signature_ok));
    let lines: usize = requests
        .iter()
        .map(|s| {
            s.body["markdown"]["text"]
                .as_str()
                .unwrap_or_default()
                .matches("id burst-")
                .count()
        })
        .sum();
    assert_eq!(lines, 100, "each alert once");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_out_of_stock_sms_and_the_customers_answer_close_the_loop_to_refund_and_coupon() {
    let harness = Harness::new("sms");
    let (gateway, sms_address) = start_fake(Box::new(|_, _| Reply::status(200)), anything).await;
    write_notify_config(&harness, None, Some(sms_address));
    let _processes = start(&harness, &["orderflow-notify"]);
    harness
        .produce_json("in.inventory", &input::stock("SKU-TEA", "WH-CENTRAL", 0, 0))
        .await;
    harness
        .wait_for("stock known", Duration::from_secs(60), || async {
            let log = harness.read("order-events").await;
            log.iter()
                .flat_map(|r| r.log_events())
                .any(|event| event.body.kind() == "stock_level_changed")
                .then_some(())
        })
        .await;
    harness
        .produce_json("in.orders", &input::placed("jd", "OOS1", 8_800))
        .await;
    harness
        .produce_json("in.payments", &input::paid("jd", "OOS1", "P-OOS1", 8_800))
        .await;
    let asked = harness
        .wait_for("the out-of-stock SMS", Duration::from_secs(90), || async {
            gateway.seen().into_iter().next()
        })
        .await;
    assert_eq!(asked.body["phone"], "13800138000");
    assert_eq!(asked.body["template_id"], "SMS_OUT_OF_STOCK");
    let content = asked.body["content"].as_str().unwrap();
    assert!(
        content.starts_with("您订购的商品暂时缺货，请选择退款或等待补货"),
        "{content}"
    );
    let link = asked.body["params"]["link"].as_str().unwrap();
    let token = link.strip_prefix("https://m.shop.example/c/").unwrap();
    assert_eq!(asked.key, asked.body["out_id"].as_str().unwrap());

    // The customer taps "refund" on the link's page.
    let config = harness.data_dir().join("orderflow-notify.toml");
    let forged = harness.cli(&[
        "--config",
        config.to_str().unwrap(),
        "choose",
        "bm90.x.y",
        "refund",
    ]);
    assert_eq!(forged.status.code(), Some(2), "a forged token is refused");
    let chose = harness.cli(&[
        "--config",
        config.to_str().unwrap(),
        "choose",
        token,
        "refund",
    ]);
    assert!(
        chose.status.success(),
        "{}",
        String::from_utf8_lossy(&chose.stderr)
    );
    harness
        .wait_for_statuses(&[("jd:OOS1", orderflow_domain::Status::Cancelled)])
        .await;
    let coupon = harness
        .wait_for("the coupon SMS", Duration::from_secs(60), || async {
            gateway
                .seen()
                .into_iter()
                .find(|s| s.body["template_id"] == "SMS_COUPON")
        })
        .await;
    assert!(
        coupon.body["content"]
            .as_str()
            .unwrap()
            .contains("10元补偿券"),
        "{:?}",
        coupon.body
    );
    // Sent once each, and the number never in a log.
    let deliveries: Vec<NoticeDelivery> = harness
        .read("order-events")
        .await
        .iter()
        .flat_map(|r| r.log_events())
        .filter_map(|event| match event.body {
            EventBody::NotificationDelivered(delivery) => Some(delivery),
            _ => None,
        })
        .collect();
    assert_eq!(
        deliveries.iter().filter(|d| d.target == "sms").count(),
        2,
        "{deliveries:?}"
    );
    let logs = harness.log_of("orderflow-notify-0");
    assert!(logs.contains("138****8000"), "{logs}");
    assert!(!logs.contains("13800138000"), "a phone number in the log");
}
