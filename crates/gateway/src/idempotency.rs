//! `Idempotency-Key`, as payment APIs have it (Stripe; IETF draft
//! `draft-ietf-httpapi-idempotency-key-header`): a request with a key the caller used before
//!
//! - with the same payload gets the stored response again (`Idempotent-Replayed: true`);
//! - with a different payload gets `422` (`idempotency_key_reused`);
//! - while the first request with that key is still running gets `409`
//!   (`idempotency_in_flight`).
//!
//! Keys are per credential (two platforms may use the same key), kept for
//! `gateway.idempotency-ttl-secs` (a day by default). As in Stripe's, a request refused before
//! it ran (a validation error, a `401`/`403`) stores nothing: fixing the payload and sending it
//! with the same key runs it.
//!
//! # Where the keys live, and why
//!
//! In the compacted topic `gateway.idempotency`, keyed by `{credential}:{key}`. Every gateway
//! copy reads the whole topic into memory ([`KeyStore::follow`]). The broker is the one store
//! every copy already shares and trusts with durability (`acks=all`); a database only for keys
//! would be a second system to run, and a per-copy store (sled) would not hold across copies.
//!
//! A request claims its key by producing a `pending` record, then reads the key's partition
//! back up to that record. All records of a key are in one partition, so every copy sees them
//! in the same order and the claim that comes first wins: that one runs; a later claim sees
//! `pending` (409) or the stored response (`done`: replayed, or 422 if the payload differs).
//! Reading back to one's own claim also means a copy that just started, or lags, has seen
//! everything before it — the answer does not depend on which copy a request lands on.
//!
//! The guarantee: among requests with one key, at most one runs at a time, and once a response
//! is stored (acknowledged before it is sent to the caller) every later request gets it. A copy
//! that dies while running a request leaves its claim `pending`; after
//! `gateway.idempotency-lease-ms` a new request may take the key over and run again. Running
//! twice is then harmless because of the second line of defence: the records carry the
//! intake's deterministic event ids, so a record produced twice is folded once. The same holds
//! for requests without a key, and for a request that got a `503` and is sent again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orderflow_domain::Timestamp;
use orderflow_runtime::config::KafkaConfig;
use orderflow_runtime::kafka::client_config;
use orderflow_runtime::output::Output;
use orderflow_runtime::RuntimeError;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use crate::problem::Problem;
use crate::produce::Producer;

/// The longest `Idempotency-Key` accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// What the topic holds for a key, in the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum KeyRecord {
    /// A request claims the key.
    Pending {
        claim: String,
        fingerprint: String,
        at: Timestamp,
    },
    /// The claiming request finished: its response, replayed to later requests.
    Done {
        claim: String,
        fingerprint: String,
        at: Timestamp,
        response: Stored,
    },
    /// The claiming request stopped before producing anything (the broker refused it): the
    /// key is free again.
    Released { claim: String, at: Timestamp },
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// What a request with a key does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Run it, then [`KeyStore::finish`] (or [`KeyStore::release`]) with this claim.
    Won(String),
    Replay(Stored),
    InFlight,
    Mismatch,
}

/// The fold of one key's records: the same on every copy, because it depends only on the
/// records and their order.
#[derive(Debug, Clone)]
enum Current {
    Pending {
        claim: String,
        at: Timestamp,
    },
    Done {
        fingerprint: String,
        at: Timestamp,
        response: Stored,
    },
}

#[derive(Default)]
struct Table {
    keys: HashMap<String, Current>,
    /// Per partition, the next offset to read.
    positions: HashMap<i32, i64>,
}

pub struct KeyStore {
    topic: String,
    lease: chrono::Duration,
    ttl: chrono::Duration,
    /// How long a claim may take to be read back.
    wait: Duration,
    table: Mutex<Table>,
    /// Bumped after every record read.
    progress: watch::Sender<u64>,
    /// Whether the reader has reached the end of the topic as it was at start.
    caught_up: std::sync::atomic::AtomicBool,
}

impl KeyStore {
    pub fn new(topic: String, lease: Duration, ttl: Duration, wait: Duration) -> KeyStore {
        KeyStore {
            topic,
            lease: chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX),
            ttl: chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            wait,
            table: Mutex::new(Table::default()),
            progress: watch::channel(0).0,
            caught_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one record of the topic, as read.
    fn apply(&self, table: &mut Table, key: &str, record: KeyRecord) {
        let current = table.keys.get(key);
        let next = match (record, current) {
            (KeyRecord::Pending { claim, at, .. }, current) => {
                let free = match current {
                    None => true,
                    Some(Current::Pending { at: held, .. }) => *held + self.lease <= at,
                    Some(Current::Done { at: done, .. }) => *done + self.ttl <= at,
                };
                free.then_some(Current::Pending { claim, at })
            }
            // A response is stored whoever holds the claim now: its records were produced.
            // The first response stored stays.
            (
                KeyRecord::Done {
                    fingerprint,
                    at,
                    response,
                    ..
                },
                None | Some(Current::Pending { .. }),
            ) => Some(Current::Done {
                fingerprint,
                at,
                response,
            }),
            (KeyRecord::Done { .. }, Some(Current::Done { .. })) => None,
            (KeyRecord::Released { claim, .. }, Some(Current::Pending { claim: held, .. }))
                if *held == claim =>
            {
                table.keys.remove(key);
                return;
            }
            (KeyRecord::Released { .. }, _) => None,
        };
        if let Some(next) = next {
            table.keys.insert(key.to_string(), next);
        }
    }

    /// What the table says for a key with this payload, if it settles the request.
    fn judge(
        &self,
        table: &Table,
        key: &str,
        fingerprint: &str,
        mine: Option<&str>,
    ) -> Option<Claim> {
        match table.keys.get(key)? {
            Current::Done {
                fingerprint: stored,
                response,
                at,
            } => {
                if *at + self.ttl <= chrono::Utc::now() {
                    return None;
                }
                Some(if stored == fingerprint {
                    Claim::Replay(response.clone())
                } else {
                    Claim::Mismatch
                })
            }
            // Another request runs under the key: wait for its answer, whatever the payload
            // (the draft's 409; the payload is compared with the stored answer then).
            Current::Pending { claim, .. } => Some(if Some(claim.as_str()) == mine {
                Claim::Won(claim.clone())
            } else {
                Claim::InFlight
            }),
        }
    }

    /// Claims `key` for a request whose payload has `fingerprint`, or says why not.
    pub async fn begin(
        &self,
        producer: &Producer,
        key: &str,
        fingerprint: &str,
    ) -> Result<Claim, Problem> {
        // A stored response settles it without a claim; anything else must be decided by the
        // order of claims on the topic.
        if let Some(settled @ (Claim::Replay(_) | Claim::Mismatch)) =
            self.judge(&self.lock(), key, fingerprint, None)
        {
            return Ok(settled);
        }
        let claim = hex::encode(rand::random::<[u8; 16]>());
        let record = KeyRecord::Pending {
            claim: claim.clone(),
            fingerprint: fingerprint.to_string(),
            at: chrono::Utc::now(),
        };
        let placed = self.write(producer, key, &record).await?;
        self.read_past(placed.partition, placed.offset, producer.retry_after())
            .await?;
        let table = self.lock();
        Ok(self
            .judge(&table, key, fingerprint, Some(&claim))
            // The key was freed again between our claim and now: send again.
            .unwrap_or(Claim::InFlight))
    }

    /// Stores the response of the request that holds `claim`.
    pub async fn finish(
        &self,
        producer: &Producer,
        key: &str,
        claim: String,
        fingerprint: &str,
        response: Stored,
    ) -> Result<(), Problem> {
        let record = KeyRecord::Done {
            claim,
            fingerprint: fingerprint.to_string(),
            at: chrono::Utc::now(),
            response,
        };
        self.write(producer, key, &record).await.map(|_| ())
    }

    /// Frees `key` after the request holding `claim` failed without producing anything.
    pub async fn release(&self, producer: &Producer, key: &str, claim: String) {
        let record = KeyRecord::Released {
            claim,
            at: chrono::Utc::now(),
        };
        if let Err(problem) = self.write(producer, key, &record).await {
            // The claim then runs out after the lease.
            warn!(detail = %problem.detail, "an idempotency claim could not be released");
        }
    }

    async fn write(
        &self,
        producer: &Producer,
        key: &str,
        record: &KeyRecord,
    ) -> Result<crate::produce::Placed, Problem> {
        let payload = serde_json::to_vec(record)
            .map_err(|error| Problem::unavailable(error.to_string(), producer.retry_after()))?;
        let output = Output {
            topic: self.topic.clone(),
            key: key.as_bytes().to_vec(),
            payload,
            headers: Vec::new(),
        };
        let placed = producer.produce(std::slice::from_ref(&output)).await?;
        placed
            .into_iter()
            .next()
            .ok_or_else(|| Problem::unavailable("no acknowledgement", producer.retry_after()))
    }

    /// Waits until the reader has read `partition` past `offset`.
    async fn read_past(
        &self,
        partition: i32,
        offset: i64,
        retry_after: u32,
    ) -> Result<(), Problem> {
        let mut progress = self.progress.subscribe();
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let position = self.lock().positions.get(&partition).copied().unwrap_or(0);
            if position > offset {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, progress.changed())
                .await
                .is_err()
            {
                return Err(Problem::unavailable(
                    "the idempotency key could not be read back in time",
                    retry_after,
                ));
            }
        }
    }

    /// Reads the whole topic, then follows it, keeping the table; runs until the process ends.
    /// Also drops stored responses past their time now and then, so memory holds a day of keys.
    pub async fn follow(self: Arc<Self>, kafka: KafkaConfig) -> Result<(), RuntimeError> {
        let consumer: StreamConsumer = client_config(&kafka)
            .set(
                "group.id",
                format!("orderflow-gateway-keys-{}", rand::random::<u64>()),
            )
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("fetch.queue.backoff.ms", "10")
            .create()
            .map_err(RuntimeError::kafka("creating the idempotency reader"))?;
        let topic = self.topic.clone();
        let partitions = crate::view::partitions_of(&consumer, &topic).await?;
        let mut ends = HashMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            let high = crate::view::high_watermark(&consumer, &topic, *partition).await;
            ends.insert(*partition, high);
            assignment
                .add_partition_offset(&topic, *partition, Offset::Beginning)
                .map_err(RuntimeError::kafka("building assignment"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(RuntimeError::kafka(format!("assigning {topic}")))?;
        let caught_up = |table: &Table| {
            ends.iter()
                .all(|(p, end)| table.positions.get(p).copied().unwrap_or(0) >= *end)
        };
        if caught_up(&self.lock()) {
            self.caught_up
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let mut read = 0u64;
        loop {
            let message = match consumer.recv().await {
                Ok(message) => message,
                // The broker away: librdkafka reconnects by itself; claims meanwhile time out.
                Err(error) => {
                    warn!(%error, topic = %topic, "reading the idempotency keys");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let key = message
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            let record = message
                .payload()
                .and_then(|payload| serde_json::from_slice::<KeyRecord>(payload).ok());
            {
                let mut table = self.lock();
                if let (Some(key), Some(record)) = (key, record) {
                    self.apply(&mut table, &key, record);
                }
                table
                    .positions
                    .insert(message.partition(), message.offset() + 1);
                read += 1;
                if read.is_multiple_of(10_000) {
                    let cutoff = chrono::Utc::now() - self.ttl;
                    table.keys.retain(|_, current| match current {
                        Current::Done { at, .. } => *at > cutoff,
                        Current::Pending { .. } => true,
                    });
                }
                if !self.caught_up() && caught_up(&table) {
                    self.caught_up
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.progress.send_modify(|count| *count += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn store() -> KeyStore {
        KeyStore::new(
            "t".into(),
            Duration::from_secs(30),
            Duration::from_secs(3_600),
            Duration::from_secs(1),
        )
    }

    fn at(seconds: i64) -> Timestamp {
        chrono::Utc::now() + chrono::Duration::seconds(seconds)
    }

    fn pending(claim: &str, fingerprint: &str, seconds: i64) -> KeyRecord {
        KeyRecord::Pending {
            claim: claim.into(),
            fingerprint: fingerprint.into(),
            at: at(seconds),
        }
    }

    fn done(claim: &str, fingerprint: &str, seconds: i64) -> KeyRecord {
        KeyRecord::Done {
            claim: claim.into(),
            fingerprint: fingerprint.into(),
            at: at(seconds),
            response: Stored {
                status: 202,
                body: format!("{{\"by\":\"{claim}\"}}"),
            },
        }
    }

    fn fold(records: Vec<KeyRecord>, mine: &str, fingerprint: &str) -> Option<Claim> {
        let store = store();
        let mut table = Table::default();
        for record in records {
            store.apply(&mut table, "k", record);
        }
        store.judge(&table, "k", fingerprint, Some(mine))
    }

    #[test]
    fn the_first_claim_wins_and_later_ones_wait_or_differ() {
        let claims = vec![
            pending("a", "f1", 0),
            pending("b", "f1", 0),
            pending("c", "f2", 0),
        ];
        assert_eq!(
            fold(claims.clone(), "a", "f1"),
            Some(Claim::Won("a".into()))
        );
        assert_eq!(fold(claims.clone(), "b", "f1"), Some(Claim::InFlight));
        assert_eq!(fold(claims, "c", "f2"), Some(Claim::InFlight));
    }

    #[test]
    fn a_stored_response_is_replayed_for_the_same_payload_only() {
        let records = vec![
            pending("a", "f1", 0),
            done("a", "f1", 0),
            pending("b", "f1", 0),
        ];
        let Some(Claim::Replay(stored)) = fold(records.clone(), "b", "f1") else {
            panic!("not a replay");
        };
        assert_eq!(stored.body, "{\"by\":\"a\"}");
        assert_eq!(fold(records, "b", "f2"), Some(Claim::Mismatch));
    }

    #[test]
    fn an_abandoned_claim_is_taken_over_after_the_lease_and_a_release_frees_the_key() {
        let records = vec![pending("a", "f1", -60), pending("b", "f1", 0)];
        assert_eq!(fold(records, "b", "f1"), Some(Claim::Won("b".into())));
        let records = vec![
            pending("a", "f1", 0),
            KeyRecord::Released {
                claim: "a".into(),
                at: at(0),
            },
            pending("b", "f1", 0),
        ];
        assert_eq!(fold(records, "b", "f1"), Some(Claim::Won("b".into())));
    }

    #[test]
    fn the_first_stored_response_stays() {
        let records = vec![
            pending("a", "f1", -60),
            pending("b", "f1", 0),
            done("b", "f1", 0),
            done("a", "f1", 0),
        ];
        let Some(Claim::Replay(stored)) = fold(records, "c", "f1") else {
            panic!("not a replay");
        };
        assert_eq!(stored.body, "{\"by\":\"b\"}");
    }
}
