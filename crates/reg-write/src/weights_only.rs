//! What Lightning's `save_weights_only=True` keeps of a checkpoint, as a
//! plain [`Emit`] tree that `torch.load(weights_only=True)` accepts.
//!
//! A root mapping with a `state_dict` key is a Lightning (or similar)
//! checkpoint: only [`KEPT_KEYS`] survive, in their original order
//! (`optimizer_states`, `lr_schedulers`, `callbacks`, `hparams_type`,
//! precision plugin state and anything else are dropped). Any other root
//! (a plain state dict, another dict, a list) is kept whole.
//!
//! Values are converted as follows: tensors keep dtype, shape, stride,
//! offset, storage key and `requires_grad` (a `Parameter` or tensor
//! subclass becomes a plain tensor); meta tensors stay meta tensors
//! (dtype, shape, stride, `requires_grad`); quantized, sparse and nested
//! tensors are refused by path (torch cannot load a nested one weights-only;
//! reg does not write the others yet); `collections.OrderedDict` stays an
//! `OrderedDict` and keeps the state dict's `_metadata` (module versions,
//! restored by `BUILD`, which the weights-only loader allows for
//! OrderedDicts); other `BUILD` state is dropped;
//! plain dicts and dict-like objects (`AttributeDict`, `defaultdict`,
//! `argparse.Namespace`) become plain dicts; lists and tuples stay lists and
//! tuples, sets become lists; scalars stay as they are (NaN and infinities
//! included), bytes stay bytes and complex numbers complex (the loader
//! allows `_codecs.encode` and `complex`); anything else (OmegaConf
//! configs, numpy scalars, paths, enums, unknown objects) becomes its plain
//! JSON form from
//! [`reg_ckpt::view::to_json`], unknown objects as `{"__class__": ...}` dicts
//! and tensors inside them as description strings. Dict keys keep ints as
//! ints and strings as strings; other keys become their `str()`.
//!
//! The walk is iterative and bounded: deeper than [`MAX_DEPTH`] levels is an
//! error (cyclic structures end there too), and shared sub-trees, copied
//! once per reference, may expand to a bounded number of values only.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::Value;

use super::emit::{is_quantized, Emit, MetaRef, TensorRef};
use super::pickler::minimal_twos_complement;
use super::pickler::to_pickle;
use super::torchzip::{write_records, StorageSource, TorchZipWriter};
use super::WriteError;
use reg_ckpt::dtype::DType;
use reg_ckpt::tensors::{self, StorageRef, TensorInfo};
use reg_ckpt::view::{self, as_str, global_name, key_string, mapping};
use reg_pickle::{Node, NodeId, PickleGraph};

/// Top-level keys of a Lightning checkpoint that a weights-only save keeps.
pub const KEPT_KEYS: &[&str] = &[
    "epoch",
    "global_step",
    "pytorch-lightning_version",
    "state_dict",
    "loops",
    "hparams_name",
    "hyper_parameters",
    "datamodule_hparams_name",
    "datamodule_hyper_parameters",
];

/// Deepest container nesting converted.
pub const MAX_DEPTH: usize = 200;

/// The weights-only tree and the storages its tensors view.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsOnly {
    /// The object tree to pickle.
    pub root: Emit,
    /// `(key, dtype, numel)` of every storage the kept tensors view, each
    /// once, in first-use order; its record holds `numel x dtype size` bytes.
    pub storages: Vec<(String, DType, u64)>,
}

impl WeightsOnly {
    /// Write this tree as a torch zip under `prefix` (Lightning uses
    /// `archive`); `fill(key, out)` writes storage `key`'s bytes.
    pub fn write_torch<W: Write>(
        &self,
        out: W,
        prefix: &str,
        fill: &mut dyn FnMut(&str, &mut dyn Write) -> std::io::Result<()>,
    ) -> Result<W, WriteError> {
        let pickle = to_pickle(&self.root)?;
        let fill = RefCell::new(fill);
        let mut sources = Vec::with_capacity(self.storages.len());
        for (key, dtype, numel) in &self.storages {
            let len = numel
                .checked_mul(dtype.size() as u64)
                .ok_or_else(|| WriteError::BadTensor {
                    tensor: format!("storage {key}"),
                    reason: format!("{numel} elements of {dtype} overflow"),
                })?;
            let fill = &fill;
            sources.push(StorageSource {
                key: key.clone(),
                len,
                fill: Box::new(move |w: &mut dyn Write| (fill.borrow_mut())(key, w)),
            });
        }
        let mut zip = TorchZipWriter::new(out, prefix);
        write_records(&mut zip, &pickle, sources)?;
        zip.finish()
    }
}

/// Reduce a checkpoint's object tree to what a weights-only save keeps.
pub fn weights_only(graph: &PickleGraph) -> Result<WeightsOnly, WriteError> {
    let storages = tensors::storages(graph)?;
    let mut conv = Converter {
        graph,
        storages: &storages,
        used: Vec::new(),
        seen: HashMap::new(),
        count: 0,
        max: graph.nodes.len().saturating_mul(4).max(1 << 20),
    };
    let Some(root) = graph.root else {
        return Ok(WeightsOnly {
            root: Emit::None,
            storages: Vec::new(),
        });
    };
    let top = mapping(graph, root).filter(|items| items.iter().any(|(k, _)| as_str(graph, *k) == Some("state_dict")));
    let root = match top {
        Some(items) => {
            let kept = items
                .into_iter()
                .filter(|(k, _)| as_str(graph, *k).is_some_and(|k| KEPT_KEYS.contains(&k)))
                .map(|(k, v)| (Some(k), v))
                .collect();
            let kind = if is_ordered_dict(graph, root) {
                Kind::OrderedDict
            } else {
                Kind::Dict
            };
            conv.walk(Shape::Container(Box::new(Frame::new(kind, String::new(), kept))))?
        }
        None => {
            let shape = conv.shape(root, String::new())?;
            conv.walk(shape)?
        }
    };
    Ok(WeightsOnly {
        root,
        storages: conv.used,
    })
}

/// A Python `complex(real, imag)` node (any protocol: `REDUCE` or
/// `NEWOBJ` of `builtins.complex` / `__builtin__.complex` with two numbers).
fn complex_of(graph: &PickleGraph, id: NodeId) -> Option<Emit> {
    let Node::Object { callable, .. } = graph.node(id) else {
        return None;
    };
    if !matches!(
        global_name(graph, *callable),
        Some(("builtins" | "__builtin__", "complex"))
    ) {
        return None;
    }
    let number = |n: NodeId| match graph.node(n) {
        Node::Float(f) => Some(*f),
        Node::Int(i) => Some(*i as f64),
        _ => None,
    };
    match view::call_args(graph, id) {
        [re, im] => Some(Emit::Complex(number(*re)?, number(*im)?)),
        _ => None,
    }
}

/// A bytes object as protocols 0-2 pickle it from Python 3:
/// `_codecs.encode(text, 'latin1')` (non-empty) or `__builtin__.bytes()`
/// (empty). Protocol 3 and later write `BINBYTES`, read as `Node::Bytes`.
fn bytes_of(graph: &PickleGraph, id: NodeId) -> Option<Emit> {
    let Node::Object { callable, .. } = graph.node(id) else {
        return None;
    };
    let args = view::call_args(graph, id);
    match global_name(graph, *callable)? {
        ("_codecs", "encode") => match args {
            [text, codec] if as_str(graph, *codec) == Some("latin1") => {
                let text = as_str(graph, *text)?;
                let bytes: Option<Vec<u8>> = text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                Some(Emit::Bytes(bytes?))
            }
            _ => None,
        },
        ("__builtin__" | "builtins", "bytes") if args.is_empty() => Some(Emit::Bytes(Vec::new())),
        _ => None,
    }
}

fn is_ordered_dict(graph: &PickleGraph, id: NodeId) -> bool {
    matches!(graph.node(id), Node::Object { callable, .. }
        if global_name(graph, *callable) == Some(("collections", "OrderedDict")))
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    List,
    Tuple,
    Dict,
    OrderedDict,
}

/// A container being converted.
struct Frame {
    kind: Kind,
    path: String,
    /// (key for mappings, value).
    items: Vec<(Option<NodeId>, NodeId)>,
    next: usize,
    values: Vec<Emit>,
    pairs: Vec<(Emit, Emit)>,
    key: Option<Emit>,
    /// `BUILD` state to restore after the container (an OrderedDict's
    /// `_metadata`).
    state: Option<Emit>,
}

impl Frame {
    fn new(kind: Kind, path: String, items: Vec<(Option<NodeId>, NodeId)>) -> Self {
        Frame {
            kind,
            path,
            items,
            next: 0,
            values: Vec::new(),
            pairs: Vec::new(),
            key: None,
            state: None,
        }
    }

    fn push(&mut self, value: Emit) {
        match self.key.take() {
            Some(k) => self.pairs.push((k, value)),
            None => self.values.push(value),
        }
    }

    fn finish(self) -> Emit {
        let value = match self.kind {
            Kind::List => Emit::List(self.values),
            Kind::Tuple => Emit::Tuple(self.values),
            Kind::Dict => Emit::Dict(self.pairs),
            Kind::OrderedDict => Emit::OrderedDict(self.pairs),
        };
        match self.state {
            Some(state) => Emit::Built {
                value: Box::new(value),
                state: Box::new(state),
            },
            None => value,
        }
    }
}

/// A node is either converted at once or a container to walk.
enum Shape {
    Leaf(Emit),
    Container(Box<Frame>),
}

struct Converter<'g> {
    graph: &'g PickleGraph,
    storages: &'g BTreeMap<String, StorageRef>,
    used: Vec<(String, DType, u64)>,
    seen: HashMap<String, (DType, u64)>,
    count: usize,
    max: usize,
}

impl Converter<'_> {
    fn tick(&mut self) -> Result<(), WriteError> {
        self.count += 1;
        if self.count > self.max {
            return Err(WriteError::TooManyValues(self.max));
        }
        Ok(())
    }

    /// Convert a tree iteratively, starting from an already classified node.
    fn walk(&mut self, start: Shape) -> Result<Emit, WriteError> {
        let mut stack = match start {
            Shape::Leaf(e) => return Ok(e),
            Shape::Container(f) => vec![*f],
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(Emit::None);
            };
            if let Some(&(key, value)) = top.items.get(top.next) {
                top.next += 1;
                let name = match key {
                    Some(k) => key_string(self.graph, k),
                    None => (top.next - 1).to_string(),
                };
                let path = if top.path.is_empty() {
                    name
                } else {
                    format!("{}/{name}", top.path)
                };
                top.key = key.map(|k| self.key(k));
                match self.shape(value, path)? {
                    Shape::Leaf(e) => {
                        if let Some(top) = stack.last_mut() {
                            top.push(e);
                        }
                    }
                    Shape::Container(f) => {
                        if stack.len() >= MAX_DEPTH {
                            return Err(WriteError::TooDeep {
                                path: f.path,
                                limit: MAX_DEPTH,
                            });
                        }
                        stack.push(*f);
                    }
                }
                continue;
            }
            let done = stack.pop().map(Frame::finish).unwrap_or(Emit::None);
            match stack.last_mut() {
                Some(parent) => parent.push(done),
                None => return Ok(done),
            }
        }
    }

    fn shape(&mut self, id: NodeId, path: String) -> Result<Shape, WriteError> {
        self.tick()?;
        let g = self.graph;
        if let Some(t) = tensors::tensor_at(g, id, &path)? {
            if t.meta {
                return Ok(Shape::Leaf(Emit::MetaTensor(MetaRef {
                    dtype: t.dtype,
                    shape: t.shape,
                    stride: t.stride,
                    requires_grad: t.requires_grad,
                })));
            }
            return Ok(Shape::Leaf(Emit::Tensor(self.tensor(t)?)));
        }
        let seq = |kind, items: &[NodeId]| {
            let items = items.iter().map(|v| (None, *v)).collect();
            Ok(Shape::Container(Box::new(Frame::new(kind, path.clone(), items))))
        };
        let leaf = match g.node(id) {
            Node::List(items) | Node::Set(items) | Node::FrozenSet(items) => return seq(Kind::List, items),
            Node::Tuple(items) => return seq(Kind::Tuple, items),
            Node::Dict(items) => {
                let items = items.iter().map(|(k, v)| (Some(*k), *v)).collect();
                return Ok(Shape::Container(Box::new(Frame::new(Kind::Dict, path, items))));
            }
            Node::Object { callable, .. } => {
                if let Some(kind) = tensors::rebuild_name(g, *callable) {
                    // A sparse or nested tensor (or another kind torch
                    // rebuilds from parts): writing it as plain data would
                    // lose it silently.
                    let reason = match kind {
                        "_rebuild_nested_tensor" => {
                            "is a nested tensor, which torch.load(weights_only=True) cannot load".to_string()
                        }
                        "_rebuild_sparse_tensor" => {
                            "is a sparse tensor, which reg cannot write weights-only yet".to_string()
                        }
                        other => format!("is a {other} tensor, which reg cannot write weights-only yet"),
                    };
                    return Err(WriteError::BadTensor { tensor: path, reason });
                }
                if let Some(c) = complex_of(g, id) {
                    return Ok(Shape::Leaf(c));
                }
                if let Some(b) = bytes_of(g, id) {
                    return Ok(Shape::Leaf(b));
                }
                let omegaconf = global_name(g, *callable).is_some_and(|(m, _)| m.starts_with("omegaconf"));
                match mapping(g, id) {
                    Some(items) if !omegaconf => {
                        let kind = if is_ordered_dict(g, id) {
                            Kind::OrderedDict
                        } else {
                            Kind::Dict
                        };
                        let items = items.into_iter().map(|(k, v)| (Some(k), v)).collect();
                        let mut frame = Frame::new(kind, path.clone(), items);
                        if kind == Kind::OrderedDict {
                            frame.state = self.metadata_state(id, &path)?;
                        }
                        return Ok(Shape::Container(Box::new(frame)));
                    }
                    _ if omegaconf => self.json(id, true)?,
                    _ => {
                        // An object the loader cannot build (a pickled
                        // nn.Module, a custom class) becomes plain data; if
                        // it holds tensors, that would drop them silently
                        // (hyperparameters keep their description: a module
                        // passed to save_hyperparameters is saved as weights
                        // too).
                        let in_hparams = path.split('/').next().is_some_and(|k| k.ends_with("hyper_parameters"));
                        if let Some(t) = self.first_tensor_inside(id).filter(|_| !in_hparams) {
                            let class = global_name(g, *callable)
                                .map(|(m, n)| format!("{m}.{n}"))
                                .unwrap_or_else(|| "Python".into());
                            return Err(WriteError::BadTensor {
                                tensor: if path.is_empty() { "at the root".into() } else { path },
                                reason: format!(
                                    "is a {class} object holding tensors ({t}), which torch.load(weights_only=True) \
                                     cannot load (save its state_dict instead)"
                                ),
                            });
                        }
                        self.json(id, false)?
                    }
                }
            }
            _ => self.scalar(id).map_or_else(|| self.json(id, false), Ok)?,
        };
        Ok(Shape::Leaf(leaf))
    }

    /// An OrderedDict's `_metadata` attribute (a state dict's module
    /// versions), converted, as the `{"_metadata": ...}` state to `BUILD`.
    fn metadata_state(&mut self, id: NodeId, path: &str) -> Result<Option<Emit>, WriteError> {
        let Node::Object { state: Some(state), .. } = self.graph.node(id) else {
            return Ok(None);
        };
        let Some(meta) = reg_ckpt::view::get(self.graph, *state, "_metadata") else {
            return Ok(None);
        };
        let shape = self.shape(meta, format!("{path}/_metadata"))?;
        let converted = self.walk(shape)?;
        Ok(Some(Emit::Dict(vec![(Emit::Str("_metadata".into()), converted)])))
    }

    /// Scalars converted as they are.
    fn scalar(&self, id: NodeId) -> Option<Emit> {
        Some(match self.graph.node(id) {
            Node::None => Emit::None,
            Node::Bool(b) => Emit::Bool(*b),
            Node::Int(i) => Emit::Int(*i),
            Node::Float(f) => Emit::Float(*f),
            Node::Str(s) => Emit::Str(s.clone()),
            Node::BigInt(bytes) if bytes.first().is_some_and(|b| b.is_ascii_digit() || *b == b'-') => {
                // Protocol-0 decimal text.
                let text = String::from_utf8_lossy(bytes);
                let text = text.trim_end_matches('L');
                match text.parse::<i128>() {
                    Ok(v) => i64::try_from(v).map_or_else(|_| Emit::BigInt(minimal_twos_complement(v)), Emit::Int),
                    Err(_) => Emit::Str(text.to_string()),
                }
            }
            Node::BigInt(bytes) => Emit::BigInt(bytes.clone()),
            Node::Bytes(bytes) => Emit::Bytes(bytes.clone()),
            _ => return None,
        })
    }

    fn key(&self, id: NodeId) -> Emit {
        self.scalar(id).unwrap_or_else(|| Emit::Str(key_string(self.graph, id)))
    }

    /// The plain JSON form of a value, as an Emit tree.
    /// The plain JSON form of a value, as an Emit tree; an OmegaConf
    /// config's whole-string interpolations resolved, as `reg show` has
    /// them (the file cannot keep the config itself).
    fn json(&mut self, id: NodeId, omegaconf: bool) -> Result<Emit, WriteError> {
        let g = self.graph;
        let describe = |n: NodeId| -> Option<Value> {
            let t = tensors::tensor_at(g, n, "").ok().flatten()?;
            let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
            Some(Value::String(format!("<tensor {} [{}]>", t.dtype, shape.join(", "))))
        };
        let mut value = view::to_json(g, id, &describe);
        if omegaconf {
            value = reg_ckpt::interpolate::resolve_interpolations(value);
        }
        self.json_to_emit(&value, 0)
    }

    /// The first tensor below `id` (its path below it, dtype and shape), if
    /// any.
    fn first_tensor_inside(&self, id: NodeId) -> Option<String> {
        let t = tensors::find_tensors_below(self.graph, id).ok()?.into_iter().next()?;
        let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
        Some(format!("{} {} [{}]", t.path, t.dtype, shape.join(", ")))
    }

    fn json_to_emit(&mut self, v: &Value, depth: usize) -> Result<Emit, WriteError> {
        self.tick()?;
        if depth > MAX_DEPTH {
            return Err(WriteError::TooDeep {
                path: "<json value>".into(),
                limit: MAX_DEPTH,
            });
        }
        Ok(match v {
            Value::Null => Emit::None,
            Value::Bool(b) => Emit::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Emit::Int(i),
                (None, Some(u)) => Emit::BigInt(minimal_twos_complement(i128::from(u))),
                _ => Emit::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Emit::Str(s.clone()),
            Value::Array(items) => Emit::List(
                items
                    .iter()
                    .map(|i| self.json_to_emit(i, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            // A float tag is a float; an escaped object is its inner one.
            Value::Object(_) => match reg_ckpt::exact_json::as_object(v) {
                None => Emit::Float(reg_ckpt::exact_json::as_f64(v).unwrap_or(f64::NAN)),
                Some(map) => Emit::Dict(
                    map.iter()
                        .map(|(k, v)| Ok((Emit::Str(k.clone()), self.json_to_emit(v, depth + 1)?)))
                        .collect::<Result<_, WriteError>>()?,
                ),
            },
        })
    }

    fn tensor(&mut self, t: TensorInfo) -> Result<TensorRef, WriteError> {
        if is_quantized(t.dtype) {
            return Err(WriteError::UnsupportedDtype {
                tensor: t.path,
                dtype: t.dtype,
                format: "a weights-only pickle (reg does not write quantizer parameters yet)",
            });
        }
        let storage = self.storages.get(&t.storage_key).ok_or_else(|| WriteError::BadTensor {
            tensor: t.path.clone(),
            reason: format!("storage {} is not declared", t.storage_key),
        })?;
        let bytes = storage.numel.saturating_mul(storage.dtype.size() as u64);
        let size = t.dtype.size() as u64;
        if bytes % size != 0 {
            return Err(WriteError::BadTensor {
                tensor: t.path,
                reason: format!("storage of {bytes} bytes is not a whole number of {} elements", t.dtype),
            });
        }
        let numel = bytes / size;
        match self.seen.get(&t.storage_key) {
            Some(&(dtype, n)) if dtype != t.dtype => {
                return Err(WriteError::StorageConflict {
                    key: t.storage_key,
                    first: format!("{dtype} x {n}"),
                    second: format!("{} x {numel} (at {})", t.dtype, t.path),
                });
            }
            Some(_) => {}
            None => {
                self.seen.insert(t.storage_key.clone(), (t.dtype, numel));
                self.used.push((t.storage_key.clone(), t.dtype, numel));
            }
        }
        Ok(TensorRef {
            storage_key: t.storage_key,
            dtype: t.dtype,
            storage_numel: numel,
            offset: t.storage_offset,
            shape: t.shape,
            stride: t.stride,
            requires_grad: t.requires_grad,
        })
    }
}
