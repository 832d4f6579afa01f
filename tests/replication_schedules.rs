//! Seeded adversarial schedules against the in-process replica set, driven step by step on
//! one thread (manual clock, one simulated disk per replica): appends under every acks mode,
//! fetches in random order, follower stalls and cut-off groups of followers, lag-based ISR
//! changes, crashes of any replica (with power loss, torn or not, where replicas fsync; a
//! third of the runs never fsync and crash as processes), restarts and controlled
//! leader moves. After every step:
//!
//! - every record acknowledged under acks=all is on the leader, unchanged, at its offset;
//! - no two acknowledgements claim one offset for different records;
//! - every live replica agrees with the leader below its own high watermark;
//! - the high watermark never moves back, the leader epoch never goes back, and a consumer
//!   of the leader sees nothing at or above the high watermark.
//!
//! At the end every replica restarts and catches up, and all hold the same bytes up to the
//! high watermark. `cargo test` runs `SEGLOG_SCHEDULES` schedules (default 120); set it to
//! 10000 or more for the full run. A failure prints its seed; `SEGLOG_SCHEDULE_SEED=n` reruns
//! one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use seglog::testing::SimFs;
use seglog::{
    Acks, BatchMeta, Durability, Offset, Partition, PartitionConfig, PendingAppend, Record,
    ReplicaSet, ReplicaSpec, ReplicationConfig, Replicator,
};

/// xorshift64*: small, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Run {
    seed: u64,
    rng: Rng,
    set: Arc<ReplicaSet>,
    sims: Vec<Arc<SimFs>>,
    /// acks=all acknowledged: offset -> value.
    committed: BTreeMap<u64, String>,
    pending: Vec<(PendingAppend, String)>,
    /// Followers that do not fetch, and for how many more steps.
    stalled: BTreeMap<usize, u32>,
    hw: Offset,
    epoch: i32,
    appended: u64,
    nosync: bool,
}

fn specs(sims: &[Arc<SimFs>], rng: &mut Rng, durability: &Durability) -> Vec<ReplicaSpec> {
    sims.iter()
        .enumerate()
        .map(|(i, sim)| {
            let segment = seglog::SEGMENT_BYTES_MIN << rng.below(3);
            let config = PartitionConfig::default()
                .with_segment_bytes(segment)
                .with_segment_ms(None)
                .with_retention_ms(None)
                .with_durability(durability.clone())
                // SimFs maps are snapshots: preallocated zeros would be mapped stale.
                .with_preallocate_bytes(0)
                .with_file_system(sim.clone());
            ReplicaSpec::new(format!("/replica-{i}"), config)
        })
        .collect()
}

impl Run {
    fn new(seed: u64) -> Run {
        let mut rng = Rng::new(seed);
        let n = 2 + rng.below(3) as usize;
        let config = ReplicationConfig::default()
            .with_min_insync_replicas(1 + rng.below(n as u64) as usize)
            .with_replica_lag_ms(50 + rng.below(400))
            .with_fetch_bytes_max(200 + rng.below(2000) as usize);
        let sims: Vec<Arc<SimFs>> = (0..n).map(|_| Arc::new(SimFs::new())).collect();
        // A third of the runs never fsync: copies stand in for fsync (Kafka's model), so a
        // crash there is a process crash (the page cache survives), never a power loss.
        let nosync = rng.chance(33);
        let durability = if nosync {
            Durability::NoSync
        } else {
            Durability::SyncEachAppend
        };
        let specs = specs(&sims, &mut rng, &durability);
        let set = ReplicaSet::open_with_manual_clock(specs, config).unwrap();
        Run {
            seed,
            rng,
            set,
            sims,
            committed: BTreeMap::new(),
            pending: Vec::new(),
            stalled: BTreeMap::new(),
            hw: Offset(0),
            epoch: -1,
            appended: 0,
            nosync,
        }
    }

    fn step(&mut self) {
        let n = self.sims.len();
        match self.rng.below(100) {
            0..=34 => {
                debug("append");
                self.append();
            }
            35..=69 => {
                let id = self.rng.below(n as u64) as usize;
                if !self.stalled.contains_key(&id) {
                    let r = self.set.fetch_once(id);
                    debug(&format!("fetch {id}: {r:?}"));
                }
            }
            70..=77 => {
                self.set.advance_clock(self.rng.below(200));
                let left = self.set.update_isr();
                debug(&format!("tick: {left} left the ISR"));
            }
            78..=82 => {
                self.stall();
                debug(&format!("stalled {:?}", self.stalled));
            }
            83..=88 => self.crash(),
            89..=94 => {
                let id = self.rng.below(n as u64) as usize;
                debug(&format!("restart {id}"));
                self.set.restart(id).unwrap();
            }
            _ => {
                let id = self.rng.below(n as u64) as usize;
                let r = self.set.elect(Some(id));
                debug(&format!("elect {id}: {r:?}"));
            }
        }
        if std::env::var("SEGLOG_SCHEDULE_DEBUG").is_ok() {
            self.trace();
        }
        self.stalled.retain(|_, left| {
            *left -= 1;
            *left > 0
        });
        self.settle_pending();
    }

    fn trace(&self) {
        let ends: Vec<String> = (0..self.sims.len())
            .map(|id| match self.set.replica(id) {
                Some(r) => format!(
                    "{id}:{}/{} {:?}",
                    r.log_end_offset(),
                    r.high_watermark(),
                    r.leader_epochs()
                        .iter()
                        .map(|e| (e.epoch, e.start_offset))
                        .collect::<Vec<_>>()
                ),
                None => format!("{id}:down"),
            })
            .collect();
        eprintln!(
            "  leader {:?} epoch {:?} isr {:?} hw {} | {}",
            self.set.leader_id(),
            self.set.leader_epoch(),
            self.set.isr(),
            self.set.high_watermark(),
            ends.join(" ")
        );
    }

    fn append(&mut self) {
        let acks = match self.rng.below(3) {
            0 => Acks::None,
            1 => Acks::Leader,
            _ => Acks::All,
        };
        let value = format!("s{}-{}", self.seed, self.appended);
        self.appended += 1;
        let records = vec![Record::new(value.clone())];
        if let Ok(p) = self
            .set
            .append_pending(&records, &BatchMeta::default(), acks)
        {
            if acks == Acks::All {
                self.pending.push((p, value));
            }
        }
    }

    /// One follower, or a group of them cut off from the leader, stops fetching for a while.
    fn stall(&mut self) {
        let n = self.sims.len() as u64;
        let steps = 1 + self.rng.below(30) as u32;
        for id in 0..n {
            if self.rng.chance(40) {
                self.stalled.insert(id as usize, steps);
            }
        }
    }

    fn crash(&mut self) {
        let id = self.rng.below(self.sims.len() as u64) as usize;
        if self.set.replica(id).is_none() {
            return;
        }
        let r = self.set.crash(id);
        let loss = if self.nosync { 0 } else { self.rng.below(3) };
        debug(&format!("crash {id} (power loss {loss}): {r:?}"));
        match loss {
            0 => {}
            1 => self.sims[id].power_loss(),
            _ => self.sims[id].power_loss_torn(self.rng.next()),
        }
    }

    fn settle_pending(&mut self) {
        let seed = self.seed;
        let mut still = Vec::new();
        for (p, value) in std::mem::take(&mut self.pending) {
            match self.set.poll(&p) {
                None => still.push((p, value)),
                Some(Err(_)) => {}
                Some(Ok(info)) => {
                    let o = info.base_offset.0;
                    if let Some(old) = self.committed.insert(o, value.clone()) {
                        assert_eq!(old, value, "seed {seed}: offset {o} acknowledged twice");
                    }
                }
            }
        }
        self.pending = still;
    }

    fn check(&mut self, step: usize) {
        let seed = self.seed;
        let hw = self.set.high_watermark();
        assert!(
            hw >= self.hw,
            "seed {seed} step {step}: HW went back {} -> {hw}",
            self.hw
        );
        self.hw = hw;
        if let Some(e) = self.set.leader_epoch() {
            assert!(e >= self.epoch, "seed {seed} step {step}: epoch went back");
            self.epoch = e;
        }
        let Ok(leader) = self.set.leader() else {
            return;
        };
        assert_eq!(
            leader.high_watermark(),
            hw,
            "seed {seed} step {step}: leader HW"
        );
        assert!(
            leader.read(hw, 1 << 20).unwrap().is_empty(),
            "seed {seed} step {step}: a consumer read at the HW"
        );
        let log = log_of(&leader);
        for (o, v) in &self.committed {
            assert!(
                *o < hw.0,
                "seed {seed} step {step}: acknowledged {o} above HW {hw}"
            );
            assert_eq!(
                log.get(o),
                Some(v),
                "seed {seed} step {step}: committed record at {o} lost or changed"
            );
        }
        for id in 0..self.sims.len() {
            let Some(r) = self.set.replica(id) else {
                continue;
            };
            let below = r.high_watermark().0.min(r.log_end_offset().0);
            let theirs = log_of(&r);
            for (o, v) in theirs.range(..below) {
                assert_eq!(
                    log.get(o),
                    Some(v),
                    "seed {seed} step {step}: replica {id} diverges at {o} below its HW {below}"
                );
            }
        }
    }

    /// Everyone back, caught up: the same bytes up to the HW everywhere.
    fn converge(&mut self) {
        let seed = self.seed;
        for id in 0..self.sims.len() {
            self.set.restart(id).unwrap();
        }
        if self.set.leader_id().is_none() {
            self.set.elect(None).unwrap();
        }
        for _ in 0..200 {
            for id in 0..self.sims.len() {
                if let Err(e) = self.set.fetch_once(id) {
                    panic!("seed {seed}: replica {id} cannot catch up: {e}");
                }
            }
        }
        self.check(usize::MAX);
        let hw = self.set.high_watermark();
        let leader = self.set.leader().unwrap();
        let want = bytes_below(&leader, hw);
        if std::env::var("SEGLOG_SCHEDULE_DEBUG").is_ok() {
            for id in 0..self.sims.len() {
                let r = self.set.replica(id).unwrap();
                eprintln!(
                    "replica {id}: end {} hw {} epochs {:?}",
                    r.log_end_offset(),
                    r.high_watermark(),
                    r.leader_epochs()
                );
            }
            eprintln!(
                "leader {:?} isr {:?} hw {hw}",
                self.set.leader_id(),
                self.set.isr()
            );
        }
        for id in 0..self.sims.len() {
            let r = self.set.replica(id).unwrap();
            assert_eq!(bytes_below(&r, hw), want, "seed {seed}: replica {id} bytes");
        }
        self.set.close().unwrap();
    }
}

fn debug(what: &str) {
    if std::env::var("SEGLOG_SCHEDULE_DEBUG").is_ok() {
        eprintln!("{what}");
    }
}

fn log_of(p: &Partition) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    while next < p.log_end_offset() {
        let read = p.read_uncommitted(next, 1 << 20).unwrap();
        for r in read.records() {
            let r = r.unwrap();
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.insert(r.offset.0, v);
        }
        next = read.next_offset();
    }
    out
}

fn bytes_below(p: &Partition, hw: Offset) -> Vec<u8> {
    let mut out = Vec::new();
    let mut next = Offset(0);
    while next < hw {
        let read = p.read_uncommitted(next, 1 << 20).unwrap();
        if read.is_empty() {
            break;
        }
        for b in read.batches() {
            if b.base_offset() < hw {
                out.extend_from_slice(b.as_bytes());
            }
        }
        next = read.next_offset();
    }
    out
}

fn run_schedule(seed: u64) {
    let mut run = Run::new(seed);
    let steps = 40 + run.rng.below(80) as usize;
    for step in 0..steps {
        run.step();
        run.check(step);
    }
    run.converge();
}

fn schedules() -> BTreeSet<u64> {
    if let Some(seed) = std::env::var("SEGLOG_SCHEDULE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return BTreeSet::from([seed]);
    }
    let n: u64 = std::env::var("SEGLOG_SCHEDULES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    (0..n).collect()
}

#[test]
fn committed_records_survive_adversarial_schedules() {
    run_all(schedules());
}

/// The full run CI does in release: `cargo test --release --test replication_schedules --
/// --ignored` (10,000 schedules with seeds apart from the default run's).
#[test]
#[ignore = "the full 10,000-schedule run; CI runs it in release"]
fn committed_records_survive_ten_thousand_schedules() {
    run_all((1_000_000..1_010_000).collect());
}

fn run_all(seeds: BTreeSet<u64>) {
    let mut acked = 0;
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_schedule(seed));
        if let Err(e) = result {
            eprintln!("schedule failed: SEGLOG_SCHEDULE_SEED={seed}");
            std::panic::resume_unwind(e);
        }
        acked += 1;
    }
    assert!(acked > 0);
}
