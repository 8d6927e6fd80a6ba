//! The exception report (the seed's 异常报告): what is open now and who has it, and per kind and
//! per channel how many exceptions were raised, how fast they were handled, how often they were
//! escalated and how often they come back.
//!
//! It is a fold of the `exceptions` topic, which is at-least-once: after a crash the state
//! consumer may publish a change again, with the same change id. So the fold drops a change
//! whose id it has seen, and merges the others monotonically: a resolved exception never
//! reopens and a level never goes down, whatever order copies arrive in. Each exception is
//! counted once, by its `exception_id`. This module does no I/O; `orderflow exceptions` feeds
//! it the topic's records and prints what it returns.
//!
//! Definitions, for a report at `now` over the window `[since, now]` (all time up to `now`
//! without `since`):
//!
//! - **open**: the backlog at `now`, whatever the window: raised at or before `now` and not
//!   resolved by then. Its level is the one it had reached by `now`; its age is
//!   `now − raised_at`. Exceptions raised after `now` are left out everywhere.
//! - **raised**, **resolved**, **escalations**: raises, resolutions and level changes whose
//!   time falls in the window. An exception raised before the window and resolved in it counts
//!   as resolved, not as raised.
//! - **average handling time**: `resolved_at − raised_at`, averaged over the exceptions
//!   resolved in the window.
//! - **recurrence**: an exception is a recurrence when its order already had an exception of the
//!   same kind raised before it (at any time, also before the window). `recurrences` counts the
//!   recurrences among the exceptions raised in the window, `repeat_orders` the orders they are
//!   on, and `recurrence_rate = recurrences / raised`. An exception id is deterministic per
//!   order and condition, so the same condition is never raised twice on one order: a
//!   recurrence is another condition of the same kind (a second `suspected_fraud` finding, a
//!   second illegal transition).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, TimeDelta, Utc};
use orderflow_domain::{
    Channel, EventId, ExceptionAction, ExceptionChange, ExceptionKind, ExceptionRecord, Level,
    OrderId, Timestamp,
};
use orderflow_schema::output::{ExceptionChangeRecord, Versioned};
use serde::Serialize;

/// The latest state of every exception seen on the topic.
#[derive(Debug, Default)]
pub struct ExceptionLedger {
    exceptions: BTreeMap<EventId, Tracked>,
    seen_changes: BTreeSet<String>,
    changes_read: u64,
    redeliveries: u64,
    unreadable: u64,
}

#[derive(Debug)]
struct Tracked {
    order_id: OrderId,
    record: ExceptionRecord,
    /// When it reached each level, the level it was raised at included.
    reached: BTreeMap<Level, Timestamp>,
}

impl Tracked {
    fn new(change: ExceptionChange) -> Tracked {
        let record = change.exception;
        let mut reached = BTreeMap::new();
        // Without its `raised` change (e.g. cut by retention) the kind says where it started.
        let first_level = match change.action {
            ExceptionAction::Raised => record.level,
            _ => record.kind.initial_level().min(record.level),
        };
        reached.insert(first_level, record.raised_at);
        reached.entry(record.level).or_insert(record.level_since);
        Tracked {
            order_id: change.order_id,
            record,
            reached,
        }
    }

    fn merge(&mut self, incoming: ExceptionRecord) {
        self.reached
            .entry(incoming.level)
            .and_modify(|since| *since = (*since).min(incoming.level_since))
            .or_insert(incoming.level_since);
        let current = &mut self.record;
        if current.resolution.is_some() {
            return;
        }
        if incoming.resolution.is_some() {
            *current = incoming;
            return;
        }
        if incoming.level > current.level {
            current.level = incoming.level;
            current.level_since = incoming.level_since;
        }
        if incoming.assignee.is_some() {
            current.assignee = incoming.assignee;
        }
    }

    /// The level reached by `now` and since when.
    fn level_at(&self, now: Timestamp) -> (Level, Timestamp) {
        self.reached
            .iter()
            .rev()
            .find(|(_, since)| **since <= now)
            .or_else(|| self.reached.iter().next())
            .map_or(
                (self.record.level, self.record.level_since),
                |(level, since)| (*level, *since),
            )
    }

    /// When each escalation happened: every level reached after the first.
    fn escalations(&self) -> impl Iterator<Item = Timestamp> + '_ {
        self.reached.values().skip(1).copied()
    }

    fn resolved_at(&self) -> Option<Timestamp> {
        self.record.resolution.as_ref().map(|r| r.resolved_at)
    }
}

impl ExceptionLedger {
    /// Folds one record value of the `exceptions` topic; a value that is not an exception
    /// change is counted as unreadable and reported, never silently skipped.
    pub fn apply_payload(&mut self, payload: Option<&[u8]>) {
        match payload.map(ExceptionChangeRecord::from_json) {
            Some(Ok(Versioned { record, .. })) => {
                self.apply(record);
            }
            _ => self.unreadable += 1,
        }
    }

    /// Folds one change; returns false for a re-delivery of a change already folded.
    pub fn apply(&mut self, change: ExceptionChange) -> bool {
        self.changes_read += 1;
        if !self.seen_changes.insert(change.change_id()) {
            self.redeliveries += 1;
            return false;
        }
        match self.exceptions.get_mut(&change.exception.exception_id) {
            Some(tracked) => tracked.merge(change.exception),
            None => {
                self.exceptions
                    .insert(change.exception.exception_id.clone(), Tracked::new(change));
            }
        }
        true
    }

    /// The report at `now`, counting activity at or after `since` (everything when `None`).
    pub fn report(&self, now: Timestamp, since: Option<Timestamp>) -> ExceptionReport {
        let in_window = |at: Timestamp| at <= now && since.is_none_or(|since| at >= since);
        let known: Vec<&Tracked> = self
            .exceptions
            .values()
            .filter(|tracked| tracked.record.raised_at <= now)
            .collect();
        let recurrent = recurrences(&known);

        let mut by_kind: BTreeMap<&'static str, Tally> = ExceptionKind::ALL
            .iter()
            .map(|kind| (kind.as_str(), Tally::default()))
            .collect();
        let mut by_channel: BTreeMap<&'static str, Tally> = Channel::ALL
            .iter()
            .map(|channel| (channel.as_str(), Tally::default()))
            .collect();
        let mut total = Tally::default();
        let mut open = Vec::new();
        for tracked in &known {
            let record = &tracked.record;
            let tallies = [
                by_kind.entry(record.kind.as_str()).or_default(),
                by_channel
                    .entry(tracked.order_id.channel().as_str())
                    .or_default(),
                &mut total,
            ];
            let is_recurrence = recurrent.contains(&record.exception_id);
            for tally in tallies {
                tally.count(tracked, is_recurrence, &in_window);
            }
            let open_at_now = tracked.resolved_at().is_none_or(|at| at > now);
            if open_at_now {
                open.push(OpenException::at(tracked, now));
            }
        }
        open.sort_by(|a, b| (a.raised_at, &a.exception_id).cmp(&(b.raised_at, &b.exception_id)));

        let mut open_by_kind = zeroes(ExceptionKind::ALL.iter().map(|k| k.as_str()));
        let mut open_by_owner = zeroes(ExceptionKind::ALL.iter().map(|k| k.owner().as_str()));
        let mut open_by_level = zeroes([Level::L1, Level::L2, Level::L3].map(Level::as_str));
        for exception in &open {
            *open_by_kind.entry(exception.kind.as_str()).or_default() += 1;
            *open_by_owner.entry(exception.owner.as_str()).or_default() += 1;
            *open_by_level.entry(exception.level.as_str()).or_default() += 1;
        }
        let raised_total = total.raised;
        let finish = |tallies: BTreeMap<&'static str, Tally>| {
            owned(
                tallies
                    .into_iter()
                    .map(|(key, tally)| (key, tally.finish(raised_total)))
                    .collect(),
            )
        };
        ExceptionReport {
            now,
            since,
            changes_read: self.changes_read,
            redeliveries_ignored: self.redeliveries,
            unreadable_records: self.unreadable,
            exceptions_known: known.len() as u64,
            open,
            open_by_kind: owned(open_by_kind),
            open_by_owner: owned(open_by_owner),
            open_by_level: owned(open_by_level),
            by_kind: finish(by_kind),
            by_channel: finish(by_channel),
            total: total.finish(raised_total),
        }
    }
}

/// The exceptions whose order already had one of the same kind raised before them.
fn recurrences<'a>(known: &[&'a Tracked]) -> BTreeSet<&'a EventId> {
    let mut per_order_kind: BTreeMap<(&OrderId, ExceptionKind), Vec<(Timestamp, &EventId)>> =
        BTreeMap::new();
    for tracked in known {
        per_order_kind
            .entry((&tracked.order_id, tracked.record.kind))
            .or_default()
            .push((tracked.record.raised_at, &tracked.record.exception_id));
    }
    per_order_kind
        .into_values()
        .flat_map(|mut raised| {
            raised.sort();
            raised.into_iter().skip(1).map(|(_, id)| id)
        })
        .collect()
}

fn zeroes(keys: impl IntoIterator<Item = &'static str>) -> BTreeMap<&'static str, u64> {
    keys.into_iter().map(|key| (key, 0)).collect()
}

fn owned<V>(map: BTreeMap<&'static str, V>) -> BTreeMap<String, V> {
    map.into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// What `orderflow exceptions --json` prints. Every kind, owner, level and channel is present,
/// with zeros, so the document has the same shape every time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExceptionReport {
    pub now: Timestamp,
    /// Start of the window; `null` for all time.
    pub since: Option<Timestamp>,
    /// Records folded, re-deliveries included.
    pub changes_read: u64,
    /// Changes whose change id had been folded already.
    pub redeliveries_ignored: u64,
    /// Records that are not an exception change.
    pub unreadable_records: u64,
    /// Distinct exceptions raised up to `now`.
    pub exceptions_known: u64,
    /// Open at `now`, oldest first.
    pub open: Vec<OpenException>,
    pub open_by_kind: BTreeMap<String, u64>,
    pub open_by_owner: BTreeMap<String, u64>,
    pub open_by_level: BTreeMap<String, u64>,
    pub by_kind: BTreeMap<String, Activity>,
    pub by_channel: BTreeMap<String, Activity>,
    pub total: Activity,
}

/// An exception open at the report's `now`. The detail is masked by the domain; resolution
/// notes (free text from operators) are never part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenException {
    pub exception_id: String,
    pub order_id: String,
    pub channel: Channel,
    pub kind: ExceptionKind,
    pub code: String,
    pub owner: orderflow_domain::Owner,
    pub level: Level,
    pub assignee: Option<String>,
    pub raised_at: Timestamp,
    /// When it reached `level`: its SLA clock runs from here.
    pub level_since: Timestamp,
    pub age_secs: i64,
    pub at_level_secs: i64,
    pub detail: String,
}

impl OpenException {
    fn at(tracked: &Tracked, now: Timestamp) -> OpenException {
        let record = &tracked.record;
        let (level, level_since) = tracked.level_at(now);
        OpenException {
            exception_id: record.exception_id.to_string(),
            order_id: tracked.order_id.to_string(),
            channel: tracked.order_id.channel(),
            kind: record.kind,
            code: record.code.clone(),
            owner: record.owner,
            level,
            assignee: record.assignee.clone(),
            raised_at: record.raised_at,
            level_since,
            age_secs: (now - record.raised_at).num_seconds(),
            at_level_secs: (now - level_since).num_seconds(),
            detail: record.detail.clone(),
        }
    }
}

/// What happened in the window, for one kind, one channel or in total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    pub raised: u64,
    /// `raised` over all exceptions raised in the window; `null` when none were.
    pub share_of_raised: Option<f64>,
    pub resolved: u64,
    /// Mean `resolved_at − raised_at` of those resolved in the window; `null` when none were.
    pub avg_handling_secs: Option<i64>,
    pub escalations: u64,
    /// Distinct orders among those raised in the window.
    pub orders: u64,
    pub recurrences: u64,
    pub repeat_orders: u64,
    /// `recurrences / raised`; `null` when none were raised.
    pub recurrence_rate: Option<f64>,
}

#[derive(Debug, Default)]
struct Tally {
    raised: u64,
    resolved: u64,
    handling_secs: i64,
    escalations: u64,
    orders: BTreeSet<OrderId>,
    recurrences: u64,
    repeat_orders: BTreeSet<OrderId>,
}

impl Tally {
    fn count(
        &mut self,
        tracked: &Tracked,
        is_recurrence: bool,
        in_window: &impl Fn(Timestamp) -> bool,
    ) {
        let record = &tracked.record;
        if in_window(record.raised_at) {
            self.raised += 1;
            self.orders.insert(tracked.order_id.clone());
            if is_recurrence {
                self.recurrences += 1;
                self.repeat_orders.insert(tracked.order_id.clone());
            }
        }
        if let Some(resolved_at) = tracked.resolved_at().filter(|at| in_window(*at)) {
            self.resolved += 1;
            self.handling_secs += (resolved_at - record.raised_at).num_seconds().max(0);
        }
        self.escalations += tracked.escalations().filter(|at| in_window(*at)).count() as u64;
    }

    fn finish(self, raised_total: u64) -> Activity {
        let ratio = |part: u64, whole: u64| {
            (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
        };
        Activity {
            raised: self.raised,
            share_of_raised: ratio(self.raised, raised_total),
            resolved: self.resolved,
            avg_handling_secs: (self.resolved > 0).then(|| {
                let resolved = i64::try_from(self.resolved).unwrap_or(i64::MAX);
                (self.handling_secs + resolved / 2) / resolved
            }),
            escalations: self.escalations,
            orders: self.orders.len() as u64,
            recurrences: self.recurrences,
            repeat_orders: self.repeat_orders.len() as u64,
            recurrence_rate: ratio(self.recurrences, self.raised),
        }
    }

    fn is_quiet(activity: &Activity) -> bool {
        activity.raised == 0 && activity.resolved == 0 && activity.escalations == 0
    }
}

/// Parses `--now`: an RFC 3339 time.
pub fn parse_instant(text: &str) -> Result<Timestamp, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| {
            format!("{text:?} is not an RFC 3339 time like 2026-03-09T08:00:00Z ({error})")
        })
}

/// Parses `--since`: an RFC 3339 time, or a duration back from `now` such as `7d`, `36h`,
/// `90m` or `1w2d` (units `w`, `d`, `h`, `m`, `s`).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    let since = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let back = parse_duration(text).ok_or_else(|| {
                format!(
                    "{text:?} is neither an RFC 3339 time like 2026-03-02T00:00:00Z nor a \
                     duration like 7d, 36h or 90m"
                )
            })?;
            now.checked_sub_signed(back)
                .ok_or_else(|| format!("{text:?} reaches back too far"))?
        }
    };
    if since > now {
        return Err(format!(
            "{text:?} is after the report time {}",
            now.to_rfc3339()
        ));
    }
    Ok(since)
}

fn parse_duration(text: &str) -> Option<TimeDelta> {
    let mut seconds: i64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            'w' => 7 * 86_400,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let amount: i64 = digits.parse().ok()?;
        seconds = seconds.checked_add(amount.checked_mul(unit)?)?;
        digits.clear();
    }
    if !digits.is_empty() || seconds == 0 {
        return None;
    }
    TimeDelta::try_seconds(seconds)
}

/// `45s`, `12m`, `3h12m`, `2d04h`: precise enough to sort a queue by eye.
pub fn format_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h{:02}m", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// The report as tables for people, its times in `zone`.
pub fn render_text(report: &ExceptionReport, zone: chrono_tz::Tz) -> String {
    let mut out = String::new();
    let time = |at: Timestamp| crate::display::local(at, zone);
    let window = match report.since {
        Some(since) => format!("{} to {}", time(since), time(report.now)),
        None => format!("all time to {}", time(report.now)),
    };
    let _ = writeln!(out, "Exception report, window {window}");
    let _ = writeln!(
        out,
        "{} changes read ({} re-delivered and ignored, {} unreadable); {} exceptions",
        report.changes_read,
        report.redeliveries_ignored,
        report.unreadable_records,
        report.exceptions_known
    );

    let _ = writeln!(out);
    if report.open.is_empty() {
        let _ = writeln!(out, "Open: none");
    } else {
        let _ = writeln!(out, "Open: {}, oldest first", report.open.len());
        let mut table = Table::new(&[
            ("AGE", Align::Right),
            ("KIND", Align::Left),
            ("OWNER", Align::Left),
            ("LEVEL", Align::Left),
            ("AT LEVEL", Align::Right),
            ("ASSIGNEE", Align::Left),
            ("ORDER", Align::Left),
            ("CODE", Align::Left),
            ("DETAIL", Align::Left),
        ]);
        for open in &report.open {
            table.row(vec![
                format_age(open.age_secs),
                open.kind.as_str().to_string(),
                open.owner.as_str().to_string(),
                open.level.as_str().to_string(),
                format_age(open.at_level_secs),
                open.assignee.clone().unwrap_or_else(|| "-".into()),
                open.order_id.clone(),
                open.code.clone(),
                open.detail.clone(),
            ]);
        }
        table.render(&mut out);
        let counts = |map: &BTreeMap<String, u64>| {
            let nonzero: Vec<String> = map
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(key, n)| format!("{key} {n}"))
                .collect();
            nonzero.join(", ")
        };
        let _ = writeln!(out, "open by kind:  {}", counts(&report.open_by_kind));
        let _ = writeln!(out, "open by owner: {}", counts(&report.open_by_owner));
        let _ = writeln!(out, "open by level: {}", counts(&report.open_by_level));
    }

    for (title, column, groups) in [
        ("By kind", "KIND", &report.by_kind),
        ("By channel", "CHANNEL", &report.by_channel),
    ] {
        let _ = writeln!(out);
        let _ = writeln!(out, "{title}, window {window}");
        let mut table = Table::new(&[
            (column, Align::Left),
            ("RAISED", Align::Right),
            ("SHARE", Align::Right),
            ("RESOLVED", Align::Right),
            ("AVG HANDLING", Align::Right),
            ("ESCALATIONS", Align::Right),
            ("ORDERS", Align::Right),
            ("RECURRENCES", Align::Right),
            ("REPEAT ORDERS", Align::Right),
            ("RECURRENCE", Align::Right),
        ]);
        let rows = groups
            .iter()
            .filter(|(_, activity)| !Tally::is_quiet(activity))
            .map(|(name, activity)| (name.as_str(), activity))
            .chain([("total", &report.total)]);
        for (name, activity) in rows {
            table.row(activity_row(name, activity));
        }
        table.render(&mut out);
    }
    out
}

fn activity_row(name: &str, activity: &Activity) -> Vec<String> {
    let percent =
        |rate: Option<f64>| rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
    vec![
        name.to_string(),
        activity.raised.to_string(),
        percent(activity.share_of_raised),
        activity.resolved.to_string(),
        activity
            .avg_handling_secs
            .map_or_else(|| "-".to_string(), format_age),
        activity.escalations.to_string(),
        activity.orders.to_string(),
        activity.recurrences.to_string(),
        activity.repeat_orders.to_string(),
        percent(activity.recurrence_rate),
    ]
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// Columns padded to their widest cell; the last column is not padded, so free text such as a
/// detail can run on without trailing spaces.
struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|(title, align)| (title.to_string(), *align))
                .collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String) {
        let header: Vec<String> = self.columns.iter().map(|(t, _)| t.clone()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|column| {
                lines
                    .iter()
                    .map(|cells| cells.get(column).map_or(0, |cell| display_width(cell)))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for cells in lines {
            let mut line = String::new();
            for (column, ((_, align), width)) in self.columns.iter().zip(&widths).enumerate() {
                let cell = cells.get(column).map_or("", String::as_str);
                let pad = " ".repeat(width.saturating_sub(display_width(cell)));
                if column > 0 {
                    line.push_str("  ");
                }
                let last = column + 1 == self.columns.len();
                match align {
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                    Align::Left => {
                        line.push_str(cell);
                        if !last {
                            line.push_str(&pad);
                        }
                    }
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
}

/// Terminal columns of `text`: CJK and full-width characters (addresses, names, details in
/// Chinese) take two.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use orderflow_domain::{Actor, ActorRole, Resolution};

    use super::*;

    fn at(day: u32, hour: u32, minute: u32) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 3, day, hour, minute, 0).unwrap()
    }

    /// An exception on `order` for `code`, raised at `raised_at`, open at its kind's level.
    fn record(
        order: &str,
        kind: ExceptionKind,
        code: &str,
        raised_at: Timestamp,
    ) -> ExceptionRecord {
        ExceptionRecord {
            exception_id: EventId::derive(&["exception", order, code]),
            kind,
            code: code.to_string(),
            owner: kind.owner(),
            level: kind.initial_level(),
            detail: format!("{code} detail"),
            raised_at,
            raised_by: EventId::derive(&["event", order, code]),
            level_since: raised_at,
            assignee: None,
            resolution: None,
        }
    }

    fn change(
        order: &str,
        action: ExceptionAction,
        exception: &ExceptionRecord,
    ) -> ExceptionChange {
        ExceptionChange {
            order_id: order.parse().unwrap(),
            action,
            exception: exception.clone(),
        }
    }

    fn resolved(
        mut exception: ExceptionRecord,
        resolved_at: Timestamp,
        note: &str,
    ) -> ExceptionRecord {
        exception.resolution = Some(Resolution {
            resolved_at,
            resolved_by: EventId::derive(&["resolve", note]),
            note: note.to_string(),
            actor: Some(Actor {
                id: "op-7".into(),
                role: ActorRole::Operator,
            }),
        });
        exception
    }

    fn escalated(mut exception: ExceptionRecord, to: Level, since: Timestamp) -> ExceptionRecord {
        exception.level = to;
        exception.level_since = since;
        exception
    }

    fn ledger(changes: impl IntoIterator<Item = ExceptionChange>) -> ExceptionLedger {
        let mut ledger = ExceptionLedger::default();
        for change in changes {
            ledger.apply(change);
        }
        ledger
    }

    const ADDRESS: ExceptionKind = ExceptionKind::InvalidAddress;
    const FRAUD: ExceptionKind = ExceptionKind::SuspectedFraud;

    #[test]
    fn redelivered_changes_are_counted_once() {
        let raised = record("tmall:1001", ADDRESS, "address_too_short", at(2, 9, 0));
        let done = resolved(raised.clone(), at(2, 11, 0), "fixed");
        let mut ledger = ExceptionLedger::default();
        assert!(ledger.apply(change("tmall:1001", ExceptionAction::Raised, &raised)));
        assert!(ledger.apply(change("tmall:1001", ExceptionAction::Resolved, &done)));
        // A restarted state consumer publishes both again, the `raised` one last.
        assert!(!ledger.apply(change("tmall:1001", ExceptionAction::Resolved, &done)));
        assert!(!ledger.apply(change("tmall:1001", ExceptionAction::Raised, &raised)));

        let report = ledger.report(at(3, 0, 0), None);
        assert_eq!(report.changes_read, 4);
        assert_eq!(report.redeliveries_ignored, 2);
        assert_eq!(report.exceptions_known, 1);
        assert!(report.open.is_empty(), "a re-delivered raise reopened it");
        assert_eq!(report.by_kind["invalid_address"].raised, 1);
        assert_eq!(report.by_kind["invalid_address"].resolved, 1);
        assert_eq!(report.by_channel["tmall"].raised, 1);
        assert_eq!(report.total.raised, 1);
    }

    #[test]
    fn a_late_copy_of_an_older_state_does_not_reopen_or_lower_it() {
        let raised = record("jd:77", FRAUD, "brushing", at(2, 9, 0));
        let up = escalated(raised.clone(), Level::L3, at(2, 17, 0));
        let mut assigned = raised.clone();
        assigned.assignee = Some("li.wei".into());
        let report = ledger([
            change("jd:77", ExceptionAction::Raised, &raised),
            change("jd:77", ExceptionAction::Escalated, &up),
            // A distinct change (new change id) that carries the state before the escalation.
            change("jd:77", ExceptionAction::Assigned, &assigned),
        ])
        .report(at(3, 0, 0), None);
        assert_eq!(report.open.len(), 1);
        assert_eq!(report.open[0].level, Level::L3);
        assert_eq!(report.open[0].assignee.as_deref(), Some("li.wei"));

        let done = resolved(up.clone(), at(2, 18, 0), "confirmed");
        let report = ledger([
            change("jd:77", ExceptionAction::Raised, &raised),
            change("jd:77", ExceptionAction::Resolved, &done),
            change("jd:77", ExceptionAction::Assigned, &assigned),
        ])
        .report(at(3, 0, 0), None);
        assert!(report.open.is_empty());
        assert_eq!(report.by_kind["suspected_fraud"].resolved, 1);
    }

    #[test]
    fn escalation_changes_the_level_from_its_time_on() {
        let raised = record("douyin:5", ADDRESS, "address_too_short", at(2, 8, 0));
        let up = escalated(raised.clone(), Level::L2, at(2, 12, 0));
        let ledger = ledger([
            change("douyin:5", ExceptionAction::Raised, &raised),
            change("douyin:5", ExceptionAction::Escalated, &up),
            change("douyin:5", ExceptionAction::Escalated, &up),
        ]);

        let report = ledger.report(at(2, 15, 12), None);
        let open = &report.open[0];
        assert_eq!((open.level, open.level_since), (Level::L2, at(2, 12, 0)));
        assert_eq!(format_age(open.age_secs), "7h12m");
        assert_eq!(format_age(open.at_level_secs), "3h12m");
        assert_eq!(report.open_by_level["L2"], 1);
        assert_eq!(report.open_by_level["L1"], 0);
        assert_eq!(report.open_by_owner["customer_service"], 1);
        assert_eq!(report.by_kind["invalid_address"].escalations, 1);

        // Before the escalation it was still at L1, and no escalation had happened yet.
        let earlier = ledger.report(at(2, 11, 0), None);
        assert_eq!(earlier.open[0].level, Level::L1);
        assert_eq!(earlier.open_by_level["L1"], 1);
        assert_eq!(earlier.by_kind["invalid_address"].escalations, 0);
    }

    #[test]
    fn escalation_without_its_raise_counts_from_the_kinds_first_level() {
        let raised = record("web:9", ADDRESS, "address_too_short", at(2, 8, 0));
        let up = escalated(raised, Level::L3, at(2, 20, 0));
        let report =
            ledger([change("web:9", ExceptionAction::Escalated, &up)]).report(at(3, 0, 0), None);
        assert_eq!(report.by_kind["invalid_address"].escalations, 1);
        assert_eq!(report.open[0].level, Level::L3);
    }

    #[test]
    fn handling_time_averages_the_resolved_ones() {
        let a = record("tmall:1", ADDRESS, "address_too_short", at(2, 8, 0));
        let b = record("tmall:2", ADDRESS, "address_too_short", at(2, 9, 0));
        let c = record("jd:3", ADDRESS, "address_too_short", at(2, 9, 0));
        let report = ledger([
            change("tmall:1", ExceptionAction::Raised, &a),
            change("tmall:2", ExceptionAction::Raised, &b),
            change("jd:3", ExceptionAction::Raised, &c),
            change(
                "tmall:1",
                ExceptionAction::Resolved,
                &resolved(a.clone(), at(2, 9, 0), "ok"),
            ),
            change(
                "tmall:2",
                ExceptionAction::Resolved,
                &resolved(b.clone(), at(2, 12, 0), "ok"),
            ),
        ])
        .report(at(3, 0, 0), None);
        let kind = &report.by_kind["invalid_address"];
        assert_eq!((kind.raised, kind.resolved), (3, 2));
        assert_eq!(kind.avg_handling_secs, Some(2 * 3_600));
        assert_eq!(
            report.by_channel["tmall"].avg_handling_secs,
            Some(2 * 3_600)
        );
        assert_eq!(report.by_channel["jd"].avg_handling_secs, None);
        assert_eq!(report.open.len(), 1);
        assert_eq!(report.open[0].order_id, "jd:3");
        assert_eq!(report.open_by_kind["invalid_address"], 1);
    }

    #[test]
    fn recurrence_is_another_exception_of_the_kind_on_the_same_order() {
        let first = record("jd:50", FRAUD, "brushing", at(2, 8, 0));
        let again = record("jd:50", FRAUD, "purchase_limit_exceeded", at(2, 10, 0));
        let other_order = record("jd:51", FRAUD, "brushing", at(2, 9, 0));
        let other_kind = record("jd:50", ADDRESS, "address_too_short", at(2, 11, 0));
        let report = ledger(
            [&first, &again, &other_order, &other_kind].map(|exception| {
                let order = if exception.raised_at == at(2, 9, 0) {
                    "jd:51"
                } else {
                    "jd:50"
                };
                change(order, ExceptionAction::Raised, exception)
            }),
        )
        .report(at(3, 0, 0), None);
        let fraud = &report.by_kind["suspected_fraud"];
        assert_eq!((fraud.raised, fraud.orders), (3, 2));
        assert_eq!((fraud.recurrences, fraud.repeat_orders), (1, 1));
        assert_eq!(fraud.recurrence_rate, Some(0.3333));
        assert_eq!(fraud.share_of_raised, Some(0.75));
        assert_eq!(report.by_kind["invalid_address"].recurrences, 0);
        assert_eq!(report.total.recurrences, 1);
        assert_eq!(report.by_channel["jd"].orders, 2);
    }

    #[test]
    fn window_counts_what_happened_in_it_and_ignores_the_future() {
        let before = record("store:1", FRAUD, "brushing", at(1, 8, 0));
        let inside = record("store:1", FRAUD, "purchase_limit_exceeded", at(5, 8, 0));
        let future = record("store:2", ADDRESS, "address_too_short", at(9, 8, 0));
        let ledger = ledger([
            change("store:1", ExceptionAction::Raised, &before),
            change("store:1", ExceptionAction::Raised, &inside),
            change(
                "store:1",
                ExceptionAction::Resolved,
                &resolved(before.clone(), at(6, 8, 0), "ok"),
            ),
            change("store:2", ExceptionAction::Raised, &future),
        ]);
        let now = at(8, 0, 0);
        let report = ledger.report(now, Some(parse_since("7d", now).unwrap()));
        let fraud = &report.by_kind["suspected_fraud"];
        assert_eq!(report.since, Some(at(1, 0, 0)));
        assert_eq!((fraud.raised, fraud.resolved), (2, 1));

        let report = ledger.report(now, Some(parse_since("3d", now).unwrap()));
        let fraud = &report.by_kind["suspected_fraud"];
        // Raised before the window, resolved in it: counts as resolved only.
        assert_eq!((fraud.raised, fraud.resolved), (1, 1));
        assert_eq!(fraud.avg_handling_secs, Some(5 * 86_400));
        // Its order had one of this kind before the window: a recurrence all the same.
        assert_eq!((fraud.recurrences, fraud.repeat_orders), (1, 1));
        assert_eq!(report.exceptions_known, 2, "raised after --now");
        assert_eq!(report.by_kind["invalid_address"].raised, 0);
        assert_eq!(report.open.len(), 1);

        // Resolved after --now: still open then.
        let report = ledger.report(at(5, 12, 0), None);
        assert_eq!(report.open.len(), 2);
        assert_eq!(report.open[0].order_id, "store:1");
        assert_eq!(report.by_kind["suspected_fraud"].resolved, 0);
    }

    #[test]
    fn since_takes_a_time_or_a_duration() {
        let now = at(9, 12, 0);
        assert_eq!(parse_since("7d", now), Ok(at(2, 12, 0)));
        assert_eq!(parse_since("1w", now), Ok(at(2, 12, 0)));
        assert_eq!(
            parse_since("1d12h30m", now),
            Ok(at(8, 0, 0) - TimeDelta::minutes(30))
        );
        assert_eq!(
            parse_since("2026-03-02T08:00:00+08:00", now),
            Ok(at(2, 0, 0))
        );
        for bad in ["", "7", "d", "7x", "0d", "-7d", "2026-03-10T00:00:00Z"] {
            assert!(parse_since(bad, now).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(parse_instant("2026-03-09T12:00:00Z"), Ok(now));
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(12 * 60 + 5), "12m");
        assert_eq!(format_age(3 * 3_600 + 12 * 60), "3h12m");
        assert_eq!(format_age(2 * 86_400 + 4 * 3_600 + 59), "2d04h");
        assert_eq!(format_age(-5), "0s");
    }

    #[test]
    fn unreadable_records_are_counted_not_dropped() {
        let raised = record("web:1", ADDRESS, "address_too_short", at(2, 8, 0));
        let mut ledger = ExceptionLedger::default();
        let json = serde_json::to_vec(&change("web:1", ExceptionAction::Raised, &raised)).unwrap();
        ledger.apply_payload(Some(&json));
        ledger.apply_payload(Some(b"{not json"));
        ledger.apply_payload(None);
        let report = ledger.report(at(3, 0, 0), None);
        assert_eq!((report.changes_read, report.unreadable_records), (1, 2));
        assert_eq!(report.open.len(), 1);
    }

    #[test]
    fn text_is_aligned_and_leaves_out_resolution_notes() {
        let a = record(
            "tmall:3921847562019384756",
            ADDRESS,
            "address_too_short",
            at(2, 8, 0),
        );
        let mut b = record(
            "jd:7",
            ExceptionKind::OutOfStockAtReview,
            "out_of_stock",
            at(2, 9, 30),
        );
        b.assignee = Some("王芳".into());
        let c = record("web:8", ADDRESS, "address_too_short", at(2, 9, 0));
        let ledger = ledger([
            change("tmall:3921847562019384756", ExceptionAction::Raised, &a),
            change("jd:7", ExceptionAction::Raised, &b),
            change("web:8", ExceptionAction::Raised, &c),
            change(
                "web:8",
                ExceptionAction::Resolved,
                &resolved(c.clone(), at(2, 10, 0), "called the buyer on 13800138000"),
            ),
        ]);
        let report = ledger.report(at(2, 12, 0), Some(at(2, 0, 0)));
        let text = render_text(&report, chrono_tz::Asia::Shanghai);
        assert!(
            text.starts_with(
                "Exception report, window 2026-03-02T08:00:00+08:00 to 2026-03-02T20:00:00+08:00\n"
            ),
            "times in the display zone:\n{text}"
        );
        let json = serde_json::to_string(&report).unwrap();
        for output in [&text, &json] {
            assert!(!output.contains("13800138000"), "a note leaked:\n{output}");
        }

        let lines: Vec<&str> = text.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.trim_start().starts_with("AGE"))
            .unwrap();
        // Display column where `cell` starts in `line`.
        let column = |line: &str, cell: &str| display_width(&line[..line.find(cell).unwrap()]);
        // Every row's ORDER cell starts where the header's does, CJK assignee or not.
        let order_column = column(lines[header], "ORDER");
        assert_eq!(
            column(lines[header + 1], "tmall:"),
            order_column,
            "misaligned:\n{text}"
        );
        assert_eq!(
            column(lines[header + 2], "jd:7"),
            order_column,
            "misaligned:\n{text}"
        );
        assert!(
            lines[header + 1].trim_start().starts_with("4h00m"),
            "oldest first:\n{text}"
        );
        assert!(lines[header + 2].contains("王芳"));
        assert!(text.contains("open by kind:  invalid_address 1, out_of_stock_at_review 1"));
        assert!(text.contains("open by level: L1 2"));
    }

    #[test]
    fn json_has_every_kind_channel_owner_and_level() {
        let report = ExceptionLedger::default().report(at(2, 0, 0), None);
        assert_eq!(report.by_kind.len(), ExceptionKind::ALL.len());
        assert_eq!(report.by_channel.len(), Channel::ALL.len());
        assert_eq!(report.open_by_owner.len(), 5);
        assert_eq!(report.open_by_level.len(), 3);
        assert_eq!(report.total.avg_handling_secs, None);
        assert_eq!(report.total.recurrence_rate, None);
        let text = render_text(&report, chrono_tz::UTC);
        assert!(
            text.contains("all time to 2026-03-02T00:00:00+00:00"),
            "{text}"
        );
        assert!(text.contains("Open: none"));
    }
}
