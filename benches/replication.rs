//! Replicated appends: throughput and append latency (p50, p99) for each acks mode on an
//! in-process replica set of a leader and 2 followers (fetcher threads), batches of 100
//! records of 100 bytes, against a single copy, all in one run so the ratios hold on this
//! machine. Not a criterion bench: one measured run per configuration, printed as a table.
//!
//! `cargo bench --bench replication` (env `SEGLOG_BENCH_BATCHES`, default 2000 per producer;
//! `SEGLOG_BENCH_PRODUCERS`, default 4; `SEGLOG_BENCH_DURABILITY=nosync` for `NoSync`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use seglog::{
    Acks, BatchMeta, Durability, Partition, PartitionConfig, Record, ReplicaSet, ReplicaSpec,
    ReplicationConfig, Replicator, SingleCopy,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn durability() -> Durability {
    match std::env::var("SEGLOG_BENCH_DURABILITY").as_deref() {
        Ok("nosync") => Durability::NoSync,
        _ => Durability::SyncEachAppend,
    }
}

fn config() -> PartitionConfig {
    PartitionConfig::default()
        .with_durability(durability())
        .with_segment_ms(None)
        .with_retention_ms(None)
}

struct Run {
    label: String,
    records_per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn measure(label: &str, r: Arc<dyn Replicator>, acks: Acks) -> Run {
    let batches = env("SEGLOG_BENCH_BATCHES", 2000);
    let producers = env("SEGLOG_BENCH_PRODUCERS", 4);
    let batch: Vec<Record> = (0..100).map(|_| Record::new(vec![b'x'; 100])).collect();
    let started = Instant::now();
    let threads: Vec<_> = (0..producers)
        .map(|_| {
            let (r, batch) = (r.clone(), batch.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(batches);
                for _ in 0..batches {
                    let t = Instant::now();
                    r.append(&batch, &BatchMeta::default(), acks).unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    r.close().unwrap();
    Run {
        label: label.to_owned(),
        records_per_s: (batches * producers * 100) as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn replica_set(root: &std::path::Path, name: &str) -> Arc<dyn Replicator> {
    let specs = (0..3)
        .map(|i| ReplicaSpec::new(root.join(format!("{name}-{i}")), config()))
        .collect();
    let config = ReplicationConfig::default()
        .with_min_insync_replicas(2)
        .with_fetch_wait(Duration::from_millis(50));
    let set = ReplicaSet::open(specs, config).unwrap();
    set.start_fetchers();
    // Let the followers join the ISR before measuring acks=all.
    let deadline = Instant::now() + Duration::from_secs(10);
    while set.in_sync_replicas() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    set
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let single = Partition::open(root.path().join("single"), config()).unwrap();
    let mut runs = vec![measure(
        "single copy",
        Arc::new(SingleCopy::new(Arc::new(single), 1).unwrap()),
        Acks::Leader,
    )];
    for (label, acks) in [
        ("3 replicas, acks=none", Acks::None),
        ("3 replicas, acks=leader", Acks::Leader),
        ("3 replicas, acks=all", Acks::All),
    ] {
        let name = format!("{acks:?}");
        runs.push(measure(label, replica_set(root.path(), &name), acks));
    }
    println!(
        "durability {:?}, {} producers, batches of 100 x 100 B",
        durability(),
        env("SEGLOG_BENCH_PRODUCERS", 4)
    );
    println!("| configuration | records/s | p50 append | p99 append |");
    println!("|---|---:|---:|---:|");
    for r in &runs {
        println!(
            "| {} | {:.0} | {:.2?} | {:.2?} |",
            r.label, r.records_per_s, r.p50, r.p99
        );
    }
    let leader = runs[2].records_per_s;
    let all = runs[3].records_per_s;
    println!("acks=all / acks=leader throughput: {:.2}", all / leader);
}
