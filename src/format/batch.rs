//! Kafka's record batch v2 (magic 2): seglog's unit of storage, CRC and I/O, byte for byte as
//! Apache Kafka writes it. Pure bytes, no files.
//!
//! One `append` call becomes one batch. Layout (all integers big-endian; see
//! `docs/format.md` for the full description):
//!
//! ```text
//! offset size field
//!  0     8    baseOffset            i64  offset of the first record
//!  8     4    batchLength           i32  bytes after this field (total size - 12)
//! 12     4    partitionLeaderEpoch  i32  -1 when unknown
//! 16     1    magic                 i8   = 2
//! 17     4    crc                   u32  CRC-32C of bytes [21, 12 + batchLength)
//! 21     2    attributes            i16  bits 0-2 compression, 3 timestamp type,
//!                                        4 transactional, 5 control, 6 hasDeleteHorizonMs
//! 23     4    lastOffsetDelta       i32  last offset - baseOffset
//! 27     8    baseTimestamp         i64  first record's timestamp (or the delete horizon)
//! 35     8    maxTimestamp          i64  largest record timestamp (or the log append time)
//! 43     8    producerId            i64  -1 when none
//! 51     2    producerEpoch         i16  -1 when none
//! 53     4    baseSequence          i32  -1 when none
//! 57     4    recordsCount          i32
//! 61     ..   records               varint-encoded records, compressed as bits 0-2 say
//! ```
//!
//! Each record (Kafka's `DefaultRecord`): `length` (varint, bytes after itself), `attributes`
//! (i8, unused, 0), `timestampDelta` (varlong, from `baseTimestamp`), `offsetDelta` (varint),
//! `keyLength` (varint, -1 = null), key, `valueLength` (varint, -1 = null), value,
//! `headerCount` (varint), then per header `keyLength` (varint, never -1), key,
//! `valueLength` (varint, -1 = null), value.
//!
//! The base offset and the leader epoch sit before the CRC so they can be assigned under the
//! append lock after the batch was encoded and checksummed outside it (Kafka does the same);
//! recovery checks the base offset against the offsets around it instead.

use bytes::Bytes;

use crate::error::{CorruptKind, Error, Result};
use crate::format::compression::{self, Compression};
use crate::format::decode::{corrupt, Cursor, DecodedRecords, Records};
use crate::format::record::{LogRecord, Record};
use crate::format::varint;
use crate::offset::Offset;

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// The batch format ("magic") this crate writes and reads: Kafka's record batch v2. Any other
/// value (seglog's own format 1, Kafka's message sets v0/v1) is [`CorruptKind::BadVersion`].
pub const FORMAT_VERSION: u8 = 2;
/// Hard limit on one batch's total size, whatever the configuration says: segment file
/// positions are `u32`, and no length read from disk may ask for more.
pub const BATCH_BYTES_LIMIT: usize = 64 << 20;
/// Hard limit on the decompressed records of one compressed batch (64 MiB): a batch that
/// decompresses to more is [`CorruptKind::DecompressedTooLarge`], so a decompression bomb is
/// a typed error, not an out-of-memory abort.
pub const DECOMPRESSED_BYTES_LIMIT: usize = 64 << 20;
/// Smallest possible encoded record: length, attributes, two deltas, two null lengths and a
/// header count, one byte each.
const RECORD_LEN_MIN: usize = 7;
/// Hard limit on records in one batch (bounded by the smallest record in the largest batch,
/// or in the largest decompressed record section).
pub const RECORDS_PER_BATCH_LIMIT: usize = DECOMPRESSED_BYTES_LIMIT / RECORD_LEN_MIN;

/// Attribute bit 3: timestamps are the log append time.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: the batch belongs to a transaction.
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: a control batch (a transaction marker).
const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6: `baseTimestamp` holds the delete horizon (KIP-534).
const ATTR_DELETE_HORIZON: i16 = 0x40;
/// Attribute bits Kafka 3.8 defines; a batch with any other bit set is rejected.
const ATTR_KNOWN: i16 = 0x7f;

/// Bytes before `batchLength` counts: base offset and the length itself.
pub(crate) const LENGTH_PREFIX_LEN: usize = 12;
/// Where the CRC-32C's range starts: the attributes.
const CRC_START: usize = 21;

/// How a batch's record timestamps are to be read (attributes bit 3, Kafka's
/// `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Each record carries the time its producer created it: `baseTimestamp + timestampDelta`.
    #[default]
    CreateTime,
    /// The log stamped the batch when it appended it: every record's timestamp is the
    /// batch's `maxTimestamp`.
    LogAppendTime,
}

/// Which transaction outcome a control batch records. Kafka's other control types (`KRaft`'s
/// leader-change and snapshot records) are refused as damage for now, hence `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ControlKind {
    /// The transaction was aborted (control type 0).
    Abort,
    /// The transaction was committed (control type 1).
    Commit,
}

/// The end-transaction marker held by a control batch (Kafka's `EndTransactionMarker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlMarker {
    /// Commit or abort.
    pub kind: ControlKind,
    /// The transaction coordinator's epoch that wrote the marker.
    pub coordinator_epoch: i32,
}

/// Replication and idempotence metadata stamped into a batch header.
///
/// Start from [`BatchMeta::default`] (every field -1: none) and set what you know with the
/// `with_*` methods; the struct is `#[non_exhaustive]` because the format will grow fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchMeta {
    /// Leader epoch that wrote the batch (`partitionLeaderEpoch`); -1 when unknown.
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

/// The decoded fixed header of a batch, fields named as Kafka's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchHeader {
    /// Offset of the first record (`baseOffset`).
    pub base_offset: u64,
    /// Bytes after the length field (`batchLength`).
    pub batch_length: u32,
    /// Leader epoch that wrote the batch, -1 when unknown.
    pub partition_leader_epoch: i32,
    /// Batch format, always [`FORMAT_VERSION`] (2) once parsed.
    pub magic: u8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Raw attribute bits (see the accessors).
    pub attributes: i16,
    /// Last offset minus `base_offset`.
    pub last_offset_delta: u32,
    /// First record's timestamp, or the delete horizon when [`delete_horizon_ms`] is `Some`.
    ///
    /// [`delete_horizon_ms`]: BatchHeader::delete_horizon_ms
    pub base_timestamp: i64,
    /// Largest record timestamp; under `LogAppendTime`, the append time.
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

    /// Offset of the last record (`baseOffset + lastOffsetDelta`). After compaction the
    /// batch's last record may be below it.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.last_offset_delta)
    }

    /// The codec of the records (attributes bits 0-2).
    #[inline]
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes).unwrap_or_default()
    }

    /// How record timestamps are read (attributes bit 3).
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Whether the batch belongs to a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether this is a control batch (attributes bit 5): its one record is a transaction
    /// marker, never handed to consumers.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The delete horizon compaction set (attributes bit 6; `baseTimestamp` then holds it).
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }

    /// The first record's timestamp as far as the header tells: `baseTimestamp`, or
    /// `maxTimestamp` where that is what records read back with (`LogAppendTime`), where
    /// `baseTimestamp` holds a delete horizon, or where the batch is empty. Segment rolling
    /// by age measures from it.
    pub(crate) fn first_timestamp(&self) -> i64 {
        if self.timestamp_type() == TimestampType::LogAppendTime
            || self.delete_horizon_ms().is_some()
            || self.record_count == 0
        {
            self.max_timestamp
        } else {
            self.base_timestamp
        }
    }

    /// Whether this batch may follow a log whose next offset is `expected`: exactly there
    /// when offsets are known dense, anywhere above when `gaps` allows gaps (compaction).
    pub(crate) fn follows(&self, expected: u64, gaps: bool) -> bool {
        self.base_offset == expected || (gaps && self.base_offset > expected)
    }

    /// Parse the fixed header from the front of `buf` and check what can be checked without
    /// the rest of the batch: magic, length bounds, attributes, counts. Never reads past `buf`.
    #[inline]
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
        let h = buf.get(..BATCH_HEADER_LEN).ok_or(CorruptKind::Truncated)?;
        // Magic first (as Kafka): older formats, seglog's own v1 included, are named as such.
        if h[16] != FORMAT_VERSION {
            return Err(CorruptKind::BadVersion);
        }
        let header = BatchHeader {
            base_offset: be_u64(h, 0),
            batch_length: be_u32(h, 8),
            partition_leader_epoch: be_u32(h, 12) as i32,
            magic: h[16],
            crc: be_u32(h, 17),
            attributes: i16::from_be_bytes([h[21], h[22]]),
            last_offset_delta: be_u32(h, 23),
            base_timestamp: be_u64(h, 27) as i64,
            max_timestamp: be_u64(h, 35) as i64,
            producer_id: be_u64(h, 43) as i64,
            producer_epoch: i16::from_be_bytes([h[51], h[52]]),
            base_sequence: be_u32(h, 53) as i32,
            record_count: be_u32(h, 57),
        };
        let total = header.total_len();
        if !(BATCH_HEADER_LEN..=BATCH_BYTES_LIMIT).contains(&total) {
            return Err(CorruptKind::BadLength);
        }
        if header.attributes & !ATTR_KNOWN != 0 {
            return Err(CorruptKind::BadVersion);
        }
        let compression = Compression::from_attributes(header.attributes)?;
        let count = header.record_count as usize;
        let room = if compression == Compression::None {
            (total - BATCH_HEADER_LEN) / RECORD_LEN_MIN
        } else {
            RECORDS_PER_BATCH_LIMIT
        };
        if count > room
            || header.base_offset > i64::MAX as u64
            || header.last_offset_delta > i32::MAX as u32
            || u64::from(header.last_offset_delta) + 1 < count as u64
            || header.last_offset() > i64::MAX as u64
        {
            return Err(CorruptKind::BadRecords);
        }
        Ok(header)
    }
}

#[inline]
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// CRC-32C (Castagnoli) of a batch's checksummed range: attributes to the end.
#[inline]
fn batch_crc(batch: &[u8]) -> u32 {
    crate::format::crc::crc32c(&batch[CRC_START..])
}
/// Limits applied while encoding.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeLimits {
    pub record_bytes_max: usize,
    pub batch_bytes_max: usize,
}

/// How an append encodes its batch: the partition's codec and, under `LogAppendTime`, the
/// append time to stamp.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EncodeOptions {
    pub compression: Compression,
    /// `Some(now)` under [`TimestampType::LogAppendTime`]: `maxTimestamp` becomes `now` and
    /// attributes bit 3 is set, the records keep their own timestamps in the bytes (as Kafka
    /// 3.8 does).
    pub log_append_time: Option<i64>,
}

/// Encode `records` as one batch with base offset 0 (patch it with [`set_base_offset`]).
pub(crate) fn encode_batch(
    records: &[Record],
    meta: &BatchMeta,
    limits: EncodeLimits,
    options: EncodeOptions,
) -> Result<Vec<u8>> {
    if records.len() > RECORDS_PER_BATCH_LIMIT {
        return Err(Error::TooManyRecords {
            count: records.len(),
            limit: RECORDS_PER_BATCH_LIMIT,
        });
    }
    let first = records.first().ok_or(Error::EmptyBatch)?;
    let max = records.iter().map(|r| r.timestamp_ms).max();
    let mut attributes = options.compression.attribute_bits();
    let mut max_timestamp = max.unwrap_or(first.timestamp_ms);
    if let Some(now) = options.log_append_time {
        attributes |= ATTR_LOG_APPEND_TIME;
        max_timestamp = now;
    }
    let frame = Frame {
        base_offset: 0,
        attributes,
        last_offset_delta: u32::try_from(records.len() - 1).expect("bounded by the record limit"),
        meta: *meta,
        timestamps: (first.timestamp_ms, max_timestamp),
    };
    encode(records, |i| i as u32, &frame, limits)
}

/// Re-encode the records of batch `original` that compaction keeps (`kept`, in offset order,
/// all inside the batch's range, at least one). Base offset, last offset delta, attributes
/// (codec, timestamp type, transactional, delete horizon), leader epoch, producer fields and
/// both timestamps stay as they were (the timestamps then bound the kept records rather than
/// equal theirs). No delete horizon is added for tombstones: seglog's compaction removes a
/// tombstone by its own timestamp (see `docs/format.md`).
pub(crate) fn encode_compacted(original: &BatchHeader, kept: &[LogRecord]) -> Result<Vec<u8>> {
    let frame = Frame {
        base_offset: original.base_offset,
        attributes: original.attributes,
        last_offset_delta: original.last_offset_delta,
        meta: BatchMeta {
            leader_epoch: original.partition_leader_epoch,
            producer_id: original.producer_id,
            producer_epoch: original.producer_epoch,
            base_sequence: original.base_sequence,
        },
        // The original base timestamp stays the delta base: every kept CreateTime record then
        // encodes to exactly its original bytes.
        timestamps: (original.base_timestamp, original.max_timestamp),
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
    encode(&records, delta, &frame, limits)
}

/// The header fields an encoder is given rather than derives from the records.
struct Frame {
    base_offset: u64,
    attributes: i16,
    last_offset_delta: u32,
    meta: BatchMeta,
    /// `(base, max)` timestamps.
    timestamps: (i64, i64),
}

fn encode(
    records: &[Record],
    offset_delta: impl Fn(usize) -> u32,
    frame: &Frame,
    limits: EncodeLimits,
) -> Result<Vec<u8>> {
    if records.is_empty() {
        return Err(Error::EmptyBatch);
    }
    let base_timestamp = frame.timestamps.0;
    let batch_limit = limits.batch_bytes_max.min(BATCH_BYTES_LIMIT);
    let compression =
        Compression::from_attributes(frame.attributes).expect("encoders set a known codec");
    // Sized exactly first (limits checked), then written into one allocation.
    let mut out;
    if compression == Compression::None {
        // Uncompressed: records are encoded in place after the header, no extra copy.
        let end = size_records(
            records,
            &offset_delta,
            base_timestamp,
            limits,
            BATCH_HEADER_LEN,
            batch_limit,
        )?;
        out = zeroed(end);
        write_records(
            &mut out,
            BATCH_HEADER_LEN,
            records,
            &offset_delta,
            base_timestamp,
        );
    } else {
        let plain_len = size_records(
            records,
            &offset_delta,
            base_timestamp,
            limits,
            0,
            DECOMPRESSED_BYTES_LIMIT,
        )?;
        let mut plain = zeroed(plain_len);
        write_records(&mut plain, 0, records, &offset_delta, base_timestamp);
        out = vec![0; BATCH_HEADER_LEN];
        compression::compress(compression, &plain, &mut out)?;
        if out.len() > batch_limit {
            return Err(Error::BatchTooLarge {
                size: out.len(),
                limit: batch_limit,
            });
        }
    }
    write_header(&mut out, frame, records.len());
    let crc = batch_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    // Paired assertion: what we are about to write must pass the reader's checks.
    debug_assert!(check_batch(&out).is_ok());
    Ok(out)
}

/// Exact size of the records section that `records` encode to, added to `start` (the bytes
/// before it), with the limits checked in record order as the records would be written: a
/// record's own limit first, then whether the section so far passes `limit`.
fn size_records(
    records: &[Record],
    offset_delta: &impl Fn(usize) -> u32,
    base_timestamp: i64,
    limits: EncodeLimits,
    start: usize,
    limit: usize,
) -> Result<usize> {
    let mut end = start;
    for (i, record) in records.iter().enumerate() {
        let sizes = RecordSizes::of(record, base_timestamp, offset_delta(i));
        end += sizes.checked_total(limits.record_bytes_max)?;
        if end > limit {
            return Err(Error::BatchTooLarge {
                size: end + estimate_rest(&records[i + 1..]),
                limit,
            });
        }
    }
    Ok(end)
}

/// Fill in the fixed header of the encoded batch `out` (all but the CRC).
fn write_header(out: &mut [u8], frame: &Frame, record_count: usize) {
    let (base_timestamp, max_timestamp) = frame.timestamps;
    let batch_length = u32::try_from(out.len() - LENGTH_PREFIX_LEN).expect("bounded");
    let meta = &frame.meta;
    out[0..8].copy_from_slice(&frame.base_offset.to_be_bytes());
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[12..16].copy_from_slice(&meta.leader_epoch.to_be_bytes());
    out[16] = FORMAT_VERSION;
    out[21..23].copy_from_slice(&frame.attributes.to_be_bytes());
    out[23..27].copy_from_slice(&frame.last_offset_delta.to_be_bytes());
    out[27..35].copy_from_slice(&base_timestamp.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[43..51].copy_from_slice(&meta.producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&meta.producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&meta.base_sequence.to_be_bytes());
    out[57..61].copy_from_slice(&(record_count as u32).to_be_bytes());
}

/// `len` zero bytes. Not `vec![0; len]`: that allocates with `calloc`, which glibc serves
/// without its per-thread cache (measured: 2% of a one-record append); `malloc` and a
/// `memset` of what is about to be overwritten cost less.
#[allow(clippy::slow_vector_initialization)] // the point: `vec![0; len]` is the slow one here
fn zeroed(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.resize(len, 0);
    v
}

/// Encode every record into `out` from byte `at` on: `out` has exactly the room
/// [`size_records`] measured (which checked the limits).
fn write_records(
    out: &mut [u8],
    at: usize,
    records: &[Record],
    offset_delta: &impl Fn(usize) -> u32,
    base_timestamp: i64,
) {
    let mut w = Writer { buf: out, at };
    for (i, record) in records.iter().enumerate() {
        let sizes = RecordSizes::of(record, base_timestamp, offset_delta(i));
        w.record(record, &sizes);
    }
    debug_assert_eq!(w.at, w.buf.len());
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

/// Bytes a varint-encoded length field of `b` takes plus the bytes of `b`.
#[inline]
fn opt_field_len(b: Option<&Bytes>) -> usize {
    match b {
        Some(b) => varint::len_i32(b.len() as i32) + b.len(),
        None => 1,
    }
}

/// One record's deltas and sizes, computed once per pass without touching its bytes.
struct RecordSizes {
    ts_delta: i64,
    offset_delta: i32,
    /// Key, value and header bytes: what `record_bytes_max` bounds.
    payload: usize,
    /// Bytes after the record's `length` varint (the value of that varint).
    body: usize,
}

impl RecordSizes {
    // Measured: left to the compiler this is a call per record in each pass (6% of an
    // append of 100-byte records); inlined, the sizing pass costs half as much.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn of(r: &Record, base_timestamp: i64, offset_delta: u32) -> Self {
        let ts_delta = r.timestamp_ms.wrapping_sub(base_timestamp);
        let offset_delta = i32::try_from(offset_delta).expect("offset deltas fit in i32");
        let key = r.key.as_ref();
        let value = r.value.as_ref();
        let mut payload = key.map_or(0, Bytes::len) + value.map_or(0, Bytes::len);
        // attributes, the two deltas, key, value and (for no headers) a one-byte count.
        let mut body = 1
            + varint::len_i64(ts_delta)
            + varint::len_i32(offset_delta)
            + opt_field_len(key)
            + opt_field_len(value)
            + 1;
        if !r.headers.is_empty() {
            body += varint::len_i32(r.headers.len() as i32) - 1;
            for h in &r.headers {
                let value = h.value.as_ref();
                payload += h.key.len() + value.map_or(0, Bytes::len);
                body += varint::len_i32(h.key.len() as i32) + h.key.len() + opt_field_len(value);
            }
        }
        RecordSizes {
            ts_delta,
            offset_delta,
            payload,
            body,
        }
    }

    /// The record's whole encoded size, or [`Error::RecordTooLarge`] past `record_bytes_max`
    /// (its payload, or its framing beyond 64 bytes of slack).
    #[inline]
    fn checked_total(&self, record_bytes_max: usize) -> Result<usize> {
        if self.payload > record_bytes_max {
            return Err(Error::RecordTooLarge {
                size: self.payload,
                limit: record_bytes_max,
            });
        }
        let total = self.body + varint::len_i32(self.body as i32);
        if total > record_bytes_max.saturating_add(64) {
            return Err(Error::RecordTooLarge {
                size: total,
                limit: record_bytes_max,
            });
        }
        Ok(total)
    }
}

/// Writes records into a buffer sized for them. Bytes go straight to their place, one
/// store each: gathering varints in a small buffer and copying it out read back bytes just
/// stored one by one, which stalls on store forwarding (measured: most of the encoder's time).
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    #[inline]
    fn byte(&mut self, b: u8) {
        self.buf[self.at] = b;
        self.at += 1;
    }

    #[inline]
    fn varlong(&mut self, v: i64) {
        let mut z = varint::zigzag64(v);
        while z >= 0x80 {
            self.byte((z as u8) | 0x80);
            z >>= 7;
        }
        self.byte(z as u8);
    }

    #[inline]
    fn varint(&mut self, v: i32) {
        self.varlong(i64::from(v));
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }

    /// A length-prefixed optional byte string (-1 for `None`).
    #[inline]
    fn opt(&mut self, b: Option<&Bytes>) {
        self.varint(opt_len(b));
        if let Some(b) = b {
            self.bytes(b);
        }
    }

    /// One record, measured as `sizes`.
    #[inline]
    fn record(&mut self, r: &Record, sizes: &RecordSizes) {
        self.varint(sizes.body as i32);
        self.byte(0); // attributes
        self.varlong(sizes.ts_delta);
        self.varint(sizes.offset_delta);
        self.opt(r.key.as_ref());
        self.opt(r.value.as_ref());
        self.varint(r.headers.len() as i32);
        for h in &r.headers {
            self.varint(h.key.len() as i32);
            self.bytes(&h.key);
            self.opt(h.value.as_ref());
        }
    }
}

/// Write `base_offset` into an encoded batch (outside the CRC).
pub(crate) fn set_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamp a received batch's timestamp type and `maxTimestamp` as Kafka's broker
/// (`LogValidator`) does: under `LogAppendTime` attributes bit 3 set and `maxTimestamp = now`;
/// under `CreateTime` the bit cleared and `maxTimestamp` the records' largest timestamp. The
/// CRC is recomputed (both fields lie inside it); the records are not touched. `buf` holds one
/// whole batch whose header has been checked.
pub(crate) fn stamp_timestamps(buf: &mut [u8], kind: TimestampType, max_timestamp: i64) {
    let attributes = i16::from_be_bytes([buf[CRC_START], buf[CRC_START + 1]]);
    let attributes = match kind {
        TimestampType::LogAppendTime => attributes | ATTR_LOG_APPEND_TIME,
        TimestampType::CreateTime => attributes & !ATTR_LOG_APPEND_TIME,
    };
    buf[CRC_START..CRC_START + 2].copy_from_slice(&attributes.to_be_bytes());
    // maxTimestamp follows attributes (2), lastOffsetDelta (4) and baseTimestamp (8).
    let at = CRC_START + 14;
    buf[at..at + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = batch_crc(buf);
    buf[LENGTH_PREFIX_LEN + 5..LENGTH_PREFIX_LEN + 9].copy_from_slice(&crc.to_be_bytes());
}

/// Write `epoch` into an encoded batch's `partitionLeaderEpoch` (outside the CRC).
pub(crate) fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// What the append of an already-encoded batch is told of each of its records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFacts {
    /// Position of the record in the batch (0 for the first).
    pub index: usize,
    /// The record's offset delta.
    pub offset_delta: u64,
    /// The record's timestamp as written: `baseTimestamp + timestampDelta` (under
    /// `LogAppendTime`, the batch's `maxTimestamp`).
    pub timestamp_ms: i64,
    /// Whether the record has a key.
    pub has_key: bool,
    /// Key, value and header bytes: what `record_bytes_max` bounds.
    pub payload: usize,
}

/// [`check_batch`] of the batch at the front of `buf`, whose header the caller parsed into
/// `header`, that also hands every record's facts to `visit`, which may refuse it; a
/// compressed batch whose codec is not compiled in is [`Error::CodecUnavailable`] (its
/// records cannot be checked). Damage is [`Error::Corrupt`] (no path, position 0: the caller
/// knows where the batch lies).
pub(crate) fn check_batch_records(
    header: &BatchHeader,
    buf: &[u8],
    mut visit: impl FnMut(&RecordFacts) -> Result<()>,
) -> Result<()> {
    check_crc_of(header, buf).map_err(corrupt)?;
    let batch = &buf[..header.total_len()];
    let plain;
    let (section, start) = if header.compression() == Compression::None || header.record_count == 0
    {
        (batch, BATCH_HEADER_LEN)
    } else {
        plain = decompress_records(header, batch)?;
        (plain.as_slice(), 0)
    };
    let mut cursor = Cursor::new(header, start, section.len());
    let mut index = 0;
    while let Some(r) = cursor.next_record(section) {
        let r = r.map_err(corrupt)?;
        let len = |s: Option<&[u8]>| s.map_or(0, <[u8]>::len);
        let headers: usize = r.headers().map(|h| h.key().len() + len(h.value())).sum();
        visit(&RecordFacts {
            index,
            offset_delta: r.offset().0 - header.base_offset,
            timestamp_ms: r.timestamp_ms(),
            has_key: r.key().is_some(),
            payload: len(r.key()) + len(r.value()) + headers,
        })?;
        index += 1;
    }
    Ok(())
}

/// Full check of one batch at the front of `buf`: header, length within `buf`, CRC, and every
/// record's structure (decompressing a compressed batch, bounded by
/// [`DECOMPRESSED_BYTES_LIMIT`]). Returns the header; the batch occupies `header.total_len()`
/// bytes. A compressed batch whose codec is not compiled in is checked up to its CRC only.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = check_crc(buf)?;
    let batch = &buf[..header.total_len()];
    let codec = header.compression();
    let plain;
    // An empty batch (count 0: Kafka's cleaner keeps such headers) has nothing to decompress.
    let (section, start) = if codec == Compression::None || header.record_count == 0 {
        (batch, BATCH_HEADER_LEN)
    } else {
        match decompress_records(&header, batch) {
            Ok(p) => plain = p,
            Err(Error::Corrupt { reason, .. }) => return Err(reason),
            Err(_) => return Ok(header),
        }
        (plain.as_ref(), 0)
    };
    let mut cursor = Cursor::new(&header, start, section.len());
    while let Some(r) = cursor.next_record(section) {
        r?;
    }
    Ok(header)
}

/// Header plus CRC check of the batch at the front of `buf` (records are not walked).
pub(crate) fn check_crc(buf: &[u8]) -> Result<BatchHeader, CorruptKind> {
    let header = BatchHeader::parse(buf)?;
    check_crc_of(&header, buf)?;
    Ok(header)
}

/// CRC check of the batch at the front of `buf` whose header was already parsed: the read
/// path parses every header once.
#[inline]
pub(crate) fn check_crc_of(header: &BatchHeader, buf: &[u8]) -> Result<(), CorruptKind> {
    let batch = buf
        .get(..header.total_len())
        .ok_or(CorruptKind::Truncated)?;
    if batch_crc(batch) != header.crc {
        return Err(CorruptKind::Crc);
    }
    Ok(())
}

/// The decompressed record section of a compressed batch.
pub(crate) fn decompress_records(header: &BatchHeader, batch: &[u8]) -> Result<Vec<u8>> {
    compression::decompress(
        header.compression(),
        &batch[BATCH_HEADER_LEN..],
        DECOMPRESSED_BYTES_LIMIT,
    )
}

/// A whole batch read from the log (or decoded from a buffer), CRC-checked, holding its bytes.
///
/// Records are decoded lazily by [`Batch::records`]; for an uncompressed batch their keys,
/// values and headers are slices of this batch's buffer.
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
        let header = check_crc(&bytes).map_err(corrupt)?;
        let bytes = bytes.slice(..header.total_len());
        Ok(Batch { header, bytes })
    }

    #[inline]
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

    /// Iterate over every record of the batch (a control batch's marker record included).
    /// Each item is an error if the record bytes are malformed (possible only if something
    /// wrote a bad batch with a matching CRC); iteration stops after the first error.
    ///
    /// A compressed batch is decompressed once, here, bounded by [`DECOMPRESSED_BYTES_LIMIT`];
    /// its records are then slices of the decompressed buffer. A codec that is not compiled
    /// in, or damage, is the first item's error.
    #[inline]
    pub fn records(&self) -> Records {
        Records::new(self)
    }

    /// The records as borrowed [`RecordRef`](crate::RecordRef)s, the fast path: keys,
    /// values and headers are `&[u8]` slices of this batch (or of its records, decompressed
    /// once here for a compressed batch, bounded by [`DECOMPRESSED_BYTES_LIMIT`]), with no
    /// reference counting and no allocation per record. The checks are those of
    /// [`Batch::records`]. A codec that is not compiled in is [`Error::CodecUnavailable`],
    /// damage in the compressed stream [`Error::Corrupt`].
    ///
    /// ```
    /// # fn walk(batch: &seglog::Batch) -> seglog::Result<usize> {
    /// let decoded = batch.decoded()?;
    /// let mut bytes = 0;
    /// for record in &decoded {
    ///     bytes += record?.value().map_or(0, <[u8]>::len);
    /// }
    /// # Ok(bytes) }
    /// ```
    #[inline]
    pub fn decoded(&self) -> Result<DecodedRecords<'_>> {
        DecodedRecords::new(self)
    }

    /// The transaction marker of a control batch; `None` for a data batch. A control batch
    /// whose record is not a well-formed marker (key: version i16, type i16 0 abort / 1
    /// commit; value: version i16, coordinator epoch i32) is [`Error::Corrupt`].
    pub fn control_marker(&self) -> Result<Option<ControlMarker>> {
        if !self.header.is_control() {
            return Ok(None);
        }
        let bad = || corrupt(CorruptKind::BadRecords);
        let decoded = self.decoded()?;
        let record = decoded.iter().next().ok_or_else(bad)??;
        let key = record.key().ok_or_else(bad)?;
        let value = record.value().ok_or_else(bad)?;
        if key.len() < 4 || value.len() < 6 || i16::from_be_bytes([key[0], key[1]]) < 0 {
            return Err(bad());
        }
        let kind = match i16::from_be_bytes([key[2], key[3]]) {
            0 => ControlKind::Abort,
            1 => ControlKind::Commit,
            _ => return Err(bad()),
        };
        let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
        Ok(Some(ControlMarker {
            kind,
            coordinator_epoch,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::Header;

    const PLAIN: EncodeOptions = EncodeOptions {
        compression: Compression::None,
        log_append_time: None,
    };

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
        let mut buf = encode_batch(&records, &meta, LIMITS, PLAIN).unwrap();
        set_base_offset(&mut buf, 100);
        let batch = Batch::decode(Bytes::from(buf)).unwrap();
        let h = batch.header();
        assert_eq!(h.base_offset, 100);
        assert_eq!(h.last_offset(), 102);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_005);
        assert_eq!(
            (
                h.partition_leader_epoch,
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
        let mut buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS, PLAIN).unwrap();
        set_base_offset(&mut buf, u64::MAX / 4);
        assert!(check_batch(&buf).is_ok());
    }

    #[test]
    fn every_single_bit_flip_after_the_offset_is_detected() {
        let buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS, PLAIN).unwrap();
        // The leader epoch (12..16) is outside the CRC, as in Kafka: it is set on append.
        for i in (8..12).chain(16..buf.len()) {
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
        let buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS, PLAIN).unwrap();
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
            encode_batch(&[big], &BatchMeta::default(), small, PLAIN),
            Err(Error::RecordTooLarge { .. })
        ));
        let many = vec![Record::new(vec![0u8; 100]); 100];
        let tight = EncodeLimits {
            record_bytes_max: 1024,
            batch_bytes_max: 4096,
        };
        assert!(matches!(
            encode_batch(&many, &BatchMeta::default(), tight, PLAIN),
            Err(Error::BatchTooLarge { .. })
        ));
        assert!(matches!(
            encode_batch(&[], &BatchMeta::default(), LIMITS, PLAIN),
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
        let buf = encode_batch(&records, &BatchMeta::default(), LIMITS, PLAIN).unwrap();
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
        let mut buf = encode_batch(&records, &BatchMeta::default(), LIMITS, PLAIN).unwrap();
        set_base_offset(&mut buf, 10);
        let original = Batch::decode(Bytes::from(buf)).unwrap();
        let kept: Vec<LogRecord> = original.records().skip(1).map(|r| r.unwrap()).collect();
        let rewritten = encode_compacted(original.header(), &kept).unwrap();
        assert!(rewritten.len() < original.encoded_len());
        let again = Batch::decode(Bytes::from(rewritten)).unwrap();
        let back: Vec<LogRecord> = again.records().map(|r| r.unwrap()).collect();
        assert_eq!(back, kept);
    }

    #[test]
    fn huge_declared_lengths_are_rejected_without_allocating() {
        let mut buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS, PLAIN).unwrap();
        buf[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(BatchHeader::parse(&buf), Err(CorruptKind::BadLength));
        buf[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(BatchHeader::parse(&buf), Err(CorruptKind::BadLength));
    }

    /// The records of a decoded batch, as a user would append them.
    fn as_appended(batch: &Batch) -> Vec<Record> {
        batch
            .records()
            .map(|r| {
                let r = r.unwrap();
                Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    timestamp_ms: r.timestamp_ms,
                }
            })
            .collect()
    }

    /// Re-encode a Kafka-written batch's records with the same header fields.
    fn reencode(kafka: &[u8]) -> Vec<u8> {
        let batch = Batch::decode(Bytes::copy_from_slice(kafka)).unwrap();
        let h = batch.header();
        let meta = BatchMeta::default()
            .with_leader_epoch(h.partition_leader_epoch)
            .with_producer(h.producer_id, h.producer_epoch, h.base_sequence);
        let mut out = encode_batch(&as_appended(&batch), &meta, LIMITS, PLAIN).unwrap();
        set_base_offset(&mut out, h.base_offset);
        out
    }

    // Written by Apache Kafka 3.8.0 (Apache-2.0): see tests/data/kafka-batches/README.md.
    const PLAIN_304: &[u8] = include_bytes!("../../tests/data/kafka-batches/plain-304.bin");
    const PLAIN_25428: &[u8] = include_bytes!("../../tests/data/kafka-batches/plain-25428.bin");
    const IDEMPOTENT_0: &[u8] = include_bytes!("../../tests/data/kafka-batches/idempotent-0.bin");
    const IDEMPOTENT_4620: &[u8] =
        include_bytes!("../../tests/data/kafka-batches/idempotent-4620.bin");
    const LOG_APPEND_TIME_0: &[u8] =
        include_bytes!("../../tests/data/kafka-batches/log-append-time-0.bin");
    const COMMIT: &[u8] = include_bytes!("../../tests/data/kafka-batches/transactional-7130.bin");
    const ABORT: &[u8] = include_bytes!("../../tests/data/kafka-batches/transactional-8605.bin");
    const COMPACTED: &[u8] =
        include_bytes!("../../tests/data/kafka-batches/compacted-gaps-0-1697.bin");
    const HORIZON: &[u8] = include_bytes!("../../tests/data/kafka-batches/compacted-gaps-2670.bin");

    #[test]
    fn kafka_batches_reencode_byte_for_byte() {
        for (name, kafka) in [
            ("plain-304", PLAIN_304),
            ("plain-25428", PLAIN_25428),
            ("idempotent-0", IDEMPOTENT_0),
            ("idempotent-4620", IDEMPOTENT_4620),
        ] {
            let ours = reencode(kafka);
            assert_eq!(ours.len(), kafka.len(), "{name}: length");
            assert!(ours == kafka, "{name}: bytes differ");
        }
        let h = Batch::decode(Bytes::from_static(IDEMPOTENT_4620))
            .unwrap()
            .header;
        assert_eq!(
            (h.producer_id, h.base_sequence, h.record_count),
            (1002, 2_147_483_638, 20)
        );
    }

    #[test]
    fn kafka_log_append_time_gives_every_record_the_max_timestamp() {
        let batch = Batch::decode(Bytes::from_static(LOG_APPEND_TIME_0)).unwrap();
        assert_eq!(
            batch.header().timestamp_type(),
            TimestampType::LogAppendTime
        );
        let records: Vec<LogRecord> = batch.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 12);
        for r in &records {
            assert_eq!(r.timestamp_ms, 1_700_003_600_000);
            assert_eq!(r.timestamp_type, TimestampType::LogAppendTime);
        }
        // Our encoder stamps the same way: maxTimestamp and bit 3, records unchanged.
        let records = vec![
            Record::new("a").with_timestamp(5),
            Record::new("b").with_timestamp(9),
        ];
        let options = EncodeOptions {
            log_append_time: Some(1_000),
            ..PLAIN
        };
        let buf = encode_batch(&records, &BatchMeta::default(), LIMITS, options).unwrap();
        let batch = Batch::decode(Bytes::from(buf)).unwrap();
        let h = batch.header();
        assert_eq!(
            (h.base_timestamp, h.max_timestamp, h.attributes),
            (5, 1_000, 8)
        );
        let stamps: Vec<i64> = batch.records().map(|r| r.unwrap().timestamp_ms).collect();
        assert_eq!(stamps, [1_000, 1_000]);
    }

    #[test]
    fn kafka_control_batches_hold_their_markers() {
        for (bytes, kind, offset) in [
            (COMMIT, ControlKind::Commit, 37),
            (ABORT, ControlKind::Abort, 44),
        ] {
            let batch = Batch::decode(Bytes::from_static(bytes)).unwrap();
            let h = batch.header();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(h.base_offset, offset);
            assert_eq!(
                batch.control_marker().unwrap(),
                Some(ControlMarker {
                    kind,
                    coordinator_epoch: 5
                })
            );
            assert_eq!(batch.records().count(), 1);
        }
        let data = Batch::decode(Bytes::from_static(PLAIN_25428)).unwrap();
        assert_eq!(data.control_marker().unwrap(), None);
    }

    #[test]
    fn kafka_compacted_batches_keep_gaps_empty_batches_and_horizons() {
        let mut at = 0;
        let mut seen = Vec::new();
        while at < COMPACTED.len() {
            let batch = Batch::decode(Bytes::from_static(&COMPACTED[at..])).unwrap();
            let offsets: Vec<u64> = batch.records().map(|r| r.unwrap().offset.0).collect();
            seen.push((batch.base_offset().0, batch.last_offset().0, offsets));
            at += batch.encoded_len();
        }
        assert_eq!(
            seen,
            [
                (0, 9, vec![0, 9]),
                (10, 14, vec![11, 12, 13]),
                (21, 23, vec![])
            ]
        );
        let batch = Batch::decode(Bytes::from_static(HORIZON)).unwrap();
        assert_eq!(batch.header().delete_horizon_ms(), Some(1_700_090_060_000));
        let first = batch.records().next().unwrap().unwrap();
        assert_eq!(
            (first.offset.0, first.timestamp_ms),
            (34, 1_700_000_000_875)
        );
        assert_eq!(check_batch(HORIZON).unwrap().record_count, 5);
    }

    #[test]
    fn old_seglog_v1_batches_are_refused_by_name() {
        let mut buf = encode_batch(&sample(), &BatchMeta::default(), LIMITS, PLAIN).unwrap();
        buf[16] = 1;
        assert_eq!(BatchHeader::parse(&buf), Err(CorruptKind::BadVersion));
        assert!(matches!(
            Batch::decode(Bytes::from(buf)),
            Err(Error::Corrupt {
                reason: CorruptKind::BadVersion,
                ..
            })
        ));
    }

    #[test]
    fn an_empty_batch_is_never_decompressed() {
        // Kafka's empty batch (61 bytes at 1636 of compacted-gaps), marked gzip, CRC fixed.
        let mut b = COMPACTED[1636..1697].to_vec();
        assert_eq!(BatchHeader::parse(&b).unwrap().record_count, 0);
        b[21..23].copy_from_slice(&1i16.to_be_bytes());
        let crc = crate::format::crc::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(check_batch(&b).unwrap().compression(), Compression::Gzip);
        let batch = Batch::decode(Bytes::from(b)).unwrap();
        assert_eq!(batch.records().count(), 0);
    }
}
