//! Reference CPU kernels for LRN and overlapping max pooling, on NCHW `f32` slices. They define
//! what the GPU kernels must compute; planes (one image's channels, or one channel's pixels) run
//! in parallel.

use num_traits::Float;
use rayon::prelude::*;

use super::{LrnParams, PoolParams};

/// The element types the kernels run in: `f32`, and `f64` for gradient checks.
pub trait Real: Float + Send + Sync + std::iter::Sum + 'static {}
impl Real for f32 {}
impl Real for f64 {}

fn real<T: Real>(v: f64) -> T {
    T::from(v).expect("representable")
}

/// `s^-beta`, with a fast path for the paper's beta = 0.75.
#[inline]
fn pow_neg<T: Real>(s: T, beta: f64) -> T {
    if beta == 0.75 {
        let r = s.sqrt();
        T::one() / (r * r.sqrt())
    } else {
        s.powf(real(-beta))
    }
}

/// The LRN denominators' base `k + scale * sum a^2` over each channel's window, for one image.
fn window_scales<T: Real>(x: &[T], channels: usize, plane: usize, p: &LrnParams, out: &mut [T]) {
    let half = p.size / 2;
    let (k, scale) = (real::<T>(p.k), real::<T>(p.scale));
    let sq: Vec<T> = x.iter().map(|v| *v * *v).collect();
    for c in 0..channels {
        let lo = c.saturating_sub(half);
        let hi = (c + half).min(channels - 1);
        let dst = &mut out[c * plane..(c + 1) * plane];
        dst.fill(T::zero());
        for cc in lo..=hi {
            let src = &sq[cc * plane..(cc + 1) * plane];
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *d + *s;
            }
        }
        for d in dst.iter_mut() {
            *d = k + scale * *d;
        }
    }
}

/// `y = x * (k + scale * sum_window x^2)^-beta`, `x` of shape `[n, c, h, w]`.
pub fn lrn_forward<T: Real>(x: &[T], shape: [usize; 4], p: &LrnParams) -> Vec<T> {
    let [_, c, h, w] = shape;
    let image = c * h * w;
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(image).zip(x.par_chunks(image)).for_each(|(y, x)| {
        let mut s = vec![T::zero(); image];
        window_scales(x, c, h * w, p, &mut s);
        for ((y, x), s) in y.iter_mut().zip(x).zip(&s) {
            *y = *x * pow_neg(*s, p.beta);
        }
    });
    y
}

/// `dx[c] = dy[c] s[c]^-beta - 2 scale beta x[c] sum_{c' : c in window(c')} dy[c'] y[c'] / s[c']`.
/// The windows are symmetric, so the sum runs over `c`'s own window.
pub fn lrn_backward<T: Real>(x: &[T], y: &[T], dy: &[T], shape: [usize; 4], p: &LrnParams) -> Vec<T> {
    let [_, c, h, w] = shape;
    let (image, plane, half) = (c * h * w, h * w, p.size / 2);
    let mut dx = vec![T::zero(); x.len()];
    dx.par_chunks_mut(image)
        .zip(x.par_chunks(image))
        .zip(y.par_chunks(image).zip(dy.par_chunks(image)))
        .for_each(|((dx, x), (y, dy))| {
            let mut s = vec![T::zero(); image];
            window_scales(x, c, plane, p, &mut s);
            let ratio: Vec<T> = dy.iter().zip(y).zip(&s).map(|((g, y), s)| *g * *y / *s).collect();
            let factor = real::<T>(2.0 * p.scale * p.beta);
            for ch in 0..c {
                let lo = ch.saturating_sub(half);
                let hi = (ch + half).min(c - 1);
                for i in 0..plane {
                    let at = ch * plane + i;
                    let mut acc = T::zero();
                    for cc in lo..=hi {
                        acc = acc + ratio[cc * plane + i];
                    }
                    dx[at] = dy[at] * pow_neg(s[at], p.beta) - factor * x[at] * acc;
                }
            }
        });
    dx
}

/// Output size of a pooling window over `input`.
pub fn pooled(input: usize, p: &PoolParams) -> usize {
    (input + 2 * p.padding - p.kernel) / p.stride + 1
}

/// Max over each window; ties go to the first maximum in row-major order (as PyTorch). Returns
/// the maxima and, for each, the flat index `ih * w + iw` of its input in the channel's plane.
pub fn max_pool_forward<T: Real>(x: &[T], shape: [usize; 4], p: &PoolParams) -> (Vec<T>, Vec<i32>) {
    let [_, _, h, w] = shape;
    let (oh, ow) = (pooled(h, p), pooled(w, p));
    let planes = x.len() / (h * w);
    let mut y = vec![T::zero(); planes * oh * ow];
    let mut arg = vec![0i32; planes * oh * ow];
    y.par_chunks_mut(oh * ow).zip(arg.par_chunks_mut(oh * ow)).zip(x.par_chunks(h * w)).for_each(
        |((y, arg), x)| {
            for r in 0..oh {
                let r0 = (r * p.stride) as isize - p.padding as isize;
                for col in 0..ow {
                    let c0 = (col * p.stride) as isize - p.padding as isize;
                    let (mut best, mut at) = (T::neg_infinity(), -1i32);
                    for i in r0.max(0)..(r0 + p.kernel as isize).min(h as isize) {
                        for j in c0.max(0)..(c0 + p.kernel as isize).min(w as isize) {
                            let v = x[i as usize * w + j as usize];
                            if v > best || v.is_nan() || at < 0 {
                                best = v;
                                at = (i as usize * w + j as usize) as i32;
                            }
                        }
                    }
                    y[r * ow + col] = best;
                    arg[r * ow + col] = at;
                }
            }
        },
    );
    (y, arg)
}

/// The pooling gradient as a gather: each input sums `dy` over the windows that cover it and chose
/// it. With a 3x3 window and stride 2 an input lies in up to four windows; no writes collide.
pub fn max_pool_backward<T: Real>(
    dy: &[T],
    arg: &[i32],
    input_hw: [usize; 2],
    out_hw: [usize; 2],
    p: &PoolParams,
) -> Vec<T> {
    let ([h, w], [oh, ow]) = (input_hw, out_hw);
    let planes = dy.len() / (oh * ow);
    let mut dx = vec![T::zero(); planes * h * w];
    // Windows covering input row i: r with r*s - pad <= i < r*s - pad + k.
    let covering = |i: usize, out: usize| {
        let i = i + p.padding;
        let first = if i + 1 > p.kernel { (i + 1 - p.kernel).div_ceil(p.stride) } else { 0 };
        let last = (i / p.stride).min(out - 1);
        first..=last
    };
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(oh * ow).zip(arg.par_chunks(oh * ow))).for_each(
        |(dx, (dy, arg))| {
            for i in 0..h {
                for j in 0..w {
                    let me = (i * w + j) as i32;
                    let mut acc = T::zero();
                    for r in covering(i, oh) {
                        for c in covering(j, ow) {
                            if arg[r * ow + c] == me {
                                acc = acc + dy[r * ow + c];
                            }
                        }
                    }
                    dx[i * w + j] = acc;
                }
            }
        },
    );
    dx
}
