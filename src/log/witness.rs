//! A segment's *batch witness* (`<base>.batches`): a CRC-checked list of every batch of (a
//! prefix of) the segment's log, each with its position, base offset and last offset delta.
//!
//! A batch's `baseOffset` lies outside its CRC (as in Kafka). Where offsets are dense that
//! does no harm: a batch moved by damage overlaps its neighbour or leaves a hole, and reads
//! and recovery see it. Where compaction left gaps, a moved batch can land inside a gap and
//! read as valid. The witness is the second record that confirms each batch's offsets there:
//! every batch of the log before `log_len` must sit at a position the witness lists, with
//! the base offset and last offset it lists; after `log_len` offsets continue densely from
//! `next_offset`. A segment without a witness is dense from its base offset. See
//! `docs/format.md` ("Batch witness") for the layout and the rules, and `docs/design.md` for
//! what is promised for directories Kafka wrote.

use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::batch::BatchHeader;
use crate::format::crc::crc32c;
use crate::io::fs::{Fs, OpenFlags};

/// Extension of batch witness files.
pub const WITNESS_EXT: &str = "batches";

const MAGIC: &[u8; 4] = b"SLBW";
const VERSION: u32 = 1;
/// Magic, version, base offset, log length, next offset, entry count.
const HEADER_LEN: usize = 4 + 4 + 8 + 8 + 8 + 4;
const ENTRY_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// One batch as the witness records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WitnessEntry {
    /// Byte position of the batch in the log.
    pub position: u32,
    /// Base offset minus the segment's base offset.
    pub relative_base: u32,
    /// The batch's `lastOffsetDelta`.
    pub last_offset_delta: u32,
}

impl WitnessEntry {
    /// The entry for `h` at `position` in the segment with base offset `base`; `None` if the
    /// batch's offsets do not fit (a scan never accepts such a batch).
    pub fn of(h: &BatchHeader, position: u64, base: u64) -> Option<Self> {
        Some(WitnessEntry {
            position: u32::try_from(position).ok()?,
            relative_base: u32::try_from(h.base_offset.checked_sub(base)?).ok()?,
            last_offset_delta: h.last_offset_delta,
        })
    }

    fn relative_last(self) -> u64 {
        u64::from(self.relative_base) + u64::from(self.last_offset_delta)
    }
}

/// The batch witness of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Witness {
    base: u64,
    log_len: u64,
    next_offset: u64,
    entries: Vec<WitnessEntry>,
}

impl Witness {
    /// The witness of the first `log_len` bytes of segment `base`, which hold the batches
    /// `entries`; offsets continue at `next_offset` after them.
    pub fn new(base: u64, entries: Vec<WitnessEntry>, log_len: u64, next_offset: u64) -> Self {
        Witness {
            base,
            log_len,
            next_offset,
            entries,
        }
    }

    /// Bytes of the log the entries cover.
    pub fn log_len(&self) -> u64 {
        self.log_len
    }

    /// Whether the witness says nothing a dense segment would not: the batches start at the
    /// base and each follows the previous one exactly, up to `next_offset`.
    pub fn is_dense(&self) -> bool {
        let mut expected = 0u64;
        for e in &self.entries {
            if u64::from(e.relative_base) != expected {
                return false;
            }
            expected = e.relative_last() + 1;
        }
        self.base + expected == self.next_offset
    }

    /// Whether a batch at `position` with offsets `[base_offset, last_offset]` is the one
    /// the witness lists there. Only meaningful below `log_len`.
    pub fn confirms(&self, position: u64, base_offset: u64, last_offset: u64) -> bool {
        let Ok(i) = self
            .entries
            .binary_search_by_key(&position, |e| u64::from(e.position))
        else {
            return false;
        };
        let e = self.entries[i];
        base_offset.checked_sub(self.base) == Some(u64::from(e.relative_base))
            && last_offset.checked_sub(self.base) == Some(e.relative_last())
    }

    /// Where offsets continue after a batch ending at byte `position_after` whose last offset
    /// is `last_offset`: the witness's `next_offset` where its coverage ends there, else
    /// `last_offset + 1`.
    pub fn next_after(&self, position_after: u64, last_offset: u64) -> u64 {
        if position_after == self.log_len {
            self.next_offset
        } else {
            last_offset + 1
        }
    }

    /// This witness applied to a log of `size` bytes, or `None` if it does not describe that
    /// log: it covers all of it (and, for a sealed segment ending at `sealed_end`, ends
    /// there), or a prefix (the rest is dense), or more of it than exists only where a batch
    /// boundary it lists is at `size` (the log was cut there, by truncation or recovery:
    /// offsets continue right after the last batch kept, where the log end then is).
    pub fn fitted(mut self, size: u64, sealed_end: Option<u64>) -> Option<Self> {
        if self.log_len > size {
            let i = self
                .entries
                .binary_search_by_key(&size, |e| u64::from(e.position))
                .ok()?;
            self.entries.truncate(i);
            self.next_offset = self.batches_end();
            self.log_len = size;
        }
        let whole = self.log_len == size;
        if whole && sealed_end.is_some_and(|end| end != self.next_offset) {
            return None;
        }
        Some(self)
    }

    /// One past the last offset of the last batch listed (the base offset if none).
    fn batches_end(&self) -> u64 {
        self.base + self.entries.last().map_or(0, |e| e.relative_last() + 1)
    }

    /// This witness for a log cut at `size` bytes whose offsets now end at `end`: a
    /// `truncate_to` that lands in the offsets compaction left empty after a segment's last
    /// batch keeps every batch but not those offsets. `None` if `size` is not a batch
    /// boundary or `end` lies inside a kept batch or past the old end. A cut past the bytes
    /// the witness covers (in the dense appends after them) leaves it as it is.
    pub fn cut(self, size: u64, end: u64) -> Option<Self> {
        if size > self.log_len {
            return (end >= self.next_offset).then_some(self);
        }
        let mut w = self.fitted(size, None)?;
        let kept_end = w.batches_end();
        if end < kept_end || end > w.next_offset {
            return None;
        }
        w.next_offset = end;
        Some(w)
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN + CRC_LEN);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.base.to_le_bytes());
        b.extend_from_slice(&self.log_len.to_le_bytes());
        b.extend_from_slice(&self.next_offset.to_le_bytes());
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        b.extend_from_slice(&count.to_le_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.position.to_le_bytes());
            b.extend_from_slice(&e.relative_base.to_le_bytes());
            b.extend_from_slice(&e.last_offset_delta.to_le_bytes());
        }
        let crc = crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parse a witness file of segment `base`; `None` if it is damaged or inconsistent (CRC,
    /// magic, version, length, base offset, entries out of order or beyond their bounds).
    pub fn decode(bytes: &[u8], base: u64) -> Option<Self> {
        let body_len = bytes.len().checked_sub(CRC_LEN)?;
        let (body, crc) = bytes.split_at(body_len);
        if body.len() < HEADER_LEN
            || &body[..4] != MAGIC
            || crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?)
        {
            return None;
        }
        let u32_at = |at: usize| Some(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?));
        let count = u32_at(32)? as usize;
        if u32_at(4)? != VERSION
            || u64_at(8)? != base
            || body.len() != HEADER_LEN + count.checked_mul(ENTRY_LEN)?
        {
            return None;
        }
        let entries = (0..count)
            .map(|i| {
                let at = HEADER_LEN + i * ENTRY_LEN;
                Some(WitnessEntry {
                    position: u32_at(at)?,
                    relative_base: u32_at(at + 4)?,
                    last_offset_delta: u32_at(at + 8)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let w = Witness::new(base, entries, u64_at(16)?, u64_at(24)?);
        w.consistent().then_some(w)
    }

    /// Entries in order (positions and offsets increasing, the first at byte 0), inside the
    /// covered bytes, and `next_offset` after the last one.
    fn consistent(&self) -> bool {
        let mut min_pos = 0u64;
        let mut min_rel = 0u64;
        for (i, e) in self.entries.iter().enumerate() {
            let pos = u64::from(e.position);
            let ok_pos = if i == 0 { pos == 0 } else { pos > min_pos };
            if !ok_pos || pos >= self.log_len || u64::from(e.relative_base) < min_rel {
                return false;
            }
            (min_pos, min_rel) = (pos, e.relative_last() + 1);
        }
        (self.entries.is_empty() || self.log_len > 0)
            && self
                .base
                .checked_add(min_rel)
                .is_some_and(|end| end <= self.next_offset)
    }

    /// Read the witness of segment `base` at `path`: `None` if there is none or it is
    /// damaged (then the segment is held to dense offsets, see the module docs).
    pub fn load(fs: &Fs, path: &Path, base: u64) -> Result<Option<Self>> {
        match fs.read(path) {
            Ok(bytes) => Ok(Witness::decode(&bytes, base)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::error::Error::io(path, e)),
        }
    }

    /// Write the witness to `path` (created or truncated) and fsync it. The caller makes the
    /// name durable (directory fsync), and writes to a temporary name first where an old
    /// witness must survive a crash.
    pub fn write_to(&self, fs: &Fs, path: &Path) -> Result<()> {
        let f = fs.open(path, OpenFlags::CREATE_TRUNCATE).at(path)?;
        f.write_all_at(&self.encode(), 0).at(path)?;
        f.sync_all().at(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(position: u32, relative_base: u32, last_offset_delta: u32) -> WitnessEntry {
        WitnessEntry {
            position,
            relative_base,
            last_offset_delta,
        }
    }

    fn sample() -> Witness {
        Witness::new(100, vec![e(0, 2, 1), e(80, 7, 0), e(150, 9, 3)], 230, 120)
    }

    #[test]
    fn roundtrip_and_every_flip_is_refused() {
        let w = sample();
        let bytes = w.encode();
        assert_eq!(Witness::decode(&bytes, 100), Some(w.clone()));
        assert_eq!(Witness::decode(&bytes, 101), None, "another segment's");
        for i in 0..bytes.len() {
            for mask in [1u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= mask;
                assert_eq!(Witness::decode(&b, 100), None, "byte {i} mask {mask:#x}");
            }
        }
        assert_eq!(Witness::decode(&bytes[..bytes.len() - 1], 100), None);
        assert_eq!(Witness::decode(&[], 100), None);
    }

    #[test]
    fn confirms_only_the_listed_batches() {
        let w = sample();
        assert!(w.confirms(0, 102, 103));
        assert!(w.confirms(80, 107, 107));
        assert!(!w.confirms(80, 108, 108), "moved within the gap");
        assert!(!w.confirms(81, 107, 107), "not a listed position");
        assert!(!w.confirms(150, 109, 111), "shorter");
        assert_eq!(w.next_after(230, 112), 120);
        assert_eq!(w.next_after(80, 103), 104);
        assert!(!w.is_dense());
        let dense = Witness::new(10, vec![e(0, 0, 4), e(70, 5, 0)], 131, 16);
        assert!(dense.is_dense());
    }

    #[test]
    fn fitted_to_the_log() {
        let w = sample();
        assert_eq!(w.clone().fitted(230, Some(120)), Some(w.clone()));
        assert_eq!(w.clone().fitted(230, Some(121)), None, "another end");
        assert_eq!(w.clone().fitted(300, None).map(|w| w.log_len), Some(230));
        // Cut at a batch boundary: a prefix; offsets continue right after its last batch.
        let cut = w.clone().fitted(80, None).unwrap();
        assert_eq!(
            (cut.log_len, cut.next_offset, cut.entries.len()),
            (80, 104, 1)
        );
        let none_left = w.clone().fitted(0, None).unwrap();
        assert_eq!((none_left.log_len, none_left.next_offset), (0, 100));
        assert_eq!(
            w.clone().fitted(81, None),
            None,
            "not a boundary: not this log"
        );
    }

    #[test]
    fn cut_lowers_the_end_of_trailing_empty_offsets() {
        let w = sample();
        // Every batch kept, the empty offsets after the last one cut.
        let cut = w.clone().cut(230, 115).unwrap();
        assert_eq!((cut.log_len, cut.next_offset), (230, 115));
        let prefix = w.clone().cut(80, 104).unwrap();
        assert_eq!(
            (prefix.log_len, prefix.next_offset, prefix.entries.len()),
            (80, 104, 1)
        );
        assert_eq!(w.clone().cut(80, 103), None, "inside a kept batch");
        assert_eq!(w.clone().cut(230, 121), None, "past the old end");
        assert_eq!(w.clone().cut(81, 104), None, "not a boundary");
        // Past the witnessed bytes the log is dense: the witness stays as it was.
        assert_eq!(w.clone().cut(400, 130), Some(w.clone()));
        assert_eq!(
            w.cut(400, 119),
            None,
            "dense appends end before the witness does"
        );
    }
}
