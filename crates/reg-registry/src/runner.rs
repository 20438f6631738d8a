//! How the work a push leaves (re-encoding as deltas, deferred
//! compression, retention) is run: the choice a [`crate::Registry`]
//! holds. Running it is [`crate::background`]'s.

use std::path::PathBuf;

/// How a push's background work runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BackgroundRunner {
    /// A detached process, `PROGRAM --registry DIR --quiet deltas
    /// --background`, that outlives the pushing process (the `reg` binary
    /// names itself). Where it cannot be started the work runs inline.
    Process(PathBuf),
    /// A thread of this process. It stops when the process exits, leaving
    /// the rest queued for the next job; call
    /// [`crate::Registry::wait_background`] before exiting to finish it.
    #[default]
    Thread,
    /// Before the push returns.
    Inline,
    /// Nothing is started: the work stays queued until
    /// [`crate::Registry::wait_background`] (or `reg deltas`) runs it, for
    /// programs that schedule it themselves (and tests).
    Queue,
}
