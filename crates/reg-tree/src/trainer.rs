//! The transformers Trainer's `checkpoint-N/` folders.
//!
//! `Trainer._save_checkpoint` writes the model (`model.safetensors` or
//! shards), `optimizer.pt` (the optimizer's `state_dict()`), `scheduler.pt`
//! (the LR scheduler's), `rng_state.pth` (or `rng_state_R.pth` per
//! process), `trainer_state.json` and `training_args.bin`, a `torch.save`
//! of the `TrainingArguments` object: a pickle of transformers classes,
//! read as data with the pickle machine (its globals are reported as
//! unknown, never run). `trainer_state.json` gives the epoch (a float:
//! fractional epochs done), the global step, the best metric and
//! checkpoint, and the log history; the checkpoint's own score is the
//! logged `eval_<metric_for_best_model>` at its step.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::files::TorchObject;
use super::TreeError;
use reg_ckpt::exact_json::{as_f64, opt_f64_exact};
use reg_ckpt::meta::{self, CheckpointMeta, ModelCheckpointState, SchedulerSummary, Score};

/// What `trainer_state.json` (and `training_args.bin`) record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs done, fractional (`0.5` halfway through the first).
    #[serde(default, with = "opt_f64_exact")]
    pub epoch: Option<f64>,
    /// Optimizer steps done.
    pub global_step: Option<i64>,
    /// The run's planned steps.
    pub max_steps: Option<i64>,
    /// The best value of the monitored metric so far.
    #[serde(default, with = "opt_f64_exact")]
    pub best_metric: Option<f64>,
    /// The checkpoint folder that scored it.
    pub best_model_checkpoint: Option<String>,
    /// Every logged record (`loss`, `learning_rate`, `eval_*` by step).
    pub log_history: Vec<Value>,
    /// `TrainingArguments` as JSON (from `training_args.bin`), when present.
    pub training_args: Option<Value>,
}

/// The torch files of a Trainer checkpoint, read.
pub(super) struct TrainerFiles<'a, 'f> {
    /// `training_args.bin`.
    pub training_args: Option<&'a TorchObject<'f>>,
    /// `optimizer.pt`.
    pub optimizer: Option<&'a TorchObject<'f>>,
    /// `scheduler.pt`.
    pub scheduler: Option<&'a TorchObject<'f>>,
}

/// Read `trainer_state.json` (at `path`) and the Trainer's torch files into
/// the state and the version's training metadata.
pub(super) fn read(
    path: &str,
    state_json: &[u8],
    files: &TrainerFiles,
) -> Result<(TrainerState, CheckpointMeta), TreeError> {
    let json: Value = reg_ckpt::exact_json::parse(state_json).map_err(|e| TreeError::Json {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let Value::Object(fields) = json else {
        return Err(TreeError::Json {
            path: path.to_owned(),
            reason: "not a JSON object".into(),
        });
    };
    let int = |k: &str| fields.get(k).and_then(Value::as_i64);
    let state = TrainerState {
        epoch: fields.get("epoch").and_then(as_f64),
        global_step: int("global_step"),
        max_steps: int("max_steps"),
        best_metric: fields.get("best_metric").and_then(as_f64),
        best_model_checkpoint: fields
            .get("best_model_checkpoint")
            .and_then(Value::as_str)
            .map(String::from),
        log_history: fields
            .get("log_history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        training_args: files.training_args.and_then(|o| o.root().map(|r| o.json(r))),
    };
    let mut meta = CheckpointMeta {
        epoch: state.epoch.filter(|e| e.is_finite()).map(|e| e.floor() as i64),
        global_step: state.global_step,
        ..CheckpointMeta::default()
    };
    if let Some(o) = files.optimizer.filter(|o| o.is_optimizer_state()) {
        if let Some(root) = o.root() {
            meta.optimizers = vec![meta::optimizer(&o.graph, root, &|id| o.json(id))];
        }
    }
    if let Some(s) = files.scheduler {
        if let Some(root) = s.root() {
            let state = s.json(root);
            meta.schedulers = vec![SchedulerSummary {
                kind: meta::scheduler_kind(&state).to_string(),
                state,
            }];
        }
    }
    let (monitor, mode) = monitored(state.training_args.as_ref());
    let current_score = state
        .log_history
        .iter()
        .filter(|r| r.get("step").and_then(Value::as_i64) == state.global_step)
        .find_map(|r| r.get(&monitor).and_then(as_f64));
    if let Some(value) = current_score {
        meta.scores.insert(
            monitor.clone(),
            Score {
                value,
                mode: mode.to_owned(),
            },
        );
    }
    let mut summary = fields.clone();
    summary.remove("log_history");
    meta.model_checkpoint = Some(ModelCheckpointState {
        key: "trainer_state.json".into(),
        monitor: Some(monitor),
        mode: Some(mode.to_owned()),
        best_model_score: state.best_metric,
        best_model_path: state.best_model_checkpoint.clone(),
        current_score,
        state: Value::Object(summary),
    });
    Ok((state, meta))
}

/// The logged metric the Trainer compares checkpoints by, and whether more
/// is better: `metric_for_best_model` with its `eval_` prefix (`eval_loss`
/// when unset), `greater_is_better` defaulting as the Trainer does (false
/// for a metric ending in `loss`).
fn monitored(args: Option<&Value>) -> (String, &'static str) {
    let empty = Map::new();
    let args = args.and_then(Value::as_object).unwrap_or(&empty);
    let metric = args
        .get("metric_for_best_model")
        .and_then(Value::as_str)
        .unwrap_or("loss");
    let metric = if metric.starts_with("eval_") {
        metric.to_owned()
    } else {
        format!("eval_{metric}")
    };
    let greater = args
        .get("greater_is_better")
        .and_then(Value::as_bool)
        .unwrap_or(!metric.ends_with("loss"));
    (metric, if greater { "max" } else { "min" })
}

#[cfg(test)]
mod tests {
    use super::monitored;
    use serde_json::json;

    #[test]
    fn the_monitored_metric_defaults_as_the_trainer_does() {
        assert_eq!(monitored(None), ("eval_loss".into(), "min"));
        let args = json!({"metric_for_best_model": "accuracy", "greater_is_better": null});
        assert_eq!(monitored(Some(&args)), ("eval_accuracy".into(), "max"));
        let args = json!({"metric_for_best_model": "eval_f1", "greater_is_better": false});
        assert_eq!(monitored(Some(&args)), ("eval_f1".into(), "min"));
    }
}
