//! Reference CPU kernels for LRN and overlapping max pooling, on NCHW `f32` slices. They define
//! what the GPU kernels must compute; planes (one image's channels, or one channel's pixels) run
//! in parallel.

use num_traits::Float;
use rayon::prelude::*;

use super::scratch::scratch;
use super::simd::{dispatch, Isa, Kernel};
use super::{LrnParams, SgdParams};

pub use super::max_pool::{max_pool_backward, max_pool_forward, max_pool_values, pooled};

/// The element types the kernels run in: `f32`, and `f64` for gradient checks.
pub trait Real: Float + Send + Sync + std::iter::Sum + super::scratch::Pooled {}
impl Real for f32 {}
impl Real for f64 {}

fn real<T: Real>(v: f64) -> T {
    T::from(v).expect("representable")
}

/// `s^-beta`, with a fast path for the paper's beta = 0.75.
#[inline(always)]
pub(crate) fn pow_neg<T: Real>(s: T, beta: f64) -> T {
    if beta == 0.75 {
        let r = s.sqrt();
        T::one() / (r * r.sqrt())
    } else {
        s.powf(real(-beta))
    }
}

/// Each `s` to `s^-beta` ([`pow_neg`]), the test of beta made once, outside the loop: inside
/// it, LLVM keeps the call to `powf` of the other branch and vectorises nothing.
#[inline(always)]
pub(crate) fn pow_neg_all<T: Real>(v: &mut [T], beta: f64) {
    if beta == 0.75 {
        for s in v {
            *s = pow_neg(*s, 0.75);
        }
    } else {
        for s in v {
            *s = pow_neg(*s, beta);
        }
    }
}

/// `dst <-` the sum over channel `c`'s window (`half` channels each side, clipped to `channels`)
/// of `rows` (`dst.len()` long each, one a channel): from zero, in channel order.
#[inline(always)]
pub(crate) fn window_sum<T: Real>(dst: &mut [T], rows: &[T], c: usize, half: usize, channels: usize) {
    let n = dst.len();
    dst.fill(T::zero());
    for cc in c.saturating_sub(half)..=(c + half).min(channels - 1) {
        for (d, s) in dst.iter_mut().zip(&rows[cc * n..(cc + 1) * n]) {
            *d = *d + *s;
        }
    }
}

/// The LRN denominators' base `k + scale * sum a^2` over each channel's window, for one image
/// (or a run of `plane` positions of each of its channels).
#[inline(always)]
pub(crate) fn window_scales<T: Real>(x: &[T], channels: usize, plane: usize, p: &LrnParams, out: &mut [T]) {
    let (k, scale) = (real::<T>(p.k), real::<T>(p.scale));
    let mut sq = scratch::<T>(x.len());
    for (q, v) in sq.iter_mut().zip(x) {
        *q = *v * *v;
    }
    for c in 0..channels {
        let dst = &mut out[c * plane..(c + 1) * plane];
        window_sum(dst, &sq, c, p.size / 2, channels);
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
    let plane = h * w;
    let mut y = vec![T::zero(); x.len()];
    let isa = Isa::detect();
    y.par_chunks_mut(plane).enumerate().for_each(|(i, y)| {
        let image = &x[i / c * c * plane..][..c * plane];
        dispatch(isa, LrnPlane { image, ch: i % c, y, p });
    });
    y
}

/// One output plane of [`lrn_forward`]: channel `ch` of `image`.
struct LrnPlane<'a, T> {
    image: &'a [T],
    ch: usize,
    y: &'a mut [T],
    p: &'a LrnParams,
}

impl<T: Real> Kernel for LrnPlane<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let LrnPlane { image, ch, y, p } = self;
        let (plane, half, c) = (y.len(), p.size / 2, image.len() / y.len());
        let (k, scale) = (real::<T>(p.k), real::<T>(p.scale));
        for cc in ch.saturating_sub(half)..=(ch + half).min(c - 1) {
            for (a, v) in y.iter_mut().zip(&image[cc * plane..(cc + 1) * plane]) {
                *a = *a + *v * *v;
            }
        }
        for a in y.iter_mut() {
            *a = k + scale * *a;
        }
        pow_neg_all(y, p.beta);
        for (a, v) in y.iter_mut().zip(&image[ch * plane..(ch + 1) * plane]) {
            *a = *v * *a;
        }
    }
}

/// `dx[c] = dy[c] s[c]^-beta - 2 scale beta x[c] sum_{c' : c in window(c')} dy[c'] y[c'] / s[c']`.
/// The windows are symmetric, so the sum runs over `c`'s own window.
pub fn lrn_backward<T: Real>(x: &[T], y: &[T], dy: &[T], shape: [usize; 4], p: &LrnParams) -> Vec<T> {
    let [_, c, h, w] = shape;
    let (image, plane, half) = (c * h * w, h * w, p.size / 2);
    let mut dx = vec![T::zero(); x.len()];
    let isa = Isa::detect();
    dx.par_chunks_mut(image)
        .zip(x.par_chunks(image))
        .zip(y.par_chunks(image).zip(dy.par_chunks(image)))
        .for_each(|((dx, x), (y, dy))| dispatch(isa, LrnGradImage { dx, x, y, dy, c, plane, half, p }));
    dx
}

/// One image of [`lrn_backward`].
struct LrnGradImage<'a, T> {
    dx: &'a mut [T],
    x: &'a [T],
    y: &'a [T],
    dy: &'a [T],
    c: usize,
    plane: usize,
    half: usize,
    p: &'a LrnParams,
}

impl<T: Real> Kernel for LrnGradImage<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let LrnGradImage { dx, x, y, dy, c, plane, half, p } = self;
        // Scratch, each element written before it is read.
        let mut s = scratch::<T>(x.len());
        window_scales(x, c, plane, p, &mut s);
        let mut ratio = scratch::<T>(x.len());
        for (((r, g), y), s) in ratio.iter_mut().zip(dy).zip(y).zip(s.iter()) {
            *r = *g * *y / *s;
        }
        pow_neg_all(&mut s, p.beta);
        let factor = real::<T>(2.0 * p.scale * p.beta);
        let mut acc = scratch::<T>(plane);
        for ch in 0..c {
            // The window sum of `ratio` around `ch`, plane by plane (contiguous, vectorisable).
            window_sum(&mut acc, &ratio, ch, half, c);
            let at = ch * plane..(ch + 1) * plane;
            for ((((d, g), s), x), a) in
                dx[at.clone()].iter_mut().zip(&dy[at.clone()]).zip(&s[at.clone()]).zip(&x[at]).zip(acc.iter())
            {
                *d = *g * *s - factor * *x * *a;
            }
        }
    }
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
