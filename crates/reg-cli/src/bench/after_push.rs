//! What a user sees right after a push, while the background re-encoding
//! it left runs (issue 14): `reg log`, `reg show --json` and `reg diff
//! --only hparams` as fractions of that push's time, and a pull of the new
//! version against the same pull once everything has settled.

use super::measure::Rows;
use anyhow::Result;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The readers timed after one push.
pub(super) struct AfterPush {
    /// The version pushed (`name@vN`).
    pub version: String,
    /// The push's wall time.
    pub push: Duration,
    /// `reg log NAME`, started as the push returned.
    pub log: Duration,
    /// `reg show NAME --json`, right after the log.
    pub show: Duration,
    /// `reg diff NAME@vN-1 NAME@vN --only hparams`, right after.
    pub diff: Duration,
    /// `reg pull NAME@vN`, right after (the re-encoding still running).
    pub pull_busy: Duration,
    /// What was left of the background re-encoding after all that.
    pub deltas_rest: Duration,
    /// The same pull once the re-encoding has finished (the faster of two).
    pub pull_settled: Duration,
}

impl AfterPush {
    /// The slowest of log, show and diff as a fraction of the push.
    pub fn worst_reader_ratio(&self) -> f64 {
        self.log.max(self.show).max(self.diff).as_secs_f64() / self.push.as_secs_f64().max(1e-9)
    }

    /// The pull right after the push against the settled one.
    pub fn pull_ratio(&self) -> f64 {
        self.pull_busy.as_secs_f64() / self.pull_settled.as_secs_f64().max(1e-9)
    }
}

/// Run the readers of [`AfterPush`] on `name@vN` (just pushed in
/// `push` time; its background `reg deltas` is running) and then wait for
/// the re-encoding and pull again. `reg(args)` makes a command on the
/// registry; `out` is a scratch file for the pulls (removed after each).
/// Rows whose label starts with two spaces run at once (no `sync` first).
pub(super) fn measure(
    rows: &mut Rows,
    reg: &dyn Fn(&[&str]) -> Result<Command>,
    name: &str,
    number: u32,
    push: Duration,
    out: &Path,
) -> Result<AfterPush> {
    let version = reg_format::VersionLabel::new(name, number).to_string();
    let previous = reg_format::VersionLabel::new(name, number.saturating_sub(1).max(1)).to_string();
    let out_arg = out.to_string_lossy().into_owned();
    let log = rows.measure(format!("  right after: reg log {name}"), reg(&["log", name])?)?;
    let show = rows.measure(
        format!("  right after: reg show {name} --json"),
        reg(&["show", name, "--json"])?,
    )?;
    let diff = rows.measure(
        format!("  right after: reg diff {previous} {version} --only hparams"),
        reg(&["diff", &previous, &version, "--only", "hparams"])?,
    )?;
    let pull_busy = rows.measure(
        format!("  right after: pull {version} (newest; re-encoding running)"),
        reg(&["pull", &version, "-o", &out_arg, "--force"])?,
    )?;
    std::fs::remove_file(out)?;
    // `reg deltas` takes the lock the background job holds: it returns
    // when that job has finished (and finds nothing left to do).
    let deltas_rest = rows.measure(
        format!("  then: the rest of the background deltas (reg deltas {name} waits for them)"),
        reg(&["deltas", name])?,
    )?;
    // Twice, the faster counting: on this VM the first writes into page
    // cache memory that other files just gave up are sometimes much slower
    // (docs/performance.md), and the busy pull must not look good against
    // an unlucky baseline.
    let mut settled = Vec::new();
    for again in ["", ", again"] {
        settled.push(rows.measure(
            format!("pull {version} (newest), settled{again}"),
            reg(&["pull", &version, "-o", &out_arg, "--force"])?,
        )?);
        std::fs::remove_file(out)?;
    }
    let pull_settled = settled.into_iter().min().unwrap_or_default();
    Ok(AfterPush {
        version,
        push,
        log,
        show,
        diff,
        pull_busy,
        deltas_rest,
        pull_settled,
    })
}

/// The same pull right after a push and settled, in a registry that makes
/// no deltas: what a pull right after a push costs on this machine with
/// no background work at all (on a VM, the first writes into memory the
/// host took back are slow), to tell that apart from the re-encoding's
/// share in [`AfterPush::pull_ratio`].
pub(super) struct Control {
    /// The pull right after the push.
    pub right_after: Duration,
    /// The same pull settled (the faster of two).
    pub settled: Duration,
}

impl Control {
    /// Right after against settled.
    pub fn ratio(&self) -> f64 {
        self.right_after.as_secs_f64() / self.settled.as_secs_f64().max(1e-9)
    }
}

/// Push `f0` then `f1` into a registry of its own under `root` with
/// `deltas = "off"`, pull `f1`'s version at once, then twice settled; the
/// registry is removed after.
pub(super) fn control(rows: &mut Rows, root: &Path, f0: &str, f1: &str) -> Result<Control> {
    let dir = root.join("control");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("registry.toml"), "[registry]\ndeltas = \"off\"\n")?;
    let home = root.join("registry-control");
    let reg = |args: &[&str]| super::measure::reg_cmd(&home, &dir, args);
    let out = root.join("pulled-control.ckpt");
    let out_arg = out.to_string_lossy().into_owned();
    rows.measure(
        "push epoch 0, deltas off (control)".into(),
        reg(&["push", f0, "-n", "bench"])?,
    )?;
    rows.measure(
        "push epoch 1, deltas off (control)".into(),
        reg(&["push", f1, "-n", "bench"])?,
    )?;
    let right_after = rows.measure(
        "  right after: pull bench@v2, deltas off (no background work)".into(),
        reg(&["pull", "bench@v2", "-o", &out_arg, "--force"])?,
    )?;
    std::fs::remove_file(&out)?;
    let mut settled = Vec::new();
    for again in ["", ", again"] {
        settled.push(rows.measure(
            format!("pull bench@v2, deltas off, settled{again}"),
            reg(&["pull", "bench@v2", "-o", &out_arg, "--force"])?,
        )?);
        std::fs::remove_file(&out)?;
    }
    std::fs::remove_dir_all(&home)?;
    Ok(Control {
        right_after,
        settled: settled.into_iter().min().unwrap_or_default(),
    })
}
