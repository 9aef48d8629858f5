//! bf16 conversions: round-to-nearest-even from f32 (what `vcvtneps2bf16` does, NaN kept a NaN),
//! and widening, which is exact.

/// `x` rounded to the nearest bf16, ties to even, as bits.
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// The f32 a bf16 holds.
#[inline(always)]
pub fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Rounds `src` into `dst`, element by element.
pub fn round_into(dst: &mut [u16], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32_to_bf16_bits(*s);
    }
}
