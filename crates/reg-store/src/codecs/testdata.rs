//! Synthetic tensors for tests and measurements: a xorshift PRNG, normals
//! by Box-Muller, "weights-like" and "Adam exp_avg_sq-like" float32, their
//! bf16 / f16 / f64 versions, and "next epoch" variants.

/// xorshift64* with a Box-Muller normal on top.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Weights: N(0, 0.02).
pub fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| (0.02 * r.normal()) as f32).collect()
}

/// Adam `exp_avg_sq`: an average of squared gradients. Each row of 768
/// has its own gradient scale (log-normal), and each value is the mean of
/// 8 squared normals at that scale: positive, smooth along a row.
pub fn exp_avg_sq(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut scale = 0.0;
    for i in 0..n {
        if i % 768 == 0 {
            scale = 1e-4 * (1.5 * r.normal()).exp();
        }
        let mut acc = 0.0;
        for _ in 0..8 {
            let g = scale * r.normal();
            acc += g * g;
        }
        out.push((acc / 8.0) as f32);
    }
    out
}

/// The next epoch of weights: 30% of the elements moved by N(0, 0.001).
pub fn next_weights(parent: &[f32], seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    parent
        .iter()
        .map(|&x| {
            if r.unit() < 0.3 {
                (x as f64 + 0.001 * r.normal()) as f32
            } else {
                x
            }
        })
        .collect()
}

/// The next epoch of `exp_avg_sq`: 30% of the elements scaled by
/// 1 + N(0, 0.05) (the moving average changes smoothly).
pub fn next_exp_avg_sq(parent: &[f32], seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    parent
        .iter()
        .map(|&x| {
            if r.unit() < 0.3 {
                (x as f64 * (1.0 + 0.05 * r.normal())).abs() as f32
            } else {
                x
            }
        })
        .collect()
}

/// Every element moved by a relative N(0, rel): what one epoch of training
/// does to a trainable tensor.
pub fn drift(parent: &[f32], rel: f64, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    parent
        .iter()
        .map(|&x| (x as f64 * (1.0 + rel * r.normal())) as f32)
        .collect()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn f64_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| (*x as f64).to_le_bytes()).collect()
}

/// bfloat16, rounded to nearest even (NaN kept quiet).
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// IEEE half, rounded to nearest even, with denormals and overflow to inf.
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1 << shift) - 1);
        let mut v = m >> shift;
        if rest > half || (rest == half && v & 1 == 1) {
            v += 1;
        }
        return sign | v as u16;
    }
    let mut v = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && v & 1 == 1) {
        v += 1;
    }
    sign | v as u16
}

pub fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| bf16_bits(*x).to_le_bytes()).collect()
}

pub fn f16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| f16_bits(*x).to_le_bytes()).collect()
}

/// Special values of every float width, as bytes: NaNs with payloads,
/// infinities, zeros of both signs, denormals, extremes.
pub fn specials(width: usize) -> Vec<u8> {
    match width {
        2 => [
            0x7e00u16, 0x7c01, 0xfc01, 0x7fff, 0xffff, 0x7d23, 0x7c00, 0xfc00, 0x0000, 0x8000, 0x0001, 0x8001, 0x03ff,
            0x0400, 0x7bff, 0xfbff, 0x7fc1, 0xff81, 0x7f80, 0xff80, 0x0080, 0x007f, 0x3c00, 0xbc00,
        ]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect(),
        4 => [
            0x7fc0_0000u32,
            0x7f80_0001,
            0xff80_0001,
            0x7fc1_2345,
            0xffff_ffff,
            0x7fbf_ffff,
            0x7f80_0000,
            0xff80_0000,
            0,
            0x8000_0000,
            1,
            0x8000_0001,
            0x007f_ffff,
            0x0080_0000,
            0x7f7f_ffff,
            0xff7f_ffff,
            0x3f80_0000,
        ]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect(),
        _ => [
            0x7ff8_0000_0000_0000u64,
            0x7ff0_0000_0000_0001,
            0xfff0_0000_dead_beef,
            0x7ff8_1234_5678_9abc,
            u64::MAX,
            0x7ff0_0000_0000_0000,
            0xfff0_0000_0000_0000,
            0,
            0x8000_0000_0000_0000,
            1,
            0x8000_0000_0000_0001,
            0x000f_ffff_ffff_ffff,
            0x0010_0000_0000_0000,
            0x7fef_ffff_ffff_ffff,
        ]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect(),
    }
}
