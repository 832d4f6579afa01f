//! A test-only fault seam for the write path.
//!
//! Install one with `PartitionConfig::with_fault_injector` (hidden from the docs) and arm it
//! to make the next segment write or fsync fail, as a full disk or a failing device would.

use std::sync::atomic::{AtomicBool, Ordering};

/// Makes the next write or fsync of a partition fail. Not for production use.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct FaultInjector {
    fail_write: AtomicBool,
    fail_sync: AtomicBool,
}

impl FaultInjector {
    /// A disarmed injector.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next segment write fails (once).
    pub fn fail_next_write(&self) {
        self.fail_write.store(true, Ordering::SeqCst);
    }

    /// The next fsync fails (once).
    pub fn fail_next_sync(&self) {
        self.fail_sync.store(true, Ordering::SeqCst);
    }

    pub(crate) fn check_write(&self) -> std::io::Result<()> {
        Self::take(&self.fail_write, "injected write failure")
    }

    pub(crate) fn check_sync(&self) -> std::io::Result<()> {
        Self::take(&self.fail_sync, "injected fsync failure")
    }

    fn take(flag: &AtomicBool, what: &str) -> std::io::Result<()> {
        if flag.swap(false, Ordering::SeqCst) {
            Err(std::io::Error::other(what.to_owned()))
        } else {
            Ok(())
        }
    }
}
