//! The CPU backend (burn's Flex): the reference kernels on the host, and the convolution engine
//! ([`cpu_conv`]) run on Flex's storage without a copy when it is contiguous. The LRN groups run on
//! the host in one round trip, the bias, ReLU and masks applied there too. Precisions other than
//! f32 and f64, and shapes the engine does not take, fall back to burn's convolution.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::ops::FloatTensorOps;
use burn::tensor::{DType, Element, Int, Tensor, TensorData, TensorPrimitive};

use alexir::catalog::ConvAttrs;

use super::cpu_conv::{self, ConvAlgo, ConvElement, ConvError, ConvPass, ConvShape};
use super::cpu_linear::{self, LinearShape};
use super::flex_bf16::flex as storage;
use super::{
    conv, from_host, linear, lrn_grad, reference, to_host, Host, KernelBackend, LrnParams, PoolParams,
};

fn values<T: Element + bytemuck::Pod>(t: &FlexTensor) -> &[T] {
    t.as_slice::<T>().expect("a contiguous tensor of the checked precision")
}

fn tensor<const D: usize>(data: TensorData) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(data)))
}

/// Whether the engine runs `algo` for `pass` of `shape` on tensors of `dtype`.
fn engine_takes(algo: ConvAlgo, shape: &ConvShape, pass: ConvPass, dtypes: &[DType]) -> bool {
    algo != ConvAlgo::Burn && cpu_conv::supports(algo, shape, pass) && engine_precision(dtypes)
}

/// Whether every tensor is f32, or every one f64 (the precisions the engine runs in).
fn engine_precision(dtypes: &[DType]) -> bool {
    matches!(dtypes[0], DType::F32 | DType::F64) && dtypes.iter().all(|d| *d == dtypes[0])
}

/// Runs `f32_run` or `f64_run` by the tensors' precision, the result shaped `dims`.
fn by_precision<const D: usize, E>(
    dtype: DType,
    dims: [usize; D],
    f32_run: impl FnOnce() -> Result<Vec<f32>, E>,
    f64_run: impl FnOnce() -> Result<Vec<f64>, E>,
) -> Result<TensorData, E> {
    Ok(if dtype == DType::F64 {
        TensorData::new(f64_run()?, dims)
    } else {
        TensorData::new(f32_run()?, dims)
    })
}

/// A product on the CPU engine (`f32_run` or `f64_run` by the tensors' precision), or
/// `fallback` (burn's) for other precisions or operands the engine refuses.
fn on_engine<const D: usize, E>(
    dtypes: &[DType],
    dims: [usize; D],
    f32_run: impl FnOnce() -> Result<Vec<f32>, E>,
    f64_run: impl FnOnce() -> Result<Vec<f64>, E>,
    fallback: impl FnOnce() -> Tensor<Flex, D>,
) -> Tensor<Flex, D> {
    if !engine_precision(dtypes) {
        return fallback();
    }
    match by_precision(dtypes[0], dims, f32_run, f64_run) {
        Ok(data) => tensor(data),
        Err(_) => fallback(),
    }
}

/// The LRN gradient (through the ReLU whose output `x` is, when `relu`) on Flex's storage, read in
/// place; half precisions on a host copy in f32.
fn lrn_backward_in_place(
    x: Tensor<Flex, 4>,
    y: Tensor<Flex, 4>,
    dy: Tensor<Flex, 4>,
    p: &LrnParams,
    relu: bool,
) -> Tensor<Flex, 4> {
    let (dims, dtypes) = (x.dims(), [x.dtype(), y.dtype(), dy.dtype()]);
    if !engine_precision(&dtypes) || y.dims() != dims || dy.dims() != dims {
        return super::flex_bf16_window::lrn_backward(x, y, dy, p, relu);
    }
    let (xs, ys, dys) = (storage(x), storage(y), storage(dy));
    tensor(if dtypes[0] == DType::F64 {
        TensorData::new(lrn_grad::<f64>(values(&xs), values(&ys), values(&dys), dims, p, relu), dims)
    } else {
        TensorData::new(lrn_grad::<f32>(values(&xs), values(&ys), values(&dys), dims, p, relu), dims)
    })
}

fn forward<T: ConvElement + Element + bytemuck::Pod>(
    algo: ConvAlgo,
    s: &ConvShape,
    x: &FlexTensor,
    w: &FlexTensor,
    b: Option<&FlexTensor>,
    relu: bool,
) -> Result<Vec<T>, ConvError> {
    cpu_conv::forward(algo, s, values(x), values(w), b.map(values), relu)
}

impl KernelBackend for Flex {
    fn reads_f32_masters() -> bool {
        true
    }

    fn refuses_precision(_: alexir::ir::Precision, _: &Self::Device) -> Option<String> {
        None
    }

    /// No f16 arithmetic on these CPUs (AVX512-FP16 is on neither machine kind): f16 ops compute
    /// in f32 from f16 values.
    fn computes_in(dtype: DType) -> DType {
        if dtype == DType::F16 {
            DType::F32
        } else {
            dtype
        }
    }

    fn cast_float(t: FlexTensor, dtype: DType) -> FlexTensor {
        super::flex_bf16::cast(&t, dtype)
            .unwrap_or_else(|| <Self as FloatTensorOps<Self>>::float_cast(t, dtype.into()))
    }

    fn reproducibility() -> &'static str {
        "reproducibility: bit for bit on this CPU: the same plan, seed and data give the same losses and weights, on any number of threads (every parallel sum has a fixed partition and order; another CPU model may block gemm's sums differently)"
    }

    fn default_conv_algo(shape: &ConvShape, pass: ConvPass) -> ConvAlgo {
        cpu_conv::default_algo(shape, pass)
    }

    fn conv2d_with_algo(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        bias: Option<Tensor<Self, 1>>,
        a: &ConvAttrs,
        relu_after: bool,
        algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        if let Some(y) = super::flex_bf16::conv2d(&x, &w, bias.as_ref(), a, relu_after) {
            return y;
        }
        let s = ConvShape::new(a, x.dims());
        let mut dtypes = vec![x.dtype(), w.dtype()];
        dtypes.extend(bias.as_ref().map(|b| b.dtype()));
        if !engine_takes(algo, &s, ConvPass::Forward, &dtypes) {
            return conv::burn_conv2d(x, w, bias, a, relu_after);
        }
        let (xs, ws, bs) = (storage(x.clone()), storage(w.clone()), bias.clone().map(storage));
        let y = by_precision(
            dtypes[0],
            s.output_dims(),
            || forward::<f32>(algo, &s, &xs, &ws, bs.as_ref(), relu_after),
            || forward::<f64>(algo, &s, &xs, &ws, bs.as_ref(), relu_after),
        );
        match y {
            Ok(y) => tensor(y),
            Err(_) => conv::burn_conv2d(x, w, bias, a, relu_after),
        }
    }

    fn conv2d_data_grad_with_algo(
        dy: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        a: &ConvAttrs,
        input_hw: [usize; 2],
        algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        if let Some(dx) = super::flex_bf16::conv2d_data_grad(&dy, &w, a, input_hw) {
            return dx;
        }
        let n = dy.dims()[0];
        let s = ConvShape::new(a, [n, w.dims()[1] * a.groups, input_hw[0], input_hw[1]]);
        let dtypes = [dy.dtype(), w.dtype()];
        if !engine_takes(algo, &s, ConvPass::DataGrad, &dtypes) || dy.dims() != s.output_dims() {
            return conv::burn_conv2d_data_grad(dy, w, a, input_hw);
        }
        let (dys, ws) = (storage(dy.clone()), storage(w.clone()));
        let dx = by_precision(
            dtypes[0],
            s.input_dims(),
            || cpu_conv::data_grad::<f32>(algo, &s, values(&dys), values(&ws)),
            || cpu_conv::data_grad::<f64>(algo, &s, values(&dys), values(&ws)),
        );
        match dx {
            Ok(dx) => tensor(dx),
            Err(_) => conv::burn_conv2d_data_grad(dy, w, a, input_hw),
        }
    }

    fn conv2d_weight_grad_with_algo(
        x: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        a: &ConvAttrs,
        algo: ConvAlgo,
    ) -> Tensor<Self, 4> {
        let s = ConvShape::new(a, x.dims());
        let dtypes = [x.dtype(), dy.dtype()];
        if let Some(dw) = super::flex_bf16::conv2d_weight_grad(&x, &dy, a) {
            return dw;
        }
        if !engine_takes(algo, &s, ConvPass::WeightGrad, &dtypes) || dy.dims() != s.output_dims() {
            return conv::burn_conv2d_weight_grad(x, dy, a);
        }
        let (xs, dys) = (storage(x.clone()), storage(dy.clone()));
        let dw = by_precision(
            dtypes[0],
            s.weight_dims(),
            || cpu_conv::weight_grad::<f32>(algo, &s, values(&xs), values(&dys)),
            || cpu_conv::weight_grad::<f64>(algo, &s, values(&xs), values(&dys)),
        );
        match dw {
            Ok(dw) => tensor(dw),
            Err(_) => conv::burn_conv2d_weight_grad(x, dy, a),
        }
    }

    fn linear_forward(x: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        if let Some(y) = super::flex_bf16::linear(&x, &w) {
            return y;
        }
        let ([n, i], [o, _]) = (x.dims(), w.dims());
        let s = LinearShape { batch: n, inputs: i, outputs: o };
        let (xs, ws) = (storage(x.clone()), storage(w.clone()));
        on_engine(
            &[x.dtype(), w.dtype()],
            [n, o],
            || cpu_linear::forward::<f32>(&s, values(&xs), values(&ws)),
            || cpu_linear::forward::<f64>(&s, values(&xs), values(&ws)),
            || linear::burn_linear(x, w),
        )
    }

    fn linear_data_grad(dy: Tensor<Self, 2>, w: Tensor<Self, 2>) -> Tensor<Self, 2> {
        if let Some(dx) = super::flex_bf16::linear_data_grad(&dy, &w) {
            return dx;
        }
        let ([n, o], [_, i]) = (dy.dims(), w.dims());
        let s = LinearShape { batch: n, inputs: i, outputs: o };
        let (dys, ws) = (storage(dy.clone()), storage(w.clone()));
        on_engine(
            &[dy.dtype(), w.dtype()],
            [n, i],
            || cpu_linear::data_grad::<f32>(&s, values(&dys), values(&ws)),
            || cpu_linear::data_grad::<f64>(&s, values(&dys), values(&ws)),
            || linear::burn_linear_data_grad(dy, w),
        )
    }

    fn linear_weight_grad(x: Tensor<Self, 2>, dy: Tensor<Self, 2>) -> Tensor<Self, 2> {
        if let Some(dw) = super::flex_bf16::linear_weight_grad(&x, &dy) {
            return dw;
        }
        let ([n, i], [_, o]) = (x.dims(), dy.dims());
        let s = LinearShape { batch: n, inputs: i, outputs: o };
        let (xs, dys) = (storage(x.clone()), storage(dy.clone()));
        on_engine(
            &[x.dtype(), dy.dtype()],
            [o, i],
            || cpu_linear::weight_grad::<f32>(&s, values(&xs), values(&dys)),
            || cpu_linear::weight_grad::<f64>(&s, values(&xs), values(&dys)),
            || linear::burn_linear_weight_grad(x, dy),
        )
    }

    /// The bias and ReLU applied as the convolution writes its output, then LRN read in place.
    fn conv2d_bias_relu_lrn(
        x: Tensor<Self, 4>,
        w: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        a: &ConvAttrs,
        p: &LrnParams,
        keep_relu: bool,
    ) -> (Tensor<Self, 4>, Option<Tensor<Self, 4>>) {
        let r = Self::conv2d_bias_act(x, w, bias, a, true);
        let y = Self::lrn_forward(r.clone(), p);
        (y, keep_relu.then_some(r))
    }

    /// On Flex's storage, read in place.
    fn lrn_forward(x: Tensor<Self, 4>, p: &LrnParams) -> Tensor<Self, 4> {
        let (dims, dtype) = (x.dims(), x.dtype());
        let xs = storage(x);
        match dtype {
            DType::F64 => tensor(TensorData::new(reference::lrn_forward(values::<f64>(&xs), dims, p), dims)),
            DType::F32 => tensor(TensorData::new(reference::lrn_forward(values::<f32>(&xs), dims, p), dims)),
            _ => super::flex_bf16_window::lrn_forward(xs, dims, p),
        }
    }

    fn bias_relu_lrn(
        x: Tensor<Self, 4>,
        bias: Tensor<Self, 1>,
        p: &LrnParams,
        keep_relu: bool,
    ) -> (Tensor<Self, 4>, Option<Tensor<Self, 4>>) {
        let device = x.device();
        let (z, dims) = to_host(x);
        let b = bias.into_data();
        let (y, r) = match z {
            Host::F32(mut r) => {
                reference::bias_relu(&mut r, &b.convert::<f32>().into_vec::<f32>().expect("f32 bias"), dims);
                (Host::F32(reference::lrn_forward(&r, dims, p)), Host::F32(r))
            }
            Host::F64(mut r) => {
                reference::bias_relu(&mut r, &b.convert::<f64>().into_vec::<f64>().expect("f64 bias"), dims);
                (Host::F64(reference::lrn_forward(&r, dims, p)), Host::F64(r))
            }
        };
        (from_host(y, dims, &device), keep_relu.then(|| from_host(r, dims, &device)))
    }

    /// A bf16 `dy` summed as it is read ([`super::flex_bf16::bias_grad`]); others as the default.
    fn bias_grad<const D: usize>(dy: Tensor<Self, D>) -> Tensor<Self, 1> {
        super::flex_bf16::bias_grad(&dy).unwrap_or_else(|| super::sum_but_channels(dy))
    }

    /// On Flex's storage, read in place (the default copies a shared input out first).
    fn max_pool_forward(x: Tensor<Self, 4>, p: &PoolParams) -> (Tensor<Self, 4>, Tensor<Self, 4, Int>) {
        let (dims, dtype) = (x.dims(), x.dtype());
        let [n, c, h, w] = dims;
        let out = [n, c, reference::pooled(h, p), reference::pooled(w, p)];
        let xs = storage(x);
        let (y, arg) = match dtype {
            DType::F64 => {
                let (y, a) = reference::max_pool_forward(values::<f64>(&xs), dims, p);
                (TensorData::new(y, out), a)
            }
            DType::F32 => {
                let (y, a) = reference::max_pool_forward(values::<f32>(&xs), dims, p);
                (TensorData::new(y, out), a)
            }
            // Half precisions: in f32, the result in their type.
            _ => return super::flex_bf16_window::max_pool_forward(xs, dims, out, p),
        };
        (tensor(y), Tensor::from_data(TensorData::new(arg, out), &Default::default()))
    }

    /// On Flex's storage, read in place, without the indices.
    fn max_pool_values(x: Tensor<Self, 4>, p: &PoolParams) -> Tensor<Self, 4> {
        let (dims, dtype) = (x.dims(), x.dtype());
        let [n, c, h, w] = dims;
        let out = [n, c, reference::pooled(h, p), reference::pooled(w, p)];
        let xs = storage(x);
        match dtype {
            DType::F64 => {
                tensor(TensorData::new(reference::max_pool_values(values::<f64>(&xs), dims, p), out))
            }
            DType::F32 => {
                tensor(TensorData::new(reference::max_pool_values(values::<f32>(&xs), dims, p), out))
            }
            _ => super::flex_bf16_window::max_pool_values(xs, dims, out, p),
        }
    }

    /// On Flex's storage: `dy` and the indices read in place.
    fn max_pool_backward(
        dy: Tensor<Self, 4>,
        argmax: Tensor<Self, 4, Int>,
        input_hw: [usize; 2],
        p: &PoolParams,
    ) -> Tensor<Self, 4> {
        let ([n, c, oh, ow], dtype) = (dy.dims(), dy.dtype());
        let dims = [n, c, input_hw[0], input_hw[1]];
        let arg = argmax.into_primitive().to_contiguous();
        let (dys, arg) = match (dtype, arg.dtype()) {
            (DType::F32 | DType::F64, DType::I32) => (storage(dy), arg),
            // Other precisions or index types: on the host.
            _ => return super::flex_bf16_window::max_pool_backward(storage(dy), arg, input_hw, p),
        };
        let (arg, hw, ohw) = (values::<i32>(&arg), input_hw, [oh, ow]);
        tensor(if dtype == DType::F64 {
            TensorData::new(reference::max_pool_backward(values::<f64>(&dys), arg, hw, ohw, p), dims)
        } else {
            TensorData::new(reference::max_pool_backward(values::<f32>(&dys), arg, hw, ohw, p), dims)
        })
    }

    fn lrn_backward(
        x: Tensor<Self, 4>,
        y: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        p: &LrnParams,
    ) -> Tensor<Self, 4> {
        lrn_backward_in_place(x, y, dy, p, false)
    }

    fn lrn_relu_backward(
        x: Tensor<Self, 4>,
        y: Tensor<Self, 4>,
        dy: Tensor<Self, 4>,
        p: &LrnParams,
    ) -> Tensor<Self, 4> {
        lrn_backward_in_place(x, y, dy, p, true)
    }
}
