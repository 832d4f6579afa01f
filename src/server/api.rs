//! Request dispatch: the API versions this server speaks (advertised through ApiVersions),
//! decoding a frame's header and body, encoding a response, and the answers to what it does
//! not speak.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeClusterResponse, InitProducerIdResponse, RequestHeader,
    ResponseHeader, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::server::{admin, data, groups, Shared};

/// One API this server answers, with the versions it accepts (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiVersionRange {
    /// Kafka's API key.
    pub api_key: i16,
    /// Kafka's name for the API.
    pub name: &'static str,
    /// Lowest version accepted.
    pub min_version: i16,
    /// Highest version accepted.
    pub max_version: i16,
}

const fn api(api_key: ApiKey, name: &'static str, min: i16, max: i16) -> ApiVersionRange {
    ApiVersionRange {
        api_key: api_key as i16,
        name,
        min_version: min,
        max_version: max,
    }
}

/// Every API the server answers and the versions it advertises in ApiVersions. The upper
/// ends stop before versions that need what seglog does not have: topic ids in Produce v13
/// and Fetch v13, KIP-848's member epochs in OffsetCommit v9, batched groups in OffsetFetch
/// v8 (the lower ends are the oldest versions Kafka 4's schemas still define).
pub const SUPPORTED_APIS: &[ApiVersionRange] = &[
    api(ApiKey::Produce, "Produce", 3, 12),
    api(ApiKey::Fetch, "Fetch", 4, 12),
    api(ApiKey::ListOffsets, "ListOffsets", 1, 6),
    api(ApiKey::Metadata, "Metadata", 0, 12),
    api(ApiKey::OffsetCommit, "OffsetCommit", 2, 8),
    api(ApiKey::OffsetFetch, "OffsetFetch", 1, 7),
    api(ApiKey::FindCoordinator, "FindCoordinator", 0, 4),
    api(ApiKey::JoinGroup, "JoinGroup", 0, 7),
    api(ApiKey::Heartbeat, "Heartbeat", 0, 4),
    api(ApiKey::LeaveGroup, "LeaveGroup", 0, 4),
    api(ApiKey::SyncGroup, "SyncGroup", 0, 5),
    api(ApiKey::DescribeGroups, "DescribeGroups", 0, 5),
    api(ApiKey::ListGroups, "ListGroups", 0, 4),
    api(ApiKey::ApiVersions, "ApiVersions", 0, 3),
    api(ApiKey::CreateTopics, "CreateTopics", 2, 7),
    api(ApiKey::DeleteTopics, "DeleteTopics", 1, 5),
];

/// What a connection does after a request.
pub(super) enum Reply {
    /// Write this response frame (header and body, without the length prefix).
    Send(Bytes),
    /// No response (a produce with `acks=0`).
    Nothing,
    /// Close the connection: the request could not be parsed, as Kafka's broker does.
    Close,
}

/// The supported range of `api_key`, if any.
fn supported(api_key: i16) -> Option<&'static ApiVersionRange> {
    SUPPORTED_APIS.iter().find(|a| a.api_key == api_key)
}

/// Decode a message of `version`; `None` on malformed input. A panic inside the codec crate
/// is caught and counts as malformed input.
pub(super) fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Option<T> {
    std::panic::catch_unwind(AssertUnwindSafe(|| T::decode(buf, version)))
        .ok()?
        .ok()
}

/// A response frame: the header for `api`'s `version`, then `body`.
pub(super) fn encode<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Reply {
    let mut buf = BytesMut::with_capacity(256);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let encoded = header
        .encode(&mut buf, api.response_header_version(version))
        .and_then(|()| body.encode(&mut buf, version));
    match encoded {
        Ok(()) => Reply::Send(buf.freeze()),
        Err(_) => Reply::Close,
    }
}

/// Kafka's error code for `e`.
pub(super) fn code(e: ResponseError) -> i16 {
    e.code()
}

/// Handle one request frame (without its length prefix).
pub(super) async fn handle(shared: &Arc<Shared>, mut frame: Bytes) -> Reply {
    if frame.len() < 8 {
        return Reply::Close;
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Reply::Close;
    };
    let Some(header) = decode::<RequestHeader>(&mut frame, api.request_header_version(version))
    else {
        return Reply::Close;
    };
    let cid = header.correlation_id;
    match supported(key) {
        Some(r) if (r.min_version..=r.max_version).contains(&version) => {}
        // An ApiVersions of a newer version than ours is answered in v0 with the list, so
        // the client can retry with one we speak (Kafka's KIP-511 rule).
        Some(_) if api == ApiKey::ApiVersions => {
            return encode(
                api,
                0,
                cid,
                &api_versions(code(ResponseError::UnsupportedVersion)),
            );
        }
        _ => return unsupported(api, version, cid),
    }
    dispatch(shared, api, version, cid, frame).await
}

async fn dispatch(
    shared: &Arc<Shared>,
    api: ApiKey,
    version: i16,
    cid: i32,
    mut body: Bytes,
) -> Reply {
    // Each handler takes `(shared, request, version)`; `run!` awaits an async one, `now!`
    // calls one that neither blocks nor waits.
    macro_rules! now {
        ($f:expr) => {
            match decode(&mut body, version) {
                Some(req) => encode(api, version, cid, &$f(shared, req, version)),
                None => Reply::Close,
            }
        };
    }
    macro_rules! run {
        ($f:expr) => {
            match decode(&mut body, version) {
                Some(req) => {
                    let resp = $f(shared, req, version).await;
                    encode(api, version, cid, &resp)
                }
                None => Reply::Close,
            }
        };
    }
    match api {
        ApiKey::ApiVersions => encode(api, version, cid, &api_versions(0)),
        ApiKey::Produce => match decode(&mut body, version) {
            Some(req) => match data::produce(shared, req, version).await {
                Some(resp) => encode(api, version, cid, &resp),
                None => Reply::Nothing,
            },
            None => Reply::Close,
        },
        ApiKey::Fetch => run!(data::fetch),
        ApiKey::ListOffsets => run!(data::list_offsets),
        ApiKey::Metadata => run!(admin::metadata),
        ApiKey::CreateTopics => run!(admin::create_topics),
        ApiKey::DeleteTopics => run!(admin::delete_topics),
        ApiKey::FindCoordinator => now!(admin::find_coordinator),
        ApiKey::JoinGroup => run!(groups::join_group),
        ApiKey::SyncGroup => run!(groups::sync_group),
        ApiKey::Heartbeat => now!(groups::heartbeat),
        ApiKey::LeaveGroup => now!(groups::leave_group),
        ApiKey::OffsetCommit => run!(groups::offset_commit),
        ApiKey::OffsetFetch => run!(groups::offset_fetch),
        ApiKey::DescribeGroups => now!(groups::describe_groups),
        ApiKey::ListGroups => now!(groups::list_groups),
        _ => unsupported(api, version, cid),
    }
}

/// The ApiVersions response: every supported API, with `error_code`.
fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut resp = ApiVersionsResponse::default();
    resp.error_code = error_code;
    resp.api_keys = SUPPORTED_APIS
        .iter()
        .map(|a| {
            let mut v = ApiVersion::default();
            v.api_key = a.api_key;
            v.min_version = a.min_version;
            v.max_version = a.max_version;
            v
        })
        .collect();
    resp
}

/// A request for an API (or version) this server does not speak. Clients only send those
/// after ignoring ApiVersions, or for APIs they need whatever a broker advertises; the ones
/// clients commonly probe get a response carrying Kafka's error code: `InitProducerId`
/// (idempotent and transactional producers) and `DescribeCluster` get
/// `UNSUPPORTED_VERSION`, `SaslHandshake` gets `UNSUPPORTED_SASL_MECHANISM` with no
/// mechanisms. Any other is answered, as Kafka's broker answers a request it cannot parse,
/// by closing the connection.
fn unsupported(api: ApiKey, version: i16, cid: i32) -> Reply {
    let unsupported = code(ResponseError::UnsupportedVersion);
    match api {
        ApiKey::InitProducerId if (0..=5).contains(&version) => {
            let mut r = InitProducerIdResponse::default();
            r.error_code = unsupported;
            r.producer_id = (-1).into();
            r.producer_epoch = -1;
            encode(api, version, cid, &r)
        }
        ApiKey::DescribeCluster if (0..=1).contains(&version) => {
            let mut r = DescribeClusterResponse::default();
            r.error_code = unsupported;
            encode(api, version, cid, &r)
        }
        ApiKey::SaslHandshake if (0..=1).contains(&version) => {
            let mut r = SaslHandshakeResponse::default();
            r.error_code = code(ResponseError::UnsupportedSaslMechanism);
            encode(api, version, cid, &r)
        }
        _ => Reply::Close,
    }
}

/// Kafka's error code for a seglog error from a data request.
pub(super) fn error_code(e: &crate::error::Error) -> i16 {
    use crate::error::{CorruptKind, Error};
    code(match e {
        Error::UnknownTopic { .. } | Error::PartitionOutOfRange { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        Error::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        Error::Corrupt {
            reason: CorruptKind::BadOffset,
            ..
        }
        | Error::MissingKey { .. }
        | Error::EmptyBatch => ResponseError::InvalidRecord,
        Error::Corrupt { .. } | Error::CodecUnavailable { .. } => ResponseError::CorruptMessage,
        Error::BatchTooLarge { .. } | Error::RecordTooLarge { .. } => {
            ResponseError::MessageTooLarge
        }
        Error::InvalidTopicName { .. } | Error::InvalidCommitTopic { .. } => {
            ResponseError::InvalidTopicException
        }
        Error::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        Error::InvalidPartitionCount { .. } => ResponseError::InvalidPartitions,
        Error::InvalidConfig { .. } => ResponseError::InvalidConfig,
        Error::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
        Error::OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
        Error::OffsetCommitTooLarge { .. } => ResponseError::InvalidCommitOffsetSize,
        Error::Io { .. } | Error::PreviousIoFailed | Error::CorruptBelowRecoveryPoint { .. } => {
            ResponseError::KafkaStorageError
        }
        _ => ResponseError::UnknownServerError,
    })
}
