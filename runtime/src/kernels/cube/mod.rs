//! CubeCL kernels for burn's `CubeBackend` on any CubeCL runtime (wgpu here; CUDA with the same
//! code): LRN ([`lrn`]), overlapping max pooling ([`pool`]), and the in-place epilogues and SGD
//! update ([`epilogue`]). One unit per output element; tensors are indexed through their strides
//! (CUDA pads rows, burn's convolutions return NHWC-strided tensors). They compute what
//! [`super::reference`] and the trait's defaults compute: the tests compare them on random inputs.

mod epilogue;
mod lrn;
mod pool;

use burn::tensor::{Bool as BurnBool, DType, Int as BurnInt, Shape, Tensor as BurnTensor, TensorPrimitive};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::{calculate_cube_count_elemwise, prelude::*};

use alexir::catalog::ConvAttrs;

use super::{conv_options, KernelBackend, LrnParams, PoolParams, SgdParams};
use epilogue::{bias_act_kernel, masked_grad_kernel, sgd_update_kernel};
use lrn::{lrn_backward_kernel, lrn_forward_kernel};
use pool::{max_pool_backward_kernel, max_pool_forward_kernel};

/// The NCHW coordinates of linear index `i` over `t`'s shape.
#[cube]
fn coords<E: CubePrimitive>(t: &Tensor<E>, i: usize) -> (usize, usize, usize, usize) {
    let w = i % t.shape(3);
    let h = (i / t.shape(3)) % t.shape(2);
    let c = (i / (t.shape(3) * t.shape(2))) % t.shape(1);
    let b = i / (t.shape(3) * t.shape(2) * t.shape(1));
    (b, c, h, w)
}

fn float<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement, const D: usize>(
    t: BurnTensor<CubeBackend<R, F, I, BT>, D>,
) -> CubeTensor<R> {
    t.into_primitive().tensor()
}

fn wrap<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement, const D: usize>(
    t: CubeTensor<R>,
) -> BurnTensor<CubeBackend<R, F, I, BT>, D> {
    BurnTensor::from_primitive(TensorPrimitive::Float(t))
}

/// The type a kernel computes in for tensors of `dtype`: f32 for f16 and bf16 (as a GPU's half
/// precision units accumulate), else the type itself.
fn accumulator(dtype: DType) -> DType {
    match dtype {
        DType::F16 | DType::BF16 => DType::F32,
        other => other,
    }
}

/// A new tensor of `shape` and `dtype` on `like`'s device.
fn empty_like<R: CubeRuntime>(like: &CubeTensor<R>, shape: Shape, dtype: DType) -> CubeTensor<R> {
    empty_device_dtype(like.client.clone(), like.device.clone(), shape, dtype)
}

/// A one-element stand-in for a kernel argument that a comptime flag leaves unread.
fn placeholder<R: CubeRuntime>(like: &CubeTensor<R>, dtype: DType) -> CubeTensor<R> {
    empty_like(like, Shape::new([1]), dtype)
}

/// `t` itself when nothing else holds its buffer (a kernel may then write it in place), else a copy.
fn writable<R: CubeRuntime>(t: CubeTensor<R>) -> CubeTensor<R> {
    if t.can_mut() && t.is_nonoverlapping() {
        t
    } else {
        t.copy()
    }
}

/// A launch grid of `units` units on `out`'s device: the count and its cubes.
fn units_grid<R: CubeRuntime>(out: &CubeTensor<R>, units: usize) -> (usize, CubeCount, CubeDim) {
    let dim = CubeDim::new(&out.client, units);
    (units, calculate_cube_count_elemwise(&out.client, units, dim), dim)
}

/// One unit per element of `out`.
fn grid<R: CubeRuntime>(out: &CubeTensor<R>) -> (usize, CubeCount, CubeDim) {
    units_grid(out, out.meta.num_elements())
}

/// One unit per run of [`lrn::CHUNK`] channels at each (image, row, column) of `out`.
fn column_grid<R: CubeRuntime>(out: &CubeTensor<R>) -> (usize, CubeCount, CubeDim) {
    let [b, c, h, w] = out.meta.shape().dims();
    units_grid(out, b * c.div_ceil(lrn::CHUNK) * h * w)
}

/// LRN of `x`, or of `relu(x + bias)` when a bias is given (also returning the ReLU's output
/// when `keep_relu`).
fn lrn_forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    p: &LrnParams,
    keep_relu: bool,
) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let dtype = x.dtype;
    let y = empty_like(&x, x.meta.shape().clone(), dtype);
    let fused = bias.is_some();
    let keep_relu = fused && keep_relu;
    let r = if keep_relu { empty_like(&x, x.meta.shape().clone(), dtype) } else { placeholder(&x, dtype) };
    let bias = bias.unwrap_or_else(|| placeholder(&x, dtype));
    let (units, count, dim) = column_grid(&y);
    let acc = accumulator(dtype);
    let (scale, beta, k) = lrn_scalars(p, acc);
    lrn_forward_kernel::launch(
        &y.client,
        count,
        dim,
        x.into_tensor_arg(),
        bias.into_tensor_arg(),
        y.clone().into_tensor_arg(),
        r.clone().into_tensor_arg(),
        units,
        scale,
        beta,
        k,
        p.size / 2,
        fused,
        keep_relu,
        [dtype.into(), acc.into()],
    );
    (y, keep_relu.then_some(r))
}

/// LRN's `scale`, `beta` and `k` as kernel scalars of `dtype` (exact for f64).
fn lrn_scalars(p: &LrnParams, dtype: DType) -> (InputScalar, InputScalar, InputScalar) {
    (InputScalar::new(p.scale, dtype), InputScalar::new(p.beta, dtype), InputScalar::new(p.k, dtype))
}

/// The LRN gradient, through the ReLU whose output `x` is when `relu_mask`.
fn lrn_backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    y: CubeTensor<R>,
    dy: CubeTensor<R>,
    p: &LrnParams,
    relu_mask: bool,
) -> CubeTensor<R> {
    let dx = empty_like(&x, x.meta.shape().clone(), x.dtype);
    let (n, count, dim) = column_grid(&dx);
    let dtype = x.dtype;
    let acc = accumulator(dtype);
    let (scale, beta, k) = lrn_scalars(p, acc);
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
        relu_mask,
        [dtype.into(), acc.into()],
    );
    dx
}

/// The max-pooling gradient of an `input_hw` input, through the ReLU whose output `relu_y` fed
/// the pool when given.
fn max_pool_backward<R: CubeRuntime>(
    dy: CubeTensor<R>,
    arg: CubeTensor<R>,
    relu_y: Option<CubeTensor<R>>,
    input_hw: [usize; 2],
    p: &PoolParams,
) -> CubeTensor<R> {
    let [b, c, _, _] = dy.meta.shape().dims();
    let dx = empty_like(&dy, Shape::new([b, c, input_hw[0], input_hw[1]]), dy.dtype);
    let (n, count, dim) = grid(&dx);
    let (dtype, int_dtype) = (dy.dtype, arg.dtype);
    let relu = relu_y.is_some();
    let ry = relu_y.unwrap_or_else(|| placeholder(&dy, dtype));
    max_pool_backward_kernel::launch(
        &dx.client,
        count,
        dim,
        dy.into_tensor_arg(),
        arg.into_tensor_arg(),
        ry.into_tensor_arg(),
        dx.clone().into_tensor_arg(),
        n,
        p.kernel,
        p.stride,
        p.padding,
        relu,
        [dtype.into(), int_dtype.into(), accumulator(dtype).into()],
    );
    dx
}

impl<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement> KernelBackend
    for CubeBackend<R, F, I, BT>
{
    /// f16 and bf16 where the device stores them and computes in them (burn's convolutions and
    /// products run in the plan's type; our kernels store in it and compute in f32).
    fn refuses_precision(precision: alexir::ir::Precision, device: &Self::Device) -> Option<String> {
        use alexir::ir::Precision;
        use cubecl::ir::features::TypeUsage;
        let (dtype, why, other) = match precision {
            Precision::F32 => return None,
            Precision::Bf16 => (
                DType::BF16,
                "wgpu offers no bf16; CUDA does",
                ", or --precision f16 where the device has f16",
            ),
            Precision::F16 => (DType::F16, "a wgpu adapter needs SHADER_F16", ""),
        };
        let usage = R::client(device).properties().type_usage(dtype.into());
        let needed = TypeUsage::Conversion | TypeUsage::Arithmetic | TypeUsage::Buffer;
        if usage.is_superset(needed) {
            return None;
        }
        Some(format!(
            "this device has no {} arithmetic in its buffers ({why}): run the plan on the CPU (--device cpu), or compile it with --precision f32{other}",
            precision.name(),
        ))
    }

    fn lrn_forward(x: BurnTensor<Self, 4>, p: &LrnParams) -> BurnTensor<Self, 4> {
        wrap(lrn_forward(float(x), None, p, false).0)
    }

    fn lrn_backward(
        x: BurnTensor<Self, 4>,
        y: BurnTensor<Self, 4>,
        dy: BurnTensor<Self, 4>,
        p: &LrnParams,
    ) -> BurnTensor<Self, 4> {
        wrap(lrn_backward(float(x), float(y), float(dy), p, false))
    }

    fn lrn_relu_backward(
        x: BurnTensor<Self, 4>,
        y: BurnTensor<Self, 4>,
        dy: BurnTensor<Self, 4>,
        p: &LrnParams,
    ) -> BurnTensor<Self, 4> {
        wrap(lrn_backward(float(x), float(y), float(dy), p, true))
    }

    fn max_pool_forward(
        x: BurnTensor<Self, 4>,
        p: &PoolParams,
    ) -> (BurnTensor<Self, 4>, BurnTensor<Self, 4, BurnInt>) {
        let x = float(x);
        let [b, c, h, w] = x.meta.shape().dims();
        let out = Shape::new([b, c, super::reference::pooled(h, p), super::reference::pooled(w, p)]);
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
        wrap(max_pool_backward(float(dy), argmax.into_primitive(), None, input_hw, p))
    }

    fn max_pool_relu_backward(
        dy: BurnTensor<Self, 4>,
        argmax: BurnTensor<Self, 4, BurnInt>,
        relu_y: BurnTensor<Self, 4>,
        p: &PoolParams,
    ) -> BurnTensor<Self, 4> {
        let [_, _, h, w] = relu_y.dims();
        wrap(max_pool_backward(float(dy), argmax.into_primitive(), Some(float(relu_y)), [h, w], p))
    }

    fn conv2d_bias_act(
        x: BurnTensor<Self, 4>,
        w: BurnTensor<Self, 4>,
        bias: BurnTensor<Self, 1>,
        a: &ConvAttrs,
        relu_after: bool,
    ) -> BurnTensor<Self, 4> {
        let z = burn::tensor::module::conv2d(x, w, None, conv_options(a));
        Self::bias_act(z, bias, relu_after)
    }

    fn bias_act<const D: usize>(
        x: BurnTensor<Self, D>,
        bias: BurnTensor<Self, 1>,
        relu_after: bool,
    ) -> BurnTensor<Self, D> {
        let x = writable(float(x));
        let (n, count, dim) = grid(&x);
        let dtype = x.dtype;
        bias_act_kernel::launch(
            &x.client,
            count,
            dim,
            x.clone().into_tensor_arg(),
            float(bias).into_tensor_arg(),
            n,
            relu_after,
            [dtype.into(), accumulator(dtype).into()],
        );
        wrap(x)
    }

    fn bias_relu_lrn(
        x: BurnTensor<Self, 4>,
        bias: BurnTensor<Self, 1>,
        p: &LrnParams,
        keep_relu: bool,
    ) -> (BurnTensor<Self, 4>, Option<BurnTensor<Self, 4>>) {
        let (y, r) = lrn_forward(float(x), Some(float(bias)), p, keep_relu);
        (wrap(y), r.map(wrap))
    }

    fn masked_grad<const D: usize>(
        dy: BurnTensor<Self, D>,
        relu_y: Option<BurnTensor<Self, D>>,
        dropout: Option<(BurnTensor<Self, D, BurnBool>, f64)>,
    ) -> BurnTensor<Self, D> {
        let dy = writable(float(dy));
        let (n, count, dim) = grid(&dy);
        let dtype = dy.dtype;
        let (relu, masked) = (relu_y.is_some(), dropout.is_some());
        let y = relu_y.map(float).unwrap_or_else(|| placeholder(&dy, dtype));
        let (mask, scale): (CubeTensor<R>, f64) = match dropout {
            Some((m, s)) => (m.into_primitive(), s),
            None => (placeholder(&dy, <BT as burn::tensor::Element>::dtype()), 1.0),
        };
        let mask_dtype = mask.dtype;
        masked_grad_kernel::launch(
            &dy.client,
            count,
            dim,
            dy.clone().into_tensor_arg(),
            y.into_tensor_arg(),
            mask.into_tensor_arg(),
            n,
            InputScalar::new(scale, accumulator(dtype)),
            relu,
            masked,
            [dtype.into(), mask_dtype.into(), accumulator(dtype).into()],
        );
        wrap(dy)
    }

    fn sgd_update<const D: usize>(
        w: BurnTensor<Self, D>,
        g: BurnTensor<Self, D>,
        v: BurnTensor<Self, D>,
        p: &SgdParams,
    ) -> (BurnTensor<Self, D>, BurnTensor<Self, D>) {
        let (w, v) = (writable(float(w)), writable(float(v)));
        let (n, count, dim) = grid(&w);
        let acc = accumulator(w.dtype);
        sgd_update_kernel::launch(
            &w.client,
            count,
            dim,
            w.clone().into_tensor_arg(),
            float(g).into_tensor_arg(),
            v.clone().into_tensor_arg(),
            n,
            InputScalar::new(p.momentum, acc),
            InputScalar::new(p.rate, acc),
            InputScalar::new(p.decay, acc),
            [w.dtype.into(), acc.into()],
        );
        (wrap(w), wrap(v))
    }
}
