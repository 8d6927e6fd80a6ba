//! How `orderflow-sync` talks to a channel: the [`Connector`] trait, and the generic signed
//! webhook every channel can use until it has a client of its own.
//!
//! # Adding a platform client (Tmall, JD, Douyin)
//!
//! A platform team writes a type that implements [`Connector`]: it gets a [`SyncCall`] (which
//! order, which change, its details, the idempotency key, the attempt number) and answers with
//! a [`CallAnswer`] saying whether the platform took it, refused it for good, or may take it on
//! another try (and after how long, if the platform said). It makes the call however the
//! platform wants (its SDK's signing, its field names, its own status codes), and must carry
//! the idempotency key (or map it onto the platform's own request id) so a retry after a crash
//! is recognised. Then it adds one line to [`build`] under a name, and the channel's config
//! says `connector = "<name>"`.
//!
//! Nothing else changes: scheduling, retries (as events in the log), the circuit breaker, the
//! rate limit, `sync_failure` and the metrics are the core's, the same for every connector.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use orderflow_domain::{OrderId, SyncChange, SyncOutcome};
use serde::Serialize;

use crate::config::ChannelEndpoint;
use crate::sign::webhook_signature;

/// The connectors `connector = "..."` may name.
pub const KNOWN: &[&str] = &["webhook"];

/// One call to a channel: a change of one of its orders.
#[derive(Debug, Clone, Serialize)]
pub struct SyncCall {
    pub order_id: OrderId,
    pub channel: String,
    pub platform_order_id: String,
    pub change: SyncChange,
    pub change_id: String,
    /// The same on every attempt and after any crash of the sender.
    pub idempotency_key: String,
    /// Carrier, tracking number, warehouse, amount, reason: what the change carries.
    pub details: std::collections::BTreeMap<String, String>,
    /// When the change happened at its source (RFC 3339).
    pub happened_at: String,
    /// The log event that caused it (a test or a bench can time the whole trip with it).
    pub event_id: String,
    #[serde(skip)]
    pub attempt: u32,
}

/// What a call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    pub outcome: SyncOutcome,
    pub http_status: Option<u16>,
    /// In a few words, for the log and `orderflow inspect`.
    pub answer: String,
    /// The receiver asked to wait this long before another try (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A way to tell a channel about a change of one of its orders.
pub trait Connector: Send + Sync {
    /// Its name in logs, metrics and the attempts recorded in the log (`webhook`).
    fn name(&self) -> &'static str;

    /// Makes the call. Never panics and never returns early without an answer: a transport
    /// error is a [`SyncOutcome::Failed`] answer that says what happened.
    fn send<'a>(&'a self, call: &'a SyncCall) -> BoxFuture<'a, CallAnswer>;
}

/// The connector a channel's config names.
pub fn build(endpoint: &ChannelEndpoint) -> Result<Box<dyn Connector>, String> {
    match endpoint.connector.as_str() {
        "webhook" => Ok(Box::new(Webhook::new(endpoint)?)),
        other => Err(format!("no connector is registered as {other:?}")),
    }
}

/// The generic signed webhook: `POST {url}` with the call as JSON and these headers:
///
/// - `Idempotency-Key`: the call's key, the same on every attempt;
/// - `X-Orderflow-Timestamp`: milliseconds since the epoch when this attempt was signed;
/// - `X-Orderflow-Signature`: `sha256=` + hex HMAC-SHA256 of `{timestamp}.{body}` under the
///   channel's secret;
/// - `X-Orderflow-Attempt`: 1, 2, 3 (the body is the same on every attempt).
///
/// Any 2xx is an acknowledgement; 408, 425, 429 and 5xx, timeouts and connection errors may
/// succeed on another try (`Retry-After` in seconds is respected); any other 4xx is a refusal
/// for good.
pub struct Webhook {
    url: String,
    secret: String,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(endpoint: &ChannelEndpoint) -> Result<Webhook, String> {
        Ok(Webhook {
            url: endpoint.url.clone(),
            secret: endpoint.secret.clone(),
            client: http_client(endpoint.timeout_ms)?,
        })
    }
}

impl Connector for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, call: &'a SyncCall) -> BoxFuture<'a, CallAnswer> {
        Box::pin(async move {
            let body = match serde_json::to_vec(call) {
                Ok(body) => body,
                Err(error) => {
                    return CallAnswer {
                        outcome: SyncOutcome::Rejected,
                        http_status: None,
                        answer: format!("the call could not be encoded: {error}"),
                        retry_after_secs: None,
                    }
                }
            };
            let timestamp = chrono::Utc::now().timestamp_millis();
            let request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .header("idempotency-key", &call.idempotency_key)
                .header("x-orderflow-timestamp", timestamp.to_string())
                .header(
                    "x-orderflow-signature",
                    webhook_signature(&self.secret, timestamp, &body),
                )
                .header("x-orderflow-attempt", call.attempt.to_string())
                .body(body);
            answer_of(request.send().await).await
        })
    }
}

/// An HTTP client with a whole-request timeout.
pub fn http_client(timeout_ms: u64) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(timeout_ms))
        .connect_timeout(Duration::from_millis(timeout_ms.min(3_000)))
        .user_agent("orderflow")
        .build()
        .map_err(|error| format!("the HTTP client could not be built: {error}"))
}

/// Classifies an HTTP exchange.
pub async fn answer_of(result: Result<reqwest::Response, reqwest::Error>) -> CallAnswer {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            let what = if error.is_timeout() {
                "timed out".to_string()
            } else if error.is_connect() {
                "connection failed".to_string()
            } else {
                "request failed".to_string()
            };
            return CallAnswer {
                outcome: SyncOutcome::Failed,
                http_status: None,
                answer: format!("{what}: {}", root_cause(&error)),
                retry_after_secs: None,
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after_secs = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    let text = response.text().await.unwrap_or_default();
    let excerpt: String = text.chars().take(120).collect();
    CallAnswer {
        outcome: classify(status),
        http_status: Some(status),
        answer: if excerpt.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {}", excerpt.trim())
        },
        retry_after_secs,
    }
}

/// What an HTTP status says about trying again.
pub fn classify(status: u16) -> SyncOutcome {
    match status {
        200..=299 => SyncOutcome::Acknowledged,
        408 | 425 | 429 | 500..=599 => SyncOutcome::Failed,
        _ => SyncOutcome::Rejected,
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_that_may_succeed_later_are_retried_and_the_rest_are_not() {
        for status in [200, 201, 204] {
            assert_eq!(classify(status), SyncOutcome::Acknowledged);
        }
        for status in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(classify(status), SyncOutcome::Failed, "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422, 301] {
            assert_eq!(classify(status), SyncOutcome::Rejected, "{status}");
        }
    }
}
