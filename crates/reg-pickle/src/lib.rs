//! A pickle reader that never runs anything.
//!
//! [`parse`] walks the opcodes of protocols 0-5 with an explicit stack and
//! memo and produces a [`PickleGraph`]: globals stay strings, calls stay
//! records. It never recurses on input depth and every allocation is bounded
//! by [`Limits`] or by the input length.
//!
//! This crate owns the pickle machine and nothing else: it knows nothing of
//! torch, tensors or checkpoints (`reg-ckpt` reads those out of the graph),
//! never imports or calls a global it names, never touches the file system,
//! and never writes a pickle (`reg-write` does, for the files reg exports).
//!
//! ```
//! use reg_pickle::{parse, Limits, Node};
//! // pickle.dumps({"epoch": 3}, protocol=2)
//! let bytes = b"\x80\x02}q\x00X\x05\x00\x00\x00epochq\x01K\x03s.";
//! let graph = parse(bytes, &Limits::default()).expect("a valid pickle");
//! assert!(matches!(graph.root_node(), Node::Dict(_)));
//! ```
#![deny(missing_docs)]

mod error;
mod graph;
mod inspect;
mod memo;
mod ops;
mod text;
mod vm;

#[cfg(test)]
mod tests;

pub use error::PickleError;
pub use graph::{Node, NodeId, PickleGraph};
pub use vm::parse;

/// Bounds that keep a hostile pickle from costing unbounded time or memory.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most nodes the graph may hold.
    pub max_nodes: usize,
    /// Deepest the value stack (plus mark stack) may grow.
    pub max_stack: usize,
    /// Most memo entries.
    pub max_memo: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 10_000_000,
            max_stack: 10_000_000,
            max_memo: 50_000_000,
        }
    }
}
