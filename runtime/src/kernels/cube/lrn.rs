//! LRN across channels, forward and backward, and LRN of `relu(x + bias)` (the fused conv + bias +
//! ReLU + LRN tail): one unit per output element.

use cubecl::prelude::*;

use super::coords;

/// `max(v, 0)`; a NaN stays a NaN, as in the reference.
#[cube]
pub fn relu_of<E: Float>(v: E) -> E {
    let mut out = v;
    if v < E::from_int(0) {
        out = E::from_int(0);
    }
    out
}

/// The channel window `lo..hi` around `c` of half-width `half`, clipped to `channels`.
#[cube]
fn window(c: usize, channels: usize, #[comptime] half: usize) -> (usize, usize) {
    let mut lo = 0;
    if c >= half {
        lo = c - half;
    }
    (lo, clamp_max(c + half + 1, channels))
}

/// `k + scale * sum of x^2` over the channel window around `c`, at (b, h, w).
#[cube]
fn window_scale<E: Float>(
    x: &Tensor<E>,
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    k: E,
    scale: E,
    #[comptime] half: usize,
) -> E {
    let base = b * x.stride(0) + h * x.stride(2) + w * x.stride(3);
    let (lo, hi) = window(c, x.shape(1), half);
    let mut sum = E::from_int(0);
    for cc in lo..hi {
        let v = x[base + cc * x.stride(1)];
        sum += v * v;
    }
    k + scale * sum
}

#[cube(launch)]
pub fn lrn_forward_kernel<E: Float>(
    x: &Tensor<E>,
    y: &mut Tensor<E>,
    n: usize,
    scale: InputScalar,
    beta: InputScalar,
    k: InputScalar,
    #[comptime] half: usize,
    #[define(E)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (b, c, h, w) = coords(y, ABSOLUTE_POS);
    let s = window_scale(x, b, c, h, w, k.get::<E>(), scale.get::<E>(), half);
    let xv = x[b * x.stride(0) + c * x.stride(1) + h * x.stride(2) + w * x.stride(3)];
    y[b * y.stride(0) + c * y.stride(1) + h * y.stride(2) + w * y.stride(3)] =
        xv * s.powf(E::from_int(0) - beta.get::<E>());
}

/// LRN of `r = relu(z + bias)`, computing `r` per read of the window; writes `r` too when
/// `keep_relu` (the backward pass reads it), else `r` is a placeholder never touched.
#[cube(launch)]
pub fn bias_relu_lrn_kernel<E: Float>(
    z: &Tensor<E>,
    bias: &Tensor<E>,
    y: &mut Tensor<E>,
    r: &mut Tensor<E>,
    n: usize,
    scale: InputScalar,
    beta: InputScalar,
    k: InputScalar,
    #[comptime] half: usize,
    #[comptime] keep_relu: bool,
    #[define(E)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (b, c, h, w) = coords(y, ABSOLUTE_POS);
    let base = b * z.stride(0) + h * z.stride(2) + w * z.stride(3);
    let (lo, hi) = window(c, z.shape(1), half);
    let mut sum = E::from_int(0);
    for cc in lo..hi {
        let v = relu_of::<E>(z[base + cc * z.stride(1)] + bias[cc * bias.stride(0)]);
        sum += v * v;
    }
    let rv = relu_of::<E>(z[base + c * z.stride(1)] + bias[c * bias.stride(0)]);
    let s = k.get::<E>() + scale.get::<E>() * sum;
    y[b * y.stride(0) + c * y.stride(1) + h * y.stride(2) + w * y.stride(3)] =
        rv * s.powf(E::from_int(0) - beta.get::<E>());
    if keep_relu {
        r[b * r.stride(0) + c * r.stride(1) + h * r.stride(2) + w * r.stride(3)] = rv;
    }
}

/// The LRN gradient from `(x, y, dy)`; with `relu_mask`, times the mask of the ReLU whose output
/// `x` is (zero where `x <= 0`): the fused lrn_grad + relu_grad.
#[cube(launch)]
pub fn lrn_backward_kernel<E: Float>(
    x: &Tensor<E>,
    y: &Tensor<E>,
    dy: &Tensor<E>,
    dx: &mut Tensor<E>,
    n: usize,
    scale: InputScalar,
    beta: InputScalar,
    k: InputScalar,
    #[comptime] half: usize,
    #[comptime] relu_mask: bool,
    #[define(E)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (b, c, h, w) = coords(dx, ABSOLUTE_POS);
    let (kk, sc, be) = (k.get::<E>(), scale.get::<E>(), beta.get::<E>());
    let (lo, hi) = window(c, x.shape(1), half);
    // The windows are symmetric: the channels whose window holds c are c's own window.
    let mut acc = E::from_int(0);
    for cc in lo..hi {
        let s = window_scale(x, b, cc, h, w, kk, sc, half);
        let yv = y[b * y.stride(0) + cc * y.stride(1) + h * y.stride(2) + w * y.stride(3)];
        let g = dy[b * dy.stride(0) + cc * dy.stride(1) + h * dy.stride(2) + w * dy.stride(3)];
        acc += g * yv / s;
    }
    let s = window_scale(x, b, c, h, w, kk, sc, half);
    let xv = x[b * x.stride(0) + c * x.stride(1) + h * x.stride(2) + w * x.stride(3)];
    let g = dy[b * dy.stride(0) + c * dy.stride(1) + h * dy.stride(2) + w * dy.stride(3)];
    let two = E::from_int(2);
    let mut out = g * s.powf(E::from_int(0) - be) - two * sc * be * xv * acc;
    if relu_mask {
        if xv <= E::from_int(0) {
            out = E::from_int(0);
        }
    }
    dx[b * dx.stride(0) + c * dx.stride(1) + h * dx.stride(2) + w * dx.stride(3)] = out;
}
