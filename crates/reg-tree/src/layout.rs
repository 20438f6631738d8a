//! Which kind of checkpoint a tree is, from its content and marker files.
//!
//! Every folder of the tree may hold one checkpoint ("unit"), recognised in
//! this order:
//! 1. `hf-trainer`: a `trainer_state.json` that is a JSON object with
//!    `global_step` or `log_history`;
//! 2. `lightning-sharded`: a DCP folder (see 3) that also holds `meta.pt`,
//!    a torch file (Lightning's and Fabric's sharded save);
//! 3. `dcp`: a `.metadata` that is a pickle of DCP's `Metadata`;
//! 4. `deepspeed`: a `latest` file naming a sub-folder that holds DeepSpeed
//!    model states files, or such files in the folder itself;
//! 5. `hf-model`: the folder's model weights: the files a
//!    `*.safetensors.index.json` (or `*.bin.index.json`) names, else
//!    `model.safetensors`, else its only safetensors file.
//!
//! The tree's layout is that of its shallowest unit when exactly one unit
//! is that shallow (so a Trainer checkpoint whose FSDP model is a DCP
//! sub-folder is `hf-trainer`), else `files`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::files::Read;
use super::{deepspeed, paths};

/// What kind of checkpoint a directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// `torch.distributed.checkpoint`: `.metadata` and `__R_N.distcp` files.
    #[serde(rename = "dcp")]
    Dcp,
    /// Lightning's sharded checkpoint: a DCP of `model`, `optimizer_N`
    /// plus `meta.pt` (the rest of the checkpoint dict).
    #[serde(rename = "lightning-sharded")]
    LightningSharded,
    /// A Hugging Face model folder: safetensors weights (sharded with an
    /// index, or one file) and `config.json`.
    #[serde(rename = "hf-model")]
    HfModel,
    /// A transformers Trainer `checkpoint-N/` folder.
    #[serde(rename = "hf-trainer")]
    HfTrainer,
    /// A DeepSpeed checkpoint: `latest` and per-rank model and optimizer
    /// states files.
    #[serde(rename = "deepspeed")]
    Deepspeed,
    /// Anything else: each file read by its own format.
    #[serde(rename = "files")]
    Files,
}

impl Layout {
    /// The name used in JSON and docs (`dcp`, `hf-trainer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Dcp => "dcp",
            Layout::LightningSharded => "lightning-sharded",
            Layout::HfModel => "hf-model",
            Layout::HfTrainer => "hf-trainer",
            Layout::Deepspeed => "deepspeed",
            Layout::Files => "files",
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A checkpoint found in one folder of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Unit {
    /// The folder (`""` for the root).
    pub dir: String,
    /// What it is.
    pub kind: UnitKind,
}

/// The kinds of [`Unit`], with the files that mark them (tree indices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum UnitKind {
    /// `trainer_state.json`.
    HfTrainer { state: usize },
    /// `.metadata` and `meta.pt`.
    LightningSharded { metadata: usize, meta_pt: usize },
    /// `.metadata`.
    Dcp { metadata: usize },
    /// The folder holding the model states files (the tag folder `latest`
    /// names, or the unit folder itself).
    Deepspeed { tag_dir: String },
    /// Model weights.
    HfModel,
}

impl UnitKind {
    fn layout(&self) -> Layout {
        match self {
            UnitKind::HfTrainer { .. } => Layout::HfTrainer,
            UnitKind::LightningSharded { .. } => Layout::LightningSharded,
            UnitKind::Dcp { .. } => Layout::Dcp,
            UnitKind::Deepspeed { .. } => Layout::Deepspeed,
            UnitKind::HfModel => Layout::HfModel,
        }
    }
}

/// What [`find_units`] looks at.
pub(super) struct Tree<'a, 'r> {
    /// Every path.
    pub paths: &'a [&'a str],
    /// Position of each path.
    pub index: &'a HashMap<&'a str, usize>,
    /// Every file's bytes.
    pub bytes: &'a [&'a [u8]],
    /// Each file read by its own format (`None` for DCP data files and
    /// `.metadata`).
    pub reads: &'r [Option<Read>],
    /// DCP metadata files by folder.
    pub dcp: &'a BTreeMap<String, usize>,
    /// Folders holding model weights.
    pub hf_dirs: &'a BTreeSet<String>,
}

/// One unit per folder that holds a checkpoint, shallowest first.
pub(super) fn find_units(tree: &Tree) -> Vec<Unit> {
    let dirs: BTreeSet<&str> = tree.paths.iter().map(|p| paths::parent(p)).collect();
    let model_states: BTreeSet<&str> = (0..tree.paths.len())
        .filter(|&i| deepspeed::is_model_states(paths::file_name(tree.paths[i]), top_keys(tree, i)))
        .map(|i| paths::parent(tree.paths[i]))
        .collect();
    let mut units: Vec<Unit> = dirs
        .into_iter()
        .filter_map(|dir| unit_at(tree, dir, &model_states))
        .collect();
    units.sort_by_key(|u| (paths::depth(&u.dir), u.dir.clone()));
    units
}

fn file_in(tree: &Tree, dir: &str, name: &str) -> Option<usize> {
    let path = paths::join(dir, name)?;
    tree.index.get(path.as_str()).copied()
}

fn top_keys<'r>(tree: &'r Tree, i: usize) -> &'r [String] {
    tree.reads[i]
        .as_ref()
        .and_then(|r| r.ckpt.as_ref())
        .map(|c| c.meta.top_keys.as_slice())
        .unwrap_or(&[])
}

fn unit_at(tree: &Tree, dir: &str, model_states: &BTreeSet<&str>) -> Option<Unit> {
    let unit = |kind| {
        Some(Unit {
            dir: dir.to_owned(),
            kind,
        })
    };
    if let Some(state) = file_in(tree, dir, "trainer_state.json") {
        let json: Option<serde_json::Value> = reg_ckpt::exact_json::parse(tree.bytes[state]).ok();
        let is_state = json
            .as_ref()
            .and_then(|v| v.as_object())
            .is_some_and(|o| o.contains_key("global_step") || o.contains_key("log_history"));
        if is_state {
            return unit(UnitKind::HfTrainer { state });
        }
    }
    if let Some(&metadata) = tree.dcp.get(dir) {
        let meta_pt = file_in(tree, dir, "meta.pt").filter(|&i| {
            tree.reads[i]
                .as_ref()
                .and_then(|r| r.ckpt.as_ref())
                .is_some_and(|c| c.pickle.is_some())
        });
        return match meta_pt {
            Some(meta_pt) => unit(UnitKind::LightningSharded { metadata, meta_pt }),
            None => unit(UnitKind::Dcp { metadata }),
        };
    }
    let has_model_states = |folder: &str| model_states.contains(folder);
    if let Some(latest) = file_in(tree, dir, "latest") {
        if let Some(tag) = deepspeed::latest_tag(tree.bytes[latest]) {
            if let Some(tag_dir) = paths::join(dir, tag).filter(|t| has_model_states(t)) {
                return unit(UnitKind::Deepspeed { tag_dir });
            }
        }
    }
    if has_model_states(dir) {
        return unit(UnitKind::Deepspeed {
            tag_dir: dir.to_owned(),
        });
    }
    if tree.hf_dirs.contains(dir) {
        return unit(UnitKind::HfModel);
    }
    None
}

/// The tree's layout and the unit it comes from: the shallowest unit when
/// it is the only one that shallow, else [`Layout::Files`].
pub(super) fn choose(units: &[Unit]) -> (Layout, Option<&Unit>) {
    let Some(first) = units.first() else {
        return (Layout::Files, None);
    };
    let depth = paths::depth(&first.dir);
    let same_depth = units.iter().filter(|u| paths::depth(&u.dir) == depth).count();
    if same_depth == 1 {
        (first.kind.layout(), Some(first))
    } else {
        (Layout::Files, None)
    }
}
