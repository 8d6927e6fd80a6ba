//! Group robots: DingTalk and WeCom webhooks in their real formats, and the outbox that keeps a
//! robot within its rate limit (20 messages a minute) by sending a burst as one message instead
//! of dropping any of it.
//!
//! - DingTalk (自定义机器人): `POST {webhook}&timestamp={ms}&sign={sign}` where `sign` is
//!   `urlencode(base64(HmacSHA256(secret, timestamp + "\n" + secret)))` when the robot has a
//!   secret ("加签"); body `{"msgtype":"markdown","markdown":{"title","text"}}`; the answer is
//!   `{"errcode":0,"errmsg":"ok"}` (130101: sent too fast).
//! - WeCom (群机器人): `POST {webhook}` (`.../webhook/send?key=...`); body
//!   `{"msgtype":"markdown","markdown":{"content"}}`, at most 4096 bytes; the answer is
//!   `{"errcode":0,"errmsg":"ok"}` (45009: over the limit).

use std::future::Future;
use std::time::Duration;

use orderflow_domain::{EventId, SyncOutcome};
use serde_json::json;

use crate::config::{RobotEndpoint, RobotKind};
use crate::connector::{answer_of, http_client, CallAnswer};
use crate::limits::Window;
use crate::sign::dingtalk_sign;

/// One alert for a group: a notification for an owner or an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub notification_id: String,
    pub order_id: String,
    /// `exception_escalated`, `exception_raised`, ...
    pub kind: String,
    /// `operations L1`, `risk L3`.
    pub audience: String,
    pub message: String,
}

impl Alert {
    /// One line of a group message. The notification id is in it, so a reader (or a test) can
    /// tell every alert of a combined message apart.
    pub fn line(&self) -> String {
        format!(
            "- **{}** {} · `{}` · {} · id {}",
            self.kind, self.audience, self.order_id, self.message, self.notification_id
        )
    }
}

/// Sends alerts to one robot: as few messages as its size allows, each when its window has
/// room. Whatever arrives while the window is full waits and goes out together in the next
/// message, so a burst costs one message, not one each, and nothing is dropped.
pub struct Outbox {
    window: Window,
    max_bytes: usize,
}

impl Outbox {
    pub fn new(per_minute: u32, max_bytes: usize) -> Outbox {
        Outbox {
            window: Window::new(per_minute, Duration::from_secs(60)),
            max_bytes,
        }
    }

    /// Splits `alerts` into messages and sends each with `send` once the window allows it;
    /// returns, per message, the alerts it carried and what `send` answered.
    pub async fn dispatch<'a, F, Fut, R>(
        &mut self,
        alerts: &'a [Alert],
        mut send: F,
    ) -> Vec<(Vec<&'a Alert>, R)>
    where
        F: FnMut(Vec<&'a Alert>) -> Fut,
        Fut: Future<Output = R>,
    {
        let mut results = Vec::new();
        for chunk in chunks(alerts, self.max_bytes) {
            let wait = self.window.wait(tokio::time::Instant::now());
            if !wait.is_zero() {
                tracing::info!(
                    waiting_ms = wait.as_millis() as u64,
                    alerts = chunk.len(),
                    "robot rate limit reached; what arrives meanwhile goes in one message"
                );
                tokio::time::sleep(wait).await;
            }
            let answer = send(chunk.clone()).await;
            // Booked when the answer is back, not when sent: the robot counted the message at
            // some moment in between, so the next minute is measured from no earlier than that.
            self.window.record(tokio::time::Instant::now());
            results.push((chunk, answer));
        }
        results
    }
}

/// Groups alerts into messages of at most `max_bytes` of text (an alert longer than that goes
/// alone, cut to fit).
fn chunks(alerts: &[Alert], max_bytes: usize) -> Vec<Vec<&Alert>> {
    let mut chunks: Vec<Vec<&Alert>> = Vec::new();
    let mut size = 0;
    for alert in alerts {
        let line = alert.line().len() + 1;
        match chunks.last_mut() {
            Some(chunk) if size + line <= max_bytes => {
                chunk.push(alert);
                size += line;
            }
            _ => {
                chunks.push(vec![alert]);
                size = line + HEADER_BYTES;
            }
        }
    }
    chunks
}

/// Room kept for the title line of a message.
const HEADER_BYTES: usize = 64;

/// The markdown text of a message carrying `alerts`, cut to `max_bytes` on a char boundary.
pub fn markdown(alerts: &[&Alert], max_bytes: usize) -> (String, String) {
    let title = if alerts.len() == 1 {
        format!("orderflow: {}", alerts[0].kind)
    } else {
        format!("orderflow: {} alerts", alerts.len())
    };
    let mut text = format!("### {title}\n\n");
    for alert in alerts {
        text.push_str(&alert.line());
        text.push('\n');
    }
    if text.len() > max_bytes {
        let mut cut = max_bytes.saturating_sub(3);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    (title, text)
}

/// A configured robot: its endpoint, HTTP client and outbox.
pub struct Robot {
    pub name: String,
    endpoint: RobotEndpoint,
    client: reqwest::Client,
    pub outbox: Outbox,
}

impl Robot {
    pub fn new(name: &str, endpoint: &RobotEndpoint) -> Result<Robot, String> {
        Ok(Robot {
            name: name.to_string(),
            client: http_client(endpoint.timeout_ms)?,
            outbox: Outbox::new(endpoint.per_minute, max_bytes(endpoint.kind)),
            endpoint: endpoint.clone(),
        })
    }

    /// `dingtalk:ops`: where a notification went, in the log.
    pub fn target(&self) -> String {
        format!("{}:{}", self.endpoint.kind.as_str(), self.name)
    }

    pub fn kind(&self) -> RobotKind {
        self.endpoint.kind
    }

    /// The key of a message carrying these notifications (sent as `X-Orderflow-Idempotency-Key`;
    /// the robots ignore it, a receiver that dedupes can use it).
    pub fn message_key(&self, alerts: &[&Alert]) -> String {
        let mut ids: Vec<&str> = alerts.iter().map(|a| a.notification_id.as_str()).collect();
        ids.sort_unstable();
        let joined = ids.join(",");
        EventId::derive(&["robot_message", &self.name, &joined]).to_string()
    }

    /// Posts one message, trying again twice at once on a failure that may pass.
    pub async fn post(&self, alerts: &[&Alert]) -> (CallAnswer, u32) {
        let (title, text) = markdown(alerts, max_bytes(self.endpoint.kind));
        let body = match self.endpoint.kind {
            RobotKind::Dingtalk => {
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
            RobotKind::Wecom => json!({"msgtype": "markdown", "markdown": {"content": text}}),
        };
        let key = self.message_key(alerts);
        let mut tries = 0;
        loop {
            tries += 1;
            let url = self.url();
            let response = self
                .client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-orderflow-idempotency-key", &key)
                .body(body.to_string())
                .send()
                .await;
            let answer = robot_answer(answer_of(response).await);
            if answer.outcome != SyncOutcome::Failed || tries >= 3 {
                return (answer, tries);
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
        }
    }

    /// The webhook, signed for DingTalk when the robot has a secret (signed anew per try: the
    /// robot refuses a timestamp more than an hour off).
    fn url(&self) -> String {
        match (&self.endpoint.kind, &self.endpoint.secret) {
            (RobotKind::Dingtalk, Some(secret)) => {
                let timestamp = chrono::Utc::now().timestamp_millis();
                let separator = if self.endpoint.url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!(
                    "{}{separator}timestamp={timestamp}&sign={}",
                    self.endpoint.url,
                    dingtalk_sign(secret, timestamp)
                )
            }
            _ => self.endpoint.url.clone(),
        }
    }
}

/// WeCom takes at most 4096 bytes of markdown; DingTalk about 20 000.
fn max_bytes(kind: RobotKind) -> usize {
    match kind {
        RobotKind::Dingtalk => 18_000,
        RobotKind::Wecom => 4_000,
    }
}

/// A robot answers HTTP 200 with an `errcode`: 0 is taken, a rate limit may pass, anything
/// else (bad signature, keyword missing, robot removed) won't.
fn robot_answer(answer: CallAnswer) -> CallAnswer {
    if answer.outcome != SyncOutcome::Acknowledged {
        return answer;
    }
    let body = answer
        .answer
        .split_once(": ")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let errcode = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("errcode").and_then(serde_json::Value::as_i64));
    match errcode {
        None | Some(0) => answer,
        Some(130_101 | 45_009) => CallAnswer {
            outcome: SyncOutcome::Failed,
            ..answer
        },
        Some(_) => CallAnswer {
            outcome: SyncOutcome::Rejected,
            ..answer
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn alert(n: usize) -> Alert {
        Alert {
            notification_id: format!("n{n:03}"),
            order_id: format!("tmall:T{n}"),
            kind: "exception_escalated".into(),
            audience: "operations L2".into(),
            message: "sync_failure (sync_failed:shipped:SF:1) not handled in time".into(),
        }
    }

    /// The consumer's way of taking records: wait for one, then take every one already there.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_a_hundred_alerts_stays_within_twenty_a_minute_and_delivers_all() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for n in 0..100 {
                tx.send(alert(n)).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let start = Instant::now();
        type Requests = Arc<Mutex<Vec<(Duration, Vec<String>)>>>;
        let requests: Requests = Arc::default();
        let mut outbox = Outbox::new(20, 18_000);
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let seen = Arc::clone(&requests);
            outbox
                .dispatch(&batch, |alerts| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let ids = alerts.iter().map(|a| a.notification_id.clone()).collect();
                        seen.lock().unwrap().push((start.elapsed(), ids));
                    }
                })
                .await;
        }
        let requests = requests.lock().unwrap();
        for (at, _) in requests.iter() {
            let in_window = requests
                .iter()
                .filter(|(other, _)| *other >= *at && *other < *at + Duration::from_secs(60))
                .count();
            assert!(
                in_window <= 20,
                "{in_window} requests in the minute from {at:?}"
            );
        }
        let mut delivered: Vec<String> = requests.iter().flat_map(|(_, ids)| ids.clone()).collect();
        delivered.sort();
        let all: Vec<String> = (0..100).map(|n| format!("n{n:03}")).collect();
        assert_eq!(delivered, all, "every alert delivered once");
        assert!(
            requests.len() < 100,
            "the burst was batched: {} requests",
            requests.len()
        );
    }

    #[test]
    fn a_message_is_cut_to_the_robot_size_and_chunks_respect_it() {
        let alerts: Vec<Alert> = (0..200).map(alert).collect();
        let chunks = chunks(&alerts, 4_000);
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 200);
        for chunk in &chunks {
            let (_, text) = markdown(chunk, 4_000);
            assert!(text.len() <= 4_000, "{}", text.len());
            assert!(!text.ends_with("..."), "nothing cut off");
        }
    }

    #[test]
    fn an_errcode_decides_the_outcome() {
        let answer = |body: &str| CallAnswer {
            outcome: SyncOutcome::Acknowledged,
            http_status: Some(200),
            answer: format!("HTTP 200: {body}"),
            retry_after_secs: None,
        };
        let outcome = |body: &str| robot_answer(answer(body)).outcome;
        assert_eq!(
            outcome(r#"{"errcode":0,"errmsg":"ok"}"#),
            SyncOutcome::Acknowledged
        );
        assert_eq!(
            outcome(r#"{"errcode":130101,"errmsg":"send too fast"}"#),
            SyncOutcome::Failed
        );
        assert_eq!(
            outcome(r#"{"errcode":310000,"errmsg":"sign not match"}"#),
            SyncOutcome::Rejected
        );
    }
}
