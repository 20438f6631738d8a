//! Small read-only helpers on [`PickleGraph`]: lookups and a bounded,
//! iterative Python-like rendering for debugging and tests.

use std::fmt::Write as _;

use super::graph::{Node, NodeId, PickleGraph};

impl PickleGraph {
    /// The text of a [`Node::Str`], or `None` for any other node.
    pub fn str_at(&self, id: NodeId) -> Option<&str> {
        match self.node(id) {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value stored under the string key `key` in a [`Node::Dict`] or in
    /// the `dict_items` of a [`Node::Object`] (e.g. an `OrderedDict`); the
    /// last one wins when a key repeats.
    pub fn dict_get(&self, id: NodeId, key: &str) -> Option<NodeId> {
        let pairs = match self.node(id) {
            Node::Dict(pairs) => pairs,
            Node::Object { dict_items, .. } => dict_items,
            _ => return None,
        };
        pairs
            .iter()
            .rev()
            .find(|(k, _)| self.str_at(*k) == Some(key))
            .map(|&(_, v)| v)
    }

    /// A Python-like rendering of the value at `id`, cut off with `…` after
    /// about `max_len` bytes (so shared and cyclic structures terminate).
    ///
    /// Calls render as `obj(callable, args, kwargs=…, state=…, items={…},
    /// list=[…])` (absent parts omitted), persistent ids as `persid(…)`,
    /// globals as `module.name`, big integers as `bigint(b"…")`. Walks with
    /// an explicit stack, so depth costs heap, never call stack.
    pub fn repr(&self, id: NodeId, max_len: usize) -> String {
        let mut out = String::new();
        let mut todo = vec![Step::Node(id)];
        while let Some(step) = todo.pop() {
            if out.len() > max_len {
                out.push('…');
                break;
            }
            match step {
                Step::Text(s) => out.push_str(s),
                Step::Seq { items, next, close } => match items.get(next) {
                    Some(&item) => {
                        if next > 0 {
                            out.push_str(", ");
                        }
                        todo.push(Step::Seq {
                            items,
                            next: next + 1,
                            close,
                        });
                        todo.push(Step::Node(item));
                    }
                    None => out.push_str(close),
                },
                Step::Pairs { pairs, next } => match pairs.get(next) {
                    Some(&(k, v)) => {
                        if next > 0 {
                            out.push_str(", ");
                        }
                        todo.push(Step::Pairs { pairs, next: next + 1 });
                        todo.push(Step::Node(v));
                        todo.push(Step::Text(": "));
                        todo.push(Step::Node(k));
                    }
                    None => out.push('}'),
                },
                Step::Node(id) => self.expand(id, &mut out, &mut todo),
            }
        }
        out
    }

    /// Renders a leaf into `out`, or opens a container by pushing its steps.
    fn expand<'g>(&'g self, id: NodeId, out: &mut String, todo: &mut Vec<Step<'g>>) {
        match self.node(id) {
            Node::None => out.push_str("None"),
            Node::Bool(true) => out.push_str("True"),
            Node::Bool(false) => out.push_str("False"),
            Node::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Node::BigInt(bytes) => {
                let _ = write!(out, "bigint(b\"{}\")", bytes.escape_ascii());
            }
            Node::Float(v) if v.is_nan() => out.push_str("nan"),
            Node::Float(v) => {
                let _ = write!(out, "{v:?}");
            }
            Node::Str(s) => {
                let _ = write!(out, "{s:?}");
            }
            Node::Bytes(bytes) => {
                let _ = write!(out, "b\"{}\"", bytes.escape_ascii());
            }
            Node::Global { module, name } => {
                let _ = write!(out, "{module}.{name}");
            }
            Node::List(items) => open(out, todo, "[", items, "]"),
            Node::Tuple(items) => {
                let close = if items.len() == 1 { ",)" } else { ")" };
                open(out, todo, "(", items, close);
            }
            Node::Set(items) if items.is_empty() => out.push_str("set()"),
            Node::Set(items) => open(out, todo, "{", items, "}"),
            Node::FrozenSet(items) => open(out, todo, "frozenset({", items, "})"),
            Node::Dict(pairs) => {
                out.push('{');
                todo.push(Step::Pairs { pairs, next: 0 });
            }
            Node::PersistentId(pid) => {
                out.push_str("persid(");
                todo.push(Step::Text(")"));
                todo.push(Step::Node(*pid));
            }
            Node::Object {
                callable,
                args,
                kwargs,
                state,
                dict_items,
                list_items,
            } => {
                out.push_str("obj(");
                todo.push(Step::Text(")"));
                if !list_items.is_empty() {
                    todo.push(Step::Seq {
                        items: list_items,
                        next: 0,
                        close: "]",
                    });
                    todo.push(Step::Text(", list=["));
                }
                if !dict_items.is_empty() {
                    todo.push(Step::Pairs {
                        pairs: dict_items,
                        next: 0,
                    });
                    todo.push(Step::Text(", items={"));
                }
                if let Some(state) = state {
                    todo.push(Step::Node(*state));
                    todo.push(Step::Text(", state="));
                }
                if let Some(kwargs) = kwargs {
                    todo.push(Step::Node(*kwargs));
                    todo.push(Step::Text(", kwargs="));
                }
                todo.push(Step::Node(*args));
                todo.push(Step::Text(", "));
                todo.push(Step::Node(*callable));
            }
        }
    }
}

/// Pending work of [`PickleGraph::repr`].
enum Step<'g> {
    Node(NodeId),
    Text(&'static str),
    Seq {
        items: &'g [NodeId],
        next: usize,
        close: &'static str,
    },
    Pairs {
        pairs: &'g [(NodeId, NodeId)],
        next: usize,
    },
}

fn open<'g>(out: &mut String, todo: &mut Vec<Step<'g>>, start: &str, items: &'g [NodeId], close: &'static str) {
    out.push_str(start);
    todo.push(Step::Seq { items, next: 0, close });
}
