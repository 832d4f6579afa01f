//! The Kafka request decoder of the `kafka-server` feature, for fuzz targets.

use crate::server::api::{parse, Parsed};

/// Decode a Kafka request frame (the bytes after its 4-byte length prefix) as the server
/// does: header, API and version check, body. `true` if the server would act on the request,
/// `false` if it would answer at once (an error response, or closing the connection). Never
/// panics and never allocates more than the frame's length justifies.
pub fn kafka_request_decodes(frame: &[u8]) -> bool {
    matches!(
        parse(bytes::Bytes::copy_from_slice(frame)),
        Parsed::Request { .. }
    )
}
