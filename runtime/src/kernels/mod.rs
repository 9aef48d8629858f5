//! The runtime's own kernels as a backend trait: LRN and overlapping max pooling, forward and
//! backward; the fused epilogues the compiler's fused nodes map onto (bias + ReLU, bias + ReLU +
//! LRN, the ReLU and dropout masks of a gradient, LRN and pooling gradients through a ReLU); the
//! SGD update. The defaults are burn ops and the reference kernels ([`reference`]) on the host; a
//! backend with its own kernels (CubeCL on CUDA or wgpu, [`cube`]) overrides them.

pub mod conv;
pub mod cpu_bf16;
pub mod cpu_conv;
pub mod cpu_linear;
pub mod cube;
mod flex;
mod flex_bf16;
mod flex_bf16_window;
mod host;
pub mod linear;
mod lrn_bf16;
mod max_pool;
pub mod reference;
pub mod scratch;
mod simd;

pub use conv::conv_options;
pub use cpu_conv::{ConvAlgo, ConvPass, ConvShape};
pub(crate) use host::{
    from_host, host_lrn_backward, host_lrn_forward, host_max_pool_backward, lrn_grad, to_host, Host,
};

use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bool, DType, Int, Tensor, TensorData};

use alexir::catalog::ConvAttrs;

use alexir::ir::LrnConvention;

/// LRN settings as the kernels use them: `scale` multiplies the windowed sum of squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnParams {
    pub size: usize,
    pub scale: f64,
    pub beta: f64,
    pub k: f64,
}

impl LrnParams {
    pub fn from_op(op: &alexir::catalog::Lrn) -> Self {
        let scale = match op.convention {
            LrnConvention::Paper => op.alpha,
            LrnConvention::Caffe => op.alpha / op.size as f64,
        };
        LrnParams { size: op.size, scale, beta: op.beta, k: op.k }
    }
}

/// Square max-pooling windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolParams {
    pub fn from_attrs(a: &alexir::catalog::PoolAttrs) -> Self {
        PoolParams { kernel: a.kernel, stride: a.stride, padding: a.padding }
    }
}

/// One SGD step's settings for one parameter: `v <- momentum v - rate (g + decay w); w <- w + v`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    pub momentum: f64,
    pub rate: f64,
    pub decay: f64,
}

/// LRN and max pooling with argmax, forward and backward. Defaults run the reference kernels on the
/// host in the tensors' precision; backends with device kernels override them.
pub trait KernelBackend: Backend {
    /// Whether the products and bias adds read a weight or a bias as its f32 master while they
    /// compute in a lower type (the CPU's bf16 engine does; elsewhere the executor casts them).
    fn reads_f32_masters() -> bool {
        false
    }

    /// Why this backend cannot run a step in `precision` on `device`, if it cannot. The CPU runs
    /// every precision; a CubeCL device runs the types it stores and computes in (f16 and bf16 on
    /// CUDA, f16 on a wgpu adapter with `SHADER_F16`).
    fn refuses_precision(precision: alexir::ir::Precision, device: &Self::Device) -> Option<String> {
        let _ = device;
        (precision != alexir::ir::Precision::F32).then(|| {
            format!(
                "this device runs f32 plans only; run the {} plan on the CPU (--device cpu), or compile it with --precision f32",
                precision.name()
            )
        })
    }

    /// The element type an op that computes in `dtype` runs its arithmetic in: `dtype` itself,
    /// unless the backend has no arithmetic in it (the CPU computes f16 ops in f32, from f16
    /// values and back to them, as a GPU's f16 units sum in f32).
    fn computes_in(dtype: DType) -> DType {
        dtype
    }

    /// A float tensor in element type `dtype`: burn's cast, unless the backend converts faster
    /// (the CPU converts f32 and bf16 itself, on all threads).
    fn cast_float(t: FloatTensor<Self>, dtype: DType) -> FloatTensor<Self> {
        Self::float_cast(t, dtype.into())
    }

    fn lrn_forward(x: Tensor<Self, 4>, p: &LrnParams) -> Tensor<Self, 4> {
        host_lrn_forward(x, p)
    }

    fn lrn_backward(
        x: Tensor<Self, 4>,
        y: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        p: &LrnParams,
    ) -> Tensor<Self, 4> {
        host_lrn_backward(x, y, dy, p, false)
    }

    /// The maxima and their flat indices within each channel's `H x W` plane.
    fn max_pool_forward(x: Tensor<Self, 4>, p: &PoolParams) -> (Tensor<Self, 4>, Tensor<Self, 4, Int>) {
        let device = x.device();
        let (x, [n, c, h, w]) = to_host(x);
        let out = [n, c, reference::pooled(h, p), reference::pooled(w, p)];
        let (y, arg) = match x {
            Host::F32(x) => {
                let (y, a) = reference::max_pool_forward(&x, [n, c, h, w], p);
                (Host::F32(y), a)
            }
            Host::F64(x) => {
                let (y, a) = reference::max_pool_forward(&x, [n, c, h, w], p);
                (Host::F64(y), a)
            }
        };
        (from_host(y, out, &device), Tensor::from_data(TensorData::new(arg, out), &device))
    }

    /// The maxima alone, where no gradient needs their indices (inference). The default runs
    /// [`KernelBackend::max_pool_forward`] and drops the indices.
    fn max_pool_values(x: Tensor<Self, 4>, p: &PoolParams) -> Tensor<Self, 4> {
        Self::max_pool_forward(x, p).0
    }

    fn max_pool_backward(
        dy: Tensor<Self, 4>,
        argmax: Tensor<Self, 4, Int>,
        input_hw: [usize; 2],
        p: &PoolParams,
    ) -> Tensor<Self, 4> {
        host_max_pool_backward(dy, argmax, input_hw, p)
    }

    /// What a training run on this backend promises about its bits, for the run's first lines.
    /// The default is the CubeCL backends' (burn's kernels there are autotuned).
    fn reproducibility() -> &'static str {
        "reproducibility: not promised on this device: burn's CubeCL kernels (matrix products and convolutions, autotuned: chosen by timing at run time) and NCCL's all-reduce may sum in another order from run to run; our own kernels (LRN, pooling, the fused epilogues, SGD) sum in a fixed order"
    }

    /// The convolution algorithm this backend runs for `pass` of `shape` when the plan names none.
    /// The default is burn's.
    fn default_conv_algo(_shape: &ConvShape, _pass: ConvPass) -> ConvAlgo {
        ConvAlgo::Burn
    }

    /// A convolution, plus its bias and then ReLU when given, by `algo` where this backend has
    /// it and supports the shape, by burn's convolution otherwise (the default).
    fn conv2d_with_algo(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        a: &ConvAttrs,
        relu_after: bool,
        _algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        conv::burn_conv2d(x, w, bias, a, relu_after)
    }

    /// The input gradient of a (grouped) convolution of an `input_hw` input, from `dy` and the
    /// weight, by `algo` where this backend has it, by burn's transposed convolution otherwise.
    fn conv2d_data_grad_with_algo(
        dy: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        a: &ConvAttrs,
        input_hw: [usize; 2],
        _algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        conv::burn_conv2d_data_grad(dy, w, a, input_hw)
    }

    /// The weight gradient of a (grouped) convolution from its input `x` and output gradient
    /// `dy`, by `algo` where this backend has it, by burn's otherwise.
    fn conv2d_weight_grad_with_algo(
        x: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        a: &ConvAttrs,
        _algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        conv::burn_conv2d_weight_grad(x, dy, a)
    }

    /// A convolution without bias, by the plan's algorithm (the backend's default when it names none).
    fn conv2d_plain(x: Tensor<Self, 4>, w: Tensor<Self, 4>, a: &ConvAttrs) -> Tensor<Self, 4> {
        let algo = plan_algo::<Self>(a, x.dims(), ConvPass::Forward);
        Self::conv2d_with_algo(x, w, None, a, false, algo)
    }

    /// A convolution with its bias, then ReLU when `relu`, by the plan's algorithm.
    fn conv2d_bias_act(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        a: &ConvAttrs,
        relu_after: bool,
    ) -> Tensor<Self, 4> {
        let algo = plan_algo::<Self>(a, x.dims(), ConvPass::Forward);
        Self::conv2d_with_algo(x, w, Some(bias), a, relu_after, algo)
    }

    /// A fully connected layer's product `x W^T`, its weight stored `out x in` (burn's matmul by
    /// default).
    fn linear_forward(x: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        linear::burn_linear(x, w)
    }

    /// The data gradient `dy W` of a fully connected layer.
    fn linear_data_grad(dy: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        linear::burn_linear_data_grad(dy, w)
    }

    /// The weight gradient `dy^T x` of a fully connected layer.
    fn linear_weight_grad(x: Tensor<Self, 2>, dy: Tensor<Self, 2>) -> Tensor<Self, 2> {
        linear::burn_linear_weight_grad(x, dy)
    }

    /// The forward epilogue of a convolution or matrix product: `x + bias` along dimension 1,
    /// then ReLU when `relu`.
    fn bias_act<const D: usize>(
        x: Tensor<Self, D>,
        bias: Tensor<Self, 1>,
        relu_after: bool,
    ) -> Tensor<Self, D> {
        let mut shape = [1; D];
        shape[1] = bias.dims()[0];
        // A bias read as its f32 master by a lower-precision epilogue: the sum in the activations' type.
        let bias = if bias.dtype() == x.dtype() { bias } else { bias.cast(x.dtype()) };
        let y = x + bias.reshape(shape);
        if relu_after {
            relu(y)
        } else {
            y
        }
    }

    /// A bias's gradient: `dy` summed over every dimension but 1 in its own type, or in f32 where
    /// `dy` is bf16 or f16 (widened first; Flex sums bf16 as it reads it).
    fn bias_grad<const D: usize>(dy: Tensor<Self, D>) -> Tensor<Self, 1> {
        sum_but_channels(dy)
    }

    /// LRN of `relu(conv(x, w) + bias)`, and the ReLU's result itself when `keep_relu`. The default
    /// convolves by the plan's algorithm and hands the result to [`Self::bias_relu_lrn`].
    fn conv2d_bias_relu_lrn(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        a: &ConvAttrs,
        p: &LrnParams,
        keep_relu: bool,
    ) -> (Tensor<Self, 4>, Option<Tensor<Self, 4>>) {
        Self::bias_relu_lrn(Self::conv2d_plain(x, w, a), bias, p, keep_relu)
    }

    /// LRN of `relu(x + bias)`, and the ReLU's result itself when `keep_relu` (a training step's
    /// backward pass reads it).
    fn bias_relu_lrn(
        x: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        p: &LrnParams,
        keep_relu: bool,
    ) -> (Tensor<Self, 4>, Option<Tensor<Self, 4>>) {
        let r = Self::bias_act(x, bias, true);
        let y = Self::lrn_forward(r.clone(), p);
        (y, keep_relu.then_some(r))
    }

    /// The backward epilogue of a gradient producer: `dy` through a dropout mask (zeroed where
    /// the mask is false, scaled by `scale` where it is true) and then through a ReLU (zeroed
    /// where its output `relu_y <= 0`), each when given.
    fn masked_grad<const D: usize>(
        dy: Tensor<Self, D>,
        relu_y: Option<Tensor<Self, D>>,
        dropout: Option<(Tensor<Self, D, Bool>, f64)>,
    ) -> Tensor<Self, D> {
        let dy = match dropout {
            Some((mask, scale)) => dy.mask_fill(mask.bool_not(), 0.0) * scale,
            None => dy,
        };
        match relu_y {
            Some(y) => dy.mask_fill(y.lower_equal_elem(0.0), 0.0),
            None => dy,
        }
    }

    /// The LRN gradient where the LRN's input `x` is a ReLU's output, through that ReLU too.
    fn lrn_relu_backward(
        x: Tensor<Self, 4>,
        y: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        p: &LrnParams,
    ) -> Tensor<Self, 4> {
        let dx = Self::lrn_backward(x.clone(), y, dy, p);
        Self::masked_grad(dx, Some(x), None)
    }

    /// The max-pooling gradient where the pool's input `relu_y` is a ReLU's output, through that
    /// ReLU too.
    fn max_pool_relu_backward(
        dy: Tensor<Self, 4>,
        argmax: Tensor<Self, 4, Int>,
        relu_y: Tensor<Self, 4>,
        p: &PoolParams,
    ) -> Tensor<Self, 4> {
        let [_, _, h, w] = relu_y.dims();
        let dx = Self::max_pool_backward(dy, argmax, [h, w], p);
        Self::masked_grad(dx, Some(relu_y), None)
    }

    /// The weight gradient of a (grouped) convolution, by the plan's algorithm.
    fn conv2d_weight_grad(x: Tensor<Self, 4>, dy: Tensor<Self, 4>, a: &ConvAttrs) -> Tensor<Self, 4> {
        let algo = plan_algo::<Self>(a, x.dims(), ConvPass::WeightGrad);
        Self::conv2d_weight_grad_with_algo(x, dy, a, algo)
    }

    /// The input gradient of a (grouped) convolution, by the plan's algorithm.
    fn conv2d_data_grad(
        dy: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        a: &ConvAttrs,
        input_hw: [usize; 2],
    ) -> Tensor<Self, 4> {
        let [n, _, _, _] = dy.dims();
        let input = [n, w.dims()[1] * a.groups, input_hw[0], input_hw[1]];
        let algo = plan_algo::<Self>(a, input, ConvPass::DataGrad);
        Self::conv2d_data_grad_with_algo(dy, w, a, input_hw, algo)
    }

    /// The optimizer update of one parameter, in one pass over `w`, `g` and `v`. The default runs
    /// on the host and, on the CPU, in place when the tensors are not shared.
    fn sgd_update<const D: usize>(
        w: Tensor<Self, D>,
        g: Tensor<Self, D>,
        v: Tensor<Self, D>,
        p: &SgdParams,
    ) -> (Tensor<Self, D>, Tensor<Self, D>) {
        let device = w.device();
        let (mut wd, gd, mut vd) = (w.into_data(), g.into_data(), v.into_data());
        if wd.dtype == DType::F64 {
            reference::sgd_update::<f64>(
                wd.as_mut_slice().unwrap(),
                gd.as_slice().unwrap(),
                vd.as_mut_slice().unwrap(),
                p,
            );
        } else {
            let (mut w32, g32, mut v32) = (wd.convert::<f32>(), gd.convert::<f32>(), vd.convert::<f32>());
            reference::sgd_update::<f32>(
                w32.as_mut_slice().unwrap(),
                g32.as_slice().unwrap(),
                v32.as_mut_slice().unwrap(),
                p,
            );
            (wd, vd) = (w32, v32);
        }
        (Tensor::from_data(wd, &device), Tensor::from_data(vd, &device))
    }
}

/// The algorithm the plan recorded for `pass` of a convolution with attributes `a` and an `input`
/// of NCHW dims; backend `B`'s default for plans that name none.
fn plan_algo<B: KernelBackend>(a: &ConvAttrs, input: [usize; 4], pass: ConvPass) -> ConvAlgo {
    a.algo.unwrap_or_else(|| B::default_conv_algo(&ConvShape::new(a, input), pass))
}

/// `dy` summed over every dimension but 1, in f32 where `dy` is in a lower precision.
pub(crate) fn sum_but_channels<B: Backend, const D: usize>(dy: Tensor<B, D>) -> Tensor<B, 1> {
    let dy = if matches!(dy.dtype(), DType::BF16 | DType::F16) { dy.cast(DType::F32) } else { dy };
    let c = dy.dims()[1];
    let mut s = dy.sum_dim(0);
    for d in 2..D {
        s = s.sum_dim(d);
    }
    s.reshape([c])
}
