//! Quickstart: append records to a partition in a temporary directory, read them back, reopen.
//!
//! Run with `cargo run --example quickstart`.

use std::time::Duration;

use seglog::{Offset, Partition, PartitionConfig, Record};

fn main() -> seglog::Result<()> {
    let dir = tempfile::tempdir().expect("temporary directory");
    println!("partition directory: {}", dir.path().display());

    // Defaults: 1 GiB segments, fsync on every append (group commit), 7-day retention.
    let config = PartitionConfig::default().with_segment_bytes(64 * 1024);
    let partition = Partition::open(dir.path(), config.clone())?;

    // One append call is one batch; offsets are dense and start at 0.
    let first = partition.append(&[
        Record::new("hello").with_key("greeting"),
        Record::new("world").with_key("greeting"),
    ])?;
    println!(
        "appended offsets {}..={}",
        first.base_offset, first.last_offset
    );
    for i in 0..1_000 {
        partition
            .append(&[Record::new(format!("event {i}")).with_header("source", "quickstart")])?;
    }
    println!(
        "log end offset {}, {} segments on disk",
        partition.log_end_offset(),
        partition.segment_count()
    );

    // Read from any offset: whole batches come back, records are zero-copy `Bytes` slices.
    let read = partition.read(Offset(500), 4096)?;
    for record in read.records().take(3) {
        let record = record?;
        println!(
            "offset {} value {:?}",
            record.offset,
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
        );
    }

    // Tail-follow: wait for an offset that does not exist yet.
    let next = partition.log_end_offset();
    println!(
        "waiting 50 ms for offset {next}: {}",
        partition.wait_for(next, Duration::from_millis(50))
    );

    // Close cleanly and reopen: the clean-shutdown marker lets open skip recovery.
    partition.close()?;
    drop(partition);
    let reopened = Partition::open(dir.path(), config)?;
    println!(
        "reopened: clean shutdown {}, log end offset {}",
        reopened.recovery_report().clean_shutdown,
        reopened.log_end_offset()
    );
    let first_record = reopened
        .read(Offset(0), 1)?
        .records()
        .next()
        .expect("one record")?;
    println!("offset 0 after reopen: {:?}", first_record.value);
    Ok(())
}
