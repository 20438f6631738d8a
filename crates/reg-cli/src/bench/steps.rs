//! The measured `reg` steps: pushes (new, identical, next epoch, all
//! payloads stored), the readers right after each next-epoch push and the
//! background deltas it starts, pulls and a diff, on three registries with
//! different settings; then a reader during a push (`during_push.rs`).

use super::after_push::{self, AfterPush};
use super::baseline;
use super::during_push::{self, DuringPush};
use super::generate::generate_labelled;
use super::measure::{reg_cmd, Rows};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Three registries in `root`, each run from a folder whose registry.toml
/// gives its settings: the default (durability "full"), durability
/// "fast", and codecs "raw" (no compression).
pub(super) struct Registries {
    home: PathBuf,
    full_dir: PathBuf,
    fast_home: PathBuf,
    fast_dir: PathBuf,
    raw_home: PathBuf,
    raw_dir: PathBuf,
}

impl Registries {
    /// Make the settings folders; the registries are made by their first
    /// push. `home` is the default registry's.
    pub(super) fn new(root: &Path, home: &Path) -> Result<Registries> {
        let full_dir = root.join("full");
        let fast_dir = root.join("fast");
        std::fs::create_dir_all(&full_dir)?;
        std::fs::create_dir_all(&fast_dir)?;
        std::fs::write(fast_dir.join("registry.toml"), "[registry]\ndurability = \"fast\"\n")?;
        let raw_dir = root.join("raw");
        std::fs::create_dir_all(&raw_dir)?;
        std::fs::write(raw_dir.join("registry.toml"), "[registry]\ncodecs = \"raw\"\n")?;
        Ok(Registries {
            home: home.to_path_buf(),
            full_dir,
            fast_home: root.join("registry-fast"),
            fast_dir,
            raw_home: root.join("registry-raw"),
            raw_dir,
        })
    }

    /// Remove the registries other than the default one.
    pub(super) fn remove_others(&self) -> Result<()> {
        for home in [&self.fast_home, &self.raw_home] {
            if home.exists() {
                std::fs::remove_dir_all(home)?;
            }
        }
        Ok(())
    }

    pub(super) fn full(&self, args: &[&str]) -> Result<Command> {
        reg_cmd(&self.home, &self.full_dir, args)
    }

    fn fast(&self, args: &[&str]) -> Result<Command> {
        reg_cmd(&self.fast_home, &self.fast_dir, args)
    }

    fn raw(&self, args: &[&str]) -> Result<Command> {
        reg_cmd(&self.raw_home, &self.raw_dir, args)
    }
}

/// The wall times the summary lines quote.
pub(super) struct Timings {
    pub cp_fsync: Duration,
    pub push0: Duration,
    pub push0_fast: Duration,
    pub push0_raw: Duration,
    pub repush: Duration,
    pub push1: Duration,
    pub deltas1: Duration,
    pub push1_fast: Duration,
    pub all_stored: Duration,
    pub pull: Duration,
    pub pull_raw: Duration,
    pub pull_delta: Duration,
    pub diff: Duration,
    /// The readers right after each next-epoch push (issue 14).
    pub after: Vec<AfterPush>,
    /// A `reg log` during a push (issue 14).
    pub during: DuringPush,
    /// The pull right after a push with no re-encoding at all.
    pub control: after_push::Control,
}

/// Size of the checkpoint a `reg log` runs during the push of (issue 14),
/// or the run's size when that is smaller.
const DURING_PUSH_SIZE: u64 = 300 << 20;

/// Measure every step in order into `rows`: `files` are the run's epochs
/// (at least two), `size` their size, `root` the work folder.
pub(super) fn run(rows: &mut Rows, regs: &Registries, root: &Path, files: &[PathBuf], size: u64) -> Result<Timings> {
    let f0 = files[0].to_string_lossy().into_owned();
    let f1 = files[1].to_string_lossy().into_owned();

    let cp_fsync = rows.measure("cp + fsync epoch 0".into(), baseline::cp_fsync(&f0, root))?;
    std::fs::remove_file(root.join("copy0s"))?;
    let push0 = rows.measure("push epoch 0 (new)".into(), regs.full(&["push", &f0, "-n", "bench"])?)?;
    let push0_fast = rows.measure(
        "push epoch 0 (new), durability fast".into(),
        regs.fast(&["push", &f0, "-n", "bench"])?,
    )?;
    let push0_raw = rows.measure(
        "push epoch 0 (new), codecs raw (no compression)".into(),
        regs.raw(&["push", &f0, "-n", "bench"])?,
    )?;
    let repush = rows.measure(
        "push epoch 0 again (identical)".into(),
        regs.full(&["push", &f0, "-n", "bench"])?,
    )?;
    let push1 = rows.measure(
        "push epoch 1 (next epoch)".into(),
        regs.full(&["push", &f1, "-n", "bench"])?,
    )?;
    // The push returned; the re-encoding of epoch 0 as deltas against
    // epoch 1 goes on in the background while readers run.
    let full = |args: &[&str]| regs.full(args);
    let scratch = root.join("pulled-after-push.ckpt");
    let mut after = vec![after_push::measure(rows, &full, "bench", 2, push1, &scratch)?];
    let deltas1 = after[0].deltas_rest;
    let push1_fast = rows.measure(
        "push epoch 1, durability fast".into(),
        regs.fast(&["push", &f1, "-n", "bench"])?,
    )?;
    rows.measure(
        "  then: background deltas of epoch 0, durability fast (reg deltas waits for them)".into(),
        regs.fast(&["deltas", "bench"])?,
    )?;
    // Epoch 1's tensors in another skeleton (other hyperparameters): every
    // payload is stored, the file is new.
    let relabelled = root.join("same-tensors.ckpt");
    generate_labelled(&relabelled, size, 1, None, 1)?;
    let all_stored = rows.measure(
        "push of a new file whose tensors are all stored".into(),
        regs.full(&["push", &relabelled.to_string_lossy(), "-n", "bench-relabelled"])?,
    )?;
    let out = root.join("pulled.ckpt");
    let pull = rows.measure(
        "pull epoch 1 (newest: self-contained)".into(),
        regs.full(&["pull", "bench@v2", "-o", &out.to_string_lossy()])?,
    )?;
    anyhow::ensure!(
        std::fs::metadata(&out)?.len() == std::fs::metadata(&files[1])?.len(),
        "pull size differs"
    );
    std::fs::remove_file(&out)?;
    let pull_raw = rows.measure(
        "pull epoch 0, codecs raw".into(),
        regs.raw(&["pull", "bench@v1", "-o", &out.to_string_lossy()])?,
    )?;
    std::fs::remove_file(&out)?;
    let out0 = root.join("pulled0.ckpt");
    let pull_delta = rows.measure(
        "pull epoch 0 (a delta against epoch 1)".into(),
        regs.full(&["pull", "bench@v1", "-o", &out0.to_string_lossy()])?,
    )?;
    std::fs::remove_file(&out0)?;
    let diff = rows.measure(
        "diff --only hparams v1 v2".into(),
        regs.full(&["diff", "bench@v1", "bench@v2", "--only", "hparams"])?,
    )?;
    for (i, f) in files.iter().enumerate().skip(2) {
        let push = rows.measure(
            format!("push epoch {i}"),
            regs.full(&["push", &f.to_string_lossy(), "-n", "bench"])?,
        )?;
        after.push(after_push::measure(rows, &full, "bench", i as u32 + 1, push, &scratch)?);
    }
    let during = during_push::measure(rows, root, size.min(DURING_PUSH_SIZE))?;
    // The other registries are done with: their disk goes to the control.
    regs.remove_others()?;
    let control = after_push::control(rows, root, &f0, &f1)?;
    Ok(Timings {
        cp_fsync,
        push0,
        push0_fast,
        push0_raw,
        repush,
        push1,
        deltas1,
        push1_fast,
        all_stored,
        pull,
        pull_raw,
        pull_delta,
        diff,
        after,
        during,
        control,
    })
}

/// `reg stats --json` of the registry `home`, or `null` when it says
/// nothing readable.
pub(super) fn stats(home: &Path) -> Result<serde_json::Value> {
    let stats_out = Command::new(std::env::current_exe()?)
        .env("REG_HOME", home)
        .args(["stats", "--json"])
        .output()?;
    Ok(serde_json::from_slice(&stats_out.stdout).unwrap_or_default())
}
