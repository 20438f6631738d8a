//! Buffers and zstd contexts reused from one encoding or decoding to the
//! next.

use super::CodecError;
use zstd::zstd_safe::CParameter;

/// The section coders' state, reused across sections: zstd compressors
/// (one per level) and room for Huffman streams.
pub(super) struct Encoders {
    zstd: Vec<(i32, zstd::bulk::Compressor<'static>)>,
    /// Room for Huffman streams, reused from section to section.
    pub(super) huffman: Vec<u8>,
}

impl Encoders {
    fn new() -> Encoders {
        Encoders {
            zstd: Vec::new(),
            huffman: Vec::new(),
        }
    }

    /// The zstd compressor for `level` (made on first use).
    pub(super) fn get(&mut self, level: i32) -> Result<&mut zstd::bulk::Compressor<'static>, CodecError> {
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
    pub(super) fn size(&mut self, data: &[u8], level: i32, buf: &mut Vec<u8>) -> Result<usize, CodecError> {
        buf.clear();
        buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
        Ok(self.get(level)?.compress_to_buffer(data, buf)?)
    }
}

/// Buffers and zstd contexts that encodings and decodings reuse from one
/// call to the next (keep one per thread: [`super::choose_in`],
/// [`super::decode_into_in`]). Without one, every call allocates and zeroes its
/// own, which costs a few percent on 8 MiB frames.
pub struct Workspace {
    pub(super) encoders: Encoders,
    pub(super) dec: Option<zstd::bulk::Decompressor<'static>>,
    pub(super) split: Vec<u8>,
    pub(super) xor: Vec<u8>,
    pub(super) compact: Vec<u8>,
    pub(super) bitmap: Vec<u8>,
    /// The sampler's buffers (see `choose.rs`).
    pub(super) sample: [Vec<u8>; 5],
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
            encoders: Encoders::new(),
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
pub(super) fn taken(buf: &mut Vec<u8>, len: usize) -> Vec<u8> {
    let mut b = std::mem::take(buf);
    if b.len() < len {
        b.resize(len, 0);
    }
    b
}
