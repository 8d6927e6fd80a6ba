//! The size and range limits of the input contract (`[limits]` in the configuration).
//!
//! A record over any of them is rejected — dead-lettered with the rule it broke — so no single
//! record can grow a message, a store entry or a sum past what the pipeline can carry. The
//! defaults are generous for real orders and far below where anything breaks; every limit is
//! documented in `docs/input-contract.md`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Largest input record (its value), in bytes. Leaves room under the broker's 1 MB
    /// `message.max.bytes` for the event an intake appends and for a dead letter's headers.
    pub max_record_bytes: usize,
    /// Most lines of one order.
    pub max_lines: usize,
    /// Longest string field (sku, names, address parts, ids, reasons...), in UTF-8 bytes
    /// after trimming.
    pub max_text_bytes: usize,
    /// Most items of any other list.
    pub max_collection: usize,
    /// Largest single amount (`amount_fen`, `unit_price_fen`, `total_fen`...), in fen.
    pub max_amount_fen: u64,
    /// How far `occurred_at` may be ahead of the reader's clock, in seconds.
    pub max_future_skew_secs: u64,
    /// Largest dead letter (key, value and headers), in bytes: a copy of a bigger record is
    /// truncated to fit, so the DLQ always takes it. Keep it under the producer's and the
    /// `dlq` topic's `message.max.bytes` (1 MB by default).
    pub max_dead_letter_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_record_bytes: 512 * 1024,
            max_lines: 200,
            max_text_bytes: 2048,
            max_collection: 100,
            // 10 000 000 000 yuan: no real amount comes near, and 200 lines of it still sum
            // far below u64::MAX.
            max_amount_fen: 1_000_000_000_000,
            max_future_skew_secs: 300,
            max_dead_letter_bytes: 768 * 1024,
        }
    }
}

/// The smallest `max-dead-letter-bytes`: the headers of a dead letter take up to a few KiB.
const MIN_DEAD_LETTER_BYTES: usize = 16 * 1024;

impl Limits {
    /// The first limit that can't work, as `limits.name must be ...`: every limit but the
    /// skew is at least 1.
    pub fn check(&self) -> Result<(), String> {
        let at_least_one = [
            ("max-record-bytes", self.max_record_bytes as u64),
            ("max-lines", self.max_lines as u64),
            ("max-text-bytes", self.max_text_bytes as u64),
            ("max-collection", self.max_collection as u64),
            ("max-amount-fen", self.max_amount_fen),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, value)| *value == 0) {
            return Err(format!("limits.{name} must be at least 1"));
        }
        if self.max_dead_letter_bytes < MIN_DEAD_LETTER_BYTES {
            return Err(format!(
                "limits.max-dead-letter-bytes must be at least {MIN_DEAD_LETTER_BYTES} (room for a dead letter's headers)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_their_own_check() {
        assert_eq!(Limits::default().check(), Ok(()));
    }

    #[test]
    fn a_zero_limit_is_named() {
        let limits = Limits {
            max_lines: 0,
            ..Limits::default()
        };
        assert_eq!(
            limits.check(),
            Err("limits.max-lines must be at least 1".into())
        );
    }
}
