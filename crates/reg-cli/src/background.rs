//! Delta encoding after a push, in a background process that inherits the
//! registry lock.
//!
//! A push leaves the re-encoding of the previous version as deltas
//! against the new one to `reg deltas` (with `deltas = "background"`, the
//! default): the push returns as soon as its version is committed, and
//! the work overlaps whatever comes next (the next epoch of training). The
//! push hands its locked lock file to the child (the descriptor survives
//! `exec`; `REG_LOCK_FD` names it), so no other `reg` can take the
//! registry in between: a command that follows waits for the deltas, and
//! sees them. `lock.owner` says the lock is held in the background, so
//! waiters do not announce the wait. Where handing the lock over is not
//! possible (not Unix, or the child cannot start), the work runs inline.

use anyhow::Result;
use reg_meta::deltas::RebaseReport;
use reg_meta::{Config, Registry};
use std::fs::File;
use std::path::Path;

/// The environment variable that passes the lock's file descriptor.
pub const LOCK_FD_VAR: &str = "REG_LOCK_FD";

/// Name of the marker file beside `lock` while a background job holds it.
const OWNER_FILE: &str = "lock.owner";

/// True when a background job holds the lock of the registry at `root`:
/// `lock.owner` names a process that is still running.
pub fn held_in_background(root: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join(OWNER_FILE)) else {
        return false;
    };
    let pid = text.split_whitespace().last().and_then(|p| p.parse::<i32>().ok());
    match pid {
        #[cfg(unix)]
        // SAFETY: signal 0 only asks whether the process exists.
        Some(pid) if pid > 0 => unsafe { libc::kill(pid, 0) == 0 },
        _ => true,
    }
}

fn write_owner(root: &Path, pid: u32) {
    let _ = std::fs::write(root.join(OWNER_FILE), format!("reg deltas (background), pid {pid}\n"));
}

/// Start `reg deltas` for `models` (NAME@vN each) with the registry's lock;
/// runs the work here instead when that is not possible.
pub fn spawn_deltas(reg: Registry, models: &[String], quiet: bool) -> Result<()> {
    let root = reg.config().root.clone();
    let config = reg.config().clone();
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        use std::os::unix::process::CommandExt;
        let lock = reg.into_lock()?;
        let fd = lock.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns; clearing
        // FD_CLOEXEC lets the child inherit it across exec.
        let inheritable = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
        };
        if inheritable {
            // The child rewrites it with its own pid once it runs.
            write_owner(&root, std::process::id());
            let started = std::env::current_exe().and_then(|exe| {
                std::process::Command::new(exe)
                    .arg("--registry")
                    .arg(&root)
                    .arg("--quiet")
                    .arg("deltas")
                    .args(models)
                    .env(LOCK_FD_VAR, fd.to_string())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .process_group(0)
                    .spawn()
            });
            if started.is_ok() {
                // The child holds the lock through its copy of the
                // descriptor; closing ours does not release it.
                drop(lock);
                return Ok(());
            }
            let _ = std::fs::remove_file(root.join(OWNER_FILE));
        }
        drop(lock);
        let reg = Registry::open(config, &|| {})?;
        run_deltas(&reg, models, !quiet).map(|_| ())
    }
    #[cfg(not(unix))]
    {
        let _ = (root, config);
        run_deltas(&reg, models, !quiet).map(|_| ())
    }
}

/// Open the registry for `reg deltas`: with the lock a push handed over
/// (`REG_LOCK_FD`), else by taking it.
pub fn open_for_deltas(config: Config, on_wait: &dyn Fn()) -> Result<(Registry, Option<OwnerGuard>)> {
    let root = config.root.clone();
    if let Some(fd) = std::env::var(LOCK_FD_VAR).ok().and_then(|v| v.parse::<i32>().ok()) {
        if let Some(lock) = adopt(fd) {
            write_owner(&root, std::process::id());
            let guard = OwnerGuard(root.join(OWNER_FILE));
            return Ok((Registry::open_locked(config, lock)?, Some(guard)));
        }
    }
    Ok((Registry::open(config, on_wait)?, None))
}

#[cfg(unix)]
fn adopt(fd: i32) -> Option<File> {
    use std::os::unix::io::FromRawFd;
    // SAFETY: F_GETFD only asks whether the descriptor is open. The
    // descriptor was handed to this process by its parent for this use;
    // open_locked checks that it is the registry's lock file.
    let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
    // SAFETY: an open descriptor nothing else in this process owns.
    open.then(|| unsafe { File::from_raw_fd(fd) })
}

#[cfg(not(unix))]
fn adopt(_fd: i32) -> Option<File> {
    None
}

/// Removes `lock.owner` when the background job ends.
pub struct OwnerGuard(std::path::PathBuf);

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Run the delta encoding of each NAME[@vN]; with `print`, say what it did.
pub fn run_deltas(reg: &Registry, models: &[String], print: bool) -> Result<Vec<(String, RebaseReport)>> {
    let mut out = Vec::new();
    for model in models {
        let (name, from) = match model.split_once("@v") {
            Some((n, v)) => (
                n,
                v.parse::<u32>()
                    .map_err(|_| anyhow::anyhow!("{model}: expected NAME or NAME@vN"))?,
            ),
            None => (model.as_str(), 1),
        };
        for r in reg.make_deltas(name, from, &reg_meta::Silent)? {
            if print && (r.blobs > 0 || !r.warnings.is_empty()) {
                println!(
                    "{name}@v{}: {} tensors re-encoded as deltas against v{}: {} -> {}",
                    r.version.unwrap_or(0),
                    r.blobs,
                    r.against.unwrap_or(0),
                    crate::human::bytes(r.bytes_before),
                    crate::human::bytes(r.bytes_after)
                );
            }
            for w in &r.warnings {
                eprintln!("reg: warning: {w}");
            }
            out.push((name.to_string(), r));
        }
    }
    Ok(out)
}
