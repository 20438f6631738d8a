//! The unpickler memo: key -> [`NodeId`].
//!
//! Keys are attacker-chosen (up to `u32` for `LONG_BINPUT`, `u64` for text
//! `PUT`), so storage is never sized by a key's value. Writers assign keys
//! 0, 1, 2, ... in order, so a key equal to the number of dense entries is
//! appended to a `Vec` (a fast path for every pickle CPython writes); any
//! other key goes to a `HashMap`. Memory is proportional to the number of
//! stores, whatever the keys.

use std::collections::HashMap;

use super::graph::NodeId;

#[derive(Default)]
pub(crate) struct Memo {
    /// Entries for keys `0..dense.len()`.
    dense: Vec<NodeId>,
    /// Every other key (never one below `dense.len()`).
    sparse: HashMap<u64, NodeId>,
}

impl Memo {
    /// Number of distinct keys stored (Python's `len(memo)`).
    pub(crate) fn len(&self) -> usize {
        self.dense.len() + self.sparse.len()
    }

    pub(crate) fn get(&self, key: u64) -> Option<NodeId> {
        match usize::try_from(key).ok().and_then(|k| self.dense.get(k)) {
            Some(&id) => Some(id),
            None => self.sparse.get(&key).copied(),
        }
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn insert(&mut self, key: u64, id: NodeId) {
        let index = usize::try_from(key).ok();
        if let Some(slot) = index.and_then(|k| self.dense.get_mut(k)) {
            *slot = id;
        } else if index == Some(self.dense.len()) {
            if !self.sparse.is_empty() {
                self.sparse.remove(&key);
            }
            self.dense.push(id);
            // Keys stored out of order earlier may now continue the run.
            while !self.sparse.is_empty() {
                let next = self.dense.len() as u64;
                match self.sparse.remove(&next) {
                    Some(id) => self.dense.push(id),
                    None => break,
                }
            }
        } else {
            self.sparse.insert(key, id);
        }
    }
}
