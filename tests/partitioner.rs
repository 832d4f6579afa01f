//! Partitioning matches Kafka and honours the `Partitioner` contract.
//!
//! `murmur2` is checked against hash values published by Kafka and by clients that verified
//! themselves against the Java implementation, and `DefaultPartitioner` against published
//! key → partition assignments; keyless records are checked to go round-robin (exactly even
//! counts, also from several threads); explicit partitions are honoured and bad ones, or a
//! partitioner that breaks its contract, give `Error::PartitionOutOfRange`. The conformance
//! suite (`partitioner_conformance`) passes on `DefaultPartitioner` and catches broken ones.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use seglog::testing::partitioner_conformance;
use seglog::{
    murmur2, to_positive, DefaultPartitioner, Durability, Error, LogStore, PartitionConfig,
    Partitioner, Record, StoreConfig, TopicConfig,
};

/// Apache Kafka, `clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java`,
/// `testMurmur2` (apache/kafka, e.g. commit f55581dc73953c3509a4702433aeeeddc2970779).
const KAFKA_UTILS_TEST: &[(&[u8], i32)] = &[
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
        -58897971,
    ),
    (b"abc", 479470107),
];

/// kafkajs, `src/producer/partitioners/defaultJava/murmur2.spec.js`: "Generated with
/// src/producer/partitioners/defaultJava/Test.java", a copy of Kafka's `Utils.murmur2`.
const KAFKAJS_JAVA_OUTPUT: &[(&[u8], i32)] = &[
    (b"0", 971027396),
    (b"1", -1993445489),
    (b"128", -326012175),
    (b"2187", -1508407203),
    (b"16384", -325739742),
    (b"78125", -1654490814),
    (b"279936", 1462227128),
    (b"823543", -2014198330),
    (b"2097152", 607668903),
    (b"4782969", -1182699775),
    (b"10000000", -1830336757),
    (b"19487171", -1603849305),
    (b"35831808", -857013643),
    (b"62748517", -1167431028),
    (b"105413504", -381294639),
    (b"170859375", -1658323481),
    (b"100:48069", 1009543857),
];

/// akka, `akka-cluster-sharding-typed/src/test/scala/.../Murmur2Spec.scala`: "expected
/// correct hash values from the kafka murmur2 impl".
const AKKA_FROM_KAFKA: &[(&[u8], i32)] = &[
    (b"1", -1993445489),
    (b"12", 126087238),
    (b"123", -267702483),
    (b"1234", -1614185708),
    (b"12345", -1188365604),
];

/// kafkajs's *legacy* partitioner (`src/producer/partitioners/default/murmur2.spec.js`
/// before the Java-compatible one was added) hashed differently from Kafka; a port that
/// reproduces these values is wrong.
const KAFKAJS_LEGACY_NOT_JAVA: &[(&[u8], i32)] = &[(b"0", 272173970), (b"1", 1311020360)];

/// librdkafka, `src/rdmurmur2.c`, `unittest_murmurhashneutral2`: `java_murmur2_results`,
/// which are Kafka's `toPositive(murmur2(key))`.
const LIBRDKAFKA_POSITIVE: &[(&[u8], u32)] = &[
    (b"kafka", 1348980580),
    (b"amqp", 767747138),
    (b"giberish123456789", 257239820),
];

/// kafka-python, `test/test_partitioner.py`, `test_murmur2_java_compatibility`: the
/// partition among 1000 "compared with output from Kafka's
/// org.apache.kafka.clients.producer.Partitioner".
const KAFKA_PYTHON_1000_PARTITIONS: &[(&[u8], u32)] = &[
    (b"", 681),
    (b"a", 524),
    (b"ab", 434),
    (b"abc", 107),
    (b"123456789", 566),
    (b"\x00 ", 742),
];

#[test]
fn murmur2_matches_kafkas_own_test_vectors() {
    for (input, expected) in KAFKA_UTILS_TEST
        .iter()
        .chain(KAFKAJS_JAVA_OUTPUT)
        .chain(AKKA_FROM_KAFKA)
    {
        assert_eq!(
            murmur2(input),
            *expected,
            "murmur2({:?})",
            String::from_utf8_lossy(input)
        );
    }
    for (input, legacy) in KAFKAJS_LEGACY_NOT_JAVA {
        assert_ne!(murmur2(input), *legacy, "the legacy JS hash is not Kafka's");
    }
}

#[test]
fn murmur2_covers_every_tail_length_and_high_bytes() {
    // Tail lengths 0..=3 and bytes >= 0x80 (Java's signed bytes, masked with 0xff) are where
    // ports usually go wrong; librdkafka's vectors and the empty key cover both.
    for (input, expected) in LIBRDKAFKA_POSITIVE {
        assert_eq!(to_positive(murmur2(input)), *expected, "{input:?}");
    }
    let lens: std::collections::BTreeSet<usize> = KAFKA_UTILS_TEST
        .iter()
        .chain(KAFKAJS_JAVA_OUTPUT)
        .map(|(k, _)| k.len() % 4)
        .collect();
    assert_eq!(lens.len(), 4, "the vectors exercise every tail length");
    // The hash is a function of every byte: a high byte differs from its low twin.
    assert_ne!(murmur2(&[0x80]), murmur2(&[0x00]));
    assert_ne!(murmur2(&[0xff, 1, 2, 3, 4]), murmur2(&[0x7f, 1, 2, 3, 4]));
}

#[test]
fn keyed_partition_matches_kafkas_default_partitioner() {
    for (key, expected) in KAFKA_PYTHON_1000_PARTITIONS {
        assert_eq!(
            DefaultPartitioner::partition_for_key(key, 1000),
            *expected,
            "{key:?}"
        );
    }
    // "foobar": toPositive(-790332482) = 1357151166.
    assert_eq!(DefaultPartitioner::partition_for_key(b"foobar", 10), 6);
    assert_eq!(DefaultPartitioner::partition_for_key(b"foobar", 1), 0);
    // Through the trait: the key decides, whatever the value or topic.
    let p = DefaultPartitioner::new();
    for (key, expected) in KAFKA_PYTHON_1000_PARTITIONS {
        let r = Record::new("any value").with_key(key.to_vec());
        assert_eq!(p.partition("t", &r, 1000), *expected);
        assert_eq!(p.partition("other", &r, 1000), *expected);
    }
}

#[test]
fn keyless_records_go_round_robin_per_topic() {
    let p = DefaultPartitioner::new();
    let keyless = Record::new("v");
    let mut counts = [0u32; 7];
    for i in 0..700 {
        let n = p.partition("a", &keyless, 7);
        assert_eq!(n, i % 7, "round-robin order");
        counts[n as usize] += 1;
        // Another topic's counter does not disturb this one.
        p.partition("b", &keyless, 3);
    }
    assert_eq!(counts, [100; 7]);
}

#[test]
fn keyless_distribution_is_even_across_threads() {
    let p = Arc::new(DefaultPartitioner::new());
    let counts: Arc<[AtomicU32; 5]> = Arc::new(Default::default());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (p, counts) = (p.clone(), counts.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    let n = p.partition("t", &Record::new("v"), 5);
                    counts[n as usize].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for c in counts.iter() {
        assert_eq!(c.load(Ordering::Relaxed), 800);
    }
}

#[test]
fn conformance_suite_passes_on_the_default_partitioner() {
    partitioner_conformance(&DefaultPartitioner::new());
}

/// Returns `partition_count` itself: one past the last valid partition.
struct OffByOne;
impl Partitioner for OffByOne {
    fn partition(&self, _: &str, _: &Record, partition_count: u32) -> u32 {
        partition_count
    }
}

/// Routes keyed records by a counter: not deterministic per key.
#[derive(Default)]
struct Wandering(AtomicU32);
impl Partitioner for Wandering {
    fn partition(&self, _: &str, _: &Record, partition_count: u32) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed) % partition_count
    }
}

#[test]
#[should_panic(expected = "not below")]
fn conformance_suite_catches_an_out_of_range_partitioner() {
    partitioner_conformance(&OffByOne);
}

#[test]
#[should_panic(expected = "moved")]
fn conformance_suite_catches_a_non_deterministic_keyed_partitioner() {
    partitioner_conformance(&Wandering::default());
}

fn store() -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(
        dir.path(),
        StoreConfig::default().with_maintenance_interval(None),
    )
    .unwrap();
    (dir, store)
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions)
        .with_partition_config(PartitionConfig::default().with_durability(Durability::NoSync))
}

#[test]
fn a_topic_routes_keys_like_kafka_and_honours_explicit_partitions() {
    let (_dir, store) = store();
    let topic = store.create_topic("orders", topic_config(10)).unwrap();
    let (partition, offset) = topic
        .append_record(&Record::new("x").with_key("foobar"))
        .unwrap();
    assert_eq!((partition, offset.0), (6, 0));
    let read = topic.partition(6).unwrap().read(offset, 1 << 20).unwrap();
    let rec = read.records().next().unwrap().unwrap();
    assert_eq!(rec.key.as_deref(), Some(&b"foobar"[..]));

    // Explicit partition: the key is not consulted.
    let info = topic
        .append_to(2, &[Record::new("y").with_key("foobar")])
        .unwrap();
    assert_eq!(info.base_offset.0, 0);
    assert_eq!(topic.partition(2).unwrap().log_end_offset().0, 1);
    assert_eq!(topic.partition(6).unwrap().log_end_offset().0, 1);

    for bad in [10, 11, u32::MAX] {
        let err = topic.append_to(bad, &[Record::new("z")]).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::PartitionOutOfRange { topic, partition, partition_count: 10 }
                    if topic == "orders" && *partition == bad
            ),
            "{err:?}"
        );
        assert!(matches!(
            topic.partition(bad),
            Err(Error::PartitionOutOfRange { .. })
        ));
    }
}

#[test]
fn a_partitioner_out_of_range_is_a_typed_error_not_a_wrap() {
    let (_dir, store) = store();
    let topic = store
        .create_topic("t", topic_config(3).with_partitioner(Arc::new(OffByOne)))
        .unwrap();
    let err = topic.append_record(&Record::new("v")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PartitionOutOfRange {
                partition: 3,
                partition_count: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let producer = seglog::Producer::new(&store, seglog::ProducerConfig::default()).unwrap();
    assert!(matches!(
        producer.send("t", Record::new("v")),
        Err(Error::PartitionOutOfRange { .. })
    ));
    assert!(matches!(
        producer.send_batched("t", Record::new("v")),
        Err(Error::PartitionOutOfRange { .. })
    ));
    // Nothing was written anywhere.
    for p in topic.partitions() {
        assert_eq!(p.log_end_offset().0, 0);
    }
    // Replacing the partitioner fixes routing.
    topic.set_partitioner(Arc::new(DefaultPartitioner::new()));
    assert_eq!(topic.append_record(&Record::new("v")).unwrap().0, 0);
}

#[test]
fn keyless_records_spread_evenly_over_a_topics_partitions() {
    let (_dir, store) = store();
    let topic = store.create_topic("spread", topic_config(4)).unwrap();
    let producer = seglog::Producer::new(&store, seglog::ProducerConfig::default()).unwrap();
    for i in 0..200 {
        let (p, _) = producer
            .send("spread", Record::new(format!("r{i}")))
            .unwrap();
        assert_eq!(p, i % 4);
    }
    // Batched sends continue the same round-robin.
    let handles: Vec<_> = (0..200)
        .map(|i| {
            producer
                .send_batched("spread", Record::new(format!("b{i}")))
                .unwrap()
        })
        .collect();
    producer.flush().unwrap();
    for h in &handles {
        h.wait().unwrap();
    }
    for p in topic.partitions() {
        assert_eq!(p.log_end_offset().0, 100);
    }
    // Topic::append groups a mixed batch per partition and keeps the input order.
    let records: Vec<Record> = (0..12)
        .map(|i| Record::new(format!("m{i}")).with_key(format!("k{}", i % 3)))
        .collect();
    let placed = topic.append(&records).unwrap();
    for (r, (p, off)) in records.iter().zip(&placed) {
        assert_eq!(
            *p,
            DefaultPartitioner::partition_for_key(r.key.as_ref().unwrap(), 4)
        );
        let got = topic.partition(*p).unwrap().read(*off, 1 << 20).unwrap();
        let rec = got.records().next().unwrap().unwrap();
        assert_eq!(rec.value, r.value);
    }
}
