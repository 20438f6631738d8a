//! A static order-0 Huffman coder for one byte plane.
//!
//! The sign-and-exponent plane of float weights has a few bits of entropy
//! per byte and little else: no repeats for LZ matching to find. zstd
//! still searches for matches at every position (about 200 MB/s on such a
//! plane) and then codes the literals with Huffman anyway; coding the
//! plane with Huffman directly is several times faster and smaller
//! (zstd-1 reaches 2.58x on a real weight plane whose order-0 bound is
//! 3.03x). Planes with runs or repeats (XOR deltas, smooth optimizer
//! state) stay with zstd: the caller measures both.
//!
//! ```text
//! 128 bytes  code length of each symbol, 4 bits each (symbol 2k in the
//!            low nibble of byte k; 0 = symbol absent; at most 11)
//! 12 bytes   byte lengths of streams 0, 1 and 2 (u32 LE); stream 3 is
//!            the rest
//! ...        four streams: stream j codes symbols [j*q, (j+1)*q) of the
//!            plane (q = ceil(n / 4); the last stream gets what is left),
//!            each the canonical codes, bit-reversed and packed LSB-first
//!            into little-endian bytes; zero bits pad its last byte
//! ```
//! Four streams let the decoder follow four independent chains of code
//! lengths at once (as zstd's Huffman literals do), which is what makes
//! it fast. The number of symbols is the plane's length, which the caller
//! knows. Decoding checks every code and that each stream ends exactly at
//! its last byte, so damage is an error, never a panic.

use super::CodecError;

/// Longest code in bits.
pub(super) const MAX_BITS: u32 = 11;
/// Bytes of the header: code lengths and three stream lengths.
pub(super) const HEADER: usize = 128 + 12;
const STREAMS: usize = 4;
const TABLE: usize = 1 << MAX_BITS;
/// Symbols coded between two flushes of the bit writer (5 x 11 bits fit
/// in the 57 bits free after a flush).
const PER_FLUSH: usize = 5;

/// Byte counts of `data` (four interleaved tables, for speed).
pub(super) fn histogram(data: &[u8]) -> [u32; 256] {
    let mut t = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        t[0][c[0] as usize] += 1;
        t[1][c[1] as usize] += 1;
        t[2][c[2] as usize] += 1;
        t[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        t[0][b as usize] += 1;
    }
    let mut out = [0u32; 256];
    for (s, o) in out.iter_mut().enumerate() {
        *o = t[0][s] + t[1][s] + t[2][s] + t[3][s];
    }
    out
}

/// Huffman code lengths for the counts, none longer than [`MAX_BITS`];
/// 0 for absent symbols. A single symbol gets length 1.
pub(super) fn code_lengths(counts: &[u32; 256]) -> [u8; 256] {
    let mut lens = [0u8; 256];
    let mut leaves: Vec<(u64, usize)> = counts
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(s, c)| (u64::from(*c), s))
        .collect();
    match leaves.len() {
        0 => return lens,
        1 => {
            lens[leaves[0].1] = 1;
            return lens;
        }
        _ => {}
    }
    leaves.sort_unstable();
    // Two-queue Huffman: leaves in order of weight, and the merged nodes,
    // which come out in order too. Node i < n is leaf i; parents recorded
    // to read depths back.
    let n = leaves.len();
    let mut weight: Vec<u64> = leaves.iter().map(|l| l.0).collect();
    let mut parent = vec![usize::MAX; 2 * n - 1];
    let (mut next_leaf, mut next_node) = (0usize, n);
    let take = |weight: &Vec<u64>, next_leaf: &mut usize, next_node: &mut usize, made: usize| -> usize {
        let leaf_ok = *next_leaf < n;
        let node_ok = *next_node < made;
        if leaf_ok && (!node_ok || weight[*next_leaf] <= weight[*next_node]) {
            *next_leaf += 1;
            *next_leaf - 1
        } else {
            *next_node += 1;
            *next_node - 1
        }
    };
    for made in n..2 * n - 1 {
        let a = take(&weight, &mut next_leaf, &mut next_node, made);
        let b = take(&weight, &mut next_leaf, &mut next_node, made);
        weight.push(weight[a] + weight[b]);
        parent[a] = made;
        parent[b] = made;
    }
    let mut depth = vec![0u32; 2 * n - 1];
    for i in (0..2 * n - 2).rev() {
        depth[i] = depth[parent[i]] + 1;
    }
    let mut raw: Vec<(u32, u64, usize)> = (0..n).map(|i| (depth[i], leaves[i].0, leaves[i].1)).collect();
    limit_lengths(&mut raw);
    for (len, _, sym) in raw {
        lens[sym] = len as u8;
    }
    lens
}

/// Cap lengths at [`MAX_BITS`], then lengthen the codes that cost least
/// until the Kraft sum fits again.
fn limit_lengths(codes: &mut [(u32, u64, usize)]) {
    let cap = 1u64 << MAX_BITS;
    for c in codes.iter_mut() {
        c.0 = c.0.min(MAX_BITS);
    }
    let mut kraft: u64 = codes.iter().map(|c| 1u64 << (MAX_BITS - c.0)).sum();
    while kraft > cap {
        // The longest code still below the cap (the finest step), least
        // frequent first.
        let Some(pick) = codes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.0 < MAX_BITS)
            .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
            .map(|(i, _)| i)
        else {
            return; // cannot happen with at most 256 symbols and 11 bits
        };
        kraft -= 1u64 << (MAX_BITS - codes[pick].0 - 1);
        codes[pick].0 += 1;
    }
}

/// Bits the plane takes with these lengths (without the header).
pub(super) fn coded_bits(counts: &[u32; 256], lens: &[u8; 256]) -> u64 {
    counts
        .iter()
        .zip(lens)
        .map(|(c, l)| u64::from(*c) * u64::from(*l))
        .sum()
}

/// Canonical codes, bit-reversed for LSB-first writing: `(code, length)`.
fn codes(lens: &[u8; 256]) -> [(u32, u32); 256] {
    let mut by_len: Vec<(u8, usize)> = lens
        .iter()
        .enumerate()
        .filter(|(_, l)| **l > 0)
        .map(|(s, l)| (*l, s))
        .collect();
    by_len.sort_unstable();
    let mut out = [(0u32, 0u32); 256];
    let (mut code, mut prev) = (0u32, 0u32);
    for (len, sym) in by_len {
        let len = u32::from(len);
        code <<= len - prev;
        prev = len;
        out[sym] = (code.reverse_bits() >> (32 - len), len);
        code += 1;
    }
    out
}

/// Symbols per stream for a plane of `n` bytes (the last stream may
/// have fewer).
fn quarter(n: usize) -> usize {
    n.div_ceil(STREAMS)
}

/// Append the header and codes of `data` to `out`; `scratch` is room for
/// the streams, kept by the caller from call to call.
pub(super) fn encode(data: &[u8], lens: &[u8; 256], out: &mut Vec<u8>, scratch: &mut Vec<u8>) {
    for pair in lens.chunks_exact(2) {
        out.push((pair[0] & 15) | (pair[1] << 4));
    }
    let table = codes(lens);
    let at_lengths = out.len();
    out.extend_from_slice(&[0u8; 12]);
    let q = quarter(data.len()).max(1);
    let (a, rest) = data.split_at(q.min(data.len()));
    let (b, rest) = rest.split_at(q.min(rest.len()));
    let (c, d) = rest.split_at(q.min(rest.len()));
    // Each stream gets room for its worst case (plus one unconditional
    // 8-byte store); the four are packed together afterwards.
    let room = q * MAX_BITS as usize / 8 + 16;
    if scratch.len() < 4 * room {
        scratch.resize(4 * room, 0);
    }
    let (ba, rest_out) = scratch.split_at_mut(room);
    let (bb, rest_out) = rest_out.split_at_mut(room);
    let (bc, bd) = rest_out.split_at_mut(room);
    let mut w = [Writer::new(ba), Writer::new(bb), Writer::new(bc), Writer::new(bd)];
    // The four streams in lockstep, five symbols each between flushes:
    // four independent chains of shifts for the CPU to overlap.
    let common = d.len() / PER_FLUSH * PER_FLUSH;
    let lockstep = a[..common]
        .chunks_exact(PER_FLUSH)
        .zip(b[..common].chunks_exact(PER_FLUSH))
        .zip(c[..common].chunks_exact(PER_FLUSH))
        .zip(d[..common].chunks_exact(PER_FLUSH));
    for (((sa, sb), sc), sd) in lockstep {
        for k in 0..PER_FLUSH {
            w[0].put(table[sa[k] as usize]);
            w[1].put(table[sb[k] as usize]);
            w[2].put(table[sc[k] as usize]);
            w[3].put(table[sd[k] as usize]);
        }
        for x in w.iter_mut() {
            x.flush();
        }
    }
    for (x, part) in w.iter_mut().zip([a, b, c, d]) {
        for chunk in part[common..].chunks(PER_FLUSH) {
            for &sym in chunk {
                x.put(table[sym as usize]);
            }
            x.flush();
        }
    }
    let lens_out: Vec<usize> = w.iter_mut().map(Writer::finish).collect();
    for (j, n) in lens_out.iter().enumerate() {
        let from = j * room;
        out.extend_from_slice(&scratch[from..from + n]);
        if j < STREAMS - 1 {
            out[at_lengths + 4 * j..at_lengths + 4 * j + 4].copy_from_slice(&(*n as u32).to_le_bytes());
        }
    }
}

/// One stream being written: a 64-bit accumulator flushed a whole byte at
/// a time with one unconditional 8-byte store.
struct Writer<'a> {
    buf: &'a mut [u8],
    acc: u64,
    nbits: u32,
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer {
            buf,
            acc: 0,
            nbits: 0,
            pos: 0,
        }
    }

    #[inline(always)]
    fn put(&mut self, (code, len): (u32, u32)) {
        self.acc |= u64::from(code) << self.nbits;
        self.nbits += len;
    }

    /// At most 7 bits stay in the accumulator afterwards, so five codes
    /// of up to 11 bits fit before the next flush.
    #[inline(always)]
    fn flush(&mut self) {
        self.buf[self.pos..self.pos + 8].copy_from_slice(&self.acc.to_le_bytes());
        let bytes = self.nbits >> 3;
        self.pos += bytes as usize;
        self.acc = if bytes == 8 { 0 } else { self.acc >> (bytes * 8) };
        self.nbits &= 7;
    }

    /// Flush the last bits (padding the last byte); the stream's length.
    fn finish(&mut self) -> usize {
        self.flush();
        if self.nbits > 0 {
            self.pos += 1;
            self.nbits = 0;
        }
        self.pos
    }
}

/// One stream being decoded: a 64-bit buffer refilled a whole byte at a
/// time (Giesen, "Reading bits in far too many ways", variant 4).
struct Reader<'a> {
    stream: &'a [u8],
    buf: u64,
    count: u32,
    pos: usize,
}

impl Reader<'_> {
    fn read(&self) -> u64 {
        match self.stream.get(self.pos..self.pos + 8) {
            Some(b) => u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            None => {
                let mut b = [0u8; 8];
                let tail = self.stream.get(self.pos..).unwrap_or(&[]);
                b[..tail.len()].copy_from_slice(tail);
                u64::from_le_bytes(b)
            }
        }
    }

    /// At least 56 bits in the buffer afterwards.
    #[inline(always)]
    fn refill(&mut self) {
        self.buf |= self.read() << self.count;
        self.pos += ((63 - self.count) >> 3) as usize;
        self.count |= 56;
    }

    /// Decode one symbol.
    #[inline(always)]
    fn symbol(&mut self, table: &[u16; TABLE], out: &mut u8) {
        let e = table[(self.buf & (TABLE as u64 - 1)) as usize];
        let len = u32::from(e & 15);
        *out = (e >> 4) as u8;
        self.buf >>= len;
        self.count -= len;
    }

    /// True when exactly the stream's bytes were used.
    fn ended_exactly(&self) -> bool {
        let used = (self.pos as u64 * 8).saturating_sub(u64::from(self.count));
        used.div_ceil(8) == self.stream.len() as u64
    }
}

/// Decode a plane coded by [`encode()`] into `out` (its length).
pub(super) fn decode(input: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let header = input
        .get(..HEADER)
        .ok_or(CodecError::Corrupt("huffman header truncated"))?;
    let mut lens = [0u8; 256];
    for (k, b) in header[..128].iter().enumerate() {
        lens[2 * k] = b & 15;
        lens[2 * k + 1] = b >> 4;
    }
    if lens.iter().any(|l| u32::from(*l) > MAX_BITS) {
        return Err(CodecError::Corrupt("huffman code too long"));
    }
    let kraft: u64 = lens
        .iter()
        .filter(|l| **l > 0)
        .map(|l| 1u64 << (MAX_BITS - u32::from(*l)))
        .sum();
    if kraft > TABLE as u64 {
        return Err(CodecError::Corrupt("huffman code lengths are not a prefix code"));
    }
    // entry = symbol << 4 | length. A bit pattern no code has (the code
    // is incomplete) decodes as a symbol 0 of MAX_BITS bits: damage that
    // leads there gives wrong bytes, which the checksum every encoding
    // keeps of its raw bytes rejects, rather than a test per symbol here.
    let mut table = [MAX_BITS as u16; TABLE];
    for (sym, (code, len)) in codes(&lens).iter().enumerate() {
        if *len == 0 {
            continue;
        }
        let entry = ((sym as u16) << 4) | *len as u16;
        let mut i = *code as usize;
        while i < TABLE {
            table[i] = entry;
            i += 1 << len;
        }
    }
    let mut rest = &input[HEADER..];
    let mut stream = |j: usize| -> Result<Reader<'_>, CodecError> {
        let len = if j < STREAMS - 1 {
            let l = &header[128 + 4 * j..132 + 4 * j];
            u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize
        } else {
            rest.len()
        };
        let bytes = rest
            .get(..len)
            .ok_or(CodecError::Corrupt("huffman stream lengths run past the section"))?;
        rest = &rest[len..];
        Ok(Reader {
            stream: bytes,
            buf: 0,
            count: 0,
            pos: 0,
        })
    };
    // Locals, not a collection: the four states stay in registers.
    let (mut ra, mut rb, mut rc, mut rd) = (stream(0)?, stream(1)?, stream(2)?, stream(3)?);
    let q = quarter(out.len()).max(1);
    let (a, rest_out) = out.split_at_mut(q.min(out.len()));
    let (b, rest_out) = rest_out.split_at_mut(q.min(rest_out.len()));
    let (c, d) = rest_out.split_at_mut(q.min(rest_out.len()));
    // The four streams in lockstep over the length they all have, five
    // symbols per refill; then what is left of each.
    let common = d.len() / PER_FLUSH * PER_FLUSH;
    let lockstep = a[..common]
        .chunks_exact_mut(PER_FLUSH)
        .zip(b[..common].chunks_exact_mut(PER_FLUSH))
        .zip(c[..common].chunks_exact_mut(PER_FLUSH))
        .zip(d[..common].chunks_exact_mut(PER_FLUSH));
    for (((ca, cb), cc), cd) in lockstep {
        ra.refill();
        rb.refill();
        rc.refill();
        rd.refill();
        for k in 0..PER_FLUSH {
            ra.symbol(&table, &mut ca[k]);
            rb.symbol(&table, &mut cb[k]);
            rc.symbol(&table, &mut cc[k]);
            rd.symbol(&table, &mut cd[k]);
        }
    }
    for (r, part) in [(&mut ra, a), (&mut rb, b), (&mut rc, c), (&mut rd, d)] {
        for chunk in part[common..].chunks_mut(PER_FLUSH) {
            r.refill();
            for o in chunk.iter_mut() {
                r.symbol(&table, o);
            }
        }
    }
    let readers = [ra, rb, rc, rd];
    if !readers.iter().all(Reader::ended_exactly) {
        return Err(CodecError::Corrupt("huffman stream length does not match its codes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let lens = code_lengths(&histogram(data));
        let mut enc = Vec::new();
        encode(data, &lens, &mut enc, &mut Vec::new());
        let bits = coded_bits(&histogram(data), &lens);
        let stored = (enc.len() - HEADER) as u64;
        assert!(
            stored >= bits.div_ceil(8) && stored <= bits / 8 + STREAMS as u64,
            "size estimate"
        );
        let mut out = vec![0u8; data.len()];
        decode(&enc, &mut out).expect("decode");
        assert_eq!(out, data);
        enc
    }

    #[test]
    fn huffman_round_trips_skewed_uniform_single_and_tiny() {
        let mut x = 12345u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Geometric-ish (deep tree: exercises the length limit).
        let skewed: Vec<u8> = (0..300_000).map(|_| (next().trailing_zeros() as u8).min(40)).collect();
        let enc = round_trip(&skewed);
        assert!(enc.len() < skewed.len() / 3, "{}", enc.len());
        let uniform: Vec<u8> = (0..100_001).map(|_| next() as u8).collect();
        round_trip(&uniform);
        round_trip(&[7u8; 1000]);
        round_trip(&[1, 2]);
        round_trip(&[9]);
        // 256 symbols with counts 1, 2, 4, ... would need very long codes.
        let mut steep = Vec::new();
        for s in 0..24u32 {
            steep.extend(std::iter::repeat_n(s as u8, 1 << s.min(20)));
        }
        steep.extend(24..=255u8);
        round_trip(&steep);
        let lens = code_lengths(&histogram(&steep));
        assert!(lens.iter().all(|l| u32::from(*l) <= MAX_BITS));
    }

    #[test]
    fn huffman_damage_is_an_error_not_a_panic() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 13) as u8).collect();
        let lens = code_lengths(&histogram(&data));
        let mut enc = Vec::new();
        encode(&data, &lens, &mut enc, &mut Vec::new());
        let mut out = vec![0u8; data.len()];
        assert!(decode(&enc[..enc.len() - 3], &mut out).is_err(), "truncated");
        let mut longer = enc.clone();
        longer.extend_from_slice(&[0, 0]);
        assert!(decode(&longer, &mut out).is_err(), "trailing bytes");
        assert!(decode(&enc[..100], &mut out).is_err(), "no header");
        let mut bad = enc.clone();
        bad[0] = 0xff; // two codes of length 15: too long
        assert!(decode(&bad, &mut out).is_err());
        for i in (0..enc.len()).step_by(37) {
            let mut b = enc.clone();
            b[i] ^= 0x5a;
            let _ = decode(&b, &mut out);
        }
    }
}
