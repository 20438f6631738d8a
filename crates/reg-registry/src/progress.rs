//! Progress reporting from long operations to whoever shows it.

/// Receives progress of push and pull. Implementations must be cheap and
/// thread-safe: `advance` is called from worker threads.
pub trait Progress: Sync {
    /// A new phase begins (`hashing`, `storing`, `writing`) over `total` bytes.
    fn phase(&self, name: &'static str, total: u64);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
    /// The current phase needs `bytes` more than its total said (a
    /// download that finds a delta parent it must fetch too).
    fn grow(&self, bytes: u64) {
        let _ = bytes;
    }
    /// The operation is over (success or not).
    fn finish(&self);
}

/// Shows nothing.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
