//! The arena, the value stack with its marks, container filling and the memo.

use super::super::graph::{Node, NodeId};
use super::super::ops;
use super::{Fill, Machine, PickleError};

impl Machine<'_> {
    // ----- Nodes and the stack ----------------------------------------------

    pub(super) fn new_node(&mut self, node: Node) -> Result<NodeId, PickleError> {
        let len = self.nodes.len();
        if len >= self.max_nodes {
            return Err(self.limit("nodes", self.max_nodes));
        }
        let id = u32::try_from(len).map_err(|_| self.limit("nodes", self.max_nodes))?;
        self.nodes.push(node);
        Ok(NodeId(id))
    }

    pub(super) fn check_stack_room(&self) -> Result<(), PickleError> {
        if self.stack.len() + self.marks.len() >= self.limits.max_stack {
            return Err(self.limit("stack", self.limits.max_stack));
        }
        Ok(())
    }

    pub(super) fn push(&mut self, id: NodeId) -> Result<(), PickleError> {
        self.check_stack_room()?;
        self.stack.push(id);
        Ok(())
    }

    pub(super) fn push_new(&mut self, node: Node) -> Result<(), PickleError> {
        self.check_stack_room()?;
        let id = self.new_node(node)?;
        self.stack.push(id);
        Ok(())
    }

    pub(super) fn push_utf8(&mut self, len: usize) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        self.push_new(Node::Str(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub(super) fn push_bytes(&mut self, len: usize) -> Result<(), PickleError> {
        let bytes = self.take(len)?;
        self.push_new(Node::Bytes(bytes.to_vec()))
    }

    pub(super) fn push_ext(&mut self, code: i64) -> Result<(), PickleError> {
        if code <= 0 {
            return Err(self.invalid(format!("extension code {code} is not positive")));
        }
        self.push_new(Node::Global {
            module: "copyreg.ext".to_owned(),
            name: code.to_string(),
        })
    }

    pub(super) fn push_object(
        &mut self,
        callable: NodeId,
        args: NodeId,
        kwargs: Option<NodeId>,
    ) -> Result<(), PickleError> {
        self.push_new(Node::Object {
            callable,
            args,
            kwargs,
            state: None,
            dict_items: Vec::new(),
            list_items: Vec::new(),
        })
    }

    /// The stack length below which the current mark forbids popping.
    pub(super) fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    pub(super) fn pop(&mut self) -> Result<NodeId, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }

    pub(super) fn top(&self) -> Result<NodeId, PickleError> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.last().copied().ok_or_else(|| self.underflow())
    }

    /// The top `n` values, bottom first.
    pub(super) fn pop_n(&mut self, n: usize) -> Result<Vec<NodeId>, PickleError> {
        let start = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&start| start >= self.fence())
            .ok_or_else(|| self.underflow())?;
        Ok(self.stack.split_off(start))
    }

    /// Closes the innermost mark; returns the stack length it recorded.
    pub(super) fn pop_mark(&mut self) -> Result<usize, PickleError> {
        let mark = self.marks.pop().ok_or(PickleError::MarkMissing {
            opcode: ops::name(self.op),
            offset: self.at,
        })?;
        if mark > self.stack.len() {
            return Err(self.underflow());
        }
        Ok(mark)
    }

    /// Closes the innermost mark and takes the values above it.
    pub(super) fn pop_mark_items(&mut self) -> Result<Vec<NodeId>, PickleError> {
        let mark = self.pop_mark()?;
        Ok(self.stack.split_off(mark))
    }

    pub(super) fn pairs(&self, items: &[NodeId]) -> Result<Vec<(NodeId, NodeId)>, PickleError> {
        let chunks = items.chunks_exact(2);
        if !chunks.remainder().is_empty() {
            return Err(self.invalid(format!(
                "odd number of items ({}) for {}",
                items.len(),
                ops::name(self.op)
            )));
        }
        Ok(chunks
            .filter_map(|pair| match pair {
                [k, v] => Some((*k, *v)),
                _ => None,
            })
            .collect())
    }

    /// `APPEND` / `SETITEM`: the target sits just below the top `n` values.
    pub(super) fn fill_top(&mut self, n: usize, fill: Fill) -> Result<(), PickleError> {
        let from = self
            .stack
            .len()
            .checked_sub(n)
            .filter(|&from| from > self.fence())
            .ok_or_else(|| self.underflow())?;
        self.fill(from, fill)
    }

    /// `APPENDS` / `SETITEMS` / `ADDITEMS`: the target sits just below the mark.
    pub(super) fn fill_mark(&mut self, fill: Fill) -> Result<(), PickleError> {
        let mark = self.pop_mark()?;
        if mark <= self.fence() {
            return Err(self.underflow());
        }
        self.fill(mark, fill)
    }

    /// Moves `stack[from..]` into the container at `stack[from - 1]`.
    pub(super) fn fill(&mut self, from: usize, fill: Fill) -> Result<(), PickleError> {
        let target = from
            .checked_sub(1)
            .and_then(|i| self.stack.get(i))
            .copied()
            .ok_or_else(|| self.underflow())?;
        let count = self.stack.len().saturating_sub(from);
        if matches!(fill, Fill::SetItems) && count % 2 == 1 {
            return Err(self.invalid(format!("odd number of items ({count}) for {}", ops::name(self.op))));
        }
        let Machine { nodes, stack, .. } = self;
        let items = stack.get(from..).unwrap_or(&[]);
        let done = match (fill, nodes.get_mut(target.index())) {
            (Fill::Append, Some(Node::List(list)))
            | (Fill::Append | Fill::AddItems, Some(Node::Object { list_items: list, .. }))
            | (Fill::AddItems, Some(Node::Set(list))) => {
                list.extend_from_slice(items);
                true
            }
            (Fill::SetItems, Some(Node::Dict(dict)))
            | (Fill::SetItems, Some(Node::Object { dict_items: dict, .. })) => {
                dict.extend(items.chunks_exact(2).filter_map(|pair| match pair {
                    [k, v] => Some((*k, *v)),
                    _ => None,
                }));
                true
            }
            _ => false,
        };
        if !done {
            let expected = match fill {
                Fill::Append => "a list or object",
                Fill::SetItems => "a dict or object",
                Fill::AddItems => "a set or object",
            };
            return Err(self.mismatch(expected, target));
        }
        self.stack.truncate(from);
        Ok(())
    }

    // ----- Memo -------------------------------------------------------------

    pub(super) fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains(key) {
            return Err(self.limit("memo", self.limits.max_memo));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    pub(super) fn memo_get(&mut self, key: u64) -> Result<(), PickleError> {
        let id = self
            .memo
            .get(key)
            .ok_or(PickleError::MemoMissing { key, offset: self.at })?;
        self.push(id)
    }

    pub(super) fn str_of(&self, id: NodeId) -> Result<&str, PickleError> {
        match self.nodes.get(id.index()) {
            Some(Node::Str(s)) => Ok(s),
            _ => Err(self.mismatch("a str", id)),
        }
    }
}
