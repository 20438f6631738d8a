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
