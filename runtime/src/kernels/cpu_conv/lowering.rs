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

/// Writes the column matrix of `x` (`channels` planes) into `col` at columns `col0..col0 + oh*ow`
/// of rows `0..channels * k * k`, row stride `ld`; the padding is `T::default()` (zero, for floats
/// and for bf16's bits alike).
pub fn im2col<T: Copy + Default>(
    x: &[T],
    channels: usize,
    g: &PlaneGeometry,
    col: &mut [T],
    ld: usize,
    col0: usize,
) {
    dispatch(Isa::detect(), Im2col { x, channels, g, col, ld, col0 });
}

/// [`im2col`]'s loops, compiled per instruction set (the strided gathers of conv1 vectorise).
struct Im2col<'a, T> {
    x: &'a [T],
    channels: usize,
    g: &'a PlaneGeometry,
    col: &'a mut [T],
    ld: usize,
    col0: usize,
}

impl<T: Copy + Default> Kernel for Im2col<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Im2col { x, channels, g, col, ld, col0 } = self;
        im2col_body(x, channels, g, col, ld, col0)
    }
}

#[inline(always)]
fn im2col_body<T: Copy + Default>(
    x: &[T],
    channels: usize,
    g: &PlaneGeometry,
    col: &mut [T],
    ld: usize,
    col0: usize,
) {
    let (k, s, p) = (g.kernel, g.stride, g.padding);
    let plane = g.h * g.w;
    for c in 0..channels {
        let src = &x[c * plane..(c + 1) * plane];
        for ki in 0..k {
            let (oh_lo, oh_hi) = g.valid(ki, g.h, g.oh);
            for kj in 0..k {
                let (ow_lo, ow_hi) = g.valid(kj, g.w, g.ow);
                let row = (c * k + ki) * k + kj;
                let dst = &mut col[row * ld + col0..row * ld + col0 + g.out_plane()];
                zero(&mut dst[..oh_lo * g.ow]);
                zero(&mut dst[oh_hi * g.ow..]);
                for o in oh_lo..oh_hi {
                    let src_row = &src[(o * s + ki - p) * g.w..][..g.w];
                    let d = &mut dst[o * g.ow..(o + 1) * g.ow];
                    zero(&mut d[..ow_lo]);
                    zero(&mut d[ow_hi..]);
                    if s == 1 {
                        let iw0 = ow_lo + kj - p;
                        d[ow_lo..ow_hi].copy_from_slice(&src_row[iw0..iw0 + (ow_hi - ow_lo)]);
                    } else {
                        for (ow, v) in (ow_lo..ow_hi).zip(&mut d[ow_lo..ow_hi]) {
                            *v = src_row[ow * s + kj - p];
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
