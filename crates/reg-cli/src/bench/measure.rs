//! Timing one command: wall time and the child's peak RSS, and the rows
//! of the table they go into.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One measured command.
pub(super) struct Measure {
    /// The row's label.
    pub what: String,
    /// Wall time.
    pub wall: Duration,
    /// Peak resident set of the child, where the OS reports it.
    pub max_rss_kib: Option<u64>,
}

/// Run `cmd` to completion (it must exit 0); its wall time and peak RSS.
#[cfg(unix)]
pub(super) fn run_measured(cmd: &mut Command) -> Result<(Duration, Option<u64>)> {
    let start = Instant::now();
    let child = cmd.spawn().context("starting a child process")?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child; status and usage point to live locals.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    anyhow::ensure!(r == pid, "waiting for the child failed");
    anyhow::ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed"
    );
    Ok((wall, Some(usage.ru_maxrss as u64)))
}

/// Run `cmd` to completion (it must exit 0); its wall time.
#[cfg(not(unix))]
pub(super) fn run_measured(cmd: &mut Command) -> Result<(Duration, Option<u64>)> {
    let start = Instant::now();
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed");
    Ok((start.elapsed(), None))
}

/// `reg` as a child process on the registry `home`, in `cwd` (whose
/// registry.toml, if any, gives the settings).
pub(super) fn reg_cmd(home: &Path, cwd: &Path, args: &[&str]) -> Result<Command> {
    let mut c = Command::new(std::env::current_exe()?);
    c.env("REG_HOME", home).args(["--quiet"]).args(args).current_dir(cwd);
    c.stdout(std::process::Stdio::null());
    Ok(c)
}

/// The table's rows, in the order measured.
pub(super) struct Rows {
    /// Every measured command so far.
    pub rows: Vec<Measure>,
}

impl Rows {
    /// Measure `cmd` as the row `what`. Each step starts with no dirty
    /// pages (so no step pays for an earlier one's writeback); inputs stay
    /// in the page cache. A step that waits for a background job (its
    /// label starts with two spaces) starts at once.
    pub(super) fn measure(&mut self, what: String, mut cmd: Command) -> Result<Duration> {
        if !what.starts_with("  ") {
            let _ = Command::new("sync").status();
        }
        let (wall, rss) = run_measured(&mut cmd)?;
        self.rows.push(Measure {
            what,
            wall,
            max_rss_kib: rss,
        });
        Ok(wall)
    }
}
