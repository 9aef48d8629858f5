//! Reference CPU kernels for LRN and overlapping max pooling, on NCHW `f32` slices. They define
//! what the GPU kernels must compute; planes (one image's channels, or one channel's pixels) run
//! in parallel.

use num_traits::Float;
use rayon::prelude::*;

use super::{LrnParams, PoolParams, SgdParams};

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

/// `y = x * (k + scale * sum_window x^2)^-beta`, `x` of shape `[n, c, h, w]`. Each output plane
/// is one task that sums its window's squares into itself (the same order as [`window_scales`]),
/// so the planes it reads stay in cache and nothing else is allocated.
pub fn lrn_forward<T: Real>(x: &[T], shape: [usize; 4], p: &LrnParams) -> Vec<T> {
    let [_, c, h, w] = shape;
    let (plane, half) = (h * w, p.size / 2);
    let (k, scale) = (real::<T>(p.k), real::<T>(p.scale));
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(plane).enumerate().for_each(|(i, y)| {
        let (image, ch) = (i / c * c * plane, i % c);
        for cc in ch.saturating_sub(half)..=(ch + half).min(c - 1) {
            let src = &x[image + cc * plane..image + (cc + 1) * plane];
            for (a, v) in y.iter_mut().zip(src) {
                *a = *a + *v * *v;
            }
        }
        for (a, v) in y.iter_mut().zip(&x[image + ch * plane..image + (ch + 1) * plane]) {
            *a = *v * pow_neg(k + scale * *a, p.beta);
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
            let mut acc = vec![T::zero(); plane];
            for ch in 0..c {
                // The window sum of `ratio` around `ch`, plane by plane (contiguous, vectorisable).
                acc.fill(T::zero());
                for cc in ch.saturating_sub(half)..=(ch + half).min(c - 1) {
                    for (a, r) in acc.iter_mut().zip(&ratio[cc * plane..(cc + 1) * plane]) {
                        *a = *a + *r;
                    }
                }
                let at = ch * plane..(ch + 1) * plane;
                for ((((d, g), s), x), a) in
                    dx[at.clone()].iter_mut().zip(&dy[at.clone()]).zip(&s[at.clone()]).zip(&x[at]).zip(&acc)
                {
                    *d = *g * pow_neg(*s, p.beta) - factor * *x * *a;
                }
            }
        });
    dx
}

/// `z <- max(z + bias[c], 0)` over `z` of shape `[n, c, h, w]`, plane by plane.
pub fn bias_relu<T: Real>(z: &mut [T], bias: &[T], shape: [usize; 4]) {
    let [_, c, h, w] = shape;
    z.par_chunks_mut(h * w).enumerate().for_each(|(i, plane)| {
        let b = bias[i % c];
        for v in plane {
            let s = *v + b;
            // `s < 0`, not `max`: a NaN stays a NaN.
            *v = if s < T::zero() { T::zero() } else { s };
        }
    });
}

/// `g <- 0` where the ReLU output `y <= 0` (the ReLU's gradient, in place).
pub fn relu_mask<T: Real>(g: &mut [T], y: &[T]) {
    g.par_chunks_mut(1 << 16).zip(y.par_chunks(1 << 16)).for_each(|(g, y)| {
        for (g, y) in g.iter_mut().zip(y) {
            if *y <= T::zero() {
                *g = T::zero();
            }
        }
    });
}

/// Output size of a pooling window over `input`.
pub fn pooled(input: usize, p: &PoolParams) -> usize {
    (input + 2 * p.padding - p.kernel) / p.stride + 1
}

/// Whether `v` replaces `best` as a window's maximum: greater, or the first NaN. Written without
/// short circuits so that the loops that use it compile to selects, not unpredictable branches.
#[inline(always)]
fn beats<T: Real>(v: T, best: T) -> bool {
    #[allow(clippy::eq_op)]
    let (v_nan, best_nan) = (v != v, best != best);
    (v > best) | (v_nan & !best_nan)
}

/// Max over each window; ties go to the first maximum in row-major order (as PyTorch). Returns
/// the maxima and, for each, the flat index `ih * w + iw` of its input in the channel's plane.
/// Separable: each input row's maxima over the output columns' windows first (the first column
/// wins ties), then down each window's rows (the first row wins), which is row-major order.
pub fn max_pool_forward<T: Real>(x: &[T], shape: [usize; 4], p: &PoolParams) -> (Vec<T>, Vec<i32>) {
    let [_, _, h, w] = shape;
    let (oh, ow) = (pooled(h, p), pooled(w, p));
    let planes = x.len() / (h * w);
    let mut y = vec![T::zero(); planes * oh * ow];
    let mut arg = vec![0i32; planes * oh * ow];
    // The clipped window of each output row and column, computed once.
    let span = |o: usize, len: usize| {
        let start = (o * p.stride) as isize - p.padding as isize;
        (start.max(0) as usize, ((start + p.kernel as isize).min(len as isize)) as usize)
    };
    let rows: Vec<(usize, usize)> = (0..oh).map(|r| span(r, h)).collect();
    let cols: Vec<(usize, usize)> = (0..ow).map(|c| span(c, w)).collect();
    let row_maxima = || (vec![T::zero(); h * ow], vec![0i32; h * ow]);
    y.par_chunks_mut(oh * ow).zip(arg.par_chunks_mut(oh * ow)).zip(x.par_chunks(h * w)).for_each_init(
        row_maxima,
        |(best, at), ((y, arg), x)| {
            for ((line, best), at) in x.chunks(w).zip(best.chunks_mut(ow)).zip(at.chunks_mut(ow)) {
                for ((b, a), &(c0, c1)) in best.iter_mut().zip(at.iter_mut()).zip(&cols) {
                    let (mut m, mut j) = (line[c0], c0 as i32);
                    for (jj, &v) in (c0 + 1..c1).zip(&line[c0 + 1..c1.max(c0 + 1)]) {
                        let take = beats(v, m);
                        m = if take { v } else { m };
                        j = if take { jj as i32 } else { j };
                    }
                    (*b, *a) = (m, j);
                }
            }
            for ((y, arg), &(r0, r1)) in y.chunks_mut(ow).zip(arg.chunks_mut(ow)).zip(&rows) {
                y.copy_from_slice(&best[r0 * ow..(r0 + 1) * ow]);
                for (a, j) in arg.iter_mut().zip(&at[r0 * ow..(r0 + 1) * ow]) {
                    *a = (r0 * w) as i32 + *j;
                }
                for i in r0 + 1..r1 {
                    let (row, cols_at) = (&best[i * ow..(i + 1) * ow], &at[i * ow..(i + 1) * ow]);
                    let base = (i * w) as i32;
                    for (((m, a), &v), &j) in y.iter_mut().zip(arg.iter_mut()).zip(row).zip(cols_at) {
                        let take = beats(v, *m);
                        *m = if take { v } else { *m };
                        *a = if take { base + j } else { *a };
                    }
                }
            }
        },
    );
    (y, arg)
}

/// The pooling gradient: each input receives `dy` from every window that covers it and chose it
/// (with a 3x3 window and stride 2, up to four). Planes run in parallel and each plane is summed
/// by one task, so no two tasks write the same element (the GPU kernels gather instead).
pub fn max_pool_backward<T: Real>(
    dy: &[T],
    arg: &[i32],
    input_hw: [usize; 2],
    out_hw: [usize; 2],
    _p: &PoolParams,
) -> Vec<T> {
    let ([h, w], [oh, ow]) = (input_hw, out_hw);
    let planes = dy.len() / (oh * ow);
    let mut dx = vec![T::zero(); planes * h * w];
    dx.par_chunks_mut(h * w).zip(dy.par_chunks(oh * ow).zip(arg.par_chunks(oh * ow))).for_each(
        |(dx, (dy, arg))| {
            for (g, &a) in dy.iter().zip(arg) {
                dx[a as usize] = dx[a as usize] + *g;
            }
        },
    );
    dx
}

/// SGD with momentum and weight decay, in place: `v <- m v - rate (g + decay w); w <- w + v`.
pub fn sgd_update<T: Real>(w: &mut [T], g: &[T], v: &mut [T], p: &SgdParams) {
    let (m, rate, decay) = (real::<T>(p.momentum), real::<T>(p.rate), real::<T>(p.decay));
    const CHUNK: usize = 1 << 16;
    w.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(v.par_chunks_mut(CHUNK)).for_each(|((w, g), v)| {
        for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
            *v = m * *v - rate * (*g + decay * *w);
            *w = *w + *v;
        }
    });
}
