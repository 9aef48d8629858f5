//! bf16 tensors on Flex through the bf16 engine ([`cpu_bf16`]): their storage read in place as
//! bits, the products summed in f32, the results written as bf16 (or f32, for the weight
//! gradients that a bf16 step keeps in f32). `None` where the engine does not take the call
//! (another type, or a shape it refuses), for the caller's fallback.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{bf16, DType, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use rayon::prelude::*;

use alexir::catalog::ConvAttrs;

use super::cpu_bf16::convert::{bf16_bits_to_f32, round, round_f16, widen, widen_f16};
use super::cpu_bf16::{self, Weight};
use super::cpu_conv::ConvShape;
use super::simd::{dispatch, Isa, Kernel};

/// A tensor's Flex storage, contiguous (copied only if it was not).
pub(super) fn flex<const D: usize>(t: Tensor<Flex, D>) -> FlexTensor {
    t.into_primitive().tensor().to_contiguous()
}

pub(super) fn bits(t: &FlexTensor) -> &[u16] {
    bytemuck::cast_slice(t.storage::<bf16>())
}

fn bf16_flex(v: Vec<u16>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    let v: Vec<bf16> = v.into_iter().map(bf16::from_bits).collect();
    FlexTensor::from_data(TensorData::new(v, shape))
}

pub(super) fn bf16_tensor<const D: usize>(v: Vec<u16>, dims: [usize; D]) -> Tensor<Flex, D> {
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

/// A bias's gradient in f32 for a bf16 `dy`, widened as it is read: each channel's planes by one
/// thread, image by image in order, each plane in 16 lanes (a fully connected layer's, whose
/// planes are single values, image by image into every channel at once). The same bits on any
/// number of threads. Widening the whole tensor to f32 first took 14 ms for conv1's at batch 128.
pub fn bias_grad<const D: usize>(dy: &Tensor<Flex, D>) -> Option<Tensor<Flex, 1>> {
    if dy.dtype() != DType::BF16 || D < 2 {
        return None;
    }
    let dims = dy.dims();
    let (n, c, plane) = (dims[0], dims[1], dims[2..].iter().product::<usize>());
    if c == 0 {
        return Some(f32_tensor(Vec::new(), [0]));
    }
    let t = flex(dy.clone());
    let x = bits(&t);
    let isa = Isa::detect();
    let sums = if plane == 1 {
        let mut sums = vec![0f32; c];
        for row in x.chunks_exact(c) {
            dispatch(isa, AddWidened { sums: &mut sums, row });
        }
        sums
    } else {
        (0..c)
            .into_par_iter()
            .map(|ch| (0..n).map(|img| dispatch(isa, LanesSum(&x[(img * c + ch) * plane..][..plane]))).sum())
            .collect()
    };
    Some(f32_tensor(sums, [c]))
}

/// `sums[i] += row[i]` widened.
struct AddWidened<'a> {
    sums: &'a mut [f32],
    row: &'a [u16],
}

impl Kernel for AddWidened<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        self.sums.iter_mut().zip(self.row).for_each(|(s, b)| *s += bf16_bits_to_f32(*b));
    }
}

/// The sum of the values: element `i` into lane `i % 16`, then the lanes pairwise.
struct LanesSum<'a>(&'a [u16]);

impl Kernel for LanesSum<'_> {
    type Output = f32;
    #[inline(always)]
    fn run(self) -> f32 {
        let mut lanes = [0f32; 16];
        let whole = self.0.chunks_exact(16);
        let rest = whole.remainder();
        for run in whole {
            for (l, b) in lanes.iter_mut().zip(run) {
                *l += bf16_bits_to_f32(*b);
            }
        }
        for (l, b) in lanes.iter_mut().zip(rest) {
            *l += bf16_bits_to_f32(*b);
        }
        let mut width = 16;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
        }
        lanes[0]
    }
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

#[cfg(test)]
mod tests {
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

    #[test]
    fn the_cpu_casts_between_f32_and_f16_as_each_element_rounds() {
        // Past f16's range (65504) to infinity, below its normals to subnormals and zero.
        let v: Vec<f32> = (0..4 * 64).map(|i| (i as f32 * 0.731).cos() * 2f32.powi(i % 48 - 30)).collect();
        let t = Tensor::<Flex, 2>::from_data(TensorData::new(v.clone(), [4, 64]), &Default::default());
        let h = Flex::cast_float(t.into_primitive().tensor(), DType::F16);
        assert_eq!((h.dtype(), h.shape().dims::<2>()), (DType::F16, [4, 64]));
        let back = Flex::cast_float(h, DType::F32);
        let got = Tensor::<Flex, 2>::from_primitive(burn::tensor::TensorPrimitive::Float(back)).into_data();
        let want: Vec<f32> = v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
        assert_eq!(got.into_vec::<f32>().unwrap(), want);
        assert!(want.iter().any(|x| x.is_infinite()) && want.iter().any(|&x| x != 0.0 && x.abs() < 6.2e-5));
    }

    #[test]
    fn a_bf16_bias_gradient_is_summed_in_f32_as_read() {
        // Planes of 63 (not a multiple of the 16 lanes) and of 1 (a fully connected layer's).
        for dims in [[3usize, 5, 7, 9], [4, 6, 1, 1]] {
            let count = dims.iter().product::<usize>();
            let v: Vec<f32> =
                (0..count).map(|i| (i as f32 * 0.37).sin() * 2f32.powi((i % 9) as i32 - 4)).collect();
            let t =
                Tensor::<Flex, 4>::from_data(TensorData::new(v, dims), &Default::default()).cast(DType::BF16);
            let wide: Vec<f32> = t.clone().cast(DType::F32).into_data().into_vec::<f32>().unwrap();
            let got = Flex::bias_grad(t).into_data();
            assert_eq!(got.dtype, DType::F32);
            let got = got.into_vec::<f32>().unwrap();
            let (n, c, plane) = (dims[0], dims[1], dims[2] * dims[3]);
            for (ch, g) in got.iter().enumerate() {
                let terms = (0..n).flat_map(|i| (0..plane).map(move |p| (i * c + ch) * plane + p));
                let (want, scale) = terms.fold((0f64, 0f64), |(s, a), at| {
                    (s + f64::from(wide[at]), a + f64::from(wide[at]).abs())
                });
                assert!((f64::from(*g) - want).abs() <= 1e-6 * scale, "{dims:?} channel {ch}: {g} vs {want}");
            }
        }
    }
}
