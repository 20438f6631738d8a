//! Locking: who may do what at the same time, in one place.
//!
//! sled admits one process per database, for as long as that process
//! keeps the database open. reg keeps sled and designs around that: **no
//! process keeps the index open**. Every command opens it for one short
//! transaction (read what it needs, or commit what it did) under the
//! *index lock* and closes it; the long work (hashing and encoding a
//! push, decoding a pull, re-encoding older versions as deltas) runs with
//! the index closed. So a reader waits at most for another process's short
//! transaction, never for its encoding. All locks are `flock`-style file
//! locks: the OS releases them when a process dies, so a killed process
//! never leaves a stale lock (the `.owner` notes it may leave are only
//! used for messages, and ignored when their pid is gone).
//!
//! | lock (file)          | mode      | held by                                        | for how long |
//! |----------------------|-----------|------------------------------------------------|--------------|
//! | index (`lock`)       | exclusive | every command                                  | one transaction: open sled, read or commit, flush, close, sled's own lock gone (milliseconds) |
//! | gc (`gc.lock`)       | shared    | push, import (sync pull), `reg deltas` (a push's background job from the moment it is started: the push hands it an inherited hold) | the whole operation: blobs it relies on cannot be deleted under it |
//! | gc (`gc.lock`)       | exclusive | gc, rm, prune, retention, rebuild-index        | the whole operation: no writer runs meanwhile |
//! | deltas (`deltas.lock`) | exclusive | `reg deltas` (the push's background job), a push's inline deltas | its whole run: one re-encoding at a time, so chain bounds hold |
//! | readers (`readers.0.lock` / `readers.1.lock`, the generation `readers.gen` names) | shared | pull, show, diff, tag, export, verify, sync push, push `--parent` (its base), serve requests | from reading the index until the last blob is read (the life of a [`crate::Resolved`]) |
//! | readers, the old generation | exclusive, released at once | gc, rm | after their index commit and before deleting files: they move the generation on, then wait for the readers of the old one |
//!
//! The rules that follow from it:
//! - Readers (`ls`, `log`, `show`, `diff`, `pull`, `stats`, `verify`,
//!   `serve`) never wait for a push's encoding, a background re-encoding
//!   or gc; they see the last committed state, and the blobs of what they
//!   resolved stay until they are done.
//! - A push commits its version in one index transaction, taking its
//!   number there, so concurrent pushes of one name get distinct numbers
//!   in commit order. It does not wait for an earlier push's re-encoding.
//! - A re-encoded blob file is replaced by an atomic rename (same id,
//!   same bytes, other encoding); a reader that opened the old file keeps
//!   decoding it, one that opens it later decodes the new one.
//! - gc never deletes a blob a running reader or writer may still open:
//!   writers hold `gc.lock` shared (gc waits for them), and gc removes the
//!   records of dead blobs first, then drains the readers (waits for
//!   readers that started before), then deletes the files. rm drains the
//!   same way before it deletes the manifest blob.
//! - Draining cannot be starved: readers lock the file of the current
//!   generation and check that it did not move meanwhile; a drain moves it
//!   on and waits only for the old file, which no new reader joins.
//!
//! Waiting, where it happens, is reported once through the registry's
//! [`WaitNotice`] callback (the CLI prints it: "waiting for reg push of
//! big (pid 4242) to commit") and bounded by an optional timeout
//! (`--wait-timeout`).

use crate::error::RegistryError;
use crate::layout::{LockName, RegistryLayout};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a process waiting for a lock is told, once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitNotice {
    /// The lock file waited for.
    pub lock: String,
    /// Who holds it and what for, when the holder said so
    /// (`reg push of big (pid 4242) to commit`).
    pub holder: Option<String>,
}

impl std::fmt::Display for WaitNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(f, "waiting for {h}"),
            // Shared holders leave no note: say what they are.
            None if self.lock == LockName::Gc.file_name() => {
                write!(
                    f,
                    "waiting for running pushes and re-encodings to finish ({})",
                    self.lock
                )
            }
            None if self.lock.starts_with("readers.") => {
                write!(f, "waiting for running readers to finish ({})", self.lock)
            }
            None => write!(f, "waiting for another reg process ({})", self.lock),
        }
    }
}

/// How long to wait for a lock before giving up (`None`: wait).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Give up after this long.
    pub timeout: Option<Duration>,
}

/// A held lock; released when dropped (the OS releases it when the
/// process dies).
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    owner: Option<std::path::PathBuf>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(owner) = &self.owner {
            // Advisory only: a stale note is ignored once its pid is gone.
            let _ = std::fs::remove_file(owner);
        }
        let _ = self.file.unlock();
    }
}

/// Proof that the holder may write blobs and versions: `gc.lock` held
/// shared (a writer) or exclusive (gc, rm, prune). Functions that store or
/// rely on blobs take one, so no deletion can run under them.
#[derive(Debug)]
pub struct WriteGuard {
    _lock: LockGuard,
    exclusive: bool,
}

impl WriteGuard {
    /// True when held exclusively (deleting is allowed).
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

/// Proof that the holder is a reader of blobs: its generation's readers
/// lock held shared, so gc and rm do not delete what it may still open.
#[derive(Debug)]
pub struct ReadGuard {
    _lock: LockGuard,
}

/// Reader guards this process holds: a process that holds one must not
/// drain the readers (it would wait for itself: `flock` locks of two open
/// files conflict even within one process).
static READERS_HERE: AtomicUsize = AtomicUsize::new(0);

impl Drop for ReadGuard {
    fn drop(&mut self) {
        READERS_HERE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The registry's locks (see the module docs).
pub(crate) struct Locks {
    layout: RegistryLayout,
    policy: WaitPolicy,
    notice: Box<dyn Fn(&WaitNotice) + Send + Sync>,
}

impl Locks {
    pub(crate) fn new(layout: RegistryLayout) -> Locks {
        Locks {
            layout,
            policy: WaitPolicy::default(),
            notice: Box::new(|_| {}),
        }
    }

    pub(crate) fn set_policy(&mut self, policy: WaitPolicy) {
        self.policy = policy;
    }

    pub(crate) fn set_notice(&mut self, notice: Box<dyn Fn(&WaitNotice) + Send + Sync>) {
        self.notice = notice;
    }

    /// The index lock, for one short transaction.
    pub(crate) fn index(&self, doing: &str) -> Result<LockGuard, RegistryError> {
        self.take(LockName::Index, Mode::Exclusive, Some(doing))
    }

    /// `gc.lock` shared: a writer.
    pub(crate) fn writer(&self) -> Result<WriteGuard, RegistryError> {
        Ok(WriteGuard {
            _lock: self.take(LockName::Gc, Mode::Shared, None)?,
            exclusive: false,
        })
    }

    /// `gc.lock` exclusive: gc, rm, prune (waits for running writers).
    pub(crate) fn maintenance(&self, doing: &str) -> Result<WriteGuard, RegistryError> {
        Ok(WriteGuard {
            _lock: self.take(LockName::Gc, Mode::Exclusive, Some(doing))?,
            exclusive: true,
        })
    }

    /// `deltas.lock`: the one re-encoding that runs.
    pub(crate) fn deltas(&self, doing: &str) -> Result<LockGuard, RegistryError> {
        self.take(LockName::Deltas, Mode::Exclusive, Some(doing))
    }

    /// A reader of blobs: the current generation's readers lock, shared.
    /// A gc that moves the generation on between reading it and locking
    /// its file sends the reader round again (it never waits for gc: an
    /// exclusive hold of a readers lock is let go at once).
    pub(crate) fn reader(&self) -> Result<ReadGuard, RegistryError> {
        loop {
            let generation = self.reader_generation();
            let lock = self.take(LockName::readers(generation), Mode::Shared, None)?;
            if self.reader_generation() == generation {
                READERS_HERE.fetch_add(1, Ordering::SeqCst);
                return Ok(ReadGuard { _lock: lock });
            }
        }
    }

    /// Wait until every reader that started before now has finished:
    /// move the generation on (readers that start from now on lock the
    /// other file), then take the old generation's file exclusively and let
    /// go at once. Readers that keep starting cannot starve this: none of
    /// them joins the old generation. Called under `gc.lock` exclusive, so
    /// only one process moves the generation at a time.
    pub(crate) fn drain_readers(&self) -> Result<(), RegistryError> {
        if READERS_HERE.load(Ordering::SeqCst) > 0 {
            return Err(RegistryError::Internal(
                "waiting for readers while this process is one would wait forever".into(),
            ));
        }
        let old = self.reader_generation();
        self.set_reader_generation(old.wrapping_add(1))?;
        drop(self.take(LockName::readers(old), Mode::Exclusive, None)?);
        Ok(())
    }

    /// The readers' current generation (0 when the file is missing or
    /// unreadable: it is only ever replaced whole).
    fn reader_generation(&self) -> u64 {
        std::fs::read_to_string(self.layout.readers_generation_file())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Replace the generation file whole (temp file and rename; no fsync:
    /// after a crash no reader runs, so any generation is right).
    fn set_reader_generation(&self, generation: u64) -> Result<(), RegistryError> {
        let file = self.layout.readers_generation_file();
        let tmp = file.with_extension(format!("gen.tmp{}", std::process::id()));
        std::fs::write(&tmp, format!("{generation}\n")).map_err(RegistryError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &file).map_err(RegistryError::io("writing", &file))
    }

    fn take(&self, which: LockName, mode: Mode, doing: Option<&str>) -> Result<LockGuard, RegistryError> {
        let path = self.layout.lock_file(which);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(RegistryError::io("opening lock", &path))?;
        let start = Instant::now();
        let mut told = false;
        let mut pause = Duration::from_millis(1);
        loop {
            let tried = match mode {
                Mode::Exclusive => file.try_lock(),
                Mode::Shared => file.try_lock_shared(),
            };
            match tried {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let waited = start.elapsed();
                    if self.policy.timeout.is_some_and(|t| waited >= t) {
                        return Err(RegistryError::Locked {
                            path: path.clone(),
                            waited_secs: waited.as_secs(),
                            holder: holder(&self.layout.owner_file(which)),
                        });
                    }
                    if !told && waited > Duration::from_millis(200) {
                        (self.notice)(&WaitNotice {
                            lock: which.file_name().to_string(),
                            holder: holder(&self.layout.owner_file(which)),
                        });
                        told = true;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::Error(e)) => return Err(RegistryError::io("locking", &path)(e)),
            }
        }
        let owner = match (mode, doing) {
            (Mode::Exclusive, Some(doing)) => {
                let owner = self.layout.owner_file(which);
                // Advisory, for the messages of whoever waits: no fsync.
                let note = format!("{doing} (pid {})\n", std::process::id());
                std::fs::write(&owner, note).ok().map(|_| owner)
            }
            _ => None,
        };
        Ok(LockGuard { file, owner })
    }
}

/// Wait (at most a few seconds) until no process holds a `flock` on
/// `path`: used for sled's own lock file after closing the index, whose
/// lock sled's threads release a moment after the database is dropped.
pub(crate) fn wait_until_unlocked(path: &Path) {
    let Ok(file) = OpenOptions::new().read(true).open(path) else {
        return;
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return;
            }
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(1)),
            Err(TryLockError::Error(_)) => return,
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Exclusive,
    Shared,
}

/// The holder a `.owner` note names, if that process still runs.
fn holder(owner: &Path) -> Option<String> {
    let text = std::fs::read_to_string(owner).ok()?;
    let line = text.lines().next()?.trim().to_string();
    let pid = line
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<i32>().ok())?;
    alive(pid).then_some(line)
}

#[cfg(unix)]
fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only asks whether the process exists.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    // EPERM: it exists, as another user.
    sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn alive(_pid: i32) -> bool {
    true
}
