//! Decoding: parse the frame header, check the parent, then read the tail
//! and the blocks back, verifying every length and both checksums.

use super::format::{
    self, FrameHeader, BLOCK_DENSE, BLOCK_SPARSE, KIND_NONE, KIND_PLANES, SECTION_HEAD, SECTION_HUFFMAN,
    SECTION_STORED, SECTION_ZSTD,
};
use super::workspace::{taken, Workspace};
use super::{checksum, huffman, planes, CodecError, Info, Transform};

/// The transform and raw length an encoding records.
pub fn inspect(encoded: &[u8]) -> Result<Info, CodecError> {
    let h = FrameHeader::parse(encoded)?;
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
    let h = FrameHeader::parse(encoded)?;
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
    let h = FrameHeader::parse(encoded)?;
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
