//! Encoding with a given plan: the frame header, the tail, then per block
//! the mode byte (and a sparse block's bitmap) and one section per plane.

use super::format::{
    FrameHeader, BLOCK_DENSE, BLOCK_SPARSE, KIND_NONE, KIND_PLANES, KIND_XOR, SECTION_HEAD, SECTION_HUFFMAN,
    SECTION_STORED, SECTION_ZSTD,
};
use super::workspace::{taken, Encoders, Workspace};
use super::{checksum, huffman, planes, CodecError, Encoded, Parent, Transform};

/// log2 of the raw bytes per block.
pub(super) const BLOCK_LOG: u8 = 20;
/// Sections shorter than this are stored as they are.
pub(super) const MIN_CODED_SECTION: usize = 64;

/// How one plane is coded, for every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlaneCodec {
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
pub(super) struct Plan {
    /// Transform byte of the frame header (`format::KIND_*`).
    pub(super) kind: u8,
    /// Element width in bytes.
    pub(super) width: usize,
    /// Planes XORed with the parent (bit p for plane p).
    pub(super) xor_mask: u8,
    /// How each plane is coded (the first `width` count).
    pub(super) codecs: [PlaneCodec; 8],
}

/// The element width as a length, when it is 1, 2, 4 or 8.
pub(super) fn check_width(width: u8) -> Result<usize, CodecError> {
    match width {
        1 | 2 | 4 | 8 => Ok(width as usize),
        _ => Err(CodecError::BadWidth(width)),
    }
}

/// True when a section compressed to `z` bytes is worth it over storing
/// its `len` bytes: it saves at least 1/64.
pub(super) fn pays(z: usize, len: usize) -> bool {
    z + len / 64 < len
}

/// Encode `raw` with the given transform. Every plane is compressed with
/// zstd at `level` where that saves at least 1/64 of it, and stored as it is
/// elsewhere; [`Transform::XorPlanes`] XORs every plane and needs `parent`,
/// of the same length as `raw`.
pub fn encode(raw: &[u8], transform: Transform, parent: Option<&[u8]>, level: i32) -> Result<Encoded, CodecError> {
    encode_planes_as(raw, transform, parent, PlaneCodec::Zstd(level))
}

/// [`encode()`] with every plane coded as `codec` where it pays.
pub(super) fn encode_planes_as(
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

/// Encode `raw` as `plan` says (layout in `format.rs`), XORing against
/// `parent` when the plan is a delta; buffers come from `ws`.
pub(super) fn encode_plan(
    raw: &[u8],
    plan: &Plan,
    parent: Option<Parent<'_>>,
    ws: &mut Workspace,
) -> Result<Vec<u8>, CodecError> {
    let w = plan.width;
    let body = raw.len() / w * w;
    let parent = parent.filter(|_| plan.kind == KIND_XOR);
    let header = FrameHeader {
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
    let encoders = &mut ws.encoders;
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
            write_section(&mut out, bits, PlaneCodec::Zstd(1), encoders)?;
            &compact[..k * w]
        } else {
            out.push(BLOCK_DENSE);
            src
        };
        let split = &mut split_buf[..src.len()];
        planes::split(w, src, split);
        for (p, codec) in plan.codecs.iter().enumerate().take(w) {
            let len = src.len() / w;
            write_section(&mut out, &split[p * len..(p + 1) * len], *codec, encoders)?;
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

/// Append one section holding `plane`, coded as `codec` where that pays
/// (see [`pays`]) and stored as it is otherwise.
fn write_section(
    out: &mut Vec<u8>,
    plane: &[u8],
    codec: PlaneCodec,
    encoders: &mut Encoders,
) -> Result<(), CodecError> {
    let at = out.len();
    out.extend_from_slice(&[SECTION_STORED, 0, 0, 0, 0]);
    let start = out.len();
    match codec {
        _ if plane.len() < MIN_CODED_SECTION => {}
        PlaneCodec::Stored => {}
        PlaneCodec::Zstd(level) => {
            out.reserve(zstd::zstd_safe::compress_bound(plane.len()));
            let mut cursor = std::io::Cursor::new(&mut *out);
            cursor.set_position(start as u64);
            let z = encoders.get(level)?.compress_to_buffer(plane, &mut cursor)?;
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
                huffman::encode(plane, &lens, out, &mut encoders.huffman);
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
pub(super) fn sparse_pays(w: usize, src: &[u8]) -> bool {
    w > 1 && planes::zero_elements(w, src) * 4 >= src.len() / w
}
