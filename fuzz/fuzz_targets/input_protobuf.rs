//! Any bytes as a protobuf input record (`content-type: application/x-protobuf`) on every
//! input topic (`orderflow_schema::decode`).
#![no_main]

use orderflow_schema::PROTOBUF_CONTENT_TYPE;

libfuzzer_sys::fuzz_target!(|payload: &[u8]| {
    orderflow_fuzz::input_record(Some(PROTOBUF_CONTENT_TYPE.as_bytes()), payload)
});
