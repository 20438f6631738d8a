//! The re-encoding a push leaves behind: `reg deltas NAME@vN` started as a
//! detached process, so the push returns as soon as its version is
//! committed and the work overlaps whatever comes next (the next epoch of
//! training). The child takes its own locks (reg_meta::lock): it holds
//! nothing any reader or the next push waits for. It is started holding a
//! shared `gc.lock` the push hands over, so gc never runs between the push
//! and the start of its re-encoding. Where a process cannot
//! be started the work runs here, before the command returns.
//!
//! The child's worker threads, which do the re-encoding, run at the lowest
//! CPU priority (nice 19) and, where the kernel's I/O scheduler honours it,
//! idle I/O priority ([`lower_worker_priority`]): it is housekeeping, and
//! whatever the user runs meanwhile (a `reg pull`, the next epoch of
//! training) should have the cores. Measured on 2 cores: a pull of the
//! newest 2 GB version started right after its push took 1.8-3.4x the
//! settled pull with the re-encoding at normal priority, 1.03-1.18x at
//! nice 19 (docs/performance.md). The main thread keeps its priority: it
//! takes the index lock, and a holder of a lock every command waits for
//! must not be starved by the machine's other work.

use anyhow::Result;
use reg_meta::Registry;

/// Start `reg deltas` for `models` (NAME@vN each) in the background; run
/// it here when that is not possible.
pub fn spawn_deltas(reg: &Registry, models: &[String]) -> Result<()> {
    let root = &reg.config().root;
    let started = std::env::current_exe().and_then(|exe| {
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("--registry")
            .arg(root)
            .arg("--quiet")
            .arg("deltas")
            .arg("--background")
            .args(models)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C meant for the training
            // script does not kill it half way (it would be safe, but
            // the work would be lost).
            cmd.process_group(0);
        }
        let handed = hand_over_writer_lock(reg, &mut cmd);
        let spawned = cmd.spawn();
        // Closing this process's descriptor keeps the lock: the child's
        // inherited one refers to the same open file.
        drop(handed);
        spawned
    });
    if started.is_ok() {
        return Ok(());
    }
    for model in models {
        let (name, from) = model.split_once("@v").unwrap_or((model.as_str(), "1"));
        let from = from.parse::<u32>().unwrap_or(1);
        reg.make_deltas(name, from, &reg_meta::Silent)?;
    }
    Ok(())
}

/// Let the child inherit a shared hold of `gc.lock` (a writer's), taken
/// here, so that it is a writer from the moment it is started: a gc, or a
/// `reg gc --dry-run` that waits for the registry to settle, started right
/// after the push waits for it instead of racing its start. None when gc
/// holds the lock now (the child then waits for gc like any writer).
#[cfg(unix)]
fn hand_over_writer_lock(reg: &Registry, cmd: &mut std::process::Command) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let path = reg.layout().lock_file(reg_meta::layout::LockName::Gc);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.try_lock_shared().ok()?;
    let fd = file.as_raw_fd();
    // SAFETY: runs in the child between fork and exec; fcntl is
    // async-signal-safe and `fd` is open there (inherited, close-on-exec
    // until this clears it).
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
            Ok(())
        });
    }
    Some(file)
}

#[cfg(not(unix))]
fn hand_over_writer_lock(_reg: &Registry, _cmd: &mut std::process::Command) -> Option<std::fs::File> {
    None
}

/// Make the global rayon pool's threads, which do this process's CPU
/// work, yield to everything else (`reg deltas --background`); the calling
/// thread keeps its priority. Linux only: elsewhere the nice value is per
/// process, and lowering it would starve the holder of the index lock.
pub fn lower_worker_priority() {
    #[cfg(target_os = "linux")]
    {
        // An error means the pool exists already: the work then runs at
        // normal priority, which is only less polite.
        let _ = rayon::ThreadPoolBuilder::new()
            .start_handler(|_| lower_this_thread())
            .build_global();
    }
}

/// Lower the calling thread's CPU and I/O priority as far as they go:
/// nice 19, the SCHED_IDLE policy, idle I/O class (failures are ignored:
/// the work is the same, only less polite).
#[cfg(target_os = "linux")]
fn lower_this_thread() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    // SAFETY: plain system calls on the calling thread, with integer
    // arguments or a pointer to a live local (on Linux, nice, scheduling
    // policy and I/O priority are per thread).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid);
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
        // SCHED_IDLE: a woken foreground thread takes the core at once,
        // where a nice-19 one may first finish its slice.
        let idle = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(tid as libc::pid_t, libc::SCHED_IDLE, &idle);
        // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13).
        libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13);
    }
}
