//! What every handler shares ([`AppState`]): its own module, so the
//! handlers (pages, api, download) and the router that names them do not
//! import each other.

use crate::access::RegistryAccess;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The registry.
    pub access: Arc<RegistryAccess>,
    /// Permits for downloads streaming at once.
    pub downloads: Arc<Semaphore>,
    /// How long a download waits for a client that stopped reading.
    pub stall_timeout: Duration,
}
