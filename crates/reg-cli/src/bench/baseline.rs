//! The baseline every step is compared with: `cp` of epoch 0.

use super::measure::{run_measured, Measure};
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Time `cp src root/copy0`. cp is the baseline, so it is measured with
/// care: this disk's (and a VM's) first writes into fresh page-cache
/// memory are much slower than later ones, so one copy warms up, then
/// three are measured and the median counts. Every copy is deleted at
/// once, so that the memory it took is reused by the steps that follow.
/// Returns the median and its row.
pub(super) fn cp_median(src: &str, root: &Path) -> Result<(Duration, Measure)> {
    let copy = root.join("copy0");
    let cp_once = |copy: &Path| -> Result<Duration> {
        let _ = Command::new("sync").status();
        let mut cp = Command::new("cp");
        cp.arg(src).arg(copy);
        let (wall, _) = run_measured(&mut cp)?;
        std::fs::remove_file(copy)?;
        Ok(wall)
    };
    cp_once(&copy)?;
    let mut cps_measured = [cp_once(&copy)?, cp_once(&copy)?, cp_once(&copy)?];
    cps_measured.sort();
    let cp0 = cps_measured[1];
    let row = Measure {
        what: format!(
            "cp epoch 0 (median of {:.3} / {:.3} / {:.3} s)",
            cps_measured[0].as_secs_f64(),
            cps_measured[1].as_secs_f64(),
            cps_measured[2].as_secs_f64()
        ),
        wall: cp0,
        max_rss_kib: None,
    };
    Ok((cp0, row))
}

/// `cp src root/copy0s && sync root/copy0s`, as a command to measure
/// (the copy is the caller's to delete).
pub(super) fn cp_fsync(src: &str, root: &Path) -> Command {
    let mut cps = Command::new("sh");
    cps.arg("-c").arg(format!(
        "cp '{src}' '{}' && sync '{}'",
        root.join("copy0s").display(),
        root.join("copy0s").display()
    ));
    cps
}
