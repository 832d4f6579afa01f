//! The record decoder: one pass over a batch's record section, every check made once, yielding
//! borrowed [`RecordRef`]s (the fast path) or owned [`LogRecord`]s built from them.
//!
//! A record is parsed from a `&[u8]` by a [`Reader`] that consumes varints and length-prefixed
//! byte strings from its front; each field is bounded by the record's own `length`, and that by
//! the section. The checks (the same for both paths, the only decoder in the crate):
//!
//! - every length is a well-formed varint, non-negative (or -1 where null is allowed), and
//!   fits in what remains of the record;
//! - offset deltas are non-negative, strictly increasing and at most `lastOffsetDelta`;
//! - a header count fits in the bytes left (two bytes per header at least), a header key is
//!   never null;
//! - the fields end exactly at the record's end, the records exactly at the section's end,
//!   and there are exactly `recordsCount` of them.
//!
//! Damage is [`CorruptKind::BadRecords`] (as [`Error::Corrupt`]), after which the iterator
//! ends. Headers are validated while the record is decoded and walked lazily, without
//! allocating, by [`RecordRef::headers`].

use bytes::Bytes;

use crate::error::{CorruptKind, Error, Result};
use crate::format::batch::{Batch, BatchHeader, TimestampType, BATCH_HEADER_LEN};
use crate::format::compression::Compression;
use crate::format::record::{Header, LogRecord};
use crate::format::varint;
use crate::offset::Offset;

const BAD: CorruptKind = CorruptKind::BadRecords;

/// One record of a batch, borrowed from the batch (or from its decompressed records): key,
/// value and headers are `&[u8]` slices, no reference counting and no allocation.
///
/// Obtained from [`DecodedRecords::iter`] or
/// [`ReadBatches::for_each_record`](crate::ReadBatches::for_each_record).
/// [`DecodedRecords::to_log_record`] and
/// [`DecodedRecords::bytes_of`] turn it, or one of its fields, into owned [`Bytes`] that
/// share the batch's buffer (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    offset: Offset,
    timestamp_ms: i64,
    timestamp_type: TimestampType,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    /// The header section (after the count), validated when the record was decoded.
    headers: &'a [u8],
    header_count: u32,
}

impl<'a> RecordRef<'a> {
    /// The record's offset.
    #[inline]
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// The record's timestamp in milliseconds since the Unix epoch: its creation time, or
    /// under [`TimestampType::LogAppendTime`] the time the log appended its batch.
    #[inline]
    pub fn timestamp_ms(&self) -> i64 {
        self.timestamp_ms
    }

    /// Which of the two [`timestamp_ms`](RecordRef::timestamp_ms) is.
    #[inline]
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// The key; `None` is distinct from empty.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value; `None` for a tombstone.
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// Number of headers.
    #[inline]
    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }

    /// The headers, in order, parsed lazily from the record's bytes (already checked).
    #[inline]
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: Reader(self.headers),
            remaining: self.header_count,
        }
    }
}

/// A header of a [`RecordRef`]: borrowed key and optional value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    key: &'a [u8],
    value: Option<&'a [u8]>,
}

impl<'a> HeaderRef<'a> {
    /// The header's key.
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The header's value; `None` is distinct from empty.
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
}

/// Iterator over a [`RecordRef`]'s headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: Reader<'a>,
    remaining: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = HeaderRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<HeaderRef<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Checked when the record was decoded; a failure here cannot happen, and ends the walk.
        let header = self.rest.header().ok();
        if header.is_none() {
            self.remaining = 0;
        }
        header
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

/// The records of one batch, ready to be walked as [`RecordRef`]s: the batch's own bytes, or
/// for a compressed batch the decompressed records it owns. Made by [`Batch::decoded`].
#[derive(Debug, Clone)]
pub struct DecodedRecords<'a> {
    batch: &'a Batch,
    /// The decompressed record section of a compressed batch.
    plain: Option<Bytes>,
}

impl<'a> DecodedRecords<'a> {
    /// Decompress `batch`'s records if it is compressed (bounded by
    /// [`DECOMPRESSED_BYTES_LIMIT`](crate::DECOMPRESSED_BYTES_LIMIT)).
    #[inline]
    pub(crate) fn new(batch: &'a Batch) -> Result<Self> {
        let header = batch.header();
        // An empty batch (count 0: Kafka's cleaner keeps such headers) has nothing to decompress.
        if header.record_count == 0 || header.compression() == Compression::None {
            return Ok(DecodedRecords { batch, plain: None });
        }
        Self::decompressed(batch)
    }

    #[inline(never)]
    fn decompressed(batch: &'a Batch) -> Result<Self> {
        let plain = crate::format::batch::decompress_records(batch.header(), batch.as_bytes())?;
        Ok(DecodedRecords {
            batch,
            plain: Some(Bytes::from(plain)),
        })
    }

    /// The batch these records belong to.
    pub fn batch(&self) -> &'a Batch {
        self.batch
    }

    /// Iterate over the records (a control batch's marker record included). An item is an
    /// error ([`Error::Corrupt`]) if the record bytes are malformed; iteration ends after it.
    #[inline]
    pub fn iter(&self) -> RecordRefs<'_> {
        let (section, start) = self.section();
        RecordRefs {
            section,
            cursor: Cursor::new(self.batch.header(), start, section.len()),
        }
    }

    /// An owned copy of `record` whose bytes share this batch's buffer (reference-counted
    /// slices, no copy). `record` should come from [`iter`](DecodedRecords::iter); bytes from
    /// elsewhere are copied.
    pub fn to_log_record(&self, record: &RecordRef<'_>) -> LogRecord {
        let owner = self.owner();
        to_log_record(owner, record)
    }

    /// `slice` (a field of a record of this batch) as owned [`Bytes`] sharing the batch's
    /// buffer; a slice from elsewhere is copied.
    pub fn bytes_of(&self, slice: &[u8]) -> Bytes {
        share(self.owner(), slice)
    }

    fn owner(&self) -> &Bytes {
        self.plain.as_ref().unwrap_or(self.batch.as_bytes())
    }

    /// The bytes the records are in, and where they start.
    #[inline]
    fn section(&self) -> (&[u8], usize) {
        match &self.plain {
            Some(p) => (p, 0),
            None => (self.batch.as_bytes(), BATCH_HEADER_LEN),
        }
    }
}

impl<'b> IntoIterator for &'b DecodedRecords<'_> {
    type Item = Result<RecordRef<'b>>;
    type IntoIter = RecordRefs<'b>;

    #[inline]
    fn into_iter(self) -> RecordRefs<'b> {
        self.iter()
    }
}

/// Iterator over a batch's records as [`RecordRef`]s; see [`DecodedRecords::iter`].
#[derive(Debug, Clone)]
pub struct RecordRefs<'a> {
    section: &'a [u8],
    cursor: Cursor,
}

impl<'a> Iterator for RecordRefs<'a> {
    type Item = Result<RecordRef<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor
            .next_record(self.section)
            .map(|r| r.map_err(corrupt))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.cursor.remaining as usize))
    }
}

/// Iterator over a batch's records as owned [`LogRecord`]s whose bytes are slices of the
/// batch (or of its decompressed records); see [`Batch::records`].
#[derive(Debug, Clone)]
pub struct Records {
    bytes: Bytes,
    cursor: Cursor,
    /// Decompression failed: yielded once, then the iterator ends.
    error: Option<Failure>,
}

/// Why a compressed batch's records could not be decompressed.
#[derive(Debug, Clone, Copy)]
enum Failure {
    Corrupt(CorruptKind),
    Codec(&'static str),
}

impl Records {
    pub(crate) fn new(batch: &Batch) -> Records {
        let header = batch.header();
        match DecodedRecords::new(batch) {
            Ok(d) => {
                let (section, start) = d.section();
                let cursor = Cursor::new(header, start, section.len());
                Records {
                    bytes: d.owner().clone(),
                    cursor,
                    error: None,
                }
            }
            Err(e) => Records {
                bytes: Bytes::new(),
                cursor: Cursor::new(header, 0, 0),
                error: Some(match e {
                    Error::CodecUnavailable { codec } => Failure::Codec(codec),
                    Error::Corrupt { reason, .. } => Failure::Corrupt(reason),
                    _ => Failure::Corrupt(CorruptKind::Compression),
                }),
            },
        }
    }
}

impl Iterator for Records {
    type Item = Result<LogRecord>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            self.cursor.failed = true;
            return Some(Err(match e {
                Failure::Corrupt(reason) => corrupt(reason),
                Failure::Codec(codec) => Error::CodecUnavailable { codec },
            }));
        }
        let bytes = &self.bytes;
        self.cursor
            .next_record(bytes)
            .map(|r| r.map(|r| to_log_record(bytes, &r)).map_err(corrupt))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.cursor.remaining as usize))
    }
}

/// `record` as a [`LogRecord`] whose bytes are slices of `owner`.
#[inline]
fn to_log_record(owner: &Bytes, record: &RecordRef<'_>) -> LogRecord {
    LogRecord {
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        timestamp_type: record.timestamp_type,
        key: record.key.map(|k| share(owner, k)),
        value: record.value.map(|v| share(owner, v)),
        headers: if record.header_count == 0 {
            Vec::new()
        } else {
            record
                .headers()
                .map(|h| Header {
                    key: share(owner, h.key),
                    value: h.value.map(|v| share(owner, v)),
                })
                .collect()
        },
    }
}

/// `slice` as a slice of `owner` when it lies inside it (no copy), else a copy.
#[inline]
fn share(owner: &Bytes, slice: &[u8]) -> Bytes {
    if slice.is_empty() {
        return Bytes::new();
    }
    let start = slice.as_ptr().addr().wrapping_sub(owner.as_ptr().addr());
    if start < owner.len() && slice.len() <= owner.len() - start {
        owner.slice(start..start + slice.len())
    } else {
        Bytes::copy_from_slice(slice)
    }
}

/// Call `f` with every record of the CRC-checked batch `batch` (whose parsed header is
/// `header`) at or after offset `from`, as [`RecordRef`]s: the sink of the read walk, with no
/// [`Batch`] and no reference count per batch. A compressed batch is decompressed once, into a
/// buffer that lives while its records are visited. The first malformed record ends the walk
/// with its error; the checks are those of [`DecodedRecords::iter`].
#[inline]
pub(crate) fn visit_records(
    header: &BatchHeader,
    batch: &[u8],
    from: Offset,
    f: &mut impl FnMut(RecordRef<'_>),
) -> Result<()> {
    if header.record_count != 0 && header.compression() != Compression::None {
        return visit_compressed(header, batch, from, f);
    }
    visit_section(header, batch, BATCH_HEADER_LEN, from, f)
}

/// [`visit_records`] of a compressed batch, out of the hot path.
#[inline(never)]
fn visit_compressed(
    header: &BatchHeader,
    batch: &[u8],
    from: Offset,
    f: &mut impl FnMut(RecordRef<'_>),
) -> Result<()> {
    let plain = crate::format::batch::decompress_records(header, batch)?;
    visit_section(header, &plain, 0, from, f)
}

#[inline]
fn visit_section(
    header: &BatchHeader,
    section: &[u8],
    start: usize,
    from: Offset,
    f: &mut impl FnMut(RecordRef<'_>),
) -> Result<()> {
    let mut cursor = Cursor::new(header, start, section.len());
    let skip = header.base_offset < from.0;
    while let Some(r) = cursor.next_record(section) {
        let r = r.map_err(corrupt)?;
        if !skip || r.offset >= from {
            f(r);
        }
    }
    Ok(())
}

pub(crate) fn corrupt(reason: CorruptKind) -> Error {
    Error::Corrupt {
        path: std::path::PathBuf::default(),
        position: 0,
        reason,
    }
}

/// Decoding state over a batch's record section; positions index the section's buffer.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    pos: usize,
    end: usize,
    remaining: u32,
    base_offset: u64,
    last_offset_delta: u32,
    /// The smallest offset delta the next record may have (deltas strictly increase).
    next_delta_min: u64,
    base_timestamp: i64,
    /// `Some(maxTimestamp)` under `LogAppendTime`: every record's timestamp.
    append_time: Option<i64>,
    timestamp_type: TimestampType,
    failed: bool,
}

impl Cursor {
    /// A cursor over the records in `[start, end)` of a section, for the batch `header`.
    #[inline]
    pub(crate) fn new(header: &BatchHeader, start: usize, end: usize) -> Self {
        let timestamp_type = header.timestamp_type();
        Cursor {
            pos: start,
            end,
            remaining: header.record_count,
            base_offset: header.base_offset,
            last_offset_delta: header.last_offset_delta,
            next_delta_min: 0,
            base_timestamp: header.base_timestamp,
            append_time: (timestamp_type == TimestampType::LogAppendTime)
                .then_some(header.max_timestamp),
            timestamp_type,
            failed: false,
        }
    }

    /// The next record of `section`, `None` after the last one or after an error.
    #[inline]
    pub(crate) fn next_record<'a>(
        &mut self,
        section: &'a [u8],
    ) -> Option<Result<RecordRef<'a>, CorruptKind>> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.end {
                self.failed = true;
                return Some(Err(BAD));
            }
            return None;
        }
        match self.decode_one(section) {
            Ok(r) => {
                self.remaining -= 1;
                Some(Ok(r))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    #[allow(clippy::inline_always)] // one call site; see `Reader`
    #[inline(always)]
    fn decode_one<'a>(&mut self, section: &'a [u8]) -> Result<RecordRef<'a>, CorruptKind> {
        let mut rest = Reader(section.get(self.pos..self.end).ok_or(BAD)?);
        let before = rest.0.len();
        let body_len = rest.len()?;
        let mut body = Reader(rest.take(body_len)?);
        let _attributes = body.byte()?;
        let timestamp_delta = body.varlong()?;
        let offset_delta = u32::try_from(body.varint()?).map_err(|_| BAD)?;
        if offset_delta > self.last_offset_delta || u64::from(offset_delta) < self.next_delta_min {
            return Err(BAD);
        }
        let key = body.opt_bytes()?;
        let value = body.opt_bytes()?;
        let header_count = u32::try_from(body.varint()?).map_err(|_| BAD)?;
        let headers = body.0;
        // Each header takes at least two bytes.
        if header_count as usize > headers.len() / 2 {
            return Err(BAD);
        }
        for _ in 0..header_count {
            body.header()?;
        }
        if !body.0.is_empty() {
            return Err(BAD);
        }
        self.pos += before - rest.0.len();
        self.next_delta_min = u64::from(offset_delta) + 1;
        Ok(RecordRef {
            offset: Offset(self.base_offset + u64::from(offset_delta)),
            timestamp_ms: self
                .append_time
                .unwrap_or(self.base_timestamp.wrapping_add(timestamp_delta)),
            timestamp_type: self.timestamp_type,
            key,
            value,
            headers,
            header_count,
        })
    }
}

/// Reads fields from the front of a byte slice; every read is bounded by the slice.
#[derive(Debug, Clone)]
struct Reader<'a>(&'a [u8]);

// Measured (benches/records.rs): left to itself, the compiler kept `varint` and `opt_bytes`
// out of line in callers outside the crate, about a third of the decoding time.
#[allow(clippy::inline_always)]
impl<'a> Reader<'a> {
    #[inline(always)]
    fn byte(&mut self) -> Result<u8, CorruptKind> {
        let (&b, rest) = self.0.split_first().ok_or(BAD)?;
        self.0 = rest;
        Ok(b)
    }

    /// A varint: one or two bytes inline (lengths up to 8191 and deltas up to 8191 take at
    /// most two), longer ones out of line.
    #[inline(always)]
    fn varint(&mut self) -> Result<i32, CorruptKind> {
        match self.short() {
            Some(v) => Ok(v),
            None => self.varint_long(),
        }
    }

    /// A one- or two-byte varint (either width) at the front, consumed; `None` otherwise.
    #[inline(always)]
    fn short(&mut self) -> Option<i32> {
        let s = self.0;
        let b0 = *s.first()?;
        if b0 < 0x80 {
            self.0 = &s[1..];
            return Some(varint::unzigzag_short(u16::from(b0)));
        }
        let b1 = *s.get(1)?;
        if b1 < 0x80 {
            self.0 = &s[2..];
            return Some(varint::unzigzag_short(
                u16::from(b0 & 0x7f) | (u16::from(b1) << 7),
            ));
        }
        None
    }

    #[inline(never)]
    fn varint_long(&mut self) -> Result<i32, CorruptKind> {
        let (v, n) = varint::get_i32(self.0).ok_or(BAD)?;
        self.0 = self.0.get(n..).ok_or(BAD)?;
        Ok(v)
    }

    /// A varlong: one or two bytes inline, longer ones out of line.
    #[inline(always)]
    fn varlong(&mut self) -> Result<i64, CorruptKind> {
        match self.short() {
            Some(v) => Ok(i64::from(v)),
            None => self.varlong_long(),
        }
    }

    #[inline(never)]
    fn varlong_long(&mut self) -> Result<i64, CorruptKind> {
        let (v, n) = varint::get_i64(self.0).ok_or(BAD)?;
        self.0 = self.0.get(n..).ok_or(BAD)?;
        Ok(v)
    }

    /// A non-negative varint length.
    #[inline(always)]
    fn len(&mut self) -> Result<usize, CorruptKind> {
        usize::try_from(self.varint()?).map_err(|_| BAD)
    }

    /// The next `n` bytes.
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptKind> {
        let (taken, rest) = self.0.split_at_checked(n).ok_or(BAD)?;
        self.0 = rest;
        Ok(taken)
    }

    /// A varint length (-1 = null) and that many bytes.
    #[inline(always)]
    fn opt_bytes(&mut self) -> Result<Option<&'a [u8]>, CorruptKind> {
        match self.varint()? {
            -1 => Ok(None),
            n => {
                let n = usize::try_from(n).map_err(|_| BAD)?;
                self.take(n).map(Some)
            }
        }
    }

    /// A header: a key (never null) and an optional value.
    #[inline(always)]
    fn header(&mut self) -> Result<HeaderRef<'a>, CorruptKind> {
        let key = self.opt_bytes()?.ok_or(BAD)?;
        let value = self.opt_bytes()?;
        Ok(HeaderRef { key, value })
    }
}
