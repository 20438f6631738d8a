//! The re-encoding a push leaves behind, run by a detached `reg deltas
//! --background`, so the push returns as soon as its version is committed
//! and the work overlaps whatever comes next (the next epoch of training).
//!
//! The push's commit recorded the request in the index's queue. When no
//! re-encoding runs, the push takes `deltas.lock` and hands it to the
//! child (`reg_meta::lock::DeltasHandOff`: the child inherits the locked
//! descriptor), so `reg deltas` — which waits for that lock — waits for
//! it; when one runs already, no child is started: the running one picks
//! the request up before it ends. Nothing here is held that a reader or
//! the next push waits for. Where a process cannot be started the work
//! runs here, before the command returns.
//!
//! The child's worker threads, which do the re-encoding, run at the lowest
//! CPU priority (nice 19, SCHED_IDLE) and, where the kernel's I/O scheduler
//! honours it, idle I/O priority ([`lower_worker_priority`]): it is
//! housekeeping, and whatever the user runs meanwhile (a `reg pull`, the
//! next epoch of training) should have the cores. Measured on 2 cores: a
//! pull of the newest 2 GB version started right after its push took
//! 1.8-3.4x the settled pull with the re-encoding at normal priority,
//! 1.13-2.0x with nice-19 workers, 0.79-1.24x with SCHED_IDLE workers
//! (docs/performance.md). The main thread keeps its priority: it takes the
//! index lock, and a holder of a lock every command waits for must not be
//! starved by the machine's other work.

use anyhow::Result;
use reg_meta::lock::DELTAS_LOCK_FD_ENV;
use reg_meta::Registry;

/// Start the background re-encoding of what the pushes left queued.
pub fn spawn_deltas(reg: &Registry) -> Result<()> {
    let Some(hand_off) = reg.hand_off_deltas()? else {
        return Ok(()); // a running job takes the queue
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let fd = hand_off.inheritable_fd()?;
        let started = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .arg("--registry")
                .arg(&reg.config().root)
                .arg("--quiet")
                .arg("deltas")
                .arg("--background")
                .env(DELTAS_LOCK_FD_ENV, fd.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                // Its own process group: a Ctrl-C meant for the training
                // script does not stop it half way (that would be safe,
                // but the work would be left for the next job).
                .process_group(0)
                .spawn()
        });
        if started.is_ok() {
            hand_off.release_to_child();
            return Ok(());
        }
    }
    drop(hand_off);
    reg.finish_pending_deltas(None, &reg_meta::Silent)?;
    Ok(())
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
