//! Fetching: records from the read-ahead or one new read per partition, position resolution
//! and reset, and waiting for data.

use std::time::{Duration, Instant};

use crate::client::consumer::config::AutoOffsetReset;
use crate::client::consumer::record::ConsumerRecord;
use crate::client::consumer::{Consumer, Mode, SeekTarget};
use crate::error::{Error, Result};
use crate::log::partition::ReadBatches;
use crate::offset::Offset;

impl Consumer {
    /// Take up to `max_records` from the partitions, round-robin.
    pub(super) fn fetch(&mut self, max_records: usize) -> Result<Vec<ConsumerRecord>> {
        let n = self.parts.len();
        let mut out = Vec::with_capacity(max_records.min(4096));
        // Where each partition stood, so that a failure returns nothing and loses nothing.
        let mut before = Vec::new();
        for k in 0..n {
            let i = (self.next_fetch + k) % n;
            before.push((i, self.parts[i].position, self.parts[i].pending_seek));
            let filled = if self.parts[i].paused {
                Ok(()) // paused: neither fetched nor resolved
            } else {
                self.fill(i, max_records - out.len(), &mut out)
            };
            if let Err(e) = filled {
                for (j, position, pending_seek) in before {
                    let part = &mut self.parts[j];
                    part.position = position;
                    part.pending_seek = pending_seek;
                    part.read_ahead.clear();
                }
                return Err(e);
            }
            if out.len() == max_records {
                self.next_fetch = (i + 1) % n;
                return Ok(out);
            }
        }
        if n > 0 {
            self.next_fetch = (self.next_fetch + 1) % n;
        }
        Ok(out)
    }

    /// Move up to `want` records of partition `i` into `out`: from what was read ahead, else
    /// from one new read. Batches are decoded as records are returned, straight into `out`.
    pub(super) fn fill(
        &mut self,
        i: usize,
        want: usize,
        out: &mut Vec<ConsumerRecord>,
    ) -> Result<()> {
        let mut position = self.resolve(i)?;
        let mut taken = 0;
        let mut read_once = false;
        while taken < want {
            let part = &mut self.parts[i];
            if let Some(records) = &mut part.read_ahead.current {
                match records.next() {
                    Some(Ok(r)) if r.offset < position => {}
                    Some(Ok(r)) => {
                        position = r.offset.next();
                        part.position = Some(position);
                        out.push(ConsumerRecord {
                            topic: part.topic.clone(),
                            partition: part.tp.partition,
                            offset: r.offset,
                            timestamp_ms: r.timestamp_ms,
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        });
                        taken += 1;
                    }
                    Some(Err(e)) => {
                        // Read again from the position next time (and meet the error again)
                        // rather than skip the rest of the batch.
                        part.read_ahead.clear();
                        return Err(e);
                    }
                    None => part.read_ahead.current = None,
                }
                continue;
            }
            if let Some(batch) = part.read_ahead.batches.pop_front() {
                if batch.header().is_control() {
                    // A transaction marker is never handed to the application: step over it.
                    position = position.max(batch.last_offset().next());
                    part.position = Some(position);
                    continue;
                }
                part.read_ahead.current = Some(batch.records());
                continue;
            }
            if read_once || taken > 0 {
                break;
            }
            read_once = true;
            let Some(read) = self.read_at(i, position)? else {
                break;
            };
            let part = &mut self.parts[i];
            if read.is_empty() {
                // Nothing up to the high watermark the read saw (compaction can leave such a
                // gap at the end of the log): move past it rather than read it again and again.
                part.position = Some(read.next_offset());
                break;
            }
            position = part.position.expect("resolved");
            part.read_ahead
                .batches
                .extend(read.batches().iter().cloned());
        }
        Ok(())
    }

    /// Read from `position`; a position outside the log is reset by policy and read again.
    /// `None` if the log moved out of range again in between (the next poll retries).
    pub(super) fn read_at(&mut self, i: usize, position: Offset) -> Result<Option<ReadBatches>> {
        let max_bytes = self.config.fetch_max_bytes;
        match self.parts[i].partition.read(position, max_bytes) {
            Err(Error::OffsetOutOfRange {
                offset,
                log_start_offset,
                high_watermark,
            }) => {
                let reset = match self.config.auto_offset_reset {
                    AutoOffsetReset::Earliest => log_start_offset,
                    AutoOffsetReset::Latest => high_watermark,
                    AutoOffsetReset::Error => {
                        return Err(Error::OffsetOutOfRange {
                            offset,
                            log_start_offset,
                            high_watermark,
                        })
                    }
                };
                self.parts[i].position = Some(reset);
                match self.parts[i].partition.read(reset, max_bytes) {
                    Err(Error::OffsetOutOfRange { .. }) => Ok(None),
                    other => other.map(Some),
                }
            }
            other => other.map(Some),
        }
    }

    /// The position of partition `i`, resolving it from a pending lazy seek, else the
    /// committed offset or the reset policy if unknown.
    pub(super) fn resolve(&mut self, i: usize) -> Result<Offset> {
        if let Some(position) = self.parts[i].position {
            return Ok(position);
        }
        let part = &mut self.parts[i];
        if let Some(target) = part.pending_seek.take() {
            let position = match target {
                SeekTarget::Beginning => part.partition.log_start_offset(),
                SeekTarget::End => part.partition.high_watermark(),
            };
            part.position = Some(position);
            return Ok(position);
        }
        let committed = match self.group_id() {
            Some(group) => self
                .groups
                .offset_store()
                .fetch(group, &self.parts[i].tp)?
                .map(|c| c.offset),
            None => None,
        };
        let part = &mut self.parts[i];
        let position = match (committed, self.config.auto_offset_reset) {
            (Some(offset), _) => {
                part.committed = Some(offset);
                offset
            }
            (None, AutoOffsetReset::Earliest) => part.partition.log_start_offset(),
            (None, AutoOffsetReset::Latest) => part.partition.high_watermark(),
            (None, AutoOffsetReset::Error) => {
                return Err(Error::NoOffsetForPartition {
                    topic_partition: part.tp.clone(),
                })
            }
        };
        part.position = Some(position);
        Ok(position)
    }

    /// Sleep until data may have arrived, at most `remaining`; see [`Consumer`]'s "Waiting".
    pub(super) fn wait(&mut self, remaining: Duration) {
        // Bounded so that `Instant + slice` cannot overflow; `poll` loops for longer timeouts.
        let mut slice = remaining.min(Duration::from_secs(60));
        if matches!(self.mode, Mode::Group(_)) {
            slice = slice
                .min(self.config.heartbeat_interval)
                .min(self.config.session_timeout / 3);
        }
        if self.parts.len() > 1 {
            slice = slice.min(self.config.poll_slice);
        }
        let waitable: Vec<usize> = (0..self.parts.len())
            .filter(|&i| !self.parts[i].paused)
            .collect();
        let target = if waitable.is_empty() {
            None
        } else {
            let i = waitable[self.next_wait % waitable.len()];
            self.next_wait = self.next_wait.wrapping_add(1);
            let p = &self.parts[i];
            p.position.map(|o| (p.partition.clone(), o))
        };
        let start = Instant::now();
        let arrived =
            target.is_some_and(|(partition, offset)| self.wake.wait_on(&partition, offset, slice));
        // Without data, the wait returns early only for a closed partition or a wakeup:
        // sleep out the slice (unless woken) rather than spin.
        if !arrived {
            if let Some(rest) = slice.checked_sub(start.elapsed()) {
                self.wake.sleep(rest);
            }
        }
    }
}
