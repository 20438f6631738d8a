//! The re-encoding a push leaves behind: `reg deltas NAME@vN` started as a
//! detached process, so the push returns as soon as its version is
//! committed and the work overlaps whatever comes next (the next epoch of
//! training). The child takes its own locks (reg_meta::lock): it holds
//! nothing any reader or the next push waits for. Where a process cannot
//! be started the work runs here, before the command returns.
//!
//! The child runs at the lowest CPU priority (nice 19) and, where the
//! kernel's I/O scheduler honours it, idle I/O priority: it is housekeeping,
//! and whatever the user runs meanwhile (a `reg pull`, the next epoch of
//! training) should have the cores. Measured on 2 cores: a pull of the
//! newest 2 GB version started right after its push took 2.1x the settled
//! pull with the re-encoding at normal priority (docs/performance.md).

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
            // SAFETY: the hook runs in the child between fork and exec and
            // only makes system calls (async-signal-safe), allocating
            // nothing.
            unsafe {
                cmd.pre_exec(|| {
                    yield_to_foreground();
                    Ok(())
                });
            }
        }
        cmd.spawn()
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

/// Lower the calling process's CPU and I/O priority as far as they go
/// (failures are ignored: the work is the same, only less polite). Only
/// system calls: it runs between fork and exec.
#[cfg(unix)]
fn yield_to_foreground() {
    // SAFETY: plain system calls on the calling process, no pointers.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
    #[cfg(target_os = "linux")]
    {
        // ioprio_set(IOPRIO_WHO_PROCESS, self, IOPRIO_CLASS_IDLE << 13).
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        // SAFETY: a system call with integer arguments only.
        unsafe {
            libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << 13);
        }
    }
}
