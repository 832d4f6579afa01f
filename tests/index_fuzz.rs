//! The `load_indexes` fuzz target's body (`fuzz/bodies/load_indexes.rs`) on proptest's inputs
//! and on hand-picked shapes: whatever bytes a segment's `.index` and `.timeindex` hold, a
//! partition opens, reads every record at its offset and answers time lookups correctly.

use proptest::prelude::*;

#[path = "../fuzz/bodies/load_indexes.rs"]
mod fuzz_body;

#[test]
fn empty_and_truncated_indexes() {
    fuzz_body::load_indexes(&[]);
    fuzz_body::load_indexes(&[3, 0, 0]);
    fuzz_body::load_indexes(&[0; 40]);
}

#[test]
fn plausible_entries_pointing_at_the_wrong_places() {
    // Offset entries: (relative offset, position) big-endian, pointing mid-batch or past the
    // log; time entries with timestamps out of order.
    let mut data = vec![24u8];
    for (rel, pos) in [(3u32, 5u32), (7, 100), (9, 90_000)] {
        data.extend_from_slice(&rel.to_be_bytes());
        data.extend_from_slice(&pos.to_be_bytes());
    }
    for (ts, rel) in [(5_000i64, 2u32), (1_000, 5)] {
        data.extend_from_slice(&ts.to_be_bytes());
        data.extend_from_slice(&rel.to_be_bytes());
    }
    fuzz_body::load_indexes(&data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn arbitrary_index_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzz_body::load_indexes(&data);
    }
}
