//! The skeleton blobs of a directory version: small skeletons packed
//! together.
//!
//! Each file of a directory has skeleton bytes (zip headers and pickles,
//! a safetensors header, or the whole of a file reg cannot read as a
//! checkpoint, such as `config.json`). Stored one blob per file, a
//! folder of 10,000 tiny files is 10,000 blob files: a 4 KiB block and an
//! fsync each. So the skeletons of up to [`PACKED_SKELETON_MAX`] bytes are
//! concatenated, in path order, into pack blobs of up to [`PACK_MAX`]
//! bytes; each such file names its pack as its skeleton blob and its
//! skeleton pieces point into it. A larger skeleton keeps a blob of its
//! own (a `tokenizer.json` that does not change is stored once across
//! versions). Nothing else changes: a pack is a skeleton blob that several
//! files name, so pull, verify, gc and remotes read it as any other.

use super::Cut;
use reg_format::manifest::Piece;
use reg_store::BlobId;

/// Skeletons up to this many bytes are packed with others.
pub(crate) const PACKED_SKELETON_MAX: usize = 64 << 10;

/// The most bytes one pack holds.
pub(crate) const PACK_MAX: usize = 16 << 20;

/// Which blob each file's skeleton is in, and every skeleton blob to store.
pub(crate) struct Skeletons {
    /// The skeleton blob of each file, in the cuts' order.
    pub(crate) of_file: Vec<BlobId>,
    /// Each distinct skeleton blob with its bytes.
    pub(crate) blobs: Vec<(BlobId, Vec<u8>)>,
}

/// Pack the small skeletons of `cuts` (files in path order), moving their
/// skeleton pieces to their place in the pack; the cuts' skeleton bytes
/// are taken.
pub(crate) fn pack(cuts: &mut [Cut<'_>]) -> Skeletons {
    let mut of_file: Vec<Option<usize>> = vec![None; cuts.len()];
    let mut own: Vec<(usize, BlobId, Vec<u8>)> = Vec::new();
    let mut packs: Vec<Vec<u8>> = Vec::new();
    for (i, cut) in cuts.iter_mut().enumerate() {
        let bytes = std::mem::take(&mut cut.skeleton);
        if bytes.len() > PACKED_SKELETON_MAX {
            own.push((i, BlobId::of(&bytes), bytes));
            continue;
        }
        if packs.last().is_none_or(|p| p.len() + bytes.len() > PACK_MAX) {
            packs.push(Vec::new());
        }
        let Some(current) = packs.last_mut() else { continue };
        let base = current.len() as u64;
        for piece in &mut cut.pieces {
            if let Piece::Skeleton { offset, .. } = piece {
                *offset += base;
            }
        }
        current.extend_from_slice(&bytes);
        of_file[i] = Some(packs.len() - 1);
    }
    let pack_ids: Vec<BlobId> = packs.iter().map(|p| BlobId::of(p)).collect();
    let mut ids = vec![BlobId([0; 32]); cuts.len()];
    for (i, p) in of_file.iter().enumerate() {
        if let Some(p) = p {
            ids[i] = pack_ids[*p];
        }
    }
    let mut blobs: Vec<(BlobId, Vec<u8>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, id, bytes) in own {
        ids[i] = id;
        if seen.insert(id) {
            blobs.push((id, bytes));
        }
    }
    for (id, bytes) in pack_ids.into_iter().zip(packs) {
        if seen.insert(id) {
            blobs.push((id, bytes));
        }
    }
    Skeletons { of_file: ids, blobs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cut(skeleton: &[u8]) -> Cut<'static> {
        Cut {
            skeleton: skeleton.to_vec(),
            pieces: vec![Piece::Skeleton {
                offset: 0,
                len: skeleton.len() as u64,
            }],
            key_blobs: HashMap::new(),
        }
    }

    #[test]
    fn small_skeletons_share_a_pack_and_their_pieces_point_into_it() {
        let big = vec![9u8; PACKED_SKELETON_MAX + 1];
        let mut cuts = vec![cut(b"alpha"), cut(&big), cut(b"beta!"), cut(b"")];
        let s = pack(&mut cuts);
        assert_eq!(s.of_file[0], s.of_file[2]);
        assert_eq!(s.of_file[0], s.of_file[3]);
        assert_eq!(s.of_file[1], BlobId::of(&big));
        let packed = &s.blobs.iter().find(|(id, _)| *id == s.of_file[0]).expect("pack").1;
        assert_eq!(packed, b"alphabeta!");
        assert_eq!(cuts[2].pieces, vec![Piece::Skeleton { offset: 5, len: 5 }]);
        assert_eq!(s.blobs.len(), 2);
    }

    #[test]
    fn a_lone_small_skeleton_is_its_own_blob_as_before() {
        let mut cuts = vec![cut(b"only one")];
        let s = pack(&mut cuts);
        assert_eq!(s.of_file, vec![BlobId::of(b"only one")]);
    }

    #[test]
    fn packs_stop_at_their_limit() {
        let piece = vec![1u8; PACKED_SKELETON_MAX];
        let n = PACK_MAX / PACKED_SKELETON_MAX + 1;
        let mut cuts: Vec<Cut<'static>> = (0..n).map(|_| cut(&piece)).collect();
        let s = pack(&mut cuts);
        assert!(s.blobs.iter().all(|(_, b)| b.len() <= PACK_MAX));
        assert_ne!(s.of_file[0], s.of_file[n - 1]);
        assert_eq!(
            cuts[n - 1].pieces,
            vec![Piece::Skeleton {
                offset: 0,
                len: piece.len() as u64
            }]
        );
    }
}
