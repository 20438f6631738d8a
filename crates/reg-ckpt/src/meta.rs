//! What a checkpoint says about its training: epoch, step, hyperparameters,
//! optimizer, scheduler and ModelCheckpoint state.

use crate::view::{self, as_f64, as_int, as_str, get, key_string, mapping, seq};
use reg_pickle::{Node, NodeId, PickleGraph};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Training metadata read from a checkpoint's object tree. Fields are absent
/// when the checkpoint does not carry them (a plain state dict has none).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Keys of the top-level dict, in order.
    #[serde(default)]
    pub top_keys: Vec<String>,
    /// `epoch`.
    pub epoch: Option<i64>,
    /// `global_step`.
    pub global_step: Option<i64>,
    /// `pytorch-lightning_version`.
    pub lightning_version: Option<String>,
    /// `hparams_name`.
    pub hparams_name: Option<String>,
    /// `hyper_parameters` as plain JSON.
    pub hyper_parameters: Option<Value>,
    /// `datamodule_hyper_parameters` as plain JSON.
    pub datamodule_hyper_parameters: Option<Value>,
    /// One summary per optimizer.
    #[serde(default)]
    pub optimizers: Vec<OptimizerSummary>,
    /// One summary per learning-rate scheduler.
    #[serde(default)]
    pub schedulers: Vec<SchedulerSummary>,
    /// ModelCheckpoint callback state, if any.
    pub model_checkpoint: Option<ModelCheckpointState>,
    /// Scores this checkpoint carries, by metric name, with the mode
    /// (`min`/`max`) its callback optimises: each ModelCheckpoint with a
    /// monitor contributes its `current_score`.
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, Score>,
    /// Safetensors `__metadata__`, when the file is safetensors.
    pub safetensors_metadata: Option<Value>,
}

/// Most optimizers, param groups, schedulers and callbacks summarised (each
/// is converted to JSON on its own budget, so a hostile file must not get to
/// multiply it).
pub const MAX_LISTED: usize = 64;

/// A monitored metric's value in one checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// The value (NaN and infinities kept: see [`crate::exact_json`]).
    #[serde(with = "crate::exact_json::f64_exact")]
    pub value: f64,
    /// `min` or `max`: which direction is better.
    pub mode: String,
}

/// An optimizer's settings, from its `state_dict()`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSummary {
    /// The optimizer class, inferred from its param groups and state
    /// (`Adam`, `AdamW`, `SGD`, ...), or `unknown`.
    pub kind: String,
    /// Param groups with their settings (`params` replaced by its length).
    pub param_groups: Vec<Value>,
    /// Number of parameters that have state.
    pub params_with_state: usize,
    /// Names of the per-parameter state entries (`exp_avg`, `step` ...).
    pub state_keys: Vec<String>,
}

/// A learning-rate scheduler's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerSummary {
    /// The scheduler class, inferred from its fields, or `unknown`.
    pub kind: String,
    /// Its state dict as JSON.
    pub state: Value,
}

/// What Lightning's ModelCheckpoint callback recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCheckpointState {
    /// The callback's state key (it encodes its settings).
    pub key: String,
    /// The monitored metric, if any.
    pub monitor: Option<String>,
    /// `min` or `max`.
    pub mode: Option<String>,
    /// Best score seen so far.
    #[serde(default, with = "crate::exact_json::opt_f64_exact")]
    pub best_model_score: Option<f64>,
    /// Path of the best checkpoint.
    pub best_model_path: Option<String>,
    /// The score of the checkpoint being saved, when recorded.
    #[serde(default, with = "crate::exact_json::opt_f64_exact")]
    pub current_score: Option<f64>,
    /// The rest of the state as JSON.
    pub state: Value,
}

/// Reads a tensor node as a number, when it has exactly one element.
pub type ScalarReader<'a> = dyn Fn(NodeId) -> Option<f64> + 'a;

/// Everything [`extract`] needs besides the graph: how to describe tensor
/// nodes in JSON and how to read a one-element tensor.
pub struct Readers<'a> {
    /// Returns a JSON description for tensor nodes, `None` for others.
    pub describe_tensor: &'a dyn Fn(NodeId) -> Option<Value>,
    /// Reads the value of a one-element tensor node.
    pub scalar: &'a ScalarReader<'a>,
}

/// Extract training metadata from a torch pickle.
pub fn extract(graph: &PickleGraph, readers: &Readers<'_>) -> CheckpointMeta {
    let mut meta = CheckpointMeta::default();
    let Some(root) = graph.root else {
        return meta;
    };
    let Some(items) = mapping(graph, root) else {
        return meta;
    };
    let json = |id: NodeId| view::to_json(graph, id, readers.describe_tensor);
    meta.top_keys = items.iter().map(|(k, _)| key_string(graph, *k)).collect();
    let number = |id: NodeId| as_int(graph, id).or_else(|| (readers.scalar)(id).map(|f| f as i64));
    meta.epoch = get(graph, root, "epoch").and_then(number);
    meta.global_step = get(graph, root, "global_step").and_then(number);
    meta.lightning_version =
        get(graph, root, "pytorch-lightning_version").and_then(|v| as_str(graph, v).map(String::from));
    meta.hparams_name = get(graph, root, "hparams_name").and_then(|v| as_str(graph, v).map(String::from));
    meta.hyper_parameters = get(graph, root, "hyper_parameters")
        .map(json)
        .map(crate::interpolate::resolve_interpolations);
    meta.datamodule_hyper_parameters = get(graph, root, "datamodule_hyper_parameters").map(json);
    if let Some(opts) = get(graph, root, "optimizer_states").and_then(|o| seq(graph, o)) {
        meta.optimizers = opts
            .iter()
            .take(MAX_LISTED)
            .map(|o| optimizer(graph, *o, &json))
            .collect();
    } else if let Some(opt) = ["optimizer", "optimizer_state_dict", "optim"]
        .iter()
        .find_map(|k| get(graph, root, k))
        .filter(|o| get(graph, *o, "param_groups").is_some())
    {
        meta.optimizers = vec![optimizer(graph, opt, &json)];
    }
    if let Some(scheds) = get(graph, root, "lr_schedulers").and_then(|o| seq(graph, o)) {
        meta.schedulers = scheds
            .iter()
            .take(MAX_LISTED)
            .map(|s| {
                let state = json(*s);
                SchedulerSummary {
                    kind: scheduler_kind(&state).to_string(),
                    state,
                }
            })
            .collect();
    }
    if let Some(callbacks) = get(graph, root, "callbacks") {
        let all: Vec<ModelCheckpointState> = mapping(graph, callbacks)
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| as_str(graph, *k).is_some_and(|s| s.starts_with("ModelCheckpoint")))
            .take(MAX_LISTED)
            .map(|(k, v)| model_checkpoint(graph, *k, *v, readers, &json))
            .collect();
        for mc in &all {
            if let (Some(monitor), Some(value)) = (&mc.monitor, mc.current_score) {
                let mode = mc.mode.clone().unwrap_or_else(|| "min".into());
                meta.scores.entry(monitor.clone()).or_insert(Score { value, mode });
            }
        }
        meta.model_checkpoint = all.into_iter().next();
    }
    meta
}

/// Summarise the optimizer `state_dict()` at `id` (a mapping with `state`
/// and `param_groups`); `json` converts values as [`view::to_json`] does.
pub fn optimizer(graph: &PickleGraph, id: NodeId, json: &dyn Fn(NodeId) -> Value) -> OptimizerSummary {
    let mut summary = OptimizerSummary::default();
    let mut state_keys: Vec<String> = Vec::new();
    if let Some(state) = get(graph, id, "state").and_then(|s| mapping(graph, s)) {
        summary.params_with_state = state.len();
        // Each distinct per-parameter dict once, each key name once.
        let mut seen_dicts = std::collections::HashSet::new();
        let mut seen_keys = std::collections::HashSet::new();
        for (_, per_param) in &state {
            if !seen_dicts.insert(*per_param) || seen_keys.len() > 256 {
                continue;
            }
            for (k, _) in mapping(graph, *per_param).unwrap_or_default().into_iter().take(256) {
                let k = key_string(graph, k);
                if seen_keys.insert(k.clone()) {
                    state_keys.push(k);
                }
            }
        }
    }
    if let Some(groups) = get(graph, id, "param_groups").and_then(|g| seq(graph, g)) {
        // A summary: the first groups (real optimizers have a handful).
        for g in groups.iter().take(MAX_LISTED) {
            let mut v = json(*g);
            if let Some(obj) = v.as_object_mut() {
                if let Some(params) = get(graph, *g, "params").and_then(|p| seq(graph, p)) {
                    obj.insert("params".into(), Value::from(params.len()));
                }
            }
            summary.param_groups.push(v);
        }
    }
    summary.kind = optimizer_kind(&summary.param_groups, &state_keys).to_string();
    summary.state_keys = state_keys;
    summary
}

/// Infer the optimizer class from the settings in its first param group and
/// the names of its state entries.
pub fn optimizer_kind(groups: &[Value], state_keys: &[String]) -> &'static str {
    let empty = serde_json::Map::new();
    let g = groups.first().and_then(Value::as_object).unwrap_or(&empty);
    let has = |k: &str| g.contains_key(k);
    let state = |k: &str| state_keys.iter().any(|s| s == k);
    if has("history_size") || has("line_search_fn") {
        "LBFGS"
    } else if has("momentum_decay") {
        "NAdam"
    } else if has("lambd") && has("alpha") && has("t0") {
        "ASGD"
    } else if has("etas") || has("step_sizes") {
        "Rprop"
    } else if has("lr_decay") || state("sum") {
        "Adagrad"
    } else if has("rho") && !has("betas") {
        "Adadelta"
    } else if has("alpha") && has("centered") {
        "RMSprop"
    } else if state("exp_inf") {
        "Adamax"
    } else if has("betas") && has("amsgrad") {
        let decoupled = g
            .get("decoupled_weight_decay")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if decoupled {
            "AdamW"
        } else {
            "Adam"
        }
    } else if has("betas") && has("decoupled_weight_decay") {
        "RAdam"
    } else if has("betas") {
        "Adam-like"
    } else if has("momentum") && has("dampening") {
        "SGD"
    } else {
        "unknown"
    }
}

/// Infer a scheduler class from the fields of its state dict.
pub fn scheduler_kind(state: &Value) -> &'static str {
    let Some(s) = state.as_object() else {
        return "unknown";
    };
    let has = |k: &str| s.contains_key(k);
    if has("lr_lambdas") && has("_schedulers") {
        "SequentialLR-like"
    } else if has("_schedulers") {
        if has("_milestones") {
            "SequentialLR"
        } else {
            "ChainedScheduler"
        }
    } else if has("lr_lambdas") {
        "LambdaLR"
    } else if has("total_steps") || has("_anneal_func_type") {
        "OneCycleLR"
    } else if has("T_0") {
        "CosineAnnealingWarmRestarts"
    } else if has("T_max") {
        "CosineAnnealingLR"
    } else if has("patience") {
        "ReduceLROnPlateau"
    } else if has("milestones") {
        "MultiStepLR"
    } else if has("step_size") && has("gamma") {
        "StepLR"
    } else if has("total_iters") && has("power") {
        "PolynomialLR"
    } else if has("start_factor") {
        "LinearLR"
    } else if has("factor") && has("total_iters") {
        "ConstantLR"
    } else if has("base_lrs") && has("max_lrs") {
        "CyclicLR"
    } else if has("gamma") {
        "ExponentialLR"
    } else {
        "unknown"
    }
}

/// Pull `'name': 'value'` out of a Lightning state key such as
/// `ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', ...}`.
fn key_setting(key: &str, name: &str) -> Option<String> {
    let at = key.find(&format!("'{name}': "))? + name.len() + 4;
    let rest = &key[at..];
    let rest = rest.strip_prefix('\'')?;
    rest.find('\'').map(|end| rest[..end].to_string())
}

fn model_checkpoint(
    graph: &PickleGraph,
    key: NodeId,
    state: NodeId,
    readers: &Readers<'_>,
    json: &dyn Fn(NodeId) -> Value,
) -> ModelCheckpointState {
    let key = as_str(graph, key).unwrap_or("").to_string();
    let score = |name: &str| {
        get(graph, state, name).and_then(|v| match graph.node(v) {
            Node::None => None,
            _ => as_f64(graph, v).or_else(|| (readers.scalar)(v)),
        })
    };
    let text = |name: &str| get(graph, state, name).and_then(|v| as_str(graph, v)).map(String::from);
    ModelCheckpointState {
        monitor: text("monitor").or_else(|| key_setting(&key, "monitor")),
        mode: text("mode").or_else(|| key_setting(&key, "mode")),
        best_model_score: score("best_model_score"),
        best_model_path: text("best_model_path"),
        current_score: score("current_score"),
        state: json(state),
        key,
    }
}
