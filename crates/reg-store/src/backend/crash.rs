//! A disk in memory that forgets what was not synced: the backend of crash
//! tests (feature `crash-sim`; never in the binary).
//!
//! The model, after redb's crash test and what ext4 can leave behind:
//!
//! - A file's bytes are *volatile* until it is fsynced ([`TempFile::sync`],
//!   [`BlobFile::sync`]); then what it holds is *durable*.
//! - A name change (a temp file made, installed under a blob's name,
//!   removed; a blob removed) is volatile until the directory it happens
//!   in is synced. Blobs live in 256 directories (the first byte of the
//!   id), temp files in one more; [`Backend::sync`] of some blobs syncs
//!   their directories, so it makes *every* pending change in them durable
//!   (a real `fsync` of a directory does the same), in the order they
//!   happened. An install is one change of the blob's directory (the temp
//!   name goes with it). The temp directory is never synced by the store;
//!   fsyncing a new temp file makes its name durable too, as ext4 does.
//! - A crash point is a number of mutating operations (creating, writing,
//!   truncating, syncing, installing, removing, cleaning): the operation
//!   that reaches it, and every operation after it (reads too), fail with
//!   an I/O error, and nothing changes any more: the process is dead as
//!   far as the disk goes.
//! - [`CrashDisk::restart`] is a process killed without a crash: the
//!   volatile state stays (the next process sees it, and may make it
//!   durable or not), only the dead process's handles go.
//! - [`CrashDisk::crash`] keeps only what is durable, and returns a new
//!   disk over it (the machine rebooted; the old disk stays dead for any
//!   handle still open on it). A name that became durable while its
//!   file's bytes did not (installed from a temp file that was never
//!   synced, then its directory synced for another blob) survives with
//!   the bytes it had durably: none, a zero-length file, as ext4's delayed
//!   allocation can leave. With [`Writeback::Random`] some volatile
//!   things reached the disk anyway, as the kernel writes back on its
//!   own: per directory a random prefix of its pending changes, and per
//!   file its unsynced bytes lost, kept, or cut at a random length.
//!
//! Everything random comes from the seed, so a failing seed replays the
//! same crash as far as the order in which threads reach the disk does.

use super::{foreign_temp, Backend, BlobFile, TempFile};
use crate::BlobId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a crash lets survive beyond what was synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writeback {
    /// Nothing: every volatile byte and name change is lost (the harshest
    /// crash, as redb's test has it).
    None,
    /// Some of it, at random (from the disk's seed): per directory a
    /// prefix of its pending name changes, in order; per file its
    /// unsynced bytes lost, kept whole, or cut at a random length.
    Random,
}

/// An in-memory [`Backend`] that can crash (see the module docs).
/// Cloning gives another handle on the same disk.
#[derive(Clone)]
pub struct CrashDisk {
    shared: Arc<Shared>,
}

struct Shared {
    disk: Mutex<Disk>,
    /// Set once the crash point is reached (or the disk was crashed):
    /// read without the lock by open readers.
    dead: AtomicBool,
}

/// A name in the disk's namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Name {
    Blob(BlobId),
    Temp(u64),
}

/// The directory a name is in: blobs by the first byte of their id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dir {
    Blobs(u8),
    Temp,
}

/// A name change not yet durable.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// A temp file made.
    Create { temp: u64, inode: u64 },
    /// A temp file renamed to a blob's name (replacing what was there).
    Install { temp: u64, id: BlobId, inode: u64 },
    /// A blob file deleted.
    Remove { id: BlobId },
    /// A temp file deleted (dropped, or cleaned).
    RemoveTemp { temp: u64 },
}

impl Change {
    fn dir(&self) -> Dir {
        match self {
            Change::Create { .. } | Change::RemoveTemp { .. } => Dir::Temp,
            Change::Install { id, .. } | Change::Remove { id } => Dir::Blobs(id.0[0]),
        }
    }

    fn temp(&self) -> Option<u64> {
        match self {
            Change::Create { temp, .. } | Change::RemoveTemp { temp } | Change::Install { temp, .. } => Some(*temp),
            Change::Remove { .. } => None,
        }
    }
}

/// A file's bytes: what it holds now, and what a crash would leave.
struct Inode {
    data: Arc<Vec<u8>>,
    durable: Arc<Vec<u8>>,
}

struct Disk {
    files: HashMap<u64, Inode>,
    /// The namespace as it is now.
    live: BTreeMap<Name, u64>,
    /// The namespace a crash would leave.
    durable: BTreeMap<Name, u64>,
    /// Name changes not yet durable, oldest first, by sequence number.
    log: Vec<(u64, Change)>,
    next_change: u64,
    next_inode: u64,
    next_temp: u64,
    /// Mutating operations so far.
    ops: u64,
    crash_after: Option<u64>,
    rng: u64,
}

impl fmt::Debug for CrashDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.lock();
        f.debug_struct("CrashDisk")
            .field("files", &d.live.len())
            .field("pending_changes", &d.log.len())
            .field("ops", &d.ops)
            .field("crash_after", &d.crash_after)
            .field("dead", &self.is_dead())
            .finish()
    }
}

fn dead_error() -> io::Error {
    io::Error::other("crash-sim: the disk has crashed")
}

/// splitmix64: small, seedable, good enough to pick crash outcomes.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Disk {
    fn random(&mut self, below: u64) -> u64 {
        if below == 0 {
            return 0;
        }
        next_random(&mut self.rng) % below
    }

    /// Make one change durable.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Create { temp, inode } => {
                self.durable.insert(Name::Temp(temp), inode);
            }
            Change::Install { temp, id, inode } => {
                self.durable.remove(&Name::Temp(temp));
                self.durable.insert(Name::Blob(id), inode);
                // The rename took the temp name with it: what is still
                // pending about that name is moot.
                self.log.retain(|(_, c)| c.temp() != Some(temp));
            }
            Change::Remove { id } => {
                self.durable.remove(&Name::Blob(id));
            }
            Change::RemoveTemp { temp } => {
                self.durable.remove(&Name::Temp(temp));
            }
        }
    }

    /// Make the pending changes of `dirs` durable, in order (and, per
    /// directory, only the first `limit` of them when given).
    fn apply_dirs(&mut self, dirs: &BTreeSet<Dir>, limit: Option<&HashMap<Dir, usize>>) {
        let mut seen: HashMap<Dir, usize> = HashMap::new();
        let mut chosen = Vec::new();
        for (seq, change) in &self.log {
            let dir = change.dir();
            let n = seen.entry(dir).or_insert(0);
            let within = limit.is_none_or(|l| *n < l.get(&dir).copied().unwrap_or(0));
            *n += 1;
            if dirs.contains(&dir) && within {
                chosen.push(*seq);
            }
        }
        for seq in chosen {
            // An install applied before may have dropped it already.
            if let Some(i) = self.log.iter().position(|(s, _)| *s == seq) {
                let (_, change) = self.log.remove(i);
                self.apply(change);
            }
        }
    }

    /// Note a name change, not yet durable.
    fn push(&mut self, change: Change) {
        let seq = self.next_change;
        self.next_change += 1;
        self.log.push((seq, change));
    }
}

impl CrashDisk {
    /// An empty disk that never crashes until [`CrashDisk::crash_after`]
    /// says when; `seed` drives the random choices of
    /// [`Writeback::Random`].
    pub fn new(seed: u64) -> CrashDisk {
        CrashDisk::over(Disk {
            files: HashMap::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            log: Vec::new(),
            next_change: 0,
            next_inode: 0,
            next_temp: 0,
            ops: 0,
            crash_after: None,
            rng: seed,
        })
    }

    fn over(disk: Disk) -> CrashDisk {
        CrashDisk {
            shared: Arc::new(Shared {
                disk: Mutex::new(disk),
                dead: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        // A thread that panicked holding the lock left the disk as
        // consistent as any crash would.
        self.shared.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fail every operation from the `ops`-th mutating one on (counted
    /// from this disk's start; `None`: never).
    pub fn crash_after(&self, ops: Option<u64>) {
        self.lock().crash_after = ops;
    }

    /// Mutating operations so far (to choose crash points: a run with no
    /// crash point counts how many a workload makes).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// True once the crash point was reached: every operation fails.
    pub fn is_dead(&self) -> bool {
        self.shared.dead.load(Ordering::SeqCst)
    }

    /// Temp files that exist now (after a crash: those that survived it).
    pub fn temp_files(&self) -> usize {
        self.lock().live.keys().filter(|n| matches!(n, Name::Temp(_))).count()
    }

    /// The process died but the machine did not (a kill, not a power
    /// loss): return a new disk over the same state, volatile parts and
    /// all, for the next process; this disk (and every file open on it) is
    /// dead from now on, and temp files the dead process had open stay
    /// where they are, as they would on a disk.
    pub fn restart(&self) -> CrashDisk {
        let mut d = self.lock();
        self.shared.dead.store(true, Ordering::SeqCst);
        let disk = Disk {
            files: std::mem::take(&mut d.files),
            live: std::mem::take(&mut d.live),
            durable: std::mem::take(&mut d.durable),
            log: std::mem::take(&mut d.log),
            next_change: d.next_change,
            next_inode: d.next_inode,
            next_temp: d.next_temp,
            ops: 0,
            crash_after: None,
            rng: next_random(&mut d.rng),
        };
        CrashDisk::over(disk)
    }

    /// Crash: keep what is durable (and with [`Writeback::Random`] some
    /// of the rest), and return a new disk over it. This disk (and every
    /// file open on it) is dead from now on.
    pub fn crash(&self, writeback: Writeback) -> CrashDisk {
        let mut d = self.lock();
        self.shared.dead.store(true, Ordering::SeqCst);
        if writeback == Writeback::Random {
            let mut counts: HashMap<Dir, usize> = HashMap::new();
            for (_, c) in &d.log {
                *counts.entry(c.dir()).or_insert(0) += 1;
            }
            let mut limits = HashMap::new();
            let mut dirs: Vec<(Dir, usize)> = counts.into_iter().collect();
            dirs.sort();
            for (dir, n) in dirs {
                let keep = d.random(n as u64 + 1) as usize;
                limits.insert(dir, keep);
            }
            let all: BTreeSet<Dir> = limits.keys().copied().collect();
            d.apply_dirs(&all, Some(&limits));
            let mut inodes: Vec<u64> = d.files.keys().copied().collect();
            inodes.sort_unstable();
            for inode in inodes {
                let (len, synced) = match d.files.get(&inode) {
                    Some(f) => (f.data.len() as u64, Arc::ptr_eq(&f.data, &f.durable)),
                    None => continue,
                };
                if synced {
                    continue;
                }
                let cut = match d.random(3) {
                    0 => None,
                    1 => Some(len),
                    _ => Some(d.random(len + 1)),
                };
                if let (Some(cut), Some(f)) = (cut, d.files.get_mut(&inode)) {
                    let n = usize::try_from(cut).unwrap_or(usize::MAX).min(f.data.len());
                    f.durable = Arc::new(f.data[..n].to_vec());
                }
            }
        }
        let durable = d.durable.clone();
        let referenced: BTreeSet<u64> = durable.values().copied().collect();
        let files = referenced
            .iter()
            .map(|inode| {
                let bytes = d.files.get(inode).map(|f| Arc::clone(&f.durable)).unwrap_or_default();
                (
                    *inode,
                    Inode {
                        data: Arc::clone(&bytes),
                        durable: bytes,
                    },
                )
            })
            .collect();
        let rng = next_random(&mut d.rng);
        CrashDisk::over(Disk {
            files,
            live: durable.clone(),
            durable,
            log: Vec::new(),
            next_change: d.next_change,
            next_inode: d.next_inode,
            next_temp: d.next_temp,
            ops: 0,
            crash_after: None,
            rng,
        })
    }

    /// Count one mutating operation, or fail it (and everything after it)
    /// once the crash point is reached.
    fn mutate(&self, d: &mut Disk) -> io::Result<()> {
        if self.is_dead() {
            return Err(dead_error());
        }
        if d.crash_after.is_some_and(|n| d.ops >= n) {
            self.shared.dead.store(true, Ordering::SeqCst);
            return Err(dead_error());
        }
        d.ops += 1;
        Ok(())
    }

    fn alive(&self) -> io::Result<()> {
        if self.is_dead() {
            Err(dead_error())
        } else {
            Ok(())
        }
    }

    fn same_disk(&self, other: &Arc<Shared>) -> bool {
        Arc::ptr_eq(&self.shared, other)
    }
}

fn not_found(id: BlobId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("crash-sim: no blob {id}"))
}

impl Backend for CrashDisk {
    fn open(&self, id: BlobId) -> io::Result<Box<dyn BlobFile>> {
        let d = self.lock();
        self.alive()?;
        let inode = *d.live.get(&Name::Blob(id)).ok_or_else(|| not_found(id))?;
        let data = d.files.get(&inode).map(|f| Arc::clone(&f.data)).unwrap_or_default();
        Ok(Box::new(CrashFile {
            disk: self.clone(),
            inode,
            data,
            pos: 0,
        }))
    }

    fn stored_len(&self, id: BlobId) -> io::Result<Option<u64>> {
        let d = self.lock();
        self.alive()?;
        Ok(d.live
            .get(&Name::Blob(id))
            .and_then(|inode| d.files.get(inode))
            .map(|f| f.data.len() as u64))
    }

    fn create_temp(&self, _hint: &str) -> io::Result<Box<dyn TempFile>> {
        let mut d = self.lock();
        self.mutate(&mut d)?;
        let (temp, inode) = (d.next_temp, d.next_inode);
        d.next_temp += 1;
        d.next_inode += 1;
        let empty = Arc::new(Vec::new());
        d.files.insert(
            inode,
            Inode {
                data: Arc::clone(&empty),
                durable: empty,
            },
        );
        d.live.insert(Name::Temp(temp), inode);
        d.push(Change::Create { temp, inode });
        Ok(Box::new(CrashTemp {
            disk: self.clone(),
            temp,
            inode,
            pos: 0,
            installed: false,
        }))
    }

    fn install(&self, temp: Box<dyn TempFile>, id: BlobId) -> io::Result<()> {
        let temp: Box<dyn std::any::Any> = temp;
        let mut temp = temp.downcast::<CrashTemp>().map_err(|_| foreign_temp())?;
        if !self.same_disk(&temp.disk.shared) {
            return Err(foreign_temp());
        }
        let mut d = self.lock();
        self.mutate(&mut d)?;
        if d.live.remove(&Name::Temp(temp.temp)).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "crash-sim: the temp file was deleted",
            ));
        }
        d.live.insert(Name::Blob(id), temp.inode);
        d.push(Change::Install {
            temp: temp.temp,
            id,
            inode: temp.inode,
        });
        temp.installed = true;
        Ok(())
    }

    fn remove(&self, id: BlobId) -> io::Result<bool> {
        let mut d = self.lock();
        self.mutate(&mut d)?;
        if d.live.remove(&Name::Blob(id)).is_none() {
            return Ok(false);
        }
        d.push(Change::Remove { id });
        Ok(true)
    }

    fn sync(&self, ids: &[BlobId]) -> io::Result<()> {
        let mut d = self.lock();
        self.mutate(&mut d)?;
        let dirs: BTreeSet<Dir> = ids.iter().map(|id| Dir::Blobs(id.0[0])).collect();
        d.apply_dirs(&dirs, None);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<BlobId>> {
        let d = self.lock();
        self.alive()?;
        Ok(d.live
            .keys()
            .filter_map(|n| match n {
                Name::Blob(id) => Some(*id),
                Name::Temp(_) => None,
            })
            .collect())
    }

    fn clean_temps(&self) -> io::Result<usize> {
        let mut d = self.lock();
        self.mutate(&mut d)?;
        let temps: Vec<u64> = d
            .live
            .keys()
            .filter_map(|n| match n {
                Name::Temp(t) => Some(*t),
                Name::Blob(_) => None,
            })
            .collect();
        for t in &temps {
            d.live.remove(&Name::Temp(*t));
            d.push(Change::RemoveTemp { temp: *t });
        }
        Ok(temps.len())
    }

    fn path_of(&self, id: BlobId) -> PathBuf {
        let hex = id.to_hex();
        PathBuf::from(format!("crash-sim/{}/{}", &hex[..2], &hex[2..]))
    }

    fn temp_dir(&self) -> PathBuf {
        PathBuf::from("crash-sim/tmp")
    }

    fn location(&self) -> PathBuf {
        PathBuf::from("crash-sim")
    }
}

/// Read `buf.len()` bytes at most of `data` from `pos`.
fn read_at(data: &[u8], pos: &mut u64, buf: &mut [u8]) -> usize {
    let start = usize::try_from(*pos).unwrap_or(usize::MAX).min(data.len());
    let n = buf.len().min(data.len() - start);
    buf[..n].copy_from_slice(&data[start..start + n]);
    *pos += n as u64;
    n
}

/// The new position of a seek in a file of `len` bytes.
fn seek_to(pos: u64, len: u64, to: SeekFrom) -> io::Result<u64> {
    let new = match to {
        SeekFrom::Start(n) => Some(n),
        SeekFrom::End(d) => len.checked_add_signed(d),
        SeekFrom::Current(d) => pos.checked_add_signed(d),
    };
    new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the file"))
}

/// A blob file (or a temp file read back) open for reading: the bytes it
/// held when it was opened, as an open file keeps them on a disk.
struct CrashFile {
    disk: CrashDisk,
    inode: u64,
    data: Arc<Vec<u8>>,
    pos: u64,
}

impl Read for CrashFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.disk.alive()?;
        Ok(read_at(&self.data, &mut self.pos, buf))
    }
}

impl Seek for CrashFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.disk.alive()?;
        self.pos = seek_to(self.pos, self.data.len() as u64, to)?;
        Ok(self.pos)
    }
}

impl BlobFile for CrashFile {
    fn file_len(&self) -> u64 {
        self.data.len() as u64
    }

    fn is_regular(&self) -> bool {
        true
    }

    fn sync(&self) -> io::Result<()> {
        let mut d = self.disk.lock();
        self.disk.mutate(&mut d)?;
        if let Some(f) = d.files.get_mut(&self.inode) {
            f.durable = Arc::clone(&f.data);
        }
        Ok(())
    }
}

/// A temp file being written.
struct CrashTemp {
    disk: CrashDisk,
    temp: u64,
    inode: u64,
    pos: u64,
    installed: bool,
}

impl CrashTemp {
    /// Change the file's bytes, as one mutating operation.
    fn change<T>(&mut self, f: impl FnOnce(&mut Vec<u8>, &mut u64) -> T) -> io::Result<T> {
        let mut d = self.disk.lock();
        self.disk.mutate(&mut d)?;
        let file = d
            .files
            .get_mut(&self.inode)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "crash-sim: temp file gone"))?;
        Ok(f(Arc::make_mut(&mut file.data), &mut self.pos))
    }

    fn contents(&self) -> io::Result<Arc<Vec<u8>>> {
        let d = self.disk.lock();
        self.disk.alive()?;
        Ok(d.files
            .get(&self.inode)
            .map(|f| Arc::clone(&f.data))
            .unwrap_or_default())
    }
}

impl Read for CrashTemp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let data = self.contents()?;
        Ok(read_at(&data, &mut self.pos, buf))
    }
}

impl Write for CrashTemp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.change(|data, pos| {
            let start = usize::try_from(*pos).unwrap_or(usize::MAX);
            if data.len() < start + buf.len() {
                data.resize(start + buf.len(), 0);
            }
            data[start..start + buf.len()].copy_from_slice(buf);
            *pos += buf.len() as u64;
            buf.len()
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.disk.alive()
    }
}

impl Seek for CrashTemp {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let len = self.contents()?.len() as u64;
        self.pos = seek_to(self.pos, len, to)?;
        Ok(self.pos)
    }
}

impl TempFile for CrashTemp {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too long"))?;
        self.change(|data, _| data.resize(len, 0))
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut d = self.disk.lock();
        self.disk.mutate(&mut d)?;
        if let Some(f) = d.files.get_mut(&self.inode) {
            f.durable = Arc::clone(&f.data);
        }
        // fsync of a new file makes its name durable too (ext4).
        let temp = self.temp;
        if let Some(i) = d
            .log
            .iter()
            .position(|(_, c)| matches!(c, Change::Create { temp: t, .. } if *t == temp))
        {
            let (_, change) = d.log.remove(i);
            d.apply(change);
        }
        Ok(())
    }

    fn reader(&self) -> io::Result<Box<dyn BlobFile>> {
        Ok(Box::new(CrashFile {
            disk: self.disk.clone(),
            inode: self.inode,
            data: self.contents()?,
            pos: 0,
        }))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("crash-sim/tmp/{}", self.temp))
    }
}

impl Drop for CrashTemp {
    fn drop(&mut self) {
        if self.installed {
            return;
        }
        let mut d = self.disk.lock();
        if self.disk.mutate(&mut d).is_err() {
            return;
        }
        if d.live.remove(&Name::Temp(self.temp)).is_some() {
            d.push(Change::RemoveTemp { temp: self.temp });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobStore, Durability, StoreError};

    fn store(disk: &CrashDisk, durability: Durability) -> BlobStore {
        BlobStore::with_backend(Arc::new(disk.clone()), 3).with_durability(durability)
    }

    /// `n` distinct blobs whose ids share their first byte (one directory).
    fn same_dir(n: usize) -> Vec<Vec<u8>> {
        let mut by_dir: HashMap<u8, Vec<Vec<u8>>> = HashMap::new();
        for i in 0u32.. {
            let data = format!("blob {i}").repeat(40).into_bytes();
            let group = by_dir.entry(BlobId::of(&data).0[0]).or_default();
            group.push(data);
            if group.len() == n {
                return group.clone();
            }
        }
        unreachable!()
    }

    #[test]
    fn what_was_synced_survives_and_nothing_else() -> Result<(), StoreError> {
        let disk = CrashDisk::new(1);
        let s = store(&disk, Durability::Full);
        let (a, b) = (b"synced".repeat(50), b"not synced".repeat(50));
        s.put(BlobId::of(&a), &a)?;
        s.sync()?;
        s.put(BlobId::of(&b), &b)?;
        s.remove(BlobId::of(&a))?;
        let after = store(&disk.crash(Writeback::None), Durability::Full);
        assert_eq!(after.read(BlobId::of(&a))?, a);
        assert!(matches!(after.read(BlobId::of(&b)), Err(StoreError::Missing(_))));
        // The old disk is dead for the handles still open on it.
        assert!(disk.is_dead());
        assert!(s.read(BlobId::of(&a)).is_err());
        Ok(())
    }

    #[test]
    fn a_name_synced_without_its_bytes_comes_back_empty() -> Result<(), StoreError> {
        let disk = CrashDisk::new(2);
        let blobs = same_dir(2);
        let (fast, full) = (store(&disk, Durability::Fast), store(&disk, Durability::Full));
        let (x, y) = (BlobId::of(&blobs[0]), BlobId::of(&blobs[1]));
        fast.put(x, &blobs[0])?;
        full.put(y, &blobs[1])?;
        full.sync()?; // syncs the directory x is in too
        let after = store(&disk.crash(Writeback::None), Durability::Full);
        assert_eq!(after.stored_len(x)?, 0);
        assert!(matches!(after.read(x), Err(StoreError::Corrupt { .. })));
        assert_eq!(after.read(y)?, blobs[1]);
        Ok(())
    }

    #[test]
    fn the_crash_point_fails_every_later_operation() -> Result<(), StoreError> {
        let disk = CrashDisk::new(3);
        let s = store(&disk, Durability::Full);
        let a = b"first".repeat(50);
        s.put(BlobId::of(&a), &a)?;
        s.sync()?;
        let used = disk.ops();
        disk.crash_after(Some(used + 2));
        let b = b"second".repeat(50);
        assert!(s.put(BlobId::of(&b), &b).is_err());
        assert!(disk.is_dead());
        assert!(s.read(BlobId::of(&a)).is_err(), "reads fail once the disk is dead");
        assert!(s.list().is_err());
        let after = store(&disk.crash(Writeback::None), Durability::Full);
        assert_eq!(after.list()?, vec![BlobId::of(&a)]);
        Ok(())
    }

    #[test]
    fn a_restart_keeps_what_is_not_durable_yet() -> Result<(), StoreError> {
        let disk = CrashDisk::new(4);
        let s = store(&disk, Durability::Full);
        let a = b"kept by the kernel".repeat(20);
        s.put(BlobId::of(&a), &a)?;
        let pending = s.encode_pending(&b"half-written".as_slice(), None)?;
        disk.crash_after(Some(disk.ops()));
        drop(pending); // the dead process cannot delete its temp file
        let next = disk.restart();
        let s2 = store(&next, Durability::Full);
        assert_eq!(s2.read(BlobId::of(&a))?, a);
        assert_eq!(next.temp_files(), 1);
        assert_eq!(s2.clean_tmp()?, 1);
        // Still not durable: the new process did not sync it.
        let after = store(&next.crash(Writeback::None), Durability::Full);
        assert!(!after.contains(BlobId::of(&a)));
        Ok(())
    }

    #[test]
    fn random_writeback_never_yields_wrong_bytes_and_replays_from_its_seed() -> Result<(), StoreError> {
        let run = |seed: u64| -> Result<Vec<(BlobId, Option<u64>, bool)>, StoreError> {
            let disk = CrashDisk::new(seed);
            let s = store(&disk, Durability::Fast);
            let blobs: Vec<Vec<u8>> = (0..40u32)
                .map(|i| format!("{i} ").repeat(100 + i as usize).into_bytes())
                .collect();
            for b in &blobs {
                s.put(BlobId::of(b), b)?;
            }
            let after = store(&disk.crash(Writeback::Random), Durability::Fast);
            let mut seen = Vec::new();
            for b in &blobs {
                let id = BlobId::of(b);
                match after.read(id) {
                    Ok(got) => assert_eq!(&got, b),
                    Err(StoreError::Missing(_) | StoreError::Corrupt { .. }) => {}
                    Err(e) => return Err(e),
                }
                seen.push((id, after.stored_len(id).ok(), after.read(id).is_ok()));
            }
            Ok(seen)
        };
        let (mut kept, mut lost) = (0, 0);
        for seed in 0..8 {
            let first = run(seed)?;
            assert_eq!(first, run(seed)?, "seed {seed} does not replay");
            kept += first.iter().filter(|(_, _, ok)| *ok).count();
            lost += first.iter().filter(|(_, _, ok)| !*ok).count();
        }
        // Some writeback happened, and not all of it.
        assert!(kept > 0 && lost > 0, "kept {kept}, lost {lost}");
        Ok(())
    }
}
