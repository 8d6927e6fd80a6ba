//! The order event log's protobuf messages (`orderflow.log.v1`) to domain events and back.
//!
//! Domain → wire can't fail; wire → domain checks what the wire can't say (a required message
//! present, an order id that parses, an enum value this build knows) and names the field when
//! it refuses, never its value: log records hold personal data.

use std::fmt;

use chrono::DateTime;
use orderflow_domain::{
    Action, ActorRole, Address, Approval, BuyerCheck, Channel, Choice, EntityKey, Event, EventBody,
    EventId, ExceptionKind, Finding, Invoice, InvoiceKind, Level, NoticeDelivery, OrderId,
    OrderLine, OrderPlaced, Parcel, PurchaseLimit, Routing, Screening, SkuQty, Source,
    StockRequest, SyncAttempt, SyncOutcome, Timestamp,
};

use super::v1;
use super::v1::event::Body;

/// A field of a protobuf log event that can't become a domain event, named by its path
/// (`events[0].body.order_placed.address`). It never carries the field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: FieldProblem,
}

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldProblem {
    /// A required message (or the event's body) is absent.
    Missing,
    /// Present but not a valid value; says why.
    Invalid(&'static str),
    /// An enum value or event type this build doesn't know: a newer writer's.
    Unknown,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::Missing => f.write_str("is missing"),
            FieldProblem::Invalid(why) => write!(f, "is not valid: {why}"),
            FieldProblem::Unknown => f.write_str("has a value this build doesn't know"),
        }
    }
}

impl FieldError {
    fn new(field: &str, problem: FieldProblem) -> FieldError {
        FieldError {
            field: field.to_string(),
            problem,
        }
    }

    /// The same error one level up: `prefix.field`.
    pub fn within(self, prefix: &str) -> FieldError {
        FieldError {
            field: format!("{prefix}.{}", self.field),
            problem: self.problem,
        }
    }
}

type Converted<T> = Result<T, FieldError>;

/// A required message field, converted; its errors are named under `field`.
fn required<P, D>(value: Option<P>, field: &str) -> Converted<D>
where
    D: TryFrom<P, Error = FieldError>,
{
    let value = value.ok_or_else(|| FieldError::new(field, FieldProblem::Missing))?;
    D::try_from(value).map_err(|error| error.within(field))
}

/// A repeated message field, converted; an error names the item (`lines[2].sku`).
fn each<P, D>(values: Vec<P>, field: &str) -> Converted<Vec<D>>
where
    D: TryFrom<P, Error = FieldError>,
{
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            D::try_from(value).map_err(|error| error.within(&format!("{field}[{index}]")))
        })
        .collect()
}

fn order_id(raw: String, field: &str) -> Converted<OrderId> {
    raw.parse().map_err(|_| {
        FieldError::new(
            field,
            FieldProblem::Invalid("not an order id of the form channel:platform_order_id"),
        )
    })
}

fn time(value: Option<prost_types::Timestamp>, field: &str) -> Converted<Timestamp> {
    let value = value.ok_or_else(|| FieldError::new(field, FieldProblem::Missing))?;
    optional_time(value, field)
}

fn optional_time(value: prost_types::Timestamp, field: &str) -> Converted<Timestamp> {
    u32::try_from(value.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(value.seconds, nanos))
        .ok_or_else(|| FieldError::new(field, FieldProblem::Invalid("not a representable instant")))
}

fn wire_time(time: &Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        // Below 2 000 000 000 even in a leap second, so within i32.
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

fn http_status(value: Option<u32>, field: &str) -> Converted<Option<u16>> {
    value
        .map(|status| {
            u16::try_from(status)
                .map_err(|_| FieldError::new(field, FieldProblem::Invalid("above 65535")))
        })
        .transpose()
}

/// A protobuf enum whose value 0 (`*_UNSPECIFIED`) is never written.
trait WireEnum: TryFrom<i32> {
    type Domain;
    fn to_domain(self) -> Option<Self::Domain>;
}

/// A wire enum value as its domain value: unknown to this build (a newer writer's) or unset.
fn enumerated<P: WireEnum>(raw: i32, field: &str) -> Converted<P::Domain> {
    let value = P::try_from(raw).map_err(|_| FieldError::new(field, FieldProblem::Unknown))?;
    value
        .to_domain()
        .ok_or_else(|| FieldError::new(field, FieldProblem::Missing))
}

/// The two directions of one enum, from one list of pairs so they can't disagree.
macro_rules! wire_enum {
    ($wire:ident <=> $domain:ident { $($wire_value:ident <=> $domain_value:ident),+ $(,)? }) => {
        impl From<$domain> for v1::$wire {
            fn from(value: $domain) -> v1::$wire {
                match value {
                    $($domain::$domain_value => v1::$wire::$wire_value),+
                }
            }
        }

        impl WireEnum for v1::$wire {
            type Domain = $domain;
            fn to_domain(self) -> Option<$domain> {
                match self {
                    v1::$wire::Unspecified => None,
                    $(v1::$wire::$wire_value => Some($domain::$domain_value)),+
                }
            }
        }
    };
}

wire_enum!(Channel <=> Channel {
    Tmall <=> Tmall,
    Jd <=> Jd,
    Douyin <=> Douyin,
    Web <=> Web,
    Miniapp <=> Miniapp,
    Store <=> Store,
});
wire_enum!(InvoiceKind <=> InvoiceKind { Personal <=> Personal, Company <=> Company });
wire_enum!(ActorRole <=> ActorRole { Operator <=> Operator, Customer <=> Customer });
wire_enum!(Choice <=> Choice { Wait <=> Wait, Refund <=> Refund });
wire_enum!(Level <=> Level { L1 <=> L1, L2 <=> L2, L3 <=> L3 });
wire_enum!(Outcome <=> SyncOutcome {
    Acknowledged <=> Acknowledged,
    Failed <=> Failed,
    Rejected <=> Rejected,
});
wire_enum!(ExceptionKind <=> ExceptionKind {
    PaymentTimeout <=> PaymentTimeout,
    InvalidAddress <=> InvalidAddress,
    InvalidPhone <=> InvalidPhone,
    BlacklistedPhone <=> BlacklistedPhone,
    OutOfStockAtReview <=> OutOfStockAtReview,
    SuspectedFraud <=> SuspectedFraud,
    InvoiceInvalid <=> InvoiceInvalid,
    DuplicateOrder <=> DuplicateOrder,
    AmountMismatch <=> AmountMismatch,
    DuplicatePayment <=> DuplicatePayment,
    IllegalTransition <=> IllegalTransition,
    SyncFailure <=> SyncFailure,
    ReviewOverdue <=> ReviewOverdue,
});

/// A domain enum value as the wire's number.
fn wire<W: From<D> + Into<i32>, D>(value: D) -> i32 {
    W::from(value).into()
}

// ---- domain → wire ----

impl From<&Event> for v1::Event {
    fn from(event: &Event) -> v1::Event {
        v1::Event {
            schema_version: event.schema_version,
            event_id: event.event_id.to_string(),
            key: event.key.to_string(),
            occurred_at: Some(wire_time(&event.occurred_at)),
            source: Some(v1::Source::from(&event.source)),
            body: Some(Body::from(&event.body)),
        }
    }
}

impl From<&Source> for v1::Source {
    fn from(source: &Source) -> v1::Source {
        v1::Source {
            origin: source.origin.clone(),
            partition: source.partition,
            offset: source.offset,
            channel: source.channel.map_or(0, wire::<v1::Channel, _>),
            caused_by: source.caused_by.as_ref().map(EventId::to_string),
        }
    }
}

impl From<&EventBody> for Body {
    fn from(body: &EventBody) -> Body {
        match body.clone() {
            EventBody::OrderPlaced(order) => Body::OrderPlaced(order.into()),
            EventBody::OrderCancelled { reason } => {
                Body::OrderCancelled(v1::OrderCancelled { reason })
            }
            EventBody::OrderCompleted => Body::OrderCompleted(v1::OrderCompleted {}),
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            } => Body::PaymentCaptured(v1::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            }),
            EventBody::PaymentFailed { payment_id, reason } => {
                Body::PaymentFailed(v1::PaymentFailed { payment_id, reason })
            }
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            } => Body::PaymentRefunded(v1::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            }),
            EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            } => Body::ShipmentDispatched(v1::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            }),
            EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            } => Body::ShipmentDelivered(v1::ShipmentDelivered {
                carrier,
                tracking_no,
            }),
            EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            } => Body::ShipmentReturned(v1::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            }),
            EventBody::StockLevelChanged {
                sku,
                warehouse,
                on_hand,
            } => Body::StockLevelChanged(v1::StockLevelChanged {
                sku,
                warehouse,
                on_hand,
            }),
            EventBody::WarehouseAccepted {
                warehouse,
                routing_id,
            } => Body::WarehouseAccepted(v1::WarehouseAccepted {
                warehouse,
                routing_id,
            }),
            EventBody::ReviewApproved { action } => Body::ReviewApproved(v1::ReviewApproved {
                action: Some(action.into()),
            }),
            EventBody::ReviewRejected { action } => Body::ReviewRejected(v1::ReviewRejected {
                action: Some(action.into()),
            }),
            EventBody::ExceptionResolved {
                action,
                exception_id,
            } => Body::ExceptionResolved(v1::ExceptionResolved {
                action: Some(action.into()),
                exception_id: exception_id.to_string(),
            }),
            EventBody::ExceptionAssigned {
                action,
                exception_id,
                assignee,
            } => Body::ExceptionAssigned(v1::ExceptionAssigned {
                action: Some(action.into()),
                exception_id: exception_id.to_string(),
                assignee,
            }),
            EventBody::CustomerChoice { action, choice } => {
                Body::CustomerChoice(v1::CustomerChoice {
                    action: Some(action.into()),
                    choice: wire::<v1::Choice, _>(choice),
                })
            }
            EventBody::OrderScreened(screening) => Body::OrderScreened(screening.into()),
            EventBody::OrderAutoApproved(approval) => Body::OrderAutoApproved(approval.into()),
            EventBody::ManualReviewRequired(approval) => {
                Body::ManualReviewRequired(approval.into())
            }
            EventBody::StockRequested(request) => Body::StockRequested(v1::StockRequest {
                rule_version: request.rule_version,
                preferred_warehouse: request.preferred_warehouse,
                wait: request.wait,
            }),
            EventBody::OrderRouted(routing) => Body::OrderRouted(v1::Routing {
                rule_version: routing.rule_version,
                parcels: routing.parcels.into_iter().map(Into::into).collect(),
            }),
            EventBody::PaymentTimedOut {
                timeout_minutes,
                rule_version,
            } => Body::PaymentTimedOut(v1::PaymentTimedOut {
                timeout_minutes,
                rule_version,
            }),
            EventBody::ExceptionEscalated {
                exception_id,
                to,
                sla_minutes,
                rule_version,
            } => Body::ExceptionEscalated(v1::ExceptionEscalated {
                exception_id: exception_id.to_string(),
                to: wire::<v1::Level, _>(to),
                sla_minutes,
                rule_version,
            }),
            EventBody::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                rule_version,
            } => Body::RefundRequested(v1::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                rule_version,
            }),
            EventBody::BuyerCheckRequested(check) => Body::BuyerCheckRequested(check.into()),
            EventBody::BuyerChecked { findings } => Body::BuyerChecked(v1::BuyerChecked {
                findings: findings.into_iter().map(Into::into).collect(),
            }),
            EventBody::StockReservationRequested {
                order_id,
                qty,
                preferred_warehouse,
                wait,
            } => Body::StockReservationRequested(v1::StockReservationRequested {
                order_id: order_id.to_string(),
                qty,
                preferred_warehouse,
                wait,
            }),
            EventBody::StockReleaseRequested { order_id, reason } => {
                Body::StockReleaseRequested(v1::StockReleaseRequested {
                    order_id: order_id.to_string(),
                    reason,
                })
            }
            EventBody::StockReserved {
                sku,
                warehouse,
                qty,
            } => Body::StockReserved(v1::StockReserved {
                sku,
                warehouse,
                qty,
            }),
            EventBody::StockShortage {
                sku,
                qty,
                available,
            } => Body::StockShortage(v1::StockShortage {
                sku,
                qty,
                available,
            }),
            EventBody::ReviewOverdue {
                sla_minutes,
                rule_version,
            } => Body::ReviewOverdue(v1::ReviewOverdue {
                sla_minutes,
                rule_version,
            }),
            EventBody::ChannelSyncAttempted(attempt) => Body::ChannelSyncAttempted(attempt.into()),
            EventBody::NotificationDelivered(delivery) => {
                Body::NotificationDelivered(delivery.into())
            }
        }
    }
}

impl From<OrderPlaced> for v1::OrderPlaced {
    fn from(order: OrderPlaced) -> v1::OrderPlaced {
        v1::OrderPlaced {
            buyer_id: order.buyer_id,
            phone: order.phone,
            address: Some(v1::Address {
                province: order.address.province,
                city: order.address.city,
                district: order.address.district,
                detail: order.address.detail,
            }),
            lines: order
                .lines
                .into_iter()
                .map(|line| v1::OrderLine {
                    sku: line.sku,
                    category: line.category,
                    qty: line.qty,
                    unit_price_fen: line.unit_price_fen,
                })
                .collect(),
            discount_fen: order.discount_fen,
            shipping_fen: order.shipping_fen,
            total_fen: order.total_fen,
            payment_method: order.payment_method,
            coupon_type: order.coupon_type,
            invoice: order.invoice.map(|invoice| v1::Invoice {
                kind: wire::<v1::InvoiceKind, _>(invoice.kind),
                title: invoice.title,
                tax_id: invoice.tax_id,
            }),
        }
    }
}

impl From<Action> for v1::Action {
    fn from(action: Action) -> v1::Action {
        v1::Action {
            action_id: action.action_id,
            actor_id: action.actor.id,
            actor_role: wire::<v1::ActorRole, _>(action.actor.role),
            note: action.note,
        }
    }
}

impl From<Finding> for v1::Finding {
    fn from(finding: Finding) -> v1::Finding {
        v1::Finding {
            kind: wire::<v1::ExceptionKind, _>(finding.kind),
            code: finding.code,
            detail: finding.detail,
        }
    }
}

impl From<PurchaseLimit> for v1::PurchaseLimit {
    fn from(limit: PurchaseLimit) -> v1::PurchaseLimit {
        v1::PurchaseLimit {
            sku: limit.sku,
            max_qty: limit.max_qty,
            window_secs: limit.window_secs,
        }
    }
}

impl From<SkuQty> for v1::SkuQty {
    fn from(line: SkuQty) -> v1::SkuQty {
        v1::SkuQty {
            sku: line.sku,
            qty: line.qty,
        }
    }
}

impl From<Screening> for v1::Screening {
    fn from(screening: Screening) -> v1::Screening {
        v1::Screening {
            rule_version: screening.rule_version,
            findings: screening.findings.into_iter().map(Into::into).collect(),
            duplicate_window_secs: screening.duplicate_window_secs,
            purchase_limits: screening
                .purchase_limits
                .into_iter()
                .map(Into::into)
                .collect(),
        }
    }
}

impl From<Approval> for v1::Approval {
    fn from(approval: Approval) -> v1::Approval {
        v1::Approval {
            rule_version: approval.rule_version,
            threshold_fen: approval.threshold_fen,
        }
    }
}

impl From<Parcel> for v1::Parcel {
    fn from(parcel: Parcel) -> v1::Parcel {
        v1::Parcel {
            routing_id: parcel.routing_id,
            warehouse: parcel.warehouse,
            lines: parcel.lines.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<BuyerCheck> for v1::BuyerCheck {
    fn from(check: BuyerCheck) -> v1::BuyerCheck {
        v1::BuyerCheck {
            order_id: check.order_id.to_string(),
            basket: check.basket,
            placed_at: Some(wire_time(&check.placed_at)),
            lines: check.lines.into_iter().map(Into::into).collect(),
            rule_version: check.rule_version,
            duplicate_window_secs: check.duplicate_window_secs,
            purchase_limits: check.purchase_limits.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<SyncAttempt> for v1::SyncAttempt {
    fn from(attempt: SyncAttempt) -> v1::SyncAttempt {
        v1::SyncAttempt {
            change_id: attempt.change_id,
            idempotency_key: attempt.idempotency_key,
            attempt: attempt.attempt,
            connector: attempt.connector,
            sent_at: Some(wire_time(&attempt.sent_at)),
            outcome: wire::<v1::Outcome, _>(attempt.outcome),
            http_status: attempt.http_status.map(u32::from),
            answer: attempt.answer,
            next_attempt_at: attempt.next_attempt_at.as_ref().map(wire_time),
            max_attempts: attempt.max_attempts,
            rule_version: attempt.rule_version,
        }
    }
}

impl From<NoticeDelivery> for v1::NoticeDelivery {
    fn from(delivery: NoticeDelivery) -> v1::NoticeDelivery {
        v1::NoticeDelivery {
            notification_id: delivery.notification_id.to_string(),
            notification_kind: delivery.notification_kind,
            target: delivery.target,
            idempotency_key: delivery.idempotency_key,
            sent_at: Some(wire_time(&delivery.sent_at)),
            outcome: wire::<v1::Outcome, _>(delivery.outcome),
            http_status: delivery.http_status.map(u32::from),
            answer: delivery.answer,
            attempts: delivery.attempts,
            batched: delivery.batched,
        }
    }
}

// ---- wire → domain ----

impl TryFrom<v1::Event> for Event {
    type Error = FieldError;

    fn try_from(event: v1::Event) -> Converted<Event> {
        let key = event.key.parse::<EntityKey>().map_err(|_| {
            FieldError::new(
                "key",
                FieldProblem::Invalid("not an order id, sku:{sku} or buyer:{buyer id}"),
            )
        })?;
        Ok(Event {
            schema_version: event.schema_version,
            event_id: EventId::from(event.event_id),
            key,
            occurred_at: time(event.occurred_at, "occurred_at")?,
            source: required(event.source, "source")?,
            body: required(event.body, "body")?,
        })
    }
}

impl TryFrom<v1::Source> for Source {
    type Error = FieldError;

    fn try_from(source: v1::Source) -> Converted<Source> {
        let channel = match source.channel {
            0 => None,
            raw => Some(enumerated::<v1::Channel>(raw, "channel")?),
        };
        Ok(Source {
            origin: source.origin,
            partition: source.partition,
            offset: source.offset,
            channel,
            caused_by: source.caused_by.map(EventId::from),
        })
    }
}

impl TryFrom<Body> for EventBody {
    type Error = FieldError;

    fn try_from(body: Body) -> Converted<EventBody> {
        Ok(match body {
            Body::OrderPlaced(order) => EventBody::OrderPlaced(
                OrderPlaced::try_from(order).map_err(|e| e.within("order_placed"))?,
            ),
            Body::OrderCancelled(v1::OrderCancelled { reason }) => {
                EventBody::OrderCancelled { reason }
            }
            Body::OrderCompleted(v1::OrderCompleted {}) => EventBody::OrderCompleted,
            Body::PaymentCaptured(v1::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            }) => EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            },
            Body::PaymentFailed(v1::PaymentFailed { payment_id, reason }) => {
                EventBody::PaymentFailed { payment_id, reason }
            }
            Body::PaymentRefunded(v1::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            }) => EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            },
            Body::ShipmentDispatched(v1::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            }) => EventBody::ShipmentDispatched {
                carrier,
                tracking_no,
                warehouse,
            },
            Body::ShipmentDelivered(v1::ShipmentDelivered {
                carrier,
                tracking_no,
            }) => EventBody::ShipmentDelivered {
                carrier,
                tracking_no,
            },
            Body::ShipmentReturned(v1::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            }) => EventBody::ShipmentReturned {
                carrier,
                tracking_no,
                warehouse,
                reason,
            },
            Body::StockLevelChanged(v1::StockLevelChanged {
                sku,
                warehouse,
                on_hand,
            }) => EventBody::StockLevelChanged {
                sku,
                warehouse,
                on_hand,
            },
            Body::WarehouseAccepted(v1::WarehouseAccepted {
                warehouse,
                routing_id,
            }) => EventBody::WarehouseAccepted {
                warehouse,
                routing_id,
            },
            Body::ReviewApproved(v1::ReviewApproved { action }) => EventBody::ReviewApproved {
                action: required(action, "review_approved.action")?,
            },
            Body::ReviewRejected(v1::ReviewRejected { action }) => EventBody::ReviewRejected {
                action: required(action, "review_rejected.action")?,
            },
            Body::ExceptionResolved(v1::ExceptionResolved {
                action,
                exception_id,
            }) => EventBody::ExceptionResolved {
                action: required(action, "exception_resolved.action")?,
                exception_id: EventId::from(exception_id),
            },
            Body::ExceptionAssigned(v1::ExceptionAssigned {
                action,
                exception_id,
                assignee,
            }) => EventBody::ExceptionAssigned {
                action: required(action, "exception_assigned.action")?,
                exception_id: EventId::from(exception_id),
                assignee,
            },
            Body::CustomerChoice(v1::CustomerChoice { action, choice }) => {
                EventBody::CustomerChoice {
                    action: required(action, "customer_choice.action")?,
                    choice: enumerated::<v1::Choice>(choice, "customer_choice.choice")?,
                }
            }
            Body::OrderScreened(screening) => EventBody::OrderScreened(
                Screening::try_from(screening).map_err(|e| e.within("order_screened"))?,
            ),
            Body::OrderAutoApproved(approval) => EventBody::OrderAutoApproved(approval.into()),
            Body::ManualReviewRequired(approval) => {
                EventBody::ManualReviewRequired(approval.into())
            }
            Body::StockRequested(request) => EventBody::StockRequested(StockRequest {
                rule_version: request.rule_version,
                preferred_warehouse: request.preferred_warehouse,
                wait: request.wait,
            }),
            Body::OrderRouted(routing) => EventBody::OrderRouted(Routing {
                rule_version: routing.rule_version,
                parcels: routing.parcels.into_iter().map(Parcel::from).collect(),
            }),
            Body::PaymentTimedOut(v1::PaymentTimedOut {
                timeout_minutes,
                rule_version,
            }) => EventBody::PaymentTimedOut {
                timeout_minutes,
                rule_version,
            },
            Body::ExceptionEscalated(v1::ExceptionEscalated {
                exception_id,
                to,
                sla_minutes,
                rule_version,
            }) => EventBody::ExceptionEscalated {
                exception_id: EventId::from(exception_id),
                to: enumerated::<v1::Level>(to, "exception_escalated.to")?,
                sla_minutes,
                rule_version,
            },
            Body::RefundRequested(v1::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                rule_version,
            }) => EventBody::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                rule_version,
            },
            Body::BuyerCheckRequested(check) => EventBody::BuyerCheckRequested(
                BuyerCheck::try_from(check).map_err(|e| e.within("buyer_check_requested"))?,
            ),
            Body::BuyerChecked(v1::BuyerChecked { findings }) => EventBody::BuyerChecked {
                findings: each(findings, "buyer_checked.findings")?,
            },
            Body::StockReservationRequested(v1::StockReservationRequested {
                order_id: raw_order_id,
                qty,
                preferred_warehouse,
                wait,
            }) => EventBody::StockReservationRequested {
                order_id: order_id(raw_order_id, "stock_reservation_requested.order_id")?,
                qty,
                preferred_warehouse,
                wait,
            },
            Body::StockReleaseRequested(v1::StockReleaseRequested {
                order_id: raw_order_id,
                reason,
            }) => EventBody::StockReleaseRequested {
                order_id: order_id(raw_order_id, "stock_release_requested.order_id")?,
                reason,
            },
            Body::StockReserved(v1::StockReserved {
                sku,
                warehouse,
                qty,
            }) => EventBody::StockReserved {
                sku,
                warehouse,
                qty,
            },
            Body::StockShortage(v1::StockShortage {
                sku,
                qty,
                available,
            }) => EventBody::StockShortage {
                sku,
                qty,
                available,
            },
            Body::ReviewOverdue(v1::ReviewOverdue {
                sla_minutes,
                rule_version,
            }) => EventBody::ReviewOverdue {
                sla_minutes,
                rule_version,
            },
            Body::ChannelSyncAttempted(attempt) => EventBody::ChannelSyncAttempted(
                SyncAttempt::try_from(attempt).map_err(|e| e.within("channel_sync_attempted"))?,
            ),
            Body::NotificationDelivered(delivery) => EventBody::NotificationDelivered(
                NoticeDelivery::try_from(delivery)
                    .map_err(|e| e.within("notification_delivered"))?,
            ),
        })
    }
}

impl TryFrom<v1::OrderPlaced> for OrderPlaced {
    type Error = FieldError;

    fn try_from(order: v1::OrderPlaced) -> Converted<OrderPlaced> {
        let address = order
            .address
            .ok_or_else(|| FieldError::new("address", FieldProblem::Missing))?;
        let invoice = order
            .invoice
            .map(|invoice| -> Converted<Invoice> {
                Ok(Invoice {
                    kind: enumerated::<v1::InvoiceKind>(invoice.kind, "invoice.kind")?,
                    title: invoice.title,
                    tax_id: invoice.tax_id,
                })
            })
            .transpose()?;
        Ok(OrderPlaced {
            buyer_id: order.buyer_id,
            phone: order.phone,
            address: Address {
                province: address.province,
                city: address.city,
                district: address.district,
                detail: address.detail,
            },
            lines: order
                .lines
                .into_iter()
                .map(|line| OrderLine {
                    sku: line.sku,
                    category: line.category,
                    qty: line.qty,
                    unit_price_fen: line.unit_price_fen,
                })
                .collect(),
            discount_fen: order.discount_fen,
            shipping_fen: order.shipping_fen,
            total_fen: order.total_fen,
            payment_method: order.payment_method,
            coupon_type: order.coupon_type,
            invoice,
        })
    }
}

impl TryFrom<v1::Action> for Action {
    type Error = FieldError;

    fn try_from(action: v1::Action) -> Converted<Action> {
        Ok(Action {
            action_id: action.action_id,
            actor: orderflow_domain::Actor {
                id: action.actor_id,
                role: enumerated::<v1::ActorRole>(action.actor_role, "actor_role")?,
            },
            note: action.note,
        })
    }
}

impl TryFrom<v1::Finding> for Finding {
    type Error = FieldError;

    fn try_from(finding: v1::Finding) -> Converted<Finding> {
        Ok(Finding {
            kind: enumerated::<v1::ExceptionKind>(finding.kind, "kind")?,
            code: finding.code,
            detail: finding.detail,
        })
    }
}

impl From<v1::PurchaseLimit> for PurchaseLimit {
    fn from(limit: v1::PurchaseLimit) -> PurchaseLimit {
        PurchaseLimit {
            sku: limit.sku,
            max_qty: limit.max_qty,
            window_secs: limit.window_secs,
        }
    }
}

impl From<v1::SkuQty> for SkuQty {
    fn from(line: v1::SkuQty) -> SkuQty {
        SkuQty {
            sku: line.sku,
            qty: line.qty,
        }
    }
}

impl From<v1::Approval> for Approval {
    fn from(approval: v1::Approval) -> Approval {
        Approval {
            rule_version: approval.rule_version,
            threshold_fen: approval.threshold_fen,
        }
    }
}

impl From<v1::Parcel> for Parcel {
    fn from(parcel: v1::Parcel) -> Parcel {
        Parcel {
            routing_id: parcel.routing_id,
            warehouse: parcel.warehouse,
            lines: parcel.lines.into_iter().map(SkuQty::from).collect(),
        }
    }
}

impl TryFrom<v1::Screening> for Screening {
    type Error = FieldError;

    fn try_from(screening: v1::Screening) -> Converted<Screening> {
        Ok(Screening {
            rule_version: screening.rule_version,
            findings: each(screening.findings, "findings")?,
            duplicate_window_secs: screening.duplicate_window_secs,
            purchase_limits: screening
                .purchase_limits
                .into_iter()
                .map(PurchaseLimit::from)
                .collect(),
        })
    }
}

impl TryFrom<v1::BuyerCheck> for BuyerCheck {
    type Error = FieldError;

    fn try_from(check: v1::BuyerCheck) -> Converted<BuyerCheck> {
        Ok(BuyerCheck {
            order_id: order_id(check.order_id, "order_id")?,
            basket: check.basket,
            placed_at: time(check.placed_at, "placed_at")?,
            lines: check.lines.into_iter().map(SkuQty::from).collect(),
            rule_version: check.rule_version,
            duplicate_window_secs: check.duplicate_window_secs,
            purchase_limits: check
                .purchase_limits
                .into_iter()
                .map(PurchaseLimit::from)
                .collect(),
        })
    }
}

impl TryFrom<v1::SyncAttempt> for SyncAttempt {
    type Error = FieldError;

    fn try_from(attempt: v1::SyncAttempt) -> Converted<SyncAttempt> {
        Ok(SyncAttempt {
            change_id: attempt.change_id,
            idempotency_key: attempt.idempotency_key,
            attempt: attempt.attempt,
            connector: attempt.connector,
            sent_at: time(attempt.sent_at, "sent_at")?,
            outcome: enumerated::<v1::Outcome>(attempt.outcome, "outcome")?,
            http_status: http_status(attempt.http_status, "http_status")?,
            answer: attempt.answer,
            next_attempt_at: attempt
                .next_attempt_at
                .map(|next| optional_time(next, "next_attempt_at"))
                .transpose()?,
            max_attempts: attempt.max_attempts,
            rule_version: attempt.rule_version,
        })
    }
}

impl TryFrom<v1::NoticeDelivery> for NoticeDelivery {
    type Error = FieldError;

    fn try_from(delivery: v1::NoticeDelivery) -> Converted<NoticeDelivery> {
        Ok(NoticeDelivery {
            notification_id: EventId::from(delivery.notification_id),
            notification_kind: delivery.notification_kind,
            target: delivery.target,
            idempotency_key: delivery.idempotency_key,
            sent_at: time(delivery.sent_at, "sent_at")?,
            outcome: enumerated::<v1::Outcome>(delivery.outcome, "outcome")?,
            http_status: http_status(delivery.http_status, "http_status")?,
            answer: delivery.answer,
            attempts: delivery.attempts,
            batched: delivery.batched,
        })
    }
}
