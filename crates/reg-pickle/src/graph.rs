//! The object graph a pickle describes, as plain data.
//!
//! Nothing here is ever called or imported: a `GLOBAL` is a pair of strings,
//! a `REDUCE` is a record of "this callable with these arguments". Nodes live
//! in one arena ([`PickleGraph::nodes`]) and refer to each other by
//! [`NodeId`], so shared objects (memo hits, tied tensors) and even cycles are
//! represented without recursion or copying.

/// Index of a node in a [`PickleGraph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The index into [`PickleGraph::nodes`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One value of the pickled object tree.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// Python `None`.
    None,
    /// Python `True` / `False`.
    Bool(bool),
    /// An integer that fits in an `i64`.
    Int(i64),
    /// A larger integer: little-endian two's-complement bytes, as `LONG1` /
    /// `LONG4` carry them (decimal text for protocol-0 `LONG`).
    BigInt(Vec<u8>),
    /// A Python float.
    Float(f64),
    /// A Python `str` (protocol-2 `BINUNICODE` and friends; also protocol-0
    /// `STRING`, decoded as Latin-1 when it is not UTF-8).
    Str(String),
    /// `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A list, in order.
    List(Vec<NodeId>),
    /// A tuple, in order.
    Tuple(Vec<NodeId>),
    /// A dict, in insertion order (later duplicate keys are kept as pairs too).
    Dict(Vec<(NodeId, NodeId)>),
    /// A set (`EMPTY_SET` + `ADDITEMS`).
    Set(Vec<NodeId>),
    /// A frozenset.
    FrozenSet(Vec<NodeId>),
    /// A reference to a module attribute (`GLOBAL`, `STACK_GLOBAL`, `INST`,
    /// `OBJ`, extension codes). Never resolved.
    Global {
        /// Module path, e.g. `torch._utils`.
        module: String,
        /// Attribute name, e.g. `_rebuild_tensor_v2`.
        name: String,
    },
    /// A persistent id (`PERSID` / `BINPERSID`): torch uses it for storages.
    PersistentId(NodeId),
    /// A call that was recorded, never made: `REDUCE`, `NEWOBJ`,
    /// `NEWOBJ_EX`, `OBJ`, `INST`. `BUILD`, `SETITEM(S)` and `APPEND(S)`
    /// applied to it later are recorded in `state`, `dict_items` and
    /// `list_items` (an `OrderedDict` is a call to `collections.OrderedDict`
    /// with its items in `dict_items`).
    Object {
        /// The callable or class (usually a [`Node::Global`]).
        callable: NodeId,
        /// The positional arguments (a [`Node::Tuple`] when well formed).
        args: NodeId,
        /// Keyword arguments of `NEWOBJ_EX`.
        kwargs: Option<NodeId>,
        /// The last state given by `BUILD`.
        state: Option<NodeId>,
        /// Items set by `SETITEM` / `SETITEMS`.
        dict_items: Vec<(NodeId, NodeId)>,
        /// Items added by `APPEND` / `APPENDS` / `ADDITEMS`.
        list_items: Vec<NodeId>,
    },
}

/// A parsed pickle: an arena of nodes and the root that `STOP` returned.
#[derive(Clone, Debug, Default)]
pub struct PickleGraph {
    /// Every node created while reading, in creation order.
    pub nodes: Vec<Node>,
    /// The value the pickle evaluates to.
    pub root: Option<NodeId>,
    /// The protocol named by `PROTO` (0 when absent).
    pub protocol: u8,
    /// Number of input bytes consumed up to and including `STOP`.
    pub consumed: usize,
}

impl PickleGraph {
    /// The node with this id. Ids come from this graph, so a bad id is a bug
    /// in the caller; it yields [`Node::None`] rather than panicking.
    pub fn node(&self, id: NodeId) -> &Node {
        const NONE: Node = Node::None;
        self.nodes.get(id.index()).unwrap_or(&NONE)
    }

    /// The root node, or `Node::None` for an empty graph.
    pub fn root_node(&self) -> &Node {
        match self.root {
            Some(id) => self.node(id),
            None => &Node::None,
        }
    }

    /// Every distinct global the pickle names, in first-seen order.
    pub fn globals(&self) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for node in &self.nodes {
            if let Node::Global { module, name } = node {
                if seen.insert((module.as_str(), name.as_str())) {
                    out.push((module.as_str(), name.as_str()));
                }
            }
        }
        out
    }
}
