//! Where a name's stored bytes go, by tensor role, and how far each role
//! is from the order-0 entropy bound of the way it is stored today
//! (`reg bench compress NAME`).
//!
//! Every tensor blob of the name's versions is counted once (a frozen
//! layer shared by six versions is one blob), under the role of the
//! newest tensor that names it:
//! - `weights`: model weights and buffers that change between versions;
//! - `frozen`: weights whose blob is the same in two versions or more;
//! - `exp_avg`, `exp_avg_sq`, `momentum`: Adam's moments (`max_exp_avg_sq`
//!   of amsgrad counts as `exp_avg_sq`) and SGD's momentum buffer;
//! - `other`: the rest (step counters, callback state, loose tensors).
//!
//! The bound of a blob is the order-0 entropy of its byte planes as the
//! store codes them: a float tensor's bytes split by position in the
//! element (2, 4 or 8 planes), each plane's bytes counted on their own;
//! for a delta blob, the planes of the XOR of its bytes with its
//! parent's (what a delta codes). It is the size a per-plane static
//! coder (the store's Huffman planes) could reach at best, so `stored /
//! bound` shows what is left to today's representation, and a codec that
//! beats 1.0 does so by using context (order > 0) the bound ignores.
//! Blobs are read as streams, a megabyte at a time.

use crate::error::RegistryError;
use crate::registry::Registry;
use reg_ckpt::tensors::Role;
use reg_ckpt::DType;
use reg_format::ModelName;
use reg_store::BlobId;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

/// The roles a report counts, in the order it lists them.
pub const ROLES: [&str; 7] = [
    "weights",
    "frozen",
    "exp_avg",
    "exp_avg_sq",
    "momentum",
    "other",
    "skeleton",
];

/// The bytes of one role.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoleBytes {
    /// The role (one of [`ROLES`]).
    pub role: &'static str,
    /// Distinct blobs.
    pub blobs: usize,
    /// Of those, blobs stored as deltas against another.
    pub deltas: usize,
    /// Elements in them (bytes for the skeleton).
    pub values: u64,
    /// Their decoded bytes.
    pub raw_bytes: u64,
    /// Their blob files' bytes on disk.
    pub stored_bytes: u64,
    /// The order-0 entropy bound of their representation, in bytes.
    pub bound_bytes: u64,
}

impl RoleBytes {
    /// Stored bits per value.
    pub fn stored_bits_per_value(&self) -> f64 {
        per_value(self.stored_bytes, self.values)
    }

    /// Bound bits per value.
    pub fn bound_bits_per_value(&self) -> f64 {
        per_value(self.bound_bytes, self.values)
    }
}

fn per_value(bytes: u64, values: u64) -> f64 {
    if values == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / values as f64
    }
}

/// [`Registry::compression_report`]'s answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CompressionReport {
    /// The model name.
    pub name: String,
    /// Versions counted.
    pub versions: usize,
    /// Bytes by role, in [`ROLES`] order (roles without blobs left out).
    pub roles: Vec<RoleBytes>,
    /// All roles together.
    pub total: RoleBytes,
}

/// What a report knows of a blob before reading it.
struct Counted {
    role: &'static str,
    width: usize,
}

impl Registry {
    /// Stored bytes of `name`'s versions by tensor role, against the
    /// order-0 entropy bound of their representation (see the module
    /// docs). Reads every blob once; changes nothing.
    pub fn compression_report(&self, name: &ModelName) -> Result<CompressionReport, RegistryError> {
        let _reader = self.reader()?;
        let versions = self.with_index(&format!("reg bench compress of {name}"), |idx| {
            let mut out = Vec::new();
            for r in crate::registry::versions_of(idx, name)? {
                let m = idx.manifest(r.id)?.ok_or_else(|| RegistryError::Damaged {
                    version: reg_format::VersionLabel::new(name, r.number).to_string(),
                    source: reg_store::StoreError::Missing(BlobId(r.id.0)),
                })?;
                out.push(m);
            }
            Ok(out)
        })?;
        // How many versions name each weight blob: two or more is frozen.
        let mut weight_versions: HashMap<BlobId, usize> = HashMap::new();
        for m in &versions {
            let seen: BTreeSet<BlobId> = tensor_blobs(m)
                .into_iter()
                .filter(|(_, role, _, _)| *role == Role::Weight)
                .map(|(id, ..)| id)
                .collect();
            for id in seen {
                *weight_versions.entry(id).or_default() += 1;
            }
        }
        let mut counted: BTreeMap<BlobId, Counted> = BTreeMap::new();
        let mut skeletons: BTreeSet<BlobId> = BTreeSet::new();
        for m in versions.iter().rev() {
            for (id, role, path, dtype) in tensor_blobs(m) {
                counted.entry(id).or_insert_with(|| Counted {
                    role: role_name(role, &path, weight_versions.get(&id).copied().unwrap_or(0)),
                    width: plane_width(dtype),
                });
            }
            skeletons.extend(m.blobs().into_iter().filter(|id| !counted.contains_key(id)));
        }
        let mut by_role: BTreeMap<&'static str, RoleBytes> = BTreeMap::new();
        let skeleton_role = Counted {
            role: "skeleton",
            width: 1,
        };
        let blobs = counted
            .iter()
            .map(|(id, c)| (*id, c))
            .chain(skeletons.iter().map(|id| (*id, &skeleton_role)));
        for (id, c) in blobs {
            let info = self.store.describe(id)?;
            let stored = self.store.stored_len(id)?;
            let bound = self.entropy_bound(id, info.parent, c.width)?;
            let r = by_role.entry(c.role).or_insert_with(|| RoleBytes {
                role: c.role,
                ..RoleBytes::default()
            });
            r.blobs += 1;
            r.deltas += usize::from(info.parent.is_some());
            r.values += info.raw_len / c.width as u64;
            r.raw_bytes += info.raw_len;
            r.stored_bytes += stored;
            r.bound_bytes += bound;
        }
        let roles: Vec<RoleBytes> = ROLES.iter().filter_map(|r| by_role.remove(r)).collect();
        let mut total = RoleBytes {
            role: "total",
            ..RoleBytes::default()
        };
        for r in &roles {
            total.blobs += r.blobs;
            total.deltas += r.deltas;
            total.values += r.values;
            total.raw_bytes += r.raw_bytes;
            total.stored_bytes += r.stored_bytes;
            total.bound_bytes += r.bound_bytes;
        }
        Ok(CompressionReport {
            name: name.to_string(),
            versions: versions.len(),
            roles,
            total,
        })
    }

    /// The order-0 entropy of blob `id`'s byte planes (`width` of them),
    /// XORed with `parent`'s bytes when it is a delta, in bytes.
    fn entropy_bound(&self, id: BlobId, parent: Option<BlobId>, width: usize) -> Result<u64, RegistryError> {
        let mut counts = vec![[0u64; 256]; width.max(1)];
        let mut raw = self.store.reader(id)?;
        let mut base = match parent {
            Some(p) => Some(self.store.reader(p)?),
            None => None,
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut other = vec![0u8; 1 << 20];
        let mut pos = 0usize;
        loop {
            let n = read_full(&mut raw, &mut buf).map_err(|e| read_err(id, e))?;
            if n == 0 {
                break;
            }
            if let Some(b) = base.as_mut() {
                let m = read_full(b, &mut other[..n]).map_err(|e| read_err(id, e))?;
                for (x, y) in buf[..m].iter_mut().zip(&other[..m]) {
                    *x ^= *y;
                }
            }
            for &byte in &buf[..n] {
                counts[pos % width][byte as usize] += 1;
                pos += 1;
            }
        }
        let bits: f64 = counts.iter().map(order0_bits).sum();
        Ok((bits / 8.0).ceil() as u64)
    }
}

/// Bits an order-0 coder needs at best for bytes counted in `counts`.
fn order0_bits(counts: &[u64; 256]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let c = c as f64;
            -c * (c / n).log2()
        })
        .sum()
}

/// Fill `buf` as far as the reader goes; the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_err(id: BlobId, e: std::io::Error) -> RegistryError {
    RegistryError::Io {
        action: "reading blob",
        path: std::path::PathBuf::from(id.to_hex()),
        source: e,
    }
}

/// Every tensor blob of a version: `(blob, role, path, dtype)`, the file
/// tensors' and a directory's chunks.
fn tensor_blobs(m: &reg_format::Manifest) -> Vec<(BlobId, Role, String, DType)> {
    let mut out: Vec<(BlobId, Role, String, DType)> = m
        .tensors
        .iter()
        .filter_map(|t| Some((t.blob?, t.role, t.path.clone(), t.dtype)))
        .collect();
    if let Some(tree) = &m.tree {
        for t in &tree.tensors {
            for c in &t.chunks {
                out.push((c.blob, t.role, t.name.clone(), t.dtype));
            }
        }
    }
    out
}

/// The report's role of a tensor.
fn role_name(role: Role, path: &str, weight_versions: usize) -> &'static str {
    match role {
        Role::Weight if weight_versions >= 2 => "frozen",
        Role::Weight => "weights",
        Role::Optimizer => {
            let last = path.rsplit(['/', '.']).next().unwrap_or(path);
            match last {
                "exp_avg" => "exp_avg",
                "exp_avg_sq" | "max_exp_avg_sq" => "exp_avg_sq",
                "momentum_buffer" => "momentum",
                _ => "other",
            }
        }
        Role::Other => "other",
    }
}

/// Byte planes the store codes a tensor of `dtype` in: its element
/// width for floats, one plane otherwise.
fn plane_width(dtype: DType) -> usize {
    if dtype.is_float() {
        dtype.size().max(1)
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_of_one_repeated_byte_is_zero_and_of_uniform_bytes_eight_bits() {
        let mut one = [0u64; 256];
        one[7] = 1000;
        assert_eq!(order0_bits(&one), 0.0);
        let uniform = [4u64; 256];
        assert!((order0_bits(&uniform) - 8.0 * 1024.0).abs() < 1e-6);
        let mut half = [0u64; 256];
        half[0] = 50;
        half[1] = 50;
        assert!((order0_bits(&half) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn optimizer_tensors_are_named_by_their_state_key() {
        assert_eq!(
            role_name(Role::Optimizer, "optimizer_states/0/state/3/exp_avg", 0),
            "exp_avg"
        );
        assert_eq!(
            role_name(Role::Optimizer, "optimizer_states/0/state/3/exp_avg_sq", 0),
            "exp_avg_sq"
        );
        assert_eq!(
            role_name(Role::Optimizer, "optimizer.state.3.max_exp_avg_sq", 0),
            "exp_avg_sq"
        );
        assert_eq!(
            role_name(Role::Optimizer, "optimizer_states/0/state/1/momentum_buffer", 0),
            "momentum"
        );
        assert_eq!(
            role_name(Role::Optimizer, "optimizer_states/0/state/1/step", 0),
            "other"
        );
        assert_eq!(role_name(Role::Weight, "state_dict/w", 1), "weights");
        assert_eq!(role_name(Role::Weight, "state_dict/w", 3), "frozen");
    }
}
