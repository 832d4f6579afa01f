//! Power loss, proven on the simulated file system (`seglog::testing::SimFs`): a scripted
//! workload is run once to count its file operations, then run again with the power cut at
//! *every* one of them (and, torn, keeping a random subset of unsynced sectors and directory
//! changes). After each cut, recovery must succeed, every append acknowledged as durable
//! under the policy must be there, exact (offset, key, value, headers, timestamp), nothing
//! read may differ from what was appended at that offset, a log start persisted by
//! `delete_records_before` must hold, and under `SyncThreshold` no more than the documented
//! window may be lost. The same enumeration covers the topic store (topics created, grown,
//! deleted; records produced; consumer offsets committed): the store always reopens and
//! everything acknowledged is there. Random workloads are cut at random operations, and every
//! fsync of both workloads is failed in turn (Linux semantics: the writes it covered may be
//! lost while reads still show them), with and without a reopen in the same process before
//! the power loss: the partition must refuse further appends, and nothing acknowledged may be
//! lost. Each bug this found has its own regression test, which says so.
//!
//! The default run cuts at every operation, once clean and once torn; set
//! `SEGLOG_POWER_LOSS_LONG=1` to tear with four seeds at every operation and run more random
//! workloads.

use std::collections::BTreeMap;
use std::sync::Arc;

use seglog::testing::{SimError, SimFs, SimOp};
use seglog::{
    CleanupPolicy, CommittedOffset, Durability, Error, FileOffsetStore, FileOffsetStoreConfig,
    GroupCoordinator, LogRecord, LogStore, Offset, OffsetStore, Partition, PartitionConfig, Record,
    StoreConfig, TopicConfig, TopicPartition,
};

/// Run the long enumeration (every operation torn, several seeds).
fn long_run() -> bool {
    std::env::var_os("SEGLOG_POWER_LOSS_LONG").is_some_and(|v| v != "0")
}

/// How a cut run loses power.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Everything not durable is gone.
    Clean,
    /// A seeded random subset of unsynced sectors and directory changes survives.
    Torn(u64),
}

impl Loss {
    fn apply(self, sim: &SimFs) {
        match self {
            Loss::Clean => sim.power_loss(),
            Loss::Torn(seed) => sim.power_loss_torn(seed),
        }
    }
}

/// The losses to try at the `k`th operation.
fn losses(k: u64) -> Vec<Loss> {
    if long_run() {
        vec![
            Loss::Clean,
            Loss::Torn(k),
            Loss::Torn(k ^ 0x5eed),
            Loss::Torn(!k),
        ]
    } else {
        vec![Loss::Clean, Loss::Torn(k)]
    }
}

// ---- the partition ----

const DIR: &str = "/data/p0";
/// Records `SyncThreshold` may leave unsynced: `records: Some(WINDOW + 1)`.
const WINDOW: u64 = 3;

/// A durability policy and a cleanup policy to run the workload under.
#[derive(Debug, Clone)]
struct Case {
    name: String,
    durability: Durability,
    /// `Delete` keeps offsets dense (checked on every read); `CompactAndDelete` compacts.
    cleanup: CleanupPolicy,
    /// The workload.
    steps: Vec<Step>,
}

const SYNC_THRESHOLD: Durability = Durability::SyncThreshold {
    records: Some(WINDOW + 1),
    bytes: None,
    interval: None,
};

fn case(name: &'static str, durability: Durability, cleanup: CleanupPolicy) -> Case {
    Case {
        name: name.to_owned(),
        durability,
        cleanup,
        steps: script(),
    }
}

fn config(sim: &Arc<SimFs>, case: &Case) -> PartitionConfig {
    PartitionConfig::default()
        .with_segment_bytes(1024)
        .with_index_interval_bytes(200)
        .with_index_bytes_max(4096)
        .with_preallocate_bytes(2048)
        .with_segment_ms(None)
        .with_retention_ms(None)
        .with_retention_bytes(Some(2500))
        .with_cleanup_policy(case.cleanup)
        .with_durability(case.durability.clone())
        .with_file_system(sim.clone())
}

const TIME0: i64 = 1_700_000_000_000;

/// The record appended at offset `i` (the script is deterministic, so every run appends the
/// same record at the same offset): keyed (compaction needs keys), some with headers, a
/// few tombstones.
fn record(i: u64) -> Record {
    let key = format!("k{}", i % 7);
    let mut r = if i % 23 == 22 {
        Record::tombstone(key)
    } else {
        let pad = "v".repeat((i % 5) as usize * 17);
        Record::new(format!("value-{i}-{pad}")).with_key(key)
    };
    if i.is_multiple_of(3) {
        r = r.with_header("h", format!("header-{i}"));
    }
    r.timestamp_ms = TIME0 + i as i64;
    r
}

/// What a record reads back as, for comparison.
type Seen = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
    i64,
);

fn seen(r: &LogRecord) -> Seen {
    (
        r.key.as_ref().map(|b| b.to_vec()),
        r.value.as_ref().map(|b| b.to_vec()),
        r.headers
            .iter()
            .map(|h| (h.key.to_vec(), h.value.as_ref().map(|v| v.to_vec())))
            .collect(),
        r.timestamp_ms,
    )
}

fn expected(i: u64) -> Seen {
    let r = record(i);
    (
        r.key.map(|b| b.to_vec()),
        r.value.map(|b| b.to_vec()),
        r.headers
            .iter()
            .map(|h| (h.key.to_vec(), h.value.as_ref().map(|v| v.to_vec())))
            .collect(),
        r.timestamp_ms,
    )
}

/// Every readable record of `p`, by offset; panics (with `ctx`) on any record that differs
/// from what was appended at its offset, or on offsets that do not increase.
fn read_all(p: &Partition, ctx: &str) -> BTreeMap<u64, Seen> {
    let mut out = BTreeMap::new();
    let hw = p.high_watermark().0;
    let mut next = p.log_start_offset().0;
    while next < hw {
        let batches = p
            .read(Offset(next), 64 << 10)
            .unwrap_or_else(|e| panic!("{ctx}: read at {next}: {e}"));
        if batches.is_empty() {
            break;
        }
        for r in batches.records() {
            let r = r.unwrap_or_else(|e| panic!("{ctx}: record after {next}: {e}"));
            let o = r.offset.0;
            assert!(o >= next, "{ctx}: offset {o} read after {next}");
            assert_eq!(seen(&r), expected(o), "{ctx}: wrong record at offset {o}");
            out.insert(o, seen(&r));
            next = o + 1;
        }
        next = next.max(batches.next_offset().0);
    }
    out
}

/// One step of the scripted workload.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Append a batch of this many records.
    Append(u64),
    Flush,
    /// Retention by size (`retention_bytes`).
    Retention,
    /// `delete_records_before` half the high watermark.
    DeleteHalf,
    /// A forced compaction (rewrites sealed segments through a swap).
    Compact,
    /// Close cleanly, then open again.
    CloseReopen,
}

fn script() -> Vec<Step> {
    use Step::{Append, CloseReopen, Compact, DeleteHalf, Flush, Retention};
    let mut s = Vec::new();
    s.extend((0..10).map(|i| Append(1 + i % 3)));
    s.push(Flush);
    s.extend((0..6).map(|i| Append(1 + i % 2)));
    s.push(Retention);
    s.extend((0..4).map(|i| Append(2 + i % 2)));
    s.push(DeleteHalf);
    s.extend((0..4).map(|_| Append(2)));
    s.push(Compact);
    s.extend((0..3).map(|i| Append(1 + i)));
    s.push(Flush);
    s.push(CloseReopen);
    s.extend((0..4).map(|i| Append(1 + i % 3)));
    s
}

/// What a run of the script saw acknowledged.
#[derive(Debug, Default)]
struct Acked {
    /// Next offset to append.
    next: u64,
    /// Every offset below this was acknowledged as durable.
    durable_end: u64,
    /// A log start `delete_records_before` acknowledged.
    log_start: u64,
}

impl Acked {
    /// An append of `[from, to)` returned `Ok` under `durability`.
    fn appended(&mut self, durability: &Durability, to: u64) {
        self.next = to;
        match durability {
            Durability::SyncEachAppend => self.durable_end = to,
            Durability::SyncThreshold { .. } => {
                self.durable_end = self.durable_end.max(to.saturating_sub(WINDOW));
            }
            _ => {}
        }
    }
}

/// Run `step` on `p` (replaced by a reopened partition for `CloseReopen`).
fn run_step(
    step: Step,
    p: &mut Option<Partition>,
    open: &dyn Fn() -> seglog::Result<Partition>,
    case: &Case,
    acked: &mut Acked,
) -> seglog::Result<()> {
    let part = p.as_ref().expect("open");
    match step {
        Step::Append(n) => {
            let records: Vec<Record> = (acked.next..acked.next + n).map(record).collect();
            let info = part.append(&records)?;
            assert_eq!(
                info.base_offset,
                Offset(acked.next),
                "offsets assigned in order"
            );
            acked.appended(&case.durability, acked.next + n);
        }
        Step::Flush => {
            part.flush()?;
            acked.durable_end = acked.next;
        }
        Step::Retention => {
            part.apply_retention_at(TIME0 + 1000)?;
        }
        Step::DeleteHalf => {
            let to = part.high_watermark().0 / 2;
            let start = part.delete_records_before(Offset(to))?;
            acked.log_start = acked.log_start.max(start.0);
        }
        Step::Compact => {
            if case.cleanup.compacts() {
                part.compact_at(TIME0 + 1000, true)?;
            }
        }
        Step::CloseReopen => {
            part.close()?;
            acked.durable_end = acked.next;
            *p = None;
            *p = Some(open()?);
        }
    }
    Ok(())
}

/// Run the script on `sim` until a step fails; returns the failed step's index (the number
/// of steps when none failed), what was acknowledged, and the partition if still open.
fn run_script(
    sim: &Arc<SimFs>,
    case: &Case,
    mut after_step: impl FnMut(usize, &Partition),
) -> (usize, Acked, Option<Partition>) {
    let open = || Partition::open(DIR, config(sim, case));
    let mut acked = Acked::default();
    let mut p = match open() {
        Ok(p) => Some(p),
        Err(_) => return (0, acked, None),
    };
    let steps = &case.steps;
    for (i, step) in steps.iter().enumerate() {
        if run_step(*step, &mut p, &open, case, &mut acked).is_err() {
            return (i, acked, p);
        }
        after_step(i, p.as_ref().expect("open after a step"));
    }
    (steps.len(), acked, p)
}

/// The reference run: the records readable after each step (and after none), and the
/// number of file operations of the whole run.
fn reference(case: &Case) -> (Vec<BTreeMap<u64, Seen>>, u64) {
    let sim = Arc::new(SimFs::new());
    let mut states = Vec::new();
    let (failed, _, p) = run_script(&sim, case, |i, p| {
        states.push(read_all(p, &format!("reference, step {i}")));
    });
    assert_eq!(failed, case.steps.len(), "the reference run fails nowhere");
    let p = p.expect("open at the end");
    states.push(read_all(&p, "reference, end"));
    let ops = sim.operations();
    p.simulate_crash();
    (states, ops)
}

/// Cut the power at operation `k`, lose power as `loss`, recover and check.
fn cut_and_check(case: &Case, states: &[BTreeMap<u64, Seen>], k: u64, loss: Loss) {
    let ctx = format!("{}, power cut at operation {k}, {loss:?}", case.name);
    let sim = Arc::new(SimFs::new());
    sim.cut_power_at(k);
    let (failed, acked, p) = run_script(&sim, case, |_, _| {});
    if let Some(p) = p {
        p.simulate_crash();
    }
    loss.apply(&sim);
    let p = Partition::open(DIR, config(&sim, case))
        .unwrap_or_else(|e| panic!("{ctx} (during step {failed}): recovery failed: {e}"));
    let ctx = format!("{ctx}, during step {failed} {:?}", case.steps.get(failed));
    let got = read_all(&p, &ctx);
    // What the step under way may have removed (retention, compaction, deletion) is not
    // required; everything else acknowledged as durable is.
    let allowed = &states[failed.min(states.len() - 1)];
    for (&o, _) in allowed.range(..acked.durable_end) {
        assert!(
            got.contains_key(&o),
            "{ctx}: offset {o} acknowledged as durable (durable end {}) is lost; kept {:?}",
            acked.durable_end,
            got.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        p.log_start_offset().0 >= acked.log_start,
        "{ctx}: log start {} below the acknowledged {}",
        p.log_start_offset(),
        acked.log_start
    );
    // And the log goes on from where it ended.
    let end = p.log_end_offset();
    let info = p
        .append(&[record(end.0).with_key("after")])
        .unwrap_or_else(|e| panic!("{ctx}: append after recovery: {e}"));
    assert_eq!(info.base_offset, end, "{ctx}");
    p.simulate_crash();
}

fn enumerate_partition(case: &Case) {
    let (states, ops) = reference(case);
    assert!(
        ops > 100,
        "{}: the workload does {ops} operations",
        case.name
    );
    for k in 1..=ops {
        for loss in losses(k) {
            cut_and_check(case, &states, k, loss);
        }
    }
}

#[test]
fn partition_power_loss_at_every_operation_sync_each_append() {
    enumerate_partition(&case(
        "SyncEachAppend, Delete",
        Durability::SyncEachAppend,
        CleanupPolicy::Delete,
    ));
    enumerate_partition(&case(
        "SyncEachAppend, CompactAndDelete",
        Durability::SyncEachAppend,
        CleanupPolicy::CompactAndDelete,
    ));
}

#[test]
fn partition_power_loss_at_every_operation_sync_threshold() {
    enumerate_partition(&case(
        "SyncThreshold, CompactAndDelete",
        SYNC_THRESHOLD,
        CleanupPolicy::CompactAndDelete,
    ));
}

#[test]
fn partition_power_loss_at_every_operation_no_sync() {
    enumerate_partition(&case(
        "NoSync, Delete",
        Durability::NoSync,
        CleanupPolicy::Delete,
    ));
}

/// splitmix64: the next number below `n` from `state`.
fn below(state: &mut u64, n: u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % n
}

/// A random workload of `len` steps from `seed`.
fn random_script(seed: u64, len: usize) -> Vec<Step> {
    let mut state = seed;
    (0..len)
        .map(|_| match below(&mut state, 20) {
            0 => Step::Flush,
            1 => Step::Retention,
            2 => Step::DeleteHalf,
            3 => Step::Compact,
            4 => Step::CloseReopen,
            _ => Step::Append(1 + below(&mut state, 4)),
        })
        .collect()
}

#[test]
fn partition_power_loss_at_random_operations_of_random_workloads() {
    use CleanupPolicy::{CompactAndDelete, Delete};
    let (seeds, cuts) = if long_run() { (60, 40) } else { (12, 8) };
    for seed in 0..seeds {
        let (durability, cleanup) = match seed % 4 {
            0 => (Durability::SyncEachAppend, Delete),
            1 => (SYNC_THRESHOLD, CompactAndDelete),
            2 => (Durability::NoSync, Delete),
            _ => (Durability::SyncEachAppend, CompactAndDelete),
        };
        let mut case = case("", durability, cleanup);
        case.name = format!("random workload {seed}, {:?}, {cleanup:?}", case.durability);
        case.steps = random_script(seed, 40);
        let (states, ops) = reference(&case);
        let mut state = !seed;
        for _ in 0..cuts {
            let k = 1 + below(&mut state, ops);
            for loss in [Loss::Clean, Loss::Torn(below(&mut state, u64::MAX))] {
                cut_and_check(&case, &states, k, loss);
            }
        }
    }
}

/// Fail the `j`th fsync with `EIO` (which, as on Linux, may drop the writes it covered while
/// reads still see them) and go on with the script: the partition must refuse every later
/// append and flush, acknowledge nothing on the failed fsync, and after a power loss recover
/// with everything acknowledged before. Returns false once `j` is past the last fsync.
fn failed_fsync_and_check(
    case: &Case,
    states: &[BTreeMap<u64, Seen>],
    j: u64,
    loss: Loss,
    reopen_first: bool,
) -> bool {
    let ctx = format!(
        "{}, fsync {j} fails, then (reopened first: {reopen_first}) {loss:?}",
        case.name
    );
    let sim = Arc::new(SimFs::new());
    let open = || Partition::open(DIR, config(&sim, case));
    let mut p = Some(open().unwrap_or_else(|e| panic!("{ctx}: open: {e}")));
    sim.fail_nth(j, Some(SimOp::Sync), SimError::Eio);
    let mut acked = Acked::default();
    let mut failed_at = None;
    let mut poisoned = false;
    for (i, &step) in case.steps.iter().enumerate() {
        if p.is_none() {
            break;
        }
        let result = run_step(step, &mut p, &open, case, &mut acked);
        let writes = matches!(step, Step::Append(_) | Step::Flush);
        match (&result, failed_at) {
            (Err(_), None) => {
                failed_at = Some(i);
                // A failed fsync of the log (or of close) poisons the partition; one of a
                // checkpoint's temp file or a compaction's new segment fails only its
                // operation (the file is abandoned), and appends go on.
                poisoned = writes || matches!(step, Step::CloseReopen);
            }
            (Ok(()), Some(f)) if writes && poisoned => {
                panic!("{ctx}: step {i} {step:?} succeeded after the failure at step {f}")
            }
            (Err(e), Some(_)) if writes && poisoned => {
                // Refused as poisoned (or, after the close step, as closed).
                assert!(
                    matches!(e, Error::PreviousIoFailed | Error::Closed),
                    "{ctx}: step {i} {step:?} after the failure: {e:?}"
                );
            }
            _ => {}
        }
    }
    let Some(failed_at) = failed_at else {
        if let Some(p) = p {
            p.simulate_crash();
        }
        return false;
    };
    // What the partition shows before the crash: what retention, `delete_records_before`
    // and compaction (which run on after a failed append) left. The failed fsync dropped
    // pages that reads still show; what was acknowledged must be on disk all the same.
    sim.clear_faults();
    let mut visible = match p {
        Some(p) => {
            let seen = read_all(&p, &format!("{ctx}, before the crash"));
            p.simulate_crash();
            seen
        }
        None => states[failed_at].clone(),
    };
    if reopen_first {
        // Reopen in the same process first, where reads still show what the failed fsync
        // dropped, and append and flush there: recovery must not build on those cached
        // bytes as if they were on disk.
        let q = open().unwrap_or_else(|e| panic!("{ctx}: reopen before the power loss: {e}"));
        let end = q.log_end_offset().0;
        let records: Vec<Record> = (end..end + 3).map(record).collect();
        q.append(&records).unwrap();
        q.flush().unwrap();
        visible = read_all(&q, &format!("{ctx}, reopened"));
        acked.durable_end = end + 3;
        acked.log_start = acked.log_start.max(q.log_start_offset().0);
        q.simulate_crash();
    }
    loss.apply(&sim);
    let p = open().unwrap_or_else(|e| panic!("{ctx} (failed at step {failed_at}): reopen: {e}"));
    let got = read_all(&p, &ctx);
    for (&o, _) in visible.range(..acked.durable_end) {
        assert!(
            got.contains_key(&o),
            "{ctx} (failed at step {failed_at}): acknowledged offset {o} is lost; kept {:?}",
            got.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        p.log_start_offset().0 >= acked.log_start,
        "{ctx}: log start"
    );
    p.simulate_crash();
    true
}

fn enumerate_failed_fsyncs(case: &Case) {
    let (states, _) = reference(case);
    let mut j = 1;
    while failed_fsync_and_check(case, &states, j, Loss::Clean, false) {
        failed_fsync_and_check(case, &states, j, Loss::Torn(j), false);
        failed_fsync_and_check(case, &states, j, Loss::Torn(j), true);
        j += 1;
    }
    assert!(
        j > 5,
        "{}: only {} fsyncs in the workload",
        case.name,
        j - 1
    );
}

#[test]
fn a_failed_fsync_poisons_the_partition_and_loses_nothing_acknowledged() {
    use CleanupPolicy::{CompactAndDelete, Delete};
    for case in [
        case("SyncEachAppend, Delete", Durability::SyncEachAppend, Delete),
        case(
            "SyncEachAppend, CompactAndDelete",
            Durability::SyncEachAppend,
            CompactAndDelete,
        ),
        case(
            "SyncThreshold, CompactAndDelete",
            SYNC_THRESHOLD,
            CompactAndDelete,
        ),
        case("SyncThreshold, Delete", SYNC_THRESHOLD, Delete),
        case("NoSync, Delete", Durability::NoSync, Delete),
        case(
            "NoSync, CompactAndDelete",
            Durability::NoSync,
            CompactAndDelete,
        ),
    ] {
        enumerate_failed_fsyncs(&case);
    }
}

#[test]
fn a_persisted_log_start_above_the_recovered_end_restarts_the_log_there() {
    // Found by the failed-fsync enumeration: `delete_records_before` persists the log start,
    // but the records below it may never have reached the disk (NoSync, or a failed fsync).
    // Recovery then ended the log below its persisted start, clamped the start down to the
    // end, and handed out the deleted offsets again.
    let sim = Arc::new(SimFs::new());
    let config = config(&sim, &case("", Durability::NoSync, CleanupPolicy::Delete));
    let p = Partition::open(DIR, config.clone()).unwrap();
    let records: Vec<Record> = (0..10).map(record).collect();
    p.append(&records).unwrap();
    assert_eq!(p.delete_records_before(Offset(6)).unwrap(), Offset(6));
    p.simulate_crash();
    sim.power_loss();
    let p = Partition::open(DIR, config.clone()).unwrap();
    assert_eq!(p.log_start_offset(), Offset(6), "the persisted start holds");
    assert_eq!(
        p.log_end_offset(),
        Offset(6),
        "the log restarts empty at its start"
    );
    let info = p.append(&[record(6)]).unwrap();
    assert_eq!(
        info.base_offset,
        Offset(6),
        "no deleted offset is handed out again"
    );
    drop(p);
    let p = Partition::open(DIR, config).unwrap();
    assert_eq!(
        read_all(&p, "reopened").keys().copied().collect::<Vec<_>>(),
        [6]
    );
}

// ---- the topic store ----

const STORE: &str = "/srv/seglog/data";
const GROUP: &str = "g";

fn store_config(sim: &Arc<SimFs>) -> StoreConfig {
    StoreConfig::default()
        .with_maintenance_interval(None)
        .with_file_system(sim.clone())
}

fn topic_config(partitions: u32) -> TopicConfig {
    TopicConfig::new(partitions).with_partition_config(
        PartitionConfig::default()
            .with_segment_bytes(1024)
            .with_index_bytes_max(4096)
            .with_preallocate_bytes(2048),
    )
}

fn store_record(topic: &str, partition: u32, offset: u64) -> Record {
    Record::new(format!("{topic}-{partition}-{offset}"))
        .with_key(format!("key-{offset}"))
        .with_header("from", topic.to_owned())
}

/// One step of the store workload.
#[derive(Debug, Clone, Copy)]
enum StoreStep {
    Create(&'static str, u32),
    /// Append batches of 2 records to a partition.
    Append(&'static str, u32, u32),
    AddPartitions(&'static str, u32),
    Delete(&'static str),
    /// Commit the group's offset for a partition.
    Commit(&'static str, u32, u64),
    /// Close the store and the coordinator, then open both again.
    CloseReopen,
}

fn store_script() -> Vec<StoreStep> {
    use StoreStep::{AddPartitions, Append, CloseReopen, Commit, Create, Delete};
    vec![
        Create("a", 2),
        Append("a", 0, 3),
        Commit("a", 0, 2),
        Create("b", 1),
        Append("b", 0, 1),
        AddPartitions("a", 3),
        Append("a", 2, 2),
        Commit("a", 2, 1),
        Commit("a", 0, 5),
        Delete("b"),
        Create("c", 1),
        Append("c", 0, 1),
        CloseReopen,
        Commit("c", 0, 1),
        Create("b", 2),
        Append("b", 1, 1),
        AddPartitions("c", 2),
        Delete("a"),
    ]
}

/// What a store run saw acknowledged.
#[derive(Debug, Default, Clone)]
struct StoreAcked {
    /// Topic -> partition count.
    topics: BTreeMap<String, u32>,
    /// (topic, partition) -> records appended (all acknowledged: `SyncEachAppend`).
    records: BTreeMap<(String, u32), u64>,
    /// (topic, partition) -> committed offset.
    commits: BTreeMap<(String, u32), u64>,
}

struct StoreRun {
    sim: Arc<SimFs>,
    store: Option<LogStore>,
    coordinator: Option<GroupCoordinator>,
    acked: StoreAcked,
}

impl StoreRun {
    fn open(sim: &Arc<SimFs>) -> seglog::Result<(LogStore, GroupCoordinator)> {
        let store = LogStore::open(STORE, store_config(sim))?;
        let coordinator = GroupCoordinator::open(&store)?;
        Ok((store, coordinator))
    }

    fn step(&mut self, step: StoreStep) -> seglog::Result<()> {
        let store = self.store.as_ref().expect("open");
        let acked = &mut self.acked;
        match step {
            StoreStep::Create(name, n) => {
                store.create_topic(name, topic_config(n))?;
                acked.topics.insert(name.to_owned(), n);
            }
            StoreStep::Append(name, p, batches) => {
                let part = store.partition(&TopicPartition::new(name, p))?;
                for _ in 0..batches {
                    let next = acked
                        .records
                        .get(&(name.to_owned(), p))
                        .copied()
                        .unwrap_or(0);
                    let records = [store_record(name, p, next), store_record(name, p, next + 1)];
                    let info = part.append(&records)?;
                    assert_eq!(info.base_offset, Offset(next));
                    acked.records.insert((name.to_owned(), p), next + 2);
                }
            }
            StoreStep::AddPartitions(name, n) => {
                store.add_partitions(name, n)?;
                acked.topics.insert(name.to_owned(), n);
            }
            StoreStep::Delete(name) => {
                store.delete_topic(name)?;
                acked.topics.remove(name);
                acked.records.retain(|(t, _), _| t != name);
                acked.commits.retain(|(t, _), _| t != name);
            }
            StoreStep::Commit(name, p, offset) => {
                let committed = [(
                    TopicPartition::new(name, p),
                    CommittedOffset::new(Offset(offset)),
                )];
                // Gone if a close/reopen failed half way.
                let coordinator = self.coordinator.as_ref().ok_or(Error::StoreClosed)?;
                coordinator.offset_store().commit(GROUP, &committed)?;
                acked.commits.insert((name.to_owned(), p), offset);
            }
            StoreStep::CloseReopen => {
                self.coordinator = None;
                store.close()?;
                self.store = None;
                let (store, coordinator) = Self::open(&self.sim)?;
                self.store = Some(store);
                self.coordinator = Some(coordinator);
            }
        }
        Ok(())
    }
}

/// Run the store script on `sim` until a step fails: the failed step (the script's length
/// if none did) and the run, still holding what is open.
fn run_store_script(sim: &Arc<SimFs>) -> (usize, StoreRun) {
    let mut run = StoreRun {
        sim: sim.clone(),
        store: None,
        coordinator: None,
        acked: StoreAcked::default(),
    };
    match StoreRun::open(sim) {
        Ok((s, c)) => {
            run.store = Some(s);
            run.coordinator = Some(c);
        }
        Err(_) => return (0, run),
    }
    let steps = store_script();
    for (i, step) in steps.iter().enumerate() {
        if run.step(*step).is_err() {
            return (i, run);
        }
    }
    (steps.len(), run)
}

/// Check a reopened store against what was acknowledged; `in_flight` is the step the power
/// was cut in, whose effect may or may not be there.
fn check_store(
    store: &LogStore,
    coordinator: &GroupCoordinator,
    acked: &StoreAcked,
    in_flight: Option<StoreStep>,
    ctx: &str,
) {
    let maybe = |name: &str| match in_flight {
        Some(StoreStep::Create(t, _) | StoreStep::Delete(t) | StoreStep::AddPartitions(t, _)) => {
            t == name
        }
        _ => false,
    };
    for name in store.list_topics() {
        assert!(
            acked.topics.contains_key(&name) || maybe(&name),
            "{ctx}: topic {name} exists but was never acknowledged (or was deleted)"
        );
    }
    for (name, &count) in &acked.topics {
        let topic = match store.topic(name) {
            Ok(t) => t,
            Err(e) if maybe(name) => {
                assert!(matches!(e, Error::UnknownTopic { .. }), "{ctx}: {e:?}");
                continue;
            }
            Err(e) => panic!("{ctx}: acknowledged topic {name} is gone: {e}"),
        };
        assert!(
            topic.partition_count() >= count,
            "{ctx}: topic {name} has {} partitions, {count} acknowledged",
            topic.partition_count()
        );
        for p in 0..topic.partition_count() {
            let part = topic.partition(p).unwrap();
            let appended = acked.records.get(&(name.clone(), p)).copied().unwrap_or(0);
            let mut next = 0;
            while next < part.high_watermark().0 {
                let batches = part.read(Offset(next), 1 << 16).unwrap();
                assert!(
                    !batches.is_empty(),
                    "{ctx}: {name}-{p}: empty read at {next}"
                );
                for r in batches.records() {
                    let r = r.unwrap();
                    let want = store_record(name, p, r.offset.0);
                    assert_eq!(r.offset.0, next, "{ctx}: {name}-{p}: offsets are dense");
                    assert_eq!(r.value, want.value, "{ctx}: {name}-{p} at {next}");
                    assert_eq!(r.key, want.key, "{ctx}: {name}-{p} at {next}");
                    next += 1;
                }
            }
            assert!(
                next >= appended,
                "{ctx}: {name}-{p} holds {next} records, {appended} acknowledged"
            );
        }
    }
    for ((name, p), &offset) in &acked.commits {
        if !acked.topics.contains_key(name) {
            continue;
        }
        let got = coordinator
            .offset_store()
            .fetch(GROUP, &TopicPartition::new(name.clone(), *p))
            .unwrap()
            .map(|c| c.offset.0);
        let in_flight_commit = match in_flight {
            Some(StoreStep::Commit(t, q, o)) if t == name && q == *p => Some(o),
            _ => None,
        };
        assert!(
            got == Some(offset) || got.is_some() && got == in_flight_commit,
            "{ctx}: commit {name}-{p} = {offset} acknowledged, fetched {got:?}"
        );
    }
}

#[test]
fn store_power_loss_at_every_operation() {
    let sim = Arc::new(SimFs::new());
    let (failed, run) = run_store_script(&sim);
    assert_eq!(
        failed,
        store_script().len(),
        "the reference run fails nowhere"
    );
    let ops = sim.operations();
    assert!(ops > 100, "the store workload does {ops} operations");
    drop(run);
    for k in 1..=ops {
        for loss in losses(k) {
            let ctx = format!("store, power cut at operation {k}, {loss:?}");
            let sim = Arc::new(SimFs::new());
            sim.cut_power_at(k);
            let (failed, run) = run_store_script(&sim);
            let acked = run.acked.clone();
            drop(run);
            loss.apply(&sim);
            let in_flight = store_script().get(failed).copied();
            let ctx = format!("{ctx}, during step {failed} {in_flight:?}");
            let (store, coordinator) = StoreRun::open(&sim)
                .unwrap_or_else(|e| panic!("{ctx}: the store does not reopen: {e}"));
            check_store(&store, &coordinator, &acked, in_flight, &ctx);
            // And it goes on: a new topic can be made and written.
            let t = store
                .create_topic("after", topic_config(1))
                .unwrap_or_else(|e| panic!("{ctx}: create after recovery: {e}"));
            t.append_to(0, &[Record::new("x")]).unwrap();
        }
    }
}

#[test]
fn new_store_topic_and_offsets_directories_survive_power_loss() {
    // Bug 2: a directory the engine creates must have its entry made durable (its parent
    // fsynced, each created level for a nested path); otherwise every acknowledged record,
    // topic and commit below it vanishes with it. Fails if `create_dir_all_durable` skips
    // the parent fsyncs.
    let sim = Arc::new(SimFs::new());
    let (store, coordinator) = StoreRun::open(&sim).unwrap();
    let topic = store.create_topic("t", topic_config(1)).unwrap();
    topic.append_to(0, &[Record::new("acknowledged")]).unwrap();
    let tp = TopicPartition::new("t", 0);
    coordinator
        .offset_store()
        .commit(GROUP, &[(tp.clone(), CommittedOffset::new(Offset(1)))])
        .unwrap();
    drop(coordinator);
    drop(topic);
    drop(store);
    sim.power_loss();
    for dir in [
        "/srv",
        "/srv/seglog",
        STORE,
        "/srv/seglog/data/t-0",
        "/srv/seglog/data/__offsets",
    ] {
        assert!(sim.exists(dir), "{dir} was lost");
    }
    let (store, coordinator) = StoreRun::open(&sim).unwrap();
    let p = store.partition(&tp).unwrap();
    assert_eq!(p.log_end_offset(), Offset(1));
    let fetched = coordinator.offset_store().fetch(GROUP, &tp).unwrap();
    assert_eq!(fetched.map(|c| c.offset), Some(Offset(1)));
}

#[test]
fn a_new_partition_directory_survives_power_loss() {
    // Bug 2 for a partition alone, nested two levels below existing directories.
    let sim = Arc::new(SimFs::new());
    let dir = "/fresh/nested/p0";
    let config = config(
        &sim,
        &case("", Durability::SyncEachAppend, CleanupPolicy::Delete),
    );
    let p = Partition::open(dir, config.clone()).unwrap();
    p.append(&[record(0)]).unwrap();
    p.simulate_crash();
    sim.power_loss();
    let p = Partition::open(dir, config).unwrap();
    assert_eq!(
        read_all(&p, "reopened").len(),
        1,
        "the acknowledged record survived"
    );
}

#[test]
fn segments_removed_by_retention_in_any_order_never_leave_a_hole() {
    // Found by a torn power loss during retention: its removals reached the disk in any
    // order, so a removed segment could sit between two that came back; recovery then served
    // deleted records again, followed by a hole in a dense partition's offsets. The new log
    // start is now persisted before any file is removed.
    let mut holes_possible = 0;
    for seed in 0..40u64 {
        let sim = Arc::new(SimFs::new());
        let cfg = config(
            &sim,
            &case("", Durability::SyncEachAppend, CleanupPolicy::Delete),
        )
        .with_retention_bytes(Some(1500));
        let p = Partition::open(DIR, cfg.clone()).unwrap();
        for i in 0..40 {
            p.append(&[record(i)]).unwrap();
        }
        let bases = p.segment_base_offsets();
        // The removals happen, the directory fsync that would make them durable fails.
        sim.fail_next(SimOp::SyncDir, SimError::Eio);
        let plan = p.apply_retention_at(TIME0 + 1000);
        assert!(plan.is_err(), "seed {seed}: the directory fsync failed");
        p.simulate_crash();
        sim.power_loss_torn(seed);
        let p = Partition::open(DIR, cfg.clone()).unwrap();
        let ctx = format!("seed {seed}");
        let got: Vec<u64> = read_all(&p, &ctx).keys().copied().collect();
        assert_eq!(got.first().copied(), Some(p.log_start_offset().0), "{ctx}");
        assert!(
            got.windows(2).all(|w| w[1] == w[0] + 1),
            "{ctx}: a hole in {got:?} (segments {bases:?} -> {:?})",
            p.segment_base_offsets()
        );
        assert_eq!(
            got.last().copied(),
            Some(39),
            "{ctx}: nothing acknowledged lost"
        );
        let after = p.segment_base_offsets();
        holes_possible += usize::from(after.len() > 2 && after[0] < p.log_start_offset());
        // The leftovers below the log start go with the next retention pass.
        p.apply_retention_at(TIME0 + 1000).unwrap();
        assert!(
            p.segment_base_offsets()[0] <= p.log_start_offset(),
            "{ctx}: {:?}",
            p.segment_base_offsets()
        );
        p.simulate_crash();
    }
    assert!(holes_possible > 0, "no seed brought a removed segment back");
}

#[test]
fn store_failed_fsync_at_every_fsync() {
    // Fail each fsync of the store workload in turn and go on: later steps may fail (a
    // poisoned partition, a failed offset store) or succeed; after a power loss the store
    // reopens and everything acknowledged holds.
    let mut j = 1;
    loop {
        for loss in [Loss::Clean, Loss::Torn(j)] {
            let ctx = format!("store, fsync {j} fails, then {loss:?}");
            let sim = Arc::new(SimFs::new());
            let mut run = StoreRun {
                sim: sim.clone(),
                store: None,
                coordinator: None,
                acked: StoreAcked::default(),
            };
            let (store, coordinator) = StoreRun::open(&sim).unwrap();
            run.store = Some(store);
            run.coordinator = Some(coordinator);
            sim.fail_nth(j, Some(SimOp::Sync), SimError::Eio);
            let mut failed = None;
            for (i, step) in store_script().into_iter().enumerate() {
                if run.store.is_none() {
                    break;
                }
                if run.step(step).is_err() && failed.is_none() {
                    failed = Some(i);
                }
            }
            let Some(failed) = failed else {
                assert!(j > 10, "only {} fsyncs in the store workload", j - 1);
                return;
            };
            let acked = run.acked.clone();
            drop(run);
            sim.clear_faults();
            loss.apply(&sim);
            let in_flight = store_script().get(failed).copied();
            let ctx = format!("{ctx}, first failure at step {failed} {in_flight:?}");
            let (store, coordinator) = StoreRun::open(&sim)
                .unwrap_or_else(|e| panic!("{ctx}: the store does not reopen: {e}"));
            check_store(&store, &coordinator, &acked, in_flight, &ctx);
        }
        j += 1;
    }
}

#[test]
fn a_reopen_after_a_failed_fsync_makes_what_it_keeps_durable() {
    // Found by the failed-fsync enumeration with a reopen before the power loss: the failed
    // fsync dropped the batch's pages (Linux marks them clean) while reads still showed it;
    // recovery in the same process kept it, fsynced (writing nothing) and moved the recovery
    // point over it. After a power loss the log held a hole below the recovery point, and
    // the record acknowledged after the reopen was unreachable.
    let sim = Arc::new(SimFs::new());
    let config = config(
        &sim,
        &case("", Durability::SyncEachAppend, CleanupPolicy::Delete),
    );
    let p = Partition::open(DIR, config.clone()).unwrap();
    p.append(&[record(0)]).unwrap();
    sim.fail_next(SimOp::Sync, SimError::Eio);
    assert!(p.append(&[record(1)]).is_err(), "its fsync failed");
    assert!(matches!(
        p.append(&[record(1)]),
        Err(Error::PreviousIoFailed)
    ));
    p.simulate_crash();
    let p = Partition::open(DIR, config.clone()).unwrap();
    let info = p.append(&[record(2)]).unwrap();
    assert_eq!(info.base_offset, Offset(2), "the cached batch was kept");
    p.simulate_crash();
    sim.power_loss();
    let p =
        Partition::open(DIR, config).unwrap_or_else(|e| panic!("reopen after the power loss: {e}"));
    let got: Vec<u64> = read_all(&p, "after the power loss")
        .keys()
        .copied()
        .collect();
    assert_eq!(got, [0, 1, 2], "recovery made what it kept durable");
}

#[test]
fn a_reopened_offset_store_after_a_failed_fsync_survives_power_loss() {
    // Found by the store's failed-fsync enumeration: the commit whose fsync failed was
    // replayed from the page cache by a reopen in the same process, the next commits were
    // appended after it, and after a power loss the hole it left made the store refuse to
    // open (a damaged entry with valid ones after it).
    let sim = Arc::new(SimFs::new());
    let config = FileOffsetStoreConfig::default().with_file_system(sim.clone());
    let tp = TopicPartition::new("t", 0);
    let commit = |store: &FileOffsetStore, offset: u64| {
        store.commit(GROUP, &[(tp.clone(), CommittedOffset::new(Offset(offset)))])
    };
    let store = FileOffsetStore::open_with("/offsets", config.clone()).unwrap();
    commit(&store, 1).unwrap();
    sim.fail_next(SimOp::Sync, SimError::Eio);
    assert!(commit(&store, 2).is_err());
    drop(store);
    let store = FileOffsetStore::open_with("/offsets", config.clone()).unwrap();
    commit(&store, 3).unwrap();
    drop(store);
    sim.power_loss();
    let store = FileOffsetStore::open_with("/offsets", config)
        .unwrap_or_else(|e| panic!("reopen after the power loss: {e}"));
    let fetched = store.fetch(GROUP, &tp).unwrap().map(|c| c.offset);
    assert_eq!(fetched, Some(Offset(3)));
}
