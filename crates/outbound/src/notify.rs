//! `orderflow-notify`: delivers `notifications` to people.
//!
//! - For an owner or operator (escalations, `sync_failure`, `review_overdue`, alerts at L3):
//!   the robots the rules file routes that owner and level to (`[[alerts.route]]`), in their
//!   real formats, within their rate limit (a burst becomes one message, nothing is dropped).
//! - For a customer (the out-of-stock question, the coupon): an SMS through the gateway, when
//!   the notification's kind has a template.
//!
//! What each send came to is appended to the order's log (`notification_delivered`), so
//! `orderflow inspect` shows what was sent, when and the answer. What was sent is kept in a
//! local store once that record is on the broker; a notification read again (a redelivery after
//! a crash) is not sent again. A crash between a send and that record sends it again on
//! restart with the same idempotency key (`out_id` for the SMS gateway, the message key for a
//! robot), which a receiver that dedupes drops.

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_domain::{mask_phone, Audience, Event, NoticeDelivery, Notification, SyncOutcome};
use orderflow_runtime::config::Config;
use orderflow_runtime::consumer::{self, BatchHandler, Committed};
use orderflow_runtime::kafka::{producer, Topics};
use orderflow_runtime::output::{send, Output, Sent};
use orderflow_runtime::rules::{Clock, RulesSource};
use orderflow_runtime::state::log_record;
use orderflow_runtime::{telemetry, RuntimeError};
use orderflow_schema::output::NotificationRecord;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;
use tracing::{info, warn};

use crate::config::NotifySettings;
use crate::connector::CallAnswer;
use crate::robot::{Alert, Outbox, Robot};
use crate::sms::SmsGateway;

pub const CONSUMER_NAME: &str = "orderflow-notify";

pub struct NotifyConsumer {
    topics: Topics,
    producer: FutureProducer,
    db: sled::Db,
    rules: RulesSource,
    clock: Clock,
    robots: BTreeMap<String, Robot>,
    sms: Option<SmsGateway>,
}

pub fn store_dir(config: &Config, instance: &str) -> std::path::PathBuf {
    config.store.dir_of(CONSUMER_NAME, instance)
}

pub async fn run(
    config: &Config,
    instance: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let settings = NotifySettings::from_config(config)?;
    let mut robots = BTreeMap::new();
    for (name, endpoint) in &settings.robot {
        let robot = Robot::new(name, endpoint)
            .map_err(|error| RuntimeError::Config(format!("notify.robot.{name}: {error}")))?;
        robots.insert(name.clone(), robot);
    }
    let sms = match &settings.sms {
        Some(sms) => Some(
            SmsGateway::new(sms)
                .map_err(|error| RuntimeError::Config(format!("notify.sms: {error}")))?,
        ),
        None => None,
    };
    let rules = RulesSource::open(config)?;
    for route in &rules.current().alerts.routes {
        for robot in &route.robots {
            if !robots.contains_key(robot) {
                warn!(robot = %robot, "the rules route alerts to a robot that [notify.robot.*] does not configure; those alerts are not sent");
            }
        }
    }
    let dir = store_dir(config, instance);
    let db = sled::open(&dir).map_err(|error| {
        RuntimeError::Fatal(format!(
            "the notify store {} could not be opened: {error}",
            dir.display()
        ))
    })?;
    let topics = Topics::new(&config.kafka.topic_prefix);
    let group = format!("{}{CONSUMER_NAME}", config.kafka.topic_prefix);
    let (consumer, _) = consumer::subscribe(config, &group, &topics.notifications(), Committed)?;
    let mut notify = NotifyConsumer {
        producer: producer(&config.kafka)?,
        topics,
        db,
        rules,
        clock: Clock::from_config(config),
        sms,
        robots,
    };
    notify.clock.now()?;
    info!(consumer = CONSUMER_NAME, store = %dir.display(), robots = ?notify.robots.keys().collect::<Vec<_>>(),
        sms = notify.sms.is_some(), "notify started");
    consumer::run(
        CONSUMER_NAME,
        &consumer,
        config.consumer.max_batch,
        &mut notify,
        shutdown,
    )
    .await
}

/// Where a notification goes.
enum Route {
    Robots(Vec<String>),
    Sms(String),
    Nowhere(&'static str),
}

impl NotifyConsumer {
    fn route(&self, notification: &Notification) -> Route {
        match &notification.audience {
            Audience::Owner { owner, level } => {
                let names: Vec<String> = self
                    .rules
                    .current()
                    .alerts
                    .robots_for(*owner, *level)
                    .into_iter()
                    .filter(|name| self.robots.contains_key(*name))
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    Route::Nowhere("no robot is routed this owner and level")
                } else {
                    Route::Robots(names)
                }
            }
            Audience::Customer { phone, .. } => match (phone, &self.sms) {
                (Some(phone), Some(_)) => Route::Sms(phone.clone()),
                (None, _) => Route::Nowhere("the order has no phone"),
                (_, None) => Route::Nowhere("no SMS gateway is configured"),
            },
            Audience::Operator { .. } => Route::Nowhere("operators are told in the trail"),
        }
    }

    fn sent_before(&self, notification_id: &str, target: &str) -> Result<bool, RuntimeError> {
        self.db
            .contains_key(sent_key(notification_id, target))
            .map_err(store_error)
    }

    fn delivery(
        &self,
        notification: &Notification,
        target: &str,
        key: &str,
        answer: &CallAnswer,
        tries: u32,
        batched: usize,
    ) -> Result<Output, RuntimeError> {
        let outcome = answer.outcome;
        let channel = target.split(':').next().unwrap_or(target).to_string();
        metrics::counter!(telemetry::OUTBOUND_MESSAGES.name, "target" => channel,
            "outcome" => outcome.as_str())
        .increment(1);
        if outcome != SyncOutcome::Acknowledged {
            warn!(order_id = %notification.order_id, notification_id = %notification.notification_id,
                target, answer = %answer.answer, "a notification was not delivered");
        }
        let delivery = NoticeDelivery {
            notification_id: notification.notification_id.clone(),
            notification_kind: notification.kind.clone(),
            target: target.to_string(),
            idempotency_key: key.to_string(),
            sent_at: self.clock.now()?,
            outcome,
            http_status: answer.http_status,
            answer: answer.answer.clone(),
            attempts: tries,
            batched: u32::try_from(batched).unwrap_or(u32::MAX),
        };
        let event = Event::notice_delivery(&notification.order_id, CONSUMER_NAME, delivery);
        log_record(&self.topics, std::slice::from_ref(&event))
    }
}

fn sent_key(notification_id: &str, target: &str) -> String {
    format!("s/{notification_id}/{target}")
}

fn store_error(error: sled::Error) -> RuntimeError {
    RuntimeError::Fatal(format!("notify store: {error}"))
}

impl BatchHandler for NotifyConsumer {
    /// What the batch sent: (notification id, target).
    type Done = Vec<(String, String)>;

    async fn handle<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
        batch: &[OwnedMessage],
    ) -> Result<(Sent, Self::Done), RuntimeError> {
        let mut notifications: Vec<Notification> = Vec::new();
        for message in batch {
            match message.payload().map(NotificationRecord::from_json) {
                Some(Ok(record)) => notifications.push(record.record),
                Some(Err(error)) => {
                    warn!(partition = message.partition(), offset = message.offset(),
                    %error, "a notifications record is not a notification this build reads; skipped")
                }
                None => {}
            }
        }
        let mut per_robot: BTreeMap<String, Vec<(Alert, usize)>> = BTreeMap::new();
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut done = Vec::new();
        for (index, notification) in notifications.iter().enumerate() {
            match self.route(notification) {
                Route::Robots(names) => {
                    let audience = match &notification.audience {
                        Audience::Owner { owner, level } => {
                            format!("{} {}", owner.as_str(), level.as_str())
                        }
                        _ => String::new(),
                    };
                    for name in names {
                        let target = self
                            .robots
                            .get(&name)
                            .map(Robot::target)
                            .unwrap_or_default();
                        if self.sent_before(notification.notification_id.as_str(), &target)? {
                            continue;
                        }
                        let alert = Alert {
                            notification_id: notification.notification_id.to_string(),
                            order_id: notification.order_id.to_string(),
                            kind: notification.kind.clone(),
                            audience: audience.clone(),
                            message: notification.message.clone(),
                        };
                        per_robot.entry(name).or_default().push((alert, index));
                    }
                }
                Route::Sms(phone) => {
                    if !self.sent_before(notification.notification_id.as_str(), "sms")? {
                        texts.push((index, phone));
                    }
                }
                Route::Nowhere(why) => {
                    tracing::debug!(notification_id = %notification.notification_id,
                        kind = %notification.kind, why, "notification not sent");
                    metrics::counter!(telemetry::OUTBOUND_MESSAGES.name, "target" => "none",
                        "outcome" => "skipped")
                    .increment(1);
                }
            }
        }
        let mut outputs = Vec::new();
        for (name, queued) in per_robot {
            let alerts: Vec<Alert> = queued.iter().map(|(alert, _)| alert.clone()).collect();
            let Some(mut outbox) = self
                .robots
                .get_mut(&name)
                .map(|robot| std::mem::replace(&mut robot.outbox, Outbox::new(1, 0)))
            else {
                continue;
            };
            let Some(robot) = self.robots.get(&name) else {
                continue;
            };
            let target = robot.target();
            let results = outbox
                .dispatch(&alerts, |chunk| async move {
                    let key = robot.message_key(&chunk);
                    let (answer, tries) = robot.post(&chunk).await;
                    (key, answer, tries)
                })
                .await;
            if let Some(robot) = self.robots.get_mut(&name) {
                robot.outbox = outbox;
            }
            for (chunk, (key, answer, tries)) in results {
                info!(robot = %target, alerts = chunk.len(), outcome = answer.outcome.as_str(),
                    answer = %answer.answer, "robot message sent");
                for alert in &chunk {
                    let Some((_, index)) = queued
                        .iter()
                        .find(|(queued, _)| queued.notification_id == alert.notification_id)
                    else {
                        continue;
                    };
                    let notification = &notifications[*index];
                    // The KPI digest names no real order: recording it would create one.
                    if notification.is_about_its_order() {
                        outputs.push(self.delivery(
                            notification,
                            &target,
                            &key,
                            &answer,
                            tries,
                            chunk.len(),
                        )?);
                    }
                    done.push((alert.notification_id.clone(), target.clone()));
                }
            }
        }
        for (index, phone) in texts {
            let notification = &notifications[index];
            let Some(gateway) = &self.sms else {
                continue;
            };
            let Some(sms) = gateway.compose(notification, &phone) else {
                metrics::counter!(telemetry::OUTBOUND_MESSAGES.name, "target" => "none",
                    "outcome" => "skipped")
                .increment(1);
                continue;
            };
            let answer = gateway.send(&sms).await;
            info!(order_id = %notification.order_id, kind = %notification.kind,
                phone = %mask_phone(&phone), template = %sms.template_id,
                outcome = answer.outcome.as_str(), "SMS sent");
            outputs.push(self.delivery(notification, "sms", &sms.out_id, &answer, 1, 1)?);
            done.push((notification.notification_id.to_string(), "sms".to_string()));
        }
        Ok((send(&self.producer, &outputs).await?, done))
    }

    fn acknowledged(&mut self, sent: Self::Done, _idle: bool) -> Result<(), RuntimeError> {
        if sent.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (notification_id, target) in &sent {
            batch.insert(sent_key(notification_id, target).as_bytes(), &b"sent"[..]);
        }
        self.db.apply_batch(batch).map_err(store_error)?;
        self.db.flush().map_err(store_error)?;
        Ok(())
    }

    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    async fn tick<C: ConsumerContext>(
        &mut self,
        _consumer: &StreamConsumer<C>,
    ) -> Result<(), RuntimeError> {
        self.rules.reload_if_changed();
        Ok(())
    }
}
