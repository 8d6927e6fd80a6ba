//! Any bytes as a JSON input record on every input topic (`orderflow_schema::decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|payload: &[u8]| orderflow_fuzz::input_record(None, payload));
