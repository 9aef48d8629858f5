//! Overlapping max pooling: forward with argmax (one unit per output), backward as a gather over
//! the windows that cover each input element (one unit per input, no atomics).

use cubecl::prelude::*;

use super::coords;

// `v != v` is the NaN test that compiles on every CubeCL target.
#[allow(clippy::eq_op)]
#[cube(launch)]
pub fn max_pool_forward_kernel<E: Float, I: Int>(
    x: &Tensor<E>,
    y: &mut Tensor<E>,
    arg: &mut Tensor<I>,
    n: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] pad: usize,
    #[define(E, I)] _dtypes: [StorageType; 2],
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (b, c, r, col) = coords(y, ABSOLUTE_POS);
    let (h, w) = (x.shape(2), x.shape(3));
    let (rs, cs) = (r * stride, col * stride);
    let mut r0 = 0;
    if rs >= pad {
        r0 = rs - pad;
    }
    let mut c0 = 0;
    if cs >= pad {
        c0 = cs - pad;
    }
    let r1 = clamp_max(rs + kernel - pad, h);
    let c1 = clamp_max(cs + kernel - pad, w);
    let base = b * x.stride(0) + c * x.stride(1);
    // The first maximum in row-major order wins; a NaN beats any number (`v != v`: WGSL does
    // not promise NaN semantics, so this holds where the device keeps NaNs).
    let mut best = x[base + r0 * x.stride(2) + c0 * x.stride(3)];
    let mut at = r0 * w + c0;
    for i in r0..r1 {
        for j in c0..c1 {
            let v = x[base + i * x.stride(2) + j * x.stride(3)];
            let (v_nan, best_nan) = (v != v, best != best);
            if v > best || (v_nan && !best_nan) {
                best = v;
                at = i * w + j;
            }
        }
    }
    y[b * y.stride(0) + c * y.stride(1) + r * y.stride(2) + col * y.stride(3)] = best;
    arg[b * arg.stride(0) + c * arg.stride(1) + r * arg.stride(2) + col * arg.stride(3)] = I::cast_from(at);
}

/// With `relu`, times the mask of the ReLU whose output `ry` fed the pool (the fused
/// max_pool_grad + relu_grad); otherwise `ry` is a placeholder never read. The windows' gradients
/// are summed in `A` (f32 for f16 and bf16 tensors).
// `if flag { if cond {..} }`: the outer flag is comptime, the inner condition is not.
#[allow(clippy::collapsible_if)]
#[cube(launch)]
pub fn max_pool_backward_kernel<E: Float, I: Int, A: Float>(
    dy: &Tensor<E>,
    arg: &Tensor<I>,
    ry: &Tensor<E>,
    dx: &mut Tensor<E>,
    n: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] pad: usize,
    #[comptime] relu: bool,
    #[define(E, I, A)] _dtypes: [StorageType; 3],
) {
    if ABSOLUTE_POS >= n {
        terminate!();
    }
    let (b, c, ih, iw) = coords(dx, ABSOLUTE_POS);
    let w = dx.shape(3);
    // Gather: the windows o with o*s - pad <= i < o*s - pad + k, clipped to the output.
    let mut oh0 = 0;
    if ih + pad >= kernel {
        oh0 = (ih + pad - kernel) / stride + 1;
    }
    let oh1 = clamp_max((ih + pad) / stride + 1, dy.shape(2));
    let mut ow0 = 0;
    if iw + pad >= kernel {
        ow0 = (iw + pad - kernel) / stride + 1;
    }
    let ow1 = clamp_max((iw + pad) / stride + 1, dy.shape(3));
    let me = ih * w + iw;
    let mut acc = A::from_int(0);
    for oh in oh0..oh1 {
        for ow in ow0..ow1 {
            let a = arg[b * arg.stride(0) + c * arg.stride(1) + oh * arg.stride(2) + ow * arg.stride(3)];
            if usize::cast_from(a) == me {
                acc += A::cast_from(
                    dy[b * dy.stride(0) + c * dy.stride(1) + oh * dy.stride(2) + ow * dy.stride(3)],
                );
            }
        }
    }
    if relu {
        if ry[b * ry.stride(0) + c * ry.stride(1) + ih * ry.stride(2) + iw * ry.stride(3)] <= E::from_int(0) {
            acc = A::from_int(0);
        }
    }
    dx[b * dx.stride(0) + c * dx.stride(1) + ih * dx.stride(2) + iw * dx.stride(3)] = E::cast_from(acc);
}
