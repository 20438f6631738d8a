//! The one way a request reaches the registry.
//!
//! Today `reg_meta::Registry::open` takes the registry's exclusive lock
//! for as long as the value lives (sled admits one process), so
//! [`RegistryAccess::read`] opens the registry for each request and closes
//! it when the request's registry work is done: the server never holds the
//! lock between requests, a push waits at most for the requests already
//! running, and every request sees the last committed version. Requests
//! take turns (one open registry per process), waiting asynchronously.
//!
//! When `Registry::open` no longer locks (reads taking the lock only for
//! short moments), this is the one place to change: keep one `Registry`
//! here and let requests run side by side.

use crate::failure::Failure;
use reg_meta::{Config, Registry, RegistryError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// Opens the registry for requests, one at a time, off the async threads.
pub struct RegistryAccess {
    config: Config,
    /// One registry open at a time (see the module doc).
    turn: Arc<Semaphore>,
    /// When the last "waiting for the lock" line was printed (Unix seconds).
    told_waiting: Arc<AtomicU64>,
}

impl RegistryAccess {
    /// Access to the registry `config` names.
    pub fn new(config: Config) -> RegistryAccess {
        RegistryAccess {
            config,
            turn: Arc::new(Semaphore::new(1)),
            told_waiting: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The registry directory.
    pub fn root(&self) -> &std::path::Path {
        &self.config.root
    }

    /// Run `work` with the registry open, on the blocking pool. Waiting
    /// for the turn is asynchronous, so a request that times out or whose
    /// client goes away gives up its place.
    pub async fn read<T, F>(&self, work: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    {
        let permit = self
            .turn
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Failure::unavailable("the server is shutting down"))?;
        let config = self.config.clone();
        let told = self.told_waiting.clone();
        let job = tokio::task::spawn_blocking(move || {
            let _turn = permit;
            let root = config.root.clone();
            let reg = Registry::open(config, &|| {
                // Once a minute at most: a push or its background deltas hold the lock.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let last = told.load(Ordering::Relaxed);
                if last + 60 <= now
                    && told
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    eprintln!("reg serve: waiting for another reg process using {}", root.display());
                }
            })?;
            work(&reg)
        });
        match job.await {
            Ok(result) => result.map_err(Failure::from),
            Err(e) => Err(Failure::internal(format!("registry task failed: {e}"))),
        }
    }
}
