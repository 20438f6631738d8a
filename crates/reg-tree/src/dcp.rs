//! One DCP checkpoint (a `.metadata` and the data files it names): its
//! logical tensors and what its items say about training.
//!
//! DCP flattens the state dict it saves: `{"model": {...}, "optimizer":
//! {"state": ..., "param_groups": [...]}}` becomes fqns such as
//! `model.layers.0.weight`, `optimizer.state.layers.0.weight.exp_avg` and
//! `optimizer.param_groups.0.lr`, and `planner_data` keeps the key tuple
//! each came from. Tensors are named by fqn; param groups (bytes items)
//! give the optimizer summary; top-level `epoch`, `global_step` or `step`
//! entries (also one level down, e.g. `train_state.step`) give the counters;
//! `hyper_parameters` / `hparams` entries give the hyperparameters.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::dcp_data::{self, DcpData, Source};
use super::dcp_metadata::{DcpMetadata, PathKey};
use super::{paths, LogicalTensor, TreeError};
use reg_ckpt::meta::{optimizer_kind, CheckpointMeta, OptimizerSummary};
use reg_ckpt::tensors::Role;

/// A DCP checkpoint read whole.
pub(super) struct Dcp {
    /// The folder holding `.metadata` (`""` at the tree root).
    pub dir: String,
    /// The `.metadata` contents.
    pub md: DcpMetadata,
    /// The data files cut into items.
    pub data: DcpData,
}

/// Read the DCP whose `.metadata` (already parsed) is at `metadata_path`.
pub(super) fn read(
    metadata_path: &str,
    md: DcpMetadata,
    index: &HashMap<&str, usize>,
    sources: &[Source<'_>],
) -> Result<Dcp, TreeError> {
    let data = dcp_data::read(metadata_path, &md, index, sources)?;
    Ok(Dcp {
        dir: paths::parent(metadata_path).to_owned(),
        md,
        data,
    })
}

/// Top-level keys that hold model weights.
const WEIGHT_KEYS: &[&str] = &[
    "model",
    "module",
    "state_dict",
    "model_state_dict",
    "models",
    "ema",
    "ema_model",
    "weights",
    "params",
];

impl Dcp {
    /// The keys an fqn was flattened from (split at dots when the planner
    /// did not record them).
    fn path_of(&self, fqn: &str) -> Vec<PathKey> {
        match self.md.planner.get(fqn) {
            Some(p) => p.clone(),
            None => fqn.split('.').map(|k| PathKey::Key(k.to_owned())).collect(),
        }
    }

    /// First key of an fqn.
    fn top(&self, fqn: &str) -> String {
        self.path_of(fqn).first().map(PathKey::text).unwrap_or_default()
    }

    /// Top-level keys holding optimizer state (a `param_groups` entry below).
    fn optimizer_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .all_fqns()
            .filter_map(|fqn| {
                let p = self.path_of(fqn);
                (p.len() >= 2 && p[1] == PathKey::Key("param_groups".into())).then(|| p[0].text())
            })
            .collect();
        keys.sort_by_key(|k| natural(k));
        keys.dedup();
        keys
    }

    fn all_fqns(&self) -> impl Iterator<Item = &String> {
        self.md.tensors.keys().chain(self.md.bytes.iter())
    }

    /// What a tensor fqn serves as.
    fn role(&self, fqn: &str, optimizers: &[String], grouped: bool) -> Role {
        let top = self.top(fqn);
        if optimizers.contains(&top) || top.starts_with("optim") {
            Role::Optimizer
        } else if WEIGHT_KEYS.contains(&top.as_str()) || !grouped {
            Role::Weight
        } else {
            Role::Other
        }
    }

    /// The logical tensors, named `prefix`-qualified fqns (see
    /// [`paths::in_unit`]). Tensors whose items were unreadable are left
    /// out and listed in the returned notes.
    pub fn logical_tensors(&self) -> (Vec<LogicalTensor>, Vec<String>) {
        let optimizers = self.optimizer_keys();
        // A state dict saved flat (`dcp.save(model.state_dict())`) has no
        // grouping keys: all its tensors are weights.
        let grouped = self.all_fqns().any(|f| {
            let top = self.top(f);
            WEIGHT_KEYS.contains(&top.as_str()) || optimizers.contains(&top) || top.starts_with("optim")
        });
        let mut notes = Vec::new();
        let mut out = Vec::new();
        for (fqn, entry) in &self.md.tensors {
            if let Some(why) = self.data.unreadable.get(fqn) {
                notes.push(format!(
                    "{}: not listed as a tensor: {why}",
                    paths::in_unit(&self.dir, fqn)
                ));
                continue;
            }
            let mut chunks = self.data.chunks.get(fqn).cloned().unwrap_or_default();
            chunks.sort_by(|a, b| a.offsets.cmp(&b.offsets));
            out.push(LogicalTensor {
                name: paths::in_unit(&self.dir, fqn),
                dtype: entry.dtype,
                shape: entry.size.clone(),
                role: self.role(fqn, &optimizers, grouped),
                chunks,
                meta: false,
            });
        }
        (out, notes)
    }

    /// Optimizer summaries (one per top-level optimizer key, in key order),
    /// counters and hyperparameters from the items.
    pub fn meta(&self) -> CheckpointMeta {
        let mut meta = CheckpointMeta {
            top_keys: {
                let mut tops: Vec<String> = self.all_fqns().map(|f| self.top(f)).collect();
                tops.sort();
                tops.dedup();
                tops
            },
            ..CheckpointMeta::default()
        };
        let optimizers = self.optimizer_keys();
        meta.optimizers = optimizers.iter().map(|k| self.optimizer(k)).collect();
        meta.epoch = self.counter("epoch", &optimizers);
        meta.global_step = self
            .counter("global_step", &optimizers)
            .or_else(|| self.counter("step", &optimizers));
        for key in ["hyper_parameters", "hparams"] {
            let nested = self.nested(key);
            if !nested.is_null() {
                meta.hyper_parameters = Some(nested);
                break;
            }
        }
        meta
    }

    /// The summary of the optimizer saved under top-level key `key`.
    fn optimizer(&self, key: &str) -> OptimizerSummary {
        let mut groups: BTreeMap<i64, Map<String, Value>> = BTreeMap::new();
        let mut params_with_state = std::collections::BTreeSet::new();
        let mut state_keys: Vec<String> = Vec::new();
        for fqn in self.all_fqns() {
            let p = self.path_of(fqn);
            if p.first().map(PathKey::text).as_deref() != Some(key) || p.len() < 4 {
                continue;
            }
            match (&p[1], &p[2]) {
                (PathKey::Key(g), PathKey::Index(i)) if g == "param_groups" => {
                    let name = p[3..].iter().map(PathKey::text).collect::<Vec<_>>().join(".");
                    let mut value = self.data.values.get(fqn).cloned().unwrap_or(Value::Null);
                    if name == "params" {
                        if let Some(list) = value.as_array() {
                            value = Value::from(list.len());
                        }
                    }
                    groups.entry(*i).or_default().insert(name, value);
                }
                (PathKey::Key(s), param) if s == "state" => {
                    params_with_state.insert(param.text());
                    let name = p[3..].iter().map(PathKey::text).collect::<Vec<_>>().join(".");
                    if !state_keys.contains(&name) {
                        state_keys.push(name);
                    }
                }
                _ => {}
            }
        }
        let param_groups: Vec<Value> = groups.into_values().map(Value::Object).collect();
        OptimizerSummary {
            kind: optimizer_kind(&param_groups, &state_keys).to_string(),
            param_groups,
            params_with_state: params_with_state.len(),
            state_keys,
        }
    }

    /// A counter saved as `name` at the top level or one level down (not in
    /// an optimizer's state), as a bytes item or a one-element tensor.
    fn counter(&self, name: &str, optimizers: &[String]) -> Option<i64> {
        let mut candidates: Vec<(usize, &String)> = self
            .all_fqns()
            .filter_map(|fqn| {
                let p = self.path_of(fqn);
                let last = p.last()?.text();
                let ok = last == name
                    && (p.len() == 1
                        || (p.len() == 2
                            && !optimizers.contains(&p[0].text())
                            && !WEIGHT_KEYS.contains(&p[0].text().as_str())));
                ok.then_some((p.len(), fqn))
            })
            .collect();
        candidates.sort();
        candidates.into_iter().find_map(|(_, fqn)| {
            let v = self
                .data
                .scalars
                .get(fqn)
                .copied()
                .or_else(|| self.data.values.get(fqn).and_then(reg_ckpt::exact_json::as_f64))?;
            (v.is_finite() && v.fract() == 0.0).then_some(v as i64)
        })
    }

    /// The bytes items under top-level key `key`, nested back into one JSON
    /// value (`Null` when there are none).
    fn nested(&self, key: &str) -> Value {
        let mut root = Value::Null;
        for (fqn, value) in &self.data.values {
            let p = self.path_of(fqn);
            if p.first().map(PathKey::text).as_deref() != Some(key) {
                continue;
            }
            let mut at = &mut root;
            for k in &p[1..] {
                if !at.is_object() {
                    *at = Value::Object(Map::new());
                }
                let Value::Object(m) = at else { break };
                at = m.entry(k.text()).or_insert(Value::Null);
            }
            *at = value.clone();
        }
        root
    }
}

/// A sort key that orders `optimizer_2` before `optimizer_10`.
fn natural(key: &str) -> (String, u64) {
    let digits = key.len() - key.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = key.split_at(key.len() - digits);
    (stem.to_owned(), number.parse().unwrap_or(0))
}
