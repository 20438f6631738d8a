//! Conversions of narrow float formats to f64.

/// IEEE 754 half precision bits to f64.
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        // A NaN keeps its sign and payload, as widening to f32 would.
        31 => f64::from_bits((u64::from(bits & 0x8000) << 48) | (0x7ff << 52) | (u64::from(bits & 0x3ff) << 42)),
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// bfloat16 bits to f64.
pub fn bf16_to_f64(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}

#[cfg(test)]
mod tests {
    #[test]
    fn halves() {
        assert_eq!(super::f16_to_f64(0x3c00), 1.0);
        assert_eq!(super::f16_to_f64(0xc000), -2.0);
        assert_eq!(super::f16_to_f64(0x0001), 2f64.powi(-24));
        assert!(super::f16_to_f64(0x7c00).is_infinite());
        assert_eq!(super::bf16_to_f64(0x3f80), 1.0);
        assert_eq!(super::f16_to_f64(0x7e00).to_bits(), 0x7ff8_0000_0000_0000);
        assert_eq!(super::f16_to_f64(0xfe00).to_bits(), 0xfff8_0000_0000_0000);
    }
}
