//! The printed result: a Markdown table of every step against `cp`, then
//! the sizes and the targets of issues 7 and 14.

use super::after_push::AfterPush;
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
        "(cp + fsync: {:.3} s = {:.2}x; without compression: first push {:.2}x, pull {:.2}x; identical re-push {:.2}x; next epoch {:.2}x (+{:.2}x of background deltas left after the readers), fast {:.2}x; pull of the delta version {:.2}x)",
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
    print_concurrency(t);
}

/// The targets of issue 14: readers right after a push (as a fraction of
/// it), a pull right after against settled, a log during a push.
fn print_concurrency(t: &Timings) {
    println!();
    for a in &t.after {
        let push = a.push.as_secs_f64().max(1e-9);
        println!(
            "right after the push of {} ({:.3} s): log {:.3} s = {:.3}x, show --json {:.3} s = {:.3}x, diff --only hparams {:.3} s = {:.3}x of the push; pull {:.3} s vs {:.3} s settled = {:.2}x ({:.3} s of background deltas left after them)",
            a.version,
            push,
            a.log.as_secs_f64(),
            a.log.as_secs_f64() / push,
            a.show.as_secs_f64(),
            a.show.as_secs_f64() / push,
            a.diff.as_secs_f64(),
            a.diff.as_secs_f64() / push,
            a.pull_busy.as_secs_f64(),
            a.pull_settled.as_secs_f64(),
            a.pull_ratio(),
            a.deltas_rest.as_secs_f64(),
        );
    }
    let worst_reader = t.after.iter().map(AfterPush::worst_reader_ratio).fold(0.0, f64::max);
    let worst_pull = t.after.iter().map(AfterPush::pull_ratio).fold(0.0, f64::max);
    let c = &t.control;
    println!(
        "control, deltas off (no background work at all): pull right after the push {:.3} s vs {:.3} s settled = {:.2}x",
        c.right_after.as_secs_f64(),
        c.settled.as_secs_f64(),
        c.ratio()
    );
    let d = &t.during;
    println!(
        "targets (issue 14): log, show --json, diff --only hparams right after a push <= 0.05x it: {worst_reader:.3}x (worst of {} pushes); pull of the newest right after its push <= 1.3x settled: {worst_pull:.2}x (worst); reg log during a {} push returns before it ends: {} (started +{:.3} s, returned +{:.3} s, push ended +{:.3} s; listed {})",
        t.after.len(),
        human::bytes(d.file_size),
        if d.before_end { "yes" } else { "no" },
        d.log_started.as_secs_f64(),
        d.log_returned.as_secs_f64(),
        d.push_ended.as_secs_f64(),
        if d.listed.is_empty() {
            "no versions".to_string()
        } else {
            d.listed.iter().map(|n| format!("v{n}")).collect::<Vec<_>>().join(", ")
        }
    );
}
