//! The one way a request reaches the registry.
//!
//! A `reg_registry::Registry` holds no lock (see `reg_registry::lock`): the index
//! is opened for one short transaction at a time and every read sees the
//! last committed state, so the server keeps one registry for its whole
//! life and requests run side by side, a push landing between two of
//! them. Registry work runs on tokio's blocking pool, at most
//! [`MAX_PARALLEL`] requests at a time (a bound on threads and memory,
//! waited for asynchronously).
//!
//! A request that waits for another process (a push committing, gc) is
//! said on stderr, at most once every [`NOTICE_EVERY`] however many
//! requests wait; the requests' waits for each other are never said
//! (`reg_registry::lock` queues the threads of one process among themselves).

use crate::failure::Failure;
use reg_registry::{Config, Registry, RegistryError, WaitNotice, WaitPolicy};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Requests doing registry work at once.
pub const MAX_PARALLEL: usize = 8;

/// The shortest time between two waiting notices on stderr.
pub const NOTICE_EVERY: Duration = Duration::from_secs(60);

/// The registry, shared by the requests, off the async threads.
pub struct RegistryAccess {
    registry: Arc<Registry>,
    /// Bounds the registry work running at once.
    turn: Arc<Semaphore>,
}

impl RegistryAccess {
    /// Access to the registry `config` names.
    pub fn new(config: Config) -> Result<RegistryAccess, RegistryError> {
        let registry =
            Registry::open(config)?.with_waits(WaitPolicy::default(), Box::new(notice_at_most_every(NOTICE_EVERY)));
        Ok(RegistryAccess {
            registry: Arc::new(registry),
            turn: Arc::new(Semaphore::new(MAX_PARALLEL)),
        })
    }

    /// The registry directory.
    pub fn root(&self) -> &std::path::Path {
        &self.registry.config().root
    }

    /// Run `work` with the registry open, on the blocking pool. Waiting
    /// for the turn is asynchronous, so a request that times out or whose
    /// client goes away gives up its place.
    pub async fn read<T, F>(&self, work: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Arc<Registry>) -> Result<T, RegistryError> + Send + 'static,
    {
        let permit = self
            .turn
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("the server is shutting down"))?;
        let registry = self.registry.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _turn = permit;
            work(&registry)
        });
        match job.await {
            Ok(result) => result.map_err(Failure::from),
            Err(e) => Err(Failure::internal(format!("registry task failed: {e}"))),
        }
    }
}

/// A notice callback that prints `reg serve: waiting for ...` when the last
/// one printed is at least `every` old (or none was).
fn notice_at_most_every(every: Duration) -> impl Fn(&WaitNotice) + Send + Sync {
    let start = Instant::now();
    // Milliseconds after `start` of the last notice printed, plus one (0: none yet).
    let last = AtomicU64::new(0);
    move |notice| {
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        let before = last.load(Ordering::Relaxed);
        let due = before == 0 || now.saturating_sub(before) >= every;
        // One thread wins a tie; the others stay silent.
        if due
            && last
                .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            eprintln!("reg serve: {notice}");
        }
    }
}
