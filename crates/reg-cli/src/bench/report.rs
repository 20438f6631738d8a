//! The printed result: a Markdown table of every step against `cp`, then
//! the sizes and the targets of issue 7.

use super::measure::Measure;
use super::steps::Timings;
use crate::human;
use std::time::Duration;

/// What the summary lines need besides the timings.
pub(super) struct Summary<'a> {
    /// Size of one generated checkpoint.
    pub file_size: u64,
    /// Epochs pushed.
    pub epochs: u32,
    /// The default registry's `reg stats --json`.
    pub stats: &'a serde_json::Value,
}

/// Print the table and the summary to stdout; ratios are against `cp0`.
pub(super) fn print(rows: &[Measure], cp0: Duration, t: &Timings, s: &Summary<'_>) {
    println!("| step | wall | vs cp | peak RSS |");
    println!("|---|---:|---:|---:|");
    for m in rows {
        println!(
            "| {} | {:.3} s | {:.2}x | {} |",
            m.what,
            m.wall.as_secs_f64(),
            m.wall.as_secs_f64() / cp0.as_secs_f64().max(1e-9),
            m.max_rss_kib
                .map(|k| human::bytes(k * 1024))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!();
    println!(
        "file size {} ({} epochs); registry: {} logical, {} stored",
        human::bytes(s.file_size),
        s.epochs,
        human::bytes(s.stats["logical_bytes"].as_u64().unwrap_or(0)),
        human::bytes(s.stats["stored_bytes"].as_u64().unwrap_or(0))
    );
    println!();
    let r = |d: Duration| d.as_secs_f64() / cp0.as_secs_f64().max(1e-9);
    println!(
        "targets (issue 7): first push <= 1.5x cp: {:.2}x (durability fast: {:.2}x); all-stored push <= 0.5x cp: {:.2}x; pull <= 1.2x cp: {:.2}x; hparam diff < 20 ms: {:.1} ms",
        r(t.push0),
        r(t.push0_fast),
        r(t.all_stored),
        r(t.pull),
        t.diff.as_secs_f64() * 1e3
    );
    println!(
        "(cp + fsync: {:.3} s = {:.2}x; without compression: first push {:.2}x, pull {:.2}x; identical re-push {:.2}x; next epoch {:.2}x (+{:.2}x in the background), fast {:.2}x; pull of the delta version {:.2}x)",
        t.cp_fsync.as_secs_f64(),
        r(t.cp_fsync),
        r(t.push0_raw),
        r(t.pull_raw),
        r(t.repush),
        r(t.push1),
        r(t.deltas1),
        r(t.push1_fast),
        r(t.pull_delta)
    );
}
