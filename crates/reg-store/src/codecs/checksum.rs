//! A fast 64-bit checksum of raw bytes, to catch corrupt encodings and a
//! wrong parent (not a cryptographic hash: the blob id is that).
//!
//! Four lanes of the xxHash64 round over 32-byte stripes, then xxHash64's
//! merge and avalanche steps. It is *not* xxHash64: the four lanes run
//! even on inputs shorter than 32 bytes, and there is no 4-byte step (up
//! to 7 last bytes are taken one at a time). It only has to be stable,
//! since it is stored in encoded blobs: docs/format.md ("The checksum")
//! spells it out with test vectors, which the tests below check.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;
const STRIPE: usize = 32;

#[inline(always)]
fn round(acc: u64, word: u64) -> u64 {
    acc.wrapping_add(word.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
}

#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(bytes);
    u64::from_le_bytes(a)
}

/// A streaming checksum: `update` with the bytes in order, then `finish`.
#[derive(Clone, Debug)]
pub(super) struct Checksum {
    lanes: [u64; 4],
    buf: [u8; STRIPE],
    buf_len: usize,
    total: u64,
}

impl Checksum {
    pub(super) fn new() -> Checksum {
        Checksum {
            lanes: [P1.wrapping_add(P2), P2, 0, 0u64.wrapping_sub(P1)],
            buf: [0; STRIPE],
            buf_len: 0,
            total: 0,
        }
    }

    fn stripes(&mut self, data: &[u8]) -> usize {
        let [mut a, mut b, mut c, mut d] = self.lanes;
        let mut chunks = data.chunks_exact(STRIPE);
        for s in &mut chunks {
            a = round(a, word(&s[0..8]));
            b = round(b, word(&s[8..16]));
            c = round(c, word(&s[16..24]));
            d = round(d, word(&s[24..32]));
        }
        self.lanes = [a, b, c, d];
        data.len() - chunks.remainder().len()
    }

    pub(super) fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (STRIPE - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < STRIPE {
                return;
            }
            let buf = self.buf;
            self.stripes(&buf);
            self.buf_len = 0;
        }
        let done = self.stripes(data);
        let rest = &data[done..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub(super) fn finish(&self) -> u64 {
        let [a, b, c, d] = self.lanes;
        let mut h = a
            .rotate_left(1)
            .wrapping_add(b.rotate_left(7))
            .wrapping_add(c.rotate_left(12))
            .wrapping_add(d.rotate_left(18));
        for lane in self.lanes {
            h = (h ^ round(0, lane)).wrapping_mul(P1).wrapping_add(P4);
        }
        h = h.wrapping_add(self.total);
        let rest = &self.buf[..self.buf_len];
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            h = (h ^ round(0, word(w)))
                .rotate_left(27)
                .wrapping_mul(P1)
                .wrapping_add(P4);
        }
        for &byte in words.remainder() {
            h = (h ^ u64::from(byte).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(P2);
        h ^= h >> 29;
        h = h.wrapping_mul(P3);
        h ^ (h >> 32)
    }
}

/// The checksum of `data` in one go.
pub(super) fn of(data: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(data);
    c.finish()
}

#[cfg(test)]
mod tests {
    /// The test vectors docs/format.md gives for the checksum.
    #[test]
    fn checksum_matches_the_test_vectors_of_docs_format_md() {
        let counting = |n: u8| (0..n).collect::<Vec<u8>>();
        assert_eq!(super::of(b""), 0x3fdf_455f_9dcf_1e62);
        assert_eq!(super::of(b"abc"), 0xc628_6258_a8ea_2c6a);
        assert_eq!(super::of(&counting(43)), 0x599b_d13c_3d82_0df7);
        assert_eq!(super::of(&counting(100)), 0xf345_8807_13d6_97df);
    }
}
