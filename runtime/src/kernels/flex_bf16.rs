//! bf16 tensors on Flex through the bf16 engine ([`cpu_bf16`]): their storage read in place as
//! bits, the products summed in f32, the results written as bf16 (or f32, for the weight
//! gradients that a bf16 step keeps in f32). `None` where the engine does not take the call
//! (another type, or a shape it refuses), for the caller's fallback.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{bf16, DType, Tensor, TensorData, TensorPrimitive};

use alexir::catalog::ConvAttrs;

use super::cpu_bf16::{self, Weight};
use super::cpu_conv::ConvShape;

fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor().to_contiguous()
}

fn bits(t: &FlexTensor) -> &[u16] {
    bytemuck::cast_slice(t.storage::<bf16>())
}

fn bf16_tensor<const D: usize>(v: Vec<u16>, dims: [usize; D]) -> Tensor<Flex, D> {
    let v: Vec<bf16> = v.into_iter().map(bf16::from_bits).collect();
    Tensor::from_primitive(TensorPrimitive::Float(FlexTensor::from_data(TensorData::new(v, dims))))
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
