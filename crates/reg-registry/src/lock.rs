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
//! | gc (`gc.lock`)       | shared    | push, import (sync pull), `reg deltas` (its queued retention included) | the whole operation: blobs it relies on cannot be deleted under it |
//! | gc (`gc.lock`)       | exclusive | gc, rm, prune, rebuild-index; the background job's gc after a retention, only when free at once | the whole operation: no writer runs meanwhile |
//! | deltas (`deltas.lock`) | exclusive | `reg deltas` (the push's background job: the push takes it and the child inherits it, [`DeltasHandOff`]), a push's inline deltas | its whole run, the queue pushes add meanwhile included: one re-encoding at a time, so chain bounds hold |
//! | readers (`readers.0.lock` / `readers.1.lock`, the generation `readers.gen` names) | shared | pull, show, diff, tag, export, verify, sync push, push `--parent` (its base), serve requests | from reading the index until the last blob is read (the life of a [`crate::Resolved`]) |
//! | readers, the old generation | exclusive, released at once | gc, rm | after their index commit and before deleting files: they move the generation on, then wait for the readers of the old one |
//! | a staging session (`staging/ID/.lock`) | exclusive | the process that stages files there (the Python package's DCP writer: its coordinator rank) | from creating the folder until its push is committed and the folder removed; gc removes a session folder whose lock it can take (`staging_abandoned`) |
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
//! (`--wait-timeout`). Only waits for another process are reported: the
//! threads of one process (`reg serve`'s requests) queue for an exclusive
//! lock among themselves first (`Turn`), and a wait whose holder note
//! names this process is not told.

use crate::error::RegistryError;
use reg_format::layout::{LockName, RegistryLayout};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
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
        match (&self.holder, self.lock.as_str()) {
            (Some(h), _) => write!(f, "waiting for {h}"),
            // Writers hold gc.lock shared and leave no note.
            (None, "gc.lock") => write!(f, "waiting for running pushes and re-encodings to finish (gc.lock)"),
            // Nor do readers (gc and rm wait for them).
            (None, lock) if lock.starts_with("readers.") => {
                write!(f, "waiting for running readers to finish ({lock})")
            }
            (None, lock) => write!(f, "waiting for another reg process ({lock})"),
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
    /// A child process holds the lock through this open file now: close
    /// without unlocking.
    handed_over: bool,
    /// This process's turn at the lock (exclusive locks), given up after
    /// the lock itself.
    _turn: Option<Turn>,
}

/// Exclusive lock files that a thread of this process holds or is taking:
/// the other threads wait here (no notice: they wait for their own
/// process), so the file lock is only ever waited for behind another
/// process.
fn turns() -> &'static (Mutex<std::collections::HashSet<PathBuf>>, Condvar) {
    static TURNS: std::sync::OnceLock<(Mutex<std::collections::HashSet<PathBuf>>, Condvar)> =
        std::sync::OnceLock::new();
    TURNS.get_or_init(Default::default)
}

/// This process's turn at an exclusive lock file; the next thread's when
/// dropped.
#[derive(Debug)]
struct Turn {
    path: PathBuf,
}

impl Turn {
    /// Wait until no other thread of this process holds or takes `path`,
    /// until `deadline` at most (`None`: when the deadline passed first).
    fn take(path: &Path, deadline: Option<Instant>) -> Option<Turn> {
        let (set, freed) = turns();
        let mut taken = set.lock().unwrap_or_else(|p| p.into_inner());
        while taken.contains(path) {
            taken = match deadline {
                None => freed.wait(taken).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.checked_duration_since(Instant::now()).filter(|l| !l.is_zero())?;
                    freed.wait_timeout(taken, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
        taken.insert(path.to_path_buf());
        Some(Turn {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let (set, freed) = turns();
        set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.path);
        freed.notify_all();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        if let Some(owner) = &self.owner {
            // Advisory only: a stale note is ignored once its pid is gone.
            let _ = std::fs::remove_file(owner);
        }
        let _ = self.file.unlock();
    }
}

/// The environment variable that names the inherited `deltas.lock`
/// descriptor of a background `reg deltas` (see [`DeltasHandOff`]).
pub const DELTAS_LOCK_FD_ENV: &str = "REG_DELTAS_LOCK_FD";

/// `deltas.lock`, taken by a push for the background `reg deltas` it
/// starts: the child inherits the locked descriptor (its number goes in
/// [`DELTAS_LOCK_FD_ENV`]), so it holds the lock from before the push
/// exits and whoever waits for re-encodings (`reg deltas`) waits for it.
pub struct DeltasHandOff {
    guard: LockGuard,
}

impl DeltasHandOff {
    /// Hand over `guard` (a held `deltas.lock`).
    pub(crate) fn new(guard: LockGuard) -> DeltasHandOff {
        DeltasHandOff { guard }
    }

    /// The descriptor to pass, made inheritable across `exec`.
    #[cfg(unix)]
    pub fn inheritable_fd(&self) -> std::io::Result<i32> {
        use std::os::unix::io::AsRawFd;
        let fd = self.guard.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this value owns; clearing
        // FD_CLOEXEC lets a child inherit it across exec.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
        };
        if ok {
            Ok(fd)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The child has it: close this process's copy without unlocking
    /// (the lock belongs to the open file, which the child keeps).
    pub fn release_to_child(mut self) {
        self.guard.handed_over = true;
    }

    /// The held lock itself, for a job in this process (a thread).
    pub(crate) fn into_guard(self) -> LockGuard {
        self.guard
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
    /// Who took it, on which registry (see [`own_readers`]).
    taken_by: (std::thread::ThreadId, std::path::PathBuf),
}

/// Reader guards alive, by the thread that took them and the registry:
/// gc must not wait for readers its own thread holds (it would wait
/// forever); other threads' readers it waits for as for any process's.
fn own_readers(
) -> &'static std::sync::Mutex<std::collections::HashMap<(std::thread::ThreadId, std::path::PathBuf), usize>> {
    static READERS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<(std::thread::ThreadId, std::path::PathBuf), usize>>,
    > = std::sync::OnceLock::new();
    READERS.get_or_init(Default::default)
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = own_readers().lock() {
            if let Some(n) = map.get_mut(&self.taken_by) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.taken_by);
                }
            }
        }
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

    /// `gc.lock` exclusive if no writer or deleter holds it now, without
    /// waiting (the background job's gc after a retention).
    pub(crate) fn try_maintenance(&self, doing: &str) -> Result<Option<WriteGuard>, RegistryError> {
        match self.instant().take(LockName::Gc, Mode::Exclusive, Some(doing)) {
            Ok(lock) => Ok(Some(WriteGuard {
                _lock: lock,
                exclusive: true,
            })),
            Err(RegistryError::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// These locks with a zero wait and no notices: a `take` that would
    /// wait fails with [`RegistryError::Locked`].
    fn instant(&self) -> Locks {
        Locks {
            layout: self.layout.clone(),
            policy: WaitPolicy {
                timeout: Some(Duration::ZERO),
            },
            notice: Box::new(|_| {}),
        }
    }

    /// `deltas.lock`: the one re-encoding that runs.
    pub(crate) fn deltas(&self, doing: &str) -> Result<LockGuard, RegistryError> {
        self.take(LockName::Deltas, Mode::Exclusive, Some(doing))
    }

    /// `deltas.lock` if it is free now, without waiting.
    pub(crate) fn try_deltas(&self, doing: &str) -> Result<Option<LockGuard>, RegistryError> {
        match self.instant().take(LockName::Deltas, Mode::Exclusive, Some(doing)) {
            Ok(g) => Ok(Some(g)),
            Err(RegistryError::Locked { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Take over `deltas.lock` from the process that started this one:
    /// `fd` is its open, locked lock file, inherited across `exec` (see
    /// [`DeltasHandOff`]). Refused when `fd` is not this registry's
    /// `deltas.lock` or does not hold its lock.
    #[cfg(unix)]
    pub(crate) fn adopt_deltas(&self, fd: i32) -> Result<LockGuard, RegistryError> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::FromRawFd;
        let path = self.layout.lock_file(LockName::Deltas);
        let refused = |why: &'static str| RegistryError::TakeOver {
            path: path.clone(),
            why,
        };
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(refused("the descriptor handed over is not open"));
        }
        // SAFETY: an open descriptor this process was handed for this use
        // and that nothing else in it owns; checked below to be the lock.
        let file = unsafe { File::from_raw_fd(fd) };
        let (a, b) = (file.metadata(), std::fs::metadata(&path));
        let same = matches!((&a, &b), (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino());
        if !same {
            // Not ours to close: leak it rather than close a stranger's fd.
            std::mem::forget(file);
            return Err(refused("the descriptor handed over is another file"));
        }
        // Held through this open file already: taken again at once. One
        // held by another process would fail.
        file.try_lock()
            .map_err(|_| refused("its lock is held by another process"))?;
        let owner = self.layout.owner_file(LockName::Deltas);
        // "WHAT (pid N)": the form `holder` reads back for the message.
        let note = format!("reg deltas in the background (pid {})\n", std::process::id());
        let owner = std::fs::write(&owner, note).ok().map(|_| owner);
        Ok(LockGuard {
            file,
            owner,
            handed_over: false,
            _turn: None,
        })
    }

    /// A reader of blobs: the current generation's readers lock, shared.
    /// A gc that moves the generation on between reading it and locking
    /// its file sends the reader round again (it never waits for gc: an
    /// exclusive hold of a readers lock is let go at once).
    pub(crate) fn reader(&self) -> Result<ReadGuard, RegistryError> {
        let lock = loop {
            let generation = self.reader_generation();
            let lock = self.take(LockName::readers(generation), Mode::Shared, None)?;
            if self.reader_generation() == generation {
                break lock;
            }
        };
        let taken_by = (std::thread::current().id(), self.layout.root().to_path_buf());
        if let Ok(mut map) = own_readers().lock() {
            *map.entry(taken_by.clone()).or_default() += 1;
        }
        Ok(ReadGuard { _lock: lock, taken_by })
    }

    /// True when this thread holds a reader guard of this registry.
    pub(crate) fn own_readers_held(&self) -> bool {
        let me = (std::thread::current().id(), self.layout.root().to_path_buf());
        own_readers()
            .lock()
            .is_ok_and(|map| map.get(&me).is_some_and(|n| *n > 0))
    }

    /// Refuse (rather than wait forever) when this thread itself holds a
    /// reader guard of this registry: gc waits for readers, and would wait
    /// for its own.
    pub(crate) fn no_own_readers(&self) -> Result<(), RegistryError> {
        if self.own_readers_held() {
            return Err(RegistryError::Internal(
                "gc would wait for a version this thread still holds (drop every Resolved before gc or prune)".into(),
            ));
        }
        Ok(())
    }

    /// Wait until every reader that started before now has finished:
    /// move the generation on (readers that start from now on lock the
    /// other file), then take the old generation's file exclusively and let
    /// go at once. Readers that keep starting cannot starve this: none of
    /// them joins the old generation. Called under `gc.lock` exclusive, so
    /// only one process moves the generation at a time.
    pub(crate) fn drain_readers(&self) -> Result<(), RegistryError> {
        self.no_own_readers()?;
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
        let locked = |waited: Duration| RegistryError::Locked {
            path: path.clone(),
            waited_secs: waited.as_secs(),
            holder: holder(&self.layout.owner_file(which)),
        };
        let turn = match mode {
            Mode::Exclusive => {
                let deadline = self.policy.timeout.map(|t| start + t);
                Some(Turn::take(&path, deadline).ok_or_else(|| locked(start.elapsed()))?)
            }
            Mode::Shared => None,
        };
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
                        return Err(locked(waited));
                    }
                    if !told && waited > Duration::from_millis(200) {
                        let holder = holder(&self.layout.owner_file(which));
                        // A note of this process: a thread of ours holds it
                        // (shared against exclusive), or the note is stale
                        // and will be replaced; look again next time round.
                        if !holder.as_deref().is_some_and(names_this_process) {
                            (self.notice)(&WaitNotice {
                                lock: which.file_name().to_string(),
                                holder,
                            });
                            told = true;
                        }
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
        Ok(LockGuard {
            file,
            owner,
            handed_over: false,
            _turn: turn,
        })
    }
}

/// True when a holder note (`WHAT (pid N)`) names this process.
fn names_this_process(note: &str) -> bool {
    i32::try_from(std::process::id()).is_ok_and(|me| note_pid(note) == Some(me))
}

/// The pid of a holder note `WHAT (pid N)`.
fn note_pid(note: &str) -> Option<i32> {
    note.rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse::<i32>().ok())
}

/// Whether the staging session in `dir` was abandoned: no process holds
/// the `flock` of its `.lock` (the OS released it when the stager died or
/// let go). A folder without a `.lock` counts as abandoned once it is an
/// hour old (a stager takes its lock right after creating the folder).
pub(crate) fn staging_abandoned(dir: &Path) -> bool {
    let lock = dir.join(reg_format::layout::STAGING_LOCK);
    match OpenOptions::new().read(true).open(&lock) {
        Ok(file) => match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                true
            }
            Err(_) => false,
        },
        Err(_) => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600)),
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
    let pid = note_pid(&line)?;
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
