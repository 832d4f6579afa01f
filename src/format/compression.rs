//! Compression codecs of Kafka's record batch v2: the attributes' bits 0–2 name the codec
//! that compressed the batch's records (everything after the 61-byte header).
//!
//! Each codec is behind a cargo feature (`gzip`, `snappy`, `lz4`, `zstd`). A batch whose codec
//! is not compiled in gives [`Error::CodecUnavailable`]; it is never misread.
//!
//! Decompression is bounded: output beyond `limit` bytes is
//! [`CorruptKind::DecompressedTooLarge`], so a decompression bomb is an error, not an OOM, and
//! no output buffer ever grows past `limit + 1` bytes. Input that does not decode is
//! [`CorruptKind::Compression`]; neither ever panics. (`path` and `position` of these
//! `Error::Corrupt`s are left empty: the caller knows where the batch is and fills them.)
//!
//! Framings, as Kafka 3.8 writes and reads them (`org.apache.kafka.common.compress`):
//!
//! - **gzip**: a gzip stream (`GZIPOutputStream`, deflate level 6). Read: one or more gzip
//!   members back to back (as `GZIPInputStream`), each with its CRC-32 and length trailer
//!   checked; bytes after the last member that are not another member are damage.
//! - **snappy**: xerial snappy-java's `SnappyOutputStream` stream, not the snappy frame format:
//!   a 16-byte header (`\x82SNAPPY\0`, version i32 BE = 1, compatible version i32 BE = 1),
//!   then chunks of `[length i32 BE][raw snappy block]`, each of at most 32 KiB uncompressed.
//!   Read as `SnappyInputStream` does: a header may reappear between chunks (concatenated
//!   streams), and input that does not start with the header is one raw snappy block (what
//!   `Snappy.compress(byte[])` writes).
//! - **lz4**: the LZ4 frame format as `KafkaLZ4BlockOutputStream` writes it: magic
//!   `0x184D2204`, FLG `0x60` (version 1, independent blocks, no checksums, no content size),
//!   BD `0x40` (64 KiB blocks), the header checksum (xxHash32, the correct one of magic v1+),
//!   blocks of `[length u32 LE, high bit = stored uncompressed][data]`, a zero end mark. Read:
//!   what `KafkaLZ4BlockInputStream` reads (one frame, version 1, independent blocks, block
//!   sizes 64 KiB to 4 MiB, optional content size, block and content checksums), with block
//!   checksums, content checksum and content size verified; bytes after the frame are damage.
//! - **zstd**: zstd frames (streaming; the content size may be absent), level 3 when writing.
//!   Read: one or more frames; the decoder's window is capped at 2^27 bytes (libzstd's
//!   default), the largest Kafka's levels (up to 22) use.
//!
//! Each thread keeps one zstd compression context, one zstd decompression context and one LZ4
//! block buffer (64 KiB for Kafka's frames, at most 4 MiB) between calls, so a batch does not
//! set them up anew.
//!
//! Empty input is damage for every codec (every Kafka reader fails on it too): a batch with no
//! record is never decompressed (Kafka's `DefaultRecordBatch` does not either).

use crate::error::{CorruptKind, Error, Result};

/// How a batch's records are compressed (Kafka's `compression.type`). Default [`None`](Compression::None).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed (attribute value 0).
    #[default]
    None,
    /// gzip (1).
    Gzip,
    /// Snappy, in Kafka's framing (2).
    Snappy,
    /// LZ4 frame format (3).
    Lz4,
    /// Zstandard (4).
    Zstd,
}

impl Compression {
    /// The codec named by attribute bits 0–2; values 5–7 are damage.
    pub(crate) fn from_attributes(attributes: i16) -> std::result::Result<Self, CorruptKind> {
        match attributes & 0x07 {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            _ => Err(CorruptKind::BadRecords),
        }
    }

    /// The codec's name, as Kafka's `compression.type` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// Attribute bits 0–2 for this codec.
    pub(crate) fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }
}

/// Append `src` compressed with `codec` to `out`, in the framing Kafka writes.
/// `Compression::None` copies.
///
/// Fails only with [`Error::CodecUnavailable`] when `codec`'s cargo feature is off, or with an
/// encoder's internal failure as [`Error::Io`] with an empty path.
pub fn compress(codec: Compression, src: &[u8], out: &mut Vec<u8>) -> Result<()> {
    #[allow(unreachable_patterns)] // The last arm is reachable only without some feature.
    match codec {
        Compression::None => {
            out.extend_from_slice(src);
            Ok(())
        }
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::compress(src, out),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::compress(src, out),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::compress(src, out),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::compress(src, out),
        _ => Err(Error::CodecUnavailable {
            codec: codec.name(),
        }),
    }
}

/// Decompress `src`, written by `codec`, refusing to produce more than `limit` bytes.
///
/// Output over `limit` is [`CorruptKind::DecompressedTooLarge`] (found without holding more
/// than `limit + 1` bytes of output), undecodable input [`CorruptKind::Compression`], a codec
/// whose feature is off [`Error::CodecUnavailable`].
pub fn decompress(codec: Compression, src: &[u8], limit: usize) -> Result<Vec<u8>> {
    if codec != Compression::None && src.is_empty() {
        return Err(corrupt(CorruptKind::Compression));
    }
    #[allow(unreachable_patterns)] // The last arm is reachable only without some feature.
    match codec {
        Compression::None if src.len() <= limit => Ok(src.to_vec()),
        Compression::None => Err(corrupt(CorruptKind::DecompressedTooLarge)),
        #[cfg(feature = "gzip")]
        Compression::Gzip => gzip::decompress(src, limit),
        #[cfg(feature = "snappy")]
        Compression::Snappy => snappy::decompress(src, limit),
        #[cfg(feature = "lz4")]
        Compression::Lz4 => lz4::decompress(src, limit),
        #[cfg(feature = "zstd")]
        Compression::Zstd => zstd::decompress(src, limit),
        _ => Err(Error::CodecUnavailable {
            codec: codec.name(),
        }),
    }
}

/// `Error::Corrupt` with the location left for the caller to fill.
fn corrupt(reason: CorruptKind) -> Error {
    Error::Corrupt {
        path: std::path::PathBuf::new(),
        position: 0,
        reason,
    }
}

/// An encoder's internal failure (none is expected when writing to memory).
#[allow(dead_code)] // Unused when every codec is compiled out.
fn encoder_failed(e: impl std::fmt::Display) -> Error {
    Error::io(
        std::path::PathBuf::new(),
        std::io::Error::other(e.to_string()),
    )
}

/// Make room in `out` for `len` bytes in all, its capacity at most `cap_max` (≥ `len`):
/// amortized doubling that never reserves past the output limit.
#[allow(dead_code)] // Unused when every codec is compiled out.
fn reserve_within(out: &mut Vec<u8>, len: usize, cap_max: usize) {
    debug_assert!(len <= cap_max);
    if len > out.capacity() {
        let target = len.max(out.capacity().saturating_mul(2)).min(cap_max);
        out.reserve_exact(target - out.len());
    }
}

/// Grow `out`'s length to `len` (zero-filled) within capacity `cap_max`, as [`reserve_within`].
#[allow(dead_code)] // Unused when every codec is compiled out.
fn grow_to(out: &mut Vec<u8>, len: usize, cap_max: usize) {
    reserve_within(out, len, cap_max);
    out.resize(len, 0);
}

/// Read `reader` to its end, holding at most `limit + 1` bytes: more than `limit` is
/// `DecompressedTooLarge`, a read error `Compression`. `hint` sizes the first allocation.
#[cfg(any(feature = "gzip", feature = "zstd"))]
fn read_bounded(mut reader: impl std::io::Read, limit: usize, hint: usize) -> Result<Vec<u8>> {
    const FIRST_BYTES: usize = 4096;
    let cap_max = limit.saturating_add(1);
    let mut out = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            let len = filled
                .saturating_add(filled.max(hint).max(FIRST_BYTES))
                .min(cap_max);
            grow_to(&mut out, len, cap_max);
        }
        match reader.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(corrupt(CorruptKind::Compression)),
        }
        if filled > limit {
            return Err(corrupt(CorruptKind::DecompressedTooLarge));
        }
    }
    out.truncate(filled);
    Ok(out)
}

/// gzip (`GZIPOutputStream` / `GZIPInputStream`), pure Rust through `flate2`'s `miniz_oxide`.
#[cfg(feature = "gzip")]
mod gzip {
    use std::io::Write;

    use super::{encoder_failed, read_bounded};
    use crate::error::Result;

    /// Kafka's default `compression.gzip.level` (`Deflater.DEFAULT_COMPRESSION`).
    const LEVEL: u32 = 6;

    pub(super) fn compress(src: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::new(LEVEL));
        encoder.write_all(src).map_err(encoder_failed)?;
        encoder.finish().map_err(encoder_failed)?;
        Ok(())
    }

    pub(super) fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>> {
        read_bounded(
            flate2::read::MultiGzDecoder::new(src),
            limit,
            src.len().saturating_mul(4),
        )
    }
}

/// Snappy in xerial snappy-java's stream framing (`SnappyOutputStream` / `SnappyInputStream`).
#[cfg(feature = "snappy")]
mod snappy {
    use super::{corrupt, encoder_failed, grow_to};
    use crate::error::{CorruptKind, Result};

    /// `SnappyCodec.MAGIC_HEADER`.
    const MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
    /// Magic, version i32, compatible version i32.
    const HEADER_LEN: usize = 16;
    /// The stream version written, and the lowest one read (`MINIMUM_COMPATIBLE_VERSION`).
    const VERSION: i32 = 1;
    /// `SnappyOutputStream`'s default block size: uncompressed bytes per chunk.
    const CHUNK_BYTES: usize = 32 * 1024;

    pub(super) fn compress(src: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        let mut encoder = snap::raw::Encoder::new();
        for chunk in src.chunks(CHUNK_BYTES) {
            let length_at = out.len();
            let data_at = length_at + 4;
            out.resize(data_at + snap::raw::max_compress_len(chunk.len()), 0);
            let n = encoder
                .compress(chunk, &mut out[data_at..])
                .map_err(encoder_failed)?;
            out.truncate(data_at + n);
            let n = i32::try_from(n).map_err(encoder_failed)?;
            out[length_at..data_at].copy_from_slice(&n.to_be_bytes());
        }
        Ok(())
    }

    pub(super) fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        if src.len() < HEADER_LEN || !src.starts_with(MAGIC) {
            block_into(src, limit, &mut out)?;
            return Ok(out);
        }
        let mut at = 0;
        while at < src.len() {
            let rest = &src[at..];
            if rest.starts_with(MAGIC) {
                // A header: the stream's own, or a concatenated stream's.
                check_header(rest)?;
                at += HEADER_LEN;
                continue;
            }
            let length = rest
                .get(..4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(corrupt(CorruptKind::Compression))?;
            let chunk = rest
                .get(4..4 + length)
                .ok_or(corrupt(CorruptKind::Compression))?;
            block_into(chunk, limit, &mut out)?;
            at += 4 + length;
        }
        Ok(out)
    }

    /// `src`, starting with the magic, holds a whole header of a version this reader knows.
    fn check_header(src: &[u8]) -> Result<()> {
        match src.get(8..12) {
            Some(v)
                if src.len() >= HEADER_LEN
                    && i32::from_be_bytes([v[0], v[1], v[2], v[3]]) >= VERSION =>
            {
                Ok(())
            }
            _ => Err(corrupt(CorruptKind::Compression)),
        }
    }

    /// Append raw snappy block `block`'s output to `out`, keeping `out` within `limit` bytes.
    fn block_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<()> {
        let n = snap::raw::decompress_len(block).map_err(|_| corrupt(CorruptKind::Compression))?;
        if n > limit - out.len() {
            return Err(corrupt(CorruptKind::DecompressedTooLarge));
        }
        let start = out.len();
        grow_to(out, start + n, limit);
        match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
            Ok(written) if written == n => Ok(()),
            _ => Err(corrupt(CorruptKind::Compression)),
        }
    }
}

/// LZ4 frames as Kafka's `KafkaLZ4BlockOutputStream` writes and `KafkaLZ4BlockInputStream`
/// reads them, over `lz4_flex`'s block codec.
#[cfg(feature = "lz4")]
mod lz4 {
    use std::cell::RefCell;

    use super::{corrupt, encoder_failed, reserve_within};
    use crate::error::{CorruptKind, Result};

    const MAGIC: u32 = 0x184D_2204;
    /// FLG: version 1 (bits 6–7), independent blocks (bit 5); what Kafka writes.
    const FLG_WRITTEN: u8 = 0x60;
    /// BD: 64 KiB blocks (code 4 in bits 4–6); what Kafka writes.
    const BD_WRITTEN: u8 = 0x40;
    const FLG_VERSION_MASK: u8 = 0xC0;
    const FLG_VERSION_1: u8 = 0x40;
    const FLG_INDEPENDENT: u8 = 0x20;
    const FLG_BLOCK_CHECKSUM: u8 = 0x10;
    const FLG_CONTENT_SIZE: u8 = 0x08;
    const FLG_CONTENT_CHECKSUM: u8 = 0x04;
    /// Bit 0 (a dictionary id, which Kafka does not support) and the reserved bit 1.
    const FLG_UNSUPPORTED: u8 = 0x03;
    /// A block length's high bit: the block is stored uncompressed.
    const STORED: u32 = 0x8000_0000;
    /// Uncompressed bytes per block written (BD code 4).
    const BLOCK_BYTES: usize = 64 * 1024;

    /// What a frame's descriptor says.
    struct Frame {
        /// Bytes of magic + descriptor + header checksum.
        header_len: usize,
        block_max: usize,
        block_checksums: bool,
        content_checksum: bool,
        content_size: Option<u64>,
    }

    fn xxh32(data: &[u8]) -> u32 {
        twox_hash::XxHash32::oneshot(0, data)
    }

    /// The header checksum byte over descriptor bytes `descriptor` (FLG through content size).
    fn header_checksum(descriptor: &[u8]) -> u8 {
        (xxh32(descriptor) >> 8) as u8
    }

    pub(super) fn compress(src: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[FLG_WRITTEN, BD_WRITTEN]);
        out.push(header_checksum(&[FLG_WRITTEN, BD_WRITTEN]));
        for block in src.chunks(BLOCK_BYTES) {
            let length_at = out.len();
            let data_at = length_at + 4;
            out.resize(
                data_at + lz4_flex::block::get_maximum_output_size(block.len()),
                0,
            );
            let n = lz4_flex::block::compress_into(block, &mut out[data_at..])
                .map_err(encoder_failed)?;
            // As Kafka: a block that does not shrink is stored as it is.
            let word = if n >= block.len() {
                out.truncate(data_at);
                out.extend_from_slice(block);
                block.len() as u32 | STORED
            } else {
                out.truncate(data_at + n);
                n as u32
            };
            out[length_at..data_at].copy_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes()); // End mark; no content checksum.
        Ok(())
    }

    pub(super) fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>> {
        let bad = || corrupt(CorruptKind::Compression);
        let frame = read_header(src)?;
        let mut at = frame.header_len;
        let mut out = Vec::new();
        loop {
            let word = read_u32(src, at)?;
            at += 4;
            let length = (word & !STORED) as usize;
            if length == 0 {
                break; // End mark (Kafka also takes a stored block of length 0 as one).
            }
            if length > frame.block_max {
                return Err(bad());
            }
            let block = src.get(at..at + length).ok_or_else(bad)?;
            at += length;
            if frame.block_checksums {
                if read_u32(src, at)? != xxh32(block) {
                    return Err(bad());
                }
                at += 4;
            }
            block_into(block, word & STORED == 0, frame.block_max, limit, &mut out)?;
        }
        if frame.content_checksum {
            if read_u32(src, at)? != xxh32(&out) {
                return Err(bad());
            }
            at += 4;
        }
        let size_ok = frame.content_size.is_none_or(|n| n == out.len() as u64);
        if !size_ok || at != src.len() {
            return Err(bad());
        }
        Ok(out)
    }

    fn read_u32(src: &[u8], at: usize) -> Result<u32> {
        src.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(CorruptKind::Compression))
    }

    /// Check the magic and the frame descriptor, as `KafkaLZ4BlockInputStream.readHeader` does.
    fn read_header(src: &[u8]) -> Result<Frame> {
        let bad = || corrupt(CorruptKind::Compression);
        if read_u32(src, 0)? != MAGIC || src.len() < 7 {
            return Err(bad());
        }
        let (flg, bd) = (src[4], src[5]);
        let flg_ok = flg & FLG_VERSION_MASK == FLG_VERSION_1
            && flg & FLG_INDEPENDENT != 0
            && flg & FLG_UNSUPPORTED == 0;
        let block_code = (bd >> 4) & 0x07;
        if !flg_ok || bd & 0x8F != 0 || !(4..=7).contains(&block_code) {
            return Err(bad());
        }
        let mut header_len = 7;
        let mut content_size = None;
        if flg & FLG_CONTENT_SIZE != 0 {
            let size = src.get(6..14).ok_or_else(bad)?;
            content_size = Some(u64::from_le_bytes(size.try_into().map_err(|_| bad())?));
            header_len += 8;
        }
        let checksum = *src.get(header_len - 1).ok_or_else(bad)?;
        if checksum != header_checksum(&src[4..header_len - 1]) {
            return Err(bad());
        }
        Ok(Frame {
            header_len,
            block_max: 1 << (2 * block_code + 8),
            block_checksums: flg & FLG_BLOCK_CHECKSUM != 0,
            content_checksum: flg & FLG_CONTENT_CHECKSUM != 0,
            content_size,
        })
    }

    /// Append one block's output to `out`, at most `block_max` bytes and within `limit`.
    fn block_into(
        block: &[u8],
        compressed: bool,
        block_max: usize,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let room_left = limit - out.len();
        if !compressed {
            if block.len() > room_left {
                return Err(corrupt(CorruptKind::DecompressedTooLarge));
            }
            reserve_within(out, out.len() + block.len(), limit);
            out.extend_from_slice(block);
            return Ok(());
        }
        // Decompress into a block buffer kept per thread: zeroing a fresh block-sized buffer
        // for every batch would cost more than the decompression.
        let room = block_max.min(room_left);
        with_scratch(room, |scratch| {
            match lz4_flex::block::decompress_into(block, scratch) {
                Ok(n) => {
                    reserve_within(out, out.len() + n, limit);
                    out.extend_from_slice(&scratch[..n]);
                    Ok(())
                }
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. })
                    if room < block_max =>
                {
                    Err(corrupt(CorruptKind::DecompressedTooLarge))
                }
                Err(_) => Err(corrupt(CorruptKind::Compression)),
            }
        })
    }

    thread_local! {
        /// One block's worth of output (64 KiB as Kafka writes, at most 4 MiB), per thread.
        static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    /// Run `f` on `len` initialized bytes of this thread's block buffer.
    fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                if scratch.len() < len {
                    scratch.resize(len, 0);
                }
                f(&mut scratch[..len])
            }
            // Not reached (nothing here calls itself); a fresh buffer keeps it correct.
            Err(_) => f(&mut vec![0; len]),
        })
    }
}

/// Zstandard frames (Kafka's `ZstdCompression`, zstd-jni), through libzstd.
#[cfg(feature = "zstd")]
mod zstd {
    use std::cell::RefCell;
    use std::io::Write;

    use zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter};

    use super::{encoder_failed, read_bounded};
    use crate::error::Result;

    /// Kafka's default `compression.zstd.level` (`ZSTD_CLEVEL_DEFAULT`).
    const LEVEL: i32 = 3;
    /// libzstd's default cap on a frame's window (128 MiB): every level Kafka allows fits.
    const WINDOW_LOG_MAX: u32 = 27;

    thread_local! {
        /// A compression context per thread, reused so that its tables are not allocated
        /// again for every batch.
        static COMPRESS_CONTEXT: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    }

    pub(super) fn compress(src: &[u8], out: &mut Vec<u8>) -> Result<()> {
        with_cached(&COMPRESS_CONTEXT, new_compress_context, |context| {
            compress_with(src, out, context)
        })
    }

    /// Run `f` with this thread's cached context from `cell`, made by `make` on first use.
    fn with_cached<C: 'static, R>(
        cell: &'static std::thread::LocalKey<RefCell<Option<C>>>,
        make: fn() -> Result<C>,
        f: impl FnOnce(&mut C) -> Result<R>,
    ) -> Result<R> {
        cell.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let context = match &mut *slot {
                    Some(context) => context,
                    None => slot.insert(make()?),
                };
                f(context)
            }
            // Not reached (nothing here calls itself); a fresh context keeps it correct.
            Err(_) => f(&mut make()?),
        })
    }

    fn new_compress_context() -> Result<CCtx<'static>> {
        let mut context = CCtx::try_create().ok_or_else(|| encoder_failed("zstd context"))?;
        context
            .set_parameter(CParameter::CompressionLevel(LEVEL))
            .map_err(|code| encoder_failed(zstd::zstd_safe::get_error_name(code)))?;
        Ok(context)
    }

    fn compress_with(src: &[u8], out: &mut Vec<u8>, context: &mut CCtx<'static>) -> Result<()> {
        // `with_context` resets the session (not the parameters).
        let mut encoder = zstd::stream::write::Encoder::with_context(out, context);
        encoder.write_all(src).map_err(encoder_failed)?;
        encoder.finish().map_err(encoder_failed)?;
        Ok(())
    }

    thread_local! {
        /// A decompression context per thread, reused so that its window and tables are not
        /// allocated again for every batch.
        static DECOMPRESS_CONTEXT: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    }

    pub(super) fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>> {
        with_cached(&DECOMPRESS_CONTEXT, new_context, |context| {
            decompress_with(src, limit, context)
        })
    }

    fn new_context() -> Result<DCtx<'static>> {
        let mut context = DCtx::try_create().ok_or_else(|| encoder_failed("zstd context"))?;
        context
            .set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))
            .map_err(|code| encoder_failed(zstd::zstd_safe::get_error_name(code)))?;
        Ok(context)
    }

    fn decompress_with(src: &[u8], limit: usize, context: &mut DCtx<'static>) -> Result<Vec<u8>> {
        // `with_context` resets the session (not the parameters): no state of an earlier,
        // possibly damaged, stream is left.
        let decoder = zstd::stream::read::Decoder::with_context(src, context);
        read_bounded(decoder, limit, src.len().saturating_mul(4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every codec compiled into this build.
    fn codecs() -> Vec<Compression> {
        let mut all = vec![Compression::None];
        if cfg!(feature = "gzip") {
            all.push(Compression::Gzip);
        }
        if cfg!(feature = "snappy") {
            all.push(Compression::Snappy);
        }
        if cfg!(feature = "lz4") {
            all.push(Compression::Lz4);
        }
        if cfg!(feature = "zstd") {
            all.push(Compression::Zstd);
        }
        all
    }

    fn compressed(codec: Compression, src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        compress(codec, src, &mut out).unwrap();
        out
    }

    fn reason(result: Result<Vec<u8>>) -> CorruptKind {
        match result {
            Err(Error::Corrupt {
                reason,
                path,
                position: 0,
            }) if path.as_os_str().is_empty() => reason,
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    /// Bytes that compress: runs and repeats, with some noise.
    fn compressible(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x.is_multiple_of(8) {
                    x as u8
                } else {
                    (i / 64) as u8
                }
            })
            .collect()
    }

    #[test]
    fn round_trip_crosses_block_and_chunk_boundaries() {
        // Snappy chunks are 32 KiB, LZ4 blocks 64 KiB: 300 KiB spans several of each, and
        // random bytes make LZ4 store blocks uncompressed.
        let mut noise = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100 * 1024 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            noise.push((x >> 56) as u8);
        }
        let mut src = compressible(200 * 1024, 7);
        src.extend_from_slice(&noise);
        for codec in codecs() {
            let packed = compressed(codec, &src);
            assert_eq!(
                decompress(codec, &packed, src.len()).unwrap(),
                src,
                "{codec:?}"
            );
            let over = reason(decompress(codec, &packed, src.len() - 1));
            assert_eq!(over, CorruptKind::DecompressedTooLarge, "{codec:?}");
        }
    }

    #[test]
    fn empty_input_round_trips_but_empty_bytes_do_not_decode() {
        for codec in codecs() {
            let packed = compressed(codec, b"");
            assert_eq!(decompress(codec, &packed, 0).unwrap(), b"", "{codec:?}");
            if codec != Compression::None {
                assert!(!packed.is_empty());
                let kind = reason(decompress(codec, b"", 1 << 20));
                assert_eq!(kind, CorruptKind::Compression, "{codec:?}");
            }
        }
    }

    /// One batch of a Kafka-written segment: codec, records count, compressed records.
    struct KafkaBatch {
        codec: Compression,
        count: usize,
        payload: Vec<u8>,
    }

    /// Walk the batches of `tests/data/kafka/compressed-<name>/00000000000000000000.log`.
    fn kafka_batches(name: &str) -> Vec<KafkaBatch> {
        let path = format!(
            "{}/tests/data/kafka/compressed-{name}/00000000000000000000.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let log = std::fs::read(&path).unwrap();
        let mut batches = Vec::new();
        let mut at = 0;
        while at < log.len() {
            let be32 = |i: usize| i32::from_be_bytes(log[at + i..at + i + 4].try_into().unwrap());
            let length = usize::try_from(be32(8)).unwrap();
            let attributes = i16::from_be_bytes([log[at + 21], log[at + 22]]);
            batches.push(KafkaBatch {
                codec: Compression::from_attributes(attributes).unwrap(),
                count: usize::try_from(be32(57)).unwrap(),
                payload: log[at + 61..at + 12 + length].to_vec(),
            });
            at += 12 + length;
        }
        assert_eq!(at, log.len(), "{path}: batches end at the file's end");
        batches
    }

    /// A zigzag varint at the front of `buf`: (value, bytes).
    fn varint(buf: &[u8]) -> (i64, usize) {
        let mut raw = 0u64;
        for (i, b) in buf.iter().enumerate().take(5) {
            raw |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return ((raw >> 1) as i64 ^ -((raw & 1) as i64), i + 1);
            }
        }
        panic!("bad varint");
    }

    /// The number of Kafka records in `records`, each a varint length and that many bytes,
    /// which must end exactly at the end.
    fn count_records(records: &[u8]) -> usize {
        let (mut at, mut count) = (0, 0);
        while at < records.len() {
            let (length, n) = varint(&records[at..]);
            at += n + usize::try_from(length).unwrap();
            count += 1;
        }
        assert_eq!(
            at,
            records.len(),
            "record lengths sum to the decompressed length"
        );
        count
    }

    /// Decompress every batch Kafka wrote with `codec` and count its records.
    fn kafka_records(name: &str, codec: Compression) -> Vec<Vec<u8>> {
        let batches = kafka_batches(name);
        assert_eq!(batches.len(), 12);
        let mut total = 0;
        let outputs: Vec<Vec<u8>> = batches
            .iter()
            .map(|b| {
                assert_eq!(b.codec, codec);
                let records = decompress(codec, &b.payload, 1 << 20).unwrap();
                assert_eq!(count_records(&records), b.count, "{name}");
                total += b.count;
                records
            })
            .collect();
        assert_eq!(total, 246);
        outputs
    }

    #[test]
    #[cfg(all(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    ))]
    fn kafka_written_batches_decompress_to_their_records() {
        let gzip = kafka_records("gzip", Compression::Gzip);
        // The same records in every fixture: the four codecs give the same bytes.
        for (name, codec) in [
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            assert!(
                kafka_records(name, codec) == gzip,
                "{name} decodes as gzip does"
            );
        }
    }

    #[test]
    #[cfg(all(
        feature = "gzip",
        feature = "snappy",
        feature = "lz4",
        feature = "zstd"
    ))]
    fn written_framing_is_kafkas() {
        // Kafka's own payloads start with the bytes our encoders write: gzip's whole 10-byte
        // header (Java's: no mtime, no flags, OS 255), snappy-java's 16-byte stream header, the
        // LZ4 frame descriptor (FLG, BD and header checksum), zstd's magic, frame header
        // descriptor (no content size, no checksum) and window (2 MiB).
        for (name, codec, same) in [
            ("gzip", Compression::Gzip, 10),
            ("snappy", Compression::Snappy, 16),
            ("lz4", Compression::Lz4, 7),
            ("zstd", Compression::Zstd, 6),
        ] {
            let kafka = &kafka_batches(name)[1].payload;
            let ours = compressed(codec, &decompress(codec, kafka, 1 << 20).unwrap());
            assert_eq!(ours[..same], kafka[..same], "{name}");
        }
    }

    #[test]
    #[cfg(feature = "lz4")]
    fn lz4_checks_what_the_frame_descriptor_promises() {
        let src = compressible(100_000, 3);
        let packed = compressed(Compression::Lz4, &src);
        // Rewrite the frame with block checksums, content size and content checksum: all
        // verified.
        let descriptor = [0x60 | 0x10 | 0x08 | 0x04, 0x40];
        let mut framed = packed[..4].to_vec();
        framed.extend_from_slice(&descriptor);
        framed.extend_from_slice(&(src.len() as u64).to_le_bytes());
        framed.push((twox_hash::XxHash32::oneshot(0, &framed[4..]) >> 8) as u8);
        let mut at = 7;
        loop {
            let word = u32::from_le_bytes(packed[at..at + 4].try_into().unwrap());
            framed.extend_from_slice(&word.to_le_bytes());
            at += 4;
            if word == 0 {
                break;
            }
            let block = &packed[at..at + (word & 0x7FFF_FFFF) as usize];
            framed.extend_from_slice(block);
            framed.extend_from_slice(&twox_hash::XxHash32::oneshot(0, block).to_le_bytes());
            at += block.len();
        }
        framed.extend_from_slice(&twox_hash::XxHash32::oneshot(0, &src).to_le_bytes());
        assert_eq!(
            decompress(Compression::Lz4, &framed, src.len()).unwrap(),
            src
        );
        let len = framed.len();
        for at in [4, 6, 10, 14, 20, len - 6, len - 1] {
            let mut bad = framed.clone();
            bad[at] ^= 1;
            let kind = reason(decompress(Compression::Lz4, &bad, src.len()));
            assert_eq!(kind, CorruptKind::Compression, "byte {at}");
        }
        // Dependent blocks and trailing bytes are refused, as Kafka refuses the former.
        let mut dependent = packed.clone();
        dependent[4] = 0x40;
        dependent[6] = (twox_hash::XxHash32::oneshot(0, &dependent[4..6]) >> 8) as u8;
        assert_eq!(
            reason(decompress(Compression::Lz4, &dependent, src.len())),
            CorruptKind::Compression
        );
        let mut trailing = packed;
        trailing.push(0);
        assert_eq!(
            reason(decompress(Compression::Lz4, &trailing, src.len())),
            CorruptKind::Compression
        );
    }

    #[test]
    #[cfg(feature = "snappy")]
    fn snappy_reads_raw_blocks_and_concatenated_streams() {
        let src = compressible(70_000, 5);
        let raw = snap::raw::Encoder::new().compress_vec(&src).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, src.len()).unwrap(),
            src
        );
        let kind = reason(decompress(Compression::Snappy, &raw, src.len() - 1));
        assert_eq!(kind, CorruptKind::DecompressedTooLarge);
        let mut two = compressed(Compression::Snappy, &src[..30_000]);
        two.extend_from_slice(&compressed(Compression::Snappy, &src[30_000..]));
        assert_eq!(
            decompress(Compression::Snappy, &two, src.len()).unwrap(),
            src
        );
        // A header of version 0, or a chunk length past the end, is damage.
        let mut old = two.clone();
        old[11] = 0;
        assert_eq!(
            reason(decompress(Compression::Snappy, &old, src.len())),
            CorruptKind::Compression
        );
        let mut long = two;
        long[16] = 0x7F;
        assert_eq!(
            reason(decompress(Compression::Snappy, &long, src.len())),
            CorruptKind::Compression
        );
    }

    #[test]
    fn a_codec_is_read_exactly_when_its_feature_is_on() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let read = decompress(codec, b"not compressed", 100);
            let written = compress(codec, b"x", &mut Vec::new());
            if codecs().contains(&codec) {
                assert!(matches!(read, Err(Error::Corrupt { .. })), "{codec:?}");
                assert!(written.is_ok(), "{codec:?}");
            } else {
                let unavailable = |r: &Error| matches!(r, Error::CodecUnavailable { codec: c } if *c == codec.name());
                assert!(read.as_ref().is_err_and(unavailable), "{codec:?}");
                assert!(written.as_ref().is_err_and(unavailable), "{codec:?}");
            }
        }
    }

    #[test]
    #[cfg(all(feature = "gzip", feature = "zstd"))]
    fn gzip_members_and_zstd_frames_may_follow_each_other() {
        let src = compressible(50_000, 9);
        let (head, tail) = src.split_at(20_000);
        for codec in [Compression::Gzip, Compression::Zstd] {
            let mut two = compressed(codec, head);
            if codec == Compression::Zstd {
                // A skippable frame between the two: magic 0x184D2A50, length, data.
                two.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
                two.extend_from_slice(&3u32.to_le_bytes());
                two.extend_from_slice(b"abc");
            }
            two.extend_from_slice(&compressed(codec, tail));
            assert_eq!(
                decompress(codec, &two, src.len()).unwrap(),
                src,
                "{codec:?}"
            );
            two.push(0x42);
            let kind = reason(decompress(codec, &two, src.len()));
            assert_eq!(
                kind,
                CorruptKind::Compression,
                "{codec:?}: trailing garbage"
            );
        }
    }

    #[test]
    fn every_codec_refuses_a_bomb_at_the_limit() {
        // 64 MiB of zeros in each codec, read with a 1 MiB limit.
        const BOMB_BYTES: usize = 64 << 20;
        const LIMIT: usize = 1 << 20;
        let zeros = vec![0u8; BOMB_BYTES];
        for codec in codecs() {
            let bomb = compressed(codec, &zeros);
            let kind = reason(decompress(codec, &bomb, LIMIT));
            assert_eq!(kind, CorruptKind::DecompressedTooLarge, "{codec:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_arbitrary_bytes(
            src in prop::collection::vec(any::<u8>(), 0..20_000),
            seed in any::<u64>(),
        ) {
            let compressible = compressible(src.len(), seed);
            for codec in codecs() {
                for src in [&src, &compressible] {
                    let packed = compressed(codec, src);
                    prop_assert_eq!(&decompress(codec, &packed, src.len()).unwrap(), src);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            src in prop::collection::vec(any::<u8>(), 0..4096),
            limit in 0usize..100_000,
        ) {
            for codec in codecs() {
                if let Ok(out) = decompress(codec, &src, limit) {
                    prop_assert!(out.len() <= limit);
                }
            }
        }

        /// Damage to a valid stream (a byte changed, the end cut off) is an error or a
        /// bounded output, never a panic; checksummed codecs catch it.
        #[test]
        fn damaged_streams_never_panic(
            len in 1usize..5000,
            seed in any::<u64>(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let src = compressible(len, seed);
            for codec in codecs() {
                let packed = compressed(codec, &src);
                let mut flipped = packed.clone();
                flipped[at.index(packed.len())] ^= xor;
                if let Ok(out) = decompress(codec, &flipped, len) {
                    prop_assert!(out.len() <= len);
                    // gzip's CRC-32 catches any change that still decodes.
                    prop_assert!(codec != Compression::Gzip || out == src);
                }
                let truncated = &packed[..cut.index(packed.len())];
                if let Ok(out) = decompress(codec, truncated, len) {
                    prop_assert!(out.len() <= len);
                    prop_assert!(codec == Compression::None || codec == Compression::Snappy);
                }
            }
        }
    }
}
