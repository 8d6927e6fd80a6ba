//! The gateway's local view of what orderflow knows: every order's latest snapshot (from
//! `order-state`, the highest `version` kept) and every order's log records (from
//! `order-events`, for the timeline). Each gateway copy reads both topics from the start, in
//! memory, outside any consumer group — the topics are the truth and the view a cache of them,
//! rebuilt at every start. Requests are answered from the view, never by scanning a topic.
//!
//! The view trails the topics by its lag (records written and not read yet), which every answer
//! of the order API carries (`Orderflow-View-Lag` and `view.lag_records`). On a broker whose high
//! watermarks undercount (Tansu), the lag can read 0 while the last batch is unread.
//!
//! Orders are listed by `placed_at` (an order whose placement hasn't arrived yet, by its latest
//! update until then), then order id. A page ends at a (time, order id) position and the cursor
//! names it, so orders inserted meanwhile never shift a later page: every order present during
//! the walk is listed once, unless its placement arrives during the walk and moves it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use orderflow_domain::{
    Channel, EntityKey, Event, ExceptionRecord, Level, OrderId, OrderSnapshot, Owner, Status,
    Timestamp,
};
use orderflow_runtime::config::KafkaConfig;
use orderflow_runtime::inspect::{inspection, Inspection};
use orderflow_runtime::kafka::{client_config, Topics};
use orderflow_runtime::logread::decode_events;
use orderflow_runtime::RuntimeError;
use orderflow_schema::output::OrderStateRecord;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How far behind the topics the view is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ViewLag {
    /// Records of `order-state` and `order-events` written and not read into the view yet.
    pub lag_records: u64,
    /// Whether the view has read the topics to the end at least once since the gateway started.
    pub caught_up: bool,
}

#[derive(Default)]
struct Data {
    orders: HashMap<OrderId, OrderSnapshot>,
    /// The list order: (sort time, order id).
    index: BTreeSet<(Timestamp, OrderId)>,
    timelines: HashMap<OrderId, Vec<(i32, i64, Event)>>,
    /// (topic, partition) → next offset to read.
    positions: HashMap<(String, i32), i64>,
}

fn sort_time(snapshot: &OrderSnapshot) -> Timestamp {
    snapshot
        .placed_at
        .or(snapshot.updated_at)
        .unwrap_or(Timestamp::MIN_UTC)
}

/// Filters of the order list.
#[derive(Debug, Default, Clone)]
pub struct OrderFilter {
    pub status: Option<Status>,
    pub channel: Option<Channel>,
    pub placed_from: Option<Timestamp>,
    pub placed_before: Option<Timestamp>,
}

/// Filters of the exception list.
#[derive(Debug, Default, Clone)]
pub struct ExceptionFilter {
    pub owner: Option<Owner>,
    pub level: Option<Level>,
}

/// One open exception with its order.
#[derive(Debug, Clone, Serialize)]
pub struct OpenException {
    pub order_id: OrderId,
    pub status: Status,
    #[serde(flatten)]
    pub exception: ExceptionRecord,
}

pub struct View {
    data: RwLock<Data>,
    /// (topic, partition) → high watermark, refreshed every second.
    highs: RwLock<HashMap<(String, i32), i64>>,
    /// The high watermarks when the view started: read to here, it is ready.
    start_ends: std::sync::OnceLock<HashMap<(String, i32), i64>>,
    caught_up: AtomicBool,
}

impl Default for View {
    fn default() -> View {
        View {
            data: RwLock::new(Data::default()),
            highs: RwLock::new(HashMap::new()),
            start_ends: std::sync::OnceLock::new(),
            caught_up: AtomicBool::new(false),
        }
    }
}

/// A position in the order list: after this (time, order id).
pub type Cursor = (Timestamp, String);

impl View {
    /// The lag now: the high watermarks (refreshed every second) minus what has been read.
    pub fn lag(&self) -> ViewLag {
        let lag_records = self.update_lag();
        ViewLag {
            lag_records,
            caught_up: self.caught_up.load(Ordering::Relaxed),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Data> {
        self.data.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn order(&self, order_id: &OrderId) -> Option<OrderSnapshot> {
        self.read().orders.get(order_id).cloned()
    }

    /// The order's timeline and folded state, masked unless `mask` is false; `None` if the log
    /// has no record of it.
    pub fn timeline(&self, order_id: &OrderId, mask: bool) -> Option<Inspection> {
        let data = self.read();
        let records = data.timelines.get(order_id)?;
        Some(inspection(
            order_id,
            records.iter().map(|(p, o, e)| (*p, *o, e)),
            mask,
        ))
    }

    /// Up to `limit` orders after `after`, and the cursor of the next page if there is one.
    pub fn list(
        &self,
        filter: &OrderFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> (Vec<OrderSnapshot>, Option<Cursor>) {
        let data = self.read();
        let matches = |snapshot: &OrderSnapshot| {
            filter.status.is_none_or(|s| snapshot.status == s)
                && filter.channel.is_none_or(|c| snapshot.channel == c)
                && filter
                    .placed_from
                    .is_none_or(|from| snapshot.placed_at.is_some_and(|at| at >= from))
                && filter
                    .placed_before
                    .is_none_or(|to| snapshot.placed_at.is_some_and(|at| at < to))
        };
        let mut page = Vec::new();
        let mut last = None;
        let entries = data.index.iter().filter(|(time, order_id)| {
            after.is_none_or(|(after_time, after_id)| {
                (*time, order_id.to_string()) > (*after_time, after_id.clone())
            })
        });
        for (time, order_id) in entries {
            let Some(snapshot) = data.orders.get(order_id) else {
                continue;
            };
            if !matches(snapshot) {
                continue;
            }
            if page.len() == limit {
                return (page, last);
            }
            last = Some((*time, order_id.to_string()));
            page.push(snapshot.clone());
        }
        (page, None)
    }

    /// Open exceptions, oldest first, after the (raised at, exception id) `after`.
    pub fn open_exceptions(
        &self,
        filter: &ExceptionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> (Vec<OpenException>, Option<Cursor>) {
        let data = self.read();
        let mut open: Vec<OpenException> = data
            .orders
            .values()
            .flat_map(|snapshot| {
                snapshot
                    .open_exceptions
                    .iter()
                    .map(|exception| OpenException {
                        order_id: snapshot.order_id.clone(),
                        status: snapshot.status,
                        exception: exception.clone(),
                    })
            })
            .filter(|open| {
                filter.owner.is_none_or(|o| open.exception.owner == o)
                    && filter.level.is_none_or(|l| open.exception.level == l)
            })
            .filter(|open| {
                after.is_none_or(|(at, id)| {
                    (
                        open.exception.raised_at,
                        open.exception.exception_id.to_string(),
                    ) > (*at, id.clone())
                })
            })
            .collect();
        open.sort_by(|a, b| {
            (a.exception.raised_at, &a.exception.exception_id)
                .cmp(&(b.exception.raised_at, &b.exception.exception_id))
        });
        let next = (open.len() > limit).then(|| {
            let last = &open[limit - 1].exception;
            (last.raised_at, last.exception_id.to_string())
        });
        open.truncate(limit);
        (open, next)
    }

    fn apply_state(data: &mut Data, payload: &[u8]) {
        let Ok(record) = OrderStateRecord::from_json(payload) else {
            return;
        };
        let snapshot = record.record;
        let order_id = snapshot.order_id.clone();
        if let Some(kept) = data.orders.get(&order_id) {
            if kept.version > snapshot.version {
                return;
            }
            data.index.remove(&(sort_time(kept), order_id.clone()));
        }
        data.index.insert((sort_time(&snapshot), order_id.clone()));
        data.orders.insert(order_id, snapshot);
    }

    fn apply_event(data: &mut Data, message: &impl Message) {
        let Ok(events) = decode_events(message) else {
            return;
        };
        for event in events {
            if let EntityKey::Order(order_id) = &event.key {
                data.timelines.entry(order_id.clone()).or_default().push((
                    message.partition(),
                    message.offset(),
                    event,
                ));
            }
        }
    }

    /// Reads `order-state` and `order-events` from the start and follows them; runs until the
    /// process ends.
    pub async fn follow(self: Arc<Self>, kafka: KafkaConfig) -> Result<(), RuntimeError> {
        let topics = Topics::new(&kafka.topic_prefix);
        let (state_topic, log_topic) = (topics.order_state(), topics.order_events());
        let consumer: Arc<StreamConsumer> = Arc::new(
            client_config(&kafka)
                .set(
                    "group.id",
                    format!("orderflow-gateway-view-{}", rand::random::<u64>()),
                )
                .set("enable.auto.commit", "false")
                .set("fetch.wait.max.ms", "50")
                .set("fetch.queue.backoff.ms", "10")
                .create()
                .map_err(RuntimeError::kafka("creating the order view reader"))?,
        );
        let mut assignment = TopicPartitionList::new();
        let mut partitions = Vec::new();
        for topic in [&state_topic, &log_topic] {
            for id in partitions_of(&consumer, topic).await? {
                assignment
                    .add_partition_offset(topic, id, Offset::Beginning)
                    .map_err(RuntimeError::kafka("building assignment"))?;
                partitions.push((topic.clone(), id));
            }
        }
        consumer
            .assign(&assignment)
            .map_err(RuntimeError::kafka("assigning the order view's topics"))?;
        tokio::spawn(self.clone().watch_lag(consumer.clone(), partitions));
        loop {
            let message = match consumer.recv().await {
                Ok(message) => message,
                // The broker away: librdkafka reconnects by itself; the lag shows the gap.
                Err(error) => {
                    tracing::warn!(%error, "reading the order view's topics");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let payload = message.payload().unwrap_or_default();
            let mut data = self.data.write().unwrap_or_else(PoisonError::into_inner);
            if message.topic() == state_topic {
                View::apply_state(&mut data, payload);
            } else {
                View::apply_event(&mut data, &message);
            }
            data.positions.insert(
                (message.topic().to_string(), message.partition()),
                message.offset() + 1,
            );
        }
    }

    /// Refreshes the high watermarks every second and computes the lag from them.
    async fn watch_lag(
        self: Arc<Self>,
        consumer: Arc<StreamConsumer>,
        partitions: Vec<(String, i32)>,
    ) {
        loop {
            let reader = consumer.clone();
            let wanted = partitions.clone();
            let highs = tokio::task::spawn_blocking(move || {
                wanted
                    .into_iter()
                    .filter_map(|(topic, partition)| {
                        reader
                            .fetch_watermarks(&topic, partition, Duration::from_secs(2))
                            .ok()
                            .map(|(_, high)| ((topic, partition), high))
                    })
                    .collect::<HashMap<_, _>>()
            })
            .await
            .unwrap_or_default();
            if highs.len() == partitions.len() {
                // The first complete look is the end the view must reach to be ready; later
                // records written meanwhile don't move that goal.
                let _ = self.start_ends.set(highs.clone());
                *self.highs.write().unwrap_or_else(PoisonError::into_inner) = highs;
            }
            let _ = self.update_lag();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn update_lag(&self) -> u64 {
        let highs = self.highs.read().unwrap_or_else(PoisonError::into_inner);
        if highs.is_empty() {
            return 0;
        }
        let data = self.read();
        let lag: u64 = highs
            .iter()
            .map(|(at, high)| {
                let position = data.positions.get(at).copied().unwrap_or(0);
                u64::try_from(high - position).unwrap_or(0)
            })
            .sum();
        let reached = |ends: &HashMap<(String, i32), i64>| {
            ends.iter()
                .all(|(at, end)| data.positions.get(at).copied().unwrap_or(0) >= *end)
        };
        if lag == 0 || self.start_ends.get().is_some_and(reached) {
            self.caught_up.store(true, Ordering::Relaxed);
        }
        metrics::gauge!(orderflow_runtime::telemetry::GATEWAY_VIEW_LAG.name).set(lag as f64);
        lag
    }
}

/// The partitions of `topic`, asking until the broker answers: a gateway started while the
/// broker is away is alive and not ready, not dead. A topic the broker says doesn't exist is a
/// deployment mistake.
pub(crate) async fn partitions_of(
    consumer: &StreamConsumer,
    topic: &str,
) -> Result<Vec<i32>, RuntimeError> {
    loop {
        let metadata = tokio::task::block_in_place(|| {
            consumer.fetch_metadata(Some(topic), Duration::from_secs(5))
        });
        match metadata {
            Ok(metadata) => {
                let ids: Vec<i32> = metadata
                    .topics()
                    .iter()
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect();
                if ids.is_empty() {
                    return Err(RuntimeError::Config(format!(
                        "topic {topic} does not exist; run `orderflow topics create` first"
                    )));
                }
                return Ok(ids);
            }
            Err(error) => {
                tracing::warn!(%error, topic, "the broker did not answer; asking again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The high watermark of a partition, asking until the broker answers.
pub(crate) async fn high_watermark(consumer: &StreamConsumer, topic: &str, partition: i32) -> i64 {
    loop {
        let watermarks = tokio::task::block_in_place(|| {
            consumer.fetch_watermarks(topic, partition, Duration::from_secs(5))
        });
        match watermarks {
            Ok((_, high)) => return high,
            Err(error) => {
                tracing::warn!(%error, topic, partition, "the broker did not answer; asking again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
