//! Synthetic training runs: Lightning-shaped torch checkpoints of any size,
//! for benchmarks and large-file tests.
//!
//! A run has `layers` float32 weight matrices, the first `frozen` of which
//! never change (a frozen backbone); the others drift a little every epoch
//! and carry Adam state (`exp_avg`, `exp_avg_sq`, `step`) that changes
//! fully. Values come from a counter-based generator, so any element of any
//! epoch can be produced independently and files are written in a stream.

use crate::{write_checkpoint, Emit, StorageSource, TensorRef, WriteError};
use reg_ckpt::dtype::DType;
use std::io::Write;

/// Shape of a synthetic run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// Approximate size of one checkpoint file in bytes.
    pub file_bytes: u64,
    /// Weight matrices.
    pub layers: usize,
    /// How many of them are frozen.
    pub frozen: usize,
    /// Seed of all values.
    pub seed: u64,
    /// Written into the hyperparameters (`run_label`): files of two labels
    /// hold the same tensors in different skeletons.
    pub label: u32,
}

impl RunSpec {
    /// A run whose files are about `file_bytes` long: 8 layers, 2 frozen.
    pub fn of_size(file_bytes: u64) -> RunSpec {
        RunSpec {
            file_bytes,
            layers: 8,
            frozen: 2,
            seed: 0x5EED,
            label: 0,
        }
    }

    /// Elements per weight matrix (weights plus twice the trainable ones
    /// for Adam make up the file).
    pub fn layer_numel(&self) -> u64 {
        let trainable = self.layers.saturating_sub(self.frozen) as u64;
        let units = self.layers as u64 + 2 * trainable;
        (self.file_bytes / 4 / units.max(1)).max(16)
    }

    fn shape(&self) -> [u64; 2] {
        let n = self.layer_numel();
        let cols = 256u64.min(n);
        [n / cols, cols]
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// An approximately standard normal value for a counter (Irwin-Hall of four
/// 16-bit uniforms).
fn normal(key: u64) -> f32 {
    let r = splitmix(key);
    let sum: u32 = (0..4).map(|i| ((r >> (16 * i)) & 0xFFFF) as u32).sum();
    (sum as f32 / 65535.0 - 2.0) * 1.732
}

/// What a storage holds.
#[derive(Clone, Copy)]
enum Kind {
    Weight,
    ExpAvg,
    ExpAvgSq,
}

fn stream_values(out: &mut dyn Write, spec: &RunSpec, layer: usize, epoch: u32, kind: Kind) -> std::io::Result<()> {
    let n = spec.shape()[0] * spec.shape()[1];
    let frozen = layer < spec.frozen;
    let base = spec.seed ^ ((layer as u64) << 40);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut i = 0u64;
    while i < n {
        buf.clear();
        let end = (i + (1 << 18)).min(n);
        for j in i..end {
            let v = match kind {
                Kind::Weight if frozen => 0.02 * normal(base ^ j),
                // Trainable weights drift a little each epoch.
                Kind::Weight => 0.02 * normal(base ^ j) + 0.0005 * epoch as f32 * normal(base ^ j ^ 0xD1F7),
                Kind::ExpAvg => 0.001 * normal(base ^ j ^ ((epoch as u64 + 1) << 20) ^ 0xA5A5),
                Kind::ExpAvgSq => {
                    let g = 0.001 * normal(base ^ j ^ 0x5151) * (1.0 + 0.1 * epoch as f32);
                    g * g
                }
            };
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&buf)?;
        i = end;
    }
    Ok(())
}

fn tensor(key: usize, spec: &RunSpec) -> Emit {
    let [r, c] = spec.shape();
    Emit::Tensor(TensorRef {
        storage_key: key.to_string(),
        dtype: DType::Float32,
        storage_numel: r * c,
        offset: 0,
        shape: vec![r, c],
        stride: vec![c, 1],
        requires_grad: false,
    })
}

fn scalar(key: usize) -> Emit {
    Emit::Tensor(TensorRef {
        storage_key: key.to_string(),
        dtype: DType::Float32,
        storage_numel: 1,
        offset: 0,
        shape: vec![],
        stride: vec![],
        requires_grad: false,
    })
}

fn s(text: &str) -> Emit {
    Emit::Str(text.to_string())
}

/// Write epoch `epoch` of the run as a Lightning-style torch zip.
pub fn write_epoch<W: Write>(out: W, spec: &RunSpec, epoch: u32) -> Result<W, WriteError> {
    let steps_per_epoch = 100u32;
    let step = (epoch + 1) * steps_per_epoch;
    let mut next_key = 0usize;
    let mut storages: Vec<(usize, usize, Kind)> = Vec::new(); // (key, layer, kind)
    let mut state_dict = Vec::new();
    for layer in 0..spec.layers {
        state_dict.push((s(&format!("layers.{layer}.weight")), tensor(next_key, spec)));
        storages.push((next_key, layer, Kind::Weight));
        next_key += 1;
    }
    let mut opt_state = Vec::new();
    let mut scalars = Vec::new();
    for (i, layer) in (spec.frozen..spec.layers).enumerate() {
        let step_key = next_key;
        scalars.push(step_key);
        let avg = next_key + 1;
        let sq = next_key + 2;
        next_key += 3;
        storages.push((avg, layer, Kind::ExpAvg));
        storages.push((sq, layer, Kind::ExpAvgSq));
        opt_state.push((
            Emit::Int(i as i64),
            Emit::Dict(vec![
                (s("step"), scalar(step_key)),
                (s("exp_avg"), tensor(avg, spec)),
                (s("exp_avg_sq"), tensor(sq, spec)),
            ]),
        ));
    }
    let trainable = (spec.layers - spec.frozen.min(spec.layers)) as i64;
    let group = Emit::Dict(vec![
        (s("lr"), Emit::Float(1e-3 * 0.9f64.powi(epoch as i32))),
        (s("betas"), Emit::Tuple(vec![Emit::Float(0.9), Emit::Float(0.999)])),
        (s("eps"), Emit::Float(1e-8)),
        (s("weight_decay"), Emit::Float(0.01)),
        (s("amsgrad"), Emit::Bool(false)),
        (s("decoupled_weight_decay"), Emit::Bool(true)),
        (s("params"), Emit::List((0..trainable).map(Emit::Int).collect())),
    ]);
    let root = Emit::Dict(vec![
        (s("epoch"), Emit::Int(i64::from(epoch))),
        (s("global_step"), Emit::Int(i64::from(step))),
        (s("pytorch-lightning_version"), s("2.6.6")),
        (s("state_dict"), Emit::OrderedDict(state_dict)),
        (
            s("optimizer_states"),
            Emit::List(vec![Emit::Dict(vec![
                (s("state"), Emit::Dict(opt_state)),
                (s("param_groups"), Emit::List(vec![group])),
            ])]),
        ),
        (s("lr_schedulers"), Emit::List(vec![])),
        (s("hparams_name"), s("kwargs")),
        (
            s("hyper_parameters"),
            Emit::Dict(vec![
                (s("lr"), Emit::Float(1e-3)),
                (s("layers"), Emit::Int(spec.layers as i64)),
                (s("frozen"), Emit::Int(spec.frozen as i64)),
                (s("run_label"), Emit::Int(i64::from(spec.label))),
            ]),
        ),
    ]);
    let pickle = crate::to_pickle(&root)?;
    let numel = spec.shape()[0] * spec.shape()[1];
    let mut sources: Vec<StorageSource<'_>> = Vec::new();
    let mut all: Vec<(usize, Option<(usize, Kind)>)> =
        storages.into_iter().map(|(k, l, kind)| (k, Some((l, kind)))).collect();
    all.extend(scalars.into_iter().map(|k| (k, None)));
    all.sort_by_key(|(k, _)| *k);
    for (key, what) in all {
        match what {
            Some((layer, kind)) => sources.push(StorageSource {
                key: key.to_string(),
                len: numel * 4,
                fill: Box::new(move |w: &mut dyn Write| stream_values(w, spec, layer, epoch, kind)),
            }),
            None => sources.push(StorageSource {
                key: key.to_string(),
                len: 4,
                fill: Box::new(move |w: &mut dyn Write| w.write_all(&(step as f32).to_le_bytes())),
            }),
        }
    }
    write_checkpoint(out, "archive", &pickle, sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_epochs_read_back_and_share_frozen_layers() {
        let spec = RunSpec::of_size(200_000);
        let a = write_epoch(Vec::new(), &spec, 0).unwrap();
        let b = write_epoch(Vec::new(), &spec, 1).unwrap();
        let (ca, cb) = (reg_ckpt::inspect(&a).unwrap(), reg_ckpt::inspect(&b).unwrap());
        assert_eq!(ca.meta.epoch, Some(0));
        assert_eq!(cb.meta.global_step, Some(200));
        assert_eq!(ca.tensors.len(), 8 + 6 * 3);
        let bytes = |f: &[u8], c: &reg_ckpt::Checkpoint, key: &str| {
            let seg = c
                .segments
                .iter()
                .find(|s| matches!(&s.kind, reg_ckpt::SegmentKind::Payload { storage_key } if storage_key == key))
                .unwrap();
            f[seg.range.start as usize..seg.range.end as usize].to_vec()
        };
        assert_eq!(bytes(&a, &ca, "0"), bytes(&b, &cb, "0"), "frozen layer changed");
        assert_ne!(
            bytes(&a, &ca, "5"),
            bytes(&b, &cb, "5"),
            "trainable layer did not change"
        );
        assert!(a.len() as u64 > 150_000 && (a.len() as u64) < 260_000, "{}", a.len());
    }
}
