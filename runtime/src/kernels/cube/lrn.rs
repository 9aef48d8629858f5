//! LRN across channels, forward and backward, and LRN of `relu(z + bias)` (the fused conv + bias +
//! ReLU + LRN tail). One unit walks a run of `CHUNK` channels at one (image, row, column), keeping
//! the window's sum of squares as a running sum (add the channel entering, subtract the one
//! leaving), as Caffe's GPU LRN does: each input is read about twice instead of once per window
//! it falls in. Adjacent units take adjacent columns, so each channel step reads contiguous
//! memory across a warp for NCHW tensors.

use cubecl::prelude::*;

/// Channels per unit: long enough that the window's warm-up (`size - 1` channels) is a small
/// part of the work, short enough that the units fill the GPU at AlexNet's shapes.
pub const CHUNK: usize = 32;

/// `max(v, 0)`; a NaN stays a NaN, as in the reference.
#[cube]
pub fn relu_of<E: Float>(v: E) -> E {
    let mut out = v;
    if v < E::from_int(0) {
        out = E::from_int(0);
    }
    out
}

/// The unit's image, row, column and first channel, for `t` of shape `[n, c, h, w]`.
#[cube]
fn column_of<E: CubePrimitive>(t: &Tensor<E>, pos: usize) -> (usize, usize, usize, usize) {
    let (h, w) = (t.shape(2), t.shape(3));
    #[allow(clippy::manual_div_ceil)] // usize::div_ceil has no CubeCL expansion
    let chunks = (t.shape(1) + CHUNK - 1) / CHUNK;
    let col = pos % w;
    let row = (pos / w) % h;
    let chunk = (pos / (w * h)) % chunks;
    let b = pos / (w * h * chunks);
    (b, row, col, chunk * CHUNK)
}

/// Channel `c`'s value at a column in the accumulator type `A`: `x`, or `relu(x + bias[c])` when
/// `fused`.
#[cube]
fn value<E: Float, A: Float>(
    x: &Tensor<E>,
    bias: &Tensor<E>,
    base: usize,
    c: usize,
    #[comptime] fused: bool,
) -> A {
    let v = A::cast_from(x[base + c * x.stride(1)]);
    let mut out = v;
    if fused {
        out = relu_of::<A>(v + A::cast_from(bias[c * bias.stride(0)]));
    }
    out
}

/// `y = v * (k + scale * sum over the window of v^2)^-beta` with `v = x`, or (`fused`) with
/// `v = relu(x + bias)`, also written to `r` when `keep_relu`. Arguments that a flag leaves
/// unread are placeholders. Stored in `E`, computed in `A` (f32 for f16 and bf16 tensors: the
/// sum of squares and the power in f32, one rounding per output).
#[cube(launch)]
pub fn lrn_forward_kernel<E: Float, A: Float>(
    x: &Tensor<E>,
    bias: &Tensor<E>,
    y: &mut Tensor<E>,
    r: &mut Tensor<E>,
    units: usize,
    scale: InputScalar,
    beta: InputScalar,
    k: InputScalar,
    #[comptime] half: usize,
    #[comptime] fused: bool,
    #[comptime] keep_relu: bool,
    #[define(E, A)] _dtypes: [StorageType; 2],
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let (b, row, col, c0) = column_of(y, ABSOLUTE_POS);
    let channels = x.shape(1);
    let c1 = clamp_max(c0 + CHUNK, channels);
    let base = b * x.stride(0) + row * x.stride(2) + col * x.stride(3);
    let (sc, kk, nb) = (scale.get::<A>(), k.get::<A>(), A::from_int(0) - beta.get::<A>());
    // The window of channel c0 - 1: [c0 - 1 - half, c0 - 1 + half], clipped.
    let mut lo = 0;
    if c0 > half {
        lo = c0 - half - 1;
    }
    let mut sum = A::from_int(0);
    for i in lo..clamp_max(c0 + half, channels) {
        let v = value::<E, A>(x, bias, base, i, fused);
        sum += v * v;
    }
    for c in c0..c1 {
        if c + half < channels {
            let v = value::<E, A>(x, bias, base, c + half, fused);
            sum += v * v;
        }
        if c > half {
            let v = value::<E, A>(x, bias, base, c - half - 1, fused);
            sum -= v * v;
        }
        let v = value::<E, A>(x, bias, base, c, fused);
        y[b * y.stride(0) + c * y.stride(1) + row * y.stride(2) + col * y.stride(3)] =
            E::cast_from(v * (kk + sc * sum).powf(nb));
        if keep_relu {
            r[b * r.stride(0) + c * r.stride(1) + row * r.stride(2) + col * r.stride(3)] = E::cast_from(v);
        }
    }
}

/// The LRN gradient from `(x, y, dy)`:
/// `dx[c] = dy[c] s[c]^-beta - 2 scale beta x[c] sum_{c' in window(c)} dy[c'] y[c'] / s[c']`.
/// Walking `l` from `c0 - half` to `c1 + half`, the unit computes `s[l]` (running sum) and
/// `ratio[l]`, keeps the last `size` of each in rings, and writes `dx[l - half]`. With
/// `relu_mask`, `dx` is zero where `x <= 0` (the gradient through the ReLU whose output `x` is).
/// Stored in `E`, computed in `A`.
// `if flag { if cond {..} }`: the outer flag is comptime, the inner condition is not.
#[allow(clippy::collapsible_if)]
#[cube(launch)]
pub fn lrn_backward_kernel<E: Float, A: Float>(
    x: &Tensor<E>,
    y: &Tensor<E>,
    dy: &Tensor<E>,
    dx: &mut Tensor<E>,
    units: usize,
    scale: InputScalar,
    beta: InputScalar,
    k: InputScalar,
    #[comptime] half: usize,
    #[comptime] relu_mask: bool,
    #[define(E, A)] _dtypes: [StorageType; 2],
) {
    if ABSOLUTE_POS >= units {
        terminate!();
    }
    let size = comptime!(2 * half + 1);
    let (b, row, col, c0) = column_of(dx, ABSOLUTE_POS);
    let channels = x.shape(1);
    let c1 = clamp_max(c0 + CHUNK, channels);
    let xb = b * x.stride(0) + row * x.stride(2) + col * x.stride(3);
    let yb = b * y.stride(0) + row * y.stride(2) + col * y.stride(3);
    let gb = b * dy.stride(0) + row * dy.stride(2) + col * dy.stride(3);
    let (sc, kk, be) = (scale.get::<A>(), k.get::<A>(), beta.get::<A>());
    let factor = A::from_int(2) * sc * be;
    let mut ring_s = Array::<A>::new(size);
    let mut ring_r = Array::<A>::new(size);
    for i in 0..size {
        ring_s[i] = A::from_int(1);
        ring_r[i] = A::from_int(0);
    }
    let mut start = 0;
    if c0 >= half {
        start = c0 - half;
    }
    // The window of channel start - 1, clipped.
    let mut lo = 0;
    if start > half {
        lo = start - half - 1;
    }
    let mut sum = A::from_int(0);
    for i in lo..clamp_max(start + half, channels) {
        let v = A::cast_from(x[xb + i * x.stride(1)]);
        sum += v * v;
    }
    let mut acc = A::from_int(0);
    for l in start..c1 + half {
        let slot = l % size;
        // ratio[l - size] leaves the window of l - half.
        acc -= ring_r[slot];
        ring_r[slot] = A::from_int(0);
        if l < channels {
            if l + half < channels {
                let v = A::cast_from(x[xb + (l + half) * x.stride(1)]);
                sum += v * v;
            }
            if l > half {
                let v = A::cast_from(x[xb + (l - half - 1) * x.stride(1)]);
                sum -= v * v;
            }
            let s = kk + sc * sum;
            let ratio = A::cast_from(dy[gb + l * dy.stride(1)]) * A::cast_from(y[yb + l * y.stride(1)]) / s;
            ring_s[slot] = s;
            ring_r[slot] = ratio;
            acc += ratio;
        }
        if l >= c0 + half {
            let c = l - half;
            let xv = A::cast_from(x[xb + c * x.stride(1)]);
            let s = ring_s[c % size];
            let mut out =
                A::cast_from(dy[gb + c * dy.stride(1)]) * s.powf(A::from_int(0) - be) - factor * xv * acc;
            if relu_mask {
                if xv <= A::from_int(0) {
                    out = A::from_int(0);
                }
            }
            dx[b * dx.stride(0) + c * dx.stride(1) + row * dx.stride(2) + col * dx.stride(3)] =
                E::cast_from(out);
        }
    }
}
