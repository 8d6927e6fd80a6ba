//! Times as the CLI shows them to people: in the display zone (`display.time-zone`, the shop's,
//! `Asia/Shanghai` by default) as RFC 3339 with that zone's offset, e.g.
//! `2026-11-25T18:00:00+08:00`. Every printer of `orderflow` goes through here, text and JSON
//! alike, so a person piping `--json` to jq reads the same local times as the tables.
//!
//! Only what is printed changes: the log, the output topics and the consumers' logs keep UTC,
//! and the instant is the same one (an RFC 3339 reader parses it to the same time).

use chrono::SecondsFormat;
use chrono_tz::Tz;
use orderflow_domain::Timestamp;

/// `at` in `zone` to the second, for tables and timelines.
pub fn local(at: Timestamp, zone: Tz) -> String {
    at.with_timezone(&zone)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Rewrites every time in a JSON text into `zone`, keeping its sub-second digits and
/// everything else byte for byte (the order of the fields included).
///
/// A time is a whole JSON string exactly as the domain's timestamps serialise: RFC 3339 in UTC
/// with a `Z`. The documents printed carry times only in that form; what else they hold (ids,
/// codes, amounts, free text) doesn't parse as one, and a time quoted inside free text is part
/// of a longer string.
pub fn localize_json(json: &str, zone: Tz) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 8);
    let mut rest = json;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let Some(close) = closing_quote(body) else {
            out.push_str(body);
            return out;
        };
        let content = &body[..close];
        match utc_time(content) {
            Some(at) => out.push_str(
                &at.with_timezone(&zone)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, false),
            ),
            None => out.push_str(content),
        }
        out.push('"');
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Where the JSON string that `body` starts (after its opening quote) ends.
fn closing_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(index),
            _ => escaped = false,
        }
    }
    None
}

fn utc_time(text: &str) -> Option<Timestamp> {
    if !text.ends_with('Z') {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn a_time_reads_in_the_zone_with_its_offset() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
            .unwrap();
        assert_eq!(local(at, SHANGHAI), "2026-11-25T18:00:00+08:00");
        assert_eq!(local(at, chrono_tz::UTC), "2026-11-25T10:00:00+00:00");
        // Across midnight, and a zone with summer time: the offset of that date.
        let late = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 20, 30, 5).unwrap();
        assert_eq!(local(late, SHANGHAI), "2026-07-02T04:30:05+08:00");
        assert_eq!(
            local(late, chrono_tz::Europe::Berlin),
            "2026-07-01T22:30:05+02:00"
        );
        let subsecond = at + chrono::TimeDelta::milliseconds(120);
        assert_eq!(local(subsecond, SHANGHAI), "2026-11-25T18:00:00+08:00");
    }

    #[test]
    fn json_times_move_to_the_zone_and_nothing_else_changes() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
        let document = serde_json::to_string_pretty(&json!({
            "order_id": "jd:J-jd",
            "version": 11,
            "placed_at": at,
            "approval": {"decided_at": "2026-11-25T05:07:13.120Z", "rule_version": "builtin-1"},
            "shipments": [{"dispatched_at": "2026-11-25T02:02:00Z", "delivered_at": null}],
            "note": "call back at \"2026-11-25T02:00:00Z\", or 2026-11-25T02:00:00Z \\",
            "code": "Z",
            "offset_given": "2026-11-25T10:00:00+08:00",
        }))
        .unwrap();
        let shown = localize_json(&document, SHANGHAI);
        let expected = serde_json::to_string_pretty(&json!({
            "order_id": "jd:J-jd",
            "version": 11,
            "placed_at": "2026-11-25T10:00:00+08:00",
            "approval": {"decided_at": "2026-11-25T13:07:13.120+08:00", "rule_version": "builtin-1"},
            "shipments": [{"dispatched_at": "2026-11-25T10:02:00+08:00", "delivered_at": null}],
            "note": "call back at \"2026-11-25T02:00:00Z\", or 2026-11-25T02:00:00Z \\",
            "code": "Z",
            "offset_given": "2026-11-25T10:00:00+08:00",
        }))
        .unwrap();
        assert_eq!(shown, expected);
        // The same instant: a reader that parses it gets the UTC time back.
        let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
        let placed = value["placed_at"].as_str().unwrap();
        assert_eq!(chrono::DateTime::parse_from_rfc3339(placed).unwrap(), at);
    }

    #[test]
    fn the_fields_keep_their_order() {
        #[derive(serde::Serialize)]
        struct Inspection {
            order_id: &'static str,
            timeline: Vec<&'static str>,
            applied: Vec<&'static str>,
        }
        let text = serde_json::to_string(&Inspection {
            order_id: "web:1",
            timeline: vec!["2026-11-25T02:00:00Z"],
            applied: vec![],
        })
        .unwrap();
        assert_eq!(
            localize_json(&text, SHANGHAI),
            r#"{"order_id":"web:1","timeline":["2026-11-25T10:00:00+08:00"],"applied":[]}"#
        );
    }
}
