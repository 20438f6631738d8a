//! Exports of a directory version: one file with every tensor whole.
//!
//! `--format safetensors` writes the checkpoint's state dict, each tensor
//! assembled from its chunks at their global offsets (what users do with
//! `torch.distributed.checkpoint.format_utils.dcp_to_torch_save`, or by
//! loading every shard of a Hugging Face model); `--weights-only` writes
//! the same tensors as a torch zip that `torch.load(weights_only=True)`
//! reads, keeping only model weights. Which tensors make the state dict
//! follows the layout, as a single file's export does:
//! - `lightning-sharded`: the `model.*` tensors, without that prefix (the
//!   Lightning `state_dict`);
//! - `hf-trainer`: the model's weights (`model.safetensors` and its
//!   shards), not the `FILE:PATH` tensors of the optimizer, scheduler and
//!   RNG files;
//! - every other layout (`dcp`, `hf-model`, `deepspeed`, `files`): every
//!   logical tensor by its name.
//!
//! With `--weights-only` only tensors whose role is a weight are kept.
//! Tensors are assembled one at a time (memory: the largest tensor).

use crate::error::{ReadError, RegistryError};
use crate::export::ExportFormat;
use crate::registry::Registry;
use reg_ckpt::tensors::{contiguous_stride, Role};
use reg_format::logical::{assemble, tensors_of, LogicalTensor};
use reg_format::manifest::Manifest;
use reg_tree::Layout;
use reg_write::{Emit, ExportTensor, MetaRef, TensorRef, WeightsOnly};
use std::collections::HashMap;
use std::io::Write;

/// The tensors of a directory version's export, with the names they get.
pub(crate) fn export_tensors(m: &Manifest, format: ExportFormat) -> Vec<(String, LogicalTensor)> {
    let layout = m.tree.as_ref().map(|t| t.layout);
    let all = tensors_of(m);
    // The prefix Lightning's sharded save put the model's state under.
    let model_prefix = ["model.", "state_dict."]
        .into_iter()
        .find(|p| all.iter().any(|t| t.name.starts_with(p)))
        .unwrap_or("model.");
    all.into_iter()
        .filter_map(|t| {
            let name = match layout {
                Some(Layout::LightningSharded) => t.name.strip_prefix(model_prefix)?.to_string(),
                Some(Layout::HfTrainer) if t.name.contains(':') => return None,
                _ => t.name.clone(),
            };
            let keep = format == ExportFormat::Safetensors || t.role == Role::Weight;
            keep.then_some((name, t))
        })
        .collect()
}

impl Registry {
    /// Write a directory version's export into `w` (see the module docs);
    /// returns the number of tensors.
    pub(crate) fn export_tree_to(
        &self,
        m: &Manifest,
        label: &str,
        format: ExportFormat,
        scope: crate::select::ExportScope<'_>,
        w: &mut dyn Write,
    ) -> Result<usize, RegistryError> {
        let mut tensors = export_tensors(m, format);
        if tensors.is_empty() {
            return Err(ReadError::NoTensors {
                version: label.to_string(),
            }
            .into());
        }
        if let Some(chosen) = scope.tensors {
            tensors = chosen.keep(label, tensors, |(name, _)| name.as_str())?;
        }
        let by_key: HashMap<String, &LogicalTensor> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        let export_err = |e: &dyn std::fmt::Display| crate::export::export_err(label, e);
        // Store errors inside the writers' callbacks are kept here, so
        // damage is reported as damage, not as a write error.
        let mut store_error = None;
        let mut read = |key: &str| -> std::io::Result<Vec<u8>> {
            let t = by_key
                .get(key)
                .ok_or_else(|| std::io::Error::other(format!("no tensor {key}")))?;
            assemble(&self.store, t).map_err(|e| {
                let msg = e.to_string();
                store_error = Some(e);
                std::io::Error::other(msg)
            })
        };
        let written = match format {
            ExportFormat::Safetensors | ExportFormat::SafetensorsWeights => {
                let list: Vec<ExportTensor> = tensors
                    .iter()
                    .map(|(name, t)| ExportTensor {
                        name: name.clone(),
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        stride: contiguous_stride(&t.shape),
                        offset: 0,
                        storage_key: name.clone(),
                        meta: t.meta,
                    })
                    .collect();
                reg_write::write_safetensors_part(
                    w,
                    &list,
                    &crate::export::safetensors_metadata(m),
                    &mut read,
                    crate::export::part_of(scope),
                )
                .map(|_| ())
                .map_err(|e| export_err(&e))
            }
            ExportFormat::WeightsOnly => {
                let tree = WeightsOnly {
                    root: Emit::OrderedDict(
                        tensors
                            .iter()
                            .map(|(name, t)| {
                                let tensor = if t.meta {
                                    Emit::MetaTensor(MetaRef {
                                        dtype: t.dtype,
                                        shape: t.shape.clone(),
                                        stride: contiguous_stride(&t.shape),
                                        requires_grad: false,
                                    })
                                } else {
                                    Emit::Tensor(TensorRef {
                                        storage_key: name.clone(),
                                        dtype: t.dtype,
                                        storage_numel: t.numel(),
                                        offset: 0,
                                        shape: t.shape.clone(),
                                        stride: contiguous_stride(&t.shape),
                                        requires_grad: false,
                                    })
                                };
                                (Emit::Str(name.clone()), tensor)
                            })
                            .collect(),
                    ),
                    storages: tensors
                        .iter()
                        .filter(|(_, t)| !t.meta)
                        .map(|(name, t)| (name.clone(), t.dtype, t.numel()))
                        .collect(),
                };
                let mut fill = |key: &str, w: &mut dyn Write| -> std::io::Result<()> { w.write_all(&read(key)?) };
                tree.write_torch(w, "archive", &mut fill)
                    .map(|_| ())
                    .map_err(|e| export_err(&e))
            }
        };
        if let Some(e) = store_error {
            return Err(RegistryError::Damaged {
                version: label.to_string(),
                source: e,
            });
        }
        written?;
        Ok(tensors.len())
    }
}
