//! What changed between two versions: metadata, hyperparameters, optimizer
//! and scheduler settings, ModelCheckpoint state, tensors.
//!
//! Everything but `--stats` comes from the two manifests alone: identical
//! tensors are recognised by blob id and view, so no tensor bytes are read.

use crate::error::RegistryError;
use crate::registry::Registry;
use crate::resolve::Resolved;
use crate::tensor_stats::{self, TensorStats};
use reg_ckpt::exact_json;
use reg_format::logical::{assemble, tensors_of, LogicalTensor, Part};
use reg_format::manifest::{Manifest, TensorEntry};
use reg_store::StoreError;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// Which sections to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Only {
    /// All sections.
    #[default]
    All,
    /// Hyperparameters only.
    Hparams,
    /// Optimizer, scheduler and checkpoint-callback settings only.
    Optimizer,
    /// Tensors only.
    Tensors,
    /// File-level metadata only.
    Meta,
}

/// Options of [`Registry::diff`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    /// Compute max |diff|, relative L2 and changed fraction for changed tensors.
    pub stats: bool,
    /// Restrict to one section.
    pub only: Only,
}

/// One value that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Changed {
    /// Dotted path of the value.
    pub path: String,
    /// Value in A.
    pub old: Value,
    /// Value in B.
    pub new: Value,
}

/// A value only one side has.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Present {
    /// Dotted path.
    pub path: String,
    /// The value.
    pub value: Value,
}

/// Key-by-key comparison of two JSON trees.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ValueDiff {
    /// Only in B.
    pub added: Vec<Present>,
    /// Only in A.
    pub removed: Vec<Present>,
    /// In both, different.
    pub changed: Vec<Changed>,
}

impl ValueDiff {
    /// Number of differences.
    pub fn count(&self) -> usize {
        self.added.len() + self.removed.len() + self.changed.len()
    }
}

/// A tensor present in both versions whose dtype, shape or content differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangedTensor {
    /// Tensor path.
    pub path: String,
    /// `content`, `dtype`, `shape` (the first that applies).
    pub change: &'static str,
    /// dtype in A and B.
    pub dtype: (String, String),
    /// shape in A and B.
    pub shape: (Vec<u64>, Vec<u64>),
    /// Numbers, with `--stats` (same dtype and shape, supported dtype).
    #[serde(flatten)]
    pub stats: Option<TensorStats>,
}

/// File comparison of two directory versions (or a directory and a file).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FileDiff {
    /// Only in B.
    pub added: Vec<String>,
    /// Only in A.
    pub removed: Vec<String>,
    /// In both, other bytes.
    pub changed: Vec<String>,
    /// In both, the same bytes.
    pub identical: usize,
}

/// Tensor comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TensorDiff {
    /// Only in B.
    pub added: Vec<String>,
    /// Only in A.
    pub removed: Vec<String>,
    /// In both, different.
    pub changed: Vec<ChangedTensor>,
    /// In both, same bytes and view.
    pub identical: Vec<String>,
}

/// One side of a diff.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u32,
    /// Version id.
    pub id: String,
}

/// The whole comparison (`reg diff --json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// A.
    pub a: Side,
    /// B.
    pub b: Side,
    /// File-level fields: epoch, global_step, Lightning version, size, format, tensor count.
    pub meta: Vec<Changed>,
    /// Hyperparameters (nested dicts by key; lists and scalars as values).
    pub hyper_parameters: ValueDiff,
    /// Optimizer settings: type, param-group settings, state entries.
    pub optimizer: Vec<Changed>,
    /// Scheduler state fields.
    pub scheduler: Vec<Changed>,
    /// ModelCheckpoint state (monitor, mode, scores).
    pub checkpoint: Vec<Changed>,
    /// Tensors (by name: a directory's logical tensors wherever their
    /// chunks are stored).
    pub tensors: TensorDiff,
    /// Files, when either side is a directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<FileDiff>,
}

impl Diff {
    /// The one-line summary, e.g. `hparams: 3 changed · tensors: 12 changed, 40 identical`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.meta.is_empty() {
            parts.push(format!("meta: {} changed", self.meta.len()));
        }
        let h = &self.hyper_parameters;
        if h.count() > 0 {
            parts.push(format!(
                "hparams: {}",
                counts(&[
                    (h.changed.len(), "changed"),
                    (h.added.len(), "added"),
                    (h.removed.len(), "removed")
                ])
            ));
        }
        let o = self.optimizer.len() + self.scheduler.len() + self.checkpoint.len();
        if o > 0 {
            parts.push(format!("optimizer: {o} changed"));
        }
        let t = &self.tensors;
        let tc = counts(&[
            (t.changed.len(), "changed"),
            (t.added.len(), "added"),
            (t.removed.len(), "removed"),
            (t.identical.len(), "identical"),
        ]);
        if !tc.is_empty() {
            parts.push(format!("tensors: {tc}"));
        }
        if parts.is_empty() {
            "no differences".into()
        } else {
            parts.join(" · ")
        }
    }
}

fn counts(items: &[(usize, &str)]) -> String {
    items
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compare two JSON trees leaf by leaf, as DVC's `params diff` does:
/// objects (groups) are walked into on both sides, paths joined by `.`;
/// lists, scalars, floats (tags included) and empty objects are leaves,
/// compared exactly (`0.0` and `-0.0` differ, a NaN equals a NaN of the
/// same bits). A group one side lacks appears as its leaves, added or
/// removed; a group on one side and a leaf of the same name on the other
/// is the leaf removed and the group's leaves added (or the reverse). A
/// `null` root has no leaves (no hyperparameters at all).
pub fn diff_values(a: &Value, b: &Value, prefix: &str) -> ValueDiff {
    let (la, lb) = (leaves(a, prefix), leaves(b, prefix));
    let in_a: HashMap<&[String], &Value> = la.iter().map(|(p, v)| (p.as_slice(), *v)).collect();
    let in_b: HashMap<&[String], &Value> = lb.iter().map(|(p, v)| (p.as_slice(), *v)).collect();
    let mut out = ValueDiff::default();
    for (path, va) in &la {
        match in_b.get(path.as_slice()) {
            Some(vb) if same_leaf(va, vb) => {}
            Some(vb) => out.changed.push(Changed {
                path: path.join("."),
                old: (*va).clone(),
                new: (*vb).clone(),
            }),
            None => out.removed.push(Present {
                path: path.join("."),
                value: (*va).clone(),
            }),
        }
    }
    for (path, vb) in &lb {
        if !in_a.contains_key(path.as_slice()) {
            out.added.push(Present {
                path: path.join("."),
                value: (*vb).clone(),
            });
        }
    }
    out.removed.sort_by(|x, y| x.path.cmp(&y.path));
    out.added.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

/// Every leaf of a JSON tree with its key path, in document order. The
/// root is a group even when empty; below it an empty object is a leaf.
fn leaves<'v>(root: &'v Value, prefix: &str) -> Vec<(Vec<String>, &'v Value)> {
    let mut out = Vec::new();
    if root.is_null() {
        return out;
    }
    let start: Vec<String> = if prefix.is_empty() {
        Vec::new()
    } else {
        vec![prefix.to_string()]
    };
    let mut stack = Vec::new();
    let push_members =
        |stack: &mut Vec<(Vec<String>, &'v Value)>, path: &[String], m: &'v serde_json::Map<String, Value>| {
            for (k, x) in m.iter().rev() {
                let mut p = path.to_vec();
                p.push(k.clone());
                stack.push((p, x));
            }
        };
    match exact_json::as_object(root) {
        Some(m) => push_members(&mut stack, &start, m),
        None => stack.push((start, root)),
    }
    while let Some((path, v)) = stack.pop() {
        match exact_json::as_object(v) {
            Some(m) if !m.is_empty() => push_members(&mut stack, &path, m),
            _ => out.push((path, v)),
        }
    }
    out
}

/// Two leaves are the same value ([`exact_json::same`]).
fn same_leaf(a: &Value, b: &Value) -> bool {
    exact_json::same(a, b)
}

/// All differences between two JSON values as a flat list (added and
/// removed values appear with null on the missing side).
fn flat_changes(a: &Value, b: &Value, prefix: &str) -> Vec<Changed> {
    let d = diff_values(a, b, prefix);
    let mut out = d.changed;
    out.extend(d.added.into_iter().map(|p| Changed {
        path: p.path,
        old: Value::Null,
        new: p.value,
    }));
    out.extend(d.removed.into_iter().map(|p| Changed {
        path: p.path,
        old: p.value,
        new: Value::Null,
    }));
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

fn meta_changes(a: &Manifest, b: &Manifest) -> Vec<Changed> {
    let fields = |m: &Manifest| {
        serde_json::json!({
            "epoch": m.meta.epoch,
            "global_step": m.meta.global_step,
            "lightning_version": m.meta.lightning_version,
            "format": m.format.name(),
            "size": m.size,
            "tensor_count": m.tree.as_ref().map(|t| t.tensors.len()).unwrap_or(m.tensors.len()),
        })
    };
    flat_changes(&fields(a), &fields(b), "")
}

fn optimizer_json(m: &Manifest) -> Value {
    let mut out = serde_json::Map::new();
    for (i, o) in m.meta.optimizers.iter().enumerate() {
        let mut groups = serde_json::Map::new();
        for (g, group) in o.param_groups.iter().enumerate() {
            groups.insert(g.to_string(), group.clone());
        }
        out.insert(
            i.to_string(),
            serde_json::json!({
                "type": o.kind,
                "param_groups": groups,
                "params_with_state": o.params_with_state,
                "state_keys": o.state_keys,
            }),
        );
    }
    Value::Object(out)
}

fn scheduler_json(m: &Manifest) -> Value {
    let mut out = serde_json::Map::new();
    for (i, s) in m.meta.schedulers.iter().enumerate() {
        let mut state = s.state.clone();
        if let Some(obj) = state.as_object_mut() {
            obj.insert("type".into(), Value::String(s.kind.clone()));
        }
        out.insert(i.to_string(), state);
    }
    Value::Object(out)
}

fn checkpoint_json(m: &Manifest) -> Value {
    let score = |s: Option<f64>| s.map(exact_json::float).unwrap_or(Value::Null);
    match &m.meta.model_checkpoint {
        Some(mc) => serde_json::json!({
            "monitor": mc.monitor,
            "mode": mc.mode,
            "best_model_score": score(mc.best_model_score),
            "current_score": score(mc.current_score),
        }),
        None => Value::Object(Default::default()),
    }
}

impl Registry {
    /// Compare version `a` with version `b`.
    pub fn diff(&self, a: &Resolved, b: &Resolved, opts: DiffOptions) -> Result<Diff, RegistryError> {
        let (ma, mb) = (&a.manifest, &b.manifest);
        let want = |o: Only| opts.only == Only::All || opts.only == o;
        let side = |r: &Resolved| Side {
            name: r.manifest.name.to_string(),
            version: r.manifest.number,
            id: r.record.id.to_hex(),
        };
        let null = Value::Null;
        let mut diff = Diff {
            a: side(a),
            b: side(b),
            meta: Vec::new(),
            hyper_parameters: ValueDiff::default(),
            optimizer: Vec::new(),
            scheduler: Vec::new(),
            checkpoint: Vec::new(),
            tensors: TensorDiff::default(),
            files: None,
        };
        if want(Only::Meta) {
            diff.meta = meta_changes(ma, mb);
        }
        if want(Only::Hparams) {
            let ha = ma.meta.hyper_parameters.as_ref().unwrap_or(&null);
            let hb = mb.meta.hyper_parameters.as_ref().unwrap_or(&null);
            diff.hyper_parameters = diff_values(ha, hb, "");
        }
        if want(Only::Optimizer) {
            diff.optimizer = flat_changes(&optimizer_json(ma), &optimizer_json(mb), "");
            diff.scheduler = flat_changes(&scheduler_json(ma), &scheduler_json(mb), "");
            diff.checkpoint = flat_changes(&checkpoint_json(ma), &checkpoint_json(mb), "");
        }
        if want(Only::Tensors) {
            diff.tensors = self.diff_tensors(a, b, opts.stats)?;
        }
        if want(Only::Meta) || want(Only::Tensors) {
            diff.files = Registry::diff_files(ma, mb);
        }
        Ok(diff)
    }

    fn diff_tensors(&self, a: &Resolved, b: &Resolved, stats: bool) -> Result<TensorDiff, RegistryError> {
        let (ma, mb) = (&a.manifest, &b.manifest);
        let (la, lb) = (tensors_of(ma), tensors_of(mb));
        let in_b: HashMap<&str, &LogicalTensor> = lb.iter().map(|t| (t.name.as_str(), t)).collect();
        let in_a: BTreeMap<&str, &LogicalTensor> = la.iter().map(|t| (t.name.as_str(), t)).collect();
        let mut out = TensorDiff::default();
        for ta in &la {
            let Some(tb) = in_b.get(ta.name.as_str()) else {
                out.removed.push(ta.name.clone());
                continue;
            };
            let change = if ta.dtype != tb.dtype {
                "dtype"
            } else if ta.shape != tb.shape {
                "shape"
            } else if ta.same_bytes(tb)
                || self.same_elements(ta, tb).map_err(|source| RegistryError::Damaged {
                    version: format!("{} or {}", ma.label(), mb.label()),
                    source,
                })?
            {
                out.identical.push(ta.name.clone());
                continue;
            } else {
                "content"
            };
            let numbers = if stats && change == "content" {
                self.tensor_numbers(ta, tb).map_err(|source| RegistryError::Damaged {
                    version: format!("{} or {}", ma.label(), mb.label()),
                    source,
                })?
            } else {
                None
            };
            // Same numbers, other chunking (re-sharded): the same tensor.
            if !same_cut(ta, tb) && numbers.is_some_and(|n: TensorStats| n.changed_fraction == 0.0) {
                out.identical.push(ta.name.clone());
                continue;
            }
            out.changed.push(ChangedTensor {
                path: ta.name.clone(),
                change,
                dtype: (ta.dtype.name().into(), tb.dtype.name().into()),
                shape: (ta.shape.clone(), tb.shape.clone()),
                stats: numbers,
            });
        }
        out.added = lb
            .iter()
            .filter(|t| !in_a.contains_key(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect();
        Ok(out)
    }

    /// For a tensor cut into other chunks on each side (re-sharded): are
    /// its elements the same? Answered by assembling both when they are
    /// small enough ([`RESHARDED_CHECK`]); `false` otherwise, and for
    /// tensors cut the same way (their parts decide: [`LogicalTensor::same_bytes`]).
    fn same_elements(&self, a: &LogicalTensor, b: &LogicalTensor) -> Result<bool, StoreError> {
        let same_cut = a.parts.len() == b.parts.len()
            && a.parts
                .iter()
                .zip(&b.parts)
                .all(|(x, y)| x.offsets == y.offsets && x.sizes == y.sizes);
        if same_cut || a.meta || b.meta || a.numel().saturating_mul(a.dtype.size() as u64) > RESHARDED_CHECK {
            return Ok(false);
        }
        Ok(assemble(&self.store, a)? == assemble(&self.store, b)?)
    }

    /// `--stats` numbers of two versions of a tensor (same dtype and
    /// shape): part by part when both are cut the same way (one part
    /// each for file versions), else from both assembled whole.
    fn tensor_numbers(&self, a: &LogicalTensor, b: &LogicalTensor) -> Result<Option<TensorStats>, StoreError> {
        if !tensor_stats::supported(a.dtype) || a.meta || b.meta {
            return Ok(None);
        }
        let same_cut = a.parts.len() == b.parts.len()
            && a.parts
                .iter()
                .zip(&b.parts)
                .all(|(x, y)| x.offsets == y.offsets && x.sizes == y.sizes);
        if same_cut {
            let mut sums = tensor_stats::Sums::default();
            for (pa, pb) in a.parts.iter().zip(&b.parts) {
                match tensor_stats::compare_sums(&self.store, &part_entry(a, pa), &part_entry(b, pb))? {
                    Some(s) => sums.merge(s),
                    None => return Ok(None),
                }
            }
            return Ok(Some(sums.finish()));
        }
        if a.numel().saturating_mul(a.dtype.size() as u64) > reg_format::logical::MAX_ASSEMBLED {
            return Ok(None);
        }
        let (xa, xb) = (assemble(&self.store, a)?, assemble(&self.store, b)?);
        let mut sums = tensor_stats::Sums::default();
        sums.add_bytes(a.dtype, &xa, &xb);
        Ok(Some(sums.finish()))
    }

    /// Files only one directory has, and files of both whose bytes differ.
    fn diff_files(a: &Manifest, b: &Manifest) -> Option<FileDiff> {
        if a.tree.is_none() && b.tree.is_none() {
            return None;
        }
        let files = |m: &Manifest| -> BTreeMap<String, reg_format::ids::FileHash> {
            match &m.tree {
                Some(t) => t.files.iter().map(|f| (f.path.to_string(), f.blake3)).collect(),
                None => [(m.source.to_string(), m.blake3)].into_iter().collect(),
            }
        };
        let (fa, fb) = (files(a), files(b));
        let mut out = FileDiff::default();
        for (path, hash) in &fa {
            match fb.get(path) {
                None => out.removed.push(path.clone()),
                Some(h) if h != hash => out.changed.push(path.clone()),
                Some(_) => out.identical += 1,
            }
        }
        out.added = fb.keys().filter(|p| !fa.contains_key(*p)).cloned().collect();
        Some(out)
    }
}

/// True when both versions of a tensor are cut into the same chunks.
fn same_cut(a: &LogicalTensor, b: &LogicalTensor) -> bool {
    a.parts.len() == b.parts.len()
        && a.parts
            .iter()
            .zip(&b.parts)
            .all(|(x, y)| x.offsets == y.offsets && x.sizes == y.sizes)
}

/// Re-sharded tensors up to this many bytes are assembled to tell whether
/// they changed (larger ones are reported as changed unless `--stats`).
pub const RESHARDED_CHECK: u64 = 256 << 20;

/// One part of a logical tensor as a tensor of its own (for the
/// element-by-element comparison of a file's tensors).
fn part_entry(t: &LogicalTensor, p: &Part) -> TensorEntry {
    TensorEntry {
        path: t.name.clone(),
        dtype: t.dtype,
        shape: p.sizes.clone(),
        stride: p.stride.clone(),
        storage_offset: p.storage_offset,
        storage_key: String::new(),
        blob: Some(p.blob),
        role: t.role,
        requires_grad: false,
        parameter: false,
        meta: false,
    }
}
