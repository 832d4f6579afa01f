//! The Kafka wire protocol server (feature `kafka-server`), spoken to directly with
//! kafka-protocol's encoders over 127.0.0.1: version negotiation, metadata, produce (batches
//! validated and stored byte for byte, corrupt ones refused with nothing written), fetch
//! (segment bytes returned as produced; long-poll woken by an append), list offsets, topic
//! admin, the classic group protocol with offsets shared with the embedded coordinator, an
//! unsupported API, and bad frames (closed connection, never a crash, frame size bounded).
#![cfg(feature = "kafka-server")]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use seglog::server::{serve, ServerConfig, ServerHandle};
use seglog::{LogStore, MemoryOffsetStore, StoreConfig, TopicConfig};

/// Socket timeouts: every read in these tests is bounded.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<LogStore>,
    server: Option<ServerHandle>,
    addr: SocketAddr,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(ServerConfig::default())
    }

    fn with_config(config: ServerConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LogStore::open(dir.path(), StoreConfig::default()).unwrap());
        let config = config.with_offset_store(Arc::new(MemoryOffsetStore::new()));
        let server = serve(store.clone(), "127.0.0.1:0".parse().unwrap(), config).unwrap();
        let addr = server.local_addr();
        Fixture {
            _dir: dir,
            store,
            server: Some(server),
            addr,
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    fn send_raw(&mut self, frame: &[u8]) {
        let len = i32::try_from(frame.len()).unwrap();
        self.stream.write_all(&len.to_be_bytes()).unwrap();
        self.stream.write_all(frame).unwrap();
    }

    /// Send a request of `version`; returns its correlation id.
    fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> i32 {
        self.correlation += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation;
        header.client_id = Some(StrBytes::from_static_str("seglog-test"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        self.send_raw(&buf);
        self.correlation
    }

    /// The next response frame, or `None` if the server closed the connection.
    fn recv_raw(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; usize::try_from(i32::from_be_bytes(len)).unwrap()];
        self.stream.read_exact(&mut buf).unwrap();
        Some(Bytes::from(buf))
    }

    fn recv<T: Decodable>(&mut self, api: ApiKey, version: i16, correlation: i32) -> T {
        let mut frame = self.recv_raw().expect("a response");
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation);
        T::decode(&mut frame, version).unwrap()
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let c = self.send(api, version, body);
        self.recv(api, version, c)
    }

    /// Whether the server closed the connection (reads EOF or a reset).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// A batch as a Kafka producer encodes it (kafka-protocol's encoder, not seglog's).
fn kafka_batch(values: &[&str]) -> Bytes {
    let records: Vec<KRecord> = values
        .iter()
        .enumerate()
        .map(|(i, v)| KRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::try_from(i).unwrap(),
            // kafka-protocol starts a new batch where offset - sequence changes; base
            // sequence -1 is a producer without idempotence.
            sequence: i32::try_from(i).unwrap() - 1,
            // In 2100: never older than the default retention, which would delete them.
            timestamp: 4_102_444_800_000 + i64::try_from(i).unwrap(),
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.freeze()
}

/// CRC-32C (Castagnoli), bitwise: enough to fix up a hand-edited batch in a test.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = name(topic);
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![td];
    req
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut fp = FetchPartition::default();
    fp.partition = partition;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = name(topic);
    ft.partitions = vec![fp];
    let mut req = FetchRequest::default();
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.topics = vec![ft];
    req
}

fn produce(c: &mut Client, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let resp: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records, -1),
    );
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn api_versions_lists_every_supported_api_and_answers_newer_versions_in_v0() {
    let f = Fixture::new();
    let mut c = f.client();
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    for api in seglog::server::SUPPORTED_APIS {
        let listed = resp
            .api_keys
            .iter()
            .find(|k| k.api_key == api.api_key)
            .unwrap();
        assert_eq!(
            (listed.min_version, listed.max_version),
            (api.min_version, api.max_version)
        );
    }
    assert_eq!(resp.api_keys.len(), seglog::server::SUPPORTED_APIS.len());
    // A version from the future: UNSUPPORTED_VERSION, answered in v0 with the list.
    let cid = c.send(ApiKey::ApiVersions, 4, &ApiVersionsRequest::default());
    let old: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 0, cid);
    assert_eq!(old.error_code, 35);
    assert_eq!(old.api_keys.len(), seglog::server::SUPPORTED_APIS.len());
}

#[test]
fn metadata_lists_topics_and_the_one_broker() {
    let f = Fixture::new();
    f.store.create_topic("orders", TopicConfig::new(3)).unwrap();
    let mut c = f.client();
    let mut every = MetadataRequest::default();
    every.topics = None;
    let all: MetadataResponse = c.call(ApiKey::Metadata, 12, &every);
    assert_eq!(all.brokers.len(), 1);
    assert_eq!(all.brokers[0].port, i32::from(f.addr.port()));
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions.len(), 3);
    assert!(all.topics[0].partitions.iter().all(|p| p.leader_id.0 == 0));
    let mut req = MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(name("missing"));
    req.topics = Some(vec![t]);
    let one: MetadataResponse = c.call(ApiKey::Metadata, 12, &req);
    assert_eq!(one.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(
        f.store.topic("missing").is_err(),
        "no auto-creation by default"
    );
}

#[test]
fn produced_batches_are_fetched_back_byte_for_byte() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(2)).unwrap();
    let mut c = f.client();
    let first = kafka_batch(&["a", "b", "c"]);
    let second = kafka_batch(&["d"]);
    assert_eq!(produce(&mut c, "t", 1, first.clone()), (0, 0));
    assert_eq!(produce(&mut c, "t", 1, second.clone()), (0, 3));
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("t", 1, 0, 0));
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (0, 4, 0)
    );
    let got = p.records.clone().unwrap();
    // The bytes are the producer's, except the base offset the log assigned and the
    // partition leader epoch (none: the partition leads no epoch), both outside the CRC.
    let mut expected = BytesMut::new();
    let mut first_stored = first.to_vec();
    first_stored[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    expected.extend_from_slice(&first_stored);
    let mut second_at_3 = second.to_vec();
    second_at_3[..8].copy_from_slice(&3u64.to_be_bytes());
    second_at_3[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    expected.extend_from_slice(&second_at_3);
    assert_eq!(got, expected.freeze());
    // And seglog reads them as records.
    let read = f
        .store
        .partition(&seglog::TopicPartition::new("t", 1))
        .unwrap()
        .read(seglog::Offset(0), 1 << 20)
        .unwrap();
    let values: Vec<Bytes> = read.records().map(|r| r.unwrap().value.unwrap()).collect();
    assert_eq!(
        values,
        ["a", "b", "c", "d"].map(|s| Bytes::from_static(s.as_bytes()))
    );
    // Out of range: OFFSET_OUT_OF_RANGE with the bounds.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("t", 1, 99, 0));
    assert_eq!(resp.responses[0].partitions[0].error_code, 1);
    assert_eq!(resp.responses[0].partitions[0].high_watermark, 4);
}

#[test]
fn corrupt_batches_are_refused_and_write_nothing() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = f.client();
    let good = kafka_batch(&["x", "y"]);
    let mut bad_crc = good.to_vec();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(
        produce(&mut c, "t", 0, Bytes::from(bad_crc)).0,
        2,
        "CORRUPT_MESSAGE"
    );
    let mut nonzero_base = good.to_vec();
    nonzero_base[..8].copy_from_slice(&5u64.to_be_bytes());
    assert_eq!(
        produce(&mut c, "t", 0, Bytes::from(nonzero_base)).0,
        87,
        "INVALID_RECORD"
    );
    let mut magic1 = good.to_vec();
    magic1[16] = 1;
    assert_eq!(produce(&mut c, "t", 0, Bytes::from(magic1)).0, 2);
    // A transactional batch (attributes bit 4; CRC fixed up): no transaction coordinator.
    let mut txn = good.to_vec();
    txn[22] |= 0x10;
    let crc = crc32c_of(&txn[21..]);
    txn[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        produce(&mut c, "t", 0, Bytes::from(txn)).0,
        48,
        "INVALID_TXN_STATE"
    );
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    assert_ne!(
        produce(&mut c, "t", 0, Bytes::from(two)).0,
        0,
        "one batch per partition"
    );
    assert_ne!(
        produce(&mut c, "t", 0, good.slice(..good.len() - 3)).0,
        0,
        "truncated"
    );
    assert_eq!(
        produce(&mut c, "t", 9, good.clone()).0,
        3,
        "unknown partition"
    );
    assert_eq!(
        produce(&mut c, "nope", 0, good.clone()).0,
        3,
        "unknown topic"
    );
    let p = f
        .store
        .partition(&seglog::TopicPartition::new("t", 0))
        .unwrap();
    assert_eq!(p.log_end_offset(), seglog::Offset(0), "nothing was written");
    assert_eq!(produce(&mut c, "t", 0, good).0, 0);
    assert_eq!(p.log_end_offset(), seglog::Offset(2));
}

#[test]
fn log_append_time_topics_stamp_the_received_batch_and_compacted_ones_need_keys() {
    let f = Fixture::new();
    let lat = seglog::PartitionConfig::default()
        .with_timestamp_type(seglog::TimestampType::LogAppendTime);
    f.store
        .create_topic("lat", TopicConfig::new(1).with_partition_config(lat))
        .unwrap();
    let compact =
        seglog::PartitionConfig::default().with_cleanup_policy(seglog::CleanupPolicy::Compact);
    f.store
        .create_topic("cmp", TopicConfig::new(1).with_partition_config(compact))
        .unwrap();
    let mut c = f.client();
    let before = seglog::now_ms();
    assert_eq!(produce(&mut c, "lat", 0, kafka_batch(&["a", "b"])).0, 0);
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("lat", 0, 0, 0));
    let batch =
        seglog::Batch::decode(resp.responses[0].partitions[0].records.clone().unwrap()).unwrap();
    assert_eq!(
        batch.header().timestamp_type(),
        seglog::TimestampType::LogAppendTime
    );
    assert!(
        batch.max_timestamp() >= before,
        "maxTimestamp is the append time"
    );
    for r in batch.records() {
        assert_eq!(r.unwrap().timestamp_ms, batch.max_timestamp());
    }
    seglog::testing::check_batch(batch.as_bytes()).unwrap();
    // A compacted topic refuses a record without a key, with nothing written.
    let mut keyless = kafka_protocol::records::Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, std::iter::once(&keyless), &options).unwrap();
    assert_eq!(
        produce(&mut c, "cmp", 0, buf.freeze()).0,
        87,
        "INVALID_RECORD"
    );
    keyless.key = Some(Bytes::from_static(b"k"));
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, std::iter::once(&keyless), &options).unwrap();
    assert_eq!(produce(&mut c, "cmp", 0, buf.freeze()), (0, 0));
}

#[test]
fn acks_zero_gets_no_response_and_the_connection_goes_on() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = f.client();
    c.send(
        ApiKey::Produce,
        9,
        &produce_request("t", 0, kafka_batch(&["fire"]), 0),
    );
    // The next response on the connection is the metadata one (recv checks its id).
    let _: MetadataResponse = c.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    let p = f
        .store
        .partition(&seglog::TopicPartition::new("t", 0))
        .unwrap();
    assert_eq!(p.log_end_offset(), seglog::Offset(1));
}

#[test]
fn fetch_long_polls_until_an_embedded_append() {
    let f = Fixture::new();
    let topic = f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = f.client();
    // A fetch that would wait up to 15 s for data; the append below wakes it.
    let cid = c.send(ApiKey::Fetch, 12, &fetch_request("t", 0, 0, 15_000));
    // Give the server a moment to start waiting, then append in-process.
    std::thread::sleep(Duration::from_millis(200));
    topic.append_to(0, &[seglog::Record::new("woke")]).unwrap();
    let resp: FetchResponse = c.recv(ApiKey::Fetch, 12, cid);
    let records = resp.responses[0].partitions[0].records.clone().unwrap();
    let batch = seglog::Batch::decode(records).unwrap();
    let r = batch.records().next().unwrap().unwrap();
    assert_eq!(r.value.unwrap(), Bytes::from_static(b"woke"));
    // With nothing to wait for and max_wait 0 the answer is immediate and empty.
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("t", 0, 1, 0));
    assert!(resp.responses[0].partitions[0]
        .records
        .as_ref()
        .unwrap()
        .is_empty());
}

#[test]
fn list_offsets_earliest_latest_and_by_timestamp() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = f.client();
    produce(&mut c, "t", 0, kafka_batch(&["a", "b", "c"]));
    let query = |c: &mut Client, ts: i64| {
        let mut lp = ListOffsetsPartition::default();
        lp.partition_index = 0;
        lp.timestamp = ts;
        let mut lt = ListOffsetsTopic::default();
        lt.name = name("t");
        lt.partitions = vec![lp];
        let mut req = ListOffsetsRequest::default();
        req.topics = vec![lt];
        let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 5, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(query(&mut c, -2).1, 0);
    assert_eq!(query(&mut c, -1).1, 3);
    assert_eq!(query(&mut c, 4_102_444_800_001), (0, 1, 4_102_444_800_001));
    assert_eq!(query(&mut c, 4_102_444_900_000), (0, -1, -1));
}

#[test]
fn unsupported_apis_get_error_codes_or_a_closed_connection() {
    let f = Fixture::new();
    let mut c = f.client();
    let resp: kafka_protocol::messages::InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        4,
        &kafka_protocol::messages::InitProducerIdRequest::default(),
    );
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    // An API with no error-only answer (DescribeAcls): closed, as Kafka closes on a request
    // it cannot handle.
    c.send(
        ApiKey::DescribeAcls,
        1,
        &kafka_protocol::messages::DescribeAclsRequest::default(),
    );
    assert!(c.closed());
    // A supported API at a version outside the advertised range: closed too.
    let mut c = f.client();
    c.send(ApiKey::Fetch, 13, &fetch_request("t", 0, 0, 0));
    assert!(c.closed());
}

#[test]
fn bad_frames_close_the_connection_and_the_server_keeps_serving() {
    let f = Fixture::with_config(ServerConfig::default().with_request_bytes_max(1 << 16));
    let frames: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 3],
        vec![0, 3, 0, 12, 0, 0, 0, 1],
        vec![0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0],
        // Metadata v0 whose topic array claims 54 million entries in 5 bytes.
        vec![
            0, 3, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0x03, 0x3c, 0x0c, 0x00, 0xb6,
        ],
        // Produce v3 whose topic array claims i32::MAX entries: released kafka-protocol 0.18
        // allocates for them and the process aborts (vendor/kafka-protocol/SEGLOG-PATCH.md).
        vec![
            0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff,
            0xff,
        ],
        // The same count as a compact (flexible-version) array: Produce v9.
        vec![
            0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff,
            0x0f,
        ],
    ];
    for frame in frames {
        let mut c = f.client();
        c.send_raw(&frame);
        assert!(c.closed(), "frame {frame:?}");
    }
    let mut rng = support::Rng::seeded(13);
    for _ in 0..200 {
        let mut c = f.client();
        let len = 8 + usize::try_from(rng.next() % 120).unwrap();
        let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // A known API key and a plausible version, so decoding gets past the header.
        let api = [0u8, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20]
            [usize::try_from(rng.next() % 16).unwrap()];
        frame[..4].copy_from_slice(&[0, api, 0, u8::try_from(rng.next() % 10).unwrap()]);
        c.send_raw(&frame);
        // Either a response or a close; what matters is that the server survives.
        let _ = c.recv_raw();
    }
    // A frame longer than the limit: closed before its body is read.
    let mut c = f.client();
    c.stream.write_all(&(1i32 << 20).to_be_bytes()).unwrap();
    assert!(c.closed());
    let mut c = f.client();
    c.stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    assert!(c.closed());
    let mut c = f.client();
    let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0, "still serving");
}

#[test]
fn connections_past_the_limit_are_closed() {
    let f = Fixture::with_config(ServerConfig::default().with_connections_max(2));
    let mut a = f.client();
    let mut b = f.client();
    let _: ApiVersionsResponse = a.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let _: ApiVersionsResponse = b.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut c = f.client();
    assert!(c.closed());
    drop(a);
    // Once a slot is free a new connection is served (bounded retries: the close of `a` is
    // noticed asynchronously).
    let served = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let mut d = f.client();
        d.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        d.recv_raw().is_some()
    });
    assert!(served);
}

mod groups {
    use super::*;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest,
        HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
        LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
        OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
        SyncGroupResponse,
    };
    use seglog::{Consumer, ConsumerConfig, GroupCoordinator, TopicPartition};

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn join_request(member_id: &str, rebalance_ms: i32) -> JoinGroupRequest {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from(format!("meta of {member_id}"));
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s("g"));
        req.session_timeout_ms = 10_000;
        req.rebalance_timeout_ms = rebalance_ms;
        req.member_id = s(member_id);
        req.protocol_type = s("consumer");
        req.protocols = vec![p];
        req
    }

    fn join(c: &mut Client, member_id: &str) -> JoinGroupResponse {
        c.call(ApiKey::JoinGroup, 5, &join_request(member_id, 10_000))
    }

    fn sync(
        c: &mut Client,
        generation: i32,
        member: &str,
        assignments: &[(&str, &str)],
    ) -> SyncGroupResponse {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(s("g"));
        req.generation_id = generation;
        req.member_id = s(member);
        req.assignments = assignments
            .iter()
            .map(|(m, a)| {
                let mut x = SyncGroupRequestAssignment::default();
                x.member_id = s(m);
                x.assignment = Bytes::from(a.to_string());
                x
            })
            .collect();
        c.call(ApiKey::SyncGroup, 3, &req)
    }

    fn heartbeat(c: &mut Client, generation: i32, member: &str) -> i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(s("g"));
        req.generation_id = generation;
        req.member_id = s(member);
        let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 3, &req);
        r.error_code
    }

    fn commit(c: &mut Client, generation: i32, member: &str, offset: i64) -> i16 {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = offset;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = name("t");
        t.partitions = vec![p];
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(s("g"));
        req.generation_id_or_member_epoch = generation;
        req.member_id = s(member);
        req.topics = vec![t];
        let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 7, &req);
        r.topics[0].partitions[0].error_code
    }

    fn fetch_offset(c: &mut Client) -> i64 {
        let mut t = OffsetFetchRequestTopic::default();
        t.name = name("t");
        t.partition_indexes = vec![0];
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(s("g"));
        req.topics = Some(vec![t]);
        let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 5, &req);
        r.topics[0].partitions[0].committed_offset
    }

    #[test]
    fn join_sync_heartbeat_commit_rebalance_and_leave() {
        let f = Fixture::new();
        f.store.create_topic("t", TopicConfig::new(2)).unwrap();
        let mut c1 = f.client();
        let j1 = join(&mut c1, "");
        assert_eq!((j1.error_code, j1.generation_id), (0, 1));
        let m1 = j1.member_id.to_string();
        assert_eq!(j1.leader.as_str(), m1);
        assert_eq!(j1.members.len(), 1);
        assert_eq!(j1.members[0].metadata, Bytes::from("meta of "));
        let s1 = sync(&mut c1, 1, &m1, &[(&m1, "all of t")]);
        assert_eq!(
            (s1.error_code, s1.assignment.clone()),
            (0, Bytes::from("all of t"))
        );
        assert_eq!(heartbeat(&mut c1, 1, &m1), 0);
        assert_eq!(commit(&mut c1, 1, &m1, 5), 0);
        assert_eq!(fetch_offset(&mut c1), 5);
        assert_eq!(commit(&mut c1, 0, &m1, 6), 22, "ILLEGAL_GENERATION");
        assert_eq!(commit(&mut c1, 1, "stranger", 6), 25, "UNKNOWN_MEMBER_ID");
        assert_eq!(fetch_offset(&mut c1), 5, "fenced commits wrote nothing");

        // A second member joins: its join waits until the first rejoins.
        let mut c2 = f.client();
        let cid = c2.send(ApiKey::JoinGroup, 5, &join_request("", 10_000));
        let rebalancing = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            heartbeat(&mut c1, 1, &m1) == 27
        });
        assert!(
            rebalancing,
            "REBALANCE_IN_PROGRESS reaches the first member"
        );
        let j1 = join(&mut c1, &m1);
        let j2: JoinGroupResponse = c2.recv(ApiKey::JoinGroup, 5, cid);
        let m2 = j2.member_id.to_string();
        assert_eq!((j1.generation_id, j2.generation_id), (2, 2));
        assert_eq!(
            j1.members.len(),
            2,
            "the leader gets every member's metadata"
        );
        assert!(j2.members.is_empty(), "followers get none");
        assert_eq!(j2.leader.as_str(), m1);
        let cid = {
            let mut req = SyncGroupRequest::default();
            req.group_id = GroupId(s("g"));
            req.generation_id = 2;
            req.member_id = s(&m2);
            c2.send(ApiKey::SyncGroup, 3, &req)
        };
        let s1 = sync(&mut c1, 2, &m1, &[(&m1, "p0"), (&m2, "p1")]);
        let s2: SyncGroupResponse = c2.recv(ApiKey::SyncGroup, 3, cid);
        assert_eq!(s1.assignment, Bytes::from("p0"));
        assert_eq!(s2.assignment, Bytes::from("p1"));

        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(s("g"))];
        let d: DescribeGroupsResponse = c1.call(ApiKey::DescribeGroups, 4, &req);
        assert_eq!(d.groups[0].group_state.as_str(), "Stable");
        assert_eq!(d.groups[0].members.len(), 2);
        assert_eq!(d.groups[0].protocol_data.as_str(), "range");
        let l: ListGroupsResponse = c1.call(ApiKey::ListGroups, 3, &ListGroupsRequest::default());
        assert_eq!(l.groups.len(), 1);

        // The second member leaves: the first is told to rejoin and gets generation 3 alone.
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = GroupId(s("g"));
        leave.member_id = s(&m2);
        let r: LeaveGroupResponse = c2.call(ApiKey::LeaveGroup, 2, &leave);
        assert_eq!(r.error_code, 0);
        assert_eq!(heartbeat(&mut c1, 2, &m1), 27);
        let j1 = join(&mut c1, &m1);
        assert_eq!((j1.generation_id, j1.members.len()), (3, 1));
    }

    #[test]
    fn a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout() {
        let f = Fixture::new();
        let mut c1 = f.client();
        let j1: JoinGroupResponse = c1.call(ApiKey::JoinGroup, 5, &join_request("", 1_000));
        let m1 = j1.member_id.to_string();
        sync(&mut c1, 1, &m1, &[(&m1, "x")]);
        // The second join waits for the first member, which never rejoins; after the
        // rebalance timeout (1 s) the join phase ends without it.
        let mut c2 = f.client();
        let j2: JoinGroupResponse = c2.call(ApiKey::JoinGroup, 5, &join_request("", 1_000));
        assert_eq!(j2.error_code, 0);
        assert_eq!(j2.generation_id, 2);
        assert_eq!(j2.leader, j2.member_id);
        assert_eq!(j2.members.len(), 1);
        assert_eq!(heartbeat(&mut c1, 1, &m1), 25, "UNKNOWN_MEMBER_ID");
    }

    #[test]
    fn offsets_committed_remotely_are_where_an_embedded_consumer_resumes() {
        let f = Fixture::new();
        f.store.create_topic("t", TopicConfig::new(1)).unwrap();
        let mut c = f.client();
        produce(&mut c, "t", 0, kafka_batch(&["a", "b", "c", "d"]));
        let j: JoinGroupResponse = c.call(ApiKey::JoinGroup, 5, &join_request("", 10_000));
        let m = j.member_id.to_string();
        sync(&mut c, 1, &m, &[]);
        assert_eq!(commit(&mut c, 1, &m, 3), 0);
        let mut leave = LeaveGroupRequest::default();
        leave.group_id = GroupId(s("g"));
        leave.member_id = s(&m);
        let _: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, 2, &leave);

        let server = f.server.as_ref().unwrap();
        let groups = Arc::new(GroupCoordinator::for_store(&f.store, server.offset_store()));
        let mut consumer = Consumer::new(&f.store, groups, ConsumerConfig::default()).unwrap();
        consumer.subscribe("g", ["t"]).unwrap();
        let records = consumer.poll(10, Duration::from_secs(10)).unwrap();
        assert_eq!(records[0].offset, seglog::Offset(3));
        assert_eq!(records[0].value.as_deref(), Some(&b"d"[..]));
        // And an embedded commit is what a remote OffsetFetch returns.
        consumer.commit().unwrap();
        assert_eq!(fetch_offset(&mut c), 4);
        let tp = TopicPartition::new("t", 0);
        assert_eq!(
            consumer.committed(&tp).unwrap().unwrap().offset,
            seglog::Offset(4)
        );
    }
}

#[test]
fn embedded_and_remote_clients_see_one_store() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    // In-process producer → remote fetch.
    let producer = seglog::Producer::new(&f.store, seglog::ProducerConfig::default()).unwrap();
    for i in 0..3 {
        producer
            .send_to(
                "t",
                0,
                seglog::Record::new(format!("local {i}"))
                    .with_key(format!("lk{i}"))
                    .with_header("h", "v"),
            )
            .unwrap();
    }
    producer.flush().unwrap();
    let mut c = f.client();
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("t", 0, 0, 0));
    let mut bytes = resp.responses[0].partitions[0].records.clone().unwrap();
    let batches = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap();
    let remote: Vec<(Bytes, Bytes)> = batches
        .iter()
        .flat_map(|b| b.records.iter())
        .map(|r| (r.key.clone().unwrap(), r.value.clone().unwrap()))
        .collect();
    let expected: Vec<(Bytes, Bytes)> = (0..3)
        .map(|i| {
            (
                Bytes::from(format!("lk{i}")),
                Bytes::from(format!("local {i}")),
            )
        })
        .collect();
    assert_eq!(remote, expected);
    // Remote produce → in-process consumer.
    produce(&mut c, "t", 0, kafka_batch(&["remote 0", "remote 1"]));
    let groups = Arc::new(seglog::GroupCoordinator::for_store(
        &f.store,
        Arc::new(MemoryOffsetStore::new()),
    ));
    let mut consumer =
        seglog::Consumer::new(&f.store, groups, seglog::ConsumerConfig::default()).unwrap();
    let tp = seglog::TopicPartition::new("t", 0);
    consumer.assign(vec![tp.clone()]).unwrap();
    consumer.seek(&tp, seglog::Offset(3)).unwrap();
    let got = consumer.poll(10, Duration::from_secs(10)).unwrap();
    let values: Vec<&[u8]> = got.iter().map(|r| r.value.as_deref().unwrap()).collect();
    assert_eq!(values, [&b"remote 0"[..], &b"remote 1"[..]]);
    assert_eq!(got[0].key.as_deref(), Some(&b"k0"[..]));
    assert_eq!(got[0].timestamp_ms, 4_102_444_800_000);
}

mod decoder {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bodies behind a header of every API key the server knows and a range
        /// of versions: decoded or refused, never a panic or an abort.
        #[test]
        fn arbitrary_frames_never_panic(api in 0i16..80, version in -1i16..20, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut frame = Vec::with_capacity(body.len() + 10);
            frame.extend_from_slice(&api.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&7i32.to_be_bytes());
            frame.extend_from_slice(&body);
            let _ = seglog::testing::kafka_request_decodes(&frame);
            let _ = seglog::testing::kafka_request_decodes(&body);
        }
    }
}

/// Regression: a client's `partitionLeaderEpoch` was kept as given and entered the epoch
/// cache, so any producer could poison it (epoch 1,000,000 made every later
/// `assign_leader_epoch` fail). The broker overwrites it, as Kafka's `LogValidator` does.
#[test]
fn a_clients_partition_leader_epoch_is_not_trusted() {
    let f = Fixture::new();
    f.store.create_topic("t", TopicConfig::new(1)).unwrap();
    let mut c = f.client();
    let mut b = kafka_batch(&["a"]).to_vec();
    // partitionLeaderEpoch, outside the CRC: the batch stays valid.
    b[12..16].copy_from_slice(&1_000_000i32.to_be_bytes());
    assert_eq!(produce(&mut c, "t", 0, Bytes::from(b)), (0, 0));
    let p = f
        .store
        .partition(&seglog::TopicPartition::new("t", 0))
        .unwrap();
    assert_eq!(p.leader_epoch(), None);
    assert!(p.leader_epochs().is_empty(), "{:?}", p.leader_epochs());
    // The stored batch carries no epoch (the partition leads none).
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("t", 0, 0, 0));
    let got = resp.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(got[12..16], (-1i32).to_be_bytes());
    // The partition can still be given its epochs.
    p.assign_leader_epoch(5).unwrap();
    assert_eq!(p.leader_epoch(), Some(5));
}
