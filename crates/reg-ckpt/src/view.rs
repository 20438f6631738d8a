//! Reading plain Python values out of a [`PickleGraph`].
//!
//! The pickle graph keeps every call as a record; this module knows which of
//! those records are really plain containers (`OrderedDict`, Lightning's
//! `AttributeDict`, `argparse.Namespace`, OmegaConf nodes, numpy scalars,
//! paths, enums) and turns values into JSON for the index. Conversion depth
//! is bounded, so a deeply nested hostile pickle costs a placeholder, not a
//! stack overflow.

use reg_pickle::{Node, NodeId, PickleGraph};
use serde_json::{Map, Value};

/// Deepest nesting converted to JSON; deeper values become a placeholder.
pub const MAX_JSON_DEPTH: usize = 64;

/// Budget of one [`to_json`] call: a value costs 1, a string 1 + len/16
/// (so at most about 16 MB of text); past it values become `<truncated>`.
pub const MAX_JSON_VALUES: usize = 1_000_000;

thread_local! {
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_JSON_VALUES) };
}

/// Most elements converted from one container (the rest are summarised).
pub const MAX_JSON_ITEMS: usize = 10_000;

/// `module.name` of a global node, if `id` is one.
pub fn global_name(graph: &PickleGraph, id: NodeId) -> Option<(&str, &str)> {
    match graph.node(id) {
        Node::Global { module, name } => Some((module.as_str(), name.as_str())),
        _ => None,
    }
}

/// The callable of an object node as `(module, name)`.
pub fn callable_name(graph: &PickleGraph, id: NodeId) -> Option<(&str, &str)> {
    match graph.node(id) {
        Node::Object { callable, .. } => global_name(graph, *callable),
        _ => None,
    }
}

/// The items of a tuple or list node.
pub fn seq(graph: &PickleGraph, id: NodeId) -> Option<&[NodeId]> {
    match graph.node(id) {
        Node::Tuple(items) | Node::List(items) => Some(items),
        _ => None,
    }
}

/// The positional arguments of an object node.
pub fn call_args(graph: &PickleGraph, id: NodeId) -> &[NodeId] {
    match graph.node(id) {
        Node::Object { args, .. } => seq(graph, *args).unwrap_or(&[]),
        _ => &[],
    }
}

/// A string node's text.
pub fn as_str(graph: &PickleGraph, id: NodeId) -> Option<&str> {
    match graph.node(id) {
        Node::Str(s) => Some(s),
        _ => None,
    }
}

/// An int (or bool) node's value.
pub fn as_int(graph: &PickleGraph, id: NodeId) -> Option<i64> {
    match graph.node(id) {
        Node::Int(v) => Some(*v),
        Node::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A float (or int) node's value.
pub fn as_f64(graph: &PickleGraph, id: NodeId) -> Option<f64> {
    match graph.node(id) {
        Node::Float(v) => Some(*v),
        Node::Int(v) => Some(*v as f64),
        _ => None,
    }
}

/// A bool node's value.
pub fn as_bool(graph: &PickleGraph, id: NodeId) -> Option<bool> {
    match graph.node(id) {
        Node::Bool(b) => Some(*b),
        Node::Int(v) => Some(*v != 0),
        _ => None,
    }
}

/// Classes whose pickled objects are dicts in all but name.
fn is_dict_class(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        ("collections", "OrderedDict")
            | ("collections", "defaultdict")
            | ("builtins", "dict")
            | ("__builtin__", "dict")
    ) || name == "AttributeDict"
}

/// Key/value pairs of anything that behaves as a mapping: a dict, an
/// `OrderedDict` or other dict subclass (items set after the call), an
/// `argparse.Namespace` or plain object whose `BUILD` state is a dict.
pub fn mapping(graph: &PickleGraph, id: NodeId) -> Option<Vec<(NodeId, NodeId)>> {
    match graph.node(id) {
        Node::Dict(items) => Some(items.clone()),
        Node::Object {
            callable,
            args,
            state,
            dict_items,
            ..
        } => {
            let class = global_name(graph, *callable);
            if let Some((m, n)) = class {
                if is_dict_class(m, n) || !dict_items.is_empty() {
                    let mut items = Vec::new();
                    // OrderedDict([(k, v), ...]) form: items in the first argument.
                    if let Some(first) = seq(graph, *args).and_then(|a| a.first()) {
                        if let Some(pairs) = seq(graph, *first) {
                            for p in pairs {
                                if let Some([k, v]) = seq(graph, *p).and_then(|s| s.get(..2)).map(|s| [s[0], s[1]]) {
                                    items.push((k, v));
                                }
                            }
                        } else if let Node::Dict(d) = graph.node(*first) {
                            items.extend(d.iter().copied());
                        }
                    }
                    items.extend(dict_items.iter().copied());
                    return Some(items);
                }
                if m == "argparse" && n == "Namespace" {
                    return state.and_then(|s| match graph.node(s) {
                        Node::Dict(d) => Some(d.clone()),
                        _ => None,
                    });
                }
            }
            None
        }
        _ => None,
    }
}

/// Look up a string key in a mapping node.
pub fn get(graph: &PickleGraph, id: NodeId, key: &str) -> Option<NodeId> {
    mapping(graph, id)?
        .into_iter()
        .rev()
        .find(|(k, _)| as_str(graph, *k) == Some(key))
        .map(|(_, v)| v)
}

/// Python's `str()` of a dict key, as torch's tools print paths.
pub fn key_string(graph: &PickleGraph, id: NodeId) -> String {
    match graph.node(id) {
        Node::Str(s) => s.clone(),
        Node::Int(v) => v.to_string(),
        Node::BigInt(_) => bigint_string(graph.node(id)),
        Node::Bool(true) => "True".into(),
        Node::Bool(false) => "False".into(),
        Node::None => "None".into(),
        Node::Float(f) => py_float_repr(*f),
        Node::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
        Node::Tuple(items) => {
            let parts: Vec<String> = items
                .iter()
                .take(16)
                .map(|i| match graph.node(*i) {
                    Node::Str(s) => format!("'{s}'"),
                    Node::Tuple(_) | Node::List(_) | Node::Dict(_) => "...".into(),
                    _ => key_string(graph, *i),
                })
                .collect();
            if parts.len() == 1 {
                format!("({},)", parts[0])
            } else {
                format!("({})", parts.join(", "))
            }
        }
        Node::Global { module, name } => format!("{module}.{name}"),
        _ => format!("<{}>", kind_name(graph, id)),
    }
}

/// A short name for what a node is (for messages and placeholders).
pub fn kind_name(graph: &PickleGraph, id: NodeId) -> String {
    match graph.node(id) {
        Node::None => "None".into(),
        Node::Bool(_) => "bool".into(),
        Node::Int(_) | Node::BigInt(_) => "int".into(),
        Node::Float(_) => "float".into(),
        Node::Str(_) => "str".into(),
        Node::Bytes(_) => "bytes".into(),
        Node::List(_) => "list".into(),
        Node::Tuple(_) => "tuple".into(),
        Node::Dict(_) => "dict".into(),
        Node::Set(_) => "set".into(),
        Node::FrozenSet(_) => "frozenset".into(),
        Node::Global { module, name } => format!("{module}.{name}"),
        Node::PersistentId(_) => "persistent id".into(),
        Node::Object { callable, .. } => match global_name(graph, *callable) {
            Some((m, n)) => format!("{m}.{n}"),
            None => "object".into(),
        },
    }
}

/// Decimal text of a big integer node (two's-complement little-endian bytes,
/// or decimal text from protocol 0).
pub fn bigint_string(node: &Node) -> String {
    let Node::BigInt(bytes) = node else {
        return String::new();
    };
    if bytes.iter().all(|b| b.is_ascii_digit() || *b == b'-') && !bytes.is_empty() {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    if bytes.len() <= 16 {
        let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            [0xffu8; 16]
        } else {
            [0u8; 16]
        };
        buf[..bytes.len()].copy_from_slice(bytes);
        return i128::from_le_bytes(buf).to_string();
    }
    let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
    format!("0x{hex}")
}

/// Python's `repr()` of a float: shortest round-trip digits, scientific
/// notation below 1e-4 and from 1e16 on.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{f:e}"); // shortest digits, e.g. "1.2345e-8"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..16).contains(&exp) {
        let mantissa = mantissa.to_string();
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Convert a value to JSON the way a user would read it: containers as
/// arrays and objects, known wrappers unwrapped, tensors and other objects
/// as short descriptions. `describe_tensor` names tensor nodes (it returns
/// `None` for nodes that are not tensors).
pub fn to_json(graph: &PickleGraph, id: NodeId, describe_tensor: &dyn Fn(NodeId) -> Option<Value>) -> Value {
    BUDGET.with(|b| b.set(MAX_JSON_VALUES));
    convert(graph, id, describe_tensor, 0)
}

/// A float as stored JSON (non-finite ones as float tags, see
/// [`crate::exact_json`]).
fn float_json(f: f64) -> Value {
    crate::exact_json::float(f)
}

fn items_json(graph: &PickleGraph, items: &[NodeId], t: &dyn Fn(NodeId) -> Option<Value>, depth: usize) -> Value {
    let mut out: Vec<Value> = items
        .iter()
        .take(MAX_JSON_ITEMS)
        .map(|i| convert(graph, *i, t, depth + 1))
        .collect();
    if items.len() > MAX_JSON_ITEMS {
        out.push(Value::String(format!("<{} more>", items.len() - MAX_JSON_ITEMS)));
    }
    Value::Array(out)
}

/// Take `cost` from the current [`to_json`] budget; false when it is spent.
fn charge(cost: usize) -> bool {
    BUDGET.with(|b| {
        let left = b.get();
        b.set(left.saturating_sub(cost));
        left >= cost
    })
}

fn map_json(
    graph: &PickleGraph,
    items: &[(NodeId, NodeId)],
    t: &dyn Fn(NodeId) -> Option<Value>,
    depth: usize,
) -> Value {
    let mut out = Map::new();
    for (k, v) in items.iter().take(MAX_JSON_ITEMS) {
        let key = key_string(graph, *k);
        if !charge(1 + key.len() / 16) {
            out.insert("<truncated>".into(), Value::Null);
            break;
        }
        out.insert(key, convert(graph, *v, t, depth + 1));
    }
    crate::exact_json::object(out)
}

fn convert(graph: &PickleGraph, id: NodeId, t: &dyn Fn(NodeId) -> Option<Value>, depth: usize) -> Value {
    // Shared sub-trees are expanded at each use; the budget keeps a hostile
    // pickle (each level referencing the previous one twice) from costing
    // exponential time and memory.
    // Text costs by its length, so a long string shared many times cannot
    // be copied into gigabytes of JSON.
    let cost = match graph.node(id) {
        Node::Str(s) => 1 + s.len() / 16,
        Node::Global { module, name } => 1 + (module.len() + name.len()) / 16,
        Node::BigInt(b) => 1 + b.len() / 16,
        _ => 1,
    };
    if !charge(cost) {
        return Value::String("<truncated>".into());
    }
    if depth > MAX_JSON_DEPTH {
        return Value::String("<nested too deep>".into());
    }
    if let Some(desc) = t(id) {
        return desc;
    }
    match graph.node(id) {
        Node::None => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(v) => Value::from(*v),
        node @ Node::BigInt(_) => {
            let s = bigint_string(node);
            s.parse::<u64>().map(Value::from).unwrap_or(Value::String(s))
        }
        Node::Float(f) => float_json(*f),
        Node::Str(s) => Value::String(s.clone()),
        Node::Bytes(b) => Value::String(format!("<{} bytes>", b.len())),
        Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
            items_json(graph, items, t, depth)
        }
        Node::Dict(items) => map_json(graph, items, t, depth),
        Node::Global { module, name } => Value::String(format!("{module}.{name}")),
        Node::PersistentId(_) => Value::String("<persistent id>".into()),
        Node::Object { .. } => object_json(graph, id, t, depth),
    }
}

fn object_json(graph: &PickleGraph, id: NodeId, t: &dyn Fn(NodeId) -> Option<Value>, depth: usize) -> Value {
    let Node::Object {
        callable,
        args,
        state,
        list_items,
        ..
    } = graph.node(id)
    else {
        return Value::Null;
    };
    let (module, name) = global_name(graph, *callable).unwrap_or(("", "object"));
    let args_list = seq(graph, *args).unwrap_or(&[]);
    if module.starts_with("omegaconf") {
        if let Some(v) = omegaconf_json(graph, *state, t, depth) {
            return v;
        }
    }
    if let Some(items) = mapping(graph, id) {
        return map_json(graph, &items, t, depth);
    }
    match (module, name) {
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => {
            if let Some(v) = numpy_scalar(graph, args_list) {
                return v;
            }
        }
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => {
            if let Some(v) = state.and_then(|s| numpy_array(graph, s)) {
                return v;
            }
        }
        ("builtins" | "__builtin__", "complex") => {
            if let Some(text) = complex_repr(graph, args_list) {
                return Value::String(text);
            }
        }
        ("pathlib", _) | ("pathlib._local", _) => {
            let parts: Vec<&str> = args_list.iter().filter_map(|a| as_str(graph, *a)).collect();
            let joined = parts.join("/");
            // PosixPath('/', 'data', ...) for absolute paths.
            let text = joined
                .strip_prefix("//")
                .map(|rest| format!("/{rest}"))
                .unwrap_or(joined);
            return Value::String(text);
        }
        ("_codecs" | "codecs", "encode") => {
            if let Some(b) = codecs_bytes(graph, id) {
                return Value::String(format!("<{} bytes>", b.len()));
            }
        }
        ("builtins" | "__builtin__", "set" | "frozenset" | "list" | "tuple") => {
            if let Some(first) = args_list.first() {
                return convert(graph, *first, t, depth + 1);
            }
        }
        ("copyreg" | "copy_reg", "_reconstructor") => {
            // _reconstructor(cls, base, state): state is the base value.
            if let Some(base_state) = args_list.get(2) {
                if !matches!(graph.node(*base_state), Node::None) {
                    return convert(graph, *base_state, t, depth + 1);
                }
            }
            if let Some(s) = state {
                return convert(graph, *s, t, depth + 1);
            }
        }
        _ => {}
    }
    if !list_items.is_empty() {
        return items_json(graph, list_items, t, depth);
    }
    // An enum member or other single-value call: its value is what matters.
    if state.is_none() && args_list.len() == 1 {
        let inner = convert(graph, args_list[0], t, depth + 1);
        if crate::exact_json::is_float_tag(&inner) || (!inner.is_object() && !inner.is_array()) {
            return inner;
        }
    }
    let mut out = Map::new();
    out.insert("__class__".into(), Value::String(format!("{module}.{name}")));
    if !args_list.is_empty() {
        out.insert("args".into(), items_json(graph, args_list, t, depth));
    }
    if let Some(s) = state {
        let v = convert(graph, *s, t, depth + 1);
        match crate::exact_json::as_object(&v) {
            Some(fields) => out.extend(fields.clone()),
            None => {
                out.insert("state".into(), v);
            }
        }
    }
    crate::exact_json::object(out)
}

/// OmegaConf `DictConfig` / `ListConfig` / value nodes keep their data in
/// `_content` (containers) or `_val` (leaves) of their pickled state. A
/// root config (no `_parent`) has its whole-string interpolations resolved
/// against itself, as `OmegaConf.to_container(resolve=True)` does, wherever
/// it sits in the checkpoint.
fn omegaconf_json(
    graph: &PickleGraph,
    state: Option<NodeId>,
    t: &dyn Fn(NodeId) -> Option<Value>,
    depth: usize,
) -> Option<Value> {
    let state = state?;
    if let Some(content) = get(graph, state, "_content") {
        let value = convert(graph, content, t, depth + 1);
        let root = get(graph, state, "_parent").is_none_or(|p| matches!(graph.node(p), Node::None));
        return Some(if root {
            crate::interpolate::resolve_interpolations(value)
        } else {
            value
        });
    }
    get(graph, state, "_val").map(|v| convert(graph, v, t, depth + 1))
}

/// The bytes a protocol-2 pickle writes as `_codecs.encode(text, 'latin1')`
/// (also through `bytes(...)` wrappers, a few levels deep at most).
pub fn codecs_bytes(graph: &PickleGraph, id: NodeId) -> Option<Vec<u8>> {
    let mut id = id;
    for _ in 0..8 {
        match graph.node(id) {
            Node::Bytes(b) => return Some(b.clone()),
            Node::Object { callable, args, .. } => match global_name(graph, *callable) {
                Some(("_codecs" | "codecs", "encode")) => {
                    let a = seq(graph, *args)?;
                    let text = as_str(graph, *a.first()?)?;
                    let enc = a.get(1).and_then(|e| as_str(graph, *e)).unwrap_or("latin1");
                    if enc != "latin1" && enc != "latin-1" && enc != "iso-8859-1" {
                        return None;
                    }
                    return text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
                }
                Some(("__builtin__" | "builtins", "bytes")) => match seq(graph, *args)?.first() {
                    Some(x) => id = *x,
                    None => return Some(Vec::new()),
                },
                _ => return None,
            },
            _ => return None,
        }
    }
    None
}

/// `numpy.core.multiarray.scalar(dtype, bytes)`: decode common dtypes.
fn numpy_scalar(graph: &PickleGraph, args: &[NodeId]) -> Option<Value> {
    let dtype = *args.first()?;
    let raw = codecs_bytes(graph, *args.get(1)?)?;
    let (code, little) = numpy_dtype(graph, dtype)?;
    numpy_element(&code, little, &raw)
}

/// Largest numpy array shown as its values (larger ones keep the generic
/// object form, as they are data rather than settings).
const MAX_NUMPY_VALUES: usize = 4096;

/// A pickled `numpy.ndarray` (`_reconstruct(ndarray, (0,), b'b')` whose
/// state is `(version, shape, dtype, is_fortran, data)`) as nested lists
/// of its values, as `arr.tolist()` gives them; `None` for a dtype reg
/// does not read (objects, strings, records) or a large array.
fn numpy_array(graph: &PickleGraph, state: NodeId) -> Option<Value> {
    let fields = seq(graph, state)?;
    let [_, shape, dtype, fortran, data] = fields else {
        return None;
    };
    let shape: Vec<usize> = seq(graph, *shape)?
        .iter()
        .map(|d| as_int(graph, *d).and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()?;
    let count = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))?;
    if count > MAX_NUMPY_VALUES {
        return None;
    }
    let (code, little) = numpy_dtype(graph, *dtype)?;
    let width: usize = code.get(1..)?.parse().ok()?;
    let raw = codecs_bytes(graph, *data)?;
    if raw.len() != count.checked_mul(width)? {
        return None;
    }
    let mut values: Vec<Value> = raw
        .chunks_exact(width.max(1))
        .map(|b| numpy_element(&code, little, b))
        .collect::<Option<_>>()?;
    if as_bool(graph, *fortran) == Some(true) && shape.len() > 1 {
        values = fortran_to_c(values, &shape);
    }
    Some(nest(&mut values.into_iter(), &shape))
}

/// Reorder column-major values into row-major order.
fn fortran_to_c(values: Vec<Value>, shape: &[usize]) -> Vec<Value> {
    let count = values.len();
    let mut out = Vec::with_capacity(count);
    for c_index in 0..count {
        // The multi-index of the C-order position, then its F-order offset.
        let (mut rest, mut offset, mut stride) = (c_index, 0, 1);
        let mut digits = vec![0; shape.len()];
        for (i, d) in shape.iter().enumerate().rev() {
            digits[i] = rest % d.max(&1);
            rest /= d.max(&1);
        }
        for (i, d) in shape.iter().enumerate() {
            offset += digits[i] * stride;
            stride *= d;
        }
        out.push(values.get(offset).cloned().unwrap_or(Value::Null));
    }
    out
}

/// Values in row-major order as nested arrays of `shape` (a scalar for
/// a 0-d array).
fn nest(values: &mut dyn Iterator<Item = Value>, shape: &[usize]) -> Value {
    match shape.split_first() {
        None => values.next().unwrap_or(Value::Null),
        Some((n, rest)) => Value::Array((0..*n).map(|_| nest(values, rest)).collect()),
    }
}

/// A `numpy.dtype(code, align, copy)` call: its kind-and-width code (`f8`,
/// `i4`, `b1`) and whether its data is little-endian (from the byte order
/// `<`, `>`, `|` or `=` its state records; `=` is native, which numpy
/// pickles only on little-endian machines in practice).
fn numpy_dtype(graph: &PickleGraph, dtype: NodeId) -> Option<(String, bool)> {
    let code = call_args(graph, dtype).first().and_then(|c| as_str(graph, *c))?;
    let order = match graph.node(dtype) {
        Node::Object { state: Some(s), .. } => seq(graph, *s)
            .and_then(|f| f.get(1))
            .and_then(|o| as_str(graph, *o))
            .unwrap_or("<"),
        _ => "<",
    };
    let little = order != ">";
    Some((code.to_string(), little))
}

/// One numpy value of dtype `code` from its bytes.
fn numpy_element(code: &str, little: bool, raw: &[u8]) -> Option<Value> {
    let bytes = |n: usize| -> Option<[u8; 8]> {
        let mut b = [0u8; 8];
        let src = raw.get(..n)?;
        if little {
            b.get_mut(..n)?.copy_from_slice(src);
        } else {
            for (i, x) in src.iter().rev().enumerate() {
                b[i] = *x;
            }
        }
        Some(b)
    };
    let le = |n: usize| bytes(n).map(u64::from_le_bytes);
    Some(match code {
        "f8" => float_json(f64::from_bits(le(8)?)),
        "f4" => float_json(f64::from(f32::from_bits(le(4)? as u32))),
        "f2" => float_json(crate::float::f16_to_f64(le(2)? as u16)),
        "i8" => Value::from(le(8)? as i64),
        "i4" => Value::from(le(4)? as u32 as i32),
        "i2" => Value::from(le(2)? as u16 as i16),
        "i1" => Value::from(le(1)? as u8 as i8),
        "u8" => Value::from(le(8)?),
        "u4" => Value::from(le(4)? as u32),
        "u2" => Value::from(le(2)? as u16),
        "u1" => Value::from(le(1)? as u8),
        "b1" => Value::Bool(le(1)? != 0),
        _ => return None,
    })
}

/// A pickled `complex(real, imag)` as Python's `repr()` writes it:
/// `(1+2j)`, `(1.5-0j)`, `3j` for a zero real part.
fn complex_repr(graph: &PickleGraph, args: &[NodeId]) -> Option<String> {
    let part = |i: usize| args.get(i).and_then(|a| as_f64(graph, *a));
    let (re, im) = (part(0)?, part(1).unwrap_or(0.0));
    let short = |f: f64| {
        let r = py_float_repr(f);
        r.strip_suffix(".0").map(str::to_string).unwrap_or(r)
    };
    if re == 0.0 && re.is_sign_positive() {
        return Some(format!("{}j", short(im)));
    }
    let sign = if im.is_sign_negative() && !im.is_nan() {
        "-"
    } else {
        "+"
    };
    Some(format!("({}{sign}{}j)", short(re), short(im.abs())))
}

#[cfg(test)]
mod tests {
    use super::py_float_repr;

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(py_float_repr(1e-8), "1e-08");
        assert_eq!(py_float_repr(0.001), "0.001");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(123.5), "123.5");
        assert_eq!(py_float_repr(0.0006561000000000001), "0.0006561000000000001");
        assert_eq!(py_float_repr(-2.5e-5), "-2.5e-05");
    }
}
