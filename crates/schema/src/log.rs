//! Reading the order event log: a record's layout first, then its event. The one decoder the
//! state consumer, replay, inspect, the gateway's view and the analytics projection share, so
//! each of them stops on the same records (README "Log evolution").

use orderflow_domain::{Event, EventBody, LOG_SCHEMA_VERSION};

/// Why a record of the order event log could not be read. Either way the state consumer stops
/// that partition at the record (see README "Log evolution"): neither is ever passed silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogRecordError {
    /// A layout (`schema_version`) or an event type this build doesn't know: a fact written by
    /// a newer writer. Upgrade the reader; the partition resumes at this record.
    #[error("{0}: a newer writer's fact this build can't read; upgrade this reader (readers are deployed before writers)")]
    NotUnderstood(String),
    /// Bytes that were never a log record of any layout (only a buggy or rogue producer writes
    /// those): it stays stopped until an operator skips it (`consumer.skip-log-records`).
    #[error("{0}; no orderflow writes such a record: once you have seen it is no fact, pass over it with consumer.skip-log-records = [\"PARTITION@OFFSET\"]")]
    Invalid(String),
}

impl From<LogRecordError> for String {
    fn from(error: LogRecordError) -> String {
        error.to_string()
    }
}

/// What is read of a record before its layout is known.
#[derive(serde::Deserialize)]
struct Layout {
    schema_version: u32,
}

/// The event type of a layout-1 record that doesn't read as an event.
#[derive(serde::Deserialize)]
struct Kind {
    body: Tagged,
}

#[derive(serde::Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads one record of the order event log: its layout first, then the event.
pub fn decode_log_record(payload: &[u8]) -> Result<Event, LogRecordError> {
    let layout: Layout = serde_json::from_slice(payload)
        .map_err(|error| LogRecordError::Invalid(not_valid(&error)))?;
    let version = layout.schema_version;
    if version > LOG_SCHEMA_VERSION {
        return Err(LogRecordError::NotUnderstood(format!(
            "order event schema_version {version} is newer than this build reads ({LOG_SCHEMA_VERSION})"
        )));
    }
    // The upcast hook: a record of an older layout is read in its own layout and upcast to
    // the current one here, never rewritten in the log. Layout 1 is the only one written so
    // far, so there is nothing older to upcast (and 0 was never a layout).
    if version != LOG_SCHEMA_VERSION {
        return Err(LogRecordError::Invalid(format!(
            "order event schema_version {version} was never written"
        )));
    }
    serde_json::from_slice(payload).map_err(|error| match serde_json::from_slice::<Kind>(payload) {
        Ok(Kind { body }) if is_unknown_kind(&body.kind) => LogRecordError::NotUnderstood(format!(
            "order event type {:?} is not one this build knows",
            body.kind
        )),
        _ => LogRecordError::Invalid(not_valid(&error)),
    })
}

/// What is wrong with a record, without its values (they may be personal data).
fn not_valid(error: &serde_json::Error) -> String {
    let what = match error.classify() {
        serde_json::error::Category::Data => "does not fit the order event layout",
        _ => "is not JSON",
    };
    format!(
        "order event is not valid: it {what} (line {} column {})",
        error.line(),
        error.column()
    )
}

/// Whether `kind` could name an event type (snake_case, as orderflow writes them) but names no
/// [`EventBody`] variant: not one with wrong fields, nor text that is no type name at all
/// (which is not echoed into a log line).
fn is_unknown_kind(kind: &str) -> bool {
    let type_name = (1..=64).contains(&kind.len())
        && kind.starts_with(|c: char| c.is_ascii_lowercase())
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !type_name {
        return false;
    }
    let probe = serde_json::json!({ "type": kind });
    matches!(serde_json::from_value::<EventBody>(probe),
        Err(error) if error.to_string().starts_with("unknown variant"))
}

#[cfg(test)]
mod tests {
    use orderflow_domain::Source;

    use super::*;

    fn level() -> Event {
        Event::stock_level(
            "S-1",
            "WH-HZ",
            5,
            chrono::DateTime::UNIX_EPOCH,
            Source::origin("in.inventory"),
        )
    }

    /// A valid record as JSON, changed by `edit`.
    fn record(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(level()).unwrap();
        edit(&mut value);
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_newer_layout_or_event_type_is_not_understood_and_garbage_is_invalid() {
        assert_eq!(decode_log_record(&record(|_| {})).unwrap(), level());
        let newer = decode_log_record(&record(|v| v["schema_version"] = 2.into()));
        assert!(
            matches!(&newer, Err(LogRecordError::NotUnderstood(why)) if why.contains("schema_version 2")),
            "{newer:?}"
        );
        // A newer layout is not read further: its body may be anything.
        let newer_body = decode_log_record(&record(|v| {
            v["schema_version"] = 7.into();
            v["body"] = serde_json::json!({"shape": "new"});
        }));
        assert!(matches!(newer_body, Err(LogRecordError::NotUnderstood(_))));
        let kind = decode_log_record(&record(|v| v["body"]["type"] = "order_teleported".into()));
        let not_a_type = decode_log_record(&record(|v| v["body"]["type"] = "13800138000".into()));
        assert!(
            matches!(not_a_type, Err(LogRecordError::Invalid(_))),
            "{not_a_type:?}"
        );
        assert!(
            matches!(&kind, Err(LogRecordError::NotUnderstood(why)) if why.contains("order_teleported")),
            "{kind:?}"
        );
        // A known type with a wrong field, bytes that are no JSON, a layout never written.
        let phone = "13800138000";
        let wrong_field = decode_log_record(&record(|v| v["body"]["on_hand"] = phone.into()));
        let garbage = decode_log_record(b"{not an event");
        let zero = decode_log_record(&record(|v| v["schema_version"] = 0.into()));
        for invalid in [&wrong_field, &garbage, &zero] {
            assert!(
                matches!(invalid, Err(LogRecordError::Invalid(_))),
                "{invalid:?}"
            );
        }
        // The reason says what is wrong, never a value (it may be personal data).
        let reason = wrong_field.unwrap_err().to_string();
        assert!(
            reason.contains("does not fit") && !reason.contains(phone),
            "{reason}"
        );
    }
}
