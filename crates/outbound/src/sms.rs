//! Customer messages by SMS, through a generic HTTP SMS gateway: a template id and its
//! parameters (what Aliyun, Tencent Cloud and the like take), with the text as the seed writes
//! it, and for the out-of-stock question a signed link the customer answers through.
//!
//! `POST {url}` with JSON `{"phone", "sign_name", "template_id", "params", "content",
//! "out_id"}` signed like the webhook (`X-Orderflow-Timestamp`, `X-Orderflow-Signature` over
//! `{timestamp}.{body}`, `Idempotency-Key` = `out_id`, the same on every resend). A 2xx is
//! taken. The phone number goes to the gateway and nowhere else: logs and the log of the order
//! show it masked.

use std::collections::BTreeMap;

use orderflow_domain::{mask_phone, Notification};
use serde_json::json;

use crate::config::SmsSettings;
use crate::connector::{answer_of, http_client, CallAnswer};
use crate::sign::{choice_token, webhook_signature};

pub struct SmsGateway {
    settings: SmsSettings,
    client: reqwest::Client,
}

/// One text message to send.
#[derive(Debug, Clone)]
pub struct Sms {
    pub phone: String,
    pub template_id: String,
    pub params: BTreeMap<String, String>,
    pub content: String,
    pub out_id: String,
}

impl SmsGateway {
    pub fn new(settings: &SmsSettings) -> Result<SmsGateway, String> {
        Ok(SmsGateway {
            client: http_client(settings.timeout_ms)?,
            settings: settings.clone(),
        })
    }

    /// The message for a customer notification, if its kind has a template.
    pub fn compose(&self, notification: &Notification, phone: &str) -> Option<Sms> {
        let template_id = self.settings.templates.get(&notification.kind)?.clone();
        let mut params = BTreeMap::new();
        params.insert(
            "order".to_string(),
            notification.order_id.platform_order_id().to_string(),
        );
        let content = match notification.kind.as_str() {
            "out_of_stock_choice" => {
                let link = format!(
                    "{}{}",
                    self.settings.link_base,
                    choice_token(
                        &self.settings.link_secret,
                        &notification.order_id.to_string(),
                        notification.notification_id.as_str()
                    )
                );
                params.insert("link".to_string(), link.clone());
                format!("您订购的商品暂时缺货，请选择退款或等待补货：{link}")
            }
            "compensation_coupon" => {
                let yuan = yuan(notification.amount_fen.unwrap_or(0));
                params.insert("amount".to_string(), yuan.clone());
                format!("您的退款已受理，{yuan}元补偿券已发放至您的账户，感谢您的耐心等待。")
            }
            "refund_requested" => {
                let yuan = yuan(notification.amount_fen.unwrap_or(0));
                params.insert("amount".to_string(), yuan.clone());
                format!("您的订单已取消，{yuan}元将原路退回。")
            }
            "payment_timed_out" => "您的订单超时未支付，已自动取消。".to_string(),
            _ => notification.message.clone(),
        };
        Some(Sms {
            phone: phone.to_string(),
            template_id,
            params,
            content,
            out_id: notification.notification_id.to_string(),
        })
    }

    pub async fn send(&self, sms: &Sms) -> CallAnswer {
        let body = json!({
            "phone": sms.phone,
            "sign_name": self.settings.sign_name,
            "template_id": sms.template_id,
            "params": sms.params,
            "content": sms.content,
            "out_id": sms.out_id,
        })
        .to_string()
        .into_bytes();
        let timestamp = chrono::Utc::now().timestamp_millis();
        let response = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &sms.out_id)
            .header("x-orderflow-timestamp", timestamp.to_string())
            .header(
                "x-orderflow-signature",
                webhook_signature(&self.settings.secret, timestamp, &body),
            )
            .body(body)
            .send()
            .await;
        let answer = answer_of(response).await;
        // A gateway may echo the number back: it must not reach the log.
        CallAnswer {
            answer: answer.answer.replace(&sms.phone, &mask_phone(&sms.phone)),
            ..answer
        }
    }
}

/// Fen as yuan, without trailing zeros: 1000 → "10", 1050 → "10.50".
fn yuan(fen: u64) -> String {
    if fen.is_multiple_of(100) {
        (fen / 100).to_string()
    } else {
        format!("{}.{:02}", fen / 100, fen % 100)
    }
}

/// The `customer_choice` record (for `in.actions`) that a customer's answer through the SMS
/// link stands for, with its key (the platform order id). The token is checked against the
/// link secret; one answer per SMS counts (its action id is the notification's), so pressing
/// the link twice changes nothing. The gateway's answer endpoint and `orderflow choose` both
/// build the record here.
pub fn choice_record(
    link_secret: &str,
    token: &str,
    choice: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(String, serde_json::Value), String> {
    if !matches!(choice, "wait" | "refund") {
        return Err(format!("the choice must be wait or refund, got {choice:?}"));
    }
    let (order_id, notification_id) = crate::sign::verify_choice_token(link_secret, token)?;
    let order_id: orderflow_domain::OrderId = order_id
        .parse()
        .map_err(|error| format!("the token names no order: {error}"))?;
    let platform_order_id = order_id.platform_order_id().to_string();
    let record = json!({
        "kind": "customer_choice",
        "channel": order_id.channel().as_str(),
        "platform_order_id": platform_order_id,
        "occurred_at": now.to_rfc3339(),
        "action_id": format!("sms-{notification_id}"),
        "actor": {"id": "sms-link", "role": "customer"},
        "choice": choice,
    });
    Ok((platform_order_id, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_read_as_yuan() {
        assert_eq!(yuan(1_000), "10");
        assert_eq!(yuan(1_050), "10.50");
        assert_eq!(yuan(5), "0.05");
    }
}
