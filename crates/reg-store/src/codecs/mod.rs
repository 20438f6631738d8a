//! Lossless transforms for tensor bytes: byte planes, XOR against a parent
//! blob, and a per-plane choice between storing and zstd.
//!
//! Pure functions, bytes in and bytes out: this module knows element widths
//! (1, 2, 4 or 8 bytes) and an optional parent byte slice, never dtypes or
//! checkpoints.
//!
//! - [`encode`] applies a given [`Transform`].
//! - [`choose`] tries what pays on a sample of the blob (zstd alone, byte
//!   planes, planes of the XOR with the parent) and encodes with the winner.
//! - [`decode`] / [`decode_into`] invert either; [`inspect`] reads what an
//!   encoding needs (its transform, so its parent) without decoding it.
//!
//! An encoding is self-describing (see `format.rs`): a header with the
//! transform, the raw length, a checksum of the raw bytes (and of the
//! parent's), then blocks of 1 MiB of raw bytes, each holding one section
//! per plane, stored as is or as one zstd frame. A block where at least a
//! quarter of the elements are zero (after the XOR: equal to the parent's)
//! is sparse: a bitmap of the other elements, then their planes only.
//! Decoding checks every length before using it, allocates the output and
//! about two blocks of scratch, and verifies the checksums, so a wrong
//! parent or corrupt bytes give an error, never wrong bytes.
//!
//! Ratios and single-core speeds on synthetic tensors:
//! `cargo test --release -p reg-store codecs::bench -- --ignored --nocapture`.
//!
//! ```
//! use reg_store::codecs::{choose, decode, Parent};
//! use reg_store::BlobId;
//! # fn main() -> Result<(), reg_store::codecs::CodecError> {
//! let parent: Vec<u8> = (0..4096u32).flat_map(|i| (i as f32 * 0.01).to_le_bytes()).collect();
//! let mut raw = parent.clone();
//! raw[100] ^= 1;
//! let p = Parent { id: BlobId::of(&parent), bytes: &parent };
//! let enc = choose(&raw, 4, Some(p), 3)?;
//! assert_eq!(enc.transform.parent(), Some(p.id));
//! assert_eq!(decode(&enc.bytes, raw.len() as u64, Some(&parent))?, raw);
//! # Ok(()) }
//! ```

mod checksum;
mod format;
mod huffman;
mod planes;

#[cfg(test)]
mod bench;
#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;

use crate::BlobId;
use format::{
    Header, BLOCK_DENSE, BLOCK_SPARSE, KIND_NONE, KIND_PLANES, KIND_XOR, SECTION_HEAD, SECTION_HUFFMAN, SECTION_STORED,
    SECTION_ZSTD,
};
use serde::{Deserialize, Serialize};
use zstd::zstd_safe::CParameter;

/// log2 of the raw bytes per block.
const BLOCK_LOG: u8 = 20;
/// The fast zstd level tried on every plane besides the caller's.
const FAST_LEVEL: i32 = 1;
/// Sections shorter than this are stored as they are.
const MIN_ZSTD: usize = 64;
/// Raw bytes per sample window in [`choose`].
const SAMPLE_WINDOW: usize = 64 << 10;
/// [`choose`] samples about one byte in this many.
const SAMPLE_EVERY: usize = 8;
/// zstd alone is tried on one sample window in this many.
const NONE_EVERY: usize = 4;
/// At most this many sample windows.
const MAX_SAMPLES: usize = 64;

/// How a blob body is transformed before its planes are stored or
/// compressed with zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Transform {
    /// The bytes as they are (zstd, or stored when zstd does not pay).
    None,
    /// Byte planes of `width`-byte elements: all first bytes, then all
    /// second bytes, ...; each plane stored or compressed on its own.
    Planes {
        /// Element width in bytes: 1, 2, 4 or 8.
        width: u8,
    },
    /// Byte planes of the XOR with `parent` (a blob of the same length),
    /// for the planes where that pays; the others as in [`Transform::Planes`].
    XorPlanes {
        /// Element width in bytes: 1, 2, 4 or 8.
        width: u8,
        /// The blob XORed against; decoding needs its bytes.
        parent: BlobId,
    },
}

impl Transform {
    /// The blob whose bytes decoding needs, if any.
    pub fn parent(&self) -> Option<BlobId> {
        match self {
            Transform::XorPlanes { parent, .. } => Some(*parent),
            _ => None,
        }
    }

    /// Element width in bytes (1 for [`Transform::None`]).
    pub fn width(&self) -> u8 {
        match self {
            Transform::None => 1,
            Transform::Planes { width } | Transform::XorPlanes { width, .. } => *width,
        }
    }

    /// Lowercase name for output: `none`, `planes` or `xor-planes`.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Planes { .. } => "planes",
            Transform::XorPlanes { .. } => "xor-planes",
        }
    }
}

/// A parent blob to encode against: its id (recorded) and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Parent<'a> {
    /// The parent's blob id.
    pub id: BlobId,
    /// The parent's raw bytes.
    pub bytes: &'a [u8],
}

/// An encoded blob body and the transform it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The transform applied (also recorded inside `bytes`).
    pub transform: Transform,
    /// The self-describing encoding.
    pub bytes: Vec<u8>,
}

/// What [`inspect`] reads from an encoding's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// The transform applied.
    pub transform: Transform,
    /// Length of the decoded bytes.
    pub raw_len: u64,
}

/// Errors of [`encode`], [`choose`] and [`decode`].
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The element width is not 1, 2, 4 or 8.
    #[error("element width {0} is not 1, 2, 4 or 8")]
    BadWidth(u8),
    /// The transform needs the parent's bytes and none were given.
    #[error("the encoding is a delta against blob {0}, whose bytes were not given")]
    ParentMissing(BlobId),
    /// The parent's length differs from the blob's.
    #[error("parent is {parent} bytes and the blob {raw}: XOR needs equal lengths")]
    ParentLength {
        /// The blob's raw length.
        raw: u64,
        /// The parent's length.
        parent: u64,
    },
    /// The given parent is not the one the blob was encoded against.
    #[error("the parent given is not blob {0}, which the encoding is a delta against")]
    WrongParent(BlobId),
    /// The caller's raw length differs from the encoding's.
    #[error("the encoding decodes to {header} bytes, {expected} expected")]
    LengthMismatch {
        /// Raw length in the encoding's header.
        header: u64,
        /// Raw length the caller expected.
        expected: u64,
    },
    /// The encoded bytes are damaged.
    #[error("corrupt encoding: {0}")]
    Corrupt(&'static str),
    /// zstd failed while compressing.
    #[error("zstd: {0}")]
    Zstd(#[from] std::io::Error),
}

/// How one plane is coded, for every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PlaneCodec {
    /// As it is.
    Stored,
    /// zstd at this level, kept only where it saves at least 1/64.
    Zstd(i32),
    /// Order-0 Huffman (see `huffman.rs`), kept only where it saves at
    /// least 1/64.
    Huffman,
}

/// Everything [`encode_plan`] needs to know.
#[derive(Clone, Copy, Debug)]
struct Plan {
    kind: u8,
    width: usize,
    xor_mask: u8,
    codecs: [PlaneCodec; 8],
}

/// zstd compressors, one per level, reused across sections.
struct Compressors {
    zstd: Vec<(i32, zstd::bulk::Compressor<'static>)>,
    /// Room for Huffman streams, reused from section to section.
    huffman: Vec<u8>,
}

impl Compressors {
    fn new() -> Compressors {
        Compressors {
            zstd: Vec::new(),
            huffman: Vec::new(),
        }
    }

    fn get(&mut self, level: i32) -> Result<&mut zstd::bulk::Compressor<'static>, CodecError> {
        let at = match self.zstd.iter().position(|(l, _)| *l == level) {
            Some(at) => at,
            None => {
                let mut c = zstd::bulk::Compressor::new(level)?;
                c.set_parameter(CParameter::ContentSizeFlag(false))?;
                c.set_parameter(CParameter::ChecksumFlag(false))?;
                c.set_parameter(CParameter::DictIdFlag(false))?;
                self.zstd.push((level, c));
                self.zstd.len() - 1
            }
        };
        Ok(&mut self.zstd[at].1)
    }

    /// Compressed size of `data` at `level` (for sampling).
    fn size(&mut self, data: &[u8], level: i32, buf: &mut Vec<u8>) -> Result<usize, CodecError> {
        buf.clear();
        buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
        Ok(self.get(level)?.compress_to_buffer(data, buf)?)
    }
}

/// Buffers and zstd contexts that encodings and decodings reuse from one
/// call to the next (keep one per thread: [`choose_in`],
/// [`decode_into_in`]). Without one, every call allocates and zeroes its
/// own, which costs a few percent on 8 MiB frames.
pub struct Workspace {
    zstd: Compressors,
    dec: Option<zstd::bulk::Decompressor<'static>>,
    split: Vec<u8>,
    xor: Vec<u8>,
    compact: Vec<u8>,
    bitmap: Vec<u8>,
    sample: [Vec<u8>; 5],
}

impl Default for Workspace {
    fn default() -> Workspace {
        Workspace::new()
    }
}

impl Workspace {
    /// An empty workspace (buffers grow on first use).
    pub fn new() -> Workspace {
        Workspace {
            zstd: Compressors::new(),
            dec: None,
            split: Vec::new(),
            xor: Vec::new(),
            compact: Vec::new(),
            bitmap: Vec::new(),
            sample: Default::default(),
        }
    }
}

/// `buf` taken out of its place, at least `len` bytes long (grown with
/// zeros only the first time; callers overwrite what they use).
fn taken(buf: &mut Vec<u8>, len: usize) -> Vec<u8> {
    let mut b = std::mem::take(buf);
    if b.len() < len {
        b.resize(len, 0);
    }
    b
}

fn check_width(width: u8) -> Result<usize, CodecError> {
    match width {
        1 | 2 | 4 | 8 => Ok(width as usize),
        _ => Err(CodecError::BadWidth(width)),
    }
}

/// True when a section compressed to `z` bytes is worth it over storing
/// its `len` bytes: it saves at least 1/64.
fn pays(z: usize, len: usize) -> bool {
    z + len / 64 < len
}

/// Encode `raw` with the given transform. Every plane is compressed with
/// zstd at `level` where that saves at least 1/64 of it, and stored as it is
/// elsewhere; [`Transform::XorPlanes`] XORs every plane and needs `parent`,
/// of the same length as `raw`.
pub fn encode(raw: &[u8], transform: Transform, parent: Option<&[u8]>, level: i32) -> Result<Encoded, CodecError> {
    encode_planes_as(raw, transform, parent, PlaneCodec::Zstd(level))
}

/// [`encode`] with every plane coded as `codec` where it pays.
fn encode_planes_as(
    raw: &[u8],
    transform: Transform,
    parent: Option<&[u8]>,
    codec: PlaneCodec,
) -> Result<Encoded, CodecError> {
    let width = check_width(transform.width())?;
    let (kind, xor_mask, parent) = match transform {
        Transform::None => (KIND_NONE, 0, None),
        Transform::Planes { .. } => (KIND_PLANES, 0, None),
        Transform::XorPlanes { parent: id, .. } => {
            let bytes = parent.ok_or(CodecError::ParentMissing(id))?;
            if bytes.len() != raw.len() {
                return Err(CodecError::ParentLength {
                    raw: raw.len() as u64,
                    parent: bytes.len() as u64,
                });
            }
            (KIND_XOR, ((1u16 << width) - 1) as u8, Some(Parent { id, bytes }))
        }
    };
    let plan = Plan {
        kind,
        width,
        xor_mask,
        codecs: [codec; 8],
    };
    let bytes = encode_plan(raw, &plan, parent, &mut Workspace::new())?;
    Ok(Encoded { transform, bytes })
}

fn encode_plan(raw: &[u8], plan: &Plan, parent: Option<Parent<'_>>, ws: &mut Workspace) -> Result<Vec<u8>, CodecError> {
    let w = plan.width;
    let body = raw.len() / w * w;
    let parent = parent.filter(|_| plan.kind == KIND_XOR);
    let header = Header {
        kind: plan.kind,
        width: w as u8,
        block_log: BLOCK_LOG,
        xor_mask: plan.xor_mask,
        raw_len: raw.len() as u64,
        raw_sum: 0,
        parent_sum: 0,
        parent: parent.map(|p| p.id),
    };
    let mut out = Vec::with_capacity(header.len() + raw.len() / 2 + 64);
    header.write(&mut out);
    out.extend_from_slice(&raw[body..]);

    let block_len = (1usize << BLOCK_LOG) / w * w;
    let scratch_len = body.min(block_len);
    let mut split_buf = taken(&mut ws.split, scratch_len);
    let mut xor_buf = taken(&mut ws.xor, if parent.is_some() { scratch_len } else { 0 });
    let mut compact = taken(&mut ws.compact, if w > 1 { scratch_len } else { 0 });
    let mut bitmap = taken(&mut ws.bitmap, if w > 1 { (scratch_len / w).div_ceil(8) } else { 0 });
    let zstd = &mut ws.zstd;
    let mask = planes::byte_mask(w, plan.xor_mask);
    let mut raw_sum = checksum::Checksum::new();
    let mut parent_sum = checksum::Checksum::new();
    for (b, block) in raw[..body].chunks(block_len).enumerate() {
        raw_sum.update(block);
        let src = match parent {
            Some(p) => {
                let pb = &p.bytes[b * block_len..b * block_len + block.len()];
                parent_sum.update(pb);
                let x = &mut xor_buf[..block.len()];
                planes::xor_into(x, block, pb, mask);
                &*x
            }
            None => block,
        };
        let e = block.len() / w;
        let src = if sparse_pays(w, src) {
            out.push(BLOCK_SPARSE);
            let bits = &mut bitmap[..e.div_ceil(8)];
            let k = planes::gather(w, src, bits, &mut compact[..block.len()]);
            write_section(&mut out, bits, PlaneCodec::Zstd(1), zstd)?;
            &compact[..k * w]
        } else {
            out.push(BLOCK_DENSE);
            src
        };
        let split = &mut split_buf[..src.len()];
        planes::split(w, src, split);
        for (p, codec) in plan.codecs.iter().enumerate().take(w) {
            let len = src.len() / w;
            write_section(&mut out, &split[p * len..(p + 1) * len], *codec, zstd)?;
        }
    }
    raw_sum.update(&raw[body..]);
    if let Some(p) = parent {
        parent_sum.update(&p.bytes[body..]);
        out[24..32].copy_from_slice(&parent_sum.finish().to_le_bytes());
    }
    out[16..24].copy_from_slice(&raw_sum.finish().to_le_bytes());
    (ws.split, ws.xor, ws.compact, ws.bitmap) = (split_buf, xor_buf, compact, bitmap);
    Ok(out)
}

fn write_section(out: &mut Vec<u8>, plane: &[u8], codec: PlaneCodec, zstd: &mut Compressors) -> Result<(), CodecError> {
    let at = out.len();
    out.extend_from_slice(&[SECTION_STORED, 0, 0, 0, 0]);
    let start = out.len();
    match codec {
        _ if plane.len() < MIN_ZSTD => {}
        PlaneCodec::Stored => {}
        PlaneCodec::Zstd(level) => {
            out.reserve(zstd::zstd_safe::compress_bound(plane.len()));
            let mut cursor = std::io::Cursor::new(&mut *out);
            cursor.set_position(start as u64);
            let z = zstd.get(level)?.compress_to_buffer(plane, &mut cursor)?;
            if pays(z, plane.len()) {
                out[at] = SECTION_ZSTD;
                out[at + 1..at + SECTION_HEAD].copy_from_slice(&(z as u32).to_le_bytes());
                return Ok(());
            }
            out.truncate(start);
        }
        PlaneCodec::Huffman => {
            let counts = huffman::histogram(plane);
            let lens = huffman::code_lengths(&counts);
            let size = huffman::HEADER + huffman::coded_bits(&counts, &lens).div_ceil(8) as usize;
            if pays(size, plane.len()) {
                huffman::encode(plane, &lens, out, &mut zstd.huffman);
                out[at] = SECTION_HUFFMAN;
                let n = (out.len() - start) as u32;
                out[at + 1..at + SECTION_HEAD].copy_from_slice(&n.to_le_bytes());
                return Ok(());
            }
        }
    }
    out.extend_from_slice(plane);
    out[at + 1..at + SECTION_HEAD].copy_from_slice(&(plane.len() as u32).to_le_bytes());
    Ok(())
}

/// A block (or sample window) is coded sparse when at least a quarter of
/// its elements are all zero bytes: a bitmap of the nonzero elements, then
/// the planes of those only. Never for single bytes.
fn sparse_pays(w: usize, src: &[u8]) -> bool {
    w > 1 && planes::zero_elements(w, src) * 4 >= src.len() / w
}

/// Sizes of one plane over the sample windows, in bytes; a size is the
/// plane's length where that codec does not pay.
#[derive(Clone, Copy, Debug, Default)]
struct Trial {
    len: usize,
    huff: usize,
    fast: usize,
    level: usize,
}

impl Trial {
    fn best(&self) -> usize {
        self.len.min(self.huff).min(self.fast).min(self.level)
    }

    /// The cheapest codec within 1% of the smallest: stored, then Huffman,
    /// then the faster of the two zstd levels, then the other.
    fn codec(&self, level: i32) -> PlaneCodec {
        let best = self.best();
        let near = |size: usize| size <= best + best / 100;
        let (faster, slower) = if level < FAST_LEVEL {
            ((level, self.level), (FAST_LEVEL, self.fast))
        } else {
            ((FAST_LEVEL, self.fast), (level, self.level))
        };
        if near(self.len) {
            PlaneCodec::Stored
        } else if near(self.huff) {
            PlaneCodec::Huffman
        } else if near(faster.1) {
            PlaneCodec::Zstd(faster.0)
        } else {
            PlaneCodec::Zstd(slower.0)
        }
    }
}

/// What coding the sample windows one way (plain or XORed) gave.
#[derive(Clone, Copy, Debug, Default)]
struct Candidate {
    planes: [Trial; 8],
    bitmaps: usize,
    sparse: bool,
}

impl Candidate {
    fn total(&self, w: usize) -> usize {
        self.bitmaps + self.planes[..w].iter().map(Trial::best).sum::<usize>()
    }
}

/// The working state of [`choose`]'s sampling.
struct Sampler<'z> {
    w: usize,
    level: i32,
    zstd: &'z mut Compressors,
    buf: Vec<u8>,
    split: Vec<u8>,
    compact: Vec<u8>,
    bitmap: Vec<u8>,
}

impl Sampler<'_> {
    fn size(&mut self, data: &[u8], level: i32) -> Result<usize, CodecError> {
        if data.len() < MIN_ZSTD {
            return Ok(data.len());
        }
        let z = self.zstd.size(data, level, &mut self.buf)?;
        Ok(if pays(z, data.len()) { z } else { data.len() })
    }

    /// Code one window (already XORed if need be) into `c`.
    fn add(&mut self, c: &mut Candidate, win: &[u8]) -> Result<(), CodecError> {
        let w = self.w;
        let mut compact = std::mem::take(&mut self.compact);
        let mut split = std::mem::take(&mut self.split);
        let mut src = win;
        if sparse_pays(w, win) {
            let e = win.len() / w;
            let mut bitmap = std::mem::take(&mut self.bitmap);
            bitmap.resize(e.div_ceil(8), 0);
            compact.resize(win.len(), 0);
            let k = planes::gather(w, win, &mut bitmap, &mut compact);
            c.bitmaps += self.size(&bitmap, FAST_LEVEL)?;
            c.sparse = true;
            self.bitmap = bitmap;
            src = &compact[..k * w];
        }
        split.resize(src.len(), 0);
        planes::split(w, src, &mut split);
        let len = src.len() / w;
        for p in 0..w {
            let plane = &split[p * len..(p + 1) * len];
            let (huff, order0) = huffman_trial(plane, w);
            // A plane whose bytes are all but uniformly spread (the low
            // mantissa bytes of floats) gives zstd nothing to find either:
            // skip the trial, the costliest part of sampling.
            let uniform = order0 * 1000 >= len as u64 * 995;
            let fast = if uniform { len } else { self.size(plane, FAST_LEVEL)? };
            // The configured level is tried only where zstd is the
            // candidate: it found more than Huffman's order-0 coding.
            let at_level = if self.level != FAST_LEVEL && fast < len && fast < huff {
                self.size(plane, self.level)?
            } else {
                fast
            };
            let t = &mut c.planes[p];
            t.len += len;
            t.huff += huff;
            t.fast += fast;
            t.level += at_level;
        }
        self.split = split;
        self.compact = compact;
        Ok(())
    }
}

/// What Huffman coding `plane` (a sample window's plane of `w`-byte
/// elements) would take, with its share of the code-length header of the
/// block-sized section it stands for (its length when that does not pay);
/// and its order-0 coded bytes without a header, a cheap bound on what
/// any coder that only counts bytes can save.
fn huffman_trial(plane: &[u8], w: usize) -> (usize, u64) {
    if plane.len() < MIN_ZSTD {
        return (plane.len(), plane.len() as u64);
    }
    let counts = huffman::histogram(plane);
    let lens = huffman::code_lengths(&counts);
    let order0 = huffman::coded_bits(&counts, &lens).div_ceil(8);
    let section = (1usize << BLOCK_LOG) / w;
    let size = (huffman::HEADER * plane.len()).div_ceil(section) + order0 as usize;
    (if pays(size, plane.len()) { size } else { plane.len() }, order0)
}

/// Where the sample windows start: the whole body when it is small, else
/// evenly spread windows covering about 1 / [`SAMPLE_EVERY`] of it.
fn sample_windows(body: usize) -> Vec<(usize, usize)> {
    if body <= SAMPLE_WINDOW * SAMPLE_EVERY {
        return vec![(0, body)];
    }
    let k = (body / (SAMPLE_WINDOW * SAMPLE_EVERY)).clamp(4, MAX_SAMPLES);
    (0..k)
        .map(|i| {
            let mid = (2 * i + 1) * (body / (2 * k));
            let start = (mid.saturating_sub(SAMPLE_WINDOW / 2) / 8 * 8).min(body - SAMPLE_WINDOW);
            (start, SAMPLE_WINDOW)
        })
        .collect()
}

/// Pick and apply the transform that pays for `raw`, a run of `width`-byte
/// elements, measured on a sample of about 1/8 of it (all of it below
/// 512 KiB): zstd alone at `level`; byte planes; and, when `parent` is given
/// with the same length, planes of the XOR with the parent, for the planes
/// where that is smaller. Each plane is stored, or compressed with zstd at
/// level 1 or at `level`, whichever is smallest (the cheaper when within 1%).
/// Keeps the smallest transform; on a tie the cheaper to decode (zstd alone
/// over planes); and depends on the parent only when that saves at least 3%
/// over the best without it.
pub fn choose(raw: &[u8], width: u8, parent: Option<Parent<'_>>, level: i32) -> Result<Encoded, CodecError> {
    choose_in(&mut Workspace::new(), raw, width, parent, level)
}

/// [`choose`] with the buffers of `ws`.
pub fn choose_in(
    ws: &mut Workspace,
    raw: &[u8],
    width: u8,
    parent: Option<Parent<'_>>,
    level: i32,
) -> Result<Encoded, CodecError> {
    let w = check_width(width)?;
    let parent = parent.filter(|p| p.bytes.len() == raw.len());
    let body = raw.len() / w * w;
    let mut plan = Plan {
        kind: KIND_NONE,
        width: 1,
        xor_mask: 0,
        codecs: [PlaneCodec::Zstd(level); 8],
    };
    if body < w * MIN_ZSTD {
        let bytes = encode_plan(raw, &plan, None, ws)?;
        return Ok(Encoded {
            transform: Transform::None,
            bytes,
        });
    }

    let [buf, split, compact, bitmap, mut xored] = std::mem::take(&mut ws.sample);
    let mut sampler = Sampler {
        w,
        level,
        zstd: &mut ws.zstd,
        buf,
        split,
        compact,
        bitmap,
    };
    let (mut plain, mut xor) = (Candidate::default(), Candidate::default());
    // zstd alone costs as much to try as all the planes: it is tried on
    // every NONE_EVERY-th window only, and compared with the planes there.
    let (mut none, mut planes_there) = (0, 0);
    let all = planes::byte_mask(w, ((1u16 << w) - 1) as u8);
    let windows = sample_windows(body);
    let none_windows = windows.len().div_ceil(NONE_EVERY);
    for (i, &(start, len)) in windows.iter().enumerate() {
        let win = &raw[start..start + len];
        let before = plain.total(w);
        if w > 1 {
            sampler.add(&mut plain, win)?;
        }
        if i % NONE_EVERY == 0 {
            none += sampler.size(win, level)?;
            planes_there += plain.total(w) - before;
        }
        if let Some(p) = parent {
            xored.resize(len, 0);
            planes::xor_into(&mut xored, win, &p.bytes[start..start + len], all);
            sampler.add(&mut xor, &xored)?;
        }
    }

    let mut best = plain.total(w);
    if w > 1 && planes_there < none {
        plan.kind = KIND_PLANES;
        plan.width = w;
        for p in 0..w {
            plan.codecs[p] = plain.planes[p].codec(level);
        }
    } else {
        // zstd alone, scaled to the whole sample.
        best = none * windows.len() / none_windows;
    }
    if parent.is_some() {
        // Sparse windows pack elements that are zero in every plane: then
        // all planes are XORed. Otherwise only those where it is smaller.
        let (mask, total) = if xor.sparse || plain.sparse || w == 1 {
            (((1u16 << w) - 1) as u8, xor.total(w))
        } else {
            let mut mask = 0u8;
            let mut total = 0;
            for p in 0..w {
                let (x, n) = (xor.planes[p].best(), plain.planes[p].best());
                if x < n {
                    mask |= 1 << p;
                }
                total += x.min(n);
            }
            (mask, total)
        };
        if mask != 0 && total * 100 <= best * 97 {
            plan.kind = KIND_XOR;
            plan.width = w;
            plan.xor_mask = mask;
            for p in 0..w {
                let t = if mask >> p & 1 == 1 {
                    &xor.planes[p]
                } else {
                    &plain.planes[p]
                };
                plan.codecs[p] = t.codec(level);
            }
        }
    }
    let transform = match (plan.kind, parent) {
        (KIND_XOR, Some(p)) => Transform::XorPlanes { width, parent: p.id },
        (KIND_PLANES, _) => Transform::Planes { width },
        _ => Transform::None,
    };
    let Sampler {
        buf,
        split,
        compact,
        bitmap,
        ..
    } = sampler;
    ws.sample = [buf, split, compact, bitmap, xored];
    let bytes = encode_plan(raw, &plan, parent, ws)?;
    Ok(Encoded { transform, bytes })
}

/// The transform and raw length an encoding records.
pub fn inspect(encoded: &[u8]) -> Result<Info, CodecError> {
    let h = Header::parse(encoded)?;
    let transform = match (h.kind, h.parent) {
        (KIND_NONE, _) => Transform::None,
        (KIND_PLANES, _) => Transform::Planes { width: h.width },
        (_, Some(parent)) => Transform::XorPlanes { width: h.width, parent },
        (_, None) => return Err(CodecError::Corrupt("delta without a parent")),
    };
    Ok(Info {
        transform,
        raw_len: h.raw_len,
    })
}

/// Decode an encoding of `raw_len` bytes; `parent` must be the parent's
/// bytes when the encoding is [`Transform::XorPlanes`] (it is ignored
/// otherwise). Allocates `raw_len` bytes, after checking that the encoding
/// says the same, plus one block of scratch.
pub fn decode(encoded: &[u8], raw_len: u64, parent: Option<&[u8]>) -> Result<Vec<u8>, CodecError> {
    let h = Header::parse(encoded)?;
    if h.raw_len != raw_len {
        return Err(CodecError::LengthMismatch {
            header: h.raw_len,
            expected: raw_len,
        });
    }
    let len = usize::try_from(raw_len).map_err(|_| CodecError::Corrupt("raw length does not fit in memory"))?;
    // Every block needs at least one section head per plane: a cheap bound
    // on the raw length before allocating it.
    let block_len = (1usize << h.block_log) / h.width as usize * h.width as usize;
    let min_sections = (len / h.width as usize * h.width as usize).div_ceil(block_len) * h.width as usize;
    if min_sections.saturating_mul(SECTION_HEAD) > encoded.len() {
        return Err(CodecError::Corrupt("truncated"));
    }
    let mut out = vec![0u8; len];
    decode_into(encoded, parent, &mut out)?;
    Ok(out)
}

/// Decode the next section into `out`, which it must fill exactly.
fn read_section(
    cur: &mut format::Cursor<'_>,
    dec: &mut zstd::bulk::Decompressor<'_>,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let (codec, data) = cur.section()?;
    match codec {
        SECTION_STORED if data.len() == out.len() => out.copy_from_slice(data),
        SECTION_STORED => return Err(CodecError::Corrupt("stored section of the wrong length")),
        SECTION_HUFFMAN => huffman::decode(data, out)?,
        SECTION_ZSTD => {
            let n = dec
                .decompress_to_buffer(data, out)
                .map_err(|_| CodecError::Corrupt("bad zstd frame"))?;
            if n != out.len() {
                return Err(CodecError::Corrupt("zstd section of the wrong length"));
            }
        }
        _ => return Err(CodecError::Corrupt("unknown section codec")),
    }
    Ok(())
}

/// Decode an encoding into `out`, whose length must be the raw length.
/// On error, `out` holds garbage.
pub fn decode_into(encoded: &[u8], parent: Option<&[u8]>, out: &mut [u8]) -> Result<(), CodecError> {
    decode_into_in(&mut Workspace::new(), encoded, parent, out)
}

/// [`decode_into`] with the buffers and zstd context of `ws`.
pub fn decode_into_in(
    ws: &mut Workspace,
    encoded: &[u8],
    parent: Option<&[u8]>,
    out: &mut [u8],
) -> Result<(), CodecError> {
    let h = Header::parse(encoded)?;
    if h.raw_len != out.len() as u64 {
        return Err(CodecError::LengthMismatch {
            header: h.raw_len,
            expected: out.len() as u64,
        });
    }
    let w = h.width as usize;
    let parent = match h.parent {
        Some(id) => {
            let p = parent.ok_or(CodecError::ParentMissing(id))?;
            if p.len() != out.len() {
                return Err(CodecError::ParentLength {
                    raw: out.len() as u64,
                    parent: p.len() as u64,
                });
            }
            if checksum::of(p) != h.parent_sum {
                return Err(CodecError::WrongParent(id));
            }
            Some(p)
        }
        None => None,
    };
    let body = out.len() / w * w;
    let mut cur = format::Cursor::new(encoded, h.len());
    let tail = cur.take(out.len() - body)?;
    out[body..].copy_from_slice(tail);

    let block_len = (1usize << h.block_log) / w * w;
    let mask = planes::byte_mask(w, h.xor_mask);
    let scratch_len = body.min(block_len);
    let mut scratch = taken(&mut ws.split, scratch_len);
    let (mut compact, mut bitmap) = (std::mem::take(&mut ws.compact), std::mem::take(&mut ws.bitmap));
    let dec = match ws.dec.as_mut() {
        Some(d) => d,
        None => ws.dec.insert(zstd::bulk::Decompressor::new()?),
    };
    let mut sum = checksum::Checksum::new();
    for (b, block) in out[..body].chunks_mut(block_len).enumerate() {
        let e = block.len() / w;
        let mode = cur.take(1)?[0];
        let k = match mode {
            BLOCK_DENSE => e,
            BLOCK_SPARSE if w > 1 => {
                bitmap.resize(e.div_ceil(8), 0);
                read_section(&mut cur, dec, &mut bitmap)?;
                let k = bitmap.iter().map(|b| b.count_ones() as usize).sum::<usize>();
                if !e.is_multiple_of(8) && bitmap.last().is_some_and(|&last| last >> (e % 8) != 0) {
                    return Err(CodecError::Corrupt("bitmap marks elements past the block"));
                }
                k
            }
            _ => return Err(CodecError::Corrupt("unknown block mode")),
        };
        let split = &mut scratch[..k * w];
        if k > 0 {
            for plane in split.chunks_exact_mut(k) {
                read_section(&mut cur, dec, plane)?;
            }
        } else {
            for _ in 0..w {
                read_section(&mut cur, dec, &mut [])?;
            }
        }
        if mode == BLOCK_SPARSE {
            compact.resize(scratch_len, 0);
            planes::merge(w, split, &mut compact[..k * w]);
            planes::scatter(w, &bitmap, &compact[..k * w], block);
        } else {
            planes::merge(w, split, block);
        }
        if let Some(p) = parent {
            planes::xor_in_place(block, &p[b * block_len..b * block_len + block.len()], mask);
        }
        sum.update(block);
    }
    sum.update(&out[body..]);
    if !cur.at_end() {
        return Err(CodecError::Corrupt("trailing bytes"));
    }
    if sum.finish() != h.raw_sum {
        return Err(CodecError::Corrupt("checksum mismatch"));
    }
    (ws.split, ws.compact, ws.bitmap) = (scratch, compact, bitmap);
    Ok(())
}
