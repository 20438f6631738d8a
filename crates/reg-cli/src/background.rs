//! The re-encoding a push leaves behind: `reg deltas NAME@vN` started as a
//! detached process, so the push returns as soon as its version is
//! committed and the work overlaps whatever comes next (the next epoch of
//! training). The child takes its own locks (reg_meta::lock): it holds
//! nothing any reader or the next push waits for. Where a process cannot
//! be started the work runs here, before the command returns.

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
