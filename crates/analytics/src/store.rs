//! The analytics store: SQLite, one file, written by the projection and read by the dashboard
//! and `orderflow report`.
//!
//! Why SQLite: it is compiled into the binary (`rusqlite` with `bundled`, about a minute of
//! build on 2 cores and ~1.5 MB of binary), it needs no server, its WAL mode lets the dashboard
//! read while the projection writes, and it answers a card's queries over a million orders in
//! 0.25–3 s on 2 cores (BENCHMARKS.md; the dashboard caches answers). DataFusion or DuckDB would scan
//! faster but take many minutes to build here and tens of MB of binary; a shop that outgrows one
//! machine moves to ClickHouse through the `order-facts` topic (`deploy/clickhouse/`).
//!
//! Every write is one transaction holding the batch's changes and the checkpoints of the
//! records behind them (`synchronous = FULL`: on disk when the commit returns), so the consumer
//! stores its offsets only after the rows are durable, and starts a partition at the store's
//! own checkpoint.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::project::{day_of, Change, Placed, Shown, Stage};
use crate::AnalyticsError;

/// The layout of the store; a store of another layout is rebuilt from the log.
pub const LAYOUT: &str = "1";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    placed_ms INTEGER, placed_day TEXT,
    buyer_id TEXT, customer_key TEXT, phone_masked TEXT,
    province TEXT, city TEXT, payment_method TEXT, coupon_type TEXT,
    total_fen INTEGER, discount_fen INTEGER, shipping_fen INTEGER,
    paid_fen INTEGER NOT NULL DEFAULT 0, refunded_fen INTEGER NOT NULL DEFAULT 0,
    paid_at INTEGER, paid_log INTEGER, review_at INTEGER, review_log INTEGER,
    approved_at INTEGER, approved_log INTEGER, routed_at INTEGER, routed_log INTEGER,
    accepted_at INTEGER, accepted_log INTEGER, shipped_at INTEGER, shipped_log INTEGER,
    delivered_at INTEGER, delivered_log INTEGER, completed_at INTEGER, completed_log INTEGER,
    cancelled_at INTEGER, cancelled_log INTEGER, returned_at INTEGER, returned_log INTEGER,
    refunded_at INTEGER, refunded_log INTEGER,
    paid_state INTEGER, shipped_state INTEGER, delivered_state INTEGER, cancelled_state INTEGER,
    log_partition INTEGER, log_offset INTEGER,
    -- A parcel left the warehouse (a delivery or a return implies it).
    is_shipped INTEGER GENERATED ALWAYS AS (
        shipped_at IS NOT NULL OR delivered_at IS NOT NULL OR returned_at IS NOT NULL) VIRTUAL,
    -- The status is cancelled or refunded (docs/output-topics.md, rows 2 and 3): nothing left
    -- the warehouse, and it was cancelled or its payments were refunded in full.
    is_cancelled INTEGER GENERATED ALWAYS AS (
        shipped_at IS NULL AND delivered_at IS NULL AND returned_at IS NULL
        AND (cancelled_at IS NOT NULL OR (paid_fen > 0 AND refunded_fen >= paid_fen))) VIRTUAL
);
CREATE INDEX IF NOT EXISTS orders_day ON orders (placed_day, channel);
CREATE INDEX IF NOT EXISTS orders_customer ON orders (customer_key, placed_ms);
-- "Did this customer order (validly) before?", for new customers, without reading the rows.
CREATE INDEX IF NOT EXISTS orders_valid_customer ON orders (customer_key, placed_ms)
    WHERE placed_ms IS NOT NULL AND NOT is_cancelled;
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL, line_no INTEGER NOT NULL,
    sku TEXT NOT NULL, category TEXT NOT NULL, qty INTEGER NOT NULL, unit_price_fen INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lines_sku ON order_lines (sku);
CREATE INDEX IF NOT EXISTS lines_category ON order_lines (category, order_id);
CREATE TABLE IF NOT EXISTS payments (
    order_id TEXT NOT NULL, payment_id TEXT NOT NULL, amount_fen INTEGER NOT NULL,
    PRIMARY KEY (order_id, payment_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refunds (
    order_id TEXT NOT NULL, refund_id TEXT NOT NULL, amount_fen INTEGER NOT NULL,
    PRIMARY KEY (order_id, refund_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT NOT NULL, warehouse TEXT NOT NULL, on_hand INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (sku, warehouse)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exceptions (
    exception_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, channel TEXT NOT NULL,
    kind TEXT NOT NULL, owner TEXT NOT NULL, level INTEGER NOT NULL, level_since INTEGER NOT NULL,
    raised_at INTEGER NOT NULL, raised_day TEXT NOT NULL, resolved_at INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exceptions_raised ON exceptions (raised_day);
CREATE INDEX IF NOT EXISTS exceptions_order ON exceptions (order_id);
CREATE INDEX IF NOT EXISTS exceptions_open ON exceptions (resolved_at);
CREATE TABLE IF NOT EXISTS exception_levels (
    exception_id TEXT NOT NULL, level INTEGER NOT NULL, since INTEGER NOT NULL,
    PRIMARY KEY (exception_id, level)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_acks (
    order_id TEXT NOT NULL, change_id TEXT NOT NULL, change TEXT NOT NULL, acked_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, change_id)) WITHOUT ROWID;
"#;

/// The tables whose rows are the projection's result, each with the columns that order it.
const DATA_TABLES: &[(&str, &str)] = &[
    ("orders", "order_id"),
    ("order_lines", "order_id, line_no"),
    ("payments", "order_id, payment_id"),
    ("refunds", "order_id, refund_id"),
    ("stock", "sku, warehouse"),
    ("exceptions", "exception_id"),
    ("exception_levels", "exception_id, level"),
    ("sync_acks", "order_id, change_id"),
];

pub struct Store {
    conn: Connection,
}

/// Where a batch came from: the next offset per (topic, partition).
pub type Checkpoints = Vec<(String, i32, i64)>;

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, AnalyticsError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                AnalyticsError::Store(format!("creating {}: {error}", parent.display()))
            })?;
        }
        let conn = Connection::open(path)?;
        Store::init(conn, true)
    }

    /// A store in memory (tests, `orderflow report` folding the topics itself).
    pub fn in_memory() -> Result<Store, AnalyticsError> {
        Store::init(Connection::open_in_memory()?, false)
    }

    /// A reader of the store at `path`, beside the writer (WAL lets both run).
    pub fn open_reader(path: &Path) -> Result<Connection, AnalyticsError> {
        if !path.exists() {
            return Err(AnalyticsError::Usage(format!(
                "no analytics store at {}",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The queries scan ranges of a store that may be GBs: map it, and keep a large cache.
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
        conn.pragma_update(None, "cache_size", -262_144)?;
        Ok(conn)
    }

    fn init(conn: Connection, file: bool) -> Result<Store, AnalyticsError> {
        if file {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
        conn.execute_batch(SCHEMA)?;
        let layout: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'layout'", [], |row| {
                row.get(0)
            })
            .optional()?;
        match layout.as_deref() {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('layout', ?1)",
                    [LAYOUT],
                )?;
            }
            Some(LAYOUT) => {}
            Some(other) => {
                return Err(AnalyticsError::Store(format!(
                    "the store has layout {other}, this build writes {LAYOUT}: move it away \
                     and the projection rebuilds it from the log"
                )))
            }
        }
        Ok(Store { conn })
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Counts days in `zone`: recomputes the stored days when the store was built in another.
    pub fn use_zone(&mut self, zone: chrono_tz::Tz) -> Result<(), AnalyticsError> {
        let stored: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'zone'", [], |row| {
                row.get(0)
            })
            .optional()?;
        if stored.as_deref() == Some(zone.name()) {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut rows: Vec<(String, i64)> = Vec::new();
            let mut select =
                tx.prepare("SELECT order_id, placed_ms FROM orders WHERE placed_ms IS NOT NULL")?;
            for row in select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
                rows.push(row?);
            }
            let mut update = tx.prepare("UPDATE orders SET placed_day = ?2 WHERE order_id = ?1")?;
            for (order_id, ms) in rows {
                update.execute(params![order_id, day_of(ms, zone)])?;
            }
            let mut rows: Vec<(String, i64)> = Vec::new();
            let mut select = tx.prepare("SELECT exception_id, raised_at FROM exceptions")?;
            for row in select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))? {
                rows.push(row?);
            }
            let mut update =
                tx.prepare("UPDATE exceptions SET raised_day = ?2 WHERE exception_id = ?1")?;
            for (id, ms) in rows {
                update.execute(params![id, day_of(ms, zone)])?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('zone', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [zone.name()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The next offset of `topic`'s `partition` the store expects; `None` if it holds nothing
    /// from it yet.
    pub fn checkpoint(&self, topic: &str, partition: i32) -> Result<Option<i64>, AnalyticsError> {
        Ok(self
            .conn
            .query_row(
                "SELECT next_offset FROM checkpoints WHERE topic = ?1 AND partition = ?2",
                params![topic, partition],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Applies a batch's changes and moves its checkpoints, in one durable transaction.
    /// Returns the orders whose `orders` rows changed.
    pub fn apply(
        &mut self,
        changes: &[Change],
        checkpoints: &[(String, i32, i64)],
    ) -> Result<BTreeSet<String>, AnalyticsError> {
        let tx = self.conn.transaction()?;
        let mut touched = BTreeSet::new();
        for change in changes {
            apply_one(&tx, change)?;
            if let Some(order_id) = change.order_row() {
                touched.insert(order_id.to_string());
            }
        }
        {
            let mut checkpoint = tx.prepare_cached(
                "INSERT INTO checkpoints (topic, partition, next_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition)
                 DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
            )?;
            for (topic, partition, next) in checkpoints {
                checkpoint.execute(params![topic, partition, next])?;
            }
        }
        tx.commit()?;
        Ok(touched)
    }

    /// SHA-256 over every row of the projection's tables, in key order: equal digests, equal
    /// stores. Checkpoints and metadata are left out (they say how far, not what).
    pub fn digest(&self) -> Result<String, AnalyticsError> {
        let mut hasher = Sha256::new();
        for (table, order) in DATA_TABLES {
            hasher.update(table.as_bytes());
            let mut statement = self
                .conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let columns = statement.column_count();
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                for index in 0..columns {
                    let value: rusqlite::types::Value = row.get(index)?;
                    hasher.update(format!("{value:?}\u{1f}").as_bytes());
                }
                hasher.update(b"\n");
            }
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// A value kept with the store (`digest-sent:2026-11-25`, ...).
    pub fn meta(&self, key: &str) -> Result<Option<String>, AnalyticsError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), AnalyticsError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, change: &Change) -> Result<(), AnalyticsError> {
    match change {
        Change::Placed(placed) => placed_row(tx, placed)?,
        Change::Stage {
            order_id,
            channel,
            stage,
            at_ms,
            log_ms,
        } => {
            let name = stage.as_str();
            // Column names come from `Stage::as_str`, never from input.
            let sql = format!(
                "INSERT INTO orders (order_id, channel, {name}_at, {name}_log) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (order_id) DO UPDATE SET
                   {name}_at = MIN(COALESCE({name}_at, excluded.{name}_at), excluded.{name}_at),
                   {name}_log = MIN(COALESCE({name}_log, excluded.{name}_log), excluded.{name}_log)"
            );
            tx.prepare_cached(&sql)?
                .execute(params![order_id, channel, at_ms, log_ms])?;
        }
        Change::Payment {
            order_id,
            channel,
            payment_id,
            amount_fen,
        } => add_money(tx, Money::Paid, order_id, channel, payment_id, *amount_fen)?,
        Change::Refund {
            order_id,
            channel,
            refund_id,
            amount_fen,
        } => add_money(
            tx,
            Money::Refunded,
            order_id,
            channel,
            refund_id,
            *amount_fen,
        )?,
        Change::Position {
            order_id,
            partition,
            offset,
        } => {
            tx.prepare_cached(
                "UPDATE orders SET log_partition = ?2, log_offset = MAX(COALESCE(log_offset, ?3), ?3)
                 WHERE order_id = ?1",
            )?
            .execute(params![order_id, partition, offset])?;
        }
        Change::Stock {
            sku,
            warehouse,
            on_hand,
            at_ms,
        } => {
            // The latest level wins; of two at the same time, the larger (any fixed rule keeps
            // the fold order-free).
            tx.prepare_cached(
                "INSERT INTO stock (sku, warehouse, on_hand, at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sku, warehouse) DO UPDATE SET
                   on_hand = CASE WHEN excluded.at_ms > at_ms THEN excluded.on_hand
                                  WHEN excluded.at_ms = at_ms THEN MAX(on_hand, excluded.on_hand)
                                  ELSE on_hand END,
                   at_ms = MAX(at_ms, excluded.at_ms)",
            )?
            .execute(params![sku, warehouse, on_hand, at_ms])?;
        }
        Change::Exception {
            exception_id,
            order_id,
            channel,
            kind,
            owner,
            level,
            level_since_ms,
            raised_ms,
            raised_day,
            resolved_ms,
        } => {
            // The level only rises; the resolution is the first one seen.
            tx.prepare_cached(
                "INSERT INTO exceptions (exception_id, order_id, channel, kind, owner, level,
                                         level_since, raised_at, raised_day, resolved_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (exception_id) DO UPDATE SET
                   level_since = CASE WHEN excluded.level > level THEN excluded.level_since
                                      WHEN excluded.level = level THEN MIN(level_since, excluded.level_since)
                                      ELSE level_since END,
                   level = MAX(level, excluded.level),
                   raised_day = CASE WHEN excluded.raised_at < raised_at THEN excluded.raised_day ELSE raised_day END,
                   raised_at = MIN(raised_at, excluded.raised_at),
                   resolved_at = CASE WHEN resolved_at IS NULL THEN excluded.resolved_at
                                      WHEN excluded.resolved_at IS NULL THEN resolved_at
                                      ELSE MIN(resolved_at, excluded.resolved_at) END",
            )?
            .execute(params![
                exception_id,
                order_id,
                channel,
                kind,
                owner,
                level,
                level_since_ms,
                raised_ms,
                raised_day,
                resolved_ms
            ])?;
            tx.prepare_cached(
                "INSERT INTO exception_levels (exception_id, level, since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (exception_id, level) DO UPDATE SET since = MIN(since, excluded.since)",
            )?
            .execute(params![exception_id, level, level_since_ms])?;
        }
        Change::StateShown {
            order_id,
            channel,
            shown,
            state_ms,
        } => {
            let name = match shown {
                Shown::Paid => "paid_state",
                Shown::Shipped => "shipped_state",
                Shown::Delivered => "delivered_state",
                Shown::Cancelled => "cancelled_state",
            };
            let sql = format!(
                "INSERT INTO orders (order_id, channel, {name}) VALUES (?1, ?2, ?3)
                 ON CONFLICT (order_id) DO UPDATE SET
                   {name} = MIN(COALESCE({name}, excluded.{name}), excluded.{name})"
            );
            tx.prepare_cached(&sql)?
                .execute(params![order_id, channel, state_ms])?;
        }
        Change::SyncAcknowledged {
            order_id,
            change_id,
            change,
            acked_ms,
        } => {
            tx.prepare_cached(
                "INSERT INTO sync_acks (order_id, change_id, change, acked_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (order_id, change_id) DO UPDATE SET acked_ms = MIN(acked_ms, excluded.acked_ms)",
            )?
            .execute(params![order_id, change_id, change, acked_ms])?;
        }
    }
    Ok(())
}

/// Money that reaches an order in parts, each part counted once by its id.
#[derive(Clone, Copy)]
enum Money {
    Paid,
    Refunded,
}

/// Records one payment or refund (ignored if its id is known) and adds it to the order's total.
fn add_money(
    tx: &rusqlite::Transaction<'_>,
    money: Money,
    order_id: &str,
    channel: &str,
    part_id: &str,
    amount_fen: i64,
) -> Result<(), AnalyticsError> {
    let (table, id_column, total) = match money {
        Money::Paid => ("payments", "payment_id", "paid_fen"),
        Money::Refunded => ("refunds", "refund_id", "refunded_fen"),
    };
    let added = tx
        .prepare_cached(&format!(
            "INSERT OR IGNORE INTO {table} (order_id, {id_column}, amount_fen) VALUES (?1, ?2, ?3)"
        ))?
        .execute(params![order_id, part_id, amount_fen])?;
    if added > 0 {
        tx.prepare_cached(&format!(
            "INSERT INTO orders (order_id, channel, {total}) VALUES (?1, ?2, ?3)
             ON CONFLICT (order_id) DO UPDATE SET {total} = {total} + excluded.{total}"
        ))?
        .execute(params![order_id, channel, amount_fen])?;
    }
    Ok(())
}

fn placed_row(tx: &rusqlite::Transaction<'_>, placed: &Placed) -> Result<(), AnalyticsError> {
    tx.prepare_cached(
        "INSERT INTO orders (order_id, channel, placed_ms, placed_day, buyer_id, customer_key,
                             phone_masked, province, city, payment_method, coupon_type,
                             total_fen, discount_fen, shipping_fen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (order_id) DO UPDATE SET
           placed_ms = excluded.placed_ms, placed_day = excluded.placed_day,
           buyer_id = excluded.buyer_id, customer_key = excluded.customer_key,
           phone_masked = excluded.phone_masked, province = excluded.province,
           city = excluded.city, payment_method = excluded.payment_method,
           coupon_type = excluded.coupon_type, total_fen = excluded.total_fen,
           discount_fen = excluded.discount_fen, shipping_fen = excluded.shipping_fen",
    )?
    .execute(params![
        placed.order_id,
        placed.channel,
        placed.placed_ms,
        placed.placed_day,
        placed.buyer_id,
        placed.customer_key,
        placed.phone_masked,
        placed.province,
        placed.city,
        placed.payment_method,
        placed.coupon_type,
        placed.total_fen,
        placed.discount_fen,
        placed.shipping_fen
    ])?;
    let mut line = tx.prepare_cached(
        "INSERT OR REPLACE INTO order_lines (order_id, line_no, sku, category, qty, unit_price_fen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (index, l) in placed.lines.iter().enumerate() {
        line.execute(params![
            placed.order_id,
            index as i64,
            l.sku,
            l.category,
            l.qty,
            l.unit_price_fen
        ])?;
    }
    Ok(())
}

/// Stages in the order of the lifecycle board, with their column prefix.
pub const FUNNEL: [Stage; 6] = [
    Stage::Paid,
    Stage::Approved,
    Stage::Routed,
    Stage::Shipped,
    Stage::Delivered,
    Stage::Completed,
];
