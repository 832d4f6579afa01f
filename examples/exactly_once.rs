//! Exactly-once processing: store each result *and* the consumer offset that produced it in
//! one transaction of the same database, so that after any crash the position restarts from
//! exactly what was stored.
//!
//! `SqliteOffsetStore` implements [`OffsetStore`] over a SQLite database (through `rusqlite`).
//! The application *stages* the results of what it processed; `Consumer::commit` then reaches
//! the store's `commit`, which writes the staged results and the new offsets in one SQLite
//! transaction: both or neither survive a crash. On start, the consumer's positions come from
//! the same database.
//!
//! The example runs itself as a child process that consumes a topic of `RECORDS` orders,
//! SIGKILLs it twice in the middle of the run (the kill lands wherever the child is: while
//! processing, inside the SQLite transaction, between transactions), restarts it each time,
//! lets the last run finish, and then checks that every input record produced exactly one
//! result row: no duplicate, no loss.
//!
//! This uses a standalone consumer (manual assignment with a `group_id`), whose commits are
//! not fenced. A group member would also have to drop its staged results and seek back to the
//! committed offsets when a commit fails with `Error::FencedCommit`.
//!
//! Run with `cargo run --example exactly_once`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use seglog::{
    validate_group_id, validate_offset_commit, AutoOffsetReset, CommittedOffset, Consumer,
    ConsumerConfig, Durability, Error, GroupCoordinator, LogStore, Offset, OffsetStore,
    PartitionConfig, Record, StoreConfig, TopicConfig, TopicPartition,
};

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 3;
const RECORDS: usize = 3_000;
const GROUP: &str = "billing";
/// The child is killed once the database holds at least this many results, then again.
const KILL_AT: [usize; 2] = [700, 1_900];
const CHILD_ENV: &str = "SEGLOG_EXACTLY_ONCE_DIR";

/// One result row: the order it was computed from and the computed value.
struct ResultRow {
    partition: u32,
    offset: u64,
    order: String,
    amount_cents: i64,
}

/// An [`OffsetStore`] over SQLite that also writes the results staged since the last commit,
/// in the same transaction as the offsets.
struct SqliteOffsetStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    staged: Mutex<Vec<ResultRow>>,
}

impl SqliteOffsetStore {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        Self::with_connection(path, Connection::open(path)?)
    }

    fn with_connection(path: &Path, conn: Connection) -> rusqlite::Result<Self> {
        // Rollback journal with full sync: a committed transaction survives a crash, an
        // interrupted one is rolled back when the database is next opened.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS offsets (
                 grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
                 next_offset INTEGER NOT NULL, metadata TEXT NOT NULL,
                 PRIMARY KEY (grp, topic, partition));
             CREATE TABLE IF NOT EXISTS results (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 partition INTEGER NOT NULL, source_offset INTEGER NOT NULL,
                 order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL);",
        )?;
        Ok(SqliteOffsetStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            staged: Mutex::new(Vec::new()),
        })
    }

    /// Queue a result for the next commit.
    fn stage(&self, row: ResultRow) {
        self.staged.lock().unwrap().push(row);
    }

    fn error(&self, e: rusqlite::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        }
    }
}

impl OffsetStore for SqliteOffsetStore {
    fn commit(
        &self,
        group: &str,
        offsets: &[(TopicPartition, CommittedOffset)],
    ) -> seglog::Result<()> {
        validate_offset_commit(group, offsets)?;
        let mut conn = self.conn.lock().unwrap();
        let mut staged = self.staged.lock().unwrap();
        let write = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for r in staged.iter() {
                tx.execute(
                    "INSERT INTO results (partition, source_offset, order_id, amount_cents)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![r.partition, r.offset as i64, r.order, r.amount_cents],
                )?;
            }
            for (tp, c) in offsets {
                tx.execute(
                    "INSERT INTO offsets (grp, topic, partition, next_offset, metadata)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (grp, topic, partition)
                     DO UPDATE SET next_offset = excluded.next_offset, metadata = excluded.metadata",
                    params![group, tp.topic, tp.partition, c.offset.get() as i64, c.metadata],
                )?;
            }
            tx.commit()
        };
        // On failure the transaction rolls back and the staged rows stay for the next try.
        write(&mut conn).map_err(|e| self.error(e))?;
        staged.clear();
        Ok(())
    }

    fn fetch(&self, group: &str, tp: &TopicPartition) -> seglog::Result<Option<CommittedOffset>> {
        validate_group_id(group)?;
        let conn = self.conn.lock().unwrap();
        conn.query_row(
            "SELECT next_offset, metadata FROM offsets WHERE grp = ?1 AND topic = ?2 AND partition = ?3",
            params![group, tp.topic, tp.partition],
            |row| {
                Ok(CommittedOffset::new(Offset(row.get::<_, i64>(0)? as u64))
                    .with_metadata(row.get::<_, String>(1)?))
            },
        )
        .optional()
        .map_err(|e| self.error(e))
    }

    fn fetch_group(&self, group: &str) -> seglog::Result<Vec<(TopicPartition, CommittedOffset)>> {
        validate_group_id(group)?;
        let conn = self.conn.lock().unwrap();
        let rows = (|| {
            let mut stmt = conn.prepare(
                "SELECT topic, partition, next_offset, metadata FROM offsets
                 WHERE grp = ?1 ORDER BY topic, partition",
            )?;
            let rows = stmt.query_map(params![group], |row| {
                Ok((
                    TopicPartition::new(row.get::<_, String>(0)?, row.get(1)?),
                    CommittedOffset::new(Offset(row.get::<_, i64>(2)? as u64))
                        .with_metadata(row.get::<_, String>(3)?),
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        rows.map_err(|e| self.error(e))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::var_os(CHILD_ENV) {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

/// Produce the input, run the consumer in a child process killed twice, verify the database.
fn parent() -> Result<(), Box<dyn std::error::Error>> {
    // The store keeps the OffsetStore contract: run the crate's conformance suite on it
    // (feature `testing`, enabled for the crate's examples and tests).
    seglog::testing::offset_store_conformance(|| {
        let conn = Connection::open_in_memory().expect("in-memory database");
        SqliteOffsetStore::with_connection(Path::new(":memory:"), conn).expect("schema")
    });
    println!("SqliteOffsetStore passes seglog::testing::offset_store_conformance");

    let dir = tempfile::tempdir()?;
    println!("working directory: {}", dir.path().display());
    {
        let store = LogStore::open(dir.path().join("log"), StoreConfig::default())?;
        let config = PartitionConfig::default().with_durability(Durability::NoSync);
        let topic = store.create_topic(
            TOPIC,
            TopicConfig::new(PARTITIONS).with_partition_config(config),
        )?;
        let orders: Vec<Record> = (0..RECORDS)
            .map(|i| Record::new(format!("{}", 100 + i % 900)).with_key(format!("order-{i}")))
            .collect();
        for chunk in orders.chunks(100) {
            topic.append(chunk)?;
        }
        store.close()?;
        println!("produced {RECORDS} orders to {PARTITIONS} partitions of {TOPIC:?}");
    }

    for (run, kill_at) in KILL_AT.iter().map(Some).chain([None]).enumerate() {
        let mut child = Command::new(std::env::current_exe()?)
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut last = 0;
        let mut killed = false;
        for line in stdout.lines() {
            let line = line?;
            if let Some(n) = line.strip_prefix("results ") {
                last = n.parse()?;
                if kill_at.is_some_and(|&k| last >= k) {
                    child.kill()?; // SIGKILL on Unix: no destructor, no cleanup runs
                    killed = true;
                    break;
                }
            } else {
                println!("  child: {line}");
            }
        }
        let status = child.wait()?;
        if killed {
            println!(
                "run {}: killed with SIGKILL after seeing {last} results stored ({status})",
                run + 1
            );
        } else {
            assert!(status.success(), "the last run must finish: {status}");
            println!("run {}: finished with {last} results stored", run + 1);
        }
    }

    verify(dir.path())
}

/// Every input record has exactly one result row, and the offsets point past the end.
fn verify(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let conn = Connection::open(dir.join("results.db"))?;
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))?;
    let duplicates: i64 = conn.query_row(
        "SELECT COUNT(*) FROM (SELECT 1 FROM results GROUP BY partition, source_offset HAVING COUNT(*) > 1)",
        [],
        |r| r.get(0),
    )?;
    let distinct_orders: i64 =
        conn.query_row("SELECT COUNT(DISTINCT order_id) FROM results", [], |r| {
            r.get(0)
        })?;
    println!("verification: {rows} result rows, {distinct_orders} distinct orders, {duplicates} duplicated inputs");
    assert_eq!(duplicates, 0, "an input record produced two results");
    assert_eq!(rows as usize, RECORDS, "an input record produced no result");
    assert_eq!(distinct_orders as usize, RECORDS);

    // Each partition's rows are exactly offsets 0..end, and the committed offset is end.
    let store = LogStore::open(dir.join("log"), StoreConfig::default())?;
    let offsets = SqliteOffsetStore::open(&dir.join("results.db"))?;
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(TOPIC, p);
        let end = store.partition(&tp)?.high_watermark().get();
        let mut stmt = conn.prepare(
            "SELECT source_offset FROM results WHERE partition = ?1 ORDER BY source_offset",
        )?;
        let got: Vec<u64> = stmt
            .query_map([p], |r| r.get::<_, i64>(0))?
            .map(|o| o.map(|o| o as u64))
            .collect::<rusqlite::Result<_>>()?;
        assert_eq!(got, (0..end).collect::<Vec<_>>(), "partition {p}");
        let committed = offsets.fetch(GROUP, &tp)?.expect("committed").offset.get();
        assert_eq!(committed, end, "partition {p}");
        println!("  {tp}: offsets 0..{end} each processed once, committed offset {committed}");
    }
    println!("exactly once: every order has exactly one result row");
    Ok(())
}

/// The consumer process: resume from the database, process, stage, commit; until caught up.
fn child(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let store = LogStore::open(dir.join("log"), StoreConfig::default())?;
    let offsets = Arc::new(SqliteOffsetStore::open(&dir.join("results.db"))?);
    let groups = Arc::new(GroupCoordinator::for_store(&store, offsets.clone()));
    let config = ConsumerConfig::default()
        .with_group_id(GROUP)
        .with_auto_commit(false)
        .with_auto_offset_reset(AutoOffsetReset::Earliest);
    let mut consumer = Consumer::new(&store, groups, config)?;
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(TOPIC, p))
        .collect();
    consumer.assign(partitions.clone())?;
    let resumed: Vec<String> = partitions
        .iter()
        .map(|tp| Ok(format!("{tp}@{}", consumer.position(tp)?)))
        .collect::<seglog::Result<_>>()?;
    println!("resuming from {}", resumed.join(", "));

    let mut stored: usize = {
        let conn = Connection::open(dir.join("results.db"))?;
        conn.query_row("SELECT COUNT(*) FROM results", [], |r| r.get::<_, i64>(0))? as usize
    };
    loop {
        let records = consumer.poll(25, Duration::from_millis(200))?;
        if records.is_empty() {
            let mut lag = 0;
            for tp in &partitions {
                lag += consumer.lag(tp)?;
            }
            if lag == 0 {
                break;
            }
            continue;
        }
        for r in &records {
            // "Processing": parse the amount, compute cents. Slow enough for the parent's kill
            // to land in the middle of the run.
            let amount: i64 =
                std::str::from_utf8(r.value.as_deref().unwrap_or_default())?.parse()?;
            std::thread::sleep(Duration::from_micros(200));
            offsets.stage(ResultRow {
                partition: r.partition,
                offset: r.offset.get(),
                order: String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                amount_cents: amount * 100,
            });
        }
        // Results and positions in one SQLite transaction.
        consumer.commit()?;
        stored += records.len();
        println!("results {stored}");
    }
    println!("caught up: {stored} results stored");
    Ok(())
}
