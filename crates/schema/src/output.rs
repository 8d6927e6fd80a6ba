//! The records of the output topics, typed: what the state consumer writes and every reader in
//! the repository (the CLI, the simulator, the tests) reads. Each value is a domain type in a
//! [`Versioned`] envelope, so its JSON carries `schema_version` next to the type's own fields:
//!
//! | topic | key | value |
//! |---|---|---|
//! | `order-state` | order id | [`OrderStateRecord`] |
//! | `exceptions` | order id | [`ExceptionChangeRecord`] |
//! | `notifications` | order id | [`NotificationRecord`] |
//! | `warehouse-routing` | warehouse | [`RoutingRecord`] |
//!
//! A reader accepts a record of its layout or an older one (a record without `schema_version`
//! is layout 1) and refuses a newer one with [`OutputError::Newer`]: readers are deployed before
//! writers. `docs/output-topics.md` describes the fields.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use orderflow_domain::{ExceptionChange, Notification, OrderSnapshot, RoutingInstruction};

/// The layout of the output records this build writes.
pub const OUTPUT_SCHEMA_VERSION: u32 = 1;

/// A value of an output topic: the record with the layout it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    #[serde(default = "first_layout")]
    pub schema_version: u32,
    #[serde(flatten)]
    pub record: T,
}

fn first_layout() -> u32 {
    1
}

/// `order-state`: the latest snapshot of an order. The topic is compacted, and a snapshot may
/// be published again after a crash; keep the one with the highest `version`.
pub type OrderStateRecord = Versioned<OrderSnapshot>;
/// `exceptions`: an exception raised, escalated, assigned or resolved.
pub type ExceptionChangeRecord = Versioned<ExceptionChange>;
/// `notifications`: a message for a customer, an exception owner or an operator.
pub type NotificationRecord = Versioned<Notification>;
/// `warehouse-routing`: what a WMS ships.
pub type RoutingRecord = Versioned<RoutingInstruction>;

impl<T> Versioned<T> {
    /// `record` in this build's layout.
    pub fn new(record: T) -> Versioned<T> {
        Versioned {
            schema_version: OUTPUT_SCHEMA_VERSION,
            record,
        }
    }
}

impl<T: Serialize> Versioned<T> {
    pub fn to_json(&self) -> Result<Vec<u8>, OutputError> {
        serde_json::to_vec(self).map_err(|error| OutputError::Unreadable(error.to_string()))
    }
}

impl<T: DeserializeOwned> Versioned<T> {
    /// Reads one record value of an output topic.
    pub fn from_json(payload: &[u8]) -> Result<Versioned<T>, OutputError> {
        let versioned: Versioned<T> = serde_json::from_slice(payload)
            .map_err(|error| OutputError::Unreadable(error.to_string()))?;
        if versioned.schema_version > OUTPUT_SCHEMA_VERSION {
            return Err(OutputError::Newer(versioned.schema_version));
        }
        Ok(versioned)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("output record is not valid: {0}")]
    Unreadable(String),
    #[error(
        "output record has schema_version {0}, newer than this build reads \
         ({OUTPUT_SCHEMA_VERSION}): upgrade the reader"
    )]
    Newer(u32),
}

#[cfg(test)]
mod tests {
    use orderflow_domain::{OrderId, OrderState};

    use super::*;

    fn snapshot() -> OrderSnapshot {
        let order_id: OrderId = "tmall:1001".parse().unwrap();
        OrderState::new(order_id).snapshot()
    }

    #[test]
    fn a_record_reads_back_as_written_with_its_layout() {
        let written = OrderStateRecord::new(snapshot());
        let bytes = written.to_json().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"schema_version":1,"order_id":"tmall:1001""#),
            "{text}"
        );
        assert_eq!(OrderStateRecord::from_json(&bytes).unwrap(), written);
    }

    #[test]
    fn a_record_without_a_layout_is_the_first_layout() {
        let mut value = serde_json::to_value(snapshot()).unwrap();
        value.as_object_mut().unwrap().remove("schema_version");
        let read = OrderStateRecord::from_json(value.to_string().as_bytes()).unwrap();
        assert_eq!(read.schema_version, 1);
        assert_eq!(read.record, snapshot());
    }

    #[test]
    fn a_newer_layout_is_refused_with_a_sentence() {
        let mut value = serde_json::to_value(OrderStateRecord::new(snapshot())).unwrap();
        value["schema_version"] = serde_json::json!(OUTPUT_SCHEMA_VERSION + 1);
        let error = OrderStateRecord::from_json(value.to_string().as_bytes()).unwrap_err();
        assert_eq!(error, OutputError::Newer(OUTPUT_SCHEMA_VERSION + 1));
        assert!(error.to_string().contains("upgrade the reader"));
    }
}
