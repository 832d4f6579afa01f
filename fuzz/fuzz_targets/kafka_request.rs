//! Arbitrary bytes as a Kafka request frame: the `kafka-server` decoder never panics and
//! never aborts on an allocation sized by an unchecked count.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = seglog::testing::kafka_request_decodes(data);
});
