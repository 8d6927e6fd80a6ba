//! `orderflow dlq`: the dead-letter queue for people. `list` what is there, `show` one dead
//! letter (personal data masked: the CLI never prints a raw phone number or address), and
//! `redrive` dead letters back to the input topic they came from once the cause is fixed.
//!
//! A redrive is idempotent: each dead letter sent back is marked on `dlq.redriven` (compacted,
//! keyed `{partition}/{offset}` of the dead letter) after the broker took the copy, and marked
//! ones are skipped. A crash between the copy and its mark can send one copy twice; the intake
//! drops the second by its event id, as it drops any repeated record.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeZone;
use orderflow_domain::Timestamp;
use orderflow_domain::{is_mainland_mobile, mask_detail, mask_phone};
use orderflow_runtime::config::Config;
use orderflow_runtime::kafka::{producer, Topics};
use orderflow_runtime::logread::{read_topic, Until};
use orderflow_runtime::output::{deliver, Output};
use orderflow_schema::headers::{self, dlq};
use orderflow_schema::InputTopic;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use serde::Serialize;

use crate::commands::END_QUIET;
use crate::{display, OpsError};

/// One record of `dlq`, as read back.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    pub partition: i32,
    pub offset: i64,
    /// When it was dead-lettered (the record's timestamp).
    pub time: Option<Timestamp>,
    pub source_topic: String,
    pub source_partition: Option<i32>,
    pub source_offset: Option<i64>,
    pub class: String,
    /// The reason, personal data masked.
    pub reason: String,
    pub consumer: String,
    /// The original value's size in bytes.
    pub size: usize,
    pub sha256: Option<String>,
    pub truncated: bool,
    /// Sent back to its source topic by an earlier redrive.
    pub redriven: bool,
    #[serde(skip)]
    key: Option<Vec<u8>>,
    #[serde(skip)]
    payload: Vec<u8>,
    #[serde(skip)]
    headers: Vec<(String, Vec<u8>)>,
}

impl Letter {
    /// `partition:offset`, how `show` names it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }

    /// Its key on `dlq.redriven`.
    fn mark(&self) -> String {
        format!("{}/{}", self.partition, self.offset)
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }

    fn read(message: &BorrowedMessage<'_>) -> Letter {
        let headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        let text = |name: &str| {
            headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        };
        let payload = message.payload().unwrap_or_default().to_vec();
        Letter {
            partition: message.partition(),
            offset: message.offset(),
            time: message
                .timestamp()
                .to_millis()
                .and_then(|ms| chrono::Utc.timestamp_millis_opt(ms).single()),
            source_topic: text(dlq::TOPIC).unwrap_or_default(),
            source_partition: text(dlq::PARTITION).and_then(|v| v.parse().ok()),
            source_offset: text(dlq::OFFSET).and_then(|v| v.parse().ok()),
            class: text(dlq::CLASS).unwrap_or_else(|| "unknown".into()),
            reason: mask_text(&text(dlq::MESSAGE).unwrap_or_default()),
            consumer: text(dlq::CONNECTOR).unwrap_or_default(),
            size: text(dlq::ORIGINAL_SIZE)
                .and_then(|v| v.parse().ok())
                .unwrap_or(payload.len()),
            sha256: text(dlq::ORIGINAL_SHA256),
            truncated: text(dlq::TRUNCATED).as_deref() == Some("true"),
            redriven: false,
            // Dead letters written before keys were kept have the topic as their key: the
            // original key is in its header, absent when the record had none.
            key: headers
                .iter()
                .find(|(key, _)| key == dlq::ORIGINAL_KEY)
                .map(|(_, value)| value.clone()),
            payload,
            headers,
        }
    }
}

/// `orderflow dlq ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// One line per dead letter: where it is, when, where it was read, its kind, size and reason.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter's headers and value, phone numbers, addresses and other personal data
    /// masked.
    Show {
        /// `PARTITION:OFFSET` as `list` prints it, or an offset of the dlq.
        letter: String,
    },
    /// Send dead letters back to the input topic they were read from, with their original key
    /// and bytes, after the cause is fixed. A dead letter is sent back once: later redrives
    /// skip it.
    Redrive {
        #[command(flatten)]
        filter: Filter,
        /// Print what would be sent back, and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `orderflow dlq ACTION`.
pub async fn run(config: &Config, action: Action) -> Result<(), OpsError> {
    match action {
        Action::List { filter, json } => list(config, &filter, json).await,
        Action::Show { letter } => show(config, &letter).await,
        Action::Redrive {
            filter,
            dry_run,
            json,
        } => {
            let report = redrive(config, &filter, dry_run).await?;
            print_redrive(&report, json, config.display.time_zone)
        }
    }
}

/// Which dead letters a command is about.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Filter {
    /// Only this error kind (`invalid_field`, `record_too_large`, ...).
    #[arg(long)]
    pub class: Option<String>,
    /// Only dead letters read from this topic (`in.orders`, with or without the prefix).
    #[arg(long)]
    pub source_topic: Option<String>,
    /// Only this partition of `dlq`.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Only from this `dlq` offset on.
    #[arg(long)]
    pub from: Option<i64>,
    /// Only up to this `dlq` offset (inclusive).
    #[arg(long)]
    pub to: Option<i64>,
}

impl Filter {
    fn keeps(&self, letter: &Letter, topics: &Topics) -> bool {
        self.class
            .as_ref()
            .is_none_or(|class| *class == letter.class)
            && self.source_topic.as_ref().is_none_or(|topic| {
                *topic == letter.source_topic || topics.name(topic) == letter.source_topic
            })
            && self.partition.is_none_or(|p| p == letter.partition)
            && self.from.is_none_or(|from| letter.offset >= from)
            && self.to.is_none_or(|to| letter.offset <= to)
    }
}

/// Every dead letter `filter` keeps, oldest first per partition, each marked if redriven;
/// with their values only if `values` (a long DLQ's values need not all be in memory).
pub async fn letters(
    config: &Config,
    filter: &Filter,
    values: bool,
) -> Result<Vec<Letter>, OpsError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let redriven = redriven(config, &topics).await?;
    let mut letters = Vec::new();
    read_topic(
        &config.kafka,
        &topics.dlq(),
        Until::End { quiet: END_QUIET },
        |message| {
            let mut letter = Letter::read(message);
            if filter.keeps(&letter, &topics) {
                if !values {
                    letter.payload = Vec::new();
                }
                letter.redriven = redriven.contains(&letter.mark());
                letters.push(letter);
            }
            Ok(())
        },
    )
    .await?;
    letters.sort_by_key(|letter| (letter.partition, letter.offset));
    Ok(letters)
}

/// The dead letters marked as redriven on `dlq.redriven`.
async fn redriven(config: &Config, topics: &Topics) -> Result<BTreeSet<String>, OpsError> {
    let mut marks = BTreeSet::new();
    read_topic(
        &config.kafka,
        &topics.dlq_redriven(),
        Until::End { quiet: END_QUIET },
        |message| {
            if let (Some(key), Some(_)) = (message.key(), message.payload()) {
                marks.insert(String::from_utf8_lossy(key).into_owned());
            }
            Ok(())
        },
    )
    .await?;
    Ok(marks)
}

/// `orderflow dlq list`.
pub async fn list(config: &Config, filter: &Filter, json: bool) -> Result<(), OpsError> {
    let letters = letters(config, filter, false).await?;
    let zone = config.display.time_zone;
    if json {
        return print_json(&letters, zone);
    }
    crate::outln!(
        "{:<10} {:<25} {:<34} {:<22} {:>9}  reason",
        "letter",
        "time",
        "source",
        "class",
        "size"
    );
    for letter in &letters {
        let mut flags = Vec::new();
        if letter.truncated {
            flags.push("truncated");
        }
        if letter.redriven {
            flags.push("redriven");
        }
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flags.join(", "))
        };
        crate::outln!(
            "{:<10} {:<25} {:<34} {:<22} {:>9}  {}{flags}",
            letter.id(),
            letter
                .time
                .map_or_else(|| "-".into(), |at| display::local(at, zone)),
            source(letter, &config.kafka.topic_prefix),
            letter.class,
            letter.size,
            cut(&letter.reason, 80)
        );
    }
    crate::outln!("{} dead letters", letters.len());
    Ok(())
}

/// `in.orders[2]@1041`: where a dead letter was read, the topic without the prefix.
fn source(letter: &Letter, prefix: &str) -> String {
    let topic = letter
        .source_topic
        .strip_prefix(prefix)
        .unwrap_or(&letter.source_topic);
    match (letter.source_partition, letter.source_offset) {
        (Some(partition), Some(offset)) => format!("{topic}[{partition}]@{offset}"),
        _ => topic.to_string(),
    }
}

/// How much of a value `show` prints.
const SHOW_BYTES: usize = 16 * 1024;

/// `orderflow dlq show`: one dead letter, its headers and value, personal data masked.
pub async fn show(config: &Config, id: &str) -> Result<(), OpsError> {
    let (partition, offset) = parse_id(id)?;
    let filter = Filter {
        partition,
        from: Some(offset),
        to: Some(offset),
        ..Filter::default()
    };
    let found = letters(config, &filter, true).await?;
    let letter = match found.as_slice() {
        [letter] => letter,
        [] => {
            return Err(OpsError::NotFound(format!(
                "no dead letter {id} on {}",
                Topics::new(&config.kafka.topic_prefix).dlq()
            )))
        }
        several => {
            let ids: Vec<String> = several.iter().map(Letter::id).collect();
            return Err(OpsError::Usage(format!(
                "offset {offset} is on several partitions of the dlq; name one of {}",
                ids.join(", ")
            )));
        }
    };
    let zone = config.display.time_zone;
    crate::outln!(
        "dead letter {}  {}",
        letter.id(),
        letter
            .time
            .map_or_else(|| "-".into(), |at| display::local(at, zone))
    );
    crate::outln!(
        "key: {}",
        letter.key.as_deref().map_or_else(
            || "(none)".into(),
            |key| mask_text(&String::from_utf8_lossy(key))
        )
    );
    crate::outln!("headers:");
    for (name, value) in &letter.headers {
        let value = String::from_utf8_lossy(value);
        // (a digest's digits are no phone number)
        let shown = if name == dlq::ORIGINAL_SHA256 {
            value.into_owned()
        } else {
            mask_text(&value)
        };
        crate::outln!("  {name}: {shown}");
    }
    crate::outln!(
        "value ({} bytes here, {} originally{}; personal data masked):",
        letter.payload.len(),
        letter.size,
        if letter.truncated { ", truncated" } else { "" }
    );
    let text = masked_value(&letter.payload);
    crate::outln!("{}", cut(&text, SHOW_BYTES));
    if text.len() > SHOW_BYTES {
        crate::outln!("… ({} more bytes not shown)", text.len() - SHOW_BYTES);
    }
    Ok(())
}

/// `P:O`, or a bare offset (any partition).
fn parse_id(id: &str) -> Result<(Option<i32>, i64), OpsError> {
    let usage = || {
        OpsError::Usage(format!(
            "dead letter {id:?}: expected PARTITION:OFFSET as `orderflow dlq list` prints it (e.g. 0:42), or an OFFSET"
        ))
    };
    match id.split_once(':') {
        Some((partition, offset)) => Ok((
            Some(partition.parse().map_err(|_| usage())?),
            offset.parse().map_err(|_| usage())?,
        )),
        None => Ok((None, id.parse().map_err(|_| usage())?)),
    }
}

/// What `redrive` did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct RedriveReport {
    pub dry_run: bool,
    /// `partition:offset` of each dead letter sent back, with the topic it went to.
    pub redriven: Vec<(String, String)>,
    /// Per reason, the dead letters left where they are.
    pub skipped: BTreeMap<String, Vec<String>>,
}

/// `orderflow dlq redrive`: sends the dead letters `filter` keeps back to their input topic,
/// with their original key, bytes and content type, and marks each on `dlq.redriven`.
pub async fn redrive(
    config: &Config,
    filter: &Filter,
    dry_run: bool,
) -> Result<RedriveReport, OpsError> {
    let topics = Topics::new(&config.kafka.topic_prefix);
    let inputs: Vec<String> = InputTopic::ALL
        .iter()
        .map(|input| topics.name(input.name()))
        .collect();
    let mut report = RedriveReport {
        dry_run,
        ..RedriveReport::default()
    };
    let mut copies = Vec::new();
    let mut marks = Vec::new();
    for letter in letters(config, filter, true).await? {
        let skip = if letter.redriven {
            Some("already redriven")
        } else if letter.truncated {
            Some("truncated: only part of the value was kept")
        } else if !inputs.contains(&letter.source_topic) {
            Some("not from an input topic")
        } else {
            None
        };
        if let Some(why) = skip {
            report
                .skipped
                .entry(why.into())
                .or_default()
                .push(letter.id());
            continue;
        }
        let mut copy_headers = vec![(
            dlq::REDRIVEN_FROM,
            format!("{}/{}/{}", topics.dlq(), letter.partition, letter.offset).into_bytes(),
        )];
        if let Some(content_type) = letter.header(dlq::ORIGINAL_CONTENT_TYPE) {
            copy_headers.push((headers::CONTENT_TYPE, content_type.to_vec()));
        }
        copies.push(Output {
            topic: letter.source_topic.clone(),
            key: letter.key.clone().unwrap_or_default(),
            payload: letter.payload.clone(),
            headers: copy_headers,
        });
        marks.push(Output {
            topic: topics.dlq_redriven(),
            key: letter.mark().into_bytes(),
            payload: serde_json::json!({
                "redriven_at": chrono::Utc::now().to_rfc3339(),
                "topic": letter.source_topic,
            })
            .to_string()
            .into_bytes(),
            headers: Vec::new(),
        });
        report.redriven.push((letter.id(), letter.source_topic));
    }
    if !dry_run && !copies.is_empty() {
        let producer = producer(&config.kafka)?;
        // Marked only once the broker has every copy: a crash between sends a copy again on
        // the next redrive, which the intake drops by its event id.
        deliver(&producer, &copies).await?;
        deliver(&producer, &marks).await?;
    }
    Ok(report)
}

/// Prints a redrive's report.
pub fn print_redrive(
    report: &RedriveReport,
    json: bool,
    zone: chrono_tz::Tz,
) -> Result<(), OpsError> {
    if json {
        return print_json(report, zone);
    }
    let verb = if report.dry_run {
        "would redrive"
    } else {
        "redrove"
    };
    for (id, topic) in &report.redriven {
        crate::outln!("{verb} {id} to {topic}");
    }
    for (why, ids) in &report.skipped {
        crate::outln!("skipped {} ({why}): {}", ids.len(), ids.join(", "));
    }
    crate::outln!(
        "{verb} {} dead letters, skipped {}",
        report.redriven.len(),
        report.skipped.values().map(Vec::len).sum::<usize>()
    );
    Ok(())
}

fn print_json(value: &impl Serialize, zone: chrono_tz::Tz) -> Result<(), OpsError> {
    let text = serde_json::to_string_pretty(value).map_err(|error| {
        orderflow_runtime::RuntimeError::Fatal(format!("encoding output: {error}"))
    })?;
    crate::outln!("{}", display::localize_json(&text, zone));
    Ok(())
}

/// `text` cut to at most `max` bytes on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Keys whose string value is a phone number.
const PHONE_KEYS: &[&str] = &["phone", "mobile"];
/// Keys whose string value is other personal data (an address, who the buyer is, an
/// invoice's title and tax id): only its first two characters are shown.
const PERSONAL_KEYS: &[&str] = &["detail", "address", "buyer_id", "title", "tax_id"];

/// A dead letter's value for people: pretty JSON with personal fields masked, or, when it
/// isn't JSON (malformed, truncated, protobuf), its text masked by [`mask_text`].
pub fn masked_value(payload: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(mut value) => {
            mask_json(&mut value);
            serde_json::to_string_pretty(&value).unwrap_or_default()
        }
        Err(_) => mask_text(&String::from_utf8_lossy(payload)),
    }
}

fn mask_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(text) if PHONE_KEYS.contains(&key.as_str()) => {
                        *text = mask_phone(text);
                    }
                    Value::String(text) if PERSONAL_KEYS.contains(&key.as_str()) => {
                        *text = mask_detail(text);
                    }
                    Value::Number(_) if PHONE_KEYS.contains(&key.as_str()) => {
                        *value = Value::String(mask_phone(&value.to_string()));
                    }
                    other => mask_json(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_json),
        Value::String(text) => *text = mask_mobiles(text),
        _ => {}
    }
}

/// Text that may hold personal data in any shape (a malformed or cut JSON document, a reason
/// that quotes a value): the string after any `"phone":`, `"detail":`, `"address":`, ... is
/// masked, and so is every mainland mobile number anywhere.
pub fn mask_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(quote) = rest.find('"') {
        out.push_str(&rest[..=quote]);
        rest = &rest[quote + 1..];
        for (keys, mask) in [
            (PHONE_KEYS, mask_phone as fn(&str) -> String),
            (PERSONAL_KEYS, mask_detail),
        ] {
            for key in keys {
                let Some(after) = rest.strip_prefix(key).and_then(|r| r.strip_prefix('"')) else {
                    continue;
                };
                let value_start = after.trim_start();
                let Some(value_start) = value_start.strip_prefix(':') else {
                    continue;
                };
                let value_start = value_start.trim_start();
                let Some(value) = value_start.strip_prefix('"') else {
                    continue;
                };
                // The value runs to the next unescaped quote, or to the end of a cut text.
                let mut end = value.len();
                let mut escaped = false;
                for (index, c) in value.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = index;
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let consumed = rest.len() - value.len();
                out.push_str(&rest[..consumed]);
                out.push_str(&mask(&value[..end]));
                rest = &value[end..];
                if rest.starts_with('"') {
                    out.push('"');
                    rest = &rest[1..];
                }
                continue 'scan;
            }
        }
    }
    out.push_str(rest);
    mask_mobiles(&out)
}

/// Every run of exactly 11 digits that is a mainland mobile number, masked.
fn mask_mobiles(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index].is_ascii_digit() {
            let start = index;
            while index < bytes.len() && bytes[index].is_ascii_digit() {
                index += 1;
            }
            let digits = &text[start..index];
            if is_mainland_mobile(digits) {
                out.push_str(&mask_phone(digits));
            } else {
                out.push_str(digits);
            }
        } else {
            let start = index;
            while index < bytes.len() && !bytes[index].is_ascii_digit() {
                index += 1;
            }
            out.push_str(&text[start..index]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_have_their_personal_fields_masked() {
        let payload = serde_json::json!({
            "kind": "order_placed", "platform_order_id": "302918475631", "buyer_id": "buyer-zhang",
            "phone": "13800138000",
            "address": {"province": "浙江省", "city": "杭州市", "detail": "文三路 478 号"},
            "invoice": {"kind": "company", "title": "杭州某某科技有限公司", "tax_id": "91330100MA2XXXXX"},
            "note": "call 13912345678 before noon"
        })
        .to_string();
        let shown = masked_value(payload.as_bytes());
        for raw in [
            "13800138000",
            "文三路 478",
            "buyer-zhang",
            "某某科技",
            "MA2XXXXX",
            "13912345678",
        ] {
            assert!(!shown.contains(raw), "{raw} shown in {shown}");
        }
        for kept in [
            "138****8000",
            "文三****",
            "浙江省",
            "302918475631",
            "139****5678",
        ] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
    }

    #[test]
    fn broken_and_cut_json_text_is_masked_too() {
        let text = r#"{"kind":"order_placed","phone" : "13800138000", "address":{"detail":"文三路 478 号"}, "lines": [{"sku": "A"#;
        let shown = mask_text(text);
        assert!(
            !shown.contains("13800138000") && !shown.contains("478"),
            "{shown}"
        );
        assert!(shown.contains(r#""phone" : "138****8000""#), "{shown}");
        assert!(shown.contains(r#""sku": "A"#), "{shown}");
        // Cut inside the value: masked up to the end.
        let cut = mask_text(r#"{"address": "浙江省杭州市西湖区文三路"#);
        assert_eq!(cut, r#"{"address": "浙江****"#);
        // A reason quoting a value.
        assert_eq!(
            mask_text("phone must be a string, got 13800138000"),
            "phone must be a string, got 138****8000"
        );
    }

    #[test]
    fn dead_letter_ids_read_with_or_without_a_partition() {
        assert_eq!(parse_id("2:41").unwrap(), (Some(2), 41));
        assert_eq!(parse_id("41").unwrap(), (None, 41));
        assert!(matches!(parse_id("x:1"), Err(OpsError::Usage(_))));
    }
}
