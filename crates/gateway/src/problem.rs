//! Errors as RFC 9457 problem details (`application/problem+json`): the status, a `type` URI
//! per rule, and a `detail` sentence that names the field — for a refused record, the very
//! sentence the intake would put on its dead letter.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use orderflow_schema::Rejection;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:orderflow:problem:{rule}`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    /// One sentence: what is wrong, naming the field.
    pub detail: String,
    /// The rule broken: an error kind of the input contract (`invalid_field`, `wrong_topic`,
    /// ...) or one of the gateway's (`unauthenticated`, `forbidden`, `idempotency_in_flight`,
    /// `idempotency_key_reused`, `unavailable`, ...).
    pub rule: &'static str,
    /// For a batch: every refused record, by its index in the batch.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RecordError>,
    /// Seconds to wait before sending again (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u32>,
}

/// Why one record of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordError {
    pub index: usize,
    pub rule: String,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, rule: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            problem_type: format!("urn:orderflow:problem:{rule}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            rule,
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// A record the input contract refuses: 400 if it isn't JSON (or protobuf) at all, else 422.
    pub fn rejected(rejection: &Rejection) -> Problem {
        use orderflow_schema::RejectionKind;
        let status = match rejection.kind {
            RejectionKind::MalformedJson | RejectionKind::MalformedProtobuf => {
                StatusCode::BAD_REQUEST
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Problem::new(status, rejection.kind.as_str(), rejection.message.clone())
    }

    /// 503: the broker is slow or down, or too much is in flight; send again after a while.
    pub fn unavailable(detail: impl Into<String>, retry_after: u32) -> Problem {
        let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail);
        problem.retry_after = Some(retry_after);
        problem
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, OrderflowHmac"),
            );
        }
        response
    }
}
