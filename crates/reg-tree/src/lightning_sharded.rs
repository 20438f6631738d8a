//! Lightning's sharded checkpoints: what `FSDPStrategy` (and
//! `ModelParallelStrategy`, and Fabric's) write with
//! `state_dict_type="sharded"`: a folder named like the `.ckpt` file
//! (`epoch=3-step=400.ckpt/`) holding a DCP of `{"model": state_dict,
//! "optimizer_0": ..., "optimizer_1": ...}` and, from rank 0, `meta.pt`: a
//! `torch.save` of the rest of the checkpoint dict (epoch, global_step,
//! hyper_parameters, callbacks, loops, lr_schedulers, versions).

use reg_ckpt::meta::{CheckpointMeta, OptimizerSummary};

/// The version's metadata: `meta.pt`'s, with the optimizers the DCP holds
/// (`optimizer_0`, `optimizer_1` ... in that order), since `meta.pt` no
/// longer carries `optimizer_states`.
pub(super) fn meta(meta_pt: &CheckpointMeta, dcp_optimizers: Vec<OptimizerSummary>) -> CheckpointMeta {
    let mut out = meta_pt.clone();
    if out.optimizers.is_empty() {
        out.optimizers = dcp_optimizers;
    }
    out
}
