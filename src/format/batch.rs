//! The record batch: seglog's unit of storage, CRC and I/O. Pure bytes, no files.
//!
//! One `append` call becomes one batch. Layout (all integers little-endian; see
//! `docs/format.md` for the full description):
//!
//! ```text
//! offset size field
//!  0     8    base_offset        u64  offset of the first record
//!  8     4    batch_length       u32  bytes after this field (total size - 12)
//! 12     4    crc                u32  CRC-32 (IEEE) of bytes [16, 12 + batch_length)
//! 16     1    format_version     u8   = 1
//! 17     2    attributes         u16  bit 0: rewritten by compaction; others 0
//! 19     4    leader_epoch       i32  -1 when unknown
//! 23     4    last_offset_delta  u32  last record's offset - base_offset
//! 27     8    first_timestamp    i64  first record's timestamp (ms)
//! 35     8    max_timestamp      i64  largest record timestamp (ms)
//! 43     8    producer_id        i64  -1 when none
//! 51     2    producer_epoch     i16  -1 when none
//! 53     4    base_sequence      i32  -1 when none
//! 57     4    record_count       u32
//! 61     ..   records            record_count varint-encoded records
//! ```
//!
//! Each record: `length` (varint, bytes after itself), `attributes` (u8, 0),
//! `timestamp_delta` (varlong, from `first_timestamp`), `offset_delta` (varint),
//! `key_length` (varint, -1 = null), key, `value_length` (varint, -1 = null), value,
//! `header_count` (varint), then per header `key_length`, key, `value_length`, value.
//!
//! The base offset sits before the CRC so it can be assigned under the append lock after the
//! batch was encoded and checksummed outside it (Kafka does the same); recovery checks it
//! against the offsets around it instead.

use std::path::PathBuf;

use bytes::Bytes;

use crate::error::{CorruptKind, Error, Result};
use crate::format::record::{Header, LogRecord, Record};
use crate::format::varint;
use crate::offset::Offset;

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Hard limit on one batch's total size, whatever the configuration says: segment file
/// positions are `u32`, and no length read from disk may ask for more.
pub const BATCH_BYTES_LIMIT: usize = 64 << 20;
/// Smallest possible encoded record: length, attributes, two deltas, two null lengths and a
/// header count, one byte each.
const RECORD_LEN_MIN: usize = 7;
/// Hard limit on records in one batch (bounded by the smallest record in the largest batch).
pub const RECORDS_PER_BATCH_LIMIT: usize = BATCH_BYTES_LIMIT / RECORD_LEN_MIN;

/// Attribute bit: the batch was rewritten by compaction. Its records' offsets may have gaps,
/// and so may the offsets between it and the batch before it.
pub(crate) const ATTR_COMPACTED: u16 = 1;
/// Attribute bits this version knows; a batch with any other bit set is rejected.
const ATTR_KNOWN: u16 = ATTR_COMPACTED;

/// Bytes before `batch_length` counts: base offset and the length itself.
pub(crate) const LENGTH_PREFIX_LEN: usize = 12;
const CRC_START: usize = 16;

/// Replication and idempotence metadata stamped into a batch header.
///
/// Start from [`BatchMeta::default`] (every field -1: none) and set what you know with the
/// `with_*` methods; the struct is `#[non_exhaustive]` because the format will grow fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchMeta {
    /// Leader epoch that wrote the batch; -1 when unknown.
    pub leader_epoch: i32,
    /// Producer id for idempotence; -1 when none.
    pub producer_id: i64,
    /// Producer epoch; -1 when none.
    pub producer_epoch: i16,
    /// Sequence number of the first record; -1 when none.
    pub base_sequence: i32,
}

impl Default for BatchMeta {
    fn default() -> Self {
        BatchMeta {
            leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

impl BatchMeta {
    /// With the leader epoch that wrote the batch.
    #[must_use]
    pub fn with_leader_epoch(mut self, leader_epoch: i32) -> Self {
        self.leader_epoch = leader_epoch;
        self
    }

    /// With an idempotent producer's id, epoch and the sequence number of the first record.
    #[must_use]
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }
}

/// The decoded fixed header of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Bytes after the length field.
    pub batch_length: u32,
    /// Stored CRC-32.
    pub crc: u32,
    /// Format version.
    pub format_version: u8,
    /// Reserved attribute bits.
    pub attributes: u16,
    /// Leader epoch, -1 when unknown.
    pub leader_epoch: i32,
    /// Last record's offset minus `base_offset`.
    pub last_offset_delta: u32,
    /// First record's timestamp.
    pub first_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Producer id, -1 when none.
    pub producer_id: i64,
    /// Producer epoch, -1 when none.
    pub producer_epoch: i16,
    /// Base sequence, -1 when none.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: u32,
}

impl BatchHeader {
    /// Total encoded size of the batch in bytes.
    pub fn total_len(&self) -> usize {
        LENGTH_PREFIX_LEN + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// True when compaction rewrote this batch (bit 0 of the attributes, see `docs/format.md`).
    pub fn is_compacted(&self) -> bool {
        self.attributes & ATTR_COMPACTED != 0
    }

    /// Whether this batch may follow a log whose next offset is `expected`: offsets are
    /// dense (`base_offset == expected`) except where compaction removed whole batches.
    pub fn follows(&self, expected: u64) -> bool {
        self.base_offset == expected || (self.is_compacted() && self.base_offset > expected)
    }

    /// Parse the fixed header from the front of `buf` and check what can be checked without
    /// the rest of the batch: length bounds, version, counts. Never reads past `buf`.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
        let h = buf.get(..BATCH_HEADER_LEN).ok_or(CorruptKind::Truncated)?;
        let header = BatchHeader {
            base_offset: le_u64(h, 0),
            batch_length: le_u32(h, 8),
            crc: le_u32(h, 12),
            format_version: h[16],
            attributes: u16::from_le_bytes([h[17], h[18]]),
            leader_epoch: le_u32(h, 19) as i32,
            last_offset_delta: le_u32(h, 23),
            first_timestamp: le_u64(h, 27) as i64,
            max_timestamp: le_u64(h, 35) as i64,
            producer_id: le_u64(h, 43) as i64,
            producer_epoch: i16::from_le_bytes([h[51], h[52]]),
            base_sequence: le_u32(h, 53) as i32,
            record_count: le_u32(h, 57),
        };
        let total = header.total_len();
        if !(BATCH_HEADER_LEN..=BATCH_BYTES_LIMIT).contains(&total) {
            return Err(CorruptKind::BadLength);
        }
        if header.format_version != FORMAT_VERSION || header.attributes & !ATTR_KNOWN != 0 {
            return Err(CorruptKind::BadVersion);
        }
        let count = header.record_count as usize;
        let room = (total - BATCH_HEADER_LEN) / RECORD_LEN_MIN;
        if count == 0
            || count > room
            || u64::from(header.last_offset_delta) + 1 < count as u64
            || header.max_timestamp < header.first_timestamp
            || header
                .base_offset
                .checked_add(u64::from(header.last_offset_delta))
                .is_none()
        {
            return Err(CorruptKind::BadRecords);
        }
        Ok(header)
    }
}

#[inline]
fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// CRC-32 of a batch's checksummed range.
#[inline]
fn batch_crc(batch: &[u8]) -> u32 {
    crc32fast::hash(&batch[CRC_START..])
}

/// Limits applied while encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeLimits {
    pub record_bytes_max: usize,
    pub batch_bytes_max: usize,
}

/// Encode `records` as one batch with base offset 0 (patch it with [`set_base_offset`]).
pub(crate) fn encode_batch(
    records: &[Record],
    meta: &BatchMeta,
    limits: EncodeLimits,
) -> Result<Vec<u8>> {
    if records.len() > RECORDS_PER_BATCH_LIMIT {
        return Err(Error::TooManyRecords {
            count: records.len(),
            limit: RECORDS_PER_BATCH_LIMIT,
        });
    }
    let frame = Frame {
        base_offset: 0,
        attributes: 0,
        last_offset_delta: u32::try_from(records.len().saturating_sub(1))
            .expect("bounded by the record limit"),
        meta: *meta,
        timestamps: None,
    };
    encode(records, |i| i as u32, &frame, limits)
}

/// Re-encode the records of batch `original` that compaction keeps (`kept`, in offset order,
/// all inside the batch's range). Base offset, last offset delta, leader epoch and producer
/// fields and the first and max timestamps stay as they were (the timestamps then bound the
/// kept records rather than equal theirs); the batch is marked [`ATTR_COMPACTED`]: its
/// records' offsets may have gaps, and so may the offsets before it.
pub(crate) fn encode_compacted(original: &BatchHeader, kept: &[LogRecord]) -> Vec<u8> {
    let frame = Frame {
        base_offset: original.base_offset,
        attributes: original.attributes | ATTR_COMPACTED,
        last_offset_delta: original.last_offset_delta,
        meta: BatchMeta {
            leader_epoch: original.leader_epoch,
            producer_id: original.producer_id,
            producer_epoch: original.producer_epoch,
            base_sequence: original.base_sequence,
        },
        // The original timestamps stay the delta base and the bounds: every kept record then
        // encodes to exactly its original bytes, so the subset can never outgrow the batch.
        timestamps: Some((original.first_timestamp, original.max_timestamp)),
    };
    let records: Vec<Record> = kept
        .iter()
        .map(|r| Record {
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp_ms: r.timestamp_ms,
        })
        .collect();
    let delta = |i: usize| {
        u32::try_from(kept[i].offset.0 - original.base_offset).expect("inside the batch")
    };
    let limits = EncodeLimits {
        record_bytes_max: usize::MAX / 2,
        batch_bytes_max: BATCH_BYTES_LIMIT,
    };
    encode(&records, delta, &frame, limits).expect("a subset of a valid batch encodes")
}

/// The header fields an encoder is given rather than derives from the records.
struct Frame {
    base_offset: u64,
    attributes: u16,
    last_offset_delta: u32,
    meta: BatchMeta,
    /// `(first, max)` timestamps to keep instead of deriving them from the records.
    timestamps: Option<(i64, i64)>,
}

fn encode(
    records: &[Record],
    offset_delta: impl Fn(usize) -> u32,
    frame: &Frame,
    limits: EncodeLimits,
) -> Result<Vec<u8>> {
    let first = records.first().ok_or(Error::EmptyBatch)?;
    let (first_timestamp, max_timestamp) = frame.timestamps.unwrap_or_else(|| {
        let max = records.iter().map(|r| r.timestamp_ms).max();
        (first.timestamp_ms, max.unwrap_or(first.timestamp_ms))
    });
    let batch_limit = limits.batch_bytes_max.min(BATCH_BYTES_LIMIT);

    // Payload plus the worst case of varint overhead per record: one allocation, no regrowth.
    let capacity = BATCH_HEADER_LEN + estimate_rest(records) + records.len() * 24;
    let mut out = Vec::with_capacity(capacity.min(batch_limit + 64));
    out.resize(BATCH_HEADER_LEN, 0);
    for (i, record) in records.iter().enumerate() {
        encode_record(
            &mut out,
            record,
            first_timestamp,
            offset_delta(i),
            limits.record_bytes_max,
        )?;
        if out.len() > batch_limit {
            return Err(Error::BatchTooLarge {
                size: out.len() + estimate_rest(&records[i + 1..]),
                limit: batch_limit,
            });
        }
    }
    let batch_length = u32::try_from(out.len() - LENGTH_PREFIX_LEN).expect("bounded");
    let meta = &frame.meta;
    out[0..8].copy_from_slice(&frame.base_offset.to_le_bytes());
    out[8..12].copy_from_slice(&batch_length.to_le_bytes());
    out[16] = FORMAT_VERSION;
    out[17..19].copy_from_slice(&frame.attributes.to_le_bytes());
    out[19..23].copy_from_slice(&meta.leader_epoch.to_le_bytes());
    out[23..27].copy_from_slice(&frame.last_offset_delta.to_le_bytes());
    out[27..35].copy_from_slice(&first_timestamp.to_le_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_le_bytes());
    out[43..51].copy_from_slice(&meta.producer_id.to_le_bytes());
    out[51..53].copy_from_slice(&meta.producer_epoch.to_le_bytes());
    out[53..57].copy_from_slice(&meta.base_sequence.to_le_bytes());
    out[57..61].copy_from_slice(&(records.len() as u32).to_le_bytes());
    let crc = batch_crc(&out);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    // Paired assertion: what we are about to write must pass the reader's checks.
    debug_assert!(check_batch(&out).is_ok());
    Ok(out)
}

fn estimate_rest(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| {
            let headers: usize = r
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, bytes::Bytes::len) + 10)
                .sum();
            r.key.as_ref().map_or(0, bytes::Bytes::len)
                + r.value.as_ref().map_or(0, bytes::Bytes::len)
                + headers
        })
        .sum()
}

fn opt_len(b: Option<&Bytes>) -> i32 {
    // Lengths are bounded by the record limit, checked before encoding.
    b.map_or(-1, |b| b.len() as i32)
}

fn encode_record(
    out: &mut Vec<u8>,
    r: &Record,
    first_timestamp: i64,
    offset_delta: u32,
    record_bytes_max: usize,
) -> Result<()> {
    let payload = r.key.as_ref().map_or(0, bytes::Bytes::len)
        + r.value.as_ref().map_or(0, bytes::Bytes::len)
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.as_ref().map_or(0, bytes::Bytes::len))
            .sum::<usize>();
    if payload > record_bytes_max {
        return Err(Error::RecordTooLarge {
            size: payload,
            limit: record_bytes_max,
        });
    }
    let ts_delta = r.timestamp_ms.wrapping_sub(first_timestamp);
    let offset_delta = i32::try_from(offset_delta).expect("offset deltas fit in i32");
    let mut body = 1 + varint::len_i64(ts_delta) + varint::len_i32(offset_delta);
    for field in [&r.key, &r.value] {
        body +=
            varint::len_i32(opt_len(field.as_ref())) + field.as_ref().map_or(0, bytes::Bytes::len);
    }
    body += varint::len_i32(r.headers.len() as i32);
    for h in &r.headers {
        body += varint::len_i32(h.key.len() as i32) + h.key.len();
        body += varint::len_i32(opt_len(h.value.as_ref()))
            + h.value.as_ref().map_or(0, bytes::Bytes::len);
    }
    let total = body + varint::len_i32(body as i32);
    if total > record_bytes_max.saturating_add(64) {
        return Err(Error::RecordTooLarge {
            size: total,
            limit: record_bytes_max,
        });
    }
    out.reserve(total);
    let start = out.len();
    // The fixed fields go through a stack buffer: one copy instead of a push per byte.
    let mut head = varint::Scratch::new();
    head.put_i32(body as i32);
    head.put_u8(0);
    head.put_i64(ts_delta);
    head.put_i32(offset_delta);
    put_opt(out, &mut head, r.key.as_ref());
    put_opt(out, &mut head, r.value.as_ref());
    head.put_i32(r.headers.len() as i32);
    for h in &r.headers {
        if !head.has_room() {
            head.flush_into(out);
        }
        head.put_i32(h.key.len() as i32);
        head.flush_into(out);
        out.extend_from_slice(&h.key);
        put_opt(out, &mut head, h.value.as_ref());
    }
    head.flush_into(out);
    debug_assert_eq!(out.len() - start, total);
    Ok(())
}

/// Gather `b`'s length in `head`; a present value flushes `head` and is copied after it.
fn put_opt(out: &mut Vec<u8>, head: &mut varint::Scratch, b: Option<&Bytes>) {
    if !head.has_room() {
        head.flush_into(out);
    }
    head.put_i32(opt_len(b));
    if let Some(b) = b {
        head.flush_into(out);
        out.extend_from_slice(b);
    }
}

/// Write `base_offset` into an encoded batch.
pub(crate) fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&base_offset.to_le_bytes());
}

/// Full check of one batch at the front of `buf`: header, length within `buf`, CRC, and every
/// record's structure. Returns the header; the batch occupies `header.total_len()` bytes.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = check_crc(buf)?;
    let mut it = RecordsIter::new(&buf[..header.total_len()], &header);
    for r in &mut it {
        r?;
    }
    Ok(header)
}

/// Header plus CRC check of the batch at the front of `buf` (records are not walked).
pub(crate) fn check_crc(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = BatchHeader::parse(buf)?;
    let batch = buf
        .get(..header.total_len())
        .ok_or(CorruptKind::Truncated)?;
    if batch_crc(batch) != header.crc {
        return Err(CorruptKind::Crc);
    }
    Ok(header)
}

/// A whole batch read from the log (or decoded from a buffer), CRC-checked, holding its bytes.
///
/// Records are decoded lazily by [`Batch::records`]; their keys, values and headers are slices
/// of this batch's buffer.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Decode and CRC-check the batch at the front of `bytes`. Trailing bytes are ignored;
    /// [`Batch::encoded_len`] says how many were used. Arbitrary input yields an error, never
    /// a panic.
    pub fn decode(bytes: Bytes) -> Result<Batch> {
        let header = check_crc(&bytes).map_err(|reason| Error::Corrupt {
            path: PathBuf::default(),
            position: 0,
            reason,
        })?;
        let bytes = bytes.slice(..header.total_len());
        Ok(Batch { header, bytes })
    }

    pub(crate) fn from_checked(header: BatchHeader, bytes: Bytes) -> Batch {
        debug_assert_eq!(header.total_len(), bytes.len());
        Batch { header, bytes }
    }

    /// The fixed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> Offset {
        Offset(self.header.base_offset)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> Offset {
        Offset(self.header.last_offset())
    }

    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }

    /// Largest record timestamp in the batch.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Size of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    /// The encoded batch, exactly as stored.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Iterate over the records. Each item is an error if the record bytes are malformed
    /// (possible only if something wrote a bad batch with a matching CRC); iteration stops after
    /// the first error.
    pub fn records(&self) -> Records {
        Records {
            bytes: self.bytes.clone(),
            inner: RecordCursor::new(&self.header, self.bytes.len()),
        }
    }
}

/// Iterator over a batch's records, yielding zero-copy [`LogRecord`]s.
#[derive(Debug, Clone)]
pub struct Records {
    bytes: Bytes,
    inner: RecordCursor,
}

impl Iterator for Records {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = &self.bytes;
        self.inner.next_record(bytes).map(|r| {
            r.map(|raw| raw.into_record(bytes))
                .map_err(|reason| Error::Corrupt {
                    path: PathBuf::default(),
                    position: 0,
                    reason,
                })
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.inner.remaining as usize;
        (0, Some(left))
    }
}

/// Decoding state over a batch's record section; positions index the batch bytes.
#[derive(Debug, Clone)]
struct RecordCursor {
    pos: usize,
    end: usize,
    remaining: u32,
    base_offset: u64,
    last_offset_delta: u32,
    first_timestamp: i64,
    prev_delta: Option<u32>,
    failed: bool,
}

/// A byte range `[start, end)` into a batch.
type Span = (usize, usize);

/// One record's fields as byte ranges into the batch.
struct RawRecord {
    offset: u64,
    timestamp: i64,
    key: Option<Span>,
    value: Option<Span>,
    headers: Vec<(Span, Option<Span>)>,
}

impl RawRecord {
    fn into_record(self, bytes: &Bytes) -> LogRecord {
        let slice = |(s, e): (usize, usize)| bytes.slice(s..e);
        LogRecord {
            offset: Offset(self.offset),
            timestamp_ms: self.timestamp,
            key: self.key.map(slice),
            value: self.value.map(slice),
            headers: if self.headers.is_empty() {
                Vec::new()
            } else {
                self.headers
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: slice(k),
                        value: v.map(slice),
                    })
                    .collect()
            },
        }
    }
}

impl RecordCursor {
    fn new(header: &BatchHeader, len: usize) -> Self {
        RecordCursor {
            pos: BATCH_HEADER_LEN,
            end: len.min(header.total_len()),
            remaining: header.record_count,
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
            first_timestamp: header.first_timestamp,
            prev_delta: None,
            failed: false,
        }
    }

    fn next_record(&mut self, buf: &[u8]) -> Option<Result<RawRecord, CorruptKind>> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.end {
                self.failed = true;
                return Some(Err(CorruptKind::BadRecords));
            }
            return None;
        }
        let r = self.decode_one(buf);
        match &r {
            Ok(_) => self.remaining -= 1,
            Err(_) => self.failed = true,
        }
        Some(r)
    }

    fn decode_one(&mut self, buf: &[u8]) -> Result<RawRecord, CorruptKind> {
        let bad = CorruptKind::BadRecords;
        let buf = buf.get(..self.end).ok_or(bad)?;
        let mut p = self.pos;
        let body_len = take_i32(buf, &mut p)?;
        let body_len = usize::try_from(body_len).map_err(|_| bad)?;
        let record_end = p
            .checked_add(body_len)
            .filter(|&e| e <= buf.len())
            .ok_or(bad)?;
        let body = &buf[..record_end];
        let _attributes = *body.get(p).ok_or(bad)?;
        p += 1;
        let ts_delta = take_i64(body, &mut p)?;
        let offset_delta = u32::try_from(take_i32(body, &mut p)?).map_err(|_| bad)?;
        if offset_delta > self.last_offset_delta
            || self.prev_delta.is_some_and(|d| offset_delta <= d)
        {
            return Err(bad);
        }
        let key = take_opt(body, &mut p)?;
        let value = take_opt(body, &mut p)?;
        let header_count = usize::try_from(take_i32(body, &mut p)?).map_err(|_| bad)?;
        // Each header takes at least two bytes: bound the count before allocating.
        if header_count > (record_end - p) / 2 {
            return Err(bad);
        }
        let mut headers = Vec::with_capacity(header_count);
        for _ in 0..header_count {
            let k = take_opt(body, &mut p)?.ok_or(bad)?;
            let v = take_opt(body, &mut p)?;
            headers.push((k, v));
        }
        if p != record_end {
            return Err(bad);
        }
        self.pos = record_end;
        self.prev_delta = Some(offset_delta);
        Ok(RawRecord {
            offset: self.base_offset + u64::from(offset_delta),
            timestamp: self.first_timestamp.wrapping_add(ts_delta),
            key,
            value,
            headers,
        })
    }
}

fn take_i32(buf: &[u8], p: &mut usize) -> Result<i32, CorruptKind> {
    let (v, n) = varint::get_i32(buf.get(*p..).unwrap_or(&[])).ok_or(CorruptKind::BadRecords)?;
    *p += n;
    Ok(v)
}

fn take_i64(buf: &[u8], p: &mut usize) -> Result<i64, CorruptKind> {
    let (v, n) = varint::get_i64(buf.get(*p..).unwrap_or(&[])).ok_or(CorruptKind::BadRecords)?;
    *p += n;
    Ok(v)
}

/// A length-prefixed optional byte string: returns its range.
fn take_opt(buf: &[u8], p: &mut usize) -> Result<Option<(usize, usize)>, CorruptKind> {
    let len = take_i32(buf, p)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| CorruptKind::BadRecords)?;
    let end = p
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(CorruptKind::BadRecords)?;
    let range = (*p, end);
    *p = end;
    Ok(Some(range))
}

/// Iterator used by [`check_batch`]: walks records over a borrowed buffer.
struct RecordsIter<'a> {
    buf: &'a [u8],
    cursor: RecordCursor,
}

impl<'a> RecordsIter<'a> {
    fn new(buf: &'a [u8], header: &BatchHeader) -> Self {
        RecordsIter {
            buf,
            cursor: RecordCursor::new(header, buf.len()),
        }
    }
}

impl Iterator for RecordsIter<'_> {
    type Item = Result<(), CorruptKind>;
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next_record(self.buf).map(|r| r.map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: EncodeLimits = EncodeLimits {
        record_bytes_max: 1 << 20,
        batch_bytes_max: 8 << 20,
    };

    fn sample() -> Vec<Record> {
        vec![
            Record::new("v0").with_key("k0").with_timestamp(1_000),
            Record::tombstone("k1").with_timestamp(999),
            Record::new(Bytes::new())
                .with_timestamp(1_005)
                .with_header("h", "x"),
        ]
    }

    #[test]
    fn roundtrip_preserves_every_field() {
        let records = sample();
        let meta = BatchMeta {
            leader_epoch: 7,
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 11,
        };
        let mut buf = encode_batch(&records, &meta, LIMITS).unwrap();
        set_base_offset(&mut buf, 100);
        let batch = Batch::decode(Bytes::from(buf)).unwrap();
        let h = batch.header();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.last_offset(), 102);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.first_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(
            (
                h.leader_epoch,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence
            ),
            (7, 42, 3, 11)
        );
        let out: Vec<LogRecord> = batch.records().collect::<Result<_>>().unwrap();
        assert_eq!(out.len(), 3);
        for (i, (got, want)) in out.iter().zip(&records).enumerate() {
            assert_eq!(got.offset, Offset(100 + i as u64));
            assert_eq!(got.timestamp_ms, want.timestamp_ms);
            assert_eq!(got.key, want.key);
            assert_eq!(got.value, want.value);
            assert_eq!(got.headers, want.headers);
        }
    }

    #[test]
    fn base_offset_is_outside_the_crc() {
        let mut buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS).unwrap();
        set_base_offset(&mut buf, u64::MAX / 2);
        assert!(check_batch(&buf).is_ok());
    }

    #[test]
    fn every_single_bit_flip_after_the_offset_is_detected() {
        let buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS).unwrap();
        for i in 8..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[i] ^= 1 << bit;
                assert!(
                    check_batch(&b).is_err(),
                    "flip at byte {i} bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_detected() {
        let buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS).unwrap();
        for len in 0..buf.len() {
            assert!(check_batch(&buf[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let big = Record::new(vec![0u8; 2048]);
        let small = EncodeLimits {
            record_bytes_max: 1024,
            batch_bytes_max: 1 << 20,
        };
        assert!(matches!(
            encode_batch(&[big], &BatchMeta::default(), small),
            Err(Error::RecordTooLarge { .. })
        ));
        let many = vec![Record::new(vec![0u8; 100]); 100];
        let tight = EncodeLimits {
            record_bytes_max: 1024,
            batch_bytes_max: 4096,
        };
        assert!(matches!(
            encode_batch(&many, &BatchMeta::default(), tight),
            Err(Error::BatchTooLarge { .. })
        ));
        assert!(matches!(
            encode_batch(&[], &BatchMeta::default(), LIMITS),
            Err(Error::EmptyBatch)
        ));
    }

    #[test]
    fn many_headers_and_missing_fields_roundtrip() {
        // Exercises every flush point of the encoder's stack buffer.
        let mut r = Record::tombstone(Bytes::new()).with_timestamp(i64::MIN);
        for i in 0..40 {
            r.headers.push(Header {
                key: Bytes::from(vec![b'h'; i % 3]),
                value: (i % 2 == 0).then(|| Bytes::from(vec![b'v'; i])),
            });
        }
        let records = vec![
            r,
            Record::new(Bytes::new()).with_timestamp(i64::MAX),
            Record {
                key: None,
                value: None,
                headers: Vec::new(),
                timestamp_ms: 0,
            },
        ];
        let buf = encode_batch(&records, &BatchMeta::default(), LIMITS).unwrap();
        let batch = Batch::decode(Bytes::from(buf)).unwrap();
        let back: Vec<LogRecord> = batch.records().collect::<Result<_>>().unwrap();
        for (got, want) in back.iter().zip(&records) {
            assert_eq!(
                (&got.key, &got.value, &got.headers, got.timestamp_ms),
                (&want.key, &want.value, &want.headers, want.timestamp_ms)
            );
        }
    }

    #[test]
    fn a_compacted_subset_never_outgrows_its_batch() {
        // Dropping the first record must not rebase the timestamp deltas on an outlier.
        let mut records = vec![
            Record::new("a").with_key("0").with_timestamp(0),
            Record::new("b").with_key("1").with_timestamp(-(1 << 62)),
        ];
        records
            .extend((2..50).map(|i| Record::new("c").with_key(format!("{i}")).with_timestamp(0)));
        let mut buf = encode_batch(&records, &BatchMeta::default(), LIMITS).unwrap();
        set_base_offset(&mut buf, 10);
        let original = Batch::decode(Bytes::from(buf)).unwrap();
        let kept: Vec<LogRecord> = original.records().skip(1).map(|r| r.unwrap()).collect();
        let rewritten = encode_compacted(original.header(), &kept);
        assert!(rewritten.len() < original.encoded_len());
        let again = Batch::decode(Bytes::from(rewritten)).unwrap();
        assert!(again.header().is_compacted());
        let back: Vec<LogRecord> = again.records().map(|r| r.unwrap()).collect();
        assert_eq!(back, kept);
    }

    #[test]
    fn huge_declared_lengths_are_rejected_without_allocating() {
        let mut buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS).unwrap();
        buf[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(BatchHeader::parse(&buf), Err(CorruptKind::BadLength));
        buf[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(BatchHeader::parse(&buf), Err(CorruptKind::BadLength));
    }
}
