//! CRC-32C (Castagnoli), Kafka's checksum: every checksum seglog writes or checks goes through
//! [`crc32c`], so the implementation is chosen in one place.
//!
//! The implementation is `crc-fast`'s, which folds with carry-less multiplication (PCLMULQDQ /
//! VPCLMULQDQ on x86-64, PMULL on ARM): measured at about 52 GB/s on an 11 KiB batch on the
//! development machine, against 22 GB/s for the SSE4.2 `crc32` instruction (the `crc32c`
//! crate). Batch reads check every batch's CRC, so this is on the read path's critical line.

use crc_fast::CrcAlgorithm;

/// CRC-32C of `data` (the iSCSI / Castagnoli polynomial, reflected, as Kafka computes it).
#[inline]
pub(crate) fn crc32c(data: &[u8]) -> u32 {
    // A CRC-32 result always fits in 32 bits; crc-fast returns it widened to u64.
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, data) as u32
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn known_vectors() {
        // The standard check value of CRC-32C, and RFC 3720's 32 bytes of zeros.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[]), 0);
    }
}
