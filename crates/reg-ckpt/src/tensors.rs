//! Finding the tensors in a torch pickle: where each sits in the object tree
//! and how it views its storage.
//!
//! torch pickles a tensor as a call to `torch._utils._rebuild_tensor_v2`
//! (or `_v3`, which adds the dtype) whose first argument is a persistent id
//! `('storage', <storage class>, key, location, numel)`. Parameters wrap a
//! tensor in `_rebuild_parameter`; tensor subclasses in
//! `torch._tensor._rebuild_from_type_v2`. A tensor on torch's `meta` device
//! (shape and dtype only: Lightning and Hugging Face write them for tied or
//! offloaded weights) has no storage: torch pickles it as
//! `torch._utils._rebuild_meta_tensor_no_storage(dtype, size, stride,
//! requires_grad)`, and it is listed with [`TensorInfo::meta`] set and an
//! empty storage key. The walk is iterative and visits
//! each container once per path, with a bound on the number of paths, so
//! shared or cyclic structures cannot make it loop.

use crate::dtype::DType;
use crate::view::{self, as_bool, as_int, as_str, call_args, callable_name, global_name, key_string, mapping, seq};
use reg_pickle::{Node, NodeId, PickleGraph};
use std::collections::BTreeMap;

/// Where a tensor's bytes serve in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Model weights and buffers (the state dict).
    Weight,
    /// Optimizer state (Adam moments, momentum buffers, step counters).
    Optimizer,
    /// Anything else (callback state, loose tensors).
    Other,
}

/// One tensor of a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Place in the object tree: keys and indices joined by `/`.
    pub path: String,
    /// Element type.
    pub dtype: DType,
    /// Size per dimension.
    pub shape: Vec<u64>,
    /// Stride per dimension, in elements.
    pub stride: Vec<u64>,
    /// First element's index in the storage.
    pub storage_offset: u64,
    /// The storage it views (zip record `data/<key>`, legacy key, or the
    /// safetensors tensor name); empty for a meta tensor.
    pub storage_key: String,
    /// `requires_grad` as pickled.
    pub requires_grad: bool,
    /// Whether it was an `nn.Parameter`.
    pub parameter: bool,
    /// Weight, optimizer state or other.
    pub role: Role,
    /// On torch's `meta` device: dtype, shape and stride only, no storage
    /// and no bytes in the file (`storage_key` is empty, `storage_offset`
    /// 0).
    pub meta: bool,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }

    /// True when the tensor is laid out row-major from its offset.
    pub fn is_contiguous(&self) -> bool {
        is_contiguous(&self.shape, &self.stride)
    }

    /// One past the highest storage element the tensor touches (its
    /// offset for an empty tensor).
    pub fn storage_extent(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(self.storage_offset);
        }
        let mut last = self.storage_offset;
        for (size, stride) in self.shape.iter().zip(&self.stride) {
            last = last.checked_add((size - 1).checked_mul(*stride)?)?;
        }
        last.checked_add(1)
    }
}

/// A storage that the pickle references by persistent id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    /// The record key.
    pub key: String,
    /// Element type the storage class implies (`uint8` for `UntypedStorage`).
    pub dtype: DType,
    /// Element count the pickle declares.
    pub numel: u64,
    /// Device location string (`cpu`, `cuda:0`).
    pub location: String,
}

/// Problems with tensor records in a pickle. Returned by [`find_tensors`].
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// A persistent id that is not a torch storage reference.
    #[error("pickle references storage in an unknown form: {0}")]
    BadStorageRef(String),
    /// A storage class that maps to no known dtype.
    #[error("unknown storage type {0}")]
    UnknownStorageType(String),
    /// A tensor record naming a dtype reg does not know (`torch.<name>`).
    #[error("tensor {path}: unknown dtype torch.{dtype}")]
    UnknownDtype {
        /// Where the tensor sits.
        path: String,
        /// The dtype's name without `torch.`.
        dtype: String,
    },
    /// A tensor record whose arguments are not as torch writes them.
    #[error("tensor {path}: malformed rebuild arguments ({reason})")]
    BadTensor {
        /// Where the tensor sits.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same storage key with two different declarations.
    #[error("storage {0} is declared twice with different types or sizes")]
    ConflictingStorage(String),
    /// The tree has more tensor paths than the limit.
    #[error("more than {0} tensor paths in the object tree")]
    TooManyPaths(usize),
}

/// Most (path, node) pairs the walk visits.
pub const MAX_WALK_STEPS: usize = 20_000_000;

/// Deepest path the walk follows (deeper parts of the tree are not listed).
pub const MAX_PATH_DEPTH: usize = 256;

/// Parse a persistent id tuple into a storage reference.
pub fn storage_ref(graph: &PickleGraph, pid: NodeId) -> Result<StorageRef, TensorError> {
    let bad = || TensorError::BadStorageRef(view::kind_name(graph, pid));
    let items = seq(graph, pid).ok_or_else(bad)?;
    if items.len() < 5 || as_str(graph, items[0]) != Some("storage") {
        return Err(bad());
    }
    let (_, class) = global_name(graph, items[1]).ok_or_else(bad)?;
    let dtype = if class == "UntypedStorage" {
        DType::Uint8
    } else {
        DType::from_storage_class(class).ok_or_else(|| TensorError::UnknownStorageType(class.to_string()))?
    };
    let key = match graph.node(items[2]) {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        _ => return Err(bad()),
    };
    let location = as_str(graph, items[3]).unwrap_or("").to_string();
    let numel = as_int(graph, items[4])
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(bad)?;
    Ok(StorageRef {
        key,
        dtype,
        numel,
        location,
    })
}

/// Every storage the pickle references, by key.
pub fn storages(graph: &PickleGraph) -> Result<BTreeMap<String, StorageRef>, TensorError> {
    let mut out: BTreeMap<String, StorageRef> = BTreeMap::new();
    for node in &graph.nodes {
        if let Node::PersistentId(pid) = node {
            let r = storage_ref(graph, *pid)?;
            match out.get(&r.key) {
                Some(prev)
                    if prev.numel.saturating_mul(prev.dtype.size() as u64)
                        != r.numel.saturating_mul(r.dtype.size() as u64) =>
                {
                    return Err(TensorError::ConflictingStorage(r.key));
                }
                Some(_) => {}
                None => {
                    out.insert(r.key.clone(), r);
                }
            }
        }
    }
    Ok(out)
}

fn is_rebuild_tensor(name: (&str, &str)) -> bool {
    matches!(
        name,
        (
            "torch._utils",
            "_rebuild_tensor_v2"
                | "_rebuild_tensor_v3"
                | "_rebuild_tensor"
                | "_rebuild_qtensor"
                | "_rebuild_meta_tensor_no_storage"
        )
    )
}

/// If `id` is a tensor record, describe it (path and role filled by caller).
pub fn tensor_at(graph: &PickleGraph, id: NodeId, path: &str) -> Result<Option<TensorInfo>, TensorError> {
    let Some(name) = callable_name(graph, id) else {
        return Ok(None);
    };
    let args = call_args(graph, id);
    let bad = |reason| TensorError::BadTensor {
        path: path.to_string(),
        reason,
    };
    match name {
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            let inner = *args.first().ok_or_else(|| bad("parameter without data"))?;
            // A parameter wraps a tensor record, never another parameter.
            if matches!(
                callable_name(graph, inner),
                Some(("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state"))
            ) {
                return Err(bad("parameter wrapping a parameter"));
            }
            let Some(mut t) = tensor_at(graph, inner, path)? else {
                return Ok(None);
            };
            t.parameter = true;
            t.requires_grad = args.get(1).and_then(|a| as_bool(graph, *a)).unwrap_or(true);
            Ok(Some(t))
        }
        ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") => {
            // (func, new_type, args, state): the real rebuild is func(*args).
            let func = args.first().and_then(|f| global_name(graph, *f));
            let inner_args = args.get(2).and_then(|a| seq(graph, *a));
            match (func, inner_args) {
                (Some(f), Some(inner)) if is_rebuild_tensor(f) => rebuild(graph, f.1, inner, path).map(Some),
                _ => Ok(None),
            }
        }
        n if is_rebuild_tensor(n) => rebuild(graph, n.1, args, path).map(Some),
        _ => Ok(None),
    }
}

fn dims(graph: &PickleGraph, id: NodeId) -> Option<Vec<u64>> {
    seq(graph, id)?
        .iter()
        .map(|d| as_int(graph, *d).and_then(|v| u64::try_from(v).ok()))
        .collect()
}

fn rebuild(graph: &PickleGraph, func: &str, args: &[NodeId], path: &str) -> Result<TensorInfo, TensorError> {
    let bad = |reason| TensorError::BadTensor {
        path: path.to_string(),
        reason,
    };
    if func == "_rebuild_meta_tensor_no_storage" {
        return rebuild_meta(graph, args, path);
    }
    let storage = match args.first().map(|a| graph.node(*a)) {
        Some(Node::PersistentId(pid)) => storage_ref(graph, *pid)?,
        _ => return Err(bad("first argument is not a storage")),
    };
    let offset = args
        .get(1)
        .and_then(|a| as_int(graph, *a))
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| bad("bad storage offset"))?;
    let shape = args
        .get(2)
        .and_then(|a| dims(graph, *a))
        .ok_or_else(|| bad("bad size"))?;
    let stride = if func == "_rebuild_qtensor" || func == "_rebuild_tensor" {
        args.get(3)
            .and_then(|a| dims(graph, *a))
            .unwrap_or_else(|| contiguous_stride(&shape))
    } else {
        args.get(3)
            .and_then(|a| dims(graph, *a))
            .ok_or_else(|| bad("bad stride"))?
    };
    if stride.len() != shape.len() {
        return Err(bad("size and stride differ in length"));
    }
    let requires_grad_at = if func == "_rebuild_qtensor" { 5 } else { 4 };
    let requires_grad = args
        .get(requires_grad_at)
        .and_then(|a| as_bool(graph, *a))
        .unwrap_or(false);
    let dtype = if func == "_rebuild_tensor_v3" {
        let d = args
            .get(6)
            .and_then(|a| global_name(graph, *a))
            .ok_or_else(|| bad("v3 without dtype"))?;
        DType::from_torch_name(d.1).ok_or_else(|| TensorError::UnknownDtype {
            path: path.to_string(),
            dtype: d.1.to_string(),
        })?
    } else {
        storage.dtype
    };
    Ok(TensorInfo {
        path: path.to_string(),
        dtype,
        shape,
        stride,
        storage_offset: offset,
        storage_key: storage.key,
        requires_grad,
        parameter: false,
        role: Role::Other,
        meta: false,
    })
}

/// `_rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)`:
/// a tensor on the meta device, which has no storage.
fn rebuild_meta(graph: &PickleGraph, args: &[NodeId], path: &str) -> Result<TensorInfo, TensorError> {
    let bad = |reason| TensorError::BadTensor {
        path: path.to_string(),
        reason,
    };
    let d = args
        .first()
        .and_then(|a| global_name(graph, *a))
        .ok_or_else(|| bad("meta tensor without dtype"))?;
    let dtype = DType::from_torch_name(d.1).ok_or_else(|| TensorError::UnknownDtype {
        path: path.to_string(),
        dtype: d.1.to_string(),
    })?;
    let shape = args
        .get(1)
        .and_then(|a| dims(graph, *a))
        .ok_or_else(|| bad("bad size"))?;
    let stride = args
        .get(2)
        .and_then(|a| dims(graph, *a))
        .ok_or_else(|| bad("bad stride"))?;
    if stride.len() != shape.len() {
        return Err(bad("size and stride differ in length"));
    }
    let requires_grad = args.get(3).and_then(|a| as_bool(graph, *a)).unwrap_or(false);
    Ok(TensorInfo {
        path: path.to_string(),
        dtype,
        shape,
        stride,
        storage_offset: 0,
        storage_key: String::new(),
        requires_grad,
        parameter: false,
        role: Role::Other,
        meta: true,
    })
}

/// True when a view with these sizes and strides is laid out row-major
/// (dimensions of size 1 may have any stride).
pub fn is_contiguous(shape: &[u64], stride: &[u64]) -> bool {
    let mut expected = 1u64;
    for (size, stride) in shape.iter().zip(stride).rev() {
        if *size != 1 && *stride != expected {
            return false;
        }
        expected = expected.saturating_mul(*size);
    }
    true
}

/// Row-major strides for a shape.
pub fn contiguous_stride(shape: &[u64]) -> Vec<u64> {
    let mut stride = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        stride[i] = stride[i + 1].saturating_mul(shape[i + 1]);
    }
    stride
}

/// The role a tensor plays, from its path.
pub fn role_of(path: &str, in_state_dict_file: bool) -> Role {
    let first = path.split('/').next().unwrap_or("");
    match first {
        "state_dict" | "model" | "model_state_dict" | "module" | "ema_state_dict" | "weights" | "params" => {
            Role::Weight
        }
        "optimizer_states" | "optimizer" | "optimizer_state_dict" | "optim" | "opt" => Role::Optimizer,
        _ if in_state_dict_file => Role::Weight,
        _ => Role::Other,
    }
}

/// Children of a node to walk, with the path component of each.
fn children(graph: &PickleGraph, id: NodeId) -> Vec<(String, NodeId)> {
    if let Some(items) = mapping(graph, id) {
        return items.into_iter().map(|(k, v)| (key_string(graph, k), v)).collect();
    }
    match graph.node(id) {
        Node::List(items) | Node::Tuple(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), *v)).collect(),
        Node::Object {
            callable,
            args,
            state,
            list_items,
            ..
        } if rebuild_name(graph, *callable).is_some() => {
            // A tensor torch rebuilds from other tensors (sparse, nested):
            // list its parts, named after what they are.
            let _ = (state, list_items);
            composite_parts(graph, *callable, *args)
        }
        Node::Object { state, list_items, .. } => {
            // An object we do not know (a pickled nn.Module, a custom class):
            // its tensors still belong to the checkpoint; name them by the
            // attribute names in its state.
            let mut out: Vec<(String, NodeId)> = list_items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), *v))
                .collect();
            if let Some(s) = state {
                match graph.node(*s) {
                    Node::Dict(_) => out.extend(children(graph, *s)),
                    // (state, slotstate) pairs from __reduce_ex__.
                    Node::Tuple(parts) => {
                        for part in parts {
                            if matches!(graph.node(*part), Node::Dict(_)) {
                                out.extend(children(graph, *part));
                            }
                        }
                    }
                    _ => {}
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The name of a `torch._utils._rebuild_*` callable other than the plain
/// tensor and parameter ones handled by [`tensor_at`].
pub fn rebuild_name(graph: &PickleGraph, callable: NodeId) -> Option<&str> {
    match global_name(graph, callable)? {
        ("torch._utils", n) if n.starts_with("_rebuild_") => Some(n),
        _ => None,
    }
}

/// Parts of a sparse or nested tensor record, named: COO `indices`,
/// `values`; CSR/CSC/BSR/BSC compressed and plain indices and `values`;
/// nested `buffer`, `sizes`, `strides`, `offsets`; other records by index.
fn composite_parts(graph: &PickleGraph, callable: NodeId, args: NodeId) -> Vec<(String, NodeId)> {
    let args = seq(graph, args).unwrap_or(&[]);
    let named = |names: &[&str], items: &[NodeId]| -> Vec<(String, NodeId)> {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| (names.get(i).map(|n| n.to_string()).unwrap_or_else(|| i.to_string()), *v))
            .collect()
    };
    match rebuild_name(graph, callable) {
        Some("_rebuild_sparse_tensor") => {
            let data = args.get(1).and_then(|d| seq(graph, *d)).unwrap_or(&[]);
            let names: &[&str] = match sparse_layout(graph, args) {
                "sparse_coo" => &["indices", "values"],
                "sparse_csr" | "sparse_bsr" => &["crow_indices", "col_indices", "values"],
                "sparse_csc" | "sparse_bsc" => &["ccol_indices", "row_indices", "values"],
                _ => &[],
            };
            named(names, data)
        }
        Some("_rebuild_nested_tensor") => named(&["buffer", "sizes", "strides", "offsets"], args),
        _ => named(&[], args),
    }
}

/// The layout of a `_rebuild_sparse_tensor(layout, data)` record:
/// `torch.sparse_coo` or, as torch pickles it,
/// `torch.serialization._get_layout("torch.sparse_coo")`; `""` if neither.
fn sparse_layout<'g>(graph: &'g PickleGraph, args: &[NodeId]) -> &'g str {
    args.first()
        .and_then(|l| {
            global_name(graph, *l).map(|g| g.1).or_else(|| {
                call_args(graph, *l)
                    .first()
                    .and_then(|a| as_str(graph, *a))
                    .map(|t| t.trim_start_matches("torch."))
            })
        })
        .unwrap_or("")
}

/// A tensor torch rebuilds from other tensors (sparse, nested), which
/// [`find_tensors`] lists by its parts (`sp/indices`, `sp/values`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompositeTensor {
    /// Its place in the object tree; its parts are below it.
    pub path: String,
    /// What it is: `sparse_coo`, `sparse_csr` ... (the layout), `nested`,
    /// or the rebuild function's name for other kinds.
    pub kind: String,
}

/// Walk the object tree from the root and list every tensor with its path,
/// in the order a depth-first walk of dicts and lists meets them.
pub fn find_tensors(graph: &PickleGraph) -> Result<Vec<TensorInfo>, TensorError> {
    walk(graph, graph.root).map(|(tensors, _)| tensors)
}

/// [`find_tensors`] below node `id` (paths relative to it).
pub fn find_tensors_below(graph: &PickleGraph, id: NodeId) -> Result<Vec<TensorInfo>, TensorError> {
    walk(graph, Some(id)).map(|(tensors, _)| tensors)
}

/// Every tensor torch rebuilds from parts (sparse, nested), in walk order.
pub fn find_composites(graph: &PickleGraph) -> Result<Vec<CompositeTensor>, TensorError> {
    walk(graph, graph.root).map(|(_, composites)| composites)
}

fn composite_kind(graph: &PickleGraph, callable: NodeId, args: NodeId) -> Option<String> {
    let name = rebuild_name(graph, callable)?;
    Some(match name {
        "_rebuild_sparse_tensor" => match sparse_layout(graph, seq(graph, args).unwrap_or(&[])) {
            "" => name.to_string(),
            layout => layout.to_string(),
        },
        "_rebuild_nested_tensor" => "nested".to_string(),
        other => other.to_string(),
    })
}

fn walk(graph: &PickleGraph, root: Option<NodeId>) -> Result<(Vec<TensorInfo>, Vec<CompositeTensor>), TensorError> {
    let mut composites = Vec::new();
    let Some(root) = root else {
        return Ok((Vec::new(), composites));
    };
    let top_is_flat = match mapping(graph, root) {
        Some(items) => items
            .iter()
            .all(|(_, v)| tensor_at(graph, *v, "").ok().flatten().is_some()),
        None => false,
    };
    let mut out = Vec::new();
    // Depth-first, with the containers on the current path remembered so a
    // back-reference (OmegaConf's `_parent`, any cycle) is not followed.
    // Shared containers are still walked once per path (tied weights have
    // two paths); blow-ups through sharing end at the step bound.
    enum Step {
        Enter(NodeId, String, usize),
        Leave(NodeId),
    }
    let mut on_path: std::collections::HashSet<NodeId> = std::collections::HashSet::new();
    let mut stack = vec![Step::Enter(root, String::new(), 0)];
    let mut steps = 0usize;
    // A real object tree has about as many paths as nodes (ties add a few);
    // many more means sub-trees shared over and over (a hostile DAG).
    let max_steps = graph
        .nodes
        .len()
        .saturating_mul(4)
        .saturating_add(100_000)
        .min(MAX_WALK_STEPS);
    while let Some(step) = stack.pop() {
        let (id, path, depth) = match step {
            Step::Leave(id) => {
                on_path.remove(&id);
                continue;
            }
            Step::Enter(id, path, depth) => (id, path, depth),
        };
        steps += 1;
        if steps > max_steps {
            return Err(TensorError::TooManyPaths(max_steps));
        }
        if let Some(mut t) = tensor_at(graph, id, &path)? {
            t.role = role_of(&path, top_is_flat);
            out.push(t);
            continue;
        }
        if let Node::Object { callable, args, .. } = graph.node(id) {
            if let Some(kind) = composite_kind(graph, *callable, *args) {
                composites.push(CompositeTensor {
                    path: path.clone(),
                    kind,
                });
            }
        }
        if depth >= MAX_PATH_DEPTH || !on_path.insert(id) {
            continue;
        }
        stack.push(Step::Leave(id));
        let kids = children(graph, id);
        for (name, child) in kids.into_iter().rev() {
            let p = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            stack.push(Step::Enter(child, p, depth + 1));
        }
    }
    Ok((out, composites))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_end_the_walk_instead_of_multiplying_paths() {
        // d = {}; d['me'] = d; d['l'] = [d, {'x': d}]
        let bytes = b"\x80\x02}q\x00(X\x02\x00\x00\x00meq\x01h\x00X\x01\x00\x00\x00lq\x02]q\x03(h\x00}q\x04X\x01\x00\x00\x00xq\x05h\x00seu.";
        let graph = reg_pickle::parse(bytes, &reg_pickle::Limits::default()).expect("parse");
        let start = std::time::Instant::now();
        assert!(find_tensors(&graph).expect("walk").is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
