//! Reading a `torch.distributed.checkpoint` `.metadata` file with the pickle
//! machine (nothing is imported or run).
//!
//! The file is a pickle of `torch.distributed.checkpoint.metadata.Metadata`,
//! a dataclass whose `BUILD` state is a dict with:
//! - `state_dict_metadata`: fqn → `TensorStorageMetadata` (state:
//!   `properties`, a `TensorProperties` whose state is the tuple `(dtype,
//!   layout, requires_grad, memory format, pin_memory[, strides])`; `size`,
//!   a `torch.Size`; `chunks`, a list of `ChunkStorageMetadata` with
//!   `offsets` and `sizes`) or `BytesStorageMetadata` (no fields);
//! - `storage_data`: `MetadataIndex` (state: `fqn`, `offset` a `torch.Size`
//!   or `None` for bytes, `index` a hint) → `_StorageInfo` (state:
//!   `relative_path`, `offset`, `length`, and `transform_descriptors` when a
//!   storage extension such as compression rewrote the item);
//! - `planner_data`: fqn → the tuple of keys the flattened fqn came from;
//! - `storage_meta` (`checkpoint_id`, a path; `save_id`, random per save)
//!   and `version` (not needed here).

use std::collections::BTreeMap;

use reg_ckpt::safety::{self, GlobalVerdict};
use reg_ckpt::view::{as_int, as_str, call_args, callable_name, get, global_name, mapping, seq};
use reg_ckpt::DType;
use reg_pickle::{Node, NodeId, PickleGraph};

/// What a DCP `.metadata` says.
#[derive(Clone, Debug, Default)]
pub(super) struct DcpMetadata {
    /// Tensor entries by fqn.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// Fqns of bytes entries (pickled objects).
    pub bytes: Vec<String>,
    /// Where each item lies, in `storage_data` order.
    pub items: Vec<StorageItem>,
    /// fqn → the keys of the state dict it was flattened from.
    pub planner: BTreeMap<String, Vec<PathKey>>,
    /// The globals the pickle names, with verdicts.
    pub globals: Vec<GlobalVerdict>,
}

/// One `TensorStorageMetadata`.
#[derive(Clone, Debug)]
pub(super) struct TensorEntry {
    /// Element type.
    pub dtype: DType,
    /// Global shape.
    pub size: Vec<u64>,
    /// The saved chunks: `(offsets, sizes)`.
    pub chunks: Vec<(Vec<u64>, Vec<u64>)>,
}

/// One `storage_data` entry.
#[derive(Clone, Debug)]
pub(super) struct StorageItem {
    /// The entry's fqn.
    pub fqn: String,
    /// Global chunk offsets for a tensor item, `None` for a bytes item.
    pub chunk_offsets: Option<Vec<u64>>,
    /// The data file, relative to the `.metadata` folder.
    pub relative_path: String,
    /// Byte offset of the item in that file.
    pub offset: u64,
    /// Byte length of the item.
    pub length: u64,
    /// Storage extensions that rewrote the item (empty for plain items).
    pub transforms: Vec<String>,
}

/// One key of a planner path: a dict key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PathKey {
    /// A string key.
    Key(String),
    /// A list index.
    Index(i64),
}

impl PathKey {
    /// The key as text.
    pub fn text(&self) -> String {
        match self {
            PathKey::Key(k) => k.clone(),
            PathKey::Index(i) => i.to_string(),
        }
    }
}

const MODULE: &str = "torch.distributed.checkpoint.metadata";

/// Quick content check: a pickle whose first global is DCP's `Metadata`.
pub(super) fn looks_like(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0x80) && bytes.windows(MODULE.len()).take(256).any(|w| w == MODULE.as_bytes())
}

/// Read a `.metadata` file. The error is a one-line reason.
pub(super) fn read(bytes: &[u8]) -> Result<DcpMetadata, String> {
    let graph = reg_pickle::parse(bytes, &reg_pickle::Limits::default()).map_err(|e| format!("not a pickle: {e}"))?;
    let root = graph.root.ok_or("empty pickle")?;
    if callable_name(&graph, root) != Some((MODULE, "Metadata")) {
        return Err(format!(
            "the pickle holds {}, not {MODULE}.Metadata",
            reg_ckpt::view::kind_name(&graph, root)
        ));
    }
    let state = state_of(&graph, root).ok_or("Metadata without fields")?;
    let g = &graph;
    let mut out = DcpMetadata {
        globals: safety::judge(g.globals()),
        ..DcpMetadata::default()
    };
    let entries = get(g, state, "state_dict_metadata")
        .and_then(|m| mapping(g, m))
        .ok_or("no state_dict_metadata dict")?;
    for (k, v) in entries {
        let fqn = as_str(g, k)
            .ok_or("a state_dict_metadata key is not a string")?
            .to_owned();
        match callable_name(g, v) {
            Some((MODULE, "TensorStorageMetadata")) => {
                let entry = tensor_entry(g, v).map_err(|r| format!("{fqn}: {r}"))?;
                out.tensors.insert(fqn, entry);
            }
            Some((MODULE, "BytesStorageMetadata")) => out.bytes.push(fqn),
            _ => {
                return Err(format!(
                    "{fqn}: unknown storage metadata {}",
                    reg_ckpt::view::kind_name(g, v)
                ))
            }
        }
    }
    let storage = get(g, state, "storage_data")
        .and_then(|m| mapping(g, m))
        .ok_or("no storage_data dict (not written by the file system storage writer)")?;
    for (k, v) in storage {
        out.items.push(storage_item(g, k, v)?);
    }
    if let Some(planner) = get(g, state, "planner_data").and_then(|m| mapping(g, m)) {
        for (k, v) in planner {
            let (Some(fqn), Some(keys)) = (as_str(g, k), seq(g, v)) else {
                continue;
            };
            let path: Option<Vec<PathKey>> = keys
                .iter()
                .map(|p| match g.node(*p) {
                    Node::Str(s) => Some(PathKey::Key(s.clone())),
                    Node::Int(i) => Some(PathKey::Index(*i)),
                    _ => None,
                })
                .collect();
            if let Some(path) = path {
                out.planner.insert(fqn.to_owned(), path);
            }
        }
    }
    Ok(out)
}

/// The `BUILD` state of an object node.
fn state_of(g: &PickleGraph, id: NodeId) -> Option<NodeId> {
    match g.node(id) {
        Node::Object { state, .. } => *state,
        _ => None,
    }
}

/// A field of a dataclass object (its `BUILD` state dict).
fn field(g: &PickleGraph, id: NodeId, name: &str) -> Option<NodeId> {
    get(g, state_of(g, id)?, name)
}

/// The dims of a `torch.Size((...))` call, or of a plain tuple or list.
fn dims(g: &PickleGraph, id: NodeId) -> Option<Vec<u64>> {
    let items = match callable_name(g, id) {
        Some(("torch", "Size")) => match call_args(g, id).first() {
            Some(first) => seq(g, *first)?,
            None => &[],
        },
        _ => seq(g, id)?,
    };
    items
        .iter()
        .map(|d| as_int(g, *d).and_then(|v| u64::try_from(v).ok()))
        .collect()
}

fn tensor_entry(g: &PickleGraph, id: NodeId) -> Result<TensorEntry, String> {
    let props = field(g, id, "properties").ok_or("no properties")?;
    // `TensorProperties.__getstate__` gives a tuple whose first item is the
    // dtype; older torch pickled its field dict.
    let dtype_node = match state_of(g, props).map(|s| g.node(s)) {
        Some(Node::Tuple(items)) => items.first().copied(),
        Some(Node::Dict(_)) => field(g, props, "dtype"),
        _ => None,
    }
    .ok_or("properties without a dtype")?;
    let dtype_name = global_name(g, dtype_node)
        .map(|(_, n)| n)
        .ok_or("the dtype is not a torch dtype")?;
    let dtype = DType::from_torch_name(dtype_name).ok_or_else(|| format!("unknown dtype {dtype_name}"))?;
    let size = field(g, id, "size").and_then(|s| dims(g, s)).ok_or("no size")?;
    let list = field(g, id, "chunks").and_then(|c| seq(g, c)).ok_or("no chunk list")?;
    let mut chunks = Vec::with_capacity(list.len());
    for c in list {
        let offsets = field(g, *c, "offsets")
            .and_then(|o| dims(g, o))
            .ok_or("a chunk without offsets")?;
        let sizes = field(g, *c, "sizes")
            .and_then(|s| dims(g, s))
            .ok_or("a chunk without sizes")?;
        if offsets.len() != size.len() || sizes.len() != size.len() {
            return Err(format!(
                "a chunk at {offsets:?} of size {sizes:?} does not have the {} dimensions of the tensor",
                size.len()
            ));
        }
        chunks.push((offsets, sizes));
    }
    Ok(TensorEntry { dtype, size, chunks })
}

fn storage_item(g: &PickleGraph, key: NodeId, info: NodeId) -> Result<StorageItem, String> {
    if callable_name(g, key) != Some((MODULE, "MetadataIndex")) {
        return Err(format!(
            "a storage_data key is {}, not a MetadataIndex",
            reg_ckpt::view::kind_name(g, key)
        ));
    }
    let fqn = field(g, key, "fqn")
        .and_then(|f| as_str(g, f))
        .ok_or("a MetadataIndex without fqn")?
        .to_owned();
    let chunk_offsets = match field(g, key, "offset") {
        None => None,
        Some(o) if matches!(g.node(o), Node::None) => None,
        Some(o) => Some(dims(g, o).ok_or_else(|| format!("{fqn}: a chunk offset that is not a torch.Size"))?),
    };
    let text = |name: &str| field(g, info, name).and_then(|v| as_str(g, v)).map(String::from);
    let number = |name: &str| {
        field(g, info, name)
            .and_then(|v| as_int(g, v))
            .and_then(|v| u64::try_from(v).ok())
    };
    let bad = |what: &str| format!("{fqn}: its storage info has no {what}");
    let transforms = match field(g, info, "transform_descriptors") {
        Some(t) => seq(g, t)
            .map(|items| items.iter().filter_map(|i| as_str(g, *i)).map(String::from).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(StorageItem {
        relative_path: text("relative_path").ok_or_else(|| bad("relative_path"))?,
        offset: number("offset").ok_or_else(|| bad("offset"))?,
        length: number("length").ok_or_else(|| bad("length"))?,
        transforms,
        chunk_offsets,
        fqn,
    })
}
