//! Packing [`gemm`](super::gemm)'s operands into the layout its kernel reads: A in strips of
//! [`MR`] rows, B in strips of [`NR`] columns, each as pairs along k (bf16 bits; an f32 operand
//! rounded as it is packed). B with rows or columns contiguous, and A with rows contiguous, have
//! AVX-512 paths where the CPU has AVX512BW: the same bits as the scalar loops, which take the
//! rest.

use super::convert::f32_to_bf16_bits;
use super::gemm::{Operand, MR, NR};

// A strip of A is at most one 16-lane vector of pairs (`pack_a_avx512`).
const _: () = assert!(MR <= 16);
use crate::kernels::cpu_conv::MatRef;

/// An element of a packed operand: bf16 bits as they are, f32 rounded to bf16.
trait Element: Copy {
    /// Whether this is f32 (else bf16 bits).
    const F32: bool;
    fn bits(self) -> u16;
}

impl Element for u16 {
    const F32: bool = false;
    #[inline(always)]
    fn bits(self) -> u16 {
        self
    }
}

impl Element for f32 {
    const F32: bool = true;
    #[inline(always)]
    fn bits(self) -> u16 {
        f32_to_bf16_bits(self)
    }
}

/// A's rows `ic..ic + mc`, columns `pc..pc + kc`, in strips of [`MR`] rows: for each pair of k,
/// the strip's rows' pairs as `u32` (low half the even element), zero past the edges; at the
/// start of `out`. Only a block with edges is cleared first (the rest is all written).
pub(super) fn pack_a(out: &mut [u32], a: &Operand<'_>, ic: usize, mc: usize, pc: usize, kc: usize) {
    let pairs = kc.div_ceil(2);
    let out = &mut out[..mc.div_ceil(MR) * pairs * MR];
    if !mc.is_multiple_of(MR) || !kc.is_multiple_of(2) {
        out.fill(0);
    }
    match a {
        Operand::Bf16(m) => pack_a_by(out, m, ic, mc, pc, kc),
        Operand::F32(m) => pack_a_by(out, m, ic, mc, pc, kc),
    }
}

/// A's block packed by vectors where its rows are contiguous and the CPU has AVX512BW, else by
/// the scalar loop (a transposed weight's columns, interleaved by a permute, measured slower).
fn pack_a_by<T: Element>(out: &mut [u32], m: &MatRef<'_, T>, ic: usize, mc: usize, pc: usize, kc: usize) {
    #[cfg(target_arch = "x86_64")]
    if m.cs == 1 && has_avx512bw() {
        // SAFETY: AVX512BW and the layout checked just above; `m` holds every element of the
        // block (checked by `gemm` on entry) and `out` is its packing, cleared at edges.
        return unsafe { pack_a_avx512(out, m, ic, mc, pc, kc) };
    }
    pack_a_of(out, m, ic, mc, pc, kc)
}

/// [`pack_a_of`] for rows along k (`cs == 1`: a weight, an input or an output gradient) in
/// AVX-512: the same bits (f32 rounded as loaded). A strip's rows' runs of 16 pairs loaded a row a
/// register, transposed as 32-bit elements, and each pair's [`MR`] stored. Measured at batch 128
/// (three alternated runs): the bf16 step's nodes 0.955x their time.
///
/// # Safety
/// The CPU runs AVX512F and AVX512BW; `m.cs == 1`; `m` holds rows `ic..ic + mc` and columns
/// `pc..pc + kc`; `out` is their packing's length and, where `mc` or `kc` has an edge, zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_a_avx512<T: Element>(
    out: &mut [u32],
    m: &MatRef<'_, T>,
    ic: usize,
    mc: usize,
    pc: usize,
    kc: usize,
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    let data = m.data.as_ptr();
    let strip_lanes: __mmask16 = (1 << MR) - 1;
    for (s, strip) in out.chunks_exact_mut(pairs * MR).enumerate() {
        let (i0, rows) = (ic + s * MR, MR.min(mc - s * MR));
        let dst = strip.as_mut_ptr();
        for p0 in (0..pairs).step_by(16) {
            let elements = (kc - 2 * p0).min(32);
            let lanes = if elements == 32 { !0 } else { (1u32 << elements) - 1 };
            let block = load_transposed(data.add(i0 * m.rs + pc + 2 * p0), m.rs, rows, lanes);
            for (j, pair) in block.iter().enumerate().take((pairs - p0).min(16)) {
                _mm512_mask_storeu_epi32(dst.add((p0 + j) * MR).cast(), strip_lanes, *pair);
            }
        }
    }
}

fn pack_a_of<T: Element>(out: &mut [u32], m: &MatRef<'_, T>, ic: usize, mc: usize, pc: usize, kc: usize) {
    let pairs = kc.div_ceil(2);
    let pair = |lo: T, hi: Option<T>| u32::from(lo.bits()) | (u32::from(hi.map_or(0, Element::bits)) << 16);
    for (s, strip) in out.chunks_exact_mut(pairs * MR).enumerate() {
        let (i0, rows) = (ic + s * MR, MR.min(mc - s * MR));
        if m.cs == 1 {
            // Rows run along k: each row's run read once, its pairs spread over the strip (whole
            // pairs without a test each, then an odd `kc`'s last element).
            for r in 0..rows {
                let row = &m.data[(i0 + r) * m.rs + pc..][..kc];
                let (whole, last) = row.split_at(kc - kc % 2);
                for (p, two) in whole.chunks_exact(2).enumerate() {
                    strip[p * MR + r] = pair(two[0], Some(two[1]));
                }
                if let Some(&x) = last.first() {
                    strip[(kc / 2) * MR + r] = pair(x, None);
                }
            }
        } else if m.rs == 1 {
            // Columns run along the rows (a transposed matrix): two columns' runs side by side.
            for p in 0..pairs {
                let k0 = pc + 2 * p;
                let c0 = &m.data[k0 * m.cs + i0..][..rows];
                let c1 = (2 * p + 1 < kc).then(|| &m.data[(k0 + 1) * m.cs + i0..][..rows]);
                for r in 0..rows {
                    strip[p * MR + r] = pair(c0[r], c1.map(|c| c[r]));
                }
            }
        } else {
            let at = |i: usize, k: usize| m.data[i * m.rs + k * m.cs];
            for r in 0..rows {
                for p in 0..pairs {
                    let hi = (2 * p + 1 < kc).then(|| at(i0 + r, pc + 2 * p + 1));
                    strip[p * MR + r] = pair(at(i0 + r, pc + 2 * p), hi);
                }
            }
        }
    }
}

/// B's rows `pc..pc + kc`, columns `jc..jc + nc`, in strips of [`NR`] columns: for each pair of k,
/// the strip's 32 columns' pairs side by side, zero past the edges.
pub(super) fn pack_b(out: &mut Vec<u16>, b: &Operand<'_>, pc: usize, kc: usize, jc: usize, nc: usize) {
    let pairs = kc.div_ceil(2);
    let len = nc.div_ceil(NR) * pairs * 2 * NR;
    if out.len() < len {
        out.resize(len, 0);
    }
    // Only a block with edges is cleared first (the rest is all written).
    let out = &mut out[..len];
    if !nc.is_multiple_of(NR) || !kc.is_multiple_of(2) {
        out.fill(0);
    }
    match b {
        Operand::Bf16(m) => pack_b_by(out, m, pc, kc, jc, nc),
        Operand::F32(m) => pack_b_by(out, m, pc, kc, jc, nc),
    }
}

/// B's block packed by vectors where its rows or columns are contiguous and the CPU has
/// AVX512BW, else by the scalar loop.
fn pack_b_by<T: Element>(out: &mut [u16], m: &MatRef<'_, T>, pc: usize, kc: usize, jc: usize, nc: usize) {
    #[cfg(target_arch = "x86_64")]
    if (m.cs == 1 || m.rs == 1) && has_avx512bw() {
        // SAFETY: AVX512BW and the layout checked just above; `m` holds every element
        // of the block (checked by `gemm` on entry) and `out` is its packing, cleared at edges.
        return unsafe { pack_b_avx512(out, m, pc, kc, jc, nc) };
    }
    pack_b_of(out, m, pc, kc, jc, nc)
}

fn pack_b_of<T: Element>(out: &mut [u16], m: &MatRef<'_, T>, pc: usize, kc: usize, jc: usize, nc: usize) {
    let pairs = kc.div_ceil(2);
    for (s, strip) in out.chunks_exact_mut(pairs * 2 * NR).enumerate() {
        let (j0, cols) = (jc + s * NR, NR.min(nc - s * NR));
        if m.cs == 1 {
            // Rows run along the columns: two rows' runs interleaved.
            for (p, dst) in strip.chunks_exact_mut(2 * NR).enumerate() {
                let k0 = pc + 2 * p;
                let r0 = &m.data[k0 * m.rs + j0..][..cols];
                if 2 * p + 1 < kc {
                    let r1 = &m.data[(k0 + 1) * m.rs + j0..][..cols];
                    for (l, d) in dst[..2 * cols].chunks_exact_mut(2).enumerate() {
                        d[0] = r0[l].bits();
                        d[1] = r1[l].bits();
                    }
                } else {
                    for (l, d) in dst[..2 * cols].chunks_exact_mut(2).enumerate() {
                        d[0] = r0[l].bits();
                    }
                }
            }
        } else if m.rs == 1 {
            // Columns run along k (a transposed matrix, as a weight read as W^T): each column's
            // run read once, its pairs spread over the strip.
            // Whole pairs without a test per element (the two stores merge into one word), then
            // an odd `kc`'s last element. Measured at batch 128: conv2's weight gradient 169-177
            // -> 138-139 ms.
            for l in 0..cols {
                let col = &m.data[(j0 + l) * m.cs + pc..][..kc];
                let (whole, last) = col.split_at(kc - kc % 2);
                for (p, two) in whole.chunks_exact(2).enumerate() {
                    let d = &mut strip[p * 2 * NR + 2 * l..][..2];
                    d[0] = two[0].bits();
                    d[1] = two[1].bits();
                }
                if let Some(x) = last.first() {
                    strip[(kc / 2) * 2 * NR + 2 * l] = x.bits();
                }
            }
        } else {
            let at = |k: usize, j: usize| m.data[k * m.rs + j * m.cs].bits();
            for p in 0..pairs {
                for l in 0..cols {
                    strip[p * 2 * NR + 2 * l] = at(pc + 2 * p, j0 + l);
                    if 2 * p + 1 < kc {
                        strip[p * 2 * NR + 2 * l + 1] = at(pc + 2 * p + 1, j0 + l);
                    }
                }
            }
        }
    }
}

/// Whether this CPU runs the vector packing (AVX512F and AVX512BW; detected once and cached by
/// the standard library).
#[cfg(target_arch = "x86_64")]
fn has_avx512bw() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
}

/// [`pack_b_of`] for rows (`cs == 1`) or columns (`rs == 1`), bf16 or f32 (rounded as loaded), in
/// AVX-512: the same bits.
/// Rows (a column matrix, a gradient): each pair's two 32-column runs loaded (masked at the
/// edge) and interleaved by two permutes, pair by pair across the strips so that rows are read
/// as runs. Columns (a transposed column matrix, in a weight gradient): 16 columns' runs of 16
/// pairs loaded and transposed as 32-bit elements (the odd `kc`'s last element one by one).
///
/// # Safety
/// The CPU runs AVX512F and AVX512BW; `m.cs == 1` or `m.rs == 1`; `m` holds rows `pc..pc + kc`
/// and columns `jc..jc + nc`; `out` is their packing's length and, where `nc` or `kc` has an
/// edge, zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_b_avx512<T: Element>(
    out: &mut [u16],
    m: &MatRef<'_, T>,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
) {
    use std::arch::x86_64::*;
    let pairs = kc.div_ceil(2);
    let data = m.data.as_ptr();
    // Interleaving two rows: lane 2l from the first's l, lane 2l + 1 from the second's.
    let spread: [i16; 32] = std::array::from_fn(|i| ((i / 2) + (i % 2) * 32) as i16);
    let low = _mm512_loadu_si512(spread.as_ptr().cast());
    let high = _mm512_add_epi16(low, _mm512_set1_epi16(16));
    let strip_len = pairs * 2 * NR;
    if m.cs == 1 {
        // Pair by pair across every strip, so that each row is read as one run.
        for p in 0..pairs {
            let k0 = pc + 2 * p;
            for (s, strip) in out.chunks_exact_mut(strip_len).enumerate() {
                let (j0, cols) = (jc + s * NR, NR.min(nc - s * NR));
                let lanes: __mmask32 = if cols == NR { !0 } else { (1u32 << cols) - 1 };
                let r0 = load_bits(data.add(k0 * m.rs + j0), lanes);
                let r1 = if 2 * p + 1 < kc {
                    load_bits(data.add((k0 + 1) * m.rs + j0), lanes)
                } else {
                    _mm512_setzero_si512()
                };
                let dst = strip.as_mut_ptr().add(p * 2 * NR);
                _mm512_storeu_si512(dst.cast(), _mm512_permutex2var_epi16(r0, low, r1));
                _mm512_storeu_si512(dst.add(NR).cast(), _mm512_permutex2var_epi16(r0, high, r1));
            }
        }
        return;
    }
    // Columns: column l's pair p is the 32 bits at `(j0 + l) * cs + pc + 2p`. Blocks of 16
    // columns by 16 pairs are loaded a column a register and transposed.
    let whole = kc / 2;
    for (s, strip) in out.chunks_exact_mut(strip_len).enumerate() {
        let (j0, cols) = (jc + s * NR, NR.min(nc - s * NR));
        let dst = strip.as_mut_ptr();
        for half in 0..cols.div_ceil(16) {
            let n = (cols - 16 * half).min(16);
            let base = data.add((j0 + 16 * half) * m.cs + pc);
            for p0 in (0..whole).step_by(16) {
                let q = (whole - p0).min(16);
                let lanes: __mmask32 = if q == 16 { !0 } else { (1u32 << (2 * q)) - 1 };
                let block = load_transposed(base.add(2 * p0), m.cs, n, lanes);
                for (j, row) in block.iter().enumerate().take(q) {
                    _mm512_storeu_si512(dst.add((p0 + j) * 2 * NR + 32 * half).cast(), *row);
                }
            }
            if kc % 2 == 1 {
                for l in 0..n {
                    *dst.add(whole * 2 * NR + 2 * (16 * half + l)) = (*base.add(l * m.cs + kc - 1)).bits();
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
type Block = std::arch::x86_64::__m512i;

/// The 32 elements at `p` whose bits are set in `lanes` (zero for the others) as bf16 bits: f32
/// rounded as [`f32_to_bf16_bits`] does, bit for bit.
///
/// # Safety
/// The CPU runs AVX512F and AVX512BW; the elements `lanes` selects are readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_bits<T: Element>(p: *const T, lanes: u32) -> std::arch::x86_64::__m512i {
    use std::arch::x86_64::*;
    if !T::F32 {
        return _mm512_maskz_loadu_epi16(lanes, p.cast());
    }
    let at: *const f32 = p.cast();
    let (low, high) = (rounded_16(at, lanes as u16), rounded_16(at.wrapping_add(16), (lanes >> 16) as u16));
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
}

/// The 16 f32 at `p` whose bits are set in `lanes` (zero for the others) rounded to bf16 bits.
///
/// # Safety
/// As [`load_bits`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn rounded_16(p: *const f32, lanes: u16) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let x = _mm512_maskz_loadu_ps(lanes, p);
    let bits = _mm512_castps_si512(x);
    let high = _mm512_srli_epi32::<16>(bits);
    let odd = _mm512_and_si512(high, _mm512_set1_epi32(1));
    let rounded =
        _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))));
    let quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet))
}

/// `n` (at most 16) runs of the 32 elements `lanes` selects, `stride` elements apart from `p`, as
/// bf16 bits ([`load_bits`]; zero past `n`), transposed as 32-bit pairs: register `j` holds every
/// run's pair `j`. Pairs, then quads, within each 128-bit lane, then the lanes.
///
/// # Safety
/// As [`load_bits`], for each run.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_transposed<T: Element>(p: *const T, stride: usize, n: usize, lanes: u32) -> [Block; 16] {
    use std::arch::x86_64::*;
    let mut r = [_mm512_setzero_si512(); 16];
    for (l, run) in r.iter_mut().enumerate().take(n) {
        *run = load_bits(p.add(l * stride), lanes);
    }
    // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved (lane-wise elements 0, 1 and 2, 3).
    let t: [__m512i; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // u[4i + j]: rows 4i..4i+4 of each lane's column j.
    let u: [__m512i; 16] = std::array::from_fn(|x| {
        let (i, j) = (x / 4, x % 4);
        let (a, b) = (t[4 * i + j / 2], t[4 * i + j / 2 + 2]);
        if j % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Column 4L + j: lane L of u[j], u[4 + j], u[8 + j], u[12 + j].
    let mut out = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let (x, y, z, w) = (u[j], u[4 + j], u[8 + j], u[12 + j]);
        let v0 = _mm512_shuffle_i32x4::<0b10_00_10_00>(x, y);
        let v1 = _mm512_shuffle_i32x4::<0b11_01_11_01>(x, y);
        let v2 = _mm512_shuffle_i32x4::<0b10_00_10_00>(z, w);
        let v3 = _mm512_shuffle_i32x4::<0b11_01_11_01>(z, w);
        out[j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(v0, v2);
        out[8 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(v0, v2);
        out[4 + j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(v1, v3);
        out[12 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(v1, v3);
    }
    out
}

#[cfg(test)]
mod tests;
