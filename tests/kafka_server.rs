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
            timestamp: 1_700_000_000_000 + i64::try_from(i).unwrap(),
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
    // The bytes are the producer's, except the base offset the log assigned (outside the CRC).
    let mut expected = BytesMut::new();
    expected.extend_from_slice(&first);
    let mut second_at_3 = second.to_vec();
    second_at_3[..8].copy_from_slice(&3u64.to_be_bytes());
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
    assert_eq!(query(&mut c, 1_700_000_000_001), (0, 1, 1_700_000_000_001));
    assert_eq!(query(&mut c, 1_800_000_000_000), (0, -1, -1));
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
