//! `orderflow simulate --platform-listen ADDR`: a fake sales platform for `orderflow-sync` to
//! call back, so a run measures the seed's headline: how long from a fact entering orderflow
//! (the simulator sending it) to the platform acknowledging the change it caused.
//!
//! Point every `[sync.channel.*] url` of the sync's config at `http://ADDR/`. The fake takes
//! every call (200), once per idempotency key, and times it against the send time of the fact
//! the call names (`event_id`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use orderflow_domain::Channel;
use orderflow_runtime::RuntimeError;
use serde::Serialize;

use crate::simulate::{histogram, Latency};

/// Facts sent, by event id: when and on which channel.
pub type SendTimes = Arc<Mutex<HashMap<String, (Instant, Channel)>>>;

#[derive(Default)]
struct Calls {
    keys: HashSet<String>,
    duplicates: u64,
    unmatched: u64,
    overall: Option<Histogram<u64>>,
    by_channel: BTreeMap<Channel, Histogram<u64>>,
    last: Option<Instant>,
}

pub struct FakePlatform {
    calls: Arc<Mutex<Calls>>,
    server: tokio::task::JoinHandle<()>,
}

/// What the fake platform saw.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// Calls taken (distinct idempotency keys).
    pub calls: u64,
    /// Calls that repeated a key already taken.
    pub duplicates: u64,
    /// Calls for a change whose fact this run didn't send (a decision, an older run's order).
    pub unmatched: u64,
    /// From the fact's send to the platform receiving the call, of calls matched to a fact.
    pub latency_ms: Latency,
    pub latency_ms_by_channel: BTreeMap<String, Latency>,
}

impl FakePlatform {
    pub async fn start(address: SocketAddr, sent: SendTimes) -> Result<FakePlatform, RuntimeError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| {
                RuntimeError::Config(format!(
                    "--platform-listen {address} could not be bound: {error}"
                ))
            })?;
        let calls = Arc::new(Mutex::new(Calls {
            overall: Some(histogram()),
            ..Calls::default()
        }));
        let state = (Arc::clone(&calls), sent);
        let app = axum::Router::new().fallback(take_call).with_state(state);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "the fake platform stopped");
            }
        });
        Ok(FakePlatform { calls, server })
    }

    /// When the last call came.
    pub fn last_call(&self) -> Option<Instant> {
        self.calls.lock().ok().and_then(|calls| calls.last)
    }

    pub fn report(self) -> SyncReport {
        self.server.abort();
        let Ok(calls) = self.calls.lock() else {
            return SyncReport::default();
        };
        SyncReport {
            calls: calls.keys.len() as u64,
            duplicates: calls.duplicates,
            unmatched: calls.unmatched,
            latency_ms: calls.overall.as_ref().map(Latency::of).unwrap_or_default(),
            latency_ms_by_channel: calls
                .by_channel
                .iter()
                .map(|(channel, h)| (channel.to_string(), Latency::of(h)))
                .collect(),
        }
    }
}

async fn take_call(
    axum::extract::State((calls, sent)): axum::extract::State<(Arc<Mutex<Calls>>, SendTimes)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> &'static str {
    let now = Instant::now();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let event_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|call| call["event_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let sent_at = sent
        .lock()
        .ok()
        .and_then(|sent| sent.get(&event_id).copied());
    if let Ok(mut calls) = calls.lock() {
        calls.last = Some(now);
        if !calls.keys.insert(key) {
            calls.duplicates += 1;
            return "{\"duplicate\":true}";
        }
        match sent_at {
            Some((at, channel)) => {
                let micros = now.duration_since(at).as_micros().max(1) as u64;
                if let Some(overall) = calls.overall.as_mut() {
                    let _ = overall.record(micros);
                }
                let _ = calls
                    .by_channel
                    .entry(channel)
                    .or_insert_with(histogram)
                    .record(micros);
            }
            None => calls.unmatched += 1,
        }
    }
    "{\"ok\":true}"
}
