//! The pickle machine: a loop over opcodes with an explicit value stack, mark
//! stack and memo. It never imports, calls or recurses.
//!
//! Choices where a real unpickler would run code or fail differently:
//! - `BUILD` on an [`Node::Object`] records the state; on any other node it
//!   is accepted and ignored (the state is still popped).
//! - `SETITEM(S)` on an object go to `dict_items`, `APPEND(S)` and
//!   `ADDITEMS` to `list_items`.
//! - Text is decoded leniently: `BINUNICODE` and friends with invalid UTF-8
//!   decode lossily; `STRING`, `BINSTRING`, `GLOBAL` and `PERSID` text is
//!   UTF-8 when valid and Latin-1 otherwise. `GLOBAL` names are recorded as
//!   written (no Python 2 name mapping).
//! - Protocol-0 `INT` / `LONG` accept decimal only (what CPython writes);
//!   values outside `i64` become [`Node::BigInt`] holding decimal text.
//! - Extension codes (`EXT1/2/4`) become globals in module `copyreg.ext`
//!   named by the decimal code.
//! - `FRAME` is checked against the remaining input and otherwise ignored.

mod input;
mod stack;

use super::error::PickleError;
use super::graph::{Node, NodeId, PickleGraph};
use super::memo::Memo;
use super::ops::*;
use super::text;
use super::Limits;

/// Reads one pickle from the start of `input` into a [`PickleGraph`].
///
/// Reading stops at the first `STOP`; bytes after it are not looked at and
/// [`PickleGraph::consumed`] says where it was. Nothing named by the pickle is
/// imported or called. Work and memory are linear in the input and bounded
/// by `limits`.
pub fn parse(input: &[u8], limits: &Limits) -> Result<PickleGraph, PickleError> {
    Machine::new(input, limits).run()
}

/// Which mutating opcode is filling a container.
#[derive(Clone, Copy)]
enum Fill {
    /// `APPEND` / `APPENDS`: a list, or an object's `list_items`.
    Append,
    /// `SETITEM` / `SETITEMS`: a dict, or an object's `dict_items`.
    SetItems,
    /// `ADDITEMS`: a set, or an object's `list_items`.
    AddItems,
}

struct Machine<'a> {
    input: &'a [u8],
    /// Next byte to read.
    pos: usize,
    /// The opcode being executed and its offset, for errors.
    op: u8,
    at: usize,
    limits: &'a Limits,
    /// `limits.max_nodes`, capped so every id fits a `u32`.
    max_nodes: usize,
    nodes: Vec<Node>,
    stack: Vec<NodeId>,
    /// Stack lengths at each open `MARK`; the last one is the fence below
    /// which nothing may be popped.
    marks: Vec<usize>,
    memo: Memo,
    protocol: u8,
}

impl<'a> Machine<'a> {
    fn new(input: &'a [u8], limits: &'a Limits) -> Self {
        Machine {
            input,
            pos: 0,
            op: 0,
            at: 0,
            limits,
            max_nodes: limits.max_nodes.min(u32::MAX as usize),
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Memo::default(),
            protocol: 0,
        }
    }

    fn run(mut self) -> Result<PickleGraph, PickleError> {
        loop {
            self.at = self.pos;
            let Some(&op) = self.input.get(self.pos) else {
                return Err(PickleError::Truncated { offset: self.pos });
            };
            self.op = op;
            self.pos += 1;
            if op == STOP {
                let root = self.pop()?;
                return Ok(PickleGraph {
                    nodes: self.nodes,
                    root: Some(root),
                    protocol: self.protocol,
                    consumed: self.pos,
                });
            }
            self.step(op)?;
        }
    }

    /// Executes one opcode other than `STOP`.
    fn step(&mut self, op: u8) -> Result<(), PickleError> {
        match op {
            // Stack manipulation.
            MARK => {
                self.check_stack_room()?;
                self.marks.push(self.stack.len());
                Ok(())
            }
            POP => {
                if self.stack.len() > self.fence() {
                    self.stack.pop();
                    Ok(())
                } else if self.marks.pop().is_some() {
                    // As CPython: popping at the fence discards the mark.
                    Ok(())
                } else {
                    Err(self.underflow())
                }
            }
            POP_MARK => self.pop_mark().map(drop),
            DUP => {
                let top = self.top()?;
                self.push(top)
            }
            PROTO => {
                let protocol = self.byte()?;
                if protocol > 5 {
                    return Err(PickleError::UnsupportedProtocol {
                        protocol,
                        offset: self.at,
                    });
                }
                self.protocol = protocol;
                Ok(())
            }
            FRAME => {
                let len = u64::from_le_bytes(self.array()?);
                let remaining = self.input.len().saturating_sub(self.pos);
                if usize::try_from(len).map_or(true, |len| len > remaining) {
                    return Err(self.truncated());
                }
                Ok(())
            }

            // Scalars.
            NONE => self.push_new(Node::None),
            NEWTRUE => self.push_new(Node::Bool(true)),
            NEWFALSE => self.push_new(Node::Bool(false)),
            INT => {
                let line = self.readline()?;
                let node = text::int_line(line).map_err(|r| self.invalid(r))?;
                self.push_new(node)
            }
            LONG => {
                let line = self.readline()?;
                let node = text::long_line(line).map_err(|r| self.invalid(r))?;
                self.push_new(node)
            }
            BININT => {
                let value = i32::from_le_bytes(self.array()?);
                self.push_new(Node::Int(i64::from(value)))
            }
            BININT1 => {
                let value = self.byte()?;
                self.push_new(Node::Int(i64::from(value)))
            }
            BININT2 => {
                let value = u16::from_le_bytes(self.array()?);
                self.push_new(Node::Int(i64::from(value)))
            }
            LONG1 => {
                let len = usize::from(self.byte()?);
                let bytes = self.take(len)?;
                self.push_new(text::le_long(bytes))
            }
            LONG4 => {
                let len = self.len_i32()?;
                let bytes = self.take(len)?;
                self.push_new(text::le_long(bytes))
            }
            FLOAT => {
                let line = self.readline()?;
                let value = text::float_line(line).map_err(|r| self.invalid(r))?;
                self.push_new(Node::Float(value))
            }
            BINFLOAT => {
                let value = f64::from_be_bytes(self.array()?);
                self.push_new(Node::Float(value))
            }

            // Strings and bytes.
            STRING => {
                let line = self.readline()?;
                let s = text::quoted_string(line).map_err(|r| self.invalid(r))?;
                self.push_new(Node::Str(s))
            }
            BINSTRING => {
                let len = self.len_i32()?;
                let bytes = self.take(len)?;
                self.push_new(Node::Str(text::latin1_or_utf8(bytes)))
            }
            SHORT_BINSTRING => {
                let len = usize::from(self.byte()?);
                let bytes = self.take(len)?;
                self.push_new(Node::Str(text::latin1_or_utf8(bytes)))
            }
            UNICODE => {
                let line = self.readline()?;
                let s = text::raw_unicode_escape(line).map_err(|r| self.invalid(r))?;
                self.push_new(Node::Str(s))
            }
            SHORT_BINUNICODE => {
                let len = usize::from(self.byte()?);
                self.push_utf8(len)
            }
            BINUNICODE => {
                let len = self.len_u32()?;
                self.push_utf8(len)
            }
            BINUNICODE8 => {
                let len = self.len_u64()?;
                self.push_utf8(len)
            }
            SHORT_BINBYTES => {
                let len = usize::from(self.byte()?);
                self.push_bytes(len)
            }
            BINBYTES => {
                let len = self.len_u32()?;
                self.push_bytes(len)
            }
            BINBYTES8 | BYTEARRAY8 => {
                let len = self.len_u64()?;
                self.push_bytes(len)
            }
            NEXT_BUFFER => Err(PickleError::OutOfBandBuffer { offset: self.at }),
            READONLY_BUFFER => self.top().map(drop),

            // Containers.
            EMPTY_LIST => self.push_new(Node::List(Vec::new())),
            EMPTY_DICT => self.push_new(Node::Dict(Vec::new())),
            EMPTY_TUPLE => self.push_new(Node::Tuple(Vec::new())),
            EMPTY_SET => self.push_new(Node::Set(Vec::new())),
            LIST => {
                let items = self.pop_mark_items()?;
                self.push_new(Node::List(items))
            }
            TUPLE => {
                let items = self.pop_mark_items()?;
                self.push_new(Node::Tuple(items))
            }
            FROZENSET => {
                let items = self.pop_mark_items()?;
                self.push_new(Node::FrozenSet(items))
            }
            DICT => {
                let items = self.pop_mark_items()?;
                let pairs = self.pairs(&items)?;
                self.push_new(Node::Dict(pairs))
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1) + 1;
                let items = self.pop_n(n)?;
                self.push_new(Node::Tuple(items))
            }
            APPEND => self.fill_top(1, Fill::Append),
            SETITEM => self.fill_top(2, Fill::SetItems),
            APPENDS => self.fill_mark(Fill::Append),
            SETITEMS => self.fill_mark(Fill::SetItems),
            ADDITEMS => self.fill_mark(Fill::AddItems),

            // Memo.
            PUT => {
                let line = self.readline()?;
                let key = text::memo_key(line).map_err(|r| self.invalid(r))?;
                self.memo_put(key)
            }
            BINPUT => {
                let key = self.byte()?;
                self.memo_put(u64::from(key))
            }
            LONG_BINPUT => {
                let key = u32::from_le_bytes(self.array()?);
                self.memo_put(u64::from(key))
            }
            MEMOIZE => {
                let key = self.memo.len() as u64;
                self.memo_put(key)
            }
            GET => {
                let line = self.readline()?;
                let key = text::memo_key(line).map_err(|r| self.invalid(r))?;
                self.memo_get(key)
            }
            BINGET => {
                let key = self.byte()?;
                self.memo_get(u64::from(key))
            }
            LONG_BINGET => {
                let key = u32::from_le_bytes(self.array()?);
                self.memo_get(u64::from(key))
            }

            // Globals, calls, persistent ids.
            GLOBAL => {
                let global = self.global_lines()?;
                self.push_new(global)
            }
            STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let global = Node::Global {
                    module: self.str_of(module)?.to_owned(),
                    name: self.str_of(name)?.to_owned(),
                };
                self.push_new(global)
            }
            EXT1 => {
                let code = self.byte()?;
                self.push_ext(i64::from(code))
            }
            EXT2 => {
                let code = u16::from_le_bytes(self.array()?);
                self.push_ext(i64::from(code))
            }
            EXT4 => {
                let code = i32::from_le_bytes(self.array()?);
                self.push_ext(i64::from(code))
            }
            REDUCE | NEWOBJ => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.push_object(callable, args, None)
            }
            NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let callable = self.pop()?;
                self.push_object(callable, args, Some(kwargs))
            }
            INST => {
                let global = self.global_lines()?;
                let items = self.pop_mark_items()?;
                let callable = self.new_node(global)?;
                let args = self.new_node(Node::Tuple(items))?;
                self.push_object(callable, args, None)
            }
            OBJ => {
                let items = self.pop_mark_items()?;
                let Some((&callable, rest)) = items.split_first() else {
                    return Err(self.underflow());
                };
                let args = self.new_node(Node::Tuple(rest.to_vec()))?;
                self.push_object(callable, args, None)
            }
            BUILD => {
                let state = self.pop()?;
                let target = self.top()?;
                if let Some(Node::Object { state: slot, .. }) = self.nodes.get_mut(target.index()) {
                    *slot = Some(state);
                }
                Ok(())
            }
            PERSID => {
                let line = self.readline()?;
                let pid = self.new_node(Node::Str(text::latin1_or_utf8(line)))?;
                self.push_new(Node::PersistentId(pid))
            }
            BINPERSID => {
                let pid = self.pop()?;
                self.push_new(Node::PersistentId(pid))
            }
            _ => Err(PickleError::UnknownOpcode {
                opcode: op,
                offset: self.at,
            }),
        }
    }
}

/// A short name of a node's kind, for type errors.
fn kind(node: Option<&Node>) -> &'static str {
    match node {
        None => "nothing",
        Some(Node::None) => "None",
        Some(Node::Bool(_)) => "bool",
        Some(Node::Int(_) | Node::BigInt(_)) => "int",
        Some(Node::Float(_)) => "float",
        Some(Node::Str(_)) => "str",
        Some(Node::Bytes(_)) => "bytes",
        Some(Node::List(_)) => "list",
        Some(Node::Tuple(_)) => "tuple",
        Some(Node::Dict(_)) => "dict",
        Some(Node::Set(_)) => "set",
        Some(Node::FrozenSet(_)) => "frozenset",
        Some(Node::Global { .. }) => "global",
        Some(Node::PersistentId(_)) => "persistent id",
        Some(Node::Object { .. }) => "object",
    }
}
