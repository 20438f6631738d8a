//! The generated training run the benchmark pushes: `epochs` checkpoints
//! of one model (reg-ckpt's `synth`), and the same tensors in another
//! skeleton.

use anyhow::{Context, Result};
use reg_write::synth::{self, RunSpec};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Write epoch `epoch` of a generated run of `size`-byte files to `out`.
pub fn generate(out: &Path, size: u64, epoch: u32, layers: Option<(usize, usize)>) -> Result<u64> {
    generate_labelled(out, size, epoch, layers, 0)
}

/// [`generate`] with a run label in the hyperparameters: the same tensors
/// in another skeleton.
pub(super) fn generate_labelled(
    out: &Path,
    size: u64,
    epoch: u32,
    layers: Option<(usize, usize)>,
    label: u32,
) -> Result<u64> {
    let mut spec = RunSpec::of_size(size);
    spec.label = label;
    if let Some((layers, frozen)) = layers {
        anyhow::ensure!(layers >= 1 && frozen <= layers, "need 1 <= layers and frozen <= layers");
        spec.layers = layers;
        spec.frozen = frozen;
    }
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let w = synth::write_epoch(BufWriter::with_capacity(8 << 20, file), &spec, epoch)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(std::fs::metadata(out)?.len())
}

/// Epochs `0..max(epochs, 2)` of a run of `size`-byte files in `root`,
/// named `epoch=NN.ckpt`.
pub(super) fn epochs(root: &Path, size: u64, epochs: u32) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in 0..epochs.max(2) {
        let f = root.join(format!("epoch={e:02}.ckpt"));
        generate(&f, size, e, None)?;
        files.push(f);
    }
    Ok(files)
}
