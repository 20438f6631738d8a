//! A reader during a push (issue 14): a `reg log` started while a push of
//! a mid-sized checkpoint runs must return before the push ends and list
//! the versions already committed.

use super::generate::generate;
use super::measure::{reg_cmd, Rows};
use anyhow::{Context, Result};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// When the log ran, from the start of the push.
pub(super) struct DuringPush {
    /// Size of the pushed file.
    pub file_size: u64,
    /// When the log started.
    pub log_started: Duration,
    /// When it returned.
    pub log_returned: Duration,
    /// When the push ended.
    pub push_ended: Duration,
    /// The push was still running when the log returned.
    pub before_end: bool,
    /// The version numbers the log listed.
    pub listed: Vec<u64>,
}

/// In a registry of its own under `root`: push epoch 0 of a run of
/// `size`-byte files (a measured row), then start the push of epoch 1 and,
/// a quarter of epoch 0's push time later, `reg log`.
pub(super) fn measure(rows: &mut Rows, root: &Path, size: u64) -> Result<DuringPush> {
    let dir = root.join("during");
    std::fs::create_dir_all(&dir)?;
    let home = root.join("registry-during");
    let (f0, f1) = (dir.join("epoch=00.ckpt"), dir.join("epoch=01.ckpt"));
    let file_size = generate(&f0, size, 0, None)?;
    generate(&f1, size, 1, None)?;
    let reg = |args: &[&str]| reg_cmd(&home, &dir, args);
    let push0 = rows.measure(
        format!(
            "push of a {} checkpoint (epoch 0, for the next row)",
            crate::human::bytes(file_size)
        ),
        reg(&["push", &f0.to_string_lossy(), "-n", "during"])?,
    )?;

    let _ = std::process::Command::new("sync").status();
    let start = Instant::now();
    let mut push = reg(&["push", &f1.to_string_lossy(), "-n", "during"])?
        .spawn()
        .context("starting the push")?;
    std::thread::sleep((push0 / 4).max(Duration::from_millis(20)));
    let log_started = start.elapsed();
    let log = reg(&["log", "during", "--json"])?
        .stdout(Stdio::piped())
        .output()
        .context("running reg log")?;
    let log_returned = start.elapsed();
    let before_end = push.try_wait()?.is_none();
    let status = push.wait()?;
    let push_ended = start.elapsed();
    anyhow::ensure!(status.success(), "the push of {} failed", f1.display());
    anyhow::ensure!(log.status.success(), "reg log during the push failed");
    let listed: serde_json::Value = serde_json::from_slice(&log.stdout).context("reg log --json")?;
    let listed = listed
        .as_array()
        .map(|a| a.iter().filter_map(|v| v["version"].as_u64()).collect())
        .unwrap_or_default();
    rows.rows.push(super::measure::Measure {
        what: format!(
            "  reg log during the push of epoch 1 (started at +{:.3} s of a {:.3} s push)",
            log_started.as_secs_f64(),
            push_ended.as_secs_f64()
        ),
        wall: log_returned - log_started,
        max_rss_kib: None,
    });
    // The push left its background deltas: let them finish before the
    // files go.
    let _ = reg(&["deltas", "during"])?.status();
    std::fs::remove_file(&f0)?;
    std::fs::remove_file(&f1)?;
    Ok(DuringPush {
        file_size,
        log_started,
        log_returned,
        push_ended,
        before_end,
        listed,
    })
}
