//! DeepSpeed checkpoints, as `DeepSpeedEngine.save_checkpoint(save_dir,
//! tag)` writes them:
//!
//! - `save_dir/latest`: a text file holding the tag of the last save;
//! - `save_dir/<tag>/mp_rank_XX_model_states.pt` (one per model-parallel
//!   rank; `zero_pp_rank_D_mp_rank_XX_model_states.pt` under ZeRO-3): a
//!   `torch.save` dict with `module` (the state dict), `buffer_names`,
//!   `optimizer` (without ZeRO), `param_shapes`, `frozen_param_shapes`,
//!   `shared_params`, `frozen_param_fragments`, `lr_scheduler`,
//!   `global_steps`, `global_samples`, `skipped_steps`, `dp_world_size`,
//!   `mp_world_size`, `ds_config`, `ds_version`, plus the caller's
//!   `client_state` (Lightning's DeepSpeedStrategy puts its whole
//!   checkpoint dict there: epoch, global_step, hyper_parameters,
//!   callbacks, loops);
//! - `save_dir/<tag>/[bf16_]zero_pp_rank_D_mp_rank_XX_optim_states.pt`
//!   (one per data-parallel rank under ZeRO): `optimizer_state_dict` (the
//!   ZeRO optimizer's: `base_optimizer_state` with the torch optimizer's
//!   `state` and `param_groups`, `single_partition_of_fp32_groups`, the
//!   loss scaler ...), `ds_config`, `ds_version`;
//! - `save_dir/zero_to_fp32.py`, a copied script.
//!
//! Their tensors are named `FILE:PATH` like any other file's; this module
//! finds the checkpoint and reads its training metadata.

use super::files::TorchObject;
use reg_ckpt::meta::{self, CheckpointMeta, SchedulerSummary};
use reg_ckpt::view;

/// Does this torch file's top-level dict look like a DeepSpeed model states
/// file?
pub(super) fn is_model_states(name: &str, top_keys: &[String]) -> bool {
    let has = |k: &str| top_keys.iter().any(|t| t == k);
    name.ends_with("model_states.pt") && has("module") && (has("ds_version") || has("ds_config") || has("buffer_names"))
}

/// Does this torch file's top-level dict look like a DeepSpeed ZeRO
/// optimizer states file?
pub(super) fn is_optim_states(name: &str, top_keys: &[String]) -> bool {
    let has = |k: &str| top_keys.iter().any(|t| t == k);
    name.ends_with("optim_states.pt") && has("optimizer_state_dict")
}

/// The tag a `latest` file names: its trimmed text, when it is a short
/// single line of UTF-8 that stays inside the folder.
pub(super) fn latest_tag(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > 1024 {
        return None;
    }
    let tag = std::str::from_utf8(bytes).ok()?.trim();
    let ok = !tag.is_empty() && !tag.contains('\n') && !tag.starts_with('/') && !tag.split('/').any(|p| p == "..");
    ok.then_some(tag)
}

/// Training metadata of a DeepSpeed checkpoint from its first model states
/// file and, under ZeRO, its first optimizer states file.
pub(super) fn meta(
    model: &TorchObject<'_>,
    model_meta: &CheckpointMeta,
    optim: Option<&TorchObject<'_>>,
) -> CheckpointMeta {
    // Lightning's client state gives epoch, global_step, hparams, callbacks.
    let mut out = model_meta.clone();
    if out.global_step.is_none() {
        out.global_step = model
            .at(&["global_steps"])
            .and_then(|id| view::as_int(&model.graph, id));
    }
    if out.schedulers.is_empty() {
        if let Some(id) = model
            .at(&["lr_scheduler"])
            .filter(|id| view::mapping(&model.graph, *id).is_some())
        {
            let state = model.json(id);
            out.schedulers = vec![SchedulerSummary {
                kind: meta::scheduler_kind(&state).to_string(),
                state,
            }];
        }
    }
    if out.optimizers.is_empty() {
        let candidates: [(&TorchObject<'_>, &[&str]); 5] = [
            (model, &["optimizer"]),
            (model, &["optimizer", "optimizer_state_dict"]),
            (model, &["optimizer", "base_optimizer_state"]),
            (
                optim.unwrap_or(model),
                &["optimizer_state_dict", "base_optimizer_state"],
            ),
            (
                optim.unwrap_or(model),
                &["optimizer_state_dict", "optimizer_state_dict"],
            ),
        ];
        if let Some((o, id)) = candidates.iter().find_map(|(o, keys)| {
            o.at(keys)
                .filter(|id| view::get(&o.graph, *id, "param_groups").is_some())
                .map(|id| (*o, id))
        }) {
            out.optimizers = vec![meta::optimizer(&o.graph, id, &|n| o.json(n))];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_names_a_tag() {
        assert_eq!(latest_tag(b"global_step8"), Some("global_step8"));
        assert_eq!(latest_tag(b"checkpoint\n"), Some("checkpoint"));
        assert_eq!(latest_tag(b"../x"), None);
        assert_eq!(latest_tag(b"a\nb"), None);
        assert_eq!(latest_tag(&[0xff, 0xfe]), None);
        assert!(is_model_states(
            "mp_rank_00_model_states.pt",
            &["module".into(), "ds_version".into()]
        ));
        assert!(!is_model_states("model.pt", &["module".into(), "ds_version".into()]));
    }
}
