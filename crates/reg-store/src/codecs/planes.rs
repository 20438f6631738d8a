//! Byte-plane split and merge, and the masked XOR with a parent.
//!
//! Elements are loaded as little-endian words (`u16`, `u32`, `u64`) a tile
//! at a time and their bytes taken out with shifts, which the compiler turns
//! into SIMD shuffles; plain byte-indexed transposes do not vectorise.

/// Elements per tile: one bounds check per tile and plane.
const TILE: usize = 32;

trait Word: Copy + Default + PartialEq {
    const WIDTH: usize;
    fn load(bytes: &[u8]) -> Self;
    fn store(self, bytes: &mut [u8]);
    fn byte(self, plane: usize) -> u8;
    fn put(self, plane: usize, byte: u8) -> Self;
    /// `self` when `keep`, else zero (without a branch).
    fn keep(self, keep: bool) -> Self;
}

macro_rules! word {
    ($t:ty, $w:literal) => {
        impl Word for $t {
            const WIDTH: usize = $w;
            #[inline(always)]
            fn load(bytes: &[u8]) -> Self {
                let mut a = [0u8; $w];
                a.copy_from_slice(bytes);
                <$t>::from_le_bytes(a)
            }
            #[inline(always)]
            fn store(self, bytes: &mut [u8]) {
                bytes.copy_from_slice(&self.to_le_bytes());
            }
            #[inline(always)]
            fn byte(self, plane: usize) -> u8 {
                (self >> (8 * plane)) as u8
            }
            #[inline(always)]
            fn put(self, plane: usize, byte: u8) -> Self {
                self | (<$t>::from(byte) << (8 * plane))
            }
            #[inline(always)]
            fn keep(self, keep: bool) -> Self {
                self & (0 as $t).wrapping_sub(<$t>::from(keep))
            }
        }
    };
}
word!(u16, 2);
word!(u32, 4);
word!(u64, 8);

fn split_words<T: Word>(src: &[u8], planes: &mut [u8]) {
    let w = T::WIDTH;
    let n = src.len() / w;
    let tiles = n / TILE;
    for (t, chunk) in src.chunks_exact(w * TILE).enumerate() {
        let mut words = [T::default(); TILE];
        for (x, b) in words.iter_mut().zip(chunk.chunks_exact(w)) {
            *x = T::load(b);
        }
        for p in 0..w {
            let start = p * n + t * TILE;
            if let Some(out) = planes.get_mut(start..start + TILE) {
                for (o, x) in out.iter_mut().zip(words.iter()) {
                    *o = x.byte(p);
                }
            }
        }
    }
    for i in tiles * TILE..n {
        let x = T::load(&src[i * w..i * w + w]);
        for p in 0..w {
            planes[p * n + i] = x.byte(p);
        }
    }
}

fn merge_words<T: Word>(planes: &[u8], dst: &mut [u8]) {
    let w = T::WIDTH;
    let n = dst.len() / w;
    let tiles = n / TILE;
    for (t, chunk) in dst.chunks_exact_mut(w * TILE).enumerate() {
        let mut words = [T::default(); TILE];
        for p in 0..w {
            let start = p * n + t * TILE;
            if let Some(src) = planes.get(start..start + TILE) {
                for (x, b) in words.iter_mut().zip(src.iter()) {
                    *x = x.put(p, *b);
                }
            }
        }
        for (x, b) in words.iter().zip(chunk.chunks_exact_mut(w)) {
            x.store(b);
        }
    }
    for i in tiles * TILE..n {
        let mut x = T::default();
        for p in 0..w {
            x = x.put(p, planes[p * n + i]);
        }
        x.store(&mut dst[i * w..i * w + w]);
    }
}

/// Split whole elements of `width` bytes into planes: `planes[p * n + i]`
/// is byte `p` of element `i`, with `n = src.len() / width`.
/// `src.len()` is a multiple of `width` and `planes.len() == src.len()`.
pub(super) fn split(width: usize, src: &[u8], planes: &mut [u8]) {
    debug_assert_eq!(src.len() % width, 0);
    debug_assert_eq!(src.len(), planes.len());
    match width {
        2 => split_words::<u16>(src, planes),
        4 => split_words::<u32>(src, planes),
        8 => split_words::<u64>(src, planes),
        _ => planes.copy_from_slice(src),
    }
}

/// The inverse of [`split`].
pub(super) fn merge(width: usize, planes: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(dst.len() % width, 0);
    debug_assert_eq!(dst.len(), planes.len());
    match width {
        2 => merge_words::<u16>(planes, dst),
        4 => merge_words::<u32>(planes, dst),
        8 => merge_words::<u64>(planes, dst),
        _ => dst.copy_from_slice(planes),
    }
}

/// The 8-byte mask that keeps the bytes of the planes set in `plane_mask`
/// (bit `p` for plane `p`) for elements of `width` bytes (which divides 8).
pub(super) fn byte_mask(width: usize, plane_mask: u8) -> u64 {
    let mut m = [0u8; 8];
    for (j, b) in m.iter_mut().enumerate() {
        if plane_mask >> (j % width.max(1)) & 1 == 1 {
            *b = 0xff;
        }
    }
    u64::from_le_bytes(m)
}

/// `dst = a ^ (b & mask)`, where `mask` repeats every 8 bytes (see
/// [`byte_mask`]); all three slices have the same length, and start on an
/// element boundary.
pub(super) fn xor_into(dst: &mut [u8], a: &[u8], b: &[u8], mask: u64) {
    let mut d = dst.chunks_exact_mut(8);
    let mut x = a.chunks_exact(8);
    let mut y = b.chunks_exact(8);
    for ((d, x), y) in (&mut d).zip(&mut x).zip(&mut y) {
        let v = u64::load(x) ^ (u64::load(y) & mask);
        v.store(d);
    }
    let m = mask.to_le_bytes();
    for (((d, x), y), m) in d
        .into_remainder()
        .iter_mut()
        .zip(x.remainder())
        .zip(y.remainder())
        .zip(m.iter())
    {
        *d = x ^ (y & m);
    }
}

/// `dst ^= b & mask`, in place (see [`xor_into`]).
pub(super) fn xor_in_place(dst: &mut [u8], b: &[u8], mask: u64) {
    let mut d = dst.chunks_exact_mut(8);
    let mut y = b.chunks_exact(8);
    for (d, y) in (&mut d).zip(&mut y) {
        let v = u64::load(d) ^ (u64::load(y) & mask);
        v.store(d);
    }
    let m = mask.to_le_bytes();
    for ((d, y), m) in d.into_remainder().iter_mut().zip(y.remainder()).zip(m.iter()) {
        *d ^= y & m;
    }
}

fn zeros_words<T: Word>(src: &[u8]) -> usize {
    src.chunks_exact(T::WIDTH)
        .map(|b| usize::from(T::load(b) == T::default()))
        .sum()
}

/// How many whole elements of `src` are all zero bytes.
pub(super) fn zero_elements(width: usize, src: &[u8]) -> usize {
    match width {
        2 => zeros_words::<u16>(src),
        4 => zeros_words::<u32>(src),
        8 => zeros_words::<u64>(src),
        _ => src.iter().filter(|&&b| b == 0).count(),
    }
}

fn gather_words<T: Word>(src: &[u8], bitmap: &mut [u8], compact: &mut [u8]) -> usize {
    let w = T::WIDTH;
    let mut k = 0;
    for (bits, chunk) in bitmap.iter_mut().zip(src.chunks(8 * w)) {
        let mut b = 0u8;
        for (i, el) in chunk.chunks_exact(w).enumerate() {
            let x = T::load(el);
            let nonzero = x != T::default();
            // Written whatever it is, kept only when nonzero: k <= i, so
            // this stays inside `compact`, as long as `src`.
            if let Some(out) = compact.get_mut(k * w..k * w + w) {
                x.store(out);
            }
            k += usize::from(nonzero);
            b |= u8::from(nonzero) << i;
        }
        *bits = b;
    }
    k
}

/// Pack the nonzero elements of `src` into the front of `compact` (as long
/// as `src`) and mark them in `bitmap` (bit `i % 8` of byte `i / 8` for
/// element `i`; `src.len() / width` bits, rounded up to bytes). Returns how
/// many were packed.
pub(super) fn gather(width: usize, src: &[u8], bitmap: &mut [u8], compact: &mut [u8]) -> usize {
    match width {
        2 => gather_words::<u16>(src, bitmap, compact),
        4 => gather_words::<u32>(src, bitmap, compact),
        _ => gather_words::<u64>(src, bitmap, compact),
    }
}

fn scatter_words<T: Word>(bitmap: &[u8], compact: &[u8], dst: &mut [u8]) {
    let w = T::WIDTH;
    let mut k = 0;
    for (&bits, chunk) in bitmap.iter().zip(dst.chunks_mut(8 * w)) {
        for (i, el) in chunk.chunks_exact_mut(w).enumerate() {
            let set = bits >> i & 1 == 1;
            let x = compact.get(k * w..k * w + w).map(T::load).unwrap_or_default();
            x.keep(set).store(el);
            k += usize::from(set);
        }
    }
}

/// The inverse of [`gather`]: element `i` of `dst` is the next element of
/// `compact` when its bit is set, else zero. `compact` holds the packed
/// elements and one more (any value), so every read is in bounds.
pub(super) fn scatter(width: usize, bitmap: &[u8], compact: &[u8], dst: &mut [u8]) {
    match width {
        2 => scatter_words::<u16>(bitmap, compact, dst),
        4 => scatter_words::<u32>(bitmap, compact, dst),
        _ => scatter_words::<u64>(bitmap, compact, dst),
    }
}
