//! Payment: money captured, a declined attempt, money refunded by the gateway; the payment
//! timeout that cancels an unpaid order, and the refund orderflow asks for.

use crate::effect::{Effect, Notification};
use crate::event::{Event, EventBody};
use crate::ids::Fen;
use crate::order::state::{
    sum_fen, FailedPayment, Ignored, OrderState, Payment, Refund, RefundRequest, AMOUNT_OVERFLOW,
};

impl OrderState {
    pub(super) fn record_payment(&mut self, event: &Event, effects: &mut Vec<Effect>) {
        let at = event.occurred_at;
        match &event.body {
            EventBody::PaymentCaptured {
                payment_id,
                amount_fen,
                method,
            } => {
                if self.overflows(self.paid_fen(), *amount_fen, event) {
                    return;
                }
                self.payments.push(Payment {
                    payment_id: payment_id.clone(),
                    amount_fen: *amount_fen,
                    method: method.clone(),
                    captured_at: at,
                })
            }
            // Kept for the record; the order still waits for a payment, and its timeout runs.
            EventBody::PaymentFailed { payment_id, reason } => {
                self.failed_payments.push(FailedPayment {
                    payment_id: payment_id.clone(),
                    reason: reason.clone(),
                    failed_at: at,
                })
            }
            EventBody::PaymentRefunded {
                refund_id,
                amount_fen,
                reason,
            } => {
                if self.overflows(self.refunded_fen(), *amount_fen, event) {
                    return;
                }
                self.refunds.push(Refund {
                    refund_id: refund_id.clone(),
                    amount_fen: *amount_fen,
                    reason: reason.clone(),
                    refunded_at: at,
                })
            }
            EventBody::PaymentTimedOut {
                timeout_minutes, ..
            } => self.record_timeout(event, *timeout_minutes, effects),
            EventBody::RefundRequested {
                amount_fen,
                coupon_fen,
                reason,
                ..
            } => self.record_refund_request(event, *amount_fen, *coupon_fen, reason, effects),
            // `apply` sends only payment events here.
            _ => {}
        }
    }

    /// Whether `amount` can't be added to `sum` (the order's captures or refunds so far): then
    /// the event is kept as ignored for [`AMOUNT_OVERFLOW`] instead, which raises an
    /// exception, and the sums stay exact.
    fn overflows(&mut self, sum: Fen, amount: Fen, event: &Event) -> bool {
        if sum_fen([sum, amount]).is_some() {
            return false;
        }
        self.ignored.push(Ignored {
            event_id: event.event_id.clone(),
            kind: event.body.kind().to_string(),
            reason: AMOUNT_OVERFLOW.to_string(),
        });
        true
    }

    /// Cancels the unpaid order and tells the customer. A payment folded before the timer's
    /// decision wins: the order stays. A payment folded after it raises `paid_after_timeout`
    /// and is refunded.
    fn record_timeout(&mut self, event: &Event, timeout_minutes: u32, effects: &mut Vec<Effect>) {
        if !self.payments.is_empty() || self.timed_out.is_some() {
            return;
        }
        self.timed_out = Some(event.occurred_at);
        let message = format!("not paid within {timeout_minutes} minutes: the order is cancelled");
        let notice = self.notification(event, "payment_timed_out", self.customer(), message);
        effects.push(Effect::Notify(notice));
    }

    /// The first refund request counts: it cancels the order and tells the customer what
    /// comes back, and about the coupon if there is one.
    fn record_refund_request(
        &mut self,
        event: &Event,
        amount_fen: Fen,
        coupon_fen: Fen,
        reason: &str,
        effects: &mut Vec<Effect>,
    ) {
        if self.refund_request.is_some() {
            return;
        }
        self.refund_request = Some(RefundRequest {
            amount_fen,
            coupon_fen,
            reason: reason.to_string(),
            at: event.occurred_at,
        });
        let message = format!("{amount_fen} fen will be refunded: {reason}");
        effects.push(Effect::Notify(Notification {
            amount_fen: Some(amount_fen),
            ..self.notification(event, "refund_requested", self.customer(), message)
        }));
        if coupon_fen > 0 {
            let message = format!("a {coupon_fen} fen coupon for the trouble");
            effects.push(Effect::Notify(Notification {
                amount_fen: Some(coupon_fen),
                ..self.notification(event, "compensation_coupon", self.customer(), message)
            }));
        }
    }
}
