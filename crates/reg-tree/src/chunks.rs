//! Chunk geometry: how a logical tensor's chunks tile its global shape, and
//! how a chunk's elements are copied into the whole tensor.
//!
//! A chunk is a box of the global tensor (`offsets`, `sizes`) whose elements
//! live in a storage (`storage_key` of one file) from `storage_offset` with
//! `stride`. [`check_tiling`] proves every element of the global tensor lies
//! in exactly one chunk; [`runs`] lists, for one chunk, the contiguous runs
//! to copy from its storage into a row-major buffer of the whole tensor.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use reg_ckpt::tensors::contiguous_stride;

/// One saved piece of a logical tensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Index into [`TreeCheckpoint::files`](super::TreeCheckpoint::files).
    pub file: usize,
    /// Global offset of the chunk's first element, per dimension.
    pub offsets: Vec<u64>,
    /// Size of the chunk per dimension.
    pub sizes: Vec<u64>,
    /// The payload segment of that file holding its bytes.
    pub storage_key: String,
    /// Index (in elements) of the chunk's first element in that storage.
    pub storage_offset: u64,
    /// Stride (in elements) of the chunk in that storage, per dimension.
    pub stride: Vec<u64>,
}

/// The product of `dims`, `None` when it overflows.
pub(super) fn checked_numel(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

impl Chunk {
    /// Number of elements (saturating at `u64::MAX`).
    pub fn numel(&self) -> u64 {
        self.sizes.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
    }

    /// True when the chunk's elements are laid out row-major in its storage.
    pub fn is_contiguous(&self) -> bool {
        reg_ckpt::tensors::is_contiguous(&self.sizes, &self.stride)
    }
}

/// Why a tensor's chunks do not tile its shape exactly. Returned by
/// [`check_tiling`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TilingError {
    /// A tensor without chunks.
    #[error("tensor {tensor}: no chunk holds its elements")]
    NoChunks {
        /// The tensor name.
        tensor: String,
    },
    /// A shape with more elements than a 64-bit count holds.
    #[error("tensor {tensor}: its shape {shape:?} has more elements than fit in 64 bits")]
    TooLarge {
        /// The tensor name.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// A chunk whose offsets, sizes or stride do not have the tensor's rank.
    #[error("tensor {tensor}: chunk {chunk} has {found} dimensions, the tensor has {rank}")]
    Rank {
        /// The tensor name.
        tensor: String,
        /// Index of the chunk in the tensor's list.
        chunk: usize,
        /// Dimensions of the chunk.
        found: usize,
        /// Dimensions of the tensor.
        rank: usize,
    },
    /// A chunk reaching past the tensor's shape.
    #[error("tensor {tensor}: chunk at {offsets:?} of size {sizes:?} lies outside its shape {shape:?}")]
    Outside {
        /// The tensor name.
        tensor: String,
        /// The chunk's offsets.
        offsets: Vec<u64>,
        /// The chunk's sizes.
        sizes: Vec<u64>,
        /// The tensor's global shape.
        shape: Vec<u64>,
    },
    /// Two chunks sharing elements.
    #[error("tensor {tensor}: chunks {} and {} overlap", .chunks[0], .chunks[1])]
    Overlap {
        /// The tensor name.
        tensor: String,
        /// The two chunks.
        chunks: Box<[ChunkBox; 2]>,
    },
    /// Elements no chunk holds.
    #[error("tensor {tensor}: its chunks hold {covered} of its {numel} elements{}", gap_text(.first_gap))]
    Gap {
        /// The tensor name.
        tensor: String,
        /// Elements the chunks hold.
        covered: u64,
        /// Elements of the tensor.
        numel: u64,
        /// The first element (row-major) no chunk holds, when it was found.
        first_gap: Option<Vec<u64>>,
    },
}

/// Where a chunk lies, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkBox {
    /// Index of the chunk in its tensor's list.
    pub index: usize,
    /// Its global offsets.
    pub offsets: Vec<u64>,
    /// Its sizes.
    pub sizes: Vec<u64>,
}

impl std::fmt::Display for ChunkBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at {:?}, size {:?})", self.index, self.offsets, self.sizes)
    }
}

fn gap_text(first_gap: &Option<Vec<u64>>) -> String {
    match first_gap {
        Some(at) => format!("; element {at:?} is in none"),
        None => String::new(),
    }
}

/// Most cells of the coordinate-compressed grid built to locate a gap.
const MAX_GAP_CELLS: u64 = 1 << 20;

/// Check that `chunks` cover every element of a tensor of `shape` exactly
/// once. Costs `O(n log n)` for chunks laid out along one dimension (every
/// sharding torch writes: row, column or grid blocks), `O(n^2)` at worst.
pub fn check_tiling(tensor: &str, shape: &[u64], chunks: &[Chunk]) -> Result<(), TilingError> {
    if chunks.is_empty() {
        return Err(TilingError::NoChunks { tensor: tensor.into() });
    }
    let rank = shape.len();
    let Some(numel) = checked_numel(shape) else {
        return Err(TilingError::TooLarge {
            tensor: tensor.into(),
            shape: shape.to_vec(),
        });
    };
    let mut covered: u64 = 0;
    for (i, c) in chunks.iter().enumerate() {
        let found = [c.offsets.len(), c.sizes.len(), c.stride.len()];
        if let Some(&bad) = found.iter().find(|&&n| n != rank) {
            return Err(TilingError::Rank {
                tensor: tensor.into(),
                chunk: i,
                found: bad,
                rank,
            });
        }
        let inside = (0..rank).all(|d| c.offsets[d].checked_add(c.sizes[d]).is_some_and(|end| end <= shape[d]));
        if !inside {
            return Err(TilingError::Outside {
                tensor: tensor.into(),
                offsets: c.offsets.clone(),
                sizes: c.sizes.clone(),
                shape: shape.to_vec(),
            });
        }
        covered = covered.saturating_add(c.numel());
    }
    if let Some((a, b)) = find_overlap(shape, chunks) {
        let at = |index: usize| ChunkBox {
            index,
            offsets: chunks[index].offsets.clone(),
            sizes: chunks[index].sizes.clone(),
        };
        return Err(TilingError::Overlap {
            tensor: tensor.into(),
            chunks: Box::new([at(a), at(b)]),
        });
    }
    // Inside the shape and disjoint: they tile it iff they hold every element.
    if covered != numel {
        return Err(TilingError::Gap {
            tensor: tensor.into(),
            covered,
            numel,
            first_gap: first_gap(shape, chunks),
        });
    }
    Ok(())
}

/// Two chunks (by index) that share an element, if any. Sweeps along the
/// dimension where chunk starts differ most, keeping only the chunks whose
/// extent there reaches the current start.
fn find_overlap(shape: &[u64], chunks: &[Chunk]) -> Option<(usize, usize)> {
    let nonempty: Vec<usize> = (0..chunks.len()).filter(|&i| chunks[i].numel() > 0).collect();
    if shape.is_empty() {
        return match nonempty.as_slice() {
            [a, b, ..] => Some((*a, *b)),
            _ => None,
        };
    }
    let dim = (0..shape.len())
        .max_by_key(|&d| {
            nonempty
                .iter()
                .map(|&i| chunks[i].offsets[d])
                .collect::<BTreeSet<_>>()
                .len()
        })
        .unwrap_or(0);
    let mut order = nonempty;
    order.sort_by_key(|&i| chunks[i].offsets[dim]);
    let end = |i: usize| chunks[i].offsets[dim] + chunks[i].sizes[dim];
    let mut active: Vec<usize> = Vec::new();
    for &i in &order {
        let start = chunks[i].offsets[dim];
        active.retain(|&j| end(j) > start);
        if let Some(&j) = active.iter().find(|&&j| boxes_overlap(&chunks[i], &chunks[j])) {
            return Some((j.min(i), j.max(i)));
        }
        active.push(i);
    }
    None
}

fn boxes_overlap(a: &Chunk, b: &Chunk) -> bool {
    (0..a.offsets.len()).all(|d| {
        let (a0, a1) = (a.offsets[d], a.offsets[d] + a.sizes[d]);
        let (b0, b1) = (b.offsets[d], b.offsets[d] + b.sizes[d]);
        a0 < b1 && b0 < a1
    })
}

/// The first element (row-major) that no chunk holds, found on the grid of
/// chunk boundaries; `None` when that grid would be too large.
fn first_gap(shape: &[u64], chunks: &[Chunk]) -> Option<Vec<u64>> {
    let rank = shape.len();
    let bounds: Vec<Vec<u64>> = (0..rank)
        .map(|d| {
            let mut b: BTreeSet<u64> = [0, shape[d]].into_iter().collect();
            for c in chunks {
                b.insert(c.offsets[d]);
                b.insert(c.offsets[d] + c.sizes[d]);
            }
            b.into_iter().collect()
        })
        .collect();
    let cells_per_dim: Vec<u64> = bounds.iter().map(|b| b.len().saturating_sub(1) as u64).collect();
    let cells = cells_per_dim.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))?;
    if cells == 0 || cells > MAX_GAP_CELLS {
        return None;
    }
    let cell_stride = contiguous_stride(&cells_per_dim);
    let mut covered = vec![false; usize::try_from(cells).ok()?];
    let index_of = |d: usize, v: u64| bounds[d].binary_search(&v).unwrap_or(0);
    for c in chunks.iter().filter(|c| c.numel() > 0) {
        let lo: Vec<usize> = (0..rank).map(|d| index_of(d, c.offsets[d])).collect();
        let hi: Vec<usize> = (0..rank).map(|d| index_of(d, c.offsets[d] + c.sizes[d])).collect();
        let span: Vec<u64> = (0..rank).map(|d| (hi[d] - lo[d]) as u64).collect();
        for cell in Odometer::new(&span) {
            let flat: u64 = (0..rank).map(|d| (lo[d] as u64 + cell[d]) * cell_stride[d]).sum();
            if let Some(slot) = covered.get_mut(flat as usize) {
                *slot = true;
            }
        }
    }
    let gap = covered.iter().position(|c| !c)? as u64;
    Some(
        (0..rank)
            .map(|d| bounds[d][((gap / cell_stride[d]) % cells_per_dim[d]) as usize])
            .collect(),
    )
}

/// Every index of a box of `sizes`, row-major (one empty index for rank 0,
/// none when a size is 0).
struct Odometer {
    sizes: Vec<u64>,
    next: Option<Vec<u64>>,
}

impl Odometer {
    fn new(sizes: &[u64]) -> Self {
        let next = (!sizes.contains(&0)).then(|| vec![0; sizes.len()]);
        Odometer {
            sizes: sizes.to_vec(),
            next,
        }
    }
}

impl Iterator for Odometer {
    type Item = Vec<u64>;

    fn next(&mut self) -> Option<Vec<u64>> {
        let current = self.next.take()?;
        let mut following = current.clone();
        for d in (0..following.len()).rev() {
            following[d] += 1;
            if following[d] < self.sizes[d] {
                self.next = Some(following);
                return Some(current);
            }
            following[d] = 0;
        }
        Some(current)
    }
}

/// One contiguous copy: `len` elements from storage element `src_elem` to
/// element `dst_elem` of the row-major whole tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First element in the whole tensor (row-major).
    pub dst_elem: u64,
    /// First element in the chunk's storage.
    pub src_elem: u64,
    /// Number of elements.
    pub len: u64,
}

/// Why [`runs`] cannot plan a chunk's copy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunsError {
    /// Offsets, sizes or stride of another rank than the tensor.
    #[error("chunk has {found} dimensions, the tensor has {rank}")]
    Rank {
        /// Dimensions of the chunk.
        found: usize,
        /// Dimensions of the tensor.
        rank: usize,
    },
    /// A shape with more elements than a 64-bit count holds.
    #[error("the shape {0:?} has more elements than fit in 64 bits")]
    TooLarge(Vec<u64>),
    /// The chunk reaches past the tensor's shape.
    #[error("chunk at {offsets:?} of size {sizes:?} lies outside the shape {shape:?}")]
    Outside {
        /// The chunk's offsets.
        offsets: Vec<u64>,
        /// The chunk's sizes.
        sizes: Vec<u64>,
        /// The tensor's shape.
        shape: Vec<u64>,
    },
}

/// The copies that place `chunk` into a row-major buffer of a tensor of
/// `global_shape`, in increasing `dst_elem` order. Trailing dimensions the
/// chunk spans whole and stores contiguously merge into one run; a chunk
/// stored with other strides (transposed, channels-last) is copied in
/// shorter runs, down to one element, so any stride is handled.
pub fn runs(global_shape: &[u64], chunk: &Chunk) -> Result<Runs, RunsError> {
    let rank = global_shape.len();
    for found in [chunk.offsets.len(), chunk.sizes.len(), chunk.stride.len()] {
        if found != rank {
            return Err(RunsError::Rank { found, rank });
        }
    }
    if checked_numel(global_shape).is_none() {
        return Err(RunsError::TooLarge(global_shape.to_vec()));
    }
    let inside = (0..rank).all(|d| {
        chunk.offsets[d]
            .checked_add(chunk.sizes[d])
            .is_some_and(|end| end <= global_shape[d])
    });
    if !inside {
        return Err(RunsError::Outside {
            offsets: chunk.offsets.clone(),
            sizes: chunk.sizes.clone(),
            shape: global_shape.to_vec(),
        });
    }
    let dst_stride = contiguous_stride(global_shape);
    // Merge trailing dimensions while both sides stay contiguous.
    let mut len = 1u64;
    let mut outer = rank;
    while outer > 0 {
        let d = outer - 1;
        let size = chunk.sizes[d];
        if size == 1 {
            outer -= 1;
            continue;
        }
        if chunk.stride[d] == len && dst_stride[d] == len {
            len *= size;
            outer -= 1;
            continue;
        }
        break;
    }
    let outer_dims: Vec<usize> = (0..outer).collect();
    let outer_sizes: Vec<u64> = outer_dims.iter().map(|&d| chunk.sizes[d]).collect();
    let base_dst = (0..rank).map(|d| chunk.offsets[d] * dst_stride[d]).sum();
    let empty = chunk.sizes.contains(&0);
    Ok(Runs {
        odometer: Odometer::new(if empty { &[0] } else { &outer_sizes }),
        dst_stride: outer_dims.iter().map(|&d| dst_stride[d]).collect(),
        src_stride: outer_dims.iter().map(|&d| chunk.stride[d]).collect(),
        base_dst,
        base_src: chunk.storage_offset,
        len,
    })
}

/// The iterator [`runs`] returns.
pub struct Runs {
    odometer: Odometer,
    dst_stride: Vec<u64>,
    src_stride: Vec<u64>,
    base_dst: u64,
    base_src: u64,
    len: u64,
}

impl Iterator for Runs {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        let index = self.odometer.next()?;
        let dst: u64 = index.iter().zip(&self.dst_stride).map(|(i, s)| i * s).sum();
        let src: u64 = index.iter().zip(&self.src_stride).map(|(i, s)| i * s).sum();
        Some(Run {
            dst_elem: self.base_dst + dst,
            src_elem: self.base_src + src,
            len: self.len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offsets: &[u64], sizes: &[u64]) -> Chunk {
        Chunk {
            file: 0,
            offsets: offsets.to_vec(),
            sizes: sizes.to_vec(),
            storage_key: "0".into(),
            storage_offset: 0,
            stride: contiguous_stride(sizes),
        }
    }

    #[test]
    fn row_column_and_grid_shardings_tile() {
        let rows = [chunk(&[0, 0], &[2, 4]), chunk(&[2, 0], &[2, 4])];
        let cols = [chunk(&[0, 0], &[4, 1]), chunk(&[0, 1], &[4, 3])];
        let grid: Vec<Chunk> = (0..4)
            .flat_map(|i| (0..4).map(move |j| chunk(&[i, j], &[1, 1])))
            .collect();
        for chunks in [&rows[..], &cols[..], &grid[..]] {
            check_tiling("t", &[4, 4], chunks).unwrap();
        }
        check_tiling("scalar", &[], &[chunk(&[], &[])]).unwrap();
        check_tiling("empty", &[0, 3], &[chunk(&[0, 0], &[0, 3])]).unwrap();
    }

    #[test]
    fn overlaps_gaps_and_strays_are_named() {
        let e = check_tiling("w", &[4, 4], &[chunk(&[0, 0], &[3, 4]), chunk(&[2, 0], &[2, 4])]).unwrap_err();
        assert!(
            matches!(&e, TilingError::Overlap { chunks, .. } if chunks[0].index == 0 && chunks[1].index == 1),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("tensor w: chunks 0 (at [0, 0], size [3, 4]) and 1"));
        let e = check_tiling("w", &[4, 4], &[chunk(&[0, 0], &[2, 4]), chunk(&[3, 0], &[1, 4])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "tensor w: its chunks hold 12 of its 16 elements; element [2, 0] is in none"
        );
        let e = check_tiling("w", &[4], &[chunk(&[2], &[4])]).unwrap_err();
        assert!(matches!(e, TilingError::Outside { .. }));
        let e = check_tiling("w", &[4], &[chunk(&[0, 0], &[4, 1])]).unwrap_err();
        assert!(matches!(e, TilingError::Rank { found: 2, rank: 1, .. }));
        let e = check_tiling("s", &[], &[chunk(&[], &[]), chunk(&[], &[])]).unwrap_err();
        assert!(matches!(e, TilingError::Overlap { .. }));
        assert!(matches!(
            check_tiling("n", &[2], &[]),
            Err(TilingError::NoChunks { .. })
        ));
    }

    #[test]
    fn many_chunks_are_checked_fast() {
        // 4096 row shards and 4096 column shards of a 4096 x 4096 tensor.
        let rows: Vec<Chunk> = (0..4096).map(|i| chunk(&[i, 0], &[1, 4096])).collect();
        let cols: Vec<Chunk> = (0..4096).map(|j| chunk(&[0, j], &[4096, 1])).collect();
        let start = std::time::Instant::now();
        check_tiling("rows", &[4096, 4096], &rows).unwrap();
        check_tiling("cols", &[4096, 4096], &cols).unwrap();
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// Assemble a tensor from chunks with `runs` and compare with the
    /// element values `f(index)` written into each chunk's storage.
    fn assemble(shape: &[u64], chunks: &[(Chunk, Vec<u64>)]) -> Vec<u64> {
        let numel: u64 = shape.iter().product();
        let mut out = vec![u64::MAX; numel as usize];
        for (c, storage) in chunks {
            for r in runs(shape, c).unwrap() {
                for k in 0..r.len {
                    out[(r.dst_elem + k) as usize] = storage[(r.src_elem + k) as usize];
                }
            }
        }
        out
    }

    #[test]
    fn runs_place_contiguous_and_strided_chunks() {
        let shape = [4u64, 6];
        // Global value of element (i, j) is i * 6 + j.
        let value = |i: u64, j: u64| i * 6 + j;
        // Rows 0..2, contiguous: one run of 12.
        let top = chunk(&[0, 0], &[2, 6]);
        let top_storage: Vec<u64> = (0..2).flat_map(|i| (0..6).map(move |j| value(i, j))).collect();
        assert_eq!(runs(&shape, &top).unwrap().count(), 1);
        // Rows 2..4, columns 0..3, stored transposed (column-major) after 5
        // elements of padding.
        let mut bl = chunk(&[2, 0], &[2, 3]);
        bl.stride = vec![1, 2];
        bl.storage_offset = 5;
        let mut bl_storage = vec![0u64; 5 + 6];
        for i in 0..2 {
            for j in 0..3 {
                bl_storage[(5 + i + j * 2) as usize] = value(2 + i, j);
            }
        }
        assert!(runs(&shape, &bl).unwrap().all(|r| r.len == 1));
        // Rows 2..4, columns 3..6, contiguous: one run per row.
        let br = chunk(&[2, 3], &[2, 3]);
        let br_storage: Vec<u64> = (2..4).flat_map(|i| (3..6).map(move |j| value(i, j))).collect();
        assert_eq!(runs(&shape, &br).unwrap().map(|r| r.len).collect::<Vec<_>>(), [3, 3]);
        let whole = assemble(&shape, &[(top, top_storage), (bl, bl_storage), (br, br_storage)]);
        assert_eq!(whole, (0..24).collect::<Vec<u64>>());
    }

    #[test]
    fn runs_merge_size_one_dimensions_and_handle_scalars() {
        let c = chunk(&[0, 1, 0], &[3, 1, 5]);
        let r: Vec<Run> = runs(&[3, 2, 5], &c).unwrap().collect();
        assert_eq!(r.len(), 3);
        assert_eq!((r[1].dst_elem, r[1].src_elem, r[1].len), (15, 5, 5));
        let s: Vec<Run> = runs(&[], &chunk(&[], &[])).unwrap().collect();
        assert_eq!(
            s,
            [Run {
                dst_elem: 0,
                src_elem: 0,
                len: 1
            }]
        );
        assert_eq!(runs(&[0, 4], &chunk(&[0, 0], &[0, 4])).unwrap().count(), 0);
        assert!(runs(&[4], &chunk(&[3], &[2])).is_err());
    }
}
