//! Any bytes as records of `order-events` (JSON-era lines, or framed records with their
//! content type: `orderflow_fuzz::log_records`), read and folded as the state consumer does: a
//! record reads back as it was written, and no record or sequence of records panics the fold
//! or its decisions.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| orderflow_fuzz::log(bytes));
