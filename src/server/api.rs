//! Request dispatch: the API versions this server speaks (advertised through ApiVersions),
//! decoding a frame's header and body, encoding a response, and the answers to what it does
//! not speak.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateTopicsRequest, DeleteTopicsRequest, DescribeClusterResponse,
    DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest, HeartbeatRequest,
    InitProducerIdResponse, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest,
    RequestHeader, ResponseHeader, SaslHandshakeResponse, SyncGroupRequest,
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
pub(crate) enum Reply {
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

/// A request the server acts on, decoded from its frame.
pub(crate) enum Request {
    ApiVersions,
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
}

/// A decoded frame: a request to act on, or the answer already decided (an error response,
/// or closing the connection on bytes that are not a request).
pub(crate) enum Parsed {
    Request {
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: Request,
    },
    Answer(Reply),
}

/// Decode one request frame (without its length prefix): header, version check, body.
/// Every length in it is checked against the frame before anything is allocated for it.
pub(crate) fn parse(mut frame: Bytes) -> Parsed {
    if frame.len() < 8 {
        return Parsed::Answer(Reply::Close);
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Parsed::Answer(Reply::Close);
    };
    let Some(header) = decode::<RequestHeader>(&mut frame, api.request_header_version(version))
    else {
        return Parsed::Answer(Reply::Close);
    };
    let cid = header.correlation_id;
    match supported(key) {
        Some(r) if (r.min_version..=r.max_version).contains(&version) => {}
        // An ApiVersions of a newer version than ours is answered in v0 with the list, so
        // the client can retry with one we speak (Kafka's KIP-511 rule).
        Some(_) if api == ApiKey::ApiVersions => {
            let list = api_versions(code(ResponseError::UnsupportedVersion));
            return Parsed::Answer(encode(api, 0, cid, &list));
        }
        _ => return Parsed::Answer(unsupported(api, version, cid)),
    }
    match decode_body(api, version, &mut frame) {
        Some(request) => Parsed::Request {
            api,
            version,
            correlation_id: cid,
            request,
        },
        None => Parsed::Answer(Reply::Close),
    }
}

fn decode_body(api: ApiKey, version: i16, body: &mut Bytes) -> Option<Request> {
    Some(match api {
        ApiKey::ApiVersions => Request::ApiVersions,
        ApiKey::Produce => Request::Produce(decode(body, version)?),
        ApiKey::Fetch => Request::Fetch(decode(body, version)?),
        ApiKey::ListOffsets => Request::ListOffsets(decode(body, version)?),
        ApiKey::Metadata => Request::Metadata(decode(body, version)?),
        ApiKey::CreateTopics => Request::CreateTopics(decode(body, version)?),
        ApiKey::DeleteTopics => Request::DeleteTopics(decode(body, version)?),
        ApiKey::FindCoordinator => Request::FindCoordinator(decode(body, version)?),
        ApiKey::JoinGroup => Request::JoinGroup(decode(body, version)?),
        ApiKey::SyncGroup => Request::SyncGroup(decode(body, version)?),
        ApiKey::Heartbeat => Request::Heartbeat(decode(body, version)?),
        ApiKey::LeaveGroup => Request::LeaveGroup(decode(body, version)?),
        ApiKey::OffsetCommit => Request::OffsetCommit(decode(body, version)?),
        ApiKey::OffsetFetch => Request::OffsetFetch(decode(body, version)?),
        ApiKey::DescribeGroups => Request::DescribeGroups(decode(body, version)?),
        ApiKey::ListGroups => Request::ListGroups(decode(body, version)?),
        _ => return None,
    })
}

/// Handle one request frame (without its length prefix).
pub(super) async fn handle(shared: &Arc<Shared>, frame: Bytes) -> Reply {
    match parse(frame) {
        Parsed::Answer(reply) => reply,
        Parsed::Request {
            api,
            version,
            correlation_id,
            request,
        } => dispatch(shared, api, version, correlation_id, request).await,
    }
}

async fn dispatch(shared: &Arc<Shared>, api: ApiKey, v: i16, cid: i32, request: Request) -> Reply {
    let s = shared;
    let send = |body: &dyn EncodeBody| body.encode_reply(api, v, cid);
    match request {
        Request::ApiVersions => send(&api_versions(0)),
        Request::Produce(r) => match data::produce(s, r, v).await {
            Some(resp) => send(&resp),
            None => Reply::Nothing,
        },
        Request::Fetch(r) => send(&data::fetch(s, r, v).await),
        Request::ListOffsets(r) => send(&data::list_offsets(s, r, v).await),
        Request::Metadata(r) => send(&admin::metadata(s, r, v).await),
        Request::CreateTopics(r) => send(&admin::create_topics(s, r, v).await),
        Request::DeleteTopics(r) => send(&admin::delete_topics(s, r, v).await),
        Request::FindCoordinator(r) => send(&admin::find_coordinator(s, r, v)),
        Request::JoinGroup(r) => send(&groups::join_group(s, r, v).await),
        Request::SyncGroup(r) => send(&groups::sync_group(s, r, v).await),
        Request::Heartbeat(r) => send(&groups::heartbeat(s, r, v)),
        Request::LeaveGroup(r) => send(&groups::leave_group(s, r, v)),
        Request::OffsetCommit(r) => send(&groups::offset_commit(s, r, v).await),
        Request::OffsetFetch(r) => send(&groups::offset_fetch(s, r, v).await),
        Request::DescribeGroups(r) => send(&groups::describe_groups(s, r, v)),
        Request::ListGroups(r) => send(&groups::list_groups(s, r, v)),
    }
}

/// A response body, encodable behind a reference (`Encodable` is not object safe).
trait EncodeBody {
    fn encode_reply(&self, api: ApiKey, version: i16, correlation_id: i32) -> Reply;
}

impl<T: Encodable> EncodeBody for T {
    fn encode_reply(&self, api: ApiKey, version: i16, correlation_id: i32) -> Reply {
        encode(api, version, correlation_id, self)
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
        Error::InvalidTimestamp { .. } => ResponseError::InvalidTimestamp,
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
