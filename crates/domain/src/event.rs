//! The canonical events of the order event log.
//!
//! Events are facts in the past tense. Intake consumers turn input records into these; the
//! state consumer appends its own decisions (`OrderAutoApproved`, `ManualReviewRequired`) so a
//! replay reads a decision instead of making it again.

use serde::{Deserialize, Serialize};

use crate::exception::{ExceptionKind, Level};
use crate::ids::{Actor, ActorRole, Channel, EntityKey, EventId, Fen, OrderId, Timestamp};
use crate::personal::{mask_buyer_id, mask_detail, mask_invoice_title, mask_phone, mask_tax_id};
use crate::rules::PurchaseLimit;
use crate::sync::{NoticeDelivery, SyncAttempt};

/// Version of the log record layout; an older version is upcast on read, never rewritten.
pub const LOG_SCHEMA_VERSION: u32 = 1;

/// One record of the order event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub schema_version: u32,
    pub event_id: EventId,
    /// The log key: the order id, or `sku:{sku}` for stock facts.
    pub key: EntityKey,
    /// When it happened at the source (for decisions: when it was decided).
    pub occurred_at: Timestamp,
    pub source: Source,
    pub body: EventBody,
}

/// Where an event came from: an input topic position, or the consumer that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Input topic name, or the deciding consumer (e.g. `orderflow-state`).
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// For decisions: the event that led to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<EventId>,
}

impl Source {
    /// A source known by its origin alone: no topic position, channel or cause.
    pub fn origin(origin: &str) -> Source {
        Source {
            origin: origin.to_string(),
            partition: None,
            offset: None,
            channel: None,
            caused_by: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    OrderPlaced(OrderPlaced),
    OrderCancelled {
        reason: Option<String>,
    },
    OrderCompleted,
    PaymentCaptured {
        payment_id: String,
        amount_fen: Fen,
        method: String,
    },
    PaymentFailed {
        payment_id: String,
        reason: String,
    },
    PaymentRefunded {
        refund_id: String,
        amount_fen: Fen,
        reason: Option<String>,
    },
    ShipmentDispatched {
        carrier: String,
        tracking_no: String,
        warehouse: String,
    },
    ShipmentDelivered {
        carrier: String,
        tracking_no: String,
    },
    ShipmentReturned {
        carrier: String,
        tracking_no: String,
        warehouse: String,
        reason: Option<String>,
    },
    StockLevelChanged {
        sku: String,
        warehouse: String,
        on_hand: u64,
    },
    /// The WMS took a routed order ("received"): from `in.shipments`.
    WarehouseAccepted {
        warehouse: String,
        routing_id: String,
    },
    /// Operator actions and customer choices from `in.actions`, attributed to an actor.
    ReviewApproved {
        action: Action,
    },
    ReviewRejected {
        action: Action,
    },
    ExceptionResolved {
        action: Action,
        exception_id: EventId,
    },
    ExceptionAssigned {
        action: Action,
        exception_id: EventId,
        assignee: String,
    },
    CustomerChoice {
        action: Action,
        choice: Choice,
    },
    /// Decision: intake screening of the order under `rule_version`.
    OrderScreened(Screening),
    /// Decision: the order passed automatic approval under `rule_version`.
    OrderAutoApproved(Approval),
    /// Decision: the order needs a person to approve it under `rule_version`.
    ManualReviewRequired(Approval),
    /// Decision: reserve the order's lines (`wait`: join the queue for what is missing).
    StockRequested(StockRequest),
    /// Decision: where the order's parcels ship from.
    OrderRouted(Routing),
    /// Decision (timer): unpaid past its channel's payment timeout.
    PaymentTimedOut {
        timeout_minutes: u32,
        rule_version: String,
    },
    /// Decision (timer): an exception was not handled within its SLA.
    ExceptionEscalated {
        exception_id: EventId,
        to: Level,
        sla_minutes: u32,
        rule_version: String,
    },
    /// Decision: give the customer's money back, with an optional compensation coupon.
    RefundRequested {
        amount_fen: Fen,
        coupon_fen: Fen,
        reason: String,
        rule_version: String,
    },
    /// Message to a buyer (`buyer:{id}`): check the order against the buyer's recent orders.
    BuyerCheckRequested(BuyerCheck),
    /// Reply to the order: what the buyer check found.
    BuyerChecked {
        findings: Vec<Finding>,
    },
    /// Message to a sku (`sku:{sku}`): reserve `qty` for `order_id`.
    StockReservationRequested {
        order_id: OrderId,
        qty: u64,
        preferred_warehouse: String,
        wait: bool,
    },
    /// Message to a sku: the order no longer needs what it reserved or waits for.
    StockReleaseRequested {
        order_id: OrderId,
        reason: String,
    },
    /// Reply to the order: `qty` of `sku` is held for it in `warehouse`.
    StockReserved {
        sku: String,
        warehouse: String,
        qty: u64,
    },
    /// Reply to the order: not enough `sku` anywhere.
    StockShortage {
        sku: String,
        qty: u64,
        available: u64,
    },
    /// Decision (timer): the order waited for a person's review longer than the review SLA.
    ReviewOverdue {
        sla_minutes: u32,
        rule_version: String,
    },
    /// `orderflow-sync` told (or tried to tell) the order's channel about a change, and decided
    /// from the answer whether and when to try again.
    ChannelSyncAttempted(SyncAttempt),
    /// `orderflow-notify` sent (or tried to send) a notification of the order.
    NotificationDelivered(NoticeDelivery),
}

impl EventBody {
    /// The snake_case name used on the wire, in logs and in metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::OrderPlaced(_) => "order_placed",
            EventBody::OrderCancelled { .. } => "order_cancelled",
            EventBody::OrderCompleted => "order_completed",
            EventBody::PaymentCaptured { .. } => "payment_captured",
            EventBody::PaymentFailed { .. } => "payment_failed",
            EventBody::PaymentRefunded { .. } => "payment_refunded",
            EventBody::ShipmentDispatched { .. } => "shipment_dispatched",
            EventBody::ShipmentDelivered { .. } => "shipment_delivered",
            EventBody::ShipmentReturned { .. } => "shipment_returned",
            EventBody::StockLevelChanged { .. } => "stock_level_changed",
            EventBody::WarehouseAccepted { .. } => "warehouse_accepted",
            EventBody::ReviewApproved { .. } => "review_approved",
            EventBody::ReviewRejected { .. } => "review_rejected",
            EventBody::ExceptionResolved { .. } => "exception_resolved",
            EventBody::ExceptionAssigned { .. } => "exception_assigned",
            EventBody::CustomerChoice { .. } => "customer_choice",
            EventBody::OrderScreened(_) => "order_screened",
            EventBody::OrderAutoApproved(_) => "order_auto_approved",
            EventBody::ManualReviewRequired(_) => "manual_review_required",
            EventBody::StockRequested(_) => "stock_requested",
            EventBody::OrderRouted(_) => "order_routed",
            EventBody::PaymentTimedOut { .. } => "payment_timed_out",
            EventBody::ExceptionEscalated { .. } => "exception_escalated",
            EventBody::RefundRequested { .. } => "refund_requested",
            EventBody::BuyerCheckRequested(_) => "buyer_check_requested",
            EventBody::BuyerChecked { .. } => "buyer_checked",
            EventBody::StockReservationRequested { .. } => "stock_reservation_requested",
            EventBody::StockReleaseRequested { .. } => "stock_release_requested",
            EventBody::StockReserved { .. } => "stock_reserved",
            EventBody::StockShortage { .. } => "stock_shortage",
            EventBody::ReviewOverdue { .. } => "review_overdue",
            EventBody::ChannelSyncAttempted(_) => "channel_sync_attempted",
            EventBody::NotificationDelivered(_) => "notification_delivered",
        }
    }

    /// Whether the state consumer wrote it (a decision or a message between entities) rather
    /// than an intake consumer.
    pub fn is_derived(&self) -> bool {
        !matches!(
            self,
            EventBody::OrderPlaced(_)
                | EventBody::OrderCancelled { .. }
                | EventBody::OrderCompleted
                | EventBody::PaymentCaptured { .. }
                | EventBody::PaymentFailed { .. }
                | EventBody::PaymentRefunded { .. }
                | EventBody::ShipmentDispatched { .. }
                | EventBody::ShipmentDelivered { .. }
                | EventBody::ShipmentReturned { .. }
                | EventBody::StockLevelChanged { .. }
                | EventBody::WarehouseAccepted { .. }
                | EventBody::ReviewApproved { .. }
                | EventBody::ReviewRejected { .. }
                | EventBody::ExceptionResolved { .. }
                | EventBody::ExceptionAssigned { .. }
                | EventBody::CustomerChoice { .. }
        )
    }

    /// The actor of an operator action or customer choice.
    pub fn action(&self) -> Option<&Action> {
        match self {
            EventBody::ReviewApproved { action }
            | EventBody::ReviewRejected { action }
            | EventBody::ExceptionResolved { action, .. }
            | EventBody::ExceptionAssigned { action, .. }
            | EventBody::CustomerChoice { action, .. } => Some(action),
            _ => None,
        }
    }

    /// The rule version a decision was taken under.
    pub fn rule_version(&self) -> Option<&str> {
        match self {
            EventBody::OrderScreened(Screening { rule_version, .. })
            | EventBody::OrderAutoApproved(Approval { rule_version, .. })
            | EventBody::ManualReviewRequired(Approval { rule_version, .. })
            | EventBody::StockRequested(StockRequest { rule_version, .. })
            | EventBody::OrderRouted(Routing { rule_version, .. })
            | EventBody::PaymentTimedOut { rule_version, .. }
            | EventBody::ExceptionEscalated { rule_version, .. }
            | EventBody::RefundRequested { rule_version, .. }
            | EventBody::ReviewOverdue { rule_version, .. } => Some(rule_version),
            EventBody::ChannelSyncAttempted(attempt) => Some(&attempt.rule_version),
            _ => None,
        }
    }

    /// One line for people: what the fact says, personal data masked.
    pub fn describe(&self) -> String {
        if self.is_derived() {
            self.describe_derived()
        } else {
            self.describe_fact()
        }
    }

    /// [`EventBody::describe`] of what an intake consumer wrote: facts and actions.
    fn describe_fact(&self) -> String {
        match self {
            EventBody::OrderPlaced(order) => order.describe(),
            EventBody::OrderCancelled { reason } => {
                format!("reason {}", reason.as_deref().unwrap_or("-"))
            }
            EventBody::OrderCompleted => String::new(),
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            } => format!("{payment_id} {amount_fen} fen via {method}"),
            EventBody::PaymentFailed { payment_id, reason } => format!("{payment_id}: {reason}"),
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                ..
            } => format!("{refund_id} {amount_fen} fen"),
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            } => format!("{carrier} {tracking_no} from {warehouse}"),
            EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            } => format!("{carrier} {tracking_no}"),
            EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                ..
            } => format!("{carrier} {tracking_no} back to {warehouse}"),
            EventBody::StockLevelChanged {
                warehouse, on_hand, ..
            } => format!("{on_hand} on hand in {warehouse}"),
            EventBody::WarehouseAccepted {
                warehouse,
                routing_id,
            } => format!("{warehouse} received {routing_id}"),
            EventBody::ReviewApproved { action } | EventBody::ReviewRejected { action } => {
                action.describe()
            }
            EventBody::ExceptionResolved {
                action,
                exception_id,
            } => format!("{exception_id} {}", action.describe()),
            EventBody::ExceptionAssigned {
                action,
                exception_id,
                assignee,
            } => format!("{exception_id} to {assignee} {}", action.describe()),
            EventBody::CustomerChoice { action, choice } => {
                format!("{} {}", choice.as_str(), action.describe())
            }
            // Decisions and messages: `describe_derived`.
            _ => String::new(),
        }
    }

    /// [`EventBody::describe`] of what the state consumer wrote: decisions and messages.
    fn describe_derived(&self) -> String {
        match self {
            EventBody::OrderAutoApproved(rule) | EventBody::ManualReviewRequired(rule) => format!(
                "rule {} (auto-approve below {} fen)",
                rule.rule_version, rule.threshold_fen
            ),
            EventBody::OrderScreened(screening) => format!(
                "rule {}: {}",
                screening.rule_version,
                describe_findings(&screening.findings)
            ),
            EventBody::StockRequested(request) => request.describe(),
            EventBody::OrderRouted(routing) => routing.describe(),
            EventBody::PaymentTimedOut {
                timeout_minutes,
                rule_version,
            } => format!("rule {rule_version}: unpaid after {timeout_minutes} min"),
            EventBody::ExceptionEscalated {
                exception_id,
                to,
                sla_minutes,
                rule_version,
            } => format!(
                "rule {rule_version}: {exception_id} to {} after {sla_minutes} min",
                to.as_str()
            ),
            EventBody::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                rule_version,
            } => {
                format!("rule {rule_version}: {amount_fen} fen, coupon {coupon_fen} fen ({reason})")
            }
            EventBody::BuyerCheckRequested(check) => {
                format!("order {} basket {}", check.order_id, check.basket)
            }
            EventBody::BuyerChecked { findings } => describe_findings(findings),
            EventBody::StockReservationRequested {
                order_id,
                qty,
                wait,
                ..
            } => format!(
                "{qty} for {order_id}{}",
                if *wait { " (waits)" } else { "" }
            ),
            EventBody::StockReleaseRequested { order_id, reason } => {
                format!("for {order_id}: {reason}")
            }
            EventBody::StockReserved {
                sku,
                warehouse,
                qty,
            } => format!("{qty} × {sku} in {warehouse}"),
            EventBody::StockShortage {
                sku,
                qty,
                available,
            } => format!("{qty} × {sku} wanted, {available} available"),
            EventBody::ReviewOverdue {
                sla_minutes,
                rule_version,
            } => format!("rule {rule_version}: not reviewed within {sla_minutes} min"),
            EventBody::ChannelSyncAttempted(attempt) => attempt.describe(),
            EventBody::NotificationDelivered(delivery) => delivery.describe(),
            // Facts and actions: `describe_fact`.
            _ => String::new(),
        }
    }

    /// The fields beyond the order that identify this fact: a retry of the same fact repeats
    /// them, a different fact differs in at least one.
    fn identity(&self) -> Vec<&str> {
        match self {
            EventBody::OrderPlaced(_)
            | EventBody::OrderCancelled { .. }
            | EventBody::OrderCompleted => vec![],
            EventBody::WarehouseAccepted { routing_id, .. } => vec![routing_id],
            EventBody::ReviewApproved { action }
            | EventBody::ReviewRejected { action }
            | EventBody::ExceptionResolved { action, .. }
            | EventBody::ExceptionAssigned { action, .. }
            | EventBody::CustomerChoice { action, .. } => vec![&action.action_id],
            EventBody::PaymentCaptured { payment_id, .. }
            | EventBody::PaymentFailed { payment_id, .. } => vec![payment_id],
            EventBody::PaymentRefunded { refund_id, .. } => vec![refund_id],
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                ..
            }
            | EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            }
            | EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                ..
            } => vec![carrier, tracking_no],
            EventBody::StockLevelChanged { sku, warehouse, .. } => vec![warehouse, sku],
            // Decisions and messages get their ids from `Event::decision` / `Event::message`.
            _ => vec![],
        }
    }
}

impl Event {
    /// The event with personal data masked, for logs and operator output.
    pub fn masked(&self) -> Event {
        let mut event = self.clone();
        match &mut event.body {
            EventBody::OrderPlaced(order) => order.mask(),
            // The customer who chose is the buyer: their id is the buyer's.
            EventBody::CustomerChoice { action, .. } => {
                action.actor.id = mask_buyer_id(&action.actor.id);
            }
            _ => {}
        }
        event
    }

    /// Builds a fact from a source with its deterministic id (see `docs/input-contract.md`).
    pub fn fact(key: EntityKey, occurred_at: Timestamp, source: Source, body: EventBody) -> Event {
        let key_text = key.to_string();
        let occurred = occurred_at.to_rfc3339();
        let mut parts = vec![body.kind(), key_text.as_str()];
        parts.extend(body.identity());
        if matches!(body, EventBody::StockLevelChanged { .. }) {
            // Stock levels are snapshots: the same sku and warehouse at another time is news.
            parts.push(&occurred);
        }
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&parts),
            key,
            occurred_at,
            source,
            body,
        }
    }

    /// Builds a decision about an order. Its id depends only on the order and the kind of
    /// decision, so deciding twice (after a crash, or before the first decision is read back)
    /// yields the same id and the fold keeps only the first.
    pub fn decision(
        order_id: &OrderId,
        decided_at: Timestamp,
        decider: &str,
        caused_by: Option<&EventId>,
        body: EventBody,
    ) -> Event {
        let order_text = order_id.to_string();
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&["decision", &decision_slot(&body), &order_text]),
            key: EntityKey::Order(order_id.clone()),
            occurred_at: decided_at,
            source: Source {
                origin: decider.to_string(),
                partition: None,
                offset: None,
                channel: Some(order_id.channel()),
                caused_by: caused_by.cloned(),
            },
            body,
        }
    }

    /// What became of an attempt to tell the order's channel about a change, recorded by
    /// `origin` (`orderflow-sync`). One id per change and attempt: an attempt recorded again
    /// after a crash is a copy the fold drops.
    pub fn sync_attempt(order_id: &OrderId, origin: &str, attempt: SyncAttempt) -> Event {
        let order_text = order_id.to_string();
        let number = attempt.attempt.to_string();
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&[
                "channel_sync_attempted",
                &order_text,
                &attempt.change_id,
                &number,
            ]),
            key: EntityKey::Order(order_id.clone()),
            occurred_at: attempt.sent_at,
            source: Source {
                channel: Some(order_id.channel()),
                ..Source::origin(origin)
            },
            body: EventBody::ChannelSyncAttempted(attempt),
        }
    }

    /// What became of a notification of the order, recorded by `origin` (`orderflow-notify`).
    /// One id per notification and target.
    pub fn notice_delivery(order_id: &OrderId, origin: &str, delivery: NoticeDelivery) -> Event {
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&[
                "notification_delivered",
                delivery.notification_id.as_str(),
                &delivery.target,
            ]),
            key: EntityKey::Order(order_id.clone()),
            occurred_at: delivery.sent_at,
            source: Source {
                channel: Some(order_id.channel()),
                ..Source::origin(origin)
            },
            body: EventBody::NotificationDelivered(delivery),
        }
    }

    /// A level snapshot of `sku` in `warehouse`, keyed by the sku.
    pub fn stock_level(
        sku: &str,
        warehouse: &str,
        on_hand: u64,
        occurred_at: Timestamp,
        source: Source,
    ) -> Event {
        Event::fact(
            EntityKey::Stock(sku.to_string()),
            occurred_at,
            source,
            EventBody::StockLevelChanged {
                sku: sku.to_string(),
                warehouse: warehouse.to_string(),
                on_hand,
            },
        )
    }

    /// Builds a message one entity's fold sends another (a request to a sku or a buyer, or
    /// the reply). It is a pure consequence of `cause`: same cause, same id, same time, so a
    /// message sent again after a crash is a duplicate the receiver drops.
    pub fn message(to: EntityKey, cause: &Event, body: EventBody) -> Event {
        let to_text = to.to_string();
        let channel = match &to {
            EntityKey::Order(order_id) => Some(order_id.channel()),
            _ => cause.source.channel,
        };
        Event {
            schema_version: LOG_SCHEMA_VERSION,
            event_id: EventId::derive(&["message", body.kind(), cause.event_id.as_str(), &to_text]),
            key: to,
            occurred_at: cause.occurred_at,
            source: Source {
                origin: DERIVED_ORIGIN.to_string(),
                partition: None,
                offset: None,
                channel,
                caused_by: Some(cause.event_id.clone()),
            },
            body,
        }
    }
}

/// The origin of decisions and messages: the state consumer.
pub const DERIVED_ORIGIN: &str = "orderflow-state";

/// Decisions that exclude each other share a slot, so only one of them can ever count; a
/// decision taken twice (after a crash, or by two owners during a rebalance) has one id.
fn decision_slot(body: &EventBody) -> String {
    match body {
        EventBody::OrderAutoApproved(_) | EventBody::ManualReviewRequired(_) => "approval".into(),
        EventBody::StockRequested(request) => {
            format!(
                "stock_requested:{}",
                if request.wait { "wait" } else { "first" }
            )
        }
        EventBody::ExceptionEscalated {
            exception_id, to, ..
        } => format!("exception_escalated:{exception_id}:{}", to.as_str()),
        other => other.kind().to_string(),
    }
}

fn describe_findings(findings: &[Finding]) -> String {
    if findings.is_empty() {
        return "passed".to_string();
    }
    findings
        .iter()
        .map(|finding| format!("{} ({})", finding.code, finding.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub buyer_id: String,
    pub phone: String,
    pub address: Address,
    pub lines: Vec<OrderLine>,
    pub discount_fen: Fen,
    pub shipping_fen: Fen,
    pub total_fen: Fen,
    pub payment_method: String,
    pub coupon_type: Option<String>,
    pub invoice: Option<Invoice>,
}

impl OrderPlaced {
    fn describe(&self) -> String {
        format!(
            "buyer {} phone {} {}{}{} {} lines total {} fen via {}",
            mask_buyer_id(&self.buyer_id),
            mask_phone(&self.phone),
            self.address.province,
            self.address.city,
            self.address.district,
            self.lines.len(),
            self.total_fen,
            self.payment_method
        )
    }

    /// Masks the personal data in place: the buyer id, the phone, the street address and the
    /// invoice's title and tax id.
    pub fn mask(&mut self) {
        self.buyer_id = mask_buyer_id(&self.buyer_id);
        self.phone = mask_phone(&self.phone);
        self.address.detail = mask_detail(&self.address.detail);
        if let Some(invoice) = &mut self.invoice {
            invoice.title = mask_invoice_title(&invoice.title);
            invoice.tax_id = invoice.tax_id.as_deref().map(mask_tax_id);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub province: String,
    pub city: String,
    pub district: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub category: String,
    pub qty: u32,
    pub unit_price_fen: Fen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceKind {
    Personal,
    Company,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub kind: InvoiceKind,
    pub title: String,
    pub tax_id: Option<String>,
}

/// The rule under which an approval decision was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub rule_version: String,
    pub threshold_fen: Fen,
}

/// Who did an operator action or made a customer choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// The sender's id for this action: a resend of the same action repeats it.
    pub action_id: String,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Action {
    fn describe(&self) -> String {
        format!(
            "by {} ({}){}",
            match self.actor.role {
                ActorRole::Customer => mask_buyer_id(&self.actor.id),
                ActorRole::Operator => self.actor.id.clone(),
            },
            self.actor.role.as_str(),
            self.note
                .as_deref()
                .map(|note| format!(": {note}"))
                .unwrap_or_default()
        )
    }
}

/// The customer's answer to "out of stock: wait or refund?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Wait,
    Refund,
}

impl Choice {
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Wait => "wait",
            Choice::Refund => "refund",
        }
    }
}

/// Something screening found wrong with an order: becomes an exception of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: ExceptionKind,
    pub code: String,
    pub detail: String,
}

/// The intake screening decision: the single-order findings, and the parameters of the
/// buyer check it asks for (so the buyer's fold needs no rules of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screening {
    pub rule_version: String,
    pub findings: Vec<Finding>,
    pub duplicate_window_secs: u64,
    pub purchase_limits: Vec<PurchaseLimit>,
}

/// What a buyer's fold checks an order against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerCheck {
    pub order_id: OrderId,
    /// The sorted `sku×qty` list: equal baskets have equal text.
    pub basket: String,
    pub placed_at: Timestamp,
    pub lines: Vec<SkuQty>,
    pub rule_version: String,
    pub duplicate_window_secs: u64,
    pub purchase_limits: Vec<PurchaseLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkuQty {
    pub sku: String,
    pub qty: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockRequest {
    pub rule_version: String,
    pub preferred_warehouse: String,
    pub wait: bool,
}

impl StockRequest {
    fn describe(&self) -> String {
        format!(
            "rule {}: from {}{}",
            self.rule_version,
            self.preferred_warehouse,
            if self.wait { ", waiting for stock" } else { "" }
        )
    }
}

/// The routing decision: one parcel per warehouse holding the order's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    pub rule_version: String,
    pub parcels: Vec<Parcel>,
}

impl Routing {
    fn describe(&self) -> String {
        let warehouses: Vec<&str> = self
            .parcels
            .iter()
            .map(|parcel| parcel.warehouse.as_str())
            .collect();
        format!("rule {}: {}", self.rule_version, warehouses.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    /// What the WMS echoes back when it accepts the parcel.
    pub routing_id: String,
    pub warehouse: String,
    pub lines: Vec<SkuQty>,
}
