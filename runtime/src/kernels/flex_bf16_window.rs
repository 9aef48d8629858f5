//! LRN and max pooling of bf16 tensors on Flex. LRN runs in tiles of every channel
//! ([`super::lrn_bf16`]); pooling plane by plane ([`max_pool_bf16`]), its gradient image by
//! image: each image's part of the inputs widened to f32 in scratch buffers of its own thread, the
//! f32 reference kernel run on it, the result rounded once into the image's part of the output;
//! the images on all threads. Each op works within a plane or an image, so the bits are those of
//! the whole tensor widened at once, without its f32 copies going through memory. Other types go
//! to the host kernels.

use burn::backend::flex::FlexTensor;
use burn::backend::Flex;
use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

use super::cpu_bf16::convert::{round_into, widen_into};
use super::flex_bf16::{bf16_tensor, bits, flex};
use super::max_pool::max_pool_bf16;
use super::scratch::{scratch, Scratch};
use super::{host_lrn_backward, host_lrn_forward, host_max_pool_backward, reference, LrnParams, PoolParams};

/// Image `i` of `images` of bf16 `bits`, widened into a scratch buffer of this thread's.
fn image(bits: &[u16], images: usize, i: usize) -> Scratch<f32> {
    let len = bits.len() / images;
    let mut out = scratch::<f32>(len);
    widen_into(&mut out, &bits[i * len..][..len]);
    out
}

/// `f` on each image `i` of `input` (bf16, `images` images) widened, its f32 results rounded into
/// an output of `out_len` bf16 values, on all threads.
fn by_image(
    input: &[u16],
    images: usize,
    out_len: usize,
    f: impl Fn(usize, &[f32]) -> Vec<f32> + Sync,
) -> Vec<u16> {
    let mut out = vec![0u16; out_len];
    if images == 0 {
        return out;
    }
    out.par_chunks_mut(out_len / images).enumerate().for_each(|(i, o)| {
        round_into(o, &f(i, &image(input, images, i)));
    });
    out
}

/// LRN of a bf16 tensor, in f32 tile by tile, the result rounded once. Other types go to the
/// host kernel.
pub fn lrn_forward(x: FlexTensor, dims: [usize; 4], p: &LrnParams) -> Tensor<Flex, 4> {
    if x.dtype() != DType::BF16 {
        return host_lrn_forward(Tensor::from_primitive(TensorPrimitive::Float(x)), p);
    }
    bf16_tensor(super::lrn_bf16::forward(bits(&x), dims, p), dims)
}

/// The LRN gradient (through the ReLU whose output `x` is, when `relu`) of bf16 tensors, in f32
/// tile by tile; other types, or tensors of mixed types, go to the host kernel.
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
    let (x, y, dy) = (flex(x), flex(y), flex(dy));
    bf16_tensor(super::lrn_bf16::backward(bits(&x), bits(&y), bits(&dy), dims, p, relu), dims)
}

/// Max pooling of a half-precision tensor `x` of `dims` into `out`: in f32 (exact for the
/// maximum), the result in `x`'s type, with the argmax (within each plane); bf16 plane by plane
/// ([`max_pool_bf16`]).
pub fn max_pool_forward(
    x: FlexTensor,
    dims: [usize; 4],
    out: [usize; 4],
    p: &PoolParams,
) -> (Tensor<Flex, 4>, Tensor<Flex, 4, Int>) {
    let dtype = x.dtype();
    let (y, arg) = if dtype == DType::BF16 {
        let (y, arg) = max_pool_bf16::<true>(bits(&x), dims, p);
        (bf16_tensor(y, out), arg)
    } else {
        let v = x.into_data().convert::<f32>().into_vec::<f32>().expect("f32");
        let (y, arg) = reference::max_pool_forward(&v, dims, p);
        (Tensor::from_data(TensorData::new(y, out).convert_dtype(dtype), &Default::default()), arg)
    };
    (y, Tensor::from_data(TensorData::new(arg, out), &Default::default()))
}

/// [`max_pool_forward`] without the indices (inference): bf16 plane by plane, the other half
/// precision through the forward.
pub fn max_pool_values(x: FlexTensor, dims: [usize; 4], out: [usize; 4], p: &PoolParams) -> Tensor<Flex, 4> {
    if x.dtype() == DType::BF16 {
        return bf16_tensor(max_pool_bf16::<false>(bits(&x), dims, p).0, out);
    }
    max_pool_forward(x, dims, out, p).0
}

/// The max-pooling gradient of a bf16 `dy` with i32 indices, in f32 (the sums of a window's
/// overlaps) image by image, rounded once; other types on the host.
pub fn max_pool_backward(
    dy: FlexTensor,
    arg: FlexTensor,
    input_hw: [usize; 2],
    p: &PoolParams,
) -> Tensor<Flex, 4> {
    let dy = Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(dy));
    let arg = Tensor::<Flex, 4, Int>::from_primitive(arg);
    if dy.dtype() != DType::BF16 || arg.dtype() != DType::I32 || dy.dims()[0] == 0 {
        return host_max_pool_backward(dy, arg, input_hw, p);
    }
    let [n, c, oh, ow] = dy.dims();
    let (dy, arg) = (flex(dy), arg.into_primitive().to_contiguous());
    let arg = arg.as_slice::<i32>().expect("contiguous i32 indices");
    let per = arg.len() / n;
    let dx = by_image(bits(&dy), n, n * c * input_hw[0] * input_hw[1], |i, v| {
        reference::max_pool_backward(v, &arg[i * per..][..per], input_hw, [oh, ow], p)
    });
    bf16_tensor(dx, [n, c, input_hw[0], input_hw[1]])
}

#[cfg(test)]
mod tests {
    //! LRN and pooling of bf16 tensors on Flex: bf16 out, and bit for bit the f32 reference on the
    //! widened inputs, rounded once.
    use burn::tensor::{DType, Int, Tensor, TensorData};

    use super::super::cpu_bf16::convert::{bf16_bits_to_f32, round_into};
    use super::super::{reference, KernelBackend, LrnParams, PoolParams};
    use super::{max_pool_bf16, Flex};
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
    fn bf16_pooling_keeps_each_maximums_bits_nan_infinities_and_signed_zeros_included() {
        // Bits that widen to NaNs (quiet, signalling, negative), infinities, zeros of both signs,
        // subnormals, and ordinary values, in every window position.
        let specials = [0x7FC0u16, 0x7F81, 0xFFC1, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001, 0x8001];
        let n: usize = DIMS.iter().product();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let bits: Vec<u16> = (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 5 == 0 {
                    specials[(state % 9) as usize]
                } else {
                    (state >> 48) as u16 & 0xBFFF
                }
            })
            .collect();
        let wide: Vec<f32> = bits.iter().map(|&b| bf16_bits_to_f32(b)).collect();
        for p in [(3, 2, 0), (3, 2, 1), (2, 1, 0), (5, 3, 2)].map(|(kernel, stride, padding)| PoolParams {
            kernel,
            stride,
            padding,
        }) {
            let (y, arg) = max_pool_bf16::<true>(&bits, DIMS, &p);
            let (want, want_arg) = reference::max_pool_forward(&wide, DIMS, &p);
            let want_bits: Vec<u16> = want.iter().map(|v| (v.to_bits() >> 16) as u16).collect();
            assert_eq!(y, want_bits, "{p:?}");
            assert_eq!(arg, want_arg, "{p:?}");
            assert_eq!(max_pool_bf16::<false>(&bits, DIMS, &p).0, y, "{p:?}: the values alone");
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
