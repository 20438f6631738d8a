//! Choosing what pays: sample the blob, size each plane stored, Huffman
//! coded and with zstd at two levels, plain and XORed with the parent, and
//! encode with the smallest plan.

use super::encode::{check_width, encode_plan, pays, sparse_pays, Plan, PlaneCodec, BLOCK_LOG, MIN_CODED_SECTION};
use super::format::{KIND_NONE, KIND_PLANES, KIND_XOR};
use super::workspace::{Encoders, Workspace};
use super::{huffman, planes, CodecError, Encoded, Parent, Transform};

/// The fast zstd level tried on every plane besides the caller's.
const FAST_LEVEL: i32 = 1;
/// Raw bytes per sample window in [`choose()`].
const SAMPLE_WINDOW: usize = 64 << 10;
/// [`choose()`] samples about one byte in this many.
const SAMPLE_EVERY: usize = 8;
/// zstd alone is tried on one sample window in this many.
const NONE_EVERY: usize = 4;
/// At most this many sample windows.
const MAX_SAMPLES: usize = 64;

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

/// The working state of [`choose()`]'s sampling.
struct Sampler<'z> {
    w: usize,
    level: i32,
    encoders: &'z mut Encoders,
    buf: Vec<u8>,
    split: Vec<u8>,
    compact: Vec<u8>,
    bitmap: Vec<u8>,
}

impl Sampler<'_> {
    fn size(&mut self, data: &[u8], level: i32) -> Result<usize, CodecError> {
        if data.len() < MIN_CODED_SECTION {
            return Ok(data.len());
        }
        let z = self.encoders.size(data, level, &mut self.buf)?;
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
    if plane.len() < MIN_CODED_SECTION {
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

/// [`choose()`] with the buffers of `ws`.
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
    if body < w * MIN_CODED_SECTION {
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
        encoders: &mut ws.encoders,
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
