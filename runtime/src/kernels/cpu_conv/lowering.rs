//! im2col and col2im for one image's channels: the column matrix whose row `(c, ki, kj)` holds,
//! for every output pixel, the input value under kernel tap `(ki, kj)` of channel `c` (zero in
//! the padding), and its adjoint, which adds such a matrix back onto the input plane.

use super::ConvShape;
use crate::kernels::reference::Real;
use crate::kernels::simd::{dispatch, Isa, Kernel};

/// The spatial sizes of one channel plane and its convolution.
#[derive(Debug, Clone, Copy)]
pub struct PlaneGeometry {
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PlaneGeometry {
    pub fn of(s: &ConvShape) -> Self {
        let [oh, ow] = s.out_hw();
        PlaneGeometry {
            h: s.in_hw[0],
            w: s.in_hw[1],
            oh,
            ow,
            kernel: s.kernel,
            stride: s.stride,
            padding: s.padding,
        }
    }

    /// Output pixels per plane.
    pub fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// The outputs `o` in `lo..hi` whose tap `tap` reads inside an axis of `input` values.
    fn valid(&self, tap: usize, input: usize, out: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let hi = if input + p > tap { ((input + p - tap - 1) / s + 1).min(out) } else { 0 };
        let lo = if p > tap { (p - tap).div_ceil(s) } else { 0 }.min(hi);
        (lo, hi)
    }
}

/// Writes the column matrix of `x` (`channels` planes) for the output pixels `pixels` (row-major
/// in the output plane) into `col` at columns `col0..col0 + pixels.len()` of rows
/// `0..channels * k * k`, row stride `ld`; the padding is `T::default()` (zero, for floats and
/// for bf16's bits alike). A few output rows at a time keep the column matrix of a large plane
/// (conv1's: 363 x 3025) in cache for the product that reads it.
pub fn im2col<T: Copy + Default>(
    x: &[T],
    channels: usize,
    g: &PlaneGeometry,
    col: &mut [T],
    ld: usize,
    col0: usize,
    pixels: std::ops::Range<usize>,
) {
    dispatch(Isa::detect(), Im2col { x, channels, g, col, ld, col0, pixels });
}

/// [`im2col`]'s loops, compiled per instruction set (the copies of runs of a row vectorise).
struct Im2col<'a, T> {
    x: &'a [T],
    channels: usize,
    g: &'a PlaneGeometry,
    col: &'a mut [T],
    ld: usize,
    col0: usize,
    pixels: std::ops::Range<usize>,
}

impl<T: Copy + Default> Kernel for Im2col<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Im2col { x, channels, g, col, ld, col0, pixels } = self;
        let (k, s, p) = (g.kernel, g.stride, g.padding);
        let plane = g.h * g.w;
        let (first, last) = (pixels.start / g.ow, pixels.end.div_ceil(g.ow));
        // A strided row is split into its stride phases once (phase r: inputs r, r + s, ...),
        // so that each tap copies a contiguous run of one phase instead of gathering (conv1's
        // stride-4 gathers were 14% of an inference step at batch 16).
        let pw = g.w.div_ceil(s);
        let mut phases = vec![T::default(); if s > 1 { pw * s } else { 0 }];
        for c in 0..channels {
            let src = &x[c * plane..(c + 1) * plane];
            for ki in 0..k {
                let (oh_lo, oh_hi) = g.valid(ki, g.h, g.oh);
                for o in first..last {
                    // Output row o's pixels in the range (a..b across it), at `at` in each row of `col`.
                    let a = pixels.start.max(o * g.ow) - o * g.ow;
                    let b = pixels.end.min((o + 1) * g.ow) - o * g.ow;
                    let at = col0 + o * g.ow + a - pixels.start;
                    let inside = (oh_lo..oh_hi).contains(&o);
                    let src_row: &[T] = if inside { &src[(o * s + ki - p) * g.w..][..g.w] } else { &[] };
                    let phased = if s > 1 && inside {
                        for (r, phase) in phases.chunks_exact_mut(pw).enumerate() {
                            for (d, v) in phase.iter_mut().zip(src_row[r.min(g.w)..].iter().step_by(s)) {
                                *d = *v;
                            }
                        }
                        &phases[..]
                    } else {
                        src_row
                    };
                    for kj in 0..k {
                        let d = &mut col[((c * k + ki) * k + kj) * ld + at..][..b - a];
                        if !inside {
                            zero(d);
                            continue;
                        }
                        let (ow_lo, ow_hi) = g.valid(kj, g.w, g.ow);
                        let (lo, hi) = (ow_lo.clamp(a, b), ow_hi.clamp(a, b));
                        zero(&mut d[..lo - a]);
                        zero(&mut d[hi - a..]);
                        if lo < hi {
                            // Input column ow * s + kj - p = s * i + r: phase r, place i.
                            let t = lo * s + kj - p;
                            let from = if s > 1 { (t % s) * pw + t / s } else { t };
                            d[lo - a..hi - a].copy_from_slice(&phased[from..][..hi - lo]);
                        }
                    }
                }
            }
        }
    }
}

/// `d` cleared: the padding's few elements of a row stored one by one, not by a call to memset
/// per row (most rows have none or one or two: the calls were 5% of a bf16 step at batch 128).
#[inline(always)]
fn zero<T: Copy + Default>(d: &mut [T]) {
    match d.len() {
        0 => {}
        1 => d[0] = T::default(),
        2 => {
            d[0] = T::default();
            d[1] = T::default();
        }
        _ => d.fill(T::default()),
    }
}

/// Adds the column matrix in `col` (columns `col0..col0 + oh*ow`, row stride `ld`) back onto the
/// `channels` planes of `dx`: the adjoint of [`im2col`].
pub fn col2im<T: Real>(col: &[T], ld: usize, col0: usize, channels: usize, g: &PlaneGeometry, dx: &mut [T]) {
    let (k, s, p) = (g.kernel, g.stride, g.padding);
    let plane = g.h * g.w;
    for c in 0..channels {
        let dst = &mut dx[c * plane..(c + 1) * plane];
        for ki in 0..k {
            let (oh_lo, oh_hi) = g.valid(ki, g.h, g.oh);
            for kj in 0..k {
                let (ow_lo, ow_hi) = g.valid(kj, g.w, g.ow);
                let row = (c * k + ki) * k + kj;
                let src = &col[row * ld + col0..row * ld + col0 + g.out_plane()];
                for o in oh_lo..oh_hi {
                    let d = &mut dst[(o * s + ki - p) * g.w..][..g.w];
                    let src_row = &src[o * g.ow..(o + 1) * g.ow];
                    if s == 1 {
                        let iw0 = ow_lo + kj - p;
                        for (d, v) in d[iw0..iw0 + (ow_hi - ow_lo)].iter_mut().zip(&src_row[ow_lo..ow_hi]) {
                            *d = *d + *v;
                        }
                    } else {
                        for (ow, v) in (ow_lo..ow_hi).zip(&src_row[ow_lo..ow_hi]) {
                            let i = ow * s + kj - p;
                            d[i] = d[i] + *v;
                        }
                    }
                }
            }
        }
    }
}
