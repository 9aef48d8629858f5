//! bf16 conversions: round-to-nearest-even from f32 (what `vcvtneps2bf16` does, NaN kept a NaN),
//! and widening, which is exact. Whole tensors convert in fixed chunks on rayon's threads, each
//! chunk's loop compiled for AVX-512 where the CPU has it (the same bit operations, so the same
//! bits on every CPU).

use rayon::prelude::*;

use crate::kernels::simd::{dispatch, Isa, Kernel};

/// Elements one thread converts at a time.
const CHUNK: usize = 1 << 16;

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

/// Rounds `src` into `dst`, element by element (one thread; see [`round`] for a tensor).
pub fn round_into(dst: &mut [u16], src: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { round_avx512(dst, src) };
    }
    round_loop(dst, src);
}

/// Widens `src` into `dst`, element by element (one thread; see [`widen`] for a tensor).
pub fn widen_into(dst: &mut [f32], src: &[u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { widen_avx512(dst, src) };
    }
    widen_loop(dst, src);
}

/// `src` rounded to bf16 bits, on all threads.
pub fn round(src: &[f32]) -> Vec<u16> {
    let mut out = vec![0u16; src.len()];
    out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| round_into(d, s));
    out
}

/// `src` widened to f32, on all threads.
pub fn widen(src: &[u16]) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| widen_into(d, s));
    out
}

#[inline(always)]
fn round_loop(dst: &mut [u16], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32_to_bf16_bits(*s);
    }
}

#[inline(always)]
fn widen_loop(dst: &mut [f32], src: &[u16]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = bf16_bits_to_f32(*s);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn round_avx512(dst: &mut [u16], src: &[f32]) {
    round_loop(dst, src)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn widen_avx512(dst: &mut [f32], src: &[u16]) {
    widen_loop(dst, src)
}

/// `src + bias` (per element when `bias` is a slice as long as `src`, else the one value), then
/// ReLU when `relu`, rounded into `dst`: a product's epilogue, its loop compiled for the widest
/// vectors the CPU has. Measured at batch 128: conv1's forward (with its LRN) 89 -> 84 ms.
pub fn round_bias_into(dst: &mut [u16], src: &[f32], bias: Bias<'_>, relu: bool) {
    dispatch(Isa::detect(), Epilogue { dst, src, bias, relu })
}

/// What [`round_bias_into`] adds.
#[derive(Clone, Copy)]
pub enum Bias<'a> {
    One(f32),
    Each(&'a [f32]),
}

struct Epilogue<'a> {
    dst: &'a mut [u16],
    src: &'a [f32],
    bias: Bias<'a>,
    relu: bool,
}

impl Kernel for Epilogue<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Epilogue { dst, src, bias, relu } = self;
        debug_assert_eq!(dst.len(), src.len());
        // A select rather than `max`, whose sign for -0.0 may differ between vector widths.
        let act = |v: f32| f32_to_bf16_bits(if !relu || v > 0.0 { v } else { 0.0 });
        match bias {
            Bias::One(b) => dst.iter_mut().zip(src).for_each(|(o, v)| *o = act(v + b)),
            Bias::Each(b) => {
                debug_assert_eq!(b.len(), src.len(), "a bias per element");
                dst.iter_mut().zip(src).zip(b).for_each(|((o, v), b)| *o = act(v + b))
            }
        }
    }
}

/// `src` rounded to f16 (to nearest, ties to even; F16C where the CPU has it), on all threads.
pub fn round_f16(src: &[f32]) -> Vec<half::f16> {
    use half::slice::HalfFloatSliceExt;
    let mut out = vec![half::f16::ZERO; src.len()];
    out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| d.convert_from_f32_slice(s));
    out
}

/// `src` widened to f32 (exact), on all threads.
pub fn widen_f16(src: &[half::f16]) -> Vec<f32> {
    use half::slice::HalfFloatSliceExt;
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(CHUNK).zip(src.par_chunks(CHUNK)).for_each(|(d, s)| s.convert_to_f32_slice(d));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_tensors_convert_as_element_by_element_does() {
        let mut v: Vec<f32> = (0..CHUNK * 2 + 77).map(|i| ((i as f32) * 0.37).sin() * 1e3).collect();
        v.extend([f32::NAN, f32::INFINITY, -0.0, 1.0 + f32::EPSILON, f32::MIN_POSITIVE / 3.0, 3.0e38]);
        let bits = round(&v);
        for (b, x) in bits.iter().zip(&v) {
            assert_eq!(*b, f32_to_bf16_bits(*x), "{x}");
        }
        let back = widen(&bits);
        for (w, b) in back.iter().zip(&bits) {
            assert_eq!(w.to_bits(), bf16_bits_to_f32(*b).to_bits());
        }
        // Ties go to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
        assert_eq!(f32_to_bf16_bits(1.0 + 1.0 / 256.0), f32_to_bf16_bits(1.0));
        assert!(bf16_bits_to_f32(f32_to_bf16_bits(f32::NAN)).is_nan());
    }
}
