//! `C = A B` (or `C += A B`) with A and B read as bf16 and C in f32: the product every bf16
//! convolution and fully connected layer runs on the CPU. AVX512_BF16's `vdpbf16ps` multiplies
//! pairs of bf16 and adds both products into one f32 lane, so the inner loop runs along k two
//! elements at a time: a 12 x 32 block of C in 24 registers, a broadcast pair of A and two vectors
//! of 16 pairs of B per step (GotoBLAS's blocking: B packed in 256-long slices of k by 32
//! columns, A in strips of 12 rows). Either operand may be f32 (a parameter's master copy): it is
//! rounded to bf16 as it is packed, which is where a product reads its weight. Where the CPU has
//! no AVX512_BF16 (checked at run time), a portable loop computes the same bf16 products in f32.
//!
//! One call runs on one thread; callers split the work into fixed parts (rows or columns of C, or
//! images), so every element of C is summed in one order whatever the threads.

use super::convert::{bf16_bits_to_f32, f32_to_bf16_bits};
use super::pack::{pack_a, pack_b};
use crate::kernels::cpu_conv::MatRef;

/// Rows of C one kernel call computes.
pub const MR: usize = 12;
/// Columns of C one kernel call computes (two vectors of 16 f32).
pub const NR: usize = 32;
/// The slice of k packed at once (even: the kernel takes k in pairs).
const KC: usize = 256;
/// Rows of A packed at once.
const MC: usize = 12 * MR;
/// Columns of B packed at once.
const NC: usize = 16 * NR;

/// An operand: bf16 bits, or f32 rounded to bf16 as it is packed.
#[derive(Clone, Copy)]
pub enum Operand<'a> {
    Bf16(MatRef<'a, u16>),
    F32(MatRef<'a, f32>),
}

impl Operand<'_> {
    fn rows(&self) -> usize {
        match self {
            Operand::Bf16(m) => m.rows,
            Operand::F32(m) => m.rows,
        }
    }

    fn cols(&self) -> usize {
        match self {
            Operand::Bf16(m) => m.cols,
            Operand::F32(m) => m.cols,
        }
    }

    /// Element `(i, j)` as bf16 bits.
    #[inline(always)]
    fn get(&self, i: usize, j: usize) -> u16 {
        match self {
            Operand::Bf16(m) => m.data[i * m.rs + j * m.cs],
            Operand::F32(m) => f32_to_bf16_bits(m.data[i * m.rs + j * m.cs]),
        }
    }

    fn check(&self, what: &str) {
        let (data, rows, cols, rs, cs) = match self {
            Operand::Bf16(m) => (m.data.len(), m.rows, m.cols, m.rs, m.cs),
            Operand::F32(m) => (m.data.len(), m.rows, m.cols, m.rs, m.cs),
        };
        if rows > 0 && cols > 0 {
            assert!((rows - 1) * rs + (cols - 1) * cs < data, "{what}: strided matrix past its slice");
        }
    }
}

/// `c = a * b`, or `c += a * b` when `accumulate`; `c` is row-major with row stride `ldc`.
pub fn gemm(c: &mut [f32], ldc: usize, accumulate: bool, a: Operand<'_>, b: Operand<'_>) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "gemm: inner dimensions differ");
    a.check("a");
    b.check("b");
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "gemm: c is too short");
    let blocked_path = k > 0 && has_avx512_bf16();
    // The blocked kernel stores its first slice of k where it does not accumulate: nothing to clear.
    if !accumulate && !blocked_path {
        for i in 0..m {
            c[i * ldc..i * ldc + n].fill(0.0);
        }
    }
    if k == 0 {
        return;
    }
    if blocked_path {
        blocked(c, ldc, accumulate, a, b, m, n, k);
    } else {
        portable(c, ldc, a, b, m, n, k);
    }
}

/// Whether this CPU runs `vdpbf16ps` (AVX512_BF16, with AVX512F).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The same products without AVX512_BF16: each bf16 pair widened to f32, summed in f32 in the
/// kernel's order (pairs along k, in slices of [`KC`]).
fn portable(c: &mut [f32], ldc: usize, a: Operand<'_>, b: Operand<'_>, m: usize, n: usize, k: usize) {
    for i in 0..m {
        for j in 0..n {
            let mut sum = 0f32;
            for p in 0..k {
                sum += bf16_bits_to_f32(a.get(i, p)) * bf16_bits_to_f32(b.get(p, j));
            }
            c[i * ldc + j] += sum;
        }
    }
}

/// Blocked over k, then columns, then rows, packing as it goes. The first slice of k adds onto
/// `c` when `accumulate`, else overwrites it.
#[allow(clippy::too_many_arguments)]
fn blocked(
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    a: Operand<'_>,
    b: Operand<'_>,
    m: usize,
    n: usize,
    k: usize,
) {
    PACKS.with(|packs| {
        let mut packs = packs.borrow_mut();
        let (pa, pb) = &mut *packs;
        // All of A packed once (it is the same for every block of columns): each slice of k's
        // blocks of rows, one after another.
        let blocks_of_rows = m.div_ceil(MC);
        let mut a_at = Vec::with_capacity(k.div_ceil(KC) * blocks_of_rows);
        let mut len = 0;
        for pc in (0..k).step_by(KC) {
            let pairs = KC.min(k - pc).div_ceil(2);
            for ic in (0..m).step_by(MC) {
                a_at.push(len);
                len += MC.min(m - ic).div_ceil(MR) * pairs * MR;
            }
        }
        if pa.len() < len {
            pa.resize(len, 0);
        }
        for (s, pc) in (0..k).step_by(KC).enumerate() {
            for (t, ic) in (0..m).step_by(MC).enumerate() {
                let at = a_at[s * blocks_of_rows + t];
                pack_a(&mut pa[at..], &a, ic, MC.min(m - ic), pc, KC.min(k - pc));
            }
        }
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for (s, pc) in (0..k).step_by(KC).enumerate() {
                let kc = KC.min(k - pc);
                let pairs = kc.div_ceil(2);
                let add = accumulate || pc > 0;
                pack_b(pb, &b, pc, kc, jc, nc);
                for (t, ic) in (0..m).step_by(MC).enumerate() {
                    let mc = MC.min(m - ic);
                    let pa = &pa[a_at[s * blocks_of_rows + t]..];
                    for (js, j0) in (0..nc).step_by(NR).enumerate() {
                        let bs = &pb[js * pairs * 2 * NR..];
                        for (is, i0) in (0..mc).step_by(MR).enumerate() {
                            let as_ = &pa[is * pairs * MR..];
                            let (rows, cols) = (MR.min(mc - i0), NR.min(nc - j0));
                            let at = (ic + i0) * ldc + jc + j0;
                            // SAFETY: `has_avx512_bf16` held; the packed slices hold `pairs`
                            // steps of one strip each; `c` holds `rows` rows of `cols` from `at`
                            // (checked against its length on entry).
                            unsafe { tile(pairs, as_, bs, &mut c[at..], ldc, rows, cols, add) };
                        }
                    }
                }
            }
        }
    });
}

thread_local! {
    /// This thread's packed A and B, kept from call to call.
    static PACKS: std::cell::RefCell<(Vec<u32>, Vec<u16>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// One `rows x cols` tile of C (at most [`MR`] x [`NR`]): plus the packed strips' product when `add`, else the product alone.
///
/// # Safety
/// The CPU runs AVX512F and AVX512_BF16; `a` holds `pairs * MR` and `b` `pairs * 2 * NR` elements;
/// `c` holds `(rows - 1) * ldc + cols` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    pairs: usize,
    a: &[u32],
    b: &[u16],
    c: &mut [f32],
    ldc: usize,
    rows: usize,
    cols: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= pairs * MR && b.len() >= pairs * 2 * NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    for p in 0..pairs {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(pb.add(p * 2 * NR) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(pb.add(p * 2 * NR + NR) as *const _));
        for (r, row) in acc.iter_mut().enumerate() {
            let pair: __m512bh = std::mem::transmute(_mm512_set1_epi32(*pa.add(p * MR + r) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], pair, b0);
            row[1] = _mm512_dpbf16_ps(row[1], pair, b1);
        }
    }
    // Overwriting adds the sums onto 0.0 all the same (so a -0.0 sum is stored +0.0, as when
    // added onto a cleared `c`): the same bits either way.
    let zero = _mm512_setzero_ps();
    if rows == MR && cols == NR {
        for (r, row) in acc.iter().enumerate() {
            let dst = c.as_mut_ptr().add(r * ldc);
            let (c0, c1) =
                if add { (_mm512_loadu_ps(dst), _mm512_loadu_ps(dst.add(16))) } else { (zero, zero) };
            _mm512_storeu_ps(dst, _mm512_add_ps(c0, row[0]));
            _mm512_storeu_ps(dst.add(16), _mm512_add_ps(c1, row[1]));
        }
    } else {
        let mut block = [0f32; MR * NR];
        for (r, row) in acc.iter().enumerate() {
            _mm512_storeu_ps(block.as_mut_ptr().add(r * NR), row[0]);
            _mm512_storeu_ps(block.as_mut_ptr().add(r * NR + 16), row[1]);
        }
        for r in 0..rows {
            for j in 0..cols {
                let was = if add { c[r * ldc + j] } else { 0.0 };
                c[r * ldc + j] = was + block[r * NR + j];
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(_: usize, _: &[u32], _: &[u16], _: &mut [f32], _: usize, _: usize, _: usize, _: bool) {
    unreachable!("AVX512_BF16 is x86-64's")
}
