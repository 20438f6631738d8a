//! Hugging Face model folders: weights in `*.safetensors` (or older
//! `pytorch_model*.bin`) shards, an index naming the shard of each weight,
//! and `config.json`.
//!
//! `save_pretrained` writes one `model.safetensors`, or shards
//! `model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json`
//! (`{"metadata": {...}, "weight_map": {name: shard}}`); other libraries
//! use other stems (`diffusion_pytorch_model`, `adapter_model`). In each
//! folder the model's weight files are those an index names or, without
//! an index, `model.safetensors` or the only safetensors file; their
//! tensors are logical tensors named by their keys (qualified by the folder
//! below the root, see [`super::paths::in_unit`]). Other safetensors files
//! are "other files" (`FILE:KEY`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::files::Read;
use super::{paths, LogicalTensor, TreeError};
use reg_ckpt::segment::Format;
use reg_ckpt::tensors::Role;

/// The weights of the HF model folders of a tree.
#[derive(Default)]
pub(super) struct HfModels {
    /// Logical tensors, one chunk each.
    pub tensors: Vec<LogicalTensor>,
    /// Tree indices of the weight files (their tensors are named here).
    pub weight_files: BTreeSet<usize>,
    /// Folders holding a model's weights.
    pub dirs: BTreeSet<String>,
}

/// The suffixes of index files and the weight files they name.
const INDEX_SUFFIXES: &[&str] = &[".safetensors.index.json", ".bin.index.json"];

/// Find the model weights of every folder of the tree.
pub(super) fn read(
    paths_of: &[&str],
    sources: &[&[u8]],
    reads: &[Option<Read>],
    index: &HashMap<&str, usize>,
) -> Result<HfModels, TreeError> {
    // Weight files of each folder: (file, the keys an index assigns it).
    let mut sets: BTreeMap<String, BTreeMap<usize, Option<BTreeSet<String>>>> = BTreeMap::new();
    for (i, path) in paths_of.iter().enumerate() {
        if !INDEX_SUFFIXES.iter().any(|s| path.ends_with(s)) {
            continue;
        }
        let dir = paths::parent(path);
        for (file, keys) in weight_map(path, sources[i])? {
            let Some(full) = paths::join(dir, &file) else {
                return Err(TreeError::HfIndex {
                    path: (*path).to_owned(),
                    reason: format!("names {file:?}, outside the folder"),
                });
            };
            let &at = index.get(full.as_str()).ok_or_else(|| TreeError::HfIndex {
                path: (*path).to_owned(),
                reason: format!("names {full}, which is not in the directory"),
            })?;
            let entry = sets
                .entry(dir.to_owned())
                .or_default()
                .entry(at)
                .or_insert(Some(BTreeSet::new()));
            if let Some(set) = entry {
                set.extend(keys);
            }
        }
    }
    // Folders without an index: `model.safetensors`, or their only one.
    let mut by_dir: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, read) in reads.iter().enumerate() {
        if is_safetensors(read) {
            by_dir.entry(paths::parent(paths_of[i])).or_default().push(i);
        }
    }
    for (dir, files) in by_dir {
        if sets.contains_key(dir) {
            continue;
        }
        let main = files
            .iter()
            .find(|&&i| paths::file_name(paths_of[i]) == "model.safetensors")
            .or(if files.len() == 1 { files.first() } else { None });
        if let Some(&i) = main {
            sets.entry(dir.to_owned()).or_default().insert(i, None);
        }
    }
    let mut out = HfModels::default();
    for (dir, files) in sets {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (at, keys) in files {
            let Some(ckpt) = reads[at].as_ref().and_then(|r| r.ckpt.as_ref()) else {
                return Err(TreeError::HfIndex {
                    path: paths_of[at].to_owned(),
                    reason: "is named by an index but is not a weight file".into(),
                });
            };
            if let Some(keys) = &keys {
                let held: BTreeSet<&str> = ckpt.tensors.iter().map(|t| t.path.as_str()).collect();
                if let Some(missing) = keys.iter().find(|k| !held.contains(k.as_str())) {
                    return Err(TreeError::HfIndex {
                        path: paths_of[at].to_owned(),
                        reason: format!("does not hold {missing}, which the index assigns to it"),
                    });
                }
            }
            for t in &ckpt.tensors {
                if let Some(&other) = seen.get(&t.path) {
                    return Err(TreeError::DuplicateTensor {
                        name: paths::in_unit(&dir, &t.path),
                        first: paths_of[other].to_owned(),
                        second: paths_of[at].to_owned(),
                    });
                }
                seen.insert(t.path.clone(), at);
                out.tensors.push(LogicalTensor::of_file(
                    paths::in_unit(&dir, &t.path),
                    at,
                    t,
                    Role::Weight,
                ));
            }
            out.weight_files.insert(at);
        }
        out.dirs.insert(dir);
    }
    Ok(out)
}

fn is_safetensors(read: &Option<Read>) -> bool {
    read.as_ref()
        .and_then(|r| r.ckpt.as_ref())
        .is_some_and(|c| c.format == Format::Safetensors)
}

/// The `weight_map` of an index file: shard → the keys it holds.
fn weight_map(path: &str, bytes: &[u8]) -> Result<BTreeMap<String, Vec<String>>, TreeError> {
    let bad = |reason: String| TreeError::HfIndex {
        path: path.to_owned(),
        reason,
    };
    let json: Value = reg_ckpt::exact_json::parse(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no weight_map object".into()))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{key:?}] is not a file name")))?;
        out.entry(file.to_owned()).or_default().push(key.clone());
    }
    Ok(out)
}

/// `config.json` of a folder, when it is a JSON object.
pub(super) fn config(bytes: &[u8]) -> Option<Value> {
    reg_ckpt::exact_json::parse(bytes).ok().filter(Value::is_object)
}
