//! bf16 tensors on Flex through the bf16 engine ([`cpu_bf16`]): their storage read in place as
//! bits, the products summed in f32, the results written as bf16 (or f32, for the weight
//! gradients that a bf16 step keeps in f32). `None` where the engine does not take the call
//! (another type, or a shape it refuses), for the caller's fallback.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{bf16, DType, Int, Tensor, TensorData, TensorMetadata, TensorPrimitive};

use alexir::catalog::ConvAttrs;

use super::cpu_bf16::convert::{round, round_f16, widen, widen_f16};
use super::cpu_bf16::{self, Weight};
use super::cpu_conv::ConvShape;
use super::{
    host_lrn_backward, host_lrn_forward, host_max_pool_backward, lrn_grad, reference, LrnParams, PoolParams,
};

fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor().to_contiguous()
}

fn bits(t: &FlexTensor) -> &[u16] {
    bytemuck::cast_slice(t.storage::<bf16>())
}

fn bf16_flex(v: Vec<u16>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    let v: Vec<bf16> = v.into_iter().map(bf16::from_bits).collect();
    FlexTensor::from_data(TensorData::new(v, shape))
}

fn bf16_tensor<const D: usize>(v: Vec<u16>, dims: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(bf16_flex(v, dims)))
}

fn f32_tensor<const D: usize>(v: Vec<f32>, dims: [usize; D]) -> Tensor<Flex, D> {
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(TensorData::new(v, dims))))
}

/// A weight tensor as the engine reads it: the f32 master, or bf16.
fn with_weight<R>(w: &FlexTensor, f: impl FnOnce(Weight<'_>) -> R) -> Option<R> {
    match w.dtype() {
        DType::F32 => Some(f(Weight::F32(w.as_slice::<f32>()?))),
        DType::BF16 => Some(f(Weight::Bf16(bits(w)))),
        _ => None,
    }
}

/// A bias as f32 (its master, or widened from bf16).
fn bias_f32(b: Tensor<Flex, 1>) -> Vec<f32> {
    b.into_data().convert::<f32>().into_vec::<f32>().expect("a float bias")
}

/// `conv(x, w) (+ bias) (then ReLU)` for a bf16 `x`.
pub fn conv2d(
    x: &Tensor<Flex, 4>,
    w: &Tensor<Flex, 4>,
    bias: Option<&Tensor<Flex, 1>>,
    a: &ConvAttrs,
    relu: bool,
) -> Option<Tensor<Flex, 4>> {
    let s = ConvShape::new(a, x.dims());
    if x.dtype() != DType::BF16 || !s.is_valid() || w.dims() != s.weight_dims() {
        return None;
    }
    let (xs, ws) = (flex(x.clone()), flex(w.clone()));
    let b = bias.map(|b| bias_f32(b.clone()));
    let y = with_weight(&ws, |w| cpu_bf16::conv::forward(&s, bits(&xs), w, b.as_deref(), relu))?;
    Some(bf16_tensor(y, s.output_dims()))
}

/// The data gradient for a bf16 `dy`.
pub fn conv2d_data_grad(
    dy: &Tensor<Flex, 4>,
    w: &Tensor<Flex, 4>,
    a: &ConvAttrs,
    input_hw: [usize; 2],
) -> Option<Tensor<Flex, 4>> {
    let s = ConvShape::new(a, [dy.dims()[0], w.dims()[1] * a.groups, input_hw[0], input_hw[1]]);
    if dy.dtype() != DType::BF16 || !s.is_valid() || dy.dims() != s.output_dims() {
        return None;
    }
    let (dys, ws) = (flex(dy.clone()), flex(w.clone()));
    let dx = with_weight(&ws, |w| cpu_bf16::conv::data_grad(&s, bits(&dys), w))?;
    Some(bf16_tensor(dx, s.input_dims()))
}

/// The weight gradient, in f32, for bf16 `x` and `dy`.
pub fn conv2d_weight_grad(
    x: &Tensor<Flex, 4>,
    dy: &Tensor<Flex, 4>,
    a: &ConvAttrs,
) -> Option<Tensor<Flex, 4>> {
    let s = ConvShape::new(a, x.dims());
    if x.dtype() != DType::BF16 || dy.dtype() != DType::BF16 || !s.is_valid() || dy.dims() != s.output_dims()
    {
        return None;
    }
    let (xs, dys) = (flex(x.clone()), flex(dy.clone()));
    Some(f32_tensor(cpu_bf16::conv::weight_grad(&s, bits(&xs), bits(&dys)), s.weight_dims()))
}

/// `x W^T` for a bf16 `x`.
pub fn linear(x: &Tensor<Flex, 2>, w: &Tensor<Flex, 2>) -> Option<Tensor<Flex, 2>> {
    let ([n, i], [o, wi]) = (x.dims(), w.dims());
    if x.dtype() != DType::BF16 || i != wi {
        return None;
    }
    let (xs, ws) = (flex(x.clone()), flex(w.clone()));
    let y = with_weight(&ws, |w| cpu_bf16::linear::forward(bits(&xs), n, w, o, i, None, false))?;
    Some(bf16_tensor(y, [n, o]))
}

/// `dy W` for a bf16 `dy`.
pub fn linear_data_grad(dy: &Tensor<Flex, 2>, w: &Tensor<Flex, 2>) -> Option<Tensor<Flex, 2>> {
    let ([n, o], [wo, i]) = (dy.dims(), w.dims());
    if dy.dtype() != DType::BF16 || o != wo {
        return None;
    }
    let (dys, ws) = (flex(dy.clone()), flex(w.clone()));
    let dx = with_weight(&ws, |w| cpu_bf16::linear::data_grad(bits(&dys), n, w, o, i))?;
    Some(bf16_tensor(dx, [n, i]))
}

/// `dy^T x`, in f32, for bf16 `x` and `dy`.
pub fn linear_weight_grad(x: &Tensor<Flex, 2>, dy: &Tensor<Flex, 2>) -> Option<Tensor<Flex, 2>> {
    let ([n, i], [dn, o]) = (x.dims(), dy.dims());
    if x.dtype() != DType::BF16 || dy.dtype() != DType::BF16 || n != dn {
        return None;
    }
    let (xs, dys) = (flex(x.clone()), flex(dy.clone()));
    Some(f32_tensor(cpu_bf16::linear::weight_grad(bits(&xs), bits(&dys), n, o, i), [o, i]))
}

/// `t` converted between f32 and bf16 or f16 (`None` for any other pair, or a strided tensor).
pub fn cast(t: &FlexTensor, dtype: DType) -> Option<FlexTensor> {
    let shape = t.shape();
    match (t.dtype(), dtype) {
        (DType::F32, DType::BF16) => Some(bf16_flex(round(t.as_slice::<f32>()?), shape)),
        (DType::BF16, DType::F32) => {
            let bits: &[u16] = bytemuck::cast_slice(t.as_slice::<bf16>()?);
            Some(FlexTensor::from_data(TensorData::new(widen(bits), shape)))
        }
        (DType::F32, DType::F16) => {
            Some(FlexTensor::from_data(TensorData::new(round_f16(t.as_slice::<f32>()?), shape)))
        }
        (DType::F16, DType::F32) => {
            Some(FlexTensor::from_data(TensorData::new(widen_f16(t.as_slice::<half::f16>()?), shape)))
        }
        _ => None,
    }
}

/// A bf16 tensor's values widened to f32 (exact).
fn widened(t: &FlexTensor) -> Vec<f32> {
    widen(bits(t))
}

/// f32 values rounded into a bf16 tensor.
fn rounded<const D: usize>(v: &[f32], dims: [usize; D]) -> Tensor<Flex, D> {
    bf16_tensor(round(v), dims)
}

/// LRN of a bf16 tensor: widened, the window sums in f32, the result rounded once. Other types
/// go to the host kernel.
pub fn lrn_forward(x: FlexTensor, dims: [usize; 4], p: &LrnParams) -> Tensor<Flex, 4> {
    if x.dtype() != DType::BF16 {
        return host_lrn_forward(Tensor::from_primitive(TensorPrimitive::Float(x)), p);
    }
    rounded(&reference::lrn_forward(&widened(&x), dims, p), dims)
}

/// The LRN gradient (through the ReLU whose output `x` is, when `relu`) of bf16 tensors, in f32;
/// other types, or tensors of mixed types, go to the host kernel.
pub fn lrn_backward(
    x: Tensor<Flex, 4>,
    y: Tensor<Flex, 4>,
    dy: Tensor<Flex, 4>,
    p: &LrnParams,
    relu: bool,
) -> Tensor<Flex, 4> {
    let dims = x.dims();
    let all_bf16 = [x.dtype(), y.dtype(), dy.dtype()].iter().all(|&d| d == DType::BF16);
    if !all_bf16 || y.dims() != dims || dy.dims() != dims {
        return host_lrn_backward(x, y, dy, p, relu);
    }
    let (x, y, dy) = (widened(&flex(x)), widened(&flex(y)), widened(&flex(dy)));
    rounded(&lrn_grad(&x, &y, &dy, dims, p, relu), dims)
}

/// Max pooling of a half-precision tensor `x` of `dims` into `out`: in f32 (exact for the
/// maximum), the result in `x`'s type, with the argmax.
pub fn max_pool_forward(
    x: FlexTensor,
    dims: [usize; 4],
    out: [usize; 4],
    p: &PoolParams,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4, Int>) {
    let dtype = x.dtype();
    let v = if dtype == DType::BF16 {
        widened(&x)
    } else {
        x.into_data().convert::<f32>().into_vec::<f32>().expect("f32")
    };
    let (y, arg) = reference::max_pool_forward(&v, dims, p);
    let y = if dtype == DType::BF16 {
        rounded(&y, out)
    } else {
        Tensor::from_data(TensorData::new(y, out).convert_dtype(dtype), &Default::default())
    };
    (y, Tensor::from_data(TensorData::new(arg, out), &Default::default()))
}

/// The max-pooling gradient of a bf16 `dy` with i32 indices, in f32 (the sums of a window's
/// overlaps), rounded once; other types on the host.
pub fn max_pool_backward(
    dy: FlexTensor,
    arg: FlexTensor,
    input_hw: [usize; 2],
    p: &PoolParams,
) -> Tensor<Flex, 4> {
    let dy = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(dy));
    let arg = Tensor::<Flex, 4, Int>::from_primitive(arg);
    if dy.dtype() != DType::BF16 || arg.dtype() != DType::I32 {
        return host_max_pool_backward(dy, arg, input_hw, p);
    }
    let [n, c, oh, ow] = dy.dims();
    let (dy, arg) = (widened(&flex(dy)), arg.into_primitive().to_contiguous());
    let arg = arg.as_slice::<i32>().expect("contiguous i32 indices");
    let dx = reference::max_pool_backward(&dy, arg, input_hw, [oh, ow], p);
    rounded(&dx, [n, c, input_hw[0], input_hw[1]])
}

#[cfg(test)]
mod tests {
    //! LRN and pooling of bf16 tensors on Flex: bf16 out, and bit for bit the f32 reference on the
    //! widened inputs, rounded once.
    use burn::tensor::{DType, Int, Tensor, TensorData};

    use super::super::cpu_bf16::convert::{bf16_bits_to_f32, round_into};
    use super::super::{reference, KernelBackend, LrnParams, PoolParams};
    use super::Flex;
    use crate::kernels::host::lrn_grad;

    const DIMS: [usize; 4] = [2, 7, 9, 9];

    fn bf16_values(n: usize, seed: u64) -> (Tensor<Flex, 4>, Vec<f32>) {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 1.0
            })
            .collect();
        let mut bits = vec![0u16; n];
        round_into(&mut bits, &v);
        let widened: Vec<f32> = bits.iter().map(|&b| bf16_bits_to_f32(b)).collect();
        let t = Tensor::<Flex, 4>::from_data(TensorData::new(widened.clone(), DIMS), &Default::default());
        (t.cast(DType::BF16), widened)
    }

    fn rounded(v: &[f32]) -> Vec<f32> {
        let mut bits = vec![0u16; v.len()];
        round_into(&mut bits, v);
        bits.iter().map(|&b| bf16_bits_to_f32(b)).collect()
    }

    fn f32_values<const D: usize>(t: Tensor<Flex, D>) -> Vec<f32> {
        assert_eq!(t.dtype(), DType::BF16, "a bf16 result");
        t.into_data().convert::<f32>().into_vec::<f32>().unwrap()
    }

    #[test]
    fn bf16_lrn_forward_and_backward_are_the_f32_reference_rounded_once() {
        let p = LrnParams { size: 5, scale: 1e-2, beta: 0.75, k: 2.0 };
        let n = DIMS.iter().product();
        let ((x, xv), (dy, dyv)) = (bf16_values(n, 1), bf16_values(n, 2));
        let y = Flex::lrn_forward(x.clone(), &p);
        let yv = f32_values(y.clone());
        assert_eq!(yv, rounded(&reference::lrn_forward(&xv, DIMS, &p)));
        for relu in [false, true] {
            let dx = if relu {
                Flex::lrn_relu_backward(x.clone(), y.clone(), dy.clone(), &p)
            } else {
                Flex::lrn_backward(x.clone(), y.clone(), dy.clone(), &p)
            };
            assert_eq!(f32_values(dx), rounded(&lrn_grad(&xv, &yv, &dyv, DIMS, &p, relu)), "relu {relu}");
        }
    }

    #[test]
    fn bf16_max_pooling_forward_and_backward_are_the_f32_reference_rounded_once() {
        let p = PoolParams { kernel: 3, stride: 2, padding: 0 };
        let (x, xv) = bf16_values(DIMS.iter().product(), 3);
        let (y, arg) = Flex::max_pool_forward(x, &p);
        let out = y.dims();
        let (want, want_arg) = reference::max_pool_forward(&xv, DIMS, &p);
        assert_eq!(f32_values(y), want, "the maximum of bf16 values is exact");
        let arg_v = arg.clone().into_data().convert::<i32>().into_vec::<i32>().unwrap();
        assert_eq!(arg_v, want_arg);
        let (dy, dyv) = {
            let (t, v) = bf16_values(DIMS.iter().product(), 4);
            let len = out.iter().product();
            let t = t.reshape([DIMS.iter().product::<usize>()]).narrow(0, 0, len).reshape(out);
            (t, v[..len].to_vec())
        };
        let arg: Tensor<Flex, 4, Int> = arg;
        let dx = Flex::max_pool_backward(dy, arg, [DIMS[2], DIMS[3]], &p);
        let want = reference::max_pool_backward(&dyv, &want_arg, [DIMS[2], DIMS[3]], [out[2], out[3]], &p);
        assert_eq!(f32_values(dx), rounded(&want));
    }
}

#[cfg(test)]
mod cast_tests {
    use burn::tensor::{DType, Tensor, TensorData, TensorMetadata};

    use super::super::cpu_bf16::convert::{bf16_bits_to_f32, f32_to_bf16_bits};
    use super::super::KernelBackend;
    use super::Flex;

    #[test]
    fn the_cpu_casts_between_f32_and_bf16_as_each_element_rounds_and_keeps_the_shape() {
        let v: Vec<f32> = (0..3 * 5 * 7).map(|i| (i as f32 * 0.731).cos() * 300.0).collect();
        let t = Tensor::<Flex, 3>::from_data(TensorData::new(v.clone(), [3, 5, 7]), &Default::default());
        let b = Flex::cast_float(t.into_primitive().tensor(), DType::BF16);
        assert_eq!((b.dtype(), b.shape().dims::<3>()), (DType::BF16, [3, 5, 7]));
        let back = Flex::cast_float(b, DType::F32);
        let got = Tensor::<Flex, 3>::from_primitive(burn::tensor::TensorPrimitive::Float(back)).into_data();
        let want: Vec<f32> = v.iter().map(|&x| bf16_bits_to_f32(f32_to_bf16_bits(x))).collect();
        assert_eq!(got.into_vec::<f32>().unwrap(), want);
        // A strided view (a transpose) takes burn's cast, with the same values.
        let t = Tensor::<Flex, 2>::from_data(TensorData::new(v[..35].to_vec(), [5, 7]), &Default::default());
        let strided = Flex::cast_float(t.clone().transpose().into_primitive().tensor(), DType::BF16);
        let widened =
            Tensor::<Flex, 2>::from_primitive(burn::tensor::TensorPrimitive::Float(strided)).cast(DType::F32);
        let want = t.transpose().into_data().into_vec::<f32>().unwrap();
        let want: Vec<f32> = want.iter().map(|&x| bf16_bits_to_f32(f32_to_bf16_bits(x))).collect();
        assert_eq!(widened.into_data().into_vec::<f32>().unwrap(), want);
    }
}
