//! The `damaged_dir` fuzz target's body (`fuzz/bodies/damaged_dir.rs`) on proptest's inputs
//! and hand-picked damage: a small partition directory with bytes changed, files cut, zeroed
//! or deleted opens with a typed error or reads back exactly what was written.

use proptest::prelude::*;

#[path = "../fuzz/bodies/damaged_dir.rs"]
mod fuzz_body;

#[test]
fn hand_picked() {
    // Each kind of damage to each file, after a clean close or a crash.
    for flags in 0..4u8 {
        fuzz_body::damaged_dir(&[flags]);
    }
    for file in 0..10u8 {
        for kind in 0..6u8 {
            fuzz_body::damaged_dir(&[file % 2, file, kind, 0x35, 0x01]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_damage(data in prop::collection::vec(any::<u8>(), 0..40)) {
        fuzz_body::damaged_dir(&data);
    }
}
