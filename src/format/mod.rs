//! Layer 1, pure bytes: the record batch format, records, varints and checksums.
//!
//! Nothing here touches a file: every function maps bytes to values and back, checks every
//! length against the buffer it came from, and reports damage as
//! [`Error::Corrupt`](crate::error::Error::Corrupt). The byte layout is documented in
//! `docs/format.md`.

pub(crate) mod batch;
pub(crate) mod compression;
pub(crate) mod crc;
pub(crate) mod decode;
#[cfg(test)]
mod encode_oracle;
pub(crate) mod record;
pub(crate) mod varint;
