//! The `offset_store_log` fuzz target's body (`fuzz/bodies/offset_store_log.rs`) on
//! proptest's inputs and hand-picked ones: whatever bytes the file offset store's log holds,
//! `open` gives a typed error or a working store, and a damaged real log gives the state of
//! a prefix of its commits, never an offset that was not committed.

use proptest::prelude::*;

#[path = "../fuzz/bodies/offset_store_log.rs"]
mod fuzz_body;

#[test]
fn hand_picked() {
    fuzz_body::offset_store_log(&[]);
    fuzz_body::offset_store_log(&[0]);
    fuzz_body::offset_store_log(&[1, 2, 1, 0, 0, 0]);
    // A real log: undamaged; cut by 7 bytes; with garbage appended.
    fuzz_body::offset_store_log(&[2, 0]);
    fuzz_body::offset_store_log(&[2, 0x10, 1]);
    fuzz_body::offset_store_log(&[2, 0x20, 9, 9, 9, 1, 2, 3, 4]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn arbitrary_logs(data in prop::collection::vec(any::<u8>(), 0..200)) {
        fuzz_body::offset_store_log(&data);
    }

    #[test]
    fn damaged_real_logs(mode in any::<u8>(), edits in prop::collection::vec(any::<u8>(), 0..24)) {
        let mut data = vec![2, mode];
        data.extend(edits);
        fuzz_body::offset_store_log(&data);
    }
}
