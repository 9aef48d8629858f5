//! CubeCL kernels for LRN and overlapping max pooling, forward and backward, for burn's
//! `CubeBackend` on any CubeCL runtime (wgpu here; CUDA with the same code). One unit per output
//! element; tensors are indexed through their strides (CUDA pads rows, wgpu does not). They
//! compute what [`super::reference`] computes: the tests compare the two on random inputs.

use burn::tensor::{Int as BurnInt, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use super::{KernelBackend, LrnParams, PoolParams};

/// The NCHW coordinates of linear index `i` over `t`'s shape.
#[cube]
fn coords<E: CubePrimitive>(t: &Tensor<E>, i: usize) -> (usize, usize, usize, usize) {
    let w = i % t.shape(3);
    let h = (i / t.shape(3)) % t.shape(2);
    let c = (i / (t.shape(3) * t.shape(2))) % t.shape(1);
    let b = i / (t.shape(3) * t.shape(2) * t.shape(1));
    (b, c, h, w)
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
    let mut lo = 0;
    if c >= half {
        lo = c - half;
    }
    let hi = clamp_max(c + half + 1, x.shape(1));
    let mut sum = E::from_int(0);
    for cc in lo..hi {
        let v = x[base + cc * x.stride(1)];
        sum += v * v;
    }
    k + scale * sum
}

#[cube(launch)]
fn lrn_forward_kernel<E: Float>(
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

#[cube(launch)]
fn lrn_backward_kernel<E: Float>(
    x: &Tensor<E>,
    y: &Tensor<E>,
    dy: &Tensor<E>,
    dx: &mut Tensor<E>,
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
    let (b, c, h, w) = coords(dx, ABSOLUTE_POS);
    let (kk, sc, be) = (k.get::<E>(), scale.get::<E>(), beta.get::<E>());
    let mut lo = 0;
    if c >= half {
        lo = c - half;
    }
    let hi = clamp_max(c + half + 1, x.shape(1));
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
    dx[b * dx.stride(0) + c * dx.stride(1) + h * dx.stride(2) + w * dx.stride(3)] =
        g * s.powf(E::from_int(0) - be) - two * sc * be * xv * acc;
}

#[cube(launch)]
fn max_pool_forward_kernel<E: Float, I: Int>(
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

#[cube(launch)]
fn max_pool_backward_kernel<E: Float, I: Int>(
    dy: &Tensor<E>,
    arg: &Tensor<I>,
    dx: &mut Tensor<E>,
    n: usize,
    #[comptime] kernel: usize,
    #[comptime] stride: usize,
    #[comptime] pad: usize,
    #[define(E, I)] _dtypes: [StorageType; 2],
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
    let mut acc = E::from_int(0);
    for oh in oh0..oh1 {
        for ow in ow0..ow1 {
            let a = arg[b * arg.stride(0) + c * arg.stride(1) + oh * arg.stride(2) + ow * arg.stride(3)];
            if usize::cast_from(a) == me {
                acc += dy[b * dy.stride(0) + c * dy.stride(1) + oh * dy.stride(2) + ow * dy.stride(3)];
            }
        }
    }
    dx[b * dx.stride(0) + c * dx.stride(1) + ih * dx.stride(2) + iw * dx.stride(3)] = acc;
}

fn float<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    t: BurnTensor<CubeBackend<R, F, I, BT>, 4>,
) -> CubeTensor<R> {
    t.into_primitive().tensor()
}

fn wrap<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    t: CubeTensor<R>,
) -> BurnTensor<CubeBackend<R, F, I, BT>, 4> {
    BurnTensor::from_primitive(TensorPrimitive::Float(t))
}

/// A new tensor of `shape` and `dtype` on `like`'s device.
fn empty_like<R: CubeRuntime>(
    like: &CubeTensor<R>,
    shape: burn::tensor::Shape,
    dtype: burn::tensor::DType,
) -> CubeTensor<R> {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// One unit per element of `out`: its element count and launch grid.
fn grid<R: CubeRuntime>(out: &CubeTensor<R>) -> (usize, CubeCount, CubeDim) {
    let n = out.meta.num_elements();
    let dim = CubeDim::new(&out.client, n);
    (n, calculate_cube_count_elemwise(&out.client, n, dim), dim)
}

/// LRN's `scale`, `beta` and `k` as kernel scalars of `dtype` (exact for f64).
fn lrn_scalars(p: &LrnParams, dtype: burn::tensor::DType) -> (InputScalar, InputScalar, InputScalar) {
    (InputScalar::new(p.scale, dtype), InputScalar::new(p.beta, dtype), InputScalar::new(p.k, dtype))
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> KernelBackend
    for CubeBackend<R, F, I, BT>
{
    fn lrn_forward(x: BurnTensor<Self, 4>, p: &LrnParams) -> BurnTensor<Self, 4> {
        let x = float(x);
        let y = empty_like(&x, x.meta.shape().clone(), x.dtype);
        let (n, count, dim) = grid(&y);
        let dtype = x.dtype;
        let (scale, beta, k) = lrn_scalars(p, dtype);
        lrn_forward_kernel::launch(
            &y.client,
            count,
            dim,
            x.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            n,
            scale,
            beta,
            k,
            p.size / 2,
            dtype.into(),
        );
        wrap(y)
    }

    fn lrn_backward(
        x: BurnTensor<Self, 4>,
        y: BurnTensor<Self, 4>,
        dy: BurnTensor<Self, 4>,
        p: &LrnParams,
    ) -> BurnTensor<Self, 4> {
        let (x, y, dy) = (float(x), float(y), float(dy));
        let dx = empty_like(&x, x.meta.shape().clone(), x.dtype);
        let (n, count, dim) = grid(&dx);
        let dtype = x.dtype;
        let (scale, beta, k) = lrn_scalars(p, dtype);
        lrn_backward_kernel::launch(
            &dx.client,
            count,
            dim,
            x.into_tensor_arg(),
            y.into_tensor_arg(),
            dy.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            n,
            scale,
            beta,
            k,
            p.size / 2,
            dtype.into(),
        );
        wrap(dx)
    }

    fn max_pool_forward(
        x: BurnTensor<Self, 4>,
        p: &PoolParams,
    ) -> (BurnTensor<Self, 4>, BurnTensor<Self, 4, BurnInt>) {
        let x = float(x);
        let [b, c, h, w] = x.meta.shape().dims();
        let out =
            burn::tensor::Shape::new([b, c, super::reference::pooled(h, p), super::reference::pooled(w, p)]);
        let y = empty_like(&x, out.clone(), x.dtype);
        let int_dtype = <I as burn::tensor::Element>::dtype();
        let arg = empty_like(&x, out, int_dtype);
        let (n, count, dim) = grid(&y);
        let dtype = x.dtype;
        max_pool_forward_kernel::launch(
            &y.client,
            count,
            dim,
            x.into_tensor_arg(),
            y.clone().into_tensor_arg(),
            arg.clone().into_tensor_arg(),
            n,
            p.kernel,
            p.stride,
            p.padding,
            [dtype.into(), int_dtype.into()],
        );
        (wrap(y), BurnTensor::from_primitive(arg))
    }

    fn max_pool_backward(
        dy: BurnTensor<Self, 4>,
        argmax: BurnTensor<Self, 4, BurnInt>,
        input_hw: [usize; 2],
        p: &PoolParams,
    ) -> BurnTensor<Self, 4> {
        let dy = float(dy);
        let arg: CubeTensor<R> = argmax.into_primitive();
        let [b, c, _, _] = dy.meta.shape().dims();
        let shape = burn::tensor::Shape::new([b, c, input_hw[0], input_hw[1]]);
        let dx = empty_like(&dy, shape, dy.dtype);
        let (n, count, dim) = grid(&dx);
        let (dtype, int_dtype) = (dy.dtype, arg.dtype);
        max_pool_backward_kernel::launch(
            &dx.client,
            count,
            dim,
            dy.into_tensor_arg(),
            arg.into_tensor_arg(),
            dx.clone().into_tensor_arg(),
            n,
            p.kernel,
            p.stride,
            p.padding,
            [dtype.into(), int_dtype.into()],
        );
        wrap(dx)
    }
}
