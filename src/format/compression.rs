//! Compression codecs of Kafka's record batch v2: the attributes' bits 0–2 name the codec
//! that compressed the batch's records (everything after the 61-byte header).
//!
//! Each codec is behind a cargo feature (`gzip`, `snappy`, `lz4`, `zstd`). A batch whose codec
//! is not compiled in gives [`Error::CodecUnavailable`]; it is never misread.
//!
//! Decompression is bounded: output beyond `limit` bytes is
//! [`CorruptKind::DecompressedTooLarge`], so a decompression bomb is an error, not an OOM.

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

/// Append `src` compressed with `codec` to `out`. `Compression::None` copies.
pub(crate) fn compress(codec: Compression, src: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match codec {
        Compression::None => {
            out.extend_from_slice(src);
            Ok(())
        }
        _ => Err(Error::CodecUnavailable { codec }),
    }
}

/// Decompress `src`, written by `codec`, refusing to produce more than `limit` bytes.
pub(crate) fn decompress(codec: Compression, src: &[u8], limit: usize) -> Result<Vec<u8>> {
    match codec {
        Compression::None if src.len() <= limit => Ok(src.to_vec()),
        Compression::None => Err(Error::Corrupt {
            path: std::path::PathBuf::new(),
            position: 0,
            reason: CorruptKind::DecompressedTooLarge,
        }),
        _ => Err(Error::CodecUnavailable { codec }),
    }
}
