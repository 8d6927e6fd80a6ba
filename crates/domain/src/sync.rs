//! Telling the outside what happened to an order: the changes its sales channel must hear
//! about (accepted by the warehouse, shipped, delivered, cancelled, refunded), every attempt to
//! tell it, and the messages sent to people for it.
//!
//! The changes are derived by the order's fold, like its exceptions, so they are in the
//! published state (`order-state`) and a replay derives the same ones. The senders outside the
//! core (`orderflow-sync`, `orderflow-notify`) record what became of each call as an event of
//! the order ([`SyncAttempt`], [`NoticeDelivery`]) before acting on the outcome: when the next
//! attempt is due is written in the failed attempt, so a restart or a new owner of the
//! partition neither forgets a retry nor makes it early, and a replay reads it back instead of
//! deciding it again.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{EventId, OrderId, Timestamp};
use crate::rules::RetryRules;

/// A kind of change a sales channel hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncChange {
    /// Every parcel of the order was taken by its warehouse (the seed's "WMS marks it
    /// received → reported back to the front-end platform").
    AcceptedByWarehouse,
    /// A parcel left the warehouse, with its carrier and tracking number.
    Shipped,
    /// A parcel reached the customer.
    Delivered,
    /// The order is cancelled (before anything shipped).
    Cancelled,
    /// Money goes back to the customer.
    Refunded,
}

impl SyncChange {
    pub const ALL: [SyncChange; 5] = [
        SyncChange::AcceptedByWarehouse,
        SyncChange::Shipped,
        SyncChange::Delivered,
        SyncChange::Cancelled,
        SyncChange::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncChange::AcceptedByWarehouse => "accepted_by_warehouse",
            SyncChange::Shipped => "shipped",
            SyncChange::Delivered => "delivered",
            SyncChange::Cancelled => "cancelled",
            SyncChange::Refunded => "refunded",
        }
    }
}

impl fmt::Display for SyncChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncChange {
    type Err = String;

    fn from_str(raw: &str) -> Result<SyncChange, String> {
        SyncChange::ALL
            .into_iter()
            .find(|change| change.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown change {raw:?}, expected one of accepted_by_warehouse, shipped, \
                     delivered, cancelled, refunded"
                )
            })
    }
}

/// One change the order's channel must hear about, and every attempt to tell it so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSync {
    /// The change and what tells it apart from others of its kind on the order:
    /// `shipped:SF:SF100` for one parcel, `cancelled` for the order.
    pub change_id: String,
    pub change: SyncChange,
    /// The same on every attempt and after any crash: the channel drops a call it has seen.
    pub idempotency_key: String,
    /// What the channel is told besides the change: `carrier`, `tracking_no`, `warehouse`,
    /// `amount_fen`, `reason`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// When it happened at the source.
    pub happened_at: Timestamp,
    /// The event that made it happen.
    pub cause: EventId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<SyncAttempt>,
}

impl ChannelSync {
    /// The idempotency key of `change_id` on `order_id`.
    pub fn key_of(order_id: &OrderId, change_id: &str) -> String {
        EventId::derive(&["channel_sync", &order_id.to_string(), change_id]).to_string()
    }

    /// The channel acknowledged it.
    pub fn acknowledged(&self) -> bool {
        self.attempts
            .iter()
            .any(|attempt| attempt.outcome == SyncOutcome::Acknowledged)
    }

    /// The last attempt failed and no other is due: the channel will not hear of it unless
    /// someone acts.
    pub fn gave_up(&self) -> bool {
        !self.acknowledged()
            && self
                .attempts
                .last()
                .is_some_and(|attempt| attempt.next_attempt_at.is_none())
    }

    /// When the next attempt is due: at once (`happened_at`) before the first, at the time the
    /// last failure recorded after it; `None` once acknowledged or given up.
    pub fn next_attempt_at(&self) -> Option<Timestamp> {
        if self.acknowledged() {
            return None;
        }
        match self.attempts.last() {
            None => Some(self.happened_at),
            Some(last) => last.next_attempt_at,
        }
    }

    /// Whether an attempt is due at `now`: the first at once, a retry once its time came.
    pub fn is_due(&self, now: Timestamp) -> bool {
        match (self.attempts.is_empty(), self.next_attempt_at()) {
            (_, None) => false,
            (true, Some(_)) => true,
            (false, Some(next)) => next <= now,
        }
    }

    /// Attempts made so far (the number of the last one).
    pub fn attempts_made(&self) -> u32 {
        self.attempts.iter().map(|a| a.attempt).max().unwrap_or(0)
    }
}

/// What became of a call to a channel or a message to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// The receiver took it (2xx).
    Acknowledged,
    /// It failed in a way another try may fix: a timeout, a refused connection, 5xx, 429.
    Failed,
    /// The receiver refused it for good (a 4xx such as a bad request or bad credentials):
    /// trying again would be refused again.
    Rejected,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Acknowledged => "acknowledged",
            SyncOutcome::Failed => "failed",
            SyncOutcome::Rejected => "rejected",
        }
    }
}

/// One attempt to tell a channel about a change, recorded by `orderflow-sync` in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncAttempt {
    pub change_id: String,
    pub idempotency_key: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The connector that made the call (`webhook`, or a platform's own API client).
    pub connector: String,
    /// When the call was made; the event's time is when its answer came.
    pub sent_at: Timestamp,
    pub outcome: SyncOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The answer in a few words (`HTTP 503: upstream down`, `timed out after 5000 ms`).
    pub answer: String,
    /// The decision taken on the answer: when to try again; `None` for no more attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    pub max_attempts: u32,
    pub rule_version: String,
}

impl SyncAttempt {
    pub fn describe(&self) -> String {
        let next = match (self.outcome, self.next_attempt_at) {
            (SyncOutcome::Acknowledged, _) => String::new(),
            (_, Some(next)) => format!("; next attempt at {}", next.to_rfc3339()),
            (_, None) => "; no more attempts".to_string(),
        };
        format!(
            "{} attempt {}/{} via {}: {} ({}){next}; key {}",
            self.change_id,
            self.attempt,
            self.max_attempts,
            self.connector,
            self.outcome.as_str(),
            self.answer,
            self.idempotency_key
        )
    }
}

/// When to try again after attempt `attempt` failed at `now`; `None` when there is to be no
/// other attempt (a refusal for good, or the last attempt the rules allow). A `Retry-After`
/// the receiver asked for is waited out in full.
pub fn next_attempt_at(
    idempotency_key: &str,
    attempt: u32,
    outcome: SyncOutcome,
    retry_after_secs: Option<u64>,
    now: Timestamp,
    rules: &RetryRules,
) -> Option<Timestamp> {
    if outcome != SyncOutcome::Failed || attempt >= rules.max_attempts {
        return None;
    }
    let backoff = backoff_interval_ms(idempotency_key, attempt, rules);
    let asked = retry_after_secs.map_or(0, |secs| secs.saturating_mul(1_000));
    let wait = i64::try_from(backoff.max(asked)).unwrap_or(i64::MAX);
    now.checked_add_signed(chrono::Duration::milliseconds(wait))
}

/// The wait after failed attempt `attempt` (1-based): `first-interval-secs ×
/// multiplier^(attempt-1)`, moved by up to `jitter-percent` by a hash of the key and the
/// attempt. Deterministic, so a replay and every owner of the partition agree on it; different
/// calls spread out instead of retrying together.
pub fn backoff_interval_ms(idempotency_key: &str, attempt: u32, rules: &RetryRules) -> u64 {
    let growth = u64::from(rules.multiplier).saturating_pow(attempt.saturating_sub(1));
    let base = rules
        .first_interval_secs
        .saturating_mul(1_000)
        .saturating_mul(growth);
    let spread = u64::from(rules.jitter_percent) * 10; // per mille either way
    if spread == 0 {
        return base;
    }
    let digest = Sha256::new()
        .chain_update(idempotency_key.as_bytes())
        .chain_update([0x1f])
        .chain_update(attempt.to_string().as_bytes())
        .finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    let roll = u64::from_be_bytes(first) % (2 * spread + 1); // 0 ..= 2 × spread
    let per_mille = 1_000 - spread + roll; // 1000 ± spread
    base.saturating_mul(per_mille) / 1_000
}

/// What became of one notification (`notifications`) sent to a group robot or an SMS
/// gateway, recorded by `orderflow-notify` in the log of its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeDelivery {
    pub notification_id: EventId,
    /// The notification's kind (`exception_escalated`, `out_of_stock_choice`, ...).
    pub notification_kind: String,
    /// Where it went: `dingtalk:ops`, `wecom:warehouse`, `sms`.
    pub target: String,
    /// The key of the message that carried it: a resend after a crash carries the same one.
    pub idempotency_key: String,
    pub sent_at: Timestamp,
    pub outcome: SyncOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub answer: String,
    /// Tries made (a failed send is tried again a few times at once).
    pub attempts: u32,
    /// How many notifications the message carried (a burst is sent as one message to stay
    /// within the robot's rate limit).
    pub batched: u32,
}

impl NoticeDelivery {
    pub fn describe(&self) -> String {
        let batch = if self.batched > 1 {
            format!(", one message for {} notifications", self.batched)
        } else {
            String::new()
        };
        format!(
            "{} {} to {}: {} ({}) after {} tries{batch}; key {}",
            self.notification_kind,
            self.notification_id,
            self.target,
            self.outcome.as_str(),
            self.answer,
            self.attempts,
            self.idempotency_key
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn intervals_grow_stay_within_the_jitter_and_repeat_for_the_same_call() {
        let rules = RetryRules::default();
        let first = backoff_interval_ms("key-1", 1, &rules);
        let second = backoff_interval_ms("key-1", 2, &rules);
        assert!((24_000..=36_000).contains(&first), "{first}");
        assert!((96_000..=144_000).contains(&second), "{second}");
        assert_eq!(first, backoff_interval_ms("key-1", 1, &rules));
        let spread: std::collections::BTreeSet<u64> = (0..20)
            .map(|n| backoff_interval_ms(&format!("key-{n}"), 1, &rules))
            .collect();
        assert!(spread.len() > 10, "calls spread out: {spread:?}");
    }

    #[test]
    fn no_retry_after_a_refusal_or_the_last_attempt_and_retry_after_is_waited_out() {
        let rules = RetryRules::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let retry =
            |attempt, outcome, after| next_attempt_at("k", attempt, outcome, after, now, &rules);
        assert_eq!(retry(1, SyncOutcome::Rejected, None), None);
        assert_eq!(retry(3, SyncOutcome::Failed, None), None);
        let soon = retry(1, SyncOutcome::Failed, None).unwrap();
        assert!(soon > now && soon <= now + chrono::Duration::seconds(36));
        let asked = retry(1, SyncOutcome::Failed, Some(600)).unwrap();
        assert_eq!(asked, now + chrono::Duration::seconds(600));
    }
}
